/**
 * `cryptlet status <runId>`: a run's state from the result store in Redis: the composite receipt when complete,
 * else the run record (accepted, or failed with its error code).
 *
 * @module
 */

import type { RuntimeConfig } from "../../config.ts";
import { ResultStore, type CompositeReceipt, type RunRecord } from "../../queue/results.ts";
import { openRedis, redisEndpointOf } from "../../queue/redisClient.ts";
import { RunNotFoundError } from "../errors.ts";

/** A run's status. */
export type RunStatusReport =
  | { runId: string; status: "complete"; receipt: CompositeReceipt }
  | { runId: string; status: "failed"; run: RunRecord }
  | { runId: string; status: "pending"; run: RunRecord };

/**
 * Looks a run up.
 * @throws {@link RunNotFoundError} `ERR_RUN_NOT_FOUND`.
 */
export async function runStatus(runId: string, config: RuntimeConfig): Promise<RunStatusReport> {
  const redis = openRedis(redisEndpointOf(config), { maxRetriesPerRequest: 2, lazyConnect: true });
  try {
    await redis.connect();
    const results = new ResultStore(redis, config.prefix);
    const receipt = await results.getReceipt(runId);
    if (receipt) return { runId, status: "complete", receipt };
    const run = await results.getRun(runId);
    if (!run) throw new RunNotFoundError(runId);
    return run.error ? { runId, status: "failed", run } : { runId, status: "pending", run };
  } finally {
    redis.disconnect();
  }
}
