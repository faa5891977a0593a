/**
 * The host side of the `fetch` capability: performs the Cryptlet's requests with Node's fetch (undici) against
 * the manifest's allow-list (origin plus path prefix, ../fetchAllow.ts), follows redirects by hand (each hop
 * checked and counted against `maxRequests`), bounds time and size, and records
 * every response for the `inputHash`.
 *
 * Any violation or failure is kept as the run's failure: the run fails with it even if the Cryptlet caught the
 * rejected promise, so a successful result only ever depends on recorded responses.
 */
import { createHash } from "node:crypto";
import { redactUrl, type CryptletError } from "../../errors.ts";
import { CapabilityDeniedError, FetchFailedError, SandboxOptionsInvalidError } from "../errors.ts";
import { checkFetchAllowEntry, isFetchAllowed } from "../fetchAllow.ts";
import {
  DEFAULT_FETCH,
  FETCH_BOUNDS,
  MAX_FETCH_ALLOW_ENTRIES,
  type FetchCapability,
  type FetchLimitName,
  type HostCallRecord,
} from "../SandboxEngine.ts";

/** {@link FetchCapability} with every default filled in. */
export interface FetchPolicy {
  allow: string[];
  methods: ("GET" | "POST")[];
  timeoutMs: number;
  maxResponseBytes: number;
  maxRequests: number;
  maxRedirects: number;
}

/** Maximum request body (POST) accepted from a Cryptlet, in bytes. */
export const MAX_REQUEST_BODY_BYTES = 65536;

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

interface FetchRequest {
  url: string;
  method: "GET" | "POST";
  headers: Record<string, string>;
  body: string | undefined;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** One run's fetcher. */
export class HostFetcher {
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
   * @param requestJson - `{url, method?, headers?, body?}` as JSON, built by the prelude.
   * @returns `{url, status, contentType, body}` as JSON (body decoded as UTF-8).
   * @throws an Error with a short message for the Cryptlet; the typed error is kept in {@link failure}.
   */
  async fetch(requestJson: string): Promise<string> {
    try {
      return await this.#fetch(this.#parse(requestJson));
    } catch (error) {
      const typed =
        error instanceof CapabilityDeniedError || error instanceof FetchFailedError
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

  #parse(requestJson: string): FetchRequest {
    const raw = JSON.parse(requestJson) as {
      url: string;
      method?: string;
      headers?: Record<string, string>;
      body?: string;
    };
    const method = (raw.method ?? "GET").toUpperCase();
    if (method !== "GET" && method !== "POST") {
      throw new CapabilityDeniedError("fetch", `method ${method.slice(0, 20)} is not allowed`, {
        method: method.slice(0, 20),
      });
    }
    if (!this.#policy.methods.includes(method)) {
      throw new CapabilityDeniedError("fetch", `method ${method} is not granted`, { method });
    }
    if (raw.body !== undefined && method === "GET") {
      throw new CapabilityDeniedError("fetch", "a GET request cannot have a body");
    }
    if (raw.body !== undefined && Buffer.byteLength(raw.body) > MAX_REQUEST_BODY_BYTES) {
      throw new CapabilityDeniedError("fetch", `request body exceeds ${MAX_REQUEST_BODY_BYTES} bytes`);
    }
    return { url: raw.url, method, headers: raw.headers ?? {}, body: raw.body };
  }

  async #fetch(request: FetchRequest): Promise<string> {
    if (!this.#allowed(request.url)) {
      throw new CapabilityDeniedError("fetch", "URL not in the allow-list", { url: redactUrl(request.url) });
    }
    const signal = AbortSignal.any([AbortSignal.timeout(this.#policy.timeoutMs), this.#runSignal]);
    const requestSha256 =
      request.body === undefined ? undefined : createHash("sha256").update(request.body, "utf8").digest("hex");
    let url = new URL(request.url).href;
    let method = request.method;
    let body = request.body;
    const redirects: string[] = [];
    try {
      for (;;) {
        this.#countRequest();
        const response = await fetch(url, { method, headers: request.headers, body, redirect: "manual", signal });
        const location = response.headers.get("location");
        if (REDIRECT_STATUSES.has(response.status) && location !== null) {
          await response.body?.cancel();
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
          if (response.status === 303 || ((response.status === 301 || response.status === 302) && method === "POST")) {
            method = "GET";
            body = undefined;
          }
          redirects.push(next);
          url = next;
          continue;
        }
        const bytes = await this.#readBody(response, request.url);
        const record: HostCallRecord = {
          kind: "fetch",
          method: request.method,
          url: request.url,
          finalUrl: url,
          redirects,
          status: response.status,
          contentType: response.headers.get("content-type"),
          sha256: createHash("sha256").update(bytes).digest("hex"),
          bytes: bytes.length,
        };
        if (requestSha256 !== undefined) record.requestSha256 = requestSha256;
        this.records.push(record);
        return JSON.stringify({
          url,
          status: response.status,
          contentType: record.contentType,
          body: new TextDecoder().decode(bytes),
        });
      }
    } catch (error) {
      if (error instanceof CapabilityDeniedError || error instanceof FetchFailedError) throw error;
      const name = (error as { name?: unknown }).name;
      if (name === "TimeoutError" || name === "AbortError") {
        throw new FetchFailedError("timeout", redactUrl(request.url), { timeoutMs: this.#policy.timeoutMs }, error);
      }
      throw new FetchFailedError("network", redactUrl(request.url), {}, error);
    }
  }

  async #readBody(response: Response, requestedUrl: string): Promise<Uint8Array> {
    const max = this.#policy.maxResponseBytes;
    const tooLarge = (): FetchFailedError =>
      new FetchFailedError("response-too-large", redactUrl(requestedUrl), { maxResponseBytes: max });
    const declared = Number(response.headers.get("content-length") ?? "NaN");
    if (Number.isFinite(declared) && declared > max) {
      await response.body?.cancel();
      throw tooLarge();
    }
    if (response.body === null) return new Uint8Array(0);
    const reader = response.body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > max) {
        await reader.cancel();
        throw tooLarge();
      }
      chunks.push(value);
    }
    return Buffer.concat(chunks, total);
  }
}
