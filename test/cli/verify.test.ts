/**
 * `cryptlet verify` takes its trust from the chain, and refuses without trust. The command runs as a child process
 * against a real `hardhat node` with the Cryptlet contracts deployed (2 trusted signers, threshold 2, the code hash
 * approved), real bundles (EIP-712 signatures, ES256 attestation token) and a configuration file pointing at it:
 *
 * - both trusted signatures: VALID, and the output says threshold 2 was read from the registry;
 * - one signature replaced by an untrusted key's, or by a forgery claiming a trusted signer: INVALID (signatures);
 * - one valid signature only: INVALID (threshold 2 not met), which a verifier with an invented threshold 1 passes;
 * - the code hash revoked on-chain: INVALID at the latest block; the receipt of a write made before the
 *   revocation verifies at the block of that write, and a receipt that claims another block is read at the latest;
 * - no trust at all, a trust file without threshold, an unknown --chain, a chain without a registry, a chain whose
 *   RPC does not answer (within a bounded time, its URL's credentials redacted): exit 2 with a message;
 * - `--rpc` alone (no configuration): the registry named by the anchor's contract, read at the write's block,
 *   VALID; every anchor checked on-chain (a wrong txHash, a reverted transaction, a log of another result, too few
 *   confirmations: INVALID with the reason); a feed round (submit), an oracle fulfilment (fulfill) and a batch
 *   anchor (anchor) hold on-chain; per-result signatures stripped beside a batch: INVALID;
 * - `trust export` (from --rpc and from --config) and `verify --trust` of the file, which holds no private key.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";

import { Contract, keccak256, toUtf8Bytes, type TransactionReceipt } from "ethers";

import { bundleResultToStruct, structToBundleResult, type ProofBundle } from "../../runtime/attestation/bundle.ts";
import { signCryptletResult } from "../../runtime/attestation/signing.ts";
import { buildJwks } from "../../runtime/attestation/token.ts";
import { deployCryptletContracts, interfaceOf, type DeployedContracts } from "../../runtime/chains/contracts.ts";
import { LocalKeyProvider, generateLocalKeyFile } from "../../runtime/keys/LocalKeyProvider.ts";
import { testWallets } from "../support/contracts.ts";
import { startHardhatNode, type HardhatNode } from "../support/hardhatNode.ts";
import {
  CODE_HASH,
  CONSORTIUM_ID,
  CRYPTLET_ID,
  PACKAGE_NAME,
  RUNTIME_ID,
  SLOT_TIME,
  makeBundle,
  type Fixture,
} from "../verify/bundleFixture.ts";
import { cli, cliWithin, json, type CliRun } from "./cliProcess.ts";

const CHAIN_ID = 31342;
const [SIGNER_A, SIGNER_B, OUTSIDER] = testWallets(3) as [
  ReturnType<typeof testWallets>[number],
  ReturnType<typeof testWallets>[number],
  ReturnType<typeof testWallets>[number],
];

let tmp: string;
let node: HardhatNode;
let deployed: DeployedContracts;
let registry: Contract;
let fixture: Fixture;
let configFile: string;
let jwksFile: string;
/** The write of `fixture.bundle` to the ledger (`record`), before the tests. */
let recorded: TransactionReceipt;
let counter = 0;

/** Writes `value` to a new JSON file in the temporary folder. */
async function jsonFile(value: unknown): Promise<string> {
  const file = path.join(tmp, `doc-${(counter += 1)}.json`);
  await writeFile(file, JSON.stringify(value));
  return file;
}

/** A configuration whose chains are `chains` (the keys and consortium of the test). */
async function configWith(chains: Record<string, unknown>[]): Promise<string> {
  return jsonFile({
    consortiumId: CONSORTIUM_ID,
    issuer: RUNTIME_ID,
    keys: {
      resultSigners: [{ type: "local", jwkPath: path.join(tmp, "result-signer.jwk.json") }],
      attestation: { type: "local", jwkPath: path.join(tmp, "attestation.jwk.json") },
    },
    chains: chains.map((c) => ({ signer: { type: "local", jwkPath: path.join(tmp, "writer.jwk.json") }, ...c })),
  });
}

const bundleWith = (changes: Partial<ProofBundle>): ProofBundle => ({ ...structuredClone(fixture.bundle), ...changes });

/** The anchor entry of a write of `contract` in `receipt`. */
const anchorOf = (
  receipt: TransactionReceipt,
  contract: string,
  mode: "record" | "anchor" | "fulfill" | "submit" = "record",
) => ({
  chainId: String(CHAIN_ID),
  contract,
  txHash: receipt.hash as `0x${string}`,
  blockNumber: String(receipt.blockNumber),
  blockHash: receipt.blockHash as `0x${string}`,
  gasUsed: receipt.gasUsed.toString(),
  mode,
});

const checkOf = (run: CliRun, name: string) =>
  (json(run).chains[0].checks as { name: string; verdict: string; reason: string }[]).find((c) => c.name === name);

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "cryptlet-cli-verify-"));
  node = await startHardhatNode(CHAIN_ID);
  deployed = await deployCryptletContracts(node.funder, {
    consortiumId: CONSORTIUM_ID,
    signers: [SIGNER_A.address, SIGNER_B.address],
    signerMembers: { [SIGNER_A.address]: "acme", [SIGNER_B.address]: "globex" },
    threshold: 2,
    feeds: { [PACKAGE_NAME]: { cryptletId: CRYPTLET_ID, decimals: 8, description: "ETH / USD" } },
  });
  registry = new Contract(
    deployed.registry,
    [
      "function approveCodeHash(bytes32 cryptletId, bytes32 codeHash)",
      "function revokeCodeHash(bytes32 cryptletId, bytes32 codeHash)",
    ],
    node.funder,
  );
  await (await registry.getFunction("approveCodeHash")(CRYPTLET_ID, CODE_HASH)).wait();

  await generateLocalKeyFile(path.join(tmp, "attestation.jwk.json"), { curve: "P-256" });
  await generateLocalKeyFile(path.join(tmp, "result-signer.jwk.json"), { curve: "secp256k1" });
  await generateLocalKeyFile(path.join(tmp, "writer.jwk.json"), { curve: "secp256k1" });
  fixture = await makeBundle(
    {
      signers: [SIGNER_A, SIGNER_B],
      attestation: new LocalKeyProvider({ keyFile: path.join(tmp, "attestation.jwk.json") }),
      parties: [],
    },
    { attestedAt: new Date(), ttlSeconds: 3600 },
  );
  // Written to the ledger (which checks the proof against the registry): its anchor replaces the made-up one.
  const ledger = new Contract(deployed.ledger, interfaceOf("ResultLedger"), node.funder);
  const tx = await ledger.getFunction("record")(
    bundleResultToStruct(fixture.bundle.result),
    fixture.bundle.payload.public!.data,
    fixture.bundle.signatures.map((s) => s.signature),
  );
  recorded = (await tx.wait()) as TransactionReceipt;
  fixture.bundle.anchors = [anchorOf(recorded, deployed.ledger)];
  jwksFile = await jsonFile(
    await buildJwks([new LocalKeyProvider({ keyFile: path.join(tmp, "attestation.jwk.json") })]),
  );
  configFile = await configWith([
    {
      name: "consortium",
      chainId: CHAIN_ID,
      rpcUrl: node.url,
      contracts: { registry: deployed.registry, ledger: deployed.ledger, oracle: deployed.oracle },
    },
  ]);
}, 120_000);

afterAll(async () => {
  await node?.stop();
  await rm(tmp, { recursive: true, force: true });
});

describe("verify --rpc: no configuration, every anchor checked on-chain", () => {
  /** The `anchors` check of the first chain of a run. */
  const anchorsCheck = (run: CliRun) => checkOf(run, "anchors");

  test("VALID with --rpc only: the registry the ledger names, read at the block of the write", async () => {
    const file = await jsonFile(fixture.bundle);
    // An endpoint that refuses connections is passed over; the one that answers chain id 31342 is used.
    const run = await cli("verify", file, "--rpc", `http://127.0.0.1:9/,${node.url}`, "--json");
    expect(run.code).toBe(0);
    const outcome = json(run);
    expect(outcome).toMatchObject({ ok: true, source: "rpc", jwks: null, unchecked: [] });
    expect(outcome.chains[0]).toMatchObject({
      chainId: CHAIN_ID,
      contract: deployed.ledger,
      registry: deployed.registry,
      at: "anchor",
      blockNumber: recorded.blockNumber,
      threshold: 2,
      signers: [SIGNER_A.address, SIGNER_B.address].sort(),
      approvedCodeHashes: [CODE_HASH.toLowerCase()],
      changedSince: { changed: false },
    });
    expect(anchorsCheck(run)).toMatchObject({ verdict: "pass" });
    expect(checkOf(run, "attestation")).toMatchObject({ verdict: "skipped", reason: "not checked (no JWKS)" });
    expect(checkOf(run, "proofs")?.reason).toContain("anchors (verifying on-chain)");

    const human = await cli("verify", file, "--rpc", node.url, "--jwks", jwksFile);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^VALID\n/);
    expect(human.stdout).toContain(`registry ${deployed.registry} (named by contract ${deployed.ledger})`);
    expect(human.stdout).toMatch(/since: unchanged at the latest block/);
    expect(human.stdout).toMatch(/pass\s+attestation\s+ES256 token/);
    expect(human.stdout).toMatch(/pass\s+anchors\s+anchor record on chain 31342: tx 0x/);
    // Who signed, by member, as the registry names the signers (the bundle's signatures are A's then B's).
    expect(human.stdout).toMatch(
      new RegExp(
        `pass\\s+signatures\\s+2 distinct trusted result signer\\(s\\) \\(acme ${SIGNER_A.address}, globex ${SIGNER_B.address}\\)`,
      ),
    );

    // --registry pins the registry the contract must name.
    const pinned = await cli("verify", file, "--rpc", node.url, "--registry", deployed.ledger, "--json");
    expect(pinned.code).toBe(2);
    expect(json(pinned).error.message).toMatch(/checks proofs against registry .*, not the --registry/);
    // No anchors: --rpc has nothing to read the trust from.
    const bare = await cli("verify", await jsonFile(bundleWith({ anchors: [] })), "--rpc", node.url, "--json");
    expect(bare.code).toBe(2);
    expect(json(bare).error).toMatchObject({ code: "ERR_CLI_USAGE", details: { option: "--rpc" } });
  }, 120_000);

  test("a wrong txHash, a reverted transaction, a log of another result, too few confirmations: INVALID", async () => {
    const [anchor] = fixture.bundle.anchors;
    const withAnchor = (changes: Partial<typeof anchor>) => bundleWith({ anchors: [{ ...anchor!, ...changes }] });

    const wrongTx = await cli(
      "verify",
      await jsonFile(withAnchor({ txHash: keccak256(toUtf8Bytes("no such transaction")) as `0x${string}` })),
      "--rpc",
      node.url,
      "--json",
    );
    expect(wrongTx.code).toBe(1);
    expect(anchorsCheck(wrongTx)).toMatchObject({ verdict: "fail" });
    expect(anchorsCheck(wrongTx)?.reason).toMatch(
      /^anchor record on chain 31342: transaction 0x[0-9a-f]{64} is not on the chain$/,
    );
    // Its block was not trusted either: the registry was read at the latest block.
    expect(json(wrongTx).chains[0]).toMatchObject({ at: "latest" });

    // A transaction to the ledger that reverts (an unknown function), mined with a fixed gas limit.
    let revertedHash: string;
    try {
      const sent = await node.funder.sendTransaction({ to: deployed.ledger, data: "0xdeadbeef", gasLimit: 100_000 });
      revertedHash = sent.hash;
      await sent.wait().catch(() => undefined);
    } catch {
      const block = await node.provider.getBlock("latest");
      revertedHash = block!.transactions.at(-1)!;
    }
    const reverted = (await node.provider.getTransactionReceipt(revertedHash))!;
    expect(reverted.status).toBe(0);
    const revertedRun = await cli(
      "verify",
      await jsonFile(withAnchor(anchorOf(reverted, deployed.ledger))),
      "--rpc",
      node.url,
      "--json",
    );
    expect(revertedRun.code).toBe(1);
    expect(anchorsCheck(revertedRun)?.reason).toMatch(/transaction 0x[0-9a-f]{64} reverted \(status 0\)$/);

    // Another result recorded: its transaction's ResultRecorded carries another resultId.
    const other = await makeBundle(
      {
        signers: [SIGNER_A, SIGNER_B],
        attestation: new LocalKeyProvider({ keyFile: path.join(tmp, "attestation.jwk.json") }),
        parties: [],
      },
      { slotTime: SLOT_TIME + 3600n, attestedAt: new Date(), ttlSeconds: 3600 },
    );
    const ledger = new Contract(deployed.ledger, interfaceOf("ResultLedger"), node.funder);
    const otherTx = await ledger.getFunction("record")(
      bundleResultToStruct(other.bundle.result),
      other.bundle.payload.public!.data,
      other.bundle.signatures.map((x) => x.signature),
    );
    const otherReceipt = (await otherTx.wait()) as TransactionReceipt;
    const elsewhere = await cli(
      "verify",
      await jsonFile(withAnchor(anchorOf(otherReceipt, deployed.ledger))),
      "--rpc",
      node.url,
      "--json",
    );
    expect(elsewhere.code).toBe(1);
    expect(anchorsCheck(elsewhere)?.reason).toBe(
      `anchor record on chain 31342: the ResultRecorded event(s) of ${deployed.ledger} in tx ${otherReceipt.hash} carry another resultId, not ${fixture.result.resultId}`,
    );
    // The same write claimed as an oracle fulfilment: no such event.
    const wrongMode = await cli("verify", await jsonFile(withAnchor({ mode: "fulfill" })), "--rpc", node.url, "--json");
    expect(wrongMode.code).toBe(1);
    expect(anchorsCheck(wrongMode)?.reason).toMatch(/has no CryptletFulfilled event of/);

    // Too few confirmations: the write has (head - block + 1) of them.
    const head = await node.provider.getBlockNumber();
    const needed = head - recorded.blockNumber + 2;
    const file = await jsonFile(fixture.bundle);
    const few = await cli("verify", file, "--rpc", node.url, "--confirmations", String(needed), "--json");
    expect(few.code).toBe(1);
    expect(anchorsCheck(few)?.reason).toBe(
      `anchor record on chain 31342: ${needed - 1} confirmation(s), ${needed} required`,
    );
    // With --config too.
    const fewConfig = await cli("verify", file, "--config", configFile, "--confirmations", String(needed), "--json");
    expect(fewConfig.code).toBe(1);
    expect(checkOf(fewConfig, "anchors")?.reason).toContain(`${needed} required`);
    expect((await cli("verify", file, "--rpc", node.url, "--confirmations", String(needed - 1))).code).toBe(0);
  }, 180_000);

  test("a price-feed round (submit) and an oracle fulfilment (fulfill) hold on-chain", async () => {
    const payload = fixture.bundle.payload.public!.data;
    // The fixture's payload is a feed answer: submit it as round 1 of the feed.
    const feedAddress = deployed.feeds[PACKAGE_NAME]!;
    const feed = new Contract(feedAddress, interfaceOf("CryptletPriceFeed"), node.funder);
    const submitted = (await (
      await feed.getFunction("submit")(
        bundleResultToStruct(fixture.bundle.result),
        payload,
        fixture.bundle.signatures.map((x) => x.signature),
      )
    ).wait()) as TransactionReceipt;
    const viaFeed = await cli(
      "verify",
      await jsonFile(bundleWith({ anchors: [anchorOf(submitted, feedAddress, "submit")] })),
      "--rpc",
      node.url,
      "--json",
    );
    expect(viaFeed.code).toBe(0);
    expect(json(viaFeed).chains[0]).toMatchObject({ contract: feedAddress, registry: deployed.registry });
    expect(checkOf(viaFeed, "anchors")?.reason).toContain("emitted CryptletResultApplied as round 1; roundOf agrees");

    // An oracle request, fulfilled with a result for its request id.
    const oracle = new Contract(deployed.oracle, interfaceOf("CryptletOracle"), node.funder);
    const requested = (await (await oracle.getFunction("request")(CRYPTLET_ID, "0x", 0)).wait()) as TransactionReceipt;
    const event = requested.logs.map((l) => oracle.interface.parseLog(l)).find((e) => e?.name === "CryptletRequested")!;
    const requestId = event.args.requestId as `0x${string}`;
    const result = { ...fixture.result, resultId: event.args.resultId as `0x${string}` };
    const signatures = await signCryptletResult(CONSORTIUM_ID, result, [SIGNER_A, SIGNER_B]);
    const fulfilled = (await (
      await oracle.getFunction("fulfill")(
        result,
        payload,
        signatures.map((x) => x.signature),
      )
    ).wait()) as TransactionReceipt;
    const answered = bundleWith({
      requestId,
      result: structToBundleResult(result),
      signatures,
      anchors: [anchorOf(fulfilled, deployed.oracle, "fulfill")],
    });
    // The fixture's token and evidence are another run's (another resultId): verified without a JWKS and without
    // the evidence here (which would rightly fail: its context names the fixture's result).
    delete answered.evidence;
    const viaOracle = await cli("verify", await jsonFile(answered), "--rpc", node.url, "--json");
    expect(viaOracle.code).toBe(0);
    expect(checkOf(viaOracle, "resultId")?.verdict).toBe("pass");
    expect(checkOf(viaOracle, "anchors")?.reason).toContain("emitted CryptletFulfilled with the bundle's outputHash");
    // The fulfilment claimed for another request of the same Cryptlet: INVALID.
    const otherRequest = bundleWith({ anchors: [anchorOf(fulfilled, deployed.oracle, "fulfill")] });
    const wrong = await cli("verify", await jsonFile(otherRequest), "--rpc", node.url, "--json");
    expect(wrong.code).toBe(1);
    expect(checkOf(wrong, "anchors")?.reason).toMatch(/CryptletFulfilled event\(s\) of .* carry another resultId/);
  }, 120_000);

  test("per-result signatures stripped while a batch is present: INVALID, naming what is missing", async () => {
    // The same result in a signed batch (its Merkle proof and batch signatures are valid).
    const batched = await makeBundle(
      {
        signers: [SIGNER_A, SIGNER_B],
        attestation: new LocalKeyProvider({ keyFile: path.join(tmp, "attestation.jwk.json") }),
        parties: [],
      },
      { batchSize: 3, attestedAt: new Date(), ttlSeconds: 3600 },
    );
    expect(batched.result.resultId).toBe(fixture.result.resultId);
    const both = bundleWith({ batch: batched.bundle.batch! });
    const kept = await cli("verify", await jsonFile(both), "--rpc", node.url, "--json");
    expect(kept.code).toBe(0);
    expect(checkOf(kept, "merkleProof")?.verdict).toBe("pass");

    const stripped = await cli("verify", await jsonFile({ ...both, signatures: [] }), "--rpc", node.url, "--json");
    expect(stripped.code).toBe(1);
    expect(checkOf(stripped, "proofs")).toMatchObject({
      verdict: "fail",
      reason: expect.stringMatching(
        /^missing: per-result signatures \(required by the record write on chain 31342\); present: batch signatures \+ Merkle proof, attestation token, evidence, anchors$/,
      ),
    });
    expect(checkOf(stripped, "signatures")).toMatchObject({ verdict: "fail" });
    expect(checkOf(stripped, "merkleProof")?.verdict).toBe("pass");
    // Offline too (a trust file): the record anchor requires them.
    const trust = await jsonFile({ trustedSigners: [SIGNER_A.address, SIGNER_B.address], threshold: 2 });
    const offline = await cli("verify", await jsonFile({ ...both, signatures: [] }), "--trust", trust);
    expect(offline.code).toBe(1);
    expect(offline.stdout).toMatch(/fail\s+proofs\s+missing: per-result signatures/);
    // A receipt whose record target is known, its anchors stripped as well: still INVALID offline.
    const receipt = {
      runId: fixture.result.resultId,
      status: "confirmed",
      targets: [{ chain: "consortium", mode: "record", status: "confirmed" }],
      bundle: { ...both, signatures: [], anchors: [] },
    };
    const viaReceipt = await cli("verify", await jsonFile(receipt), "--trust", trust);
    expect(viaReceipt.code).toBe(1);
    expect(viaReceipt.stdout).toMatch(
      /fail\s+proofs\s+missing: per-result signatures \(required by the record target\)/,
    );

    // Anchored as a batch (ResultLedger.anchor): an anchor-mode write needs the batch, not per-result signatures.
    const ledger = new Contract(deployed.ledger, interfaceOf("ResultLedger"), node.funder);
    const batch = batched.bundle.batch!;
    const anchorTx = await ledger.getFunction("anchor")(
      { root: batch.root, count: batch.count, timestamp: BigInt(batch.timestamp) },
      batch.signatures.map((x) => x.signature),
    );
    const anchored = (await anchorTx.wait()) as TransactionReceipt;
    const batchOnly = { ...batched.bundle, anchors: [anchorOf(anchored, deployed.ledger, "anchor")] };
    const viaBatch = await cli("verify", await jsonFile(batchOnly), "--rpc", node.url, "--json");
    expect(viaBatch.code).toBe(0);
    expect(checkOf(viaBatch, "anchors")?.reason).toContain("verify(result, proof, root) at the write's block");
    expect(checkOf(viaBatch, "signatures")?.verdict).toBe("skipped");
    // Its batch stripped: INVALID.
    const { batch: _dropped, ...noBatch } = batchOnly;
    const stripBatch = await cli("verify", await jsonFile(noBatch), "--rpc", node.url, "--json");
    expect(stripBatch.code).toBe(1);
    expect(checkOf(stripBatch, "proofs")?.reason).toMatch(
      /^missing: batch signatures \+ Merkle proof \(required by the anchor write on chain 31342\)/,
    );
  }, 120_000);

  test("trust export, then verify --trust: round trip, and no private material in the file", async () => {
    const fromRpc = path.join(tmp, "trust-rpc.json");
    // A careless JWKS holding the private key: the export keeps only the public members.
    const { d } = JSON.parse(await readFile(path.join(tmp, "attestation.jwk.json"), "utf8")) as { d: string };
    const published = JSON.parse(await readFile(jwksFile, "utf8")) as { keys: object[] };
    const privateJwksFile = await jsonFile({ keys: published.keys.map((k) => ({ ...k, d })) });
    const exported = await cli(
      "trust",
      "export",
      "--rpc",
      node.url,
      "--contract",
      deployed.ledger,
      "--jwks",
      privateJwksFile,
      "--out",
      fromRpc,
      "--json",
    );
    expect(exported.code).toBe(0);
    const fromConfig = path.join(tmp, "trust-config.json");
    const viaConfig = await cli("trust", "export", "--config", configFile, "--out", fromConfig);
    expect(viaConfig.code).toBe(0);
    expect(viaConfig.stdout).toContain(`wrote ${fromConfig}: registry ${deployed.registry} on chain id ${CHAIN_ID}`);

    const privateHex = [SIGNER_A, SIGNER_B, OUTSIDER].map((w) => w.privateKey.slice(2).toLowerCase());
    const attestationD = (JSON.parse(await readFile(path.join(tmp, "attestation.jwk.json"), "utf8")) as { d: string })
      .d;
    for (const file of [fromRpc, fromConfig]) {
      const text = await readFile(file, "utf8");
      const t = JSON.parse(text);
      expect(t).toMatchObject({
        trustFileVersion: 1,
        chainId: CHAIN_ID,
        registry: deployed.registry,
        consortiumId: CONSORTIUM_ID.toLowerCase(),
        trustedSigners: [SIGNER_A.address, SIGNER_B.address].sort(),
        threshold: 2,
        approvedCodeHashes: { [CRYPTLET_ID.toLowerCase()]: [CODE_HASH.toLowerCase()] },
      });
      expect(t.jwks.keys).toHaveLength(1);
      expect(Number.isInteger(t.blockNumber)).toBe(true);
      // No private JWK member, no private key.
      expect(text).not.toMatch(/"(d|p|q|dp|dq|qi)"\s*:/);
      expect(text).not.toContain(attestationD);
      for (const hex of privateHex) expect(text.toLowerCase()).not.toContain(hex);

      const verified = await cli("verify", await jsonFile(fixture.bundle), "--trust", file, "--json");
      expect(verified.code).toBe(0);
      expect(json(verified)).toMatchObject({ ok: true, source: "trust-file", threshold: 2 });
      const attestation = (json(verified).checks as { name: string; verdict: string }[]).find(
        (c) => c.name === "attestation",
      );
      expect(attestation?.verdict).toBe("pass");
      const codeHash = (json(verified).checks as { name: string; verdict: string }[]).find(
        (c) => c.name === "codeHash",
      );
      expect(codeHash?.verdict).toBe("pass");
    }
    // The exported threshold holds: one signature of the two is not enough.
    const unapproved = await cli(
      "verify",
      await jsonFile(bundleWith({ signatures: fixture.bundle.signatures.slice(0, 1) })),
      "--trust",
      fromRpc,
    );
    expect(unapproved.code).toBe(1);
  }, 120_000);
});

describe("verify --config reads the trust from the chain", () => {
  test("both trusted signatures: VALID, threshold 2 read from the registry", async () => {
    const file = await jsonFile(fixture.bundle);
    const run = await cli("verify", file, "--config", configFile, "--json");
    expect(run.code).toBe(0);
    const outcome = json(run);
    expect(outcome).toMatchObject({ ok: true, source: "chains" });
    expect(outcome.chains).toHaveLength(1);
    expect(outcome.chains[0]).toMatchObject({
      chain: "consortium",
      chainId: CHAIN_ID,
      registry: deployed.registry,
      threshold: 2,
      requiredThreshold: 2,
      signers: [SIGNER_A.address, SIGNER_B.address].sort(),
      consortiumId: CONSORTIUM_ID.toLowerCase(),
      approvedCodeHashes: [CODE_HASH.toLowerCase()],
      at: "anchor",
      blockNumber: recorded.blockNumber,
      changedSince: { changed: false, signersAdded: [], signersRemoved: [] },
      ok: true,
    });
    expect(checkOf(run, "anchors")).toMatchObject({ verdict: "pass" });
    expect(checkOf(run, "anchors")?.reason).toContain("emitted ResultRecorded with the bundle's hashes");
    expect(checkOf(run, "proofs")?.verdict).toBe("pass");
    expect(checkOf(run, "signatures")?.verdict).toBe("pass");
    expect(checkOf(run, "codeHash")?.verdict).toBe("pass");
    expect(checkOf(run, "consortium")?.verdict).toBe("pass");
    expect(checkOf(run, "attestation")?.verdict).toBe("pass");

    const human = await cli("verify", file, "--config", configFile);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^VALID\n/);
    expect(human.stdout).toContain(`registry ${deployed.registry} at block`);
    expect(human.stdout).toContain("threshold 2 of 2 signer(s)");
  }, 120_000);

  test("a signature by an untrusted key, or forged for a trusted signer, does not count: INVALID", async () => {
    const [byOutsider] = await signCryptletResult(CONSORTIUM_ID, fixture.result, [OUTSIDER]);
    const [kept] = fixture.bundle.signatures;
    const untrusted = await jsonFile(bundleWith({ signatures: [kept!, byOutsider!] }));
    const run = await cli("verify", untrusted, "--config", configFile, "--json");
    expect(run.code).toBe(1);
    expect(json(run).ok).toBe(false);
    expect(checkOf(run, "signatures")).toMatchObject({ verdict: "fail" });
    expect(checkOf(run, "signatures")?.reason).toBe(
      `1 distinct trusted result signer(s) (acme ${SIGNER_A.address}), threshold 2; not counted: #1 untrusted`,
    );

    // The outsider's signature presented as signer B's.
    const forged = await jsonFile(bundleWith({ signatures: [kept!, { ...byOutsider!, signer: SIGNER_B.address }] }));
    const human = await cli("verify", forged, "--config", configFile);
    expect(human.code).toBe(1);
    expect(human.stdout).toMatch(/^INVALID\n/);
    expect(human.stdout).toMatch(
      /fail\s+signatures\s+1 distinct trusted result signer\(s\) \(acme 0x[0-9a-fA-F]{40}\), threshold 2.*wrong-signer/,
    );
  }, 120_000);

  test("one valid signature when the registry needs 2: INVALID", async () => {
    const file = await jsonFile(bundleWith({ signatures: fixture.bundle.signatures.slice(0, 1) }));
    const run = await cli("verify", file, "--config", configFile, "--json");
    expect(run.code).toBe(1);
    expect(checkOf(run, "signatures")).toMatchObject({
      verdict: "fail",
      reason: `1 distinct trusted result signer(s) (acme ${SIGNER_A.address}), threshold 2`,
    });
    // --threshold cannot lower the registry's M.
    const lowered = await cli("verify", file, "--config", configFile, "--threshold", "1", "--json");
    expect(lowered.code).toBe(2);
    expect(json(lowered).error).toMatchObject({ code: "ERR_CLI_USAGE", details: { option: "--threshold" } });
  }, 120_000);

  test("a revoked code hash fails at the latest block; a receipt or anchor of an earlier write verifies at its block", async () => {
    // The result was written to the ledger before the tests (the contract checked it); now revoke its code hash.
    const mined = recorded;
    await (await registry.getFunction("revokeCodeHash")(CRYPTLET_ID, CODE_HASH)).wait();
    const receipt = (blockNumber: number) => ({
      runId: fixture.result.resultId,
      resultId: fixture.result.resultId,
      status: "confirmed",
      targets: [
        {
          chain: "consortium",
          mode: "record",
          status: "confirmed",
          receipt: { status: "confirmed", chain: "consortium", chainId: CHAIN_ID, txHash: mined.hash, blockNumber },
          updatedAt: Date.now(),
        },
      ],
      bundle: fixture.bundle,
    });

    const bare = await cli("verify", await jsonFile(bundleWith({ anchors: [] })), "--config", configFile, "--json");
    expect(bare.code).toBe(1);
    // On-chain verification needs the anchors.
    expect(checkOf(bare, "proofs")?.reason).toMatch(/^missing: anchors \(required by verifying on-chain\)/);
    expect(json(bare).chains[0]).toMatchObject({ at: "latest", approvedCodeHashes: [] });
    expect(checkOf(bare, "codeHash")).toMatchObject({ verdict: "fail" });

    const atWrite = await cli("verify", await jsonFile(receipt(mined.blockNumber)), "--config", configFile);
    expect(atWrite.code).toBe(0);
    expect(atWrite.stdout).toContain(`at block ${mined.blockNumber} (the block of the write)`);
    // ...and says that the trust changed since.
    expect(atWrite.stdout).toMatch(/since: CHANGED by the latest block \d+: this code hash revoked since/);

    // A bare bundle whose anchor names the write: read at the anchor's block.
    const viaAnchor = await cli("verify", await jsonFile(fixture.bundle), "--config", configFile, "--json");
    expect(viaAnchor.code).toBe(0);
    expect(json(viaAnchor).chains[0]).toMatchObject({
      at: "anchor",
      blockNumber: mined.blockNumber,
      changedSince: { changed: true, codeHashApproved: { then: true, now: false } },
    });
    // Also with --rpc alone.
    const viaRpc = await cli("verify", await jsonFile(fixture.bundle), "--rpc", node.url, "--json");
    expect(viaRpc.code).toBe(0);
    expect(json(viaRpc).chains[0].changedSince).toMatchObject({
      changed: true,
      codeHashApproved: { then: true, now: false },
    });

    // A receipt that names a block where its transaction is not: that block is not used.
    const claimed = await cli(
      "verify",
      await jsonFile(receipt(mined.blockNumber - 1)),
      "--config",
      configFile,
      "--json",
    );
    expect(claimed.code).toBe(1);
    expect(json(claimed).chains[0]).toMatchObject({ at: "latest" });
    expect(json(claimed).chains[0].note).toMatch(/is in block/);

    const latest = await cli("verify", await jsonFile(receipt(mined.blockNumber)), "--config", configFile, "--latest");
    expect(latest.code).toBe(1);
    expect(latest.stdout).toMatch(/fail\s+codeHash/);
  }, 180_000);
});

describe("no trust, no verdict (exit 2)", () => {
  test("neither --trust nor a configuration; a trust file without threshold", async () => {
    const file = await jsonFile(fixture.bundle);
    const none = await cli("verify", file, "--json");
    expect(none.code).toBe(2);
    expect(json(none).error).toMatchObject({ code: "ERR_CLI_USAGE", details: { option: "--trust" } });
    expect(json(none).error.message).toMatch(/no trust to verify against: pass --config <file>.* or --trust <file>/);

    const trust = await jsonFile({ trustedSigners: [SIGNER_A.address, SIGNER_B.address], consortiumId: CONSORTIUM_ID });
    const noThreshold = await cli("verify", file, "--trust", trust);
    expect(noThreshold.code).toBe(2);
    expect(noThreshold.stderr).toMatch(/ERR_CLI_USAGE: .* has no threshold/);
    expect(noThreshold.stdout).toBe("");
    // With the threshold named, the same file is usable.
    const named = await cli("verify", file, "--trust", trust, "--threshold", "2", "--json");
    expect(named.code).toBe(0);
    expect(json(named)).toMatchObject({ ok: true, source: "trust-file", threshold: 2 });
  }, 120_000);

  test("a chain without a registry address, and a chain whose RPC does not answer", async () => {
    const file = await jsonFile(fixture.bundle);
    const unknown = await cli("verify", file, "--config", configFile, "--chain", "nowhere", "--json");
    expect(unknown.code).toBe(2);
    expect(json(unknown).error).toMatchObject({ code: "ERR_CLI_USAGE", details: { option: "--chain" } });
    expect(json(unknown).error.message).toBe("--chain nowhere is not a chain of the configuration (consortium)");

    const noRegistry = await configWith([{ name: "consortium", chainId: CHAIN_ID, rpcUrl: node.url, contracts: {} }]);
    const run = await cli("verify", file, "--config", noRegistry, "--json");
    expect(run.code).toBe(2);
    expect(json(run).error.message).toMatch(/chain consortium has no contracts.registry/);

    // Accepts connections and never answers.
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const hung = await configWith([
        {
          name: "consortium",
          chainId: CHAIN_ID,
          rpcUrl: `http://operator:hunter2secret@127.0.0.1:${port}/`,
          contracts: { registry: deployed.registry },
        },
      ]);
      const started = Date.now();
      const timedOut = await cliWithin(20_000, "verify", file, "--config", hung, "--rpc-timeout", "1500");
      const elapsed = Date.now() - started;
      expect(timedOut.code).toBe(2);
      expect(timedOut.stderr).toContain(
        `error ERR_REGISTRY_TRUST_UNAVAILABLE: cannot read trust from chain consortium at http://redacted:redacted@127.0.0.1:${port}/: `,
      );
      expect(timedOut.stderr).toMatch(/no answer within 1500 ms|timeout/);
      expect(`${timedOut.stdout}${timedOut.stderr}`).not.toContain("hunter2secret");
      expect(timedOut.stdout).not.toMatch(/VALID/);
      expect(elapsed).toBeLessThan(15_000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  }, 120_000);
});
