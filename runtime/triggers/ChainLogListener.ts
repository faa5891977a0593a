/**
 * The chain-log listener: polls `eth_getLogs` for each subscription over bounded block ranges up to its
 * confirmed head (every `pollIntervalMs`, and at once when a chain with a `wsUrl` announces a new block), submits one {@link CryptletEvent} per log, and keeps a checkpoint per subscription in Redis so
 * that a restart resumes with no gap and no duplicate. Before each scan it checks that the checkpoint's block is
 * still canonical; after a reorg it walks back to the common ancestor, cancels (or records) the runs of the
 * logs that disappeared, and scans the new branch. Details and Redis keys: docs/triggers.md.
 *
 * @module
 */
import { randomUUID } from "node:crypto";

import { chainLogEventId } from "../attestation/ids.ts";
import { HeadSubscription } from "../chains/heads.ts";
import type { ChainRpc } from "../chains/rpc.ts";
import { ERR_UNEXPECTED, isCryptletError, redactSecrets } from "../errors.ts";
import type { PipelineLogger } from "../queue/context.ts";
import { ERR_BACKLOG_FULL, type BacklogFullError } from "../queue/errors.ts";
import type { Pipeline, SubmittedRun } from "../queue/pipeline.ts";
import type { CryptletEvent } from "../queue/topology.ts";
import { cancelRemovedRun } from "./cancelRun.ts";
import { decodeLog, type RpcLog } from "./decodeLog.ts";
import {
  TriggerChainInconsistentError,
  TriggerLogUndecodableError,
  TriggerReorgTooDeepError,
  TriggerSubscriptionUnknownError,
} from "./errors.ts";
import { oracleEventOf } from "./oracleRequest.ts";
import { WakeablePause } from "./pause.ts";
import {
  compileSubscription,
  type CompiledSubscription,
  type GroupedLogsInput,
  type LogSubscription,
} from "./subscriptions.ts";
import {
  TriggerStore,
  type Checkpoint,
  type ProcessedBlock,
  type ProcessedEvent,
  type ReorgRecord,
} from "./TriggerStore.ts";

/** Options of {@link ChainLogListener}; durations in milliseconds. */
export interface ChainLogListenerOptions {
  /** The pipeline events are submitted to; its context gives Redis, the chains' RPC and the package store. */
  pipeline: Pipeline;
  /** Initial subscriptions (replace them later with {@link ChainLogListener.setSubscriptions}). */
  subscriptions?: readonly LogSubscription[];
  /**
   * Pause between two passes over the subscriptions, in ms. Default 1000. A chain whose configuration has a
   * `wsUrl` also starts a pass as soon as it announces a block (`eth_subscribe("newHeads")`); the interval stays
   * the fallback.
   */
  pollIntervalMs?: number;
  /** Deadline and reconnection backoff of the block subscriptions, in ms (see runtime/chains/heads.ts). */
  heads?: { connectTimeoutMs?: number; minBackoffMs?: number; maxBackoffMs?: number };
  /** Largest block range of one `eth_getLogs` call, in blocks. Default 2000. */
  maxBlockRange?: number;
  /** Processed blocks remembered below the checkpoint for reorg handling, in blocks. Default 256. */
  reorgWindow?: number;
  /** TTL of a subscription's scan lock (renewed every pass). Default 30000. */
  lockTtlMs?: number;
  logger?: PipelineLogger;
  /** Called after each event is submitted (metrics, progress). */
  onEvent?: (submitted: { subscription: string; event: CryptletEvent; runId: string }) => void;
}

/** What one pass over the subscriptions did. */
export interface ScanReport {
  /** Events submitted, per subscription id. */
  submitted: Record<string, number>;
  /** Logs whose runs a reorg removed. */
  reorged: ReorgRecord[];
  /** Subscriptions skipped because another listener holds their lock. */
  skipped: string[];
  /** Subscriptions whose scan failed this pass (retried next pass), with the error code. */
  failed: Record<string, string>;
}

interface Block {
  number: string;
  hash: string;
  parentHash: string;
  timestamp: string;
}

/** Events submitted concurrently. */
const SUBMIT_BATCH = 64;

const hex = (n: number) => `0x${n.toString(16)}`;

/**
 * Polls chain logs into the pipeline.
 *
 * @example
 * ```ts
 * import { ChainLogListener } from "./runtime/triggers/ChainLogListener.ts";
 * const listener = new ChainLogListener({
 *   pipeline,
 *   subscriptions: [{ kind: "chain-log", id: "swaps", chain: "public", address: pool, confirmations: 2,
 *     event: "Swap(address indexed sender, address indexed recipient, int256 amount0, int256 amount1, uint160 sqrtPriceX96, uint128 liquidity, int24 tick)",
 *     cryptlet: { name: "@cryptlet/eth-usd" } }],
 * });
 * listener.start();
 * // … on shutdown: finishes the range in progress and persists its checkpoint
 * await listener.stop();
 * ```
 */
export class ChainLogListener {
  readonly store: TriggerStore;
  readonly #pipeline: Pipeline;
  readonly #pollIntervalMs: number;
  readonly #maxBlockRange: number;
  readonly #reorgWindow: number;
  readonly #lockTtlMs: number;
  readonly #logger: PipelineLogger | undefined;
  readonly #onEvent: ChainLogListenerOptions["onEvent"];
  readonly #headOptions: NonNullable<ChainLogListenerOptions["heads"]>;
  readonly #heads = new Map<string, HeadSubscription>();
  /** A block was announced since the current pass began: the next pass starts without sleeping. */
  #headSeen = false;
  readonly #token = randomUUID();
  #subscriptions = new Map<string, CompiledSubscription>();
  #held = new Set<string>();
  #loop: Promise<void> | undefined;
  #stopping = false;
  readonly #pause = new WakeablePause();

  constructor(options: ChainLogListenerOptions) {
    this.#pipeline = options.pipeline;
    this.store = new TriggerStore(options.pipeline.ctx.redis, options.pipeline.ctx.prefix);
    this.#pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.#maxBlockRange = options.maxBlockRange ?? 2000;
    this.#reorgWindow = options.reorgWindow ?? 256;
    this.#lockTtlMs = options.lockTtlMs ?? 30_000;
    this.#logger = options.logger ?? options.pipeline.ctx.logger;
    this.#onEvent = options.onEvent;
    this.#headOptions = options.heads ?? {};
    if (options.subscriptions) {
      for (const problem of this.#apply(options.subscriptions)) {
        this.store.recordProblem(problem).catch(() => undefined);
      }
    }
  }

  /** The subscriptions in force (compiled). */
  get subscriptions(): LogSubscription[] {
    return [...this.#subscriptions.values()].map((c) => c.subscription);
  }

  /**
   * Replaces the subscriptions. An invalid one (unknown chain, bad address or event) is recorded in the
   * problems journal and left out; the others apply from the next pass. Checkpoints of dropped subscriptions are
   * kept (re-adding one resumes where it stopped).
   * @returns the problems recorded.
   */
  async setSubscriptions(subscriptions: readonly LogSubscription[]): Promise<unknown[]> {
    const problems = this.#apply(subscriptions);
    for (const problem of problems) await this.store.recordProblem(problem);
    return problems;
  }

  #apply(subscriptions: readonly LogSubscription[]): unknown[] {
    const chains = new Set(this.#pipeline.ctx.chains.keys());
    const next = new Map<string, CompiledSubscription>();
    const problems: unknown[] = [];
    for (const subscription of subscriptions) {
      try {
        next.set(subscription.id, compileSubscription(subscription, chains));
      } catch (error) {
        problems.push(error);
        this.#logger?.warn(
          { subscription: subscription.id, code: (error as { code?: string }).code },
          "trigger subscription skipped",
        );
      }
    }
    this.#subscriptions = next;
    return problems;
  }

  /** The block subscriptions by chain name (chains with a `wsUrl`), while the listener runs. */
  get headSubscriptions(): ReadonlyMap<string, HeadSubscription> {
    return this.#heads;
  }

  /**
   * Starts polling: one pass every `pollIntervalMs`, and one as soon as a chain with a `wsUrl` announces a block
   * (its subscription is opened here, and reconnected with backoff when it drops; polling goes on meanwhile).
   */
  start(): void {
    if (this.#loop) return;
    this.#stopping = false;
    for (const [name, chain] of this.#pipeline.ctx.chains) {
      if (!chain.config.wsUrl) continue;
      const heads = new HeadSubscription({
        url: chain.config.wsUrl,
        chain: name,
        ...this.#headOptions,
        ...(this.#logger ? { logger: this.#logger } : {}),
      });
      heads.onHead(() => {
        this.#headSeen = true;
        this.#pause.wake();
      });
      heads.start();
      this.#heads.set(name, heads);
    }
    this.#loop = (async () => {
      while (!this.#stopping) {
        this.#headSeen = false;
        try {
          await this.scanOnce();
        } catch (error) {
          this.#logger?.error({ err: redactSecrets(String(error)) }, "trigger pass failed");
        }
        if (this.#stopping) break;
        if (this.#headSeen) continue; // a block arrived during the pass: scan it now
        await this.#pause.wait(this.#pollIntervalMs);
      }
    })();
  }

  /**
   * Graceful stop: the block range being scanned is finished and its checkpoint written, then the scan locks
   * are released.
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (const heads of this.#heads.values()) heads.stop();
    this.#heads.clear();
    this.#pause.wake();
    await this.#loop;
    this.#loop = undefined;
    for (const id of this.#held) await this.store.unlock(id, this.#token).catch(() => undefined);
    this.#held.clear();
  }

  /**
   * One pass: scans every subscription whose lock this listener holds (or gets) up to its confirmed head.
   * A failing subscription does not stop the others; it is retried next pass.
   */
  async scanOnce(): Promise<ScanReport> {
    const report: ScanReport = { submitted: {}, reorged: [], skipped: [], failed: {} };
    for (const compiled of this.#subscriptions.values()) {
      if (this.#stopping && this.#loop) break;
      const id = compiled.subscription.id;
      if (!(await this.store.lock(id, this.#token, this.#lockTtlMs))) {
        this.#held.delete(id);
        report.skipped.push(id);
        continue;
      }
      this.#held.add(id);
      try {
        report.submitted[id] = await this.#scan(compiled, report.reorged);
      } catch (error) {
        const code = isCryptletError(error) ? error.code : ((error as { code?: string }).code ?? ERR_UNEXPECTED.code);
        report.failed[id] = code;
        this.#logger?.warn(
          { subscription: id, code, err: redactSecrets(String(error)) },
          "trigger scan failed; retried next pass",
        );
      }
    }
    return report;
  }

  /**
   * Backfill: makes a subscription (re)process logs from `fromBlock` (inclusive) on its next scan. Logs already
   * processed are submitted again and absorbed by the pipeline's per-event idempotency.
   * @throws TriggerSubscriptionUnknownError (`ERR_TRIGGER_SUBSCRIPTION_UNKNOWN`) for an id not in force.
   */
  async backfill(subscription: string, fromBlock: number): Promise<void> {
    const compiled = this.#subscriptions.get(subscription);
    if (!compiled) throw new TriggerSubscriptionUnknownError(subscription);
    await this.store.rewind(subscription, await this.#pin(compiled, fromBlock - 1));
  }

  /** The checkpoint of a subscription. */
  checkpoint(subscription: string): Promise<Checkpoint | undefined> {
    return this.store.checkpoint(subscription);
  }

  #rpc(compiled: CompiledSubscription): ChainRpc {
    return this.#pipeline.ctx.chains.get(compiled.subscription.chain)!.writer.rpc;
  }

  async #block(compiled: CompiledSubscription, tag: number | string): Promise<Block | null> {
    const rpc = this.#rpc(compiled);
    return typeof tag === "number"
      ? rpc.send<Block | null>("eth_getBlockByNumber", [hex(tag), false])
      : rpc.send<Block | null>("eth_getBlockByHash", [tag, false]);
  }

  /** A checkpoint at `blockNumber` with its current canonical hash (-1: before the genesis block). */
  async #pin(compiled: CompiledSubscription, blockNumber: number): Promise<Omit<Checkpoint, "updatedAt">> {
    if (blockNumber < 0) return { blockNumber: -1, blockHash: null };
    const block = await this.#block(compiled, blockNumber);
    if (!block) throw new TriggerChainInconsistentError(compiled.subscription.id, `block ${blockNumber} not found`);
    return { blockNumber, blockHash: block.hash };
  }

  async #scan(compiled: CompiledSubscription, reorged: ReorgRecord[]): Promise<number> {
    const sub = compiled.subscription;
    const rpc = this.#rpc(compiled);
    const head = Number(BigInt(await rpc.send<string>("eth_blockNumber", [])));
    const safe = head - sub.confirmations;
    let checkpoint: Omit<Checkpoint, "updatedAt"> | undefined = await this.store.checkpoint(sub.id);
    if (!checkpoint) {
      const start = sub.fromBlock ?? Math.max(safe + 1, 0);
      // A start beyond the head has no block to pin yet: its hash is learnt when the range is scanned.
      checkpoint =
        start - 1 > head ? { blockNumber: start - 1, blockHash: null } : await this.#pin(compiled, start - 1);
      await this.store.rewind(sub.id, checkpoint);
    } else {
      checkpoint = await this.#checkReorg(compiled, checkpoint, reorged);
    }
    let submitted = 0;
    while (checkpoint.blockNumber < safe && !this.#stopping) {
      const from: number = checkpoint.blockNumber + 1;
      const to = Math.min(from + this.#maxBlockRange - 1, safe);
      const first = await this.#block(compiled, from);
      if (checkpoint.blockHash !== null && first && first.parentHash !== checkpoint.blockHash) {
        checkpoint = await this.#checkReorg(compiled, checkpoint, reorged); // the chain moved under us
        continue;
      }
      const last: Block | null = to === from ? first : await this.#block(compiled, to);
      const logs = await rpc.send<RpcLog[]>("eth_getLogs", [
        { address: compiled.address, topics: [compiled.topic0], fromBlock: hex(from), toBlock: hex(to) },
      ]);
      const again = await this.#block(compiled, to);
      if (!first || !last || !again || again.hash !== last.hash) {
        throw new TriggerChainInconsistentError(sub.id, `blocks ${from}..${to} changed during the scan`, { from, to });
      }
      const { blocks, count } = await this.#process(compiled, logs, reorged);
      if (!blocks.has(to)) blocks.set(to, { blockNumber: to, blockHash: last.hash, events: [] });
      checkpoint = { blockNumber: to, blockHash: last.hash };
      await this.store.commit(sub.id, [...blocks.values()], checkpoint, this.#reorgWindow);
      submitted += count;
    }
    return submitted;
  }

  /** Submits the events of one range's logs; returns the processed blocks that have logs. */
  async #process(
    compiled: CompiledSubscription,
    logs: RpcLog[],
    reorged: ReorgRecord[],
  ): Promise<{ blocks: Map<number, ProcessedBlock>; count: number }> {
    const sub = compiled.subscription;
    const chain = this.#pipeline.ctx.chains.get(sub.chain)!.config;
    const blocks = new Map<number, ProcessedBlock>();
    const timestamps = new Map<string, number>();
    let pending: PendingEvent[] = [];
    let count = 0;
    const sorted = [...logs].sort(
      (a, b) =>
        Number(BigInt(a.blockNumber) - BigInt(b.blockNumber)) || Number(BigInt(a.logIndex) - BigInt(b.logIndex)),
    );
    for (const log of sorted) {
      const blockNumber = Number(BigInt(log.blockNumber));
      const logIndex = Number(BigInt(log.logIndex));
      const eventId = chainLogEventId({
        chainId: chain.chainId,
        blockHash: log.blockHash,
        txHash: log.transactionHash,
        logIndex,
      });
      if (log.removed === true) {
        // A node that reports removals: treat as a reorg of this one log.
        const processed = (await this.store.blocksAtOrBelow(sub.id, blockNumber)).find(
          (b) => b.blockNumber === blockNumber,
        );
        const event = processed?.events.find((e) => e.eventId === eventId);
        if (event)
          reorged.push(await this.#removed(compiled, { blockNumber, blockHash: log.blockHash, events: [] }, event));
        continue;
      }
      let timestamp = timestamps.get(log.blockHash);
      if (timestamp === undefined) {
        const block = await this.#block(compiled, log.blockHash);
        if (!block)
          throw new TriggerChainInconsistentError(sub.id, `block ${log.blockHash} of a log vanished`, { blockNumber });
        timestamp = Number(BigInt(block.timestamp));
        timestamps.set(log.blockHash, timestamp);
      }
      let event: CryptletEvent;
      try {
        event =
          sub.kind === "oracle"
            ? await oracleEventOf(log, {
                chain: sub.chain,
                chainId: chain.chainId,
                packages: this.#pipeline.ctx.packages,
                timestamp,
              })
            : {
                eventId,
                cryptlet: sub.cryptlet,
                source: {
                  type: "chain-log",
                  chainId: chain.chainId,
                  address: compiled.address,
                  blockNumber,
                  blockHash: log.blockHash,
                  txHash: log.transactionHash,
                  logIndex,
                },
                input: this.#decode(compiled, log, timestamp, { blockNumber, txHash: log.transactionHash, logIndex }),
                time: timestamp,
              };
      } catch (error) {
        if (!isCryptletError(error) || error.retryable) throw error;
        this.#logger?.warn({ subscription: sub.id, code: error.code, blockNumber, logIndex }, "log skipped");
        await this.store.recordProblem(error);
        continue;
      }
      pending.push({ event, blockNumber, blockHash: log.blockHash, txHash: log.transactionHash, logIndex });
    }
    if (sub.kind === "chain-log" && sub.group === "transaction") pending = groupByTransaction(pending);
    // Submit in parallel batches (each submit is idempotent); report and remember in chain order.
    for (let i = 0; i < pending.length; i += SUBMIT_BATCH) {
      const batch = pending.slice(i, i + SUBMIT_BATCH);
      const runs = await Promise.all(batch.map((p) => this.#submit(sub.id, p.event)));
      batch.forEach((p, j) => {
        const runId = runs[j]!.runId;
        count += 1;
        this.#onEvent?.({ subscription: sub.id, event: p.event, runId });
        const block = blocks.get(p.blockNumber) ?? { blockNumber: p.blockNumber, blockHash: p.blockHash, events: [] };
        block.events.push({
          eventId: p.event.eventId,
          runId,
          cryptlet: p.event.cryptlet.name,
          kind: sub.kind,
          txHash: p.txHash,
          logIndex: p.logIndex,
        });
        blocks.set(p.blockNumber, block);
      });
    }
    return { blocks, count };
  }

  /**
   * Submits one event. While the pipeline's backlog is full (`ERR_BACKLOG_FULL`) it waits the `Retry-After` the
   * refusal gives, keeps its scan lock, and submits again: a full backlog slows the listener down and drops
   * nothing. When the listener stops (or loses its lock) meanwhile, the refusal is thrown instead: the range's
   * checkpoint is not written, so the range is scanned again later (events already accepted are absorbed by the
   * pipeline's idempotency).
   */
  async #submit(subscription: string, event: CryptletEvent): Promise<SubmittedRun> {
    for (;;) {
      try {
        return await this.#pipeline.submit(event);
      } catch (error) {
        if (!isCryptletError(error, ERR_BACKLOG_FULL.code) || this.#stopping) throw error;
        const waitMs = (error as BacklogFullError).retryAfterSeconds * 1000;
        this.#logger?.warn({ subscription, code: error.code, waitMs }, "backlog full: waiting before submitting again");
        await new Promise((resolve) => setTimeout(resolve, Math.min(waitMs, this.#lockTtlMs / 3)));
        if (!(await this.store.lock(subscription, this.#token, this.#lockTtlMs))) throw error;
      }
    }
  }

  #decode(
    compiled: CompiledSubscription,
    log: RpcLog,
    timestamp: number,
    at: { blockNumber: number; txHash: string; logIndex: number },
  ) {
    try {
      return decodeLog(compiled.fragment!, { ...log, address: compiled.address }, timestamp);
    } catch (error) {
      throw new TriggerLogUndecodableError(compiled.subscription.id, at, error);
    }
  }

  /**
   * Checks that the checkpoint's block is canonical; if not, walks the remembered blocks down to the highest
   * canonical one (the common ancestor), handles the runs of every block above it, and rewinds the checkpoint.
   */
  async #checkReorg(
    compiled: CompiledSubscription,
    checkpoint: Omit<Checkpoint, "updatedAt">,
    reorged: ReorgRecord[],
  ): Promise<Omit<Checkpoint, "updatedAt">> {
    if (checkpoint.blockHash === null) return checkpoint;
    const sub = compiled.subscription;
    const current = await this.#block(compiled, checkpoint.blockNumber);
    if (current?.hash === checkpoint.blockHash) return checkpoint;
    const remembered = await this.store.blocksAtOrBelow(sub.id, checkpoint.blockNumber);
    let ancestor: Omit<Checkpoint, "updatedAt"> | undefined;
    for (const block of remembered) {
      const canonical = await this.#block(compiled, block.blockNumber);
      if (canonical?.hash === block.blockHash) {
        ancestor = { blockNumber: block.blockNumber, blockHash: block.blockHash };
        break;
      }
      for (const event of block.events) reorged.push(await this.#removed(compiled, block, event));
    }
    if (!ancestor) {
      const oldest = remembered.at(-1)?.blockNumber ?? checkpoint.blockNumber;
      const problem = new TriggerReorgTooDeepError(sub.id, checkpoint.blockNumber, this.#reorgWindow);
      this.#logger?.error({ subscription: sub.id, code: problem.code }, "reorg below the reorg window");
      await this.store.recordProblem(problem);
      ancestor = await this.#pin(compiled, oldest - 1);
    }
    this.#logger?.warn(
      { subscription: sub.id, from: checkpoint.blockNumber, ancestor: ancestor.blockNumber },
      "reorg: rescanning from the common ancestor",
    );
    await this.store.rewind(sub.id, ancestor);
    return ancestor;
  }

  async #removed(compiled: CompiledSubscription, block: ProcessedBlock, event: ProcessedEvent): Promise<ReorgRecord> {
    const sub = compiled.subscription;
    const outcome = await cancelRemovedRun(this.#pipeline, {
      subscription: sub.id,
      chain: sub.chain,
      blockNumber: block.blockNumber,
      blockHash: block.blockHash,
      event,
    });
    const record: ReorgRecord = { ...outcome, at: Date.now() };
    await this.store.recordReorg(record);
    this.#logger?.warn(
      {
        subscription: sub.id,
        runId: record.runId,
        blockNumber: record.blockNumber,
        action: record.action,
        reason: record.reason,
      },
      "log removed by a reorg",
    );
    return record;
  }
}

/** A log's event waiting to be submitted. */
interface PendingEvent {
  event: CryptletEvent;
  blockNumber: number;
  blockHash: string;
  txHash: string;
  logIndex: number;
}

/**
 * Merges the events of logs that one transaction emitted into one event (subscriptions with `group:
 * "transaction"`): its id and source are the first log's (so a reorg and a re-scan treat it like a single log),
 * its input is {@link GroupedLogsInput}. `pending` is in chain order, so a transaction's logs are adjacent.
 */
function groupByTransaction(pending: readonly PendingEvent[]): PendingEvent[] {
  const grouped: PendingEvent[] = [];
  for (const item of pending) {
    const last = grouped.at(-1);
    if (last && last.txHash === item.txHash) {
      (last.event.input as GroupedLogsInput).logs.push(item.event.input);
      continue;
    }
    const input: GroupedLogsInput = {
      logs: [item.event.input],
      blockNumber: item.blockNumber,
      txHash: item.txHash,
      timestamp: item.event.time,
    };
    grouped.push({ ...item, event: { ...item.event, input } });
  }
  return grouped;
}
