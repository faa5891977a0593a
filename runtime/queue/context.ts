/**
 * What the pipeline's workers need, passed in once (constructor injection): stores, the sandbox pool, the
 * signing keys, the chains. Production code and tests build the same object; only the adapters differ.
 *
 * @module
 */

import type { Hex32 } from "../attestation/eip712.ts";
import type { ResultSigner } from "../attestation/signing.ts";
import type { AnchorBatcher } from "../chains/anchor.ts";
import type { ChainConfig } from "../chains/config.ts";
import type { ChainWriter } from "../chains/writer.ts";
import type { PipelineConsortium } from "../consortium/cosigner.ts";
import type { KeyProvider } from "../keys/KeyProvider.ts";
import type { PackageStore } from "../packages/PackageStore.ts";
import type { SandboxPool } from "../sandbox/pool.ts";
import type { RedisDurabilityGuard } from "./redisDurability.ts";
import type { BacklogLimits } from "./backlog.ts";
import type { MicroBatchSettings } from "./microBatch.ts";
import type { ResultStore } from "./results.ts";
import type { RedisClient, RedisClusterSettings } from "./redisClient.ts";

/** A logger (pino-compatible subset). Never give it secrets or sealed plaintext. */
export interface PipelineLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** One chain as the pipeline uses it. */
export interface PipelineChain {
  config: ChainConfig;
  writer: ChainWriter;
  /** The anchor batcher of this chain, for `anchor` targets. */
  anchors?: AnchorService;
}

/** The part of the anchor batcher (runtime/chains/anchor.ts) the pipeline uses. */
export type AnchorService = Pick<
  AnchorBatcher,
  "enqueue" | "enqueueMany" | "anchorOf" | "run" | "statusOf" | "nextDueInMs"
>;

/** The pipeline's dependencies. */
export interface PipelineContext {
  /** A Redis client for the stores (BullMQ opens its own connections from `redisUrl` or `redisCluster`). */
  redis: RedisClient;
  /** Redis URL for BullMQ's connections, e.g. `redis://127.0.0.1:6379` (the name logs show, on a cluster). */
  redisUrl: string;
  /** A Redis Cluster's seed nodes: BullMQ connects to the cluster, with queue keys under `{prefix}` (runtime/queue/redisClient.ts). */
  redisCluster?: RedisClusterSettings;
  /** Key prefix of every queue and store key. */
  prefix: string;
  /** The consortium id: EIP-712 domain salt. */
  consortiumId: Hex32;
  packages: PackageStore;
  sandbox: SandboxPool;
  /** Signers of results and batches (threshold M of the registry's N). */
  resultSigners: readonly ResultSigner[];
  /** The P-256 key that signs attestation tokens. */
  attestationKey: KeyProvider;
  /**
   * The RSA key that wraps the data keys of sealed inputs at rest (`RSA-OAEP-256`; runtime/queue/sealedInput.ts).
   * Without it, events for sealed Cryptlets are refused (`ERR_SEALED_INPUT_KEY_MISSING`).
   */
  inputKey?: KeyProvider;
  /** Runtime identity for the attestation token. */
  runtime: { issuer: string; version: string; buildHash: string };
  /** Chains by name. */
  chains: ReadonlyMap<string, PipelineChain>;
  /** The Redis durability guard (epoch marker), when the context was built with the check (runtime/bootstrap.ts). */
  durability?: RedisDurabilityGuard;
  results: ResultStore;
  /** The bounds of the backlog (runs in flight), see runtime/queue/backlog.ts. Default: its defaults. */
  backlog?: BacklogLimits;
  logger?: PipelineLogger;
  /**
   * Consortium mode (runtime/consortium, docs/consortium.md): this runtime is one member; `resultSigners` holds its
   * own single result-signing key, results carry the event's time as `timestamp`, and every result is co-signed by
   * M members before it is written. Absent: a single runtime signing with all of `resultSigners`.
   */
  consortium?: PipelineConsortium;
  /**
   * Micro-batching of anchor-only runs (runtime/queue/microBatch.ts): one `batches` job for many runs of a package.
   * Absent: every run has its own jobs.
   */
  microBatch?: MicroBatchSettings;
}
