/**
 * Input and output of the `cryptlet` command: JSON files in, results out (human lines or `--json`), progress on
 * standard error, and the exit codes.
 *
 * Exit codes: {@link EXIT.ok} 0, {@link EXIT.failure} 1 (the command ran and failed, or a check did not pass),
 * {@link EXIT.usage} 2 (the command line was wrong).
 *
 * @module
 */
import { readFile } from "node:fs/promises";

import type { JWK } from "jose";

import { errorToJSON, isCryptletError } from "../errors.ts";
import { CliInputError } from "./errors.ts";

/** Exit codes of the `cryptlet` command. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

/** Where a command writes; tests and the dev stack pass their own. */
export interface CliOutput {
  /** Machine output: one JSON document on standard output per command. */
  json: boolean;
  out: (text: string) => void;
  err: (text: string) => void;
  /** Whether standard error is a terminal (progress redraws one line) or not (progress prints a line per step). */
  tty: boolean;
}

/** The process's own output. */
export function processOutput(json: boolean): CliOutput {
  return {
    json,
    out: (text) => process.stdout.write(text.endsWith("\n") ? text : `${text}\n`),
    err: (text) => process.stderr.write(text.endsWith("\n") ? text : `${text}\n`),
    tty: Boolean(process.stderr.isTTY),
  };
}

/** JSON with bigint as decimal strings. */
export function toJson(value: unknown, indent = 2): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), indent);
}

/**
 * Reads and parses a JSON file.
 * @throws {@link CliInputError} `ERR_CLI_INPUT` (`unreadable`, `not-json`).
 */
export async function readJsonFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (cause) {
    throw new CliInputError(file, "unreadable", `cannot read ${file}`, cause);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new CliInputError(file, "not-json", `${file} is not JSON`, cause);
  }
}

/**
 * Reads a private JWK file (a `_comment` member, as on demo keys, is dropped).
 * @throws {@link CliInputError} `ERR_CLI_INPUT` when it is not a private JWK.
 */
export async function readPrivateJwk(file: string): Promise<JWK> {
  const value = await readJsonFile(file);
  if (typeof value !== "object" || value === null || typeof (value as JWK).kty !== "string" || !("d" in value)) {
    throw new CliInputError(file, "unexpected-shape", `${file} is not a private JWK`);
  }
  const { _comment: _drop, ...jwk } = value as JWK & { _comment?: unknown };
  return jwk;
}

/** Returns the bundle inside a file's JSON: the value itself, a composite receipt's `bundle`, or the receipt of `cryptlet status --json` output. */
export function bundleOf(value: unknown): unknown {
  if (typeof value !== "object" || value === null || "bundleVersion" in value) return value;
  // `cryptlet status --json` output: {runId, status, receipt: {bundle}}
  if ("receipt" in value && typeof value.receipt === "object" && value.receipt !== null) return bundleOf(value.receipt);
  if ("bundle" in value) return (value as { bundle: unknown }).bundle;
  return value;
}

/**
 * A progress reporter on standard error (silent with `--json`): `step(done, total, label)` redraws one line on a
 * terminal, else prints at most 20 lines per task.
 */
export function progress(
  output: CliOutput,
  task: string,
): { step(done: number, total: number, label?: string): void; end(): void } {
  let lastPrinted = -1;
  return {
    step(done, total, label) {
      if (output.json) return;
      const pct = total === 0 ? 100 : Math.floor((done / total) * 100);
      if (output.tty) {
        const width = 24;
        const filled = Math.round((pct / 100) * width);
        process.stderr.write(
          `\r${task} [${"#".repeat(filled)}${" ".repeat(width - filled)}] ${done}/${total}${label ? ` ${label}` : ""}\x1b[K`,
        );
      } else if (Math.floor(pct / 5) !== lastPrinted || done === total) {
        lastPrinted = Math.floor(pct / 5);
        output.err(`${task}: ${done}/${total}${label ? ` ${label}` : ""}`);
      }
    },
    end() {
      if (!output.json && output.tty) process.stderr.write("\n");
    },
  };
}

/**
 * Prints an error and returns its exit code. The error goes through {@link errorToJSON}, so secrets in its
 * message, details and cause (an RPC URL with an API key in an ethers message) are redacted: with `--json`,
 * `{"ok": false, "error": {name, code, message, retryable, details?, cause?}}` on standard output; otherwise
 * `error <code>: <message> <details>` and a `cause:` line on standard error.
 */
export function reportError(output: CliOutput, error: unknown): number {
  const usage = isCryptletError(error, "ERR_CLI_USAGE");
  const json = errorToJSON(error);
  if (output.json) {
    output.out(toJson({ ok: false, error: json }));
  } else if (isCryptletError(error)) {
    output.err(`error ${json.code}: ${json.message}${json.details ? ` ${toJson(json.details, 0)}` : ""}`);
    if (json.cause !== undefined) output.err(`  cause: ${json.cause}`);
  } else {
    output.err(`error: ${json.message}`);
  }
  return usage ? EXIT.usage : EXIT.failure;
}
