/**
 * secp256k1 public-key recovery (`ecrecover`) for 65-byte Ethereum signatures by libsecp256k1 through the `secp256k1`
 * package's N-API binding (its prebuilt Linux, macOS and Windows x64 binaries load without an install script; on
 * other platforms the package falls back to its own JavaScript implementation, `elliptic`, with the same answers).
 * It is much faster than the JavaScript curve arithmetic of @noble/curves (the verifyBundle row of docs/benchmarks.md,
 * "Proofs", measures the effect). Points are handed to callers as @noble/curves points.
 *
 * Keys already known (given, or recovered from a signature that counted) are remembered by address, so that
 * {@link recoversToKnownKey} compares a recovery with the key's bytes and skips the address derivation (keccak256
 * and EIP-55 checksum) of every further signature. Keys are always filed under the address computed from them.
 *
 * @module
 */
import { createRequire } from "node:module";

import { secp256k1 } from "@noble/curves/secp256k1.js";
import { bytesToHex } from "@noble/hashes/utils";
import { getAddress } from "ethers";

import { keccak256Bytes } from "./keccak.ts";

type Point = ReturnType<typeof secp256k1.ProjectivePoint.fromHex>;

/** The part of the `secp256k1` package (v5, docs: its API.md) used here. */
interface Libsecp256k1 {
  /** Public key of a compact signature `r ‖ s` (64 bytes) with recovery id 0 or 1 over a 32-byte message. */
  ecdsaRecover(signature: Uint8Array, recid: number, message: Uint8Array, compressed: boolean): Uint8Array;
}
const libsecp256k1 = createRequire(import.meta.url)("secp256k1") as Libsecp256k1;

/** Keys remembered at most (a consortium has a handful of signers; the bound is a guard). */
const MAX_KNOWN_KEYS = 256;
/** Address → uncompressed SEC 1 public key (65 bytes, as hex). */
const knownKeys = new Map<string, string>();

/** A 65-byte signature's parts: `r` and `s` in [1, n), `recovery` the nonce point's y-parity (`v - 27`). */
export interface SignatureParts {
  r: bigint;
  s: bigint;
  recovery: 0 | 1;
}

/** The checksummed (EIP-55) Ethereum address of a public point: the last 20 bytes of keccak256(x ‖ y). */
export function addressOfPoint(point: Point): string {
  const uncompressed = point.toRawBytes(false);
  return getAddress(`0x${bytesToHex(keccak256Bytes(uncompressed.subarray(1)).subarray(12))}`);
}

/**
 * Files a public key under its own address, so that {@link recoversToKnownKey} can check signatures of that
 * address by comparing keys.
 * @param publicKey - a secp256k1 point, or its SEC 1 encoding (33 or 65 bytes, as bytes or hex with or without 0x).
 * @returns the key's checksummed address.
 * @throws Error from @noble/curves when `publicKey` is not a point of the curve.
 */
export function rememberPublicKey(publicKey: Point | Uint8Array | string): string {
  const point =
    publicKey instanceof secp256k1.ProjectivePoint
      ? publicKey
      : secp256k1.ProjectivePoint.fromHex(typeof publicKey === "string" ? publicKey.replace(/^0x/i, "") : publicKey);
  const address = addressOfPoint(point);
  if (!knownKeys.has(address)) {
    if (knownKeys.size >= MAX_KNOWN_KEYS) knownKeys.clear();
    knownKeys.set(address, bytesToHex(point.toRawBytes(false)));
  }
  return address;
}

// Addresses recovered once, not yet remembered: a key is remembered from its second signature that counted.
const recoveredOnce = new Set<string>();

/**
 * Notes that `point` (of checksummed `address`) was recovered from a signature that counted: the second time a key
 * is noted it is remembered as by {@link rememberPublicKey}.
 */
export function noteRecoveredKey(point: Point, address: string): void {
  if (knownKeys.has(address)) return;
  if (!recoveredOnce.has(address)) {
    if (recoveredOnce.size >= MAX_KNOWN_KEYS) recoveredOnce.clear();
    recoveredOnce.add(address);
    return;
  }
  recoveredOnce.delete(address);
  rememberPublicKey(point);
}

/** The uncompressed public key (65 bytes) that `ecrecover(digest, sig)` yields. @throws when none does. */
function recoverRaw(digest: Uint8Array, sig: SignatureParts): Uint8Array {
  const compact = new Uint8Array(64);
  compact.set(hexBytes32(sig.r), 0);
  compact.set(hexBytes32(sig.s), 32);
  return libsecp256k1.ecdsaRecover(compact, sig.recovery, digest, false);
}

function hexBytes32(n: bigint): Uint8Array {
  if (n < 0n || n >= 1n << 256n) throw new RangeError("not a 256-bit value");
  return Buffer.from(n.toString(16).padStart(64, "0"), "hex");
}

/**
 * `ecrecover`: the public key that signed `digest`, as Ethereum (and OpenZeppelin `ECDSA.recover`) recovers it.
 * @param digest - the 32-byte digest that was signed.
 * @throws Error when no key recovers (r is not the x of a curve point, r or s is 0 or ≥ n, or the result is the
 *   point at infinity).
 */
export function recoverPublicKey(digest: Uint8Array, sig: SignatureParts): Point {
  return secp256k1.ProjectivePoint.fromHex(recoverRaw(digest, sig));
}

/**
 * Whether `ecrecover(digest, sig)` is the remembered public key of `address`; `undefined` when no key of `address`
 * is remembered (the caller must then recover and derive the address).
 * @param digest - the 32-byte digest that was signed.
 * @param address - checksummed (EIP-55) address.
 */
export function recoversToKnownKey(digest: Uint8Array, sig: SignatureParts, address: string): boolean | undefined {
  const key = knownKeys.get(address);
  if (key === undefined) return undefined;
  try {
    return bytesToHex(recoverRaw(digest, sig)) === key;
  } catch {
    return false;
  }
}

/**
 * The recovery id (the nonce point's y-parity, `v - 27`) with which `ecrecover(digest, r, s)` yields `publicKey`, or
 * `undefined` when neither does (the signature is not this key's).
 * @param digest - the 32-byte digest that was signed.
 * @param r - the signature's `r`, in [1, n).
 * @param s - the signature's `s`, in [1, n).
 * @param publicKey - the signer's uncompressed SEC 1 public key (65 bytes).
 */
export function recoveryIdOf(digest: Uint8Array, r: bigint, s: bigint, publicKey: Uint8Array): 0 | 1 | undefined {
  const want = bytesToHex(publicKey);
  for (const recovery of [0, 1] as const) {
    try {
      if (bytesToHex(recoverRaw(digest, { r, s, recovery })) === want) return recovery;
    } catch {
      // no key with this parity
    }
  }
  return undefined;
}

/** Forgets every remembered key (tests). */
export function forgetPublicKeys(): void {
  knownKeys.clear();
  recoveredOnce.clear();
}
