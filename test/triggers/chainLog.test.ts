import type { Contract, ContractTransactionResponse } from "ethers";

import { chainLogEventId } from "../../runtime/attestation/ids.ts";
import { isCryptletError } from "../../runtime/errors.ts";
import { parseManifest } from "../../runtime/packages/manifest.ts";
import { QUEUES, jobIds, type CryptletEvent } from "../../runtime/queue/topology.ts";
import { ChainLogListener } from "../../runtime/triggers/ChainLogListener.ts";
import { ScheduleService } from "../../runtime/triggers/ScheduleService.ts";
import { subscriptionsOf, type ChainLogSubscription } from "../../runtime/triggers/subscriptions.ts";
import { TriggerService } from "../../runtime/triggers/TriggerService.ts";
import { startPipelineStack, type PipelineStack } from "../support/pipelineStack.ts";
import { deployArtifact, eventJobs } from "./helpers.ts";

const PING = "Ping(address indexed sender, uint256 indexed seq, int256 value, string note)";

describe("chain-log listener (real Redis, hardhat node)", () => {
  let stack: PipelineStack;
  let chainId: number;

  beforeAll(async () => {
    stack = await startPipelineStack({
      chains: [{ name: "consortium", chainId: 73_001 }],
      targets: [{ chain: "consortium", mode: "record" }],
      workers: false,
    });
    chainId = stack.chains[0]!.node.chainId;
  }, 120_000);

  afterAll(async () => {
    await stack?.close();
  });

  const node = () => stack.chains[0]!.node;
  const mine = async (blocks = 1) => {
    for (let i = 0; i < blocks; i += 1) await node().rpc("evm_mine");
  };
  const emitter = () => deployArtifact(node().funder, "testing/LogEmitter.sol", "LogEmitter");
  const send = async (contract: Contract, method: string, ...args: unknown[]) => {
    const tx = (await contract.getFunction(method)(...args)) as ContractTransactionResponse;
    return (await tx.wait())!;
  };
  const subscription = (
    id: string,
    address: string,
    extra: Partial<ChainLogSubscription> = {},
  ): ChainLogSubscription => ({
    kind: "chain-log",
    id: `${stack.prefix}-${id}`,
    chain: "consortium",
    address,
    event: PING,
    confirmations: 0,
    cryptlet: { name: stack.pkg.manifest.name },
    ...extra,
  });
  const eventsAt = async (address: string) =>
    (await eventJobs(stack.pipeline)).filter(
      (j) => j.event.source.type === "chain-log" && j.event.source.address.toLowerCase() === address.toLowerCase(),
    );

  test("each log becomes exactly one event, decoded, after its confirmations and not before", async () => {
    const contract = await emitter();
    const address = await contract.getAddress();
    const seen: CryptletEvent[] = [];
    const listener = new ChainLogListener({
      pipeline: stack.pipeline,
      subscriptions: [
        subscription("confirm", address, { confirmations: 3 }),
        // the bare signature: the first topics.length - 1 parameters are taken as indexed
        subscription("bare", address, {
          confirmations: 3,
          event: "Ping(address,uint256,int256,string)",
          cryptlet: { name: "@test/bare" },
        }),
      ],
      onEvent: ({ event }) => seen.push(event),
    });
    await listener.scanOnce(); // pins the start: only logs after this point
    const receipt = await send(contract, "ping", 1n, -5n, "hello");
    const block = await node().provider.getBlock(receipt.blockNumber);

    expect((await listener.scanOnce()).submitted[`${stack.prefix}-confirm`]).toBe(0);
    await mine(2);
    expect((await listener.scanOnce()).submitted[`${stack.prefix}-confirm`]).toBe(0); // 2 blocks on top of 3
    await mine(1);
    const report = await listener.scanOnce();
    expect(report.submitted).toEqual({ [`${stack.prefix}-confirm`]: 1, [`${stack.prefix}-bare`]: 1 });

    const log = receipt.logs[0]!;
    const eventId = chainLogEventId({
      chainId,
      blockHash: log.blockHash,
      txHash: log.transactionHash,
      logIndex: log.index,
    });
    const named = seen.find((e) => e.cryptlet.name === stack.pkg.manifest.name)!;
    expect(named.eventId).toBe(eventId);
    expect(named.time).toBe(block!.timestamp);
    expect(named.source).toEqual({
      type: "chain-log",
      chainId,
      address,
      blockNumber: receipt.blockNumber,
      blockHash: log.blockHash,
      txHash: log.transactionHash,
      logIndex: log.index,
    });
    expect(named.input).toMatchObject({
      event: "Ping",
      signature: "Ping(address,uint256,int256,string)",
      args: { sender: node().funder.address, seq: "1", value: "-5", note: "hello" },
      address,
      topics: log.topics,
      data: log.data,
      blockNumber: receipt.blockNumber,
      timestamp: block!.timestamp,
    });
    const bare = seen.find((e) => e.cryptlet.name === "@test/bare")!;
    expect((bare.input as { args: unknown }).args).toEqual({
      "0": node().funder.address,
      "1": "1",
      "2": "-5",
      "3": "hello",
    });

    // Many logs in one transaction and across blocks; a second pass submits nothing new.
    await send(contract, "pingMany", 10n, 5n);
    await send(contract, "ping", 20n, 7n, "");
    await mine(3);
    expect((await listener.scanOnce()).submitted[`${stack.prefix}-confirm`]).toBe(6);
    expect((await listener.scanOnce()).submitted[`${stack.prefix}-confirm`]).toBe(0);
    const jobs = (await eventsAt(address)).filter((j) => j.event.cryptlet.name === stack.pkg.manifest.name);
    expect(jobs).toHaveLength(7);
    expect(new Set(jobs.map((j) => j.event.eventId)).size).toBe(7);
    const seqs = jobs.map((j) => Number((j.event.input as { args: { seq: string } }).args.seq)).sort((a, b) => a - b);
    expect(seqs).toEqual([1, 10, 11, 12, 13, 14, 20]);
    const checkpoint = await listener.checkpoint(`${stack.prefix}-confirm`);
    expect(checkpoint!.blockNumber).toBe((await node().provider.getBlockNumber()) - 3);
  });

  test("restart: a listener stopped mid-stream and a new one resume with no gap and no duplicate", async () => {
    const contract = await emitter();
    const address = await contract.getAddress();
    const sub = subscription("restart", address);
    const submitted: string[] = [];
    let stopped: Promise<void> | undefined;
    const first: ChainLogListener = new ChainLogListener({
      pipeline: stack.pipeline,
      subscriptions: [sub],
      maxBlockRange: 1,
      pollIntervalMs: 20,
      onEvent: ({ event }) => {
        submitted.push(event.eventId);
        if (submitted.length === 4) stopped = first.stop(); // mid-stream: the range in progress is finished
      },
    });
    await first.scanOnce();
    const emitted: string[] = [];
    const blocks: number[] = [];
    const emit = async (seq: number) => {
      const receipt = await send(contract, "ping", BigInt(seq), 0n, "r");
      blocks.push(receipt.blockNumber);
      const log = receipt.logs[0]!;
      emitted.push(
        chainLogEventId({ chainId, blockHash: log.blockHash, txHash: log.transactionHash, logIndex: log.index }),
      );
    };
    for (let seq = 0; seq < 12; seq += 1) await emit(seq);
    first.start();
    while (!stopped) await new Promise((r) => setTimeout(r, 5));
    await stopped;
    expect(submitted).toHaveLength(4);
    // the checkpoint is the block of the 4th log: the stopped listener persisted exactly what it submitted
    expect((await first.checkpoint(sub.id))!.blockNumber).toBe(blocks[3]);
    for (let seq = 12; seq < 17; seq += 1) await emit(seq);

    const second = new ChainLogListener({
      pipeline: stack.pipeline,
      subscriptions: [sub],
      maxBlockRange: 1,
      onEvent: ({ event }) => submitted.push(event.eventId),
    });
    await second.scanOnce();
    expect(submitted).toEqual(emitted); // every log once, in chain order, across both listeners
    expect(await eventsAt(address)).toHaveLength(17);
  });

  test("backfill: a new subscription from a block, and a rewind, resubmit history without duplicate events", async () => {
    const contract = await emitter();
    const address = await contract.getAddress();
    const firstReceipt = await send(contract, "ping", 1n, 1n, "old");
    await send(contract, "pingMany", 2n, 3n);
    await mine(5);
    const seen: CryptletEvent[] = [];
    const sub = subscription("backfill", address, { fromBlock: firstReceipt.blockNumber });
    const listener = new ChainLogListener({
      pipeline: stack.pipeline,
      subscriptions: [sub],
      maxBlockRange: 2,
      onEvent: ({ event }) => seen.push(event),
    });
    expect((await listener.scanOnce()).submitted[sub.id]).toBe(4);
    expect(seen.map((e) => (e.input as { args: { seq: string } }).args.seq)).toEqual(["1", "2", "3", "4"]);

    // Without fromBlock the history is not replayed.
    const fresh = new ChainLogListener({
      pipeline: stack.pipeline,
      subscriptions: [subscription("nobackfill", address)],
    });
    expect((await fresh.scanOnce()).submitted[`${stack.prefix}-nobackfill`]).toBe(0);

    // Rewinding an existing subscription resubmits; the pipeline keeps one event per log.
    await listener.backfill(sub.id, firstReceipt.blockNumber + 1);
    expect((await listener.scanOnce()).submitted[sub.id]).toBe(3);
    expect(await eventsAt(address)).toHaveLength(4);
  });

  test("reorg: runs of removed logs that wrote nothing are cancelled and recorded; the new branch is processed", async () => {
    const contract = await emitter();
    const address = await contract.getAddress();
    const sub = subscription("reorg", address);
    const listener = new ChainLogListener({ pipeline: stack.pipeline, subscriptions: [sub] });
    await listener.scanOnce();
    const snapshot = await node().rpc<string>("evm_snapshot");
    for (const seq of [100n, 101n, 102n]) await send(contract, "ping", seq, 0n, "old branch");
    await listener.scanOnce();
    const before = await eventsAt(address);
    expect(before).toHaveLength(3);

    await node().rpc("evm_revert", [snapshot]);
    await send(contract, "ping", 200n, 0n, "new branch");
    await send(contract, "ping", 201n, 0n, "new branch");
    const report = await listener.scanOnce();
    expect(report.reorged.map((r) => [r.action, r.reason])).toEqual([
      ["cancelled", "not-accepted"],
      ["cancelled", "not-accepted"],
      ["cancelled", "not-accepted"],
    ]);
    expect(report.reorged.map((r) => r.eventId).sort()).toEqual(before.map((j) => j.event.eventId).sort());
    expect(report.submitted[sub.id]).toBe(2);
    const after = await eventsAt(address);
    expect(after.map((j) => (j.event.input as { args: { seq: string } }).args.seq).sort()).toEqual(["200", "201"]);
    const journal = (await listener.store.reorgs()).filter((r) => r.subscription === sub.id);
    expect(journal).toHaveLength(3);
    expect(journal.every((r) => r.chain === "consortium" && r.blockNumber > 0)).toBe(true);
  });

  test("one listener at a time scans a subscription (Redis lock); stop releases it", async () => {
    const contract = await emitter();
    const sub = subscription("locked", await contract.getAddress());
    const a = new ChainLogListener({ pipeline: stack.pipeline, subscriptions: [sub] });
    const b = new ChainLogListener({ pipeline: stack.pipeline, subscriptions: [sub] });
    expect((await a.scanOnce()).skipped).toEqual([]);
    expect((await b.scanOnce()).skipped).toEqual([sub.id]);
    await a.stop();
    expect((await b.scanOnce()).skipped).toEqual([]);
    await b.stop();
  });

  test("a listener that dies holding the lease (no stop) is taken over once the lease lapses", async () => {
    const contract = await emitter();
    const sub = subscription("lapsed", await contract.getAddress());
    const lockTtlMs = 1500;
    const a = new ChainLogListener({ pipeline: stack.pipeline, subscriptions: [sub], lockTtlMs });
    const b = new ChainLogListener({ pipeline: stack.pipeline, subscriptions: [sub], lockTtlMs });
    expect((await a.scanOnce()).skipped).toEqual([]);
    // `a` is gone without releasing (a SIGKILLed process renews nothing): `b` waits for the lease to lapse.
    expect((await b.scanOnce()).skipped).toEqual([sub.id]);
    await new Promise((resolve) => setTimeout(resolve, lockTtlMs + 500));
    expect((await b.scanOnce()).skipped).toEqual([]);
    await b.stop();
  });

  test("invalid subscriptions are recorded and skipped; the others still run", async () => {
    const contract = await emitter();
    const address = await contract.getAddress();
    const listener = new ChainLogListener({ pipeline: stack.pipeline });
    const problems = await listener.setSubscriptions([
      subscription("no-chain", address, { chain: "nowhere" }),
      subscription("bad-event", address, { event: "Ping(address" }),
      subscription("bad-address", "0x1234"),
      subscription("good", address),
    ]);
    expect(problems.map((p) => (isCryptletError(p) ? p.code : "?"))).toEqual([
      "ERR_TRIGGER_CHAIN_UNKNOWN",
      "ERR_TRIGGER_SUBSCRIPTION_INVALID",
      "ERR_TRIGGER_SUBSCRIPTION_INVALID",
    ]);
    expect(listener.subscriptions.map((s) => s.id)).toEqual([`${stack.prefix}-good`]);
    const journal = await listener.store.problems();
    expect(journal.map((p) => p.code)).toEqual(
      expect.arrayContaining(["ERR_TRIGGER_CHAIN_UNKNOWN", "ERR_TRIGGER_SUBSCRIPTION_INVALID"]),
    );
    expect(
      journal.find((p) => p.code === "ERR_TRIGGER_SUBSCRIPTION_INVALID" && p.details.field === "address"),
    ).toBeDefined();
    await expect(listener.backfill("no-such-subscription", 0)).rejects.toMatchObject({
      code: "ERR_TRIGGER_SUBSCRIPTION_UNKNOWN",
    });

    // A signature whose `indexed` markers contradict the contract's: the log is recorded and skipped.
    const wrong = subscription("wrong-indexed", address, {
      event: "Ping(address sender, uint256 seq, int256 indexed value, string note)",
    });
    await listener.setSubscriptions([wrong, subscription("good", address)]);
    await listener.scanOnce();
    await send(contract, "ping", 5n, 5n, "x");
    const report = await listener.scanOnce();
    expect(report.submitted).toEqual({ [wrong.id]: 0, [`${stack.prefix}-good`]: 1 });
    const skipped = (await listener.store.problems()).find((p) => p.code === "ERR_TRIGGER_LOG_UNDECODABLE");
    expect(skipped?.details).toMatchObject({ subscription: wrong.id, logIndex: 0 });
  });

  test("manifest triggers become subscriptions and schedules", () => {
    const manifest = parseManifest({
      name: "@test/swaps",
      version: "1.0.0",
      entry: "src/index.ts",
      triggers: [
        {
          type: "chain-log",
          chain: "public",
          address: "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640",
          event: "Swap(address,address,int256,int256,uint160,uint128,int24)",
          confirmations: 2,
        },
        { type: "oracle", chain: "consortium", confirmations: 3 },
        { type: "schedule", cron: "*/5 * * * *" },
        { type: "http" },
      ],
      output: { abi: "uint256" },
      targets: [{ chain: "public", mode: "record" }],
    });
    const other = parseManifest({
      name: "@test/other",
      version: "1.0.0",
      entry: "src/index.ts",
      triggers: [
        { type: "oracle", chain: "consortium", confirmations: 5 },
        { type: "oracle", chain: "unconfigured" },
      ],
      output: { abi: "uint256" },
      targets: [{ chain: "consortium", mode: "oracle" }],
    });
    const oracle = "0x00000000000000000000000000000000000000aa";
    const { logs, schedules } = subscriptionsOf([{ manifest }, { manifest: other }], new Map([["consortium", oracle]]));
    expect(logs).toEqual([
      {
        kind: "chain-log",
        id: "chain-log:@test/swaps:public:0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640:0xc42079f94a6350d7e6235f29174924f928cc2ac818eb64fed8004e115fbcca67",
        chain: "public",
        address: "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640",
        event: "Swap(address,address,int256,int256,uint160,uint128,int24)",
        confirmations: 2,
        cryptlet: { name: "@test/swaps" },
      },
      // one per configured chain, with the deepest declared confirmations
      { kind: "oracle", id: "oracle:consortium", chain: "consortium", address: oracle, confirmations: 5 },
    ]);
    expect(schedules).toEqual([
      { id: "schedule:@test/swaps:*/5 * * * *", cryptlet: { name: "@test/swaps" }, cron: "*/5 * * * *" },
    ]);
  });

  test("schedules: one event per slot, a tick delivered twice is one event, and removed schedulers stop", async () => {
    const ticks: { slotTime: number; runId: string }[] = [];
    const schedules = new ScheduleService({ pipeline: stack.pipeline, onTick: (t) => ticks.push(t) });
    const id = `${stack.prefix}-every-second`;
    await schedules.sync([{ id, cryptlet: { name: "@test/scheduled" }, cron: "* * * * * *" }]);
    expect(await schedules.scheduled()).toEqual([id]);
    schedules.start();
    while (ticks.length < 3) await new Promise((r) => setTimeout(r, 50));
    const slots = ticks.map((t) => t.slotTime);
    expect(new Set(slots).size).toBe(slots.length);
    for (let i = 1; i < slots.length; i += 1) expect(slots[i]! - slots[i - 1]!).toBe(1);

    const scheduled = async () =>
      (await eventJobs(stack.pipeline)).filter((j) => j.event.cryptlet.name === "@test/scheduled");
    const redelivered = await schedules.tick(
      id,
      { cryptlet: { name: "@test/scheduled" }, cron: "* * * * * *" },
      slots[0]!,
    );
    expect(redelivered.runId).toBe(ticks[0]!.runId);
    await schedules.sync([]);
    expect(await schedules.scheduled()).toEqual([]);
    await new Promise((r) => setTimeout(r, 1200)); // a tick already queued may still land
    const count = (await scheduled()).length;
    await new Promise((r) => setTimeout(r, 1100));
    const events = await scheduled();
    expect(events).toHaveLength(count);
    expect(events.length).toBe(new Set(ticks.map((t) => t.slotTime)).size);
    for (const { event } of events) {
      expect(event.source).toEqual({ type: "schedule", slotTime: event.time });
      expect(event.input).toEqual({ slotTime: event.time, cron: "* * * * * *" });
    }
    await schedules.stop();
  });

  test("TriggerService applies the deployed packages' schedules", async () => {
    const triggers = new TriggerService({ pipeline: stack.pipeline, refreshIntervalMs: 60_000 });
    const { schedules, subscriptions } = await triggers.refresh();
    expect(schedules.map((s) => s.id)).toEqual([`schedule:${stack.pkg.manifest.name}:* * * * *`]);
    // price-median declares no chain-log trigger, and an oracle trigger on the consortium chain
    expect(subscriptions.map((s) => s.id)).toEqual(["oracle:consortium"]);
    expect(await triggers.schedules!.scheduled()).toEqual([`schedule:${stack.pkg.manifest.name}:* * * * *`]);
    await triggers.schedules!.sync([]);
    await triggers.stop();
  });

  test("reorg after acceptance: the run's flow is removed and the run fails with ERR_TRIGGER_LOG_REORGED", async () => {
    const acceptor = stack.newPipeline();
    acceptor.startWorkers({ stages: ["events"] }); // accept only: the run waits for an execute worker
    const contract = await emitter();
    const address = await contract.getAddress();
    const sub = subscription("reorg-accepted", address);
    const runIds: string[] = [];
    const counting = new ChainLogListener({
      pipeline: stack.pipeline,
      subscriptions: [sub],
      onEvent: ({ runId }) => runIds.push(runId),
    });
    await counting.scanOnce();
    const snapshot = await node().rpc<string>("evm_snapshot");
    await send(contract, "ping", 300n, 0n, "accepted");
    await counting.scanOnce();
    expect(runIds).toHaveLength(1);
    const runId = runIds[0]!;
    while (!(await stack.pipeline.queue(QUEUES.runs).getJob(jobIds.run(runId))))
      await new Promise((r) => setTimeout(r, 20));

    await node().rpc("evm_revert", [snapshot]);
    await mine(2);
    const report = await counting.scanOnce();
    expect(report.reorged.map((r) => [r.runId, r.action, r.reason])).toEqual([[runId, "cancelled", "not-written"]]);
    expect(await stack.pipeline.queue(QUEUES.runs).getJob(jobIds.run(runId))).toBeUndefined();
    const outcome = await stack.pipeline.waitForRun(runId, 5000);
    expect(outcome.status).toBe("failed");
    if (outcome.status === "failed") expect(outcome.error.code).toBe("ERR_TRIGGER_LOG_REORGED");
  });
});
