/**
 * Test support: a pipeline worker as its own operating-system process (`runtime/queue/worker.ts`), configured
 * only through its configuration file and environment, as in production.
 */
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..", "..");

/** How much of a worker's output (stdout and stderr, interleaved) is kept for {@link workerOutput}, in chars. */
const OUTPUT_KEPT_CHARS = 16_384;
const outputs = new WeakMap<ChildProcess, string>();

/** The end of what a worker started by {@link startWorker} printed (its JSON log lines at `LOG_LEVEL`). */
export function workerOutput(child: ChildProcess): string {
  return outputs.get(child) ?? "";
}

/**
 * Starts a worker process and waits for its ready line.
 * @param configFile - the runtime configuration file.
 * @param caFile - a PEM file of the Key Vault emulator's CA (given to Node as `NODE_EXTRA_CA_CERTS`).
 * @param env - extra environment, e.g. `CRYPTLET_STAGES`.
 */
export async function startWorker(
  configFile: string,
  caFile: string,
  env: Record<string, string> = {},
): Promise<ChildProcess> {
  const child = spawn(process.execPath, [path.join(ROOT, "runtime", "queue", "worker.ts"), configFile], {
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_OPTIONS: "",
      NODE_EXTRA_CA_CERTS: caFile,
      CRYPTLET_LOCK_MS: "3000",
      CRYPTLET_STALLED_MS: "1000",
      LOG_LEVEL: "warn",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  let output = "";
  const keep = (c: Buffer) => {
    output = (output + c.toString()).slice(-OUTPUT_KEPT_CHARS);
    outputs.set(child, output);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker not ready:\n${stderr}`)), 60_000);
    child.stdout!.on("data", (c: Buffer) => {
      if (c.toString().includes('"ready":true')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited with ${code}:\n${stderr}`));
    });
  });
  return child;
}

/**
 * How long a worker may take to exit after the signal before it is SIGKILLed, ms: above the longest drain a test
 * configures (`CRYPTLET_SHUTDOWN_MS` 45 s in the cluster fail-over test), past which the worker exits 1 itself.
 */
const STOP_TIMEOUT_MS = 60_000;

/**
 * Stops a worker process: `signal` (SIGTERM: graceful), resolving with its exit code (null when a signal ended it).
 * A worker that has not exited {@link STOP_TIMEOUT_MS} after the signal is SIGKILLed, and the promise rejects
 * naming it: a shutdown that hangs is a failure of its own, not a test that runs into Jest's timeout.
 */
export async function stopWorker(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  // "close", not "exit": its output is read to the end first (workerOutput).
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<"hung">((resolve) => {
    timer = setTimeout(() => resolve("hung"), STOP_TIMEOUT_MS);
  });
  const outcome = await Promise.race([exited, hung]);
  clearTimeout(timer);
  if (outcome !== "hung") return outcome;
  child.kill("SIGKILL");
  await exited;
  throw new Error(`worker ${child.pid} did not exit within ${STOP_TIMEOUT_MS} ms of ${signal}; SIGKILLed`);
}
