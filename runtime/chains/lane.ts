/**
 * A **lane** is the transaction stream of one signer on one chain: `(chainId, address)`. Its state lives in
 * Redis so that several worker processes can share it:
 *
 * | key (prefix `P:lane:{chainId:address}`) | type | holds |
 * | --- | --- | --- |
 * | `…:lock` | string, PX TTL | the token of the process that may reserve nonces and broadcast now |
 * | `…:lock:wanted` | string, PX TTL | set by a process waiting for the lock, asking the holder to let it in (1 s); deleted by the process that takes the lock |
 * | `…:next` | string | the next nonce to assign |
 * | `…:tx:<nonce>` | hash | `key` (idempotency key), `raw` (latest signed transaction), `hashes` (JSON array of every hash broadcast for this nonce), `maxFeePerGas`, `maxPriorityFeePerGas` (wei), `sentAt` and `firstSentAt` (ms), `state` (`reserved`, `pending`, `mined`, `failed`, `filler`); while `reserved`: `gasLimit` (gas units) and `reservedAt` (ms), `raw` empty |
 * | `…:idem:<key>` | string | the nonce assigned to an idempotency key |
 * | `…:pending` | sorted set | nonces whose transaction is not yet confirmed (score = nonce) |
 *
 * A nonce's `tx` and `idem` keys expire `retentionSeconds` (default 7 days) after its transaction is confirmed
 * (or its key reassigned): a write retried later than that finds no lane record and relies on the contract's
 * `isRecorded` check instead (docs/pipeline.md "Retention").
 *
 * The `{…}` hash tag keeps a lane's keys in one Redis Cluster slot. Every mutation is a Lua script (`lua/`, one
 * file per script) that first checks the caller still holds the lock (a fencing token), so a process that lost its
 * lock (paused, partitioned) cannot assign a nonce twice. The writer reserves a nonce under the lock
 * (lua/reserveNonce-5.lua), signs outside it and stores the signed transaction on the reservation
 * (lua/commitReserved-2.lua, fenced by the reservation itself: the first completion wins). A crash between the
 * two leaves a reserved nonce that the write's retry signs, or, once stale, a gap filler takes over
 * (lua/takeOverReservation-4.lua). A gap filler itself is committed with its signed transaction in one script
 * (lua/commitNonce-5.lua).
 *
 * @module
 */
import { randomUUID } from "node:crypto";

import { ChainLaneBusyError } from "./errors.ts";
import { scanKeys, type RedisClient } from "../queue/redisClient.ts";
import { loadLuaScript, runLuaScript } from "../queue/luaScript.ts";

/** The stored state of one nonce of a lane. */
export interface LaneTx {
  nonce: number;
  /** The idempotency key of the write this nonce carries (`filler:<nonce>` for a gap filler). */
  key: string;
  /** The latest signed raw transaction (0x hex). */
  raw: string;
  /** Every transaction hash broadcast for this nonce, oldest first (replacements append). */
  hashes: string[];
  /** Fees of the latest signed transaction, in wei. */
  maxFeePerGas: bigint;
  maxPriorityFeePerGas: bigint;
  /** When the latest transaction was first broadcast (Unix milliseconds). */
  sentAt: number;
  /** When the first transaction for this nonce was committed and broadcast (Unix milliseconds). */
  firstSentAt: number;
  /**
   * `reserved`: the nonce is the write's but its transaction is not signed yet (`raw` is empty, `hashes` too);
   * `pending`: signed and sent, not confirmed; `mined`: confirmed; `failed`: consumed by a transaction outside the
   * lane (the write moved on); `filler`: a zero-value self-transfer that closes a gap.
   */
  state: "reserved" | "pending" | "mined" | "failed" | "filler";
  /** A reservation's gas limit, in gas units (state `reserved`). */
  gasLimit?: bigint;
  /** When the nonce was reserved (Unix milliseconds; state `reserved`). */
  reservedAt?: number;
}

const COMMIT = loadLuaScript(new URL("./lua/commitNonce-5.lua", import.meta.url));

const REPLACE = loadLuaScript(new URL("./lua/replaceTx-2.lua", import.meta.url));

const RESERVE = loadLuaScript(new URL("./lua/reserveNonce-5.lua", import.meta.url));

const COMMIT_RESERVED = loadLuaScript(new URL("./lua/commitReserved-2.lua", import.meta.url));

const TAKE_OVER_RESERVATION = loadLuaScript(new URL("./lua/takeOverReservation-4.lua", import.meta.url));

/**
 * How long a process keeps a lane's lease for its queued callers before releasing it, in milliseconds, so that
 * other processes sharing the lane get their turn.
 */
export const LOCK_HOLD_MAX_MS = 250;

/** The longest pause between two attempts of a process waiting for a lane's lock, in milliseconds. */
const LOCK_MAX_POLL_MS = 50;

/**
 * How long a waiting process's "wanted" mark lasts after its last attempt, in milliseconds: well above its longest
 * pause between attempts, so that a late timer on a busy machine does not let the mark lapse.
 */
const LOCK_WANTED_TTL_MS = 1000;

/**
 * The longest a process that released a lane's lock for a waiting process stays away from it, in milliseconds; it
 * comes back as soon as the lock is taken (then it waits its turn like any other process).
 */
const LOCK_YIELD_MS = 500;

const RELEASE = loadLuaScript(new URL("./lua/releaseLock-1.lua", import.meta.url));
const EXTEND = loadLuaScript(new URL("./lua/extendLock-1.lua", import.meta.url));

const REASSIGN = loadLuaScript(new URL("./lua/reassignKey-4.lua", import.meta.url));
const RAISE_NEXT_NONCE = loadLuaScript(new URL("./lua/raiseNextNonce-2.lua", import.meta.url));

/**
 * Redis-backed state of one lane. Construct one per (chain, signer) per process; all instances with the same
 * `prefix`, `chainId` and `address` share state.
 */
export class Lane {
  readonly id: string;
  /** Seconds a confirmed nonce's records stay in Redis. */
  readonly retentionSeconds: number;
  readonly #redis: RedisClient;
  readonly #base: string;

  /**
   * @param redis - an ioredis client (not in subscriber mode).
   * @param prefix - key prefix shared by the deployment, e.g. `cryptlet`.
   * @param chainId - EIP-155 chain id.
   * @param address - the signer's address (any case; stored lowercase).
   * @param retentionSeconds - how long a confirmed nonce's `tx` and `idem` keys are kept, seconds. Default 7 days.
   */
  constructor(redis: RedisClient, prefix: string, chainId: number, address: string, retentionSeconds = 7 * 24 * 3600) {
    this.#redis = redis;
    this.retentionSeconds = retentionSeconds;
    this.id = `${chainId}:${address.toLowerCase()}`;
    this.#base = `${prefix}:lane:{${this.id}}`;
  }

  /** The end of this process's queue for the lane (resolves when the last caller has left). */
  #queueTail: Promise<void> = Promise.resolve();
  /** Callers of this process waiting behind the current one. */
  #queued = 0;
  /** Until when (Unix ms) this process lets other processes take the lock before asking for it again. */
  #yieldUntil = 0;
  /** The Redis lease this process holds between consecutive callers, if any. */
  #held: { token: string; since: number; renew: ReturnType<typeof setInterval> } | undefined;

  #key(...parts: (string | number)[]): string {
    return [this.#base, ...parts].join(":");
  }

  /**
   * Runs `fn` holding the lane lock. The lock is a lease of `leaseMs` milliseconds in Redis, renewed while held.
   *
   * Within one process, callers queue for the lane in arrival order (FIFO), and only the head of the queue asks
   * Redis for the lock: the lock passes from one caller to the next without a round of polling, and while more
   * callers are queued the process keeps the lease, releasing it after {@link LOCK_HOLD_MAX_MS} only when another
   * process sharing the lane has asked for it meanwhile (and then staying away long enough for it to get it). Each `fn` gets the fencing token of the lease it runs under;
   * every mutation checks it, so a lease lost meanwhile (a paused process) still fails with `LANE_LOCK_LOST`.
   *
   * @param waitMs - how long a caller may wait (in the queue and for Redis) before failing with
   *   `ERR_CHAIN_LANE_BUSY` (retryable), in milliseconds. Default 30000.
   * @param leaseMs - the lease's length in milliseconds. Default 15000.
   */
  async withLock<T>(fn: (token: string) => Promise<T>, { waitMs = 30_000, leaseMs = 15_000 } = {}): Promise<T> {
    const started = Date.now();
    const previous = this.#queueTail;
    let leave!: () => void;
    this.#queueTail = new Promise<void>((resolve) => (leave = resolve));
    this.#queued += 1;
    await previous;
    this.#queued -= 1;
    try {
      const lease = await this.#lease(started, waitMs, leaseMs);
      let failed = true;
      try {
        const value = await fn(lease.token);
        failed = false;
        return value;
      } finally {
        // Keep the lease for the next caller in this process, unless nobody waits, it was held long enough, or
        // `fn` failed (perhaps because the lease was lost: the next caller starts from a fresh one).
        // Best effort: a Redis error here (a fail-over) must not turn `fn`'s outcome into a failure; a lease not
        // released ends at its TTL, and a lost one fails the next fenced write with LANE_LOCK_LOST.
        try {
          if (failed || this.#queued === 0) await this.#releaseLease();
          else if (Date.now() - lease.since >= LOCK_HOLD_MAX_MS) await this.#yieldIfWanted(lease);
        } catch {
          this.#dropLease();
        }
      }
    } finally {
      leave();
    }
  }

  /**
   * At the end of a hold of {@link LOCK_HOLD_MAX_MS}: when another process has asked for the lock meanwhile (its
   * `…:lock:wanted` mark is set), releases the lease and lets this process's next caller ask Redis only once the
   * lock has been taken by another process (or after {@link LOCK_YIELD_MS}); otherwise keeps the lease for another
   * hold.
   */
  async #yieldIfWanted(lease: { since: number }): Promise<void> {
    if ((await this.#redis.exists(this.#key("lock", "wanted"))) === 0) {
      lease.since = Date.now();
      return;
    }
    await this.#releaseLease();
    this.#yieldUntil = Date.now() + LOCK_YIELD_MS;
  }

  /** The lease this process holds, or a new one from Redis (polling with backoff while another process has it). */
  async #lease(started: number, waitMs: number, leaseMs: number): Promise<{ token: string; since: number }> {
    if (this.#held) return this.#held;
    const token = randomUUID();
    const lockKey = this.#key("lock");
    // After letting go for a waiting process: stay away until it has taken the lock (or the yield is over).
    while (Date.now() < this.#yieldUntil && (await this.#redis.exists(lockKey).catch(() => 1)) === 0) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    this.#yieldUntil = 0;
    let delay = 2;
    while ((await this.#redis.set(lockKey, token, "PX", leaseMs, "NX")) !== "OK") {
      if (Date.now() - started > waitMs) throw new ChainLaneBusyError(this.id, Date.now() - started);
      // Tell the holder that this process waits (see #yieldIfWanted); the mark lapses soon after the last attempt.
      await this.#redis.set(this.#key("lock", "wanted"), "1", "PX", LOCK_WANTED_TTL_MS).catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, LOCK_MAX_POLL_MS);
    }
    // This process's own request is answered (another waiting process sets the mark again at its next attempt).
    await this.#redis.del(this.#key("lock", "wanted")).catch(() => undefined);
    const renew = setInterval(
      () => {
        // A failed renewal shows as LANE_LOCK_LOST at the next fenced write.
        void runLuaScript(this.#redis, EXTEND, [lockKey], [token, leaseMs]).catch(() => undefined);
      },
      Math.floor(leaseMs / 3),
    );
    renew.unref();
    this.#held = { token, since: Date.now(), renew };
    return this.#held;
  }

  async #releaseLease(): Promise<void> {
    const held = this.#dropLease();
    if (held) await runLuaScript(this.#redis, RELEASE, [this.#key("lock")], [held.token]);
  }

  /** Forgets the lease this process holds (stops renewing it); returns it. */
  #dropLease(): { token: string } | undefined {
    const held = this.#held;
    if (!held) return undefined;
    this.#held = undefined;
    clearInterval(held.renew);
    return held;
  }

  /** The next nonce the lane would assign (0 for a new lane). */
  async nextNonce(): Promise<number> {
    return Number((await this.#redis.get(this.#key("next"))) ?? 0);
  }

  /**
   * Reserves `nonce` for the write `key` before its transaction is signed (lua/reserveNonce-5.lua), and advances
   * the next nonce. The signed transaction is stored later by {@link Lane.commitReserved}, outside the lock.
   * @param reservation.gasLimit - the transaction's gas limit, in gas units (stored, so that any process can sign).
   * @param reservation.reservedAt - Unix milliseconds.
   * @throws Redis error reply `LANE_KEY_TAKEN <nonce>` if the key already has a nonce, `LANE_NONCE_TAKEN` if the
   *   nonce is stored already, and `LANE_LOCK_LOST` without the lock.
   */
  async reserve(
    token: string,
    reservation: { nonce: number; key: string; gasLimit: bigint; reservedAt: number },
  ): Promise<void> {
    await runLuaScript(
      this.#redis,
      RESERVE,
      [
        this.#key("lock"),
        this.#key("next"),
        this.#key("tx", reservation.nonce),
        this.#key("idem", reservation.key),
        this.#key("pending"),
      ],
      [token, reservation.nonce, reservation.key, reservation.gasLimit.toString(), reservation.reservedAt],
    );
  }

  /**
   * Stores the signed transaction of a nonce reserved for `tx.key` (lua/commitReserved-2.lua): it becomes
   * `pending`. Needs no lock: the first completion of a reservation wins.
   * @returns true when stored; false when the nonce is not reserved for the key any more (completed by another
   *   process, taken over by a gap filler, or consumed outside the lane): nothing was stored.
   */
  async commitReserved(
    nonce: number,
    tx: { key: string; raw: string; hash: string; maxFeePerGas: bigint; maxPriorityFeePerGas: bigint; sentAt: number },
  ): Promise<boolean> {
    try {
      await runLuaScript(
        this.#redis,
        COMMIT_RESERVED,
        [this.#key("tx", nonce), this.#key("idem", tx.key)],
        [nonce, tx.key, tx.raw, tx.hash, tx.maxFeePerGas.toString(), tx.maxPriorityFeePerGas.toString(), tx.sentAt],
      );
      return true;
    } catch (error) {
      if (error instanceof Error && error.message.startsWith("LANE_RESERVATION_LOST")) return false;
      throw error;
    }
  }

  /**
   * Gives a stale reservation's nonce to a gap filler (lua/takeOverReservation-4.lua): only when `nonce` is still
   * reserved for `key` since before `staleBefore` (Unix ms). Frees `key` (a retry of its write reserves a new nonce)
   * and stores the filler's signed transaction, state `filler`, key `filler:<nonce>`.
   * @returns true when taken over; false when the nonce is not reserved any more or not stale.
   * @throws Redis error reply `LANE_LOCK_LOST` without the lock.
   */
  async takeOverReservation(
    token: string,
    nonce: number,
    key: string,
    staleBefore: number,
    filler: { raw: string; hash: string; maxFeePerGas: bigint; maxPriorityFeePerGas: bigint; sentAt: number },
  ): Promise<boolean> {
    const taken = await runLuaScript(
      this.#redis,
      TAKE_OVER_RESERVATION,
      [this.#key("lock"), this.#key("tx", nonce), this.#key("idem", key), this.#key("idem", `filler:${nonce}`)],
      [
        token,
        staleBefore,
        nonce,
        `filler:${nonce}`,
        filler.raw,
        filler.hash,
        filler.maxFeePerGas.toString(),
        filler.maxPriorityFeePerGas.toString(),
        filler.sentAt,
      ],
    );
    return Number(taken) === 1;
  }

  /**
   * Commits `nonce` to the write `key` together with its signed transaction, and advances the next nonce.
   * Fails (`LANE_KEY_TAKEN`) if the key already has a nonce, and (`LANE_LOCK_LOST`) without the lock.
   */
  async commit(token: string, tx: Omit<LaneTx, "hashes" | "firstSentAt"> & { hash: string }): Promise<void> {
    await runLuaScript(
      this.#redis,
      COMMIT,
      [
        this.#key("lock"),
        this.#key("next"),
        this.#key("tx", tx.nonce),
        this.#key("idem", tx.key),
        this.#key("pending"),
      ],
      [
        token,
        tx.nonce,
        tx.key,
        tx.raw,
        tx.hash,
        tx.maxFeePerGas.toString(),
        tx.maxPriorityFeePerGas.toString(),
        tx.sentAt,
        tx.state,
      ],
    );
  }

  /** Records a replacement transaction (same nonce, new fees) for `nonce`. */
  async replace(
    token: string,
    nonce: number,
    tx: { raw: string; hash: string; maxFeePerGas: bigint; maxPriorityFeePerGas: bigint; sentAt: number },
  ): Promise<void> {
    await runLuaScript(
      this.#redis,
      REPLACE,
      [this.#key("lock"), this.#key("tx", nonce)],
      [token, tx.raw, tx.hash, tx.maxFeePerGas.toString(), tx.maxPriorityFeePerGas.toString(), tx.sentAt],
    );
  }

  /** Marks `nonce` consumed by something else: frees its key for a new nonce. */
  async reassign(token: string, nonce: number, key: string): Promise<void> {
    await runLuaScript(
      this.#redis,
      REASSIGN,
      [this.#key("lock"), this.#key("tx", nonce), this.#key("idem", key), this.#key("pending")],
      [token, nonce, this.retentionSeconds],
    );
  }

  /** Raises the next nonce to at least `nonce` (after the chain shows nonces used outside this lane). */
  async raiseNextNonce(token: string, nonce: number): Promise<void> {
    await runLuaScript(this.#redis, RAISE_NEXT_NONCE, [this.#key("lock"), this.#key("next")], [token, nonce]);
  }

  /**
   * Marks a nonce's transaction as mined and confirmed (no longer pending); its `tx` and `idem` keys expire after
   * the retention.
   */
  async markMined(nonce: number): Promise<void> {
    const txKey = this.#key("tx", nonce);
    const key = await this.#redis.hget(txKey, "key");
    const update = this.#redis
      .multi()
      .hset(txKey, "state", "mined")
      .zrem(this.#key("pending"), nonce)
      .expire(txKey, this.retentionSeconds);
    if (key !== null) update.expire(this.#key("idem", key), this.retentionSeconds);
    await update.exec();
  }

  /** The nonce assigned to write `key`, if any. */
  async nonceOf(key: string): Promise<number | undefined> {
    const value = await this.#redis.get(this.#key("idem", key));
    return value === null ? undefined : Number(value);
  }

  /** The stored transaction of `nonce`, if any. */
  async get(nonce: number): Promise<LaneTx | undefined> {
    const h = await this.#redis.hgetall(this.#key("tx", nonce));
    if (!h.key || (!h.raw && h.state !== "reserved")) return undefined;
    return {
      nonce,
      key: h.key,
      raw: h.raw ?? "",
      hashes: JSON.parse(h.hashes ?? "[]") as string[],
      maxFeePerGas: BigInt(h.maxFeePerGas ?? "0"),
      maxPriorityFeePerGas: BigInt(h.maxPriorityFeePerGas ?? "0"),
      sentAt: Number(h.sentAt ?? 0),
      firstSentAt: Number(h.firstSentAt ?? h.sentAt ?? 0),
      state: (h.state ?? "pending") as LaneTx["state"],
      ...(h.gasLimit ? { gasLimit: BigInt(h.gasLimit) } : {}),
      ...(h.reservedAt ? { reservedAt: Number(h.reservedAt) } : {}),
    };
  }

  /** Pending (unconfirmed) nonces below `below`, ascending. */
  async pendingBelow(below: number): Promise<number[]> {
    const members = await this.#redis.zrangebyscore(this.#key("pending"), 0, `(${below}`);
    return members.map(Number);
  }

  /** Deletes every key of this lane (tests and `cryptlet chains reset`). */
  async destroy(): Promise<void> {
    // Every key of the lane carries its hash tag: one slot, so one DEL per batch also on a Redis Cluster.
    for await (const keys of scanKeys(this.#redis, `${this.#base.replace(/[{}]/g, "\\$&")}:*`, 500)) {
      await this.#redis.del(...keys);
    }
  }
}
