/**
 * The processes a chaos run starts, kills and restarts: its own `redis-server` (append-only file on, in a
 * directory of the run) and the pipeline's worker processes (`runtime/queue/worker.ts`).
 *
 * @module
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import path from "node:path";

import { CryptletError } from "../../errors.ts";
import { ERR_CHAOS_PROCESS_START } from "../errors.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..", "..");

/** Persistence of the chaos run's Redis. */
export type RedisPersistence = "aof" | "none";

/** A `redis-server` the chaos run owns. */
export interface ChaosRedis {
  url: string;
  port: number;
  /** The current server's process id. */
  readonly pid: number;
  /** Times it was restarted. */
  restarts: number;
  /**
   * Stops the server with `signal` (SIGTERM: a clean shutdown that flushes the AOF; SIGKILL: no chance to) and
   * starts it again on the same port and directory after `downMs` ms; resolves when it answers again.
   */
  restart(signal: "SIGTERM" | "SIGKILL", downMs?: number): Promise<void>;
  /** Stops it (SIGTERM) and waits for the exit. */
  stop(): Promise<void>;
}

async function waitForLine(child: ChildProcess, pattern: string, timeoutMs: number, what: string): Promise<void> {
  let output = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail("did not start in time"), timeoutMs);
    function fail(why: string) {
      clearTimeout(timer);
      reject(
        new CryptletError(ERR_CHAOS_PROCESS_START, `${what} ${why}`, { details: { output: output.slice(-2000) } }),
      );
    }
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes(pattern)) {
        clearTimeout(timer);
        child.stdout!.off("data", onData);
        child.off("exit", onExit);
        resolve();
      }
    };
    const onExit = (code: number | null) => fail(`exited with code ${code}`);
    child.stdout!.on("data", onData);
    child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.once("exit", onExit);
  });
}

async function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise((resolve) => child.once("exit", resolve));
}

/**
 * Starts `redis-server` on 127.0.0.1:`port` with its files in `dir`: `appendonly yes`, `appendfsync everysec`
 * and no RDB snapshots for `aof` (the settings docs/operations.md requires), or no persistence at all for `none`
 * (to show what a Redis without persistence loses).
 * @throws CryptletError `ERR_CHAOS_PROCESS_START` when it does not start (e.g. the port is taken).
 */
export async function startChaosRedis(
  port: number,
  dir: string,
  persistence: RedisPersistence = "aof",
): Promise<ChaosRedis> {
  const args = [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--dir",
    dir,
    "--save",
    "",
    "--appendonly",
    persistence === "aof" ? "yes" : "no",
    "--appendfsync",
    "everysec",
    "--logfile",
    "",
  ];
  let child: ChildProcess;
  const start = async () => {
    child = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
    child.on("error", () => undefined);
    await waitForLine(child, "Ready to accept connections", 60_000, `redis-server on port ${port}`);
    child.stdout!.resume();
    child.stderr!.resume();
  };
  await start();
  const redis: ChaosRedis = {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() {
      return child.pid!;
    },
    restarts: 0,
    async restart(signal, downMs = 1_000) {
      child.kill(signal);
      await exited(child);
      await new Promise((resolve) => setTimeout(resolve, downMs));
      await start();
      redis.restarts += 1;
    },
    async stop() {
      child.kill("SIGTERM");
      await exited(child);
    },
  };
  return redis;
}

/** What happened to the worker processes during a run. */
export interface WorkerStats {
  started: number;
  /** SIGKILLs sent by the schedule. */
  killed: number;
  /** Exits nobody asked for (e.g. a start-up that found a dependency down), each restarted. */
  unexpectedExits: number;
  /** At the end: time from SIGTERM to the exit of the slowest worker, in ms. */
  shutdownMs?: number;
  /** Workers that did not exit within the shutdown deadline (then killed). */
  shutdownOverdue: number;
  /** Start-up times (spawn → ready line) of the workers that got ready, in ms: median and slowest. */
  readyMs: { p50: number; max: number };
}

/** What a {@link WorkerSupervisor} starts. */
export interface SupervisorOptions {
  configFile: string;
  caFile: string;
  /** Where `worker-<slot>.log` files go. */
  logDir: string;
  count?: number;
  lockMs?: number;
  stalledMs?: number;
  /** pino level of the workers (`LOG_LEVEL`), default `warn`. */
  logLevel?: string;
}

/**
 * A fixed number of worker processes, each restarted when it exits; {@link killOne} SIGKILLs one.
 * Worker output (stderr, JSON log lines at `logLevel`) goes to `<logDir>/worker-<slot>.log`.
 */
export class WorkerSupervisor {
  readonly stats: WorkerStats = {
    started: 0,
    killed: 0,
    unexpectedExits: 0,
    shutdownOverdue: 0,
    readyMs: { p50: NaN, max: NaN },
  };
  readonly #slots: (ChildProcess | undefined)[];
  /** Workers that printed their ready line, with the time they did (ms). */
  readonly #ready = new Map<ChildProcess, number>();
  readonly #readyMs: number[] = [];
  readonly #logs: WriteStream[];
  readonly #killedPids = new Set<number>();
  #stopping = false;

  /**
   * @param options.configFile - the runtime configuration file the workers read.
   * @param options.caFile - PEM of the Key Vault emulator's CA (`NODE_EXTRA_CA_CERTS`).
   * @param options.count - worker processes (default 2).
   * @param options.lockMs - BullMQ lock duration, in ms (`CRYPTLET_LOCK_MS`, default 5000).
   * @param options.stalledMs - BullMQ stalled-job check interval, in ms (`CRYPTLET_STALLED_MS`, default 2000).
   */
  readonly options: SupervisorOptions;

  constructor(options: SupervisorOptions) {
    this.options = options;
    const count = options.count ?? 2;
    this.#slots = Array.from({ length: count }, () => undefined);
    this.#logs = Array.from({ length: count }, (_, i) =>
      createWriteStream(path.join(options.logDir, `worker-${i}.log`), { flags: "a" }),
    );
  }

  /** Starts every worker and waits until each printed its ready line (or exited, then it is restarted). */
  async start(): Promise<void> {
    await Promise.all(this.#slots.map((_, i) => this.#spawn(i)));
  }

  /** Process ids of every worker alive now (for an emergency stop). */
  get pids(): number[] {
    return this.#slots.flatMap((c) => (c?.pid !== undefined && c.exitCode === null ? [c.pid] : []));
  }

  /** Number of worker processes alive now. */
  get alive(): number {
    return this.#slots.filter((c) => c !== undefined && c.exitCode === null && c.signalCode === null).length;
  }

  #spawn(slot: number): Promise<void> {
    const child = spawn(process.execPath, [path.join(ROOT, "runtime", "queue", "worker.ts"), this.options.configFile], {
      cwd: ROOT,
      env: {
        ...process.env,
        NODE_OPTIONS: "",
        NODE_EXTRA_CA_CERTS: this.options.caFile,
        CRYPTLET_LOCK_MS: String(this.options.lockMs ?? 5_000),
        CRYPTLET_STALLED_MS: String(this.options.stalledMs ?? 2_000),
        LOG_LEVEL: this.options.logLevel ?? "warn",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.#slots[slot] = child;
    this.stats.started += 1;
    const spawnedAt = Date.now();
    const log = this.#logs[slot]!;
    child.stderr!.on("data", (c: Buffer) => log.write(c));
    const ready = new Promise<void>((resolve) => {
      child.stdout!.on("data", (c: Buffer) => {
        if (!this.#ready.has(child) && c.toString().includes('"ready":true')) {
          this.#ready.set(child, Date.now());
          this.#readyMs.push(Date.now() - spawnedAt);
          const sorted = [...this.#readyMs].sort((a, b) => a - b);
          this.stats.readyMs = { p50: sorted[Math.floor((sorted.length - 1) / 2)]!, max: sorted.at(-1)! };
          resolve();
        }
      });
      child.once("exit", () => resolve());
    });
    child.once("exit", (code, signal) => {
      this.#ready.delete(child);
      log.write(`--- worker pid ${child.pid} exited: code ${code}, signal ${signal}\n`);
      if (this.#stopping || this.#slots[slot] !== child) return;
      if (!this.#killedPids.has(child.pid!)) this.stats.unexpectedExits += 1;
      // A worker that could not start (a dependency down) is tried again a second later.
      setTimeout(() => {
        if (!this.#stopping && this.#slots[slot] === child) void this.#spawn(slot);
      }, 1_000);
    });
    return ready;
  }

  /**
   * SIGKILLs one worker that is taking jobs (chosen by `random` among those that printed their ready line at
   * least `minUptimeMs` ago: a process still starting holds no job, so killing it tests nothing) and starts its
   * replacement at once.
   * @returns the killed process id, or undefined when no worker qualifies.
   */
  killOne(random: () => number, minUptimeMs = 0): number | undefined {
    const now = Date.now();
    const ready = this.#slots.flatMap((c, slot) =>
      c && this.#ready.has(c) && now - this.#ready.get(c)! >= minUptimeMs ? [slot] : [],
    );
    if (ready.length === 0) return undefined;
    const slot = ready[Math.floor(random() * ready.length)]!;
    const child = this.#slots[slot]!;
    this.#killedPids.add(child.pid!);
    this.stats.killed += 1;
    this.#slots[slot] = undefined;
    child.kill("SIGKILL");
    void this.#spawn(slot);
    return child.pid;
  }

  /**
   * Graceful stop: SIGTERM to every worker, SIGKILL to those still running after `deadlineMs` (default 60000).
   * Records the slowest exit in {@link WorkerStats.shutdownMs}.
   */
  async stop(deadlineMs = 60_000): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    const began = Date.now();
    await Promise.all(
      this.#slots.map(async (child) => {
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        child.kill("SIGTERM");
        const timer = setTimeout(() => {
          this.stats.shutdownOverdue += 1;
          child.kill("SIGKILL");
        }, deadlineMs);
        await exited(child);
        clearTimeout(timer);
      }),
    );
    this.stats.shutdownMs = Date.now() - began;
    await Promise.all(this.#logs.map((l) => new Promise((resolve) => l.end(resolve))));
  }
}
