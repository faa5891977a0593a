/**
 * Turns what a sandbox answered into a {@link RunResult} or a typed error, identically for both engines.
 *
 * The envelope is the JSON text the prelude's `run` resolves with:
 * - `{"ok":true,"output":"<output JSON>","logs":[...],"logsDropped":n}`
 * - `{"ok":false,"code":"ERR_OUTPUT_TOO_LARGE"|"ERR_OUTPUT_NOT_SERIALIZABLE"|"ERR_BUNDLE_INVALID","path"?,"reason",...}`
 * - `{"ok":false,"thrown":{"kind","name","message","stack"?},...}`
 *
 * The host trusts none of it: a Cryptlet shares the context with the prelude, so the envelope is parsed with
 * bounds and checked field by field.
 */
import type { CryptletError } from "../../errors.ts";
import {
  BundleInvalidError,
  CryptletThrewError,
  OutputNotSerializableError,
  OutputTooLargeError,
  SandboxEngineFailureError,
  SandboxMemoryLimitError,
  SandboxStackOverflowError,
  type ThrownDescription,
} from "../errors.ts";
import type { JsonValue } from "../../sdk/index.ts";
import type { SandboxLimits } from "../SandboxEngine.ts";
import { MAX_LOG_LINE_CHARS, MAX_LOG_LINES } from "./prelude.ts";

/** The parts of a successful run the sandbox produced. */
export interface SettledOutput {
  output: JsonValue;
  outputJson: string;
  logs: string[];
  logsDropped: number;
}

/**
 * Maps an escaped throw to its error: engine stack overflows to `ERR_SANDBOX_STACK_OVERFLOW`, allocation
 * failures (QuickJS `InternalError: out of memory` and `string too long`, V8 `Array buffer allocation failed` and `Invalid string
 * length`, the engines' maximum object sizes) to `ERR_SANDBOX_MEMORY_LIMIT`, everything else to
 * `ERR_CRYPTLET_THREW`.
 */
export function errorFromThrown(
  thrown: ThrownDescription,
  phase: "load" | "run",
  limits: SandboxLimits,
): CryptletError {
  if (thrown.kind === "error") {
    const { name, message } = thrown;
    if (
      (name === "RangeError" && /^Maximum call stack size exceeded/.test(message)) ||
      (name === "InternalError" && /^stack overflow/.test(message))
    ) {
      return new SandboxStackOverflowError({ phase, name, message });
    }
    if (
      (name === "InternalError" && /^(out of memory|string too long)/.test(message)) ||
      (name === "RangeError" &&
        /^(Array buffer allocation failed|Invalid string length|invalid string length)/.test(message))
    ) {
      return new SandboxMemoryLimitError(limits.memoryMb, { phase, name, message });
    }
  }
  return new CryptletThrewError(thrown, phase);
}

function fail(engine: string, reason: string): SandboxEngineFailureError {
  return new SandboxEngineFailureError(engine, reason, { retryable: false });
}

function readThrown(value: unknown, engine: string): ThrownDescription {
  if (typeof value !== "object" || value === null) throw fail(engine, "malformed thrown description");
  const t = value as Record<string, unknown>;
  if (typeof t.kind !== "string" || typeof t.name !== "string" || typeof t.message !== "string") {
    throw fail(engine, "malformed thrown description");
  }
  const thrown: ThrownDescription = {
    kind: t.kind.slice(0, 20),
    name: t.name.slice(0, 101),
    message: t.message.slice(0, 1025),
  };
  if (typeof t.stack === "string") thrown.stack = t.stack.slice(0, 4097);
  return thrown;
}

/**
 * Reads an envelope.
 * @param envelope - what the prelude's `run` resolved with.
 * @param limits - the run's limits (the output size is checked here in UTF-8 bytes).
 * @param engine - engine name for errors.
 * @throws the typed error the envelope describes.
 */
export function settleEnvelope(envelope: unknown, limits: SandboxLimits, engine: string): SettledOutput {
  const maxEnvelopeChars = limits.maxOutputBytes * 6 + MAX_LOG_LINES * (MAX_LOG_LINE_CHARS * 6 + 8) + 64 * 1024;
  if (typeof envelope !== "string" || envelope.length > maxEnvelopeChars) {
    throw fail(engine, "the sandbox answered something other than a bounded envelope");
  }
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(envelope) as Record<string, unknown>;
  } catch (cause) {
    throw new SandboxEngineFailureError(engine, "the sandbox answered malformed JSON", { cause, retryable: false });
  }
  if (typeof parsed !== "object" || parsed === null) throw fail(engine, "envelope is not an object");
  const logs = Array.isArray(parsed.logs)
    ? parsed.logs
        .slice(0, MAX_LOG_LINES)
        .filter((line): line is string => typeof line === "string")
        .map((line) => line.slice(0, MAX_LOG_LINE_CHARS + 1))
    : [];
  const logsDropped = typeof parsed.logsDropped === "number" ? parsed.logsDropped : 0;
  if (parsed.ok === true) {
    const outputJson = parsed.output;
    if (typeof outputJson !== "string") throw fail(engine, "envelope without output");
    const bytes = Buffer.byteLength(outputJson, "utf8");
    if (bytes > limits.maxOutputBytes) throw new OutputTooLargeError(limits.maxOutputBytes, { outputBytes: bytes });
    let output: JsonValue;
    try {
      output = JSON.parse(outputJson) as JsonValue;
    } catch (cause) {
      throw new SandboxEngineFailureError(engine, "the output is not valid JSON", { cause, retryable: false });
    }
    return { output, outputJson, logs, logsDropped };
  }
  if (parsed.thrown !== undefined) throw errorFromThrown(readThrown(parsed.thrown, engine), "run", limits);
  const reason = typeof parsed.reason === "string" ? parsed.reason.slice(0, 300) : "unknown";
  const path = typeof parsed.path === "string" ? parsed.path.slice(0, 300) : "$";
  switch (parsed.code) {
    case "ERR_OUTPUT_TOO_LARGE":
      throw new OutputTooLargeError(limits.maxOutputBytes, { reason });
    case "ERR_OUTPUT_NOT_SERIALIZABLE":
      throw new OutputNotSerializableError(path, reason);
    case "ERR_BUNDLE_INVALID":
      throw new BundleInvalidError(reason);
    default:
      throw fail(engine, "envelope with an unknown code");
  }
}

/**
 * Describes a value thrown out of the sandbox into the host (top-level bundle errors arrive this way from
 * isolated-vm and as dumped handles from QuickJS) as the prelude would describe it.
 */
export function describeHostValue(value: unknown): ThrownDescription {
  if (value === null) return { kind: "null", name: "null", message: "null" };
  if (typeof value === "object" || typeof value === "function") {
    const { name, message, stack } = value as { name?: unknown; message?: unknown; stack?: unknown };
    if (typeof message === "string") {
      const thrown: ThrownDescription = {
        kind: "error",
        name: typeof name === "string" ? name.slice(0, 100) : "Error",
        message: message.slice(0, 1024),
      };
      if (typeof stack === "string") thrown.stack = stack.slice(0, 4096);
      return thrown;
    }
    let text: string | undefined;
    try {
      text = JSON.stringify(value);
    } catch {
      text = undefined;
    }
    return { kind: typeof value, name: typeof value, message: (text ?? `[${typeof value}]`).slice(0, 1024) };
  }
  if (typeof value === "bigint") return { kind: "bigint", name: "bigint", message: `${value}n` };
  return { kind: typeof value, name: typeof value, message: String(value).slice(0, 1024) };
}
