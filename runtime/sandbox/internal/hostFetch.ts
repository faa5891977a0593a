/**
 * The host side of the `fetch` capability: performs the Cryptlet's requests with Node's fetch (undici) against
 * the manifest's allow-list, follows redirects by hand (each hop checked), bounds time and size, and records
 * every response for the `inputHash`.
 *
 * Any violation or failure is kept as the run's failure: the run fails with it even if the Cryptlet caught the
 * rejected promise, so a successful result only ever depends on recorded responses.
 */
import { createHash } from "node:crypto";
import { redactUrl, type CryptletError } from "../../errors.ts";
import { CapabilityDeniedError, FetchFailedError, SandboxOptionsInvalidError } from "../errors.ts";
import type { FetchCapability, HostCallRecord } from "../SandboxEngine.ts";

/** {@link FetchCapability} with every default filled in and its patterns compiled. */
export interface FetchPolicy {
  patterns: URLPattern[];
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
 * Validates the capability and compiles its URL patterns.
 * @throws SandboxOptionsInvalidError naming the field (e.g. `capabilities.fetch.allow[0]`).
 */
export function resolveFetchCapability(capability: FetchCapability | undefined): FetchPolicy | undefined {
  if (capability === undefined) return undefined;
  if (!Array.isArray(capability.allow) || capability.allow.length === 0) {
    throw new SandboxOptionsInvalidError("capabilities.fetch.allow", "must be a non-empty array of URL patterns");
  }
  const patterns = capability.allow.map((pattern, index) => {
    if (typeof pattern !== "string" || !/^https?:\/\//.test(pattern)) {
      throw new SandboxOptionsInvalidError(
        `capabilities.fetch.allow[${index}]`,
        "must be a URL pattern starting with http:// or https://",
        pattern,
      );
    }
    try {
      return new URLPattern(pattern);
    } catch {
      throw new SandboxOptionsInvalidError(`capabilities.fetch.allow[${index}]`, "is not a valid URLPattern", pattern);
    }
  });
  const methods = capability.methods ?? ["GET"];
  for (const [index, method] of methods.entries()) {
    if (method !== "GET" && method !== "POST") {
      throw new SandboxOptionsInvalidError(`capabilities.fetch.methods[${index}]`, "must be GET or POST", method);
    }
  }
  const positive = (field: keyof FetchCapability, value: number | undefined, fallback: number, max: number): number => {
    const v = value ?? fallback;
    if (!Number.isInteger(v) || v < 0 || v > max) {
      throw new SandboxOptionsInvalidError(`capabilities.fetch.${field}`, `must be an integer within 0..${max}`, v);
    }
    return v;
  };
  return {
    patterns,
    allow: [...capability.allow],
    methods: [...methods],
    timeoutMs: positive("timeoutMs", capability.timeoutMs, 5000, 60_000),
    maxResponseBytes: positive("maxResponseBytes", capability.maxResponseBytes, 1024 * 1024, 64 * 1024 * 1024),
    maxRequests: positive("maxRequests", capability.maxRequests, 16, 1000),
    maxRedirects: positive("maxRedirects", capability.maxRedirects, 5, 20),
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
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return false;
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return false;
    if (parsed.username !== "" || parsed.password !== "") return false;
    return this.#policy.patterns.some((pattern) => pattern.test(parsed.href));
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
    if (this.#count >= this.#policy.maxRequests) {
      throw new CapabilityDeniedError("fetch", `more than ${this.#policy.maxRequests} requests in one run`, {
        maxRequests: this.#policy.maxRequests,
      });
    }
    this.#count++;
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
