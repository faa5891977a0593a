/**
 * Turns what a sandbox answered into a {@link RunResult} or a typed error, identically for both engines.
 *
 * The envelope is the JSON text the prelude's `run` resolves with:
 * - `{"ok":true,"output":"<output JSON>","logs":[...],"logsDropped":n}`
 * - `{"ok":false,"code":"ERR_OUTPUT_TOO_LARGE"|"ERR_OUTPUT_NOT_SERIALIZABLE"|"ERR_BUNDLE_INVALID","path"?,"reason",...}`
 * - `{"ok":false,"thrown":{"kind","name","message","stack"?,"engine"},...}`
 * - `{"ok":false,"undescribed":true,...}` when the prelude could not even describe the failure (out of memory)
 * - any of them with `"refused":{"code","reason"}`: a `fetch` the prelude refused (it fails the run first).
 *
 * A top-level throw of the bundle arrives as a string, {@link THROWN_MARKER} followed by the same `thrown` JSON
 * (see `bundleLoaderSource` in prelude.ts).
 *
 * The host trusts none of it: a Cryptlet shares the context with the prelude, so the envelope is parsed with
 * bounds and checked field by field. What the codes mean is decided here from what the host can vouch for: an
 * allocation failure or a stack overflow counts only when the prelude saw the engine raise it (`engine`), never
 * from a name and message the Cryptlet could have written itself.
 */
import type { CryptletError } from "../../errors.ts";
import {
  BundleInvalidError,
  CapabilityDeniedError,
  CryptletThrewError,
  FetchRequestInvalidError,
  OutputNotSerializableError,
  OutputTooLargeError,
  SandboxEngineFailureError,
  SandboxMemoryLimitError,
  SandboxStackOverflowError,
  type ThrownDescription,
} from "../errors.ts";
import type { JsonValue } from "../../sdk/index.ts";
import type { SandboxLimits } from "../SandboxEngine.ts";
import {
  MAX_LOG_LINE_CHARS,
  MAX_LOG_LINES,
  MAX_THROWN_MESSAGE_CHARS,
  MAX_THROWN_NAME_CHARS,
  MAX_THROWN_STACK_CHARS,
  THROWN_MARKER,
} from "./prelude.ts";

/** The parts of a successful run the sandbox produced. */
export interface SettledOutput {
  output: JsonValue;
  outputJson: string;
  logs: string[];
  logsDropped: number;
}

/** A thrown value as the prelude described it. */
export interface SandboxThrown {
  thrown: ThrownDescription;
  /** The prelude saw the engine raise this error (not one the Cryptlet constructed, not a plain value). */
  engine: boolean;
}

/** Longest thrown description the host reads (the prelude's bounds, escaped as JSON, plus room for the keys). */
export const MAX_THROWN_JSON_CHARS =
  (MAX_THROWN_NAME_CHARS + MAX_THROWN_MESSAGE_CHARS + MAX_THROWN_STACK_CHARS + 3) * 6 + 256;

/**
 * Maps an escaped throw to its error. Only an error the engine raised (`engine`, established by the prelude) can
 * be a stack overflow (`ERR_SANDBOX_STACK_OVERFLOW`: V8's `RangeError: Maximum call stack size exceeded`,
 * QuickJS's `InternalError: stack overflow`) or an allocation failure (`ERR_SANDBOX_MEMORY_LIMIT`: QuickJS
 * `InternalError: out of memory` and `string too long`, V8 `RangeError: Array buffer allocation failed` and
 * `Invalid string length`); everything else, whatever its name and message, is `ERR_CRYPTLET_THREW`.
 */
export function errorFromThrown(described: SandboxThrown, phase: "load" | "run", limits: SandboxLimits): CryptletError {
  const { thrown, engine } = described;
  if (engine && thrown.kind === "error") {
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

function readThrown(value: unknown, engine: string): SandboxThrown {
  if (typeof value !== "object" || value === null) throw fail(engine, "malformed thrown description");
  const t = value as Record<string, unknown>;
  if (typeof t.kind !== "string" || typeof t.name !== "string" || typeof t.message !== "string") {
    throw fail(engine, "malformed thrown description");
  }
  const thrown: ThrownDescription = {
    kind: t.kind.slice(0, 20),
    name: t.name.slice(0, MAX_THROWN_NAME_CHARS + 1),
    message: t.message.slice(0, MAX_THROWN_MESSAGE_CHARS + 1),
  };
  if (typeof t.stack === "string") thrown.stack = t.stack.slice(0, MAX_THROWN_STACK_CHARS + 1);
  return { thrown, engine: t.engine === true };
}

/**
 * Reads what a bundle's loader (or the load probe) threw: the prelude's {@link THROWN_MARKER} string.
 * @param value - the value the engine reported thrown, as it reached the host (only a string is ever read).
 * @param engine - engine name for errors.
 * @returns the description, or `undefined` when `value` is not such a string (then it did not come from the
 *   prelude: an uncatchable engine stop, which the caller classifies from what it observed).
 */
export function readThrownMarker(value: unknown, engine: string): SandboxThrown | undefined {
  if (typeof value !== "string" || !value.startsWith(THROWN_MARKER)) return undefined;
  if (value.length > THROWN_MARKER.length + MAX_THROWN_JSON_CHARS) throw fail(engine, "oversized thrown description");
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.slice(THROWN_MARKER.length));
  } catch {
    throw fail(engine, "malformed thrown description");
  }
  return readThrown(parsed, engine);
}

/**
 * Longest envelope the host reads for these limits: the output's JSON escaped as a JSON string (6 characters per
 * character at most), the logs likewise, and 64 Ki characters for the rest (a thrown description is under 32 Ki).
 */
export function maxEnvelopeChars(limits: SandboxLimits): number {
  return limits.maxOutputBytes * 6 + MAX_LOG_LINES * (MAX_LOG_LINE_CHARS * 6 + 8) + 64 * 1024;
}

/**
 * Reads an envelope.
 * @param envelope - what the prelude's `run` resolved with.
 * @param limits - the run's limits (the output size is checked here in UTF-8 bytes).
 * @param engine - engine name for errors.
 * @throws the typed error the envelope describes.
 */
export function settleEnvelope(envelope: unknown, limits: SandboxLimits, engine: string): SettledOutput {
  if (typeof envelope !== "string" || envelope.length > maxEnvelopeChars(limits)) {
    throw fail(engine, "the sandbox answered something other than a bounded envelope");
  }
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(envelope) as Record<string, unknown>;
  } catch (cause) {
    throw new SandboxEngineFailureError(engine, "the sandbox answered malformed JSON", { cause, retryable: false });
  }
  if (typeof parsed !== "object" || parsed === null) throw fail(engine, "envelope is not an object");
  const refused = parsed.refused as Record<string, unknown> | undefined;
  if (refused !== undefined) {
    const why = typeof refused?.reason === "string" ? refused.reason.slice(0, 300) : "refused";
    if (refused?.code === "ERR_FETCH_REQUEST_INVALID") throw new FetchRequestInvalidError(why);
    if (refused?.code === "ERR_CAPABILITY_DENIED") throw new CapabilityDeniedError("fetch", why);
    throw fail(engine, "envelope with an unknown refusal");
  }
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
  if (parsed.undescribed === true) {
    throw fail(engine, "the run failed and the sandbox could not describe how (out of memory in the prelude)");
  }
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
 * Describes an error the host itself got from an engine before any Cryptlet code ran (the bundle's syntax error
 * at compile time): name, message and stack, cut to the prelude's bounds. Never used for a value a Cryptlet threw.
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
