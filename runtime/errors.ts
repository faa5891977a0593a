import { defineErrorCode, type ErrorCodeDeclaration } from "./errorCodes.ts";
import { redactDeep, redactSecrets, redactUrl } from "./redact.ts";

/**
 * The runtime's one error base. Every error the runtime raises on purpose is a {@link CryptletError} with a
 * stable `code` (an `ERR_*` string that never changes once released), a short message, optional structured
 * details and a cause, and a verdict for the job queue: `retryable` errors are retried with backoff, the others
 * fail the job at once (BullMQ `UnrecoverableError` semantics).
 *
 * Errors cross process boundaries (BullMQ job results, the sandbox, HTTP problem documents) as JSON and lose
 * their class there: test them with {@link isCryptletError}, never with `instanceof` alone.
 *
 * IMPORTANT: messages and details must never contain secrets (private keys, bearer tokens, RPC credentials) or
 * the plaintext of a sealed result. Use {@link redactUrl} for URLs that may carry credentials.
 *
 * Every code is declared once, in the errors.ts of the module that owns it, with {@link defineErrorCode}
 * (runtime/errorCodes.ts): the class passes the declaration, not a string, so its code is always a declared one
 * and docs/errors.md (generated from the declarations) lists it.
 *
 * @example
 * ```ts
 * import { defineErrorCode } from "./runtime/errorCodes.ts";
 * import { CryptletError, isCryptletError } from "./runtime/errors.ts";
 *
 * const ERR_QUOTA_EXCEEDED = defineErrorCode({
 *   code: "ERR_QUOTA_EXCEEDED",
 *   module: "billing",
 *   meaning: "The tenant used up its monthly quota of runs.",
 *   retry: "no",
 * });
 * class QuotaExceededError extends CryptletError {
 *   constructor(used: number, limit: number) {
 *     super(ERR_QUOTA_EXCEEDED, `quota exceeded: ${used} of ${limit}`, { details: { used, limit } });
 *   }
 * }
 * try {
 *   throw new QuotaExceededError(11, 10);
 * } catch (e) {
 *   if (isCryptletError(e, "ERR_QUOTA_EXCEEDED")) console.log(e.details);
 * }
 * ```
 */
export class CryptletError extends Error {
  /** Stable machine-readable code, e.g. `ERR_SANDBOX_TIMEOUT`. */
  readonly code: string;
  /** The message without details, suitable for one log line or an HTTP problem `title`. */
  readonly shortMessage: string;
  /** Structured, secret-free facts about the failure (offending values, limits, paths). */
  readonly details: Readonly<Record<string, unknown>> | undefined;
  /** Whether the job queue should retry the operation with backoff (`true`) or fail it at once (`false`). */
  readonly retryable: boolean;

  /**
   * @param code - the code's declaration (from {@link defineErrorCode}); a bare `ERR_*` string is accepted for
   *   codes restored from JSON and must be a declared code (test/errors/registry.test.ts checks the source).
   * @param shortMessage - one line saying what was wrong, naming the offending input.
   * @param options - `details` (secret-free), `cause` (the underlying error), `retryable` (default: `true` when
   *   the declaration's verdict is `yes`, otherwise `false`; a `depends` code sets it from the situation).
   */
  constructor(
    code: ErrorCodeDeclaration | string,
    shortMessage: string,
    options: { details?: Record<string, unknown>; cause?: unknown; retryable?: boolean } = {},
  ) {
    super(shortMessage, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = typeof code === "string" ? code : code.code;
    this.shortMessage = shortMessage;
    this.details = options.details;
    this.retryable = options.retryable ?? (typeof code !== "string" && code.retry === "yes");
  }

  /**
   * The JSON form that crosses process boundaries; {@link CryptletError.fromJSON} restores it. Every
   * serialisation of an error (CLI output, problem documents, logs, dead letters) goes through here or
   * {@link errorToJSON}, so secrets are redacted here ({@link redactSecrets}): in the message, in every string of
   * `details`, and in `cause`, the cause's `code: message` (libraries such as ethers put the endpoint URL, API key
   * included, in their messages).
   */
  toJSON(): CryptletErrorJSON {
    const json: CryptletErrorJSON = {
      name: this.name,
      code: this.code,
      message: redactSecrets(this.shortMessage),
      retryable: this.retryable,
    };
    if (this.details !== undefined) json.details = redactDeep({ ...this.details });
    if (this.cause !== undefined) json.cause = describeCause(this.cause);
    return json;
  }

  /** Rebuilds an error from {@link CryptletError.toJSON} output (the class is not restored, the code is). */
  static fromJSON(json: CryptletErrorJSON): CryptletError {
    const error = new CryptletError(json.code, json.message, {
      ...(json.details === undefined ? {} : { details: json.details }),
      retryable: json.retryable,
    });
    error.name = json.name;
    return error;
  }
}

/** The serialised form of a {@link CryptletError}. */
export interface CryptletErrorJSON {
  name: string;
  code: string;
  message: string;
  retryable: boolean;
  details?: Record<string, unknown>;
  cause?: string;
}

/**
 * One line for an underlying error: `code: message` (or the message, or the value as text), with secrets
 * redacted ({@link redactSecrets}).
 */
function describeCause(cause: unknown): string {
  let text: string;
  if (typeof cause === "object" && cause !== null && typeof (cause as { message?: unknown }).message === "string") {
    // An Error, or one from another realm or process (only its fields survive).
    const { code, message } = cause as { code?: unknown; message: string };
    text = typeof code === "string" && !message.startsWith(code) ? `${code}: ${message}` : message;
  } else {
    text = String(cause);
  }
  return redactSecrets(text);
}

/**
 * The JSON form of anything thrown, secrets redacted: a {@link CryptletError}'s {@link CryptletError.toJSON}, the
 * fields of a CryptletError's JSON form (or one from another realm), and for any other error
 * `{name, code: "ERR_UNEXPECTED", message: "<its code>: <its message>", retryable}` with `retryable` from
 * {@link classifyError}. Use it wherever an error is printed, logged, stored or answered.
 */
export function errorToJSON(error: unknown): CryptletErrorJSON {
  if (error instanceof CryptletError) return error.toJSON();
  if (isCryptletError(error)) {
    const e = error as {
      name?: unknown;
      shortMessage?: unknown;
      message?: unknown;
      details?: unknown;
      cause?: unknown;
    };
    const message = typeof e.shortMessage === "string" ? e.shortMessage : e.message;
    const json: CryptletErrorJSON = {
      name: typeof e.name === "string" ? e.name : "CryptletError",
      code: error.code,
      message: redactSecrets(typeof message === "string" ? message : ""),
      retryable: error.retryable,
    };
    if (typeof e.details === "object" && e.details !== null) {
      json.details = redactDeep({ ...(e.details as Record<string, unknown>) });
    }
    if (e.cause !== undefined) json.cause = describeCause(e.cause);
    return json;
  }
  return {
    name: error instanceof Error ? error.name : typeof error,
    code: ERR_UNEXPECTED.code,
    message: describeCause(error),
    retryable: classifyError(error) === "retry",
  };
}

/**
 * `error` itself when its message and stack hold nothing to redact, else a plain `Error` with the same name and
 * the redacted message and stack ({@link redactSecrets}). For handing errors to libraries that store or print
 * them whole: BullMQ keeps a failed job's `message` (as `failedReason`) and `stack` in Redis.
 */
export function redactedError(error: unknown): Error {
  const message = error instanceof Error ? error.message : describeCause(error);
  const stack = error instanceof Error ? error.stack : undefined;
  const safeMessage = redactSecrets(message);
  const safeStack = stack === undefined ? undefined : redactSecrets(stack);
  if (error instanceof Error && safeMessage === message && safeStack === stack) return error;
  const copy = new Error(safeMessage);
  copy.name = error instanceof Error ? error.name : "Error";
  if (safeStack !== undefined) copy.stack = safeStack;
  return copy;
}

/**
 * True when `value` is a {@link CryptletError} or its JSON form, optionally with the given `code`.
 * Works across realms, processes and serialisation, unlike `instanceof`.
 */
export function isCryptletError(value: unknown, code?: string): value is CryptletError {
  if (typeof value !== "object" || value === null) return false;
  const candidate = value as { code?: unknown; shortMessage?: unknown; message?: unknown; retryable?: unknown };
  if (typeof candidate.code !== "string" || !candidate.code.startsWith("ERR_")) return false;
  if (typeof candidate.retryable !== "boolean") return false;
  return code === undefined || candidate.code === code;
}

/** Node and ethers error codes that mean "the other side was briefly unreachable": worth a retry. */
/**
 * Redis replies and ioredis errors of a cluster in transition (https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/):
 * `MOVED`/`ASK` redirections beyond ioredis's `maxRedirections`, `CLUSTERDOWN`, `TRYAGAIN`, `MASTERDOWN`,
 * `READONLY` (a write reached a master demoted to replica), `LOADING`, and a connection closed under a command.
 */
const REDIS_CLUSTER_TRANSIENT =
  /^(Too many Cluster redirections|CLUSTERDOWN|TRYAGAIN|MASTERDOWN|READONLY|LOADING|MOVED \d+|ASK \d+|Connection is closed|Failed to refresh slots cache)/;

const TRANSIENT_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "TIMEOUT", // ethers
  "NETWORK_ERROR", // ethers
  "SERVER_ERROR", // ethers: 5xx or bad gateway from a JSON-RPC endpoint
  "NONCE_EXPIRED", // ethers: nonce too low, the writer re-reads the nonce
  "REPLACEMENT_UNDERPRICED", // ethers
]);

/**
 * What the job queue does with a failure: `"retry"` (with backoff) or `"fail"` (at once, to the dead-letter
 * queue). A {@link CryptletError} says so itself; other errors are retried only when their `code` is a known
 * transient network or JSON-RPC condition, or an HTTP status 408, 429 or 5xx.
 */
export function classifyError(error: unknown): "retry" | "fail" {
  if (isCryptletError(error)) return error.retryable ? "retry" : "fail";
  if (typeof error === "object" && error !== null) {
    const { code, statusCode, status } = error as { code?: unknown; statusCode?: unknown; status?: unknown };
    if (typeof code === "string" && TRANSIENT_CODES.has(code)) return "retry";
    // ioredis `commandTimeout`: no answer in time (the command may still have run; every stage is idempotent).
    if (error instanceof Error && error.message === "Command timed out") return "retry";
    // A Redis Cluster between slot maps (a fail-over): redirections, a slot without a master, a demoted master.
    if (error instanceof Error && REDIS_CLUSTER_TRANSIENT.test(error.message)) return "retry";
    const httpStatus = typeof statusCode === "number" ? statusCode : typeof status === "number" ? status : undefined;
    if (httpStatus !== undefined && (httpStatus === 408 || httpStatus === 429 || httpStatus >= 500)) return "retry";
  }
  return "fail";
}

// The redaction helpers (./redact.ts) are part of this module's interface: error output is where they are needed.
export { redactDeep, redactSecrets, redactUrl };

/** `ERR_UNEXPECTED`: a failure that is not a {@link CryptletError} (a bug, or a library's raw error), as recorded. */
export const ERR_UNEXPECTED = defineErrorCode({
  code: "ERR_UNEXPECTED",
  module: "(core)",
  meaning:
    "A failure that is not a CryptletError (a bug, or a raw library error) as recorded in a dead letter, a run record, a trigger problem or a CLI answer; retried only when classifyError deems it transient.",
  retry: "depends",
});

/** `ERR_RUNTIME_CONFIG_INVALID`: the runtime configuration file cannot be read or does not match its schema. */
export const ERR_RUNTIME_CONFIG_INVALID = defineErrorCode({
  code: "ERR_RUNTIME_CONFIG_INVALID",
  module: "(core)",
  meaning:
    "The runtime configuration file (cryptlet.config.json) cannot be read or does not match its schema; `details.errors` lists `{path, message}`.",
  retry: "no",
});
