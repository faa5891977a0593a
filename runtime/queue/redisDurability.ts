/**
 * Redis durability, checked rather than assumed. Every job, run record, nonce lane and the package store live in
 * Redis, so a Redis that forgets (restarted without persistence, flushed, replaced) loses every accepted event.
 * At start the runtime:
 *
 * 1. reads the persistence settings: `CONFIG GET appendonly` and `appendfsync`, or, where `CONFIG` is disabled
 *    (managed Redis such as Azure Cache for Redis or ElastiCache), `INFO persistence` (`aof_enabled`). A
 *    `production` role refuses a Redis without AOF, with `appendfsync no`, or whose settings cannot be read
 *    (`ERR_REDIS_NOT_DURABLE`) unless `allowWithoutPersistence` overrides it, which logs a warning at every start;
 *    a `development` role only warns.
 * 2. checks the epoch marker: a random id in `<prefix>:epoch`, written at the first start (SET NX), whose
 *    expected value this machine also keeps outside Redis in a small JSON file (`epochFile`). A marker that is
 *    missing or different means Redis lost its data: the runtime stops with `ERR_REDIS_DATA_LOST` instead of
 *    dead-lettering every job ("Missing key for job").
 *
 * While running, the guard checks the marker again on every reconnection and every `intervalMs`, and the pipeline
 * asks it before it dead-letters a job: a data loss stops the workers with one error line, not a dead letter per
 * job. See docs/operations.md for the settings and for recovery.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

import { Cluster, type Redis } from "ioredis";

import { redactUrl } from "../errors.ts";
import type { PipelineLogger } from "./context.ts";
import { RedisDataLostError, RedisNotDurableError } from "./errors.ts";
import type { RedisClient } from "./redisClient.ts";

/** What the runtime found out about Redis persistence. */
export interface PersistenceReport {
  /** Where the settings came from: `CONFIG GET`, `INFO persistence` (CONFIG disabled), or neither. */
  source: "config" | "info" | "unknown";
  /** `appendonly` (`yes`/`no`), `undefined` when unreadable. */
  appendonly?: string;
  /** `appendfsync` (`always`/`everysec`/`no`); `INFO` does not report it, so `undefined` then. */
  appendfsync?: string;
  /** AOF on and fsync at least every second (`appendfsync` unknown counts as durable when AOF is on). */
  durable: boolean;
}

/** Options of {@link checkRedisDurability}. */
export interface RedisDurabilityOptions {
  /** `production` refuses a Redis without AOF; `development` warns. */
  role: "production" | "development";
  /** Run a `production` role without AOF anyway (a warning at every start). @defaultValue false */
  allowWithoutPersistence?: boolean;
  /** The deployment's key prefix: the marker is `<prefix>:epoch`. */
  prefix: string;
  /** The file that keeps the expected epoch outside Redis; without it, only a loss while running is detected. */
  epochFile?: string;
  /** How often the running guard checks the marker, ms. @defaultValue 5000 */
  intervalMs?: number;
  /** The Redis URL, for messages (credentials are redacted). */
  redisUrl?: string;
  logger?: PipelineLogger;
}

/**
 * Reads the persistence settings: `CONFIG GET`, else `INFO persistence`. On a Redis Cluster, of every master: the
 * first master that is not durable is the report (a fail-over makes a replica master, so its settings matter as
 * much; configure every node alike).
 * @param redis - a client (connected, or connecting).
 */
export async function readPersistence(redis: RedisClient): Promise<PersistenceReport> {
  if (!(redis instanceof Cluster)) return readServerPersistence(redis);
  await redis.ping(); // the slot map, hence the masters, is known once the cluster client is ready
  const reports = await Promise.all(redis.nodes("master").map(readServerPersistence));
  return reports.find((r) => !r.durable) ?? reports[0] ?? { source: "unknown", durable: false };
}

async function readServerPersistence(redis: Redis): Promise<PersistenceReport> {
  try {
    const [, appendonly] = (await redis.config("GET", "appendonly")) as string[];
    const [, appendfsync] = (await redis.config("GET", "appendfsync")) as string[];
    if (appendonly !== undefined) {
      return {
        source: "config",
        appendonly,
        ...(appendfsync === undefined ? {} : { appendfsync }),
        durable: appendonly === "yes" && appendfsync !== "no",
      };
    }
  } catch {
    // CONFIG is disabled or renamed on managed Redis: INFO persistence below.
  }
  try {
    const info = await redis.info("persistence");
    const match = /^aof_enabled:(\d)/m.exec(info);
    if (match) {
      const appendonly = match[1] === "1" ? "yes" : "no";
      return { source: "info", appendonly, durable: appendonly === "yes" };
    }
  } catch {
    // Neither answers: unknown.
  }
  return { source: "unknown", durable: false };
}

/** The running guard that {@link checkRedisDurability} returns. */
export interface RedisDurabilityGuard {
  /** The epoch this process works in. */
  readonly epoch: string;
  readonly persistence: PersistenceReport;
  /** The data loss, once detected. */
  readonly lost: RedisDataLostError | undefined;
  /**
   * Checks the marker now.
   * @returns the loss (also remembered in {@link RedisDurabilityGuard.lost}), or `undefined`; a Redis that does not
   *   answer is not a loss.
   */
  check(): Promise<RedisDataLostError | undefined>;
  /** Calls `listener` once when a loss is detected (at once if it already was). */
  onLost(listener: (error: RedisDataLostError) => void): void;
  /** Stops watching. */
  close(): void;
}

/** The epoch marker's key. */
export const epochKeyOf = (prefix: string) => `${prefix}:epoch`;

function readEpochFile(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  try {
    const epoch = (JSON.parse(readFileSync(file, "utf8")) as { epoch?: unknown }).epoch;
    return typeof epoch === "string" ? epoch : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Checks persistence and the epoch marker (see the module documentation), then watches the marker.
 * @param redis - the stores' client (its reconnections trigger a check).
 * @returns the guard; close it on shutdown.
 * @throws RedisNotDurableError (`ERR_REDIS_NOT_DURABLE`) for a `production` role without AOF and no override;
 *   RedisDataLostError (`ERR_REDIS_DATA_LOST`) when the marker is missing or not the expected one.
 *
 * @example
 * ```ts
 * import { Redis } from "ioredis";
 * import { checkRedisDurability } from "./runtime/queue/redisDurability.ts";
 *
 * const redis = new Redis("redis://127.0.0.1:6379");
 * const guard = await checkRedisDurability(redis, { role: "production", prefix: "cryptlet", epochFile: "/var/lib/cryptlet/redis-epoch.json" });
 * guard.onLost((error) => { console.error(error.message); process.exit(1); });
 * ```
 */
export async function checkRedisDurability(
  redis: RedisClient,
  options: RedisDurabilityOptions,
): Promise<RedisDurabilityGuard> {
  const where = redactUrl(options.redisUrl ?? "redis");
  const logger = options.logger;
  const persistence = await readPersistence(redis);
  if (!persistence.durable) {
    const setting =
      persistence.source === "unknown" ? "unknown" : persistence.appendonly !== "yes" ? "appendonly" : "appendfsync";
    const value =
      setting === "unknown"
        ? "unreadable"
        : String(setting === "appendonly" ? persistence.appendonly : persistence.appendfsync);
    const error = new RedisNotDurableError(setting, value, where);
    if (options.role === "production" && options.allowWithoutPersistence !== true) throw error;
    const line = { code: error.code, role: options.role, setting, value, redis: where };
    const message =
      options.role === "production"
        ? "REDIS WITHOUT PERSISTENCE: production runs anyway because redisDurability.allowWithoutPersistence is set; a Redis restart loses every accepted event"
        : "Redis without AOF persistence (development role): a Redis restart loses every accepted event";
    if (logger) logger.warn(line, message);
    else if (options.role === "production") process.stderr.write(`WARNING ${message} (${error.code})\n`);
  }

  const key = epochKeyOf(options.prefix);
  const expected = readEpochFile(options.epochFile);
  let epoch: string;
  if (expected !== undefined) {
    const found = await redis.get(key);
    if (found !== expected) throw new RedisDataLostError(key, expected, found, options.epochFile);
    epoch = expected;
  } else {
    await redis.set(key, randomBytes(16).toString("hex"), "NX");
    epoch = (await redis.get(key)) as string;
    if (options.epochFile !== undefined) {
      try {
        mkdirSync(path.dirname(options.epochFile), { recursive: true });
        writeFileSync(
          options.epochFile,
          `${JSON.stringify({ epoch, key, redis: where, recordedAt: new Date().toISOString() })}\n`,
          { mode: 0o600 },
        );
      } catch (cause) {
        logger?.warn(
          { epochFile: options.epochFile, err: (cause as Error).message },
          "cannot write the Redis epoch file: a data loss is detected only while this process runs",
        );
      }
    }
  }

  let lost: RedisDataLostError | undefined;
  const listeners: ((error: RedisDataLostError) => void)[] = [];
  const check = async (): Promise<RedisDataLostError | undefined> => {
    if (lost) return lost;
    let found: string | null;
    try {
      found = await redis.get(key);
    } catch {
      return undefined; // Redis down is not a loss; the next check after it reconnects decides
    }
    if (found === epoch || lost) return lost;
    lost = new RedisDataLostError(key, epoch, found, options.epochFile);
    logger?.error({ code: lost.code, key, expected: epoch, found }, lost.message);
    for (const listener of listeners.splice(0)) listener(lost);
    return lost;
  };
  const onReady = () => void check();
  redis.on("ready", onReady);
  const timer = setInterval(onReady, options.intervalMs ?? 5000);
  timer.unref();
  return {
    epoch,
    persistence,
    get lost() {
      return lost;
    },
    check,
    onLost(listener) {
      if (lost) listener(lost);
      else listeners.push(listener);
    },
    close() {
      clearInterval(timer);
      redis.off("ready", onReady);
    },
  };
}
