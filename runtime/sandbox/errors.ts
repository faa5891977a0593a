/**
 * Typed errors of the sandbox host. Each has a stable `code` and says whether the job queue should retry it:
 * a Cryptlet's own failures (it threw, looped, used too much memory, produced bad output, asked for a URL it
 * was not granted) are deterministic and fail at once; an engine that could not start, or a network failure on
 * an allowed `fetch`, is worth a retry.
 *
 * IMPORTANT: a Cryptlet's error message, stack and logs are produced by the Cryptlet from its input. For a sealed
 * Cryptlet they may contain plaintext: callers must treat `ERR_CRYPTLET_THREW` details like the result itself.
 *
 * @example
 * ```ts
 * import { isCryptletError } from "./runtime/errors.ts";
 * import { createSandboxEngine } from "./runtime/sandbox/index.ts";
 *
 * const engine = createSandboxEngine("isolated-vm");
 * const cryptlet = await engine.load('var cryptlet={default:{run(){for(;;){}}}}', { limits: { timeoutMs: 100 } });
 * try {
 *   await cryptlet.run({}, { event: {}, requestId: "0x01", resultId: "0x02", now: 0 });
 * } catch (e) {
 *   if (isCryptletError(e, "ERR_SANDBOX_TIMEOUT")) console.log("stopped after", e.details?.timeoutMs, "ms");
 * } finally {
 *   cryptlet.dispose();
 * }
 * ```
 */
import { defineErrorCode } from "../errorCodes.ts";
import { CryptletError } from "../errors.ts";

const module = "sandbox";

export const ERR_SANDBOX_TIMEOUT = defineErrorCode({
  code: "ERR_SANDBOX_TIMEOUT",
  module,
  meaning:
    "The run exceeded its wall-time limit (`limits.timeoutMs`, host calls included), or awaits a promise that can never settle; not retried: the Cryptlet's own doing (a sandbox process's watchdog enforces it from outside).",
  retry: "no",
});
export const ERR_SANDBOX_MEMORY_LIMIT = defineErrorCode({
  code: "ERR_SANDBOX_MEMORY_LIMIT",
  module,
  meaning: "The run exceeded its memory limit (`limits.memoryMb`, MiB).",
  retry: "no",
});
export const ERR_SANDBOX_STACK_OVERFLOW = defineErrorCode({
  code: "ERR_SANDBOX_STACK_OVERFLOW",
  module,
  meaning: "The Cryptlet recursed deeper than the engine's stack allows and did not catch it.",
  retry: "no",
});
export const ERR_CRYPTLET_THREW = defineErrorCode({
  code: "ERR_CRYPTLET_THREW",
  module,
  meaning: "The Cryptlet threw (or its promise rejected), at load or during `run`.",
  retry: "no",
});
export const ERR_OUTPUT_TOO_LARGE = defineErrorCode({
  code: "ERR_OUTPUT_TOO_LARGE",
  module,
  meaning: "The output's JSON is larger than `limits.maxOutputBytes` (UTF-8 bytes).",
  retry: "no",
});
export const ERR_OUTPUT_NOT_SERIALIZABLE = defineErrorCode({
  code: "ERR_OUTPUT_NOT_SERIALIZABLE",
  module,
  meaning: "The output is not a JSON value (a function, symbol, BigInt, non-finite number, cycle, class instance...).",
  retry: "no",
});
export const ERR_CAPABILITY_DENIED = defineErrorCode({
  code: "ERR_CAPABILITY_DENIED",
  module,
  meaning:
    "The Cryptlet used a capability it was not granted (a URL outside the allow-list, a redirect to one, a method).",
  retry: "no",
});
export const ERR_FETCH_REQUEST_INVALID = defineErrorCode({
  code: "ERR_FETCH_REQUEST_INVALID",
  module,
  meaning:
    "The Cryptlet's `fetch` request is malformed or too large (URL over 8 KiB, headers over 16 KiB, body over 64 KiB, a header name or value HTTP does not allow, a header the host sets itself); refused before anything is sent.",
  retry: "no",
});
export const ERR_REPLAY_DIVERGED = defineErrorCode({
  code: "ERR_REPLAY_DIVERGED",
  module,
  meaning:
    "Re-execution: the Cryptlet made a `fetch` the run's evidence does not record (another method, URL, header set or body than the recorded request at that position, or more requests than were recorded), so it did not compute what the attested run computed.",
  retry: "no",
});
export const ERR_FETCH_FAILED = defineErrorCode({
  code: "ERR_FETCH_FAILED",
  module,
  meaning:
    'An allowed `fetch` failed: `reason` `"timeout"` or `"network"` is retried; `"response-too-large"` (body compressed or decoded), `"too-many-redirects"` or `"invalid-response"` (bad content encoding) is not.',
  retry: "depends",
});
export const ERR_SANDBOX_ENGINE_FAILURE = defineErrorCode({
  code: "ERR_SANDBOX_ENGINE_FAILURE",
  module,
  meaning:
    "The engine itself failed: could not start (retried), or stopped without a usable answer once Cryptlet code had run (crashed, malformed answer; not retried: presumed the Cryptlet's doing).",
  retry: "depends",
});
export const ERR_BUNDLE_INVALID = defineErrorCode({
  code: "ERR_BUNDLE_INVALID",
  module,
  meaning: "The bundle is not a valid Cryptlet script: a syntax error, or no function at `cryptlet.default.run`.",
  retry: "no",
});
export const ERR_SANDBOX_OPTIONS_INVALID = defineErrorCode({
  code: "ERR_SANDBOX_OPTIONS_INVALID",
  module,
  meaning: "Limits, capabilities or run context given to the sandbox are invalid (`details.field` names the field).",
  retry: "no",
});

/** Every code raised by the sandbox host. */
export const SANDBOX_ERROR_CODES = [
  ERR_SANDBOX_TIMEOUT.code,
  ERR_SANDBOX_MEMORY_LIMIT.code,
  ERR_SANDBOX_STACK_OVERFLOW.code,
  ERR_CRYPTLET_THREW.code,
  ERR_OUTPUT_TOO_LARGE.code,
  ERR_OUTPUT_NOT_SERIALIZABLE.code,
  ERR_CAPABILITY_DENIED.code,
  ERR_FETCH_REQUEST_INVALID.code,
  ERR_FETCH_FAILED.code,
  ERR_SANDBOX_ENGINE_FAILURE.code,
  ERR_BUNDLE_INVALID.code,
  ERR_SANDBOX_OPTIONS_INVALID.code,
] as const;

/** One of {@link SANDBOX_ERROR_CODES}. */
export type SandboxErrorCode = (typeof SANDBOX_ERROR_CODES)[number];

/**
 * The run exceeded its wall-time limit (`limits.timeoutMs`, host calls included), or awaits a promise that can
 * never settle. Retryable: a wall-time limit also trips when the host is overloaded (measured: a 500 ms limit on
 * a 2-core machine running 1,000 events at once), so one such failure says nothing certain about the Cryptlet; one
 * that loops forever fails again on every attempt, and the execute stage's attempts (3) bound that cost.
 */
export class SandboxTimeoutError extends CryptletError {
  constructor(timeoutMs: number, details: Record<string, unknown> = {}) {
    super(ERR_SANDBOX_TIMEOUT, `Cryptlet run exceeded its time limit of ${timeoutMs} ms`, {
      details: { timeoutMs, ...details },
    });
  }
}

/** The run exceeded its memory limit (`limits.memoryMb`, MiB). Not retryable. */
export class SandboxMemoryLimitError extends CryptletError {
  constructor(memoryMb: number, details: Record<string, unknown> = {}) {
    super(ERR_SANDBOX_MEMORY_LIMIT, `Cryptlet run exceeded its memory limit of ${memoryMb} MiB`, {
      details: { memoryMb, ...details },
    });
  }
}

/** The Cryptlet recursed deeper than the engine's stack allows and did not catch it. Not retryable. */
export class SandboxStackOverflowError extends CryptletError {
  constructor(details: Record<string, unknown> = {}) {
    super(ERR_SANDBOX_STACK_OVERFLOW, "Cryptlet run overflowed the sandbox stack", { details });
  }
}

/** What a Cryptlet threw, described without keeping any reference to it. */
export interface ThrownDescription {
  /** `"error"` for Error-like objects, otherwise the `typeof` of the thrown value (`"string"`, `"symbol"`...) or `"null"`. */
  kind: string;
  /** The error's `name` (`"TypeError"`), or the kind for non-Errors. */
  name: string;
  /** The error's message, or a description of the thrown value; at most 1,024 characters. */
  message: string;
  /** The stack, at most 4,096 characters; absent for non-Errors. Its format is the engine's own. */
  stack?: string;
}

/** The Cryptlet threw (or its promise rejected), at load or during `run`. Not retryable: the same input throws again. */
export class CryptletThrewError extends CryptletError {
  constructor(thrown: ThrownDescription, phase: "load" | "run") {
    super(ERR_CRYPTLET_THREW, `Cryptlet threw during ${phase}: ${thrown.name}: ${thrown.message}`, {
      details: { phase, ...thrown },
    });
  }
}

/** The output's JSON is larger than `limits.maxOutputBytes` (UTF-8 bytes). Not retryable. */
export class OutputTooLargeError extends CryptletError {
  constructor(maxOutputBytes: number, details: Record<string, unknown> = {}) {
    super(ERR_OUTPUT_TOO_LARGE, `Cryptlet output exceeds ${maxOutputBytes} bytes of JSON`, {
      details: { maxOutputBytes, ...details },
    });
  }
}

/** The output is not a JSON value (a function, symbol, BigInt, non-finite number, cycle, class instance...). Not retryable. */
export class OutputNotSerializableError extends CryptletError {
  constructor(path: string, reason: string) {
    super(ERR_OUTPUT_NOT_SERIALIZABLE, `Cryptlet output is not JSON at ${path}: ${reason}`, {
      details: { path, reason },
    });
  }
}

/** The Cryptlet used a capability it was not granted (a URL outside the allow-list, a redirect to one, a method). Not retryable. */
export class CapabilityDeniedError extends CryptletError {
  constructor(capability: string, reason: string, details: Record<string, unknown> = {}) {
    super(ERR_CAPABILITY_DENIED, `Capability ${capability} denied: ${reason}`, {
      details: { capability, reason, ...details },
    });
  }
}

/**
 * The Cryptlet's `fetch` request is malformed or too large, refused before anything is sent (in the sandbox for
 * sizes, on the host for header syntax): a URL over 8 KiB, headers over 16 KiB in total or more than 64, a body
 * over 64 KiB, a header name that is not an HTTP token, a header value with a control character (CR, LF, NUL) or a
 * character above U+00FF, a header the host sets itself (`host`, `content-length`, `accept-encoding`, ...). Not
 * retryable: the same code sends the same request. The run fails even if the Cryptlet caught the rejection.
 */
export class FetchRequestInvalidError extends CryptletError {
  constructor(reason: string, details: Record<string, unknown> = {}) {
    super(ERR_FETCH_REQUEST_INVALID, `fetch request refused: ${reason}`, { details: { reason, ...details } });
  }
}

/**
 * Re-execution only: the Cryptlet's fetch number `index` (from 0) is not the one the evidence recorded there
 * (`field` names what differs: `method`, `url`, `headers`, `body`, or `count` for a request beyond the recorded
 * ones). Not retryable. The run fails even if the Cryptlet caught the rejection.
 */
export class ReplayDivergedError extends CryptletError {
  constructor(index: number, field: "method" | "url" | "headers" | "body" | "count", detail: string) {
    super(ERR_REPLAY_DIVERGED, `re-execution diverged at fetch #${index + 1}: ${detail}`, {
      details: { index, field },
    });
  }
}

/** Why an allowed `fetch` failed (see {@link FetchFailedError}). */
export type FetchFailureReason =
  "timeout" | "network" | "response-too-large" | "too-many-redirects" | "invalid-response";

/**
 * An allowed `fetch` failed: `reason` is `"timeout"` or `"network"` (retryable) or `"response-too-large"` (the
 * body, compressed or decompressed, passed `maxResponseBytes`; or the response headers passed 16 KiB),
 * `"too-many-redirects"` or `"invalid-response"` (a content encoding the host does not decode, or corrupt compressed
 * data) (not retryable). The run fails even if the Cryptlet caught the rejection, so a result only ever depends on
 * recorded responses.
 */
export class FetchFailedError extends CryptletError {
  constructor(reason: FetchFailureReason, url: string, details: Record<string, unknown> = {}, cause?: unknown) {
    super(ERR_FETCH_FAILED, `fetch of ${url} failed: ${reason}`, {
      details: { reason, url, ...details },
      retryable: reason === "timeout" || reason === "network",
      ...(cause === undefined ? {} : { cause }),
    });
  }
}

/**
 * The engine itself failed. Retryable only when it could not start (before any Cryptlet code ran: an isolate or
 * WebAssembly module that could not be created); once Cryptlet code has run, a crash, an abort or an answer that is
 * not a bounded envelope is presumed the Cryptlet's doing and is not retryable, and carries no cause from the
 * sandbox (whose text the Cryptlet could have chosen).
 */
export class SandboxEngineFailureError extends CryptletError {
  constructor(engine: string, reason: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(ERR_SANDBOX_ENGINE_FAILURE, `Sandbox engine ${engine} failed: ${reason}`, {
      details: { engine, reason },
      retryable: options.retryable ?? true,
      ...(options.cause === undefined ? {} : { cause: options.cause }),
    });
  }
}

/** The bundle is not a valid Cryptlet script: a syntax error, or no function at `cryptlet.default.run`. Not retryable. */
export class BundleInvalidError extends CryptletError {
  constructor(reason: string, details: Record<string, unknown> = {}) {
    super(ERR_BUNDLE_INVALID, `Cryptlet bundle is invalid: ${reason}`, { details: { reason, ...details } });
  }
}

/** Limits, capabilities or run context given to the sandbox are invalid (names the field). Not retryable. */
export class SandboxOptionsInvalidError extends CryptletError {
  constructor(field: string, reason: string, value?: unknown) {
    super(ERR_SANDBOX_OPTIONS_INVALID, `Sandbox option ${field} ${reason}`, {
      details: { field, reason, ...(value === undefined ? {} : { value: String(value).slice(0, 200) }) },
    });
  }
}

export const ERR_SANDBOX_ENGINE_VERSION_MISMATCH = defineErrorCode({
  code: "ERR_SANDBOX_ENGINE_VERSION_MISMATCH",
  module,
  meaning:
    "The package pins another engine version (`engineVersion` in its manifest) than the one installed; `details` names both (rebuild the package for the installed engine, or run it where its engine is).",
  retry: "no",
});
export const ERR_SANDBOX_HOST_UNSAFE = defineErrorCode({
  code: "ERR_SANDBOX_HOST_UNSAFE",
  module,
  meaning:
    "The sandbox host refuses to start: the Node process runs with a flag that weakens isolation or changes the language inside the sandbox (`details.flag`), or on a Node major version it was not tested with (`details.nodeVersion`).",
  retry: "no",
});

/**
 * The package pins an engine version (its manifest's `engineVersion`, inside its `codeHash`) that is not the one
 * installed. Not retryable: the same host refuses again; rebuild the package for the installed engine (a new
 * `codeHash` to approve) or run it on a host with the pinned engine.
 */
export class EngineVersionMismatchError extends CryptletError {
  /**
   * @param engine - the engine, `isolated-vm` or `quickjs`.
   * @param pinned - the version the package pins.
   * @param installed - the version installed on this host.
   */
  constructor(engine: string, pinned: string, installed: string) {
    super(
      ERR_SANDBOX_ENGINE_VERSION_MISMATCH,
      `The package pins ${engine} ${pinned} but this host has ${engine} ${installed}`,
      { details: { engine, pinned, installed } },
    );
  }
}

/** What made the host refuse to start: see {@link SandboxHostUnsafeError}. */
export interface HostProblem {
  /** `flag`: a process flag on the deny-list; `node-version`: a Node major version the sandbox was not tested with. */
  reason: "flag" | "node-version";
  /** The offending flag as given, e.g. `--expose-gc` (for `reason: "flag"`). */
  flag?: string;
  /** Where the flag was found: the command line (`execArgv`), `NODE_OPTIONS`, or set while running (`runtime`). */
  source?: "execArgv" | "NODE_OPTIONS" | "runtime";
  /** Why the flag is refused, one sentence. */
  why: string;
  /** The running Node version (`process.versions.node`). */
  nodeVersion: string;
}

/**
 * The sandbox host refuses to start: the Node process runs with a flag that weakens the isolation of the
 * Cryptlets (or changes the JavaScript they see), or on a Node major version the sandbox was not tested with.
 * Not retryable: restart the process without the flag, or on a tested Node version (runtime/sandbox/hostCheck.ts).
 */
export class SandboxHostUnsafeError extends CryptletError {
  /** @param problem - the first problem found. */
  constructor(problem: HostProblem) {
    const what =
      problem.reason === "flag"
        ? `the process runs with ${problem.flag ?? "?"} (${problem.source ?? "?"}): ${problem.why}`
        : `Node ${problem.nodeVersion}: ${problem.why}`;
    super(ERR_SANDBOX_HOST_UNSAFE, `The sandbox host refuses to start: ${what}`, { details: { ...problem } });
  }
}
