/**
 * `GET /v1/runs/{runId}` (status, composite receipt, error) and `GET /v1/results/{resultId}/bundle` (the proof
 * bundle). A run is `queued` (accepted by the API, not yet routed by a worker), `running`, `complete` (the
 * composite receipt exists) or `failed` (execute or attest failed for good).
 *
 * @module
 */
import { Router } from "express";

import type { ApiDeps } from "../deps.ts";
import { NotFoundError } from "../errors.ts";
import { invocationKey, type InvocationRecord } from "./invoke.ts";

/** The run and result routes. */
export function runRoutes(deps: ApiDeps): Router {
  const router = Router();
  router.get("/v1/runs/:runId", async (req, res) => {
    const runId = req.params.runId.toLowerCase();
    const [receipt, run] = await Promise.all([deps.results.getReceipt(runId), deps.results.getRun(runId)]);
    if (run || receipt) {
      const base = {
        runId,
        resultId: runId,
        ...(run
          ? {
              eventId: run.eventId,
              cryptlet: run.cryptlet,
              targets: run.targets,
              acceptedAt: new Date(run.acceptedAt).toISOString(),
            }
          : { cryptlet: receipt?.cryptlet }),
      };
      if (receipt) res.json({ ...base, status: "complete", receipt });
      else if (run?.error) res.json({ ...base, status: "failed", error: run.error });
      else res.json({ ...base, status: "running" });
      return;
    }
    const invocation = await deps.redis.get(invocationKey(deps.prefix, runId));
    if (invocation === null) throw new NotFoundError(`run ${runId}`);
    const record = JSON.parse(invocation) as InvocationRecord;
    res.json({ runId, resultId: runId, eventId: record.eventId, cryptlet: record.cryptlet, status: "queued" });
  });
  router.get("/v1/results/:resultId/bundle", async (req, res) => {
    const resultId = req.params.resultId.toLowerCase();
    const receipt = await deps.results.getReceipt(resultId);
    if (receipt) {
      res.set("Cryptlet-Bundle-State", "complete").json(receipt.bundle);
      return;
    }
    const attested = await deps.results.getAttested(resultId);
    if (!attested) throw new NotFoundError(`proof bundle of ${resultId}`);
    res.set("Cryptlet-Bundle-State", "attested").json(attested.bundle);
  });
  return router;
}
