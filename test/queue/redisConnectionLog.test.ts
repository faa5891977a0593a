/**
 * A Redis outage is logged through the logger, once when it starts and once when it ends, never as raw ioredis or
 * BullMQ stack traces on stderr (issue 13 item 5): a real Pipeline on a redis-server of this test's own (on a free
 * port), SIGKILLed and started again on the same port.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

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
import { freePort } from "../support/hardhatNode.ts";

// A free port, chosen once: the server is started again on it after the outage. (A fixed port was once taken by
// another test file's server that accepts connections and never answers, and the start-up probe waited forever.)
const PORT = await freePort();
const URL = `redis://127.0.0.1:${PORT}`;

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe("Redis connection errors go through the logger, once per state change", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "redis-connlog-"));
  let server: ChildProcess | undefined;
  const startServer = async () => {
    server = spawn("redis-server", ["--port", String(PORT), "--bind", "127.0.0.1", "--dir", dir, "--save", ""], {
      stdio: "ignore",
    });
    const ours = server;
    await until(
      async () => {
        // Our redis-server must still run (it exits at once when the port is taken), and every probe has a deadline.
        if (ours.exitCode !== null) throw new Error(`redis-server exited with ${ours.exitCode} (port ${PORT} taken?)`);
        const probe = new Redis(URL, {
          lazyConnect: true,
          retryStrategy: () => null,
          maxRetriesPerRequest: 0,
          connectTimeout: 1000,
          commandTimeout: 1000,
        });
        probe.on("error", () => undefined);
        try {
          await probe.connect();
          return (await probe.ping()) === "PONG";
        } catch {
          return false;
        } finally {
          probe.disconnect();
        }
      },
      10_000,
      "redis-server to start",
    );
  };
  const killServer = async () => {
    const child = server;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise((resolve) => {
      child.once("exit", resolve);
      child.kill("SIGKILL");
    });
  };

  afterAll(async () => {
    await killServer();
    rmSync(dir, { recursive: true, force: true });
  });

  test("an outage is one warn line and the recovery one info line; nothing is printed to stderr", async () => {
    await startServer();
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
      await pipeline.queue("events").waitUntilReady();
      expect(pipeline.redisConnection.state).toBe("up");

      await killServer();
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

      await startServer();
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
      if (server?.exitCode !== null || server.signalCode !== null) await startServer(); // close() needs Redis
      await pipeline.close();
      await ctx.sandbox.dispose();
      redis.disconnect();
    }
  }, 150_000);
});
