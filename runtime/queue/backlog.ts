/**
 * Backpressure: a bound on the pipeline's backlog, overall and per Cryptlet. The backlog is the set of **runs in
 * flight**: accepted by `Pipeline.submit` and not yet complete (composite receipt) or failed for good. An event
 * that would exceed a bound is refused with {@link BacklogFullError} (`ERR_BACKLOG_FULL`, retryable, with
 * `retryAfterSeconds`) before anything is stored; the API answers it with 429 and `Retry-After`, the triggers
 * wait and submit again (their checkpoints do not move past an event that was not accepted).
 *
 * Redis layout (prefix `P`; the `{backlog}` hash tag keeps both sets in one Redis Cluster slot, as the admission
 * script needs):
 *
 * | key | type | holds |
 * | --- | --- | --- |
 * | `P:{backlog}:runs` | sorted set | every run in flight: member `runId`, score its admission time (Unix ms) |
 * | `P:{backlog}:cryptlet:<cryptletId>` | sorted set | the runs in flight of one Cryptlet (same members and scores) |
 *
 * Both are bounded by the bounds themselves (at most `maxRuns` members overall, `maxRunsPerCryptlet` per
 * Cryptlet) and Redis deletes an empty set, so they need no TTL.
 *
 * Why a counter of our own rather than BullMQ's `getJobCounts`: a run spans five queues (events, execute,
 * attest, writes, and its waiting `runs` parent), so counting jobs would count one run several times and a run
 * between two stages not at all; BullMQ cannot count per Cryptlet (job data is opaque to it); and a cached count
 * lets a burst of concurrent submits overshoot the bound by everything that arrives within the cache's age. The
 * admission script (lua/admitRun-2.lua) checks both bounds and adds the run in one atomic step, O(log n), so the
 * bound holds exactly across any number of API and trigger processes; a duplicate submission of a run in flight
 * is recognised (same member) and admitted without counting twice. A run leaves the backlog when its `runs` job
 * completes, when it fails for good (the `events`, `execute`, `attest` or `runs` stage dead-letters it), or when a
 * re-submitted event finds its run already finished. Members older than `staleAfterSeconds` are dropped by the
 * next admission, so that a release lost to a crash cannot shrink the bound for good.
 *
 * @module
 */

import { BacklogFullError } from "./errors.ts";
import type { RedisClient } from "./redisClient.ts";
import { loadLuaScript, runLuaScript } from "./luaScript.ts";

/** The bounds of the backlog. Counts are runs; durations are seconds. */
export interface BacklogLimits {
  /** Runs in flight over every Cryptlet. Default 10000. */
  maxRuns?: number;
  /** Runs in flight of one Cryptlet. Default 5000. */
  maxRunsPerCryptlet?: number;
  /** The `Retry-After` given with a refusal, in seconds (an integer ≥ 1). Default 5. */
  retryAfterSeconds?: number;
  /**
   * A run still counted this long after its admission is presumed leaked (its release was lost) and dropped
   * from the count. Longer than any run can take, writes' retries included. Default 21600 (6 hours).
   */
  staleAfterSeconds?: number;
}

/** The defaults of {@link BacklogLimits}. */
export const DEFAULT_BACKLOG_LIMITS: Required<BacklogLimits> = {
  maxRuns: 10_000,
  maxRunsPerCryptlet: 5_000,
  retryAfterSeconds: 5,
  staleAfterSeconds: 6 * 3600,
};

const ADMIT_RUN = loadLuaScript(new URL("./lua/admitRun-2.lua", import.meta.url));

/** The runs in flight, as {@link Backlog.size} reports them. */
export interface BacklogSize {
  /** Runs in flight over every Cryptlet. */
  runs: number;
  /** Runs in flight of the Cryptlet asked about (0 when none was). */
  cryptletRuns: number;
}

/**
 * The backlog bound of one deployment (one key prefix). Every process that submits (API, triggers) builds one
 * over the same Redis; so does every process that finishes runs (workers), which release them.
 *
 * @example
 * ```ts
 * import { Redis } from "ioredis";
 * import { Backlog } from "./runtime/queue/backlog.ts";
 * const backlog = new Backlog(new Redis(), "cryptlet", { maxRuns: 2000, maxRunsPerCryptlet: 500 });
 * await backlog.admit(runId, cryptletId, "@acme/price"); // throws BacklogFullError when full
 * // … when the run is complete or failed for good:
 * await backlog.release(runId, cryptletId);
 * ```
 */
export class Backlog {
  readonly limits: Required<BacklogLimits>;
  readonly #redis: RedisClient;
  readonly #prefix: string;

  /**
   * @param redis - an ioredis client (not in subscriber mode); the admission script is defined on it.
   * @param prefix - the deployment's key prefix.
   * @param limits - see {@link BacklogLimits}; unset fields take {@link DEFAULT_BACKLOG_LIMITS}.
   * @throws RangeError when a bound is not a positive integer.
   */
  constructor(redis: RedisClient, prefix: string, limits: BacklogLimits = {}) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.limits = { ...DEFAULT_BACKLOG_LIMITS, ...limits };
    for (const [name, value] of Object.entries(this.limits)) {
      if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`backlog ${name} must be an integer ≥ 1`);
    }
  }

  /** The sorted set of every run in flight. */
  get runsKey(): string {
    return `${this.#prefix}:{backlog}:runs`;
  }

  /** The sorted set of one Cryptlet's runs in flight. */
  cryptletKey(cryptletId: string): string {
    return `${this.#prefix}:{backlog}:cryptlet:${cryptletId.toLowerCase()}`;
  }

  /**
   * Counts a run into the backlog, atomically with the check of both bounds. A run already in flight (the same
   * event submitted again) is admitted without being counted twice.
   * @param runId - the run id (= `resultId`, 0x hex).
   * @param cryptletId - the run's Cryptlet id (0x hex).
   * @param cryptlet - the Cryptlet's name, for the error.
   * @returns `true` when the run was counted now, `false` when it was already in flight.
   * @throws BacklogFullError (`ERR_BACKLOG_FULL`) when a bound is reached; nothing is counted then.
   */
  async admit(runId: string, cryptletId: string, cryptlet: string): Promise<boolean> {
    const now = Date.now();
    const [verdict, runs, cryptletRuns] = (await runLuaScript(
      this.#redis,
      ADMIT_RUN,
      [this.runsKey, this.cryptletKey(cryptletId)],
      [
        runId.toLowerCase(),
        now,
        this.limits.maxRuns,
        this.limits.maxRunsPerCryptlet,
        now - this.limits.staleAfterSeconds * 1000,
      ],
    )) as number[];
    if (verdict === 1) return true;
    if (verdict === 2) return false;
    const { retryAfterSeconds, maxRuns, maxRunsPerCryptlet } = this.limits;
    throw verdict === 0
      ? new BacklogFullError("all", maxRuns, runs!, retryAfterSeconds, cryptlet)
      : new BacklogFullError("cryptlet", maxRunsPerCryptlet, cryptletRuns!, retryAfterSeconds, cryptlet);
  }

  /**
   * Takes a run out of the backlog (it completed or failed for good). Idempotent.
   * @param cryptletId - the run's Cryptlet id.
   */
  async release(runId: string, cryptletId: string): Promise<void> {
    const member = runId.toLowerCase();
    await this.#redis.multi().zrem(this.runsKey, member).zrem(this.cryptletKey(cryptletId), member).exec();
  }

  /**
   * Runs in flight now, overall and (optionally) of one Cryptlet (for metrics and tests; O(1)).
   * @param cryptletId - the Cryptlet to count too.
   */
  async size(cryptletId?: string): Promise<BacklogSize> {
    const [runs, cryptletRuns] = await Promise.all([
      this.#redis.zcard(this.runsKey),
      cryptletId ? this.#redis.zcard(this.cryptletKey(cryptletId)) : Promise.resolve(0),
    ]);
    return { runs, cryptletRuns };
  }
}
