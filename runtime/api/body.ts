/**
 * Request bodies: JSON (RFC 8259) read by express's body parser under a size limit, with these rules on top, so
 * that malformed input is always a 4xx problem and never reaches a handler (or a recursive walker) it could crash:
 *
 * - `Content-Encoding` (RFC 9110 §8.4): `gzip`, `deflate`, `br` (and `zstd` where Node has it) are decoded, the
 *   size limit applying to the decoded bytes; bytes that are not in the declared coding are
 *   `400 ERR_API_CONTENT_ENCODING`; any other coding (or a list of codings) is `415` with `Accept-Encoding`.
 * - nesting: a body whose objects and arrays nest deeper than `maxDepth` levels is `400 ERR_API_BODY_TOO_DEEP`,
 *   checked without recursion right after parsing, before validation and before anything canonicalises it.
 * - required bodies: an operation whose OpenAPI `requestBody` is `required` refuses a missing or empty body with
 *   `400 ERR_API_BODY_REQUIRED` (the body parser alone reads an empty body as `{}`).
 *
 * Every other body-parser failure maps to a 4xx as well: not JSON `400`, too large `413`, unknown charset `415`,
 * unreadable or aborted `400`.
 *
 * @module
 */
import { createHash } from "node:crypto";
import * as zlib from "node:zlib";

import express, { type Request, type RequestHandler } from "express";

import {
  ApiError,
  BodyRequiredError,
  BodyTooDeepError,
  ContentEncodingError,
  ERR_API_BAD_REQUEST,
  MalformedBodyError,
  PayloadTooLargeError,
  UnsupportedContentEncodingError,
  UnsupportedMediaTypeError,
} from "./errors.ts";

/** The content codings the API decodes (`zstd` only where this Node has `zlib.createZstdDecompress`). */
export const ACCEPTED_CONTENT_ENCODINGS: readonly string[] = [
  "gzip",
  "deflate",
  "br",
  ...("createZstdDecompress" in zlib ? ["zstd"] : []),
];

/** Default nesting limit of a JSON body: levels of objects and arrays, the top-level value being level 1. */
export const DEFAULT_JSON_DEPTH = 128;

const RAW_LENGTH = Symbol("rawBodyLength");
const RAW_SHA256 = Symbol("rawBodySha256");

/**
 * The SHA-256 of the body bytes as read (after content decoding), base64url without padding, when the parser was
 * asked to keep it (`jsonBody({sha256: true})`, the consortium routes: peer tokens bind the body); else undefined.
 */
export function rawBodySha256(req: Request): string | undefined {
  return (req as { [RAW_SHA256]?: string })[RAW_SHA256];
}

/** Bytes of the (decoded) body the parser read, or undefined when it read none. */
function rawLengthOf(req: Request): number | undefined {
  return (req as { [RAW_LENGTH]?: number })[RAW_LENGTH];
}

/**
 * The nesting depth of a parsed JSON value, computed without recursion, stopping as soon as it exceeds `max`.
 * @param value - parsed JSON.
 * @param max - the limit (levels).
 * @returns true when objects and arrays nest more than `max` levels (a scalar is level 0, `{}` and `[]` level 1).
 */
export function jsonDepthExceeds(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop() as [unknown, number];
    if (item === null || typeof item !== "object") continue;
    if (depth > max) return true;
    for (const child of Array.isArray(item) ? item : Object.values(item)) {
      if (child !== null && typeof child === "object") stack.push([child, depth + 1]);
    }
  }
  return false;
}

/** Maps a body-parser failure to the API's 4xx. */
function bodyErrorOf(error: unknown, req: Request): ApiError {
  if (error instanceof ApiError) return error;
  const e = (error ?? {}) as { type?: unknown; limit?: unknown; status?: unknown; encoding?: unknown };
  const encoding = (req.get("content-encoding") ?? "identity").trim().toLowerCase();
  switch (e.type) {
    case "entity.parse.failed":
      return new MalformedBodyError(error);
    case "entity.too.large":
      return new PayloadTooLargeError(typeof e.limit === "number" ? e.limit : undefined);
    case "encoding.unsupported":
      return new UnsupportedContentEncodingError(encoding, ACCEPTED_CONTENT_ENCODINGS);
    case "charset.unsupported":
      return new UnsupportedMediaTypeError("charset");
    default:
      break;
  }
  // The decompression stream failed: the bytes are not in the declared coding (zlib `Z_*`, brotli, zstd errors).
  if (encoding !== "identity" && ACCEPTED_CONTENT_ENCODINGS.includes(encoding)) {
    return new ContentEncodingError(encoding, error);
  }
  // request.aborted, request.size.invalid (Content-Length disagrees with the bytes), stream errors.
  return new ApiError(400, ERR_API_BAD_REQUEST, "the request body could not be read", { cause: error });
}

/**
 * The JSON body parser with the rules of this module.
 * @param options.limitBytes - largest body, bytes (of the decoded body when a content coding is used).
 * @param options.maxDepth - deepest nesting of objects and arrays accepted, levels.
 * @param options.sha256 - keep the SHA-256 of the body bytes for {@link rawBodySha256}. Default false.
 * @returns a middleware that sets `req.body` for `application/json` requests, or answers a 4xx through `next(err)`.
 */
export function jsonBody(options: { limitBytes: number; maxDepth: number; sha256?: boolean }): RequestHandler {
  const parse = express.json({
    limit: options.limitBytes,
    verify: (req, _res, buf) => {
      (req as { [RAW_LENGTH]?: number })[RAW_LENGTH] = buf.length;
      if (options.sha256) {
        (req as { [RAW_SHA256]?: string })[RAW_SHA256] = createHash("sha256").update(buf).digest("base64url");
      }
    },
  });
  return (req, res, next) => {
    parse(req, res, (error?: unknown) => {
      if (error !== undefined && error !== null) {
        next(bodyErrorOf(error, req));
        return;
      }
      if (rawLengthOf(req) !== undefined && jsonDepthExceeds(req.body, options.maxDepth)) {
        next(new BodyTooDeepError(options.maxDepth));
        return;
      }
      next();
    });
  };
}

/** True when the request carries no body bytes: no body at all, `Content-Length: 0`, or an empty decoded body. */
function bodyIsEmpty(req: Request): boolean {
  const read = rawLengthOf(req);
  if (read !== undefined) return read === 0;
  if (req.headers["transfer-encoding"] !== undefined) return false;
  const length = req.headers["content-length"];
  return length === undefined || Number(length) === 0;
}

/** `/v1/cryptlets/{name}/invoke` → `^/v1/cryptlets/[^/]+/invoke$`. */
function templateToRegExp(template: string): RegExp {
  const escaped = template
    .split(/\{[^}]+\}/)
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
    .join("[^/]+");
  return new RegExp(`^${escaped}/?$`);
}

/**
 * A middleware refusing a missing or empty body on the operations whose `requestBody` is `required` in the
 * OpenAPI document (`400 ERR_API_BODY_REQUIRED`).
 * @param document - the parsed OpenAPI 3.1 document.
 */
export function requireBody(document: Record<string, unknown>): RequestHandler {
  const routes: { method: string; path: RegExp }[] = [];
  const paths = (document.paths ?? {}) as Record<string, Record<string, { requestBody?: { required?: boolean } }>>;
  for (const [template, item] of Object.entries(paths)) {
    for (const [method, operation] of Object.entries(item)) {
      if (operation?.requestBody?.required === true) {
        routes.push({ method: method.toUpperCase(), path: templateToRegExp(template) });
      }
    }
  }
  return (req, _res, next) => {
    const required = routes.some((r) => r.method === req.method && r.path.test(req.path));
    next(required && bodyIsEmpty(req) ? new BodyRequiredError() : undefined);
  };
}
