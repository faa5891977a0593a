/**
 * secp256k1 public-key recovery (`ecrecover`) for 65-byte Ethereum signatures, with @noble/curves (1.9, the
 * project's copy, which uses the curve's endomorphism and a precomputed table for the generator) instead of the
 * older copy bundled in ethers; and, for addresses whose public key is already known, an exact check that needs no
 * recovery.
 *
 * The check: `ecrecover(digest, r, s, v)` yields the public key `P` iff the nonce point `R` (x = `r`, y-parity
 * `v - 27`) equals `u1·G + u2·P` with `u1 = z·s⁻¹`, `u2 = r·s⁻¹ (mod n)`, `z` the digest as an integer mod n
 * (SEC 1 §4.1.6: `P = r⁻¹·(s·R − z·G)`, solved for `R`). With a precomputed window table for `P` this costs a
 * fraction of a recovery, whose variable-base multiplication by the fresh point `R` cannot use a table. Public
 * keys are learned from successful recoveries (or given), always filed under the address computed from them.
 *
 * @module
 */
import { invert, mod } from "@noble/curves/abstract/modular.js";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { keccak_256 } from "@noble/hashes/sha3";
import { bytesToHex } from "@noble/hashes/utils";
import { getAddress } from "ethers";

type Point = ReturnType<typeof secp256k1.ProjectivePoint.fromHex>;

const N = secp256k1.CURVE.n;
/** Window of the per-key tables: 2^(7-1)·38 points, ~13 ms to build once per key (here), then ~0.35 ms per product. */
const KEY_WINDOW = 7;
/** Keys remembered at most (a consortium has a handful of signers; the bound is a guard). */
const MAX_KNOWN_KEYS = 256;
const knownKeys = new Map<string, Point>();

/** A 65-byte signature's parts: `r` and `s` in [1, n), `recovery` the nonce point's y-parity (`v - 27`). */
export interface SignatureParts {
  r: bigint;
  s: bigint;
  recovery: 0 | 1;
}

/** The checksummed (EIP-55) Ethereum address of a public point: the last 20 bytes of keccak256(x ‖ y). */
export function addressOfPoint(point: Point): string {
  const uncompressed = point.toRawBytes(false);
  return getAddress(`0x${bytesToHex(keccak_256(uncompressed.subarray(1)).subarray(12))}`);
}

/**
 * Files a public key under its own address (computed here, never taken from the caller) with a precomputed
 * window table, so that {@link recoversToKnownKey} can check signatures of that address without recovery.
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
    // A fresh point object: the window table is attached to the object, not to the coordinates.
    knownKeys.set(
      address,
      secp256k1.utils.precompute(KEY_WINDOW, secp256k1.ProjectivePoint.fromAffine(point.toAffine())),
    );
  }
  return address;
}

// Addresses recovered once, not yet given a table: the table pays for itself from about the second signature of a
// key, so a one-off verification (a CLI run) does not pay for it.
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

/**
 * `ecrecover`: the public key that signed `digest`, as Ethereum (and OpenZeppelin `ECDSA.recover`) recovers it.
 * @param digest - the 32-byte digest that was signed.
 * @throws Error when no key recovers (r is not the x of a curve point, or the result is the point at infinity).
 */
export function recoverPublicKey(digest: Uint8Array, sig: SignatureParts): Point {
  return new secp256k1.Signature(sig.r, sig.s).addRecoveryBit(sig.recovery).recoverPublicKey(digest);
}

/**
 * Whether `ecrecover(digest, sig)` is the remembered public key of `address`, computed without recovery (see the
 * module comment); `undefined` when no key of `address` is remembered (the caller must then recover).
 * @param digest - the 32-byte digest that was signed.
 * @param address - checksummed (EIP-55) address.
 */
export function recoversToKnownKey(digest: Uint8Array, sig: SignatureParts, address: string): boolean | undefined {
  const key = knownKeys.get(address);
  if (key === undefined) return undefined;
  const z = mod(BigInt(`0x${bytesToHex(digest)}`), N);
  const sInv = invert(sig.s, N);
  const u1 = mod(z * sInv, N);
  // `multiply` (wNAF over the tables), not `multiplyUnsafe`/`multiplyAndAddUnsafe`: in @noble/curves 1.9.0 the
  // unsafe path over a precomputed table returns wrong points for some scalars (e.g. n - 5; see the tests).
  const nonce = (u1 === 0n ? secp256k1.ProjectivePoint.ZERO : secp256k1.ProjectivePoint.BASE.multiply(u1)).add(
    key.multiply(mod(sig.r * sInv, N)),
  );
  if (nonce.equals(secp256k1.ProjectivePoint.ZERO)) return false;
  const { x, y } = nonce.toAffine();
  return x === sig.r && Number(y & 1n) === sig.recovery;
}

/** Forgets every remembered key (tests). */
export function forgetPublicKeys(): void {
  knownKeys.clear();
  recoveredOnce.clear();
}
