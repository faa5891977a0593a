/**
 * The sandbox options a manifest grants: limits and capabilities, field for field.
 * @module
 */
import type { Manifest } from "../packages/manifest.ts";
import type { LoadOptions } from "../sandbox/SandboxEngine.ts";

/** Sandbox load options from a normalised manifest (same names, units and defaults). */
export function sandboxOptionsOf(manifest: Manifest): LoadOptions {
  const fetch = manifest.capabilities.fetch;
  return {
    limits: { ...manifest.limits },
    capabilities: fetch
      ? {
          fetch: {
            allow: [...fetch.allow],
            timeoutMs: fetch.timeoutMs,
            maxResponseBytes: fetch.maxResponseBytes,
            maxRequests: fetch.maxRequests,
          },
        }
      : {},
  };
}
