/**
 * Test support: a consortium of N member runtimes on shared hardhat chains. Each member has what a separate
 * organisation would have: its own Key Vault emulator (its own result-signing, relayer, attestation, input and
 * request-signing keys), its own Redis key prefix (its own queues and stores), its own package store, its own
 * pipeline and workers, and its own HTTP endpoint for peers. The registries list the N members' result signers
 * with threshold M. Nothing is shared but the chains (and the Redis server, under disjoint prefixes).
 *
 * The member's peer endpoint and its co-signer are given by the caller (`serve`, `cosigner`), so that the same
 * stack runs with the protocol's real implementation.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { DefaultAzureCredential } from "@azure/identity";
import { KeyClient } from "@azure/keyvault-keys";
import { Contract, id } from "ethers";
import { Redis } from "ioredis";
import { exportJWK, generateKeyPair, type JWK } from "jose";

import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import { parseChainsConfig } from "../../runtime/chains/config.ts";
import { deployCryptletContracts, interfaceOf, type DeployedContracts } from "../../runtime/chains/contracts.ts";
import { ChainWriter } from "../../runtime/chains/writer.ts";
import { apiDepsOf } from "../../runtime/api/deps.ts";
import { LocalIssuer } from "../../runtime/api/localIssuer.ts";
import { startApiServer } from "../../runtime/api/server.ts";
import { gatheringCosigner, type Cosigner } from "../../runtime/consortium/cosigner.ts";
import { eventChainsOf } from "../../runtime/consortium/member.ts";
import { MemoryReplayCache, PeerAuthenticator } from "../../runtime/consortium/peerAuth.ts";
import type { ConsortiumMember, ConsortiumSettings } from "../../runtime/consortium/protocol.ts";
import { AzureKeyVaultProvider } from "../../runtime/keys/AzureKeyVaultProvider.ts";
import { KeyVaultSigner } from "../../runtime/keys/KeyVaultSigner.ts";
import type { KeyProvider } from "../../runtime/keys/KeyProvider.ts";
import { buildPackage } from "../../runtime/packages/build.ts";
import type { BuiltPackage } from "../../runtime/packages/builtPackage.ts";
import { PackageStore } from "../../runtime/packages/PackageStore.ts";
import { signPackage } from "../../runtime/packages/signature.ts";
import type { PipelineChain, PipelineContext } from "../../runtime/queue/context.ts";
import { Pipeline } from "../../runtime/queue/pipeline.ts";
import { ResultStore } from "../../runtime/queue/results.ts";
import { SandboxPool } from "../../runtime/sandbox/pool.ts";
import type { Party } from "../../runtime/packages/manifest.ts";
import { freePort, startHardhatNode, type HardhatNode } from "./hardhatNode.ts";
import { startTestVault, type TestVault } from "./keyvault.ts";
import { REDIS_URL } from "./pipelineStack.ts";
import { serve, type Served } from "./serveProcess.ts";
import { request } from "../api/helpers.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..");
export const CONSORTIUM_TEST_ID = id("consortium-test") as Hex32;

/** A chain of the consortium stack. */
export interface ConsortiumChain {
  name: string;
  node: HardhatNode;
  contracts: DeployedContracts;
  registry: Contract;
  ledger: Contract;
}

/** One member's runtime. */
export interface MemberRuntime {
  id: string;
  /** Its peer endpoint's base URL (`http://127.0.0.1:<port>`). */
  url: string;
  port: number;
  prefix: string;
  vault: TestVault;
  packages: PackageStore;
  /** The member's result signer address (registered in every registry). */
  signer: string;
  /** Its request-signing key (P-256, in its own vault) and the public JWKS peers know it by. */
  requestKey: KeyProvider;
  jwks: { keys: JWK[] };
  /** Its result-signing key. */
  resultSigner: KeyVaultSigner;
  ctx: PipelineContext;
  pipeline: Pipeline;
  /** Whether the member is up (its endpoint serves and its workers run). */
  up: boolean;
  /** Its chains as a runtime configuration lists them. */
  rawChains: Record<string, unknown>[];
}

/** What a test provides per member: its peer endpoint and its co-signer (the protocol's implementation). */
export interface MemberWiring {
  /** Starts the member's peer endpoint on `member.port`; returns how to stop it. */
  serve(member: MemberRuntime, stack: ConsortiumStack): Promise<{ close(): Promise<void> }>;
  /** The member's co-signer (leader side). */
  cosigner(member: MemberRuntime, stack: ConsortiumStack): Cosigner;
}

/** The running consortium. */
export interface ConsortiumStack {
  members: MemberRuntime[];
  settings: (self: string) => ConsortiumSettings;
  chains: ConsortiumChain[];
  pkg: BuiltPackage;
  redis: Redis;
  threshold: number;
  /** Stops a member as a crash would look to its peers: its endpoint and its workers go away. */
  stop(memberId: string): Promise<void>;
  /** Starts a stopped member again (same keys, same Redis prefix). */
  start(memberId: string): Promise<void>;
  member(memberId: string): MemberRuntime;
  /**
   * Writes a runtime configuration file of a member, with its `consortium` section (for a worker process of that
   * member); returns its path and the member's Key Vault CA file.
   */
  writeMemberConfig(memberId: string): Promise<{ configFile: string; caFile: string }>;
  /**
   * Builds price-median again under another package name with other targets, signed by the stack's publisher, and
   * deploys it to every member's package store (approved on no registry); returns it.
   */
  deployVariant(
    name: string,
    targets: { chain: string; mode: "record" | "feed" | "oracle" | "anchor" }[],
  ): Promise<BuiltPackage>;
  close(): Promise<void>;
}

/**
 * Starts the consortium: `members` member runtimes, threshold `threshold`, the price-median Cryptlet retargeted.
 * @param failoverMs - each member's {@link ConsortiumSettings.failoverMs}.
 * @param retry - the co-signing stage's retry policy (short in tests).
 */
export async function startConsortiumStack(options: {
  members: number;
  threshold: number;
  chains: { name: string; chainId: number }[];
  targets: { chain: string; mode: "record" | "feed" | "oracle" }[];
  wiring: MemberWiring;
  failoverMs?: number;
  answerTimeoutMs?: number;
  retry?: { attempts: number; backoff: { type: "exponential"; delay: number } };
  sealedFor?: Party[];
}): Promise<ConsortiumStack> {
  const redis = new Redis(REDIS_URL);
  const base = `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const credential = new DefaultAzureCredential();

  // The Cryptlet: price-median, retargeted, signed by one publisher every member trusts.
  const build = async (edit: (manifest: Record<string, unknown>) => void): Promise<BuiltPackage> => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "cryptlet-consortium-"));
    await cp(path.join(ROOT, "cryptlets", "price-median"), dir, {
      recursive: true,
      filter: (src) => !src.includes(`${path.sep}data`) && !src.includes(`${path.sep}dist`),
    });
    const manifest = JSON.parse(await readFile(path.join(dir, "cryptlet.json"), "utf8")) as Record<string, unknown>;
    edit(manifest);
    await writeFile(path.join(dir, "cryptlet.json"), JSON.stringify(manifest, null, 2));
    const built = await buildPackage(dir);
    await rm(dir, { recursive: true, force: true });
    return built;
  };
  const pkg = await build((manifest) => {
    manifest.targets = options.targets;
    if (options.sealedFor) manifest.output = { sealed: true, parties: options.sealedFor };
  });
  const publisher = await generateKeyPair("ES256", { extractable: true });
  const publisherJwk = { ...(await exportJWK(publisher.publicKey)), kid: "test-publisher" };
  const packageSignature = await signPackage(pkg, publisher.privateKey, "test-publisher");

  // Members' keys, each in its own vault.
  const partial: Omit<MemberRuntime, "ctx" | "pipeline">[] = [];
  const chainSigners: KeyVaultSigner[] = [];
  for (let i = 0; i < options.members; i++) {
    const memberId = `member-${i + 1}`;
    const vault = await startTestVault();
    const keys = new KeyClient(vault.vaultUrl, credential, vault.clientOptions);
    await Promise.all([
      keys.createEcKey("result-signer", { curve: "P-256K" }),
      keys.createEcKey("chain-writer", { curve: "P-256K" }),
      keys.createEcKey("attestation", { curve: "P-256" }),
      keys.createEcKey("request-signing", { curve: "P-256" }),
      keys.createRsaKey("input-encryption", { keySize: 2048 }),
    ]);
    const provider = (keyName: string) =>
      new AzureKeyVaultProvider({ vaultUrl: vault.vaultUrl, keyName, credential, clientOptions: vault.clientOptions });
    const resultSigner = new KeyVaultSigner(provider("result-signer"));
    const requestKey = provider("request-signing");
    const { jwk } = await requestKey.getPublicKey();
    const port = await freePort();
    const prefix = `${base}-${memberId}`;
    const packages = new PackageStore({ redis, trustedPublisherKeys: [publisherJwk], prefix: `{${prefix}-packages}:` });
    await packages.deploy(pkg, packageSignature);
    chainSigners.push(new KeyVaultSigner(provider("chain-writer")));
    partial.push({
      id: memberId,
      url: `http://127.0.0.1:${port}`,
      port,
      prefix,
      vault,
      packages,
      signer: await resultSigner.getAddress(),
      requestKey,
      jwks: { keys: [{ ...jwk, kid: jwk.kid ?? `${memberId}-request` }] },
      resultSigner,
      up: false,
      rawChains: [],
    });
  }
  const memberList: ConsortiumMember[] = partial.map((m) => ({ id: m.id, url: m.url, jwks: m.jwks, signer: m.signer }));
  const settings = (self: string): ConsortiumSettings => ({
    self,
    members: memberList,
    threshold: options.threshold,
    answerTimeoutMs: options.answerTimeoutMs ?? 20_000,
    failoverMs: options.failoverMs ?? 15_000,
  });

  // Chains: registries list the members' result signers, threshold M.
  const chains: ConsortiumChain[] = [];
  for (const chain of options.chains) {
    const node = await startHardhatNode(chain.chainId);
    const contracts = await deployCryptletContracts(node.funder, {
      consortiumId: CONSORTIUM_TEST_ID,
      signers: partial.map((m) => m.signer),
      signerMembers: Object.fromEntries(partial.map((m) => [m.signer, m.id])),
      threshold: options.threshold,
      feeds: { [pkg.manifest.name]: { cryptletId: pkg.cryptletId, decimals: 8, description: "ETH / USD" } },
    });
    const registry = new Contract(contracts.registry, interfaceOf("CryptletRegistry"), node.funder);
    await (await registry.getFunction("approveCodeHash")(pkg.cryptletId, pkg.codeHash)).wait();
    for (const s of chainSigners) await node.fund(await s.getAddress());
    chains.push({
      name: chain.name,
      node,
      contracts,
      registry,
      ledger: new Contract(contracts.ledger, interfaceOf("ResultLedger"), node.provider),
    });
  }

  const servers = new Map<string, { close(): Promise<void> }>();
  const stack: ConsortiumStack = {
    members: [],
    settings,
    chains,
    pkg,
    redis,
    threshold: options.threshold,
    member(memberId) {
      const m = stack.members.find((x) => x.id === memberId);
      if (!m) throw new Error(`no member ${memberId}`);
      return m;
    },
    async writeMemberConfig(memberId) {
      const m = stack.member(memberId);
      const dir = await mkdtemp(path.join(os.tmpdir(), "cryptlet-member-"));
      const key = (keyName: string) => ({ type: "azure-key-vault", vaultUrl: m.vault.vaultUrl, keyName });
      const configFile = path.join(dir, "cryptlet.config.json");
      const caFile = path.join(dir, "ca.pem");
      await writeFile(caFile, m.vault.ca);
      const { self: _self, failoverMs, ...consortium } = settings(memberId);
      await writeFile(
        configFile,
        JSON.stringify({
          redisUrl: REDIS_URL,
          prefix: m.prefix,
          consortiumId: CONSORTIUM_TEST_ID,
          issuer: `test-${m.id}`,
          keys: {
            resultSigners: [key("result-signer")],
            attestation: key("attestation"),
            inputEncryption: key("input-encryption"),
            keyVault: { disableChallengeResourceVerification: true },
          },
          chains: m.rawChains,
          consortium: {
            self: memberId,
            ...consortium,
            failoverMs: Math.max(1, failoverMs ?? 1),
            requestKey: key("request-signing"),
          },
        }),
      );
      return { configFile, caFile };
    },
    async deployVariant(name, targets) {
      const variant = await build((manifest) => {
        manifest.name = name;
        manifest.targets = targets;
      });
      const signature = await signPackage(variant, publisher.privateKey, "test-publisher");
      for (const m of stack.members) await m.packages.deploy(variant, signature);
      return variant;
    },
    async stop(memberId) {
      const m = stack.member(memberId);
      if (!m.up) return;
      m.up = false;
      await servers.get(memberId)?.close();
      servers.delete(memberId);
      await m.pipeline.close();
    },
    async start(memberId) {
      const m = stack.member(memberId);
      if (m.up) return;
      m.pipeline = new Pipeline(m.ctx);
      m.pipeline.startWorkers({ lockDurationMs: 5000, stalledIntervalMs: 2000 });
      servers.set(memberId, await options.wiring.serve(m, stack));
      m.up = true;
    },
    async close() {
      for (const m of stack.members) await stack.stop(m.id).catch(() => undefined);
      for (const m of stack.members) {
        await m.ctx.sandbox.dispose();
        for (const chain of m.ctx.chains.values()) chain.writer.rpc.destroy();
      }
      await Promise.all(chains.map((c) => c.node.stop()));
      let cursor = "0";
      do {
        const [next, found] = await redis.scan(cursor, "MATCH", `*${base}*`, "COUNT", 1000);
        cursor = next;
        if (found.length > 0) await redis.del(...found);
      } while (cursor !== "0");
      await redis.quit();
      for (const m of stack.members) await m.vault.close();
    },
  };

  // A start that fails part-way (a member's port taken, a chain that does not answer) stops what it started:
  // the chains, the members, their vaults and Redis keys, before the error reaches the test.
  try {
    for (const [i, m] of partial.entries()) {
      const pipelineChains = new Map<string, PipelineChain>();
      for (const [j, chain] of chains.entries()) {
        const raw = {
          name: chain.name,
          chainId: options.chains[j]!.chainId,
          rpcUrl: chain.node.url,
          confirmations: 1,
          pollIntervalMs: 25,
          fees: { maxFeePerGasGwei: "100", replaceAfterMs: 2000 },
          signer: { type: "azure-key-vault", vaultUrl: m.vault.vaultUrl, keyName: "chain-writer" },
          contracts: {
            registry: chain.contracts.registry,
            oracle: chain.contracts.oracle,
            ledger: chain.contracts.ledger,
            feeds: chain.contracts.feeds,
          },
        };
        m.rawChains.push(raw);
        const config = parseChainsConfig({ chains: [raw] }).chains[0]!;
        const writer = new ChainWriter({ chain: config, signer: chainSigners[i]!, redis, prefix: m.prefix });
        await writer.start();
        pipelineChains.set(chain.name, { config, writer });
      }
      const provider = (keyName: string) =>
        new AzureKeyVaultProvider({
          vaultUrl: m.vault.vaultUrl,
          keyName,
          credential,
          clientOptions: m.vault.clientOptions,
        });
      const member = m as MemberRuntime;
      member.ctx = {
        redis,
        redisUrl: REDIS_URL,
        prefix: m.prefix,
        consortiumId: CONSORTIUM_TEST_ID,
        packages: m.packages,
        sandbox: new SandboxPool(1),
        resultSigners: [m.resultSigner],
        attestationKey: provider("attestation"),
        inputKey: provider("input-encryption"),
        runtime: { issuer: `test-${m.id}`, version: "0.1.0", buildHash: "test" },
        chains: pipelineChains,
        results: new ResultStore(redis, m.prefix),
      };
      stack.members.push(member);
    }
    for (const member of stack.members) {
      member.ctx.consortium = {
        settings: settings(member.id),
        cosigner: options.wiring.cosigner(member, stack),
        ...(options.retry ? { retry: options.retry } : {}),
      };
    }
    for (const member of stack.members) await stack.start(member.id);
  } catch (error) {
    await stack.close().catch(() => undefined);
    for (const m of partial)
      if (!stack.members.some((x) => x.id === m.id)) await m.vault.close().catch(() => undefined);
    throw error;
  }
  return stack;
}

/**
 * The protocol's real implementation as a member's wiring: its peer endpoint is the runtime's API server (the
 * `POST /v1/consortium/proposals` route, peer-authenticated against the members' JWKS, evaluated by the follower
 * with re-execution), and its co-signer the leader side over HTTP.
 */
export function protocolWiring(): MemberWiring {
  return {
    async serve(member, stack) {
      const settings = stack.settings(member.id);
      const issuer = await LocalIssuer.create();
      const api = await startApiServer(
        apiDepsOf(member.ctx, member.pipeline, {
          auth: issuer.authOptions(),
          verification: { trustedSigners: stack.members.map((m) => m.signer), threshold: stack.threshold },
          consortium: {
            authenticator: new PeerAuthenticator({
              self: member.id,
              members: settings.members,
              replay: new MemoryReplayCache(),
            }),
            follower: {
              settings,
              consortiumId: member.ctx.consortiumId,
              packages: member.packages,
              sandbox: member.ctx.sandbox,
              signer: member.resultSigner,
              registries: stack.chains.map((c) => ({
                chain: c.name,
                runner: c.node.provider,
                registry: c.contracts.registry,
              })),
              // Chain events are checked on the member's own chain clients, as in production (consortiumApiOf).
              chains: eventChainsOf(member.ctx),
              chainConfigs: [...member.ctx.chains.values()].map((c) => c.config),
            },
          },
          dashboard: false,
        }),
        { port: member.port },
      );
      return { close: () => api.close() };
    },
    cosigner(member, stack) {
      return gatheringCosigner({
        settings: stack.settings(member.id),
        signer: member.resultSigner,
        requestKey: member.requestKey,
      });
    },
  };
}

/** A member running as its own process, and the token issuer of its API. */
export interface MemberProcess {
  served: Served;
  issuer: LocalIssuer;
}

/**
 * Moves every member of `stack` into its own operating-system process: the in-process member stops, and
 * `cryptlet serve api,worker` starts from the member's own configuration file (its `consortium` section, and an `api`
 * section on the member's peer port with a local token issuer). Nothing is shared between the processes but the
 * chains and the Redis server (under each member's own prefix).
 * @param env - extra environment of every process (e.g. `LOG_LEVEL`).
 */
export async function startMemberProcesses(
  stack: ConsortiumStack,
  env: Record<string, string> = {},
): Promise<Map<string, MemberProcess>> {
  const processes = new Map<string, MemberProcess>();
  for (const member of stack.members) await stack.stop(member.id);
  for (const member of stack.members) {
    const { configFile, caFile } = await stack.writeMemberConfig(member.id);
    const document = JSON.parse(await readFile(configFile, "utf8")) as Record<string, unknown>;
    const keyFile = path.join(path.dirname(configFile), "api-issuer.private.jwk.json");
    const issuer = await LocalIssuer.create({ keyFile });
    await writeFile(configFile, JSON.stringify({ ...document, api: { port: member.port, localIssuer: { keyFile } } }));
    const served = await serve("api,worker", configFile, { NODE_EXTRA_CA_CERTS: caFile, LOG_LEVEL: "warn", ...env });
    processes.set(member.id, { served, issuer });
  }
  return processes;
}

/**
 * Invokes the stack's Cryptlet through a member process's API (`POST /v1/cryptlets/{name}/invoke`, an operator
 * token from its issuer), with `idempotencyKey`; returns the run id.
 * @throws when the API does not answer 202.
 */
export async function invokeThroughMember(
  stack: ConsortiumStack,
  member: MemberProcess,
  input: unknown,
  idempotencyKey: string,
): Promise<string> {
  const token = await member.issuer.mint({ roles: ["operator"], subject: "consortium-member-client" });
  const res = await request(
    member.served.ready.api!.url,
    "POST",
    `/v1/cryptlets/${encodeURIComponent(stack.pkg.manifest.name)}/invoke`,
    { token, json: input, headers: { "idempotency-key": idempotencyKey } },
  );
  if (res.status !== 202) throw new Error(`invoke answered ${res.status}: ${res.text}`);
  return (res.body as { runId: string }).runId;
}
