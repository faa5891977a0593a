/**
 * Proof bundles of the local stack's runs, one file per run: `<stateDir>/bundles/<runId>.json` holds the run's
 * composite receipt (its `bundle` is the proof bundle), so that every run can be checked afterwards with
 * `npx cryptlet verify` or opened with `npx cryptlet decrypt`. The folder is emptied when the stack starts.
 * @module
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";

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

/** Empties the bundles folder (a new stack has new chains: the old bundles' anchors are gone). */
export function clearBundles(stateDir: string): void {
  rmSync(bundlesDir(stateDir), { recursive: true, force: true });
}
