/**
 * Merkle batches of Cryptlet results in OpenZeppelin's StandardMerkleTree layout (`@openzeppelin/merkle-tree`, leaf
 * encoding `["bytes32"]`, leaf = keccak256(keccak256(abi.encode(structHash))), sorted-pair hashing), which
 * `ResultLedger.verify` checks on-chain with OpenZeppelin `MerkleProof`.
 *
 * The batch is built here in linear time over bytes, in exactly the library's layout: the leaves sorted by value
 * (ties kept in input order), stored at the end of an array of `2n - 1` nodes in reverse order (sorted leaf `i` at
 * index `2n - 2 - i`), and node `i` the sorted-pair hash of nodes `2i + 1` and `2i + 2`; a proof is the siblings
 * from the leaf up to the root. The tests compare the root and every proof with `StandardMerkleTree.of(leaves,
 * ["bytes32"])` for many sizes, and the contract verifies some of them. Proof verification off-chain is the
 * library's own (`StandardMerkleTree.verify`).
 *
 * @module
 */
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";
import { bytesToHex } from "@noble/hashes/utils";
import { keccak256 } from "ethers";

import { hashCryptletResult, hashCryptletResultBytes, type CryptletResult, type Hex32 } from "./eip712.ts";
import { keccak256Bytes } from "./keccak.ts";

/** A built batch: its root, and each result's Merkle proof in input order. */
export interface MerkleBatch {
  /** The tree root, to be signed as `ResultBatch.root` and anchored. */
  root: Hex32;
  /** `proofs[i]` is the Merkle proof of `results[i]` (sibling hashes from leaf to root). */
  proofs: Hex32[][];
  /** `leaves[i]` is the struct hash of `results[i]`. */
  leaves: Hex32[];
}

/** `-1`, `0` or `1` as `a` is below, equal to or above `b`, read as unsigned big-endian 32-byte values. */
function compare32(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < 32; i += 1) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return 0;
}

/** OpenZeppelin's `standardNodeHash` (= `Hashes.commutativeKeccak256`): keccak256 of the two nodes, smaller first. */
function hashPair(a: Uint8Array, b: Uint8Array, scratch: Uint8Array): Uint8Array {
  const [lo, hi] = compare32(a, b) <= 0 ? [a, b] : [b, a];
  scratch.set(lo, 0);
  scratch.set(hi, 32);
  return keccak256Bytes(scratch);
}

/**
 * Builds a Merkle batch over the results' EIP-712 struct hashes: the root and proofs equal those of
 * `StandardMerkleTree.of(results.map((r) => [hashCryptletResult(r)]), ["bytes32"])`, in O(n) hashes.
 * @param results - the batch, one or more results (at most what fits in an array of `2n - 1` nodes).
 * @returns root, per-result proofs and struct hashes, all 0x-prefixed lowercase hex, in input order.
 * @throws RangeError when `results` is empty; TypeError as `hashCryptletResult` for a malformed result.
 */
export function buildMerkleBatch(results: readonly CryptletResult[]): MerkleBatch {
  if (results.length === 0) throw new RangeError("a Merkle batch needs at least one result");
  const structHashes = results.map(hashCryptletResultBytes);
  const { root, proofs } = buildStandardMerkleTree(structHashes);
  return { root, proofs, leaves: structHashes.map((h) => `0x${bytesToHex(h)}` as Hex32) };
}

/**
 * Builds a tree in OpenZeppelin StandardMerkleTree's layout over already ABI-encoded leaf values: leaf `i` is
 * `keccak256(keccak256(encoded[i]))` (the library's `standardLeafHash` of `abi.encode(values)`), the leaves sorted,
 * sorted-pair node hashes; root and proofs equal `StandardMerkleTree.of(values, types)`'s for the same encodings,
 * in O(n) hashes.
 * @param encoded - `abi.encode` of each leaf's values (for one `bytes32`, the word itself), one or more.
 * @returns the root and each leaf's proof (sibling hashes from leaf to root) in input order, 0x lowercase hex.
 * @throws RangeError when `encoded` is empty.
 */
export function buildStandardMerkleTree(encoded: readonly Uint8Array[]): { root: Hex32; proofs: Hex32[][] } {
  const n = encoded.length;
  if (n === 0) throw new RangeError("a Merkle tree needs at least one leaf");
  const leafHashes = encoded.map((e) => keccak256Bytes(keccak256Bytes(e)));
  // Sorted leaf positions; `Array.prototype.sort` is stable, as the library's, so equal leaves keep input order.
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => compare32(leafHashes[a]!, leafHashes[b]!));
  const size = 2 * n - 1;
  const tree = new Array<Uint8Array>(size);
  const treeIndex = new Array<number>(n);
  order.forEach((input, sorted) => {
    tree[size - 1 - sorted] = leafHashes[input]!;
    treeIndex[input] = size - 1 - sorted;
  });
  const scratch = new Uint8Array(64);
  for (let i = size - 1 - n; i >= 0; i -= 1) tree[i] = hashPair(tree[2 * i + 1]!, tree[2 * i + 2]!, scratch);
  const hex = tree.map((node) => `0x${bytesToHex(node)}` as Hex32);
  const proofs = treeIndex.map((start) => {
    const proof: Hex32[] = [];
    // Sibling of an odd index is the next one, of an even (right) index the previous one; parent (i - 1) / 2.
    for (let i = start; i > 0; i = (i - 1) >> 1) proof.push(hex[i % 2 === 1 ? i + 1 : i - 1]!);
    return proof;
  });
  return { root: hex[0]!, proofs };
}

/**
 * The Merkle leaf of a result's struct hash in StandardMerkleTree encoding with type `bytes32`:
 * `keccak256(keccak256(abi.encode(structHash)))`, where `abi.encode` of one `bytes32` is the word itself.
 * Equals `CryptletProofs.resultLeaf` on-chain.
 */
export function resultLeaf(structHash: Hex32): Hex32 {
  return keccak256(keccak256(structHash)) as Hex32;
}

/**
 * Checks a Merkle proof off-chain exactly as `ResultLedger.verify` does on-chain (OpenZeppelin
 * `StandardMerkleTree.verify`, leaf encoding `["bytes32"]`, sorted-pair hashing).
 * @param root - the batch root, 32-byte hex in any case.
 * @param proof - sibling hashes from leaf to root, 32-byte hex in any case.
 * @returns whether the proof takes the result's leaf to `root`; false (never throws) for malformed input.
 */
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
