/**
 * Proof bundles of the local stack's runs, one file per run: `<stateDir>/bundles/<runId>.json` holds the run's
 * composite receipt (its `bundle` is the proof bundle), so that every run can be checked afterwards with
 * `npx cryptlet verify` or opened with `npx cryptlet decrypt`. Beside them, `<stateDir>/packages/` holds every
 * package the stack deployed as a built package folder (`cryptlet.json` + `bundle.js`), so that a bundle can be
 * re-executed (`npx cryptlet verify --rerun --package <stateDir>/packages`). Both folders are emptied when the stack
 * starts.
 * @module
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";

import { writeBuiltPackage, type BuiltPackage } from "../packages/builtPackage.ts";
import type { CompositeReceipt } from "../queue/results.ts";

/** The bundles folder of a state directory. */
export const bundlesDir = (stateDir: string): string => path.join(stateDir, "bundles");

/** Writes a run's composite receipt to its bundle file and returns the file's path. */
export function writeBundleFile(stateDir: string, receipt: CompositeReceipt): string {
  mkdirSync(bundlesDir(stateDir), { recursive: true });
  const file = path.join(bundlesDir(stateDir), `${receipt.runId}.json`);
  writeFileSync(file, JSON.stringify(receipt, null, 2));
  return file;
}

/** The built packages folder of a state directory. */
export const packagesDir = (stateDir: string): string => path.join(stateDir, "packages");

/**
 * Writes each package to `<stateDir>/packages/<name>@<version>/` (the name's `/` and `@` replaced by `_`) and returns
 * the folder.
 */
export async function writePackageFolders(stateDir: string, packages: readonly BuiltPackage[]): Promise<string> {
  for (const pkg of packages) {
    const folder = `${pkg.manifest.name.replace(/[^A-Za-z0-9._-]/g, "_")}@${pkg.manifest.version}`;
    await writeBuiltPackage(pkg, path.join(packagesDir(stateDir), folder));
  }
  return packagesDir(stateDir);
}

/** Empties the bundles and packages folders (a new stack has new chains: the old bundles' anchors are gone). */
export function clearBundles(stateDir: string): void {
  rmSync(bundlesDir(stateDir), { recursive: true, force: true });
  rmSync(packagesDir(stateDir), { recursive: true, force: true });
}
