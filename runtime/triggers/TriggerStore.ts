/**
 * The triggers' state in Redis: a checkpoint per subscription, the blocks it processed recently (for reorg
 * handling), a scan lock per subscription, and two journals (reorgs, problems).
 *
 * | key                                            | type   | content                                                   |
 * | ---------------------------------------------- | ------ | --------------------------------------------------------- |
 * | `<prefix>:triggers:{<subscription>}:checkpoint` | hash   | `blockNumber`, `blockHash`, `updatedAt` (ms): last block processed |
 * | `<prefix>:triggers:{<subscription>}:blocks`     | zset   | score block number, member JSON {@link ProcessedBlock}; the reorg window |
 * | `<prefix>:triggers:{<subscription>}:lock`       | string | the scanning listener's token (PX = lock TTL)             |
 * | `<prefix>:triggers:reorgs`                      | stream | one entry per removed log: {@link ReorgRecord} fields     |
 * | `<prefix>:triggers:problems`                    | stream | one entry per skipped log, request or trigger: code, message, details |
 *
 * The checkpoint and the processed blocks of a block range are written in one MULTI, after the range's events
 * were submitted: a crash in between re-submits them on restart, which the pipeline's per-event job id absorbs.
 *
 * @module
 */

import { ERR_UNEXPECTED, isCryptletError, redactDeep, redactSecrets } from "../errors.ts";
import type { RedisClient } from "../queue/redisClient.ts";
import { loadLuaScript, runLuaScript } from "../queue/luaScript.ts";

/** The last block a subscription processed. `blockNumber` -1 (hash `null`) means "before block 0". */
export interface Checkpoint {
  blockNumber: number;
  blockHash: string | null;
  /** When it was written, Unix ms. */
  updatedAt: number;
}

/** A run a log started, remembered for reorg handling. */
export interface ProcessedEvent {
  eventId: string;
  runId: string;
  /** The Cryptlet package name. */
  cryptlet: string;
  kind: "chain-log" | "oracle";
  txHash: string;
  logIndex: number;
}

/** A processed block: its hash when processed, and the runs its logs started. */
export interface ProcessedBlock {
  blockNumber: number;
  blockHash: string;
  events: ProcessedEvent[];
}

/** What happened to the run of a log a reorg removed. */
export interface ReorgRecord {
  subscription: string;
  chain: string;
  eventId: string;
  runId: string;
  cryptlet: string;
  blockNumber: number;
  /** The hash of the block the log was in (no longer canonical). */
  blockHash: string;
  /**
   * `cancelled`: the run wrote nothing and was removed from the queues; `recorded`: it had written (or was
   * writing), so the reorg is only recorded here for an operator.
   */
  action: "cancelled" | "recorded";
  /** Why: `not-accepted`, `not-written`, `already-failed`, `written`, `in-flight`. */
  reason: string;
  /** Unix ms. */
  at: number;
}

/** A journal entry of something skipped (an error a listener recorded instead of crashing). */
export interface TriggerProblem {
  code: string;
  message: string;
  details: Record<string, unknown>;
  /** Unix ms. */
  at: number;
}

const RELEASE_SCRIPT = loadLuaScript(new URL("./lua/releaseLock-1.lua", import.meta.url));
const ACQUIRE_SCRIPT = loadLuaScript(new URL("./lua/acquireLock-1.lua", import.meta.url));

/** Journals keep about this many entries (Redis `MAXLEN ~`). */
const JOURNAL_LENGTH = 10_000;

/**
 * Redis state of the triggers (see the module comment for the keys).
 *
 * @example
 * ```ts
 * import { Redis } from "ioredis";
 * import { TriggerStore } from "./runtime/triggers/TriggerStore.ts";
 * const store = new TriggerStore(new Redis(), "cryptlet");
 * const checkpoint = await store.checkpoint("oracle:consortium");
 * ```
 */
export class TriggerStore {
  readonly #redis: RedisClient;
  readonly #prefix: string;

  /** @param prefix - the deployment's key prefix (as the pipeline's). */
  constructor(redis: RedisClient, prefix: string) {
    this.#redis = redis;
    this.#prefix = prefix;
  }

  #key(subscription: string, part: "checkpoint" | "blocks" | "lock"): string {
    return `${this.#prefix}:triggers:{${subscription}}:${part}`;
  }

  get #reorgsKey(): string {
    return `${this.#prefix}:triggers:reorgs`;
  }

  get #problemsKey(): string {
    return `${this.#prefix}:triggers:problems`;
  }

  /** The checkpoint of a subscription, or `undefined` before its first scan. */
  async checkpoint(subscription: string): Promise<Checkpoint | undefined> {
    const fields = await this.#redis.hgetall(this.#key(subscription, "checkpoint"));
    if (fields.blockNumber === undefined) return undefined;
    return {
      blockNumber: Number(fields.blockNumber),
      blockHash: fields.blockHash ? fields.blockHash : null,
      updatedAt: Number(fields.updatedAt ?? 0),
    };
  }

  /**
   * Sets the checkpoint and forgets processed blocks above it (a rewind after a reorg, or a backfill).
   */
  async rewind(subscription: string, checkpoint: Omit<Checkpoint, "updatedAt">): Promise<void> {
    await this.#redis
      .multi()
      .zremrangebyscore(this.#key(subscription, "blocks"), `(${checkpoint.blockNumber}`, "+inf")
      .hset(this.#key(subscription, "checkpoint"), {
        blockNumber: checkpoint.blockNumber,
        blockHash: checkpoint.blockHash ?? "",
        updatedAt: Date.now(),
      })
      .exec();
  }

  /**
   * Records a processed block range atomically: its blocks (replacing earlier entries of the same numbers), the
   * new checkpoint, and prunes blocks older than `window` below it.
   */
  async commit(
    subscription: string,
    blocks: readonly ProcessedBlock[],
    checkpoint: Omit<Checkpoint, "updatedAt">,
    window: number,
  ): Promise<void> {
    const key = this.#key(subscription, "blocks");
    const multi = this.#redis.multi();
    for (const block of blocks) {
      multi.zremrangebyscore(key, block.blockNumber, block.blockNumber);
      multi.zadd(key, block.blockNumber, JSON.stringify(block));
    }
    multi.zremrangebyscore(key, "-inf", `(${checkpoint.blockNumber - window}`);
    multi.hset(this.#key(subscription, "checkpoint"), {
      blockNumber: checkpoint.blockNumber,
      blockHash: checkpoint.blockHash ?? "",
      updatedAt: Date.now(),
    });
    const results = await multi.exec();
    const failed = results?.find(([error]) => error);
    if (failed) throw failed[0];
  }

  /** Processed blocks at or below `blockNumber`, highest first. */
  async blocksAtOrBelow(subscription: string, blockNumber: number): Promise<ProcessedBlock[]> {
    const members = await this.#redis.zrevrangebyscore(this.#key(subscription, "blocks"), blockNumber, "-inf");
    return members.map((m) => JSON.parse(m) as ProcessedBlock);
  }

  /** Takes or renews the scan lock of a subscription for `ttlMs`; false when another listener holds it. */
  async lock(subscription: string, token: string, ttlMs: number): Promise<boolean> {
    return (await runLuaScript(this.#redis, ACQUIRE_SCRIPT, [this.#key(subscription, "lock")], [token, ttlMs])) === 1;
  }

  /** Releases the scan lock if `token` holds it. */
  async unlock(subscription: string, token: string): Promise<void> {
    await runLuaScript(this.#redis, RELEASE_SCRIPT, [this.#key(subscription, "lock")], [token]);
  }

  /** Appends a reorg record to the journal. */
  async recordReorg(record: ReorgRecord): Promise<void> {
    await this.#redis.xadd(this.#reorgsKey, "MAXLEN", "~", JOURNAL_LENGTH, "*", "record", JSON.stringify(record));
  }

  /** Reorg records, oldest first. */
  async reorgs(limit = 1000): Promise<ReorgRecord[]> {
    const entries = await this.#redis.xrange(this.#reorgsKey, "-", "+", "COUNT", limit);
    return entries.map(([, fields]) => JSON.parse(fields[1] ?? "{}") as ReorgRecord);
  }

  /** Appends a problem (a `CryptletError`, or any error as `ERR_UNEXPECTED`) to the journal, secrets redacted. */
  async recordProblem(error: unknown): Promise<TriggerProblem> {
    const problem: TriggerProblem = isCryptletError(error)
      ? {
          code: error.code,
          message: redactSecrets(error.shortMessage),
          details: redactDeep({ ...(error.details ?? {}) }),
          at: Date.now(),
        }
      : {
          code: ERR_UNEXPECTED.code,
          message: redactSecrets(error instanceof Error ? error.message : String(error)),
          details: {},
          at: Date.now(),
        };
    await this.#redis.xadd(this.#problemsKey, "MAXLEN", "~", JOURNAL_LENGTH, "*", "problem", JSON.stringify(problem));
    return problem;
  }

  /** Recorded problems, oldest first. */
  async problems(limit = 1000): Promise<TriggerProblem[]> {
    const entries = await this.#redis.xrange(this.#problemsKey, "-", "+", "COUNT", limit);
    return entries.map(([, fields]) => JSON.parse(fields[1] ?? "{}") as TriggerProblem);
  }
}
