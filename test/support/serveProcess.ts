/**
 * Test support: `cryptlet serve <roles>` as its own operating-system process (runtime/cli/commands/serve.ts),
 * configured only by its configuration file and environment, as a supervisor would start it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..", "..");
const CLI = path.join(ROOT, "runtime", "cli", "main.ts");

/** A running `cryptlet serve` process and its ready line. */
export interface Served {
  child: ChildProcess;
  ready: { ready: true; pid: number; roles: string[]; api?: { url: string }; health?: { port: number } };
  /** Its standard error so far (JSON log lines). */
  stderr: () => string;
}

/**
 * Spawns `cryptlet serve <role> --config <configFile>` and waits (90 s at most) for its ready line.
 * @param env - extra environment (e.g. `NODE_EXTRA_CA_CERTS` for the Key Vault emulator's CA).
 * @param args - further arguments, e.g. `["--stages", "execute"]`.
 * @throws when the process exits first (with its exit code and standard error) or is not ready in time.
 */
export function serve(
  role: string,
  configFile: string,
  env: Record<string, string> = {},
  args: string[] = [],
): Promise<Served> {
  const child = spawn(process.execPath, [CLI, "serve", role, "--config", configFile, ...args], {
    cwd: ROOT,
    env: { ...process.env, NODE_OPTIONS: "", LOG_LEVEL: "info", CRYPTLET_LOCK_MS: "3000", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  let stdout = "";
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  return new Promise<Served>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve ${role} not ready:\n${stderr}`)), 90_000);
    child.stdout!.on("data", (c: Buffer) => {
      stdout += c.toString();
      const line = stdout.split("\n").find((l) => l.includes('"ready":true'));
      if (line) {
        clearTimeout(timer);
        resolve({ child, ready: JSON.parse(line) as Served["ready"], stderr: () => stderr });
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(Object.assign(new Error(`serve ${role} exited with ${code}:\n${stderr}`), { exitCode: code, stderr }));
    });
  });
}

/** Stops a served process with `signal` (default SIGTERM); its exit code and how long it took, ms. */
export async function stopServed(
  served: Served,
  signal: NodeJS.Signals = "SIGTERM",
): Promise<{ code: number | null; ms: number }> {
  const started = Date.now();
  if (served.child.exitCode !== null || served.child.signalCode !== null) return { code: served.child.exitCode, ms: 0 };
  const exited = new Promise<number | null>((resolve) => served.child.once("exit", (code) => resolve(code)));
  served.child.kill(signal);
  return { code: await exited, ms: Date.now() - started };
}
