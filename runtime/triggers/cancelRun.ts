/**
 * What to do with the run of a log that a reorg removed: cancel it when it has written nothing, else record the
 * reorg (a written result cannot be unwritten; an operator decides).
 *
 * @module
 */
import type { Hex32 } from "../attestation/eip712.ts";
import { cryptletIdOf } from "../attestation/ids.ts";
import type { Pipeline } from "../queue/pipeline.ts";
import { QUEUES, jobIds } from "../queue/topology.ts";
import { TriggerLogReorgedError } from "./errors.ts";
import type { ProcessedEvent, ReorgRecord } from "./TriggerStore.ts";

/** Where the removed log was. */
export interface RemovedLog {
  subscription: string;
  chain: string;
  blockNumber: number;
  blockHash: string;
  event: ProcessedEvent;
}

/**
 * The `events` job id `Pipeline.submit` gives an event (runtime/queue/pipeline.ts): `event-<cryptletId>-<eventId>`.
 */
function eventJobId(cryptlet: string, eventId: string): string {
  return `event-${cryptletIdOf(cryptlet)}-${eventId}`;
}

/** Removes a job unless a worker holds it; true when removed (or already gone). */
async function removeUnlessLocked(job: { remove(): Promise<void> } | undefined | null): Promise<boolean> {
  if (!job) return true;
  try {
    await job.remove();
    return true;
  } catch {
    return false; // BullMQ refuses to remove a locked (active) job or a parent with an active child
  }
}

/**
 * Cancels the run of a removed log if it has written nothing, else says why not. Decision, in order:
 * 1. not accepted yet (no run record of this event): its `events` job is removed → `cancelled/not-accepted`
 *    (`recorded/in-flight` while a worker is accepting it);
 * 2. a write outcome or a write job exists for any target → `recorded/written`;
 * 3. the run already failed before its writes → `cancelled/already-failed`;
 * 4. otherwise the run's flow (run, attest, execute jobs) is removed, or a micro-batched run withdrawn from its
 *    batch (runtime/queue/microBatch.ts) → `cancelled/not-written`, and for a chain log the run record gets
 *    `ERR_TRIGGER_LOG_REORGED` so that waiters learn it; if a worker holds one of the jobs, or a `batches` job
 *    has claimed the run → `recorded/in-flight`.
 *
 * An oracle request's run keeps no error: its `resultId` comes from the oracle's request id, which the same
 * request keeps when it is mined again on the new branch, so a new event for it must be able to run.
 */
export async function cancelRemovedRun(pipeline: Pipeline, removed: RemovedLog): Promise<Omit<ReorgRecord, "at">> {
  const { event } = removed;
  const base = {
    subscription: removed.subscription,
    chain: removed.chain,
    eventId: event.eventId,
    runId: event.runId,
    cryptlet: event.cryptlet,
    blockNumber: removed.blockNumber,
    blockHash: removed.blockHash,
  };
  const results = pipeline.ctx.results;
  const ours = (r: { eventId: string } | undefined) => r?.eventId.toLowerCase() === event.eventId.toLowerCase();
  let run = await results.getRun(event.runId);
  if (!ours(run)) {
    const job = await pipeline.queue(QUEUES.events).getJob(eventJobId(event.cryptlet, event.eventId));
    if (job && (await job.isCompleted())) {
      run = await results.getRun(event.runId); // accepted meanwhile
    } else {
      if (!(await removeUnlessLocked(job))) return { ...base, action: "recorded", reason: "in-flight" };
      await pipeline.releaseRun(event.runId, event.cryptlet); // out of the backlog bound
      return { ...base, action: "cancelled", reason: "not-accepted" };
    }
  }
  if (!run || !ours(run)) return { ...base, action: "cancelled", reason: "not-accepted" }; // a duplicate of another event's run
  if ((await results.outcomes(run.resultId)).length > 0 || (await results.getReceipt(run.resultId))) {
    return { ...base, action: "recorded", reason: "written" };
  }
  for (const target of run.targets) {
    if (await pipeline.queue(QUEUES.writes).getJob(jobIds.write(target.chain, target.mode, run.resultId))) {
      return { ...base, action: "recorded", reason: "written" };
    }
  }
  if (run.error) return { ...base, action: "cancelled", reason: "already-failed" };
  const runJob = await pipeline.queue(QUEUES.runs).getJob(jobIds.run(run.resultId));
  if (!(await removeUnlessLocked(runJob))) return { ...base, action: "recorded", reason: "in-flight" };
  // A micro-batched run has no run job: it is withdrawn from its batch unless a job has claimed it already.
  const withdrawn = runJob ? "absent" : await pipeline.withdrawBatchedRun(run.resultId as Hex32, run.cryptlet.codeHash);
  if (withdrawn === "claimed") return { ...base, action: "recorded", reason: "in-flight" };
  if (event.kind === "chain-log") {
    const error = new TriggerLogReorgedError({
      eventId: event.eventId,
      runId: event.runId,
      blockNumber: removed.blockNumber,
      blockHash: removed.blockHash,
    });
    await results.failRun(run.resultId as Hex32, { code: error.code, message: error.shortMessage, stage: "trigger" });
  }
  await pipeline.releaseRun(run.resultId, run.cryptlet.name); // out of the backlog bound
  return { ...base, action: "cancelled", reason: "not-written" };
}
