/**
 * The {@link SandboxEngine} port over the process pool: the same engines (isolated-vm, QuickJS), each run in a
 * separate OS process with OS-enforced memory and CPU limits and a watchdog (SandboxProcessPool.ts). This is what
 * the pipeline uses; the in-process engines remain for tests and tools that need no boundary.
 *
 * @example
 * ```ts
 * import { ProcessSandboxEngine } from "./runtime/sandbox/process/ProcessSandboxEngine.ts";
 *
 * const cryptlet = await new ProcessSandboxEngine("isolated-vm").load(
 *   "var cryptlet = { default: { run: (input) => input.n * 2 } };",
 * );
 * const { output } = await cryptlet.run({ n: 21 }, { event: {}, requestId: "0x01", resultId: "0x02", now: 0 });
 * console.log(output); // 42
 * ```
 * @module
 */
import { createHash } from "node:crypto";

import type { JsonValue } from "../../sdk/index.ts";
import { BundleInvalidError, SandboxEngineFailureError } from "../errors.ts";
import { resolveFetchCapability } from "../internal/hostFetch.ts";
import {
  checkRunContext,
  DEFAULT_ENGINE,
  resolveLimits,
  type LoadOptions,
  type RunContextData,
  type RunOptions,
  type RunResult,
  type SandboxedCryptlet,
  type SandboxEngine,
  type SandboxEngineName,
  type SandboxLimits,
} from "../SandboxEngine.ts";
import { sharedSandboxProcessPool, type SandboxProcessPool } from "./SandboxProcessPool.ts";

/** {@link SandboxEngine} whose runs happen in sandbox processes. */
export class ProcessSandboxEngine implements SandboxEngine {
  readonly name: SandboxEngineName;
  readonly #pool: SandboxProcessPool;

  /**
   * @param name - the engine each process runs the Cryptlet with.
   * @param pool - the process pool (default: the process-wide one).
   */
  constructor(name: SandboxEngineName = DEFAULT_ENGINE, pool: SandboxProcessPool = sharedSandboxProcessPool()) {
    this.name = name;
    this.#pool = pool;
  }

  /**
   * Checks the options here, then loads the bundle in a sandbox process (its top-level code runs there, under the
   * watchdog).
   * @throws as {@link SandboxEngine.load}.
   */
  async load(bundle: string, options: LoadOptions = {}): Promise<SandboxedCryptlet> {
    if (typeof bundle !== "string" || bundle.length === 0) throw new BundleInvalidError("the bundle is empty");
    const limits = resolveLimits(options.limits);
    resolveFetchCapability(options.capabilities?.fetch);
    const key = createHash("sha256")
      .update(JSON.stringify([this.name, options]))
      .update("\0")
      .update(bundle)
      .digest("hex");
    await this.#pool.exec({ type: "load", key, engine: this.name, options }, bundle, limits);
    return new ProcessCryptlet(this.name, this.#pool, key, bundle, options, limits);
  }
}

class ProcessCryptlet implements SandboxedCryptlet {
  readonly engine: SandboxEngineName;
  readonly limits: Readonly<SandboxLimits>;
  readonly #pool: SandboxProcessPool;
  readonly #key: string;
  readonly #bundle: string;
  readonly #options: LoadOptions;
  #disposed = false;

  constructor(
    engine: SandboxEngineName,
    pool: SandboxProcessPool,
    key: string,
    bundle: string,
    options: LoadOptions,
    limits: SandboxLimits,
  ) {
    this.engine = engine;
    this.#pool = pool;
    this.#key = key;
    this.#bundle = bundle;
    this.#options = options;
    this.limits = Object.freeze({ ...limits });
  }

  async run(input: JsonValue, context: RunContextData, options: RunOptions = {}): Promise<RunResult> {
    if (this.#disposed) {
      throw new SandboxEngineFailureError(this.engine, "the Cryptlet was disposed", { retryable: false });
    }
    checkRunContext(context);
    const result = await this.#pool.exec(
      {
        type: "run",
        key: this.#key,
        engine: this.engine,
        options: this.#options,
        input,
        context,
        ...(options.replay === undefined ? {} : { replay: options.replay }),
      },
      this.#bundle,
      this.limits,
    );
    return result!;
  }

  dispose(): void {
    this.#disposed = true;
  }
}
