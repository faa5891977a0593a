/**
 * The host side of the `fetch` capability: performs the Cryptlet's requests with `node:http`/`node:https` against
 * the manifest's allow-list (origin plus path prefix, ../fetchAllow.ts), follows redirects by hand (each hop
 * checked and counted against `maxRequests`), bounds time and size, and records every response for the
 * `inputHash`.
 *
 * Bounds, each checked before the host allocates or copies what it bounds: the request JSON's length before it is
 * parsed (the prelude already refused oversized URLs, headers and bodies inside the sandbox), header names and
 * values against HTTP's syntax, response headers (16 KiB, Node's parser), the response body against
 * `maxResponseBytes` as it arrives **and again after decompression**: the host asks for `accept-encoding:
 * identity` and decodes a `content-encoding` the server sends anyway (gzip, deflate, br, zstd) itself, streaming,
 * stopping as soon as the decoded bytes pass the limit (a 1.8 KiB `gzip, gzip` body inflates to 1 GiB). Node's
 * fetch (undici) is not used: it decompresses on its own, unbounded, and its internal assertions could escape as
 * uncaught exceptions.
 *
 * Any violation or failure is kept as the run's failure: the run fails with it even if the Cryptlet caught the
 * rejected promise, so a successful result only ever depends on recorded responses.
 */
import { createHash } from "node:crypto";
import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import { pipeline } from "node:stream/promises";
import zlib from "node:zlib";
import { redactUrl, type CryptletError } from "../../errors.ts";
import {
  CapabilityDeniedError,
  FetchFailedError,
  FetchRequestInvalidError,
  SandboxOptionsInvalidError,
} from "../errors.ts";
import { checkFetchAllowEntry, isFetchAllowed } from "../fetchAllow.ts";
import {
  DEFAULT_FETCH,
  FETCH_BOUNDS,
  MAX_FETCH_ALLOW_ENTRIES,
  type FetchCapability,
  type FetchLimitName,
  type HostCallRecord,
} from "../SandboxEngine.ts";
import {
  MAX_FETCH_HEADER_CHARS,
  MAX_FETCH_HEADERS,
  MAX_FETCH_METHOD_CHARS,
  MAX_FETCH_URL_CHARS,
  MAX_REQUEST_BODY_BYTES,
} from "./prelude.ts";

export { MAX_REQUEST_BODY_BYTES };

/** {@link FetchCapability} with every default filled in. */
export interface FetchPolicy {
  allow: string[];
  methods: ("GET" | "POST")[];
  timeoutMs: number;
  maxResponseBytes: number;
  maxRequests: number;
  maxRedirects: number;
}

/**
 * Longest request JSON the host parses: the prelude's bounds (URL, headers, body, method), each character escaped
 * as JSON at most 6 characters, plus the keys and separators.
 */
export const MAX_REQUEST_JSON_CHARS =
  (MAX_FETCH_URL_CHARS + MAX_FETCH_HEADER_CHARS + MAX_REQUEST_BODY_BYTES + MAX_FETCH_METHOD_CHARS) * 6 +
  MAX_FETCH_HEADERS * 8 +
  256;

/** Largest response head (status line and headers) the host reads, in bytes. */
export const MAX_RESPONSE_HEADER_BYTES = 16 * 1024;

/**
 * Request headers a Cryptlet may not set: the host sets them (`host`, `content-length`, `accept-encoding`,
 * `connection`...), or they carry ambient state (`cookie`), after the Fetch standard's forbidden request-header
 * names. Names starting with `proxy-` or `sec-` are refused too.
 */
export const FORBIDDEN_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  "accept-charset",
  "accept-encoding",
  "access-control-request-headers",
  "access-control-request-method",
  "connection",
  "content-length",
  "cookie",
  "cookie2",
  "date",
  "dnt",
  "expect",
  "host",
  "keep-alive",
  "origin",
  "referer",
  "set-cookie",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "via",
]);

/** An HTTP token (RFC 9110 §5.6.2), the syntax of a header name. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** What a header value may contain (Node's own rule: HTAB, visible ASCII, space, and U+0080..U+00FF). */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Validates the capability (the same rules as the manifest schema) and fills in its defaults.
 * @throws SandboxOptionsInvalidError (`ERR_SANDBOX_OPTIONS_INVALID`) naming the field in `details.field`
 *   (e.g. `capabilities.fetch.allow[0]`).
 */
export function resolveFetchCapability(capability: FetchCapability | undefined): FetchPolicy | undefined {
  if (capability === undefined) return undefined;
  if (
    !Array.isArray(capability.allow) ||
    capability.allow.length === 0 ||
    capability.allow.length > MAX_FETCH_ALLOW_ENTRIES
  ) {
    throw new SandboxOptionsInvalidError(
      "capabilities.fetch.allow",
      `must be an array of 1..${MAX_FETCH_ALLOW_ENTRIES} allow-list entries (origin plus path prefix)`,
    );
  }
  for (const [index, entry] of capability.allow.entries()) {
    const problem = typeof entry === "string" ? checkFetchAllowEntry(entry) : "must be a string";
    if (problem !== undefined) {
      throw new SandboxOptionsInvalidError(`capabilities.fetch.allow[${index}]`, problem, entry);
    }
  }
  const methods = capability.methods ?? [...DEFAULT_FETCH.methods];
  if (!Array.isArray(methods) || methods.length === 0) {
    throw new SandboxOptionsInvalidError("capabilities.fetch.methods", "must be a non-empty array of GET or POST");
  }
  for (const [index, method] of methods.entries()) {
    if (method !== "GET" && method !== "POST") {
      throw new SandboxOptionsInvalidError(`capabilities.fetch.methods[${index}]`, "must be GET or POST", method);
    }
  }
  const bounded = (field: FetchLimitName): number => {
    const value = capability[field] ?? DEFAULT_FETCH[field];
    const [min, max] = FETCH_BOUNDS[field];
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new SandboxOptionsInvalidError(
        `capabilities.fetch.${field}`,
        `must be an integer within ${min}..${max}`,
        value,
      );
    }
    return value;
  };
  return {
    allow: [...capability.allow],
    methods: [...methods],
    timeoutMs: bounded("timeoutMs"),
    maxResponseBytes: bounded("maxResponseBytes"),
    maxRequests: bounded("maxRequests"),
    maxRedirects: bounded("maxRedirects"),
  };
}

/** A parsed request of the Cryptlet. */
export interface FetchRequest {
  url: string;
  method: "GET" | "POST";
  headers: Record<string, string>;
  body: string | undefined;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** Content codings the host decodes (a `content-encoding` it did not ask for), each a streaming decoder. */
const DECODERS: Record<string, (() => NodeJS.ReadWriteStream) | undefined> = {
  gzip: () => zlib.createGunzip({ finishFlush: zlib.constants.Z_SYNC_FLUSH }),
  "x-gzip": () => zlib.createGunzip({ finishFlush: zlib.constants.Z_SYNC_FLUSH }),
  deflate: () => zlib.createInflate({ finishFlush: zlib.constants.Z_SYNC_FLUSH }),
  br: () => zlib.createBrotliDecompress({ finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH }),
  ...(typeof zlib.createZstdDecompress === "function" ? { zstd: () => zlib.createZstdDecompress() } : {}),
};

/** Most content codings applied to one response that the host undoes. */
const MAX_CONTENT_CODINGS = 2;

/** Thrown inside the body pipeline when a count passes `maxResponseBytes`. */
class BodyTooLarge extends Error {}

/**
 * Parses and checks one request of the Cryptlet (`{url, method?, headers?, body?}` as JSON, built by the prelude):
 * size bounds, method granted, body rules, header syntax. The allow-list is checked by the caller.
 * @throws FetchRequestInvalidError or CapabilityDeniedError naming what is wrong.
 */
export function parseFetchRequest(requestJson: string, policy: FetchPolicy): FetchRequest {
  if (typeof requestJson !== "string" || requestJson.length > MAX_REQUEST_JSON_CHARS) {
    throw new FetchRequestInvalidError(`the request is larger than ${MAX_REQUEST_JSON_CHARS} characters of JSON`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(requestJson);
  } catch {
    throw new FetchRequestInvalidError("the request is not JSON");
  }
  const r = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
  if (typeof r.url !== "string") throw new FetchRequestInvalidError("the URL is not a string");
  if (r.url.length > MAX_FETCH_URL_CHARS) {
    throw new FetchRequestInvalidError(`URL longer than ${MAX_FETCH_URL_CHARS} characters`);
  }
  if (r.method !== undefined && (typeof r.method !== "string" || r.method.length > MAX_FETCH_METHOD_CHARS)) {
    throw new FetchRequestInvalidError(`the method is not a string of at most ${MAX_FETCH_METHOD_CHARS} characters`);
  }
  const method = ((r.method as string | undefined) ?? "GET").toUpperCase();
  if (method !== "GET" && method !== "POST") {
    throw new CapabilityDeniedError("fetch", `method ${method.slice(0, 20)} is not allowed`, {
      method: method.slice(0, 20),
    });
  }
  if (!policy.methods.includes(method)) {
    throw new CapabilityDeniedError("fetch", `method ${method} is not granted`, { method });
  }
  if (r.body !== undefined && typeof r.body !== "string")
    throw new FetchRequestInvalidError("the body is not a string");
  if (r.body !== undefined && method === "GET") {
    throw new FetchRequestInvalidError("a GET request cannot have a body");
  }
  if (r.body !== undefined && Buffer.byteLength(r.body) > MAX_REQUEST_BODY_BYTES) {
    throw new FetchRequestInvalidError(`request body larger than ${MAX_REQUEST_BODY_BYTES} bytes`);
  }
  return { url: r.url, method, headers: checkHeaders(r.headers), body: r.body as string | undefined };
}

/**
 * What an engine needs of a run's fetcher: {@link HostFetcher} (the network) or `ReplayFetcher` (recorded
 * responses, for re-execution).
 */
export interface RunFetcher {
  /** Every completed fetch, in order. */
  readonly records: HostCallRecord[];
  /** The first violation or failure, if any; the run fails with it. */
  readonly failure: CryptletError | undefined;
  /**
   * Performs one request for the Cryptlet.
   * @returns `{url, status, contentType, body}` as JSON (body decoded as UTF-8).
   * @throws an Error with a short message for the Cryptlet; the typed error is kept in {@link failure}.
   */
  fetch(requestJson: string): Promise<string>;
}

/**
 * SHA-256 (hex) of the UTF-8 of the canonical JSON (RFC 8785: keys sorted by UTF-16 code units, no whitespace) of
 * the request headers with lower-cased names: the `requestHeadersSha256` of a {@link HostCallRecord}.
 */
export function requestHeadersSha256(headers: Readonly<Record<string, string>>): string {
  const lowered: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) lowered[name.toLowerCase()] = value;
  const names = Object.keys(lowered).sort();
  const canonical = `{${names.map((n) => `${JSON.stringify(n)}:${JSON.stringify(lowered[n])}`).join(",")}}`;
  return createHash("sha256").update(canonical, "utf8").digest("hex");
}

/** One run's fetcher over the network. */
export class HostFetcher implements RunFetcher {
  readonly #policy: FetchPolicy;
  readonly #runSignal: AbortSignal;
  /** Every completed fetch, in order. */
  readonly records: HostCallRecord[] = [];
  /** The first violation or failure, if any; the run fails with it. */
  failure: CryptletError | undefined;
  #count = 0;

  /**
   * @param policy - from {@link resolveFetchCapability}.
   * @param runSignal - aborted when the run ends or times out; cancels requests in flight.
   */
  constructor(policy: FetchPolicy, runSignal: AbortSignal) {
    this.#policy = policy;
    this.#runSignal = runSignal;
  }

  /**
   * Performs one request for the Cryptlet.
   * @param requestJson - `{url, method?, headers?, body?}` as JSON, built by the prelude (at most
   *   {@link MAX_REQUEST_JSON_CHARS} characters; longer is refused before it is parsed).
   * @returns `{url, status, contentType, body}` as JSON (body decoded as UTF-8).
   * @throws an Error with a short message for the Cryptlet; the typed error is kept in {@link failure}.
   */
  async fetch(requestJson: string): Promise<string> {
    try {
      return await this.#fetch(parseFetchRequest(requestJson, this.#policy));
    } catch (error) {
      const typed =
        error instanceof CapabilityDeniedError ||
        error instanceof FetchFailedError ||
        error instanceof FetchRequestInvalidError
          ? error
          : new FetchFailedError("network", "<unknown>", {}, error);
      this.failure ??= typed;
      // The Cryptlet sees only the short message; the typed error stays on the host.
      throw new Error(typed.shortMessage, { cause: error });
    }
  }

  #allowed(url: string): boolean {
    return isFetchAllowed(url, this.#policy.allow);
  }

  /** Counts one HTTP request (the first or a redirect hop) against `maxRequests`. */
  #countRequest(): void {
    if (this.#count >= this.#policy.maxRequests) {
      throw new CapabilityDeniedError("fetch", `more than ${this.#policy.maxRequests} HTTP requests in one run`, {
        maxRequests: this.#policy.maxRequests,
      });
    }
    this.#count++;
  }

  async #fetch(request: FetchRequest): Promise<string> {
    if (!this.#allowed(request.url)) {
      throw new CapabilityDeniedError("fetch", "URL not in the allow-list", { url: redactUrl(request.url) });
    }
    const timeout = AbortSignal.timeout(this.#policy.timeoutMs);
    const signal = AbortSignal.any([timeout, this.#runSignal]);
    const requestSha256 =
      request.body === undefined ? undefined : createHash("sha256").update(request.body, "utf8").digest("hex");
    let url = new URL(request.url).href;
    let method = request.method;
    let body = request.body;
    const redirects: string[] = [];
    try {
      for (;;) {
        this.#countRequest();
        const response = await send(url, method, request.headers, body, signal);
        const status = response.statusCode ?? 0;
        const location = response.headers.location;
        if (REDIRECT_STATUSES.has(status) && typeof location === "string") {
          response.destroy();
          if (redirects.length >= this.#policy.maxRedirects) {
            throw new FetchFailedError("too-many-redirects", redactUrl(request.url), {
              maxRedirects: this.#policy.maxRedirects,
            });
          }
          const next = new URL(location, url).href;
          if (!this.#allowed(next)) {
            throw new CapabilityDeniedError("fetch", "redirect to a URL not in the allow-list", {
              url: redactUrl(request.url),
              redirect: redactUrl(next),
            });
          }
          if (status === 303 || ((status === 301 || status === 302) && method === "POST")) {
            method = "GET";
            body = undefined;
          }
          redirects.push(next);
          url = next;
          continue;
        }
        const bytes = await this.#readBody(response, request.url, signal);
        const contentType = response.headers["content-type"] ?? null;
        const record: HostCallRecord = {
          kind: "fetch",
          method: request.method,
          url: request.url,
          finalUrl: url,
          redirects,
          status,
          contentType,
          requestHeadersSha256: requestHeadersSha256(request.headers),
          sha256: createHash("sha256").update(bytes).digest("hex"),
          bytes: bytes.length,
          body: bytes.toString("base64"),
        };
        if (requestSha256 !== undefined) record.requestSha256 = requestSha256;
        this.records.push(record);
        return JSON.stringify({ url, status, contentType, body: new TextDecoder().decode(bytes) });
      }
    } catch (error) {
      if (
        error instanceof CapabilityDeniedError ||
        error instanceof FetchFailedError ||
        error instanceof FetchRequestInvalidError
      ) {
        throw error;
      }
      const at = redactUrl(request.url);
      if (signal.aborted) {
        throw new FetchFailedError("timeout", at, { timeoutMs: this.#policy.timeoutMs }, error);
      }
      const code = (error as { code?: unknown }).code;
      if (code === "HPE_HEADER_OVERFLOW") {
        throw new FetchFailedError("response-too-large", at, { maxHeaderBytes: MAX_RESPONSE_HEADER_BYTES });
      }
      throw new FetchFailedError("network", at, {}, error);
    }
  }

  /**
   * Reads a response body within `maxResponseBytes`: the declared length, the bytes received and, for a
   * `content-encoding`, the decoded bytes, each checked as it grows; the connection is destroyed at the first
   * excess. Decoding errors and unknown codings are `invalid-response`.
   */
  async #readBody(response: IncomingMessage, requestedUrl: string, signal: AbortSignal): Promise<Buffer> {
    const max = this.#policy.maxResponseBytes;
    const at = redactUrl(requestedUrl);
    const tooLarge = (): FetchFailedError => new FetchFailedError("response-too-large", at, { maxResponseBytes: max });
    const declared = Number(response.headers["content-length"] ?? "NaN");
    if (Number.isFinite(declared) && declared > max) {
      response.destroy();
      throw tooLarge();
    }
    const codings = (response.headers["content-encoding"] ?? "")
      .split(",")
      .map((coding) => coding.trim().toLowerCase())
      .filter((coding) => coding !== "" && coding !== "identity")
      .reverse();
    const decoders = codings.map((coding) => DECODERS[coding]?.());
    if (codings.length > MAX_CONTENT_CODINGS || decoders.some((decoder) => decoder === undefined)) {
      response.destroy();
      throw new FetchFailedError("invalid-response", at, {
        contentEncoding: (response.headers["content-encoding"] ?? "").slice(0, 100),
      });
    }
    const bounded = (label: string) =>
      async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
        let total = 0;
        for await (const chunk of source) {
          total += chunk.length;
          if (total > max) throw new BodyTooLarge(label);
          yield chunk;
        }
      };
    const chunks: Buffer[] = [];
    let total = 0;
    try {
      await (pipeline as (streams: unknown[], options: { signal: AbortSignal }) => Promise<void>)(
        [
          response,
          bounded("received"),
          ...(decoders as NodeJS.ReadWriteStream[]),
          async (source: AsyncIterable<Buffer>) => {
            for await (const chunk of source) {
              total += chunk.length;
              if (total > max) throw new BodyTooLarge("decoded");
              chunks.push(chunk);
            }
          },
        ],
        { signal },
      );
    } catch (error) {
      response.destroy();
      if (error instanceof BodyTooLarge) throw tooLarge();
      if (signal.aborted) throw error;
      const code = (error as { code?: unknown }).code;
      if (codings.length > 0 && typeof code === "string" && /^(Z_|ERR_BROTLI|ERR__ERROR_FORMAT|ERR_ZSTD)/.test(code)) {
        throw new FetchFailedError("invalid-response", at, { contentEncoding: codings.reverse().join(", ") });
      }
      throw error;
    }
    return Buffer.concat(chunks, total);
  }
}

/**
 * Sends one HTTP request (a fresh connection, closed after it) and resolves with the response head. Every
 * request and response carries an error listener for its whole life, so nothing a server does can surface as an
 * uncaught exception.
 */
function send(
  url: string,
  method: string,
  headers: Record<string, string>,
  body: string | undefined,
  signal: AbortSignal,
): Promise<IncomingMessage> {
  const target = new URL(url);
  const outgoing: OutgoingHttpHeaders = Object.create(null) as OutgoingHttpHeaders;
  outgoing["user-agent"] = "node";
  outgoing.accept = "*/*";
  for (const [name, value] of Object.entries(headers)) outgoing[name.toLowerCase()] = value;
  outgoing["accept-encoding"] = "identity";
  outgoing.connection = "close";
  const payload = body === undefined ? undefined : Buffer.from(body, "utf8");
  if (payload !== undefined) outgoing["content-length"] = String(payload.length);
  return new Promise<IncomingMessage>((resolve, reject) => {
    const request = (target.protocol === "https:" ? httpsRequest : httpRequest)(
      target,
      { method, headers: outgoing, signal, agent: false, maxHeaderSize: MAX_RESPONSE_HEADER_BYTES },
      (response) => {
        response.on("error", () => undefined);
        resolve(response);
      },
    );
    request.on("error", (error) => reject(error));
    request.end(payload);
  });
}

/**
 * Checks a request's headers: at most {@link MAX_FETCH_HEADERS}, {@link MAX_FETCH_HEADER_CHARS} characters in
 * total, names that are HTTP tokens and not set by the host ({@link FORBIDDEN_REQUEST_HEADERS}, `proxy-*`,
 * `sec-*`), values without control characters or characters above U+00FF.
 * @throws FetchRequestInvalidError naming the header.
 */
function checkHeaders(raw: unknown): Record<string, string> {
  const headers: Record<string, string> = Object.create(null) as Record<string, string>;
  if (raw === undefined) return headers;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new FetchRequestInvalidError("headers must be an object of strings");
  }
  const entries = Object.entries(raw as Record<string, unknown>);
  if (entries.length > MAX_FETCH_HEADERS) throw new FetchRequestInvalidError(`more than ${MAX_FETCH_HEADERS} headers`);
  let chars = 0;
  for (const [name, value] of entries) {
    if (typeof value !== "string") throw new FetchRequestInvalidError("headers must be an object of strings");
    chars += name.length + value.length;
    if (chars > MAX_FETCH_HEADER_CHARS) {
      throw new FetchRequestInvalidError(`headers longer than ${MAX_FETCH_HEADER_CHARS} characters in total`);
    }
    const shown = name.slice(0, 64);
    if (!TOKEN.test(name)) {
      throw new FetchRequestInvalidError(`header name ${JSON.stringify(shown)} is not an HTTP token`, {
        header: shown,
      });
    }
    const lower = name.toLowerCase();
    if (FORBIDDEN_REQUEST_HEADERS.has(lower) || lower.startsWith("proxy-") || lower.startsWith("sec-")) {
      throw new FetchRequestInvalidError(`header ${shown} is set by the host, not the Cryptlet`, { header: shown });
    }
    if (!HEADER_VALUE.test(value)) {
      throw new FetchRequestInvalidError(
        `header ${shown} has a character HTTP does not allow in a value (a control character such as CR, LF or NUL, or one above U+00FF)`,
        { header: shown },
      );
    }
    headers[name] = value;
  }
  return headers;
}
