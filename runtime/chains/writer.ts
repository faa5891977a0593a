/**
 * The chain writer: sends a contract call exactly once per idempotency key, on one lane (chain, signer), and
 * returns its receipt after the chain's confirmations.
 *
 * What it guarantees, whatever fails on the way (worker killed, RPC errors, dropped or stuck transactions,
 * reorgs):
 * - **One nonce per write.** The nonce is reserved in Redis for the write's idempotency key under the lane lock,
 *   the transaction is signed outside the lock and stored on the reservation (see {@link Lane}), then broadcast in
 *   nonce order; a retry of the same write resumes that reservation or transaction instead of sending another.
 * - **Never written twice.** Before every new nonce the writer asks the contract (`isRecorded`); a revert with
 *   one of our "already recorded" errors is an idempotent success; and our contracts accept a result once.
 * - **Liveness.** A transaction not included after `replaceAfterMs` is replaced with fees bumped by
 *   `bumpPercent` (up to the caps); a dropped one is re-broadcast; a gap below our nonce is filled by
 *   re-broadcasting the lower transactions, or a zero-value self-transfer where the lane has none; a nonce taken
 *   by a transaction outside the lane moves the write to a new nonce; a write mined in a block that a reorg
 *   removed is waited for again (re-broadcast) until it has `confirmations` on the canonical chain.
 * - **Typed failures.** A revert is decoded into `ERR_CHAIN_REVERTED` with the custom error's name and
 *   arguments (not retried); RPC trouble is `ERR_CHAIN_RPC_UNAVAILABLE` and a write still pending at the
 *   deadline `ERR_CHAIN_WRITE_TIMEOUT` (both retried: the retry resumes the same nonce).
 *
 * @module
 */
import { createHash } from "node:crypto";

import { Transaction, getAddress, type AbstractSigner, type TransactionRequest } from "ethers";

import { CryptletError } from "../errors.ts";
import type { ChainConfig } from "./config.ts";
import { ALREADY_RECORDED_ERRORS, decodeRevert } from "./contracts.ts";
import {
  ChainRevertedError,
  ChainWriteTimeoutError,
  ERR_CHAIN_ID_MISMATCH,
  ERR_CHAIN_LANE_STATE_LOST,
  type DecodedRevert,
} from "./errors.ts";
import { bumpedFees, currentFees, type Fees } from "./fees.ts";
import { Lane, type LaneTx } from "./lane.ts";
import { HeadSubscription } from "./heads.ts";
import { ChainRpc, nodeErrorOf } from "./rpc.ts";
import type { RedisClient } from "../queue/redisClient.ts";

/** One contract call to write. */
export interface WriteRequest {
  /** Unique per logical write, e.g. `record:<chain>:<resultId>`; the same key is never sent twice. */
  idempotencyKey: string;
  /** The contract address. */
  to: string;
  /** ABI-encoded call data (0x hex). */
  data: string;
  /** For errors and logs: contract and method names. */
  contract: string;
  method: string;
  /** Gas added to the estimate (e.g. a consumer callback's gas limit), in gas units. Default 0. */
  extraGas?: bigint;
  /**
   * Replaces `eth_estimateGas` (e.g. where a node refuses to estimate a call whose inner call runs out of gas by
   * design); gets the sender's address, returns gas units; `gasLimitPercent` and `extraGas` still apply. A node
   * error it throws is decoded like a failed estimate. Default: `eth_estimateGas`.
   */
  estimateGas?: (from: string) => Promise<bigint>;
  /** Asks the contract whether this write's effect is already on-chain (e.g. `isRecorded(resultId)`). */
  isRecorded: () => Promise<boolean>;
}

/** The outcome of a write. */
export interface WriteReceipt {
  /** `confirmed`: our transaction has `confirmations` blocks; `already-recorded`: the effect was on-chain already. */
  status: "confirmed" | "already-recorded";
  chain: string;
  chainId: number;
  idempotencyKey: string;
  /** Present when `confirmed`. */
  txHash?: string;
  blockNumber?: number;
  blockHash?: string;
  /** Gas units used by the transaction. */
  gasUsed?: string;
  /** Wei per gas actually paid (EIP-1559 effective gas price). */
  effectiveGasPrice?: string;
  nonce?: number;
  from?: string;
  /** Confirmations counted when the write was accepted (≥ the chain's setting). */
  confirmations?: number;
  /** How many replacement transactions were sent (fee bumps). */
  replacements?: number;
  /** When the write's first transaction was signed and broadcast, Unix milliseconds. */
  submittedAt?: number;
}

/** Minimal structured logger (pino-compatible). */
export interface WriterLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

interface RpcReceipt {
  transactionHash: string;
  blockNumber: string;
  blockHash: string;
  gasUsed: string;
  effectiveGasPrice?: string;
  status: string;
  from: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * How long a nonce may stay reserved without its signed transaction before a later write of the lane gives it to
 * a gap filler, in milliseconds. It is above one Key Vault attempt's deadline (5000 ms) but below the worst case
 * of a signature with its retries (about 19000 ms, runtime/resilience/dependency.ts): a signer still retrying may
 * lose its reservation, and its write then reserves a new nonce, at the cost of the filler's transaction.
 */
export const RESERVATION_STALE_MS = 10_000;

/**
 * Writes contract calls to one chain from one signer, or from several (one lane each).
 *
 * **Several relayer keys.** With more than one signer, each write goes to one lane: the lane that already holds a
 * nonce for its idempotency key (a retry, whichever lane count was configured when it was first sent), else the
 * lane picked by the key's SHA-256 modulo the number of lanes. Lanes never share a nonce sequence, so writes on
 * different lanes are signed, broadcast and confirmed concurrently. Every guarantee above holds per lane, and the
 * contracts' "once per result" check holds across lanes.
 *
 * **Pipelined writes within a lane.** The lane lock covers only what must be ordered: reserving the next nonce
 * (one Redis script) and broadcasting in nonce order. The signature (a Key Vault call over HTTPS for a
 * `KeyVaultSigner`) is made outside it, so many writes of one lane sign at once, and confirmations are awaited
 * concurrently. A signed transaction is broadcast by whichever write holds the lock next with every lower nonce
 * signed: the node sees nonces in order (a `hardhat node` that automines refuses a nonce above its next one). A
 * reservation not signed within {@link RESERVATION_STALE_MS} (its process died, or its write failed for good)
 * is taken over by a zero-value self-transfer when a later nonce needs it, and the write, if it comes back,
 * reserves a new nonce.
 */
export class ChainWriter {
  readonly chain: ChainConfig;
  readonly rpc: ChainRpc;
  readonly #signer: AbstractSigner;
  /** One single-signer writer per lane when there are several signers; `undefined` with one signer. */
  readonly #lanes: ChainWriter[] | undefined;
  readonly #redis: RedisClient;
  readonly #prefix: string;
  readonly #log: WriterLogger | undefined;
  readonly #retentionSeconds: number | undefined;
  /**
   * The chain's block subscription (`wsUrl`), open while writes wait for their confirmations; one per writer,
   * shared by its lanes' writers.
   */
  #heads: HeadSubscription | undefined;
  /** Whether this writer opens and closes {@link ChainWriter.#heads} (false for a lane's writer). */
  #ownsHeads = true;
  #waiting = 0;
  #lane: Lane | undefined;
  #address: string | undefined;

  /**
   * @param options.chain - the chain's configuration.
   * @param options.signer - signs transactions (e.g. a `KeyVaultSigner`); need not be connected to a provider.
   *   Several signers (distinct addresses) give one lane each; the first is the writer's {@link address}.
   * @param options.redis - shared Redis for lane state.
   * @param options.prefix - Redis key prefix of the deployment. Default `cryptlet`.
   * @param options.retentionSeconds - how long a confirmed transaction's lane records stay in Redis, seconds.
   *   Default 7 days (see runtime/chains/lane.ts).
   */
  constructor(options: {
    chain: ChainConfig;
    signer: AbstractSigner | readonly AbstractSigner[];
    redis: RedisClient;
    prefix?: string;
    retentionSeconds?: number;
    rpc?: ChainRpc;
    logger?: WriterLogger;
  }) {
    this.chain = options.chain;
    this.rpc = options.rpc ?? new ChainRpc(options.chain);
    const signers: readonly AbstractSigner[] = Array.isArray(options.signer)
      ? options.signer
      : [options.signer as AbstractSigner];
    if (signers.length === 0) throw new RangeError(`chain ${options.chain.name}: a writer needs at least one signer`);
    this.#signer = signers[0]!;
    this.#redis = options.redis;
    this.#prefix = options.prefix ?? "cryptlet";
    this.#retentionSeconds = options.retentionSeconds;
    this.#log = options.logger;
    this.#heads = options.chain.wsUrl
      ? new HeadSubscription({
          url: options.chain.wsUrl,
          chain: options.chain.name,
          ...(options.logger ? { logger: options.logger } : {}),
        })
      : undefined;
    this.#lanes =
      signers.length > 1
        ? signers.map((signer) => {
            // One block subscription per chain: the lanes wait on this writer's; it closes when no lane waits.
            const lane = new ChainWriter({ ...options, signer, rpc: this.rpc });
            lane.#heads = this.#heads;
            lane.#ownsHeads = false;
            return lane;
          })
        : undefined;
  }

  /** The signer's address (checksummed). */
  async address(): Promise<string> {
    this.#address ??= getAddress(await this.#signer.getAddress());
    return this.#address;
  }

  /** How many lanes (relayer keys) this writer writes from. */
  get laneCount(): number {
    return this.#lanes?.length ?? 1;
  }

  /** Every lane's signer address (checksummed), in configuration order. */
  async addresses(): Promise<string[]> {
    return this.#lanes ? Promise.all(this.#lanes.map((w) => w.address())) : [await this.address()];
  }

  /**
   * The lane of a write: with one signer, the writer's own lane; with several, the lane that already holds a nonce
   * for `idempotencyKey`, else the one its SHA-256 picks (see the class's docs). Without a key: the first lane.
   */
  async lane(idempotencyKey?: string): Promise<Lane> {
    if (this.#lanes && idempotencyKey !== undefined) return (await this.#laneWriterOf(idempotencyKey)).lane();
    this.#lane ??= new Lane(
      this.#redis,
      this.#prefix,
      this.chain.chainId,
      await this.address(),
      this.#retentionSeconds,
    );
    return this.#lane;
  }

  /**
   * Checks that the endpoint serves the configured chain id.
   * @throws CryptletError `ERR_CHAIN_ID_MISMATCH`.
   */
  async start(): Promise<void> {
    const chainId = Number(BigInt(await this.rpc.send<string>("eth_chainId", [])));
    if (chainId !== this.chain.chainId) {
      throw new CryptletError(
        ERR_CHAIN_ID_MISMATCH,
        `chain ${this.chain.name} answers chain id ${chainId}, configured ${this.chain.chainId}`,
        {
          details: { chain: this.chain.name, expected: this.chain.chainId, actual: chainId },
        },
      );
    }
  }

  /**
   * Writes `request` exactly once and waits for the chain's confirmations, checking every `pollIntervalMs` and,
   * when the chain has a `wsUrl`, as soon as a block is announced (the subscription is open while writes wait).
   * @param options.timeoutMs - how long to wait for confirmation before `ERR_CHAIN_WRITE_TIMEOUT` (retryable; a
   * retry resumes the same transaction). Default 120000.
   * @throws ChainRevertedError (`ERR_CHAIN_REVERTED`), ChainWriteTimeoutError, ChainRpcUnavailableError.
   */
  async write(request: WriteRequest, { timeoutMs = 120_000 } = {}): Promise<WriteReceipt> {
    this.#waiting += 1;
    try {
      if (this.#lanes) return await (await this.#laneWriterOf(request.idempotencyKey)).write(request, { timeoutMs });
      return await this.#write(request, timeoutMs);
    } finally {
      // The last write that waited, on any lane, closes the subscription (its first pause opened it).
      if (--this.#waiting === 0 && this.#ownsHeads) this.#heads?.stop();
    }
  }

  async #write(request: WriteRequest, timeoutMs: number): Promise<WriteReceipt> {
    const started = Date.now();
    const lane = await this.lane();
    let nonce = await lane.nonceOf(request.idempotencyKey);
    if (nonce === undefined) {
      if (await request.isRecorded()) return this.#already(request);
      const gasLimit = await this.#estimate(request);
      if (gasLimit === undefined) return this.#already(request);
      nonce = await this.#submitNew(request, gasLimit);
    }
    return this.#await(request, nonce, started, timeoutMs);
  }

  /** The single-signer writer of the lane that carries `idempotencyKey` (several signers only). */
  async #laneWriterOf(idempotencyKey: string): Promise<ChainWriter> {
    const lanes = this.#lanes!;
    const held = await Promise.all(lanes.map(async (w) => (await w.lane()).nonceOf(idempotencyKey)));
    const holder = held.findIndex((nonce) => nonce !== undefined);
    if (holder >= 0) return lanes[holder]!;
    return lanes[createHash("sha256").update(idempotencyKey).digest().readUInt32BE(0) % lanes.length]!;
  }

  /** The node's next nonce for this writer's address, counting its pending transactions (`eth_getTransactionCount`). */
  async #chainPendingNonce(): Promise<number> {
    return Number(BigInt(await this.rpc.send<string>("eth_getTransactionCount", [await this.address(), "pending"])));
  }

  #already(request: WriteRequest): WriteReceipt {
    return {
      status: "already-recorded",
      chain: this.chain.name,
      chainId: this.chain.chainId,
      idempotencyKey: request.idempotencyKey,
    };
  }

  /** Estimates gas (a simulation): a revert is decoded; an "already recorded" revert gives `undefined`. */
  async #estimate(request: WriteRequest): Promise<bigint | undefined> {
    try {
      const estimate = request.estimateGas
        ? await request.estimateGas(await this.address())
        : BigInt(
            await this.rpc.send<string>("eth_estimateGas", [
              { from: await this.address(), to: request.to, data: request.data },
            ]),
          );
      return (estimate * BigInt(this.chain.fees.gasLimitPercent)) / 100n + (request.extraGas ?? 0n);
    } catch (error) {
      const revert = this.#revertOf(error);
      if (!revert) throw error;
      if (ALREADY_RECORDED_ERRORS.has(revert.name)) return undefined;
      throw new ChainRevertedError(this.chain.name, request.contract, request.method, revert);
    }
  }

  #revertOf(error: unknown): DecodedRevert | undefined {
    const node = nodeErrorOf(error);
    if (node.code === "CALL_EXCEPTION" || node.data !== undefined || /revert/i.test(node.message)) {
      return decodeRevert(node.data);
    }
    return undefined;
  }

  async #sign(tx: {
    to: string;
    data: string;
    nonce: number;
    gasLimit: bigint;
    fees: Fees;
  }): Promise<{ raw: string; hash: string }> {
    const request: TransactionRequest = {
      chainId: this.chain.chainId,
      to: tx.to,
      data: tx.data,
      nonce: tx.nonce,
      gasLimit: tx.gasLimit,
      value: 0n,
      ...(tx.fees.type === 2
        ? { type: 2, maxFeePerGas: tx.fees.maxFeePerGas, maxPriorityFeePerGas: tx.fees.maxPriorityFeePerGas }
        : { type: 0, gasPrice: tx.fees.gasPrice }),
    };
    const raw = await this.#signer.signTransaction(request);
    return { raw, hash: Transaction.from(raw).hash! };
  }

  /**
   * Reserves a nonce under the lane lock, signs outside it, stores the signed transaction on the reservation and
   * broadcasts the lane's signed transactions in nonce order. Returns the write's nonce.
   *
   * The node's pending nonce and the fees are read before the lock is taken, so the lock covers only what must be
   * ordered (the reservation, then the broadcast). A pending nonce read early can only be lower than the node's by
   * the time the lock is held; the lane's own `next` covers every nonce this lane assigned meanwhile, and a nonce
   * taken outside the lane is found by the monitor loop ("nonce too low") and the write moved to a new nonce.
   */
  async #submitNew(request: WriteRequest, gasLimit: bigint): Promise<number> {
    const lane = await this.lane();
    const [chainNext, fees] = await Promise.all([this.#chainPendingNonce(), currentFees(this.rpc, this.chain)]);
    const reserved = await lane.withLock(async (token) => {
      const raced = await lane.nonceOf(request.idempotencyKey);
      if (raced !== undefined) return { nonce: raced, ours: false };
      const nonce = Math.max(await lane.nextNonce(), chainNext);
      await lane.reserve(token, { nonce, key: request.idempotencyKey, gasLimit, reservedAt: Date.now() });
      return { nonce, ours: true };
    });
    if (reserved.ours) await this.#completeReservation(request, reserved.nonce, gasLimit, fees);
    return reserved.nonce;
  }

  /**
   * Signs the write at its reserved nonce (outside the lane lock), stores the signed transaction on the
   * reservation, and broadcasts in nonce order. When another process completed the reservation first, or it was
   * taken over, nothing is stored or sent: the monitor loop ({@link ChainWriter.#await}) follows the nonce's state.
   */
  async #completeReservation(request: WriteRequest, nonce: number, gasLimit: bigint, fees?: Fees): Promise<void> {
    const lane = await this.lane();
    const current = fees ?? (await currentFees(this.rpc, this.chain));
    const { raw, hash } = await this.#sign({ to: request.to, data: request.data, nonce, gasLimit, fees: current });
    const stored = await lane.commitReserved(nonce, {
      key: request.idempotencyKey,
      raw,
      hash,
      ...feeFields(current),
      sentAt: Date.now(),
    });
    if (stored) await lane.withLock((token) => this.#broadcastInOrder(token));
  }

  /**
   * Broadcasts the lane's signed, unconfirmed transactions from the node's next nonce upwards, in nonce order,
   * until a nonce still reserved (its signer broadcasts the rest when it has signed), a nonce the lane has not
   * assigned, or a gap at the node. Run under the lane lock, so that two processes never interleave.
   */
  async #broadcastInOrder(token: string): Promise<void> {
    const lane = await this.lane();
    const chainNext = await this.#chainPendingNonce();
    const end = await lane.nextNonce();
    for (let n = chainNext; n < end; n += 1) {
      const tx = await lane.get(n);
      if (!tx || tx.state === "reserved") return;
      if (tx.state === "mined" || tx.state === "failed") continue;
      if (!(await this.#broadcast(token, n, tx.raw, false))) return;
    }
  }

  /**
   * Broadcasts a signed transaction. "Already known" is success; "nonce too high" means a lower nonce is missing
   * from the node, so the gap is filled first; transport trouble is left to the monitor loop's re-broadcast.
   * @returns false when the node has a gap below `nonce` (not filled here), else true.
   */
  async #broadcast(token: string, nonce: number, raw: string, fillGaps = true): Promise<boolean> {
    try {
      await this.rpc.send("eth_sendRawTransaction", [raw]);
      return true;
    } catch (error) {
      const { code, message } = nodeErrorOf(error);
      if (/already known|known transaction|already imported|already in the mempool/i.test(message)) return true;
      if (code === "NONCE_EXPIRED" || /nonce too low/i.test(message)) return true; // the monitor loop resolves it
      if (code === "REPLACEMENT_UNDERPRICED" || /underpriced/i.test(message)) return true;
      // Some nodes (Hardhat with automine) execute the transaction at once and answer a revert as an error,
      // although the transaction was mined (as reverted). The monitor loop finds its receipt and decodes it.
      if (code === "CALL_EXCEPTION" || /revert/i.test(message)) return true;
      if (/nonce too high/i.test(message)) {
        // A lower nonce is missing at the node (dropped, not yet signed, or not yet sent). Fill the gap once; if it
        // is still there (the filler was dropped too, or a lower nonce is still being signed), the monitor loop
        // re-broadcasts and fills again.
        if (fillGaps) {
          await this.#fillGap(token, nonce);
          return this.#broadcast(token, nonce, raw, false);
        }
        return false;
      }
      if ((error as { code?: string }).code === "ERR_CHAIN_RPC_UNAVAILABLE") {
        this.#log?.warn({ chain: this.chain.name, nonce }, "broadcast failed; will retry");
        return true;
      }
      throw error;
    }
  }

  /**
   * Makes the node see every nonce below `nonce`: re-broadcasts the lane's transactions, fills holes. A nonce still
   * reserved stops it (its signer broadcasts in order once signed), unless the reservation is stale
   * ({@link RESERVATION_STALE_MS}): then a filler takes it over.
   */
  async #fillGap(token: string, nonce: number): Promise<void> {
    const lane = await this.lane();
    const address = await this.address();
    const chainNext = await this.#chainPendingNonce();
    for (let n = chainNext; n < nonce; n += 1) {
      const tx = await lane.get(n);
      if (tx?.state === "reserved") {
        const staleBefore = Date.now() - RESERVATION_STALE_MS;
        if ((tx.reservedAt ?? 0) >= staleBefore) return;
        this.#log?.warn(
          { chain: this.chain.name, nonce: n },
          "a reserved nonce was never signed: giving it to a zero-value self-transfer",
        );
        const fees = await currentFees(this.rpc, this.chain);
        const filler = await this.#sign({ to: address, data: "0x", nonce: n, gasLimit: 21_000n, fees });
        const taken = await lane.takeOverReservation(token, n, tx.key, staleBefore, {
          ...filler,
          ...feeFields(fees),
          sentAt: Date.now(),
        });
        if (taken) {
          await this.#broadcast(token, n, filler.raw, false);
          continue;
        }
        // Signed meanwhile (or no longer reserved): send what was stored, if anything.
        const now = await lane.get(n);
        if (!now || now.state === "reserved") return;
        await this.#broadcast(token, n, now.raw, false);
        continue;
      }
      if (tx && tx.state !== "failed") {
        this.#log?.info({ chain: this.chain.name, nonce: n }, "re-broadcasting a lower nonce to close a gap");
        await this.#broadcast(token, n, tx.raw, false);
        continue;
      }
      this.#log?.warn({ chain: this.chain.name, nonce: n }, "filling a nonce gap with a zero-value self-transfer");
      const fees = await currentFees(this.rpc, this.chain);
      const filler = await this.#sign({ to: address, data: "0x", nonce: n, gasLimit: 21_000n, fees });
      await lane.commit(token, {
        nonce: n,
        key: `filler:${n}`,
        ...filler,
        ...feeFields(fees),
        sentAt: Date.now(),
        state: "filler",
      });
      await this.#broadcast(token, n, filler.raw, false);
    }
  }

  /** Waits until the write at `nonce` is confirmed, replacing, re-broadcasting or moving it as needed. */
  async #await(request: WriteRequest, startNonce: number, started: number, timeoutMs: number): Promise<WriteReceipt> {
    const lane = await this.lane();
    const address = await this.address();
    let nonce = startNonce;
    let lastBroadcast = Date.now();
    let consumedSince: number | undefined;
    const rebroadcastMs = Math.max(this.chain.pollIntervalMs * 4, Math.floor(this.chain.fees.replaceAfterMs / 3));
    for (;;) {
      if (Date.now() - started > timeoutMs) {
        throw new ChainWriteTimeoutError(this.chain.name, request.idempotencyKey, nonce, Date.now() - started);
      }
      const tx = await lane.get(nonce);
      if (tx?.state === "reserved" && tx.key === request.idempotencyKey) {
        // Reserved and not signed yet: by this write before a crash (a retry resumes it), or by another process
        // now. Sign it; the first signed transaction stored is the nonce's.
        if (tx.gasLimit === undefined) {
          throw new CryptletError(ERR_CHAIN_LANE_STATE_LOST, `lane ${lane.id}: nonce ${nonce} has no gas limit`, {
            details: { lane: lane.id, idempotencyKey: request.idempotencyKey, nonce },
          });
        }
        await this.#completeReservation(request, nonce, tx.gasLimit);
        continue;
      }
      if (!tx || tx.key !== request.idempotencyKey || tx.state === "failed") {
        // Another process moved this write to a new nonce, or a gap filler took over its stale reservation.
        const moved = await lane.nonceOf(request.idempotencyKey);
        if (moved === undefined && tx?.state === "filler" && tx.key === `filler:${nonce}`) {
          if (await request.isRecorded()) return this.#already(request);
          const gasLimit = await this.#estimate(request);
          if (gasLimit === undefined) return this.#already(request);
          this.#log?.warn({ chain: this.chain.name, nonce }, "the write's reservation was taken over: new nonce");
          nonce = await this.#submitNew(request, gasLimit);
          lastBroadcast = Date.now();
          continue;
        }
        if (moved === undefined || moved === nonce) {
          throw new CryptletError(ERR_CHAIN_LANE_STATE_LOST, `lane ${lane.id} lost write ${request.idempotencyKey}`, {
            details: { lane: lane.id, idempotencyKey: request.idempotencyKey, nonce },
          });
        }
        nonce = moved;
        continue;
      }
      const receipt = await this.#receiptOf(tx);
      if (receipt) {
        consumedSince = undefined;
        if (BigInt(receipt.status) === 0n) return this.#reverted(request, tx, receipt);
        const blockNumber = Number(BigInt(receipt.blockNumber));
        const head = Number(BigInt(await this.rpc.send<string>("eth_blockNumber", [])));
        const confirmations = head - blockNumber + 1;
        if (confirmations >= this.chain.confirmations) {
          const block = await this.rpc.send<{ hash: string } | null>("eth_getBlockByNumber", [
            receipt.blockNumber,
            false,
          ]);
          if (block?.hash === receipt.blockHash) {
            await lane.markMined(nonce);
            return {
              status: "confirmed",
              chain: this.chain.name,
              chainId: this.chain.chainId,
              idempotencyKey: request.idempotencyKey,
              txHash: receipt.transactionHash,
              blockNumber,
              blockHash: receipt.blockHash,
              gasUsed: BigInt(receipt.gasUsed).toString(),
              ...(receipt.effectiveGasPrice ? { effectiveGasPrice: BigInt(receipt.effectiveGasPrice).toString() } : {}),
              nonce,
              from: getAddress(receipt.from),
              confirmations,
              replacements: tx.hashes.length - 1,
              submittedAt: tx.firstSentAt,
            };
          }
          this.#log?.warn({ chain: this.chain.name, nonce, block: blockNumber }, "receipt's block was reorged out");
        }
        await this.#pause();
        continue;
      }

      // Not (or no longer) in a block.
      const latest = Number(BigInt(await this.rpc.send<string>("eth_getTransactionCount", [address, "latest"])));
      if (latest > nonce) {
        // The nonce is used, but by none of our hashes. Give receipts one more poll to appear, then move on.
        consumedSince ??= Date.now();
        if (Date.now() - consumedSince > this.chain.pollIntervalMs * 3) {
          if (await request.isRecorded()) {
            await lane.markMined(nonce);
            return this.#already(request);
          }
          nonce = await this.#moveToNewNonce(request, tx);
          lastBroadcast = Date.now();
          consumedSince = undefined;
          continue;
        }
      } else if (Date.now() - tx.sentAt > this.chain.fees.replaceAfterMs) {
        if (await request.isRecorded()) {
          // Recorded by another transaction: ours would revert; keep waiting for it to be mined or replaced.
          this.#log?.info({ chain: this.chain.name, nonce }, "write recorded elsewhere while ours is pending");
        }
        await this.#replace(tx);
        lastBroadcast = Date.now();
      } else if (Date.now() - lastBroadcast > rebroadcastMs) {
        await lane.withLock(async (token) => {
          await this.#broadcast(token, nonce, tx.raw);
        });
        lastBroadcast = Date.now();
      }
      await this.#pause();
    }
  }

  /**
   * Waits `pollIntervalMs`, or until the chain announces a block when it has a `wsUrl` (the subscription is opened
   * by the first write that waits, so a write confirmed at its first check opens no socket).
   */
  async #pause(): Promise<void> {
    if (this.#heads) {
      this.#heads.start();
      await this.#heads.next(this.chain.pollIntervalMs);
    } else await sleep(this.chain.pollIntervalMs);
  }

  async #receiptOf(tx: LaneTx): Promise<RpcReceipt | undefined> {
    for (const hash of [...tx.hashes].reverse()) {
      const receipt = await this.rpc.send<RpcReceipt | null>("eth_getTransactionReceipt", [hash]);
      if (receipt) return receipt;
    }
    return undefined;
  }

  /** Replaces a stuck transaction with bumped fees (same nonce), or re-broadcasts it when the caps allow no bump. */
  async #replace(tx: LaneTx): Promise<void> {
    const lane = await this.lane();
    await lane.withLock(async (token) => {
      const fresh = await lane.get(tx.nonce);
      if (!fresh || fresh.state === "reserved" || fresh.hashes.length !== tx.hashes.length) return; // replaced already
      const previous = Transaction.from(fresh.raw);
      const previousFees: Fees =
        previous.type === 2
          ? { type: 2, maxFeePerGas: previous.maxFeePerGas!, maxPriorityFeePerGas: previous.maxPriorityFeePerGas! }
          : { type: 0, gasPrice: previous.gasPrice! };
      const fees = bumpedFees(previousFees, await currentFees(this.rpc, this.chain), this.chain);
      if (!fees) {
        this.#log?.warn({ chain: this.chain.name, nonce: tx.nonce }, "fee cap reached: re-broadcasting without a bump");
        await this.#broadcast(token, tx.nonce, fresh.raw);
        return;
      }
      const signed = await this.#sign({
        to: previous.to!,
        data: previous.data,
        nonce: tx.nonce,
        gasLimit: previous.gasLimit,
        fees,
      });
      await lane.replace(token, tx.nonce, { ...signed, ...feeFields(fees), sentAt: Date.now() });
      this.#log?.info({ chain: this.chain.name, nonce: tx.nonce, hash: signed.hash }, "replaced a stuck transaction");
      await this.#broadcast(token, tx.nonce, signed.raw);
    });
  }

  /** The write's nonce was consumed by a transaction outside the lane: re-sign the write at a new nonce. */
  async #moveToNewNonce(request: WriteRequest, tx: LaneTx): Promise<number> {
    const lane = await this.lane();
    const previous = Transaction.from(tx.raw);
    this.#log?.warn({ chain: this.chain.name, nonce: tx.nonce }, "nonce used outside the lane: moving the write");
    await lane.withLock(async (token) => {
      await lane.reassign(token, tx.nonce, request.idempotencyKey);
      await lane.raiseNextNonce(token, await this.#chainPendingNonce());
    });
    return this.#submitNew(request, previous.gasLimit);
  }

  async #reverted(request: WriteRequest, tx: LaneTx, receipt: RpcReceipt): Promise<WriteReceipt> {
    const lane = await this.lane();
    const parsed = Transaction.from(tx.raw);
    // Recover the revert data by replaying the call: first on the state before the block; when the call succeeds
    // there, what made it revert happened in its own block (an earlier transaction of the block, or the block's
    // time: a deadline), so it is replayed on the block's state and time too. Nodes have no standard way to replay
    // at a transaction's position in its block.
    let revert: DecodedRevert = { name: "unknown", args: [], data: "0x" };
    const call = { from: receipt.from, to: parsed.to, data: parsed.data, gas: "0x" + parsed.gasLimit.toString(16) };
    const mined = BigInt(receipt.blockNumber);
    for (const block of [mined - 1n, mined]) {
      try {
        await this.rpc.send("eth_call", [call, "0x" + block.toString(16)]);
      } catch (error) {
        revert = this.#revertOf(error) ?? revert;
        break;
      }
    }
    await lane.markMined(tx.nonce);
    if (ALREADY_RECORDED_ERRORS.has(revert.name) || (await request.isRecorded())) return this.#already(request);
    throw new ChainRevertedError(this.chain.name, request.contract, request.method, revert);
  }
}

function feeFields(fees: Fees): { maxFeePerGas: bigint; maxPriorityFeePerGas: bigint } {
  return fees.type === 2
    ? { maxFeePerGas: fees.maxFeePerGas, maxPriorityFeePerGas: fees.maxPriorityFeePerGas }
    : { maxFeePerGas: fees.gasPrice, maxPriorityFeePerGas: 0n };
}
