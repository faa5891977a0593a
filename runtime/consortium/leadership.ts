/**
 * Which member leads a result, as the pipeline applies it (docs/consortium.md "Who leads"). An HTTP event is led
 * by the member that received it. An event every member sees (a chain log, an oracle request, a schedule slot) is
 * led by the members in {@link leaderOrder}: the k-th waits k × `failoverMs` (the co-signing job is delayed in
 * BullMQ, holding no worker slot), then, before leading, asks every target chain whether the result is already
 * recorded and, if so, does not lead. Two members leading at once is still safe: each chain's writer checks
 * `isRecorded` before sending, and the contracts accept a `resultId` once, so the later write ends as
 * `already-recorded`.
 *
 * @module
 */
import { DelayedError, type Job } from "bullmq";

import type { CryptletResult } from "../attestation/eip712.ts";
import { signCryptletResult } from "../attestation/signing.ts";
import { targetOf, writeRequestOf, type WriteTarget } from "../chains/targets.ts";
import { CryptletError } from "../errors.ts";
import type { PipelineContext } from "../queue/context.ts";
import { ERR_RUN_UNKNOWN } from "../queue/errors.ts";
import type { RunRecord } from "../queue/results.ts";
import { cosignResult, leadDelayMs, type CheckedCosign, type CosignRequest } from "./cosigner.ts";
import type { ConsortiumSettings } from "./protocol.ts";

/** The field a co-signing job keeps in its data: when this member's turn to lead comes (Unix ms). */
export interface LeadTurn {
  leadAfter?: number;
}

/**
 * Delays `job` until this member's turn to lead the result (see the module documentation); returns at once when
 * the turn has come (or for an HTTP event).
 * @param token - the worker's lock token of `job` (BullMQ).
 * @throws DelayedError (BullMQ control flow) after moving the job to the delayed set until its turn.
 */
export async function awaitTurnToLead<T extends LeadTurn & { resultId: `0x${string}` }>(
  job: Job<T>,
  token: string | undefined,
  settings: ConsortiumSettings,
  eventType: string | undefined,
): Promise<{ delayedMs: number }> {
  const delay = leadDelayMs(settings, job.data.resultId, eventType);
  if (delay === 0) return { delayedMs: 0 };
  const leadAfter = job.data.leadAfter ?? Date.now() + delay;
  if (job.data.leadAfter === undefined) await job.updateData({ ...job.data, leadAfter });
  if (Date.now() >= leadAfter) return { delayedMs: delay };
  if (!token) throw new CryptletError(ERR_RUN_UNKNOWN, "a delayed leader needs a worker token", { retryable: true });
  await job.moveToDelayed(leadAfter, token);
  throw new DelayedError();
}

/**
 * Whether `result` is already recorded on every write target of the run (`isRecorded` of each target contract,
 * at the latest block). `anchor` targets do not count (a batch is not per result).
 */
export async function recordedEverywhere(
  ctx: PipelineContext,
  run: RunRecord,
  result: CryptletResult,
  payload: string,
  signature: string,
): Promise<boolean> {
  const targets = run.targets.filter((t) => t.mode !== "anchor");
  if (targets.length === 0) return false;
  for (const t of targets) {
    const chain = ctx.chains.get(t.chain);
    if (!chain) return false;
    const target: WriteTarget = t.address
      ? { chain: t.chain, mode: t.mode, address: t.address }
      : targetOf(chain.config, t.mode, run.cryptlet.name);
    const request = writeRequestOf(target, { result, payload, signatures: [signature] }, { reader: chain.writer.rpc });
    if (!(await request.isRecorded())) return false;
  }
  return true;
}

/**
 * Leads one result once this member's turn has come: unless the result is already recorded on every target chain
 * (events every member sees only), co-signs it through `ctx.consortium` ({@link cosignResult}).
 * @returns the signatures to write and the receipt's `cosigning`; when already recorded, this member's own
 *   signature only and `cosigning.skipped = "already-recorded"` (the writes then end as `already-recorded`).
 * @throws CosignThresholdNotMetError (`ERR_COSIGN_THRESHOLD_NOT_MET`, retryable) with fewer than M signatures.
 */
export async function leadResult(
  ctx: PipelineContext,
  run: RunRecord,
  request: Omit<CosignRequest, "consortiumId" | "cryptlet">,
): Promise<CheckedCosign> {
  const consortium = ctx.consortium;
  if (!consortium) throw new CryptletError(ERR_RUN_UNKNOWN, "leadResult needs consortium mode");
  if (run.event?.type !== "http") {
    const own = ctx.resultSigners[0];
    if (!own) throw new CryptletError(ERR_RUN_UNKNOWN, "consortium mode needs this member's result signer");
    const [signature] = await signCryptletResult(ctx.consortiumId, request.result, [own]);
    if (await recordedEverywhere(ctx, run, request.result, request.payload, signature!.signature)) {
      return {
        signatures: [signature!],
        cosigning: {
          leader: consortium.settings.self,
          threshold: consortium.settings.threshold,
          signedBy: [consortium.settings.self],
          dissented: [],
          unanswered: [],
          skipped: "already-recorded",
        },
      };
    }
  }
  return cosignResult(consortium, {
    ...request,
    consortiumId: ctx.consortiumId,
    cryptlet: { name: run.cryptlet.name, version: run.cryptlet.version },
  });
}
