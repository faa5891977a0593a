/**
 * Re-execution: run a Cryptlet package again, in the sandbox, on a run's evidence (docs/proof-bundle.md,
 * "Evidence"), and compare what it computes with what was attested. The same primitive serves `cryptlet verify
 * --rerun` (an outsider checking a bundle) and a consortium member re-computing a leader's result before it
 * co-signs.
 *
 * {@link reexecuteRun} is the primitive: package + evidence → the re-run's `inputHash` (the commitment of the
 * evidence rebuilt from the fetches the re-run actually made, answered from the recorded ones), its output, the
 * output's JSON, and for a public Cryptlet the ABI payload and `outputHash`. {@link createReexecutor} wraps it as the
 * `reexecution` check of `verifyBundle` (runtime/attestation/verifyBundle.ts): it finds the package by `codeHash`,
 * re-runs it and compares `inputHash` and `outputHash` (for a sealed result, whose JWE is randomised, the re-run's
 * output JSON with the plaintext a party key opens).
 *
 * @module
 */
import { keccak256 } from "ethers";

import type { ProofBundle } from "../attestation/bundle.ts";
import type { Hex32 } from "../attestation/eip712.ts";
import {
  buildRunEvidence,
  evidenceFetchRecords,
  evidenceInputHash,
  type RunEvidence,
} from "../attestation/evidence.ts";
import { encodeManifestOutput } from "../attestation/hashing.ts";
import type { PartyKey, Reexecutor } from "../attestation/verifyBundle.ts";
import type { BuiltPackage } from "../packages/builtPackage.ts";
import { sandboxOptionsFromManifest } from "../packages/sandboxOptions.ts";
import { SandboxPool } from "../sandbox/pool.ts";
import type { JsonValue } from "../sdk/index.ts";
import { open } from "../sealing/open.ts";
import type { PackageSource } from "./packageSources.ts";

/** What a re-run computed. */
export interface RerunOutcome {
  /** The commitment of the evidence rebuilt from the re-run (its context and the fetches it made). */
  inputHash: Hex32;
  /** The output as parsed on the host. */
  output: JsonValue;
  /** The output's JSON exactly as the sandbox produced it (a sealed result's plaintext). */
  outputJson: string;
  /** For a public Cryptlet: the ABI payload and its keccak256, the `outputHash`. */
  payload?: `0x${string}`;
  outputHash?: Hex32;
  /** The engine and exact engine version that re-ran it (the manifest's pin). */
  engine: string;
  engineVersion: string;
  /** Fetches answered from the evidence. */
  fetchesReplayed: number;
  /** Wall time of the run in ms. */
  durationMs: number;
}

/**
 * Runs `pkg` on `evidence` in `sandbox`: the evidence's input, event, identifiers and time, with every fetch answered
 * from the recorded responses (a request that differs from the recorded one fails the run with
 * `ERR_REPLAY_DIVERGED`).
 *
 * @param pkg - the package whose `codeHash` the result names (the caller checks that it is).
 * @param evidence - a checked evidence (format 2).
 * @param sandbox - the sandbox pool to run in (process isolation by default).
 * @returns the re-run's commitments and output.
 * @throws the sandbox's typed errors (`ERR_SANDBOX_*`, `ERR_CRYPTLET_THREW`, `ERR_REPLAY_DIVERGED`, ...),
 *   `ERR_SANDBOX_ENGINE_VERSION_MISMATCH` when the installed engine is not the one the manifest pins, and
 *   `ERR_ABI_ENCODING` when a public output does not encode.
 */
export async function reexecuteRun(
  pkg: BuiltPackage,
  evidence: RunEvidence,
  sandbox: SandboxPool,
): Promise<RerunOutcome> {
  const { engine, engineVersion, load } = sandboxOptionsFromManifest(pkg.manifest);
  const run = await sandbox.run(
    { codeHash: pkg.codeHash, bundle: pkg.bundle, engine, options: load },
    evidence.input as JsonValue,
    { event: evidence.event as JsonValue, ...evidence.context },
    { replay: evidenceFetchRecords(evidence) },
  );
  const rebuilt = buildRunEvidence({
    event: evidence.event,
    input: evidence.input,
    context: evidence.context,
    hostCalls: run.hostCalls,
  });
  const outcome: RerunOutcome = {
    inputHash: evidenceInputHash(rebuilt),
    output: run.output,
    outputJson: run.outputJson,
    engine,
    engineVersion,
    fetchesReplayed: run.hostCalls.length,
    durationMs: run.durationMs,
  };
  if (!("sealed" in pkg.manifest.output)) {
    outcome.payload = encodeManifestOutput(pkg.manifest.output, run.output).payload;
    outcome.outputHash = keccak256(outcome.payload) as Hex32;
  }
  return outcome;
}

/** Options of {@link createReexecutor}. */
export interface ReexecutorOptions {
  /** Where packages are found by `codeHash`. */
  packages: PackageSource;
  /** The sandbox pool; default a new pool of one sandbox process, closed by {@link ReexecutorHandle.close}. */
  sandbox?: SandboxPool;
}

/** A {@link Reexecutor} with the resources it holds. */
export interface ReexecutorHandle extends Reexecutor {
  /** Closes the sandbox pool it created (not one it was given). */
  close(): Promise<void>;
}

const eq = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

function describe(error: unknown): string {
  const e = error as { code?: unknown; shortMessage?: unknown; message?: unknown };
  const text = typeof e.shortMessage === "string" ? e.shortMessage : String(e.message ?? error);
  return typeof e.code === "string" ? `${e.code}: ${text}` : text;
}

/**
 * The re-execution check of `verifyBundle`: finds the package whose recomputed `codeHash` is the result's, re-runs
 * it on the evidence and requires the same `inputHash` and, for a public result, the same `outputHash` (and ABI
 * payload); for a sealed result, the same output JSON as the plaintext that one of `partyKeys` opens from the
 * payload (the JWE itself cannot be reproduced: its keys and IV are random; `outputHash` binds that JWE).
 *
 * @example
 * ```ts
 * import { createReexecutor } from "./runtime/reexecution/reexecute.ts";
 * import { packagesFromPaths } from "./runtime/reexecution/packageSources.ts";
 * const reexecutor = createReexecutor({ packages: await packagesFromPaths([".cryptlet/packages"]) });
 * const report = await verifyBundle(bundle, { ...trust, reexecutor });
 * await reexecutor.close();
 * ```
 */
export function createReexecutor(options: ReexecutorOptions): ReexecutorHandle {
  let owned: SandboxPool | undefined;
  const sandbox = (): SandboxPool => options.sandbox ?? (owned ??= new SandboxPool(1));
  return {
    async reexecute(bundle: ProofBundle, evidence: RunEvidence, { partyKeys }: { partyKeys: readonly PartyKey[] }) {
      const { codeHash, cryptletId } = bundle.result;
      let pkg: BuiltPackage | undefined;
      try {
        pkg = await options.packages.byCodeHash(codeHash);
      } catch (error) {
        return { verdict: "fail", reason: `package lookup failed: ${describe(error)}` };
      }
      if (pkg === undefined) {
        return { verdict: "fail", reason: `no package with codeHash ${codeHash} in ${options.packages.description}` };
      }
      if (!eq(pkg.codeHash, codeHash) || !eq(pkg.cryptletId, cryptletId)) {
        return { verdict: "fail", reason: `the package found is not the result's (codeHash ${pkg.codeHash})` };
      }
      let rerun: RerunOutcome;
      try {
        rerun = await reexecuteRun(pkg, evidence, sandbox());
      } catch (error) {
        return {
          verdict: "fail",
          reason: `the re-run of ${pkg.manifest.name}@${pkg.manifest.version} failed: ${describe(error)}`,
        };
      }
      const ran = `re-ran ${pkg.manifest.name}@${pkg.manifest.version} on ${rerun.engine} ${rerun.engineVersion}, ${rerun.fetchesReplayed} fetch(es) replayed`;
      if (!eq(rerun.inputHash, bundle.result.inputHash)) {
        return {
          verdict: "fail",
          reason: `${ran}: inputHash ${rerun.inputHash} differs from the result's (the re-run made other fetches than recorded)`,
        };
      }
      if (bundle.payload.public !== undefined) {
        if (rerun.outputHash === undefined || !eq(rerun.outputHash, bundle.result.outputHash)) {
          return {
            verdict: "fail",
            reason: `${ran}: outputHash ${rerun.outputHash ?? "(sealed output)"} differs from the result's ${bundle.result.outputHash}`,
          };
        }
        return { verdict: "pass", reason: `${ran}: inputHash and outputHash reproduced` };
      }
      for (const key of partyKeys) {
        let plaintext: string;
        try {
          plaintext = new TextDecoder().decode(await open(bundle.payload.sealed.jwe, key));
        } catch {
          continue;
        }
        return plaintext === rerun.outputJson
          ? { verdict: "pass", reason: `${ran}: inputHash reproduced; output identical to the sealed plaintext` }
          : { verdict: "fail", reason: `${ran}: the output differs from the sealed plaintext` };
      }
      return { verdict: "fail", reason: `${ran}: no party key given opens the sealed result to compare its output` };
    },
    async close() {
      await owned?.dispose();
    },
  };
}
