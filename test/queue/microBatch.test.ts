import type { ChildProcess } from "node:child_process";
import path from "node:path";

import fc from "fast-check";

import { computeResultId, type Hex32 } from "../../runtime/attestation/eip712.ts";
import { httpEventId } from "../../runtime/attestation/ids.ts";
import { interfaceOf } from "../../runtime/chains/contracts.ts";
import { CryptletError } from "../../runtime/errors.ts";
import { ERR_CHAIN_UNKNOWN, ERR_RUN_UNKNOWN } from "../../runtime/queue/errors.ts";
import { MicroBatchStore, type BatchEntry } from "../../runtime/queue/microBatch.ts";
import { openRedis, scanKeys, type RedisClient } from "../../runtime/queue/redisClient.ts";
import type { CompositeReceipt } from "../../runtime/queue/results.ts";
import { QUEUES, jobIds } from "../../runtime/queue/topology.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";

type MinuteInput = Awaited<ReturnType<typeof loadMinuteInputs>>[number];
import { REDIS_URL, startPipelineStack, type PipelineStack, type StackChain } from "../support/pipelineStack.ts";
import { cancelRemovedRun } from "../../runtime/triggers/cancelRun.ts";
import { startWorker } from "../support/workerProcess.ts";

const CODE_HASH = `0x${"c".repeat(64)}` as Hex32;
const resultIdOf = (n: number) => `0x${n.toString(16).padStart(64, "0")}` as Hex32;
const entryOf = (n: number): BatchEntry => {
  const resultId = resultIdOf(n);
  const common = { runId: resultId, resultId, requestId: resultId, codeHash: CODE_HASH };
  return {
    execute: { ...common, eventId: resultId, cryptletId: CODE_HASH, event: { n }, input: { n }, time: 1 },
    attest: common,
  };
};
const idsOf = (entries: BatchEntry[]) => entries.map((e) => e.execute.resultId).sort();

describe("micro-batch queue (Redis, lua/joinBatch-4.lua and lua/claimBatch-4.lua)", () => {
  let redis: RedisClient;
  const prefixes: string[] = [];
  const newStore = () => {
    const prefix = `mb${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
    prefixes.push(prefix);
    return new MicroBatchStore(redis, prefix, 3600);
  };

  beforeAll(() => {
    redis = openRedis({ url: REDIS_URL });
  });

  afterAll(async () => {
    for (const prefix of prefixes)
      for await (const keys of scanKeys(redis, `${prefix}:*`)) if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });

  test("a run joins once; a claim takes the oldest runs up to its maximum, the same ones on every retry", async () => {
    const store = newStore();
    expect(await store.join(entryOf(1))).toEqual({ joined: true, generation: 0 });
    expect(await store.join(entryOf(1))).toEqual({ joined: false, generation: 0 });
    await store.join(entryOf(2));
    await store.join(entryOf(3));

    const first = await store.claim(CODE_HASH, 0, 2);
    expect(idsOf(first.entries)).toEqual([resultIdOf(1), resultIdOf(2)]);
    expect(first.entries.find((e) => e.execute.resultId === resultIdOf(1))).toEqual(entryOf(1));
    expect(first.remaining).toBe(1);
    // A retry (or a worker taking the job over) gets the same runs; the generation moved on once only.
    expect(idsOf((await store.claim(CODE_HASH, 0, 2)).entries)).toEqual(idsOf(first.entries));
    // A run joining now belongs to generation 1, with the one left over.
    expect(await store.join(entryOf(4))).toEqual({ joined: true, generation: 1 });
    // A duplicate of a claimed run is not added again, even though it left the pending set.
    expect(await store.join(entryOf(2))).toEqual({ joined: false, generation: 1 });
    // A generation that is not open (never was, or claimed and released) claims nothing.
    expect((await store.claim(CODE_HASH, 5, 10)).entries).toEqual([]);
    const second = await store.claim(CODE_HASH, 1, 10);
    expect(idsOf(second.entries)).toEqual([resultIdOf(3), resultIdOf(4)]);
    expect(second.remaining).toBe(0);
    await store.release(CODE_HASH, 0);
    expect((await store.claim(CODE_HASH, 0, 2)).entries).toEqual([]);
    // Settled runs may join again (a resubmission after their receipt): the stage finds them settled.
    await store.settle(CODE_HASH, resultIdOf(1));
    expect(await store.join(entryOf(1))).toEqual({ joined: true, generation: 2 });
  });

  test("a run is withdrawn only while no job has claimed it", async () => {
    const store = newStore();
    await store.join(entryOf(1));
    await store.join(entryOf(2));
    expect(await store.withdraw(CODE_HASH, resultIdOf(1))).toBe("withdrawn");
    expect(await store.withdraw(CODE_HASH, resultIdOf(9))).toBe("absent");
    const claim = await store.claim(CODE_HASH, 0, 10);
    expect(idsOf(claim.entries)).toEqual([resultIdOf(2)]);
    expect(await store.withdraw(CODE_HASH, resultIdOf(2))).toBe("claimed");
    await store.settle(CODE_HASH, resultIdOf(2));
    expect(await store.withdraw(CODE_HASH, resultIdOf(2))).toBe("absent");
  });

  test("whatever the interleaving of joins, duplicates, claims and retries, every run is claimed by exactly one generation", async () => {
    // The pipeline's protocol around the store: a join makes sure the job of the generation it returns exists; a
    // job claims, and makes sure the next generation's job exists when runs remain; jobs run in any order, any
    // number of times. The model checks that no run is stranded (joined, never claimed) or claimed twice.
    type Step = { kind: "join"; run: number } | { kind: "claim"; pick: number };
    const step = fc.oneof(
      fc.record({ kind: fc.constant("join" as const), run: fc.integer({ min: 1, max: 15 }) }),
      fc.record({ kind: fc.constant("claim" as const), pick: fc.nat() }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 60 }), fc.integer({ min: 1, max: 5 }), async (steps, max) => {
        const store = newStore();
        const jobs = new Set<number>();
        const joined = new Set<number>();
        const claimedBy = new Map<string, Set<number>>();
        const runJob = async (generation: number) => {
          const claim = await store.claim(CODE_HASH, generation, max);
          expect(claim.entries.length).toBeLessThanOrEqual(max);
          if (claim.remaining > 0) jobs.add(generation + 1);
          for (const id of idsOf(claim.entries)) {
            const by = claimedBy.get(id) ?? new Set<number>();
            by.add(generation);
            claimedBy.set(id, by);
          }
        };
        for (const s of steps as Step[]) {
          if (s.kind === "join") {
            const { generation } = await store.join(entryOf(s.run));
            joined.add(s.run);
            jobs.add(generation);
          } else if (jobs.size > 0) {
            await runJob([...jobs][s.pick % jobs.size]!);
          }
        }
        // Every job that exists runs (again), until no new one appears.
        for (let size = -1; size !== jobs.size;) {
          size = jobs.size;
          for (const generation of [...jobs]) await runJob(generation);
        }
        expect([...claimedBy.keys()].sort()).toEqual([...joined].map(resultIdOf).sort());
        for (const by of claimedBy.values()) expect(by.size).toBe(1);
      }),
      { numRuns: 150 },
    );
  }, 60_000);
});

/** The event id of a minute's HTTP event submitted by {@link submitMinutes}. */
const eventIdOf = (stack: PipelineStack, tag: string, minute: number) =>
  httpEventId(`${stack.prefix}-${tag}-${minute}`);

/** Submits one HTTP event per minute of price-median's data (idempotency key `<tag>-<minute>`). */
function submitMinutes(stack: PipelineStack, minutes: MinuteInput[], tag: string) {
  return Promise.all(
    minutes.map(({ minute, input }) =>
      stack.pipeline.submit({
        eventId: eventIdOf(stack, tag, minute),
        cryptlet: { name: stack.pkg.manifest.name },
        source: { type: "http", idempotencyKey: `${tag}-${minute}` },
        input,
        time: minute + 59,
      }),
    ),
  );
}

/** Anchored results per chain, read from the ledger's `BatchAnchored` events: root → count. */
async function anchoredBatches(chain: StackChain): Promise<Map<string, number>> {
  const ledger = interfaceOf("ResultLedger");
  const logs = await chain.node.provider.getLogs({
    address: chain.contracts.ledger,
    topics: [ledger.getEvent("BatchAnchored")!.topicHash],
    fromBlock: 0,
  });
  return new Map(logs.map((log) => [log.topics[1]!, Number(ledger.parseLog(log)!.args.count)]));
}

/** Checks that each receipt is confirmed on every chain, in a batch the chain anchored, and that the chains anchored nothing else. */
async function expectAnchoredOnce(stack: PipelineStack, receipts: CompositeReceipt[]): Promise<void> {
  for (const chain of stack.chains) {
    const batches = await anchoredBatches(chain);
    expect([...batches.values()].reduce((a, b) => a + b, 0)).toBe(receipts.length);
    for (const receipt of receipts) {
      const target = receipt.targets.find((t) => t.chain === chain.name)!;
      expect(target.status).toBe("confirmed");
      expect(batches.has(target.batch!.root)).toBe(true);
    }
  }
}

describe("micro-batches in the pipeline (one chain, in-process workers)", () => {
  let stack: PipelineStack;
  let minutes: MinuteInput[];
  const event = (index: number, key: string, input?: unknown) => ({
    eventId: httpEventId(`${stack.prefix}-${key}`),
    cryptlet: { name: stack.pkg.manifest.name },
    source: { type: "http" as const, idempotencyKey: key },
    input: input ?? minutes[index]!.input,
    time: minutes[index]!.minute + 59,
  });

  beforeAll(async () => {
    minutes = await loadMinuteInputs();
    stack = await startPipelineStack({
      chains: [{ name: "solo", chainId: 77_101 }],
      targets: [{ chain: "solo", mode: "anchor" }],
      microBatch: { maxResults: 8, windowMs: 50 },
    });
  }, 120_000);

  afterAll(async () => {
    await stack?.close();
  });

  test("a run whose Cryptlet fails fails alone, with its own dead letter; the others, duplicates and retries each land once", async () => {
    // A retryable failure once, for one run: its batch is retried, and nothing of the others is done twice.
    const sandbox = stack.ctx.sandbox;
    const run = sandbox.run.bind(sandbox);
    let failedOnce = false;
    sandbox.run = async (...args: Parameters<typeof sandbox.run>) => {
      if (!failedOnce && (args[2] as { now: number }).now === minutes[3]!.minute + 59) {
        failedOnce = true;
        throw new CryptletError(ERR_RUN_UNKNOWN, "a transient failure, once", { retryable: true });
      }
      return run(...args);
    };
    try {
      const events = Array.from({ length: 30 }, (_, i) =>
        // Runs 5 and 17 have no observations: price-median fails them (NO_QUORUM), which is not retryable.
        event(i, `mb-${i}`, i === 5 || i === 17 ? { ...(minutes[i]!.input as object), observations: [] } : undefined),
      );
      const runs = await Promise.all(events.map((e) => stack.pipeline.submit(e)));
      // The same events again while in flight: the same runs.
      const again = await Promise.all(events.slice(0, 10).map((e) => stack.pipeline.submit(e)));
      expect(again.map((r) => r.runId)).toEqual(runs.slice(0, 10).map((r) => r.runId));

      const receipts: CompositeReceipt[] = [];
      for (const [i, { runId }] of runs.entries()) {
        const outcome = await stack.pipeline.waitForRun(runId, 60_000);
        if (i === 5 || i === 17) {
          expect(outcome.status).toBe("failed");
          if (outcome.status === "failed") expect(outcome.error.stage).toBe("execute");
        } else {
          expect(outcome.status).toBe("complete");
          if (outcome.status === "complete") receipts.push(outcome.receipt);
        }
      }
      expect(failedOnce).toBe(true);
      // One dead letter per failed run, naming it, in the batches stage.
      const dead = (await stack.pipeline.deadLetters()).filter((d) => d.queue === QUEUES.batches);
      expect(dead.map((d) => (d.data as BatchEntry).execute.resultId).sort()).toEqual(
        [runs[5]!.resultId, runs[17]!.resultId].sort(),
      );
      expect(dead.every((d) => d.error.code === "ERR_CRYPTLET_THREW" && d.name === "execute")).toBe(true);

      // The same events after their runs settled: still the same runs, not run again.
      const late = await Promise.all(events.slice(0, 3).map((e) => stack.pipeline.submit(e)));
      expect(late.map((r) => r.runId)).toEqual(runs.slice(0, 3).map((r) => r.runId));
      await new Promise((r) => setTimeout(r, 1500));
      await expectAnchoredOnce(stack, receipts);
      // Nothing is left in flight: the backlog is empty, every batch job completed, every claimed set released.
      expect((await stack.pipeline.backlog.size()).runs).toBe(0);
      const counts = await stack.pipeline.queue(QUEUES.batches).getJobCounts("active", "delayed", "waiting", "failed");
      expect(counts).toEqual({ active: 0, delayed: 0, waiting: 0, failed: 0 });
      const retried = await stack.pipeline.queue(QUEUES.batches).getJobs(["completed"]);
      expect(retried.some((j) => j.attemptsMade > 0)).toBe(true);
      const claimed = [];
      for await (const keys of scanKeys(stack.redis, `${stack.prefix}:{batch:*}:claimed:*`)) claimed.push(...keys);
      expect(claimed).toEqual([]);
    } finally {
      sandbox.run = run;
    }
  }, 120_000);

  test("a batch job that fails for good as a whole fails each of its runs, with the job's error, and nothing stays in flight", async () => {
    // A failure outside any run's own handling (here the result store refusing a read, not retryable).
    const results = stack.ctx.results;
    const getAttested = results.getAttested.bind(results);
    const doomed = new Set<string>();
    results.getAttested = async (resultId: string) => {
      if (doomed.has(resultId)) throw new CryptletError(ERR_CHAIN_UNKNOWN, "injected: the store refused a read");
      return getAttested(resultId);
    };
    try {
      const events = [50, 51, 52].map((i) => event(i, `mb-doomed-${i}`));
      for (const e of events) doomed.add(computeResultId(stack.pkg.cryptletId, e.eventId));
      const runs = await Promise.all(events.map((e) => stack.pipeline.submit(e)));
      for (const run of runs) {
        const outcome = await stack.pipeline.waitForRun(run.runId, 30_000);
        expect(outcome.status === "failed" && outcome.error).toMatchObject({
          stage: "batches",
          code: "ERR_CHAIN_UNKNOWN",
        });
      }
      const dead = (await stack.pipeline.deadLetters()).filter(
        (d) => d.queue === QUEUES.batches && d.error.code === "ERR_CHAIN_UNKNOWN",
      );
      expect(dead).toHaveLength(1);
      expect(dead[0]!.jobId).toMatch(/^batch-0x[0-9a-f]{64}-\d+$/);
      expect((await stack.pipeline.backlog.size()).runs).toBe(0);
      const claimed = [];
      for await (const keys of scanKeys(stack.redis, `${stack.prefix}:{batch:*}:claimed:*`)) claimed.push(...keys);
      expect(claimed).toEqual([]);
    } finally {
      results.getAttested = getAttested;
    }
  }, 60_000);

  test("per-result job ids are not used: a micro-batched run has no execute, attest, write or run job", async () => {
    const { runId, resultId } = await stack.pipeline.submit(event(40, "mb-jobs"));
    expect((await stack.pipeline.waitForRun(runId, 60_000)).status).toBe("complete");
    expect(await stack.pipeline.queue(QUEUES.execute).getJob(jobIds.execute(resultId))).toBeUndefined();
    expect(await stack.pipeline.queue(QUEUES.runs).getJob(jobIds.run(resultId))).toBeUndefined();
  }, 60_000);
});

describe("a worker process killed with SIGKILL in the middle of micro-batches, then restarted", () => {
  let stack: PipelineStack;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    stack = await startPipelineStack({
      chains: [
        { name: "alpha", chainId: 77_201 },
        { name: "beta", chainId: 77_202 },
      ],
      targets: [
        { chain: "alpha", mode: "anchor" },
        { chain: "beta", mode: "anchor" },
      ],
      microBatch: { maxResults: 16, windowMs: 20 },
      workers: false,
    });
  }, 120_000);

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    await stack?.close();
  });

  test("every run completes, anchored exactly once on each chain", async () => {
    const configFile = await stack.writeConfig();
    const caFile = path.join(path.dirname(configFile), "ca.pem");
    const first = await startWorker(configFile, caFile);
    children.push(first);
    const minutes = (await loadMinuteInputs()).slice(0, 200);
    const runs = await submitMinutes(stack, minutes, "mb-crash");
    // Kill the worker once some runs have their receipts and others are attested or waiting for their anchors.
    const deadline = Date.now() + 90_000;
    let done = 0;
    let attested = 0;
    while (Date.now() < deadline) {
      const states = await Promise.all(
        runs.map(async (r) => [
          await stack.ctx.results.getReceipt(r.runId),
          await stack.ctx.results.getAttested(r.resultId),
        ]),
      );
      done = states.filter(([receipt]) => receipt).length;
      attested = states.filter(([receipt, record]) => !receipt && record).length;
      if (done >= 20 && attested > 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    first.kill("SIGKILL");
    await new Promise((resolve) => first.once("exit", resolve));
    expect(done).toBeGreaterThanOrEqual(20);
    expect(done).toBeLessThan(runs.length);
    expect(attested).toBeGreaterThan(0);

    const second = await startWorker(configFile, caFile);
    children.push(second);
    const receipts: CompositeReceipt[] = [];
    for (const run of runs) {
      const outcome = await stack.pipeline.waitForRun(run.runId, 120_000);
      expect(outcome.status).toBe("complete");
      if (outcome.status === "complete") receipts.push(outcome.receipt);
    }
    await expectAnchoredOnce(stack, receipts);
    expect((await stack.pipeline.backlog.size()).runs).toBe(0);
  }, 300_000);
});

describe("a reorg cancelling micro-batched runs (runtime/triggers/cancelRun.ts)", () => {
  let stack: PipelineStack;

  beforeAll(async () => {
    // Only the events stage at first: accepted runs wait in their batch, unclaimed.
    stack = await startPipelineStack({
      chains: [{ name: "solo", chainId: 77_301 }],
      targets: [{ chain: "solo", mode: "anchor" }],
      microBatch: { maxResults: 8, windowMs: 50 },
      workers: { stages: ["events"] },
    });
  }, 120_000);

  afterAll(async () => {
    await stack?.close();
  });

  test("a run not yet claimed is withdrawn and never anchored; a claimed or written one is left to finish", async () => {
    const minutes = (await loadMinuteInputs()).slice(0, 4);
    const runs = await submitMinutes(stack, minutes, "mb-reorg");
    const deadline = Date.now() + 30_000;
    while ((await Promise.all(runs.map((r) => stack.ctx.results.getRun(r.resultId)))).some((r) => !r)) {
      if (Date.now() > deadline) throw new Error("runs not accepted");
      await new Promise((r) => setTimeout(r, 20));
    }
    const removed = (index: number) => ({
      subscription: "test",
      chain: "solo",
      blockNumber: 1,
      blockHash: `0x${"ab".repeat(32)}`,
      event: {
        eventId: eventIdOf(stack, "mb-reorg", minutes[index]!.minute),
        runId: runs[index]!.runId,
        cryptlet: stack.pkg.manifest.name,
        kind: "chain-log" as const,
        txHash: `0x${"cd".repeat(32)}`,
        logIndex: 0,
      },
    });
    expect(await cancelRemovedRun(stack.pipeline, removed(0))).toMatchObject({
      action: "cancelled",
      reason: "not-written",
    });

    // Now the batches stage (and, with it, the anchor batcher's loop) runs.
    stack.pipeline.startWorkers({ stages: ["batches"], lockDurationMs: 5000, stalledIntervalMs: 2000 });
    // A run its batch has claimed and attested, waiting for its anchor: in flight, not cancelled (it will be written).
    const claimedBy = Date.now() + 30_000;
    for (;;) {
      const [attested, receipt] = await Promise.all([
        stack.ctx.results.getAttested(runs[1]!.resultId),
        stack.ctx.results.getReceipt(runs[1]!.runId),
      ]);
      if (attested && !receipt) break;
      if (receipt || Date.now() > claimedBy) throw new Error("run 1 was not seen waiting for its anchor");
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(await cancelRemovedRun(stack.pipeline, removed(1))).toMatchObject({
      action: "recorded",
      reason: "in-flight",
    });
    const cancelled = await stack.pipeline.waitForRun(runs[0]!.runId, 30_000);
    expect(cancelled.status === "failed" && cancelled.error.code).toBe("ERR_TRIGGER_LOG_REORGED");
    const receipts: CompositeReceipt[] = [];
    for (const run of runs.slice(1)) {
      const outcome = await stack.pipeline.waitForRun(run.runId, 60_000);
      expect(outcome.status).toBe("complete");
      if (outcome.status === "complete") receipts.push(outcome.receipt);
    }
    await expectAnchoredOnce(stack, receipts);
    expect(await stack.ctx.chains.get("solo")!.anchors!.statusOf(runs[0]!.resultId)).toBe("unknown");
    expect(await cancelRemovedRun(stack.pipeline, removed(2))).toMatchObject({
      action: "recorded",
      reason: "written",
    });
  }, 120_000);
});
