/**
 * The measurement of a Cryptlet package (byte-level definition in `docs/packages.md`, "codeHash").
 * The package's identifier, `cryptletId` = keccak256(utf8(name)), is `cryptletIdOf` in runtime/attestation/ids.ts.
 *
 * - `codeHash` = SHA-256 of the UTF-8 bytes of the RFC 8785 canonical JSON of
 *   `{"files": {<path>: <sha256 hex>}, "manifest": <normalised manifest>}`, as 0x-prefixed lower-case hex.
 */
import { createHash } from "node:crypto";
import canonicalizeModule from "canonicalize";
import type { Hex32 } from "../attestation/eip712.ts";
import type { Manifest } from "./manifest.ts";

// `canonicalize` is CommonJS with an ESM-style declaration: under Node's ESM the default import is the function,
// while TypeScript (NodeNext) types it as the module object. Accept both shapes.
const canonicalize = (
  typeof canonicalizeModule === "function"
    ? canonicalizeModule
    : (canonicalizeModule as unknown as { default: (input: unknown) => string | undefined }).default
) as (input: unknown) => string | undefined;

/** SHA-256 (FIPS 180-4) of `bytes`, as 64 lower-case hex digits without a prefix (what `sha256sum` prints). */
export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash("sha256")
    .update(typeof bytes === "string" ? Buffer.from(bytes, "utf8") : bytes)
    .digest("hex");
}

/**
 * The exact string whose SHA-256 is the `codeHash`: RFC 8785 (JCS) canonical JSON of
 * `{manifest, files: {path: sha256hex(bytes)}}`. Exposed so that tools and tests can show what is hashed.
 *
 * @param manifest - the normalised manifest (from `parseManifest`).
 * @param files - every shipped file of the built package by relative POSIX path (`bundle.js`), as bytes.
 * @returns the canonical JSON text.
 */
export function codeHashPreimage(manifest: Manifest, files: Readonly<Record<string, Uint8Array>>): string {
  const digests: Record<string, string> = {};
  for (const [path, bytes] of Object.entries(files)) digests[path] = sha256Hex(bytes);
  const text = canonicalize({ manifest, files: digests });
  if (text === undefined) throw new TypeError("the manifest has no JSON form");
  return text;
}

/**
 * The measurement of a built package (docs/packages.md): sha256(utf8(JCS({manifest, files}))).
 *
 * @param manifest - the normalised manifest.
 * @param files - every shipped file by relative POSIX path, as bytes.
 * @returns 0x-prefixed lower-case hex, 32 bytes.
 *
 * @example
 * ```ts
 * import { computeCodeHash } from "./runtime/packages/digest.ts";
 * import { parseManifest } from "./runtime/packages/manifest.ts";
 *
 * const manifest = parseManifest({ name: "demo", version: "1.0.0", entry: "src/index.ts", output: { abi: "uint256" } });
 * const codeHash = computeCodeHash(manifest, { "bundle.js": new TextEncoder().encode("var cryptlet = {};") });
 * ```
 */
export function computeCodeHash(manifest: Manifest, files: Readonly<Record<string, Uint8Array>>): Hex32 {
  return `0x${sha256Hex(codeHashPreimage(manifest, files))}`;
}
