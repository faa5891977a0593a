/**
 * RFC 9457 problem details: every error the API answers is an `application/problem+json` document with
 * `type` (`urn:cryptlet:problem:<code>`), `title` (the error's short message), `status`, `instance` (the request
 * path) and the stable `code` extension member; validation problems add `errors: [{path, message}]`.
 *
 * The mapper accepts anything thrown inside the app: the API's own {@link ApiError}s, every runtime
 * {@link CryptletError} (package, identifier, dead-letter codes have fixed statuses), body-parser errors and
 * express-openapi-validator errors. Malformed input always maps to a 4xx; only failures of the runtime itself
 * give a 5xx, and then without internal messages unless the error is a `CryptletError` (whose messages are
 * secret-free by contract).
 *
 * @module
 */
import type { ErrorRequestHandler, Request, Response } from "express";

import { ERR_INVALID_IDENTIFIER } from "../attestation/errors.ts";
import { CryptletError, isCryptletError, redactSecrets } from "../errors.ts";
import {
  ERR_MANIFEST_INVALID,
  ERR_PACKAGE_INVALID,
  ERR_PACKAGE_NOT_FOUND,
  ERR_PACKAGE_VERSION_EXISTS,
  ERR_PUBLISHER_SIGNATURE_INVALID,
} from "../packages/errors.ts";
import type { PipelineLogger } from "../queue/context.ts";
import { ERR_BACKLOG_FULL, ERR_DEAD_LETTER_NOT_FOUND, ERR_DEAD_LETTER_NOT_REPLAYABLE } from "../queue/errors.ts";
import { ACCEPTED_CONTENT_ENCODINGS } from "./body.ts";
import {
  ApiError,
  ERR_API_BAD_REQUEST,
  ERR_INTERNAL,
  MalformedBodyError,
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
  RequestValidationError,
  UnauthenticatedError,
  UnsupportedContentEncodingError,
  UnsupportedMediaTypeError,
  type RequestProblem,
} from "./errors.ts";

/** The media type of problem documents (RFC 9457 §3). */
export const PROBLEM_MEDIA_TYPE = "application/problem+json";

/** An RFC 9457 problem document with this API's extension members. */
export interface ProblemDocument {
  /** `urn:cryptlet:problem:<code>`. */
  type: string;
  title: string;
  status: number;
  /** The stable `ERR_*` code. */
  code: string;
  /** The request path. */
  instance?: string;
  detail?: string;
  /** Validation failures: each failing path. */
  errors?: RequestProblem[];
  /** Secret-free structured facts of the error. */
  details?: Record<string, unknown>;
}

/** HTTP statuses of runtime error codes raised below the API (packages, identifiers, dead letters). */
export const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  [ERR_PACKAGE_NOT_FOUND.code]: 404,
  [ERR_PACKAGE_VERSION_EXISTS.code]: 409,
  [ERR_MANIFEST_INVALID.code]: 422,
  [ERR_PACKAGE_INVALID.code]: 422,
  [ERR_PUBLISHER_SIGNATURE_INVALID.code]: 422,
  [ERR_INVALID_IDENTIFIER.code]: 400,
  [ERR_DEAD_LETTER_NOT_FOUND.code]: 404,
  [ERR_DEAD_LETTER_NOT_REPLAYABLE.code]: 409,
  [ERR_BACKLOG_FULL.code]: 429, // with Retry-After from details.retryAfterSeconds (sendProblem)
};

interface ValidatorError {
  status: number;
  errors?: { path?: string; message?: string; location?: string }[];
  message?: string;
  path?: string;
}

function isValidatorError(error: unknown): error is ValidatorError {
  return (
    typeof error === "object" &&
    error !== null &&
    typeof (error as { status?: unknown }).status === "number" &&
    Array.isArray((error as { errors?: unknown }).errors)
  );
}

/** Body-parser (`express.json`) errors carry a `type` such as `entity.parse.failed`. */
function fromBodyParser(error: { type?: unknown; limit?: unknown; status?: unknown }): ApiError | undefined {
  switch (error.type) {
    case "entity.parse.failed":
      return new MalformedBodyError(error);
    case "entity.too.large":
      return new PayloadTooLargeError(typeof error.limit === "number" ? error.limit : undefined);
    case "encoding.unsupported":
    case "charset.unsupported":
      return new UnsupportedMediaTypeError("content encoding or charset");
    case "request.aborted":
    case "request.size.invalid":
    case "stream.encoding.set":
    case "stream.not.readable":
      return new ApiError(400, ERR_API_BAD_REQUEST, "the request body could not be read");
    default:
      return undefined;
  }
}

/** `/body/files/x` from the validator's `.body.files.x` or `/body/files/x`. */
function normalisePath(path: string | undefined): string {
  if (!path) return "/";
  return path.startsWith("/") ? path : `/${path.replace(/^\./, "").replace(/\./g, "/")}`;
}

/**
 * Turns anything thrown into an {@link ApiError}-like pair of status and {@link CryptletError}.
 * @param error - what was thrown.
 * @param method - the request method (for 405 problems).
 * @param path - the request path.
 */
export function classifyRequestError(
  error: unknown,
  method = "GET",
  path = "/",
): { status: number; error: CryptletError; internal: boolean } {
  if (error instanceof ApiError) return { status: error.status, error, internal: false };
  if (isCryptletError(error)) {
    const status = STATUS_BY_CODE[error.code] ?? (error.retryable ? 503 : 500);
    return { status, error, internal: status >= 500 };
  }
  if (typeof error === "object" && error !== null) {
    const parsed = fromBodyParser(error as { type?: unknown });
    if (parsed) return { status: parsed.status, error: parsed, internal: false };
    if (isValidatorError(error) && error.status < 500) {
      const problems = (error.errors ?? []).map((e) => ({
        path: normalisePath(e.path),
        message: e.message ?? "is invalid",
      }));
      let mapped: ApiError;
      if (error.status === 400)
        mapped = new RequestValidationError(problems.length > 0 ? problems : [{ path: "/", message: "is invalid" }]);
      else if (error.status === 404) mapped = new NotFoundError(`route ${method} ${path}`);
      else if (error.status === 405) mapped = new MethodNotAllowedError(method, path);
      else if (error.status === 413) mapped = new PayloadTooLargeError(undefined);
      else if (error.status === 415)
        mapped = new UnsupportedMediaTypeError(problems[0]?.message ?? "expected application/json");
      else mapped = new ApiError(error.status, ERR_API_BAD_REQUEST, problems[0]?.message ?? "bad request");
      return { status: mapped.status, error: mapped, internal: false };
    }
    // Any other http-errors 4xx (express's router: a path parameter that is not valid percent-encoding).
    const status = (error as { status?: unknown }).status;
    if (typeof status === "number" && status >= 400 && status < 500 && (error as { expose?: unknown }).expose) {
      const mapped = new ApiError(status, ERR_API_BAD_REQUEST, "bad request", { cause: error });
      return { status, error: mapped, internal: false };
    }
  }
  return {
    status: 500,
    error: new CryptletError(ERR_INTERNAL, "internal error", { cause: error }),
    internal: true,
  };
}

/**
 * The problem document of a classified error. Title and details come from {@link CryptletError.toJSON}, so
 * secrets in them are redacted (URLs reduced to scheme, host, port and ordinary path, credentials removed).
 */
export function problemOf(status: number, error: CryptletError, instance?: string): ProblemDocument {
  const json = error.toJSON();
  const problem: ProblemDocument = {
    type: `urn:cryptlet:problem:${error.code}`,
    title: json.message,
    status,
    code: error.code,
  };
  if (instance !== undefined) problem.instance = instance;
  const details = json.details;
  if (details && Array.isArray(details.errors)) {
    problem.errors = (details.errors as { path: unknown; message: unknown }[]).map((e) => ({
      path:
        typeof e.path === "string"
          ? e.path.startsWith("/") || e.path === ""
            ? e.path || "/"
            : `/${e.path.replace(/\./g, "/")}`
          : "/",
      message: String(e.message),
    }));
    delete details.errors;
  }
  if (details && Object.keys(details).length > 0) problem.details = details;
  return problem;
}

/**
 * Writes a problem document, with `WWW-Authenticate` (RFC 6750 §3) for 401, `Retry-After` for 429/503 and
 * `Accept-Encoding` (RFC 9110 §12.5.3) for an unsupported content coding.
 */
export function sendProblem(req: Request, res: Response, status: number, error: CryptletError): void {
  const problem = problemOf(status, error, req.baseUrl + req.path);
  if (status === 401) {
    res.setHeader("WWW-Authenticate", `Bearer error="invalid_token", error_description="${error.code}"`);
  }
  const retryAfter = (error.details as { retryAfterSeconds?: unknown } | undefined)?.retryAfterSeconds;
  if (status === 429 && typeof retryAfter === "number") res.setHeader("Retry-After", String(retryAfter));
  if (status === 503) res.setHeader("Retry-After", "5");
  if (error instanceof UnsupportedContentEncodingError) {
    res.setHeader("Accept-Encoding", ACCEPTED_CONTENT_ENCODINGS.join(", "));
  }
  res.status(status).type(PROBLEM_MEDIA_TYPE).send(JSON.stringify(problem));
}

/**
 * The app's last error handler: maps, logs 5xx (code and stack only, never the request body; secrets in the
 * stack redacted), answers the problem document. If headers were already sent the connection is left to express.
 */
export function problemHandler(logger?: PipelineLogger): ErrorRequestHandler {
  return (err, req, res, next) => {
    if (res.headersSent) {
      next(err);
      return;
    }
    let source: unknown = err;
    const stashed = (req as { authError?: unknown }).authError;
    if (stashed !== undefined && isValidatorError(err)) {
      // Our bearer check's error (the validator replaces it with its own): 401, 403, or 503 for an unreachable issuer.
      source = stashed;
    } else if (isValidatorError(err) && (err.status === 401 || err.status === 403)) {
      // The validator's own header check refused before our bearer check ran.
      source = new UnauthenticatedError(req.get("authorization") ? "malformed" : "missing");
    }
    const { status, error, internal } = classifyRequestError(source, req.method, req.path);
    if (internal) {
      const cause = error.cause ?? source;
      logger?.error(
        {
          code: error.code,
          method: req.method,
          route: req.path,
          err: redactSecrets(cause instanceof Error ? (cause.stack ?? cause.message) : String(cause)),
        },
        "request failed",
      );
    }
    sendProblem(req, res, status, error);
  };
}
