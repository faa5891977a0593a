/**
 * `cryptlet verify --rerun` (and `cryptlet report --rerun`): the re-execution options of a verification. The
 * packages come from built package folders (`--package`, as `cryptlet build` and `npm start` write them), a sealed
 * result's evidence and plaintext are opened with a party's private JWK (`--party-key`), and the run happens in a
 * sandbox process (runtime/reexecution/reexecute.ts). One bundle verified against several chains is re-executed once.
 *
 * @module
 */
import { readFile } from "node:fs/promises";

import type { JWK } from "jose";

import type { ProofBundle } from "../../attestation/bundle.ts";
import type { RunEvidence } from "../../attestation/evidence.ts";
import type { PartyKey, Reexecutor, VerifyBundleOptions } from "../../attestation/verifyBundle.ts";
import { CliUsageError } from "../errors.ts";

/** The command-line options that concern re-execution. */
export interface RerunCommandOptions {
  /** `--rerun`: re-execute the Cryptlet on the bundle's evidence (requires the evidence and the package). */
  rerun?: boolean;
  /** `--package <dir...>`: built package folders, or folders of them, searched by `codeHash`. */
  packages?: string[];
  /** `--party-key <file...>`: private JWK files of parties, to open sealed evidence and results. */
  partyKeys?: string[];
}

/** What a verification adds to `verifyBundle`'s options, and the resources to release after it. */
export interface RerunSetup {
  options: Pick<VerifyBundleOptions, "reexecutor" | "partyKeys">;
  close(): Promise<void>;
}

/** A re-executor that re-runs each `resultId` once and reuses its verdict (a bundle checked on several chains). */
function once(inner: Reexecutor): Reexecutor {
  const seen = new Map<string, ReturnType<Reexecutor["reexecute"]>>();
  return {
    reexecute(bundle: ProofBundle, evidence: RunEvidence, options: { partyKeys: readonly PartyKey[] }) {
      const key = `${bundle.result.resultId}:${bundle.result.codeHash}:${bundle.result.inputHash}:${bundle.result.outputHash}`;
      let verdict = seen.get(key);
      if (verdict === undefined) {
        verdict = inner.reexecute(bundle, evidence, options);
        seen.set(key, verdict);
      }
      return verdict;
    },
  };
}

/**
 * Reads the party keys and, with `--rerun`, loads the packages and starts the re-executor.
 * @throws {@link CliUsageError} (exit 2) for `--rerun` without `--package`, `--package` without `--rerun`, or a key
 *   file that is not a private JWK; the package loaders' errors (`ERR_PACKAGE_INVALID`, `ERR_MANIFEST_INVALID`).
 */
export async function rerunSetup(options: RerunCommandOptions): Promise<RerunSetup> {
  if (options.rerun && (options.packages === undefined || options.packages.length === 0)) {
    throw new CliUsageError(
      "--rerun needs --package <dir>: the built package folders to find the result's codeHash in (npm start writes them to .cryptlet/packages; cryptlet build to dist/)",
      "--package",
    );
  }
  if (!options.rerun && options.packages !== undefined) {
    throw new CliUsageError("--package is used by --rerun only", "--package");
  }
  const partyKeys: JWK[] = [];
  for (const file of options.partyKeys ?? []) {
    let jwk: JWK;
    try {
      jwk = JSON.parse(await readFile(file, "utf8")) as JWK;
    } catch (error) {
      throw new CliUsageError(
        `--party-key ${file}: not a readable JSON file (${(error as Error).message})`,
        "--party-key",
      );
    }
    if (typeof jwk.kty !== "string" || jwk.d === undefined) {
      throw new CliUsageError(`--party-key ${file}: not a private JWK (no "d")`, "--party-key");
    }
    partyKeys.push(jwk);
  }
  if (!options.rerun) return { options: partyKeys.length > 0 ? { partyKeys } : {}, close: async () => undefined };
  const [{ createReexecutor }, { packagesFromPaths }] = await Promise.all([
    import("../../reexecution/reexecute.ts"),
    import("../../reexecution/packageSources.ts"),
  ]);
  const handle = createReexecutor({ packages: await packagesFromPaths(options.packages ?? []) });
  return { options: { reexecutor: once(handle), partyKeys }, close: () => handle.close() };
}
