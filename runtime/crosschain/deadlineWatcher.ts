/**
 * The refund side of a cross-chain transfer (docs/crosschain.md, "REFUND"): the deadline watcher walks the locks of
 * every lockbox configured for a package with a `crosschain` trigger and, for each lock whose deadline has passed
 * on its destination chain without a mint, submits one refund observation event to the pipeline, whose Cryptlet
 * attests the `REFUND` output that `CryptletLockbox.refund` pays out.
 *
 * The one rule it enforces: a refund event is submitted only after a successful read of
 * `CryptletWrappedToken.isMinted(lockId) == false` at a *confirmed* block of the destination chain (`confirmations`
 * below its head) whose timestamp is after the lock's deadline. The wrapped token mints only at
 * `block.timestamp ≤ deadline` and block timestamps never decrease, so that read is final (invariant 2). Whatever
 * fails (an RPC down or timing out, a chain or token not configured, a full backlog) leaves the lock pending: it is
 * read again next pass, and nothing is refunded on a guess.
 *
 * Per (package, source chain, lockbox) the watcher keeps a cursor in Redis, the lowest lock nonce that may still be
 * pending, under `<prefix>:crosschain:cursor:<package>:<chain name>:<lockbox, lowercase>`, and advances it past the
 * contiguous run of locks that are done (refunded on the source chain, minted on the destination, or with their
 * refund event submitted), never past a pending one. Several watchers (processes) may run on one Redis: a refund
 * event's id is {@link refundEventIdOf}(lockId) whatever block it observed, so a refund submitted twice is one run
 * (the pipeline's per-event idempotency), and the cursor is only ever raised (lua/advanceCursor-1.lua), so a slower
 * watcher that proposes a lower cursor costs re-reads and nothing else.
 *
 * Reads per pass: the source chain's `eth_blockNumber` (once per chain and pass), `lockCount()` per lockbox,
 * `lockOf(lockId)` per lock read, `peerOf(destinationChainId)` once per lockbox and destination (a peer is set once
 * and never changes, so it is remembered), the destination chain's confirmed head block (once per chain and pass;
 * a failure is remembered for the pass too, so an unreachable chain costs one failed request per pass, not one per
 * lock), and for a lock past its deadline `isMinted(lockId)` and the observed block again (its hash must not have
 * changed under the read).
 *
 * @module
 */
import { getAddress, ZeroAddress } from "ethers";

import type { ChainRpc } from "../chains/rpc.ts";
import { ERR_UNEXPECTED, isCryptletError, redactSecrets } from "../errors.ts";
import type { PipelineChain, PipelineLogger } from "../queue/context.ts";
import { loadLuaScript, runLuaScript } from "../queue/luaScript.ts";
import type { Pipeline } from "../queue/pipeline.ts";
import type { CryptletEvent } from "../queue/topology.ts";
import { TriggerChainInconsistentError } from "../triggers/errors.ts";
import { WakeablePause } from "../triggers/pause.ts";
import { CrosschainRouteUnknownError } from "./errors.ts";
import { CROSSCHAIN_VIEWS, LOCK_STATUS, lockIdOf, refundEventIdOf } from "./events.ts";
import type { LockInput, RefundInput } from "./routes.ts";

/** Raises a cursor, never lowers it (see the script's header). */
const ADVANCE_CURSOR = loadLuaScript(new URL("./lua/advanceCursor-1.lua", import.meta.url));

/** Locks read concurrently within one lockbox's window. */
const READ_BATCH = 16;

/** Options of {@link DeadlineWatcher}; durations in milliseconds. */
export interface DeadlineWatcherOptions {
  /**
   * The pipeline refund events are submitted to ({@link Pipeline.submit}); its context gives Redis and the key
   * prefix (`ctx.redis`, `ctx.prefix`), the chains and their RPC clients (`ctx.chains`, `writer.rpc`) and the
   * default logger.
   */
  pipeline: Pipeline;
  /** Pause between the end of one pass and the start of the next, in ms. Default 1000. */
  pollIntervalMs?: number;
  /**
   * Locks read per lockbox and pass, at most (each costs one `lockOf` read, and for a lock past its deadline an
   * `isMinted` read and one block read). Default 256. When a lockbox has more locks from its cursor on, the next
   * pass reads the next window, and the one after the last window starts at the cursor again, so a lock that stays
   * pending long (a far deadline) never hides the locks after it.
   */
  maxLocksPerPass?: number;
  /** Default: the pipeline's (`ctx.logger`). Failures are logged as warnings, redacted. */
  logger?: PipelineLogger;
}

/** A package whose locks are watched: one with a `crosschain` trigger. */
export interface WatchedPackage {
  /** The package name: the key of `contracts.crosschain` in the chain configuration, and the refund's Cryptlet. */
  name: string;
  /**
   * The trigger's confirmations, in blocks: the source chain is read at `eth_blockNumber − confirmations`, and the
   * destination chain's observation block is `eth_blockNumber − confirmations` of that chain (a final block,
   * docs/crosschain.md "Finality"). A non-negative integer.
   */
  confirmations: number;
}

/**
 * What one pass did. Each lock read in the pass is in exactly one of `refunds`, `minted`, `refunded` and `pending`
 * (lock ids: 0x-prefixed 32-byte hex, as `lockIdOf`); a lock in `pending` may also be in `failed`.
 */
export interface DeadlineReport {
  /** Locks whose refund event was submitted in this pass (or absorbed as already submitted): done. */
  refunds: string[];
  /** Locks minted on their destination chain (`isMinted` true at a confirmed block after the deadline): done. */
  minted: string[];
  /** Locks already `Refunded` on the source chain: done. */
  refunded: string[];
  /** Locks not done: before their deadline at the destination's confirmed head, or failed this pass. */
  pending: string[];
  /**
   * Failures of this pass, each retried next pass, with the error code: by lockbox address (as configured) when a
   * whole lockbox could not be read (its source chain's RPC, `lockCount`, the cursor), by lock id when one lock
   * could not be (`ERR_CHAIN_RPC_UNAVAILABLE` destination chain down or timing out, `ERR_CROSSCHAIN_ROUTE_UNKNOWN`
   * destination chain or peer token not configured for the package, `ERR_BACKLOG_FULL` the pipeline refused the
   * refund for now, `ERR_TRIGGER_CHAIN_INCONSISTENT` a lock without status below `lockCount` or a block that changed
   * under the read, or the node's own error code).
   */
  failed: Record<string, string>;
}

/** A block as `eth_getBlockByNumber` returns it (hex quantities). */
interface RpcBlock {
  number: string;
  hash: string;
  timestamp: string;
}

/** A destination chain's confirmed block, as observed in a pass. */
interface Observed {
  blockNumber: number;
  blockHash: string;
  /** Unix seconds. */
  timestamp: number;
}

/** What became of one lock in a pass. */
type Outcome =
  | { lockId: string; state: "refunds" | "minted" | "refunded" | "pending" }
  | { lockId: string; state: "failed"; code: string };

/** Reads shared by the lockboxes of one pass: confirmed heads per chain and confirmations (errors included). */
interface PassReads {
  sourceHeads: Map<string, Promise<number>>;
  destinationBlocks: Map<string, Promise<Observed | undefined>>;
}

const hex = (n: number | bigint) => `0x${n.toString(16)}`;

function codeOf(error: unknown): string {
  return isCryptletError(error) ? error.code : ((error as { code?: string }).code ?? ERR_UNEXPECTED.code);
}

/** The Redis key of a lockbox's cursor (see the module comment). */
export function deadlineCursorKey(prefix: string, cryptlet: string, chain: string, lockbox: string): string {
  return `${prefix}:crosschain:cursor:${cryptlet}:${chain}:${lockbox.toLowerCase()}`;
}

/**
 * Watches lock deadlines and submits refund observations (see the module comment).
 *
 * @example
 * ```ts
 * import { DeadlineWatcher } from "./runtime/crosschain/deadlineWatcher.ts";
 * const watcher = new DeadlineWatcher({ pipeline });
 * watcher.setPackages([{ name: "@cryptlet/xchain-transfer", confirmations: 2 }]); // the crosschain trigger's
 * watcher.start();
 * // … on shutdown: the pass in progress finishes (its cursors are written)
 * await watcher.stop();
 * ```
 */
export class DeadlineWatcher {
  readonly #pipeline: Pipeline;
  readonly #pollIntervalMs: number;
  readonly #maxLocksPerPass: number;
  readonly #logger: PipelineLogger | undefined;
  #packages: readonly WatchedPackage[] = [];
  /** Peers read so far, by `<chain>:<lockbox>:<destination chain id>`: set once on the lockbox, never changed. */
  readonly #peers = new Map<string, string>();
  /** Where the next pass reads a lockbox from (by cursor key) when the last one stopped at `maxLocksPerPass`. */
  readonly #resume = new Map<string, number>();
  #loop: Promise<void> | undefined;
  #stopping = false;
  readonly #pause = new WakeablePause();

  /**
   * @throws RangeError when `pollIntervalMs` is negative or `maxLocksPerPass` is not a positive integer.
   */
  constructor(options: DeadlineWatcherOptions) {
    this.#pipeline = options.pipeline;
    this.#pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.#maxLocksPerPass = options.maxLocksPerPass ?? 256;
    this.#logger = options.logger ?? options.pipeline.ctx.logger;
    if (!(this.#pollIntervalMs >= 0))
      throw new RangeError(`pollIntervalMs must be ≥ 0 ms, got ${this.#pollIntervalMs}`);
    if (!Number.isSafeInteger(this.#maxLocksPerPass) || this.#maxLocksPerPass < 1) {
      throw new RangeError(`maxLocksPerPass must be a positive integer, got ${this.#maxLocksPerPass}`);
    }
  }

  /** The packages watched (a copy). */
  get packages(): WatchedPackage[] {
    return this.#packages.map((p) => ({ ...p }));
  }

  /**
   * Replaces the packages watched: those with a `crosschain` trigger, with its confirmations (the trigger service
   * calls it on each refresh of the deployed packages). Applies from the next pass; cursors of packages dropped
   * stay in Redis, so re-adding one resumes where it stopped.
   * @throws RangeError when a package's `confirmations` is not a non-negative integer (nothing is replaced then).
   */
  setPackages(packages: readonly WatchedPackage[]): void {
    for (const p of packages) {
      if (!Number.isSafeInteger(p.confirmations) || p.confirmations < 0) {
        throw new RangeError(`${p.name}: confirmations must be a non-negative integer, got ${p.confirmations}`);
      }
    }
    this.#packages = packages.map((p) => ({ name: p.name, confirmations: p.confirmations }));
  }

  /** Starts the loop: one pass ({@link DeadlineWatcher.scanOnce}), then `pollIntervalMs` of sleep, until stopped. */
  start(): void {
    if (this.#loop) return;
    this.#stopping = false;
    this.#loop = (async () => {
      while (!this.#stopping) {
        try {
          await this.scanOnce();
        } catch (error) {
          this.#logger?.error({ err: redactSecrets(String(error)) }, "deadline watcher pass failed");
        }
        if (this.#stopping) break;
        await this.#pause.wait(this.#pollIntervalMs);
      }
    })();
  }

  /** Graceful stop: the pass in progress finishes (its refund events submitted, its cursors written); no new pass. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#pause.wake();
    await this.#loop;
    this.#loop = undefined;
  }

  /**
   * One pass over every watched package and every chain whose `contracts.crosschain[package].lockbox` is set (the
   * source chain): reads the locks from the lockbox's cursor (at most `maxLocksPerPass`), submits the refunds that
   * are due, and advances the cursor past the done locks at its start. A failing lock, lockbox or chain does not
   * stop the others; everything failed is retried next pass.
   * @returns what the pass did ({@link DeadlineReport}); it does not throw for chain or submission failures.
   */
  async scanOnce(): Promise<DeadlineReport> {
    const report: DeadlineReport = { refunds: [], minted: [], refunded: [], pending: [], failed: {} };
    const reads: PassReads = { sourceHeads: new Map(), destinationBlocks: new Map() };
    for (const pkg of this.#packages) {
      for (const [name, chain] of this.#pipeline.ctx.chains) {
        const lockbox = chain.config.contracts.crosschain?.[pkg.name]?.lockbox;
        if (!lockbox) continue;
        try {
          await this.#scanLockbox(pkg, name, chain, lockbox, reads, report);
        } catch (error) {
          const code = codeOf(error);
          report.failed[lockbox] = code;
          this.#logger?.warn(
            { cryptlet: pkg.name, chain: name, lockbox, code, err: redactSecrets(String(error)) },
            "deadline watcher: lockbox not read; retried next pass",
          );
        }
      }
    }
    return report;
  }

  async #scanLockbox(
    pkg: WatchedPackage,
    name: string,
    chain: PipelineChain,
    configured: string,
    reads: PassReads,
    report: DeadlineReport,
  ): Promise<void> {
    const { redis, prefix } = this.#pipeline.ctx;
    const lockbox = getAddress(configured.toLowerCase());
    const rpc = chain.writer.rpc;
    const key = deadlineCursorKey(prefix, pkg.name, name, lockbox);
    const sourceBlock = await this.#confirmedHead(reads, name, rpc, pkg.confirmations);
    if (sourceBlock < 0) return; // the chain is not `confirmations` deep yet: no lock can be final
    const sourceTag = hex(sourceBlock);
    const [count] = CROSSCHAIN_VIEWS.decodeFunctionResult(
      "lockCount",
      await this.#call(rpc, lockbox, "lockCount", [], sourceTag),
    ) as unknown as [bigint];
    const lockCount = Number(count);
    const stored = await redis.get(key);
    let cursor = stored === null ? 0 : Number(stored);
    if (!Number.isSafeInteger(cursor) || cursor < 0) {
      this.#logger?.warn(
        { cryptlet: pkg.name, chain: name, lockbox, key },
        "deadline watcher: cursor unreadable; from 0",
      );
      cursor = 0;
    }
    let start = this.#resume.get(key) ?? cursor;
    if (start < cursor || start >= lockCount) start = cursor;
    const end = Math.min(lockCount, start + this.#maxLocksPerPass);
    if (end < lockCount) this.#resume.set(key, end);
    else this.#resume.delete(key);

    const outcomes: Outcome[] = [];
    for (let from = start; from < end; from += READ_BATCH) {
      const nonces = Array.from({ length: Math.min(READ_BATCH, end - from) }, (_, i) => from + i);
      outcomes.push(
        ...(await Promise.all(nonces.map((nonce) => this.#readLock(pkg, chain, lockbox, nonce, sourceTag, reads)))),
      );
    }
    for (const outcome of outcomes) {
      if (outcome.state === "failed") {
        report.failed[outcome.lockId] = outcome.code;
        report.pending.push(outcome.lockId);
      } else report[outcome.state].push(outcome.lockId);
    }
    if (start !== cursor) return; // a window after the cursor: the cursor moves only from its own window
    let next = cursor;
    for (const outcome of outcomes) {
      if (outcome.state === "pending" || outcome.state === "failed") break;
      next += 1;
    }
    if (next > cursor) await runLuaScript(redis, ADVANCE_CURSOR, [key], [next]);
  }

  /** What became of the lock `nonce` (never throws: a failure is an outcome). */
  async #readLock(
    pkg: WatchedPackage,
    source: PipelineChain,
    lockbox: string,
    nonce: number,
    sourceTag: string,
    reads: PassReads,
  ): Promise<Outcome> {
    const lockId = lockIdOf(source.config.chainId, lockbox, nonce);
    try {
      return { lockId, state: await this.#lockState(pkg, source, lockbox, lockId, nonce, sourceTag, reads) };
    } catch (error) {
      const code = codeOf(error);
      this.#logger?.warn(
        { cryptlet: pkg.name, chain: source.config.name, lockbox, lockId, code, err: redactSecrets(String(error)) },
        "deadline watcher: lock stays pending; retried next pass",
      );
      return { lockId, state: "failed", code };
    }
  }

  async #lockState(
    pkg: WatchedPackage,
    source: PipelineChain,
    lockbox: string,
    lockId: string,
    nonce: number,
    sourceTag: string,
    reads: PassReads,
  ): Promise<"refunds" | "minted" | "refunded" | "pending"> {
    const sourceRpc = source.writer.rpc;
    const [lock] = CROSSCHAIN_VIEWS.decodeFunctionResult(
      "lockOf",
      await this.#call(sourceRpc, lockbox, "lockOf", [lockId], sourceTag),
    ) as unknown as [
      {
        sender: string;
        deadline: bigint;
        status: bigint;
        recipient: string;
        amount: bigint;
        destinationChainId: bigint;
      },
    ];
    const status = Number(lock.status);
    if (status === LOCK_STATUS.Refunded) return "refunded";
    if (status !== LOCK_STATUS.Locked) {
      throw new TriggerChainInconsistentError(
        `crosschain:${pkg.name}:${source.config.name}:${lockbox}`,
        `lock ${nonce} (${lockId}) has status ${status} though it is below lockCount at block ${Number(sourceTag)}`,
        { lockId, nonce, status },
      );
    }

    // The route: the destination chain (configured) and the lockbox's peer there (configured for the package).
    const destinationChainId = lock.destinationChainId;
    const found = [...this.#pipeline.ctx.chains].find(([, c]) => BigInt(c.config.chainId) === destinationChainId);
    if (!found) {
      throw new CrosschainRouteUnknownError(
        pkg.name,
        `no configured chain has chain id ${destinationChainId} (the destination chain of lock ${lockId})`,
        { chainId: destinationChainId.toString(), role: "destination chain of the lock", lockId },
      );
    }
    const [destinationName, destination] = found;
    const token = await this.#peer(source, lockbox, destinationChainId, sourceTag);
    const wrappedTokens = destination.config.contracts.crosschain?.[pkg.name]?.wrappedTokens ?? [];
    if (token === undefined || !wrappedTokens.some((t) => t.toLowerCase() === token.toLowerCase())) {
      throw new CrosschainRouteUnknownError(
        pkg.name,
        `${token ?? "no peer"} (peerOf(${destinationChainId}) of lockbox ${lockbox}) is not a configured wrapped token on chain "${destinationName}" (contracts.crosschain)`,
        { chain: destinationName, contract: token ?? ZeroAddress, role: "wrapped token", lockId },
      );
    }

    // The destination's confirmed block: the lock is due only once it is after the deadline.
    const destinationRpc = destination.writer.rpc;
    const observed = await this.#confirmedBlock(reads, destinationName, destinationRpc, pkg.confirmations);
    if (observed === undefined || BigInt(observed.timestamp) <= lock.deadline) return "pending";
    const [minted] = CROSSCHAIN_VIEWS.decodeFunctionResult(
      "isMinted",
      await this.#call(destinationRpc, token, "isMinted", [lockId], hex(observed.blockNumber)),
    ) as unknown as [boolean];
    if (minted) return "minted";
    // The read was at the observed block only if that block is still the one at its height.
    const again = await destinationRpc.send<RpcBlock | null>("eth_getBlockByNumber", [
      hex(observed.blockNumber),
      false,
    ]);
    if (again?.hash !== observed.blockHash) {
      throw new TriggerChainInconsistentError(
        `crosschain:${pkg.name}:${destinationName}`,
        `block ${observed.blockNumber} changed during the read of isMinted(${lockId})`,
        { blockNumber: observed.blockNumber, blockHash: observed.blockHash, now: again?.hash ?? null },
      );
    }

    const chainId = destination.config.chainId;
    const input: RefundInput = {
      kind: "refund",
      lock: {
        lockId,
        sourceChainId: String(source.config.chainId),
        lockbox,
        destinationChainId: destinationChainId.toString(),
        token: getAddress(token),
        sender: getAddress(lock.sender),
        amount: lock.amount.toString(),
        deadline: Number(lock.deadline),
      } satisfies LockInput,
      observation: { chainId, ...observed, isMinted: false },
    };
    const event: CryptletEvent = {
      eventId: refundEventIdOf(lockId),
      cryptlet: { name: pkg.name },
      source: { type: "chain-state", chainId, ...observed },
      input,
      time: observed.timestamp,
    };
    const { runId } = await this.#pipeline.submit(event);
    this.#logger?.info(
      { cryptlet: pkg.name, lockId, chain: destinationName, blockNumber: observed.blockNumber, runId },
      "deadline watcher: refund submitted",
    );
    return "refunds";
  }

  /** `eth_call` of a view of {@link CROSSCHAIN_VIEWS} at `blockTag`; returns the raw result. */
  #call(rpc: ChainRpc, to: string, view: string, args: unknown[], blockTag: string): Promise<string> {
    return rpc.send<string>("eth_call", [{ to, data: CROSSCHAIN_VIEWS.encodeFunctionData(view, args) }, blockTag]);
  }

  /** The lockbox's peer on `destinationChainId` (checksummed), or `undefined` when none is set. */
  async #peer(
    source: PipelineChain,
    lockbox: string,
    destinationChainId: bigint,
    sourceTag: string,
  ): Promise<string | undefined> {
    const key = `${source.config.name}:${lockbox.toLowerCase()}:${destinationChainId}`;
    const known = this.#peers.get(key);
    if (known !== undefined) return known;
    const [peer] = CROSSCHAIN_VIEWS.decodeFunctionResult(
      "peerOf",
      await this.#call(source.writer.rpc, lockbox, "peerOf", [destinationChainId], sourceTag),
    ) as unknown as [string];
    if (peer === ZeroAddress) return undefined;
    const token = getAddress(peer);
    this.#peers.set(key, token);
    return token;
  }

  /** `eth_blockNumber − confirmations` of chain `name`, once per pass (a failure too). */
  #confirmedHead(reads: PassReads, name: string, rpc: ChainRpc, confirmations: number): Promise<number> {
    const key = `${name}:${confirmations}`;
    let head = reads.sourceHeads.get(key);
    if (!head) {
      head = rpc.send<string>("eth_blockNumber", []).then((n) => Number(BigInt(n)) - confirmations);
      reads.sourceHeads.set(key, head);
    }
    return head;
  }

  /**
   * The block `eth_blockNumber − confirmations` of chain `name` (`undefined` while the chain is not that deep),
   * once per pass: every lock of the pass is judged at the same block, and a failing chain fails once per pass.
   */
  #confirmedBlock(reads: PassReads, name: string, rpc: ChainRpc, confirmations: number): Promise<Observed | undefined> {
    const key = `${name}:${confirmations}`;
    let block = reads.destinationBlocks.get(key);
    if (!block) {
      block = (async () => {
        const number = Number(BigInt(await rpc.send<string>("eth_blockNumber", []))) - confirmations;
        if (number < 0) return undefined;
        const found = await rpc.send<RpcBlock | null>("eth_getBlockByNumber", [hex(number), false]);
        if (!found) {
          throw new TriggerChainInconsistentError(`crosschain:${name}`, `block ${number} not found below the head`, {
            blockNumber: number,
          });
        }
        return { blockNumber: number, blockHash: found.hash, timestamp: Number(BigInt(found.timestamp)) };
      })();
      reads.destinationBlocks.set(key, block);
    }
    return block;
  }
}
