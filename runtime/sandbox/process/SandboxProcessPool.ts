/**
 * A pool of sandbox processes: the hard boundary between Cryptlets and the host. Each child process
 * (process/child.ts) runs one Cryptlet at a time in an in-process engine; the parent (this module) never runs
 * Cryptlet code and stays responsive whatever a child does:
 *
 * - **watchdog**: a run that has not answered by its deadline (`limits.timeoutMs`) plus {@link DEFAULT_GRACE_MS}
 *   is stopped by SIGKILL of its process, which is replaced; the run fails with a non-retryable
 *   `ERR_SANDBOX_TIMEOUT`. A run that answers but took longer than its limit is a timeout too (the host decides
 *   from what it measured, not from what the engine reported);
 * - **memory**: each child is in its own control group (osLimits.ts) whose limit is set before every run to the
 *   child's own footprint plus the run's `limits.memoryMb` plus {@link MEMORY_SLACK_MB}; the kernel OOM-kills the
 *   child at the limit and the run fails with `ERR_SANDBOX_MEMORY_LIMIT`. Without a writable cgroup the parent
 *   samples the child's resident memory every {@link RSS_SAMPLE_MS} ms and kills it above the same limit;
 * - **CPU**: one core per child (cgroup CPU quota), at most 64 threads;
 * - **hygiene**: a child whose resident memory grew more than {@link RECYCLE_GROWTH_MB} over its start is replaced
 *   after its run; the host's V8 flags and `NODE_OPTIONS` are not passed on.
 *
 * @module
 */
import { fork, type ChildProcess } from "node:child_process";
import os from "node:os";
import path from "node:path";

import { CryptletError, type CryptletErrorJSON } from "../../errors.ts";
import { SandboxEngineFailureError, SandboxMemoryLimitError, SandboxTimeoutError } from "../errors.ts";
import type { RunResult, SandboxLimits } from "../SandboxEngine.ts";
import { SandboxProcessCrashedError } from "./errors.ts";
import { detectOsLimits, ProcessCgroup, removeStaleCgroups, residentBytes, type OsLimitKind } from "./osLimits.ts";
import type { ChildRequest, FromChild, ToChild } from "./protocol.ts";

/** Time a run may take past its `timeoutMs` before its process is killed, in milliseconds. */
export const DEFAULT_GRACE_MS = 500;
/**
 * Memory a run's process may use past the run's `memoryMb` before it is killed, in MiB: the engine's own overhead
 * and the child's Node heap (the run's input, evidence and fetched bodies, garbage not yet collected), measured as
 * its control group counts it from its start. 64 MiB was too little once it was measured that way: a legitimate
 * price-median re-run at `memoryMb` 32 went past it on a loaded CI machine. 128 MiB is about what the limit allowed
 * before, when its base was the resident set (about 60 MiB of shared code above the group's charge).
 */
export const MEMORY_SLACK_MB = 128;
/** How often resident memory is sampled when no cgroup limits the child, in milliseconds. */
export const RSS_SAMPLE_MS = 20;
/** Growth of a child's resident memory (MiB) after which it is replaced between runs. */
export const RECYCLE_GROWTH_MB = 256;
/** How long a new child may take to say it is ready, in milliseconds. */
const SPAWN_TIMEOUT_MS = 30_000;

const CHILD_ENTRY = path.join(import.meta.dirname, "child.ts");

/** What a child answered to a `load` or `run`. */
type Answer = Extract<FromChild, { type: "loaded" } | { type: "result" }>;

interface Child {
  index: number;
  process: ChildProcess;
  cgroup: ProcessCgroup;
  ready: Promise<void>;
  /** Its memory in use ({@link memoryInUse}) when it became ready, in bytes. */
  baseBytes: number;
  keys: Set<string>;
  busy: boolean;
  /** Why the parent killed it, when it did. */
  killedFor?: "timeout" | "memory" | "recycle" | "close";
  onAnswer?: (message: FromChild) => void;
  onExit?: (code: number | null, signal: NodeJS.Signals | null, oomKills: number) => void;
  stderr: string;
}

/** Options of {@link SandboxProcessPool}. */
export interface SandboxProcessPoolOptions {
  /** Number of sandbox processes (default: the machine's available parallelism). */
  size?: number;
  /** Watchdog grace past `timeoutMs`, in milliseconds (default {@link DEFAULT_GRACE_MS}). */
  graceMs?: number;
}

/** Figures for monitoring and the benchmark. */
export interface SandboxProcessPoolStats {
  osLimits: OsLimitKind;
  processes: number;
  spawned: number;
  killedForTimeout: number;
  killedForMemory: number;
  recycled: number;
}

/** Pools made in this process so far (a new pool's number). */
let poolCount = 0;

/** The pool. One is shared by default ({@link sharedSandboxProcessPool}). */
export class SandboxProcessPool {
  readonly size: number;
  readonly graceMs: number;
  readonly osLimits: OsLimitKind;
  readonly #children: (Child | undefined)[];
  readonly #waiting: ((child: Child) => void)[] = [];
  #nextId = 1;
  /** This pool's number in the process: group names are unique per pool, so two pools never share a group. */
  readonly #poolId = (poolCount += 1);
  #closed = false;
  readonly #stats = { spawned: 0, killedForTimeout: 0, killedForMemory: 0, recycled: 0 };

  constructor(options: SandboxProcessPoolOptions = {}) {
    this.size = Math.max(1, options.size ?? os.availableParallelism());
    this.graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
    this.osLimits = detectOsLimits().kind;
    removeStaleCgroups();
    this.#children = Array.from({ length: this.size }, () => undefined);
  }

  /** Counters since the pool was made. */
  stats(): SandboxProcessPoolStats {
    return { osLimits: this.osLimits, processes: this.#children.filter(Boolean).length, ...this.#stats };
  }

  /** Starts every process now (they start on first use otherwise). */
  async warm(): Promise<void> {
    await Promise.all(this.#children.map((_, i) => (this.#children[i] ??= this.#spawn(i)).ready));
  }

  /**
   * Runs one request in a child under the watchdog and the memory limit.
   * @param request - a `load` or `run` message without its id; `bundle` is sent only to a child that lacks `key`.
   * @param limits - the Cryptlet's limits (deadline and memory).
   * @returns the run result (`run`) or nothing (`load`).
   * @throws the run's typed error (as sent by the child), `ERR_SANDBOX_TIMEOUT` or `ERR_SANDBOX_MEMORY_LIMIT`
   *   when the parent stopped the process, `ERR_SANDBOX_PROCESS_CRASHED` when the process died otherwise (not
   *   retryable: the run is presumed to have caused it), `ERR_SANDBOX_ENGINE_FAILURE` when no process could
   *   start or the pool closed (retryable).
   */
  async exec(request: ChildRequest, bundle: string, limits: SandboxLimits): Promise<RunResult | undefined> {
    if (this.#closed)
      throw new SandboxEngineFailureError("sandbox-process", "the pool is closed", { retryable: false });
    let child = await this.#acquire(request.key);
    const limitBytes = (c: Child) => c.baseBytes + (limits.memoryMb + MEMORY_SLACK_MB) * 1024 * 1024;
    try {
      await child.ready;
      if (!child.cgroup.setMemoryLimit(limitBytes(child))) {
        // It already uses more than this run may: run in a fresh process instead.
        child = this.#replace(child);
        await child.ready;
        child.cgroup.setMemoryLimit(limitBytes(child));
      }
    } catch (error) {
      this.#release(child);
      throw error;
    }
    const id = this.#nextId++;
    const started = performance.now();
    // A run in a process that has not loaded the package yet loads it first, under its own deadline.
    const loadsFirst = request.type === "run" && !child.keys.has(request.key);
    const budgetMs = limits.timeoutMs * (loadsFirst ? 2 : 1) + this.graceMs;
    const answer = await this.#send(
      child,
      { ...request, id, ...(child.keys.has(request.key) ? {} : { bundle }) } as ToChild,
      limits,
      limitBytes(child),
      bundle,
      budgetMs,
    );
    const elapsed = performance.now() - started;
    if (!answer.ok) throw CryptletError.fromJSON(answer.error as CryptletErrorJSON);
    child.keys.add(request.key);
    if (answer.type === "loaded") return undefined;
    // The host measures: a run that answered after its limit timed out, whatever the engine reported.
    if (answer.result.durationMs > limits.timeoutMs || elapsed > budgetMs) {
      throw new SandboxTimeoutError(limits.timeoutMs, {
        observedMs: Math.round(Math.max(answer.result.durationMs, elapsed)),
      });
    }
    return answer.result;
  }

  /** Stops every process. Runs in flight fail with `ERR_SANDBOX_ENGINE_FAILURE`. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(
      this.#children.map(async (child) => {
        if (!child) return;
        child.killedFor = "close";
        if (child.process.exitCode !== null || child.process.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.process.once("exit", () => resolve()));
        child.process.ref(); // an unreferenced process would let the host exit before its exit is seen
        child.process.kill("SIGKILL");
        await exited;
      }),
    );
  }

  #spawn(index: number): Child {
    const name = `cryptlet-sandbox-${process.pid}-${this.#poolId}-${index}-${this.#stats.spawned}`;
    this.#stats.spawned += 1;
    const cgroup = new ProcessCgroup(name);
    const proc = fork(CHILD_ENTRY, [], {
      execArgv: [],
      // Nothing of the host's environment (credentials, URLs) reaches the process that runs foreign code.
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
      serialization: "json",
      stdio: ["ignore", "ignore", "pipe", "ipc"],
    });
    const child: Child = {
      index,
      process: proc,
      cgroup,
      ready: Promise.resolve(),
      baseBytes: 0,
      keys: new Set(),
      busy: false,
      stderr: "",
    };
    proc.stderr?.on("data", (chunk: Buffer) => {
      child.stderr = (child.stderr + chunk.toString("utf8")).slice(-4096);
    });
    child.ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill("SIGKILL");
        reject(
          new SandboxEngineFailureError("sandbox-process", `no sandbox process started within ${SPAWN_TIMEOUT_MS} ms`),
        );
      }, SPAWN_TIMEOUT_MS);
      child.onAnswer = (message) => {
        if (message.type !== "ready") return;
        clearTimeout(timer);
        child.baseBytes = memoryInUse(child);
        resolve();
      };
      child.onExit = (code, signal) => {
        clearTimeout(timer);
        reject(
          new SandboxEngineFailureError(
            "sandbox-process",
            `the sandbox process exited while starting (${signal ?? `code ${code}`}): ${child.stderr.slice(-300)}`,
          ),
        );
      };
    });
    child.ready.catch(() => undefined);
    try {
      if (proc.pid !== undefined) cgroup.add(proc.pid);
    } catch {
      // the process is already gone: its exit is reported below
    }
    proc.on("message", (message: FromChild) => child.onAnswer?.(message));
    proc.once("exit", (code, signal) => {
      const oomKills = cgroup.oomKills(); // read before the group is removed
      cgroup.remove();
      if (this.#children[index] === child) this.#children[index] = undefined;
      child.onExit?.(code, signal, oomKills);
    });
    setReferenced(child, false);
    return child;
  }

  async #acquire(key: string): Promise<Child> {
    // An idle child that has the package loaded, else any idle one, else a new one, else wait.
    const live = this.#children.filter((c): c is Child => c !== undefined && !c.busy && c.killedFor === undefined);
    let child = live.find((c) => c.keys.has(key)) ?? live[0];
    if (!child) {
      const free = this.#children.findIndex((c) => c === undefined);
      if (free >= 0) child = this.#children[free] = this.#spawn(free);
    }
    if (!child) child = await new Promise<Child>((resolve) => this.#waiting.push(resolve));
    child.busy = true;
    return child;
  }

  #release(child: Child): void {
    child.busy = false;
    setReferenced(child, false);
    child.onAnswer = undefined;
    child.onExit = undefined;
    let next: Child | undefined = child;
    if (child.killedFor !== undefined || this.#children[child.index] !== child) {
      next = this.#closed ? undefined : (this.#children[child.index] ??= this.#spawn(child.index));
    } else if (memoryInUse(child) > child.baseBytes + RECYCLE_GROWTH_MB * 1024 * 1024) {
      next = this.#closed ? undefined : this.#replace(child);
      if (next) next.busy = false;
    }
    const waiter = next ? this.#waiting.shift() : undefined;
    if (waiter && next) {
      next.busy = true;
      waiter(next);
    }
  }

  /** Kills `child` and puts a new process in its place, handed out busy. */
  #replace(child: Child): Child {
    this.#stats.recycled += 1;
    child.killedFor = "recycle";
    child.onAnswer = undefined;
    child.onExit = undefined;
    child.process.kill("SIGKILL");
    const fresh = this.#spawn(child.index);
    this.#children[child.index] = fresh;
    fresh.busy = true;
    return fresh;
  }

  #send(
    child: Child,
    message: ToChild,
    limits: SandboxLimits,
    limitBytes: number,
    bundle: string,
    budgetMs: number,
  ): Promise<Answer> {
    const oomBefore = child.cgroup.oomKills();
    // While a run is in flight its process keeps the host alive, so that its exit (a kill) is always seen.
    setReferenced(child, true);
    return new Promise<Answer>((resolve, reject) => {
      let sampler: NodeJS.Timeout | undefined;
      const finish = (outcome: { answer?: Answer; error?: CryptletError }) => {
        clearTimeout(watchdog);
        if (sampler) clearInterval(sampler);
        this.#release(child);
        if (outcome.error) reject(outcome.error);
        else resolve(outcome.answer!);
      };
      const kill = (reason: "timeout" | "memory") => {
        child.killedFor = reason;
        if (reason === "timeout") this.#stats.killedForTimeout += 1;
        else this.#stats.killedForMemory += 1;
        child.process.kill("SIGKILL");
      };
      let watchdog = setTimeout(() => kill("timeout"), budgetMs);
      if (child.cgroup.kind === "none") {
        sampler = setInterval(() => {
          if (residentBytes(child.process.pid!) > limitBytes) kill("memory");
        }, RSS_SAMPLE_MS);
      }
      child.onAnswer = (answer) => {
        if (answer.type === "need-bundle") {
          // It loads first now: give the load its own deadline too.
          clearTimeout(watchdog);
          watchdog = setTimeout(() => kill("timeout"), budgetMs + limits.timeoutMs);
          child.keys.delete(message.key);
          child.process.send({ ...message, bundle });
          return;
        }
        if ((answer.type === "result" || answer.type === "loaded") && answer.id === message.id) finish({ answer });
      };
      child.onExit = (code, signal, oomKills) => {
        const oom = oomKills > oomBefore || child.killedFor === "memory";
        if (oom && child.killedFor !== "memory") this.#stats.killedForMemory += 1;
        const error =
          child.killedFor === "timeout"
            ? new SandboxTimeoutError(limits.timeoutMs, { stoppedBy: "watchdog" })
            : oom
              ? new SandboxMemoryLimitError(limits.memoryMb, {
                  stoppedBy: this.osLimits === "none" ? "rss-watchdog" : this.osLimits,
                })
              : child.killedFor === "close" || child.killedFor === "recycle"
                ? new SandboxEngineFailureError("sandbox-process", "the sandbox pool was closed during the run")
                : new SandboxProcessCrashedError(signal ?? `exit code ${code}`);
        finish({ error });
      };
      try {
        child.process.send(message);
      } catch (cause) {
        finish({
          error: new SandboxEngineFailureError("sandbox-process", "could not reach the sandbox process", { cause }),
        });
      }
    });
  }
}

/**
 * The memory a child uses, in bytes, as its limit counts it: its control group's own charge when one limits it
 * (cgroup v1 `memory.usage_in_bytes`, v2 `memory.current`), else its resident set (`/proc/<pid>/statm`).
 *
 * The base of a child's limit must be measured the way the limit is enforced. A new child's resident set counts
 * pages it shares with the host (Node's own code, already in the page cache and charged to the host's group), which
 * its group is not charged for: a base taken from the resident set (about 107 MiB against a charge of about 47 MiB
 * here) made the limit some 60 MiB looser than its stated `memoryMb` + slack, and where it fell depended on pages
 * the child happened to share.
 */
function memoryInUse(child: Child): number {
  return child.cgroup.kind === "none" ? residentBytes(child.process.pid!) : child.cgroup.memoryUsage();
}

/** An idle child must not keep the host process alive; a busy one must. */
function setReferenced(child: Child, referenced: boolean): void {
  const handles = [child.process.channel, child.process.stderr] as ({ ref?: () => void; unref?: () => void } | null)[];
  if (referenced) {
    child.process.ref();
    for (const handle of handles) handle?.ref?.();
  } else {
    child.process.unref();
    for (const handle of handles) handle?.unref?.();
  }
}

let shared: SandboxProcessPool | undefined;

/** The process-wide pool (made on first use). */
export function sharedSandboxProcessPool(): SandboxProcessPool {
  shared ??= new SandboxProcessPool();
  return shared;
}
