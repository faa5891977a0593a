/**
 * The pipeline on a real Redis Cluster (three masters, three replicas): three worker processes, configured only by
 * the configuration file's `redisCluster`, and the master that holds the queues (BullMQ's `{prefix}` slot) killed
 * with SIGKILL mid-run. Redis fails over to its replica; every result must still be recorded, and its batch anchored,
 * exactly once, read from the chain itself. Then, on the same cluster: the triggers (schedule ticks, a chain-log
 * subscription's checkpoint, lease and block window) and the anchor batcher alone.
 */
import type { ChildProcess } from "node:child_process";
import path from "node:path";

import { Cluster } from "ioredis";

import { httpEventId } from "../../runtime/attestation/ids.ts";
import { interfaceOf } from "../../runtime/chains/contracts.ts";
import { QUEUES } from "../../runtime/queue/topology.ts";
import { ScheduleService } from "../../runtime/triggers/ScheduleService.ts";
import { TriggerStore } from "../../runtime/triggers/TriggerStore.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";
import { startPipelineStack, type PipelineStack } from "../support/pipelineStack.ts";
import { startRedisCluster, type TestRedisCluster } from "../support/redisCluster.ts";
import { startWorker, stopWorker, workerOutput } from "../support/workerProcess.ts";

const RUNS = 48;

let cluster: TestRedisCluster;
beforeAll(async () => {
  cluster = await startRedisCluster();
}, 120_000);
afterAll(async () => {
  await cluster?.close();
});

describe("the pipeline on a Redis Cluster, with a master failed over mid-run", () => {
  let stack: PipelineStack;
  const workers: ChildProcess[] = [];

  beforeAll(async () => {
    stack = await startPipelineStack({
      chains: [{ name: "alpha", chainId: 73_201 }],
      targets: [
        { chain: "alpha", mode: "record" },
        { chain: "alpha", mode: "anchor" },
      ],
      workers: false,
      redisCluster: cluster.nodes,
    });
  }, 180_000);

  afterAll(async () => {
    for (const child of workers) if (child.exitCode === null) child.kill("SIGKILL");
    await stack?.close().catch(() => undefined);
  });

  test("keys spread by hash tag; every result recorded and anchored exactly once after the queue master dies", async () => {
    expect(stack.redis).toBeInstanceOf(Cluster);
    expect(stack.pipeline.queuePrefix).toBe(`{${stack.prefix}}`);
    const configFile = await stack.writeConfig();
    const caFile = path.join(path.dirname(configFile), "ca.pem");
    // A drain after a fail-over may wait out one command deadline (15 s) on a node that died, and more under CI's
    // load: a shutdown deadline of 45 s instead of 20 (docs/operations.md, "Redis Cluster").
    for (let i = 0; i < 3; i++) workers.push(await startWorker(configFile, caFile, { CRYPTLET_SHUTDOWN_MS: "45000" }));

    const minutes = (await loadMinuteInputs()).slice(0, RUNS);
    /** Submits as a client does: again after an error (the same event id is one run). */
    const submit = async ({ minute, input }: (typeof minutes)[number]) => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await stack.pipeline.submit({
            eventId: httpEventId(`${stack.prefix}-cluster-${minute}`),
            cryptlet: { name: stack.pkg.manifest.name },
            source: { type: "http", idempotencyKey: `cluster-${minute}` },
            input,
            time: minute + 59,
          });
        } catch (error) {
          if (attempt >= 30) throw error;
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
      }
    };
    const firstHalf = await Promise.all(minutes.slice(0, RUNS / 2).map(submit));

    // The queues' master: every BullMQ key of the deployment hashes to the `{prefix}` slot.
    const queueKey = `${stack.pipeline.queuePrefix}:${QUEUES.events}:id`;
    const queueMaster = await cluster.masterOf(queueKey);
    const landed = async () =>
      (await Promise.all(firstHalf.map((r) => stack.ctx.results.outcomes(r.resultId)))).flat().length;
    const deadline = Date.now() + 90_000;
    while ((await landed()) < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const before = await landed();
    expect(before).toBeGreaterThanOrEqual(6);
    expect(before).toBeLessThan(RUNS); // of 2 × 24 target outcomes: runs in flight when the master dies

    await queueMaster.kill(); // SIGKILL
    const rest = await Promise.all(minutes.slice(RUNS / 2).map(submit)); // during and after the fail-over
    await cluster.waitHealthy(queueKey);
    const newMaster = await cluster.masterOf(queueKey);
    expect(newMaster.port).not.toBe(queueMaster.port); // a replica took the slot over
    // As a supervisor would: the dead node comes back (same port and data directory) and rejoins as a replica.
    await cluster.revive(queueMaster);

    const runs = [...firstHalf, ...rest];
    for (const run of runs) {
      const outcome = await stack.pipeline.waitForRun(run.runId, 120_000);
      expect(outcome.status).toBe("complete");
      if (outcome.status === "complete") expect(outcome.receipt.status).toBe("confirmed");
    }

    // The chain itself: one ResultRecorded per result.
    const chain = stack.chains[0]!;
    const topic = interfaceOf("ResultLedger").getEvent("ResultRecorded")!.topicHash;
    const logs = await chain.node.provider.getLogs({ address: chain.contracts.ledger, topics: [topic], fromBlock: 0 });
    const perResult = new Map<string, number>();
    for (const log of logs) perResult.set(log.topics[1]!, (perResult.get(log.topics[1]!) ?? 0) + 1);
    expect(perResult.size).toBe(RUNS);
    for (const run of runs) expect(perResult.get(run.resultId)).toBe(1);
    const relayer = (await chain.node.provider.getTransaction(logs[0]!.transactionHash))!.from;
    // The anchor batcher through the fail-over: every result's batch root anchored, each root once.
    const anchoredTopic = interfaceOf("ResultLedger").getEvent("BatchAnchored")!.topicHash;
    const anchored = await chain.node.provider.getLogs({
      address: chain.contracts.ledger,
      topics: [anchoredTopic],
      fromBlock: 0,
    });
    const roots = anchored.map((log) => log.topics[1]!.toLowerCase());
    expect(new Set(roots).size).toBe(roots.length);
    for (const run of runs) {
      const receipt = await stack.ctx.results.getReceipt(run.resultId);
      expect(roots).toContain(receipt!.targets.find((t) => t.mode === "anchor")!.batch!.root.toLowerCase());
    }
    // One relayer transaction per record and per anchored batch: no second write the ledger would have refused.
    expect(await chain.node.provider.getTransactionCount(relayer, "latest")).toBe(RUNS + roots.length);
    // No dead letter: each one named by its stage, error code and message when there is one.
    const letters = await stack.pipeline.deadLetters(1000);
    expect(
      letters.map(
        (l) =>
          `${l.queue} ${l.name} attempt ${l.attemptsMade} ${l.error.code}: ${l.error.message} (${l.error.cause ?? ""})`,
      ),
    ).toEqual([]);

    // The stores' keys spread over the masters by their hash tags (results by result id).
    const masters = new Set<number>();
    for (const run of runs) masters.add((await cluster.masterOf(`x:result:{${run.resultId.toLowerCase()}}:run`)).port);
    expect(masters.size).toBe(3);

    // Every worker drains and exits 0 (SIGTERM). A BullMQ worker's close once waited for ever after the fail-over
    // (its blocking cluster client never emitted `end`) and the worker exited 1 at its shutdown deadline; the
    // pipeline now bounds that wait (Pipeline.close, docs/operations.md "Redis Cluster").
    const stopped = workers.splice(0);
    const exits = await Promise.all(stopped.map((child) => stopWorker(child)));
    const unclean = exits.flatMap((code, i) =>
      code === 0 ? [] : [`worker ${i} exited ${code}; its output ends:\n${workerOutput(stopped[i]!)}`],
    );
    expect(unclean).toEqual([]);
  }, 420_000);

  test("the triggers on the cluster: schedule ticks with consecutive slots; a subscription's lease, blocks and checkpoint", async () => {
    const slots: number[] = [];
    const schedules = new ScheduleService({ pipeline: stack.pipeline, onTick: (tick) => slots.push(tick.slotTime) });
    try {
      await schedules.sync([{ id: `${stack.prefix}-every`, cryptlet: { name: stack.pkg.manifest.name }, every: 1000 }]);
      schedules.start();
      const deadline = Date.now() + 30_000;
      while (new Set(slots).size < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    } finally {
      await schedules.sync([]);
      await schedules.stop();
    }
    const distinct = [...new Set(slots)].sort((a, b) => a - b);
    expect(distinct.length).toBeGreaterThanOrEqual(3);
    expect(distinct.slice(1).map((t, i) => t - distinct[i]!)).toEqual(distinct.slice(1).map(() => 1));
    // Each tick is an event of the queues on the cluster.
    const ticks = await stack.pipeline.queue(QUEUES.events).getJobs(["waiting", "active", "completed"], 0, -1);
    expect(ticks.filter((j) => (j.data as { source?: { type?: string } }).source?.type === "schedule").length).toBe(
      distinct.length,
    );

    // A chain-log subscription's store: its keys share the subscription's hash tag (MULTI and Lua on one slot).
    const store = new TriggerStore(stack.redis, stack.prefix);
    const subscription = `${stack.prefix}-logs`;
    expect(await store.lock(subscription, "listener-a", 10_000)).toBe(true);
    expect(await store.lock(subscription, "listener-b", 10_000)).toBe(false); // one scanner at a time
    const block = (n: number) => ({ blockNumber: n, blockHash: `0x${n.toString(16).padStart(64, "0")}`, events: [] });
    await store.commit(
      subscription,
      [block(10), block(11), block(12)],
      { blockNumber: 12, blockHash: block(12).blockHash },
      64,
    );
    expect(await store.checkpoint(subscription)).toMatchObject({ blockNumber: 12, blockHash: block(12).blockHash });
    await store.rewind(subscription, { blockNumber: 10, blockHash: block(10).blockHash });
    expect(await store.checkpoint(subscription)).toMatchObject({ blockNumber: 10 });
    expect((await store.blocksAtOrBelow(subscription, 12)).map((b) => b.blockNumber)).toEqual([10]); // 11, 12 forgotten
    await store.unlock(subscription, "listener-a");
    expect(await store.lock(subscription, "listener-b", 10_000)).toBe(true); // taken over once released
  }, 120_000);
});

describe("the anchor batcher on a Redis Cluster", () => {
  let stack: PipelineStack;

  beforeAll(async () => {
    stack = await startPipelineStack({
      chains: [{ name: "beta", chainId: 73_202 }],
      targets: [{ chain: "beta", mode: "anchor" }],
      redisCluster: cluster.nodes,
    });
  }, 180_000);

  afterAll(async () => {
    await stack?.close().catch(() => undefined);
  });

  test("every result is anchored in one batch on chain, each batch root once", async () => {
    const minutes = (await loadMinuteInputs()).slice(100, 124);
    const runs = await Promise.all(
      minutes.map(({ minute, input }) =>
        stack.pipeline.submit({
          eventId: httpEventId(`${stack.prefix}-anchor-${minute}`),
          cryptlet: { name: stack.pkg.manifest.name },
          source: { type: "http", idempotencyKey: `anchor-${minute}` },
          input,
          time: minute + 59,
        }),
      ),
    );
    const receipts = [];
    for (const run of runs) {
      const outcome = await stack.pipeline.waitForRun(run.runId, 120_000);
      expect(outcome.status).toBe("complete");
      if (outcome.status === "complete") receipts.push(outcome.receipt);
    }
    const chain = stack.chains[0]!;
    const topic = interfaceOf("ResultLedger").getEvent("BatchAnchored")!.topicHash;
    const logs = await chain.node.provider.getLogs({ address: chain.contracts.ledger, topics: [topic], fromBlock: 0 });
    const roots = logs.map((log) => log.topics[1]!.toLowerCase());
    expect(new Set(roots).size).toBe(roots.length); // each batch anchored once
    const counted = new Map<string, number>();
    for (const receipt of receipts) {
      const root = receipt.targets.find((t) => t.mode === "anchor")!.batch!.root.toLowerCase();
      expect(roots).toContain(root);
      counted.set(root, (counted.get(root) ?? 0) + 1);
    }
    // The chain's own count per batch equals the results whose receipts name it.
    for (const log of logs) {
      const { count } = interfaceOf("ResultLedger").parseLog(log)!.args as unknown as { count: bigint };
      expect(Number(count)).toBe(counted.get(log.topics[1]!.toLowerCase()) ?? 0);
    }
    expect([...counted.values()].reduce((a, b) => a + b, 0)).toBe(runs.length);
  }, 180_000);
});
