/**
 * Operations: `GET /health` (liveness), `GET /ready` (Redis PING and `eth_blockNumber` on every chain, each
 * with a deadline, and every dependency circuit breaker of this process closed: runtime/resilience/readiness.ts),
 * `GET /metrics` (Prometheus), `GET /openapi.json`, the dead-letter queue (`GET /v1/dead-letters`,
 * `POST /v1/dead-letters/{entryId}/replay`).
 *
 * @module
 */
import { Router } from "express";

import { redactDeep } from "../../errors.ts";
import { dependencyChecks } from "../../resilience/readiness.ts";
import { QUEUES } from "../../queue/topology.ts";
import type { DeadLetter } from "../../queue/pipeline.ts";
import type { ApiDeps } from "../deps.ts";
import { NotReadyError } from "../errors.ts";
import type { ApiMetrics } from "../metrics.ts";
import { loadOpenApiDocument } from "../openapi.ts";

/** A dead-lettered job's payload without the Cryptlet's input (which may be confidential), by field name. */
function withoutInput(data: unknown): unknown {
  if (typeof data !== "object" || data === null || Array.isArray(data)) return data;
  const { input: _input, event: _event, ...rest } = data as Record<string, unknown>;
  return "input" in data ? { ...rest, input: "(withheld)" } : rest;
}

/** The operations routes. */
export function operationsRoutes(deps: ApiDeps, metrics: ApiMetrics): Router {
  const router = Router();
  const document = loadOpenApiDocument();
  router.get("/health", (_req, res) => {
    res.json({ status: "ok" });
  });
  router.get("/ready", async (_req, res) => {
    const checks = await dependencyChecks({ redis: deps.redis, ...(deps.chains ? { chains: deps.chains } : {}) });
    if (checks.some((c) => !c.ok)) throw new NotReadyError(checks);
    res.json({ status: "ready", checks });
  });
  router.get("/metrics", async (_req, res) => {
    const text = await metrics.registry.metrics();
    res.type(metrics.registry.contentType).send(text);
  });
  router.get("/openapi.json", (_req, res) => {
    res.json(document);
  });
  router.get("/v1/dead-letters", async (req, res) => {
    const limit = typeof req.query.limit === "number" ? req.query.limit : Number(req.query.limit ?? 100);
    const jobs = await deps.pipeline.queue<DeadLetter>(QUEUES.deadLetter).getJobs(["waiting", "delayed"], 0, limit - 1);
    const deadLetters = jobs
      .filter((j) => j.data)
      .map((j) => ({
        entryId: String(j.id),
        ...j.data,
        data: withoutInput(j.data.data),
        // Stored redacted since the redaction change; redacted again for entries stored before it.
        error: redactDeep(j.data.error),
        failedAt: new Date(j.data.failedAt).toISOString(),
      }))
      .sort((a, b) => b.failedAt.localeCompare(a.failedAt));
    res.json({ deadLetters });
  });
  router.post("/v1/dead-letters/:entryId/replay", async (req, res) => {
    const jobId = await deps.pipeline.replay(req.params.entryId);
    deps.logger?.info({ entryId: req.params.entryId, jobId }, "dead letter replayed");
    res.status(202).json({ jobId });
  });
  return router;
}
