/**
 * The runtime's Lua scripts run by SHA-1 (EVALSHA), sending their source only when the server does not have it
 * (NOSCRIPT), in plain calls and in pipelines; counted by the server itself (INFO commandstats) on a private
 * redis-server.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

import { Redis } from "ioredis";

import { defineLuaScript, loadLuaScript, queueLuaScript, runLuaScript } from "../../runtime/queue/luaScript.ts";
import { startRedisServer, type TestRedisServer } from "../support/redisServer.ts";

describe("Lua scripts from files", () => {
  let server: TestRedisServer;
  let redis: Redis;
  let dir: string;

  beforeAll(async () => {
    server = await startRedisServer();
    redis = new Redis(server.url);
    dir = await mkdtemp(path.join(os.tmpdir(), "cryptlet-lua-"));
  }, 30_000);

  afterAll(async () => {
    redis?.disconnect();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Calls per command, as the server counts them. */
  async function calls(command: "eval" | "evalsha"): Promise<number> {
    const info = await redis.info("commandstats");
    return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
  }

  async function script(file: string, lua: string) {
    const target = path.join(dir, file);
    await writeFile(target, lua);
    return loadLuaScript(pathToFileURL(target));
  }

  test("the file name gives the name and the number of keys; a name without it is refused", async () => {
    const incr = await script("incrBy-1.lua", "--[[ a header ]]\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])");
    expect([incr.name, incr.numberOfKeys]).toEqual(["incrBy", 1]);
    expect(incr.command).toMatch(/^cryptlet:incrBy:[0-9a-f]{12}$/);
    await expect(script("noKeys.lua", "return 1")).rejects.toThrow(/-<numberOfKeys>\.lua/);
    await expect(runLuaScript(redis, incr, [], [1])).rejects.toThrow(RangeError);
  });

  test("runs by SHA-1: the source goes to the server once, and again only after it forgot the script", async () => {
    const incr = await script("incrByOnce-1.lua", "--[[ counts ]]\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])");
    await redis.config("RESETSTAT");
    for (let i = 1; i <= 5; i++) expect(await runLuaScript(redis, incr, ["counter"], [2])).toBe(2 * i);
    // The source went once (ioredis sends the first call as EVAL, or after its EVALSHA met NOSCRIPT); the
    // other calls by SHA-1 only.
    expect(await calls("eval")).toBe(1);
    expect(await calls("evalsha")).toBeGreaterThanOrEqual(4);

    await redis.script("FLUSH"); // as a restarted server or a new master after a fail-over
    expect(await runLuaScript(redis, incr, ["counter"], [1])).toBe(11);
    expect(await calls("eval")).toBe(2);
  });

  test("in a pipeline once defined on its client; a script with the same name and other text is another command", async () => {
    const one = await script("same-1.lua", "return redis.call('SET', KEYS[1], ARGV[1])");
    await mkdir(path.join(dir, "other"));
    const other = await script(path.join("other", "same-1.lua"), "return 7");
    expect(other.name).toBe(one.name);
    expect(other.command).not.toBe(one.command);

    expect(() => queueLuaScript(redis.pipeline(), one, ["k"], ["v"])).toThrow(/define it on the client/);
    defineLuaScript(redis, one);
    defineLuaScript(redis, one); // idempotent
    const pipeline = redis.pipeline();
    for (let i = 0; i < 3; i++) queueLuaScript(pipeline, one, [`k${i}`], [`v${i}`]);
    const replies = await pipeline.exec();
    expect(replies?.map(([error, reply]) => [error, reply])).toEqual([
      [null, "OK"],
      [null, "OK"],
      [null, "OK"],
    ]);
    expect(await redis.mget("k0", "k1", "k2")).toEqual(["v0", "v1", "v2"]);
    expect(await runLuaScript(redis, other, ["x"], [])).toBe(7);
  });
});
