import { StandardMerkleTree } from "@openzeppelin/merkle-tree";
import { getProof } from "@openzeppelin/merkle-tree/dist/core.js";
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

  // Every size up to 40 (all small shapes), then every 7th and the powers of two with their neighbours, to 300.
  const sizes = [
    ...new Set([
      ...Array.from({ length: 40 }, (_, i) => i + 1),
      ...Array.from({ length: 43 }, (_, i) => 41 + 7 * i),
      ...[63, 64, 65, 127, 128, 129, 255, 256, 257, 300],
    ]),
  ].sort((a, b) => a - b);
  test(`${sizes.length} batch sizes from 1 to 300: same root and every proof as StandardMerkleTree.of`, () => {
    const all = results(300);
    const structHashes = all.map(hashCryptletResult);
    for (const n of sizes) {
      const batch = all.slice(0, n);
      const built = buildMerkleBatch(batch);
      const reference = StandardMerkleTree.of(
        structHashes.slice(0, n).map((h) => [h]),
        ["bytes32"],
      );
      expect({ n, root: built.root }).toEqual({ n, root: reference.root });
      expect(built.leaves).toEqual(structHashes.slice(0, n));
      // The reference's own proofs: `getProof` (which also re-checks each proof against the root: slow) for the
      // named sizes, the library's `core.getProof` over its dumped tree for every size.
      const dump = reference.dump();
      expect(built.proofs).toEqual(dump.values.map((v) => getProof(dump.tree, v.treeIndex)));
      if ([1, 2, 3, 255, 256, 257].includes(n)) {
        expect(built.proofs).toEqual(batch.map((_, i) => reference.getProof(i)));
      }
    }
  });

  test("equal results (equal leaves) get the same tree and proofs as StandardMerkleTree.of", () => {
    const [a, b, c] = results(3);
    const batch = [b!, a!, b!, c!, a!, a!];
    const built = buildMerkleBatch(batch);
    const reference = StandardMerkleTree.of(
      batch.map((r) => [hashCryptletResult(r)]),
      ["bytes32"],
    );
    expect(built.root).toBe(reference.root);
    expect(built.proofs).toEqual(batch.map((_, i) => reference.getProof(i)));
  });

  test.each([1, 2, 3, 7, 64, 255, 256, 257])("%i results: every proof verifies, a wrong one does not", (n) => {
    const batch = results(n);
    const built = buildMerkleBatch(batch);
    batch.forEach((r, i) => expect(verifyMerkleProof(built.root, r, built.proofs[i]!)).toBe(true));
    if (n > 1) {
      expect(verifyMerkleProof(built.root, batch[0]!, built.proofs[1]!)).toBe(false);
      expect(
        verifyMerkleProof(built.root, { ...batch[0]!, outputHash: id("tampered") as Hex32 }, built.proofs[0]!),
      ).toBe(false);
    }
  });

  test("an empty batch is refused", () => {
    expect(() => buildMerkleBatch([])).toThrow(RangeError);
  });
});
