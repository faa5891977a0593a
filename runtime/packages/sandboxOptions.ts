/**
 * The one mapping from a normalised manifest to the sandbox's load options. The manifest's `limits` and
 * `capabilities.fetch` are the sandbox's {@link LoadOptions} field for field (same names, units and defaults;
 * the manifest schema takes its bounds and defaults from runtime/sandbox/SandboxEngine.ts), so this is a copy,
 * never a translation.
 */
import type { LoadOptions, SandboxEngineName } from "../sandbox/SandboxEngine.ts";
import type { Manifest } from "./manifest.ts";

/** What the sandbox needs from a manifest: which engine, and the options of `SandboxEngine.load`. */
export interface SandboxOptions {
  /** The engine the manifest asks for (`createSandboxEngine(engine)`). */
  engine: SandboxEngineName;
  /** Limits and granted capabilities (deep copies: the manifest is not shared with the engine). */
  load: LoadOptions;
}

/**
 * Derives the sandbox's options from a manifest returned by `parseManifest` (every default applied).
 *
 * @param manifest - a normalised {@link Manifest}.
 * @returns the engine name and {@link LoadOptions}: `limits` (memoryMb in MiB, timeoutMs in ms, maxOutputBytes
 *   in bytes) and, only when the manifest grants it, `capabilities.fetch` (allow, methods, timeoutMs in ms,
 *   maxResponseBytes in bytes, maxRequests, maxRedirects).
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
  return { engine: manifest.engine, load };
}
