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
 *   RPC does not answer (within a bounded time, its URL's credentials redacted): exit 2 with a message.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";

import { Contract } from "ethers";

import { bundleResultToStruct, type ProofBundle } from "../../runtime/attestation/bundle.ts";
import { signCryptletResult } from "../../runtime/attestation/signing.ts";
import { deployCryptletContracts, interfaceOf, type DeployedContracts } from "../../runtime/chains/contracts.ts";
import { LocalKeyProvider, generateLocalKeyFile } from "../../runtime/keys/LocalKeyProvider.ts";
import { testWallets } from "../support/contracts.ts";
import { startHardhatNode, type HardhatNode } from "../support/hardhatNode.ts";
import {
  CODE_HASH,
  CONSORTIUM_ID,
  CRYPTLET_ID,
  RUNTIME_ID,
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

const checkOf = (run: CliRun, name: string) =>
  (json(run).chains[0].checks as { name: string; verdict: string; reason: string }[]).find((c) => c.name === name);

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "cryptlet-cli-verify-"));
  node = await startHardhatNode(CHAIN_ID);
  deployed = await deployCryptletContracts(node.funder, {
    consortiumId: CONSORTIUM_ID,
    signers: [SIGNER_A.address, SIGNER_B.address],
    threshold: 2,
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
  // Not written anywhere yet: no anchors (the fixture's is a made-up one).
  fixture.bundle.anchors = [];
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
      at: "latest",
      ok: true,
    });
    expect(outcome.chains[0].blockNumber).toBe(await node.provider.getBlockNumber());
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
    expect(checkOf(run, "signatures")?.reason).toMatch(/1 distinct trusted result signer\(s\), threshold 2.*untrusted/);

    // The outsider's signature presented as signer B's.
    const forged = await jsonFile(bundleWith({ signatures: [kept!, { ...byOutsider!, signer: SIGNER_B.address }] }));
    const human = await cli("verify", forged, "--config", configFile);
    expect(human.code).toBe(1);
    expect(human.stdout).toMatch(/^INVALID\n/);
    expect(human.stdout).toMatch(
      /fail\s+signatures\s+1 distinct trusted result signer\(s\), threshold 2.*wrong-signer/,
    );
  }, 120_000);

  test("one valid signature when the registry needs 2: INVALID", async () => {
    const file = await jsonFile(bundleWith({ signatures: fixture.bundle.signatures.slice(0, 1) }));
    const run = await cli("verify", file, "--config", configFile, "--json");
    expect(run.code).toBe(1);
    expect(checkOf(run, "signatures")).toMatchObject({
      verdict: "fail",
      reason: "1 distinct trusted result signer(s), threshold 2",
    });
    // --threshold cannot lower the registry's M.
    const lowered = await cli("verify", file, "--config", configFile, "--threshold", "1", "--json");
    expect(lowered.code).toBe(2);
    expect(json(lowered).error).toMatchObject({ code: "ERR_CLI_USAGE", details: { option: "--threshold" } });
  }, 120_000);

  test("a revoked code hash fails at the latest block; a receipt or anchor of an earlier write verifies at its block", async () => {
    // Write the result to the ledger (the contract checks the proof against the registry), then revoke.
    const ledger = new Contract(deployed.ledger, interfaceOf("ResultLedger"), node.funder);
    const tx = await ledger.getFunction("record")(
      bundleResultToStruct(fixture.bundle.result),
      fixture.bundle.payload.public!.data,
      fixture.bundle.signatures.map((s) => s.signature),
    );
    const mined = await tx.wait();
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

    const bare = await cli("verify", await jsonFile(fixture.bundle), "--config", configFile, "--json");
    expect(bare.code).toBe(1);
    expect(json(bare).chains[0]).toMatchObject({ at: "latest", approvedCodeHashes: [] });
    expect(checkOf(bare, "codeHash")).toMatchObject({ verdict: "fail" });

    const atWrite = await cli("verify", await jsonFile(receipt(mined.blockNumber)), "--config", configFile);
    expect(atWrite.code).toBe(0);
    expect(atWrite.stdout).toContain(`at block ${mined.blockNumber} (the block of the write)`);

    // A bare bundle whose anchor names the write: read at the anchor's block.
    const anchored = bundleWith({
      anchors: [
        {
          chainId: String(CHAIN_ID),
          contract: deployed.ledger,
          txHash: mined.hash,
          blockNumber: String(mined.blockNumber),
          blockHash: mined.blockHash,
          gasUsed: mined.gasUsed.toString(),
          mode: "record",
        },
      ],
    });
    const viaAnchor = await cli("verify", await jsonFile(anchored), "--config", configFile, "--json");
    expect(viaAnchor.code).toBe(0);
    expect(json(viaAnchor).chains[0]).toMatchObject({ at: "anchor", blockNumber: mined.blockNumber });

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
