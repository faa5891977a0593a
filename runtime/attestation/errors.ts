/**
 * Typed errors of the proof layer (canonical hashing, result signatures, attestation tokens, proof bundles).
 * Every class extends {@link CryptletError}; test them with `isCryptletError(e, "ERR_...")`. None is retryable:
 * a malformed value or an invalid proof stays invalid on a retry.
 *
 * @module
 */
import { defineErrorCode } from "../errorCodes.ts";
import { CryptletError } from "../errors.ts";

const module = "attestation";

export const ERR_CANONICAL_JSON_UNSUPPORTED = defineErrorCode({
  code: "ERR_CANONICAL_JSON_UNSUPPORTED",
  module,
  meaning:
    "A value cannot be represented in RFC 8785 canonical JSON (`undefined`, a function, a symbol, a `bigint`, `NaN` or an infinite number, a cycle).",
  retry: "no",
});
export const ERR_ABI_ENCODING = defineErrorCode({
  code: "ERR_ABI_ENCODING",
  module,
  meaning: "A public output does not match its manifest ABI type, or the ABI type string is invalid.",
  retry: "no",
});
export const ERR_INVALID_IDENTIFIER = defineErrorCode({
  code: "ERR_INVALID_IDENTIFIER",
  module,
  meaning: "A malformed identifier input (not 32-byte hex, negative chain id, empty idempotency key...).",
  retry: "no",
});
export const ERR_RESULT_SIGNATURE_INVALID = defineErrorCode({
  code: "ERR_RESULT_SIGNATURE_INVALID",
  module,
  meaning: "A result or batch signature is malformed, high-s (EIP-2), or does not recover to the expected signer.",
  retry: "no",
});
export const ERR_THRESHOLD_NOT_MET = defineErrorCode({
  code: "ERR_THRESHOLD_NOT_MET",
  module,
  meaning: "Fewer distinct trusted signers than the threshold.",
  retry: "no",
});
export const ERR_ATTESTATION_EXPIRED = defineErrorCode({
  code: "ERR_ATTESTATION_EXPIRED",
  module,
  meaning: "The attestation token's `exp` is in the past (or `nbf`/`iat` in the future) at the verification time.",
  retry: "no",
});
export const ERR_ATTESTATION_UNKNOWN_KID = defineErrorCode({
  code: "ERR_ATTESTATION_UNKNOWN_KID",
  module,
  meaning: "The token's header `kid` names no key of the JWKS (unknown or rotated-out key version).",
  retry: "no",
});
export const ERR_ATTESTATION_CLAIM_MISMATCH = defineErrorCode({
  code: "ERR_ATTESTATION_CLAIM_MISMATCH",
  module,
  meaning:
    "A claim of the token differs from what the verifier expected (`codeHash`, `cryptletId`, `resultId`, `iss`).",
  retry: "no",
});
export const ERR_ATTESTATION_INVALID = defineErrorCode({
  code: "ERR_ATTESTATION_INVALID",
  module,
  meaning: "The token is malformed, has a bad signature, a wrong `alg`/`typ`, or lacks a required claim.",
  retry: "no",
});
export const ERR_ATTESTATION_SIGNING = defineErrorCode({
  code: "ERR_ATTESTATION_SIGNING",
  module,
  meaning: "The key provider answered with something that is not a 64-byte ES256 `r\u2016s` signature.",
  retry: "no",
});
export const ERR_EVIDENCE_INVALID = defineErrorCode({
  code: "ERR_EVIDENCE_INVALID",
  module,
  meaning:
    'A run\'s evidence (docs/proof-bundle.md, "Evidence") is malformed: a member missing, unknown or of the wrong type, or a recorded body that does not match its `bodySha256` or `bodyBytes`; the message names the field.',
  retry: "no",
});
export const ERR_PROOF_BUNDLE_SCHEMA = defineErrorCode({
  code: "ERR_PROOF_BUNDLE_SCHEMA",
  module,
  meaning: "A proof bundle does not match docs/proof-bundle.schema.json (thrown only by `assertProofBundle`).",
  retry: "no",
});

/**
 * A value cannot be represented in RFC 8785 canonical JSON (`undefined`, a function, a symbol, a `bigint`, `NaN`
 * or an infinite number, a cycle). `details.path` is a JSON Pointer-like path (`$.hostCalls[2].status`) to it.
 */
export class CanonicalJsonError extends CryptletError {
  constructor(path: string, kind: string) {
    super(ERR_CANONICAL_JSON_UNSUPPORTED, `cannot canonicalise ${kind} at ${path} (RFC 8785 JSON only)`, {
      details: { path, kind },
    });
  }
}

/** A public output does not match its manifest ABI type, or the ABI type string is invalid. */
export class AbiEncodingError extends CryptletError {
  constructor(abiType: string, cause: unknown) {
    super(ERR_ABI_ENCODING, `output does not encode as ABI type ${abiType}`, { details: { abiType }, cause });
  }
}

/** A malformed identifier input (not 32-byte hex, negative chain id, empty idempotency key...). */
export class InvalidIdentifierError extends CryptletError {
  constructor(field: string, reason: string) {
    super(ERR_INVALID_IDENTIFIER, `invalid ${field}: ${reason}`, { details: { field, reason } });
  }
}

/**
 * A result or batch signature is malformed, high-s (EIP-2), or does not recover to the expected signer.
 * `details.reason` is one of `malformed`, `high-s`, `bad-v`, `unrecoverable` (no key recovers from it),
 * `wrong-signer`.
 */
export class ResultSignatureError extends CryptletError {
  constructor(
    reason: "malformed" | "high-s" | "bad-v" | "unrecoverable" | "wrong-signer",
    details: Record<string, unknown> = {},
  ) {
    super(ERR_RESULT_SIGNATURE_INVALID, `result signature invalid: ${reason}`, { details: { reason, ...details } });
  }
}

/** Fewer distinct trusted signers than the threshold. */
export class ThresholdNotMetError extends CryptletError {
  constructor(valid: number, threshold: number) {
    super(ERR_THRESHOLD_NOT_MET, `${valid} distinct trusted signer(s), threshold is ${threshold}`, {
      details: { valid, threshold },
    });
  }
}

/** The attestation token's `exp` is in the past (or `nbf`/`iat` in the future) at the verification time. */
export class AttestationExpiredError extends CryptletError {
  constructor(claim: string, cause?: unknown) {
    super(ERR_ATTESTATION_EXPIRED, `attestation token not valid at the verification time (${claim})`, {
      details: { claim },
      cause,
    });
  }
}

/** The token's header `kid` names no key of the JWKS (unknown or rotated-out key version). */
export class AttestationUnknownKeyError extends CryptletError {
  constructor(kid: string | undefined, cause?: unknown) {
    super(ERR_ATTESTATION_UNKNOWN_KID, `attestation key ${kid ?? "(no kid)"} is not in the JWKS`, {
      details: { kid: kid ?? null },
      cause,
    });
  }
}

/** A claim of the token differs from what the verifier expected (`codeHash`, `cryptletId`, `resultId`, `iss`). */
export class AttestationClaimMismatchError extends CryptletError {
  constructor(claim: string, expected: unknown, actual: unknown) {
    super(ERR_ATTESTATION_CLAIM_MISMATCH, `attestation claim ${claim} does not match`, {
      details: { claim, expected, actual },
    });
  }
}

/** The token is malformed, has a bad signature, a wrong `alg`/`typ`, or lacks a required claim. */
export class AttestationInvalidError extends CryptletError {
  constructor(reason: string, cause?: unknown) {
    super(ERR_ATTESTATION_INVALID, `attestation token invalid: ${reason}`, { details: { reason }, cause });
  }
}

/** The key provider answered with something that is not a 64-byte ES256 `r‖s` signature. */
export class AttestationSigningError extends CryptletError {
  constructor(reason: string, cause?: unknown) {
    super(ERR_ATTESTATION_SIGNING, `attestation signing failed: ${reason}`, { details: { reason }, cause });
  }
}

/** A proof bundle does not match docs/proof-bundle.schema.json (thrown only by `assertProofBundle`). */
export class ProofBundleSchemaError extends CryptletError {
  constructor(errors: { path: string; message: string }[]) {
    super(ERR_PROOF_BUNDLE_SCHEMA, `proof bundle does not match its schema at ${errors[0]?.path ?? "$"}`, {
      details: { errors },
    });
  }
}

/** A run's evidence is malformed (`path` names the field, e.g. `evidence.fetches[0].response.body`). */
export class EvidenceInvalidError extends CryptletError {
  constructor(path: string, why: string) {
    super(ERR_EVIDENCE_INVALID, `evidence invalid: ${path} ${why}`, { details: { path, why } });
  }
}
