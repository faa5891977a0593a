/**
 * Merkle batches of Cryptlet results, built with OpenZeppelin's `@openzeppelin/merkle-tree` (StandardMerkleTree,
 * leaf encoding `["bytes32"]`, leaf = keccak256(keccak256(abi.encode(structHash))), sorted-pair hashing), which
 * `ResultLedger.verify` checks on-chain with OpenZeppelin `MerkleProof`.
 *
 * The batch is built with the same library's `SimpleMerkleTree` over leaves we hash ourselves with the
 * StandardMerkleTree leaf encoding, and proofs are read from the tree by index (`core.getProof`): the same root and
 * proofs as `StandardMerkleTree.of(leaves, ["bytes32"])` (a test compares them) at under half the time, because
 * StandardMerkleTree ABI-encodes every value through a generic encoder and re-validates the tree for each proof.
 *
 * @module
 */
import { SimpleMerkleTree, StandardMerkleTree } from "@openzeppelin/merkle-tree";
import { getProof } from "@openzeppelin/merkle-tree/dist/core.js";
import { keccak256 } from "ethers";

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
  const tree = SimpleMerkleTree.of(leaves.map(resultLeaf)).dump();
  return {
    root: tree.tree[0] as Hex32,
    proofs: tree.values.map((value) => getProof(tree.tree, value.treeIndex) as Hex32[]),
    leaves,
  };
}

/**
 * The Merkle leaf of a result's struct hash in StandardMerkleTree encoding with type `bytes32`:
 * `keccak256(keccak256(abi.encode(structHash)))`, where `abi.encode` of one `bytes32` is the word itself.
 * Equals `CryptletProofs.resultLeaf` on-chain.
 */
export function resultLeaf(structHash: Hex32): Hex32 {
  return keccak256(keccak256(structHash)) as Hex32;
}

/** Checks a Merkle proof off-chain exactly as `ResultLedger.verify` does on-chain. */
export function verifyMerkleProof(root: Hex32, result: CryptletResult, proof: readonly Hex32[]): boolean {
  try {
    // Hex is compared as a value, whatever its case (as every other bytes32 of a bundle).
    return StandardMerkleTree.verify(
      root.toLowerCase(),
      ["bytes32"],
      [hashCryptletResult(result)],
      proof.map((p) => p.toLowerCase()),
    );
  } catch {
    return false;
  }
}
