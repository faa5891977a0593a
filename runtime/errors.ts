import { defineErrorCode, type ErrorCodeDeclaration } from "./errorCodes.ts";

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

  /** The JSON form that crosses process boundaries; {@link CryptletError.fromJSON} restores it. */
  toJSON(): CryptletErrorJSON {
    const json: CryptletErrorJSON = {
      name: this.name,
      code: this.code,
      message: this.shortMessage,
      retryable: this.retryable,
    };
    if (this.details !== undefined) json.details = { ...this.details };
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

function describeCause(cause: unknown): string {
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    return typeof code === "string" ? `${code}: ${cause.message}` : cause.message;
  }
  return String(cause);
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
    const httpStatus = typeof statusCode === "number" ? statusCode : typeof status === "number" ? status : undefined;
    if (httpStatus !== undefined && (httpStatus === 408 || httpStatus === 429 || httpStatus >= 500)) return "retry";
  }
  return "fail";
}

/**
 * Removes credentials from a URL for logs and errors: user info, and the values of query parameters whose name
 * suggests a secret (`key`, `token`, `secret`, `signature`, `sig`, `password`, `apikey`, `api_key`), and path
 * segments that look like API keys (20+ alphanumerics, as Infura and Alchemy put them). Invalid URLs become
 * `"<invalid url>"`.
 */
export function redactUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "<invalid url>";
  }
  if (parsed.username) parsed.username = "redacted";
  if (parsed.password) parsed.password = "redacted";
  for (const name of [...parsed.searchParams.keys()]) {
    if (/key|token|secret|sig|password|auth/i.test(name)) parsed.searchParams.set(name, "redacted");
  }
  parsed.pathname = parsed.pathname
    .split("/")
    .map((segment) => (/^[A-Za-z0-9_-]{20,}$/.test(segment) ? "redacted" : segment))
    .join("/");
  return parsed.toString();
}

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
