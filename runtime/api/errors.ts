/**
 * Typed errors of the HTTP API. Each has a stable `ERR_API_*` / `ERR_AUTH_*` code and the HTTP status it is
 * answered with; the problem mapper (./problem.ts) turns them, and every other {@link CryptletError}, into
 * RFC 9457 problem documents.
 *
 * @module
 */
import { defineErrorCode, type ErrorCodeDeclaration } from "../errorCodes.ts";
import { CryptletError } from "../errors.ts";

const module = "api";

export const ERR_API_VALIDATION = defineErrorCode({
  code: "ERR_API_VALIDATION",
  module,
  meaning: "400: the request does not match the OpenAPI document; `details.errors` lists each failing path.",
  retry: "no",
});
export const ERR_API_MALFORMED_JSON = defineErrorCode({
  code: "ERR_API_MALFORMED_JSON",
  module,
  meaning: "400: the request body is not JSON (or not the media type it claims).",
  retry: "no",
});
export const ERR_API_BAD_REQUEST = defineErrorCode({
  code: "ERR_API_BAD_REQUEST",
  module,
  meaning:
    "400 (or the validator's other 4xx): the request body could not be read, or the request is refused as malformed.",
  retry: "no",
});
export const ERR_API_PAYLOAD_TOO_LARGE = defineErrorCode({
  code: "ERR_API_PAYLOAD_TOO_LARGE",
  module,
  meaning: "413: the request body exceeds the route's limit (`details.limitBytes`).",
  retry: "no",
});
export const ERR_API_UNSUPPORTED_MEDIA_TYPE = defineErrorCode({
  code: "ERR_API_UNSUPPORTED_MEDIA_TYPE",
  module,
  meaning: "415: the body is not `application/json` (or uses an unsupported charset or encoding).",
  retry: "no",
});
export const ERR_API_CONTENT_ENCODING = defineErrorCode({
  code: "ERR_API_CONTENT_ENCODING",
  module,
  meaning:
    "400: the body does not decode with the `Content-Encoding` it declares (e.g. `gzip` on an uncompressed body; `details.encoding`). An encoding the API does not support is 415.",
  retry: "no",
});
export const ERR_API_BODY_TOO_DEEP = defineErrorCode({
  code: "ERR_API_BODY_TOO_DEEP",
  module,
  meaning: "400: the JSON body nests objects and arrays deeper than the limit (`details.maxDepth`).",
  retry: "no",
});
export const ERR_API_BODY_REQUIRED = defineErrorCode({
  code: "ERR_API_BODY_REQUIRED",
  module,
  meaning: "400: the operation requires a request body and the request has none (or an empty one).",
  retry: "no",
});
export const ERR_API_REQUEST_TIMEOUT = defineErrorCode({
  code: "ERR_API_REQUEST_TIMEOUT",
  module,
  meaning:
    "408: the request's headers or body did not arrive within the server's limits (`details.timeoutMs`); the connection is closed.",
  retry: "yes",
});
export const ERR_API_HEADERS_TOO_LARGE = defineErrorCode({
  code: "ERR_API_HEADERS_TOO_LARGE",
  module,
  meaning: "431: the request line and headers exceed the server's header size limit; the connection is closed.",
  retry: "no",
});
export const ERR_API_NOT_FOUND = defineErrorCode({
  code: "ERR_API_NOT_FOUND",
  module,
  meaning: "404: no such route or resource (`details.what`).",
  retry: "no",
});
export const ERR_API_METHOD_NOT_ALLOWED = defineErrorCode({
  code: "ERR_API_METHOD_NOT_ALLOWED",
  module,
  meaning: "405: the route exists but not with this method.",
  retry: "no",
});
export const ERR_API_RATE_LIMITED = defineErrorCode({
  code: "ERR_API_RATE_LIMITED",
  module,
  meaning: "429: too many requests from one token subject or IP; `details.retryAfterSeconds`.",
  retry: "yes",
});
export const ERR_API_NOT_READY = defineErrorCode({
  code: "ERR_API_NOT_READY",
  module,
  meaning: "503: a dependency (Redis, a chain) does not answer; `details.checks`.",
  retry: "yes",
});
export const ERR_HTTP_TRIGGER_DISABLED = defineErrorCode({
  code: "ERR_HTTP_TRIGGER_DISABLED",
  module,
  meaning:
    "409: the package's manifest has no `http` trigger, so it cannot be invoked over HTTP (nor with `cryptlet invoke`).",
  retry: "no",
});
export const ERR_IDEMPOTENCY_KEY_REUSED = defineErrorCode({
  code: "ERR_IDEMPOTENCY_KEY_REUSED",
  module,
  meaning: "422: an `Idempotency-Key` already used for this Cryptlet with another request body (`details.runId`).",
  retry: "no",
});
export const ERR_AUTH_UNAUTHENTICATED = defineErrorCode({
  code: "ERR_AUTH_UNAUTHENTICATED",
  module,
  meaning:
    "401: no valid bearer token (`details.reason`); 503 and retried when the reason is `issuer-unavailable` (the issuer's keys could not be fetched).",
  retry: "depends",
});
export const ERR_AUTH_FORBIDDEN = defineErrorCode({
  code: "ERR_AUTH_FORBIDDEN",
  module,
  meaning: "403: the token is valid but carries none of the roles the operation needs.",
  retry: "no",
});
export const ERR_INTERNAL = defineErrorCode({
  code: "ERR_INTERNAL",
  module,
  meaning: "500: the API failed on something that is not a CryptletError; the problem document hides its message.",
  retry: "no",
});
export const ERR_LOCAL_ISSUER_KEY_INVALID = defineErrorCode({
  code: "ERR_LOCAL_ISSUER_KEY_INVALID",
  module,
  meaning: "The local token issuer's key file cannot be read or is not an EC P-256 private JWK.",
  retry: "no",
});

/** One failing part of a request: a JSON Pointer-like path (`/body/files/bundle.js`) and what is wrong. */
export interface RequestProblem {
  /** Where: `/body/...`, `/params/name`, `/query/version`, `/headers/idempotency-key`. */
  path: string;
  message: string;
}

/** An error the API answers with a given HTTP status. */
export class ApiError extends CryptletError {
  /** The HTTP status code of the response. */
  readonly status: number;

  /**
   * @param status - HTTP status (4xx/5xx).
   * @param code - the declaration of its stable `ERR_*` code (declared above).
   * @param shortMessage - one line naming what was wrong (secret-free).
   * @param details - structured, secret-free facts.
   */
  constructor(
    status: number,
    code: ErrorCodeDeclaration,
    shortMessage: string,
    options: { details?: Record<string, unknown>; cause?: unknown; retryable?: boolean } = {},
  ) {
    super(code, shortMessage, options);
    this.status = status;
  }
}

/** `ERR_API_VALIDATION` (400): the request does not match the OpenAPI document; `details.errors` lists each path. */
export class RequestValidationError extends ApiError {
  readonly errors: readonly RequestProblem[];

  /** @param errors - every failing path, at least one. */
  constructor(errors: readonly RequestProblem[]) {
    const shown = errors
      .slice(0, 3)
      .map((e) => `${e.path} ${e.message}`)
      .join("; ");
    super(400, ERR_API_VALIDATION, `invalid request: ${shown}${errors.length > 3 ? " …" : ""}`, {
      details: { errors: errors.map((e) => ({ ...e })) },
    });
    this.errors = errors;
  }
}

/** `ERR_API_MALFORMED_JSON` (400): the body is not JSON (or not the media type it claims). */
export class MalformedBodyError extends ApiError {
  constructor(cause?: unknown) {
    super(400, ERR_API_MALFORMED_JSON, "request body is not valid JSON", { cause });
  }
}

/** `ERR_API_PAYLOAD_TOO_LARGE` (413): the body exceeds the route's limit (`details.limitBytes`). */
export class PayloadTooLargeError extends ApiError {
  /** @param limitBytes - the limit in bytes. */
  constructor(limitBytes: number | undefined) {
    super(413, ERR_API_PAYLOAD_TOO_LARGE, `request body larger than ${limitBytes ?? "the limit"} bytes`, {
      details: limitBytes === undefined ? {} : { limitBytes },
    });
  }
}

/** `ERR_API_UNSUPPORTED_MEDIA_TYPE` (415): the body is not `application/json` (or uses an unsupported charset or encoding). */
export class UnsupportedMediaTypeError extends ApiError {
  constructor(what: string) {
    super(415, ERR_API_UNSUPPORTED_MEDIA_TYPE, `unsupported media type: ${what}`);
  }
}

/**
 * `ERR_API_CONTENT_ENCODING` (400): the body does not decode with its declared `Content-Encoding` (RFC 9110 §8.4):
 * the coding is supported, the bytes are not in it (a malformed request, RFC 9110 §15.5.1).
 */
export class ContentEncodingError extends ApiError {
  /** @param encoding - the declared coding, lower case (`gzip`, `deflate`, `br`, `zstd`). */
  constructor(encoding: string, cause?: unknown) {
    super(400, ERR_API_CONTENT_ENCODING, `request body is not valid ${encoding} data`, {
      details: { encoding },
      cause,
    });
  }
}

/**
 * `ERR_API_UNSUPPORTED_MEDIA_TYPE` (415) for a `Content-Encoding` the API does not decode (RFC 9110 §15.5.16); the
 * problem response carries `Accept-Encoding` with the codings it does.
 */
export class UnsupportedContentEncodingError extends ApiError {
  /** @param encoding - the declared coding(s), lower case. @param accepted - the codings the API decodes. */
  constructor(encoding: string, accepted: readonly string[]) {
    super(415, ERR_API_UNSUPPORTED_MEDIA_TYPE, `unsupported content encoding ${JSON.stringify(encoding)}`, {
      details: { encoding, accepted: [...accepted] },
    });
  }
}

/** `ERR_API_BODY_TOO_DEEP` (400): the JSON body nests deeper than `details.maxDepth` levels. */
export class BodyTooDeepError extends ApiError {
  /** @param maxDepth - the limit: nesting levels of objects and arrays (the top-level value is level 1). */
  constructor(maxDepth: number) {
    super(400, ERR_API_BODY_TOO_DEEP, `request body nests deeper than ${maxDepth} levels`, { details: { maxDepth } });
  }
}

/** `ERR_API_BODY_REQUIRED` (400): the operation requires a request body (docs/openapi.yaml) and none was sent. */
export class BodyRequiredError extends ApiError {
  constructor() {
    super(400, ERR_API_BODY_REQUIRED, "request body is required and was empty");
  }
}

/**
 * `ERR_API_REQUEST_TIMEOUT` (408, RFC 9110 §15.5.9): the request's headers or body did not arrive in time; the
 * connection is closed after the problem document.
 */
export class RequestTimeoutError extends ApiError {
  /** @param timeoutMs - the limit that expired, ms. */
  constructor(timeoutMs: number) {
    super(408, ERR_API_REQUEST_TIMEOUT, `request not received within ${timeoutMs} ms`, {
      details: { timeoutMs },
      retryable: true,
    });
  }
}

/** `ERR_API_HEADERS_TOO_LARGE` (431, RFC 6585 §5): the request line and headers exceed the header size limit. */
export class HeadersTooLargeError extends ApiError {
  /** @param limitBytes - Node's `maxHeaderSize`, bytes. */
  constructor(limitBytes: number) {
    super(431, ERR_API_HEADERS_TOO_LARGE, `request headers larger than ${limitBytes} bytes`, {
      details: { limitBytes },
    });
  }
}

/** `ERR_API_NOT_FOUND` (404): no such route or resource (`details.what`). */
export class NotFoundError extends ApiError {
  /** @param what - e.g. `run 0x…`, `route GET /v2/x`. */
  constructor(what: string) {
    super(404, ERR_API_NOT_FOUND, `not found: ${what}`, { details: { what } });
  }
}

/** `ERR_API_METHOD_NOT_ALLOWED` (405). */
export class MethodNotAllowedError extends ApiError {
  constructor(method: string, path: string) {
    super(405, ERR_API_METHOD_NOT_ALLOWED, `${method} is not allowed on ${path}`, { details: { method, path } });
  }
}

/** `ERR_API_RATE_LIMITED` (429): too many requests from one token subject or IP; `details.retryAfterSeconds`. */
export class RateLimitedError extends ApiError {
  /** @param retryAfterSeconds - when the window resets. */
  constructor(retryAfterSeconds: number) {
    super(429, ERR_API_RATE_LIMITED, `too many requests; retry after ${retryAfterSeconds} s`, {
      details: { retryAfterSeconds },
    });
  }
}

/** `ERR_API_NOT_READY` (503): a dependency (Redis, a chain) does not answer; `details.checks`. */
export class NotReadyError extends ApiError {
  constructor(checks: readonly { name: string; ok: boolean; latencyMs: number; error?: string }[]) {
    const failing = checks.filter((c) => !c.ok).map((c) => c.name);
    super(503, ERR_API_NOT_READY, `not ready: ${failing.join(", ")} not answering`, {
      details: { checks: checks.map((c) => ({ ...c })) },
    });
  }
}

/** `ERR_HTTP_TRIGGER_DISABLED` (409): the package's manifest has no `http` trigger, so it cannot be invoked over HTTP. */
export class HttpTriggerDisabledError extends ApiError {
  constructor(name: string, version: string) {
    super(409, ERR_HTTP_TRIGGER_DISABLED, `${name}@${version} has no http trigger`, { details: { name, version } });
  }
}

/**
 * `ERR_IDEMPOTENCY_KEY_REUSED` (422): an `Idempotency-Key` already used for this Cryptlet with another body
 * (draft-ietf-httpapi-idempotency-key-header §2.7).
 */
export class IdempotencyKeyReusedError extends ApiError {
  constructor(runId: string) {
    super(422, ERR_IDEMPOTENCY_KEY_REUSED, "Idempotency-Key already used with a different request body", {
      details: { runId },
    });
  }
}

/** Why a bearer token was refused (`details.reason` of {@link UnauthenticatedError}). */
export type AuthFailure =
  | "missing" // no Authorization header
  | "malformed" // not `Bearer <compact JWS>`
  | "expired" // exp in the past (or nbf in the future)
  | "bad-signature" // no JWKS key verifies it
  | "wrong-issuer"
  | "wrong-audience"
  | "wrong-tenant" // Entra ID `tid` not allowed
  | "invalid-claims" // other claim failures (missing sub, bad roles claim)
  | "issuer-unavailable"; // the issuer's JWKS could not be fetched

/**
 * `ERR_AUTH_UNAUTHENTICATED` (401): no valid bearer token; `details.reason` is an {@link AuthFailure}. With reason
 * `issuer-unavailable` (the issuer's keys could not be fetched) the status is 503.
 */
export class UnauthenticatedError extends ApiError {
  readonly reason: AuthFailure;

  constructor(reason: AuthFailure, cause?: unknown) {
    // An unreachable issuer is the runtime's problem, not the caller's: 503, retryable.
    super(reason === "issuer-unavailable" ? 503 : 401, ERR_AUTH_UNAUTHENTICATED, `authentication failed: ${reason}`, {
      details: { reason },
      cause,
      retryable: reason === "issuer-unavailable",
    });
    this.reason = reason;
  }
}

/** `ERR_AUTH_FORBIDDEN` (403): the token is valid but carries none of the roles the operation needs. */
export class ForbiddenError extends ApiError {
  /** @param required - roles any one of which would do. @param held - the token's roles. */
  constructor(required: readonly string[], held: readonly string[]) {
    super(403, ERR_AUTH_FORBIDDEN, `requires one of the roles ${required.join(", ")}`, {
      details: { required: [...required], held: [...held] },
    });
  }
}

export const ERR_API_RERUN_UNAVAILABLE = defineErrorCode({
  code: "ERR_API_RERUN_UNAVAILABLE",
  module,
  meaning:
    "501: `POST /v1/verify` was asked to re-execute (`rerun: true`) by an API process that has no sandbox (one started without a pipeline context); re-execute with `cryptlet verify --rerun` instead.",
  retry: "no",
});

export const ERR_API_ONCHAIN_UNAVAILABLE = defineErrorCode({
  code: "ERR_API_ONCHAIN_UNAVAILABLE",
  module,
  meaning:
    "501: `POST /v1/verify` was asked to check the bundle's anchors on-chain (`onChain: true`) by an API process that has no chain configured; verify with `cryptlet verify --config` or `--rpc` instead.",
  retry: "no",
});

/** `ERR_API_ONCHAIN_UNAVAILABLE` (501): this API process has no chain to check anchors on. */
export class OnChainUnavailableError extends ApiError {
  constructor() {
    super(
      501,
      ERR_API_ONCHAIN_UNAVAILABLE,
      "on-chain verification is not available in this API process (it has no chain configured)",
    );
  }
}

/** `ERR_API_RERUN_UNAVAILABLE` (501): this API process cannot re-execute Cryptlets. */
export class RerunUnavailableError extends ApiError {
  constructor() {
    super(501, ERR_API_RERUN_UNAVAILABLE, "re-execution is not available in this API process (it has no sandbox)");
  }
}
