/**
 * The pipeline on a real Redis Cluster (three masters, three replicas): three worker processes, configured only by
 * the configuration file's `redisCluster`, and the master that holds the queues (BullMQ's `{prefix}` slot) killed
 * with SIGKILL mid-run. Redis fails over to its replica; every result must still land on the chain exactly once,
 * read from the chain itself.
 */
import type { ChildProcess } from "node:child_process";
import path from "node:path";

import { Cluster } from "ioredis";

import { httpEventId } from "../../runtime/attestation/ids.ts";
import { interfaceOf } from "../../runtime/chains/contracts.ts";
import { QUEUES } from "../../runtime/queue/topology.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";
import { startPipelineStack, type PipelineStack } from "../support/pipelineStack.ts";
import { startRedisCluster, type TestRedisCluster } from "../support/redisCluster.ts";
import { startWorker, stopWorker } from "../support/workerProcess.ts";

const RUNS = 48;

describe("the pipeline on a Redis Cluster, with a master failed over mid-run", () => {
  let cluster: TestRedisCluster;
  let stack: PipelineStack;
  const workers: ChildProcess[] = [];

  beforeAll(async () => {
    cluster = await startRedisCluster();
    stack = await startPipelineStack({
      chains: [{ name: "alpha", chainId: 73_201 }],
      targets: [{ chain: "alpha", mode: "record" }],
      workers: false,
      redisCluster: cluster.nodes,
    });
  }, 180_000);

  afterAll(async () => {
    for (const child of workers) if (child.exitCode === null) child.kill("SIGKILL");
    await stack?.close().catch(() => undefined);
    await cluster?.close();
  });

  test("keys spread by hash tag; every result lands exactly once after the queue master dies", async () => {
    expect(stack.redis).toBeInstanceOf(Cluster);
    expect(stack.pipeline.queuePrefix).toBe(`{${stack.prefix}}`);
    const configFile = await stack.writeConfig();
    const caFile = path.join(path.dirname(configFile), "ca.pem");
    for (let i = 0; i < 3; i++) workers.push(await startWorker(configFile, caFile));

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
    expect(before).toBeLessThan(RUNS / 2); // runs in flight when the master dies

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

    // The chain itself: one ResultRecorded per result, and one relayer transaction per result (no second write
    // that the ledger would have refused).
    const chain = stack.chains[0]!;
    const topic = interfaceOf("ResultLedger").getEvent("ResultRecorded")!.topicHash;
    const logs = await chain.node.provider.getLogs({ address: chain.contracts.ledger, topics: [topic], fromBlock: 0 });
    const perResult = new Map<string, number>();
    for (const log of logs) perResult.set(log.topics[1]!, (perResult.get(log.topics[1]!) ?? 0) + 1);
    expect(perResult.size).toBe(RUNS);
    for (const run of runs) expect(perResult.get(run.resultId)).toBe(1);
    const relayer = (await chain.node.provider.getTransaction(logs[0]!.transactionHash))!.from;
    expect(await chain.node.provider.getTransactionCount(relayer, "latest")).toBe(RUNS);
    expect(await stack.pipeline.queue(QUEUES.deadLetter).count()).toBe(0);

    // The stores' keys spread over the masters by their hash tags (results by result id).
    const masters = new Set<number>();
    for (const run of runs) masters.add((await cluster.masterOf(`x:result:{${run.resultId.toLowerCase()}}:run`)).port);
    expect(masters.size).toBe(3);

    const exits = await Promise.all(workers.splice(0).map((child) => stopWorker(child)));
    expect(exits).toEqual([0, 0, 0]); // each drained within its shutdown deadline
  }, 420_000);
});
