/**
 * `cryptlet registry rotate-signer` on two real chains (two `hardhat node`s, each with its CryptletRegistry):
 * every chain is read before anything is sent; without `--key` the calldata is printed; with `--key` it is sent,
 * confirmed and read back. Every outcome is checked against the registries themselves (`isSigner`, `signers()`,
 * `threshold()`, the transactions' calldata decoded with the contract's own ABI), not against the command's output.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { Contract } from "ethers";

import { deployCryptletContracts, interfaceOf } from "../../runtime/chains/contracts.ts";
import { generateLocalKeyFile, LocalKeyProvider } from "../../runtime/keys/LocalKeyProvider.ts";
import { KeyVaultSigner } from "../../runtime/keys/KeyVaultSigner.ts";
import { CONSORTIUM_ID, testWallets } from "../support/contracts.ts";
import { startHardhatNode, type HardhatNode } from "../support/hardhatNode.ts";
import { cli, json } from "./cliProcess.ts";

const [A, B, C, D] = testWallets(4).map((w) => w.address) as [string, string, string, string];

let tmp: string;
const nodes: HardhatNode[] = [];
const registries: Contract[] = [];
let configFile: string;
let managerKey: string;
let strangerKey: string;

const trusted = async (registry: Contract): Promise<string[]> =>
  ((await registry.getFunction("signers")()) as string[]).map(String).sort();

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "cryptlet-cli-registry-"));
  for (const chainId of [31401, 31402]) {
    const node = await startHardhatNode(chainId);
    nodes.push(node);
    const deployed = await deployCryptletContracts(node.funder, {
      consortiumId: CONSORTIUM_ID,
      signers: [A, B],
      threshold: 2,
    });
    registries.push(new Contract(deployed.registry, interfaceOf("CryptletRegistry"), node.funder));
  }
  for (const name of ["writer", "result-signer", "manager", "stranger"]) {
    await generateLocalKeyFile(path.join(tmp, `${name}.jwk.json`), { curve: "secp256k1" });
  }
  await generateLocalKeyFile(path.join(tmp, "attestation.jwk.json"), { curve: "P-256" });
  managerKey = path.join(tmp, "manager.jwk.json");
  strangerKey = path.join(tmp, "stranger.jwk.json");
  // The manager key holds SIGNER_MANAGER_ROLE on both registries (granted by the deployer, the admin); both keys
  // have gas.
  const manager = await new KeyVaultSigner(new LocalKeyProvider({ keyFile: managerKey })).getAddress();
  const stranger = await new KeyVaultSigner(new LocalKeyProvider({ keyFile: strangerKey })).getAddress();
  for (const [i, registry] of registries.entries()) {
    const role = (await registry.getFunction("SIGNER_MANAGER_ROLE")()) as string; // the contract's own constant
    await (await registry.getFunction("grantRole")(role, manager)).wait();
    await nodes[i]!.fund(manager);
    await nodes[i]!.fund(stranger);
  }
  configFile = path.join(tmp, "config.json");
  await writeFile(
    configFile,
    JSON.stringify({
      consortiumId: CONSORTIUM_ID,
      issuer: "registry-test",
      keys: {
        resultSigners: [{ type: "local", jwkPath: path.join(tmp, "result-signer.jwk.json") }],
        attestation: { type: "local", jwkPath: path.join(tmp, "attestation.jwk.json") },
      },
      chains: nodes.map((node, i) => ({
        name: `chain${i + 1}`,
        chainId: node.chainId,
        rpcUrl: node.url,
        signer: { type: "local", jwkPath: path.join(tmp, "writer.jwk.json") },
        contracts: { registry: String(registries[i]!.target) },
      })),
    }),
  );
}, 120_000);

afterAll(async () => {
  for (const node of nodes) await node.stop();
  await rm(tmp, { recursive: true, force: true });
});

test("without --key: each registry's transaction is printed, and it is the rotation the contract would run", async () => {
  const run = await cli("registry", "rotate-signer", A, C, "--config", configFile, "--json");
  expect(run.code).toBe(0);
  const steps = json(run) as { chain: string; status: string; to: string; data: string }[];
  expect(steps.map((s) => [s.chain, s.status, s.to])).toEqual([
    ["chain1", "pending", String(registries[0]!.target)],
    ["chain2", "pending", String(registries[1]!.target)],
  ]);
  // The calldata, decoded with the contract's own ABI, is rotateSigner(A, C).
  const call = interfaceOf("CryptletRegistry").parseTransaction({ data: steps[0]!.data })!;
  expect([call.name, ...call.args]).toEqual(["rotateSigner", A, C]);
  // Nothing was sent.
  for (const registry of registries) expect(await trusted(registry)).toEqual([A, B].sort());
});

test("a chain that refuses stops the command before anything is sent anywhere", async () => {
  // chain2 already trusts D: rotating A to D is refused there, and chain1 must stay untouched.
  await (await registries[1]!.getFunction("addSigner")(D)).wait();
  try {
    const run = await cli("registry", "rotate-signer", A, D, "--config", configFile, "--key", managerKey, "--json");
    expect(run.code).toBe(1);
    expect(json(run).error).toMatchObject({ code: "ERR_CLI_ROTATE_REFUSED", details: { chain: "chain2" } });
    expect(await trusted(registries[0]!)).toEqual([A, B].sort());
  } finally {
    await (await registries[1]!.getFunction("removeSigner")(D)).wait();
  }
  // A key without the role is refused the same way, before sending.
  const stranger = await cli("registry", "rotate-signer", A, C, "--config", configFile, "--key", strangerKey);
  expect(stranger.code).toBe(1);
  expect(stranger.stderr).toContain("SIGNER_MANAGER_ROLE");
  for (const registry of registries) expect(await trusted(registry)).toEqual([A, B].sort());
  // Bad arguments are usage errors.
  expect((await cli("registry", "rotate-signer", A, "0x1234", "--config", configFile)).code).toBe(2);
  expect((await cli("registry", "rotate-signer", A, A, "--config", configFile)).code).toBe(2);
  expect((await cli("registry", "rotate-signer", A, C, "--config", configFile, "--chain", "nowhere")).code).toBe(2);
});

test("with --key: rotated on every chain, confirmed and read back; run again, it sends nothing", async () => {
  // Cut short: only chain1 first.
  const first = await cli(
    "registry",
    "rotate-signer",
    A,
    C,
    "--config",
    configFile,
    "--key",
    managerKey,
    "--chain",
    "chain1",
    "--json",
  );
  expect(first.code).toBe(0);
  expect(json(first)).toMatchObject([{ chain: "chain1", status: "sent" }]);
  expect(await trusted(registries[0]!)).toEqual([B, C].sort());
  expect(await trusted(registries[1]!)).toEqual([A, B].sort());
  // The transaction it names is on the chain, from the manager, calling rotateSigner(A, C).
  const tx = await nodes[0]!.provider.getTransaction(json(first)[0].txHash);
  expect([...interfaceOf("CryptletRegistry").parseTransaction({ data: tx!.data })!.args]).toEqual([A, C]);

  // Run again over both: chain1 is already done, chain2 is rotated now.
  const rest = await cli("registry", "rotate-signer", A, C, "--config", configFile, "--key", managerKey, "--json");
  expect(rest.code).toBe(0);
  expect(json(rest).map((s: { chain: string; status: string }) => [s.chain, s.status])).toEqual([
    ["chain1", "done"],
    ["chain2", "sent"],
  ]);
  for (const registry of registries) {
    expect(await trusted(registry)).toEqual([B, C].sort());
    expect(await registry.getFunction("threshold")()).toBe(2n);
  }
  const nonce = await nodes[0]!.provider.getTransactionCount(tx!.from);
  const again = await cli("registry", "rotate-signer", A, C, "--config", configFile, "--key", managerKey, "--json");
  expect(json(again).map((s: { status: string }) => s.status)).toEqual(["done", "done"]);
  expect(await nodes[0]!.provider.getTransactionCount(tx!.from)).toBe(nonce);
}, 120_000);
