/**
 * The anchor batcher: the `anchor` write mode. Results of one chain are queued in Redis and closed into Merkle
 * batches by size (`chain.anchor.maxBatchSize`) or by time (`chain.anchor.maxBatchDelayMs` after the oldest
 * queued result); each batch gets one `ResultBatch` signature set (M of N, EIP-712) and one transaction,
 * `ResultLedger.anchor(batch, signatures)`, written through the {@link ChainWriter}; afterwards every result
 * keeps its Merkle proof, batch and transaction receipt: exactly the proof bundle's `batch` and `anchors[]`
 * entries ({@link BundleBatch}, {@link BundleAnchor}).
 *
 * Redis layout (prefix `P`, default `cryptlet`; the `{anchor:<chain>}` hash tag keeps a chain's keys in one
 * Redis Cluster slot):
 *
 * | key (`P:{anchor:<chain>}…`) | type | holds |
 * | --- | --- | --- |
 * | `:pending` | sorted set | queued result ids, score = enqueue time (Unix ms) |
 * | `:results` | hash | result id → the queued result (JSON, bundle form) until its batch closes |
 * | `:digest` | hash | result id → SHA-256 (base64) of the result's JSON; the "enqueued once" index (until retired) |
 * | `:seq` | string | the last batch sequence number |
 * | `:open` | sorted set | sequence numbers of closed batches not yet anchored (score = seq) |
 * | `:batch:<seq>` | hash | `state` (`closed`, `signed`, `anchored`), `closedAt` (ms), `count`, `attempt`, `failures`, `retryAt` (ms), `lastError`; once signed `root`, `timestamp` (s), `signatures` (JSON); once anchored `anchor` (JSON {@link BundleAnchor}) |
 * | `:batch:<seq>:results` | list | the batch's results (JSON), in queue order; deleted once anchored |
 * | `:batch:<seq>:lock` | string, PX TTL | the token of the process anchoring this batch (a renewed lease) |
 * | `:proof` | hash | result id → `{seq, proof}` (JSON) once its batch is anchored |
 * | `:anchored` | sorted set | sequence numbers of anchored batches, score = anchoring time (Unix ms), until retired |
 * | `:batch:<seq>:ids` | list | the result ids of an anchored batch, until retired |
 *
 * **Retention.** An anchored batch is retired `retentionSeconds` (default 7 days) after its anchoring: its
 * results' `:proof` and `:digest` fields, its `:ids` list and its `:anchored` entry are removed; its
 * `:batch:<seq>` hash expires a margin later (the retention again, at most an hour). The proof bundles keep the
 * batch and Merkle proof (the result store's archive, docs/pipeline.md "Retention"). A result enqueued again
 * after its batch retired is anchored again, in a new batch.
 *
 * Guarantees:
 * - **A result is in at most one batch.** Enqueueing is idempotent per `resultId` (a second enqueue of the same
 *   result is a no-op, of a different result with the same id an error), and closing is one Lua script
 *   (lua/closeBatches-4.lua) that moves up to `maxBatchSize` queued results into a new batch record with the next
 *   sequence number.
 * - **A batch is anchored at most once.** Its root is fixed at close (the results are fixed), its timestamp is
 *   its close time in seconds, its signatures are stored before the transaction is sent, and the write's
 *   idempotency key is `anchor:<chain>:<root>`: a batch closed or sent by a process that died is finished by the
 *   next {@link AnchorBatcher.flush} in any process with the same key, so the writer resumes that transaction
 *   (or finds the root anchored, `isAnchored(root)`) instead of sending another. A per-batch lock keeps two
 *   flushing processes from working on one batch at once; the contract refuses a second anchor of a root anyway.
 * - **A failed batch stays retryable.** A revert (e.g. signatures below the registry's threshold) or an RPC
 *   failure leaves the batch open with a backoff (1 s doubling to 60 s); every later flush retries it (at once
 *   with `force`). After a revert the batch is re-signed with the current signers and written under the key
 *   `anchor:<chain>:<root>#<attempt>` (a reverted transaction's key cannot be reused).
 *
 * @module
 */
import { createHash, randomUUID } from "node:crypto";

import { getAddress } from "ethers";

import {
  bundleResultToStruct,
  structToBundleResult,
  type BundleAnchor,
  type BundleBatch,
  type BundleResult,
} from "../attestation/bundle.ts";
import { type CryptletResult, type Hex32, type ResultBatch } from "../attestation/eip712.ts";
import { buildMerkleBatch } from "../attestation/merkle.ts";
import { signResultBatch, type ResultSignature, type ResultSigner } from "../attestation/signing.ts";
import { CryptletError, ERR_UNEXPECTED, isCryptletError } from "../errors.ts";
import { redactSecrets } from "../redact.ts";
import { interfaceOf } from "./contracts.ts";
import {
  ERR_ANCHOR_BATCH_FAILED,
  ERR_ANCHOR_CONFIG_INVALID,
  ERR_ANCHOR_RESULT_CONFLICT,
  ERR_ANCHOR_STATE_CORRUPT,
  ERR_ANCHOR_TIMEOUT,
  ERR_ANCHOR_TX_NOT_FOUND,
} from "./errors.ts";
import { anchorWriteRequest, assertCryptletResult, targetOf, type WriteTarget } from "./targets.ts";
import type { ChainWriter, WriteReceipt, WriterLogger } from "./writer.ts";
import type { RedisClient } from "../queue/redisClient.ts";
import { defineLuaScript, loadLuaScript, queueLuaScript, runLuaScript } from "../queue/luaScript.ts";

/** What a proof bundle needs of an anchored result: its `batch` entry and its `anchors[]` entry for this chain. */
export interface AnchorRecord {
  resultId: Hex32;
  /** The chain's configured name. */
  chain: string;
  /** The batch's sequence number on this chain. */
  seq: number;
  /** The bundle's `batch`: root, count, timestamp (Unix s, decimal string), Merkle proof, batch signatures. */
  batch: BundleBatch;
  /** The bundle's `anchors[]` entry: chain id, ledger, transaction hash, block number and hash, gas used. */
  anchor: BundleAnchor;
}

/** Where a result stands in the batcher of a chain. */
export type AnchorStatus = "pending" | "batched" | "anchored" | "unknown";

/** What {@link AnchorBatcher.flush} did with one batch. */
export type FlushOutcome =
  | {
      seq: number;
      status: "anchored";
      root: Hex32;
      count: number;
      /** The writer's receipt: `confirmed`, or `already-recorded` when a previous attempt had anchored it. */
      receipt: WriteReceipt;
      anchor: BundleAnchor;
    }
  | { seq: number; status: "skipped"; reason: "locked" | "backoff" | "done" }
  | { seq: number; status: "failed"; count: number; error: AnchorBatchFailedError };

/** A batch could not be anchored; it stays open and is retried. `details.reason` is the underlying error code. */
export class AnchorBatchFailedError extends CryptletError {
  constructor(chain: string, seq: number, root: string | undefined, cause: unknown) {
    const reason = isCryptletError(cause) ? cause.code : ERR_UNEXPECTED.code;
    const revert = isCryptletError(cause) ? (cause.details?.error as string | undefined) : undefined;
    super(ERR_ANCHOR_BATCH_FAILED, `anchor batch ${seq} on chain ${chain} failed (${revert ?? reason})`, {
      details: { chain, seq, ...(root ? { root } : {}), reason, ...(revert ? { revert } : {}) },
      cause,
      retryable: isCryptletError(cause) ? cause.retryable : true,
    });
  }
}

/** A result with this id was enqueued before with different contents (`details.resultId`). Not retryable. */
export class AnchorResultConflictError extends CryptletError {
  constructor(chain: string, resultId: string) {
    super(ERR_ANCHOR_RESULT_CONFLICT, `result ${resultId} was enqueued on chain ${chain} with other contents`, {
      details: { chain, resultId },
    });
  }
}

/** {@link AnchorBatcher.waitForAnchor} gave up (`details.status` says where the result was). Retryable. */
export class AnchorTimeoutError extends CryptletError {
  constructor(chain: string, resultId: string, waitedMs: number, status: AnchorStatus) {
    super(ERR_ANCHOR_TIMEOUT, `result ${resultId} not anchored on chain ${chain} after ${waitedMs} ms (${status})`, {
      details: { chain, resultId, waitedMs, status },
    });
  }
}

/** The batcher was constructed with unusable options (`details.option`). Not retryable. */
export class AnchorConfigInvalidError extends CryptletError {
  constructor(option: string, problem: string) {
    super(ERR_ANCHOR_CONFIG_INVALID, `anchor batcher: ${option} ${problem}`, { details: { option } });
  }
}

const ENQUEUE = loadLuaScript(new URL("./lua/enqueueResult-3.lua", import.meta.url));
const CLOSE = loadLuaScript(new URL("./lua/closeBatches-4.lua", import.meta.url));
const SIGNED = loadLuaScript(new URL("./lua/markBatchSigned-1.lua", import.meta.url));
const RELEASE = loadLuaScript(new URL("./lua/releaseLock-1.lua", import.meta.url));
const EXTEND = loadLuaScript(new URL("./lua/extendLock-1.lua", import.meta.url));

/** At most this many batches are closed per Lua call (bounds the script's run time). */
const CLOSE_BATCHES_PER_CALL = 16;

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });

/** Options of {@link AnchorBatcher}. */
export interface AnchorBatcherOptions {
  /** The chain's writer; its `chain` gives the name, batching limits and (by default) the ledger address. */
  writer: ChainWriter;
  /** Shared Redis (not in subscriber mode). */
  redis: RedisClient;
  /** The consortium id (EIP-712 domain salt) the batch signatures are made under. */
  consortiumId: Hex32;
  /** The result signers (M of N; e.g. Key Vault signers) that sign each `ResultBatch`. */
  signers: readonly ResultSigner[];
  /** Redis key prefix of the deployment. Default `cryptlet`. */
  prefix?: string;
  /** The `ResultLedger` address. Default `writer.chain.contracts.ledger`. */
  ledger?: string;
  /** How many batches one process anchors at a time. Default 4. */
  concurrency?: number;
  /** How long one anchor write may wait for confirmation, in ms (then retried by a later flush). Default 120000. */
  writeTimeoutMs?: number;
  /** Lease of a batch lock, in ms (renewed every third of it while the batch is worked on). Default 30000. */
  lockLeaseMs?: number;
  /** How long an anchored batch's records stay in Redis, in seconds. Default 604800 (7 days). */
  retentionSeconds?: number;
  logger?: WriterLogger;
}

/**
 * Batches results of one chain into Merkle anchors (see the module documentation for the Redis layout and the
 * guarantees). Construct one per chain per process; all instances with the same `prefix` and chain share state.
 *
 * @example
 * ```ts
 * import { Redis } from "ioredis";
 * import { AnchorBatcher } from "./runtime/chains/anchor.ts";
 * import { ChainWriter } from "./runtime/chains/writer.ts";
 * const writer = new ChainWriter({ chain, signer: relayer, redis });
 * const batcher = new AnchorBatcher({ writer, redis, consortiumId, signers: [signerA, signerB] });
 * await batcher.enqueue(result);
 * const controller = new AbortController();
 * const worker = batcher.run(controller.signal); // flushes on a timer
 * const record = await batcher.waitForAnchor(result.resultId, 30_000); // {batch, anchor} for the proof bundle
 * controller.abort();
 * await worker;
 * ```
 */
export class AnchorBatcher {
  readonly writer: ChainWriter;
  readonly target: WriteTarget;
  readonly #redis: RedisClient;
  readonly #consortiumId: Hex32;
  readonly #signers: readonly ResultSigner[];
  readonly #base: string;
  readonly #concurrency: number;
  readonly #writeTimeoutMs: number;
  readonly #leaseMs: number;
  readonly #retentionSeconds: number;
  readonly #log: WriterLogger | undefined;

  /**
   * @throws AnchorConfigInvalidError (`ERR_ANCHOR_CONFIG_INVALID`) without signers or with a bad concurrency;
   * ChainTargetUnconfiguredError (`ERR_CHAIN_TARGET_UNCONFIGURED`) when no ledger address is known.
   */
  constructor(options: AnchorBatcherOptions) {
    this.writer = options.writer;
    const chain = options.writer.chain;
    this.target = options.ledger
      ? { chain: chain.name, mode: "anchor", address: getAddress(options.ledger) }
      : targetOf(chain, "anchor");
    if (options.signers.length === 0) throw new AnchorConfigInvalidError("signers", "must hold at least one signer");
    this.#concurrency = options.concurrency ?? 4;
    if (!Number.isInteger(this.#concurrency) || this.#concurrency < 1) {
      throw new AnchorConfigInvalidError("concurrency", "must be an integer ≥ 1");
    }
    this.#redis = options.redis;
    this.#consortiumId = options.consortiumId;
    this.#signers = options.signers;
    this.#base = `${options.prefix ?? "cryptlet"}:{anchor:${chain.name}}`;
    this.#writeTimeoutMs = options.writeTimeoutMs ?? 120_000;
    this.#leaseMs = options.lockLeaseMs ?? 30_000;
    this.#retentionSeconds = options.retentionSeconds ?? 7 * 24 * 3600;
    this.#log = options.logger;
  }

  /** The chain's configured name. */
  get chain(): string {
    return this.writer.chain.name;
  }

  #key(...parts: (string | number)[]): string {
    return [this.#base, ...parts].join(":");
  }

  /**
   * Queues one result for anchoring. Idempotent per `resultId`: a second enqueue of the same result returns
   * `"duplicate"` and never puts it in a second batch.
   * @returns `"queued"` or `"duplicate"`.
   * @throws ChainWriteInvalidError (`ERR_CHAIN_WRITE_INVALID`) for a malformed result; AnchorResultConflictError
   * (`ERR_ANCHOR_RESULT_CONFLICT`) when another result with the same id was enqueued.
   */
  async enqueue(result: CryptletResult): Promise<"queued" | "duplicate"> {
    const [outcome] = await this.enqueueMany([result]);
    return outcome!;
  }

  /**
   * Queues many results (pipelined, 1,000 per round trip); same semantics as {@link AnchorBatcher.enqueue}, per
   * result. All results are validated before any is queued.
   */
  async enqueueMany(results: readonly CryptletResult[]): Promise<("queued" | "duplicate")[]> {
    for (const result of results) assertCryptletResult(result);
    const outcomes: ("queued" | "duplicate")[] = [];
    const now = Date.now();
    for (let start = 0; start < results.length; start += 1000) {
      const chunk = results.slice(start, start + 1000);
      defineLuaScript(this.#redis, ENQUEUE); // before the pipeline, which takes the client's commands
      const pipeline = this.#redis.pipeline();
      for (const result of chunk) {
        const json = JSON.stringify(structToBundleResult(result));
        queueLuaScript(
          pipeline,
          ENQUEUE,
          [this.#key("digest"), this.#key("pending"), this.#key("results")],
          [result.resultId.toLowerCase(), createHash("sha256").update(json).digest("base64"), json, now],
        );
      }
      const replies = (await pipeline.exec()) ?? [];
      replies.forEach(([error, reply], i) => {
        if (error) throw error;
        if (reply === -1) throw new AnchorResultConflictError(this.chain, chunk[i]!.resultId);
        outcomes.push(reply === 1 ? "queued" : "duplicate");
      });
    }
    return outcomes;
  }

  /**
   * Closes the batches that are due: every full batch (`maxBatchSize` queued results), and a partial one when
   * its oldest result has waited `maxBatchDelayMs` (or at once with `force`). Atomic per batch (Lua).
   * @returns the new batches' sequence numbers.
   */
  async close({ force = false } = {}): Promise<number[]> {
    const { maxBatchSize, maxBatchDelayMs } = this.writer.chain.anchor;
    const closed: number[] = [];
    for (;;) {
      const seqs = (await runLuaScript(
        this.#redis,
        CLOSE,
        [this.#key("pending"), this.#key("results"), this.#key("seq"), this.#key("open")],
        [Date.now(), maxBatchSize, maxBatchDelayMs, force ? "1" : "0", this.#key("batch", ""), CLOSE_BATCHES_PER_CALL],
      )) as number[];
      closed.push(...seqs.map(Number));
      if (seqs.length < CLOSE_BATCHES_PER_CALL) return closed;
    }
  }

  /**
   * Closes what is due ({@link AnchorBatcher.close}) and anchors every open batch of the chain, including batches
   * closed or half-written by a process that died, `concurrency` at a time. Never throws for a failed batch: its
   * outcome is `failed` with an {@link AnchorBatchFailedError} and the batch stays open.
   * @param options.force - close partial batches now and ignore failed batches' backoff.
   * @returns one outcome per open batch, by sequence number.
   */
  async flush({ force = false } = {}): Promise<FlushOutcome[]> {
    await this.close({ force });
    const open = (await this.#redis.zrange(this.#key("open"), 0, -1)).map(Number);
    const outcomes: FlushOutcome[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(this.#concurrency, open.length) }, async () => {
        while (next < open.length) {
          const seq = open[next++]!;
          outcomes.push(await this.#anchorBatch(seq, force));
        }
      }),
    );
    return outcomes.sort((a, b) => a.seq - b.seq);
  }

  /** Milliseconds until the next flush has something to close, or `undefined` when nothing is queued. */
  async nextDueInMs(): Promise<number | undefined> {
    const { maxBatchSize, maxBatchDelayMs } = this.writer.chain.anchor;
    // One transaction: read apart, a flush between the two reads left a count without an oldest member (NaN).
    const replies = await this.#redis
      .multi()
      .zcard(this.#key("pending"))
      .zrange(this.#key("pending"), 0, 0, "WITHSCORES")
      .exec();
    const count = Number(replies?.[0]?.[1] ?? 0);
    const oldest = (replies?.[1]?.[1] ?? []) as string[];
    if (count === 0 || oldest.length < 2) return undefined;
    if (count >= maxBatchSize) return 0;
    return Math.max(0, Number(oldest[1]) + maxBatchDelayMs - Date.now());
  }

  /**
   * The worker loop: flushes, then sleeps until the next batch is due (at most `idleMs`), until `signal` aborts.
   * An abort lets the current flush finish (no write is left half done) and then resolves.
   * @param options.idleMs - the longest sleep between flushes, in ms (also the retry cadence of open batches).
   * Default `min(anchor.pollIntervalMs, maxBatchDelayMs)` of the chain's configuration, at least 10.
   */
  async run(signal: AbortSignal, { idleMs }: { idleMs?: number } = {}): Promise<void> {
    const { pollIntervalMs, maxBatchDelayMs } = this.writer.chain.anchor;
    const idle = Math.max(10, idleMs ?? Math.min(pollIntervalMs, maxBatchDelayMs));
    while (!signal.aborted) {
      try {
        const outcomes = await this.flush();
        for (const outcome of outcomes) {
          if (outcome.status === "failed") {
            this.#log?.warn({ chain: this.chain, seq: outcome.seq, error: outcome.error.toJSON() }, "anchor failed");
          }
        }
      } catch (error) {
        this.#log?.warn({ chain: this.chain, error: redactSecrets(String(error)) }, "anchor flush failed; retrying");
      }
      await this.retire().catch((error: unknown) =>
        this.#log?.warn({ chain: this.chain, error: redactSecrets(String(error)) }, "anchor retire failed; retrying"),
      );
      const due = await this.nextDueInMs().catch(() => undefined);
      await sleep(Math.min(idle, due ?? idle), signal);
    }
  }

  /**
   * Retires anchored batches older than the retention (see the module documentation), at most `limit` per call.
   * The worker loop ({@link AnchorBatcher.run}) calls it after every flush.
   * @returns the sequence numbers retired.
   */
  async retire(limit = 16): Promise<number[]> {
    const before = Date.now() - this.#retentionSeconds * 1000;
    const seqs = await this.#redis.zrangebyscore(this.#key("anchored"), "-inf", before, "LIMIT", 0, limit);
    for (const seq of seqs) {
      const ids = await this.#redis.lrange(this.#key("batch", seq, "ids"), 0, -1);
      const retire = this.#redis.multi();
      if (ids.length > 0) retire.hdel(this.#key("proof"), ...ids).hdel(this.#key("digest"), ...ids);
      await retire
        .del(this.#key("batch", seq, "ids"))
        .zrem(this.#key("anchored"), seq)
        .exec();
    }
    return seqs.map(Number);
  }

  /** The anchor record of `resultId` (for its proof bundle), or `undefined` while it is not anchored. */
  async anchorOf(resultId: string): Promise<AnchorRecord | undefined> {
    const raw = await this.#redis.hget(this.#key("proof"), resultId.toLowerCase());
    if (raw === null) return undefined;
    const { seq, proof } = JSON.parse(raw) as { seq: number; proof: Hex32[] };
    const h = await this.#redis.hgetall(this.#key("batch", seq));
    if (!h.anchor || !h.root || !h.signatures) return undefined;
    return {
      resultId: resultId as Hex32,
      chain: this.chain,
      seq,
      batch: {
        root: h.root as Hex32,
        count: Number(h.count),
        timestamp: h.timestamp!,
        proof,
        signatures: JSON.parse(h.signatures) as ResultSignature[],
      },
      anchor: JSON.parse(h.anchor) as BundleAnchor,
    };
  }

  /** Where `resultId` stands: queued, in a closed batch, anchored, or never enqueued here. */
  async statusOf(resultId: string): Promise<AnchorStatus> {
    const id = resultId.toLowerCase();
    const [proof, digest, score] = await Promise.all([
      this.#redis.hexists(this.#key("proof"), id),
      this.#redis.hexists(this.#key("digest"), id),
      this.#redis.zscore(this.#key("pending"), id),
    ]);
    if (proof) return "anchored";
    if (score !== null) return "pending";
    return digest ? "batched" : "unknown";
  }

  /**
   * Waits until `resultId` is anchored (polling Redis every `pollMs`), whichever process anchors it.
   * @throws AnchorTimeoutError (`ERR_ANCHOR_TIMEOUT`, retryable) after `timeoutMs`.
   */
  async waitForAnchor(resultId: string, timeoutMs: number, { pollMs = 50 } = {}): Promise<AnchorRecord> {
    const started = Date.now();
    for (;;) {
      const record = await this.anchorOf(resultId);
      if (record) return record;
      if (Date.now() - started >= timeoutMs) {
        throw new AnchorTimeoutError(this.chain, resultId, Date.now() - started, await this.statusOf(resultId));
      }
      await sleep(pollMs);
    }
  }

  /** Anchors one open batch under its lock. */
  async #anchorBatch(seq: number, force: boolean): Promise<FlushOutcome> {
    const lockKey = this.#key("batch", seq, "lock");
    const token = randomUUID();
    if ((await this.#redis.set(lockKey, token, "PX", this.#leaseMs, "NX")) !== "OK") {
      return { seq, status: "skipped", reason: "locked" };
    }
    const renew = setInterval(
      () => void runLuaScript(this.#redis, EXTEND, [lockKey], [token, this.#leaseMs]).catch(() => undefined),
      Math.floor(this.#leaseMs / 3),
    );
    renew.unref();
    const batchKey = this.#key("batch", seq);
    let root: Hex32 | undefined;
    let count = 0;
    try {
      const h = await this.#redis.hgetall(batchKey);
      if (h.state === undefined || h.state === "anchored") {
        await this.#redis.zrem(this.#key("open"), seq); // finished by another process meanwhile
        return { seq, status: "skipped", reason: "done" };
      }
      if (!force && Number(h.retryAt ?? 0) > Date.now()) return { seq, status: "skipped", reason: "backoff" };
      count = Number(h.count);
      const results = (await this.#redis.lrange(this.#key("batch", seq, "results"), 0, -1)).map((json) =>
        bundleResultToStruct(JSON.parse(json) as BundleResult),
      );
      // The batch time is its close time: the same batch struct whoever (re)signs it.
      const timestamp = BigInt(Math.floor(Number(h.closedAt) / 1000));
      let proofs: Hex32[][];
      let signatures: ResultSignature[];
      if (h.state === "signed") {
        const tree = buildMerkleBatch(results);
        if (tree.root !== h.root) {
          throw new CryptletError(ERR_ANCHOR_STATE_CORRUPT, `batch ${seq} of chain ${this.chain} changed its root`, {
            details: { chain: this.chain, seq, stored: h.root, computed: tree.root },
          });
        }
        proofs = tree.proofs;
        root = tree.root;
        signatures = JSON.parse(h.signatures!) as ResultSignature[];
      } else {
        const signed = await signResultBatch(this.#consortiumId, results, this.#signers, timestamp);
        proofs = signed.proofs;
        root = signed.batch.root;
        signatures = signed.signatures;
        const stored = await runLuaScript(
          this.#redis,
          SIGNED,
          [batchKey],
          [signed.batch.root, timestamp.toString(), JSON.stringify(signatures)],
        );
        if (stored !== 1) return { seq, status: "skipped", reason: "locked" }; // another process signed it
      }
      const batch: ResultBatch = { root, count: results.length, timestamp };
      const request = anchorWriteRequest(this.target, batch, signatures, {
        reader: this.writer.rpc,
        attempt: Number(h.attempt ?? 0),
      });
      const receipt = await this.writer.write(request, { timeoutMs: this.#writeTimeoutMs });
      const anchor = await this.#anchorOfReceipt(receipt, request.idempotencyKey, root);
      const proofFields: string[] = [];
      results.forEach((result, i) => {
        proofFields.push(result.resultId.toLowerCase(), JSON.stringify({ seq, proof: proofs[i] }));
      });
      await this.#redis
        .multi()
        .hset(this.#key("proof"), ...proofFields)
        .hset(batchKey, "state", "anchored", "anchor", JSON.stringify(anchor))
        .hdel(batchKey, "retryAt", "lastError")
        .zrem(this.#key("open"), seq)
        .del(this.#key("batch", seq, "results"))
        .rpush(this.#key("batch", seq, "ids"), ...results.map((r) => r.resultId.toLowerCase()))
        .zadd(this.#key("anchored"), Date.now(), seq)
        // Retired (above) first; the hash outlives its proofs by a margin of at most an hour.
        .expire(batchKey, this.#retentionSeconds + Math.min(this.#retentionSeconds, 3600))
        .exec();
      this.#log?.info({ chain: this.chain, seq, root, count, txHash: anchor.txHash }, "batch anchored");
      return { seq, status: "anchored", root, count: results.length, receipt, anchor };
    } catch (cause) {
      const error = new AnchorBatchFailedError(this.chain, seq, root, cause);
      const failures = Number((await this.#redis.hincrby(batchKey, "failures", 1).catch(() => 1)) ?? 1);
      const backoff = Math.min(60_000, 1000 * 2 ** Math.min(failures - 1, 6));
      const update = this.#redis
        .multi()
        .hset(batchKey, "retryAt", Date.now() + backoff, "lastError", String(error.details?.reason));
      if (isCryptletError(cause, "ERR_CHAIN_REVERTED")) {
        // The transaction (if any) is final and its key spent: re-sign with the current signers under a new key.
        update.hincrby(batchKey, "attempt", 1).hset(batchKey, "state", "closed").hdel(batchKey, "signatures");
      }
      await update.exec().catch(() => undefined);
      return { seq, status: "failed", count, error };
    } finally {
      clearInterval(renew);
      await runLuaScript(this.#redis, RELEASE, [lockKey], [token]).catch(() => undefined);
    }
  }

  /** The bundle anchor entry of a write: from our receipt, or from the chain when the root was anchored before. */
  async #anchorOfReceipt(receipt: WriteReceipt, key: string, root: Hex32): Promise<BundleAnchor> {
    const chainId = String(this.writer.chain.chainId);
    const contract = getAddress(this.target.address);
    if (receipt.status === "confirmed") {
      return {
        chainId,
        contract,
        txHash: receipt.txHash as Hex32,
        blockNumber: String(receipt.blockNumber),
        blockHash: receipt.blockHash as Hex32,
        gasUsed: receipt.gasUsed!,
        mode: "anchor",
      };
    }
    // Anchored before: by our own earlier transaction (a crash after it was sent) or by another lane.
    const rpc = this.writer.rpc;
    const lane = await this.writer.lane(key);
    const nonce = await lane.nonceOf(key);
    const hashes = nonce === undefined ? [] : ((await lane.get(nonce))?.hashes ?? []);
    let txHash: string | undefined;
    for (const hash of hashes) {
      const r = await rpc.send<{ status: string } | null>("eth_getTransactionReceipt", [hash]);
      if (r && BigInt(r.status) === 1n) txHash = hash;
    }
    if (!txHash) {
      const ledger = interfaceOf("ResultLedger");
      const logs = await rpc.send<{ transactionHash: string }[]>("eth_getLogs", [
        { address: contract, topics: [ledger.getEvent("BatchAnchored")!.topicHash, root], fromBlock: "0x0" },
      ]);
      txHash = logs[0]?.transactionHash;
    }
    if (!txHash) {
      throw new CryptletError(ERR_ANCHOR_TX_NOT_FOUND, `root ${root} is anchored but its transaction was not found`, {
        details: { chain: this.chain, root },
      });
    }
    const r = await rpc.send<{ blockNumber: string; blockHash: string; gasUsed: string }>("eth_getTransactionReceipt", [
      txHash,
    ]);
    return {
      chainId,
      contract,
      txHash: txHash as Hex32,
      blockNumber: BigInt(r.blockNumber).toString(),
      blockHash: r.blockHash as Hex32,
      gasUsed: BigInt(r.gasUsed).toString(),
      mode: "anchor",
    };
  }
}
