/**
 * Micro-batches: many anchor-only runs of one package carried by one `batches` job instead of five jobs each
 * (execute, attest, one write per chain, the run's parent). Each BullMQ job costs the workers and Redis CPU of its
 * own (docs/pipeline.md "Measured"), and an anchor-only run needs no job of its own: its result goes into a Merkle
 * batch anyway and waits for it.
 *
 * How runs are grouped: a package has a queue of **generations** in Redis. The events stage adds an accepted run to
 * the open generation ({@link MicroBatchStore.join}) and makes sure that generation's `batches` job exists, delayed
 * by `windowMs` (its id derives from the generation, so the runs accepted meanwhile share it). The job's first run
 * claims the oldest pending runs, at most `maxResults`, and opens the next generation in the same atomic step
 * ({@link MicroBatchStore.claim}); it adds the next generation's job itself when runs are left over. A retried or
 * taken-over job claims the same runs again, so a crash never loses or duplicates one: every step of a run is
 * idempotent on its `resultId` (stored attested record, the anchor batcher's queue, outcomes, receipt).
 * A trigger cancelling a run after a reorg withdraws it while no job has claimed it ({@link MicroBatchStore.withdraw}).
 *
 * Redis layout (prefix `P`, code hash `C`; the `{batch:C}` hash tag keeps a package's keys in one Redis Cluster
 * slot, as the scripts need):
 *
 * | key | type | holds |
 * | --- | --- | --- |
 * | `P:{batch:C}:generation` | string | the open generation (absent = 0) |
 * | `P:{batch:C}:pending` | sorted set | runs not yet claimed: member `resultId`, score the join time (Unix ms) |
 * | `P:{batch:C}:entries` | hash | `resultId` → the pending run's entry (its execute and attest payloads, JSON) |
 * | `P:{batch:C}:joined` | hash | `resultId` → generation, for every run joined and not yet settled (duplicates) |
 * | `P:{batch:C}:claimed:<generation>` | hash | the runs a generation's job claimed; deleted when the job ends, else kept for the retention |
 *
 * An entry holds what an `execute` job's payload holds, no more: a sealed Cryptlet's input stays encrypted at rest
 * (runtime/queue/sealedInput.ts).
 *
 * @module
 */
import type { Hex32 } from "../attestation/eip712.ts";
import { loadLuaScript, runLuaScript } from "./luaScript.ts";
import type { RedisClient } from "./redisClient.ts";
import type { RunRecord } from "./results.ts";
import type { AttestJob, ExecuteJob } from "./topology.ts";

/** Micro-batching settings (the runtime configuration's `microBatch` section). */
export interface MicroBatchSettings {
  /** The most runs one `batches` job carries (1 to 256). Default 64. */
  maxResults?: number;
  /**
   * How long a generation's job waits after its first run joined before it claims, in milliseconds (0 to 10,000):
   * the latency a run may pay so that others join it. Default 20.
   */
  windowMs?: number;
}

/** The defaults of {@link MicroBatchSettings}. */
export const DEFAULT_MICRO_BATCH: Required<MicroBatchSettings> = { maxResults: 64, windowMs: 20 };

/** The most runs a `batches` job may carry: the attestation token batcher's largest token. */
export const MAX_MICRO_BATCH = 256;

/** One run in a micro-batch: the payloads its `execute` and `attest` jobs would have had. */
export interface BatchEntry {
  execute: ExecuteJob;
  attest: AttestJob;
}

/** What {@link MicroBatchStore.claim} returns. */
export interface BatchClaim {
  /** The runs of this generation (the same on every call for one generation). */
  entries: BatchEntry[];
  /** Runs still pending after this generation's claim: the next generation's job is needed when not 0. */
  remaining: number;
}

const JOIN = loadLuaScript(new URL("./lua/joinBatch-4.lua", import.meta.url));
const CLAIM = loadLuaScript(new URL("./lua/claimBatch-4.lua", import.meta.url));
const WITHDRAW = loadLuaScript(new URL("./lua/withdrawBatchRun-3.lua", import.meta.url));

/**
 * Whether a run goes through a micro-batch: micro-batching is configured, the runtime is not a consortium member
 * (members co-sign results, not batches), and every target of the run is `anchor`.
 */
export function isMicroBatched(
  settings: MicroBatchSettings | undefined,
  consortium: boolean,
  targets: RunRecord["targets"],
): boolean {
  return settings !== undefined && !consortium && targets.length > 0 && targets.every((t) => t.mode === "anchor");
}

/** The micro-batch queues of one deployment (one key prefix), see the module documentation. */
export class MicroBatchStore {
  readonly #redis: RedisClient;
  readonly #prefix: string;
  readonly #retentionSeconds: number;

  /**
   * @param prefix - the deployment's key prefix.
   * @param retentionSeconds - how long a claimed set outlives a job that did not end (seconds).
   */
  constructor(redis: RedisClient, prefix: string, retentionSeconds: number) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#retentionSeconds = retentionSeconds;
  }

  #key(codeHash: string, part: string): string {
    return `${this.#prefix}:{batch:${codeHash.toLowerCase()}}:${part}`;
  }

  /**
   * Adds a run to its package's open generation, once per `resultId`.
   * @returns whether it was added (false: already joined and not settled), and the open generation, whose job the
   *   caller makes sure exists.
   */
  async join(entry: BatchEntry): Promise<{ joined: boolean; generation: number }> {
    const codeHash = entry.execute.codeHash;
    const [joined, generation] = (await runLuaScript(
      this.#redis,
      JOIN,
      [
        this.#key(codeHash, "generation"),
        this.#key(codeHash, "pending"),
        this.#key(codeHash, "entries"),
        this.#key(codeHash, "joined"),
      ],
      [entry.execute.resultId.toLowerCase(), JSON.stringify(entry), Date.now()],
    )) as [number, number];
    return { joined: joined === 1, generation };
  }

  /**
   * Claims a generation's runs (the oldest pending, at most `max`) the first time it is called for that
   * generation, and returns the same runs on every later call; a generation whose claimed set is gone claims none.
   * @param max - at most this many runs (1 to {@link MAX_MICRO_BATCH}).
   */
  async claim(codeHash: Hex32, generation: number, max: number): Promise<BatchClaim> {
    const reply = (await runLuaScript(
      this.#redis,
      CLAIM,
      [
        this.#key(codeHash, "generation"),
        this.#key(codeHash, "pending"),
        this.#key(codeHash, "entries"),
        this.#key(codeHash, `claimed:${generation}`),
      ],
      [generation, max, this.#retentionSeconds],
    )) as [number, ...string[]];
    const entries: BatchEntry[] = [];
    for (let i = 1; i < reply.length; i += 2) entries.push(JSON.parse(String(reply[i + 1])) as BatchEntry);
    return { entries, remaining: reply[0] };
  }

  /**
   * Withdraws a run that no job has claimed yet (a trigger cancelling the run of a log a reorg removed).
   * @returns `withdrawn` (it was pending and is gone), `claimed` (a job holds it: it will run), or `absent` (it
   *   never joined, or has settled).
   */
  async withdraw(codeHash: Hex32, resultId: Hex32): Promise<"withdrawn" | "claimed" | "absent"> {
    const reply = (await runLuaScript(
      this.#redis,
      WITHDRAW,
      [this.#key(codeHash, "pending"), this.#key(codeHash, "entries"), this.#key(codeHash, "joined")],
      [resultId.toLowerCase()],
    )) as number;
    return reply === 1 ? "withdrawn" : reply === 0 ? "claimed" : "absent";
  }

  /** Forgets that a run joined, once it is settled (receipt stored, or failed for good). */
  async settle(codeHash: Hex32, resultId: Hex32): Promise<void> {
    await this.#redis.hdel(this.#key(codeHash, "joined"), resultId.toLowerCase());
  }

  /** Deletes a generation's claimed set, once its job has settled every run it claimed. */
  async release(codeHash: Hex32, generation: number): Promise<void> {
    await this.#redis.del(this.#key(codeHash, `claimed:${generation}`));
  }
}
