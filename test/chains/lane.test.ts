/**
 * The lane lock (runtime/chains/lane.ts) against a real Redis: mutual exclusion within and across processes (two
 * `Lane` instances stand for two processes: they share nothing but Redis), arrival order within a process, the
 * lease kept for queued callers and released when the queue is empty, a fresh lease after a failure, and other
 * processes' turn after {@link LOCK_HOLD_MAX_MS}.
 */
import { randomUUID } from "node:crypto";

import { Redis } from "ioredis";

import { LOCK_HOLD_MAX_MS, Lane } from "../../runtime/chains/lane.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("the lane lock", () => {
  let redis: Redis;
  let prefix: string;
  const ADDRESS = "0x00000000000000000000000000000000000000aa";

  beforeAll(() => {
    redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
  });
  beforeEach(() => {
    prefix = `test-lane-${randomUUID()}`;
  });
  afterAll(async () => {
    const keys = await redis.keys("test-lane-*");
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });

  /** Runs `count` callers on `lane` at once; each records its section (start, end, token) in `log`. */
  function callers(lane: Lane, who: string, count: number, holdMs: number, log: Section[]): Promise<void>[] {
    return Array.from({ length: count }, (_, i) =>
      lane.withLock(async (token) => {
        const start = performance.now();
        await sleep(holdMs);
        log.push({ who, i, token, start, end: performance.now() });
      }),
    );
  }
  interface Section {
    who: string;
    i: number;
    token: string;
    start: number;
    end: number;
  }
  const overlapping = (log: Section[]) => {
    const sorted = [...log].sort((a, b) => a.start - b.start);
    return sorted.slice(1).filter((s, k) => s.start < sorted[k]!.end).length;
  };

  test("callers of one process run one at a time, in arrival order, under one lease; the lock is gone after", async () => {
    const lane = new Lane(redis, prefix, 1, ADDRESS);
    const log: Section[] = [];
    await Promise.all(callers(lane, "a", 20, 2, log));
    expect(log.map((s) => s.i)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(overlapping(log)).toBe(0);
    // 20 sections of ~2 ms fit in one hold: the lease passed from caller to caller without going back to Redis.
    expect(new Set(log.map((s) => s.token)).size).toBeLessThan(log.length);
    expect(await redis.exists(`${prefix}:lane:{1:${ADDRESS}}:lock`)).toBe(0);
  });

  test("two processes sharing a lane never overlap, and the one holding it lets the other in after one hold", async () => {
    const a = new Lane(redis, prefix, 1, ADDRESS);
    const b = new Lane(redis, prefix, 1, ADDRESS);
    const log: Section[] = [];
    const holdMs = 20;
    const count = 30; // 600 ms of sections each: more than LOCK_HOLD_MAX_MS
    await Promise.all([...callers(a, "a", count, holdMs, log), ...callers(b, "b", count, holdMs, log)]);
    expect(log).toHaveLength(2 * count);
    expect(overlapping(log)).toBe(0);
    // Within each process, arrival order.
    for (const who of ["a", "b"]) {
      expect(log.filter((s) => s.who === who).map((s) => s.i)).toEqual(Array.from({ length: count }, (_, i) => i));
    }
    // The process that got the lease first let the other in after one hold: at most LOCK_HOLD_MAX_MS of its
    // sections (each at least holdMs long, so fewer when the machine is slow), plus the one running at the limit.
    const first = log[0]!.who;
    const otherStarts = Math.min(...log.filter((s) => s.who !== first).map((s) => s.start));
    const before = log.filter((s) => s.who === first && s.start < otherStarts).length;
    expect(before).toBeLessThanOrEqual(Math.ceil(LOCK_HOLD_MAX_MS / holdMs) + 1);
  });

  test("a process nobody else waits for keeps one lease past LOCK_HOLD_MAX_MS", async () => {
    const lane = new Lane(redis, prefix, 1, ADDRESS);
    const log: Section[] = [];
    await Promise.all(callers(lane, "a", 20, 20, log));
    expect(log[log.length - 1]!.end - log[0]!.start).toBeGreaterThan(LOCK_HOLD_MAX_MS);
    expect(new Set(log.map((s) => s.token)).size).toBe(1);
  });

  test("after a caller fails, the next one runs under a fresh lease", async () => {
    const lane = new Lane(redis, prefix, 1, ADDRESS);
    const tokens: string[] = [];
    const failing = lane.withLock(async (token) => {
      tokens.push(token);
      await sleep(5);
      throw new Error("boom");
    });
    const next = lane.withLock(async (token) => {
      tokens.push(token);
    });
    await expect(failing).rejects.toThrow("boom");
    await next;
    expect(tokens).toHaveLength(2);
    expect(tokens[1]).not.toBe(tokens[0]);
    expect(await redis.exists(`${prefix}:lane:{1:${ADDRESS}}:lock`)).toBe(0);
  });
});
