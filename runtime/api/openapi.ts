/**
 * The API's OpenAPI 3.1 document (docs/openapi.yaml): loaded once, served at `/openapi.json`, and enforced by
 * express-openapi-validator (OpenAPI 3.1 support since 5.4): request bodies, path and query parameters and
 * headers are validated against it (unknown query parameters and unknown body fields are refused), and the
 * role names in each operation's `security` requirement are the roles the bearer token must hold.
 *
 * @module
 */
import { readFileSync } from "node:fs";

import type { RequestHandler } from "express";
import * as OpenApiValidator from "express-openapi-validator";
import { parse } from "yaml";

import { PeerUnauthenticatedError } from "../consortium/errors.ts";

/** Path of the document in the repository. */
export const OPENAPI_DOCUMENT_URL = new URL("../../docs/openapi.yaml", import.meta.url);

let cached: Record<string, unknown> | undefined;

/** The parsed OpenAPI document (a fresh deep copy per call: the validator annotates what it is given). */
export function loadOpenApiDocument(): Record<string, unknown> {
  cached ??= parse(readFileSync(OPENAPI_DOCUMENT_URL, "utf8")) as Record<string, unknown>;
  return structuredClone(cached);
}

/** The security check behind a `bearer` requirement: throw to refuse (the error is kept for the problem document). */
export type BearerCheck = (req: Parameters<RequestHandler>[0], roles: readonly string[]) => Promise<void>;

/**
 * The validator middlewares.
 * @param options.bearer - authenticates and authorises a request for the operation's roles.
 * @param options.peer - authenticates a consortium member's request (`peer` scheme); without it such operations
 *   answer 401 (the runtime is not a consortium member).
 * @param options.validateResponses - also validate responses (tests: catches drift between code and document).
 * @param options.ignorePaths - paths outside the document (the dashboard, the local issuer).
 */
export function openApiValidator(options: {
  bearer: BearerCheck;
  peer?: BearerCheck;
  validateResponses?: boolean;
  ignorePaths?: RegExp;
}): RequestHandler[] {
  return OpenApiValidator.middleware({
    apiSpec: loadOpenApiDocument() as never,
    validateApiSpec: true,
    validateRequests: {
      allowUnknownQueryParameters: false,
      coerceTypes: true,
      removeAdditional: false,
      allErrors: true,
    },
    validateResponses: options.validateResponses ?? false,
    validateFormats: true,
    ...(options.ignorePaths ? { ignorePaths: options.ignorePaths } : {}),
    validateSecurity: {
      handlers: {
        bearer: async (req, scopes) => securityCheck(options.bearer, req, scopes),
        peer: async (req, scopes) =>
          securityCheck(
            options.peer ?? (() => Promise.reject(new PeerUnauthenticatedError("unknown-sender"))),
            req,
            scopes,
          ),
      },
    },
  }) as unknown as RequestHandler[];
}

async function securityCheck(
  check: BearerCheck,
  req: Parameters<RequestHandler>[0],
  scopes: readonly string[],
): Promise<boolean> {
  try {
    await check(req, scopes);
    return true;
  } catch (error) {
    // The validator replaces thrown errors with its own; the problem handler reads this one.
    (req as { authError?: unknown }).authError = error;
    throw Object.assign(new Error("unauthorized"), { status: (error as { status?: number }).status ?? 401 });
  }
}
