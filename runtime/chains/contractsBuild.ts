/**
 * Contracts built on demand. The runtime's ABIs and bytecode come from the Hardhat build (`artifacts/`), which a
 * fresh clone does not have: entry points that deploy or call the contracts (`npm start`, the worker) call
 * {@link ensureContractsBuilt} first, which runs `hardhat build` when an artifact is missing or older than a
 * Solidity source. No module reads artifacts when it is imported (`artifactOf` loads lazily), so `--help` and
 * the commands that need no contract work before any build.
 *
 * @module
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";

import { CryptletError } from "../errors.ts";
import { ARTIFACT_FILES, ARTIFACTS_DIR } from "./contracts.ts";
import { ERR_CONTRACTS_BUILD_FAILED } from "./errors.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..");

/** How long a build may take before it is stopped, in milliseconds (a cold solc WASM build takes ~10 s). */
export const CONTRACTS_BUILD_TIMEOUT_MS = 300_000;

/** The contracts could not be built (`hardhat build` failed, timed out, or is not installed). */
export class ContractsBuildFailedError extends CryptletError {
  constructor(reason: string, output: string) {
    super(ERR_CONTRACTS_BUILD_FAILED, `building the contracts failed: ${reason}`, {
      details: { command: "npx hardhat build", output: output.slice(-2_000) },
    });
  }
}

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(full));
    else if (entry.name.endsWith(".sol")) newest = Math.max(newest, statSync(full).mtimeMs);
  }
  return newest;
}

/**
 * Written after every successful build. Hardhat rewrites only the artifacts whose sources changed in content, so
 * the time of the last build is kept here rather than read off the artifacts.
 */
const BUILD_STAMP = ".cryptlet-built";

/**
 * Why the contracts need a build: `"missing"` (an artifact the runtime uses is absent), `"stale"` (a `.sol` file
 * under `contracts/` changed since the last build), or `undefined` when they are up to date.
 */
export function contractsBuildNeeded(root = ROOT): "missing" | "stale" | undefined {
  const files = Object.values(ARTIFACT_FILES).map((f) => path.join(root, ARTIFACTS_DIR, f));
  if (!files.every((f) => existsSync(f))) return "missing";
  const stamp = path.join(root, ARTIFACTS_DIR, BUILD_STAMP);
  const builtAt = existsSync(stamp) ? statSync(stamp).mtimeMs : 0;
  return newestSource(path.join(root, "contracts")) > builtAt ? "stale" : undefined;
}

/**
 * Builds the contracts (`hardhat build`, solc from the npm `solc` package, offline) when
 * {@link contractsBuildNeeded} says so; does nothing otherwise.
 * @param options.onProgress - told once before a build starts, e.g. "compiling (artifacts missing)".
 * @returns what was done: `"up-to-date"` or `"built"`.
 * @throws {@link ContractsBuildFailedError} `ERR_CONTRACTS_BUILD_FAILED` when the build fails or takes longer
 *   than `timeoutMs` (default {@link CONTRACTS_BUILD_TIMEOUT_MS}).
 */
export async function ensureContractsBuilt(
  options: { onProgress?: (detail: string) => void; timeoutMs?: number; root?: string } = {},
): Promise<"up-to-date" | "built"> {
  const root = options.root ?? ROOT;
  const need = contractsBuildNeeded(root);
  if (need === undefined) return "up-to-date";
  options.onProgress?.(`compiling contracts/ with solc (artifacts ${need})`);
  const hardhat = path.join(root, "node_modules", "hardhat", "dist", "src", "cli.js");
  if (!existsSync(hardhat)) {
    throw new ContractsBuildFailedError("Hardhat is not installed here (run `npm install`)", "");
  }
  const output: string[] = [];
  const code = await new Promise<number | string>((resolve) => {
    const child = spawn(process.execPath, [hardhat, "build", "--quiet"], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NODE_OPTIONS: "" },
    });
    child.stdout.on("data", (chunk: Buffer) => output.push(chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => output.push(chunk.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve(`timed out after ${options.timeoutMs ?? CONTRACTS_BUILD_TIMEOUT_MS} ms`);
    }, options.timeoutMs ?? CONTRACTS_BUILD_TIMEOUT_MS);
    child.once("error", (error) => {
      clearTimeout(timer);
      resolve(error.message);
    });
    child.once("exit", (exitCode, signal) => {
      clearTimeout(timer);
      resolve(exitCode ?? `killed by ${signal}`);
    });
  });
  if (code !== 0) {
    throw new ContractsBuildFailedError(
      typeof code === "number" ? `hardhat build exited with ${code}` : code,
      output.join(""),
    );
  }
  writeFileSync(path.join(root, ARTIFACTS_DIR, BUILD_STAMP), `${new Date().toISOString()}\n`);
  if (contractsBuildNeeded(root) !== undefined) {
    throw new ContractsBuildFailedError("hardhat build left artifacts missing or stale", output.join(""));
  }
  return "built";
}
