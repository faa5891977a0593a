/**
 * Stage `execute`: runs the Cryptlet in the sandbox and turns its output into the bytes written on-chain. For a
 * sealed Cryptlet the output is encrypted for the manifest's parties here, in the same process, so that its
 * plaintext never reaches Redis, a log or a chain: only the JWE leaves this function.
 *
 * @module
 */
import type { Job } from "bullmq";
import { keccak256 } from "ethers";

import type { Hex32 } from "../../attestation/eip712.ts";
import {
  computeInputHash,
  encodePublicOutput,
  sealedOutputBytes,
  type HostCallRecord,
} from "../../attestation/hashing.ts";
import { seal } from "../../sealing/seal.ts";
import type { JsonValue } from "../../sdk/index.ts";
import { sandboxOptionsFromManifest } from "../../packages/sandboxOptions.ts";
import type { PipelineContext } from "../context.ts";
import type { ExecuteJob, ExecuteOutput } from "../topology.ts";

/** Runs the Cryptlet of `job` and returns the on-chain payload and hashes (no plaintext for sealed output). */
export async function execute(job: Job<ExecuteJob>, ctx: PipelineContext): Promise<ExecuteOutput> {
  const data = job.data;
  const pkg = await ctx.packages.getByCodeHash(data.codeHash);
  const manifest = pkg.manifest;
  // Refuses (ERR_SANDBOX_ENGINE_VERSION_MISMATCH) a package pinned to another engine version than the installed one.
  const { engine, engineVersion, load } = sandboxOptionsFromManifest(manifest);
  const run = await ctx.sandbox.run(
    { codeHash: pkg.codeHash, bundle: pkg.bundle, engine, options: load },
    data.input as JsonValue,
    { event: data.event as JsonValue, requestId: data.requestId, resultId: data.resultId, now: data.time },
  );
  let payload: string;
  let sealed = false;
  if ("sealed" in manifest.output) {
    const jwe = await seal(run.outputJson, manifest.output.parties);
    payload = "0x" + Buffer.from(sealedOutputBytes(jwe)).toString("hex");
    sealed = true;
  } else {
    payload = encodePublicOutput(manifest.output.abi, run.output);
  }
  return {
    payload,
    sealed,
    inputHash: computeInputHash({
      event: data.event,
      hostCalls: run.hostCalls as unknown as HostCallRecord[],
    }),
    outputHash: keccak256(payload) as Hex32,
    producedAt: Math.floor(Date.now() / 1000),
    engine,
    engineVersion,
    durationMs: run.durationMs,
    hostCalls: run.hostCalls.length,
  };
}
