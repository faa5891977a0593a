/**
 * Stage `writes`: one target of one run. `oracle`, `record` and `feed` targets send one transaction through the
 * chain's writer (exactly once per idempotency key); `anchor` targets join the chain's next Merkle batch and
 * wait, without holding a worker slot (the job is delayed and re-checked), until that batch is confirmed.
 *
 * @module
 */
import { DelayedError, type Job } from "bullmq";

import type { BundleAnchor } from "../../attestation/bundle.ts";
import { bundleResultToStruct } from "../../attestation/bundle.ts";
import { isTrustedSigner } from "../../chains/registryTrust.ts";
import { targetOf, writeRequestOf, type ChainReader, type WriteTarget } from "../../chains/targets.ts";
import { cryptletResultDigest } from "../../attestation/eip712.ts";
import { recoverDigestSigner, signCryptletResult } from "../../attestation/signing.ts";
import { mintExpired, refundTooEarly } from "../../crosschain/writeFailure.ts";
import { CryptletError, isCryptletError } from "../../errors.ts";
import { checkGatedSigners } from "../../keys/RegistryGatedKeyProvider.ts";
import type { AnchorService, PipelineContext } from "../context.ts";
import { ERR_CHAIN_UNKNOWN, ERR_RESULT_SIGNER_ROTATED, ERR_RUN_UNKNOWN } from "../errors.ts";
import type { ChainOutcome } from "../results.ts";
import type { WriteJob } from "../topology.ts";

/**
 * Longest sleep of an `anchor` write between checks of its batch, in milliseconds (or the chain's
 * `anchor.pollIntervalMs` when that is longer).
 */
export const ANCHOR_POLL_MAX_MS = 2000;

/**
 * How long an `anchor` write sleeps before it checks its batch again, in milliseconds: until the batch is due
 * when the result is still pending, and otherwise a quarter of the time it has waited so far, from `pollMs` (the
 * chain's `anchor.pollIntervalMs`, default 250) to {@link ANCHOR_POLL_MAX_MS}. Each check is a job round trip
 * through Redis, so a fixed short period would make thousands of waiting writes the pipeline's main load; this
 * keeps the added latency under a quarter of the wait. Also the delay an `anchor` write is created with (the attest
 * stage queues the result in the batch first, so the write's first run usually finds it anchored).
 * @param waitedMs - how long the write has waited so far (0 when it is created).
 */
export async function anchorPollDelay(
  waitedMs: number,
  anchors: AnchorService,
  resultId: string,
  pollMs: number,
): Promise<number> {
  const longest = Math.max(ANCHOR_POLL_MAX_MS, pollMs);
  let delay = Math.min(longest, Math.max(pollMs, waitedMs / 4));
  if ((await anchors.statusOf(resultId)) === "pending") {
    const due = await anchors.nextDueInMs();
    if (due !== undefined) delay = Math.max(delay, Math.min(due + pollMs, 10 * longest));
  }
  return Math.round(delay);
}

/**
 * Whether a signer of `signatures` is not trusted by the chain's registry now. Asked after a reverted write: the
 * revert's own reason is not enough, since a transaction mined in the same block after `rotateSigner` reverts with
 * `CryptletProofUntrustedSigner`, but replaying it on the state before that block (how the writer decodes a mined
 * revert) succeeds, and the decoded reason is `unknown`.
 */
async function signedByUntrusted(
  ctx: PipelineContext,
  reader: ChainReader,
  registry: string,
  result: ReturnType<typeof bundleResultToStruct>,
  signatures: readonly string[],
): Promise<boolean> {
  const digest = cryptletResultDigest(ctx.consortiumId, result);
  for (const signature of signatures) {
    if (!(await isTrustedSigner(reader, registry, recoverDigestSigner(digest, signature)))) return true;
  }
  return false;
}

/**
 * A chain refused the result's signatures because its registry no longer trusts one of their signers: a signer
 * rotation (`CryptletRegistry.rotateSigner`) landed after the result was signed. The result signers check their
 * key's latest version against the registries now (runtime/keys/RegistryGatedKeyProvider.ts), the result is signed
 * again with their active versions, the attested record updated (its `resigned` count, which the write's
 * idempotency key carries from then on: a transaction with the old signatures may have been mined and reverted
 * under the previous key, which stays failed), and the write retried (the job's backoff). The contracts accept a
 * result once and the writer asks `isRecorded` before every new nonce, so a new key never writes a result twice.
 * @throws CryptletError `ERR_RESULT_SIGNER_ROTATED` (retryable), always: the retry writes the new signatures, or,
 *   when the signers still sign with the refused version (the registry does not trust their new version yet),
 *   tries again later.
 */
async function resignAfterRotation(
  ctx: PipelineContext,
  resultId: string,
  result: ReturnType<typeof bundleResultToStruct>,
  refused: readonly string[],
): Promise<never> {
  await checkGatedSigners(ctx.resultSigners);
  const signatures = await signCryptletResult(ctx.consortiumId, result, ctx.resultSigners);
  const digest = cryptletResultDigest(ctx.consortiumId, result);
  const before = new Set(refused.map((s) => recoverDigestSigner(digest, s)));
  const changed = signatures.some((s) => !before.has(s.signer));
  if (changed) await ctx.results.replaceSignatures(resultId, signatures);
  throw new CryptletError(
    ERR_RESULT_SIGNER_ROTATED,
    changed
      ? `the registry no longer trusts a signer of result ${resultId}: signed again with the current key versions`
      : `the registry no longer trusts a signer of result ${resultId}, and no signer has a newer trusted key version yet`,
    { retryable: true, details: { resultId, signers: signatures.map((s) => s.signer), resigned: changed } },
  );
}

const BUNDLE_MODE = {
  oracle: "fulfill",
  record: "record",
  feed: "submit",
  anchor: "anchor",
  mint: "mint",
  release: "release",
  refund: "refund",
} as const;

/** Writes one target of a run and records its outcome. */
export async function write(job: Job<WriteJob>, ctx: PipelineContext, token?: string): Promise<ChainOutcome> {
  const data = job.data;
  const chain = ctx.chains.get(data.chain);
  if (!chain)
    throw new CryptletError(ERR_CHAIN_UNKNOWN, `chain "${data.chain}" is not configured`, {
      details: { chain: data.chain },
    });
  /** The attested result and its run, read when needed (an anchored result's write needs neither). */
  const attestedRun = async () => {
    const [attested, run] = await Promise.all([
      ctx.results.getAttested(data.resultId),
      ctx.results.getRun(data.resultId),
    ]);
    if (!attested || !run) {
      throw new CryptletError(ERR_RUN_UNKNOWN, `result ${data.resultId} is not attested`, { retryable: true });
    }
    return { attested, run };
  };
  let outcome: ChainOutcome;

  if (data.mode === "anchor") {
    const anchors = chain.anchors;
    if (!anchors) throw new CryptletError(ERR_CHAIN_UNKNOWN, `chain "${data.chain}" has no anchor batcher`);
    const record = await anchors.anchorOf(data.resultId);
    if (!record) {
      const { attested } = await attestedRun();
      await anchors.enqueue(bundleResultToStruct(attested.bundle.result));
      if (!token) throw new CryptletError(ERR_RUN_UNKNOWN, "anchor writes need a worker token", { retryable: true });
      const waited = Date.now() - job.timestamp;
      await job.moveToDelayed(
        Date.now() + (await anchorPollDelay(waited, anchors, data.resultId, chain.config.anchor.pollIntervalMs)),
        token,
      );
      throw new DelayedError();
    }
    outcome = {
      chain: data.chain,
      mode: "anchor",
      status: "confirmed",
      anchor: record.anchor,
      batch: record.batch,
      updatedAt: Date.now(),
    };
  } else {
    const { attested, run } = await attestedRun();
    const result = bundleResultToStruct(attested.bundle.result);
    const target: WriteTarget = data.address
      ? { chain: data.chain, mode: data.mode, address: data.address }
      : targetOf(chain.config, data.mode, run.cryptlet.name);
    const request = writeRequestOf(
      target,
      { result, payload: attested.payload, signatures: attested.signatures },
      {
        reader: chain.writer.rpc,
        ...(data.callbackGasLimit === undefined ? {} : { callbackGasLimit: data.callbackGasLimit }),
        ...(attested.resigned ? { attempt: attested.resigned } : {}),
      },
    );
    /** An obsolete write: recorded as `superseded` (with what superseded it), not failed. */
    const supersede = async (reason: string): Promise<ChainOutcome> => {
      const superseded: ChainOutcome = {
        chain: data.chain,
        mode: data.mode,
        status: "superseded",
        reason,
        updatedAt: Date.now(),
      };
      await ctx.results.putOutcome(data.resultId, superseded);
      return superseded;
    };
    let receipt;
    try {
      receipt = await chain.writer.write(request);
    } catch (error) {
      // A price feed accepts only observations newer than its latest round: an older one that arrives after a
      // newer one (runs complete in any order) is obsolete, not a failure.
      if (
        data.mode === "feed" &&
        isCryptletError(error, "ERR_CHAIN_REVERTED") &&
        error.details?.error === "CryptletFeedStaleObservation"
      ) {
        return supersede("a newer observation");
      }
      // A mint is possible only until its lock's deadline (destination-chain time); after it, the deadline
      // watcher attests a refund on the source chain instead (docs/crosschain.md, invariant 2). Decided from the
      // chain: a mint mined after the deadline reverts, but its decoded reason may not say so (writeFailure.ts).
      if (
        data.mode === "mint" &&
        isCryptletError(error, "ERR_CHAIN_REVERTED") &&
        (error.details?.error === "CryptletWrappedDeadlinePassed" ||
          (await mintExpired(chain.writer.rpc, request.to, attested.payload)))
      ) {
        return supersede("the lock's deadline (the lock is refunded instead)");
      }
      // A refund attested from the destination's clock, refused by a source chain whose clock is behind: retried.
      const early = data.mode === "refund" ? refundTooEarly(error) : undefined;
      if (early) throw early;
      if (
        !ctx.consortium &&
        isCryptletError(error, "ERR_CHAIN_REVERTED") &&
        chain.config.contracts.registry !== undefined &&
        (await signedByUntrusted(ctx, chain.writer.rpc, chain.config.contracts.registry, result, attested.signatures))
      ) {
        await resignAfterRotation(ctx, data.resultId, result, attested.signatures);
      }
      throw error;
    }
    const anchor: BundleAnchor | undefined =
      receipt.status === "confirmed"
        ? {
            chainId: String(chain.config.chainId),
            contract: request.to,
            txHash: receipt.txHash as BundleAnchor["txHash"],
            blockNumber: String(receipt.blockNumber),
            blockHash: receipt.blockHash as BundleAnchor["blockHash"],
            gasUsed: receipt.gasUsed ?? "0",
            mode: BUNDLE_MODE[data.mode],
          }
        : undefined;
    outcome = {
      chain: data.chain,
      mode: data.mode,
      status: receipt.status,
      receipt,
      ...(anchor ? { anchor } : {}),
      updatedAt: Date.now(),
    };
  }
  await ctx.results.putOutcome(data.resultId, outcome);
  // A replayed write after the run completed refreshes the run's receipt.
  if (await ctx.results.getReceipt(data.resultId)) {
    const { run } = await attestedRun();
    await ctx.results.buildReceipt(run.runId, run.resultId, run.cryptlet, run.targets);
  }
  return outcome;
}
