/**
 * `cryptlet build <dir>`: builds a package reproducibly into `<dir>/dist` (see docs/packages.md) and reports its
 * measurement.
 *
 * @module
 */
import path from "node:path";

import { buildPackage } from "../../packages/build.ts";
import type { Hex32 } from "../../attestation/eip712.ts";

/** What {@link buildCryptlet} reports. */
export interface BuildResult {
  name: string;
  version: string;
  cryptletId: Hex32;
  /** The measurement contracts approve (sha256, 0x hex). */
  codeHash: Hex32;
  /** Size of `bundle.js`, bytes. */
  bundleBytes: number;
  /** Absolute output folder. */
  outDir: string;
}

/**
 * Builds `dir` into `outDir` (relative to `dir`, default `dist`).
 * @throws the builder's `ERR_MANIFEST_INVALID`, `ERR_PACKAGE_BUILD_FAILED`, `ERR_PACKAGE_INVALID`.
 *
 * @example
 * ```ts
 * import { buildCryptlet } from "./runtime/cli/commands/build.ts";
 * const { codeHash } = await buildCryptlet("cryptlets/price-median");
 * ```
 */
export async function buildCryptlet(dir: string, outDir = "dist"): Promise<BuildResult> {
  const built = await buildPackage(dir, { outDir });
  return {
    name: built.manifest.name,
    version: built.manifest.version,
    cryptletId: built.cryptletId,
    codeHash: built.codeHash,
    bundleBytes: built.files["bundle.js"]?.byteLength ?? 0,
    outDir: path.resolve(dir, outDir),
  };
}
