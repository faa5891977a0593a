/**
 * Test support: a pipeline worker as its own operating-system process (`runtime/queue/worker.ts`), configured
 * only through its configuration file and environment, as in production.
 */
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..", "..");

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

/** Stops a worker process: SIGTERM (graceful), resolving with its exit code. */
export async function stopWorker(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  child.kill(signal);
  return exited;
}
