/**
 * The result store: everything about a run that outlives its jobs, in Redis, keyed by `resultId` (which is also
 * the run id: one run per result).
 *
 * | key (prefix `P:result:{resultId}`) | type | holds |
 * | --- | --- | --- |
 * | `…:attested` | string (JSON) | {@link AttestedRecord}: the proof bundle (without anchors), the payload hex, the result's signatures. Written once (SET NX): a retried `attest` reuses it. |
 * | `…:writes` | hash | per target `<chain>:<mode>`: the JSON of a {@link ChainOutcome} |
 * | `…:run` | string (JSON) | {@link RunRecord}: the run's Cryptlet and targets, written when the event is accepted |
 * | `…:receipt` | string (JSON) | the {@link CompositeReceipt}, rewritten whenever an outcome changes |
 *
 * For a sealed Cryptlet the payload is the JWE (ciphertext); no plaintext is ever stored.
 *
 * **Retention.** Every key expires: while the run is in flight, {@link IN_FLIGHT_SECONDS} (or the retention if
 * longer) after its last write, so that a run slower than a short retention keeps its records; once the run
 * settles (its receipt is written, or it fails before its writes), `retentionSeconds` (default 7 days) after that. Before the receipt is
 * written to Redis it is written to the {@link BundleArchive} when one is configured, and {@link
 * ResultStore.getReceipt} reads the archive when Redis no longer has the receipt. See docs/pipeline.md
 * "Retention" for what exactly-once means beyond the window.
 *
 * @module
 */

import type { BundleAnchor, ProofBundle } from "../attestation/bundle.ts";
import type { Hex32 } from "../attestation/eip712.ts";
import type { ResultSignature } from "../attestation/signing.ts";
import type { BundleArchive } from "../archive/BundleArchive.ts";
import type { WriteMode } from "../chains/targets.ts";
import type { WriteReceipt } from "../chains/writer.ts";
import type { ReceiptCosigning } from "../consortium/cosigner.ts";
import { ERR_WRITE_MISSING } from "./errors.ts";
import type { RedisClient } from "./redisClient.ts";

/** What `attest` produced, stored once per result. */
export interface AttestedRecord {
  bundle: ProofBundle;
  /** The exact bytes written on-chain (0x hex). */
  payload: string;
  /** 65-byte signatures over the result (empty when every target is `anchor`). */
  signatures: string[];
  /** When the record was created (Unix ms). */
  attestedAt: number;
  /**
   * How many times the signatures were replaced after a signer rotation ({@link ResultStore.replaceSignatures});
   * absent when never. The write's idempotency key carries it (runtime/chains/targets.ts, `attempt`).
   */
  resigned?: number;
  /** Consortium mode: who led, signed, dissented (with their hashes) and did not answer (runtime/consortium). */
  cosigning?: ReceiptCosigning;
}

/** The outcome of one target of a run. */
export interface ChainOutcome {
  chain: string;
  mode: WriteMode;
  /**
   * `confirmed` (our transaction), `already-recorded` (on-chain before us), `superseded` (a price feed already
   * holds a newer observation, or a cross-chain mint came after its lock's deadline and the lock is refunded
   * instead: obsolete, not an error; `reason` says which), `failed` (in the dead-letter queue).
   */
  status: "confirmed" | "already-recorded" | "superseded" | "failed";
  /**
   * For `superseded`: what superseded it, `a newer observation` or `the lock's deadline (the lock is refunded
   * instead)`; the receipt's summary reads "superseded by <reason>".
   */
  reason?: string;
  receipt?: WriteReceipt;
  /** The anchor entry for the proof bundle. */
  anchor?: BundleAnchor;
  /** For `anchor` mode: the batch the result is in. */
  batch?: ProofBundle["batch"];
  /** For `failed`: the error code and message. */
  error?: { code: string; message: string };
  updatedAt: number;
}

/** The composite receipt of a run: the proof bundle with every chain's anchor, and each target's status. */
export interface CompositeReceipt {
  runId: string;
  resultId: Hex32;
  cryptlet: { name: string; version: string; cryptletId: Hex32; codeHash: Hex32 };
  /** `confirmed`: every target confirmed or already recorded; `partial`: some failed; `failed`: all failed. */
  status: "confirmed" | "partial" | "failed";
  targets: ChainOutcome[];
  /** The proof bundle, with one anchor per confirmed write (and the batch proof for `anchor` mode). */
  bundle: ProofBundle;
  /** Gas used across the run's own transactions (decimal string). */
  gasUsed: string;
  /** One line per target, for terminals and logs. */
  summary: string;
  completedAt: number;
  /** Consortium mode: who led, signed, dissented (with their hashes and codes) and did not answer. */
  cosigning?: ReceiptCosigning;
}

/** What is known about a run from the moment its event is accepted. */
export interface RunRecord {
  runId: string;
  resultId: Hex32;
  eventId: Hex32;
  requestId: Hex32;
  cryptlet: CompositeReceipt["cryptlet"];
  targets: { chain: string; mode: WriteMode; address?: string }[];
  acceptedAt: number;
  /** The event's kind (its source type: `http`, `schedule`, `chain-log`, `oracle`) and time (Unix seconds). */
  event?: { type: string; time: number };
  /** Set when the run failed before any write (execute or attest failed for good). */
  error?: { code: string; message: string; stage: string };
}

/** How long results stay in Redis after a run's last change, in seconds, unless configured: 7 days. */
export const DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600;

/**
 * TTL of a run's records while it is in flight, in seconds (7 days): longer than any run takes, writes' retries
 * included, so only a run that never settles (a lost job) leaves records, and they expire too.
 */
export const IN_FLIGHT_SECONDS = 7 * 24 * 3600;

/** Options of {@link ResultStore}. */
export interface ResultStoreOptions {
  /** TTL of a settled run's keys, in seconds. Default {@link DEFAULT_RETENTION_SECONDS}. */
  retentionSeconds?: number;
  /** Where receipts are kept beyond the retention window (read back by {@link ResultStore.getReceipt}). */
  archive?: BundleArchive;
}

/** Redis-backed result store (see the module documentation for the layout). */
export class ResultStore {
  /** TTL of a settled run's keys, in seconds. */
  readonly retentionSeconds: number;
  /** TTL of an in-flight run's keys, in seconds: the longer of {@link IN_FLIGHT_SECONDS} and the retention. */
  readonly #inFlightSeconds: number;
  readonly archive: BundleArchive | undefined;
  readonly #redis: RedisClient;
  readonly #prefix: string;

  /**
   * @param prefix - the deployment's key prefix.
   * @param options - retention and archive, see {@link ResultStoreOptions}.
   * @throws RangeError when `retentionSeconds` is not a positive integer.
   */
  constructor(redis: RedisClient, prefix = "cryptlet", options: ResultStoreOptions = {}) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.retentionSeconds = options.retentionSeconds ?? DEFAULT_RETENTION_SECONDS;
    if (!Number.isSafeInteger(this.retentionSeconds) || this.retentionSeconds < 1) {
      throw new RangeError("retentionSeconds must be an integer ≥ 1");
    }
    this.archive = options.archive;
    this.#inFlightSeconds = Math.max(IN_FLIGHT_SECONDS, this.retentionSeconds);
  }

  #key(resultId: string, part: string): string {
    return `${this.#prefix}:result:{${resultId.toLowerCase()}}:${part}`;
  }

  /** Stores the run record (first accept wins); returns whether this call created it. */
  async putRun(record: RunRecord): Promise<boolean> {
    const key = this.#key(record.resultId, "run");
    return (await this.#redis.set(key, JSON.stringify(record), "EX", this.#inFlightSeconds, "NX")) === "OK";
  }

  /** The run record of a result. */
  async getRun(resultId: string): Promise<RunRecord | undefined> {
    const value = await this.#redis.get(this.#key(resultId, "run"));
    return value === null ? undefined : (JSON.parse(value) as RunRecord);
  }

  /**
   * Whether the run has finished, as Redis knows it: its receipt exists or it failed before its writes. (A run
   * whose keys expired is not settled here: a new submission of its event runs again, and the chain's
   * `isRecorded` check absorbs the write.)
   */
  async isSettled(resultId: string): Promise<boolean> {
    const replies = await this.#redis
      .pipeline()
      .exists(this.#key(resultId, "receipt"))
      .get(this.#key(resultId, "run"))
      .exec();
    if (Number(replies?.[0]?.[1] ?? 0) > 0) return true;
    const run = replies?.[1]?.[1];
    return typeof run === "string" && (JSON.parse(run) as RunRecord).error !== undefined;
  }

  /** Marks a run failed before its writes (e.g. the Cryptlet threw). */
  async failRun(resultId: string, error: NonNullable<RunRecord["error"]>): Promise<void> {
    const run = await this.getRun(resultId);
    if (!run) return;
    const ttl = this.retentionSeconds; // settled
    await this.#redis
      .multi()
      .set(this.#key(resultId, "run"), JSON.stringify({ ...run, error }), "EX", ttl)
      .expire(this.#key(resultId, "attested"), ttl)
      .expire(this.#key(resultId, "writes"), ttl)
      .exec();
  }

  /**
   * Clears the failure of a run that failed before its writes, so that it can run again (a resumed consortium
   * run, see `Pipeline.replay`); its keys are in flight again. Returns whether a run record was there.
   */
  async reopenRun(resultId: string): Promise<boolean> {
    const run = await this.getRun(resultId);
    if (!run) return false;
    const { error: _error, ...open } = run;
    await this.#redis.set(this.#key(resultId, "run"), JSON.stringify(open), "EX", this.#inFlightSeconds);
    return true;
  }

  /** Stores the attested record unless one exists; returns the stored one (the first writer wins). */
  async putAttested(resultId: string, record: AttestedRecord): Promise<AttestedRecord> {
    const key = this.#key(resultId, "attested");
    const created = await this.#redis.set(key, JSON.stringify(record), "EX", this.#inFlightSeconds, "NX");
    return created === "OK" ? record : ((await this.getAttested(resultId)) as AttestedRecord);
  }

  /**
   * Replaces the signatures of an attested result (in its proof bundle and in what is written on-chain), keeping
   * everything else and the key's expiry: for a result signed before a signer rotation that the chains now refuse
   * (runtime/queue/processors/write.ts). Last call wins.
   * @param signatures - the new signatures, as `signCryptletResult` returns them.
   * @returns the updated record, or `undefined` when the result has no attested record.
   */
  async replaceSignatures(resultId: string, signatures: ResultSignature[]): Promise<AttestedRecord | undefined> {
    const current = await this.getAttested(resultId);
    if (current === undefined) return undefined;
    const record: AttestedRecord = {
      ...current,
      bundle: { ...current.bundle, signatures },
      signatures: signatures.map((s) => s.signature),
      resigned: (current.resigned ?? 0) + 1,
    };
    await this.#redis.set(this.#key(resultId, "attested"), JSON.stringify(record), "KEEPTTL");
    return record;
  }

  /** The attested record, if `attest` has run. */
  async getAttested(resultId: string): Promise<AttestedRecord | undefined> {
    const value = await this.#redis.get(this.#key(resultId, "attested"));
    return value === null ? undefined : (JSON.parse(value) as AttestedRecord);
  }

  /** Records a target's outcome (last write wins per target). */
  async putOutcome(resultId: string, outcome: ChainOutcome): Promise<void> {
    const key = this.#key(resultId, "writes");
    await this.#redis
      .multi()
      .hset(key, `${outcome.chain}:${outcome.mode}`, JSON.stringify(outcome))
      .expire(key, this.#inFlightSeconds)
      .exec();
  }

  /** Every recorded target outcome of a result. */
  async outcomes(resultId: string): Promise<ChainOutcome[]> {
    const all = await this.#redis.hgetall(this.#key(resultId, "writes"));
    return Object.values(all).map((v) => JSON.parse(v) as ChainOutcome);
  }

  /**
   * Assembles and stores the composite receipt from the attested record and the outcomes.
   * @param expected - the run's targets, so that a target with no outcome yet counts as not confirmed.
   */
  async buildReceipt(
    runId: string,
    resultId: Hex32,
    cryptlet: CompositeReceipt["cryptlet"],
    expected: { chain: string; mode: WriteMode }[],
  ): Promise<CompositeReceipt | undefined> {
    const attested = await this.getAttested(resultId);
    if (!attested) return undefined;
    const outcomes = await this.outcomes(resultId);
    const byTarget = new Map(outcomes.map((o) => [`${o.chain}:${o.mode}`, o]));
    const targets: ChainOutcome[] = expected.map(
      (t) =>
        byTarget.get(`${t.chain}:${t.mode}`) ?? {
          chain: t.chain,
          mode: t.mode,
          status: "failed",
          error: { code: ERR_WRITE_MISSING.code, message: "no outcome recorded" },
          updatedAt: Date.now(),
        },
    );
    const ok = targets.filter((t) => t.status !== "failed").length;
    const status = ok === targets.length ? "confirmed" : ok === 0 ? "failed" : "partial";
    const anchors = targets.flatMap((t) => (t.anchor ? [t.anchor] : []));
    const batch = targets.find((t) => t.batch)?.batch;
    const bundle: ProofBundle = { ...attested.bundle, anchors, ...(batch ? { batch } : {}) };
    const gasUsed = targets.reduce((sum, t) => sum + BigInt(t.receipt?.gasUsed ?? "0"), 0n);
    const summary = targets
      .map((t) => {
        const where = `${t.chain}/${t.mode}`;
        if (t.status === "failed") return `${where}: FAILED ${t.error?.code ?? ""}`;
        if (t.status === "already-recorded") return `${where}: already recorded`;
        if (t.status === "superseded") return `${where}: superseded by ${t.reason ?? "a newer observation"}`;
        const r = t.receipt;
        return `${where}: confirmed in block ${r?.blockNumber} (${r?.confirmations} conf.), tx ${r?.txHash}, gas ${r?.gasUsed}`;
      })
      .join("\n");
    const receipt: CompositeReceipt = {
      runId,
      resultId,
      cryptlet,
      status,
      targets,
      bundle,
      gasUsed: gasUsed.toString(),
      summary,
      completedAt: Date.now(),
      ...(attested.cosigning ? { cosigning: attested.cosigning } : {}),
    };
    await this.archive?.put(receipt);
    const ttl = this.retentionSeconds;
    await this.#redis
      .multi()
      .set(this.#key(resultId, "receipt"), JSON.stringify(receipt), "EX", ttl)
      .expire(this.#key(resultId, "run"), ttl)
      .expire(this.#key(resultId, "attested"), ttl)
      .expire(this.#key(resultId, "writes"), ttl)
      .exec();
    return receipt;
  }

  /**
   * The composite receipt of a run (by run id or result id: they are the same): from Redis, or from the archive
   * once the Redis copy has expired.
   */
  async getReceipt(runOrResultId: string): Promise<CompositeReceipt | undefined> {
    const value = await this.#redis.get(this.#key(runOrResultId, "receipt"));
    if (value !== null) return JSON.parse(value) as CompositeReceipt;
    return this.archive?.get(runOrResultId);
  }
}
