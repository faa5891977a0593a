/**
 * The slot of a schedule tick (runtime/triggers/ScheduleService.ts `slotTimeOf`) against BullMQ's job scheduler
 * itself: the time the scheduler planned (its `next` record), kept when the tick is moved back to the delayed set
 * the way the service does it when the backlog is full.
 */
import { randomUUID } from "node:crypto";

import { Job, Queue, Worker } from "bullmq";

import { slotTimeOf } from "../../runtime/triggers/ScheduleService.ts";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

describe("slotTimeOf", () => {
  const prefix = `test-schedule-${randomUUID().slice(0, 8)}`;
  const connection = { url: REDIS_URL, maxRetriesPerRequest: null };
  const queue = new Queue("ticks", { connection, prefix });
  const worker = new Worker("ticks", null, { connection, prefix, autorun: false });

  afterAll(async () => {
    await worker.close();
    await queue.obliterate({ force: true });
    await queue.close();
  });

  test("a tick moved back to the delayed set keeps the slot the scheduler planned", async () => {
    await queue.upsertJobScheduler("every-second", { every: 1000 }, { name: "tick", data: {} });
    const planned = (await queue.getJobScheduler("every-second"))!.next!; // Unix ms, the scheduler's own record
    const token = randomUUID();
    let job: Job | undefined;
    const deadline = Date.now() + 10_000;
    while (!job && Date.now() < deadline) {
      job = (await worker.getNextJob(token, { block: false })) ?? undefined;
      if (!job) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(job).toBeDefined();
    expect(slotTimeOf(job!)).toBe(Math.floor(planned / 1000));

    // What the service does with a tick that meets a full backlog: later, same job.
    await job!.moveToDelayed(Date.now() + 7_500, token);
    const moved = (await Job.fromId(queue, job!.id!))!;
    expect(moved.delay).toBeGreaterThan(5_000); // BullMQ rewrote the delay: it no longer says when the slot was
    expect(slotTimeOf(moved)).toBe(Math.floor(planned / 1000));
  }, 30_000);

  test("a job added without a scheduler falls back to its timestamp and delay", () => {
    expect(slotTimeOf({ id: "plain", opts: {}, timestamp: 1_700_000_000_500, delay: 2_000 })).toBe(1_700_000_002);
    expect(slotTimeOf({ id: "plain", opts: { prevMillis: 1_700_000_004_000 }, timestamp: 0, delay: 0 })).toBe(
      1_700_000_004,
    );
  });
});
