/**
 * The chaos run's stack: its own `redis-server` (AOF), the Key Vault emulator and its managed-identity endpoint
 * behind fault proxies, two `hardhat node` chains each behind a JSON-RPC fault proxy, the contracts deployed and
 * the registry configured, price-median built with both chains as `record` targets, signed and deployed, a
 * runtime configuration file that names only the proxies, and a submitting {@link Pipeline} in this process
 * (without workers: the work is done by separate worker processes, see processes.ts).
 *
 * @module
 */
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { Contract, id } from "ethers";
import { exportJWK, generateKeyPair } from "jose";

import type { Hex32 } from "../../attestation/eip712.ts";
import { closePipelineContext, createPipelineContext, keyProviderOf, keyVaultCredentialOf } from "../../bootstrap.ts";
import { deployCryptletContracts, interfaceOf, type DeployedContracts } from "../../chains/contracts.ts";
import { ensureContractsBuilt } from "../../chains/contractsBuild.ts";
import { parseRuntimeConfig, type RuntimeConfig } from "../../config.ts";
import { startKeyVaultEmulator, type KeyVaultEmulator } from "../../keys/emulator/startKeyVaultEmulator.ts";
import { KeyVaultSigner } from "../../keys/KeyVaultSigner.ts";
import { buildPackage } from "../../packages/build.ts";
import type { BuiltPackage } from "../../packages/builtPackage.ts";
import { signPackage } from "../../packages/signature.ts";
import type { PipelineContext } from "../../queue/context.ts";
import { Pipeline } from "../../queue/pipeline.ts";
import { startLocalChain, type LocalChain } from "../localChain.ts";
import { startHttpFaultProxy, startTcpFaultProxy, type FaultProxy } from "./faultProxy.ts";
import { startChaosRedis, type ChaosRedis, type RedisPersistence } from "./processes.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..", "..");

/** The chaos run's consortium id (EIP-712 salt). */
export const CHAOS_CONSORTIUM_ID = id("cryptlet-chaos-consortium") as Hex32;

/** The chaos run's chains: name and chain id. */
export const CHAOS_CHAINS = [
  { name: "consortium", chainId: 77_001 },
  { name: "public", chainId: 77_002 },
] as const;

/** A chain of the chaos stack. */
export interface ChaosChain {
  name: string;
  node: LocalChain;
  contracts: DeployedContracts;
  /** The JSON-RPC proxy the runtime talks to. */
  proxy: FaultProxy;
  /** The first block after the deployment: writes of the run are at or after it. */
  firstBlock: number;
}

/** The running chaos stack. */
export interface ChaosStack {
  dir: string;
  redis: ChaosRedis;
  vault: KeyVaultEmulator;
  /** Proxies of the vault (TLS, TCP) and of its managed-identity endpoint (HTTP): one fault applies to both. */
  vaultProxies: FaultProxy[];
  chains: ChaosChain[];
  pkg: BuiltPackage;
  /** The relayer (chain writer) address, the same on every chain. */
  relayer: string;
  config: RuntimeConfig;
  configFile: string;
  caFile: string;
  ctx: PipelineContext;
  /** Submits events (no workers in this process). */
  pipeline: Pipeline;
  /** Stops everything; deletes the run's directory unless `keepDir`. */
  stop(keepDir?: boolean): Promise<void>;
}

/**
 * Starts the chaos stack.
 * @param options.redisPort - the port of the run's own `redis-server`.
 * @param options.redisPersistence - `aof` (default) or `none`.
 * @param options.onProgress - one line per step.
 * @throws the errors of `redis-server`, `hardhat node` and the emulator's start (`ERR_CHAOS_PROCESS_START`,
 *   `ERR_LOCAL_CHAIN_START`).
 */
export async function startChaosStack(options: {
  redisPort: number;
  redisPersistence?: RedisPersistence;
  onProgress?: (step: string, detail: string) => void;
}): Promise<ChaosStack> {
  const progress = options.onProgress ?? (() => undefined);
  const dir = await mkdtemp(path.join(os.tmpdir(), "cryptlet-chaos-"));
  const cleanup: (() => Promise<void>)[] = [];
  try {
    progress("contracts", "checking the build");
    await ensureContractsBuilt();

    progress("redis", `redis-server on port ${options.redisPort}, ${options.redisPersistence ?? "aof"}, ${dir}`);
    const redis = await startChaosRedis(options.redisPort, dir, options.redisPersistence ?? "aof");
    // A production role refuses a Redis without persistence (runtime/queue/redisDurability.ts); `none` is chosen
    // on purpose here, to watch what it loses, so this process and the workers (which inherit the environment)
    // are told to run anyway.
    if (options.redisPersistence === "none") process.env.CRYPTLET_ALLOW_REDIS_WITHOUT_PERSISTENCE = "1";
    cleanup.push(() => redis.stop());

    progress("key vault", "emulator behind fault proxies");
    const vault = await startKeyVaultEmulator({});
    cleanup.push(() => vault.close());
    for (const name of ["result-signer-1", "result-signer-2", "relayer"])
      vault.ensureKey(name, { kty: "EC", crv: "P-256K" });
    vault.ensureKey("attestation", { kty: "EC", crv: "P-256" });
    const vaultProxy = await startTcpFaultProxy(Number(new URL(vault.vaultUrl).port));
    const identity = new URL(vault.identityEndpoint);
    const identityProxy = await startHttpFaultProxy(identity.origin, { onlySendRawTransaction: false });
    cleanup.push(
      () => vaultProxy.close(),
      () => identityProxy.close(),
    );
    const caFile = path.join(dir, "keyvault-ca.pem");
    await writeFile(caFile, vault.ca);
    const vaultUrl = `https://127.0.0.1:${vaultProxy.port}`;
    const keyRef = (keyName: string) => ({ type: "azure-key-vault" as const, vaultUrl, keyName });
    const keyVault = {
      disableChallengeResourceVerification: true,
      caFile,
      identityEndpoint: `http://127.0.0.1:${identityProxy.port}${identity.pathname}`,
      identityHeader: vault.identityHeader,
    };
    const draft = parseRuntimeConfig(
      {
        consortiumId: CHAOS_CONSORTIUM_ID,
        keys: { resultSigners: [keyRef("result-signer-1")], attestation: keyRef("attestation"), keyVault },
        chains: [{ name: "x", chainId: 1, rpcUrl: "http://127.0.0.1", signer: keyRef("relayer") }],
      },
      "chaos stack",
      dir,
    );
    const credential = keyVaultCredentialOf(draft);
    const addressOf = (name: string) => new KeyVaultSigner(keyProviderOf(keyRef(name), draft, credential)).getAddress();
    const signerAddresses = await Promise.all(["result-signer-1", "result-signer-2"].map(addressOf));
    const relayer = await addressOf("relayer");

    progress("package", "price-median with `record` targets on both chains");
    const pkgDir = path.join(dir, "price-median");
    await cp(path.join(ROOT, "cryptlets", "price-median"), pkgDir, {
      recursive: true,
      filter: (src) => !src.includes(`${path.sep}data`) && !src.includes(`${path.sep}dist`),
    });
    const manifest = JSON.parse(await readFile(path.join(pkgDir, "cryptlet.json"), "utf8")) as Record<string, unknown>;
    manifest.targets = CHAOS_CHAINS.map((c) => ({ chain: c.name, mode: "record" }));
    manifest.triggers = [{ type: "http" }];
    await writeFile(path.join(pkgDir, "cryptlet.json"), JSON.stringify(manifest, null, 2));
    const pkg = await buildPackage(pkgDir);
    await rm(pkgDir, { recursive: true, force: true });

    const chains: ChaosChain[] = [];
    for (const spec of CHAOS_CHAINS) {
      progress("chains", `hardhat node ${spec.name} (chain id ${spec.chainId}) behind a JSON-RPC fault proxy`);
      const node = await startLocalChain(spec.chainId);
      cleanup.push(() => node.stop());
      const contracts = await deployCryptletContracts(node.funder, {
        consortiumId: CHAOS_CONSORTIUM_ID,
        signers: signerAddresses,
        threshold: 2,
        feeds: {},
      });
      const registry = new Contract(contracts.registry, interfaceOf("CryptletRegistry"), node.funder);
      await (await registry.getFunction("approveCodeHash")(pkg.cryptletId, pkg.codeHash)).wait();
      await node.fund(relayer, "100000");
      const proxy = await startHttpFaultProxy(node.url);
      cleanup.push(() => proxy.close());
      chains.push({ name: spec.name, node, contracts, proxy, firstBlock: (await node.provider.getBlockNumber()) + 1 });
    }

    progress("config", "runtime configuration (every endpoint through its proxy)");
    const publisher = await generateKeyPair("ES256", { extractable: true });
    const publisherJwk = { ...(await exportJWK(publisher.publicKey)), kid: "chaos-publisher" };
    const document = {
      redisUrl: redis.url,
      prefix: "chaos",
      consortiumId: CHAOS_CONSORTIUM_ID,
      issuer: "cryptlet-chaos",
      keys: {
        resultSigners: [keyRef("result-signer-1"), keyRef("result-signer-2")],
        attestation: keyRef("attestation"),
        keyVault,
      },
      chains: chains.map(({ name, node, contracts, proxy }) => ({
        name,
        chainId: node.chainId,
        rpcUrl: `http://127.0.0.1:${proxy.port}`,
        confirmations: 1,
        pollIntervalMs: 100,
        fees: { maxFeePerGasGwei: "100", maxPriorityFeePerGasGwei: "2", replaceAfterMs: 15000 },
        signer: keyRef("relayer"),
        contracts: { registry: contracts.registry, oracle: contracts.oracle, ledger: contracts.ledger },
      })),
      packages: { trustedPublishers: [publisherJwk] },
    };
    const configFile = path.join(dir, "cryptlet.config.json");
    await writeFile(configFile, JSON.stringify(document, null, 2), { mode: 0o600 });
    const config = parseRuntimeConfig(document, configFile, dir);
    const ctx = await createPipelineContext(config);
    cleanup.push(() => closePipelineContext(ctx));
    await ctx.packages.deploy(pkg, await signPackage(pkg, publisher.privateKey, "chaos-publisher"));
    const pipeline = new Pipeline(ctx);
    cleanup.push(() => pipeline.close());

    return {
      dir,
      redis,
      vault,
      vaultProxies: [vaultProxy, identityProxy],
      chains,
      pkg,
      relayer,
      config,
      configFile,
      caFile,
      ctx,
      pipeline,
      async stop(keepDir = false) {
        for (const step of cleanup.reverse()) await step().catch(() => undefined);
        if (!keepDir) await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
