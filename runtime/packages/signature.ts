/**
 * The publisher signature of a package: a compact JWS (RFC 7515) that is a JWT (RFC 7519), signed with ES256
 * (ECDSA P-256 with SHA-256, RFC 7518 §3.4), protected header `{alg: "ES256", typ: "cryptlet-publish+jwt", kid}`,
 * payload `{cryptletId, name, version, codeHash, iat}`. It says "the holder of key `kid` publishes these exact
 * bytes as `name@version`". Deploy checks it against the store's trusted publisher keys.
 */
import { SignJWT, createLocalJWKSet, decodeProtectedHeader, errors as joseErrors, jwtVerify } from "jose";
import type { CryptoKey, JSONWebKeySet, JWK, KeyObject } from "jose";
import { cryptletIdOf as computeCryptletId } from "../attestation/ids.ts";
import { computeCodeHash } from "./digest.ts";
import type { Hex32 } from "../attestation/eip712.ts";
import { PublisherSignatureInvalidError } from "./errors.ts";
import { parseManifest } from "./manifest.ts";

/** The JWS `typ` header of a publisher signature (explicit typing, RFC 8725 §3.11). */
export const PUBLISH_JWT_TYPE = "cryptlet-publish+jwt";
/** The only signature algorithm accepted. */
export const PUBLISH_JWT_ALG = "ES256";

/** The claims a publisher signs. */
export interface PublishClaims {
  /** keccak256(utf8(name)), 0x hex. */
  cryptletId: Hex32;
  /** Package name. */
  name: string;
  /** Package version (semver). */
  version: string;
  /** The package's measurement, 0x hex. */
  codeHash: Hex32;
}

/** What a valid publisher signature told. */
export interface VerifiedPublisherSignature {
  /** The trusted key that signed. */
  kid: string;
  claims: PublishClaims;
  /** Signing time claimed by the publisher (`iat`), Unix seconds. */
  issuedAt: number | undefined;
}

/** The parts of a package a signature covers; a `BuiltPackage` is one. */
export interface SignablePackage {
  readonly manifest: unknown;
  readonly files: Readonly<Record<string, Uint8Array>>;
}

/** Claims recomputed from the package's bytes: a `codeHash` carried alongside the package is never trusted. */
function claimsOf(pkg: SignablePackage): PublishClaims {
  const manifest = parseManifest(pkg.manifest);
  return {
    cryptletId: computeCryptletId(manifest.name),
    name: manifest.name,
    version: manifest.version,
    codeHash: computeCodeHash(manifest, pkg.files),
  };
}

/**
 * Signs a package as its publisher.
 *
 * @param built - the package (its `codeHash` is recomputed from `manifest` and `files`).
 * @param privateKey - the publisher's P-256 private key (WebCrypto `CryptoKey`, Node `KeyObject`, or private JWK).
 * @param kid - the key id under which verifiers know the public key.
 * @returns the compact JWS (`header.payload.signature`, base64url).
 * @throws `ERR_MANIFEST_INVALID` for a bad manifest; jose's errors for a key that is not P-256.
 *
 * @example
 * ```ts
 * import { exportJWK, generateKeyPair } from "jose";
 * import { buildPackage } from "./runtime/packages/build.ts";
 * import { signPackage, verifyPackageSignature } from "./runtime/packages/signature.ts";
 *
 * const { privateKey, publicKey } = await generateKeyPair("ES256");
 * const built = await buildPackage("cryptlets/price-median");
 * const jws = await signPackage(built, privateKey, "publisher-1");
 * await verifyPackageSignature(built, jws, [{ ...(await exportJWK(publicKey)), kid: "publisher-1" }]);
 * ```
 */
export async function signPackage(
  built: SignablePackage,
  privateKey: CryptoKey | KeyObject | JWK,
  kid: string,
): Promise<string> {
  if (typeof kid !== "string" || kid.length === 0) throw new TypeError("kid must be a non-empty string");
  const claims = claimsOf(built);
  return new SignJWT({ ...claims })
    .setProtectedHeader({ alg: PUBLISH_JWT_ALG, typ: PUBLISH_JWT_TYPE, kid })
    .setIssuedAt()
    .sign(privateKey);
}

const PUBLIC_EC_MEMBERS = ["kty", "crv", "x", "y", "kid", "alg", "use"] as const;

/** Keeps the trusted keys that can verify ES256, and only their public members. */
function trustedKeySet(trusted: readonly JWK[] | JSONWebKeySet): JSONWebKeySet {
  const keys = Array.isArray(trusted) ? trusted : (trusted as JSONWebKeySet).keys;
  const usable: JWK[] = [];
  for (const key of keys) {
    if (key.kty !== "EC" || key.crv !== "P-256" || typeof key.kid !== "string") continue;
    if (key.alg !== undefined && key.alg !== PUBLISH_JWT_ALG) continue;
    const publicOnly: JWK = {};
    for (const member of PUBLIC_EC_MEMBERS) if (key[member] !== undefined) publicOnly[member] = key[member];
    usable.push(publicOnly);
  }
  return { keys: usable };
}

/**
 * Checks that `jws` is a valid publisher signature, by a trusted key, over exactly this package: the signed
 * `codeHash` must equal the one recomputed from the package's manifest and files, and `cryptletId`, `name` and
 * `version` must match.
 *
 * @param built - the package as received (its own `codeHash` field, if any, is ignored).
 * @param jws - the compact JWS from {@link signPackage}.
 * @param trustedPublisherKeys - public JWKs (EC P-256, each with a `kid`), as an array or a JWKS.
 * @returns the signing `kid`, the claims and `iat`.
 * @throws {@link PublisherSignatureInvalidError} (`ERR_PUBLISHER_SIGNATURE_INVALID`) with `details.reason`
 *   `malformed`, `unknown-kid`, `bad-signature`, `claims-mismatch` or `codehash-mismatch`.
 *
 * @example
 * ```ts
 * import { verifyPackageSignature } from "./runtime/packages/signature.ts";
 * const { kid, claims } = await verifyPackageSignature(built, jws, { keys: trustedPublisherJwks });
 * ```
 */
export async function verifyPackageSignature(
  built: SignablePackage,
  jws: string,
  trustedPublisherKeys: readonly JWK[] | JSONWebKeySet,
): Promise<VerifiedPublisherSignature> {
  if (typeof jws !== "string" || jws.split(".").length !== 3) {
    throw new PublisherSignatureInvalidError("malformed", "not a compact JWS");
  }
  let kid: string | undefined;
  try {
    const header = decodeProtectedHeader(jws);
    kid = typeof header.kid === "string" ? header.kid : undefined;
    if (header.alg !== PUBLISH_JWT_ALG || header.typ !== PUBLISH_JWT_TYPE || kid === undefined) {
      throw new PublisherSignatureInvalidError(
        "malformed",
        `header must have alg ${PUBLISH_JWT_ALG}, typ ${PUBLISH_JWT_TYPE} and a kid`,
        { alg: header.alg, typ: header.typ, kid },
      );
    }
  } catch (cause) {
    if (cause instanceof PublisherSignatureInvalidError) throw cause;
    throw new PublisherSignatureInvalidError("malformed", "unreadable JWS header", {}, { cause });
  }

  let payload: Record<string, unknown>;
  try {
    const verified = await jwtVerify(jws, createLocalJWKSet(trustedKeySet(trustedPublisherKeys)), {
      algorithms: [PUBLISH_JWT_ALG],
      typ: PUBLISH_JWT_TYPE,
    });
    payload = verified.payload as Record<string, unknown>;
  } catch (cause) {
    if (cause instanceof joseErrors.JWKSNoMatchingKey) {
      throw new PublisherSignatureInvalidError("unknown-kid", `no trusted publisher key ${kid}`, { kid }, { cause });
    }
    if (cause instanceof joseErrors.JWSSignatureVerificationFailed) {
      throw new PublisherSignatureInvalidError(
        "bad-signature",
        `signature does not verify under ${kid}`,
        { kid },
        { cause },
      );
    }
    throw new PublisherSignatureInvalidError("malformed", "invalid JWS or claims", { kid }, { cause });
  }

  const expected = claimsOf(built);
  for (const claim of ["cryptletId", "name", "version"] as const) {
    if (payload[claim] !== expected[claim]) {
      throw new PublisherSignatureInvalidError("claims-mismatch", `signed ${claim} differs from the package's`, {
        kid,
        claim,
        signed: payload[claim],
        expected: expected[claim],
      });
    }
  }
  if (payload.codeHash !== expected.codeHash) {
    throw new PublisherSignatureInvalidError("codehash-mismatch", "signed codeHash differs from the package's bytes", {
      kid,
      signedCodeHash: payload.codeHash,
      codeHash: expected.codeHash,
    });
  }
  return { kid, claims: expected, issuedAt: typeof payload.iat === "number" ? payload.iat : undefined };
}
