/**
 * EIP-712 signatures over Cryptlet results and Merkle batches (docs/proof-bundle.md, "EIP-712 proof"), made by any
 * ethers `Signer` (a `Wallet`, or the Key Vault `AbstractSigner` of runtime/keys), and their offline verification:
 * recovery, EIP-2 low-s, and an M-of-N threshold over **distinct** trusted signers.
 *
 * Signature format: 65 bytes `r ‖ s ‖ v` as 0x hex (132 hex digits), `s` in the lower half of the secp256k1 order
 * (EIP-2), `v` 27 or 28, exactly what OpenZeppelin `ECDSA.recover` accepts on-chain.
 *
 * @module
 */
import { Signature, getAddress, getBytes, isHexString, type Signer } from "ethers";

import {
  CRYPTLET_RESULT_TYPES,
  RESULT_BATCH_TYPES,
  cryptletDomain,
  cryptletResultDigest,
  resultBatchDigest,
  type CryptletResult,
  type Hex32,
  type ResultBatch,
} from "./eip712.ts";
import { ResultSignatureError, ThresholdNotMetError } from "./errors.ts";
import { buildMerkleBatch } from "./merkle.ts";
import {
  addressOfPoint,
  noteRecoveredKey,
  recoverPublicKey,
  recoversToKnownKey,
  type SignatureParts,
} from "./secp256k1.ts";

/** secp256k1 group order n. */
const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const HALF_N = SECP256K1_N / 2n;

/** One signer's signature over a result or a batch, as carried in proof bundles and contract calls. */
export interface ResultSignature {
  /** The signer's checksummed Ethereum address. */
  signer: string;
  /** 65-byte `r ‖ s ‖ v` 0x hex, low-s, `v` ∈ {27, 28}. */
  signature: string;
  /** Key identifier including its version (Key Vault `kid` URL, or `local:{name}/{version}`), when known. */
  keyId?: string;
  /** The key version alone (Key Vault's 32-hex version), when known. */
  keyVersion?: string;
}

/**
 * A signer with optional key metadata. A bare ethers `Signer` is accepted too; when it exposes
 * `getPublicKey(): Promise<{keyId, version}>` or a `keyProvider` with that method (the Key Vault signer does), the
 * key id and version are read from it.
 */
export type ResultSigner = Signer | { signer: Signer; keyId?: string; keyVersion?: string };

interface KeyInfoSource {
  getPublicKey(): Promise<{ keyId: string; version: string }>;
}

function hasKeyInfo(value: unknown): value is KeyInfoSource {
  return typeof value === "object" && value !== null && typeof (value as KeyInfoSource).getPublicKey === "function";
}

async function keyMetadata(entry: ResultSigner): Promise<{ signer: Signer; keyId?: string; keyVersion?: string }> {
  if ("signer" in entry && typeof (entry as { signer: unknown }).signer === "object") {
    return entry as { signer: Signer; keyId?: string; keyVersion?: string };
  }
  const signer = entry as Signer;
  const source = hasKeyInfo(signer)
    ? signer
    : hasKeyInfo((signer as { keyProvider?: unknown }).keyProvider)
      ? ((signer as unknown as { keyProvider: KeyInfoSource }).keyProvider as KeyInfoSource)
      : undefined;
  if (source === undefined) return { signer };
  const info = await source.getPublicKey();
  return { signer, keyId: info.keyId, keyVersion: info.version };
}

/**
 * {@link parseStrictSignature}'s checks, returning the parts as integers.
 * @throws {@link ResultSignatureError} with `details.reason` `malformed`, `bad-v` or `high-s`.
 */
function strictParts(signature: string): SignatureParts {
  if (!isHexString(signature, 65)) throw new ResultSignatureError("malformed", { length: signature.length });
  const s = BigInt(`0x${signature.slice(66, 130)}`);
  const r = BigInt(`0x${signature.slice(2, 66)}`);
  if (r === 0n || r >= SECP256K1_N || s === 0n || s >= SECP256K1_N) throw new ResultSignatureError("malformed");
  if (s > HALF_N) throw new ResultSignatureError("high-s");
  // v 27/28 only: OpenZeppelin's ECDSA (the registry's check) refuses 0/1, so an offline verifier must too.
  const v = Number.parseInt(signature.slice(130, 132), 16);
  if (v !== 27 && v !== 28) throw new ResultSignatureError("bad-v", { v });
  return { r, s, recovery: v === 27 ? 0 : 1 };
}

/**
 * Parses a 65-byte signature strictly: rejects anything but 65 bytes, `v` other than 27/28 (0/1 too: the
 * contracts refuse them), r or s out of range, and high `s` (EIP-2), which ethers would otherwise refuse generically.
 * @throws {@link ResultSignatureError} with `details.reason` `malformed`, `bad-v` or `high-s`.
 */
export function parseStrictSignature(signature: string): Signature {
  strictParts(signature);
  const v = Number.parseInt(signature.slice(130, 132), 16);
  return Signature.from({ r: `0x${signature.slice(2, 66)}`, s: `0x${signature.slice(66, 130)}`, v });
}

/**
 * Normalises a 65-byte secp256k1 signature to the form contracts accept: `s` in the lower half (EIP-2: a high `s`
 * becomes `n - s` and the recovery bit flips) and `v` 27/28.
 * @throws {@link ResultSignatureError} (`malformed`, `bad-v`) when it is not a 65-byte signature.
 */
export function normaliseSignature(signature: string): string {
  if (!isHexString(signature, 65)) throw new ResultSignatureError("malformed", { length: signature.length });
  const r = signature.slice(2, 66);
  let s = BigInt(`0x${signature.slice(66, 130)}`);
  let v = Number.parseInt(signature.slice(130, 132), 16);
  if (v === 0 || v === 1) v += 27;
  if (v !== 27 && v !== 28) throw new ResultSignatureError("bad-v", { v });
  if (s > HALF_N) {
    s = SECP256K1_N - s;
    v = v === 27 ? 28 : 27;
  }
  return `0x${r}${s.toString(16).padStart(64, "0")}${v.toString(16)}`.toLowerCase();
}

/** `ecrecover` of a strictly parsed signature: the signer's address and public point. */
function recoverSigner(digest: Hex32, parts: SignatureParts): { address: string; point: RecoveredPoint } {
  try {
    const bytes = getBytes(digest, "digest");
    if (bytes.length !== 32) throw new RangeError("the digest must be 32 bytes");
    const point = recoverPublicKey(bytes, parts);
    return { address: addressOfPoint(point), point };
  } catch (cause) {
    throw new ResultSignatureError("unrecoverable", { cause: String(cause) });
  }
}

type RecoveredPoint = ReturnType<typeof recoverPublicKey>;

/**
 * Recovers the signer of a digest from a strict 65-byte signature (`ecrecover`, as OpenZeppelin `ECDSA.recover`).
 * @param digest - the 32-byte digest as 0x hex.
 * @param signature - 65-byte `r ‖ s ‖ v` 0x hex.
 * @returns the signer's checksummed (EIP-55) address.
 * @throws {@link ResultSignatureError} for malformed or high-s signatures (`malformed`, `bad-v`, `high-s`), or
 *   when no key recovers (`unrecoverable`).
 */
export function recoverDigestSigner(digest: Hex32, signature: string): string {
  return recoverSigner(digest, strictParts(signature)).address;
}

/**
 * Whether a strict signature recovers to `address`: checked without recovery when the address's public key is
 * known (runtime/attestation/secp256k1.ts), else by recovery, the key then being noted for the next time.
 * @returns the recovered address (`address` itself when it matches).
 * @throws {@link ResultSignatureError} as {@link recoverDigestSigner}.
 */
function recoverExpecting(digest: Hex32, parts: SignatureParts, address: string | undefined): string {
  if (address !== undefined && recoversToKnownKey(getBytes(digest), parts, address) === true) return address;
  const recovered = recoverSigner(digest, parts);
  if (recovered.address === address) noteRecoveredKey(recovered.point, address);
  return recovered.address;
}

async function signTyped(
  entry: ResultSigner,
  sign: (signer: Signer) => Promise<string>,
  digest: Hex32,
): Promise<ResultSignature> {
  const { signer, keyId, keyVersion } = await keyMetadata(entry);
  const address = getAddress(await signer.getAddress());
  const raw = await sign(signer);
  // Normalise whatever the signer returned (v 0/1, high s) and refuse a signature that does not verify.
  const signature = normaliseSignature(raw);
  const recovered = recoverExpecting(digest, strictParts(signature), address);
  if (recovered !== address) throw new ResultSignatureError("wrong-signer", { expected: address, recovered });
  return {
    signer: address,
    signature,
    ...(keyId === undefined ? {} : { keyId }),
    ...(keyVersion === undefined ? {} : { keyVersion }),
  };
}

/**
 * Signs a {@link CryptletResult} with each signer (EIP-712, domain `{name: "CryptletRuntime", version: "1", salt:
 * consortiumId}`), sequentially, and checks each signature recovers to its signer before returning it.
 *
 * @param consortiumId - the consortium's `bytes32` id (domain salt).
 * @param result - the result to sign.
 * @param signers - ethers signers (any `AbstractSigner`, e.g. the Key Vault signer), optionally with key metadata.
 * @returns one {@link ResultSignature} per signer, in the given order.
 * @throws {@link ResultSignatureError} (`ERR_RESULT_SIGNATURE_INVALID`) when a signer returns a signature that does
 *   not recover to its own address; the signer's own errors (e.g. `ERR_KEY_PROVIDER_UNAVAILABLE`) pass through.
 *
 * @example
 * ```ts
 * import { Wallet } from "ethers";
 * import { signCryptletResult } from "./runtime/attestation/signing.ts";
 * const signatures = await signCryptletResult(consortiumId, result, [Wallet.createRandom()]);
 * ```
 */
export async function signCryptletResult(
  consortiumId: Hex32,
  result: CryptletResult,
  signers: readonly ResultSigner[],
): Promise<ResultSignature[]> {
  const domain = cryptletDomain(consortiumId);
  const types = { CryptletResult: [...CRYPTLET_RESULT_TYPES.CryptletResult] };
  const digest = cryptletResultDigest(consortiumId, result);
  const out: ResultSignature[] = [];
  for (const entry of signers) {
    out.push(await signTyped(entry, (s) => s.signTypedData(domain, types, { ...result }), digest));
  }
  return out;
}

/** A signed Merkle batch: the `ResultBatch` struct, its signatures, and each result's proof in input order. */
export interface SignedResultBatch {
  batch: ResultBatch;
  signatures: ResultSignature[];
  /** `proofs[i]` proves `results[i]` against `batch.root`. */
  proofs: Hex32[][];
  /** `leaves[i]` is the EIP-712 struct hash of `results[i]`. */
  leaves: Hex32[];
}

/**
 * Builds a Merkle batch over the results (runtime/attestation/merkle.ts) and signs its `ResultBatch` struct.
 * @param timestamp - when the batch was sealed, Unix **seconds**.
 * @throws RangeError for an empty batch; {@link ResultSignatureError} as {@link signCryptletResult}.
 */
export async function signResultBatch(
  consortiumId: Hex32,
  results: readonly CryptletResult[],
  signers: readonly ResultSigner[],
  timestamp: bigint,
): Promise<SignedResultBatch> {
  const tree = buildMerkleBatch(results);
  const batch: ResultBatch = { root: tree.root, count: results.length, timestamp };
  const domain = cryptletDomain(consortiumId);
  const types = { ResultBatch: [...RESULT_BATCH_TYPES.ResultBatch] };
  const digest = resultBatchDigest(consortiumId, batch);
  const signatures: ResultSignature[] = [];
  for (const entry of signers) {
    signatures.push(await signTyped(entry, (s) => s.signTypedData(domain, types, { ...batch }), digest));
  }
  return { batch, signatures, proofs: tree.proofs, leaves: tree.leaves };
}

/** The outcome of {@link evaluateSignatures}. */
export interface SignatureEvaluation {
  /** Distinct trusted signer addresses whose signature verified (checksummed), in first-seen order. */
  valid: string[];
  /** Signatures that did not count, with why: `malformed`, `high-s`, `bad-v`, `unrecoverable` (no public key recovers from it), `wrong-signer` (recovered address
   *  differs from the claimed one), `untrusted` (not in the trusted set) or `duplicate` (signer already counted). */
  rejected: { index: number; signer: string; reason: string }[];
  /** The threshold M. */
  threshold: number;
  /** `valid.length >= threshold`. */
  met: boolean;
}

/**
 * Checks signatures over a digest against a trusted signer set and a threshold; never throws for bad signatures.
 * @param digest - the EIP-712 digest (`cryptletResultDigest` or `resultBatchDigest`).
 * @param trustedSigners - addresses allowed to sign (any case).
 * @param threshold - the number M of distinct trusted signers required (≥ 1).
 * @throws RangeError for a threshold below 1.
 */
export function evaluateSignatures(
  digest: Hex32,
  signatures: readonly ResultSignature[],
  trustedSigners: readonly string[],
  threshold: number,
): SignatureEvaluation {
  if (!Number.isInteger(threshold) || threshold < 1) throw new RangeError("threshold must be an integer ≥ 1");
  const trusted = new Set(trustedSigners.map((a) => getAddress(a)));
  const counted = new Set<string>();
  const rejected: SignatureEvaluation["rejected"] = [];
  signatures.forEach((entry, index) => {
    let claimed: string | undefined;
    try {
      claimed = getAddress(entry.signer);
    } catch {
      claimed = undefined;
    }
    let recovered: string;
    try {
      // Without recovery when the claimed trusted signer's key is known: the outcome is the same either way.
      recovered = recoverExpecting(
        digest,
        strictParts(entry.signature),
        claimed !== undefined && trusted.has(claimed) ? claimed : undefined,
      );
    } catch (e) {
      const reason = (e as ResultSignatureError).details?.reason;
      rejected.push({ index, signer: String(entry.signer), reason: typeof reason === "string" ? reason : "malformed" });
      return;
    }
    if (claimed !== recovered) rejected.push({ index, signer: recovered, reason: "wrong-signer" });
    else if (!trusted.has(recovered)) rejected.push({ index, signer: recovered, reason: "untrusted" });
    else if (counted.has(recovered)) rejected.push({ index, signer: recovered, reason: "duplicate" });
    else counted.add(recovered);
  });
  const valid = [...counted];
  return { valid, rejected, threshold, met: valid.length >= threshold };
}

/**
 * Throws unless at least `threshold` distinct trusted signers signed `result`.
 * @throws {@link ThresholdNotMetError} (`ERR_THRESHOLD_NOT_MET`).
 */
export function assertResultThreshold(
  consortiumId: Hex32,
  result: CryptletResult,
  signatures: readonly ResultSignature[],
  trustedSigners: readonly string[],
  threshold: number,
): SignatureEvaluation {
  const evaluation = evaluateSignatures(
    cryptletResultDigest(consortiumId, result),
    signatures,
    trustedSigners,
    threshold,
  );
  if (!evaluation.met) throw new ThresholdNotMetError(evaluation.valid.length, threshold);
  return evaluation;
}
