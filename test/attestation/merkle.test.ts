import { StandardMerkleTree } from "@openzeppelin/merkle-tree";
import { TypedDataEncoder, id } from "ethers";

import {
  CRYPTLET_RESULT_TYPES,
  hashCryptletResult,
  type CryptletResult,
  type Hex32,
} from "../../runtime/attestation/eip712.ts";
import { buildMerkleBatch, verifyMerkleProof } from "../../runtime/attestation/merkle.ts";

const results = (n: number): CryptletResult[] =>
  Array.from({ length: n }, (_, i) => ({
    resultId: id(`result-${i}`) as Hex32,
    cryptletId: id("cryptlet") as Hex32,
    codeHash: id("code") as Hex32,
    inputHash: id(`input-${i}`) as Hex32,
    outputHash: id(`output-${i}`) as Hex32,
    timestamp: 1_700_000_000n + BigInt(i),
  }));

describe("Merkle batches", () => {
  test("the direct struct hash equals ethers' generic EIP-712 encoder, and rejects malformed members", () => {
    const encoder = TypedDataEncoder.from(
      CRYPTLET_RESULT_TYPES as unknown as Record<string, { name: string; type: string }[]>,
    );
    for (const r of results(20)) expect(hashCryptletResult(r)).toBe(encoder.hash(r));
    const [r] = results(1);
    expect(() => hashCryptletResult({ ...r!, codeHash: "0x1234" as Hex32 })).toThrow(TypeError);
    expect(() => hashCryptletResult({ ...r!, timestamp: 2n ** 64n })).toThrow(TypeError);
    expect(() => hashCryptletResult({ ...r!, timestamp: -1n })).toThrow(TypeError);
  });

  test.each([1, 2, 3, 7, 64, 257])(
    "%i results: same root and proofs as StandardMerkleTree, every proof verifies",
    (n) => {
      const batch = results(n);
      const built = buildMerkleBatch(batch);
      const reference = StandardMerkleTree.of(
        batch.map((r) => [hashCryptletResult(r)]),
        ["bytes32"],
      );
      expect(built.root).toBe(reference.root);
      expect(built.proofs).toEqual(batch.map((_, i) => reference.getProof(i)));
      batch.forEach((r, i) => expect(verifyMerkleProof(built.root, r, built.proofs[i]!)).toBe(true));
      if (n > 1) {
        expect(verifyMerkleProof(built.root, batch[0]!, built.proofs[1]!)).toBe(false);
        expect(
          verifyMerkleProof(built.root, { ...batch[0]!, outputHash: id("tampered") as Hex32 }, built.proofs[0]!),
        ).toBe(false);
      }
    },
  );

  test("an empty batch is refused", () => {
    expect(() => buildMerkleBatch([])).toThrow(RangeError);
  });
});
