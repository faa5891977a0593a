/**
 * Keccak-256 (the Ethereum hash: Keccak with the original `0x01` padding, not NIST SHA3-256's `0x06`) over bytes,
 * computed by `hash-wasm`'s WebAssembly Keccak. Node's OpenSSL offers SHA3-256 but not Keccak-256; this is faster
 * per small hash than the JavaScript permutation of `@noble/hashes` that ethers uses, which matters where thousands
 * of small hashes are made: Merkle trees, EIP-712 struct hashes and digests (the Merkle batch row of
 * docs/benchmarks.md, "Proofs", measures the effect). test/attestation/keccak.test.ts compares it with ethers' `keccak256` on random inputs of many lengths.
 *
 * One hasher instance serves the process: every call is synchronous (init, update, digest), so calls never
 * interleave.
 *
 * @module
 */
import { createKeccak } from "hash-wasm";

const hasher = await createKeccak(256);

/**
 * keccak256 of `data`.
 * @param data - any bytes (length 0 or more).
 * @returns the 32-byte digest, a new array owned by the caller.
 */
export function keccak256Bytes(data: Uint8Array): Uint8Array {
  hasher.init();
  hasher.update(data);
  return hasher.digest("binary");
}

/**
 * keccak256 of `data` as `0x` + 64 lower-case hex digits (as ethers' `keccak256` of bytes).
 * @param data - any bytes.
 */
export function keccak256Hex(data: Uint8Array): `0x${string}` {
  hasher.init();
  hasher.update(data);
  return `0x${hasher.digest("hex")}`;
}
