/**
 * Stage `execute`: runs the Cryptlet in the sandbox and turns its output into the bytes written on-chain. For a
 * sealed Cryptlet the output and the run's evidence (its input and fetched responses) are encrypted for the
 * manifest's parties here, in the same process, so that their plaintext never reaches Redis, a log or a chain:
 * only the JWEs leave this function.
 *
 * In consortium mode a sealed result is also co-signed here (runtime/consortium/cosigner.ts): the proposal
 * discloses the JWE's content-encryption key to the peers, and that key exists only in this process's memory.
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
import { encodeManifestOutput, sealedOutputBytes } from "../../attestation/hashing.ts";
import type { CheckedCosign } from "../../consortium/cosigner.ts";
import { sealDisclosed } from "../../consortium/disclosure.ts";
import { awaitTurnToLead, leadResult } from "../../consortium/leadership.ts";
import { CryptletError } from "../../errors.ts";
import { seal } from "../../sealing/seal.ts";
import type { JsonValue } from "../../sdk/index.ts";
import { sandboxOptionsFromManifest } from "../../packages/sandboxOptions.ts";
import type { PipelineContext } from "../context.ts";
import { ERR_RUN_UNKNOWN } from "../errors.ts";
import { openRunInput } from "../sealedInput.ts";
import type { ExecuteJob, ExecuteOutput } from "../topology.ts";

/**
 * Runs the Cryptlet of `job` and returns the on-chain payload, the hashes and the run's evidence (no plaintext for
 * sealed output: a sealed Cryptlet's output and evidence leave this function only as JWEs for its parties).
 * @param token - the worker's lock token (consortium mode: to delay the job until this member's turn to lead).
 * @throws CosignThresholdNotMetError (`ERR_COSIGN_THRESHOLD_NOT_MET`, retryable): consortium mode, sealed result,
 *   fewer than M members signed.
 */
export async function execute(job: Job<ExecuteJob>, ctx: PipelineContext, token?: string): Promise<ExecuteOutput> {
  return executeRun(job.data, ctx, async (eventType) => {
    await awaitTurnToLead(job, token, ctx.consortium!.settings, eventType);
  });
}

/**
 * The execute stage's work on one run, outside a job: {@link execute} for one `execute` job, the micro-batch stage
 * (runtime/queue/processors/batch.ts) for each result of its batch.
 * @param awaitTurn - consortium mode, sealed result: waits for this member's turn to lead (delays the job);
 *   absent outside a job, where consortium mode is not used.
 * @throws CosignThresholdNotMetError (`ERR_COSIGN_THRESHOLD_NOT_MET`, retryable): consortium mode, sealed result,
 *   fewer than M members signed.
 */
export async function executeRun(
  data: ExecuteJob,
  ctx: PipelineContext,
  awaitTurn?: (eventType: string | undefined) => Promise<void>,
): Promise<ExecuteOutput> {
  // A sealed Cryptlet's input is encrypted at rest: it is opened here only, and never stored or logged.
  const { event, input } = await openRunInput(data, ctx);
  const pkg = await ctx.packages.getByCodeHash(data.codeHash);
  const manifest = pkg.manifest;
  // Consortium mode, sealed result: co-signed here, so this member waits for its turn to lead before running.
  const runRecord = ctx.consortium && "sealed" in manifest.output ? await ctx.results.getRun(data.resultId) : undefined;
  const cosigns = runRecord !== undefined && runRecord.targets.some((t) => t.mode !== "anchor");
  if (ctx.consortium && "sealed" in manifest.output && !runRecord) {
    throw new CryptletError(ERR_RUN_UNKNOWN, `no run record for result ${data.resultId}`, { retryable: true });
  }
  if (cosigns) {
    if (!awaitTurn) throw new CryptletError(ERR_RUN_UNKNOWN, `a co-signed result ${data.resultId} needs its own job`);
    await awaitTurn(runRecord.event?.type);
  }
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
  let abiType: string | undefined;
  let sealed = false;
  let carried: BundleEvidence;
  let cosigned: CheckedCosign | undefined;
  if ("sealed" in manifest.output) {
    // In consortium mode the JWE's content key is kept (in memory only) to disclose it to the co-signers.
    const disclosed = cosigns ? await sealDisclosed(run.outputJson, manifest.output.parties) : undefined;
    const jwe = disclosed?.jwe ?? (await seal(run.outputJson, manifest.output.parties));
    payload = "0x" + Buffer.from(sealedOutputBytes(jwe)).toString("hex");
    sealed = true;
    carried = { sealed: { jwe: await sealRunEvidence(evidence, manifest.output.parties) } };
    if (disclosed && runRecord) {
      cosigned = await leadResult(ctx, runRecord, {
        result: {
          resultId: data.resultId,
          cryptletId: pkg.cryptletId,
          codeHash: pkg.codeHash,
          inputHash: evidenceInputHash(evidence),
          outputHash: keccak256(payload) as Hex32,
          timestamp: BigInt(data.time),
        },
        evidence,
        payload: payload as `0x${string}`,
        payloadJwe: disclosed,
      });
    }
  } else {
    ({ abiType, payload } = encodeManifestOutput(manifest.output, run.output));
    carried = { public: evidence };
  }
  return {
    payload,
    ...(abiType === undefined ? {} : { abiType }),
    sealed,
    inputHash: evidenceInputHash(evidence),
    outputHash: keccak256(payload) as Hex32,
    evidence: carried,
    producedAt: Math.floor(Date.now() / 1000),
    engine,
    engineVersion,
    durationMs: run.durationMs,
    hostCalls: run.hostCalls.length,
    ...(cosigned ? { cosigned } : {}),
  };
}
