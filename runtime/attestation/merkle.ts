/**
 * Merkle batches of Cryptlet results, built with OpenZeppelin's `@openzeppelin/merkle-tree` (StandardMerkleTree,
 * leaf encoding `["bytes32"]`, leaf = keccak256(keccak256(abi.encode(structHash))), sorted-pair hashing), which
 * `ResultLedger.verify` checks on-chain with OpenZeppelin `MerkleProof`.
 *
 * @module
 */
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";

import { hashCryptletResult, type CryptletResult, type Hex32 } from "./eip712.ts";

/** A built batch: its root, and each result's Merkle proof in input order. */
export interface MerkleBatch {
  /** The tree root, to be signed as `ResultBatch.root` and anchored. */
  root: Hex32;
  /** `proofs[i]` is the Merkle proof of `results[i]` (sibling hashes from leaf to root). */
  proofs: Hex32[][];
  /** `leaves[i]` is the struct hash of `results[i]`. */
  leaves: Hex32[];
}

/**
 * Builds a Merkle batch over the results' EIP-712 struct hashes.
 * @throws RangeError when `results` is empty.
 */
export function buildMerkleBatch(results: readonly CryptletResult[]): MerkleBatch {
  if (results.length === 0) throw new RangeError("a Merkle batch needs at least one result");
  const leaves = results.map(hashCryptletResult);
  const tree = StandardMerkleTree.of(
    leaves.map((leaf) => [leaf]),
    ["bytes32"],
  );
  return {
    root: tree.root as Hex32,
    proofs: leaves.map((_, i) => tree.getProof(i) as Hex32[]),
    leaves,
  };
}

/** Checks a Merkle proof off-chain exactly as `ResultLedger.verify` does on-chain. */
export function verifyMerkleProof(root: Hex32, result: CryptletResult, proof: readonly Hex32[]): boolean {
  try {
    return StandardMerkleTree.verify(root, ["bytes32"], [hashCryptletResult(result)], [...proof]);
  } catch {
    return false;
  }
}
