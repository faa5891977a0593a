/**
 * Where a re-execution finds the package a result names by its `codeHash`: built package folders on disk
 * (`cryptlet.json` + `bundle.js`, as `cryptlet build` and `npm start` write them) or a runtime's package store. A
 * package's `codeHash` is always recomputed from its bytes (runtime/packages/builtPackage.ts), never taken from a
 * file name or a label, so a source cannot pass one package off as another.
 *
 * @module
 */
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";

import { loadBuiltPackage, MANIFEST_FILE, type BuiltPackage } from "../packages/builtPackage.ts";
import type { PackageStore } from "../packages/PackageStore.ts";

/** A place packages are found by `codeHash`. */
export interface PackageSource {
  /** Where it looks, for messages (e.g. "2 package folder(s) under .cryptlet/packages"). */
  readonly description: string;
  /**
   * The package whose recomputed `codeHash` is `codeHash` (0x hex, any case), or undefined.
   * @throws the store's errors other than "not found".
   */
  byCodeHash(codeHash: string): Promise<BuiltPackage | undefined>;
}

async function isPackageFolder(dir: string): Promise<boolean> {
  return stat(join(dir, MANIFEST_FILE)).then(
    (s) => s.isFile(),
    () => false,
  );
}

/**
 * Packages from built package folders: each path is a package folder, or a folder whose direct subfolders are
 * package folders (as `<state>/packages/` of `npm start`).
 * @throws `ERR_PACKAGE_INVALID` / `ERR_MANIFEST_INVALID` for a folder that has a manifest but is not a valid package;
 *   an `Error` naming a path that is neither.
 */
export async function packagesFromPaths(paths: readonly string[]): Promise<PackageSource> {
  const byHash = new Map<string, BuiltPackage>();
  let folders = 0;
  for (const path of paths) {
    const candidates = (await isPackageFolder(path))
      ? [path]
      : await readdir(path, { withFileTypes: true }).then(
          (entries) => entries.filter((e) => e.isDirectory()).map((e) => join(path, e.name)),
          (cause: unknown) => {
            throw new Error(`--package ${path}: not a built package folder nor a folder of them`, { cause });
          },
        );
    for (const dir of candidates) {
      if (!(await isPackageFolder(dir))) continue;
      const pkg = await loadBuiltPackage(dir);
      byHash.set(pkg.codeHash.toLowerCase(), pkg);
      folders++;
    }
  }
  return {
    description: `${folders} package folder(s) under ${paths.join(", ")}`,
    byCodeHash: (codeHash) => Promise.resolve(byHash.get(codeHash.toLowerCase())),
  };
}

/** Packages from a runtime's package store (the API's `POST /v1/verify` with `rerun`). */
export function packagesFromStore(store: PackageStore): PackageSource {
  return {
    description: "the package store",
    async byCodeHash(codeHash) {
      try {
        return await store.getByCodeHash(codeHash);
      } catch (error) {
        if ((error as { code?: unknown }).code === "ERR_PACKAGE_NOT_FOUND") return undefined;
        throw error;
      }
    },
  };
}
