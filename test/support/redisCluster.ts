/**
 * Test support: a real local Redis Cluster, three masters and three replicas (`redis-server --cluster-enabled yes`,
 * joined by `redis-cli --cluster create … --cluster-replicas 1`), each node a process of the test's own that it may
 * kill. Fail-over after `cluster-node-timeout` (1000 ms here) is Redis's own.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";

import { Redis } from "ioredis";

import { freePort, startRedisServer, type TestRedisServer } from "./redisServer.ts";

const run = promisify(execFile);

/** A running cluster. */
export interface TestRedisCluster {
  /** Every node (masters and replicas as created; roles change with a fail-over). */
  servers: TestRedisServer[];
  /** The seed node URLs (`redis://127.0.0.1:<port>`), for `redisCluster.nodes`. */
  nodes: string[];
  /** The node that is master of the slot of `key` now (CLUSTER KEYSLOT, CLUSTER SHARDS of a live node). */
  masterOf(key: string): Promise<TestRedisServer>;
  /** Starts a killed node again (its port, data directory and `nodes.conf`): it rejoins, as a replica. */
  revive(server: TestRedisServer): Promise<void>;
  /** Waits until every live node says `cluster_state:ok` and `key`'s slot is served by a live master. */
  waitHealthy(key?: string, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** Runs `command` on the node at `port` with a 2 s deadline. */
async function ask<T>(port: number, command: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis({
    port,
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    connectTimeout: 2000,
    commandTimeout: 2000,
  });
  redis.on("error", () => undefined);
  try {
    await redis.connect();
    return await command(redis);
  } finally {
    redis.disconnect();
  }
}

/** Starts six nodes and creates the cluster; resolves once it is healthy. */
export async function startRedisCluster(): Promise<TestRedisCluster> {
  const servers: TestRedisServer[] = [];
  const dead = new Set<TestRedisServer>();
  try {
    for (let i = 0; i < 6; i++) {
      servers.push(
        await startRedisServer(0, [
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          "nodes.conf",
          "--cluster-node-timeout",
          "1000",
          "--cluster-port",
          String(await freePort()),
          "--appendonly",
          "yes",
        ]),
      );
    }
    await run(
      "redis-cli",
      ["--cluster", "create", ...servers.map((s) => `127.0.0.1:${s.port}`), "--cluster-replicas", "1", "--cluster-yes"],
      { timeout: 60_000 },
    );
  } catch (error) {
    await Promise.all(servers.map((s) => s.close()));
    throw error;
  }
  const live = () => servers.filter((s) => !dead.has(s));
  const cluster: TestRedisCluster = {
    servers,
    nodes: servers.map((s) => s.url),
    async masterOf(key) {
      const probe = live()[0]!;
      const slot = await ask(probe.port, (r) => r.cluster("KEYSLOT", key));
      const lines = (await ask(probe.port, (r) => r.cluster("NODES"))) as string;
      for (const line of lines.trim().split("\n")) {
        const [, address, flags, , , , , , ...slots] = line.split(" ");
        if (!flags!.includes("master") || flags!.includes("fail")) continue;
        const covers = slots.some((range) => {
          const [from, to] = range.split("-").map(Number);
          return slot >= from! && slot <= (to ?? from)!;
        });
        if (covers) {
          const port = Number(address!.split("@")[0]!.split(":")[1]);
          const server = servers.find((s) => s.port === port);
          if (server) return server;
        }
      }
      throw new Error(`no master serves slot ${slot} of ${key}`);
    },
    async waitHealthy(key = "probe", timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        try {
          const states = await Promise.all(live().map((s) => ask(s.port, (r) => r.cluster("INFO"))));
          const master = await cluster.masterOf(key);
          if (states.every((info) => /cluster_state:ok/.test(info as string)) && !dead.has(master)) return;
        } catch {
          // a node between states: ask again
        }
        if (Date.now() > deadline) throw new Error(`Redis Cluster not healthy after ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    },
    async revive(server) {
      await server.restart();
      dead.delete(server);
    },
    async close() {
      await Promise.all(servers.map((s) => s.close()));
    },
  };
  // Killing a server through `servers[i].kill()` marks it dead for the cluster's own checks.
  for (const server of servers) {
    const kill = server.kill.bind(server);
    server.kill = async () => {
      dead.add(server);
      await kill();
    };
  }
  await cluster.waitHealthy();
  // A replica takes over only with its initial sync done: wait for three replicas with their master link up.
  const deadline = Date.now() + 60_000;
  for (;;) {
    const links = await Promise.all(servers.map((s) => ask(s.port, (r) => r.info("replication"))));
    if (links.filter((info) => /master_link_status:up/.test(info)).length === 3) break;
    if (Date.now() > deadline) throw new Error("the Redis Cluster's replicas did not sync within 60 s");
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return cluster;
}
