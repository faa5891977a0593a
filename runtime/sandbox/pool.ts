/**
 * A pool of loaded Cryptlets per measurement (`codeHash`): the pipeline's way to run many events concurrently.
 * A `SandboxedCryptlet` runs one event at a time; the pool keeps up to `size` loaded copies of each package and
 * hands each run to the least busy copy. Copies are loaded lazily and kept until {@link SandboxPool.dispose}.
 *
 * By default every run happens in a sandbox process of the pool's own {@link SandboxProcessPool} (`size`
 * processes): the OS limits each process and a watchdog kills it at the deadline (docs/sandbox.md). Isolation
 * `"in-process"` runs the engines in this process instead (tests and tools only: a hostile Cryptlet can then
 * hang or exhaust the host).
 *
 * @module
 */
import type { JsonValue } from "../sdk/index.ts";
import { createSandboxEngine } from "./index.ts";
import { ProcessSandboxEngine } from "./process/ProcessSandboxEngine.ts";
import { SandboxProcessPool } from "./process/SandboxProcessPool.ts";
import type {
  LoadOptions,
  RunContextData,
  RunOptions,
  RunResult,
  SandboxedCryptlet,
  SandboxEngineName,
} from "./SandboxEngine.ts";

/** A package as the pool needs it. */
export interface PoolPackage {
  codeHash: string;
  bundle: string;
  engine: SandboxEngineName;
  options: LoadOptions;
}

interface Slot {
  cryptlet: Promise<SandboxedCryptlet>;
  busy: number;
  queue: Promise<unknown>;
}

/** Loaded Cryptlets by `codeHash`, at most `size` copies each. */
export class SandboxPool {
  readonly #size: number;
  readonly #slots = new Map<string, Slot[]>();
  readonly #processes: SandboxProcessPool | undefined;

  /**
   * @param size - loaded copies per package, and sandbox processes (default 2: one per core of a small machine).
   * @param options.isolation - `"process"` (default) or `"in-process"`.
   */
  constructor(size = 2, options: { isolation?: "process" | "in-process" } = {}) {
    this.#size = size;
    this.#processes = options.isolation === "in-process" ? undefined : new SandboxProcessPool({ size });
  }

  /** The sandbox processes' figures (undefined in-process). */
  processStats() {
    return this.#processes?.stats();
  }

  /**
   * Runs `pkg` on `input` (`options.replay`: answer its fetches from recorded ones, for re-execution).
   * @throws the sandbox's typed errors (`ERR_SANDBOX_*`, `ERR_CRYPTLET_THREW`, ...).
   */
  async run(pkg: PoolPackage, input: JsonValue, context: RunContextData, options: RunOptions = {}): Promise<RunResult> {
    const slot = this.#pick(pkg);
    slot.busy += 1;
    const run = slot.queue.then(async () => (await slot.cryptlet).run(input, context, options));
    slot.queue = run.catch(() => undefined);
    try {
      return await run;
    } finally {
      slot.busy -= 1;
    }
  }

  #pick(pkg: PoolPackage): Slot {
    let slots = this.#slots.get(pkg.codeHash);
    if (!slots) {
      slots = [];
      this.#slots.set(pkg.codeHash, slots);
    }
    const idle = slots.reduce<Slot | undefined>((best, s) => (!best || s.busy < best.busy ? s : best), undefined);
    if (idle && (idle.busy === 0 || slots.length >= this.#size)) return idle;
    const engine = this.#processes
      ? new ProcessSandboxEngine(pkg.engine, this.#processes)
      : createSandboxEngine(pkg.engine);
    const cryptlet = engine.load(pkg.bundle, pkg.options);
    cryptlet.catch(() => {
      // a bundle that does not load is not kept
      this.#slots.set(
        pkg.codeHash,
        (this.#slots.get(pkg.codeHash) ?? []).filter((s) => s !== slot),
      );
    });
    const slot: Slot = { cryptlet, busy: 0, queue: Promise.resolve() };
    slots.push(slot);
    return slot;
  }

  /** Disposes every loaded Cryptlet. */
  async dispose(): Promise<void> {
    const all = [...this.#slots.values()].flat();
    this.#slots.clear();
    await Promise.all(all.map(async (s) => (await s.cryptlet.catch(() => undefined))?.dispose()));
    await this.#processes?.close();
  }
}
