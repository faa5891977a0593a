/**
 * Test support for the CLI suites: runs `runtime/cli/main.ts` as a child process with the project's Node 24.
 */
import { execFile } from "node:child_process";
import path from "node:path";

export const ROOT = path.resolve(import.meta.dirname, "..", "..");
const NODE = path.join(ROOT, "node_modules", ".bin", "node");
const MAIN = path.join(ROOT, "runtime", "cli", "main.ts");

/** A finished command: exit code and output. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `cryptlet ...args` from the repository root. */
export function cli(...args: string[]): Promise<CliRun> {
  return cliWithin(0, ...args);
}

/** Runs `cryptlet ...args`, killed (SIGTERM; the run then reports code 1) after `timeoutMs` (0: never). */
export function cliWithin(timeoutMs: number, ...args: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      NODE,
      [MAIN, ...args],
      { cwd: ROOT, env: { ...process.env, NODE_OPTIONS: "" }, timeout: timeoutMs },
      (error, stdout, stderr) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

/** The `--json` document a command printed. */
export const json = (run: CliRun): any => JSON.parse(run.stdout); // eslint-disable-line @typescript-eslint/no-explicit-any
