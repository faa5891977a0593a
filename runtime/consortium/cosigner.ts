/**
 * The pipeline's side of consortium co-signing (docs/consortium.md "Pipeline"): the {@link Cosigner} port the
 * pipeline calls to gather the other members' signatures, the deterministic leader order for events every member
 * sees, and {@link cosignResult}, which one stage calls for one result and which checks what came back.
 *
 * Where the call happens:
 * - a **public** result is co-signed in the `attest` stage (the evidence and payload are in clear in the execute
 *   stage's output anyway);
 * - a **sealed** result is co-signed in the `execute` stage, in the process that sealed it: the JWE's
 *   content-encryption key (CEK), which the proposal discloses to the peers, exists only in that process's memory
 *   and is never written to Redis, a log or a job; the evidence in clear likewise. A retry re-runs the sandbox and
 *   seals again with a fresh CEK.
 *
 * @module
 */
import { getAddress, keccak256, solidityPacked } from "ethers";
import type { JobsOptions } from "bullmq";

import { structToBundleResult } from "../attestation/bundle.ts";
import { cryptletResultDigest, type CryptletResult, type Hex32 } from "../attestation/eip712.ts";
import type { RunEvidence } from "../attestation/evidence.ts";
import { evaluateSignatures, type ResultSignature, type ResultSigner } from "../attestation/signing.ts";
import type { KeyProvider } from "../keys/KeyProvider.ts";
import { ConsortiumConfigError, CosignThresholdNotMetError } from "./errors.ts";
import { gatherCosignatures } from "./leader.ts";
import type { ConsortiumMember, ConsortiumSettings, CosignOutcome, CosignProposal, DisclosedJwe } from "./protocol.ts";

/**
 * Gathers the other members' signatures for one result (the leader's side of the protocol, runtime/consortium
 * leader.ts). The implementation signs `proposal.result` with this member's own result-signing key (the
 * `leaderSignature`), sends the proposal to every peer with a deadline, and returns what it gathered: the
 * signatures (the leader's first), who dissented and who did not answer. It never throws for a peer's failure.
 */
export interface Cosigner {
  cosign(input: {
    proposal: Omit<CosignProposal, "leaderSignature">;
    payloadJwe?: DisclosedJwe;
  }): Promise<CosignOutcome>;
}

/** A runtime's consortium mode, as the pipeline gets it in {@link PipelineContext}'s `consortium`. */
export interface PipelineConsortium {
  settings: ConsortiumSettings;
  cosigner: Cosigner;
  /**
   * Retry policy of the stage that co-signs (`attest`, or `execute` for sealed results) in consortium mode: fewer
   * than M signatures is retried this way, then dead-lettered. Default {@link COSIGN_RETRY}.
   */
  retry?: Pick<JobsOptions, "attempts" | "backoff">;
}

/** Default retries of a co-signing stage: 8 attempts, exponential backoff from 1 s (about 4 min in all). */
export const COSIGN_RETRY: Pick<JobsOptions, "attempts" | "backoff"> = {
  attempts: 8,
  backoff: { type: "exponential", delay: 1000 },
};

/** Default {@link ConsortiumSettings.failoverMs}: 15000 ms. */
export const DEFAULT_FAILOVER_MS = 15_000;

/**
 * What a composite receipt says about co-signing (`cosigning`): who led, the threshold, who signed, who dissented
 * (with their hashes and codes) and who did not answer. `skipped` is set when this member did not lead because
 * the result was already on every target chain when its turn came (another member led).
 */
export interface ReceiptCosigning {
  leader: string;
  threshold: number;
  signedBy: string[];
  dissented: CosignOutcome["dissented"];
  unanswered: CosignOutcome["unanswered"];
  skipped?: "already-recorded";
}

/**
 * The members in the order they lead a result that every member sees (chain logs, oracle requests, schedules):
 * sorted by `keccak256(resultId ‖ utf8(memberId))` ascending (`resultId` as 32 bytes). Every member computes the
 * same order without talking to the others, and the first member differs from result to result.
 */
export function leaderOrder(resultId: Hex32, members: readonly ConsortiumMember[]): ConsortiumMember[] {
  const rank = (m: ConsortiumMember) => BigInt(keccak256(solidityPacked(["bytes32", "string"], [resultId, m.id])));
  return [...members]
    .map((m) => ({ m, r: rank(m) }))
    .sort((a, b) => (a.r < b.r ? -1 : a.r > b.r ? 1 : 0))
    .map((x) => x.m);
}

/**
 * How long this member waits before it leads a result, in ms: 0 for an HTTP event (the member that received it
 * leads), else k × `failoverMs` for the k-th member (from 0) of {@link leaderOrder}.
 * @param eventType - the run's event source type (`http`, `chain-log`, `oracle`, `schedule`).
 */
export function leadDelayMs(settings: ConsortiumSettings, resultId: Hex32, eventType: string | undefined): number {
  if (eventType === "http" || eventType === undefined) return 0;
  const k = leaderOrder(resultId, settings.members).findIndex((m) => m.id === settings.self);
  return Math.max(0, k) * (settings.failoverMs ?? DEFAULT_FAILOVER_MS);
}

/** What {@link cosignResult} needs about the run. */
export interface CosignRequest {
  consortiumId: Hex32;
  cryptlet: { name: string; version: string };
  result: CryptletResult;
  /** The run's evidence in clear (sent to peers over the authenticated channel only). */
  evidence: RunEvidence;
  /** The bytes to write (0x hex). */
  payload: `0x${string}`;
  /** For a sealed result: the JWE and its content-encryption key (held in memory only). */
  payloadJwe?: DisclosedJwe;
}

/** A gathered outcome whose signatures the leader checked itself, with the receipt's account of it. */
export interface CheckedCosign {
  signatures: ResultSignature[];
  cosigning: ReceiptCosigning;
}

/**
 * Co-signs one result through `consortium.cosigner`, then checks the outcome itself: each signature must recover
 * to the registered signer of a distinct member (EIP-712 over `result`, EIP-2 low-s); signatures that do not are
 * dropped and their member listed as dissenting with code `ERR_COSIGN_BAD_SIGNATURE`.
 * @returns the signatures to write (at least M, of distinct members) and the receipt's `cosigning`.
 * @throws {@link CosignThresholdNotMetError} (`ERR_COSIGN_THRESHOLD_NOT_MET`, retryable) with fewer than M.
 */
export async function cosignResult(consortium: PipelineConsortium, request: CosignRequest): Promise<CheckedCosign> {
  const { settings, cosigner } = consortium;
  const proposal: Omit<CosignProposal, "leaderSignature"> = {
    version: 1,
    leader: settings.self,
    consortiumId: request.consortiumId,
    cryptlet: request.cryptlet,
    result: structToBundleResult(request.result),
    evidence: request.evidence,
    payload: request.payload,
    ...(request.payloadJwe ? { contentKey: request.payloadJwe.contentKey } : {}),
  };
  const outcome = await cosigner.cosign({
    proposal,
    ...(request.payloadJwe ? { payloadJwe: request.payloadJwe } : {}),
  });
  const memberBySigner = new Map(settings.members.map((m) => [getAddress(m.signer), m.id]));
  const digest = cryptletResultDigest(request.consortiumId, request.result);
  const evaluation = evaluateSignatures(digest, outcome.signatures, [...memberBySigner.keys()], settings.threshold);
  const valid = new Set(evaluation.valid);
  const signatures: ResultSignature[] = [];
  for (const s of outcome.signatures) {
    const address = safeAddress(s.signer);
    if (address && valid.has(address)) {
      signatures.push(s);
      valid.delete(address); // one per member
    }
  }
  const signedBy = signatures.map((s) => memberBySigner.get(getAddress(s.signer))!);
  const dissented = [...outcome.dissented];
  for (const r of evaluation.rejected) {
    const member = memberBySigner.get(safeAddress(r.signer) ?? "") ?? r.signer;
    if (r.reason !== "duplicate" && !signedBy.includes(member)) {
      dissented.push({ member, code: "ERR_COSIGN_BAD_SIGNATURE", reason: `signature rejected: ${r.reason}` });
    }
  }
  const cosigning: ReceiptCosigning = {
    leader: settings.self,
    threshold: settings.threshold,
    signedBy,
    dissented,
    unanswered: outcome.unanswered,
  };
  if (signatures.length < settings.threshold) {
    throw new CosignThresholdNotMetError(request.result.resultId, cosigning, settings.threshold);
  }
  return { signatures, cosigning };
}

function safeAddress(value: string): string | undefined {
  try {
    return getAddress(value);
  } catch {
    return undefined;
  }
}

/** Options of {@link gatheringCosigner}. */
export interface GatheringCosignerOptions {
  /** This member's consortium settings. */
  settings: ConsortiumSettings;
  /** This member's result-signing key (its own Key Vault): the registered signer of `settings.self`. */
  signer: ResultSigner;
  /** This member's request-signing key (P-256) for peer authentication (runtime/consortium/peerAuth.ts). */
  requestKey: KeyProvider;
}

/**
 * The production {@link Cosigner}: the protocol's leader side ({@link gatherCosignatures}, runtime/consortium
 * leader.ts) over HTTPS to every other member, each answer within `settings.answerTimeoutMs`.
 * @throws ConsortiumConfigError (`ERR_CONSORTIUM_CONFIG_INVALID`) when `settings.self` is not a member.
 */
export function gatheringCosigner(options: GatheringCosignerOptions): Cosigner {
  const { settings } = options;
  const self = settings.members.find((m) => m.id === settings.self);
  if (!self) throw new ConsortiumConfigError(`this member ${settings.self} is not in the members list`);
  const peers = settings.members.filter((m) => m.id !== settings.self);
  return {
    cosign: ({ proposal }) =>
      gatherCosignatures(proposal, {
        self,
        signer: options.signer,
        requestKey: options.requestKey,
        peers,
        threshold: settings.threshold,
        ...(settings.answerTimeoutMs === undefined ? {} : { answerTimeoutMs: settings.answerTimeoutMs }),
      }),
  };
}
