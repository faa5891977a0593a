/**
 * Stage `attest`: builds the `CryptletResult` from the execute stage's hashes, signs it (M of N result signers,
 * EIP-712) when a target needs a per-result signature, issues the attestation token (its own when it was signed; in
 * anchor mode a batch token shared with the results this process attests meanwhile), stores the proof bundle
 * once, and adds one write job per target as a child of the waiting run.
 *
 * @module
 */
import type { Job, Queue } from "bullmq";

import { buildProofBundle, bundleResultToStruct, type BundleAttestationProof } from "../../attestation/bundle.ts";
import { bundleEvidenceHash } from "../../attestation/evidence.ts";
import type { CryptletResult } from "../../attestation/eip712.ts";
import { signCryptletResult, type ResultSignature } from "../../attestation/signing.ts";
import { createAttestationToken } from "../../attestation/token.ts";
import { attestationBatcherFor } from "../../attestation/tokenBatcher.ts";
import { partyKid } from "../../sealing/seal.ts";
import type { ReceiptCosigning } from "../../consortium/cosigner.ts";
import { awaitTurnToLead, leadResult } from "../../consortium/leadership.ts";
import { CryptletError } from "../../errors.ts";
import type { PipelineContext } from "../context.ts";
import { ERR_RUN_UNKNOWN } from "../errors.ts";
import type { AttestedRecord, RunRecord } from "../results.ts";
import { anchorPollDelay } from "./write.ts";
import { RETENTION, RETRY, jobIds, type AttestJob, type ExecuteOutput, type WriteJob } from "../topology.ts";

/**
 * Attests the result of `job` and fans out its writes. Returns the number of writes added.
 *
 * In consortium mode (`ctx.consortium`) the result's `timestamp` is the event's time (reproducible by every
 * member), and the signatures are the members' (runtime/consortium): gathered here for a public result, after this
 * member's turn to lead (the job is delayed until then), or in the execute stage for a sealed one.
 * @param token - the worker's lock token (to delay the job until this member's turn to lead).
 * @throws CosignThresholdNotMetError (`ERR_COSIGN_THRESHOLD_NOT_MET`, retryable) when fewer than M members signed.
 */
export async function attest(
  job: Job<AttestJob>,
  ctx: PipelineContext,
  writes: Queue<WriteJob>,
  token?: string,
): Promise<{ writes: number }> {
  const data = job.data;
  const run = await ctx.results.getRun(data.resultId);
  if (!run) throw new CryptletError(ERR_RUN_UNKNOWN, `no run record for result ${data.resultId}`);
  let attested = await ctx.results.getAttested(data.resultId);
  if (!attested) {
    const children = Object.values(await job.getChildrenValues<ExecuteOutput>());
    const executed = children[0];
    if (!executed)
      throw new CryptletError(ERR_RUN_UNKNOWN, `execute produced no output for ${data.resultId}`, {
        retryable: true,
      });
    attested = await attestResult(data, run, executed, ctx, async (eventType) => {
      await awaitTurnToLead(job, token, ctx.consortium!.settings, eventType);
    });
  }
  const parent = job.parent;
  if (!parent?.id) throw new CryptletError(ERR_RUN_UNKNOWN, `attest job ${job.id} has no parent run`);
  // An anchor target: the result joins the chain's next batch now, and its write job starts delayed until that
  // batch is due, so that its first run usually finds the result anchored (one job run instead of two). The write
  // queues it again if not (enqueueing is idempotent per result).
  const anchored = run.targets.filter((t) => t.mode === "anchor" && ctx.chains.get(t.chain)?.anchors !== undefined);
  const delays = new Map<string, number>();
  if (anchored.length > 0) {
    const struct = bundleResultToStruct(attested.bundle.result);
    for (const target of anchored) {
      const chain = ctx.chains.get(target.chain)!;
      await chain.anchors!.enqueue(struct);
      delays.set(
        target.chain,
        await anchorPollDelay(0, chain.anchors!, data.resultId, chain.config.anchor.pollIntervalMs),
      );
    }
  }
  for (const target of run.targets) {
    const delay = target.mode === "anchor" ? delays.get(target.chain) : undefined;
    await writes.add(
      "write",
      {
        runId: data.runId,
        resultId: data.resultId,
        chain: target.chain,
        mode: target.mode,
        ...(target.address ? { address: target.address } : {}),
        ...(data.callbackGasLimit !== undefined ? { callbackGasLimit: data.callbackGasLimit } : {}),
      },
      {
        jobId: jobIds.write(target.chain, target.mode, data.resultId),
        parent: { id: parent.id, queue: parent.queueKey },
        ignoreDependencyOnFailure: true,
        ...(delay === undefined ? {} : { delay }),
        ...RETRY.writes,
        ...RETENTION,
      },
    );
  }
  return { writes: run.targets.length };
}

/**
 * The attest stage's work on one executed result, outside a job: builds the `CryptletResult`, signs it when a
 * target needs a per-result signature, issues its attestation token (a batch token in anchor mode), and stores the
 * proof bundle once (SET NX: a concurrent attempt's record wins if it was first). Used by {@link attest} for one
 * `attest` job and by the micro-batch stage (runtime/queue/processors/batch.ts) for each result of its batch.
 * @param awaitTurn - consortium mode: waits for this member's turn to lead (delays the job); absent outside a job.
 * @returns the stored attested record.
 * @throws CosignThresholdNotMetError (`ERR_COSIGN_THRESHOLD_NOT_MET`, retryable) when fewer than M members signed.
 */
export async function attestResult(
  data: AttestJob,
  run: RunRecord,
  executed: ExecuteOutput,
  ctx: PipelineContext,
  awaitTurn?: (eventType: string | undefined) => Promise<void>,
): Promise<AttestedRecord> {
  const pkg = await ctx.packages.getByCodeHash(data.codeHash);
  const consortium = ctx.consortium;
  const result: CryptletResult = {
    resultId: data.resultId,
    cryptletId: pkg.cryptletId,
    codeHash: pkg.codeHash,
    inputHash: executed.inputHash,
    outputHash: executed.outputHash,
    // A consortium's members must all sign the same struct: the event's time, not this member's clock.
    timestamp: BigInt(consortium ? (run.event?.time ?? executed.producedAt) : executed.producedAt),
  };
  const needsSignatures = run.targets.some((t) => t.mode !== "anchor");
  let signatures: ResultSignature[] = [];
  let cosigning: ReceiptCosigning | undefined;
  if (needsSignatures && consortium && executed.cosigned) {
    ({ signatures, cosigning } = executed.cosigned); // sealed: co-signed in the execute stage
  } else if (needsSignatures && consortium) {
    if (!executed.evidence.public) {
      // A sealed result is co-signed in execute, where its content key was; without that, it cannot be here.
      throw new CryptletError(ERR_RUN_UNKNOWN, `sealed result ${data.resultId} reached attest without co-signatures`);
    }
    if (!awaitTurn) throw new CryptletError(ERR_RUN_UNKNOWN, `a co-signed result ${data.resultId} needs its own job`);
    await awaitTurn(run.event?.type);
    ({ signatures, cosigning } = await leadResult(ctx, run, {
      result,
      evidence: executed.evidence.public,
      payload: executed.payload as `0x${string}`,
    }));
  } else if (needsSignatures) {
    signatures = await signCryptletResult(ctx.consortiumId, result, ctx.resultSigners);
  }
  const evidenceHash = bundleEvidenceHash(executed.evidence);
  const batchClaims = {
    issuer: ctx.runtime.issuer,
    consortiumId: ctx.consortiumId,
    runtime: { version: ctx.runtime.version, buildHash: ctx.runtime.buildHash },
    sandbox: {
      engine: executed.engine,
      engineVersion: executed.engineVersion,
      limits: {
        memoryBytes: pkg.manifest.limits.memoryMb * 1024 * 1024,
        wallTimeMs: pkg.manifest.limits.timeoutMs,
        outputBytes: pkg.manifest.limits.maxOutputBytes,
      },
    },
  };
  let attestation: string;
  let attestationProof: BundleAttestationProof | undefined;
  if (needsSignatures) {
    // The result is signed for its own writes anyway: its token is its own too.
    attestation = await createAttestationToken(ctx.attestationKey, { ...batchClaims, ...result, evidenceHash });
  } else {
    // Anchor mode: one token for every result this process attests meanwhile (runtime/attestation/tokenBatcher.ts).
    const batched = await attestationBatcherFor(ctx.attestationKey).attest(batchClaims, {
      resultId: result.resultId,
      cryptletId: result.cryptletId,
      codeHash: result.codeHash,
      inputHash: result.inputHash,
      outputHash: result.outputHash,
      evidenceHash,
    });
    attestation = batched.token;
    attestationProof = { evidenceHash, proof: batched.proof.proof };
  }
  const output = pkg.manifest.output;
  const parties =
    "sealed" in output
      ? await Promise.all(output.parties.map(async (p) => ({ name: p.name, kid: await partyKid(p) })))
      : [];
  const bundle = buildProofBundle({
    consortiumId: ctx.consortiumId,
    manifest: { cryptletId: pkg.cryptletId, name: pkg.manifest.name, version: pkg.manifest.version, parties },
    requestId: data.requestId,
    result,
    signatures,
    attestation,
    ...(attestationProof ? { attestationProof } : {}),
    evidence: executed.evidence,
    payload:
      "sealed" in output
        ? { sealed: { jwe: JSON.parse(Buffer.from(executed.payload.slice(2), "hex").toString("utf8")) } }
        : {
            public: {
              // An execute output from before `abiType` was recorded can only be of a single-`abi` manifest.
              abiType: executed.abiType ?? (output as { abi: string }).abi,
              data: executed.payload,
            },
          },
  });
  const record: AttestedRecord = {
    bundle,
    payload: executed.payload,
    signatures: signatures.map((s) => s.signature),
    attestedAt: Date.now(),
    ...(cosigning ? { cosigning } : {}),
  };
  // The record stored first wins (SET NX): a concurrent attempt's, if it was first.
  return ctx.results.putAttested(data.resultId, record);
}
