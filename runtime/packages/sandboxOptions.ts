/**
 * The one mapping from a normalised manifest to the sandbox's load options. The manifest's `limits` and
 * `capabilities.fetch` are the sandbox's {@link LoadOptions} field for field (same names, units and defaults;
 * the manifest schema takes its bounds and defaults from runtime/sandbox/SandboxEngine.ts), so this is a copy,
 * never a translation. It is also the gate of the engine pin: a manifest whose `engineVersion` is not the
 * installed version of its engine gets no options.
 */
import { assertEngineVersion } from "../sandbox/engineVersion.ts";
import type { LoadOptions, SandboxEngineName } from "../sandbox/SandboxEngine.ts";
import type { Manifest } from "./manifest.ts";

/** What the sandbox needs from a manifest: which engine, and the options of `SandboxEngine.load`. */
export interface SandboxOptions {
  /** The engine the manifest asks for (`createSandboxEngine(engine)`). */
  engine: SandboxEngineName;
  /**
   * Its exact version: the manifest's `engineVersion`, checked equal to the installed one, to be recorded in the
   * attestation token.
   */
  engineVersion: string;
  /** Limits and granted capabilities (deep copies: the manifest is not shared with the engine). */
  load: LoadOptions;
}

/**
 * Derives the sandbox's options from a manifest returned by `parseManifest` (every default applied).
 *
 * @param manifest - a normalised {@link Manifest}.
 * @returns the engine name and version and {@link LoadOptions}: `limits` (memoryMb in MiB, timeoutMs in ms,
 *   maxOutputBytes in bytes) and, only when the manifest grants it, `capabilities.fetch` (allow, methods,
 *   timeoutMs in ms, maxResponseBytes in bytes, maxRequests, maxRedirects).
 * @throws `EngineVersionMismatchError` (`ERR_SANDBOX_ENGINE_VERSION_MISMATCH`, not retryable) when the manifest
 *   pins another version of its engine than the installed one; `details` has `engine`, `pinned`, `installed`.
 *
 * @example
 * ```ts
 * import { parseManifest } from "./runtime/packages/manifest.ts";
 * import { sandboxOptionsFromManifest } from "./runtime/packages/sandboxOptions.ts";
 * import { createSandboxEngine } from "./runtime/sandbox/index.ts";
 *
 * const manifest = parseManifest(manifestJsonText);
 * const { engine, load } = sandboxOptionsFromManifest(manifest);
 * const cryptlet = await createSandboxEngine(engine).load(bundleSource, load);
 * ```
 */
export function sandboxOptionsFromManifest(manifest: Manifest): SandboxOptions {
  const { version: engineVersion } = assertEngineVersion(manifest.engine, manifest.engineVersion);
  const load: LoadOptions = { limits: { ...manifest.limits }, capabilities: {} };
  const fetch = manifest.capabilities.fetch;
  if (fetch !== undefined) {
    load.capabilities = {
      fetch: {
        allow: [...fetch.allow],
        methods: [...fetch.methods],
        timeoutMs: fetch.timeoutMs,
        maxResponseBytes: fetch.maxResponseBytes,
        maxRequests: fetch.maxRequests,
        maxRedirects: fetch.maxRedirects,
      },
    };
  }
  return { engine: manifest.engine, engineVersion, load };
}
