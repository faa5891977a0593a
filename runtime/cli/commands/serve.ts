/**
 * `cryptlet serve <api|worker|triggers|all>`: one long-running process of the runtime (runtime/serve/roles.ts),
 * as a supervisor (systemd, Docker, Kubernetes) expects it:
 *
 * - reads the one configuration file (`--config`, `CRYPTLET_CONFIG`, `./cryptlet.config.json`); secrets and
 *   addresses may come from the environment (`REDIS_URL`, `CRYPTLET_API_PORT`, `CRYPTLET_API_HOST`,
 *   `CRYPTLET_HEALTH_PORT`, `CRYPTLET_HEALTH_HOST`, `IDENTITY_ENDPOINT`, `AZURE_*` for the Key Vault credential);
 * - logs JSON lines (pino) on standard error, level `LOG_LEVEL` (default `info`);
 * - exports OpenTelemetry spans by OTLP when `telemetry.otlpEndpoint` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
 *   set (runtime/telemetry/tracing.ts), flushing them at shutdown;
 * - prints one JSON line on standard output once every role is up: `{"ready": true, "pid", "roles", "api"?: {url},
 *   "health"?: {port}}`;
 * - on SIGTERM or SIGINT stops taking work, finishes what it holds and exits 0, within
 *   `resilience.shutdownTimeoutMs` (or `CRYPTLET_SHUTDOWN_MS`); past the deadline, or on a second signal, it exits 1
 *   at once (jobs still held are taken over by other workers when their locks lapse);
 * - exit codes: 0 stopped on a signal; 1 could not start (an invalid configuration, or its reason logged, e.g.
 *   `ERR_REDIS_NOT_DURABLE`), the shutdown deadline passed, or Redis lost its data while running
 *   (`ERR_REDIS_DATA_LOST`); 2 usage (an unknown role, no configuration file).
 *
 * @module
 */
import pino from "pino";

import { ensureContractsBuilt } from "../../chains/contractsBuild.ts";
import { errorToJSON, redactSecrets } from "../../errors.ts";
import type { WorkerOptions } from "../../queue/pipeline.ts";
import { QUEUES } from "../../queue/topology.ts";
import { SERVE_ROLES, startRoles, type ServeRole } from "../../serve/roles.ts";
import { startTracing } from "../../telemetry/tracing.ts";
import { configFileFor, configFor } from "../config.ts";
import { CliUsageError } from "../errors.ts";
import { EXIT } from "../io.ts";

/**
 * The roles named by the command's argument: `all`, or a comma-separated list of `api`, `worker`, `triggers`.
 * @throws {@link CliUsageError} `ERR_CLI_USAGE` naming the unknown role.
 */
export function parseRoles(arg: string): ServeRole[] {
  if (arg === "all") return [...SERVE_ROLES];
  const names = arg.split(",").map((r) => r.trim());
  const unknown = names.filter((r) => !(SERVE_ROLES as readonly string[]).includes(r));
  if (unknown.length > 0 || names.length === 0) {
    throw new CliUsageError(
      `unknown role ${unknown.map((r) => JSON.stringify(r)).join(", ") || '""'}: give all, or one or more of ${SERVE_ROLES.join(", ")} (comma-separated)`,
      "role",
    );
  }
  return SERVE_ROLES.filter((r) => names.includes(r));
}

/** The stages a worker can run (`--stages`, `CRYPTLET_STAGES`): every queue of the pipeline but `dead-letter`. */
export const WORKER_STAGES = Object.values(QUEUES).filter(
  (q): q is NonNullable<WorkerOptions["stages"]>[number] => q !== QUEUES.deadLetter,
);

/**
 * Parses `--stages` (comma-separated).
 * @throws {@link CliUsageError} naming every unknown stage, and the stages there are.
 */
export function parseStages(arg: string): NonNullable<WorkerOptions["stages"]> {
  const names = arg.split(",").map((s) => s.trim());
  const unknown = names.filter((s) => !(WORKER_STAGES as readonly string[]).includes(s));
  if (unknown.length > 0) {
    throw new CliUsageError(
      `unknown stage ${unknown.map((s) => JSON.stringify(s)).join(", ")}: give one or more of ${WORKER_STAGES.join(", ")} (comma-separated)`,
      "stages",
    );
  }
  return WORKER_STAGES.filter((s) => names.includes(s));
}

/** Options of {@link serveCommand}. */
export interface ServeCommandOptions {
  /** `--config`. */
  config?: string;
  /** `--stages`: the worker's stages (default all). */
  stages?: string;
}

/**
 * Runs the roles until SIGTERM or SIGINT (this is the process: it installs signal handlers and may call
 * `process.exit(1)` when the shutdown deadline passes).
 * @returns the exit code once stopped.
 * @throws {@link CliUsageError} for an unknown role or stage, or no configuration; `ERR_RUNTIME_CONFIG_INVALID`.
 */
export async function serveCommand(roleArg: string, options: ServeCommandOptions): Promise<number> {
  const roles = parseRoles(roleArg);
  const stages = options.stages === undefined ? undefined : parseStages(options.stages);
  const configFile = configFileFor(options.config);
  const config = configFor(options.config);
  const logger = pino(
    { level: process.env.LOG_LEVEL ?? "info", base: { pid: process.pid, roles } },
    pino.destination(2),
  );
  // The chain writer needs the contracts' ABIs: compile them first on a checkout that has none (or stale ones).
  await ensureContractsBuilt({ onProgress: (detail) => logger.info({ step: "contracts" }, detail) });
  const worker: WorkerOptions = {
    ...(stages ? { stages } : {}),
    ...(process.env.CRYPTLET_LOCK_MS ? { lockDurationMs: Number(process.env.CRYPTLET_LOCK_MS) } : {}),
    ...(process.env.CRYPTLET_STALLED_MS ? { stalledIntervalMs: Number(process.env.CRYPTLET_STALLED_MS) } : {}),
  };
  // Tracing first: the pipeline's queues and workers take BullMQ's telemetry when they are created.
  const tracing = startTracing(config.telemetry, `cryptlet-${roles.join("-")}`);
  if (tracing) logger.info({ endpoint: redactSecrets(tracing.endpoint) }, "tracing: spans exported by OTLP");
  let running;
  try {
    running = await startRoles({ config, configFile, roles, logger, worker });
  } catch (error) {
    logger.fatal({ err: errorToJSON(error) }, (error as Error).message);
    logger.flush();
    await tracing?.shutdown();
    return EXIT.failure;
  }
  const shutdownTimeoutMs = process.env.CRYPTLET_SHUTDOWN_MS
    ? Number(process.env.CRYPTLET_SHUTDOWN_MS)
    : config.resilience.shutdownTimeoutMs;

  const exitCode = await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string, code: number): void => {
      if (stopping) {
        logger.warn({ signal }, "second signal: exiting without draining");
        logger.flush();
        process.exit(EXIT.failure);
      }
      stopping = true;
      logger.info({ signal, shutdownTimeoutMs }, "draining");
      setTimeout(() => {
        logger.warn({ signal, shutdownTimeoutMs }, "shutdown deadline passed: abandoning the work still running");
        logger.flush();
        process.exit(EXIT.failure);
      }, shutdownTimeoutMs).unref();
      running.stop().then(
        async () => {
          await tracing?.shutdown(); // the spans still buffered
          logger.info({}, "stopped");
          resolve(code);
        },
        (error: unknown) => {
          logger.error({ err: errorToJSON(error) }, "stopping failed");
          resolve(EXIT.failure);
        },
      );
    };
    process.on("SIGTERM", () => stop("SIGTERM", EXIT.ok));
    process.on("SIGINT", () => stop("SIGINT", EXIT.ok));
    // Redis lost its data while running: the guard logged it; stop taking work and exit 1 (no dead letter per job).
    running.ctx.durability?.onLost(() => stop("ERR_REDIS_DATA_LOST", EXIT.failure));
    process.stdout.write(
      JSON.stringify({
        ready: true,
        pid: process.pid,
        roles,
        ...(running.api ? { api: { url: running.api.url } } : {}),
        ...(running.health ? { health: { port: running.health.port } } : {}),
      }) + "\n",
    );
  });
  logger.flush();
  return exitCode;
}
