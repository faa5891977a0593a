/**
 * Stage `runs` (the flow's parent): runs after every write of the run has finished (confirmed, already
 * recorded, or failed into the dead-letter queue) and returns the composite receipt.
 *
 * @module
 */
import type { Job } from "bullmq";

import { CryptletError } from "../../errors.ts";
import type { PipelineContext } from "../context.ts";
import { ERR_RUN_UNKNOWN } from "../errors.ts";
import type { CompositeReceipt } from "../results.ts";
import type { RunJob } from "../topology.ts";

/** Builds, stores and returns the composite receipt of the run. */
export async function finalizeRun(job: Job<RunJob>, ctx: PipelineContext): Promise<CompositeReceipt> {
  const run = await ctx.results.getRun(job.data.resultId);
  if (!run) throw new CryptletError(ERR_RUN_UNKNOWN, `no run record for result ${job.data.resultId}`);
  const receipt = await ctx.results.buildReceipt(run.runId, run.resultId, run.cryptlet, run.targets);
  if (!receipt) {
    throw new CryptletError(ERR_RUN_UNKNOWN, `run ${run.runId} has no attested result`, { retryable: true });
  }
  ctx.logger?.info({ runId: run.runId, status: receipt.status, gasUsed: receipt.gasUsed }, "run complete");
  return receipt;
}
