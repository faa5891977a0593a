/**
 * The leader's side of co-signing (docs/consortium.md, "What the leader does"): {@link gatherCosignatures} signs the
 * result with this member's own key, sends the proposal to every peer at once (`POST /v1/consortium/proposals`,
 * authenticated with runtime/consortium/peerAuth.ts, each call with a deadline), checks every signature it gets
 * back against that member's configured signer, and stops as soon as M members signed, or when every peer answered
 * or timed out, or when M can no longer be reached.
 *
 * @module
 */
import { getAddress } from "ethers";

import { bundleResultToStruct } from "../attestation/bundle.ts";
import { cryptletResultDigest } from "../attestation/eip712.ts";
import { recoverDigestSigner, signCryptletResult, type ResultSigner } from "../attestation/signing.ts";
import type { KeyProvider } from "../keys/KeyProvider.ts";
import { ConsortiumConfigError, ERR_COSIGN_BAD_SIGNATURE } from "./errors.ts";
import { sendToPeer } from "./peerAuth.ts";
import type { ConsortiumMember, CosignOutcome, CosignProposal } from "./protocol.ts";

/** Where peers receive proposals. */
export const PROPOSALS_PATH = "/v1/consortium/proposals";

/** Default {@link GatherOptions.answerTimeoutMs}: 20000 ms. */
export const DEFAULT_ANSWER_TIMEOUT_MS = 20_000;

/** Sends one proposal to one peer and returns its raw answer (the default is {@link sendToPeer}). */
export type ProposalTransport = (
  member: ConsortiumMember,
  proposal: CosignProposal,
  options: { deadlineMs: number; signal: AbortSignal },
) => Promise<unknown>;

/** Options of {@link gatherCosignatures}. */
export interface GatherOptions {
  /** This member (the leader) as configured: its id and registered signer. */
  self: ConsortiumMember;
  /** This member's result-signing key (its own Key Vault); must be `self.signer`. */
  signer: ResultSigner;
  /** This member's request-signing key (P-256) for peer authentication. */
  requestKey: KeyProvider;
  /** The other members (not `self`). */
  peers: readonly ConsortiumMember[];
  /** Distinct members' signatures required (M), the leader's included. */
  threshold: number;
  /** How long to wait for each peer's answer, ms. Default 20000. */
  answerTimeoutMs?: number;
  /** Replaces the HTTP call (tests of the gathering logic only). */
  transport?: ProposalTransport;
}

type Answer = { member: ConsortiumMember } & (
  | { kind: "signed"; signature: CosignOutcome["signatures"][number] }
  | { kind: "dissent"; entry: CosignOutcome["dissented"][number] }
  | { kind: "unanswered"; reason: string }
);

const HASH = /^0x[0-9a-fA-F]{64}$/;
const CODE = /^ERR_[A-Z0-9_]{1,60}$/;
/** Longest dissent reason kept from a peer's answer, characters. */
const MAX_REASON_CHARS = 1000;

function describe(error: unknown): string {
  const e = error as { code?: unknown; shortMessage?: unknown; message?: unknown };
  const text = typeof e.shortMessage === "string" ? e.shortMessage : String(e.message ?? error);
  return typeof e.code === "string" ? `${e.code}: ${text}` : text;
}

/**
 * Gathers M-of-N co-signatures for one result.
 *
 * @param proposal - the proposal without `leaderSignature` (`leader` must be `options.self.id`).
 * @param options - this member, its keys, the peers, M and the answer deadline.
 * @returns the outcome: `signatures` (the leader's first, then peers' in answer order, each from a distinct member
 *   and recovering to its configured signer), `signedBy`, `dissented` (code, reason and the peer's hashes; a peer
 *   whose signature does not recover to its configured signer is listed here with `ERR_COSIGN_BAD_SIGNATURE`), and
 *   `unanswered` (timed out, unreachable, refused the request, or not waited for once M was reached). `ok` when
 *   `signatures.length >= threshold`.
 * @throws {@link ConsortiumConfigError} when `proposal.leader` is not `self`, the threshold is out of range, or this
 *   member's key is not its configured signer; this member's own key errors (`ERR_KEY_*`) pass through. A peer's
 *   failure never throws.
 *
 * @example
 * ```ts
 * import { gatherCosignatures } from "./runtime/consortium/leader.ts";
 * const outcome = await gatherCosignatures(proposal, { self, signer, requestKey, peers, threshold: 2 });
 * if (!outcome.ok) throw new CosignThresholdNotMetError(resultId, outcome, 2);
 * ```
 */
export async function gatherCosignatures(
  proposal: Omit<CosignProposal, "leaderSignature">,
  options: GatherOptions,
): Promise<CosignOutcome> {
  const { self, peers, threshold } = options;
  if (proposal.leader !== self.id) throw new ConsortiumConfigError(`the proposal's leader is not ${self.id}`);
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > peers.length + 1) {
    throw new ConsortiumConfigError(`threshold ${threshold} with ${peers.length + 1} members`);
  }
  if (peers.some((p) => p.id === self.id)) throw new ConsortiumConfigError("the peers include the leader");
  const result = bundleResultToStruct(proposal.result);
  const digest = cryptletResultDigest(proposal.consortiumId, result);
  const [leaderSignature] = await signCryptletResult(proposal.consortiumId, result, [options.signer]);
  if (leaderSignature === undefined || leaderSignature.signer !== getAddress(self.signer)) {
    throw new ConsortiumConfigError(
      `this member's key ${leaderSignature?.signer ?? "(none)"} is not its configured signer ${self.signer}`,
    );
  }
  const full: CosignProposal = { ...proposal, leaderSignature };
  const deadlineMs = options.answerTimeoutMs ?? DEFAULT_ANSWER_TIMEOUT_MS;
  const transport: ProposalTransport =
    options.transport ??
    ((member, body, o) =>
      sendToPeer(member, PROPOSALS_PATH, body, {
        deadlineMs: o.deadlineMs,
        signal: o.signal,
        from: { id: self.id, requestKey: options.requestKey },
      }));

  const outcome: CosignOutcome = {
    ok: false,
    signatures: [leaderSignature],
    signedBy: [self.id],
    dissented: [],
    unanswered: [],
  };
  const abort = new AbortController();
  const pending = new Set(peers.map((p) => p.id));

  const ask = async (member: ConsortiumMember): Promise<Answer> => {
    let raw: unknown;
    try {
      raw = await transport(member, full, { deadlineMs, signal: abort.signal });
    } catch (error) {
      return { member, kind: "unanswered", reason: describe(error) };
    }
    return judge(member, raw);
  };

  const judge = (member: ConsortiumMember, raw: unknown): Answer => {
    const bad = (reason: string): Answer => ({
      member,
      kind: "dissent",
      entry: { member: member.id, code: ERR_COSIGN_BAD_SIGNATURE.code, reason },
    });
    const answer = raw as Record<string, unknown> | null;
    if (typeof answer !== "object" || answer === null) return bad("the answer is not an object");
    if (answer.member !== member.id) return bad(`the answer names member ${String(answer.member)}`);
    if (answer.verdict === "dissent") {
      const entry: CosignOutcome["dissented"][number] = {
        member: member.id,
        // A peer's words go into receipts: a code of the right form only, a reason of bounded length.
        code: typeof answer.code === "string" && CODE.test(answer.code) ? answer.code : "(invalid)",
        reason: typeof answer.reason === "string" ? answer.reason.slice(0, MAX_REASON_CHARS) : "",
      };
      if (typeof answer.outputHash === "string" && HASH.test(answer.outputHash)) {
        entry.outputHash = answer.outputHash as `0x${string}`;
      }
      if (typeof answer.inputHash === "string" && HASH.test(answer.inputHash)) {
        entry.inputHash = answer.inputHash as `0x${string}`;
      }
      return { member, kind: "dissent", entry };
    }
    if (answer.verdict !== "agree") return bad("the answer has no verdict");
    const signature = answer.signature as { signer?: unknown; signature?: unknown } | null;
    if (typeof signature?.signature !== "string" || typeof signature.signer !== "string") {
      return bad("the answer carries no signature");
    }
    let recovered: string;
    try {
      recovered = recoverDigestSigner(digest, signature.signature);
    } catch (error) {
      return bad(`the signature does not recover: ${describe(error)}`);
    }
    const expected = getAddress(member.signer);
    if (recovered !== expected) return bad(`the signature recovers to ${recovered}, not ${expected}`);
    let claimed: string | undefined;
    try {
      claimed = getAddress(signature.signer);
    } catch {
      claimed = undefined;
    }
    if (claimed !== expected) return bad(`the signature claims signer ${signature.signer}`);
    return {
      member,
      kind: "signed",
      signature: { ...(signature as CosignOutcome["signatures"][number]), signer: expected },
    };
  };

  await new Promise<void>((resolve) => {
    if (peers.length === 0 || outcome.signatures.length >= threshold) {
      resolve();
      return;
    }
    for (const member of peers) {
      void ask(member).then((answer) => {
        if (!pending.delete(member.id)) return; // already settled (we stopped waiting)
        if (answer.kind === "signed") {
          outcome.signatures.push(answer.signature);
          outcome.signedBy.push(member.id);
        } else if (answer.kind === "dissent") {
          outcome.dissented.push(answer.entry);
        } else {
          outcome.unanswered.push({ member: member.id, reason: answer.reason });
        }
        const reachable = outcome.signatures.length + pending.size >= threshold;
        if (outcome.signatures.length >= threshold || pending.size === 0 || !reachable) resolve();
      });
    }
  });
  const stoppedBecause =
    outcome.signatures.length >= threshold
      ? "not waited for: the threshold was reached"
      : "not waited for: the threshold could no longer be reached";
  for (const id of pending) outcome.unanswered.push({ member: id, reason: stoppedBecause });
  pending.clear();
  abort.abort();
  outcome.ok = outcome.signatures.length >= threshold;
  return outcome;
}
