/**
 * The local stack behind `npm start`: everything the runtime needs, on this machine, with no cloud account:
 * Redis (given), two local chains (a consortium chain and a "public" one), the Key Vault emulator (keys kept in
 * `.cryptlet/keyvault.json` between runs), the Cryptlet contracts deployed and the registry configured, every
 * package in `cryptlets/` built, signed by a local publisher key and deployed, and a runtime configuration file
 * (`.cryptlet/cryptlet.config.json`) that the CLI and worker processes read.
 *
 * The contracts are compiled first when their artifacts are missing or stale (`ensureContractsBuilt`), and every
 * package is built from source on every start. The chains are new on every start, so the stack clears its own
 * Redis prefix (lanes, runs, queues) and its bundles folder first: a second run starts clean instead of resuming
 * nonces of chains that no longer exist.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

import { Contract, id } from "ethers";
import { Redis } from "ioredis";
import { exportJWK, generateKeyPair, type JWK } from "jose";

import type { Hex32 } from "../attestation/eip712.ts";
import { deployCryptletContracts, interfaceOf, type DeployedContracts } from "../chains/contracts.ts";
import { ensureContractsBuilt } from "../chains/contractsBuild.ts";
import { deployCrosschainRoute, type DeployedRoute } from "../crosschain/deploy.ts";
import { crosschainConfirmationsOf } from "../crosschain/routes.ts";
import { closePipelineContext, createPipelineContext, keyProviderOf, keyVaultCredentialOf } from "../bootstrap.ts";
import { parseRuntimeConfig, type RuntimeConfig } from "../config.ts";
import { consortiumApiOf } from "../consortium/member.ts";
import { CryptletError } from "../errors.ts";
import { startKeyVaultEmulator, type KeyVaultEmulator } from "../keys/emulator/startKeyVaultEmulator.ts";
import { KeyVaultSigner } from "../keys/KeyVaultSigner.ts";
import { buildPackage } from "../packages/build.ts";
import type { BuiltPackage } from "../packages/builtPackage.ts";
import { signPackage } from "../packages/signature.ts";
import { apiDepsOf } from "../api/deps.ts";
import { LocalIssuer } from "../api/localIssuer.ts";
import { startApiServer, type ApiServer } from "../api/server.ts";
import { buildJwks } from "../attestation/token.ts";
import type { PipelineContext } from "../queue/context.ts";
import { TriggerService } from "../triggers/TriggerService.ts";
import { Pipeline } from "../queue/pipeline.ts";
import { clearBundles } from "./bundles.ts";
import { ERR_REDIS_UNAVAILABLE } from "./errors.ts";
import { portInUse, startLocalChain, type LocalChain } from "./localChain.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..");

/** Where the local stack keeps its state by default (git-ignored). */
export const DEFAULT_STATE_DIR = path.join(ROOT, ".cryptlet");

/** The local consortium's id (EIP-712 salt). */
export const LOCAL_CONSORTIUM_ID = id("cryptlet-local-consortium") as Hex32;

/** The two local chains: name, chain id and preferred port. */
export const LOCAL_CHAINS = [
  { name: "consortium", chainId: 31337, port: 8545 },
  { name: "public", chainId: 31338, port: 8546 },
] as const;

/** A chain of the running stack. */
export interface StackChain {
  name: string;
  chain: LocalChain;
  contracts: DeployedContracts;
}

/** The running local stack. */
export interface LocalStack {
  config: RuntimeConfig;
  configFile: string;
  redis: Redis;
  vault: KeyVaultEmulator;
  chains: StackChain[];
  packages: BuiltPackage[];
  ctx: PipelineContext;
  pipeline: Pipeline;
  /** The HTTP API (when started), and the local token issuer it trusts. */
  api?: { server: ApiServer; issuer: LocalIssuer };
  /** The trusted result-signer addresses (the registries' signer set). */
  signerAddresses: string[];
  /**
   * The cross-chain route of each package with a `crosschain` trigger: a lockbox for a development token on the
   * consortium chain and its wrapped token on the public chain (runtime/crosschain/deploy.ts).
   */
  crosschain: { cryptlet: string; route: DeployedRoute }[];
  /** Where keys, the configuration file and bundles are kept. */
  stateDir: string;
  /** Stops workers, chains and the emulator. */
  stop(): Promise<void>;
}

/** A progress callback: one step of the start-up, with a short detail. */
export type StackProgress = (step: string, detail?: string) => void;

/**
 * Starts the local stack.
 * @param options.redisUrl - Redis (default `REDIS_URL` or `redis://127.0.0.1:6379`).
 * @param options.prefix - Redis key prefix of the local stack (default `cryptlet-dev`); cleared at start.
 * @param options.workers - start pipeline workers in this process (default true).
 * @throws CryptletError `ERR_REDIS_UNAVAILABLE` with instructions when Redis does not answer.
 */
export async function startLocalStack(
  options: {
    redisUrl?: string;
    prefix?: string;
    workers?: boolean;
    onProgress?: StackProgress;
    /** Where keys and the configuration file are kept. Default `.cryptlet/` in the project. */
    stateDir?: string;
    /** Use the preferred ports 8545/8546 (and 8080 for the API) when free (default true); tests pass false. */
    preferredPorts?: boolean;
    /** Start the HTTP API (default true). */
    api?: boolean;
  } = {},
): Promise<LocalStack> {
  const progress = options.onProgress ?? (() => undefined);
  const redisUrl = options.redisUrl ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  const prefix = options.prefix ?? "cryptlet-dev";
  const stateDir = options.stateDir ?? DEFAULT_STATE_DIR;
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });

  progress("contracts", "checking the build");
  const built = await ensureContractsBuilt({ onProgress: (detail) => progress("contracts", detail) });
  progress("contracts", built === "built" ? "compiled" : "up to date");
  clearBundles(stateDir);

  progress("redis", redisUrl);
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true, retryStrategy: () => null });
  try {
    await redis.connect();
    await redis.ping();
  } catch (cause) {
    redis.disconnect();
    throw new CryptletError(
      ERR_REDIS_UNAVAILABLE,
      `no Redis answers at ${redisUrl}: start one (e.g. \`redis-server --daemonize yes\`, or \`apt-get install redis-server\`) or set REDIS_URL`,
      { cause, details: { redisUrl } },
    );
  }
  await clearPrefix(redis, prefix);
  // The prefix's Redis epoch went with it: forget the one this machine expected (runtime/queue/redisDurability.ts).
  rmSync(path.join(stateDir, `redis-epoch.${prefix}.json`), { force: true });

  progress("key vault", "starting the emulator");
  const vault = await startKeyVaultEmulator({ persistPath: path.join(stateDir, "keyvault.json") });
  const caFile = path.join(stateDir, "keyvault-ca.pem");
  writeFileSync(caFile, vault.ca);
  for (const name of ["result-signer-1", "result-signer-2", "relayer"])
    vault.ensureKey(name, { kty: "EC", crv: "P-256K" });
  vault.ensureKey("attestation", { kty: "EC", crv: "P-256" });
  vault.ensureKey("input-encryption", { kty: "RSA", keySize: 2048 });
  const keyRef = (keyName: string) => ({ type: "azure-key-vault" as const, vaultUrl: vault.vaultUrl, keyName });
  const keyVault = {
    disableChallengeResourceVerification: true,
    caFile,
    identityEndpoint: vault.identityEndpoint,
    identityHeader: vault.identityHeader,
  };

  // Addresses of the vault's signing keys, through the real SDK.
  const draft = parseRuntimeConfig(
    {
      consortiumId: LOCAL_CONSORTIUM_ID,
      keys: { resultSigners: [keyRef("result-signer-1")], attestation: keyRef("attestation"), keyVault },
      chains: [{ name: "x", chainId: 1, rpcUrl: "http://127.0.0.1", signer: keyRef("relayer") }],
    },
    "local stack",
    stateDir,
  );
  const credential = keyVaultCredentialOf(draft);
  const addressOf = (name: string) => new KeyVaultSigner(keyProviderOf(keyRef(name), draft, credential)).getAddress();
  const signerAddresses = await Promise.all(["result-signer-1", "result-signer-2"].map(addressOf));
  const relayer = await addressOf("relayer");

  progress("packages", "building cryptlets/");
  const packages = await buildAllPackages();
  const feeds = Object.fromEntries(
    packages
      .filter((p) => p.manifest.targets.some((t) => t.mode === "feed"))
      .map((p) => [
        p.manifest.name,
        { cryptletId: p.cryptletId, decimals: 8, description: `${p.manifest.name} (ETH / USD)` },
      ]),
  );

  const chains: StackChain[] = [];
  for (const spec of LOCAL_CHAINS) {
    progress("chains", `starting ${spec.name} (chain id ${spec.chainId})`);
    const usePort = options.preferredPorts !== false && !(await portInUse(spec.port));
    const chain = await startLocalChain(spec.chainId, usePort ? { port: spec.port } : {});
    const contracts = await deployCryptletContracts(chain.funder, {
      consortiumId: LOCAL_CONSORTIUM_ID,
      signers: signerAddresses,
      // One operator holds both keys here (a consortium names each member's own key: docs/consortium.md).
      signerMembers: Object.fromEntries(signerAddresses.map((a, i) => [a, `cryptlet-local/result-signer-${i + 1}`])),
      threshold: 2,
      feeds,
    });
    const registry = new Contract(contracts.registry, interfaceOf("CryptletRegistry"), chain.funder);
    for (const pkg of packages) {
      await (await registry.getFunction("approveCodeHash")(pkg.cryptletId, pkg.codeHash)).wait();
    }
    await chain.fund(relayer, "1000");
    chains.push({ name: spec.name, chain, contracts });
  }

  // Cross-chain packages: a route from the consortium chain to the public one, trusted by both registries.
  const crosschain: LocalStack["crosschain"] = [];
  for (const pkg of packages.filter((p) => crosschainConfirmationsOf(p.manifest) !== undefined)) {
    progress("crosschain", `deploying a lockbox and its wrapped token for ${pkg.manifest.name}`);
    const [source, destination] = chains;
    const route = await deployCrosschainRoute(
      { deployer: source!.chain.funder, chainId: source!.chain.chainId, registry: source!.contracts.registry },
      {
        deployer: destination!.chain.funder,
        chainId: destination!.chain.chainId,
        registry: destination!.contracts.registry,
      },
      { cryptletId: pkg.cryptletId },
    );
    crosschain.push({ cryptlet: pkg.manifest.name, route });
  }
  const crosschainContractsOf = (chainId: number) => {
    const entries = crosschain.flatMap(({ cryptlet, route }) => {
      const entry = {
        ...(route.sourceChainId === chainId ? { lockbox: route.lockbox } : {}),
        ...(route.destinationChainId === chainId ? { wrappedTokens: [route.wrappedToken] } : {}),
      };
      return Object.keys(entry).length > 0 ? [[cryptlet, entry] as const] : [];
    });
    return entries.length > 0 ? { crosschain: Object.fromEntries(entries) } : {};
  };
  // A block every second on both chains, with or without traffic (automining stays on), as on a fast chain: the
  // confirmations a trigger waits for, and the deadline a refund is observed after, need blocks to advance.
  for (const { chain } of chains) await chain.provider.send("evm_setIntervalMining", [1000]);

  progress("config", "writing .cryptlet/cryptlet.config.json");
  const publisher = await publisherKey(stateDir);
  const document = {
    redisUrl,
    prefix,
    consortiumId: LOCAL_CONSORTIUM_ID,
    issuer: "cryptlet-local",
    keys: {
      resultSigners: [keyRef("result-signer-1"), keyRef("result-signer-2")],
      attestation: keyRef("attestation"),
      inputEncryption: keyRef("input-encryption"),
      keyVault,
    },
    // Development: a Redis without AOF is accepted with a warning (production refuses it: docs/operations.md).
    role: "development",
    chains: chains.map(({ name, chain, contracts }) => ({
      name,
      chainId: chain.chainId,
      rpcUrl: chain.url,
      // `hardhat node` serves WebSocket JSON-RPC on its HTTP port: the listener scans as each block arrives.
      wsUrl: chain.url.replace(/^http/, "ws"),
      confirmations: 1,
      pollIntervalMs: 100,
      fees: { maxFeePerGasGwei: "100", maxPriorityFeePerGasGwei: "2", replaceAfterMs: 15000 },
      signer: keyRef("relayer"),
      contracts: {
        registry: contracts.registry,
        oracle: contracts.oracle,
        ledger: contracts.ledger,
        feeds: contracts.feeds,
        ...crosschainContractsOf(chain.chainId),
      },
      anchor: { maxBatchSize: 256, maxBatchDelayMs: 1000, pollIntervalMs: 250 },
    })),
    packages: { trustedPublishers: [publisher.publicJwk] },
    // Oracle requests and chain logs: a local chain answers at once and has no rate limit (docs/triggers.md).
    triggers: { pollIntervalMs: 250, schedules: false },
  };
  const configFile = path.join(stateDir, "cryptlet.config.json");
  writeFileSync(configFile, JSON.stringify(document, null, 2), { mode: 0o600 });
  const config = parseRuntimeConfig(document, configFile, stateDir);

  progress("pipeline", "connecting workers");
  const ctx = await createPipelineContext(config);
  for (const pkg of packages) {
    await ctx.packages.deploy(pkg, await signPackage(pkg, publisher.privateJwk, publisher.publicJwk.kid!));
  }
  // The attestation keys, published where every registry points (a file for the local stack; a static https URL
  // or IPFS in a deployment), with their SHA-256: `cryptlet verify --rpc` needs neither the API nor a configuration.
  progress("registries", "publishing the attestation keys (JWKS) and their hash");
  const jwksFile = path.join(stateDir, "attestation-jwks.json");
  const jwksBytes = Buffer.from(`${JSON.stringify(await buildJwks([ctx.attestationKey]), null, 2)}\n`);
  writeFileSync(jwksFile, jwksBytes);
  const jwksSha256 = `0x${createHash("sha256").update(jwksBytes).digest("hex")}`;
  for (const { chain, contracts } of chains) {
    const registry = new Contract(contracts.registry, interfaceOf("CryptletRegistry"), chain.funder);
    await (await registry.getFunction("publishAttestationKeys")(pathToFileURL(jwksFile).href, jwksSha256)).wait();
  }
  const pipeline = new Pipeline(ctx);
  if (options.workers !== false) pipeline.startWorkers();

  let triggers: TriggerService | undefined;
  if (options.workers !== false) {
    progress("triggers", "chain logs and oracle requests");
    // Schedules stay off locally: price-median's every-minute schedule has no observations to aggregate.
    triggers = new TriggerService({
      pipeline,
      schedulesEnabled: config.triggers.schedules,
      ...(config.triggers.pollIntervalMs === undefined ? {} : { pollIntervalMs: config.triggers.pollIntervalMs }),
    });
    await triggers.start();
  }

  let api: LocalStack["api"];
  if (options.api !== false) {
    progress("api", "starting the HTTP API");
    const issuer = await LocalIssuer.create({ keyFile: path.join(stateDir, "api-issuer.private.jwk.json") });
    const deps = apiDepsOf(ctx, pipeline, {
      auth: issuer.authOptions(),
      localIssuer: issuer,
      // A consortium member serves POST /v1/consortium/proposals (docs/consortium.md).
      ...(config.consortium ? { consortium: consortiumApiOf(ctx, config.consortium) } : {}),
      verification: {
        trustedSigners: signerAddresses,
        threshold: 2,
        approvedCodeHashes: packages.map((p) => p.codeHash),
      },
    });
    const port = options.preferredPorts !== false && !(await portInUse(8080)) ? 8080 : 0;
    api = { server: await startApiServer(deps, { port }), issuer };
  }

  return {
    config,
    configFile,
    redis,
    vault,
    chains,
    packages,
    ctx,
    pipeline,
    ...(api ? { api } : {}),
    signerAddresses,
    crosschain,
    stateDir,
    async stop() {
      await api?.server.close();
      await triggers?.stop();
      await pipeline.close();
      await closePipelineContext(ctx);
      await Promise.all(chains.map((c) => c.chain.stop()));
      await vault.close();
      redis.disconnect();
    },
  };
}

/** Builds every package folder under `cryptlets/` (a folder with a `cryptlet.json`). */
export async function buildAllPackages(): Promise<BuiltPackage[]> {
  const dir = path.join(ROOT, "cryptlets");
  const folders = readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(path.join(dir, d.name, "cryptlet.json")))
    .map((d) => path.join(dir, d.name))
    .sort();
  const built: BuiltPackage[] = [];
  for (const folder of folders) built.push(await buildPackage(folder));
  return built;
}

/** The local publisher key (`<stateDir>/publisher.private.jwk.json`), created on first use. */
async function publisherKey(stateDir: string): Promise<{ privateJwk: JWK; publicJwk: JWK }> {
  const file = path.join(stateDir, "publisher.private.jwk.json");
  if (!existsSync(file)) {
    const pair = await generateKeyPair("ES256", { extractable: true });
    writeFileSync(file, JSON.stringify({ ...(await exportJWK(pair.privateKey)), kid: "local-publisher" }), {
      mode: 0o600,
    });
  }
  const privateJwk = JSON.parse(readFileSync(file, "utf8")) as JWK;
  const { d: _d, ...publicJwk } = privateJwk;
  return { privateJwk, publicJwk };
}

/** Deletes every key under `prefix` (the local stack's own; never called on a shared deployment). */
async function clearPrefix(redis: Redis, prefix: string): Promise<void> {
  for (const pattern of [`${prefix}:*`, `{${prefix}-packages}:*`]) {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== "0");
  }
}
