/**
 * The error codes of the job pipeline (BullMQ stages, run records, receipts, dead letters). The pipeline raises
 * them as plain {@link CryptletError}s with these declarations (`new CryptletError(ERR_RUN_UNKNOWN, …)`); a
 * failure that is not a `CryptletError` is recorded as the core `ERR_UNEXPECTED` (runtime/errors.ts).
 *
 * @module
 */
import { defineErrorCode } from "../errorCodes.ts";
import { CryptletError } from "../errors.ts";

const module = "queue";

export const ERR_RUN_UNKNOWN = defineErrorCode({
  code: "ERR_RUN_UNKNOWN",
  module,
  meaning:
    "A stage found no run record, attested result or parent job for its result id; retried when the record may still appear (attest before execute's output, write before attest).",
  retry: "depends",
});
export const ERR_RUN_TIMEOUT = defineErrorCode({
  code: "ERR_RUN_TIMEOUT",
  module,
  meaning: "`Pipeline.waitForRun` (and `cryptlet invoke --wait`) gave up before the run completed.",
  retry: "yes",
});
export const ERR_CHAIN_UNKNOWN = defineErrorCode({
  code: "ERR_CHAIN_UNKNOWN",
  module,
  meaning:
    "A run targets a chain this runtime has no configuration (or no anchor batcher) for (`details.chain`); the event is refused or the write fails.",
  retry: "no",
});
export const ERR_RESULT_SIGNER_ROTATED = defineErrorCode({
  code: "ERR_RESULT_SIGNER_ROTATED",
  module,
  meaning:
    "A chain refused a result's signature because the registry no longer trusts its signer (`rotateSigner` landed after the result was signed): the result is signed again with the signers' current key versions and the write retried.",
  retry: "yes",
});
export const ERR_WRITE_MISSING = defineErrorCode({
  code: "ERR_WRITE_MISSING",
  module,
  meaning: "In a composite receipt: a target of the run has no recorded write outcome, so it counts as failed.",
  retry: "no",
});
export const ERR_DEAD_LETTER_NOT_FOUND = defineErrorCode({
  code: "ERR_DEAD_LETTER_NOT_FOUND",
  module,
  meaning: "No dead-letter entry has this job id (replay).",
  retry: "no",
});
export const ERR_DEAD_LETTER_NOT_REPLAYABLE = defineErrorCode({
  code: "ERR_DEAD_LETTER_NOT_REPLAYABLE",
  module,
  meaning: "Only dead-lettered writes can be replayed; a run that failed before its writes is submitted again.",
  retry: "no",
});
export const ERR_BACKLOG_FULL = defineErrorCode({
  code: "ERR_BACKLOG_FULL",
  module,
  meaning:
    "The pipeline's backlog bound is reached (`details.scope`: `all` or `cryptlet`, with `limit` and `backlog`); nothing was accepted: submit again after `details.retryAfterSeconds` (the API answers 429 with `Retry-After`).",
  retry: "yes",
});

/**
 * `ERR_BACKLOG_FULL`: {@link Pipeline.submit} refused an event because the runs in flight (accepted, not yet
 * complete or failed) reached a bound, overall or for the event's Cryptlet. Nothing was stored: the event is not
 * lost, it was never accepted; the caller submits it again after {@link BacklogFullError.retryAfterSeconds}
 * (triggers do so themselves; the API answers 429 with `Retry-After`, RFC 9110 §10.2.3).
 */
export class BacklogFullError extends CryptletError {
  /** Seconds to wait before submitting again (an integer ≥ 1, the `Retry-After` delay-seconds). */
  readonly retryAfterSeconds: number;

  /**
   * @param scope - which bound: `all` (every Cryptlet's runs) or `cryptlet` (this Cryptlet's runs).
   * @param limit - the bound, in runs.
   * @param backlog - runs in flight when the event was refused.
   * @param retryAfterSeconds - see {@link BacklogFullError.retryAfterSeconds}.
   * @param cryptlet - the event's Cryptlet name.
   */
  constructor(scope: "all" | "cryptlet", limit: number, backlog: number, retryAfterSeconds: number, cryptlet: string) {
    super(
      ERR_BACKLOG_FULL,
      `backlog full (${scope === "all" ? "all Cryptlets" : cryptlet}: ${backlog} of ${limit} runs in flight); retry after ${retryAfterSeconds} s`,
      { details: { scope, limit, backlog, retryAfterSeconds, cryptlet } },
    );
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export const ERR_REDIS_NOT_DURABLE = defineErrorCode({
  code: "ERR_REDIS_NOT_DURABLE",
  module,
  meaning:
    "A production runtime refused to start on a Redis without AOF persistence (`details.setting`: `appendonly` not `yes`, `appendfsync` `no`, or the settings unreadable); set `appendonly yes` with `appendfsync everysec`, or override with `redisDurability.allowWithoutPersistence` (docs/operations.md).",
  retry: "no",
});
export const ERR_REDIS_DATA_LOST = defineErrorCode({
  code: "ERR_REDIS_DATA_LOST",
  module,
  meaning:
    "Redis lost its data: its epoch marker (`<prefix>:epoch`) is missing or not the one this runtime expects (`details.expected`, `details.found`); the runtime stops instead of dead-lettering every job (docs/operations.md says how to recover).",
  retry: "no",
});

/**
 * `ERR_REDIS_NOT_DURABLE`: a `production` runtime refused a Redis that does not persist every write (AOF), since
 * a restart would silently lose every accepted event (runtime/queue/redisDurability.ts).
 */
export class RedisNotDurableError extends CryptletError {
  /**
   * @param setting - the setting at fault: `appendonly`, `appendfsync`, or `unknown` (neither CONFIG nor INFO answered).
   * @param value - its value (`no`, …), or `unreadable`.
   * @param redis - the Redis URL, credentials redacted.
   */
  constructor(setting: "appendonly" | "appendfsync" | "unknown", value: string, redis: string) {
    const fix =
      setting === "appendfsync"
        ? "set `appendfsync everysec` (or `always`)"
        : "set `appendonly yes` and `appendfsync everysec` (redis.conf, or CONFIG SET then CONFIG REWRITE; on a managed Redis, enable AOF persistence)";
    super(
      ERR_REDIS_NOT_DURABLE,
      `Redis at ${redis} does not persist every write (${setting} ${value}): a restart would lose every accepted event. ${fix}, or run anyway with redisDurability.allowWithoutPersistence (CRYPTLET_ALLOW_REDIS_WITHOUT_PERSISTENCE=1); see docs/operations.md`,
      { details: { setting, value, redis } },
    );
  }
}

/**
 * `ERR_REDIS_DATA_LOST`: Redis no longer holds the epoch marker this runtime expects (restarted without
 * persistence, flushed, or replaced), so every job, run and package accepted before is gone.
 */
export class RedisDataLostError extends CryptletError {
  /**
   * @param key - the epoch key (`<prefix>:epoch`).
   * @param expected - the epoch this runtime knew (from memory or its epoch file).
   * @param found - the epoch Redis holds now, `null` when the key is gone.
   * @param epochFile - where this machine keeps the expected epoch, when it has one.
   */
  constructor(key: string, expected: string, found: string | null, epochFile?: string) {
    super(
      ERR_REDIS_DATA_LOST,
      `Redis lost its data: ${key} is ${found === null ? "missing" : `${found}`}, expected ${expected}. Jobs, runs and packages accepted before are gone; the runtime stops instead of dead-lettering them. Restore Redis from its AOF or backup, or accept the loss${epochFile ? ` by deleting ${epochFile}` : ""} and deploy the packages again (docs/operations.md)`,
      { details: { key, expected, found, ...(epochFile ? { epochFile } : {}) } },
    );
  }
}
