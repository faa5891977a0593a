/**
 * Stage `batches`: one micro-batch of anchor-only runs of one package (runtime/queue/microBatch.ts). The job does
 * for each of its runs what their execute, attest, write and run jobs would do, with one job's cost for all:
 *
 * 1. claims its runs (the same ones on every attempt);
 * 2. runs each Cryptlet in the sandbox (a new isolate per run, as always; sealed outputs sealed here);
 * 3. attests them together: their attestation tokens are one batch token (one Key Vault signature, its Merkle root
 *    over their results), or a few when some reach the token batcher while it signs; each proof bundle is stored
 *    once;
 * 4. queues them in each target chain's anchor batcher, then waits without holding a worker slot (the job is
 *    delayed and checked again) until every run is anchored, recording each run's outcomes and composite receipt
 *    as soon as its own batches are confirmed.
 *
 * Failures are per run. A run whose Cryptlet fails for good (not retryable, or out of attempts) fails alone: its
 * run record is failed, a dead-letter entry names it, and it leaves the backlog; the others go on. A retryable
 * failure retries the job (its backoff), and the retry skips every run already attested or settled.
 *
 * @module
 */
import { DelayedError, type Job } from "bullmq";

import { bundleResultToStruct } from "../../attestation/bundle.ts";
import type { CryptletResult } from "../../attestation/eip712.ts";
import { classifyError, CryptletError, errorToJSON } from "../../errors.ts";
import { circuitOpenRetryAfterMs } from "../../resilience/dependency.ts";
import type { AnchorService, PipelineContext } from "../context.ts";
import { ERR_CHAIN_UNKNOWN, ERR_RUN_UNKNOWN } from "../errors.ts";
import type { BatchEntry, MicroBatchSettings, MicroBatchStore } from "../microBatch.ts";
import type { AttestedRecord, ChainOutcome, RunRecord } from "../results.ts";
import type { BatchJob, ExecuteOutput } from "../topology.ts";
import { attestResult } from "./attest.ts";
import { executeRun } from "./execute.ts";
import { anchorPollDelay } from "./write.ts";

/** What the batch stage needs from the pipeline that runs it. */
export interface BatchHost {
  store: MicroBatchStore;
  settings: Required<MicroBatchSettings>;
  /** Makes sure the job of a generation exists (adding it again is a no-op). */
  schedule(job: Pick<BatchJob, "codeHash" | "cryptletId">, generation: number, delayMs: number): Promise<void>;
  /**
   * Records a run of the batch that failed for good in `stage`: its run record is failed, a dead-letter entry names
   * it, and it leaves the backlog.
   */
  failRun(job: Job<BatchJob>, entry: BatchEntry, stage: "execute" | "attest", error: unknown): Promise<void>;
  /** Takes a run that has its composite receipt out of the backlog. */
  release(resultId: string, cryptletId: string): Promise<void>;
}

/** What a `batches` job returns. */
export interface BatchSummary {
  generation: number;
  /** Runs the job claimed. */
  runs: number;
  /** Runs that ended with a composite receipt. */
  completed: number;
  /** Runs that failed for good (each has its dead-letter entry). */
  failed: number;
}

/** A retryable failure of a sealed Cryptlet's run, its code kept and its text withheld. */
function withheld(error: unknown): CryptletError {
  return new CryptletError(errorToJSON(error).code, "(withheld: sealed Cryptlet)", { retryable: true });
}

/** One run of the batch as the job sees it now. */
interface Member {
  entry: BatchEntry;
  run: RunRecord;
  attested?: AttestedRecord;
  /** Settled (receipt stored, or the run failed): nothing left to do. */
  settled: boolean;
  /** The run failed for good (in this attempt or an earlier one). */
  failed: boolean;
}

/**
 * Processes one `batches` job. Returns when every run it claimed has settled.
 * @param token - the worker's lock token (to delay the job while its runs wait for their anchors).
 * @throws the first retryable failure of its runs (a dependency's open circuit first) before the job's last attempt:
 *   the job retries with its backoff, and its other runs go on meanwhile; DelayedError while runs wait for their
 *   anchors (the job was moved to the delayed set); CryptletError `ERR_RUN_UNKNOWN` (retryable) when a claimed run
 *   has no run record.
 */
export async function runBatch(
  job: Job<BatchJob>,
  ctx: PipelineContext,
  host: BatchHost,
  token?: string,
): Promise<BatchSummary> {
  const { codeHash, generation } = job.data;
  const claim = await host.store.claim(codeHash, generation, host.settings.maxResults);
  if (claim.remaining > 0) await host.schedule(job.data, generation + 1, 0);
  const members: Member[] = await Promise.all(
    claim.entries.map(async (entry): Promise<Member> => {
      const resultId = entry.execute.resultId;
      const [run, attested, receipt] = await Promise.all([
        ctx.results.getRun(resultId),
        ctx.results.getAttested(resultId),
        ctx.results.getReceipt(resultId),
      ]);
      if (!run) throw new CryptletError(ERR_RUN_UNKNOWN, `no run record for result ${resultId}`, { retryable: true });
      const failed = receipt === undefined && !!run.error;
      return { entry, run, ...(attested ? { attested } : {}), settled: receipt !== undefined || failed, failed };
    }),
  );
  // Runs settled before (by an earlier attempt, or a duplicate that joined again): forgotten, out of the backlog.
  for (const member of members.filter((m) => m.settled)) {
    await host.store.settle(codeHash, member.entry.execute.resultId);
    await host.release(member.run.resultId, member.run.cryptlet.cryptletId);
  }
  const final = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
  const retrying: unknown[] = [];
  /** A run's failure: for good now (it fails alone), or retried with the job. */
  const onFailure = async (member: Member, stage: "execute" | "attest", error: unknown) => {
    if (classifyError(error) === "retry" && !final) {
      // The job's error is logged and kept by BullMQ: a sealed Cryptlet's execute error keeps its code only (its
      // text may echo the input), as in the execute stage. A dependency's open circuit says nothing of the input.
      const sealed = stage === "execute" && member.entry.execute.sealedInput !== undefined;
      retrying.push(sealed && circuitOpenRetryAfterMs(error) === undefined ? withheld(error) : error);
      return;
    }
    await host.failRun(job, member.entry, stage, error);
    await host.store.settle(codeHash, member.entry.execute.resultId);
    member.settled = true;
    member.failed = true;
  };

  // Execute every run not yet attested, then attest them all together: the attestation token batcher
  // (runtime/attestation/tokenBatcher.ts) signs the results asked for in one turn as one token, and those asked for
  // while it signs as the next.
  const toRun = members.filter((m) => !m.settled && !m.attested);
  const executed = await Promise.allSettled(toRun.map((m) => executeRun(m.entry.execute, ctx)));
  const toAttest: { member: Member; output: ExecuteOutput }[] = [];
  for (const [i, outcome] of executed.entries()) {
    if (outcome.status === "fulfilled") toAttest.push({ member: toRun[i]!, output: outcome.value });
    else await onFailure(toRun[i]!, "execute", outcome.reason);
  }
  const attested = await Promise.allSettled(
    toAttest.map(({ member, output }) => attestResult(member.entry.attest, member.run, output, ctx)),
  );
  for (const [i, outcome] of attested.entries()) {
    if (outcome.status === "fulfilled") toAttest[i]!.member.attested = outcome.value;
    else await onFailure(toAttest[i]!.member, "attest", outcome.reason);
  }

  // Anchors: a run whose batches are confirmed on every target chain is recorded; one that is not is queued in the
  // batches of the chains that have not anchored it (idempotent per result), so that a run already anchored is not
  // queued again each time the job checks.
  const open = members.filter((m) => !m.settled && m.attested);
  const toQueue = new Map<AnchorService, CryptletResult[]>();
  let waiting: Member | undefined;
  await Promise.all(
    open.map(async (member) => {
      const resultId = member.entry.execute.resultId;
      const outcomes: ChainOutcome[] = [];
      for (const target of member.run.targets) {
        const anchors = ctx.chains.get(target.chain)?.anchors;
        if (!anchors) {
          const error = new CryptletError(ERR_CHAIN_UNKNOWN, `chain "${target.chain}" has no anchor batcher`);
          outcomes.push({
            chain: target.chain,
            mode: "anchor",
            status: "failed",
            error: { code: error.code, message: error.message },
            updatedAt: Date.now(),
          });
          continue;
        }
        const record = await anchors.anchorOf(resultId);
        if (!record) {
          const queued = toQueue.get(anchors) ?? [];
          queued.push(bundleResultToStruct(member.attested!.bundle.result));
          toQueue.set(anchors, queued);
          continue;
        }
        outcomes.push({
          chain: target.chain,
          mode: "anchor",
          status: "confirmed",
          anchor: record.anchor,
          batch: record.batch,
          updatedAt: Date.now(),
        });
      }
      if (outcomes.length < member.run.targets.length) {
        waiting ??= member;
        return;
      }
      for (const outcome of outcomes) await ctx.results.putOutcome(resultId, outcome);
      const { run } = member;
      await ctx.results.buildReceipt(run.runId, run.resultId, run.cryptlet, run.targets);
      await host.release(run.resultId, run.cryptlet.cryptletId);
      await host.store.settle(codeHash, resultId);
      member.settled = true;
    }),
  );
  for (const [anchors, results] of toQueue) await anchors.enqueueMany(results);

  if (retrying.length > 0) {
    // A dependency whose circuit is open first: the pipeline then delays the job without spending an attempt.
    throw retrying.find((e) => circuitOpenRetryAfterMs(e) !== undefined) ?? retrying[0];
  }
  if (waiting) {
    if (!token) throw new CryptletError(ERR_RUN_UNKNOWN, "a waiting batch needs a worker token", { retryable: true });
    const target = waiting.run.targets.find((t) => ctx.chains.get(t.chain)?.anchors)!;
    const chain = ctx.chains.get(target.chain)!;
    const delay = await anchorPollDelay(
      Date.now() - job.timestamp,
      chain.anchors!,
      waiting.entry.execute.resultId,
      chain.config.anchor.pollIntervalMs,
    );
    await job.moveToDelayed(Date.now() + delay, token);
    throw new DelayedError();
  }
  await host.store.release(codeHash, generation);
  const failed = members.filter((m) => m.failed).length;
  const summary = { generation, runs: members.length, completed: members.length - failed, failed };
  if (members.length > 0) ctx.logger?.info({ codeHash, ...summary }, "micro-batch complete");
  return summary;
}
