/**
 * Assembling one member's consortium side from its pipeline context (docs/consortium.md, "Configuration"): the API's
 * {@link ConsortiumApi} (who may send proposals, and how they are evaluated) and the leader's gathering options.
 * Everything comes from this member's own resources: its package store, sandbox pool, result-signing key, Redis
 * (for the `jti` replay cache), its chains' registries and its chains' JSON-RPC clients (to check chain events).
 *
 * @module
 */
import type { ConsortiumApi } from "../api/deps.ts";
import type { ResultSigner } from "../attestation/signing.ts";
import type { KeyProvider } from "../keys/KeyProvider.ts";
import type { PipelineContext } from "../queue/context.ts";
import { ConsortiumConfigError } from "./errors.ts";
import type { ChainClients, JsonRpcClient } from "./eventCheck.ts";
import type { FollowerDeps, RegistrySource } from "./follower.ts";
import type { GatherOptions } from "./leader.ts";
import { PeerAuthenticator, RedisReplayCache, type ReplayCache } from "./peerAuth.ts";
import type { ConsortiumSettings } from "./protocol.ts";

/** The chains' registries of a pipeline context, read through each chain's JSON-RPC provider. */
export function registrySourcesOf(ctx: Pick<PipelineContext, "chains">): RegistrySource[] {
  const sources: RegistrySource[] = [];
  for (const [name, chain] of ctx.chains) {
    const registry = chain.config.contracts.registry;
    if (registry) sources.push({ chain: name, runner: chain.writer.rpc.provider, registry });
  }
  return sources;
}

/**
 * The chains of a pipeline context by EIP-155 chain id, each read through its JSON-RPC client (`ChainRpc`: failover,
 * retries, circuit breaker): where a follower checks a chain event (runtime/consortium/eventCheck.ts).
 */
export function eventChainsOf(ctx: Pick<PipelineContext, "chains">): ChainClients {
  const chains = new Map<number, JsonRpcClient>();
  for (const chain of ctx.chains.values()) chains.set(chain.config.chainId, chain.writer.rpc);
  return chains;
}

/**
 * The API side of a member: a {@link PeerAuthenticator} (replay cache in the member's Redis under its prefix) and
 * the follower's dependencies.
 * @param ctx - this member's pipeline context (`resultSigners[0]` is its result-signing key).
 * @param settings - its consortium settings.
 * @param options.replay - another replay cache (default Redis); `options.signer` another result-signing key;
 *   `options.registries` other registries than the context's chains'; `options.registryTimeoutMs` their deadline;
 *   `options.chains` other chains to check events on than the context's (by chain id); `options.chainTimeoutMs` the
 *   deadline of each of those reads. The contracts a package listens to are the context's chain configurations'.
 * @throws {@link ConsortiumConfigError} when the context has no result-signing key or `self` is not a member.
 */
export function consortiumApiOf(
  ctx: Pick<PipelineContext, "chains" | "redis" | "prefix" | "consortiumId" | "packages" | "sandbox" | "resultSigners">,
  settings: ConsortiumSettings,
  options: {
    replay?: ReplayCache;
    signer?: ResultSigner;
    registries?: RegistrySource[];
    registryTimeoutMs?: number;
    chains?: ChainClients;
    chainTimeoutMs?: number;
  } = {},
): ConsortiumApi {
  const signer = options.signer ?? ctx.resultSigners[0];
  if (signer === undefined) throw new ConsortiumConfigError("a member needs its result-signing key");
  const follower: FollowerDeps = {
    settings,
    consortiumId: ctx.consortiumId,
    packages: ctx.packages,
    sandbox: ctx.sandbox,
    signer,
    registries: options.registries ?? registrySourcesOf(ctx),
    ...(options.registryTimeoutMs === undefined ? {} : { registryTimeoutMs: options.registryTimeoutMs }),
    chains: options.chains ?? eventChainsOf(ctx),
    chainConfigs: [...ctx.chains.values()].map((c) => c.config),
    ...(options.chainTimeoutMs === undefined ? {} : { chainTimeoutMs: options.chainTimeoutMs }),
  };
  const authenticator = new PeerAuthenticator({
    self: settings.self,
    members: settings.members,
    replay: options.replay ?? new RedisReplayCache(ctx.redis, ctx.prefix),
  });
  return { authenticator, follower };
}

/**
 * The leader's options of `gatherCosignatures` (runtime/consortium/leader.ts) for this member (without the transport).
 * @throws {@link ConsortiumConfigError} when `self` is not a member or there is no result-signing key.
 */
export function gatherOptionsOf(
  settings: ConsortiumSettings,
  keys: { signer: ResultSigner | undefined; requestKey: KeyProvider },
): GatherOptions {
  const self = settings.members.find((m) => m.id === settings.self);
  if (!self) throw new ConsortiumConfigError(`self ${settings.self} is not a member`);
  if (!keys.signer) throw new ConsortiumConfigError("a member needs its result-signing key");
  return {
    self,
    signer: keys.signer,
    requestKey: keys.requestKey,
    peers: settings.members.filter((m) => m.id !== settings.self),
    threshold: settings.threshold,
    ...(settings.answerTimeoutMs === undefined ? {} : { answerTimeoutMs: settings.answerTimeoutMs }),
  };
}
