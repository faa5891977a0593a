import { decodeProtectedHeader } from "jose";

import { httpEventId } from "../../runtime/attestation/ids.ts";
import { bundleEvidenceHash } from "../../runtime/attestation/evidence.ts";
import { BATCH_ATTESTATION_TOKEN_TYPE, buildJwks, verifyAttestationToken } from "../../runtime/attestation/token.ts";
import { bundleResultToStruct } from "../../runtime/attestation/bundle.ts";
import { interfaceOf } from "../../runtime/chains/contracts.ts";
import type { MicroBatchSettings } from "../../runtime/queue/microBatch.ts";
import type { CompositeReceipt } from "../../runtime/queue/results.ts";
import { QUEUES } from "../../runtime/queue/topology.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";
import { startPipelineStack, type PipelineStack } from "../support/pipelineStack.ts";

/** Per-result jobs (the default), and micro-batches (runtime/queue/microBatch.ts): the same checks hold for both. */
const VARIANTS: { name: string; microBatch?: MicroBatchSettings }[] = [
  { name: "a job per stage and result" },
  { name: "micro-batches of at most 64 runs", microBatch: { maxResults: 64, windowMs: 20 } },
];

describe.each(VARIANTS)("pipeline in anchor mode: 1,000 events into two chains, $name", ({ microBatch }) => {
  let stack: PipelineStack;

  beforeAll(async () => {
    stack = await startPipelineStack({
      chains: [
        { name: "consortium", chainId: 74_001 },
        { name: "public", chainId: 74_002 },
      ],
      targets: [
        { chain: "consortium", mode: "anchor" },
        { chain: "public", mode: "anchor" },
      ],
      workers: { concurrency: { execute: 8, attest: 16, writes: 256 } },
      ...(microBatch ? { microBatch } : {}),
    });
  }, 120_000);

  afterAll(async () => {
    await stack?.close();
  });

  test("every result is in exactly one anchored batch per chain and its Merkle proof verifies on-chain", async () => {
    const minutes = (await loadMinuteInputs()).slice(0, 1000);
    const runs = [];
    for (let i = 0; i < minutes.length; i += 100) {
      runs.push(
        ...(await Promise.all(
          minutes.slice(i, i + 100).map(({ minute, input }) =>
            stack.pipeline.submit({
              eventId: httpEventId(`${stack.prefix}-anchor-${minute}`),
              cryptlet: { name: stack.pkg.manifest.name },
              source: { type: "http", idempotencyKey: `anchor-${minute}` },
              input,
              time: minute + 59,
            }),
          ),
        )),
      );
    }
    const receipts: CompositeReceipt[] = [];
    for (const run of runs) {
      const outcome = await stack.pipeline.waitForRun(run.runId, 240_000);
      if (outcome.status === "failed") throw new Error(`run failed: ${JSON.stringify(outcome.error)}`);
      if (outcome.status === "complete") receipts.push(outcome.receipt);
    }
    expect(receipts.every((r) => r.status === "confirmed")).toBe(true);
    // Which jobs carried them: five per run (execute, attest, a write per chain, the run), or a few batches.
    const jobs = Object.fromEntries(
      await Promise.all(
        [QUEUES.execute, QUEUES.attest, QUEUES.writes, QUEUES.runs, QUEUES.batches].map(
          async (name) => [name, (await stack.pipeline.queue(name).getJobCounts("completed")).completed ?? 0] as const,
        ),
      ),
    );
    if (microBatch) {
      expect(jobs).toMatchObject({ execute: 0, attest: 0, writes: 0, runs: 0 });
      // At least 1,000 / 64 batches (none larger than its maximum), and far fewer than runs.
      expect(jobs.batches).toBeGreaterThanOrEqual(Math.ceil(1000 / microBatch.maxResults!));
      expect(jobs.batches).toBeLessThan(1000 / 4);
    } else {
      expect(jobs).toEqual({ execute: 1000, attest: 1000, writes: 2000, runs: 1000, batches: 0 });
    }
    // Anchor-only runs carry no per-result signatures: the batch signature covers them.
    expect(receipts.every((r) => r.bundle.signatures.length === 0)).toBe(true);

    // Their attestation is a batch token shared by the results attested together: fewer Key Vault signatures than
    // results, and each result's leaf proven under its token's root (jose and StandardMerkleTree.verify inside).
    const jwks = await buildJwks([stack.ctx.attestationKey]);
    const tokens = new Map<string, number>();
    for (const { bundle } of receipts) {
      expect(decodeProtectedHeader(bundle.attestation).typ).toBe(BATCH_ATTESTATION_TOKEN_TYPE);
      const { result } = bundle;
      const { claims } = await verifyAttestationToken(
        bundle.attestation,
        jwks,
        {
          resultId: result.resultId,
          inputHash: result.inputHash,
          outputHash: result.outputHash,
          evidenceHash: bundleEvidenceHash(bundle.evidence!),
          consortiumId: bundle.consortiumId,
        },
        { ...result, ...bundle.attestationProof! },
      );
      tokens.set(bundle.attestation, claims.batch!.count);
    }
    // Every token's count is the number of results that carry it.
    const carried = new Map<string, number>();
    for (const { bundle } of receipts) carried.set(bundle.attestation, (carried.get(bundle.attestation) ?? 0) + 1);
    expect([...carried]).toEqual([...tokens]);
    expect(tokens.size).toBeLessThan(receipts.length / 2);

    const anchored = interfaceOf("ResultLedger").getEvent("BatchAnchored")!.topicHash;
    for (const chain of stack.chains) {
      const logs = await chain.node.provider.getLogs({
        address: chain.contracts.ledger,
        topics: [anchored],
        fromBlock: 0,
      });
      const counts = logs.map((log) => Number(interfaceOf("ResultLedger").parseLog(log)!.args.count));
      expect(counts.reduce((a, b) => a + b, 0)).toBe(1000);
      const roots = new Set(logs.map((log) => log.topics[1]));
      expect(roots.size).toBe(logs.length);
      for (const receipt of receipts) {
        const target = receipt.targets.find((t) => t.chain === chain.name)!;
        expect(target.status).toBe("confirmed");
        expect(roots.has(target.batch!.root)).toBe(true);
      }
      // Every proof verifies on-chain (ResultLedger.verify is a view: one eth_call each).
      const verifications = await Promise.all(
        receipts.map((receipt) => {
          const target = receipt.targets.find((t) => t.chain === chain.name)!;
          return chain.ledger.getFunction("verify")(
            bundleResultToStruct(receipt.bundle.result),
            target.batch!.proof,
            target.batch!.root,
          );
        }),
      );
      expect(verifications.every(Boolean)).toBe(true);
    }
  }, 300_000);
});
