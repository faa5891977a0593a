/**
 * What the API needs, injected once: the stores, the pipeline (to submit events and manage the dead-letter
 * queue), Redis (readiness and the API's invocation records), the chains (readiness), the attestation keys
 * (JWKS), the consortium's verification settings, the auth settings, and limits.
 *
 * @module
 */

import type { ChainConfig } from "../chains/config.ts";
import type { FollowerDeps } from "../consortium/follower.ts";
import type { PeerAuthenticator } from "../consortium/peerAuth.ts";
import type { ChainRpc } from "../chains/rpc.ts";
import type { KeyProvider, PublicKeyInfo } from "../keys/KeyProvider.ts";
import type { PackageStore } from "../packages/PackageStore.ts";
import type { SandboxPool } from "../sandbox/pool.ts";
import type { PipelineContext, PipelineLogger } from "../queue/context.ts";
import type { Pipeline } from "../queue/pipeline.ts";
import type { ResultStore } from "../queue/results.ts";
import type { AuthOptions, BearerAuthenticator } from "./auth.ts";
import type { LocalIssuer } from "./localIssuer.ts";
import type { RedisClient } from "../queue/redisClient.ts";

/** The part of the {@link Pipeline} the API uses. */
export type ApiPipeline = Pick<Pipeline, "submit" | "queue" | "replay">;

/** What `POST /v1/verify` checks bundles against. */
export interface VerificationSettings {
  /** The consortium's trusted result-signer addresses (the registry's signer set). */
  trustedSigners: readonly string[];
  /** Distinct trusted signatures required (M): the registry's threshold. Required, no default (a guessed 1 would
   *  pass a bundle with one valid and one forged signature). */
  threshold: number;
  /** The consortium id (EIP-712 salt); the `consortium` check is skipped when absent. */
  consortiumId?: string;
  /** Approved code hashes (any Cryptlet; a codeHash commits to its manifest name); `codeHash` is skipped when absent. */
  approvedCodeHashes?: readonly string[];
  /** Expected attestation token issuer (the runtime id); not compared when absent. */
  attestationIssuer?: string;
}

/** Request size and rate limits. */
export interface ApiLimits {
  /** Largest JSON body, bytes. Default 1048576 (1 MiB). */
  jsonBytes?: number;
  /** Largest package deploy body (base64 files), bytes. Default 8388608 (8 MiB: a 5 MiB package in base64 plus the manifest). */
  deployBytes?: number;
  /**
   * Largest co-signing proposal body (`POST /v1/consortium/proposals`), bytes: it carries the run's evidence, every
   * fetched body in base64 (by default up to 8 fetches of 1 MiB). Default 16777216 (16 MiB).
   */
  proposalBytes?: number;
  /**
   * Deepest nesting of objects and arrays in a JSON body, levels (the top-level value is level 1); deeper bodies
   * answer `400 ERR_API_BODY_TOO_DEEP`. Default 128; at most `MAX_CANONICAL_JSON_DEPTH` (1000).
   */
  jsonDepth?: number;
  /** Rate-limit window, ms. Default 60000. */
  rateWindowMs?: number;
  /** Requests per window per token subject (`iss` + `sub`). Default 600. */
  perSubject?: number;
  /** Requests per window per client IP (every route, before authentication). Default 1200. */
  perIp?: number;
}

/** A consortium member's API side (docs/consortium.md): who may send proposals, and how they are evaluated. */
export interface ConsortiumApi {
  /** Verifies peer request tokens (runtime/consortium/peerAuth.ts). */
  authenticator: PeerAuthenticator;
  /** This member's settings, package store, sandbox, result-signing key and chains' registries. */
  follower: FollowerDeps;
}

/** The API's dependencies. */
export interface ApiDeps {
  packages: PackageStore;
  results: ResultStore;
  pipeline: ApiPipeline;
  /** Redis for readiness and the API's invocation records. */
  redis: Pick<RedisClient, "ping" | "get" | "set" | "del">;
  /** Key prefix of the deployment (the API's keys are `<prefix>:api:…`). */
  prefix: string;
  /**
   * Chains to probe for readiness (`eth_blockNumber`); their `config` gives the audit report's chain names and
   * explorer links (`explorerUrl`).
   */
  chains?: ReadonlyMap<
    string,
    {
      /** The chain's JSON-RPC client: `send` for readiness; `provider` (with the client's request deadline) for
       *  the on-chain checks of `POST /v1/verify` with `onChain`. */
      writer: { rpc: Pick<ChainRpc, "send"> & Partial<Pick<ChainRpc, "provider">> };
      config?: Pick<ChainConfig, "chainId" | "explorerUrl">;
    }
  >;
  /**
   * The sandbox pool `POST /v1/verify` re-executes in (`rerun: true`), the pipeline's; without it such a request is
   * answered 501.
   */
  sandbox?: SandboxPool;
  /** Attestation keys published at `/.well-known/jwks.json` (the current key, plus earlier versions during a rotation). */
  attestationKeys: readonly (KeyProvider | PublicKeyInfo)[];
  verification: VerificationSettings;
  /** Token verification: options, or a ready authenticator. */
  auth: AuthOptions | BearerAuthenticator;
  /** The dev stack's issuer: its JWKS and discovery document are served under `/local-issuer`. */
  localIssuer?: LocalIssuer;
  /**
   * The absolute URL clients reach the API at, e.g. `https://cryptlet.example.com` (behind a proxy, the proxy's).
   * Used for the local issuer's `jwks_uri`, never the request's `Host` header. `startApiServer` defaults it to the
   * bound URL; without it the local issuer serves no discovery document.
   */
  publicUrl?: string;
  limits?: ApiLimits;
  logger?: PipelineLogger;
  /** Consortium membership: serves `POST /v1/consortium/proposals` (peer-authenticated). Default none. */
  consortium?: ConsortiumApi;
  /** Validate responses against the OpenAPI document too (tests). Default false. */
  validateResponses?: boolean;
  /** Serve the BullMQ dashboard at `/admin/queues` (admin role). Default true. */
  dashboard?: boolean;
}

/**
 * The dependencies of an API process from a {@link PipelineContext} and its {@link Pipeline}.
 * @param ctx - the pipeline context (stores, Redis, chains, attestation key, consortium id).
 * @param pipeline - the pipeline (submit, queues, replay).
 * @param options - auth, trusted signers and the rest of {@link ApiDeps}.
 *
 * @example
 * ```ts
 * import { apiDepsOf } from "./runtime/api/deps.ts";
 * import { startApiServer } from "./runtime/api/server.ts";
 * const server = await startApiServer(apiDepsOf(ctx, pipeline, { auth, verification: { trustedSigners, threshold: 2 } }), { port: 8080 });
 * ```
 */
export function apiDepsOf(
  ctx: PipelineContext,
  pipeline: ApiPipeline,
  options: Omit<
    ApiDeps,
    "packages" | "results" | "pipeline" | "redis" | "prefix" | "chains" | "sandbox" | "attestationKeys"
  > &
    Partial<Pick<ApiDeps, "attestationKeys">>,
): ApiDeps {
  return {
    packages: ctx.packages,
    results: ctx.results,
    pipeline,
    redis: ctx.redis,
    prefix: ctx.prefix,
    chains: ctx.chains,
    sandbox: ctx.sandbox,
    attestationKeys: options.attestationKeys ?? [ctx.attestationKey],
    ...(ctx.logger ? { logger: ctx.logger } : {}),
    ...options,
    verification: {
      consortiumId: ctx.consortiumId,
      attestationIssuer: ctx.runtime.issuer,
      ...options.verification,
    },
  };
}
