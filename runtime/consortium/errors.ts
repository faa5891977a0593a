/**
 * Typed errors of the consortium protocol (docs/consortium.md): peer request authentication (`ERR_PEER_*`), the
 * co-signing dissent codes a member answers with (`ERR_COSIGN_*`), and the leader's outcome. A dissent code is both
 * the `code` of a {@link CosignDissentError} inside a member and the `code` of the `dissent` answer it sends back, so
 * a leader's receipt names the very rule a peer applied. No error carries evidence, plaintext or key material.
 *
 * @module
 */
import { defineErrorCode, type ErrorCodeDeclaration } from "../errorCodes.ts";
import { CryptletError } from "../errors.ts";
import { ApiError } from "../api/errors.ts";
import type { Hex32 } from "../attestation/eip712.ts";

const module = "consortium";

export const ERR_PEER_UNAUTHENTICATED = defineErrorCode({
  code: "ERR_PEER_UNAUTHENTICATED",
  module,
  meaning:
    "401: a member-to-member request is not authenticated (`details.reason`: missing, malformed, unknown-sender, unknown-key, bad-signature, expired, lifetime, wrong-audience, replayed, body-mismatch); 503 and retried when `jwks-unavailable`.",
  retry: "depends",
});
export const ERR_PEER_UNREACHABLE = defineErrorCode({
  code: "ERR_PEER_UNREACHABLE",
  module,
  meaning: "A peer member did not answer within the deadline, or the connection failed.",
  retry: "yes",
});
export const ERR_PEER_REJECTED = defineErrorCode({
  code: "ERR_PEER_REJECTED",
  module,
  meaning:
    "A peer member answered a request with an HTTP error (`details.status`, and `details.code` from its problem document).",
  retry: "depends",
});
export const ERR_CONSORTIUM_CONFIG_INVALID = defineErrorCode({
  code: "ERR_CONSORTIUM_CONFIG_INVALID",
  module,
  meaning:
    "The consortium settings are inconsistent (self not a member, duplicate ids or signers, threshold out of range, own key not the configured signer).",
  retry: "no",
});
export const ERR_COSIGN_PROPOSAL_INVALID = defineErrorCode({
  code: "ERR_COSIGN_PROPOSAL_INVALID",
  module,
  meaning: "Dissent: the proposal is malformed (version, hex fields, a content key for a public result...).",
  retry: "no",
});
export const ERR_COSIGN_NOT_A_MEMBER = defineErrorCode({
  code: "ERR_COSIGN_NOT_A_MEMBER",
  module,
  meaning: "Dissent: the proposing leader is not a member of this member's consortium (or is this member itself).",
  retry: "no",
});
export const ERR_COSIGN_LEADER_MISMATCH = defineErrorCode({
  code: "ERR_COSIGN_LEADER_MISMATCH",
  module,
  meaning: "Dissent: the authenticated sender of the proposal is not the leader it names.",
  retry: "no",
});
export const ERR_COSIGN_CONSORTIUM_MISMATCH = defineErrorCode({
  code: "ERR_COSIGN_CONSORTIUM_MISMATCH",
  module,
  meaning: "Dissent: the proposal's consortium id is not this member's.",
  retry: "no",
});
export const ERR_COSIGN_LEADER_SIGNATURE_INVALID = defineErrorCode({
  code: "ERR_COSIGN_LEADER_SIGNATURE_INVALID",
  module,
  meaning: "Dissent: the leader's signature over the result does not recover to the leader's registered signer.",
  retry: "no",
});
export const ERR_COSIGN_REGISTRY_UNAVAILABLE = defineErrorCode({
  code: "ERR_COSIGN_REGISTRY_UNAVAILABLE",
  module,
  meaning: "Dissent for now: a chain's CryptletRegistry could not be read within the deadline.",
  retry: "yes",
});
export const ERR_COSIGN_REGISTRY_MISMATCH = defineErrorCode({
  code: "ERR_COSIGN_REGISTRY_MISMATCH",
  module,
  meaning:
    "Dissent: a chain's registry disagrees with this member's consortium settings (consortium id, signer set or threshold).",
  retry: "no",
});
export const ERR_COSIGN_CODE_NOT_APPROVED = defineErrorCode({
  code: "ERR_COSIGN_CODE_NOT_APPROVED",
  module,
  meaning: "Dissent: the result's codeHash is not approved for its Cryptlet in a chain's registry.",
  retry: "no",
});
export const ERR_COSIGN_PACKAGE_NOT_FOUND = defineErrorCode({
  code: "ERR_COSIGN_PACKAGE_NOT_FOUND",
  module,
  meaning:
    "Dissent: this member's package store holds no package whose recomputed codeHash is the result's (or not the result's Cryptlet).",
  retry: "no",
});
export const ERR_COSIGN_EVIDENCE_MISMATCH = defineErrorCode({
  code: "ERR_COSIGN_EVIDENCE_MISMATCH",
  module,
  meaning:
    "Dissent: the evidence is invalid, its commitment is not the result's inputHash, its context names another result, the result's timestamp is not the evidence's `now`, or its event is not a normalised event of the context's requestId and time.",
  retry: "no",
});
export const ERR_COSIGN_EVENT_NOT_ON_CHAIN = defineErrorCode({
  code: "ERR_COSIGN_EVENT_NOT_ON_CHAIN",
  module,
  meaning:
    "Dissent: the evidence's chain event is false: its log, oracle request or refund observation is not on the chain as the evidence says, or the input is not what the trigger makes of it (the leader lied, or acted on a block that was reorganised away).",
  retry: "no",
});
export const ERR_COSIGN_EVENT_UNVERIFIABLE = defineErrorCode({
  code: "ERR_COSIGN_EVENT_UNVERIFIABLE",
  module,
  meaning:
    "Dissent for now: this member cannot check the evidence's event on its chain (no client of that chain, an RPC failure or timeout, its node behind the event's block, or a source it cannot check).",
  retry: "yes",
});
export const ERR_COSIGN_REEXECUTION_FAILED = defineErrorCode({
  code: "ERR_COSIGN_REEXECUTION_FAILED",
  module,
  meaning: "Dissent: re-executing the package on the evidence failed (the sandbox's code is in the reason).",
  retry: "no",
});
export const ERR_COSIGN_INPUT_DIFFERS = defineErrorCode({
  code: "ERR_COSIGN_INPUT_DIFFERS",
  module,
  meaning: "Dissent: the re-run made other fetches than the evidence records (its inputHash is in the answer).",
  retry: "no",
});
export const ERR_COSIGN_OUTPUT_DIFFERS = defineErrorCode({
  code: "ERR_COSIGN_OUTPUT_DIFFERS",
  module,
  meaning:
    "Dissent: the re-run's output differs from the proposed payload, or the payload's keccak256 is not the outputHash (the member's outputHash is in the answer).",
  retry: "no",
});
export const ERR_COSIGN_SEALED_MISMATCH = defineErrorCode({
  code: "ERR_COSIGN_SEALED_MISMATCH",
  module,
  meaning:
    "Dissent: the sealed payload does not hold the re-run's plaintext under the disclosed content key, or names other recipients than the manifest's parties.",
  retry: "no",
});
export const ERR_COSIGN_SIGNING_FAILED = defineErrorCode({
  code: "ERR_COSIGN_SIGNING_FAILED",
  module,
  meaning: "Dissent for now: this member's own result-signing key (its Key Vault) failed to sign.",
  retry: "yes",
});
export const ERR_COSIGN_BAD_SIGNATURE = defineErrorCode({
  code: "ERR_COSIGN_BAD_SIGNATURE",
  module,
  meaning:
    "Counted as dissent by the leader: a peer's answer is malformed or its signature does not recover to that member's configured signer.",
  retry: "no",
});
export const ERR_COSIGN_THRESHOLD_NOT_MET = defineErrorCode({
  code: "ERR_COSIGN_THRESHOLD_NOT_MET",
  module,
  meaning:
    "Fewer than M distinct members signed a result (`details.signedBy`, `dissented`, `unanswered`); retried with backoff, then dead-lettered.",
  retry: "yes",
});

export const ERR_COSIGN_ANCHOR_UNSUPPORTED = defineErrorCode({
  code: "ERR_COSIGN_ANCHOR_UNSUPPORTED",
  module,
  meaning:
    "A consortium member accepts no run with an `anchor` target: batches are not co-signed by the members (`details.cryptlet`, `details.chain`); use `record`, `oracle` or `feed`.",
  retry: "no",
});

/** Why a peer request was refused (see {@link PeerUnauthenticatedError}). */
export type PeerAuthFailure =
  | "missing"
  | "malformed"
  | "unknown-sender"
  | "unknown-key"
  | "bad-signature"
  | "expired"
  | "lifetime"
  | "wrong-audience"
  | "replayed"
  | "body-mismatch"
  | "jwks-unavailable";

/**
 * `ERR_PEER_UNAUTHENTICATED`: a member-to-member request failed authentication: 401, or 503 (retryable) when the
 * sender's JWKS could not be fetched.
 */
export class PeerUnauthenticatedError extends ApiError {
  /** The rule that failed. */
  readonly reason: PeerAuthFailure;

  /** @param reason - which check failed; @param cause - the underlying jose error, if any. */
  constructor(reason: PeerAuthFailure, cause?: unknown) {
    const unavailable = reason === "jwks-unavailable";
    super(unavailable ? 503 : 401, ERR_PEER_UNAUTHENTICATED, `peer request not authenticated: ${reason}`, {
      details: { reason },
      cause,
      retryable: unavailable,
    });
    this.reason = reason;
  }
}

/** `ERR_PEER_UNREACHABLE`: no answer from `member` within the deadline, or the connection failed (retryable). */
export class PeerUnreachableError extends CryptletError {
  constructor(member: string, what: string, cause?: unknown) {
    super(ERR_PEER_UNREACHABLE, `member ${member} unreachable: ${what}`, { details: { member }, cause });
  }
}

/** `ERR_PEER_REJECTED`: `member` answered with an HTTP error; 5xx and 429 are retryable. */
export class PeerRejectedError extends CryptletError {
  constructor(member: string, status: number, code?: string) {
    super(ERR_PEER_REJECTED, `member ${member} answered ${status}${code ? ` ${code}` : ""}`, {
      details: { member, status, ...(code ? { code } : {}) },
      retryable: status >= 500 || status === 429,
    });
  }
}

/** `ERR_CONSORTIUM_CONFIG_INVALID`: the consortium settings contradict themselves or this member's keys. */
export class ConsortiumConfigError extends CryptletError {
  constructor(reason: string) {
    super(ERR_CONSORTIUM_CONFIG_INVALID, `consortium settings invalid: ${reason}`, { details: { reason } });
  }
}

/** The dissent codes (what {@link CosignDissentError} accepts). */
export const DISSENT_CODES = [
  ERR_COSIGN_PROPOSAL_INVALID,
  ERR_COSIGN_NOT_A_MEMBER,
  ERR_COSIGN_LEADER_MISMATCH,
  ERR_COSIGN_CONSORTIUM_MISMATCH,
  ERR_COSIGN_LEADER_SIGNATURE_INVALID,
  ERR_COSIGN_REGISTRY_UNAVAILABLE,
  ERR_COSIGN_REGISTRY_MISMATCH,
  ERR_COSIGN_CODE_NOT_APPROVED,
  ERR_COSIGN_PACKAGE_NOT_FOUND,
  ERR_COSIGN_EVIDENCE_MISMATCH,
  ERR_COSIGN_EVENT_NOT_ON_CHAIN,
  ERR_COSIGN_EVENT_UNVERIFIABLE,
  ERR_COSIGN_REEXECUTION_FAILED,
  ERR_COSIGN_INPUT_DIFFERS,
  ERR_COSIGN_OUTPUT_DIFFERS,
  ERR_COSIGN_SEALED_MISMATCH,
  ERR_COSIGN_SIGNING_FAILED,
  ERR_COSIGN_BAD_SIGNATURE,
] as const satisfies readonly ErrorCodeDeclaration[];

/**
 * A member's refusal to co-sign, with the rule (`code`, one of {@link DISSENT_CODES}) and, when its re-execution
 * completed, its own `inputHash`/`outputHash`. `reason` is secret-free: it names hashes and rules, never evidence.
 */
export class CosignDissentError extends CryptletError {
  readonly inputHash?: Hex32;
  readonly outputHash?: Hex32;

  constructor(
    code: (typeof DISSENT_CODES)[number],
    reason: string,
    hashes: { inputHash?: Hex32; outputHash?: Hex32 } = {},
    cause?: unknown,
  ) {
    super(code, reason, { details: { ...hashes }, cause });
    if (hashes.inputHash !== undefined) this.inputHash = hashes.inputHash;
    if (hashes.outputHash !== undefined) this.outputHash = hashes.outputHash;
  }
}

/** Who signed, dissented and did not answer, as a receipt's `cosigning` lists them. */
export interface CosigningAccount {
  leader?: string;
  threshold?: number;
  signedBy: string[];
  dissented: { member: string; code: string; reason?: string }[];
  unanswered: { member: string; reason: string }[];
}

/**
 * `ERR_COSIGN_THRESHOLD_NOT_MET`: fewer than M distinct members signed `resultId` (retried with backoff by the
 * pipeline, then dead-lettered). `details` lists who signed, who dissented (member and code) and who did not answer.
 */
export class CosignThresholdNotMetError extends CryptletError {
  constructor(resultId: string, cosigning: CosigningAccount, threshold: number) {
    super(
      ERR_COSIGN_THRESHOLD_NOT_MET,
      `result ${resultId}: ${cosigning.signedBy.length} of ${threshold} required members signed (dissented: ${cosigning.dissented.length}, unanswered: ${cosigning.unanswered.length})`,
      {
        details: {
          resultId,
          threshold,
          signedBy: cosigning.signedBy,
          dissented: cosigning.dissented.map((d) => ({ member: d.member, code: d.code })),
          unanswered: cosigning.unanswered,
        },
      },
    );
  }
}
