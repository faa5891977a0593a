/**
 * The backlog bound (runtime/queue/backlog.ts) on a real Redis: both bounds, duplicates, release, the stale
 * safety net, and atomicity under concurrent admissions.
 */
import { Redis } from "ioredis";

import { parseRuntimeConfig } from "../../runtime/config.ts";
import { isCryptletError } from "../../runtime/errors.ts";
import { Backlog } from "../../runtime/queue/backlog.ts";
import { ERR_BACKLOG_FULL, type BacklogFullError } from "../../runtime/queue/errors.ts";
import { cleanRedis, REDIS_URL } from "../api/helpers.ts";

const hex = (n: number) => `0x${n.toString(16).padStart(64, "0")}`;
const CRYPTLET_A = hex(0xa);
const CRYPTLET_B = hex(0xb);

describe("backlog bound (real Redis)", () => {
  const redis = new Redis(REDIS_URL);
  const prefix = `tbl${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  let n = 0;
  const fresh = (limits: ConstructorParameters<typeof Backlog>[2]) =>
    new Backlog(redis, `${prefix}-${(n += 1)}`, limits);

  afterAll(async () => {
    await cleanRedis(redis, prefix);
    await redis.quit();
  });

  async function refusal(promise: Promise<unknown>): Promise<BacklogFullError> {
    const error = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isCryptletError(error, ERR_BACKLOG_FULL.code)).toBe(true);
    return error as BacklogFullError;
  }

  test("the per-Cryptlet and the overall bound refuse with ERR_BACKLOG_FULL; a duplicate is admitted uncounted", async () => {
    const backlog = fresh({ maxRuns: 3, maxRunsPerCryptlet: 2, retryAfterSeconds: 7 });
    expect(await backlog.admit(hex(1), CRYPTLET_A, "a")).toBe(true);
    expect(await backlog.admit(hex(2), CRYPTLET_A, "a")).toBe(true);
    const perCryptlet = await refusal(backlog.admit(hex(3), CRYPTLET_A, "a"));
    expect(perCryptlet.retryable).toBe(true);
    expect(perCryptlet.retryAfterSeconds).toBe(7);
    expect(perCryptlet.details).toEqual({
      scope: "cryptlet",
      limit: 2,
      backlog: 2,
      retryAfterSeconds: 7,
      cryptlet: "a",
    });
    expect(await backlog.admit(hex(1), CRYPTLET_A, "a")).toBe(false); // the same run again: in flight already
    expect(await backlog.admit(hex(4), CRYPTLET_B, "b")).toBe(true);
    const overall = await refusal(backlog.admit(hex(5), CRYPTLET_B, "b"));
    expect(overall.details).toMatchObject({ scope: "all", limit: 3, backlog: 3 });
    expect(await backlog.size(CRYPTLET_A)).toEqual({ runs: 3, cryptletRuns: 2 });

    await backlog.release(hex(1), CRYPTLET_A);
    await backlog.release(hex(1), CRYPTLET_A); // idempotent
    expect(await backlog.size(CRYPTLET_A)).toEqual({ runs: 2, cryptletRuns: 1 });
    expect(await backlog.admit(hex(5), CRYPTLET_B, "b")).toBe(true);
    expect(await redis.pttl(backlog.runsKey)).toBe(-1); // bounded by maxRuns, not by a TTL (documented)
  });

  test("concurrent admissions never overshoot the bound (one atomic script)", async () => {
    const backlog = fresh({ maxRuns: 10, maxRunsPerCryptlet: 10 });
    const outcomes = await Promise.allSettled(
      Array.from({ length: 100 }, (_, i) => backlog.admit(hex(1000 + i), CRYPTLET_A, "a")),
    );
    expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(10);
    for (const o of outcomes) {
      if (o.status === "rejected") expect(isCryptletError(o.reason, ERR_BACKLOG_FULL.code)).toBe(true);
    }
    expect(await backlog.size(CRYPTLET_A)).toEqual({ runs: 10, cryptletRuns: 10 });
  });

  test("runs counted longer than staleAfterSeconds are dropped by the next admission (a lost release)", async () => {
    const backlog = fresh({ maxRuns: 1, maxRunsPerCryptlet: 1, staleAfterSeconds: 1 });
    expect(await backlog.admit(hex(1), CRYPTLET_A, "a")).toBe(true);
    await refusal(backlog.admit(hex(2), CRYPTLET_A, "a"));
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect(await backlog.admit(hex(2), CRYPTLET_A, "a")).toBe(true);
    expect(await backlog.size(CRYPTLET_A)).toEqual({ runs: 1, cryptletRuns: 1 });
  });

  test("bounds must be positive integers", () => {
    expect(() => new Backlog(redis, prefix, { maxRuns: 0 })).toThrow(RangeError);
  });
});

describe("runtime configuration: backlog and retention", () => {
  const base = {
    consortiumId: `0x${"11".repeat(32)}`,
    keys: {
      resultSigners: [{ type: "local", jwkPath: "s.jwk.json" }],
      attestation: { type: "local", jwkPath: "a.jwk.json" },
    },
    chains: [
      {
        name: "consortium",
        chainId: 31337,
        rpcUrl: "http://127.0.0.1:8545",
        signer: { type: "local", jwkPath: "r.jwk.json" },
      },
    ],
  };

  test("defaults: the backlog's own, 7 days of retention, no archive", () => {
    const config = parseRuntimeConfig(base, "test", "/etc/cryptlet");
    expect(config.backlog).toEqual({});
    expect(config.retention).toEqual({ seconds: 7 * 24 * 3600 });
  });

  test("bounds, retention and a directory archive (relative to the configuration file)", () => {
    const config = parseRuntimeConfig(
      {
        ...base,
        backlog: { maxRuns: 2000, maxRunsPerCryptlet: 500, retryAfterSeconds: 2 },
        retention: { seconds: 86_400, archive: { type: "directory", path: "bundles" } },
      },
      "test",
      "/etc/cryptlet",
    );
    expect(config.backlog).toEqual({ maxRuns: 2000, maxRunsPerCryptlet: 500, retryAfterSeconds: 2 });
    expect(config.retention).toEqual({
      seconds: 86_400,
      archive: { type: "directory", path: "/etc/cryptlet/bundles" },
    });
  });

  test.each([
    [{ backlog: { maxRuns: 0 } }, "backlog.maxRuns"],
    [{ retention: { seconds: 0 } }, "retention.seconds"],
    [{ retention: { archive: { type: "s3", path: "x" } } }, "retention.archive.type"],
  ])("refuses %j, naming the field", (extra, field) => {
    let error: unknown;
    try {
      parseRuntimeConfig({ ...base, ...extra });
    } catch (e) {
      error = e;
    }
    expect(isCryptletError(error, "ERR_RUNTIME_CONFIG_INVALID")).toBe(true);
    const paths = ((error as { details: { errors: { path: string }[] } }).details.errors ?? []).map((e) => e.path);
    expect(paths).toContain(field);
  });
});
