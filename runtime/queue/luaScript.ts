/**
 * The runtime's Redis Lua scripts: each lives in its own file, `<name>-<numberOfKeys>.lua` with a KEYS/ARGV header
 * (as BullMQ keeps its scripts), in a `lua/` folder beside the module that runs it. A script runs by its SHA-1
 * (`EVALSHA`) through ioredis's `defineCommand`, which sends the source (`EVAL`) only when a server answers
 * `NOSCRIPT` (a restarted server, a new master after a fail-over), on one server, on a Redis Cluster and in
 * pipelines alike: the source, header included, is not sent with every call.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import type { ChainableCommander } from "ioredis";

import type { RedisClient } from "./redisClient.ts";

/** A Lua script read from its file. */
export interface LuaScript {
  /** The file's name without `-<numberOfKeys>.lua`, e.g. `commitNonce`. */
  readonly name: string;
  /** The number of KEYS the script takes (from the file name). */
  readonly numberOfKeys: number;
  /** The source, header included. */
  readonly lua: string;
  /** The ioredis command it is defined as: `cryptlet:<name>:<first 12 hex digits of its SHA-1>`. */
  readonly command: string;
}

/**
 * Reads a Lua script file (once, at import time of the module that runs it).
 * @param url - the file, e.g. `new URL("./lua/commitNonce-5.lua", import.meta.url)`.
 * @throws Error when the file name does not end in `-<numberOfKeys>.lua`, or the file cannot be read.
 */
export function loadLuaScript(url: URL): LuaScript {
  const file = path.basename(fileURLToPath(url));
  const match = /^(.+)-(\d+)\.lua$/.exec(file);
  if (!match) throw new Error(`Lua script ${file}: the name must end in -<numberOfKeys>.lua`);
  const lua = readFileSync(url, "utf8");
  const sha = createHash("sha1").update(lua).digest("hex");
  return { name: match[1]!, numberOfKeys: Number(match[2]), lua, command: `cryptlet:${match[1]}:${sha.slice(0, 12)}` };
}

type ScriptCommand = (...keysAndArgs: (string | number | Buffer)[]) => Promise<unknown>;

/**
 * Defines `script` as a command of `client` (once per client; idempotent). Pipelines of `client` made afterwards
 * have it too: define it before `client.pipeline()` for {@link queueLuaScript}.
 */
export function defineLuaScript(client: RedisClient, script: LuaScript): void {
  if (typeof (client as unknown as Record<string, unknown>)[script.command] !== "function") {
    client.defineCommand(script.command, { numberOfKeys: script.numberOfKeys, lua: script.lua });
  }
}

function assertKeys(script: LuaScript, keys: readonly string[]): void {
  if (keys.length !== script.numberOfKeys) {
    throw new RangeError(`Lua script ${script.name} takes ${script.numberOfKeys} keys, got ${keys.length}`);
  }
}

/**
 * Runs `script` on `client` with `keys` and `args` (`EVALSHA`, the source only after `NOSCRIPT`).
 * @returns the script's reply.
 * @throws RangeError when `keys` is not `script.numberOfKeys` long; the script's error replies as ioredis
 *   `ReplyError`s (message = the reply, e.g. `LANE_LOCK_LOST`).
 */
export async function runLuaScript(
  client: RedisClient,
  script: LuaScript,
  keys: readonly string[],
  args: readonly (string | number | Buffer)[],
): Promise<unknown> {
  assertKeys(script, keys);
  defineLuaScript(client, script);
  const command = (client as unknown as Record<string, ScriptCommand>)[script.command]!;
  return command.call(client, ...keys, ...args);
}

/**
 * Queues `script` in `pipeline`; its reply comes with the pipeline's `exec`.
 * @throws RangeError when `keys` is not `script.numberOfKeys` long; Error when the pipeline's client had not
 *   defined the script ({@link defineLuaScript}) before the pipeline was made.
 */
export function queueLuaScript(
  pipeline: ChainableCommander,
  script: LuaScript,
  keys: readonly string[],
  args: readonly (string | number | Buffer)[],
): void {
  assertKeys(script, keys);
  const command = (pipeline as unknown as Record<string, ScriptCommand | undefined>)[script.command];
  if (typeof command !== "function") {
    throw new Error(`Lua script ${script.name}: define it on the client before making the pipeline`);
  }
  void command.call(pipeline, ...keys, ...args);
}
