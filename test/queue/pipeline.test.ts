import { AbiCoder, Contract, keccak256 } from "ethers";

import { verifyBundle } from "../../runtime/attestation/verifyBundle.ts";
import { httpEventId } from "../../runtime/attestation/ids.ts";
import { installedEngineVersion } from "../../runtime/sandbox/engineVersion.ts";
import { interfaceOf } from "../../runtime/chains/contracts.ts";
import { QUEUES } from "../../runtime/queue/topology.ts";
import { renderAuditReport } from "../../runtime/report/auditReport.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";
import { startPipelineStack, type PipelineStack } from "../support/pipelineStack.ts";

describe("pipeline: one event, two chains (real Redis, hardhat nodes, Key Vault emulator)", () => {
  let stack: PipelineStack;
  let minutes: Awaited<ReturnType<typeof loadMinuteInputs>>;

  beforeAll(async () => {
    minutes = await loadMinuteInputs();
    stack = await startPipelineStack({
      chains: [
        { name: "consortium", chainId: 72_001 },
        { name: "public", chainId: 72_002 },
      ],
      targets: [
        { chain: "consortium", mode: "record" },
        { chain: "public", mode: "feed" },
      ],
    });
  }, 120_000);

  afterAll(async () => {
    await stack?.close();
  });

  function event(minuteIndex: number, key = `minute-${minuteIndex}`) {
    const { minute, input } = minutes[minuteIndex]!;
    return {
      eventId: httpEventId(`${stack.prefix}-${key}`),
      cryptlet: { name: stack.pkg.manifest.name },
      source: { type: "http" as const, idempotencyKey: key },
      input,
      time: minute + 59,
    };
  }

  test("an event lands on both chains, each verifies it on-chain, and the bundle verifies offline", async () => {
    const { runId } = await stack.pipeline.submit(event(600));
    const outcome = await stack.pipeline.waitForRun(runId, 60_000);
    expect(outcome.status).toBe("complete");
    if (outcome.status !== "complete") return;
    const receipt = outcome.receipt;
    expect(receipt.status).toBe("confirmed");
    expect(receipt.targets.map((t) => [t.chain, t.mode, t.status])).toEqual([
      ["consortium", "record", "confirmed"],
      ["public", "feed", "confirmed"],
    ]);
    const result = receipt.bundle.result;
    expect(receipt.bundle.anchors).toHaveLength(2);

    // Consortium chain: the ledger holds the output hash.
    const consortium = stack.chains[0]!;
    expect(await consortium.ledger.getFunction("isRecorded")(result.resultId)).toBe(true);
    expect(await consortium.ledger.getFunction("outputHashOf")(result.resultId)).toBe(result.outputHash);

    // Public chain: the feed answers the median of the two pools for that minute.
    const pub = stack.chains[1]!;
    const feed = new Contract(
      pub.contracts.feeds[stack.pkg.manifest.name]!,
      interfaceOf("CryptletPriceFeed"),
      pub.node.provider,
    );
    const [roundId, answer, startedAt] = (await feed.getFunction("latestRoundData")()) as bigint[];
    expect(roundId).toBe(1n);
    const payload = receipt.bundle.payload.public!.data;
    expect(keccak256(payload)).toBe(result.outputHash);
    const [decoded] = AbiCoder.defaultAbiCoder().decode(
      ["tuple(int256 answer, uint8 decimals, uint64 observedAt)"],
      payload,
    );
    expect(answer).toBe(decoded.answer);
    expect(startedAt).toBe(decoded.observedAt);
    const prices = minutes[600]!.input.observations.map((o) => Number(o.price));
    expect(Number(answer) / 1e8).toBeGreaterThanOrEqual(Math.min(...prices) - 1e-8);
    expect(Number(answer) / 1e8).toBeLessThanOrEqual(Math.max(...prices) + 1e-8);

    // Each anchor names a real transaction on its chain.
    for (const anchor of receipt.bundle.anchors) {
      const chain = stack.chains.find((c) => String(c.node.chainId) === anchor.chainId)!;
      const tx = await chain.node.provider.getTransactionReceipt(anchor.txHash);
      expect(tx?.blockHash).toBe(anchor.blockHash);
      expect(tx?.gasUsed.toString()).toBe(anchor.gasUsed);
    }

    // Offline verification of the composite receipt's bundle.
    const report = await verifyBundle(receipt.bundle, {
      trustedSigners: stack.resultSignerAddresses,
      threshold: 2,
      approvedCodeHashes: [stack.pkg.codeHash],
      consortiumId: stack.ctx.consortiumId,
      jwks: await (await import("../../runtime/attestation/token.ts")).buildJwks([stack.ctx.attestationKey]),
    });
    expect(report.checks.filter((c) => c.verdict === "fail")).toEqual([]);
    expect(report.ok).toBe(true);
    // The token names the engine and the exact version that ran it: the package's pin, the installed engine.
    expect(report.sandbox).toEqual({
      engine: stack.pkg.manifest.engine,
      engineVersion: stack.pkg.manifest.engineVersion,
    });
    expect(report.sandbox?.engineVersion).toBe(installedEngineVersion(stack.pkg.manifest.engine).version);

    // The audit report of this real run: the run record keeps the event's type and time for it.
    const run = await stack.ctx.results.getRun(runId);
    expect(run?.event).toEqual({ type: "http", time: minutes[600]!.minute + 59 });
    const html = renderAuditReport({
      bundle: receipt.bundle,
      receipt,
      event: { eventId: run!.eventId, requestId: run!.requestId, ...run!.event },
      verifications: [{ label: "pipeline test trust", report }],
      trust: [{ source: "given", signers: stack.resultSignerAddresses, threshold: 2 }],
    });
    expect(html).toContain('id="verdict" data-ok="true"');
    for (const anchor of receipt.bundle.anchors) expect(html).toContain(anchor.txHash);
    expect([...html.matchAll(/data-trusted="yes"/g)]).toHaveLength(receipt.bundle.signatures.length);
  });

  test("the same event submitted twice is one run and one write per chain", async () => {
    const first = await stack.pipeline.submit(event(601));
    const second = await stack.pipeline.submit(event(601));
    expect(second.runId).toBe(first.runId);
    const outcome = await stack.pipeline.waitForRun(first.runId, 60_000);
    expect(outcome.status).toBe("complete");
    const logs = await stack.chains[0]!.node.provider.getLogs({
      address: stack.chains[0]!.contracts.ledger,
      topics: [interfaceOf("ResultLedger").getEvent("ResultRecorded")!.topicHash, first.resultId],
      fromBlock: 0,
    });
    expect(logs).toHaveLength(1);
  });

  test("an older observation that arrives after a newer one is superseded on the feed, still recorded on the ledger", async () => {
    const { runId } = await stack.pipeline.submit(event(500));
    const outcome = await stack.pipeline.waitForRun(runId, 60_000);
    expect(outcome.status).toBe("complete");
    if (outcome.status !== "complete") return;
    expect(outcome.receipt.status).toBe("confirmed");
    expect(outcome.receipt.targets.map((t) => [t.chain, t.status])).toEqual([
      ["consortium", "confirmed"],
      ["public", "superseded"],
    ]);
    expect(outcome.receipt.bundle.anchors).toHaveLength(1);
  });

  test("a write that fails for good goes to the dead-letter queue (run partial); after the fix, replay completes it", async () => {
    const consortium = stack.chains[0]!;
    await (await consortium.registry.getFunction("revokeCodeHash")(stack.pkg.cryptletId, stack.pkg.codeHash)).wait();
    try {
      const { runId, resultId } = await stack.pipeline.submit(event(700));
      const outcome = await stack.pipeline.waitForRun(runId, 60_000);
      expect(outcome.status).toBe("complete");
      if (outcome.status !== "complete") return;
      expect(outcome.receipt.status).toBe("partial");
      const failed = outcome.receipt.targets.find((t) => t.chain === "consortium")!;
      expect(failed.status).toBe("failed");
      expect(failed.error?.code).toBe("ERR_CHAIN_REVERTED");
      const entry = (await stack.pipeline.deadLetters()).find(
        (d) => d.queue === QUEUES.writes && (d.data as { resultId: string }).resultId === resultId,
      );
      expect(entry?.error.code).toBe("ERR_CHAIN_REVERTED");
      expect(entry?.error.retryable).toBe(false);

      await (await consortium.registry.getFunction("approveCodeHash")(stack.pkg.cryptletId, stack.pkg.codeHash)).wait();
      const dlqJobs = await stack.pipeline.queue(QUEUES.deadLetter).getJobs(["waiting"]);
      const dlqJob = dlqJobs.find((j) => (j.data as { jobId: string }).jobId === entry!.jobId)!;
      await stack.pipeline.replay(dlqJob.id!);
      const deadline = Date.now() + 30_000;
      let receipt = await stack.ctx.results.getReceipt(runId);
      while (receipt?.status !== "confirmed" && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        receipt = await stack.ctx.results.getReceipt(runId);
      }
      expect(receipt?.status).toBe("confirmed");
      expect(await consortium.ledger.getFunction("isRecorded")(resultId)).toBe(true);
      expect((await stack.pipeline.deadLetters()).some((d) => d.jobId === entry!.jobId)).toBe(false);
    } finally {
      if (!(await consortium.registry.getFunction("isApproved")(stack.pkg.cryptletId, stack.pkg.codeHash))) {
        await (
          await consortium.registry.getFunction("approveCodeHash")(stack.pkg.cryptletId, stack.pkg.codeHash)
        ).wait();
      }
    }
  });

  test("a Cryptlet that fails (no quorum of observations) fails the run with a typed error in the dead-letter queue", async () => {
    const bad = event(602, "bad-input");
    bad.input = { ...bad.input, observations: [] };
    const { runId } = await stack.pipeline.submit(bad);
    const outcome = await stack.pipeline.waitForRun(runId, 60_000);
    expect(outcome.status).toBe("failed");
    if (outcome.status !== "failed") return;
    expect(outcome.error.stage).toBe("execute");
    expect(outcome.error.code).toMatch(/^ERR_/);
    const dead = await stack.pipeline.deadLetters();
    expect(dead.some((d) => d.queue === QUEUES.execute && d.error.code === outcome.error.code)).toBe(true);
  });
});
