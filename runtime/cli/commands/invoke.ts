/**
 * `cryptlet invoke <name> --input file.json`: submits an HTTP-trigger event for a deployed Cryptlet straight into
 * the pipeline's `events` queue (`Pipeline.submit`), as the API's invoke endpoint does, with the same event id
 * (`httpEventId(idempotencyKey)`): invoking twice with one `--idempotency-key` is one run. `--wait` waits for the
 * run's composite receipt (workers must be running).
 *
 * @module
 */
import { randomUUID } from "node:crypto";

import { httpEventId } from "../../attestation/ids.ts";
import { closePipelineContext, createPipelineContext } from "../../bootstrap.ts";
import type { RuntimeConfig } from "../../config.ts";
import { HttpTriggerDisabledError } from "../../api/errors.ts";
import { Pipeline, type RunOutcome } from "../../queue/pipeline.ts";
import type { CryptletEvent } from "../../queue/topology.ts";

/** Options of {@link invokeCryptlet}. */
export interface InvokeOptions {
  /** The Cryptlet's input (JSON). */
  input: unknown;
  /** Idempotency key (1..200 characters); default a new UUID. */
  idempotencyKey?: string;
  /** Pin a version; default the latest deployed. */
  version?: string;
  /** Wait for the run, up to this many milliseconds. */
  waitMs?: number;
}

/** What {@link invokeCryptlet} reports. */
export interface InvokeReport {
  runId: string;
  resultId: string;
  eventId: string;
  idempotencyKey: string;
  cryptlet: { name: string; version: string };
  /** With `waitMs`: the run's outcome. */
  outcome?: RunOutcome;
}

/**
 * Submits the event (and optionally waits).
 * @throws `ERR_PACKAGE_NOT_FOUND`; `ERR_HTTP_TRIGGER_DISABLED` when the manifest has no `http` trigger; the
 *   bootstrap's chain and key errors; `ERR_RUN_TIMEOUT` when waiting times out.
 */
export async function invokeCryptlet(
  name: string,
  config: RuntimeConfig,
  options: InvokeOptions,
): Promise<InvokeReport> {
  const idempotencyKey = options.idempotencyKey ?? randomUUID();
  const ctx = await createPipelineContext(config);
  const pipeline = new Pipeline(ctx);
  try {
    const pkg = await ctx.packages.get(name, options.version);
    if (!pkg.manifest.triggers.some((t) => t.type === "http")) {
      throw new HttpTriggerDisabledError(pkg.manifest.name, pkg.manifest.version);
    }
    const eventId = httpEventId(idempotencyKey);
    const event: CryptletEvent = {
      eventId,
      cryptlet: { name: pkg.manifest.name, version: pkg.manifest.version },
      source: { type: "http", idempotencyKey },
      input: options.input,
      time: Math.floor(Date.now() / 1000),
    };
    const { runId, resultId } = await pipeline.submit(event);
    const report: InvokeReport = {
      runId,
      resultId,
      eventId,
      idempotencyKey,
      cryptlet: { name: pkg.manifest.name, version: pkg.manifest.version },
    };
    if (options.waitMs !== undefined) report.outcome = await pipeline.waitForRun(runId, options.waitMs);
    return report;
  } finally {
    await pipeline.close();
    await closePipelineContext(ctx);
  }
}
