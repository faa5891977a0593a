/**
 * Gas table: deploys the Cryptlet contracts on an in-process Hardhat chain (EDR, hardfork as configured, solc and
 * optimizer settings from hardhat.config.ts), exercises every write path and writes docs/gas.md.
 *
 * Run: `npm run gas` (compiles first). Figures are `gasUsed` from transaction receipts (they include the 21,000
 * intrinsic gas and calldata), except `verify`, which is a view: its figure is `eth_estimateGas` of a call.
 */
import { writeFileSync } from "node:fs";
import path from "node:path";

import {
  AbiCoder,
  type BaseContract,
  type Log,
  Wallet,
  id,
  keccak256,
  toUtf8Bytes,
  type TransactionResponse,
} from "ethers";
import { network } from "hardhat";

import { computeResultId, type CryptletResult, type Hex32, type ResultBatch } from "../runtime/attestation/eip712.ts";
import { buildMerkleBatch } from "../runtime/attestation/merkle.ts";
import { SOLC_VERSION } from "../hardhat.config.ts";
import { signBatch as signBatchWith, signResult } from "../test/support/contracts.ts";

const CONSORTIUM = id("gas-consortium") as Hex32;
const CRYPTLET = keccak256(toUtf8Bytes("@cryptlet/gas")) as Hex32;
const CODE = id("gas-code") as Hex32;
const signers = [0, 1, 2].map((i) => new Wallet(id(`gas-signer-${i}`)));

const { ethers } = await network.create();
const [admin] = await ethers.getSigners();
if (!admin) throw new Error("no accounts");
const adminAddress = await admin.getAddress();
const rows: { operation: string; gas: bigint; note?: string }[] = [];

async function gasOf(tx: Promise<TransactionResponse>): Promise<bigint> {
  const receipt = await (await tx).wait();
  if (!receipt) throw new Error("no receipt");
  return receipt.gasUsed;
}

/** A contract called by name, without generated bindings. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyContract = BaseContract & { [member: string]: any };

async function deploy(name: string, args: unknown[], label = name): Promise<AnyContract> {
  const contract = await ethers.deployContract(name, args);
  const receipt = await contract.deploymentTransaction()!.wait();
  rows.push({ operation: `deploy ${label}`, gas: receipt!.gasUsed });
  return contract as unknown as AnyContract;
}

const sign = (wallets: Wallet[], result: CryptletResult) => signResult(wallets, result, CONSORTIUM);
const signBatch = (wallets: Wallet[], batch: ResultBatch) => signBatchWith(wallets, batch, CONSORTIUM);

function result(requestId: Hex32, payload: string, cryptletId = CRYPTLET): CryptletResult {
  return {
    resultId: computeResultId(cryptletId, requestId),
    cryptletId,
    codeHash: CODE,
    inputHash: id(`input-${requestId}`) as Hex32,
    outputHash: keccak256(payload) as Hex32,
    timestamp: 1_704_412_800n,
  };
}

// Threshold 1 of 3, so that one and three signatures can both be measured on the same registry.
const registry = await deploy(
  "CryptletRegistry",
  [CONSORTIUM, adminAddress, signers.map((w) => w.address), 1],
  "CryptletRegistry (3 signers)",
);
const registryAddress = await registry.getAddress();
const oracle = await deploy("CryptletOracle", [registryAddress, 2_000_000]);
const ledger = await deploy("ResultLedger", [registryAddress]);
const feed = await deploy("CryptletPriceFeed", [registryAddress, CRYPTLET, 8, "ETH / USD", 1]);
const consumer = await deploy("ExampleOracleConsumer", [await oracle.getAddress(), CRYPTLET]);
await deploy("PriceFeedConsumer", [await feed.getAddress(), 3600]);
rows.push({ operation: "registry approveCodeHash", gas: await gasOf(registry.approveCodeHash(CRYPTLET, CODE)) });

/** `length` deterministic pseudo-random bytes (a keccak256 chain), so that calldata costs are reproducible. */
function fixedBytes(length: number): string {
  const words: string[] = [];
  for (let word = id("gas-payload"); words.length * 32 < length; word = keccak256(word)) words.push(word.slice(2));
  return "0x" + words.join("").slice(0, length * 2);
}
const payloads: [string, string][] = [
  ["32 B", fixedBytes(32)],
  ["256 B", fixedBytes(256)],
  ["1 KiB", fixedBytes(1024)],
];

// Oracle: request (from an account, callbackGasLimit 0 = no callback) and fulfil.
for (const signerCount of [1, 3]) {
  for (const [label, payload] of payloads) {
    const requestReceipt = await (await oracle.request(CRYPTLET, "0x", 0)).wait();
    if (signerCount === 1 && label === "32 B")
      rows.push({ operation: "oracle request (no params)", gas: requestReceipt!.gasUsed });
    const requestId = oracle.interface.parseLog(requestReceipt!.logs[0]!)!.args.requestId as Hex32;
    const r = result(requestId, payload);
    const gas = await gasOf(oracle.fulfill(r, payload, await sign(signers.slice(0, signerCount), r)));
    rows.push({
      operation: `oracle fulfill, ${signerCount} signature${signerCount > 1 ? "s" : ""}, ${label} payload, no callback`,
      gas,
    });
  }
}
{
  const askReceipt = await (await consumer.ask("0x")).wait();
  const log = askReceipt!.logs.find((l: Log) => l.address === (oracle.target as string));
  const requestId = oracle.interface.parseLog(log!)!.args.requestId as Hex32;
  const [, payload] = payloads[0]!;
  const r = result(requestId, payload);
  rows.push({ operation: "consumer ask (oracle request through a consumer)", gas: askReceipt!.gasUsed });
  rows.push({
    operation: "oracle fulfill, 1 signature, 32 B payload, with the example consumer's callback",
    gas: await gasOf(oracle.fulfill(r, payload, await sign(signers.slice(0, 1), r))),
  });
}

// Ledger: record.
for (const signerCount of [1, 3]) {
  for (const [label, payload] of payloads) {
    const r = result(id(`record-${signerCount}-${label}`) as Hex32, payload);
    const gas = await gasOf(ledger.record(r, payload, await sign(signers.slice(0, signerCount), r)));
    rows.push({
      operation: `ledger record, ${signerCount} signature${signerCount > 1 ? "s" : ""}, ${label} payload`,
      gas,
    });
  }
}

// Ledger: anchor a batch of 256 results, and verify one of them.
const batchResults = Array.from({ length: 256 }, (_, i) => result(id(`batch-${i}`) as Hex32, id(`out-${i}`)));
const merkle = buildMerkleBatch(batchResults);
const header: ResultBatch = { root: merkle.root, count: batchResults.length, timestamp: 1_704_412_800n };
for (const signerCount of [1, 3]) {
  const h = { ...header, timestamp: header.timestamp + BigInt(signerCount) };
  const root = signerCount === 1 ? header.root : (id("other-root") as Hex32);
  const batch = { ...h, root };
  const gas = await gasOf(ledger.anchor(batch, await signBatch(signers.slice(0, signerCount), batch)));
  rows.push({
    operation: `ledger anchor (Merkle root of 256 results), ${signerCount} signature${signerCount > 1 ? "s" : ""}`,
    gas,
  });
}
const anchorOneSig = rows.find(
  (r) => r.operation.startsWith("ledger anchor") && r.operation.endsWith("1 signature"),
)!.gas;
rows.push({
  operation: "ledger anchor, per result at 256 per batch, 1 signature",
  gas: anchorOneSig / 256n,
  note: "anchor gas / 256",
});
rows.push({
  operation: "ledger verify (view, depth-8 Merkle proof), as eth_estimateGas",
  gas: await ledger.verify.estimateGas(batchResults[17], merkle.proofs[17], merkle.root),
  note: "includes 21,000 intrinsic gas and calldata",
});

// Price feed.
const abi = AbiCoder.defaultAbiCoder();
for (const [i, observedAt] of [1_704_412_800n, 1_704_412_860n].entries()) {
  const payload = abi.encode(["int256", "uint8", "uint64"], [227_812_345_678n + BigInt(i), 8, observedAt]);
  const r = result(id(`feed-${i}`) as Hex32, payload);
  rows.push({
    operation: `price feed submit, 1 signature (${i === 0 ? "first round" : "later round"})`,
    gas: await gasOf(feed.submit(r, payload, await sign(signers.slice(0, 1), r))),
  });
}

// Cross-chain transfer (docs/crosschain.md): lockbox and wrapped token on one chain, as in the tests.
{
  const chainId = (await ethers.provider.getNetwork()).chainId;
  const testToken = (await ethers.deployContract("TestERC20", ["Test Token", "TST"])) as unknown as AnyContract;
  const tokenAddress = await testToken.getAddress();
  const lockbox = await deploy("CryptletLockbox", [tokenAddress, registryAddress, CRYPTLET, adminAddress]);
  const lockboxAddress = await lockbox.getAddress();
  const wrapped = await deploy("CryptletWrappedToken", [
    "Wrapped Test Token",
    "wTST",
    18,
    registryAddress,
    CRYPTLET,
    chainId,
    lockboxAddress,
  ]);
  const wrappedAddress = await wrapped.getAddress();
  const route = [chainId, lockboxAddress, chainId, wrappedAddress] as const;
  rows.push({ operation: "lockbox setPeer", gas: await gasOf(lockbox.setPeer(chainId, wrappedAddress)) });
  await (await testToken.mint(adminAddress, 1_000_000n)).wait();
  await (await testToken.approve(lockboxAddress, 1_000_000n)).wait();
  const now = BigInt((await ethers.provider.getBlock("latest"))!.timestamp);
  const deadline = now + 3_600n;
  const lockIds: string[] = [];
  for (const label of ["first lock", "later lock"]) {
    const receipt = await (await lockbox.lock(1_000n, chainId, adminAddress, deadline)).wait();
    lockIds.push(lockbox.interface.parseLog(receipt!.logs.at(-1)!)!.args.lockId as string);
    rows.push({ operation: `lockbox lock (${label})`, gas: receipt!.gasUsed });
  }
  const mintPayload = abi.encode(
    ["uint8", "bytes32", "uint256", "address", "uint256", "address", "address", "uint256", "uint64"],
    [1, lockIds[0], ...route, adminAddress, 1_000n, deadline],
  );
  const mintResult = result(id("crosschain-mint") as Hex32, mintPayload);
  rows.push({
    operation: "wrapped token mint, 1 signature",
    gas: await gasOf(wrapped.mint(mintResult, mintPayload, await sign(signers.slice(0, 1), mintResult))),
  });
  const burnReceipt = await (await wrapped.burn(400n, chainId, adminAddress)).wait();
  rows.push({ operation: "wrapped token burn", gas: burnReceipt!.gasUsed });
  const burnId = wrapped.interface.parseLog(burnReceipt!.logs.at(-1)!)!.args.burnId as string;
  const releasePayload = abi.encode(
    ["uint8", "bytes32", "uint256", "address", "uint256", "address", "address", "uint256"],
    [2, burnId, ...route, adminAddress, 400n],
  );
  const releaseResult = result(id("crosschain-release") as Hex32, releasePayload);
  rows.push({
    operation: "lockbox release, 1 signature",
    gas: await gasOf(lockbox.release(releaseResult, releasePayload, await sign(signers.slice(0, 1), releaseResult))),
  });
  await ethers.provider.send("evm_setNextBlockTimestamp", [Number(deadline + 1n)]);
  await ethers.provider.send("evm_mine", []);
  const refundPayload = abi.encode(
    ["uint8", "bytes32", "uint256", "address", "uint256", "address", "address", "uint256", "uint64", "uint64"],
    [3, lockIds[1], ...route, adminAddress, 1_000n, deadline, deadline + 1n],
  );
  const refundResult = result(id("crosschain-refund") as Hex32, refundPayload);
  rows.push({
    operation: "lockbox refund, 1 signature",
    gas: await gasOf(lockbox.refund(refundResult, refundPayload, await sign(signers.slice(0, 1), refundResult))),
  });
}

const fulfil1 = rows.find((r) => r.operation === "oracle fulfill, 1 signature, 32 B payload, no callback")!.gas;
const anchor1 = anchorOneSig;
const verdict = (gas: bigint, target: bigint) =>
  gas <= target ? "met" : `missed by ${(gas - target).toLocaleString("en-US")}`;
const table = rows
  .map((r) => `| ${r.operation} | ${r.gas.toLocaleString("en-US")} |${r.note ? ` ${r.note}` : ""}`)
  .join("\n");
const doc = `# Gas table

Produced by \`npm run gas\` (\`scripts/gas-report.ts\`) on an in-process Hardhat 3 chain (EDR), solc ${SOLC_VERSION},
optimizer on (10,000 runs), EVM target cancun. Figures are \`gasUsed\` of each transaction receipt, so they include
the 21,000 intrinsic gas and the calldata; signatures are 65-byte ECDSA over EIP-712 digests. Re-run the command
to refresh this file.

## Targets

| target | measured | verdict |
| --- | ---: | --- |
| oracle fulfill, 1 signature, 32 B payload, no callback ≤ 60,000 | ${fulfil1.toLocaleString("en-US")} | ${verdict(fulfil1, 60_000n)} |
| ledger anchor ≤ 50,000 | ${anchor1.toLocaleString("en-US")} | ${verdict(anchor1, 50_000n)} |

## All operations

| operation | gas | note
| --- | ---: | --- |
${table}

## Where the gas goes

- Every transaction pays 21,000 intrinsic gas plus calldata (16 gas per non-zero byte, 4 per zero byte): a
  \`CryptletResult\` (6 words), one 65-byte signature and the ABI offsets are about 450 bytes.
- One ECDSA recovery costs 3,000 gas (precompile) plus hashing; each further signature adds a recovery, a
  cold \`isSigner\` storage read (2,100) and the duplicate check.
- The proof check is one external call to the registry (2,600 for the cold account), reading the approval
  (2,100) and the packed signer-count/threshold slot (2,100).
- \`fulfill\` rewrites the request's own slot (non-zero to non-zero, 2,900 + 2,100 cold) instead of allocating a
  new one: that is why it stays under its target. \`record\` and \`anchor\` must allocate a new slot (22,100) to
  make \`isRecorded\`/\`verify\` possible, which puts \`anchor\`'s floor at 21,000 + 22,100 + 3,000 = 46,100 before
  calldata and the registry's reads.
- Why \`anchor\` misses 50,000: the floor above plus calldata (~2,600 for the batch and one signature), the
  registry call (2,600 cold account + 2,100 signer + 2,100 threshold) and the \`BatchAnchored\` event (~1,650)
  already exceed it. Meeting it would mean not storing the root (an event-only anchor, with \`verify\` re-checking
  the batch signatures on every call) or merging registry and ledger into one contract (saves ~3,500, still
  above 50,000). We keep the stored, pre-verified root: consumers pay ~19,000 for \`verify\` instead of a
  signature check each time, and per result the anchor costs ~250 gas at 256 results per batch.
- The payload is emitted in an event (8 gas per byte plus 375 per topic and log), so 1 KiB costs ~8,000 more than
  32 B in event data, plus its calldata.
- The registry keeps its signers and approved code hashes in OpenZeppelin \`EnumerableSet\`s, so that a verifier can
  read the whole trust set from the chain (\`signers()\`, \`approvedCodeHashes(cryptletId)\`). A membership test is
  still one storage read, but the library's internal calls cost gas: measured against the table this change
  replaced, \`fulfill\` with 1 signature rose by 163 gas (52,418 before) and with 3 signatures by 283, about 60 per
  signature checked and 100 for the approval check; an approval writes one more slot (its index, +22,067).
`;
writeFileSync(path.resolve(import.meta.dirname, "..", "docs", "gas.md"), doc);
console.log(doc);
