/**
 * The default sandbox engine: V8 isolates through isolated-vm 7 (native addon, separate heap per isolate,
 * execution on its own thread so the host's event loop keeps running while a Cryptlet loops).
 *
 * One isolate per loaded Cryptlet (heap limit = `limits.memoryMb`); the bundle and the prelude are compiled once
 * per isolate; each run gets a **new context** (fresh global object and built-ins), so no run sees an earlier
 * run's globals. A run that times out or exceeds memory disposes the isolate; the next run creates a new one.
 *
 * @example
 * ```ts
 * import { IsolatedVmEngine } from "./runtime/sandbox/IsolatedVmEngine.ts";
 *
 * const cryptlet = await new IsolatedVmEngine().load(
 *   'var cryptlet = { default: { run: (input, ctx) => ({ twice: input.n * 2, at: ctx.now }) } };',
 * );
 * const { output } = await cryptlet.run({ n: 21 }, { event: {}, requestId: "0x01", resultId: "0x02", now: 1704412800 });
 * console.log(output); // { twice: 42, at: 1704412800 }
 * cryptlet.dispose();
 * ```
 */
import ivm from "isolated-vm";
import type { CryptletError } from "../errors.ts";
import { isCryptletError } from "../errors.ts";
import type { JsonValue } from "../sdk/index.ts";
import {
  BundleInvalidError,
  SandboxEngineFailureError,
  SandboxMemoryLimitError,
  SandboxTimeoutError,
} from "./errors.ts";
import { installedEngineVersion } from "./engineVersion.ts";
import { assertHostSafe } from "./hostCheck.ts";
import { errorFromThrown, readThrownMarker, settleEnvelope } from "./internal/envelope.ts";
import {
  MAX_REQUEST_JSON_CHARS,
  resolveFetchCapability,
  type FetchPolicy,
  type RunFetcher,
} from "./internal/hostFetch.ts";
import { createRunFetcher } from "./internal/replayFetch.ts";
import {
  bundleLoaderPrefix,
  bundleLoaderSource,
  PRELUDE_SOURCE,
  PROBE_SOURCE,
  STRICTNESS_PROBE_SUFFIX,
} from "./internal/prelude.ts";
import { prepareRun, SerialQueue } from "./internal/prepareRun.ts";
import {
  resolveLimits,
  type LoadOptions,
  type RunContextData,
  type RunOptions,
  type RunResult,
  type SandboxEngine,
  type SandboxedCryptlet,
  type SandboxLimits,
} from "./SandboxEngine.ts";

const ENGINE = "isolated-vm";

/** {@link SandboxEngine} on isolated-vm. */
export class IsolatedVmEngine implements SandboxEngine {
  readonly name = ENGINE;
  readonly #isolatePerRun: boolean;

  /**
   * @param options.isolatePerRun - give every run a new isolate (disposed after it, the next one compiled while
   *   idle), so that no run can observe an earlier run's heap: its garbage, its allocation headroom, its GC
   *   timing. The sandbox processes use it; in-process callers keep one isolate per loaded Cryptlet (default).
   */
  constructor(options: { isolatePerRun?: boolean } = {}) {
    this.#isolatePerRun = options.isolatePerRun ?? false;
  }

  /**
   * The installed engine version (`installedEngineVersion` in engineVersion.ts), the one a manifest's
   * `engineVersion` must equal and the attestation token names.
   */
  get version(): string {
    return installedEngineVersion(ENGINE).version;
  }

  /** @inheritDoc */
  async load(bundle: string, options: LoadOptions = {}): Promise<SandboxedCryptlet> {
    assertHostSafe(ENGINE);
    if (typeof bundle !== "string" || bundle.length === 0) throw new BundleInvalidError("the bundle is empty");
    const limits = resolveLimits(options.limits);
    const fetchPolicy = resolveFetchCapability(options.capabilities?.fetch);
    const cryptlet = new IsolatedVmCryptlet(bundle, limits, fetchPolicy, this.#isolatePerRun);
    try {
      await cryptlet.probe();
    } catch (error) {
      cryptlet.dispose();
      throw error;
    }
    return cryptlet;
  }
}

interface Compiled {
  isolate: ivm.Isolate;
  prelude: ivm.Script;
  bridge: ivm.Script;
  bundle: ivm.Script;
}

/**
 * The isolate side of the fetch bridge, evaluated before the prelude when fetch is granted. isolated-vm's
 * `Callback` copies arguments and results but does not wait for a host promise, so a request is split in two:
 * `start(id, request)` (a fire-and-forget Callback into the host) and `deliver(id, ok, payload)` (called by the
 * host when the response is ready). No `Reference` ever enters the isolate; the prelude takes
 * `__cryptletHostFetch` out of the global object before any Cryptlet code runs. A request longer than
 * `MAX_REQUEST_JSON_CHARS` is never copied out: the host gets an empty request instead (refused, and recorded as
 * the run's failure).
 */
const BRIDGE_SOURCE = `(function (start) {
  "use strict";
  var P = Promise;
  var E = TypeError;
  var pending = Object.create(null);
  var nextId = 0;
  globalThis.__cryptletHostFetch = function (request) {
    var id = ++nextId;
    var promise = new P(function (resolve, reject) { pending[id] = { resolve: resolve, reject: reject }; });
    start(id, typeof request === "string" && request.length <= ${MAX_REQUEST_JSON_CHARS} ? request : "");
    return promise;
  };
  return function deliver(id, ok, payload) {
    var entry = pending[id];
    if (entry === undefined) return;
    delete pending[id];
    if (ok) entry.resolve(payload); else entry.reject(new E(payload));
  };
})`;

async function installFetchBridge(compiled: Compiled, context: ivm.Context, fetcher: RunFetcher): Promise<void> {
  const factory = (await compiled.bridge.run(context, { reference: true })) as ivm.Reference;
  const bridge: { deliver?: ivm.Reference } = {};
  const reply = (id: number, ok: boolean, payload: string): void => {
    if (bridge.deliver === undefined || compiled.isolate.isDisposed) return;
    bridge.deliver.apply(undefined, [id, ok, payload], { arguments: { copy: true } }).catch(() => undefined);
  };
  const start = new ivm.Callback(
    (id: number, request: string) => {
      fetcher.fetch(String(request)).then(
        (json) => reply(id, true, json),
        (error: unknown) => reply(id, false, (error as Error).message),
      );
    },
    { ignored: true },
  );
  bridge.deliver = (await factory.apply(undefined, [start], { result: { reference: true } })) as ivm.Reference;
}

class IsolatedVmCryptlet implements SandboxedCryptlet {
  readonly engine = ENGINE;
  readonly limits: Readonly<SandboxLimits>;
  readonly #source: string;
  readonly #fetchPolicy: FetchPolicy | undefined;
  readonly #queue = new SerialQueue();
  readonly #isolatePerRun: boolean;
  #compiled: Compiled | undefined;
  #loaderSource: { source: string; prefix: number } | undefined;
  #disposed = false;

  constructor(source: string, limits: SandboxLimits, fetchPolicy: FetchPolicy | undefined, isolatePerRun = false) {
    this.#source = source;
    this.limits = Object.freeze({ ...limits });
    this.#fetchPolicy = fetchPolicy;
    this.#isolatePerRun = isolatePerRun;
  }

  /** Disposes the used isolate and compiles the next run's while idle (with `isolatePerRun`). */
  #renewIsolate(): void {
    if (!this.#isolatePerRun) return;
    if (this.#compiled !== undefined && !this.#compiled.isolate.isDisposed) this.#compiled.isolate.dispose();
    this.#compiled = undefined;
    setImmediate(() => {
      if (this.#disposed || this.#compiled !== undefined) return;
      try {
        this.#compile();
      } catch {
        // compiled again (and the error reported) by the next run
      }
    });
  }

  /** Evaluates the bundle once and checks `cryptlet.default.run` exists. */
  async probe(): Promise<void> {
    await this.#queue.run(async () => {
      const compiled = this.#compile();
      const context = await compiled.isolate.createContext();
      try {
        const deadline = performance.now() + this.limits.timeoutMs;
        const result = await this.#guard(compiled, deadline, async (remaining) => {
          const prelude = (await compiled.prelude.run(context, {
            reference: true,
            timeout: remaining(),
          })) as ivm.Reference;
          await prelude.apply(undefined, [JSON.stringify({ seed: [0, 0, 0, 0], maxOutputBytes: 2 })], {
            timeout: remaining(),
          });
          await this.#evaluateBundle(compiled, context, remaining);
          return (await this.#loadPhase(() => context.eval(PROBE_SOURCE, { timeout: remaining() }))) as boolean;
        });
        if (result !== true) throw new BundleInvalidError("cryptlet.default.run is not a function");
      } finally {
        if (!compiled.isolate.isDisposed) context.release();
        this.#renewIsolate();
      }
    });
  }

  async run(input: JsonValue, context: RunContextData, options: RunOptions = {}): Promise<RunResult> {
    const prepared = prepareRun(input, context, this.limits, this.#fetchPolicy?.maxRequests);
    return this.#queue.run(async () => {
      if (this.#disposed)
        throw new SandboxEngineFailureError(ENGINE, "the Cryptlet was disposed", { retryable: false });
      const compiled = this.#compile();
      const start = performance.now();
      const deadline = start + this.limits.timeoutMs;
      const abort = new AbortController();
      const fetcher = createRunFetcher(this.#fetchPolicy, abort.signal, options.replay);
      let context: ivm.Context | undefined;
      try {
        const envelope = await this.#guard(compiled, deadline, async (remaining) => {
          context = await compiled.isolate.createContext();
          if (fetcher !== undefined) await installFetchBridge(compiled, context, fetcher);
          const prelude = (await compiled.prelude.run(context, {
            reference: true,
            timeout: remaining(),
          })) as ivm.Reference;
          const runFunction = (await prelude.apply(undefined, [prepared.setupJson], {
            result: { reference: true },
            timeout: remaining(),
          })) as ivm.Reference;
          await this.#evaluateBundle(compiled, context, remaining);
          return runFunction.apply(undefined, [prepared.inputJson, prepared.ctxJson], {
            result: { promise: true, copy: true },
            timeout: remaining(),
          }) as Promise<unknown>;
        });
        if (fetcher?.failure !== undefined) throw fetcher.failure;
        const settled = settleEnvelope(envelope, this.limits, ENGINE);
        return {
          ...settled,
          hostCalls: fetcher?.records ?? [],
          durationMs: performance.now() - start,
        };
      } catch (error) {
        if (fetcher?.failure !== undefined && !isCryptletError(error, "ERR_SANDBOX_TIMEOUT")) throw fetcher.failure;
        throw error;
      } finally {
        abort.abort();
        if (context !== undefined && !compiled.isolate.isDisposed) context.release();
        this.#renewIsolate();
      }
    });
  }

  dispose(): void {
    this.#disposed = true;
    if (this.#compiled !== undefined && !this.#compiled.isolate.isDisposed) this.#compiled.isolate.dispose();
    this.#compiled = undefined;
  }

  #compile(): Compiled {
    if (this.#disposed) throw new SandboxEngineFailureError(ENGINE, "the Cryptlet was disposed", { retryable: false });
    if (this.#compiled !== undefined && !this.#compiled.isolate.isDisposed) return this.#compiled;
    let isolate: ivm.Isolate;
    try {
      isolate = new ivm.Isolate({ memoryLimit: this.limits.memoryMb });
    } catch (cause) {
      throw new SandboxEngineFailureError(ENGINE, "could not create an isolate", { cause });
    }
    const prelude = isolate.compileScriptSync(PRELUDE_SOURCE, { filename: "cryptlet-prelude.js" });
    const bridge = isolate.compileScriptSync(BRIDGE_SOURCE, { filename: "cryptlet-fetch-bridge.js" });
    let bundle: ivm.Script;
    try {
      const loader = this.#loader(isolate);
      bundle = isolate.compileScriptSync(loader.source, { filename: "cryptlet.js", columnOffset: -loader.prefix });
    } catch (cause) {
      isolate.dispose();
      throw new BundleInvalidError("the bundle does not compile", { message: (cause as Error).message?.slice(0, 300) });
    }
    this.#compiled = { isolate, prelude, bridge, bundle };
    return this.#compiled;
  }

  /**
   * The bundle inside its loader (`bundleLoaderSource` in internal/prelude.ts), so that a top-level throw is
   * described inside the isolate; found once: the bundle is compiled alone first (it must compile as it is), then
   * with `STRICTNESS_PROBE_SUFFIX` to keep its strictness. `prefix`: the loader's characters before the bundle.
   * @throws the compiler's SyntaxError for a bundle that does not compile.
   */
  #loader(isolate: ivm.Isolate): { source: string; prefix: number } {
    if (this.#loaderSource === undefined) {
      isolate.compileScriptSync(this.#source, { filename: "cryptlet.js" });
      let strict = false;
      try {
        isolate.compileScriptSync(this.#source + STRICTNESS_PROBE_SUFFIX, { filename: "cryptlet.js" });
      } catch {
        strict = true;
      }
      this.#loaderSource = {
        source: bundleLoaderSource(this.#source, strict),
        prefix: bundleLoaderPrefix(strict).length,
      };
    }
    return this.#loaderSource;
  }

  async #evaluateBundle(compiled: Compiled, context: ivm.Context, remaining: () => number): Promise<void> {
    await this.#loadPhase(() => compiled.bundle.run(context, { timeout: remaining() }));
  }

  /**
   * Runs a load-time evaluation (the bundle's loader, the probe). What they throw is the prelude's bounded
   * description of the Cryptlet's throw (a string, which isolated-vm copies as it is); anything else is an engine
   * stop (deadline, memory), left to {@link #translate}.
   */
  async #loadPhase<T>(task: () => Promise<T>): Promise<T> {
    try {
      return await task();
    } catch (error) {
      const thrown = readThrownMarker(error, ENGINE);
      if (thrown === undefined) throw error;
      throw errorFromThrown(thrown, "load", this.limits);
    }
  }

  /**
   * Runs `body` under the wall-time deadline: a timer disposes the isolate when it passes (which stops any
   * execution, synchronous or awaiting), and isolate deaths are translated to typed errors.
   */
  async #guard<T>(compiled: Compiled, deadline: number, body: (remaining: () => number) => Promise<T>): Promise<T> {
    let timedOut = false;
    const remaining = (): number => Math.max(1, Math.ceil(deadline - performance.now()));
    const timer = setTimeout(() => {
      timedOut = true;
      if (!compiled.isolate.isDisposed) compiled.isolate.dispose();
    }, remaining());
    try {
      return await body(remaining);
    } catch (error) {
      // A run that died at or after its deadline timed out, whatever isolated-vm's message says: under load the
      // isolate can be terminated by its own per-call timeout, or report the disposal, before our timer's flag is
      // set (seen as ERR_SANDBOX_ENGINE_FAILURE for a loop after an await on a loaded 2-core machine).
      throw this.#translate(error, compiled, timedOut || performance.now() >= deadline - 1);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Classifies a run that ended without an envelope from what the host observed: its clock (deadline), the
   * isolate's state (disposed by isolated-vm for its memory limit, by us, or alive). Never from the error's own
   * text or cause when the isolate is alive: such an error was copied out of the isolate, so the Cryptlet may have
   * written it (a forged "Script execution timed out." or an engine failure with a cause of its choosing); it is a
   * non-retryable failure carrying nothing from the sandbox.
   */
  #translate(error: unknown, compiled: Compiled, timedOut: boolean): CryptletError {
    if (isCryptletError(error)) return error;
    if (timedOut) {
      if (!compiled.isolate.isDisposed) compiled.isolate.dispose();
      return new SandboxTimeoutError(this.limits.timeoutMs);
    }
    if (compiled.isolate.isDisposed) {
      // Only isolated-vm disposes an isolate during a run (the deadline timer did not fire): for its memory limit.
      const message = typeof (error as Error | undefined)?.message === "string" ? (error as Error).message : "";
      if (/memory limit/i.test(message)) return new SandboxMemoryLimitError(this.limits.memoryMb);
      return new SandboxEngineFailureError(ENGINE, "the isolate was disposed during the run", { retryable: false });
    }
    return new SandboxEngineFailureError(ENGINE, "the sandbox ended the run without an answer", { retryable: false });
  }
}
