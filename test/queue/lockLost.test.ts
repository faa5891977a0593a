/**
 * A job whose lock this worker lost (a Redis fail-over that lost the lock, or a lock that expired while Redis did
 * not answer, and the stalled-job check gave the job to another worker) is no longer this worker's: its failure
 * is not a dead letter, nor a failed outcome; the worker that holds the job now finishes it. Reproduced here on
 * one Redis server by deleting an anchor write's lock while the write runs (when it looks its result up in the
 * batcher, then finding it not yet anchored), so that its `moveToDelayed` fails as it did after a fail-over (the
 * Redis Cluster test's dead letters).
 */
import { httpEventId } from "../../runtime/attestation/ids.ts";
import { interfaceOf } from "../../runtime/chains/contracts.ts";
import { QUEUES } from "../../runtime/queue/topology.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";
import { scanKeys } from "../../runtime/queue/redisClient.ts";
import { startPipelineStack, type PipelineStack } from "../support/pipelineStack.ts";

describe("a job whose lock was lost mid-way", () => {
  let stack: PipelineStack;

  beforeAll(async () => {
    stack = await startPipelineStack({
      chains: [{ name: "lock", chainId: 74_301 }],
      targets: [{ chain: "lock", mode: "anchor" }],
      workers: { lockDurationMs: 5000, stalledIntervalMs: 1000 },
    });
  }, 120_000);

  afterAll(async () => {
    await stack?.close();
  });

  test("is finished by the worker that takes it over: no dead letter, anchored once", async () => {
    const anchors = stack.ctx.chains.get("lock")!.anchors!;
    const anchorOf = anchors.anchorOf.bind(anchors);
    let lost = 0;
    // The write's first look at its batch (made while it holds its lock): the lock disappears (as on a new master
    // that never had it), and the batch is not anchored yet, so the write queues the result and sleeps
    // (`moveToDelayed`, which needs the lock). The attest stage queued the result already; queueing is idempotent.
    anchors.anchorOf = async (resultId) => {
      if (lost === 0) {
        for await (const keys of scanKeys(stack.redis, `${stack.pipeline.queuePrefix}:${QUEUES.writes}:*:lock`)) {
          for (const key of keys) lost += await stack.redis.del(key);
        }
        if (lost > 0) return undefined;
      }
      return anchorOf(resultId);
    };

    const { minute, input } = (await loadMinuteInputs())[0]!;
    const run = await stack.pipeline.submit({
      eventId: httpEventId(`${stack.prefix}-lock-${minute}`),
      cryptlet: { name: stack.pkg.manifest.name },
      source: { type: "http", idempotencyKey: `lock-${minute}` },
      input,
      time: minute + 59,
    });
    const outcome = await stack.pipeline.waitForRun(run.runId, 60_000);
    expect(lost).toBe(1); // the lock was there, and it was taken away
    expect(outcome.status).toBe("complete");
    if (outcome.status === "complete") expect(outcome.receipt.status).toBe("confirmed");

    const letters = await stack.pipeline.deadLetters(100);
    expect(letters.map((l) => `${l.queue} ${l.error.code}: ${l.error.message}`)).toEqual([]);
    // The chain itself: the one result in one anchored batch.
    const chain = stack.chains[0]!;
    const topic = interfaceOf("ResultLedger").getEvent("BatchAnchored")!.topicHash;
    const logs = await chain.node.provider.getLogs({ address: chain.contracts.ledger, topics: [topic], fromBlock: 0 });
    expect(logs.map((log) => Number(interfaceOf("ResultLedger").parseLog(log)!.args.count))).toEqual([1]);
  }, 90_000);
});
