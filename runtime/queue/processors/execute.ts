/**
 * Stage `execute`: runs the Cryptlet in the sandbox and turns its output into the bytes written on-chain. For a
 * sealed Cryptlet the output and the run's evidence (its input and fetched responses) are encrypted for the
 * manifest's parties here, in the same process, so that their plaintext never reaches Redis, a log or a chain:
 * only the JWEs leave this function.
 *
 * @module
 */
import type { Job } from "bullmq";
import { keccak256 } from "ethers";

import type { Hex32 } from "../../attestation/eip712.ts";
import {
  buildRunEvidence,
  evidenceInputHash,
  sealRunEvidence,
  type BundleEvidence,
} from "../../attestation/evidence.ts";
import { encodePublicOutput, sealedOutputBytes } from "../../attestation/hashing.ts";
import { seal } from "../../sealing/seal.ts";
import type { JsonValue } from "../../sdk/index.ts";
import { sandboxOptionsFromManifest } from "../../packages/sandboxOptions.ts";
import type { PipelineContext } from "../context.ts";
import { openRunInput } from "../sealedInput.ts";
import type { ExecuteJob, ExecuteOutput } from "../topology.ts";

/**
 * Runs the Cryptlet of `job` and returns the on-chain payload, the hashes and the run's evidence (no plaintext for
 * sealed output: a sealed Cryptlet's output and evidence leave this function only as JWEs for its parties).
 */
export async function execute(job: Job<ExecuteJob>, ctx: PipelineContext): Promise<ExecuteOutput> {
  const data = job.data;
  // A sealed Cryptlet's input is encrypted at rest: it is opened here only, and never stored or logged.
  const { event, input } = await openRunInput(data, ctx);
  const pkg = await ctx.packages.getByCodeHash(data.codeHash);
  const manifest = pkg.manifest;
  // Refuses (ERR_SANDBOX_ENGINE_VERSION_MISMATCH) a package pinned to another engine version than the installed one.
  const { engine, engineVersion, load } = sandboxOptionsFromManifest(manifest);
  const context = { requestId: data.requestId, resultId: data.resultId, now: data.time };
  const run = await ctx.sandbox.run(
    { codeHash: pkg.codeHash, bundle: pkg.bundle, engine, options: load },
    input as JsonValue,
    { event: event as JsonValue, ...context },
  );
  // The evidence (format 2) is what inputHash commits to and what a verifier re-executes on.
  const evidence = buildRunEvidence({ event, input, context, hostCalls: run.hostCalls });
  let payload: string;
  let sealed = false;
  let carried: BundleEvidence;
  if ("sealed" in manifest.output) {
    const jwe = await seal(run.outputJson, manifest.output.parties);
    payload = "0x" + Buffer.from(sealedOutputBytes(jwe)).toString("hex");
    sealed = true;
    carried = { sealed: { jwe: await sealRunEvidence(evidence, manifest.output.parties) } };
  } else {
    payload = encodePublicOutput(manifest.output.abi, run.output);
    carried = { public: evidence };
  }
  return {
    payload,
    sealed,
    inputHash: evidenceInputHash(evidence),
    outputHash: keccak256(payload) as Hex32,
    evidence: carried,
    producedAt: Math.floor(Date.now() / 1000),
    engine,
    engineVersion,
    durationMs: run.durationMs,
    hostCalls: run.hostCalls.length,
  };
}
