/**
 * The pipeline's queues, job names, payloads, idempotency keys and retry policies: the one place that says how
 * an event travels (documented for operators in docs/pipeline.md).
 *
 * ```
 *  events ──► (flow per run)  runs: run:<resultId>            ◄── parent; completes last, returns the composite receipt
 *                               ├── attest: attest:<resultId>   ◄── adds one write per target as a child of the run
 *                               │     └── execute: execute:<resultId>
 *                               ├── writes: write:<chain>:<mode>:<resultId>   (added by attest)
 *                               └── writes: …
 * ```
 *
 * BullMQ runs a flow's leaves first: `execute` (sandbox, and sealing for a sealed Cryptlet, in one process so
 * that plaintext never leaves it), then `attest` (hashes, EIP-712 signatures, attestation token, proof bundle),
 * which adds the writes to the still-waiting run; when every write has finished, the `run` job assembles the
 * composite receipt. Every job id is derived from the `resultId`, so accepting the same event twice, or
 * retrying any stage, never creates a second result or a second transaction.
 *
 * With micro-batching configured, an anchor-only run has none of these jobs: it joins its package's micro-batch,
 * and one `batches` job (`batch-<codeHash>-<generation>`) does the work of many runs (runtime/queue/microBatch.ts).
 *
 * @module
 */
import type { JobsOptions } from "bullmq";

import type { Hex32 } from "../attestation/eip712.ts";
import type { BundleEvidence } from "../attestation/evidence.ts";
import type { CheckedCosign } from "../consortium/cosigner.ts";
import type { WriteMode } from "../chains/targets.ts";

/** Queue names (BullMQ queue names; Redis keys are `<prefix>:<name>:…`). */
export const QUEUES = {
  /** Incoming events from triggers (chain logs, oracle requests, HTTP, schedules). */
  events: "events",
  /** Sandbox runs (and sealing). */
  execute: "execute",
  /** Attestation: hashes, signatures, token, proof bundle. */
  attest: "attest",
  /** One chain write per (run, target). */
  writes: "writes",
  /** Run parents: complete when every write has, and return the composite receipt. */
  runs: "runs",
  /**
   * Micro-batches (runtime/queue/microBatch.ts): one job executes, attests, anchors and finishes many anchor-only
   * runs of one package, in place of their execute, attest, write and run jobs. Used when `microBatch` is configured.
   */
  batches: "batches",
  /** Jobs that failed for good, kept for inspection and replay. */
  deadLetter: "dead-letter",
} as const;

/** A queue name. */
export type QueueName = (typeof QUEUES)[keyof typeof QUEUES];

/** Where an event came from (kept in the normalised event, which enters `inputHash`). */
export type EventSource =
  | { type: "http"; idempotencyKey: string }
  | { type: "schedule"; slotTime: number }
  | {
      type: "chain-log";
      chainId: number;
      address: string;
      blockNumber: number;
      blockHash: string;
      txHash: string;
      logIndex: number;
    }
  | {
      /**
       * A read of a chain's state at one block by the runtime itself, e.g. the cross-chain deadline watcher's
       * "no mint at a block after the deadline" (runtime/crosschain/deadlineWatcher.ts): a verifier re-reads the
       * same state at `blockNumber` (and checks `blockHash`).
       */
      type: "chain-state";
      chainId: number;
      blockNumber: number;
      blockHash: string;
      /** The block's timestamp, Unix seconds. */
      timestamp: number;
    }
  | {
      type: "oracle";
      chain: string;
      chainId: number;
      oracle: string;
      requestId: Hex32;
      consumer: string;
      callbackGasLimit: number;
      blockNumber: number;
      blockHash: string;
      txHash: string;
      logIndex: number;
    };

/**
 * An event accepted by the runtime (the `events` job payload).
 * - `eventId`: see docs/ARCHITECTURE.md §3 (chain log, HTTP idempotency key, schedule slot).
 * - `requestId`: the oracle's request id for oracle events, else the `eventId`.
 */
export interface CryptletEvent {
  eventId: Hex32;
  /** The package to run: by name, optionally pinned to a version (default: the latest deployed). */
  cryptlet: { name: string; version?: string };
  requestId?: Hex32;
  source: EventSource;
  /** The Cryptlet's input (JSON). Absent in Redis for a sealed Cryptlet: see `sealedInput`. */
  input: unknown;
  /**
   * For a sealed Cryptlet, the input encrypted at rest (a JWE Compact Serialization, runtime/sealing/inputEnvelope.ts)
   * in place of `input`; set by `Pipeline.submit`, opened only by the execute stage.
   */
  sealedInput?: string;
  /** The event's time, Unix seconds: the Cryptlet's `ctx.now`. */
  time: number;
}

/** `execute` job payload. */
export interface ExecuteJob {
  runId: string;
  resultId: Hex32;
  requestId: Hex32;
  eventId: Hex32;
  cryptletId: Hex32;
  codeHash: Hex32;
  /** The normalised event given to the Cryptlet as `ctx.event` (JSON). */
  event: Record<string, unknown>;
  /** The Cryptlet's input (JSON); absent for a sealed Cryptlet. */
  input?: unknown;
  /** A sealed Cryptlet's input, encrypted at rest (see {@link CryptletEvent.sealedInput}). */
  sealedInput?: string;
  /** Unix seconds. */
  time: number;
  /** Consortium mode, sealed result: when this member's turn to lead comes (Unix ms; runtime/consortium/leadership.ts). */
  leadAfter?: number;
}

/** `execute` job return value. For a sealed Cryptlet `payload` is the JWE (ciphertext) only. */
export interface ExecuteOutput {
  /** The exact bytes to write on-chain (0x hex): ABI-encoded output, or the UTF-8 JWE JSON. */
  payload: string;
  /** A public output's ABI type (the manifest's `abi`, or the `abiOneOf` entry the run chose). */
  abiType?: string;
  sealed: boolean;
  /** The input commitment of the evidence (format 2, runtime/attestation/evidence.ts). */
  inputHash: Hex32;
  outputHash: Hex32;
  /** The run's evidence: in clear for a public Cryptlet, a JWE for the parties of a sealed one. */
  evidence: BundleEvidence;
  /** When the output was produced, Unix seconds: the result's `timestamp`. */
  producedAt: number;
  /** Sandbox engine and the run's wall time in ms. */
  engine: string;
  /** The engine's exact version (the manifest's `engineVersion`, equal to the installed one). */
  engineVersion: string;
  durationMs: number;
  /** Number of host calls (fetches) recorded in `inputHash`. */
  hostCalls: number;
  /**
   * Consortium mode, sealed result: the members' signatures, gathered in the execute stage while the JWE's
   * content-encryption key was in memory (runtime/consortium/cosigner.ts). Signatures are public.
   */
  cosigned?: CheckedCosign;
}

/** `attest` job payload. */
export interface AttestJob {
  runId: string;
  resultId: Hex32;
  requestId: Hex32;
  codeHash: Hex32;
  /** For oracle targets: the request's callback gas limit. */
  callbackGasLimit?: number;
  /** Consortium mode: when this member's turn to lead comes (Unix ms; runtime/consortium/leadership.ts). */
  leadAfter?: number;
}

/** `writes` job payload: which result goes where. The result itself is read from the result store. */
export interface WriteJob {
  runId: string;
  resultId: Hex32;
  chain: string;
  mode: WriteMode;
  /** The contract, when the manifest names one; else the chain configuration's. */
  address?: string;
  callbackGasLimit?: number;
}

/** `runs` job payload. */
export interface RunJob {
  runId: string;
  resultId: Hex32;
  eventId: Hex32;
  cryptlet: { name: string; version: string; cryptletId: Hex32; codeHash: Hex32 };
}

/**
 * `batches` job payload: one generation of a package's micro-batch queue (runtime/queue/microBatch.ts). Its
 * results are not in the payload: the job claims them from Redis when it first runs.
 */
export interface BatchJob {
  codeHash: Hex32;
  cryptletId: Hex32;
  /** The generation this job claims (0, 1, 2, … per code hash). */
  generation: number;
}

/** Job ids: one per stage and result, so that duplicates are no-ops. */
export const jobIds = {
  run: (resultId: string) => `run-${resultId}`,
  execute: (resultId: string) => `execute-${resultId}`,
  attest: (resultId: string) => `attest-${resultId}`,
  write: (chain: string, mode: string, resultId: string) => `write-${chain}-${mode}-${resultId}`,
  /** One per package and generation of its micro-batch queue. */
  batch: (codeHash: string, generation: number) => `batch-${codeHash}-${generation}`,
};

/**
 * Retry policy per stage. Failures a `CryptletError` marks as not retryable fail at once (BullMQ
 * `UnrecoverableError`); others retry with exponential backoff (delay in ms doubles from `delay`).
 */
export const RETRY: Record<
  "events" | "execute" | "attest" | "writes" | "runs" | "batches",
  Pick<JobsOptions, "attempts" | "backoff">
> = {
  events: { attempts: 5, backoff: { type: "exponential", delay: 200 } },
  execute: { attempts: 3, backoff: { type: "exponential", delay: 500 } },
  attest: { attempts: 8, backoff: { type: "exponential", delay: 500 } },
  writes: { attempts: 12, backoff: { type: "exponential", delay: 1000 } },
  runs: { attempts: 5, backoff: { type: "exponential", delay: 500 } },
  /** A batch retries the results that failed with a retryable error (the others are kept or already failed). */
  batches: { attempts: 8, backoff: { type: "exponential", delay: 500 } },
};

/** Completed or failed jobs kept per queue at most (BullMQ `KeepJobs.count`), whatever their age. */
export const MAX_KEPT_JOBS = 100_000;

/**
 * How long completed and failed jobs stay in Redis (BullMQ `removeOnComplete`/`removeOnFail`): the deployment's
 * retention in seconds (the result store's, default 7 days) and at most {@link MAX_KEPT_JOBS} per queue, so that
 * duplicates are absorbed by job id and failures can be inspected, while Redis stays bounded. A job (with its
 * `:logs`, `:dependencies` and `:processed` keys) goes when either bound is passed.
 * @param retentionSeconds - seconds.
 */
export function jobRetention(retentionSeconds: number): Pick<JobsOptions, "removeOnComplete" | "removeOnFail"> {
  return {
    removeOnComplete: { age: retentionSeconds, count: MAX_KEPT_JOBS },
    removeOnFail: { age: retentionSeconds, count: MAX_KEPT_JOBS },
  };
}

/** {@link jobRetention} with the default retention (7 days). */
export const RETENTION: Pick<JobsOptions, "removeOnComplete" | "removeOnFail"> = jobRetention(7 * 24 * 3600);
