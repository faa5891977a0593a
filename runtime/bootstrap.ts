/**
 * Builds the pipeline's dependencies from a {@link RuntimeConfig}: Redis, the package store, the sandbox pool,
 * the key providers (Azure Key Vault through the real SDK, or local JWK files), one chain writer per chain.
 * The same code serves production and the local stack; only the configuration differs.
 *
 * @module
 */
import { readFileSync } from "node:fs";

import { DefaultAzureCredential, type TokenCredential } from "@azure/identity";

import { DirectoryBundleArchive } from "./archive/DirectoryBundleArchive.ts";
import { AnchorBatcher } from "./chains/anchor.ts";
import { isTrustedSigner } from "./chains/registryTrust.ts";
import { ChainRpc } from "./chains/rpc.ts";
import { ChainWriter } from "./chains/writer.ts";
import { gatheringCosigner } from "./consortium/cosigner.ts";
import { ConsortiumConfigError } from "./consortium/errors.ts";
import type { KeyRef, RuntimeConfig } from "./config.ts";
import { AzureKeyVaultProvider } from "./keys/AzureKeyVaultProvider.ts";
import { GuardedCredential } from "./keys/guardedCredential.ts";
import type { KeyProvider } from "./keys/KeyProvider.ts";
import { KeyVaultSigner } from "./keys/KeyVaultSigner.ts";
import { LocalKeyProvider } from "./keys/LocalKeyProvider.ts";
import { RegistryGatedKeyProvider } from "./keys/RegistryGatedKeyProvider.ts";
import { PackageStore } from "./packages/PackageStore.ts";
import type { PipelineChain, PipelineContext, PipelineLogger } from "./queue/context.ts";
import { openRedis, redisEndpointOf } from "./queue/redisClient.ts";
import { checkRedisDurability, type RedisDurabilityGuard } from "./queue/redisDurability.ts";
import { ResultStore } from "./queue/results.ts";
import { SandboxPool } from "./sandbox/pool.ts";

/** The package store's key prefix for a deployment prefix (hash-tagged for Redis Cluster). */
export const packagePrefixOf = (prefix: string) => `{${prefix}-packages}:`;

/**
 * The credential for every Key Vault provider: `DefaultAzureCredential`, its token requests under the
 * configuration's `resilience.identity` deadline, retries and breaker ({@link GuardedCredential}). When the
 * configuration names a managed-identity endpoint (the emulator's), it is exported as
 * `IDENTITY_ENDPOINT`/`IDENTITY_HEADER` first, exactly as Azure App Service does for a real vault.
 */
export function keyVaultCredentialOf(config: RuntimeConfig, logger?: PipelineLogger): TokenCredential {
  const { identityEndpoint, identityHeader } = config.keys.keyVault;
  if (identityEndpoint && identityHeader) {
    process.env.IDENTITY_ENDPOINT = identityEndpoint;
    process.env.IDENTITY_HEADER = identityHeader;
  }
  return new GuardedCredential(new DefaultAzureCredential(), {
    policy: config.resilience.identity,
    ...(logger ? { logger } : {}),
  });
}

/**
 * Creates the key provider a {@link KeyRef} names. One credential is shared by every Key Vault provider; requests
 * to a vault follow the configuration's `resilience.keyVault` (one breaker per vault and process).
 */
export function keyProviderOf(
  ref: KeyRef,
  config: RuntimeConfig,
  credential?: TokenCredential,
  logger?: PipelineLogger,
): KeyProvider {
  if (ref.type === "local") return new LocalKeyProvider({ keyFile: ref.jwkPath });
  const { disableChallengeResourceVerification, caFile } = config.keys.keyVault;
  return new AzureKeyVaultProvider({
    vaultUrl: ref.vaultUrl,
    keyName: ref.keyName,
    ...(ref.keyVersion ? { keyVersion: ref.keyVersion } : {}),
    credential: credential ?? keyVaultCredentialOf(config, logger),
    policy: config.resilience.keyVault,
    ...(logger ? { logger } : {}),
    clientOptions: {
      disableChallengeResourceVerification,
      ...(caFile ? { tlsOptions: { ca: readFileSync(caFile, "utf8") } } : {}),
    },
  });
}

/**
 * Whether `CryptletRegistry.isSigner(address)` holds on every chain with a registry (at its latest block); true when
 * no chain has one (nothing on-chain checks result signatures then).
 * @throws the chain's `ERR_CHAIN_RPC_UNAVAILABLE` when a registry cannot be read.
 */
export async function trustedByEveryRegistry(chains: readonly PipelineChain[], address: string): Promise<boolean> {
  for (const chain of chains) {
    const registry = chain.config.contracts.registry;
    if (!registry) continue;
    if (!(await isTrustedSigner(chain.writer.rpc, registry, address))) return false;
  }
  return true;
}

/**
 * Builds a {@link PipelineContext}. Checks every chain's chain id against its endpoint.
 * Checks Redis durability first (`ERR_REDIS_NOT_DURABLE`, `ERR_REDIS_DATA_LOST`: runtime/queue/redisDurability.ts).
 * With a `consortium` section the context is in consortium mode (`ctx.consortium`: results co-signed by M members
 * through the protocol's leader side, runtime/consortium/cosigner.ts `gatheringCosigner`).
 * @throws the chain writer's `ERR_CHAIN_ID_MISMATCH` / `ERR_CHAIN_RPC_UNAVAILABLE`, the key providers' errors;
 *   `ERR_CONSORTIUM_CONFIG_INVALID` when a consortium member has other than one result-signing key.
 */
export async function createPipelineContext(config: RuntimeConfig, logger?: PipelineLogger): Promise<PipelineContext> {
  // A consortium member signs with its one own key; the others' signatures come from its peers (runtime/consortium).
  const consortium = config.consortium;
  if (consortium && config.keys.resultSigners.length !== 1) {
    throw new ConsortiumConfigError("a consortium member has exactly one result-signing key (keys.resultSigners)");
  }
  // Every command of the stores' client has a deadline (BullMQ's connections: runtime/queue/redisClient.ts).
  const redis = openRedis(redisEndpointOf(config), {
    maxRetriesPerRequest: null,
    commandTimeout: config.resilience.redis.commandTimeoutMs,
    connectTimeout: config.resilience.redis.connectTimeoutMs,
  });
  const credential = [
    ...config.keys.resultSigners,
    config.keys.attestation,
    ...(config.keys.inputEncryption ? [config.keys.inputEncryption] : []),
    ...config.chains.flatMap((c) => [c.signer, ...c.laneSigners]),
    ...(config.consortium ? [config.consortium.requestKey] : []),
  ].some((k) => k.type === "azure-key-vault")
    ? keyVaultCredentialOf(config, logger)
    : undefined;
  // Redis durability first, before anything reads state from it (runtime/queue/redisDurability.ts).
  let durability: RedisDurabilityGuard;
  try {
    durability = await checkRedisDurability(redis, {
      role: config.role,
      allowWithoutPersistence: config.redisDurability.allowWithoutPersistence,
      prefix: config.prefix,
      epochFile: config.redisDurability.epochFile,
      redisUrl: config.redisUrl,
      ...(logger ? { logger } : {}),
    });
  } catch (error) {
    redis.disconnect();
    throw error;
  }
  const chains = new Map<string, PipelineChain>();
  const writers: ChainWriter[] = [];
  try {
    for (const chain of config.chains) {
      const writer = new ChainWriter({
        chain,
        signer: [chain.signer, ...chain.laneSigners].map(
          (ref) => new KeyVaultSigner(keyProviderOf(ref, config, credential, logger)),
        ),
        rpc: new ChainRpc(chain, {
          requestTimeoutMs: config.resilience.rpcTimeoutMs,
          breaker: config.resilience.rpcBreaker,
          ...(logger ? { logger } : {}),
        }),
        redis,
        prefix: config.prefix,
        retentionSeconds: config.retention.seconds,
        ...(logger ? { logger } : {}),
      });
      writers.push(writer);
      await writer.start();
      chains.set(chain.name, { config: chain, writer });
    }
  } catch (error) {
    // Nothing is left open when a chain does not answer: a failing `cryptlet invoke` exits instead of hanging.
    for (const writer of writers) writer.rpc.destroy();
    durability.close();
    redis.disconnect();
    throw error;
  }
  const resultSigners = config.keys.resultSigners.map((ref) => {
    const provider = keyProviderOf(ref, config, credential, logger);
    // A Key Vault key that follows its latest version moves to a new version only once the chains trust it.
    return new KeyVaultSigner(
      provider instanceof AzureKeyVaultProvider && provider.pinnedVersion === undefined
        ? new RegistryGatedKeyProvider({
            inner: provider,
            isTrusted: (address) => trustedByEveryRegistry([...chains.values()], address),
            checkIntervalMs: config.keys.keyVault.signerCheckIntervalMs,
            ...(logger ? { logger } : {}),
          })
        : provider,
    );
  });

  for (const chain of chains.values()) {
    if (chain.config.contracts.ledger) {
      chain.anchors = new AnchorBatcher({
        writer: chain.writer,
        redis,
        consortiumId: config.consortiumId,
        signers: resultSigners,
        prefix: config.prefix,
        retentionSeconds: config.retention.seconds,
        ...(logger ? { logger } : {}),
      });
    }
  }
  return {
    redis,
    redisUrl: config.redisUrl,
    ...(config.redisCluster ? { redisCluster: config.redisCluster } : {}),
    prefix: config.prefix,
    consortiumId: config.consortiumId,
    packages: new PackageStore({
      redis,
      trustedPublisherKeys: config.packages.trustedPublishers,
      prefix: packagePrefixOf(config.prefix),
    }),
    sandbox: new SandboxPool(config.sandboxPoolSize),
    resultSigners,
    attestationKey: keyProviderOf(config.keys.attestation, config, credential, logger),
    ...(config.keys.inputEncryption
      ? { inputKey: keyProviderOf(config.keys.inputEncryption, config, credential) }
      : {}),
    durability,
    runtime: { issuer: config.issuer, version: "0.1.0", buildHash: "unknown" },
    chains,
    results: new ResultStore(redis, config.prefix, {
      retentionSeconds: config.retention.seconds,
      ...(config.retention.archive ? { archive: new DirectoryBundleArchive(config.retention.archive.path) } : {}),
    }),
    backlog: config.backlog,
    ...(config.microBatch ? { microBatch: config.microBatch } : {}),
    ...(logger ? { logger } : {}),
    ...(consortium
      ? {
          consortium: {
            settings: consortium,
            cosigner: gatheringCosigner({
              settings: consortium,
              signer: resultSigners[0]!,
              requestKey: keyProviderOf(consortium.requestKey, config, credential, logger),
            }),
          },
        }
      : {}),
  };
}

/** Releases what {@link createPipelineContext} opened (after the pipeline is closed). */
export async function closePipelineContext(ctx: PipelineContext): Promise<void> {
  await ctx.sandbox.dispose();
  for (const chain of ctx.chains.values()) chain.writer.rpc.destroy();
  ctx.durability?.close();
  await ctx.redis.quit();
}
