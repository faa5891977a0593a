/**
 * A worker process: `node runtime/queue/worker.ts <cryptlet.config.json>` (or `CRYPTLET_CONFIG`). Runs the
 * pipeline's stages (all, or those in `CRYPTLET_STAGES`, comma-separated) until SIGTERM or SIGINT, then shuts
 * down gracefully: stops taking jobs, finishes the ones it holds, closes connections, and exits 0. Shutdown ends
 * within its deadline (`resilience.shutdownTimeoutMs` of the configuration, default 20000 ms, or
 * `CRYPTLET_SHUTDOWN_MS`): jobs still running then are abandoned and the process exits 1; a second signal exits 1
 * at once. Abandoned jobs, like those of a SIGKILLed worker, are re-queued when their lock expires and resume from
 * their Redis state. With `CRYPTLET_HEALTH_PORT` (and `CRYPTLET_HEALTH_HOST`, default `127.0.0.1`) it serves
 * `/health`, `/ready` and `/metrics` (runtime/resilience/health.ts).
 *
 * Prints one JSON line `{"ready": true, "pid": ...}` on stdout when it is taking jobs. Compiles the contracts first
 * when their build output is missing or stale (`ensureContractsBuilt`).
 *
 * @module
 */
import pino from "pino";

import { closePipelineContext, createPipelineContext } from "../bootstrap.ts";
import { ensureContractsBuilt } from "../chains/contractsBuild.ts";
import { loadRuntimeConfig } from "../config.ts";
import { errorToJSON } from "../errors.ts";
import { startHealthServer } from "../resilience/health.ts";
import { Pipeline, type WorkerOptions } from "./pipeline.ts";

const file = process.argv[2] ?? process.env.CRYPTLET_CONFIG;
if (!file) {
  console.error("usage: node runtime/queue/worker.ts <cryptlet.config.json>   (or set CRYPTLET_CONFIG)");
  process.exit(2);
}
const logger = pino({ level: process.env.LOG_LEVEL ?? "info" }, pino.destination(2));
// The chain writer needs the contracts' ABIs: compile them first on a checkout that has none (or stale ones).
await ensureContractsBuilt({ onProgress: (detail) => logger.info({ step: "contracts" }, detail) });
const config = loadRuntimeConfig(file);
// ERR_REDIS_NOT_DURABLE / ERR_REDIS_DATA_LOST (and any other start failure): one log line, exit code 1.
const ctx = await createPipelineContext(config, logger).catch((error: unknown) => {
  logger.fatal({ err: errorToJSON(error) }, (error as Error).message);
  process.exit(1);
});
const pipeline = new Pipeline(ctx);
const stages = process.env.CRYPTLET_STAGES?.split(",").map((s) => s.trim()) as WorkerOptions["stages"];
pipeline.startWorkers({
  ...(stages ? { stages } : {}),
  ...(process.env.CRYPTLET_LOCK_MS ? { lockDurationMs: Number(process.env.CRYPTLET_LOCK_MS) } : {}),
  ...(process.env.CRYPTLET_STALLED_MS ? { stalledIntervalMs: Number(process.env.CRYPTLET_STALLED_MS) } : {}),
});
// Redis lost its data while running: the guard logged it; stop taking jobs and exit 1 (no dead letter per job).
ctx.durability?.onLost(() => {
  setTimeout(() => process.exit(1), 10_000).unref();
  void pipeline.close().finally(() => process.exit(1));
});
process.stdout.write(JSON.stringify({ ready: true, pid: process.pid }) + "\n");

// Readiness (503 while a dependency's circuit is open) and metrics for a worker's orchestrator probe.
if (process.env.CRYPTLET_HEALTH_PORT) {
  const health = await startHealthServer({
    port: Number(process.env.CRYPTLET_HEALTH_PORT),
    host: process.env.CRYPTLET_HEALTH_HOST ?? "127.0.0.1",
  });
  logger.info({ port: health.port }, "health endpoint listening");
}

// The shutdown deadline: jobs still held when it passes are abandoned; their locks lapse and another worker
// takes them over as stalled jobs (every stage is idempotent), so the process never hangs in "draining".
const shutdownTimeoutMs = process.env.CRYPTLET_SHUTDOWN_MS
  ? Number(process.env.CRYPTLET_SHUTDOWN_MS)
  : config.resilience.shutdownTimeoutMs;
let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) {
    logger.warn({ signal }, "second signal: exiting without draining");
    process.exit(1);
  }
  stopping = true;
  logger.info({ signal, shutdownTimeoutMs }, "draining");
  setTimeout(() => {
    logger.warn({ signal, shutdownTimeoutMs }, "shutdown deadline passed: abandoning the jobs still running");
    process.exit(1);
  }, shutdownTimeoutMs);
  await pipeline.close();
  await closePipelineContext(ctx);
  logger.info({}, "stopped");
  process.exit(0);
}
process.on("SIGTERM", () => void stop("SIGTERM"));
process.on("SIGINT", () => void stop("SIGINT"));
