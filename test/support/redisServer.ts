/**
 * Test support: a `redis-server` process of the test's own, on a free port (or a given one, which must be free), with
 * its data directory in a temporary folder, that a test may kill and restart (the shared Redis on 6379 never is).
 */
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

import { Redis } from "ioredis";

import { freePort } from "../../runtime/devstack/localChain.ts";

export { freePort };

/** A running redis-server of a test. */
export interface TestRedisServer {
  port: number;
  url: string;
  /** Its `--dir` (the AOF is under `appendonlydir/`). */
  dir: string;
  /** SIGKILLs it and waits for the exit. */
  kill(): Promise<void>;
  /** Starts it again on the same port and dir with `args` (default: the same arguments). */
  restart(args?: string[]): Promise<void>;
  /** Kills it and removes its dir. */
  close(): Promise<void>;
}

/** How long a test's redis-server may take to accept commands, ms. */
const START_TIMEOUT_MS = 20_000;

/**
 * Waits until this `child` says it is ready (its own log line, so a stranger on the port is never taken for it), then
 * until it answers PING. Fails at once when the child exits (with its last log lines), and after
 * {@link START_TIMEOUT_MS} in all. Every probe has its own deadlines and no ready check: a port held by something
 * that accepts and never answers must not hang the test.
 */
async function waitUp(child: ChildProcess, url: string, log: () => string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  const failure = (why: string) => new Error(`redis-server at ${url} ${why}; its log ends: ${log().slice(-600)}`);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => finish(failure(`did not say it was ready within ${START_TIMEOUT_MS} ms`)),
      START_TIMEOUT_MS,
    );
    const onData = () => {
      if (/Ready to accept connections/.test(log())) finish();
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
      finish(failure(`exited while starting (${signal ?? `code ${code}`})`));
    const finish = (error?: Error) => {
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      child.off("exit", onExit);
      if (error) reject(error);
      else resolve();
    };
    child.stdout?.on("data", onData);
    child.once("exit", onExit);
    onData();
  });
  for (;;) {
    const probe = new Redis(url, {
      lazyConnect: true,
      enableReadyCheck: false,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
      connectTimeout: 1000,
      commandTimeout: 1000,
    });
    probe.on("error", () => undefined);
    try {
      await probe.connect();
      await probe.ping();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw failure(`did not answer PING (${String(error)})`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      probe.disconnect();
    }
  }
}

/** Whether something accepts connections on 127.0.0.1:`port`. */
async function inUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/**
 * Starts `redis-server --port <port> --dir <tmp> --save ''` plus `args` (e.g. `["--appendonly", "yes"]`).
 * @param port - a port to use, which must be free (another process there would be taken for this server: refused);
 *   0 (default) picks a free one.
 */
export async function startRedisServer(requested = 0, args: string[] = []): Promise<TestRedisServer> {
  if (requested !== 0) return startOn(requested, args);
  // A port found free can be taken before the server binds it (another test file's process): try another one.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOn(await freePort(), args);
    } catch (error) {
      if (attempt >= 3 || !/Address already in use/i.test(String(error))) throw error;
    }
  }
}

async function startOn(port: number, args: string[]): Promise<TestRedisServer> {
  if (await inUse(port)) throw new Error(`port ${port} is already in use: a test's redis-server needs its own`);
  const dir = mkdtempSync(path.join(os.tmpdir(), `redis-${port}-`));
  const url = `redis://127.0.0.1:${port}`;
  let current = args;
  let child: ChildProcess | undefined;
  let log = "";
  const start = async (extra: string[]) => {
    current = extra;
    log = "";
    const started = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", ...extra],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    child = started;
    const keep = (chunk: Buffer) => {
      log = (log + chunk.toString("utf8")).slice(-8192);
    };
    started.stdout.on("data", keep);
    started.stderr.on("data", keep);
    try {
      await waitUp(started, url, () => log);
    } catch (error) {
      await kill();
      throw error;
    }
  };
  const kill = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      running.once("exit", () => resolve());
      running.kill("SIGKILL");
    });
  };
  try {
    await start(args);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    port,
    url,
    dir,
    kill,
    restart: (next) => start(next ?? current),
    async close() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
