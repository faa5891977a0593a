/**
 * Backpressure end to end (issue 13 item 4) on the real pipeline (Redis, BullMQ, a hardhat node, the Key Vault
 * emulator): `Pipeline.submit` beyond the backlog bound gets `ERR_BACKLOG_FULL`, the API answers 429 with
 * `Retry-After` as an RFC 9457 problem, nothing already accepted is lost, and a chain-log trigger facing a full
 * backlog waits and delivers every event later without moving its checkpoint past an event not accepted.
 */
import type { ContractTransactionResponse } from "ethers";

import { startApiServer, type ApiServer } from "../../runtime/api/server.ts";
import { apiDepsOf } from "../../runtime/api/deps.ts";
import { LocalIssuer } from "../../runtime/api/localIssuer.ts";
import { cryptletIdOf, httpEventId } from "../../runtime/attestation/ids.ts";
import { isCryptletError } from "../../runtime/errors.ts";
import { ERR_BACKLOG_FULL } from "../../runtime/queue/errors.ts";
import type { CryptletEvent } from "../../runtime/queue/topology.ts";
import { ChainLogListener } from "../../runtime/triggers/ChainLogListener.ts";
import { ScheduleService } from "../../runtime/triggers/ScheduleService.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";
import { request } from "../api/helpers.ts";
import { startPipelineStack, type PipelineStack } from "../support/pipelineStack.ts";
import { deployArtifact, eventJobs } from "../triggers/helpers.ts";

const BOUND = 3;
const WORKERS = { lockDurationMs: 5000, stalledIntervalMs: 2000 };

describe("backpressure: a bounded backlog (real pipeline, API and chain-log trigger)", () => {
  let stack: PipelineStack;
  let minutes: Awaited<ReturnType<typeof loadMinuteInputs>>;

  beforeAll(async () => {
    minutes = await loadMinuteInputs();
    stack = await startPipelineStack({
      chains: [{ name: "consortium", chainId: 74_001 }],
      targets: [{ chain: "consortium", mode: "record" }],
      workers: false, // nothing drains until a test starts workers
      backlog: { maxRuns: BOUND, maxRunsPerCryptlet: BOUND, retryAfterSeconds: 1 },
    });
  }, 180_000);

  afterAll(async () => {
    await stack?.close();
  });

  const event = (minuteIndex: number, key: string): CryptletEvent => {
    const { minute, input } = minutes[minuteIndex]!;
    return {
      eventId: httpEventId(`${stack.prefix}-${key}`),
      cryptlet: { name: stack.pkg.manifest.name },
      source: { type: "http", idempotencyKey: key },
      input,
      time: minute + 59,
    };
  };

  test("submit beyond the bound is refused (ERR_BACKLOG_FULL), the API answers 429 + Retry-After, nothing accepted is lost", async () => {
    const accepted = [];
    for (let i = 0; i < BOUND; i += 1) accepted.push(await stack.pipeline.submit(event(600 + i, `full-${i}`)));
    const refused = await stack.pipeline.submit(event(700, "over")).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isCryptletError(refused, ERR_BACKLOG_FULL.code)).toBe(true);
    expect((refused as { retryable: boolean }).retryable).toBe(true);
    expect((refused as { details: unknown }).details).toMatchObject({
      scope: "all",
      limit: BOUND,
      retryAfterSeconds: 1,
    });
    // The same event again (a client's retry) is one run already in flight: accepted whatever the backlog.
    expect(await stack.pipeline.submit(event(600, "full-0"))).toEqual(accepted[0]);

    // The API: 429, Retry-After (RFC 9110 §10.2.3), an RFC 9457 problem with the stable code.
    const issuer = await LocalIssuer.create();
    let api: ApiServer | undefined;
    try {
      api = await startApiServer(
        {
          ...apiDepsOf(stack.ctx, stack.pipeline, {
            auth: issuer.authOptions(),
            localIssuer: issuer,
            verification: { trustedSigners: [], threshold: 1 },
          }),
        },
        { port: 0 },
      );
      const token = await issuer.mint({ roles: ["operator"], subject: "backpressure-test" });
      const name = encodeURIComponent(stack.pkg.manifest.name);
      const res = await request(api.url, "POST", `/v1/cryptlets/${name}/invoke`, {
        token,
        json: minutes[701]!.input,
        headers: { "Idempotency-Key": `${stack.prefix}-api-over` },
      });
      expect(res.status).toBe(429);
      expect(res.headers.get("retry-after")).toBe("1");
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(res.body).toMatchObject({ status: 429, code: "ERR_BACKLOG_FULL" });
      // The refused invocation left no record: the same key is accepted once there is room.
      stack.pipeline.startWorkers(WORKERS);
      for (const run of accepted) expect((await stack.pipeline.waitForRun(run.runId, 120_000)).status).toBe("complete");
      expect((await stack.pipeline.backlog.size()).runs).toBe(0);
      const retried = await request(api.url, "POST", `/v1/cryptlets/${name}/invoke`, {
        token,
        json: minutes[701]!.input,
        headers: { "Idempotency-Key": `${stack.prefix}-api-over` },
      });
      expect(retried.status).toBe(202);
      expect(retried.body.replayed).toBe(false);
      expect((await stack.pipeline.waitForRun(retried.body.runId, 120_000)).status).toBe("complete");
    } finally {
      await api?.close();
    }
    // Every accepted run is on-chain exactly once; the refused event was never accepted, so it is not there.
    const ledger = stack.chains[0]!.ledger;
    for (const run of accepted) expect(await ledger.getFunction("isRecorded")(run.resultId)).toBe(true);
    expect((await stack.pipeline.backlog.size()).runs).toBe(0);
  }, 300_000);

  test("a chain-log trigger facing a full backlog waits, keeps its checkpoint, and delivers every event later", async () => {
    await stack.pipeline.close(); // stop the workers: the backlog fills up again
    const pipeline = stack.newPipeline();
    const node = stack.chains[0]!.node;
    const contract = await deployArtifact(node.funder, "testing/LogEmitter.sol", "LogEmitter");
    const address = await contract.getAddress();
    const id = `${stack.prefix}-pings`;
    const listener = new ChainLogListener({
      pipeline,
      pollIntervalMs: 100,
      subscriptions: [
        {
          kind: "chain-log",
          id,
          chain: "consortium",
          address,
          event: "Ping(address indexed sender, uint256 indexed seq, int256 value, string note)",
          confirmations: 0,
          cryptlet: { name: stack.pkg.manifest.name },
        },
      ],
    });
    await listener.scanOnce(); // pins the start
    const LOGS = 2 * BOUND + 2;
    const tx = (await contract.getFunction("pingMany")(1n, BigInt(LOGS))) as ContractTransactionResponse;
    const logsBlock = (await tx.wait())!.blockNumber;
    const ours = async () =>
      (await eventJobs(pipeline)).filter(
        (j) => j.event.source.type === "chain-log" && j.event.source.address.toLowerCase() === address.toLowerCase(),
      );
    listener.start();
    try {
      // The listener submits up to the bound, then waits: the checkpoint stays below the logs' block.
      const deadline = Date.now() + 60_000;
      while ((await ours()).length < BOUND && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      await new Promise((resolve) => setTimeout(resolve, 2500)); // two Retry-After periods
      expect((await ours()).length).toBe(BOUND);
      expect((await listener.checkpoint(id))!.blockNumber).toBeLessThan(logsBlock);

      // Workers drain the backlog (these runs fail in execute: price-median rejects a Ping log as input; a run
      // that failed for good leaves the backlog like a complete one), and the listener delivers the rest.
      pipeline.startWorkers(WORKERS);
      const end = Date.now() + 240_000;
      while (Date.now() < end) {
        const checkpoint = await listener.checkpoint(id);
        if ((checkpoint?.blockNumber ?? 0) >= logsBlock) break;
        await new Promise((r) => setTimeout(r, 250));
      }
    } finally {
      await listener.stop();
    }
    expect((await listener.checkpoint(id))!.blockNumber).toBeGreaterThanOrEqual(logsBlock);
    const delivered = await ours();
    expect(delivered).toHaveLength(LOGS); // every log once
    const seqs = delivered.map((j) => Number((j.event.input as { args: { seq: string } }).args.seq));
    expect(seqs.sort((a, b) => a - b)).toEqual(Array.from({ length: LOGS }, (_, i) => i + 1));
  }, 400_000);

  test("a schedule tick facing a full backlog is delayed (not a failed attempt) and delivered later with its slot", async () => {
    const pipeline = stack.newPipeline(); // submits only; the workers started above finish runs
    const name = stack.pkg.manifest.name;
    const fillers = Array.from({ length: BOUND }, (_, i) => `0x${(0xf000 + i).toString(16).padStart(64, "0")}`);
    // The previous test ends once its last log is delivered; the workers may still be finishing those runs.
    const drained = Date.now() + 120_000;
    while ((await pipeline.backlog.size()).runs > 0 && Date.now() < drained)
      await new Promise((r) => setTimeout(r, 100));
    expect((await pipeline.backlog.size()).runs).toBe(0);
    for (const runId of fillers) await pipeline.backlog.admit(runId, cryptletIdOf(name), name);
    const delivered: { slotTime: number }[] = []; // a slot may be delivered twice (one run): counted once
    const schedules = new ScheduleService({ pipeline, onTick: (tick) => delivered.push(tick) });
    try {
      await schedules.sync([{ id: `${stack.prefix}-every`, cryptlet: { name }, every: 2000 }]);
      schedules.start();
      await new Promise((resolve) => setTimeout(resolve, 5000));
      expect(delivered).toEqual([]); // refused, waiting
      const counts = await schedules.queue.getJobCounts("failed", "delayed", "completed");
      expect(counts).toMatchObject({ failed: 0, completed: 0 }); // delayed, not a failed attempt
      expect(counts.delayed).toBeGreaterThanOrEqual(1);

      const releasedAt = Math.floor(Date.now() / 1000);
      for (const runId of fillers) await pipeline.backlog.release(runId, cryptletIdOf(name));
      const deadline = Date.now() + 90_000;
      const distinct = () => new Set(delivered.map((d) => d.slotTime)).size;
      while (distinct() < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const slots = [...new Set(delivered.map((d) => d.slotTime))].sort((a, b) => a - b);
      expect(slots.length).toBeGreaterThanOrEqual(3);
      expect(slots[0]!).toBeLessThan(releasedAt); // a slot refused earlier, delivered late with its own time
      // No slot dropped: consecutive slots are one interval apart.
      expect(slots.slice(1).map((t, i) => t - slots[i]!)).toEqual(slots.slice(1).map(() => 2));
      const scheduled = (await eventJobs(pipeline)).filter((j) => j.event.source.type === "schedule");
      expect(new Set(scheduled.map((j) => j.event.eventId)).size).toBe(scheduled.length);
    } finally {
      await schedules.sync([]);
      await schedules.stop();
    }
  }, 240_000);
});
