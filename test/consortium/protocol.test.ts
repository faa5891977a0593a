/**
 * The consortium co-signing protocol (runtime/consortium/, docs/consortium.md), for real: three members, each with
 * its OWN Key Vault emulator holding its own result-signing key (secp256k1) and request-signing key (P-256), its own
 * Redis prefix, package store and sandbox process, and its API served over HTTP on 127.0.0.1; one `hardhat node`
 * with the CryptletRegistry trusting the three members' Key Vault addresses (threshold 2) and the packages' code
 * hashes approved; real packages built with esbuild whose Cryptlet fetches two prices from a local HTTP server.
 *
 * - 2-of-3: the leader gathers a peer's signature, and the registry's `verifyResultProof` accepts them on-chain;
 *   with one member down (connection refused) the other still makes 2;
 * - a peer's signature from another key than its configured signer counts as dissent (`ERR_COSIGN_BAD_SIGNATURE`);
 * - a member whose store holds a tampered package (same name and version, other code) finds no package by the
 *   approved code hash and dissents; a package's bytes cannot be registered under another code hash at all;
 * - a Cryptlet whose output depends on the event's time, proposed with another time than the one it ran at: the
 *   peer re-computes another outputHash and dissents with it, signing nothing; a timestamp that is not the evidence's
 *   `now` is refused before any re-run;
 * - a malicious leader (wrong output, unapproved code hash, evidence that is not the inputHash's, a leader signature
 *   of another key, a proposal relayed under another member's name) gets no co-signature;
 * - a sealed result is co-signed through the disclosed content key (and its JWE opens with each party's key in jose
 *   and in Python jwcrypto); a wrong key or a JWE of another plaintext is refused;
 * - forged peer requests (no token, unknown sender, bad signature, wrong audience, replayed jti, changed body,
 *   expired) are answered 401 `ERR_PEER_UNAUTHENTICATED` with the failing rule.
 */
import { jest } from "@jest/globals";
import { execFileSync } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";

import { DefaultAzureCredential } from "@azure/identity";
import { KeyClient } from "@azure/keyvault-keys";
import { Contract, Wallet, keccak256 } from "ethers";
import { exportJWK, generateKeyPair, type JWK } from "jose";

import { bundleResultToStruct, structToBundleResult } from "../../runtime/attestation/bundle.ts";
import { computeResultId, cryptletResultDigest, type Hex32 } from "../../runtime/attestation/eip712.ts";
import { buildRunEvidence, evidenceInputHash, type RunEvidence } from "../../runtime/attestation/evidence.ts";
import { encodePublicOutput, sealedOutputBytes } from "../../runtime/attestation/hashing.ts";
import { signCryptletResult } from "../../runtime/attestation/signing.ts";
import { buildJwks } from "../../runtime/attestation/token.ts";
import { deployCryptletContracts, interfaceOf } from "../../runtime/chains/contracts.ts";
import { checkDisclosedJwe, sealDisclosed } from "../../runtime/consortium/disclosure.ts";
import { gatherCosignatures, PROPOSALS_PATH } from "../../runtime/consortium/leader.ts";
import { consortiumApiOf } from "../../runtime/consortium/member.ts";
import { createPeerRequestToken } from "../../runtime/consortium/peerAuth.ts";
import type { ConsortiumMember, ConsortiumSettings, CosignProposal } from "../../runtime/consortium/protocol.ts";
import { AzureKeyVaultProvider } from "../../runtime/keys/AzureKeyVaultProvider.ts";
import { KeyVaultSigner } from "../../runtime/keys/KeyVaultSigner.ts";
import { buildPackage } from "../../runtime/packages/build.ts";
import type { BuiltPackage } from "../../runtime/packages/builtPackage.ts";
import { sandboxOptionsFromManifest } from "../../runtime/packages/sandboxOptions.ts";
import { signPackage } from "../../runtime/packages/signature.ts";
import { open } from "../../runtime/sealing/open.ts";
import type { JsonValue } from "../../runtime/sdk/index.ts";
import { closedPort, startLightApi, type LightApi } from "../api/helpers.ts";
import { cleanupTempDirs, writePackage } from "../packages/helpers.ts";
import { startHardhatNode, type HardhatNode } from "../support/hardhatNode.ts";
import { startTestVault, type TestVault } from "../support/keyvault.ts";

jest.setTimeout(180_000);

const CONSORTIUM = keccak256(new TextEncoder().encode("consortium:protocol-test")) as Hex32;
const ABI = "tuple(int256 answer, uint8 decimals, uint64 observedAt)";
const IDS = ["acme", "globex", "initech"] as const;

/** The Cryptlet: GET two prices, answer their mean with 8 decimals and the event's time. */
function source(variant: "original" | "tampered"): string {
  const factor = variant === "tampered" ? "1.01" : "1";
  return `import { defineCryptlet } from "cryptlet-runtime/sdk";
export default defineCryptlet({
  async run(input, ctx) {
    const a = await ctx.fetch(input.base + "/prices/a");
    const b = await ctx.fetch(input.base + "/prices/b");
    const mean = (((await a.json()).price + (await b.json()).price) / 2) * ${factor};
    return { answer: Math.round(mean * 1e8), decimals: 8, observedAt: ctx.now };
  },
});
`;
}

interface Member {
  id: string;
  vault: TestVault;
  signer: KeyVaultSigner;
  requestKey: AzureKeyVaultProvider;
  address: string;
  api: LightApi;
  config: ConsortiumMember;
}

let priceServer: http.Server;
let jwksServer: http.Server;
let base: string;
let node: HardhatNode;
let registry: Contract;
const members: Member[] = [];
const parties: { publicJwk: JWK; privateJwk: JWK }[] = [];
const pkgs: Record<"public" | "tampered" | "unapproved" | "sealed" | "sealedTampered", BuiltPackage> = {} as never;
let settingsOf: (self: string) => ConsortiumSettings;

async function build(name: string, variant: "original" | "tampered", sealed = false): Promise<BuiltPackage> {
  const manifest: Record<string, unknown> = {
    name,
    version: "1.0.0",
    entry: "src/index.ts",
    capabilities: { fetch: { allow: [`${base}/prices/`], methods: ["GET"] } },
    output: sealed
      ? { sealed: true, parties: parties.map((p, i) => ({ name: `party-${i}`, jwk: p.publicJwk })) }
      : { abi: ABI },
    targets: [{ chain: "consortium", mode: "record" }],
  };
  const dir = await writePackage({ "cryptlet.json": manifest, "src/index.ts": source(variant) });
  return buildPackage(dir, { outDir: false });
}

async function deployTo(member: Member, pkg: BuiltPackage): Promise<void> {
  const { publisher, ctx } = member.api;
  await ctx.packages.deploy(pkg, await signPackage(pkg, publisher.privateKey, publisher.kid));
}

/** What the leader's execute stage does: run on the network, keep the evidence. */
async function leaderRun(
  leader: Member,
  pkg: BuiltPackage,
  now: number,
  request = "request-1",
): Promise<{ evidence: RunEvidence; outputJson: string; output: JsonValue }> {
  const { engine, load } = sandboxOptionsFromManifest(pkg.manifest);
  const requestId = keccak256(new TextEncoder().encode(request)) as Hex32;
  const context = { requestId, resultId: computeResultId(pkg.cryptletId, requestId), now };
  const input = { base };
  // The normalised event of an HTTP call (eventId = httpEventId(Idempotency-Key)): nothing on a chain to check.
  const event = { eventId: requestId, requestId, source: { type: "http", idempotencyKey: request }, time: now };
  const run = await leader.api.ctx.sandbox.run(
    { codeHash: pkg.codeHash, bundle: pkg.bundle, engine, options: load },
    input,
    { event, ...context },
  );
  return {
    evidence: buildRunEvidence({ event, input, context, hostCalls: run.hostCalls }),
    outputJson: run.outputJson,
    output: run.output,
  };
}

/** A public proposal from a leader's run (without the leader's signature). */
async function publicProposal(
  leader: Member,
  pkg: BuiltPackage,
  now = 1_704_412_800,
): Promise<Omit<CosignProposal, "leaderSignature">> {
  const run = await leaderRun(leader, pkg, now);
  const payload = encodePublicOutput(ABI, run.output);
  return {
    version: 1,
    leader: leader.id,
    consortiumId: CONSORTIUM,
    cryptlet: { name: pkg.manifest.name, version: pkg.manifest.version },
    result: {
      resultId: run.evidence.context.resultId,
      cryptletId: pkg.cryptletId,
      codeHash: pkg.codeHash,
      inputHash: evidenceInputHash(run.evidence),
      outputHash: keccak256(payload) as Hex32,
      timestamp: String(now),
    },
    evidence: run.evidence,
    payload,
  };
}

function gatherOptions(leader: Member, peers: ConsortiumMember[], threshold = 2) {
  return {
    self: leader.config,
    signer: leader.signer,
    requestKey: leader.requestKey,
    peers,
    threshold,
    answerTimeoutMs: 60_000,
  };
}

const peersOf = (leader: Member): ConsortiumMember[] => members.filter((m) => m !== leader).map((m) => m.config);

async function verifyOnChain(proposal: { result: CosignProposal["result"] }, signatures: { signature: string }[]) {
  const struct = bundleResultToStruct(proposal.result);
  return (await registry.getFunction("verifyResultProof")(
    struct,
    signatures.map((s) => s.signature),
  )) as string;
}

beforeAll(async () => {
  priceServer = http.createServer((req, res) => {
    const price = req.url === "/prices/a" ? 2269.7605037562785 : 2272.7319494521353;
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ price }));
  });
  await new Promise<void>((resolve) => priceServer.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(priceServer.address() as AddressInfo).port}`;
  for (let i = 0; i < 2; i += 1) {
    const pair = await generateKeyPair("ECDH-ES+A256KW", { crv: "P-256", extractable: true });
    parties.push({ publicJwk: await exportJWK(pair.publicKey), privateJwk: await exportJWK(pair.privateKey) });
  }

  // Each member: its own Key Vault emulator, with its own result-signing and request-signing keys.
  const keys: { id: string; vault: TestVault; signer: KeyVaultSigner; requestKey: AzureKeyVaultProvider }[] = [];
  for (const id of IDS) {
    const vault = await startTestVault();
    const credential = new DefaultAzureCredential();
    const client = new KeyClient(vault.vaultUrl, credential, vault.clientOptions);
    await client.createEcKey("result-signer", { curve: "P-256K" });
    await client.createEcKey("peer-requests", { curve: "P-256" });
    const provider = (keyName: string) =>
      new AzureKeyVaultProvider({ vaultUrl: vault.vaultUrl, keyName, credential, clientOptions: vault.clientOptions });
    keys.push({
      id,
      vault,
      signer: new KeyVaultSigner(provider("result-signer")),
      requestKey: provider("peer-requests"),
    });
  }
  // acme publishes its request-signing JWKS at a URL (fetched with a deadline and cached by its peers); the
  // others are configured inline.
  const acmeJwks = await buildJwks([keys[0]!.requestKey]);
  jwksServer = http.createServer((_req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(acmeJwks));
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, "127.0.0.1", resolve));
  const jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`;

  const addresses = await Promise.all(keys.map((k) => k.signer.getAddress()));
  const configs: ConsortiumMember[] = [];
  for (const [i, k] of keys.entries()) {
    configs.push({
      id: k.id,
      url: "http://placeholder.invalid",
      jwks: i === 0 ? jwksUrl : ((await buildJwks([k.requestKey])) as { keys: Record<string, unknown>[] }),
      signer: addresses[i]!,
    });
  }
  settingsOf = (self) => ({ self, members: configs, threshold: 2 });

  node = await startHardhatNode(31_412);
  const contracts = await deployCryptletContracts(node.funder, {
    consortiumId: CONSORTIUM,
    signers: addresses,
    threshold: 2,
  });
  registry = new Contract(contracts.registry, interfaceOf("CryptletRegistry"), node.funder);

  for (const [i, k] of keys.entries()) {
    const api = await startLightApi((ctx) => ({
      consortium: consortiumApiOf({ ...ctx, consortiumId: CONSORTIUM }, settingsOf(k.id), {
        signer: k.signer,
        registries: [{ chain: "local", runner: node.provider, registry: contracts.registry }],
        registryTimeoutMs: 15_000,
      }),
    }));
    configs[i]!.url = api.url;
    members.push({ ...k, address: addresses[i]!, api, config: configs[i]! });
  }

  pkgs.public = await build("@test/consortium-mean", "original");
  pkgs.tampered = await build("@test/consortium-mean-t", "original");
  const tamperedCopy = await build("@test/consortium-mean-t", "tampered");
  pkgs.unapproved = await build("@test/consortium-mean-u", "original");
  pkgs.sealed = await build("@test/consortium-sealed", "original", true);
  for (const pkg of [pkgs.public, pkgs.tampered, pkgs.sealed]) {
    await (await registry.getFunction("approveCodeHash")(pkg.cryptletId, pkg.codeHash)).wait();
  }
  for (const member of members) {
    await deployTo(member, pkgs.public);
    await deployTo(member, pkgs.unapproved);
    await deployTo(member, pkgs.sealed);
    // initech's store holds a tampered package under the same name and version.
    await deployTo(member, member.id === "initech" ? tamperedCopy : pkgs.tampered);
  }
});

afterAll(async () => {
  for (const member of members) await member.api.close();
  await node?.stop();
  for (const member of [...members].reverse()) await member.vault.close();
  priceServer?.close();
  jwksServer?.close();
  await cleanupTempDirs();
});

describe("co-signing among three members, each with its own Key Vault", () => {
  it("2-of-3: a peer re-executes and co-signs; the registry accepts the two members' signatures on-chain", async () => {
    const [acme] = members as [Member, Member, Member];
    const proposal = await publicProposal(acme, pkgs.public);
    const outcome = await gatherCosignatures(proposal, gatherOptions(acme, peersOf(acme)));
    expect(outcome.ok).toBe(true);
    expect(outcome.signatures).toHaveLength(2);
    expect(outcome.signedBy[0]).toBe("acme");
    expect(outcome.dissented).toEqual([]);
    // Distinct members' registered Key Vault signers; the Key Vault key id travels with each signature.
    const byId = new Map(members.map((m) => [m.id, m.address]));
    expect(outcome.signatures.map((s) => s.signer)).toEqual(outcome.signedBy.map((id) => byId.get(id)));
    for (const s of outcome.signatures) expect(s.keyId).toMatch(/^https:\/\/.*\/keys\/result-signer\//);
    // Whoever did not sign was not waited for once 2 had signed.
    expect(outcome.signedBy.length + outcome.unanswered.length).toBe(3);
    const digest = await verifyOnChain(proposal, outcome.signatures);
    expect(digest).toBe(cryptletResultDigest(CONSORTIUM, bundleResultToStruct(proposal.result)));
    // One signature alone is refused by the registry.
    await expect(verifyOnChain(proposal, outcome.signatures.slice(0, 1))).rejects.toThrow();
  });

  it("with one member down, the other member still makes 2; with both down, no quorum", async () => {
    const [acme, globex, initech] = members as [Member, Member, Member];
    const down = { ...globex.config, url: `http://127.0.0.1:${await closedPort()}` };
    const proposal = await publicProposal(acme, pkgs.public);
    const outcome = await gatherCosignatures(proposal, gatherOptions(acme, [down, initech.config]));
    expect(outcome.ok).toBe(true);
    expect(outcome.signedBy).toEqual(["acme", "initech"]);
    expect(outcome.unanswered).toEqual([{ member: "globex", reason: expect.stringContaining("ERR_PEER_UNREACHABLE") }]);
    expect(await verifyOnChain(proposal, outcome.signatures)).toMatch(/^0x[0-9a-f]{64}$/);

    const bothDown = await gatherCosignatures(
      proposal,
      gatherOptions(acme, [down, { ...initech.config, url: `http://127.0.0.1:${await closedPort()}` }]),
    );
    expect(bothDown.ok).toBe(false);
    expect(bothDown.signedBy).toEqual(["acme"]);
    expect(bothDown.unanswered.map((u) => u.member).sort()).toEqual(["globex", "initech"]);
  });

  it("a peer whose signature is not from its configured signer counts as dissent ERR_COSIGN_BAD_SIGNATURE", async () => {
    const [acme, globex] = members as [Member, Member, Member];
    const proposal = await publicProposal(acme, pkgs.public);
    // acme's configuration names another address for globex: globex's real Key Vault signature does not count.
    const misconfigured = { ...globex.config, signer: Wallet.createRandom().address };
    const outcome = await gatherCosignatures(proposal, gatherOptions(acme, [misconfigured]));
    expect(outcome.ok).toBe(false);
    expect(outcome.signatures).toHaveLength(1);
    expect(outcome.dissented).toEqual([
      { member: "globex", code: "ERR_COSIGN_BAD_SIGNATURE", reason: expect.stringContaining(globex.address) },
    ]);
  });

  it("a member running a tampered package (same name and version) finds none by the approved codeHash and dissents", async () => {
    const [acme, globex, initech] = members as [Member, Member, Member];
    const proposal = await publicProposal(acme, pkgs.tampered);
    const outcome = await gatherCosignatures(proposal, gatherOptions(acme, [initech.config]));
    expect(outcome.ok).toBe(false);
    expect(outcome.dissented).toEqual([
      expect.objectContaining({ member: "initech", code: "ERR_COSIGN_PACKAGE_NOT_FOUND" }),
    ]);
    // The honest member signs the same proposal.
    const honest = await gatherCosignatures(proposal, gatherOptions(acme, [globex.config]));
    expect(honest.signedBy).toEqual(["acme", "globex"]);
    // Other bytes under the approved hash cannot be stored: the store recomputes codeHash from the bytes.
    const stored = await initech.api.ctx.packages.get("@test/consortium-mean-t", "1.0.0");
    expect(stored.codeHash).not.toBe(pkgs.tampered.codeHash);
  });

  it("a Cryptlet whose output depends on the event's time, proposed with another time: dissent with the peer's hashes", async () => {
    const [acme, globex] = members as [Member, Member, Member];
    // The leader ran at 1704412800 but proposes the evidence (and timestamp) of 1704412900, with its output.
    const honest = await publicProposal(acme, pkgs.public, 1_704_412_800);
    const evidence: RunEvidence = {
      ...honest.evidence,
      event: { ...(honest.evidence.event as Record<string, JsonValue>), time: 1_704_412_900 },
      context: { ...honest.evidence.context, now: 1_704_412_900 },
    };
    const lying = {
      ...honest,
      evidence,
      result: { ...honest.result, inputHash: evidenceInputHash(evidence), timestamp: "1704412900" },
    };
    const outcome = await gatherCosignatures(lying, gatherOptions(acme, [globex.config]));
    expect(outcome.ok).toBe(false);
    expect(outcome.signatures).toHaveLength(1);
    const expected = await publicProposal(acme, pkgs.public, 1_704_412_900);
    expect(outcome.dissented).toEqual([
      {
        member: "globex",
        code: "ERR_COSIGN_OUTPUT_DIFFERS",
        reason: expect.any(String),
        inputHash: lying.result.inputHash,
        outputHash: expected.result.outputHash,
      },
    ]);
    // A timestamp other than the evidence's time is refused before any re-run.
    const skewed = { ...honest, result: { ...honest.result, timestamp: "1704412801" } };
    const refused = await gatherCosignatures(skewed, gatherOptions(acme, [globex.config]));
    expect(refused.dissented.map((d) => d.code)).toEqual(["ERR_COSIGN_EVIDENCE_MISMATCH"]);
  });

  it("a malicious leader gets no co-signature: wrong output, unapproved code, evidence that is not inputHash's", async () => {
    const [acme, globex, initech] = members as [Member, Member, Member];
    const honest = await publicProposal(acme, pkgs.public);
    const wrongPayload = encodePublicOutput(ABI, { answer: 1n, decimals: 8, observedAt: 1_704_412_800 });
    const cases: [Omit<CosignProposal, "leaderSignature">, string][] = [
      [
        {
          ...honest,
          payload: wrongPayload,
          result: { ...honest.result, outputHash: keccak256(wrongPayload) as Hex32 },
        },
        "ERR_COSIGN_OUTPUT_DIFFERS",
      ],
      [{ ...honest, payload: wrongPayload }, "ERR_COSIGN_OUTPUT_DIFFERS"],
      [await publicProposal(acme, pkgs.unapproved), "ERR_COSIGN_CODE_NOT_APPROVED"],
      [
        {
          ...honest,
          evidence: {
            ...honest.evidence,
            fetches: honest.evidence.fetches.map((f, i) =>
              i === 0 ? { ...f, response: { ...f.response, status: 201 } } : f,
            ),
          },
        },
        "ERR_COSIGN_EVIDENCE_MISMATCH",
      ],
    ];
    for (const [proposal, code] of cases) {
      const outcome = await gatherCosignatures(proposal, gatherOptions(acme, [globex.config, initech.config]));
      expect({ ok: outcome.ok, signatures: outcome.signatures.length }).toEqual({ ok: false, signatures: 1 });
      expect(outcome.dissented.map((d) => d.code)).toEqual([code, code]);
    }
  });

  it("a proposal with another key's leader signature, or relayed under another leader's name, is refused", async () => {
    const [acme, globex, initech] = members as [Member, Member, Member];
    const honest = await publicProposal(acme, pkgs.public);
    const struct = bundleResultToStruct(honest.result);
    const [forged] = await signCryptletResult(CONSORTIUM, struct, [Wallet.createRandom()]);
    const send = async (from: Member, body: unknown) => {
      const text = JSON.stringify(body);
      const token = await createPeerRequestToken(from.requestKey, {
        issuer: from.id,
        audience: "globex",
        body: text,
      });
      const response = await fetch(`${globex.api.url}${PROPOSALS_PATH}`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: text,
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    const wrongKey = await send(acme, { ...honest, leaderSignature: forged });
    expect(wrongKey).toEqual({
      status: 200,
      body: expect.objectContaining({ verdict: "dissent", code: "ERR_COSIGN_LEADER_SIGNATURE_INVALID" }),
    });
    // initech relays acme's genuinely signed proposal: the authenticated sender is not the leader it names.
    const [acmeSignature] = await signCryptletResult(CONSORTIUM, struct, [acme.signer]);
    const relayed = await send(initech, { ...honest, leaderSignature: acmeSignature });
    expect(relayed.body).toEqual(expect.objectContaining({ verdict: "dissent", code: "ERR_COSIGN_LEADER_MISMATCH" }));
    // The same proposal sent by acme itself is signed.
    const direct = await send(acme, { ...honest, leaderSignature: acmeSignature });
    expect(direct.body).toEqual(expect.objectContaining({ verdict: "agree", member: "globex" }));
  });
});

describe("sealed results co-signed through the disclosed content key", () => {
  async function sealedProposal(
    leader: Member,
    tamper?: "wrong-key" | "other-plaintext",
  ): Promise<{ proposal: Omit<CosignProposal, "leaderSignature">; outputJson: string }> {
    const pkg = pkgs.sealed;
    const run = await leaderRun(leader, pkg, 1_704_412_800, "sealed-request");
    const sealingParties = parties.map((p, i) => ({ name: `party-${i}`, jwk: p.publicJwk }));
    const plaintext =
      tamper === "other-plaintext" ? run.outputJson.replace(/"answer":\d/, '"answer":9') : run.outputJson;
    const disclosed = await sealDisclosed(plaintext, sealingParties);
    const payload = `0x${Buffer.from(sealedOutputBytes(disclosed.jwe)).toString("hex")}` as `0x${string}`;
    const contentKey =
      tamper === "wrong-key" ? (await sealDisclosed(run.outputJson, sealingParties)).contentKey : disclosed.contentKey;
    return {
      outputJson: run.outputJson,
      proposal: {
        version: 1,
        leader: leader.id,
        consortiumId: CONSORTIUM,
        cryptlet: { name: pkg.manifest.name, version: pkg.manifest.version },
        result: structToBundleResult({
          resultId: run.evidence.context.resultId,
          cryptletId: pkg.cryptletId,
          codeHash: pkg.codeHash,
          inputHash: evidenceInputHash(run.evidence),
          outputHash: keccak256(payload) as Hex32,
          timestamp: 1_704_412_800n,
        }),
        evidence: run.evidence,
        payload,
        contentKey,
      },
    };
  }

  it("both peers check the ciphertext holds their own output and co-sign; every party opens it (jose, jwcrypto)", async () => {
    const [acme] = members as [Member, Member, Member];
    const { proposal, outputJson } = await sealedProposal(acme);
    const outcome = await gatherCosignatures(proposal, gatherOptions(acme, peersOf(acme), 3));
    expect(outcome.ok).toBe(true);
    expect(outcome.signedBy).toEqual(["acme", expect.any(String), expect.any(String)]);
    expect(await verifyOnChain(proposal, outcome.signatures)).toMatch(/^0x[0-9a-f]{64}$/);
    const jwe = JSON.parse(Buffer.from(proposal.payload.slice(2), "hex").toString("utf8")) as object;
    for (const party of parties) {
      expect(new TextDecoder().decode(await open(jwe, party.privateJwk))).toBe(outputJson);
    }
    const script = fileURLToPath(new URL("../sealing/jwcrypto_interop.py", import.meta.url));
    const opened = JSON.parse(
      execFileSync("/usr/bin/python3", [script], {
        input: JSON.stringify({ op: "open", jwe: JSON.stringify(jwe), keys: parties.map((p) => p.privateJwk) }),
        timeout: 30_000,
      }).toString(),
    ) as { plaintexts: string[] };
    expect(opened.plaintexts).toEqual([outputJson, outputJson]);
    expect(checkDisclosedJwe(jwe, proposal.contentKey as string, outputJson)).toEqual({ ok: true });
  });

  it.each(["wrong-key", "other-plaintext"] as const)("a leader disclosing a %s is refused", async (tamper) => {
    const [acme, globex, initech] = members as [Member, Member, Member];
    const { proposal } = await sealedProposal(acme, tamper);
    const outcome = await gatherCosignatures(proposal, gatherOptions(acme, [globex.config, initech.config]));
    expect(outcome.signatures).toHaveLength(1);
    expect(outcome.dissented.map((d) => d.code)).toEqual(["ERR_COSIGN_SEALED_MISMATCH", "ERR_COSIGN_SEALED_MISMATCH"]);
    expect(outcome.dissented[0]?.reason).toMatch(tamper === "wrong-key" ? /does-not-decrypt/ : /plaintext-differs/);
  });
});

describe("peer request authentication", () => {
  const body = JSON.stringify({ version: 1 });

  async function post(to: Member, authorization: string | undefined, text = body) {
    const response = await fetch(`${to.api.url}${PROPOSALS_PATH}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(authorization ? { authorization } : {}) },
      body: text,
    });
    const answer = (await response.json()) as { code?: string; details?: { reason?: string } };
    return { status: response.status, code: answer.code, reason: answer.details?.reason };
  }

  const token = (from: Member, audience: string, extra: { now?: Date; issuer?: string } = {}, text = body) =>
    createPeerRequestToken(from.requestKey, {
      issuer: extra.issuer ?? from.id,
      audience,
      body: text,
      ...(extra.now ? { now: extra.now } : {}),
    });

  it("a valid request passes authentication (and is then judged on its body)", async () => {
    const [acme, globex] = members as [Member, Member, Member];
    const answer = await post(globex, `Bearer ${await token(acme, "globex")}`);
    // Authenticated; the body is not a proposal, so the OpenAPI validation refuses it.
    expect(answer.status).toBe(400);
  });

  it("refuses a request without a token → 401 (the OpenAPI validator's bearer check, before any scheme)", async () => {
    const [, globex] = members as [Member, Member, Member];
    expect(await post(globex, undefined)).toEqual({ status: 401, code: "ERR_AUTH_UNAUTHENTICATED", reason: "missing" });
  });

  it.each([
    ["malformed", async () => "Bearer not-a-jwt"],
    ["unknown-sender", async (m: Member[]) => `Bearer ${await token(m[0]!, "globex", { issuer: "mallory" })}`],
    ["wrong-audience", async (m: Member[]) => `Bearer ${await token(m[0]!, "initech")}`],
    [
      "expired",
      async (m: Member[]) => `Bearer ${await token(m[0]!, "globex", { now: new Date(Date.now() - 600_000) })}`,
    ],
    [
      "bad-signature",
      async (m: Member[]) => {
        const valid = await token(m[0]!, "globex");
        const [h, p, s] = valid.split(".") as [string, string, string];
        const flipped = (s[5] === "A" ? "B" : "A") + "";
        return `Bearer ${h}.${p}.${s.slice(0, 5)}${flipped}${s.slice(6)}`;
      },
    ],
    [
      "body-mismatch",
      async (m: Member[]) => `Bearer ${await token(m[0]!, "globex", {}, JSON.stringify({ version: 2 }))}`,
    ],
  ])("refuses a request: %s → 401", async (reason, authorization) => {
    const [, globex] = members as [Member, Member, Member];
    expect(await post(globex, await authorization(members))).toEqual({
      status: 401,
      code: "ERR_PEER_UNAUTHENTICATED",
      reason,
    });
  });

  it("refuses a replayed token (same jti) even with the same body", async () => {
    const [acme, globex] = members as [Member, Member, Member];
    const authorization = `Bearer ${await token(acme, "globex")}`;
    expect((await post(globex, authorization)).status).toBe(400);
    expect(await post(globex, authorization)).toEqual({
      status: 401,
      code: "ERR_PEER_UNAUTHENTICATED",
      reason: "replayed",
    });
  });

  it("a user bearer token is no peer token", async () => {
    const [, globex] = members as [Member, Member, Member];
    const userToken = await globex.api.token("admin");
    expect((await post(globex, `Bearer ${userToken}`)).status).toBe(401);
  });
});
