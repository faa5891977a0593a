/**
 * How the runtime reaches Redis: one server (`redisUrl`) or a Redis Cluster (`redisCluster.nodes`, seed nodes).
 * Every client the runtime opens, for its stores and for BullMQ, comes from here.
 *
 * On a Redis Cluster (https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/), keys that one
 * Lua script or one MULTI touches must hash to one slot. The layout:
 *
 * | keys | hash tag | slot |
 * | --- | --- | --- |
 * | BullMQ queues and flows (`{P}:<queue>:…`) | `{P}` ({@link queuePrefixOf}) | one slot: a flow's parent and children, and every BullMQ script, stay together, as BullMQ's docs ask |
 * | results (`P:result:{id}:…`) | the result id | one per result |
 * | backlog (`P:{backlog}:…`) | `backlog` | one |
 * | lanes (`P:lane:{<chainId>:<address>}:…`) | the lane | one per relayer lane |
 * | anchor batches (`P:{anchor:<chain>}:…`) | the chain | one per chain |
 * | trigger checkpoints (`P:triggers:{subscription}:…`) | the subscription | one per subscription |
 * | packages (`{P-packages}:…`) | `P-packages` | one |
 * | API idempotency (`P:api:invoke:{runId}`), epoch, replay cache | single keys | any |
 *
 * BullMQ's keys therefore sit on one master: the queues do not spread over the cluster; the stores do. On one
 * server the BullMQ prefix stays `P`, so a deployment that moves to a cluster starts with an empty queue.
 *
 * @module
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from "ioredis";

/** A Redis client of the runtime's stores: one server or a cluster (ioredis implements both commanders). */
export type RedisClient = Redis | Cluster;

/** The `redisCluster` setting: the seed nodes of a Redis Cluster. */
export interface RedisClusterSettings {
  /**
   * Seed nodes, `redis://[user:password@]host:port` or `rediss://` (TLS). Any reachable node is enough: the client
   * reads the slot map (`CLUSTER SLOTS`) from it. Credentials and TLS are taken from the first node.
   */
  nodes: string[];
}

/** Where Redis is. With `cluster`, `url` is ignored for connections (it stays the name logs show). */
export interface RedisEndpoint {
  /** One server, `redis://host:port` or `rediss://`. */
  url: string;
  cluster?: RedisClusterSettings;
}

/** The host, port and client options of a `redis://` or `rediss://` URL (RFC 3986 userinfo as credentials). */
function nodeOf(url: string): { host: string; port: number; options: RedisOptions } {
  const parsed = new URL(url);
  const options: RedisOptions = {};
  if (parsed.username) options.username = decodeURIComponent(parsed.username);
  if (parsed.password) options.password = decodeURIComponent(parsed.password);
  if (parsed.protocol === "rediss:") options.tls = { servername: parsed.hostname };
  return { host: parsed.hostname || "127.0.0.1", port: Number(parsed.port || 6379), options };
}

/**
 * A cluster client over the seed nodes.
 * @param redisOptions - options of each node's connection (deadlines, `maxRetriesPerRequest`).
 */
function clusterOf(settings: RedisClusterSettings, redisOptions: RedisOptions, lazyConnect = false): Cluster {
  const nodes = settings.nodes.map(nodeOf);
  const options: ClusterOptions = {
    redisOptions: { ...nodes[0]?.options, ...redisOptions },
    lazyConnect,
    // A fail-over: the slot map is read again at once and the command retried after these delays (ms), instead of
    // failing it: a replica takes a dead master's slots after `cluster-node-timeout`.
    retryDelayOnFailover: 200,
    // While the nodes disagree on a slot's owner, MOVED can bounce between them: wait between redirections.
    retryDelayOnMoved: 50,
    maxRedirections: 64,
    retryDelayOnClusterDown: 300,
    retryDelayOnTryAgain: 100,
    slotsRefreshTimeout: 2000,
    clusterRetryStrategy: (times) => Math.min(100 * times, 2000),
  };
  return new Cluster(
    nodes.map(({ host, port }) => ({ host, port })),
    options,
  );
}

/**
 * Opens a client of the stores.
 * @param options - ioredis options of each connection: `commandTimeout` and `connectTimeout` (ms) are the
 *   deadlines of every call; `maxRetriesPerRequest`; `lazyConnect`.
 * @returns a `Redis` for one server, a `Cluster` with `endpoint.cluster`.
 */
export function openRedis(endpoint: RedisEndpoint, options: RedisOptions = {}): RedisClient {
  if (!endpoint.cluster) return new Redis(endpoint.url, options);
  const { lazyConnect, ...perNode } = options;
  return clusterOf(endpoint.cluster, perNode, lazyConnect === true);
}

/**
 * The deadline of each command of BullMQ's connections, one server or a cluster, ms (above BullMQ's blocking waits:
 * a worker's `drainDelay`, 5 s).
 */
export const BULLMQ_COMMAND_TIMEOUT_MS = 15_000;

/** The ioredis deadlines every BullMQ connection carries (see {@link bullmqConnectionOf}). */
const BULLMQ_DEADLINES = {
  maxRetriesPerRequest: null,
  commandTimeout: BULLMQ_COMMAND_TIMEOUT_MS,
  blockingTimeout: BULLMQ_COMMAND_TIMEOUT_MS,
} as const;

/**
 * The `connection` option of a BullMQ queue, worker or flow producer: ioredis options for one server (BullMQ
 * opens and closes its connections), or a new `Cluster` for a cluster. BullMQ does not close a client it was given,
 * so the caller closes every cluster client it receives here (`clients` collects them).
 *
 * Either way every command has a deadline, and there is no per-request retry limit (BullMQ's requirement): a
 * command that Redis does not answer (a server stopped, a connection that a proxy holds open, a node caught in a
 * fail-over) fails after {@link BULLMQ_COMMAND_TIMEOUT_MS} and BullMQ retries it, instead of waiting for ever. A
 * blocking command (a worker's BZPOPMIN, which asks Redis for at most `drainDelay`, 5 s) gets ioredis's own
 * blocking deadline: its timeout plus 100 ms, or this bound when it has none; it then ends as Redis's own timeout
 * would (no element), also when it sits in the queue of a node that died, where `commandTimeout` does not reach.
 * @param clients - where cluster clients are added, for the caller's `close()`.
 */
export function bullmqConnectionOf(
  endpoint: RedisEndpoint,
  clients: RedisClient[],
): Cluster | ({ url: string } & typeof BULLMQ_DEADLINES) {
  if (!endpoint.cluster) return { url: endpoint.url, ...BULLMQ_DEADLINES };
  const cluster = clusterOf(endpoint.cluster, BULLMQ_DEADLINES);
  clients.push(cluster);
  return cluster;
}

/**
 * The BullMQ key prefix of deployment prefix `prefix`: `{prefix}` on a cluster (a hash tag: every queue key in one
 * slot), `prefix` on one server.
 */
export function queuePrefixOf(prefix: string, endpoint: Pick<RedisEndpoint, "cluster">): string {
  return endpoint.cluster ? `{${prefix}}` : prefix;
}

/**
 * Every key matching `pattern` (SCAN, in batches of `count`), on one server or on every master of a cluster.
 * @param pattern - a SCAN MATCH pattern (glob; `{` and `}` are literal).
 */
export async function* scanKeys(client: RedisClient, pattern: string, count = 1000): AsyncGenerator<string[]> {
  const servers = client instanceof Cluster ? client.nodes("master") : [client];
  for (const server of servers) {
    let cursor = "0";
    do {
      const [next, keys] = await server.scan(cursor, "MATCH", pattern, "COUNT", count);
      cursor = next;
      if (keys.length > 0) yield keys;
    } while (cursor !== "0");
  }
}

/** Closes a client: QUIT, or a disconnect when QUIT cannot be sent (the connection is down). */
export async function closeRedis(client: RedisClient): Promise<void> {
  if (client.status === "end") return;
  await client.quit().catch(() => client.disconnect());
}

/** The endpoint of a configuration (`redisUrl`, `redisCluster`: runtime/config.ts). */
export function redisEndpointOf(config: { redisUrl: string; redisCluster?: RedisClusterSettings }): RedisEndpoint {
  return { url: config.redisUrl, ...(config.redisCluster ? { cluster: config.redisCluster } : {}) };
}
