/**
 * The consortium co-signing protocol's shapes (docs/consortium.md): what a leading member proposes to its peers,
 * what each peer answers, and the ports the pipeline uses. One member = one runtime (its own Redis, its own Key
 * Vault with its own result-signing key); members share nothing but the chains, and talk over HTTPS with requests
 * authenticated by the sender's published keys.
 *
 * The flow for one event: the leader runs the Cryptlet (execute stage), then, instead of signing M times with keys
 * it holds, signs once with its own key and sends a {@link CosignProposal} to every peer; each peer checks the code
 * hash is approved in the chain's registry, re-executes the package on the proposal's evidence
 * (runtime/reexecution/reexecute.ts `reexecuteRun`), and answers a {@link CosignAnswer}: its EIP-712 signature over
 * the very same `CryptletResult` when its output is identical, else a dissent with its own `outputHash`. The leader
 * writes once it holds M signatures of distinct members ({@link CosignOutcome}).
 *
 * @module
 */
import type { GeneralJWE } from "jose";

import type { BundleResult } from "../attestation/bundle.ts";
import type { Hex32 } from "../attestation/eip712.ts";
import type { RunEvidence } from "../attestation/evidence.ts";
import type { ResultSignature } from "../attestation/signing.ts";

/** One member of the consortium, as every member's configuration lists it. */
export interface ConsortiumMember {
  /** Stable member id, e.g. `"acme-supplier"` (1..64 of `[a-z0-9-]`). */
  id: string;
  /** The member's API base URL (`https://…`), where peers send proposals. */
  url: string;
  /** Where its request-signing public keys are published (a JWKS URL), or the JWKS itself. */
  jwks: string | { keys: Record<string, unknown>[] };
  /** The address of its result-signing key (secp256k1), as registered as a signer in `CryptletRegistry`. */
  signer: string;
}

/** The consortium settings of one member's runtime configuration (`consortium` in cryptlet.config.json). */
export interface ConsortiumSettings {
  /** This runtime's member id (one of `members`). */
  self: string;
  /** Every member, this one included. */
  members: ConsortiumMember[];
  /** Distinct members' signatures required (M); must equal the registries' threshold. */
  threshold: number;
  /** How long the leader waits for peers' answers, ms. Default 20000. */
  answerTimeoutMs?: number;
  /**
   * For chain-log and oracle events (which every member sees): how long the k-th member in the result's
   * deterministic order waits before it leads in place of those before it, ms (k × this). Default 15000.
   */
  failoverMs?: number;
}

/**
 * What a leader sends a peer (`POST /v1/consortium/proposals`, authenticated as the leader). Everything in the
 * signed struct is reproducible by the peer: `result.timestamp` is the event's time (`context.now` of the
 * evidence), not the leader's clock.
 */
export interface CosignProposal {
  /** Protocol version: 1. */
  version: 1;
  /** The leader's member id (must be the authenticated sender). */
  leader: string;
  consortiumId: Hex32;
  /** The package by name and version, for the peer's package store; the peer trusts only `result.codeHash`. */
  cryptlet: { name: string; version: string };
  /** The `CryptletResult` to sign (bundle form: `timestamp` a decimal string, seconds). */
  result: BundleResult;
  /**
   * The run's evidence in clear (format 2), sent over the authenticated TLS channel only, never stored by the peer:
   * the peer re-executes on it and recomputes `result.inputHash`.
   */
  evidence: RunEvidence;
  /** The bytes to be written on-chain (0x hex): the ABI payload, or the canonical JWE JSON of a sealed result. */
  payload: `0x${string}`;
  /**
   * Sealed results only: the content-encryption key of that one JWE (base64url, 32 bytes for A256GCM), so that a
   * peer that has recomputed the plaintext can decrypt the ciphertext and check it is exactly that plaintext. It
   * opens nothing else (a fresh key per JWE); what a peer cannot check (that each recipient's wrapped key is this
   * key) is in docs/consortium.md.
   */
  contentKey?: string;
  /** The leader's own signature over `result` (so a peer can check who proposes what). */
  leaderSignature: ResultSignature;
}

/** A peer's answer to a {@link CosignProposal}. */
export type CosignAnswer =
  | {
      /** The peer re-computed the same output and signed. */
      verdict: "agree";
      member: string;
      signature: ResultSignature;
    }
  | {
      /** The peer refuses: its own hashes (when it computed any) and why. */
      verdict: "dissent";
      member: string;
      /** The peer's own `outputHash` and `inputHash` when its re-execution completed. */
      outputHash?: Hex32;
      inputHash?: Hex32;
      /** A stable code: `ERR_COSIGN_OUTPUT_DIFFERS`, `ERR_COSIGN_CODE_NOT_APPROVED`, `ERR_COSIGN_REEXECUTION_FAILED`, … */
      code: string;
      reason: string;
    };

/** What the leader gathered for one result: who signed, who dissented (with their hashes), who did not answer. */
export interface CosignOutcome {
  /** True when `signatures` holds at least M distinct members' valid signatures. */
  ok: boolean;
  /** The signatures to write (the leader's first), each from a distinct member's registered signer. */
  signatures: ResultSignature[];
  signedBy: string[];
  dissented: { member: string; code: string; reason: string; outputHash?: Hex32; inputHash?: Hex32 }[];
  unanswered: { member: string; reason: string }[];
}

/** A sealed JWE with the key a co-signer needs to check it (see {@link CosignProposal.contentKey}). */
export interface DisclosedJwe {
  jwe: GeneralJWE;
  contentKey: string;
}
