/**
 * Test support: the whole pipeline on real parts: Redis (BullMQ), `hardhat node` JSON-RPC chains, the Key Vault
 * emulator reached through the real Azure SDK (result signers, chain writer key and attestation key), a built and
 * publisher-signed Cryptlet package in the package store, and the contracts deployed and configured.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { DefaultAzureCredential } from "@azure/identity";
import { KeyClient } from "@azure/keyvault-keys";
import { Contract, id } from "ethers";
import { exportJWK, generateKeyPair } from "jose";

import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import { parseChainsConfig } from "../../runtime/chains/config.ts";
import { AnchorBatcher } from "../../runtime/chains/anchor.ts";
import { deployCryptletContracts, interfaceOf, type DeployedContracts } from "../../runtime/chains/contracts.ts";
import { ChainWriter } from "../../runtime/chains/writer.ts";
import { AzureKeyVaultProvider } from "../../runtime/keys/AzureKeyVaultProvider.ts";
import { KeyVaultSigner } from "../../runtime/keys/KeyVaultSigner.ts";
import { buildPackage } from "../../runtime/packages/build.ts";
import type { BuiltPackage } from "../../runtime/packages/builtPackage.ts";
import { PackageStore } from "../../runtime/packages/PackageStore.ts";
import { signPackage } from "../../runtime/packages/signature.ts";
import type { Party } from "../../runtime/packages/manifest.ts";
import type { PipelineChain, PipelineContext, PipelineLogger } from "../../runtime/queue/context.ts";
import { Pipeline, type WorkerOptions } from "../../runtime/queue/pipeline.ts";
import type { BacklogLimits } from "../../runtime/queue/backlog.ts";
import type { MicroBatchSettings } from "../../runtime/queue/microBatch.ts";
import { DirectoryBundleArchive } from "../../runtime/archive/DirectoryBundleArchive.ts";
import { openRedis, scanKeys, type RedisClient } from "../../runtime/queue/redisClient.ts";
import { ResultStore } from "../../runtime/queue/results.ts";
import { SandboxPool } from "../../runtime/sandbox/pool.ts";
import { startHardhatNode, type HardhatNode } from "./hardhatNode.ts";
import { startTestVault, type TestVault } from "./keyvault.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..");
export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
export const STACK_CONSORTIUM_ID = id("pipeline-test-consortium") as Hex32;

/** A chain of the stack. */
export interface StackChain {
  name: string;
  node: HardhatNode;
  contracts: DeployedContracts;
  ledger: Contract;
  registry: Contract;
}

/** The running stack. */
export interface PipelineStack {
  prefix: string;
  redis: RedisClient;
  vault: TestVault;
  pkg: BuiltPackage;
  chains: StackChain[];
  ctx: PipelineContext;
  pipeline: Pipeline;
  resultSignerAddresses: string[];
  /** Writes a runtime configuration file equivalent to this stack (for worker processes); returns its path. */
  writeConfig(): Promise<string>;
  /** Builds a second pipeline on the same Redis, chains and keys (another process's view). */
  newPipeline(): Pipeline;
  close(): Promise<void>;
}

/**
 * Starts the stack. The Cryptlet is `cryptlets/price-median` with its targets replaced by `targets`.
 * @param chains - name and chain id of each chain.
 */
export async function startPipelineStack(options: {
  chains: { name: string; chainId: number }[];
  targets: { chain: string; mode: "record" | "feed" | "anchor" | "oracle" }[];
  /** The Cryptlet's triggers in place of price-median's (manifest `triggers`), e.g. an `oracle` trigger. */
  triggers?: Record<string, unknown>[];
  workers?: WorkerOptions | false;
  confirmations?: number;
  /** Further relayer keys per chain (`laneSigners`, one lane each, funded on every chain). Default 0. */
  laneSigners?: number;
  /** Seal the Cryptlet's output for these parties (manifest `output: {sealed: true, parties}`). */
  sealedFor?: Party[];
  /** Redis (default {@link REDIS_URL}). */
  redisUrl?: string;
  /** A Redis Cluster's seed nodes, in place of `redisUrl` (runtime/queue/redisClient.ts). */
  redisCluster?: string[];
  logger?: PipelineLogger;
  /** Retention of results, lane and anchor records, jobs (seconds), and the bundle archive's directory. */
  retentionSeconds?: number;
  archiveDirectory?: string;
  /** Backlog bounds (runtime/queue/backlog.ts). */
  backlog?: BacklogLimits;
  /** Micro-batching of anchor-only runs (runtime/queue/microBatch.ts), in the context and the written configuration. */
  microBatch?: MicroBatchSettings;
  /** More fields of each chain's configuration (e.g. `wsUrl`), given its node once started. */
  chainSettings?: (node: HardhatNode) => Promise<Record<string, unknown>> | Record<string, unknown>;
}): Promise<PipelineStack> {
  const prefix = `t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const redisUrl = options.redisUrl ?? REDIS_URL;
  const cluster = options.redisCluster ? { nodes: options.redisCluster } : undefined;
  const redis = openRedis({ url: redisUrl, ...(cluster ? { cluster } : {}) });
  const vault = await startTestVault();
  const credential = new DefaultAzureCredential();
  const keys = new KeyClient(vault.vaultUrl, credential, vault.clientOptions);
  const provider = (keyName: string) =>
    new AzureKeyVaultProvider({ vaultUrl: vault.vaultUrl, keyName, credential, clientOptions: vault.clientOptions });
  await Promise.all([
    keys.createEcKey("result-signer-1", { curve: "P-256K" }),
    keys.createEcKey("result-signer-2", { curve: "P-256K" }),
    keys.createEcKey("chain-writer", { curve: "P-256K" }),
    ...Array.from({ length: options.laneSigners ?? 0 }, (_, i) =>
      keys.createEcKey(`chain-writer-lane-${i + 1}`, { curve: "P-256K" }),
    ),
    keys.createEcKey("attestation", { curve: "P-256" }),
    keys.createRsaKey("input-encryption", { keySize: 2048 }),
  ]);
  const resultSigners = [
    new KeyVaultSigner(provider("result-signer-1")),
    new KeyVaultSigner(provider("result-signer-2")),
  ];
  const resultSignerAddresses = await Promise.all(resultSigners.map((s) => s.getAddress()));
  const chainSigner = new KeyVaultSigner(provider("chain-writer"));
  const chainSignerAddress = await chainSigner.getAddress();
  const laneKeyNames = Array.from({ length: options.laneSigners ?? 0 }, (_, i) => `chain-writer-lane-${i + 1}`);
  const laneSigners = laneKeyNames.map((name) => new KeyVaultSigner(provider(name)));
  const laneSignerAddresses = await Promise.all(laneSigners.map((s) => s.getAddress()));

  // The Cryptlet: price-median, retargeted.
  const dir = await mkdtemp(path.join(os.tmpdir(), "cryptlet-stack-"));
  await cp(path.join(ROOT, "cryptlets", "price-median"), dir, {
    recursive: true,
    filter: (src) => !src.includes(`${path.sep}data`) && !src.includes(`${path.sep}dist`),
  });
  const manifest = JSON.parse(await readFile(path.join(dir, "cryptlet.json"), "utf8")) as Record<string, unknown>;
  manifest.targets = options.targets;
  if (options.triggers) manifest.triggers = options.triggers;
  if (options.sealedFor) manifest.output = { sealed: true, parties: options.sealedFor };
  await writeFile(path.join(dir, "cryptlet.json"), JSON.stringify(manifest, null, 2));
  const pkg = await buildPackage(dir);
  await rm(dir, { recursive: true, force: true });
  const publisher = await generateKeyPair("ES256", { extractable: true });
  const publisherJwk = { ...(await exportJWK(publisher.publicKey)), kid: "test-publisher" };
  const packages = new PackageStore({ redis, trustedPublisherKeys: [publisherJwk], prefix: `{${prefix}-packages}:` });
  await packages.deploy(pkg, await signPackage(pkg, publisher.privateKey, "test-publisher"));

  const chains: StackChain[] = [];
  const rawChains: Record<string, unknown>[] = [];
  const pipelineChains = new Map<string, PipelineChain>();
  for (const chain of options.chains) {
    const node = await startHardhatNode(chain.chainId);
    const contracts = await deployCryptletContracts(node.funder, {
      consortiumId: STACK_CONSORTIUM_ID,
      signers: resultSignerAddresses,
      threshold: 2,
      feeds: { [pkg.manifest.name]: { cryptletId: pkg.cryptletId, decimals: 8, description: "ETH / USD" } },
    });
    const registry = new Contract(contracts.registry, interfaceOf("CryptletRegistry"), node.funder);
    await (await registry.getFunction("approveCodeHash")(pkg.cryptletId, pkg.codeHash)).wait();
    for (const address of [chainSignerAddress, ...laneSignerAddresses]) await node.fund(address);
    const rawChain = {
      name: chain.name,
      chainId: chain.chainId,
      rpcUrl: node.url,
      confirmations: options.confirmations ?? 1,
      pollIntervalMs: 25,
      fees: { maxFeePerGasGwei: "100", replaceAfterMs: 2000 },
      signer: { type: "azure-key-vault", vaultUrl: vault.vaultUrl, keyName: "chain-writer" },
      ...(laneKeyNames.length > 0
        ? {
            laneSigners: laneKeyNames.map((keyName) => ({
              type: "azure-key-vault",
              vaultUrl: vault.vaultUrl,
              keyName,
            })),
          }
        : {}),
      contracts: {
        registry: contracts.registry,
        oracle: contracts.oracle,
        ledger: contracts.ledger,
        feeds: contracts.feeds,
      },
      anchor: { maxBatchSize: 256, maxBatchDelayMs: 300 },
      ...(options.chainSettings ? await options.chainSettings(node) : {}),
    };
    rawChains.push(rawChain);
    const config = parseChainsConfig({ chains: [rawChain] }).chains[0]!;
    const writer = new ChainWriter({
      chain: config,
      signer: [chainSigner, ...laneSigners],
      redis,
      prefix,
      ...(options.retentionSeconds ? { retentionSeconds: options.retentionSeconds } : {}),
    });
    await writer.start();
    const anchors = new AnchorBatcher({
      writer,
      redis,
      consortiumId: STACK_CONSORTIUM_ID,
      signers: resultSigners,
      prefix,
      ...(options.retentionSeconds ? { retentionSeconds: options.retentionSeconds } : {}),
    });
    pipelineChains.set(chain.name, { config, writer, anchors });
    chains.push({
      name: chain.name,
      node,
      contracts,
      registry,
      ledger: new Contract(contracts.ledger, interfaceOf("ResultLedger"), node.provider),
    });
  }

  const ctx: PipelineContext = {
    redis,
    redisUrl,
    ...(cluster ? { redisCluster: cluster } : {}),
    prefix,
    consortiumId: STACK_CONSORTIUM_ID,
    packages,
    sandbox: new SandboxPool(2),
    resultSigners,
    attestationKey: provider("attestation"),
    inputKey: provider("input-encryption"),
    runtime: { issuer: "test-runtime", version: "0.1.0", buildHash: "test" },
    chains: pipelineChains,
    results: new ResultStore(redis, prefix, {
      ...(options.retentionSeconds ? { retentionSeconds: options.retentionSeconds } : {}),
      ...(options.archiveDirectory ? { archive: new DirectoryBundleArchive(options.archiveDirectory) } : {}),
    }),
    ...(options.backlog ? { backlog: options.backlog } : {}),
    ...(options.microBatch ? { microBatch: options.microBatch } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  };
  const pipeline = new Pipeline(ctx);
  if (options.workers !== false)
    pipeline.startWorkers({ lockDurationMs: 5000, stalledIntervalMs: 2000, ...(options.workers ?? {}) });
  const extra: Pipeline[] = [];
  return {
    prefix,
    redis,
    vault,
    pkg,
    chains,
    ctx,
    pipeline,
    resultSignerAddresses,
    async writeConfig() {
      const dir = await mkdtemp(path.join(os.tmpdir(), "cryptlet-config-"));
      const key = (keyName: string) => ({ type: "azure-key-vault", vaultUrl: vault.vaultUrl, keyName });
      const file = path.join(dir, "cryptlet.config.json");
      await writeFile(path.join(dir, "ca.pem"), vault.ca);
      await writeFile(
        file,
        JSON.stringify({
          redisUrl,
          ...(cluster ? { redisCluster: cluster } : {}),
          prefix,
          consortiumId: STACK_CONSORTIUM_ID,
          issuer: "test-runtime",
          ...(options.microBatch ? { microBatch: options.microBatch } : {}),
          keys: {
            resultSigners: [key("result-signer-1"), key("result-signer-2")],
            attestation: key("attestation"),
            inputEncryption: key("input-encryption"),
            keyVault: { disableChallengeResourceVerification: true },
          },
          chains: rawChains,
        }),
      );
      return file;
    },
    newPipeline() {
      const p = new Pipeline(ctx);
      extra.push(p);
      return p;
    },
    async close() {
      await Promise.all([pipeline, ...extra].map((p) => p.close()));
      await ctx.sandbox.dispose();
      for (const chain of pipelineChains.values()) chain.writer.rpc.destroy();
      await Promise.all(chains.map((c) => c.node.stop()));
      // One DEL per key: on a cluster, the keys of one batch may be in different slots.
      for await (const found of scanKeys(redis, `*${prefix}*`)) await Promise.all(found.map((key) => redis.del(key)));
      await redis.quit();
      await vault.close();
    },
  };
}
