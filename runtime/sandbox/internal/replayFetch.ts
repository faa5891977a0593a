/**
 * The fetcher of a re-execution: answers the Cryptlet's `fetch` calls from a run's recorded exchanges
 * (docs/proof-bundle.md, "Evidence") instead of the network, and refuses any request that is not the recorded one
 * at that position.
 *
 * The request is parsed and checked exactly as {@link HostFetcher} does (size bounds, granted methods, header
 * syntax, the allow-list), then compared with the record: method, URL, the hash of the headers and the hash of the
 * body. Redirect hops recorded with a response count against `maxRequests` as they did in the original run. A
 * divergence is kept as the run's failure (`ERR_REPLAY_DIVERGED`), even if the Cryptlet catches the rejection:
 * a re-execution either consumed the recorded responses as the original run did, or it failed.
 *
 * A re-execution that makes *fewer* requests than were recorded completes; its records then differ from the
 * evidence's, and so does the input commitment recomputed from them (runtime/reexecution/reexecute.ts compares it).
 *
 * @module
 */
import { createHash } from "node:crypto";

import { redactUrl, type CryptletError } from "../../errors.ts";
import { CapabilityDeniedError, FetchFailedError, FetchRequestInvalidError, ReplayDivergedError } from "../errors.ts";
import { isFetchAllowed } from "../fetchAllow.ts";
import type { HostCallRecord } from "../SandboxEngine.ts";
import {
  HostFetcher,
  parseFetchRequest,
  requestHeadersSha256,
  type FetchPolicy,
  type RunFetcher,
} from "./hostFetch.ts";

/** A run's fetcher that serves recorded responses. */
export class ReplayFetcher implements RunFetcher {
  readonly #policy: FetchPolicy;
  readonly #recorded: readonly HostCallRecord[];
  /** The recorded exchanges consumed so far, in order. */
  readonly records: HostCallRecord[] = [];
  /** The first violation or divergence, if any; the run fails with it. */
  failure: CryptletError | undefined;
  #requests = 0;

  /**
   * @param policy - the manifest's fetch capability with defaults (as for the original run).
   * @param recorded - the original run's records, in call order (bodies included).
   */
  constructor(policy: FetchPolicy, recorded: readonly HostCallRecord[]) {
    this.#policy = policy;
    this.#recorded = recorded;
  }

  /**
   * Answers one request from the record at the next position.
   * @returns `{url, status, contentType, body}` as JSON, as {@link HostFetcher.fetch} would have.
   * @throws an Error with a short message for the Cryptlet; the typed error is kept in {@link failure}.
   */
  fetch(requestJson: string): Promise<string> {
    try {
      return Promise.resolve(this.#answer(requestJson));
    } catch (error) {
      const typed =
        error instanceof ReplayDivergedError ||
        error instanceof CapabilityDeniedError ||
        error instanceof FetchFailedError ||
        error instanceof FetchRequestInvalidError
          ? error
          : new FetchFailedError("invalid-response", "<recorded>", {}, error);
      this.failure ??= typed;
      return Promise.reject(new Error(typed.shortMessage, { cause: error }));
    }
  }

  #answer(requestJson: string): string {
    const request = parseFetchRequest(requestJson, this.#policy);
    if (!isFetchAllowed(request.url, this.#policy.allow)) {
      throw new CapabilityDeniedError("fetch", "URL not in the allow-list", { url: redactUrl(request.url) });
    }
    const index = this.records.length;
    const recorded = this.#recorded[index];
    if (recorded === undefined) {
      throw new ReplayDivergedError(
        index,
        "count",
        `the Cryptlet made request ${index + 1}, the evidence records ${this.#recorded.length}`,
      );
    }
    if (request.method !== recorded.method) {
      throw new ReplayDivergedError(index, "method", `method ${request.method}, recorded ${recorded.method}`);
    }
    if (request.url !== recorded.url) {
      throw new ReplayDivergedError(index, "url", `URL ${redactUrl(request.url)}, recorded ${redactUrl(recorded.url)}`);
    }
    if (requestHeadersSha256(request.headers) !== recorded.requestHeadersSha256) {
      throw new ReplayDivergedError(index, "headers", "the request headers differ from the recorded ones");
    }
    const bodySha256 =
      request.body === undefined ? undefined : createHash("sha256").update(request.body, "utf8").digest("hex");
    if (bodySha256 !== recorded.requestSha256) {
      throw new ReplayDivergedError(index, "body", "the request body differs from the recorded one");
    }
    const hops = 1 + recorded.redirects.length;
    if (this.#requests + hops > this.#policy.maxRequests) {
      throw new CapabilityDeniedError("fetch", `more than ${this.#policy.maxRequests} HTTP requests in one run`, {
        maxRequests: this.#policy.maxRequests,
      });
    }
    this.#requests += hops;
    const body = Buffer.from(recorded.body, "base64");
    if (body.length !== recorded.bytes || createHash("sha256").update(body).digest("hex") !== recorded.sha256) {
      throw new FetchFailedError("invalid-response", redactUrl(recorded.url), {
        reason: "the recorded body does not match its sha256",
      });
    }
    this.records.push(recorded);
    return JSON.stringify({
      url: recorded.finalUrl,
      status: recorded.status,
      contentType: recorded.contentType,
      body: new TextDecoder().decode(body),
    });
  }
}

/**
 * The fetcher of one run: recorded responses when `replay` is given, the network otherwise; none when the manifest
 * grants no `fetch` (a replay's records then go unconsumed, which the re-execution's input commitment shows).
 * @param policy - the resolved capability, or undefined when not granted.
 * @param signal - aborted when the run ends or times out (network fetches only).
 * @param replay - the records to serve (re-execution).
 */
export function createRunFetcher(
  policy: FetchPolicy | undefined,
  signal: AbortSignal,
  replay: readonly HostCallRecord[] | undefined,
): RunFetcher | undefined {
  if (policy === undefined) return undefined;
  return replay === undefined ? new HostFetcher(policy, signal) : new ReplayFetcher(policy, replay);
}
