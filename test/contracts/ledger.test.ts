import { id, keccak256, toUtf8Bytes, ZeroHash } from "ethers";

import type { CryptletResult, Hex32 } from "../../runtime/attestation/eip712.ts";
import { buildMerkleBatch, verifyMerkleProof } from "../../runtime/attestation/merkle.ts";
import {
  cryptletIdOf,
  deployStack,
  expectCustomError,
  makeResult,
  signBatch,
  signResult,
  type CryptletStack,
} from "../support/contracts.ts";

const CRYPTLET = cryptletIdOf("@test/ledger");
const CODE = id("ledger-code-v1") as Hex32;

function results(count: number): { results: CryptletResult[]; payloads: string[] } {
  const payloads = Array.from({ length: count }, (_, i) => keccak256(toUtf8Bytes(`payload-${i}`)));
  return {
    payloads,
    results: payloads.map((p, i) =>
      makeResult(CRYPTLET, id(`ledger-request-${i}`) as Hex32, CODE, p, 1_700_000_000n + BigInt(i)),
    ),
  };
}

describe("ResultLedger", () => {
  let s: CryptletStack;
  beforeEach(async () => {
    s = await deployStack(3, 2);
    await (await s.registry.approveCodeHash(CRYPTLET, CODE)).wait();
  });

  test("record keeps the output hash once and emits the payload", async () => {
    const payload = "0x" + "ab".repeat(256);
    const result = makeResult(CRYPTLET, id("r1") as Hex32, CODE, payload);
    const signatures = await signResult(s.signers.slice(1), result);
    expect(await s.ledger.isRecorded(result.resultId)).toBe(false);
    const receipt = await (await s.ledger.record(result, payload, signatures)).wait();
    const log = s.ledger.interface.parseLog(receipt.logs[0]);
    expect(log?.name).toBe("ResultRecorded");
    expect([...log!.args]).toEqual([
      result.resultId,
      result.cryptletId,
      result.codeHash,
      result.inputHash,
      result.outputHash,
      result.timestamp,
      payload,
    ]);
    expect(await s.ledger.isRecorded(result.resultId)).toBe(true);
    expect(await s.ledger.outputHashOf(result.resultId)).toBe(result.outputHash);
    await expectCustomError(s.ledger.record(result, payload, signatures), s.errors, "ResultLedgerAlreadyRecorded", [
      result.resultId,
    ]);
  });

  test("record rejects a tampered payload and a bad proof", async () => {
    const result = makeResult(CRYPTLET, id("r2") as Hex32, CODE, "0x01");
    const signatures = await signResult(s.signers, result);
    await expectCustomError(s.ledger.record(result, "0x02", signatures), s.errors, "ResultLedgerOutputHashMismatch", [
      result.outputHash,
      keccak256("0x02"),
    ]);
    const tampered = { ...result, inputHash: id("tampered") as Hex32 };
    await expectCustomError(s.ledger.record(tampered, "0x01", signatures), s.errors, "CryptletProofUntrustedSigner");
    expect(await s.ledger.isRecorded(result.resultId)).toBe(false);
  });

  test("anchor a batch of 100 results; every Merkle proof built in TypeScript verifies on-chain", async () => {
    const { results: batchResults } = results(100);
    const batch = buildMerkleBatch(batchResults);
    const header = { root: batch.root, count: batchResults.length, timestamp: 1_700_000_500n };
    const signatures = await signBatch(s.signers.slice(0, 2), header);
    const receipt = await (await s.ledger.anchor(header, signatures)).wait();
    const log = s.ledger.interface.parseLog(receipt.logs[0]);
    expect(log?.name).toBe("BatchAnchored");
    expect([...log!.args]).toEqual([header.root, 100n, header.timestamp]);
    expect(await s.ledger.isAnchored(header.root)).toBe(true);
    const stored = await s.ledger.anchorOf(header.root);
    expect(stored.count).toBe(100n);
    expect(stored.timestamp).toBe(header.timestamp);

    for (let i = 0; i < batchResults.length; i += 1) {
      expect(verifyMerkleProof(batch.root, batchResults[i]!, batch.proofs[i]!)).toBe(true);
      expect(await s.ledger.verify(batchResults[i], batch.proofs[i], batch.root)).toBe(true);
    }
    // A proof for another leaf, a tampered result, and an unknown root do not verify.
    expect(await s.ledger.verify(batchResults[0], batch.proofs[1], batch.root)).toBe(false);
    const tampered = { ...batchResults[3]!, outputHash: id("x") as Hex32 };
    expect(verifyMerkleProof(batch.root, tampered, batch.proofs[3]!)).toBe(false);
    expect(await s.ledger.verify(tampered, batch.proofs[3], batch.root)).toBe(false);
    expect(await s.ledger.verify(batchResults[3], batch.proofs[3], id("unknown-root"))).toBe(false);
    // Revoking the code hash makes verify false: approval is checked per result.
    await (await s.registry.revokeCodeHash(CRYPTLET, CODE)).wait();
    expect(await s.ledger.verify(batchResults[3], batch.proofs[3], batch.root)).toBe(false);

    await expectCustomError(s.ledger.anchor(header, signatures), s.errors, "ResultLedgerAlreadyAnchored", [
      header.root,
    ]);
  });

  test("a single-result batch has an empty proof", async () => {
    const { results: one } = results(1);
    const batch = buildMerkleBatch(one);
    expect(batch.proofs[0]).toEqual([]);
    const header = { root: batch.root, count: 1, timestamp: 1n };
    await (await s.ledger.anchor(header, await signBatch(s.signers, header))).wait();
    expect(await s.ledger.verify(one[0], [], batch.root)).toBe(true);
  });

  test("anchor rejects an empty batch and too few or forged signatures", async () => {
    await expectCustomError(
      s.ledger.anchor({ root: ZeroHash, count: 1, timestamp: 1n }, []),
      s.errors,
      "ResultLedgerEmptyBatch",
      [ZeroHash, 1n],
    );
    const root = id("root") as Hex32;
    await expectCustomError(
      s.ledger.anchor({ root, count: 0, timestamp: 1n }, []),
      s.errors,
      "ResultLedgerEmptyBatch",
      [root, 0n],
    );
    const header = { root, count: 5, timestamp: 1n };
    const signatures = await signBatch(s.signers, header);
    await expectCustomError(s.ledger.anchor(header, signatures.slice(0, 1)), s.errors, "CryptletProofThresholdNotMet", [
      1n,
      2n,
    ]);
    await expectCustomError(
      s.ledger.anchor({ ...header, count: 6 }, signatures),
      s.errors,
      "CryptletProofUntrustedSigner",
    );
    expect(await s.ledger.isAnchored(root)).toBe(false);
  });
});
