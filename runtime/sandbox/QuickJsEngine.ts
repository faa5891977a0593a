/**
 * The second sandbox engine: QuickJS compiled to WebAssembly (quickjs-emscripten 0.32, release sync variant).
 * No native code runs the Cryptlet, and the interpreter is small enough for third parties to re-execute a
 * Cryptlet with the same semantics (the model of Chainlink CRE and CCF).
 *
 * Each run gets a **new QuickJS runtime and context** (a separate heap with its own memory limit), so nothing
 * survives from one run to the next; the WebAssembly module is shared by the engine and replaced if it ever
 * aborts. Limits: `runtime.setMemoryLimit(memoryMb MiB)`, a 256 KiB stack (`setMaxStackSize`), and an interrupt
 * handler that stops the interpreter once the run's deadline has passed.
 *
 * IMPORTANT: QuickJS runs on the host's thread. The interrupt handler is polled by the bytecode interpreter, not
 * inside a single long built-in call (a huge `sort` or `join`), which can overrun the deadline until it returns;
 * the memory limit bounds how long such a call can be. Use isolated-vm where that matters.
 *
 * IMPORTANT: the memory limit bounds each allocation, not their total, for large ones (typed arrays, long
 * strings): quickjs-emscripten 0.32 does not add them up (upstream justjake/quickjs-emscripten#271; 192 MiB of
 * 1 MiB typed arrays ran to the end at a 64 MiB limit). Run it in a sandbox process (runtime/sandbox/process/),
 * whose memory cgroup holds the bound.
 *
 * @example
 * ```ts
 * import { QuickJsEngine } from "./runtime/sandbox/QuickJsEngine.ts";
 *
 * const cryptlet = await new QuickJsEngine().load('var cryptlet = { default: { run: (input) => input.a + input.b } };');
 * const { output } = await cryptlet.run({ a: 1, b: 2 }, { event: {}, requestId: "0x01", resultId: "0x02", now: 0 });
 * console.log(output); // 3
 * cryptlet.dispose();
 * ```
 */
import {
  newQuickJSWASMModule,
  type QuickJSContext,
  type QuickJSDeferredPromise,
  type QuickJSHandle,
  type QuickJSRuntime,
  type QuickJSWASMModule,
} from "quickjs-emscripten";
import { isCryptletError, type CryptletError } from "../errors.ts";
import type { JsonValue } from "../sdk/index.ts";
import {
  BundleInvalidError,
  SandboxEngineFailureError,
  SandboxMemoryLimitError,
  SandboxStackOverflowError,
  SandboxTimeoutError,
} from "./errors.ts";
import { installedEngineVersion } from "./engineVersion.ts";
import { assertHostSafe } from "./hostCheck.ts";
import {
  describeHostValue,
  errorFromThrown,
  MAX_THROWN_JSON_CHARS,
  maxEnvelopeChars,
  readThrownMarker,
  settleEnvelope,
} from "./internal/envelope.ts";
import {
  MAX_REQUEST_JSON_CHARS,
  resolveFetchCapability,
  type FetchPolicy,
  type RunFetcher,
} from "./internal/hostFetch.ts";
import { createRunFetcher } from "./internal/replayFetch.ts";
import {
  bundleLoaderSource,
  PRELUDE_SOURCE,
  PROBE_SOURCE,
  STRICTNESS_PROBE_SUFFIX,
  THROWN_MARKER,
} from "./internal/prelude.ts";
import { prepareRun, SerialQueue, type PreparedRun } from "./internal/prepareRun.ts";
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

const ENGINE = "quickjs";
/** The QuickJS stack limit, in bytes (256 KiB, see docs/sandbox.md). */
export const QUICKJS_MAX_STACK_BYTES = 256 * 1024;
const PROBE: PreparedRun = {
  setupJson: JSON.stringify({ seed: [0, 0, 0, 0], maxOutputBytes: 2 }),
  inputJson: "null",
  ctxJson: '{"event":{},"requestId":"0x00","resultId":"0x00","now":0}',
};

/** {@link SandboxEngine} on QuickJS/WebAssembly. */
export class QuickJsEngine implements SandboxEngine {
  readonly name = ENGINE;
  #module: Promise<QuickJSWASMModule> | undefined;

  /** The shared WebAssembly module (instantiated on first use, about 2 ms). */
  module(): Promise<QuickJSWASMModule> {
    this.#module ??= newQuickJSWASMModule().catch((cause: unknown) => {
      this.#module = undefined;
      throw new SandboxEngineFailureError(ENGINE, "could not instantiate the WebAssembly module", { cause });
    });
    return this.#module;
  }

  /** Drops the module after a WebAssembly abort; the next run instantiates a fresh one. */
  discardModule(): void {
    this.#module = undefined;
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
    const cryptlet = new QuickJsCryptlet(this, bundle, limits, fetchPolicy);
    await cryptlet.probe();
    return cryptlet;
  }
}

class QuickJsCryptlet implements SandboxedCryptlet {
  readonly engine = ENGINE;
  readonly limits: Readonly<SandboxLimits>;
  readonly #owner: QuickJsEngine;
  readonly #source: string;
  readonly #fetchPolicy: FetchPolicy | undefined;
  readonly #queue = new SerialQueue();
  /** The bundle inside its loader (`bundleLoaderSource`), set by the probe at load. */
  #loaderSource: string | undefined;
  #disposed = false;

  constructor(owner: QuickJsEngine, source: string, limits: SandboxLimits, fetchPolicy: FetchPolicy | undefined) {
    this.#owner = owner;
    this.#source = source;
    this.limits = Object.freeze({ ...limits });
    this.#fetchPolicy = fetchPolicy;
  }

  /** Evaluates the bundle once (without calling `run`) and checks `cryptlet.default.run` exists. */
  async probe(): Promise<void> {
    await this.#queue.run(() => this.#execute(PROBE, undefined, true));
  }

  async run(input: JsonValue, context: RunContextData, options: RunOptions = {}): Promise<RunResult> {
    const prepared = prepareRun(input, context, this.limits, this.#fetchPolicy?.maxRequests);
    return this.#queue.run(async () => {
      if (this.#disposed)
        throw new SandboxEngineFailureError(ENGINE, "the Cryptlet was disposed", { retryable: false });
      const abort = new AbortController();
      const fetcher = createRunFetcher(this.#fetchPolicy, abort.signal, options.replay);
      const start = performance.now();
      try {
        const envelope = await this.#execute(prepared, fetcher, false);
        if (fetcher?.failure !== undefined) throw fetcher.failure;
        const settled = settleEnvelope(envelope, this.limits, ENGINE);
        return { ...settled, hostCalls: fetcher?.records ?? [], durationMs: performance.now() - start };
      } catch (error) {
        if (fetcher?.failure !== undefined && !isCryptletError(error, "ERR_SANDBOX_TIMEOUT")) throw fetcher.failure;
        throw error;
      } finally {
        abort.abort();
      }
    });
  }

  dispose(): void {
    this.#disposed = true;
  }

  /**
   * One run in a fresh runtime: prelude, bundle, then (unless probing) `run`, pumping QuickJS's job queue and
   * waiting for host fetches until the returned promise settles or the deadline passes.
   * @returns the envelope text (or `undefined` when probing).
   */
  async #execute(
    prepared: PreparedRun,
    fetcher: RunFetcher | undefined,
    probing: boolean,
  ): Promise<string | undefined> {
    const module = await this.#owner.module();
    const deadline = performance.now() + this.limits.timeoutMs;
    let interrupted = false;
    let runtime: QuickJSRuntime | undefined;
    let vm: QuickJSContext | undefined;
    const deferreds: QuickJSDeferredPromise[] = [];
    const inFlight = new Set<Promise<void>>();
    const handles: QuickJSHandle[] = [];
    const keep = (handle: QuickJSHandle): QuickJSHandle => {
      handles.push(handle);
      return handle;
    };
    try {
      runtime = module.newRuntime();
      runtime.setMemoryLimit(this.limits.memoryMb * 1024 * 1024);
      runtime.setMaxStackSize(QUICKJS_MAX_STACK_BYTES);
      runtime.setInterruptHandler(() => {
        if (performance.now() > deadline) interrupted = true;
        return interrupted;
      });
      const context = runtime.newContext();
      vm = context;

      if (fetcher !== undefined) {
        const bridge = context.newFunction("__cryptletHostFetch", (requestHandle) => {
          const deferred = context.newPromise();
          deferreds.push(deferred);
          // Copied out only when bounded (the prelude builds it within the bounds); otherwise refused, and recorded.
          const operation = fetcher
            .fetch(readBoundedString(context, requestHandle, MAX_REQUEST_JSON_CHARS) ?? "")
            .then(
              (json) => {
                if (!context.alive) return;
                const value = context.newString(json);
                deferred.resolve(value);
                value.dispose();
              },
              (error: unknown) => {
                if (!context.alive) return;
                const value = context.newError({ name: "TypeError", message: (error as Error).message });
                deferred.reject(value);
                value.dispose();
              },
            )
            .finally(() => inFlight.delete(operation));
          inFlight.add(operation);
          return deferred.handle;
        });
        context.setProp(context.global, "__cryptletHostFetch", bridge);
        bridge.dispose();
      }

      const stage = (
        result: ReturnType<QuickJSContext["evalCode"]>,
        phase: "prelude" | "load" | "run",
      ): QuickJSHandle => {
        if (result.error !== undefined) {
          const error = this.#fromThrown(context, result.error, phase, interrupted);
          result.error.dispose();
          throw error;
        }
        return keep(result.value);
      };

      if (probing) {
        const compiled = context.evalCode(this.#source, "cryptlet.js", { compileOnly: true });
        if (compiled.error !== undefined) {
          const thrown = describeHostValue(context.dump(compiled.error));
          compiled.error.dispose();
          throw new BundleInvalidError("the bundle does not compile", { message: thrown.message.slice(0, 300) });
        }
        compiled.value.dispose();
        if (this.#loaderSource === undefined) {
          const strictness = context.evalCode(this.#source + STRICTNESS_PROBE_SUFFIX, "cryptlet.js", {
            compileOnly: true,
          });
          (strictness.error ?? strictness.value).dispose();
          this.#loaderSource = bundleLoaderSource(this.#source, strictness.error !== undefined);
        }
      }
      const loaderSource = this.#loaderSource;
      if (loaderSource === undefined)
        throw new SandboxEngineFailureError(ENGINE, "run before load", { retryable: false });
      const preludeFunction = stage(context.evalCode(PRELUDE_SOURCE, "cryptlet-prelude.js"), "prelude");
      const setup = keep(context.newString(prepared.setupJson));
      const runFunction = stage(context.callFunction(preludeFunction, context.undefined, setup), "prelude");
      stage(context.evalCode(loaderSource, "cryptlet.js"), "load");
      if (probing) {
        const check = stage(context.evalCode(PROBE_SOURCE, "probe.js"), "load");
        if (context.typeof(check) !== "boolean" || context.dump(check) !== true) {
          throw new BundleInvalidError("cryptlet.default.run is not a function");
        }
        return undefined;
      }
      const input = keep(context.newString(prepared.inputJson));
      const ctx = keep(context.newString(prepared.ctxJson));
      const promise = stage(context.callFunction(runFunction, context.undefined, input, ctx), "run");

      for (;;) {
        const jobs = runtime.executePendingJobs();
        if (jobs.error !== undefined) {
          const error = this.#fromThrown(context, jobs.error, "run", interrupted);
          jobs.error.dispose();
          throw error;
        }
        if (interrupted) throw new SandboxTimeoutError(this.limits.timeoutMs);
        const state = context.getPromiseState(promise);
        if (state.type === "fulfilled") {
          const text = readBoundedString(context, state.value, maxEnvelopeChars(this.limits));
          state.value.dispose();
          if (text === undefined) {
            throw new SandboxEngineFailureError(ENGINE, "the answer is not a bounded envelope", { retryable: false });
          }
          return text;
        }
        if (state.type === "rejected") {
          // The prelude never rejects; only an uncatchable engine error (interrupt, out of memory) gets here.
          const error = this.#fromThrown(context, state.error, "run", interrupted);
          state.error.dispose();
          throw error;
        }
        if (runtime.hasPendingJob()) continue;
        const left = deadline - performance.now();
        if (inFlight.size === 0 || left <= 0) {
          throw new SandboxTimeoutError(this.limits.timeoutMs, {
            reason: inFlight.size === 0 ? "the run awaits a promise that can never settle" : "host call in flight",
          });
        }
        let timer: NodeJS.Timeout | undefined;
        const expired = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, left);
        });
        await Promise.race([Promise.race([...inFlight]), expired]);
        clearTimeout(timer);
      }
    } catch (error) {
      if (isCryptletError(error)) throw error;
      // Past this point Cryptlet code may have caused the failure: nothing is retryable, nothing of it is kept.
      // (By name, not instanceof: the error may come from another realm, such as Jest's.)
      const { name, message } = error as { name?: unknown; message?: unknown };
      if (name === "RangeError" && typeof message === "string" && /^Maximum call stack size exceeded/.test(message)) {
        // QuickJS recursed inside WebAssembly (a deep JSON.parse, eval or flat) past the host's own stack before
        // its 256 KiB limit noticed: the host saw it. The unwound module is left as it is, and replaced.
        this.#owner.discardModule();
        runtime = undefined;
        vm = undefined;
        throw new SandboxStackOverflowError({ observedBy: "host" });
      }
      if (name === "RuntimeError") {
        this.#owner.discardModule();
        runtime = undefined;
        vm = undefined;
        throw new SandboxEngineFailureError(ENGINE, "the WebAssembly module aborted during the run", {
          retryable: false,
        });
      }
      throw new SandboxEngineFailureError(ENGINE, "unexpected failure in the sandbox host", { retryable: false });
    } finally {
      this.#release(handles, deferreds, vm, runtime);
    }
  }

  /**
   * Classifies what a QuickJS evaluation threw. Once Cryptlet code may have run, the only value ever read is a
   * string of bounded length: the prelude's description of the Cryptlet's throw (`THROWN_MARKER`). Anything else
   * (an uncatchable interrupt, an allocation failure inside the prelude) is classified from what the host observed
   * and never dumped: dumping an object runs its getters and Proxy traps, unbounded and without a deadline, and
   * dumping a thrown promise freed its handle twice (a retryable "engine failure" any Cryptlet could cause).
   */
  #fromThrown(
    context: QuickJSContext,
    handle: QuickJSHandle,
    phase: "prelude" | "load" | "run",
    interrupted: boolean,
  ): CryptletError {
    if (interrupted) return new SandboxTimeoutError(this.limits.timeoutMs);
    if (phase === "prelude") {
      // No Cryptlet code has run yet: the engine's own error (a memory limit too small for the prelude).
      const described = describeHostValue(context.dump(handle));
      const error = errorFromThrown({ thrown: described, engine: true }, "load", this.limits);
      if (error instanceof SandboxMemoryLimitError || error instanceof SandboxStackOverflowError) return error;
      return new SandboxEngineFailureError(ENGINE, `the prelude failed: ${described.message.slice(0, 300)}`, {
        retryable: false,
      });
    }
    const text = readBoundedString(context, handle, THROWN_MARKER.length + MAX_THROWN_JSON_CHARS);
    const thrown = readThrownMarker(text, ENGINE);
    if (thrown !== undefined) return errorFromThrown(thrown, phase, this.limits);
    return new SandboxEngineFailureError(ENGINE, "the sandbox stopped without describing why", { retryable: false });
  }

  /** Frees handles, then deferreds, then the context, then the runtime (the order QuickJS requires). */
  #release(
    handles: QuickJSHandle[],
    deferreds: QuickJSDeferredPromise[],
    vm: QuickJSContext | undefined,
    runtime: QuickJSRuntime | undefined,
  ): void {
    try {
      for (const handle of handles) if (handle.alive) handle.dispose();
      for (const deferred of deferreds) if (deferred.alive) deferred.dispose();
      if (vm?.alive === true) vm.dispose();
      if (runtime?.alive === true) runtime.dispose();
    } catch {
      // A failed free (quickjs-emscripten 0.32 dispose bugs, or a heap left inconsistent by an aborted
      // allocation) leaves the WebAssembly memory suspect: start the next run on a fresh module.
      this.#owner.discardModule();
    }
  }
}

/**
 * A string handle's text when it is at most `max` characters long (its length read first, so nothing larger is
 * copied out of WebAssembly memory); `undefined` for a longer string or anything else.
 */
function readBoundedString(context: QuickJSContext, handle: QuickJSHandle, max: number): string | undefined {
  if (context.typeof(handle) !== "string") return undefined;
  const lengthHandle = context.getProp(handle, "length");
  const length = context.getNumber(lengthHandle);
  lengthHandle.dispose();
  return length <= max ? context.getString(handle) : undefined;
}
