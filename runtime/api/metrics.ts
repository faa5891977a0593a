/**
 * Prometheus metrics of the API process (prom-client, text exposition format 0.0.4), on a registry of its
 * own (two apps in one process do not collide):
 *
 * | metric | type | labels | meaning |
 * | --- | --- | --- | --- |
 * | `cryptlet_api_http_requests_total` | counter | method, route, status | requests answered |
 * | `cryptlet_api_http_request_duration_seconds` | histogram | method, route, status | time to the response's end, seconds |
 * | `cryptlet_api_invocations_total` | counter | cryptlet, outcome (`accepted`, `replayed`) | HTTP trigger calls |
 * | `cryptlet_queue_jobs` | gauge | queue, state | BullMQ job counts per queue and state, read at scrape time |
 * | `cryptlet_runs` | gauge | status (`running`, `complete`, `failed`) | run parents by state (the `runs` queue; runs carried by micro-batches have none: `cryptlet_queue_jobs{queue="batches"}` counts their batches) |
 * | `cryptlet_dead_letters` | gauge | | entries waiting in the dead-letter queue |
 * | `cryptlet_dependency_circuit_state` | gauge | dependency | circuit breaker of a dependency of this process: 0 closed, 1 open, 2 half-open (runtime/resilience/dependency.ts) |
 *
 * plus prom-client's default process metrics (`process_*`, `nodejs_*`). `route` is the route template
 * (`/v1/runs/:runId`), never the raw path, so label cardinality stays bounded.
 *
 * @module
 */
import type { Queue } from "bullmq";
import type { Request, RequestHandler } from "express";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

import { registerDependencyMetrics } from "../resilience/dependency.ts";

/** Job states counted per queue. */
export const QUEUE_STATES = [
  "waiting",
  "active",
  "delayed",
  "prioritized",
  "waiting-children",
  "completed",
  "failed",
] as const;

/** The API's metrics. */
export interface ApiMetrics {
  registry: Registry;
  /** Counts and times every request (mount first). */
  middleware: RequestHandler;
  invocations: Counter<"cryptlet" | "outcome">;
}

/** The route template of a request, or `unmatched`. */
function routeOf(req: Request): string {
  const openapi = (req as { openapi?: { openApiRoute?: string } }).openapi;
  if (req.route?.path !== undefined) return `${req.baseUrl}${String(req.route.path)}`;
  if (openapi?.openApiRoute) return openapi.openApiRoute;
  return "unmatched";
}

/**
 * Creates the registry and metrics.
 * @param queues - the BullMQ queues to report depths of, by name (e.g. the pipeline's `events`, `execute`,
 *   `attest`, `writes`, `runs`, `dead-letter`).
 */
export function createApiMetrics(queues: ReadonlyMap<string, Pick<Queue, "getJobCounts">> = new Map()): ApiMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  registerDependencyMetrics(registry);
  const requests = new Counter({
    name: "cryptlet_api_http_requests_total",
    help: "HTTP requests answered by the API.",
    labelNames: ["method", "route", "status"] as const,
    registers: [registry],
  });
  const durations = new Histogram({
    name: "cryptlet_api_http_request_duration_seconds",
    help: "Time from request to response end, in seconds.",
    labelNames: ["method", "route", "status"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const invocations = new Counter({
    name: "cryptlet_api_invocations_total",
    help: "HTTP trigger invocations by Cryptlet and outcome (accepted: new run; replayed: same Idempotency-Key).",
    labelNames: ["cryptlet", "outcome"] as const,
    registers: [registry],
  });
  new Gauge({
    name: "cryptlet_queue_jobs",
    help: "BullMQ jobs per queue and state, at scrape time.",
    labelNames: ["queue", "state"] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const [name, queue] of queues) {
        const counts = await queue.getJobCounts(...QUEUE_STATES);
        for (const state of QUEUE_STATES) this.set({ queue: name, state }, counts[state] ?? 0);
      }
    },
  });
  new Gauge({
    name: "cryptlet_runs",
    help: 'Runs by status (from the runs queue): running (waiting for its stages), complete, failed. Runs carried by micro-batches have no run job: cryptlet_queue_jobs{queue="batches"} counts their batches.',
    labelNames: ["status"] as const,
    registers: [registry],
    async collect() {
      const runs = queues.get("runs");
      if (!runs) return;
      const c = await runs.getJobCounts(...QUEUE_STATES);
      const running =
        (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0) + (c["waiting-children"] ?? 0);
      this.set({ status: "running" }, running);
      this.set({ status: "complete" }, c.completed ?? 0);
      this.set({ status: "failed" }, c.failed ?? 0);
    },
  });
  new Gauge({
    name: "cryptlet_dead_letters",
    help: "Entries waiting in the dead-letter queue.",
    registers: [registry],
    async collect() {
      const dlq = queues.get("dead-letter");
      if (!dlq) return;
      const c = await dlq.getJobCounts("waiting", "delayed");
      this.set((c.waiting ?? 0) + (c.delayed ?? 0));
    },
  });
  const middleware: RequestHandler = (req, res, next) => {
    const end = durations.startTimer();
    res.on("finish", () => {
      const labels = { method: req.method, route: routeOf(req), status: String(res.statusCode) };
      requests.inc(labels);
      end(labels);
    });
    next();
  };
  return { registry, middleware, invocations };
}
