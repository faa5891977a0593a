/**
 * A built Cryptlet package: the normalised manifest, the shipped files (today exactly one, `bundle.js`), and the
 * identifiers derived from them. Also its folder layout on disk (`dist/` by default):
 *
 * ```
 * dist/
 *   cryptlet.json   the normalised manifest (JSON, 2-space indent, final newline; informative formatting)
 *   bundle.js       the bundle, UTF-8 (see docs/packages.md, "Bundle format")
 * ```
 *
 * The `codeHash` and `cryptletId` are never stored on disk: they are recomputed from the bytes on every load.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cryptletIdOf as computeCryptletId } from "../attestation/ids.ts";
import { computeCodeHash } from "./digest.ts";
import type { Hex32 } from "../attestation/eip712.ts";
import { PackageInvalidError } from "./errors.ts";
import { parseManifest } from "./manifest.ts";
import type { Manifest } from "./manifest.ts";

/** File name of the manifest in a built package folder. */
export const MANIFEST_FILE = "cryptlet.json";
/** File name (and `files` key) of the bundle. */
export const BUNDLE_FILE = "bundle.js";

/** A built package, ready to sign, deploy and run. */
export interface BuiltPackage {
  /** The normalised manifest (every default applied). */
  readonly manifest: Manifest;
  /** The text of `bundle.js`: one classic script defining the global `cryptlet` (see docs/packages.md). */
  readonly bundle: string;
  /** Every shipped file by relative POSIX path, as bytes; includes `bundle.js`. */
  readonly files: Readonly<Record<string, Uint8Array>>;
  /** The measurement: sha256 of the canonical JSON of `{manifest, files}` (0x hex, 32 bytes). */
  readonly codeHash: Hex32;
  /** keccak256(utf8(manifest.name)) (0x hex, 32 bytes). */
  readonly cryptletId: Hex32;
}

const FILE_PATH = /^(?!.*(?:^|\/)\.{1,2}(?:\/|$))[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*$/;

/**
 * Assembles a {@link BuiltPackage} from a manifest and its files, validating both and recomputing `codeHash` and
 * `cryptletId` from the bytes (a hash given by anyone else is never trusted). Used when loading from disk and on
 * deploy.
 *
 * @param manifest - a manifest (parsed JSON or text); it is validated and normalised.
 * @param files - shipped files by relative POSIX path; must contain `bundle.js`, valid UTF-8.
 * @throws `ERR_MANIFEST_INVALID` for a bad manifest; `ERR_PACKAGE_INVALID` for a missing bundle, a bad path or
 *   a bundle that is not UTF-8.
 *
 * @example
 * ```ts
 * import { assembleBuiltPackage } from "./runtime/packages/builtPackage.ts";
 *
 * const built = assembleBuiltPackage(
 *   { name: "demo", version: "1.0.0", entry: "src/index.ts", output: { abi: "uint256" } },
 *   { "bundle.js": new TextEncoder().encode("var cryptlet = (() => ({ default: { run: () => 1 } }))();\n") },
 * );
 * built.codeHash; // "0x…"
 * ```
 */
export function assembleBuiltPackage(manifest: unknown, files: Readonly<Record<string, Uint8Array>>): BuiltPackage {
  const normalised = parseManifest(manifest);
  const copied: Record<string, Uint8Array> = {};
  for (const [path, bytes] of Object.entries(files)) {
    if (!FILE_PATH.test(path) || path === MANIFEST_FILE) {
      throw new PackageInvalidError(`invalid file path in package: ${JSON.stringify(path)}`, { path });
    }
    if (!(bytes instanceof Uint8Array)) {
      throw new PackageInvalidError(`file ${path} must be bytes (Uint8Array)`, { path });
    }
    copied[path] = Uint8Array.from(bytes);
  }
  const bundleBytes = copied[BUNDLE_FILE];
  if (bundleBytes === undefined) throw new PackageInvalidError(`package has no ${BUNDLE_FILE}`, { path: BUNDLE_FILE });
  let bundle: string;
  try {
    bundle = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bundleBytes);
  } catch (cause) {
    throw new PackageInvalidError(`${BUNDLE_FILE} is not valid UTF-8`, { path: BUNDLE_FILE }, { cause });
  }
  return {
    manifest: normalised,
    bundle,
    files: copied,
    codeHash: computeCodeHash(normalised, copied),
    cryptletId: computeCryptletId(normalised.name),
  };
}

/**
 * Writes a built package to `outDir` (created if missing): `cryptlet.json` and every file of `built.files`.
 *
 * @param built - the package.
 * @param outDir - target folder.
 * @example
 * ```ts
 * import { buildPackage } from "./runtime/packages/build.ts";
 * import { writeBuiltPackage } from "./runtime/packages/builtPackage.ts";
 * const built = await buildPackage("cryptlets/price-median", { outDir: false });
 * await writeBuiltPackage(built, "/tmp/price-median-dist");
 * ```
 */
export async function writeBuiltPackage(built: BuiltPackage, outDir: string): Promise<void> {
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, MANIFEST_FILE), `${JSON.stringify(built.manifest, null, 2)}\n`);
  for (const [path, bytes] of Object.entries(built.files)) {
    const target = join(outDir, ...path.split("/"));
    await mkdir(join(target, ".."), { recursive: true });
    await writeFile(target, bytes);
  }
}

/**
 * Reads a built package folder (as written by `buildPackage` / {@link writeBuiltPackage}) and recomputes its
 * `codeHash` and `cryptletId`. Reads `cryptlet.json` and `bundle.js`; other files in the folder are ignored.
 *
 * @param distDir - the folder, e.g. `cryptlets/price-median/dist`.
 * @throws `ERR_PACKAGE_INVALID` when a file is missing; `ERR_MANIFEST_INVALID` for a bad manifest.
 * @example
 * ```ts
 * import { loadBuiltPackage } from "./runtime/packages/builtPackage.ts";
 * const built = await loadBuiltPackage("cryptlets/price-median/dist");
 * console.log(built.manifest.name, built.codeHash);
 * ```
 */
export async function loadBuiltPackage(distDir: string): Promise<BuiltPackage> {
  const read = async (name: string): Promise<Buffer> => {
    try {
      return await readFile(join(distDir, name));
    } catch (cause) {
      throw new PackageInvalidError(`built package folder has no readable ${name}`, { path: name }, { cause });
    }
  };
  const manifestText = (await read(MANIFEST_FILE)).toString("utf8");
  const bundle = await read(BUNDLE_FILE);
  return assembleBuiltPackage(manifestText, { [BUNDLE_FILE]: new Uint8Array(bundle) });
}
