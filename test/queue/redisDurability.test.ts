/**
 * Redis durability (issue 13 item 2), against redis-server processes of this test (free ports, data in a
 * temporary dir): a production role refuses a Redis without AOF, accepts one with AOF (also when CONFIG is
 * disabled, through INFO), the override warns at every start, and a Redis restarted without persistence is
 * detected by the epoch marker, at start and while running, with no dead letter created.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

import { jest } from "@jest/globals";
import { Redis } from "ioredis";

import { isCryptletError } from "../../runtime/errors.ts";
import { PackageStore } from "../../runtime/packages/PackageStore.ts";
import type { PipelineContext, PipelineLogger } from "../../runtime/queue/context.ts";
import { Pipeline } from "../../runtime/queue/pipeline.ts";
import { checkRedisDurability, type RedisDurabilityGuard } from "../../runtime/queue/redisDurability.ts";
import { ResultStore } from "../../runtime/queue/results.ts";
import { QUEUES, type CryptletEvent } from "../../runtime/queue/topology.ts";
import { SandboxPool } from "../../runtime/sandbox/pool.ts";
import { startRedisServer, type TestRedisServer } from "../support/redisServer.ts";

jest.setTimeout(60_000);

const AOF = ["--appendonly", "yes", "--appendfsync", "everysec"];

function recordingLogger(): PipelineLogger & {
  lines: { level: string; obj: Record<string, unknown>; msg?: string }[];
} {
  const lines: { level: string; obj: Record<string, unknown>; msg?: string }[] = [];
  const push = (level: string) => (obj: object, msg?: string) =>
    void lines.push({ level, obj: obj as Record<string, unknown>, ...(msg === undefined ? {} : { msg }) });
  return { lines, info: push("info"), warn: push("warn"), error: push("error") };
}

async function codeOf(promise: Promise<unknown>): Promise<unknown> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  return isCryptletError(error) ? error.code : error;
}

const servers: TestRedisServer[] = [];
const clients: Redis[] = [];
const guards: RedisDurabilityGuard[] = [];
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "redis-epoch-"));
});
afterAll(async () => {
  for (const guard of guards) guard.close();
  for (const client of clients) client.disconnect();
  await Promise.all(servers.map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});

async function server(port: number, args: string[]): Promise<{ server: TestRedisServer; redis: Redis }> {
  const started = await startRedisServer(port, args);
  servers.push(started);
  const redis = new Redis(started.url, { maxRetriesPerRequest: null });
  clients.push(redis);
  return { server: started, redis };
}

describe("persistence settings", () => {
  it("refuses a production role on a Redis without AOF, naming the setting (ERR_REDIS_NOT_DURABLE)", async () => {
    const { redis } = await server(0, []);
    const error = await checkRedisDurability(redis, { role: "production", prefix: "p1" }).catch((e: unknown) => e);
    expect(isCryptletError(error, "ERR_REDIS_NOT_DURABLE")).toBe(true);
    expect((error as { details: unknown }).details).toMatchObject({ setting: "appendonly", value: "no" });
    expect((error as Error).message).toMatch(/appendonly yes/);
    // appendfsync no is refused too
    await redis.config("SET", "appendonly", "yes");
    await redis.config("SET", "appendfsync", "no");
    const fsync = await checkRedisDurability(redis, { role: "production", prefix: "p1" }).catch((e: unknown) => e);
    expect((fsync as { details: unknown }).details).toMatchObject({ setting: "appendfsync", value: "no" });
  });

  it("accepts a production role on a Redis with AOF (appendfsync everysec), logging nothing", async () => {
    const { redis } = await server(0, AOF);
    const logger = recordingLogger();
    const guard = await checkRedisDurability(redis, { role: "production", prefix: "p2", logger });
    guards.push(guard);
    expect(guard.persistence).toEqual({ source: "config", appendonly: "yes", appendfsync: "everysec", durable: true });
    expect(logger.lines).toEqual([]);
  });

  it("reads INFO persistence where CONFIG is disabled (managed Redis)", async () => {
    const { redis } = await server(0, [...AOF, "--rename-command", "CONFIG", ""]);
    const guard = await checkRedisDurability(redis, { role: "production", prefix: "p3" });
    guards.push(guard);
    expect(guard.persistence).toEqual({ source: "info", appendonly: "yes", durable: true });
  });

  it("runs production without AOF when overridden, with a warning at every start; development only warns", async () => {
    const { redis } = await server(0, []);
    const logger = recordingLogger();
    for (let start = 0; start < 2; start++) {
      const guard = await checkRedisDurability(redis, {
        role: "production",
        allowWithoutPersistence: true,
        prefix: "p4",
        logger,
      });
      guards.push(guard);
    }
    const warnings = logger.lines.filter((l) => l.level === "warn");
    expect(warnings).toHaveLength(2);
    expect(warnings[0]?.obj).toMatchObject({
      code: "ERR_REDIS_NOT_DURABLE",
      role: "production",
      setting: "appendonly",
    });
    const dev = recordingLogger();
    guards.push(await checkRedisDurability(redis, { role: "development", prefix: "p4", logger: dev }));
    expect(dev.lines.map((l) => [l.level, l.obj.code])).toEqual([["warn", "ERR_REDIS_NOT_DURABLE"]]);
  });
});

describe("epoch marker", () => {
  it("detects a Redis restarted without persistence: while running (no dead letter) and at the next start", async () => {
    const { server: redisServer, redis } = await server(0, []);
    const prefix = `dur${Date.now().toString(36)}`;
    const epochFile = path.join(dir, `redis-epoch.${prefix}.json`);
    const logger = recordingLogger();
    const guard = await checkRedisDurability(redis, {
      role: "development",
      prefix,
      epochFile,
      intervalMs: 200,
      redisUrl: redisServer.url,
      logger,
    });
    guards.push(guard);
    expect(await redis.get(`${prefix}:epoch`)).toBe(guard.epoch);
    // A second process on the same machine and Redis: same epoch, no error.
    const again = await checkRedisDurability(redis, { role: "development", prefix, epochFile });
    again.close();
    expect(again.epoch).toBe(guard.epoch);

    // A real pipeline on this Redis, with the guard.
    const ctx = {
      redis,
      redisUrl: redisServer.url,
      prefix,
      packages: new PackageStore({ redis, trustedPublisherKeys: [], prefix: `{${prefix}-packages}:` }),
      sandbox: new SandboxPool(1),
      chains: new Map(),
      results: new ResultStore(redis, prefix),
      durability: guard,
      logger,
    } as unknown as PipelineContext;
    const pipeline = new Pipeline(ctx);
    pipeline.startWorkers({ stages: ["events"] });
    const lost = new Promise((resolve) => guard.onLost(resolve));

    await redisServer.kill();
    await redisServer.restart(); // empty: no AOF, no RDB
    // What the workers find after the restart: an event whose package (the package store) is gone. Before the
    // guard, this failed for good and was dead-lettered (with the 260 "Missing key for job" entries).
    const event: CryptletEvent = {
      eventId: `0x${"11".repeat(32)}`,
      cryptlet: { name: "@test/gone", version: "1.0.0" },
      source: { type: "http", idempotencyKey: "k" },
      input: {},
      time: 1,
    };
    const job = await pipeline.queue<CryptletEvent>(QUEUES.events).add("event", event, { attempts: 1 });
    expect(isCryptletError(await lost, "ERR_REDIS_DATA_LOST")).toBe(true);
    for (let i = 0; i < 100 && !(await job.isFailed()); i++) await new Promise((r) => setTimeout(r, 50));
    expect(await job.isFailed()).toBe(true);
    expect(await pipeline.queue(QUEUES.deadLetter).count()).toBe(0);
    expect(logger.lines.filter((l) => l.obj.code === "ERR_REDIS_DATA_LOST")).toHaveLength(1);
    await pipeline.close();
    await ctx.sandbox.dispose();

    // The next start on this machine refuses: the epoch file says Redis had another epoch.
    const error = await checkRedisDurability(redis, { role: "development", prefix, epochFile }).catch(
      (e: unknown) => e,
    );
    expect(isCryptletError(error, "ERR_REDIS_DATA_LOST")).toBe(true);
    expect((error as { details: unknown }).details).toMatchObject({ expected: guard.epoch, epochFile });
    expect(await codeOf(checkRedisDurability(redis, { role: "development", prefix, epochFile }))).toBe(
      "ERR_REDIS_DATA_LOST",
    );
  });
});
