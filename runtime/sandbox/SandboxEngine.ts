/**
 * The sandbox port: what the runtime needs from an engine that runs untrusted Cryptlet bundles. Two adapters
 * implement it, {@link IsolatedVmEngine} (V8 isolates, the default) and {@link QuickJsEngine} (QuickJS compiled
 * to WebAssembly); both pass the same conformance suite (test/sandbox/conformance.test.ts) and are described in
 * docs/sandbox.md.
 *
 * A bundle is one classic script (esbuild `format: "iife"`, `globalName: "cryptlet"`) that defines a global
 * `cryptlet` whose `default.run(input, ctx)` is the Cryptlet (see runtime/sdk/index.ts).
 *
 * @example
 * ```ts
 * import { createSandboxEngine } from "./runtime/sandbox/index.ts";
 *
 * const engine = createSandboxEngine(); // isolated-vm
 * const cryptlet = await engine.load(bundleSource, { limits: { memoryMb: 64, timeoutMs: 1000 } });
 * const { output, logs, hostCalls, durationMs } = await cryptlet.run(
 *   { prices: [1, 2, 3] },
 *   { event: { kind: "schedule" }, requestId: "0x…", resultId: "0x…", now: 1704412800 },
 * );
 * cryptlet.dispose();
 * ```
 */
import type { JsonValue } from "../sdk/index.ts";
import { SandboxOptionsInvalidError } from "./errors.ts";

/** Resource limits of one run (the manifest's `limits`, same names, units, defaults and bounds). */
export interface SandboxLimits {
  /** Heap available to the Cryptlet, in MiB (2^20 bytes). @defaultValue 64 (bounds 8..512) */
  memoryMb: number;
  /**
   * Wall time of one run in milliseconds: evaluating the bundle, `run`, and every host call.
   * @defaultValue 1000 (bounds 1..30000)
   */
  timeoutMs: number;
  /** Maximum size of the output's JSON, in UTF-8 bytes. @defaultValue 65536 (bounds 1..1048576) */
  maxOutputBytes: number;
}

/**
 * The default limits (docs/sandbox.md, "Limits"): 64 MiB, 1 s, 64 KiB. The manifest schema
 * (runtime/packages/manifest.ts) uses them.
 */
export const DEFAULT_LIMITS: Readonly<SandboxLimits> = Object.freeze({
  memoryMb: 64,
  timeoutMs: 1000,
  maxOutputBytes: 65536,
});

/** Lower bounds accepted for limits (the manifest schema uses the same). */
export const MIN_LIMITS: Readonly<SandboxLimits> = Object.freeze({
  memoryMb: 8,
  timeoutMs: 1,
  maxOutputBytes: 1,
});

/** Upper bounds accepted for limits (the manifest schema uses the same). */
export const MAX_LIMITS: Readonly<SandboxLimits> = Object.freeze({
  memoryMb: 512,
  timeoutMs: 30_000,
  maxOutputBytes: 1024 * 1024,
});

/**
 * The `fetch` capability: which URLs the host fetches on the Cryptlet's behalf, and how. It is the manifest's
 * `capabilities.fetch` field for field (same names, units, defaults and bounds; see
 * `sandboxOptionsFromManifest` in runtime/packages/sandboxOptions.ts).
 */
export interface FetchCapability {
  /**
   * Allow-list entries, each an origin plus a path prefix written as a normalised absolute URL, e.g.
   * `"https://api.coinbase.com/v2/prices/"` (the rule of `isFetchAllowed` in runtime/sandbox/fetchAllow.ts: same scheme,
   * host and port; the path equal to the entry's, or under it when the entry ends with `/`; no credentials).
   * Every redirect hop is checked again. 1..64 entries.
   */
  allow: string[];
  /** Methods granted. @defaultValue ["GET"] (`"POST"` may be added) */
  methods?: ("GET" | "POST")[];
  /**
   * Time limit of one fetch (every redirect hop and the body), in ms; the run's own `timeoutMs` still applies.
   * @defaultValue 2000 (bounds 1..30000)
   */
  timeoutMs?: number;
  /** Maximum body size of one response, in bytes. @defaultValue 1048576 (bounds 1..16777216) */
  maxResponseBytes?: number;
  /** Maximum HTTP requests per run; each redirect hop counts as one. @defaultValue 8 (bounds 1..64) */
  maxRequests?: number;
  /** Maximum redirects followed per fetch. @defaultValue 5 (bounds 0..20) */
  maxRedirects?: number;
}

/** The numeric options of {@link FetchCapability}. */
export type FetchLimitName = "timeoutMs" | "maxResponseBytes" | "maxRequests" | "maxRedirects";

/** Defaults of the optional {@link FetchCapability} fields (the manifest schema uses the same). */
export const DEFAULT_FETCH: Readonly<Record<FetchLimitName, number> & { methods: readonly ("GET" | "POST")[] }> =
  Object.freeze({
    methods: Object.freeze(["GET"] as const),
    timeoutMs: 2000,
    maxResponseBytes: 1024 * 1024,
    maxRequests: 8,
    maxRedirects: 5,
  });

/** Inclusive bounds `[min, max]` of the numeric {@link FetchCapability} fields (the manifest schema uses the same). */
export const FETCH_BOUNDS: Readonly<Record<FetchLimitName, readonly [number, number]>> = Object.freeze({
  timeoutMs: [1, 30_000],
  maxResponseBytes: [1, 16 * 1024 * 1024],
  maxRequests: [1, 64],
  maxRedirects: [0, 20],
});

/** Most entries in {@link FetchCapability.allow}. */
export const MAX_FETCH_ALLOW_ENTRIES = 64;

/** Capabilities granted by the manifest. Absent means not granted. */
export interface SandboxCapabilities {
  fetch?: FetchCapability;
}

/** Options of {@link SandboxEngine.load}. */
export interface LoadOptions {
  /** Limits; each absent field takes its {@link DEFAULT_LIMITS} value. */
  limits?: Partial<SandboxLimits>;
  /** Granted capabilities. @defaultValue none */
  capabilities?: SandboxCapabilities;
}

/** The data the host gives a run besides its input; the sandbox builds `ctx` from it (`log` and `fetch` are added there). */
export interface RunContextData {
  /** The triggering event (JSON; copied into the sandbox). */
  event: JsonValue;
  /** The request identifier (0x-prefixed hex). */
  requestId: string;
  /** The result identifier (0x-prefixed hex); `Math.random` is seeded from it (see prng.ts). */
  resultId: string;
  /** The event's time, in Unix seconds (a non-negative integer). */
  now: number;
}

/**
 * One fetch performed by the host for the Cryptlet: the request as the Cryptlet made it (its headers and body by
 * hash) and the response it was given, body included. The run's evidence is built from these records
 * (runtime/attestation/evidence.ts, docs/proof-bundle.md "Evidence"); re-execution replays them
 * ({@link RunOptions.replay}).
 */
export interface HostCallRecord {
  /** Always `"fetch"` today. */
  kind: "fetch";
  /** `"GET"` or `"POST"`. */
  method: string;
  /** The URL the Cryptlet asked for. */
  url: string;
  /**
   * SHA-256 (lower-case hex, 64 characters) of the UTF-8 of the RFC 8785 canonical JSON of the request headers the
   * Cryptlet set, names lower-cased (`{}` when it set none). The values are not kept: a header may carry a secret.
   */
  requestHeadersSha256: string;
  /** The URL of the final response, after redirects. */
  finalUrl: string;
  /** Each redirect hop's target, in order. */
  redirects: string[];
  /** HTTP status of the final response. */
  status: number;
  /** The final response's `content-type` header (the only header a Cryptlet sees), or `null`. */
  contentType: string | null;
  /** SHA-256 of the response body, lower-case hex (64 characters). */
  sha256: string;
  /** Length of the response body, in bytes. */
  bytes: number;
  /** SHA-256 of the request body (POST), lower-case hex; absent for GET. */
  requestSha256?: string;
  /** The response body bytes exactly as the Cryptlet was given them (after content decoding), base64 (RFC 4648 §4). */
  body: string;
}

/** Options of one run. */
export interface RunOptions {
  /**
   * Re-execution: answer the Cryptlet's fetches from these records, in order, instead of the network
   * (`ReplayFetcher`, internal/replayFetch.ts). Each request must be the recorded one (method, URL, headers and
   * body by hash), else the run fails with `ERR_REPLAY_DIVERGED`; the allow-list, methods and `maxRequests` of the
   * manifest still apply. The run's `hostCalls` are then the records it consumed.
   */
  replay?: readonly HostCallRecord[];
}

/** What a successful run returns. */
export interface RunResult {
  /** The output, parsed back from its JSON on the host (a fresh host object). */
  output: JsonValue;
  /** The output's JSON text exactly as the Cryptlet's sandbox produced it. */
  outputJson: string;
  /** Lines from `ctx.log` / `console.log`, at most 100 lines of at most 1,024 characters each. */
  logs: string[];
  /** Log lines dropped beyond the bound. */
  logsDropped: number;
  /** Each fetch the host performed, in order. */
  hostCalls: HostCallRecord[];
  /** Wall time of the run in ms (fractional), from the start of bundle evaluation to the output. */
  durationMs: number;
}

/** A bundle loaded into an engine; runs are serialised (one at a time per loaded Cryptlet). */
export interface SandboxedCryptlet {
  /** The engine's name. */
  readonly engine: SandboxEngineName;
  /** The effective limits. */
  readonly limits: Readonly<SandboxLimits>;
  /**
   * Runs the Cryptlet once in a fresh global environment (no state survives from an earlier run).
   * @param input - the run's input, JSON (deep-copied into the sandbox).
   * @param context - event, identifiers and time.
   * @param options - replay of recorded fetches (re-execution).
   * @throws one of the errors of errors.ts (`ERR_SANDBOX_TIMEOUT`, `ERR_CRYPTLET_THREW`, `ERR_REPLAY_DIVERGED`, ...).
   */
  run(input: JsonValue, context: RunContextData, options?: RunOptions): Promise<RunResult>;
  /** Frees the engine's resources. Runs after `dispose` fail with `ERR_SANDBOX_ENGINE_FAILURE`. */
  dispose(): void;
}

/** The engines available. */
export type SandboxEngineName = "isolated-vm" | "quickjs";

/**
 * The engine used when none is named: by `createSandboxEngine()` and for a manifest without `engine`. The one
 * place the default is chosen (isolated-vm: a V8 isolate on its own thread, docs/sandbox.md, "What each engine
 * guarantees").
 */
export const DEFAULT_ENGINE: SandboxEngineName = "isolated-vm";

/** The port. */
export interface SandboxEngine {
  /** The engine's name, recorded in the attestation token. */
  readonly name: SandboxEngineName;
  /**
   * Loads a bundle: compiles it and checks it defines `cryptlet.default.run`.
   * @param bundle - the script's source text.
   * @param options - limits and capabilities.
   * @throws BundleInvalidError (`ERR_BUNDLE_INVALID`), SandboxOptionsInvalidError, or the run errors of its
   * top-level code (it is evaluated once to check its shape).
   */
  load(bundle: string, options?: LoadOptions): Promise<SandboxedCryptlet>;
}

function checkInteger(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new SandboxOptionsInvalidError(field, "must be an integer", value);
  }
  if (value < min || value > max) throw new SandboxOptionsInvalidError(field, `must be within ${min}..${max}`, value);
  return value;
}

/**
 * Completes and validates limits.
 * @throws SandboxOptionsInvalidError (`ERR_SANDBOX_OPTIONS_INVALID`) naming the field in `details.field`
 *   (e.g. `limits.memoryMb`, "must be within 8..512").
 */
export function resolveLimits(limits: Partial<SandboxLimits> = {}): SandboxLimits {
  return {
    memoryMb: checkInteger(
      "limits.memoryMb",
      limits.memoryMb ?? DEFAULT_LIMITS.memoryMb,
      MIN_LIMITS.memoryMb,
      MAX_LIMITS.memoryMb,
    ),
    timeoutMs: checkInteger(
      "limits.timeoutMs",
      limits.timeoutMs ?? DEFAULT_LIMITS.timeoutMs,
      MIN_LIMITS.timeoutMs,
      MAX_LIMITS.timeoutMs,
    ),
    maxOutputBytes: checkInteger(
      "limits.maxOutputBytes",
      limits.maxOutputBytes ?? DEFAULT_LIMITS.maxOutputBytes,
      MIN_LIMITS.maxOutputBytes,
      MAX_LIMITS.maxOutputBytes,
    ),
  };
}

/**
 * Validates the run context data.
 * @throws SandboxOptionsInvalidError naming the field.
 */
export function checkRunContext(context: RunContextData): void {
  if (typeof context !== "object" || context === null)
    throw new SandboxOptionsInvalidError("context", "must be an object");
  for (const field of ["requestId", "resultId"] as const) {
    if (typeof context[field] !== "string" || !/^0x[0-9a-fA-F]+$/.test(context[field])) {
      throw new SandboxOptionsInvalidError(`context.${field}`, "must be a 0x-prefixed hex string", context[field]);
    }
  }
  if (typeof context.now !== "number" || !Number.isSafeInteger(context.now) || context.now < 0) {
    throw new SandboxOptionsInvalidError("context.now", "must be a non-negative integer (Unix seconds)", context.now);
  }
}
