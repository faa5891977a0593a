/**
 * A worker process: `node runtime/queue/worker.ts <cryptlet.config.json>` (or `CRYPTLET_CONFIG`), the same as
 * `cryptlet serve worker` (runtime/cli/commands/serve.ts: JSON logs, the ready line, graceful shutdown within
 * `resilience.shutdownTimeoutMs` or `CRYPTLET_SHUTDOWN_MS`, exit codes) with the stages of `CRYPTLET_STAGES`
 * (comma-separated; default all). `CRYPTLET_HEALTH_PORT` (and `CRYPTLET_HEALTH_HOST`) serve `/healthz`, `/readyz`
 * and `/metrics` (runtime/resilience/health.ts). Kept for scripts and supervisors that start workers this way.
 *
 * @module
 */
import { serveCommand } from "../cli/commands/serve.ts";
import { EXIT } from "../cli/io.ts";

const file = process.argv[2] ?? process.env.CRYPTLET_CONFIG;
if (!file) {
  console.error("usage: node runtime/queue/worker.ts <cryptlet.config.json>   (or set CRYPTLET_CONFIG)");
  process.exit(EXIT.usage);
}
const code = await serveCommand("worker", {
  config: file,
  ...(process.env.CRYPTLET_STAGES ? { stages: process.env.CRYPTLET_STAGES } : {}),
});
process.exitCode = code;
// Anything a library left open must not keep a stopped process alive past its stop.
setTimeout(() => process.exit(code), 2000).unref();
