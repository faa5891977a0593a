/**
 * Signing and verifying a digest that the caller already computed, exactly as Azure Key Vault's `sign` and
 * `verify` operations do (Key Vault REST API 2025-07-01, "Sign" and "Verify": the `value` is a digest and is not
 * hashed again). Used by the Key Vault emulator and by `LocalKeyProvider`, so both produce the same signature
 * formats:
 *
 * - `ES256K` (secp256k1, RFC 8812) and `ES256` (P-256, RFC 7518 §3.4): raw `r‖s`, 32+32 bytes big-endian, not
 *   DER, no recovery id, and `s` NOT normalised to the low half (as Key Vault returns it; about half of all
 *   signatures are high-s). The nonce is randomised (RFC 6979 with extra entropy), so the same digest signs
 *   differently each time, as in Key Vault. Implemented with `@noble/curves` because Node's `crypto.sign` always
 *   hashes its input.
 * - `RS256` (RSASSA-PKCS1-v1_5 with SHA-256, RFC 8017 §8.2) and `PS256` (RSASSA-PSS with SHA-256, MGF1-SHA-256 and
 *   a 32-byte salt, RFC 8017 §8.1 and RFC 7518 §3.5): the signature is as long as the modulus. Node's RSA
 *   primitive (`privateEncrypt`/`publicDecrypt`) applies the key; the encoding of the digest (EMSA-PKCS1-v1_5's
 *   DigestInfo, EMSA-PSS) is done here because Node offers no sign-a-digest API.
 *
 * @module
 */
import {
  constants,
  createHash,
  createPrivateKey,
  createPublicKey,
  privateEncrypt,
  publicDecrypt,
  randomBytes,
  timingSafeEqual,
} from "node:crypto";
import type { JsonWebKey } from "node:crypto";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { p256 } from "@noble/curves/nist.js";
import type { SignatureAlgorithm } from "./KeyProvider.ts";

/** Length in bytes of every digest these algorithms accept (SHA-256 or keccak256 output). */
export const DIGEST_LENGTH = 32;

/** A JWK as Node and Key Vault use it (RFC 7517); only the members named here are read. */
export type DigestJwk = Pick<JsonWebKey, "kty" | "crv" | "x" | "y" | "d" | "n" | "e" | "p" | "q" | "dp" | "dq" | "qi">;

/** The key family an algorithm needs: `kty` and, for EC, the curve (JOSE name, RFC 7518 §6.2.1.1 and RFC 8812). */
export function keyRequirement(algorithm: SignatureAlgorithm): { kty: "EC" | "RSA"; crv?: "P-256" | "secp256k1" } {
  switch (algorithm) {
    case "ES256K":
      return { kty: "EC", crv: "secp256k1" };
    case "ES256":
      return { kty: "EC", crv: "P-256" };
    case "RS256":
    case "PS256":
      return { kty: "RSA" };
  }
}

/**
 * Normalises a curve name to its JOSE name: Key Vault calls secp256k1 `P-256K`, JOSE (RFC 8812) `secp256k1`.
 * @returns the JOSE name, or the input unchanged when it is not a secp256k1 alias.
 */
export function joseCurveName(crv: string | undefined): string | undefined {
  return crv === "P-256K" || crv === "SECP256K1" ? "secp256k1" : crv;
}

/**
 * True when `algorithm` can be used with a key of this `kty` and `crv` (Key Vault names such as `EC-HSM` and
 * `P-256K` are accepted).
 */
export function algorithmFitsKey(
  algorithm: SignatureAlgorithm,
  kty: string | undefined,
  crv: string | undefined,
): boolean {
  const need = keyRequirement(algorithm);
  const family = kty?.replace(/-HSM$/, "");
  if (family !== need.kty) return false;
  return need.crv === undefined || joseCurveName(crv) === need.crv;
}

/**
 * Signs a 32-byte digest with a private JWK.
 *
 * @param privateJwk - the private key (`d` present): EC on P-256 or secp256k1 (`P-256K` accepted), or RSA.
 * @param algorithm - `ES256K`, `ES256`, `RS256` or `PS256`; must fit the key.
 * @param digest - exactly {@link DIGEST_LENGTH} bytes.
 * @returns the raw signature: 64 bytes `r‖s` for EC (s not normalised), modulus length for RSA.
 * @throws TypeError when the digest length, the key or the algorithm/key pair is wrong (callers map it to their
 *   own typed error).
 * @example
 * ```ts
 * import { generateKeyPairSync, createHash } from "node:crypto";
 * import { signDigest, verifyDigest } from "./runtime/keys/digestSignature.ts";
 *
 * const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
 * const digest = createHash("sha256").update("hello").digest();
 * const sig = signDigest(privateKey.export({ format: "jwk" }), "ES256", digest);
 * verifyDigest(publicKey.export({ format: "jwk" }), "ES256", digest, sig); // true
 * ```
 */
export function signDigest(privateJwk: DigestJwk, algorithm: SignatureAlgorithm, digest: Uint8Array): Uint8Array {
  checkDigest(digest);
  if (!algorithmFitsKey(algorithm, privateJwk.kty, privateJwk.crv)) {
    throw new TypeError(`algorithm ${algorithm} does not fit a ${privateJwk.kty}/${privateJwk.crv ?? "-"} key`);
  }
  if (typeof privateJwk.d !== "string") throw new TypeError("the JWK has no private member d");
  if (algorithm === "ES256K" || algorithm === "ES256") {
    const curve = algorithm === "ES256K" ? secp256k1 : p256;
    const d = Buffer.from(privateJwk.d, "base64url");
    // prehash: false is the default in @noble/curves 1.x: the digest is signed as given.
    return curve.sign(digest, d, { lowS: false, extraEntropy: true }).toCompactRawBytes();
  }
  const key = createPrivateKey({ key: toNodeJwk(privateJwk), format: "jwk" });
  const modulusBytes = Math.ceil(rsaModulusBits(privateJwk) / 8);
  if (algorithm === "RS256") {
    return new Uint8Array(privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, pkcs1DigestInfo(digest)));
  }
  const em = emsaPssEncode(digest, rsaModulusBits(privateJwk) - 1);
  const block = Buffer.alloc(modulusBytes);
  block.set(em, modulusBytes - em.length);
  return new Uint8Array(privateEncrypt({ key, padding: constants.RSA_NO_PADDING }, block));
}

/**
 * Verifies a signature made by {@link signDigest} (or by Key Vault) over a 32-byte digest.
 *
 * @param publicJwk - the public key (private members are ignored).
 * @param signature - raw `r‖s` (64 bytes) for EC, either low-s or high-s; modulus-length bytes for RSA.
 * @returns `true` when valid; `false` for an invalid signature, a wrong length or a key/algorithm mismatch.
 */
export function verifyDigest(
  publicJwk: DigestJwk,
  algorithm: SignatureAlgorithm,
  digest: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (digest.length !== DIGEST_LENGTH) return false;
  if (!algorithmFitsKey(algorithm, publicJwk.kty, publicJwk.crv)) return false;
  try {
    if (algorithm === "ES256K" || algorithm === "ES256") {
      if (signature.length !== 64 || typeof publicJwk.x !== "string" || typeof publicJwk.y !== "string") return false;
      const curve = algorithm === "ES256K" ? secp256k1 : p256;
      const point = Buffer.concat([
        Buffer.of(4),
        Buffer.from(publicJwk.x, "base64url"),
        Buffer.from(publicJwk.y, "base64url"),
      ]);
      return curve.verify(signature, digest, point, { lowS: false });
    }
    const { n, e, kty } = publicJwk;
    const key = createPublicKey({ key: { kty, n, e }, format: "jwk" });
    const modulusBits = rsaModulusBits(publicJwk);
    if (signature.length !== Math.ceil(modulusBits / 8)) return false;
    const decoded = publicDecrypt({ key, padding: constants.RSA_NO_PADDING }, signature);
    if (algorithm === "RS256") {
      const expected = Buffer.concat([
        Buffer.of(0, 1),
        Buffer.alloc(decoded.length - 3 - 51, 0xff),
        Buffer.of(0),
        pkcs1DigestInfo(digest),
      ]);
      return expected.length === decoded.length && timingSafeEqual(expected, decoded);
    }
    const emBits = modulusBits - 1;
    const emLen = Math.ceil(emBits / 8);
    return emsaPssVerify(digest, decoded.subarray(decoded.length - emLen), emBits);
  } catch {
    return false;
  }
}

function checkDigest(digest: Uint8Array): void {
  if (!(digest instanceof Uint8Array) || digest.length !== DIGEST_LENGTH) {
    throw new TypeError(
      `the digest must be ${DIGEST_LENGTH} bytes, got ${digest instanceof Uint8Array ? digest.length : typeof digest}`,
    );
  }
}

function toNodeJwk(jwk: DigestJwk): JsonWebKey {
  const { kty, n, e, d, p, q, dp, dq, qi } = jwk;
  return { kty: kty?.replace(/-HSM$/, ""), n, e, d, p, q, dp, dq, qi };
}

function rsaModulusBits(jwk: DigestJwk): number {
  if (typeof jwk.n !== "string") throw new TypeError("the RSA JWK has no modulus n");
  const n = Buffer.from(jwk.n, "base64url");
  let first = 0;
  while (first < n.length && n[first] === 0) first++;
  const top = n[first] ?? 0;
  return (n.length - first - 1) * 8 + (32 - Math.clz32(top));
}

/** DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2, note 1). */
const SHA256_DIGEST_INFO = Buffer.from("3031300d060960864801650304020105000420", "hex");

function pkcs1DigestInfo(digest: Uint8Array): Buffer {
  return Buffer.concat([SHA256_DIGEST_INFO, digest]);
}

const HASH_LENGTH = 32;
const SALT_LENGTH = 32;

/** MGF1 with SHA-256 (RFC 8017 §B.2.1). */
function mgf1(seed: Uint8Array, length: number): Buffer {
  const out = Buffer.alloc(Math.ceil(length / HASH_LENGTH) * HASH_LENGTH);
  for (let counter = 0; counter * HASH_LENGTH < length; counter++) {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(counter);
    createHash("sha256")
      .update(seed)
      .update(c)
      .digest()
      .copy(out, counter * HASH_LENGTH);
  }
  return out.subarray(0, length);
}

function pssHash(mHash: Uint8Array, salt: Uint8Array): Buffer {
  return createHash("sha256").update(Buffer.alloc(8)).update(mHash).update(salt).digest();
}

/** EMSA-PSS-ENCODE (RFC 8017 §9.1.1) with SHA-256, MGF1-SHA-256 and a 32-byte salt. */
function emsaPssEncode(mHash: Uint8Array, emBits: number): Buffer {
  const emLen = Math.ceil(emBits / 8);
  const salt = randomBytes(SALT_LENGTH);
  const h = pssHash(mHash, salt);
  const db = Buffer.alloc(emLen - HASH_LENGTH - 1);
  db[db.length - SALT_LENGTH - 1] = 1;
  salt.copy(db, db.length - SALT_LENGTH);
  const mask = mgf1(h, db.length);
  for (let i = 0; i < db.length; i++) db[i] = (db[i] ?? 0) ^ (mask[i] ?? 0);
  db[0] = (db[0] ?? 0) & (0xff >> (8 * emLen - emBits));
  return Buffer.concat([db, h, Buffer.of(0xbc)]);
}

/** EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with the same parameters as {@link emsaPssEncode}. */
function emsaPssVerify(mHash: Uint8Array, em: Uint8Array, emBits: number): boolean {
  const emLen = Math.ceil(emBits / 8);
  if (em.length !== emLen || emLen < HASH_LENGTH + SALT_LENGTH + 2 || em[emLen - 1] !== 0xbc) return false;
  const maskedDb = Buffer.from(em.subarray(0, emLen - HASH_LENGTH - 1));
  const h = em.subarray(emLen - HASH_LENGTH - 1, emLen - 1);
  const topBits = 0xff >> (8 * emLen - emBits);
  if (((maskedDb[0] ?? 0) & ~topBits & 0xff) !== 0) return false;
  const mask = mgf1(h, maskedDb.length);
  for (let i = 0; i < maskedDb.length; i++) maskedDb[i] = (maskedDb[i] ?? 0) ^ (mask[i] ?? 0);
  maskedDb[0] = (maskedDb[0] ?? 0) & topBits;
  const psLength = maskedDb.length - SALT_LENGTH - 1;
  for (let i = 0; i < psLength; i++) if (maskedDb[i] !== 0) return false;
  if (maskedDb[psLength] !== 1) return false;
  const salt = maskedDb.subarray(maskedDb.length - SALT_LENGTH);
  return timingSafeEqual(pssHash(mHash, salt), h);
}
