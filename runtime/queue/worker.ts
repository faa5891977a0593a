/**
 * A worker process: `node runtime/queue/worker.ts <cryptlet.config.json>` (or `CRYPTLET_CONFIG`). Runs the
 * pipeline's stages (all, or those in `CRYPTLET_STAGES`, comma-separated) until SIGTERM or SIGINT, then shuts
 * down gracefully: stops taking jobs, finishes the ones it holds, closes connections. A SIGKILL loses nothing
 * either: held jobs are re-queued when their lock expires and resume from their Redis state.
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

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, "draining");
  await pipeline.close();
  await closePipelineContext(ctx);
  logger.info({}, "stopped");
  process.exit(0);
}
process.on("SIGTERM", () => void stop("SIGTERM"));
process.on("SIGINT", () => void stop("SIGINT"));
