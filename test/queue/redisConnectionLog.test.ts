/**
 * A Redis outage is logged through the logger, once when it starts and once when it ends, never as raw ioredis or
 * BullMQ stack traces on stderr (issue 13 item 5): a real Pipeline on a redis-server of this test's own, reached
 * through a TCP fault proxy that resets every connection during the outage and forwards again after it. (The outage
 * was once a SIGKILL and a restart on the same port; in CI another test file's server once took that port meanwhile,
 * and the test hung.)
 */
import { generateKeyPairSync } from "node:crypto";

import { jest } from "@jest/globals";
import { id } from "ethers";
import { Redis } from "ioredis";
import type { JWK } from "jose";

import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import { LocalKeyProvider } from "../../runtime/keys/LocalKeyProvider.ts";
import { PackageStore } from "../../runtime/packages/PackageStore.ts";
import type { PipelineContext } from "../../runtime/queue/context.ts";
import { Pipeline } from "../../runtime/queue/pipeline.ts";
import { ResultStore } from "../../runtime/queue/results.ts";
import { SandboxPool } from "../../runtime/sandbox/pool.ts";
import { startTcpFaultProxy, type FaultProxy } from "../../runtime/devstack/chaos/faultProxy.ts";
import { withDeadline } from "../support/deadline.ts";
import { startRedisServer, type TestRedisServer } from "../support/redisServer.ts";

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe("Redis connection errors go through the logger, once per state change", () => {
  let server: TestRedisServer;
  let proxy: FaultProxy;
  let URL: string;

  beforeAll(async () => {
    server = await startRedisServer();
    proxy = await startTcpFaultProxy(server.port);
    URL = `redis://127.0.0.1:${proxy.port}`;
  });

  afterAll(async () => {
    await proxy?.close();
    await server?.close();
  });

  test("an outage is one warn line and the recovery one info line; nothing is printed to stderr", async () => {
    const lines: { level: string; obj: Record<string, unknown>; msg?: string }[] = [];
    const logger = {
      info: (obj: object, msg?: string) => lines.push({ level: "info", obj: obj as Record<string, unknown>, msg }),
      warn: (obj: object, msg?: string) => lines.push({ level: "warn", obj: obj as Record<string, unknown>, msg }),
      error: (obj: object, msg?: string) => lines.push({ level: "error", obj: obj as Record<string, unknown>, msg }),
    };
    const printed: string[] = [];
    const consoleError = jest.spyOn(console, "error").mockImplementation((...args: unknown[]) => {
      printed.push(args.map(String).join(" "));
    });
    const stderrWrite = jest.spyOn(process.stderr, "write").mockImplementation((chunk: unknown) => {
      printed.push(String(chunk));
      return true;
    });
    const prefix = `connlog${Date.now().toString(36)}`;
    const redis = new Redis(URL, { maxRetriesPerRequest: null });
    const ctx: PipelineContext = {
      redis,
      redisUrl: URL,
      prefix,
      consortiumId: id("connlog") as Hex32,
      packages: new PackageStore({ redis, trustedPublisherKeys: [], prefix: `{${prefix}-packages}:` }),
      sandbox: new SandboxPool(1),
      resultSigners: [],
      attestationKey: new LocalKeyProvider({
        jwk: generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "jwk" }) as JWK,
        name: "connlog",
        production: false,
      }),
      runtime: { issuer: "connlog", version: "0.1.0", buildHash: "test" },
      chains: new Map(),
      results: new ResultStore(redis, prefix),
      logger,
    };
    const pipeline = new Pipeline(ctx);
    pipeline.startWorkers();
    try {
      // Every connection first, workers' blocking ones too: a worker whose start finished during the outage would
      // announce itself ready (BullMQ emits `ready` a tick after its connections are made) between two errors, and
      // that is a recovery and a second outage, not the one outage this test makes (it failed once so in CI).
      await withDeadline(pipeline.waitUntilReady(), 20_000, "the pipeline's connections");
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(pipeline.redisConnection.state).toBe("up");

      proxy.setMode("refuse"); // every open connection reset, every new one reset on arrival
      // Every client retries (ioredis backs off up to 2 s): wait for several rounds of failed reconnections.
      await until(() => lines.some((l) => l.level === "warn"), 10_000, "the outage line");
      await new Promise((resolve) => setTimeout(resolve, 4000));
      expect(pipeline.redisConnection.state).toBe("down");
      const outage = lines.filter((l) => l.level === "warn");
      expect(outage).toHaveLength(1);
      expect(outage[0]).toMatchObject({
        msg: "redis connection lost; retrying",
        obj: { redis: URL, code: expect.stringMatching(/^ECONN(RESET|REFUSED)$/) },
      });

      proxy.setMode("pass");
      await until(() => lines.some((l) => l.level === "info"), 15_000, "the recovery line");
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(lines.map((l) => `${l.level} ${l.msg}`)).toEqual([
        "warn redis connection lost; retrying",
        "info redis connection restored",
      ]);
      expect(lines[1]?.obj.errors).toBeGreaterThan(1); // several failed attempts, logged once
      expect(pipeline.redisConnection.state).toBe("up");
      expect(printed.filter((p) => /ioredis|ECONNREFUSED|Error:/.test(p))).toEqual([]);
    } finally {
      consoleError.mockRestore();
      stderrWrite.mockRestore();
      proxy.setMode("pass"); // close() needs Redis
      try {
        // A close that hangs fails with its name instead of running into the test's timeout.
        await withDeadline(pipeline.close(), 45_000, "Pipeline.close() after the recovery");
      } finally {
        await ctx.sandbox.dispose();
        redis.disconnect();
      }
    }
  }, 150_000);
});
