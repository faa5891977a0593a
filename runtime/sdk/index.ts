/**
 * The Cryptlet SDK: what a Cryptlet author imports (`cryptlet-runtime/sdk`). It has no runtime dependencies and
 * uses no Node API, because it is bundled into the Cryptlet and runs inside the sandbox (isolated-vm or QuickJS),
 * where neither exists.
 *
 * A built Cryptlet is one classic script (esbuild `format: "iife"`, `globalName: "cryptlet"`); evaluating it defines
 * a global `cryptlet` whose `default` export is the object returned by {@link defineCryptlet}. The sandbox host
 * calls its `run(input, ctx)` once per event.
 *
 * @example
 * ```ts
 * import { defineCryptlet } from "cryptlet-runtime/sdk";
 *
 * export default defineCryptlet<{ prices: number[] }, { median: number }>({
 *   run(input, ctx) {
 *     const sorted = [...input.prices].sort((a, b) => a - b);
 *     ctx.log("observations", sorted.length);
 *     return { median: sorted[Math.floor(sorted.length / 2)] ?? 0 };
 *   },
 * });
 * ```
 * @packageDocumentation
 */

/** A JSON value: what crosses the sandbox boundary (inputs, outputs, events). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** A JSON object. */
export type JsonObject = { [key: string]: JsonValue };

/**
 * The answer to {@link CryptletFetch}: the body has been read in full by the host (within the size limit) before
 * the Cryptlet sees it, so `text()` and `json()` never touch the network.
 */
export interface FetchResponse {
  /** The final URL after redirects (each hop was checked against the allow-list). */
  readonly url: string;
  /** HTTP status code of the final response, e.g. `200`. */
  readonly status: number;
  /** `true` when `status` is 200–299. */
  readonly ok: boolean;
  /** Response headers, names in lower case. */
  readonly headers: Readonly<Record<string, string>>;
  /** The body decoded as UTF-8. */
  text(): Promise<string>;
  /** The body parsed as JSON; rejects with a `SyntaxError` when it is not JSON. */
  json<T = JsonValue>(): Promise<T>;
}

/** Options of {@link CryptletFetch}. Only `GET` and `POST` are allowed. */
export interface FetchInit {
  /** `"GET"` (default) or `"POST"`. */
  method?: "GET" | "POST";
  /** Request headers. */
  headers?: Record<string, string>;
  /** Request body (UTF-8 text), `POST` only. */
  body?: string;
}

/**
 * HTTP fetch performed by the host on the Cryptlet's behalf, present only when the manifest grants the `fetch`
 * capability. The URL (and every redirect hop) must match the manifest's allow-list, otherwise the promise rejects
 * and the run fails with `ERR_CAPABILITY_DENIED`. Each request (headers and body by hash) and response (body
 * included) is recorded in the run's evidence, which the result's `inputHash` commits to and on which a verifier
 * re-executes the Cryptlet (docs/proof-bundle.md, "Evidence").
 *
 * @param url - absolute `http:` or `https:` URL.
 * @param init - method, headers and body.
 */
export type CryptletFetch = (url: string, init?: FetchInit) => Promise<FetchResponse>;

/**
 * What a run is given besides its input. Everything in it is deterministic for a given event, so re-running the
 * same Cryptlet on the same inputs (by a verifier) gives the same output.
 *
 * @typeParam E - the event's shape (chain log, HTTP trigger body, schedule tick, oracle request).
 */
export interface CryptletContext<E = JsonObject> {
  /** The event that triggered the run (a deep copy; changing it changes nothing outside the run). */
  readonly event: E;
  /** Identifier of the request this run answers (0x-prefixed hex, 32 bytes). */
  readonly requestId: string;
  /** Identifier of the result being produced (0x-prefixed hex, 32 bytes); it also seeds `Math.random`. */
  readonly resultId: string;
  /**
   * The event's time in Unix **seconds** (an integer). Use it instead of `Date`, which does not exist in the
   * sandbox.
   */
  readonly now: number;
  /**
   * Appends one log line (arguments are JSON-encoded, strings as they are). Logs are bounded by the host
   * (count and bytes); lines beyond the bound are dropped and counted.
   */
  log(...args: unknown[]): void;
  /** Present only when the manifest grants the `fetch` capability. */
  readonly fetch?: CryptletFetch;
}

/**
 * A Cryptlet: one `run` function from a JSON input to a JSON-serialisable output.
 *
 * Rules enforced by the sandbox: no `process`, `require`, timers, filesystem or network (except `ctx.fetch` when
 * granted); `Date` is absent; `Math.random` is a PRNG seeded from `ctx.resultId`; the output must be JSON
 * (no functions, cycles, `BigInt`, `undefined` at the top level) and fit within the manifest's `maxOutputBytes`.
 *
 * @typeParam I - input shape.
 * @typeParam O - output shape.
 * @typeParam E - event shape.
 */
export interface CryptletDefinition<I = JsonValue, O = JsonValue, E = JsonObject> {
  /**
   * Computes the output. May be `async` (for `ctx.fetch`); throwing fails the run with `ERR_CRYPTLET_THREW`.
   * @param input - the run's input (a deep copy).
   * @param ctx - event, identifiers, time, log and granted capabilities.
   */
  run(input: I, ctx: CryptletContext<E>): O | Promise<O>;
}

/**
 * Declares a Cryptlet. It returns its argument unchanged; its purpose is typing, and to be the module's default
 * export, which the sandbox host looks up as `cryptlet.default.run`.
 *
 * @param definition - the Cryptlet's `run` function.
 * @returns the same definition.
 *
 * @example
 * ```ts
 * import { defineCryptlet } from "cryptlet-runtime/sdk";
 *
 * export default defineCryptlet({
 *   async run(input: { url: string }, ctx) {
 *     if (!ctx.fetch) throw new Error("fetch capability not granted");
 *     const response = await ctx.fetch(input.url);
 *     const body = await response.json<{ price: string }>();
 *     return { price: body.price, at: ctx.now };
 *   },
 * });
 * ```
 */
export function defineCryptlet<I = JsonValue, O = JsonValue, E = JsonObject>(
  definition: CryptletDefinition<I, O, E>,
): CryptletDefinition<I, O, E> {
  return definition;
}
