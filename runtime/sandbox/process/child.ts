/**
 * A sandbox process: the child side of the process pool (see SandboxProcessPool.ts). It hosts the in-process
 * engines (isolated-vm, QuickJS) and runs one Cryptlet at a time for its parent, which enforces the OS limits and
 * the watchdog from outside. Loaded Cryptlets are kept by key (most recent 32); isolated-vm runs get a fresh
 * isolate each time, prepared while the process is idle, so no run can observe an earlier one's heap.
 *
 * Started by the pool with `child_process.fork`; not a command.
 * @module
 */
import { isCryptletError, type CryptletError } from "../../errors.ts";
import { IsolatedVmEngine } from "../IsolatedVmEngine.ts";
import { QuickJsEngine } from "../QuickJsEngine.ts";
import { SandboxEngineFailureError } from "../errors.ts";
import type { SandboxedCryptlet, SandboxEngine, SandboxEngineName } from "../SandboxEngine.ts";
import type { FromChild, ToChild } from "./protocol.ts";

const MAX_LOADED = 32;
const engines: Record<SandboxEngineName, SandboxEngine> = {
  "isolated-vm": new IsolatedVmEngine({ isolatePerRun: true }),
  quickjs: new QuickJsEngine(),
};
const loaded = new Map<string, SandboxedCryptlet>();

function send(message: FromChild): void {
  process.send?.(message);
}

function errorJson(error: unknown) {
  if (isCryptletError(error)) return (error as CryptletError).toJSON();
  return new SandboxEngineFailureError("sandbox-process", "unexpected failure in the sandbox process", {
    cause: error,
  }).toJSON();
}

async function load(key: string, engine: SandboxEngineName, bundle: string, options: ToChild["options"]) {
  const existing = loaded.get(key);
  if (existing) return existing;
  const cryptlet = await engines[engine].load(bundle, options);
  loaded.set(key, cryptlet);
  if (loaded.size > MAX_LOADED) {
    const [oldest, evicted] = loaded.entries().next().value as [string, SandboxedCryptlet];
    loaded.delete(oldest);
    evicted.dispose();
  }
  return cryptlet;
}

async function handle(message: ToChild): Promise<void> {
  if (message.type === "load") {
    try {
      await load(message.key, message.engine, message.bundle, message.options);
      send({ type: "loaded", id: message.id, ok: true });
    } catch (error) {
      send({ type: "loaded", id: message.id, ok: false, error: errorJson(error) });
    }
    return;
  }
  let cryptlet = loaded.get(message.key);
  if (!cryptlet) {
    if (message.bundle === undefined) {
      send({ type: "need-bundle", id: message.id });
      return;
    }
    try {
      cryptlet = await load(message.key, message.engine, message.bundle, message.options);
    } catch (error) {
      send({ type: "result", id: message.id, ok: false, error: errorJson(error) });
      return;
    }
  }
  // Most recently used last.
  loaded.delete(message.key);
  loaded.set(message.key, cryptlet);
  try {
    const result = await cryptlet.run(
      message.input,
      message.context,
      message.replay === undefined ? {} : { replay: message.replay },
    );
    send({ type: "result", id: message.id, ok: true, result });
  } catch (error) {
    send({ type: "result", id: message.id, ok: false, error: errorJson(error) });
  }
}

/**
 * Runs a trivial Cryptlet once on each engine, so that a new process's first real run costs what later ones do
 * (module instantiation, the first isolate, the engines' own warm-up): a run must not time out because its
 * process was just replaced after another tenant's run was killed.
 */
async function warmUp(): Promise<void> {
  const context = { event: null, requestId: "0x00", resultId: "0x00", now: 0 };
  for (const engine of Object.values(engines)) {
    try {
      const cryptlet = await engine.load("var cryptlet = { default: { run: (input) => input } };");
      await cryptlet.run(1, context);
      cryptlet.dispose();
    } catch {
      // the first real load reports whatever is wrong with the engine
    }
  }
}

process.on("message", (message: ToChild) => {
  void handle(message);
});
// The parent going away ends the child: no orphan keeps running a Cryptlet.
process.on("disconnect", () => process.exit(0));
await warmUp();
send({ type: "ready", pid: process.pid });
export {};
