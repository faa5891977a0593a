/**
 * The attestation token (docs/proof-bundle.md, "Attestation token"): a JWT (RFC 7519) in JWS Compact Serialization
 * (RFC 7515 §7.1), `alg` ES256 (RFC 7518 §3.4), signed **through a {@link KeyProvider}** P-256 key that never leaves
 * Key Vault. The runtime builds the JWS signing input itself, hashes it with SHA-256 and asks the provider to sign
 * the digest; Key Vault's raw `r ‖ s` (64 bytes) is already the JWS ES256 signature encoding. Verification uses jose
 * `jwtVerify`.
 *
 * Header: `{"alg":"ES256","typ":"cryptlet-attestation+jwt","kid":<keyId with version>}` (explicit typing, RFC 8725
 * §3.11). Claims: see {@link AttestationClaims} and docs/proof-bundle.md ("Attestation token").
 *
 * A batch token (`typ` `cryptlet-batch-attestation+jwt`, {@link createBatchAttestationToken}) attests many results
 * with one signature: its claim `batch.root` is an OpenZeppelin StandardMerkleTree root over each result's
 * `(resultId, cryptletId, codeHash, inputHash, outputHash, evidenceHash)`, and a result is verified with its leaf's
 * Merkle proof (docs/proof-bundle.md, "Batch attestation token").
 *
 * @module
 */
import { createHash, randomUUID } from "node:crypto";

import {
  base64url,
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors as jose,
  jwtVerify,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
} from "jose";

import { StandardMerkleTree } from "@openzeppelin/merkle-tree";

import type { KeyProvider, PublicKeyInfo } from "../keys/KeyProvider.ts";
import type { Hex32 } from "./eip712.ts";
import { buildStandardMerkleTree } from "./merkle.ts";
import {
  AttestationClaimMismatchError,
  AttestationExpiredError,
  AttestationInvalidError,
  AttestationSigningError,
  AttestationUnknownKeyError,
} from "./errors.ts";

/** The JWS `typ` header of attestation tokens. */
export const ATTESTATION_TOKEN_TYPE = "cryptlet-attestation+jwt";

/**
 * The JWS `typ` header of batch attestation tokens: one token for many results, whose claim `batch.root` is the root
 * of a Merkle tree over the results' attestation leaves ({@link attestationLeafEncoding}); each result's bundle carries its
 * leaf's `evidenceHash` and Merkle proof (`attestationProof`). docs/proof-bundle.md, "Batch attestation token".
 */
export const BATCH_ATTESTATION_TOKEN_TYPE = "cryptlet-batch-attestation+jwt";

/** Default token lifetime: 24 hours, in seconds. */
export const DEFAULT_ATTESTATION_TTL_SECONDS = 86_400;

/**
 * The sandbox that ran the code: the engine, its exact version and the limits. The version is the package's pinned
 * `engineVersion` (docs/packages.md), which the runtime checked equal to the installed engine before running, in
 * the format of runtime/sandbox/engineVersion.ts: `<isolated-vm version>+v8.<V8 version>` or
 * `<quickjs-emscripten version>+quickjs.<QuickJS version>`.
 */
export interface SandboxClaim {
  /** `isolated-vm` or `quickjs`. */
  engine: string;
  /** The engine's exact version, e.g. `7.0.1+v8.13.6.233.17-node.53`. */
  engineVersion: string;
  /** The limits the run was held to. */
  limits: SandboxLimitsClaim;
}

/** Sandbox limits the run was held to. */
export interface SandboxLimitsClaim {
  /** Memory limit in bytes. */
  memoryBytes: number;
  /** Wall-time limit in milliseconds. */
  wallTimeMs: number;
  /** Output size limit in bytes. */
  outputBytes: number;
}

/**
 * Evidence about the platform the runtime ran on.
 * - `software`: no hardware root of trust; the token is only as trustworthy as the runtime's key.
 * - `tee-quote`: a raw TEE quote/report (`sgx`, `tdx`, `sev-snp`), base64url, whose report data binds
 *   `reportData` (hex; by convention sha256 of the attestation key's JWK thumbprint).
 * - `azure-attestation`: a Microsoft Azure Attestation token (a JWT issued by `issuer`) for the host's TEE.
 */
export type PlatformEvidence =
  | { type: "software" }
  | { type: "tee-quote"; tee: "sgx" | "tdx" | "sev-snp"; quote: string; reportData?: string }
  | { type: "azure-attestation"; issuer: string; token: string };

/** The claims of an attestation token. Times are Unix **seconds** (JWT NumericDate). */
export interface AttestationClaims extends JWTPayload {
  /** The runtime instance id (issuer). */
  iss: string;
  /** Issued at (seconds). */
  iat: number;
  /** Expiry (seconds). */
  exp: number;
  /** Unique token id (UUID v4). */
  jti: string;
  /** `resultId` (also the JWT subject). */
  sub: string;
  /** keccak256 of the package name, `bytes32` hex. */
  cryptletId: Hex32;
  /** The package measurement, `bytes32` hex. */
  codeHash: Hex32;
  /** The result this token attests, `bytes32` hex. */
  resultId: Hex32;
  /** The audience: the consortium id (`bytes32` hex, the EIP-712 domain `salt`) the result is for. */
  aud: string;
  /** The result's `inputHash`: the run's input commitment (docs/proof-bundle.md, "inputHash"), `bytes32` hex. */
  inputHash: Hex32;
  /** The result's `outputHash`: keccak256 of the bytes written on-chain, `bytes32` hex. */
  outputHash: Hex32;
  /**
   * The version of the input commitment's format that `inputHash` follows: 2 ({@link INPUT_COMMITMENT_VERSION}, the
   * evidence of runtime/attestation/evidence.ts) or 1 (tokens issued before evidence: `{event, hostCalls}`).
   */
  inputFormat: number;
  /**
   * Format 2 only: keccak256 of the UTF-8 of the RFC 8785 canonical JSON of the bundle's `evidence` member (public
   * or sealed), `bytes32` hex. Binds a sealed evidence for those who cannot open it.
   */
  evidenceHash?: Hex32;
  /** The runtime software. */
  runtime: { version: string; buildHash: string };
  /** The sandbox that ran the code: engine name (`isolated-vm`, `quickjs`), its exact version and limits. */
  sandbox: SandboxClaim;
  /** Platform evidence. */
  platform: PlatformEvidence;
  /**
   * Only in the claims of a result attested by a batch token ({@link verifyAttestationToken} with a proof): the
   * batch's Merkle root and number of results, as the token signed them. The result's own claims above were proven
   * to be a leaf under `root`.
   */
  batch?: { root: Hex32; count: number };
}

/**
 * The version of the input commitment's format this runtime issues: 2, `inputHash` over the run's evidence
 * (docs/proof-bundle.md, "Evidence"), with the `evidenceHash` claim. Format 1 (`inputHash` over `{event, hostCalls}`,
 * no evidence kept) is still accepted when verifying archived tokens ({@link ACCEPTED_INPUT_FORMATS}).
 */
export const INPUT_COMMITMENT_VERSION = 2;

/** The `inputFormat` values a verifier accepts. */
export const ACCEPTED_INPUT_FORMATS: readonly number[] = [1, 2];

/** What {@link createAttestationToken} needs. */
export interface CreateAttestationTokenInput {
  /** Runtime instance id, becomes `iss`. */
  issuer: string;
  cryptletId: Hex32;
  codeHash: Hex32;
  resultId: Hex32;
  /** The consortium id, becomes `aud`. */
  consortiumId: string;
  /** The result's input and output commitments. */
  inputHash: Hex32;
  outputHash: Hex32;
  /** keccak256 of the JCS of the bundle's `evidence` member (runtime/attestation/evidence.ts `bundleEvidenceHash`). */
  evidenceHash: Hex32;
  runtime: { version: string; buildHash: string };
  /** Engine, engine version and limits of the run. */
  sandbox: SandboxClaim;
  /** Defaults to `{type: "software"}`. */
  platform?: PlatformEvidence;
  /** Issue time; defaults to now. */
  now?: Date;
  /** Lifetime in seconds; defaults to {@link DEFAULT_ATTESTATION_TTL_SECONDS}. */
  ttlSeconds?: number;
  /** Token id; defaults to a random UUID. */
  jti?: string;
}

const encoder = new TextEncoder();

const BYTES32 = /^0x[0-9a-fA-F]{64}$/;

/**
 * Issues an attestation token signed through `provider` (a P-256 key, `ES256`).
 *
 * @param provider - a {@link KeyProvider} whose key is EC P-256 (Key Vault `EC` / `P-256`, or a local key).
 * @param input - the claims; times default to now and 24 h.
 * @returns the compact JWS (`header.payload.signature`, base64url).
 * @throws {@link AttestationSigningError} (`ERR_ATTESTATION_SIGNING`) when the key is not P-256 or the provider's
 *   signature is not 64 bytes; the provider's own errors (`ERR_KEY_*`) pass through.
 *
 * @example
 * ```ts
 * import { createAttestationToken } from "./runtime/attestation/token.ts";
 * const token = await createAttestationToken(provider, {
 *   issuer: "runtime-eu-1", cryptletId, codeHash, resultId,
 *   runtime: { version: "0.1.0", buildHash: "0x…" },
 *   sandbox: {
 *     engine: "isolated-vm",
 *     engineVersion: "7.0.1+v8.13.6.233.17-node.53",
 *     limits: { memoryBytes: 67108864, wallTimeMs: 1000, outputBytes: 65536 },
 *   },
 * });
 * ```
 */
export async function createAttestationToken(
  provider: KeyProvider,
  input: CreateAttestationTokenInput,
): Promise<string> {
  const key = await p256KeyOf(provider);
  const iat = Math.floor((input.now ?? new Date()).getTime() / 1000);
  const claims: AttestationClaims = {
    iss: input.issuer,
    sub: input.resultId,
    iat,
    exp: iat + (input.ttlSeconds ?? DEFAULT_ATTESTATION_TTL_SECONDS),
    jti: input.jti ?? randomUUID(),
    cryptletId: input.cryptletId,
    codeHash: input.codeHash,
    resultId: input.resultId,
    aud: input.consortiumId.toLowerCase(),
    inputHash: input.inputHash,
    outputHash: input.outputHash,
    inputFormat: INPUT_COMMITMENT_VERSION,
    evidenceHash: input.evidenceHash,
    runtime: input.runtime,
    sandbox: { engine: input.sandbox.engine, engineVersion: input.sandbox.engineVersion, limits: input.sandbox.limits },
    platform: input.platform ?? { type: "software" },
  };
  return signJwt(provider, key, ATTESTATION_TOKEN_TYPE, claims);
}

/** The provider's public key. @throws {@link AttestationSigningError} when it is not an EC P-256 key. */
async function p256KeyOf(provider: KeyProvider): Promise<PublicKeyInfo> {
  const key = await provider.getPublicKey();
  if (key.jwk.kty !== "EC" || key.jwk.crv !== "P-256") {
    throw new AttestationSigningError(`key ${key.keyId} is not an EC P-256 key`);
  }
  return key;
}

/**
 * Signs `claims` as a compact JWS with `typ` through `provider` (ES256: SHA-256 of the signing input, Key Vault's raw
 * `r ‖ s`).
 * @throws {@link AttestationSigningError} when the provider's signature is not 64 bytes.
 */
async function signJwt(provider: KeyProvider, key: PublicKeyInfo, typ: string, claims: object): Promise<string> {
  const header = { alg: "ES256", typ, kid: key.keyId };
  const signingInput = `${base64url.encode(JSON.stringify(header))}.${base64url.encode(JSON.stringify(claims))}`;
  const digest = createHash("sha256").update(encoder.encode(signingInput)).digest();
  const signed = await provider.sign(new Uint8Array(digest), "ES256");
  if (signed.signature.length !== 64) {
    throw new AttestationSigningError(`expected a 64-byte r||s signature, got ${signed.signature.length} bytes`);
  }
  return `${signingInput}.${base64url.encode(signed.signature)}`;
}

/**
 * What a batch attestation token attests of each result: the values of its Merkle leaf
 * ({@link attestationLeafEncoding}), all `bytes32` hex.
 */
export interface AttestedResult {
  resultId: Hex32;
  cryptletId: Hex32;
  codeHash: Hex32;
  inputHash: Hex32;
  outputHash: Hex32;
  /** keccak256 of the JCS of the bundle's `evidence` member (as the per-result token's claim). */
  evidenceHash: Hex32;
}

/** A result's place in a batch attestation token: its leaf's values and the Merkle proof to the token's root. */
export interface AttestationLeafProof extends AttestedResult {
  /** Sibling hashes from the leaf to `batch.root` (OpenZeppelin StandardMerkleTree proof). */
  proof: Hex32[];
}

/** The StandardMerkleTree leaf types of a batch attestation token, in {@link ATTESTATION_LEAF_FIELDS} order. */
export const ATTESTATION_LEAF_TYPES = ["bytes32", "bytes32", "bytes32", "bytes32", "bytes32", "bytes32"] as const;

/** The fields of an attestation leaf, in order. */
export const ATTESTATION_LEAF_FIELDS = [
  "resultId",
  "cryptletId",
  "codeHash",
  "inputHash",
  "outputHash",
  "evidenceHash",
] as const satisfies readonly (keyof AttestedResult)[];

/**
 * `abi.encode(resultId, cryptletId, codeHash, inputHash, outputHash, evidenceHash)`: six 32-byte words (192 bytes).
 * The leaf is `keccak256(keccak256(` this `))`, StandardMerkleTree's leaf hash for {@link ATTESTATION_LEAF_TYPES}.
 * @throws {@link AttestationInvalidError} when a value is not bytes32 hex.
 */
export function attestationLeafEncoding(result: AttestedResult): Uint8Array {
  const out = new Uint8Array(32 * ATTESTATION_LEAF_FIELDS.length);
  ATTESTATION_LEAF_FIELDS.forEach((field, i) => {
    const value = result[field];
    if (typeof value !== "string" || !BYTES32.test(value))
      throw new AttestationInvalidError(`attested ${field} is not bytes32`);
    out.set(Buffer.from(value.slice(2), "hex"), 32 * i);
  });
  return out;
}

/**
 * Whether `leaf.proof` takes the leaf of `leaf`'s values to `root`, checked by `@openzeppelin/merkle-tree`'s
 * `StandardMerkleTree.verify` with {@link ATTESTATION_LEAF_TYPES}. False (never throws) for malformed input.
 */
export function verifyAttestationLeaf(root: string, leaf: AttestationLeafProof): boolean {
  try {
    return StandardMerkleTree.verify(
      root.toLowerCase(),
      [...ATTESTATION_LEAF_TYPES],
      ATTESTATION_LEAF_FIELDS.map((f) => leaf[f].toLowerCase()),
      leaf.proof.map((p) => p.toLowerCase()),
    );
  } catch {
    return false;
  }
}

/** What {@link createBatchAttestationToken} needs: the batch-wide claims and the results. */
export interface CreateBatchAttestationTokenInput extends Omit<
  CreateAttestationTokenInput,
  "cryptletId" | "codeHash" | "resultId" | "inputHash" | "outputHash" | "evidenceHash"
> {
  /** The results attested, one or more; all ran on `sandbox`. */
  results: readonly AttestedResult[];
}

/** A batch attestation token and each result's proof, in input order. */
export interface BatchAttestation {
  /** The compact JWS (`typ` {@link BATCH_ATTESTATION_TOKEN_TYPE}). */
  token: string;
  /** The Merkle root the token signs (claim `batch.root`). */
  root: Hex32;
  /** `proofs[i]` is the Merkle proof of `results[i]`'s leaf. */
  proofs: Hex32[][];
}

/**
 * Issues one batch attestation token for many results (docs/proof-bundle.md, "Batch attestation token"): one
 * Key Vault signature whose claims carry the batch-wide values of a per-result token (`iss`, `aud`, `runtime`,
 * `sandbox`, `platform`, `inputFormat` 2) and `batch: {root, count}`, the root of a StandardMerkleTree over each
 * result's {@link attestationLeafEncoding}. `sub` is the root.
 * @param provider - a P-256 {@link KeyProvider}, as {@link createAttestationToken}.
 * @throws {@link AttestationSigningError} as {@link createAttestationToken}; RangeError for no results;
 *   {@link AttestationInvalidError} when a result's value is not bytes32.
 */
export async function createBatchAttestationToken(
  provider: KeyProvider,
  input: CreateBatchAttestationTokenInput,
): Promise<BatchAttestation> {
  const key = await p256KeyOf(provider);
  const { root, proofs } = buildStandardMerkleTree(input.results.map(attestationLeafEncoding));
  const iat = Math.floor((input.now ?? new Date()).getTime() / 1000);
  const claims = {
    iss: input.issuer,
    sub: root,
    iat,
    exp: iat + (input.ttlSeconds ?? DEFAULT_ATTESTATION_TTL_SECONDS),
    jti: input.jti ?? randomUUID(),
    aud: input.consortiumId.toLowerCase(),
    batch: { root, count: input.results.length },
    inputFormat: INPUT_COMMITMENT_VERSION,
    runtime: input.runtime,
    sandbox: { engine: input.sandbox.engine, engineVersion: input.sandbox.engineVersion, limits: input.sandbox.limits },
    platform: input.platform ?? { type: "software" },
  };
  return { token: await signJwt(provider, key, BATCH_ATTESTATION_TOKEN_TYPE, claims), root, proofs };
}

/**
 * The claims a token states of one result: a per-result token's own claims; for a batch token, its batch-wide
 * claims with the result's leaf values from `proof` (`sub` = `resultId`, `batch` kept). Checks the shape of the
 * batch claims, not the signature.
 * @throws {@link AttestationInvalidError} for a batch token without a proof or with a malformed `batch` claim, or a
 *   proof with a per-result token.
 */
function resultClaimsOf(typ: unknown, payload: JWTPayload, proof: AttestationLeafProof | undefined): JWTPayload {
  if (typ !== BATCH_ATTESTATION_TOKEN_TYPE) {
    if (proof !== undefined) throw new AttestationInvalidError("an attestation proof was given for a per-result token");
    return payload;
  }
  if (proof === undefined) throw new AttestationInvalidError("a batch token needs the result's attestation proof");
  const batch = (payload as { batch?: { root?: unknown; count?: unknown } }).batch;
  if (
    typeof batch?.root !== "string" ||
    !BYTES32.test(batch.root) ||
    typeof batch.count !== "number" ||
    !Number.isInteger(batch.count) ||
    batch.count < 1
  ) {
    throw new AttestationInvalidError("claim batch {root (bytes32), count (integer ≥ 1)} missing");
  }
  if (String(payload.sub).toLowerCase() !== batch.root.toLowerCase())
    throw new AttestationInvalidError("claim sub is not the batch root");
  const leaf = Object.fromEntries(ATTESTATION_LEAF_FIELDS.map((f) => [f, proof[f]]));
  return { ...payload, ...leaf, sub: proof.resultId, batch: { root: batch.root, count: batch.count } };
}

/**
 * The claims a token states of a result, decoded **without verification** (for display, and for checks that only
 * read what {@link verifyAttestationToken} verifies separately), or undefined when the token cannot be decoded.
 * @param proof - the result's attestation proof, for a batch token.
 */
export function decodeAttestationClaims(
  token: string,
  proof?: AttestationLeafProof,
): Partial<AttestationClaims> | undefined {
  try {
    return resultClaimsOf(decodeProtectedHeader(token).typ, decodeJwt(token), proof) as Partial<AttestationClaims>;
  } catch {
    return undefined;
  }
}

/** JWA `alg` of a public JWK used for signatures. */
function signatureAlgOf(jwk: JWK): string {
  if (jwk.kty === "EC" && jwk.crv === "P-256") return "ES256";
  if (jwk.kty === "EC" && jwk.crv === "secp256k1") return "ES256K";
  if (jwk.kty === "RSA") return "RS256";
  throw new AttestationInvalidError(`unsupported key type ${jwk.kty ?? "?"}/${jwk.crv ?? "-"} for a JWKS`);
}

const PUBLIC_MEMBERS = ["kty", "crv", "x", "y", "n", "e"] as const;

/**
 * Builds a JWKS (RFC 7517 §5) of signature keys from key providers and/or known public keys (e.g. previous key
 * versions still accepted during a rotation). Each key carries `kid` = the key id with version, `alg`, `use: "sig"`,
 * and only public members.
 *
 * @example
 * ```ts
 * import { buildJwks } from "./runtime/attestation/token.ts";
 * const jwks = await buildJwks([attestationProvider]);
 * ```
 */
export async function buildJwks(sources: readonly (KeyProvider | PublicKeyInfo)[]): Promise<JSONWebKeySet> {
  const keys: JWK[] = [];
  const seen = new Set<string>();
  for (const source of sources) {
    const info = "getPublicKey" in source ? await source.getPublicKey() : source;
    if (seen.has(info.keyId)) continue;
    seen.add(info.keyId);
    const jwk: JWK = {};
    for (const member of PUBLIC_MEMBERS) if (info.jwk[member] !== undefined) jwk[member] = info.jwk[member];
    keys.push({ ...jwk, kid: info.keyId, alg: signatureAlgOf(info.jwk), use: "sig" });
  }
  return { keys };
}

/** What the verifier expects of a token; omitted fields are not compared. */
export interface ExpectedAttestation {
  issuer?: string;
  cryptletId?: string;
  codeHash?: string;
  resultId?: string;
  /** The consortium id the token must be for (`aud`). */
  consortiumId?: string;
  /** The result's `inputHash` and `outputHash` the token must bind. */
  inputHash?: string;
  outputHash?: string;
  /** The evidence hash the token must bind (`evidenceHash`); a format-1 token binds none and fails this. */
  evidenceHash?: string;
  /** The engine (`sandbox.engine`) the result must have run on. */
  engine?: string;
  /** The exact engine version (`sandbox.engineVersion`) the result must have run on. */
  engineVersion?: string;
  /** The verification time; defaults to now. */
  currentDate?: Date;
  /** Allowed clock skew in seconds; default 0. */
  clockToleranceSeconds?: number;
}

/** A verified token. */
export interface VerifiedAttestation {
  claims: AttestationClaims;
  /** The header `kid` (key id with version). */
  kid: string;
}

function assertClaimShape(payload: JWTPayload): asserts payload is AttestationClaims {
  const p = payload as Partial<AttestationClaims>;
  for (const name of ["cryptletId", "codeHash", "resultId", "inputHash", "outputHash"] as const) {
    if (typeof p[name] !== "string" || !BYTES32.test(p[name]))
      throw new AttestationInvalidError(`claim ${name} missing or not bytes32`);
  }
  if (
    typeof p.iss !== "string" ||
    typeof p.exp !== "number" ||
    typeof p.iat !== "number" ||
    typeof p.jti !== "string"
  ) {
    throw new AttestationInvalidError("claims iss, iat, exp, jti are required");
  }
  if (typeof p.aud !== "string" || !BYTES32.test(p.aud))
    throw new AttestationInvalidError("claim aud missing or not bytes32");
  if (typeof p.inputFormat !== "number" || !ACCEPTED_INPUT_FORMATS.includes(p.inputFormat)) {
    throw new AttestationInvalidError(`claim inputFormat must be one of ${ACCEPTED_INPUT_FORMATS.join(", ")}`);
  }
  if (p.inputFormat >= 2 && (typeof p.evidenceHash !== "string" || !BYTES32.test(p.evidenceHash))) {
    throw new AttestationInvalidError("claim evidenceHash missing or not bytes32 (required from inputFormat 2)");
  }
  if (typeof p.runtime?.version !== "string" || typeof p.runtime.buildHash !== "string") {
    throw new AttestationInvalidError("claim runtime {version, buildHash} missing");
  }
  if (
    typeof p.sandbox?.engine !== "string" ||
    typeof p.sandbox.engineVersion !== "string" ||
    typeof p.sandbox.limits !== "object"
  ) {
    throw new AttestationInvalidError("claim sandbox {engine, engineVersion, limits} missing");
  }
  if (typeof p.platform?.type !== "string") throw new AttestationInvalidError("claim platform {type} missing");
}

// One jose key set per JWKS object, so that its keys are imported once (jose caches the imported keys in the set),
// not at every verification; rebuilt when the object's contents changed since (jose snapshots the JWKS).
const keySets = new WeakMap<object, { json: string; keySet: ReturnType<typeof createLocalJWKSet> }>();

/**
 * `createLocalJWKSet(jwks)`, reused for the same JWKS object while its JSON is unchanged.
 * @throws what `createLocalJWKSet` throws for a malformed JWKS.
 */
function localKeySet(jwks: JSONWebKeySet): ReturnType<typeof createLocalJWKSet> {
  if (typeof jwks !== "object" || jwks === null) return createLocalJWKSet(jwks);
  let json: string;
  try {
    json = JSON.stringify(jwks);
  } catch {
    return createLocalJWKSet(jwks);
  }
  const cached = keySets.get(jwks);
  if (cached !== undefined && cached.json === json) return cached.keySet;
  const keySet = createLocalJWKSet(jwks);
  keySets.set(jwks, { json, keySet });
  return keySet;
}

/**
 * Verifies an attestation token: ES256 signature against the JWKS key named by the header `kid`, `typ`, the time
 * window at `expected.currentDate`, the claim shapes, and the expected claim values (hex compared case-insensitively).
 * A batch token ({@link BATCH_ATTESTATION_TOKEN_TYPE}) attests the result of `proof`: the proof must take that
 * result's leaf to the token's `batch.root`, and the result's claims are then the proof's values with the token's
 * batch-wide claims (compared with `expected` as a per-result token's).
 *
 * @param token - compact JWS.
 * @param jwks - the accepted keys (from {@link buildJwks} or the runtime's `/.well-known/jwks.json`).
 * @param expected - claim values to compare and the verification time.
 * @param proof - the result's attestation proof (a bundle's `attestationProof` with its `result`'s hashes):
 *   required for a batch token, refused for a per-result token.
 * @returns the result's claims (with `batch` for a batch token) and the `kid`.
 * @throws {@link AttestationExpiredError} (`ERR_ATTESTATION_EXPIRED`), {@link AttestationUnknownKeyError}
 *   (`ERR_ATTESTATION_UNKNOWN_KID`), {@link AttestationClaimMismatchError} (`ERR_ATTESTATION_CLAIM_MISMATCH`),
 *   {@link AttestationInvalidError} (`ERR_ATTESTATION_INVALID`: malformed, bad signature, wrong alg/typ).
 *
 * @example
 * ```ts
 * import { buildJwks, verifyAttestationToken } from "./runtime/attestation/token.ts";
 * const { claims } = await verifyAttestationToken(token, await buildJwks([provider]), { codeHash, resultId });
 * ```
 */
export async function verifyAttestationToken(
  token: string,
  jwks: JSONWebKeySet,
  expected: ExpectedAttestation = {},
  proof?: AttestationLeafProof,
): Promise<VerifiedAttestation> {
  let kid: string | undefined;
  let typ: unknown;
  try {
    ({ kid, typ } = decodeProtectedHeader(token));
  } catch (cause) {
    throw new AttestationInvalidError("not a compact JWS", cause);
  }
  let verified: JWTPayload;
  try {
    ({ payload: verified } = await jwtVerify(token, localKeySet(jwks), {
      algorithms: ["ES256"],
      // Either type; which one decides below whether a proof is needed (jose compares `typ` exactly).
      typ: typ === BATCH_ATTESTATION_TOKEN_TYPE ? BATCH_ATTESTATION_TOKEN_TYPE : ATTESTATION_TOKEN_TYPE,
      requiredClaims: ["iss", "iat", "exp", "jti"],
      ...(expected.currentDate === undefined ? {} : { currentDate: expected.currentDate }),
      clockTolerance: expected.clockToleranceSeconds ?? 0,
    }));
  } catch (cause) {
    const code = (cause as { code?: string }).code;
    const claim = (cause as { claim?: string }).claim;
    if (code === jose.JWTExpired.code) throw new AttestationExpiredError("exp", cause);
    if (code === jose.JWTClaimValidationFailed.code && (claim === "nbf" || claim === "iat")) {
      throw new AttestationExpiredError(claim, cause);
    }
    if (code === jose.JWKSNoMatchingKey.code) throw new AttestationUnknownKeyError(kid, cause);
    if (code === jose.JWSSignatureVerificationFailed.code) throw new AttestationInvalidError("bad signature", cause);
    throw new AttestationInvalidError(code ?? "malformed", cause);
  }
  const payload = resultClaimsOf(typ, verified, proof);
  if (payload.batch !== undefined && !verifyAttestationLeaf((payload.batch as { root: string }).root, proof!)) {
    throw new AttestationInvalidError("the attestation proof does not reach the batch token's root");
  }
  assertClaimShape(payload);
  const compare = (name: string, want: string | undefined, got: string, hex: boolean): void => {
    if (want === undefined) return;
    if (hex ? want.toLowerCase() !== got.toLowerCase() : want !== got) {
      throw new AttestationClaimMismatchError(name, want, got);
    }
  };
  compare("iss", expected.issuer, payload.iss, false);
  compare("cryptletId", expected.cryptletId, payload.cryptletId, true);
  compare("codeHash", expected.codeHash, payload.codeHash, true);
  compare("resultId", expected.resultId, payload.resultId, true);
  compare("aud", expected.consortiumId, String(payload.aud), true);
  compare("inputHash", expected.inputHash, payload.inputHash, true);
  compare("outputHash", expected.outputHash, payload.outputHash, true);
  compare("evidenceHash", expected.evidenceHash, payload.evidenceHash ?? "(none: inputFormat 1)", true);
  // The JWT subject is the result too (RFC 7519 §4.1.2): a consumer that reads only `sub` must not be told
  // about another result than the one the token's `resultId` names.
  compare("sub", payload.resultId, String(payload.sub), true);
  compare("sandbox.engine", expected.engine, payload.sandbox.engine, false);
  compare("sandbox.engineVersion", expected.engineVersion, payload.sandbox.engineVersion, false);
  return { claims: payload, kid: kid ?? "" };
}
