/**
 * One receipt per cross-chain transfer (docs/crosschain.md), both legs on both chains: a lock and its mint or
 * refund, or a burn and its release. A transfer is a lock (`lockId`, on a `CryptletLockbox`) or a burn (`burnId`,
 * on a `CryptletWrappedToken`); its legs are up to three runs of the pipeline, each with its own composite receipt
 * (the mint run of the `Locked` log, the refund run of the deadline watcher's observation, the release run of the
 * `Burned` log). {@link transferReceiptOf} reads where the transfer stands from the chains themselves (events and
 * views of the contracts the chain configuration lists for the package) and compares that with the runs' composite
 * receipts: the status never comes from Redis, and a run whose receipt names another transaction than the chain's
 * event, a lock both minted and refunded, or amounts that differ between the legs are failed checks.
 *
 * Every read is `eth_getLogs` or `eth_call` through each chain's {@link ChainRpc} (deadlines, failover, breaker).
 * Logs are read back from the latest block to the package's `fromBlock` on that chain (the contracts' deployment
 * block in the chain configuration's `contracts.crosschain`, default 0), in ranges of at most
 * {@link TRANSFER_LOG_RANGE_BLOCKS} blocks, so that an RPC that caps `eth_getLogs` ranges can serve them.
 *
 * @module
 */
import { Interface, getAddress, isHexString, toQuantity, type Result } from "ethers";

import { computeResultId, type Hex32 } from "../attestation/eip712.ts";
import { chainLogEventId, cryptletIdOf } from "../attestation/ids.ts";
import type { ChainConfig } from "../chains/config.ts";
import type { ChainRpc } from "../chains/rpc.ts";
import type { CompositeReceipt, ResultStore } from "../queue/results.ts";
import type { RpcLog } from "../triggers/decodeLog.ts";
import { CrosschainEventInvalidError, CrosschainRouteUnknownError } from "./errors.ts";
import { BURNED_EVENT, CROSSCHAIN_VIEWS, LOCKED_EVENT, LOCK_STATUS, refundEventIdOf } from "./events.ts";

/** One on-chain step of a transfer: the log that did it, where. */
export interface TransferLeg {
  /** `lock` then `mint` or `refund`; `burn` then `release`. */
  step: "lock" | "mint" | "refund" | "burn" | "release";
  /** The chain's configured name. */
  chain: string;
  /** The chain's EIP-155 id. */
  chainId: number;
  /** The contract that emitted the step's event (lockbox or wrapped token), EIP-55 checksummed. */
  contract: string;
  txHash: string;
  blockNumber: number;
  blockHash: string;
  /**
   * For `mint`, `refund` and `release`: the run that wrote it, as the chain says (the event's `resultId`; a run's
   * id is its result id).
   */
  runId?: string;
}

/** A run of the pipeline that belongs to a transfer, and its composite receipt's status. */
export interface TransferRun {
  runId: string;
  mode: "mint" | "release" | "refund";
  /** The composite receipt's `status` (`confirmed`, `partial`, `failed`), or `not found`. */
  status: string;
}

/** One comparison of the chains' view of a transfer with itself or with its runs' receipts. */
export interface TransferCheck {
  description: string;
  ok: boolean;
}

/** A cross-chain transfer as the chains and the pipeline's receipts show it (see the module comment). */
export interface TransferReceipt {
  /** A lock (source chain first) or a burn (destination chain first). */
  kind: "lock" | "burn";
  /** The `lockId` or `burnId`, lower-case hex. */
  id: string;
  /** The package name (its `contracts.crosschain` key). */
  cryptlet: string;
  /**
   * Read from the chains, not from Redis. A lock is `pending` until it is minted or refunded (a lock both minted
   * and refunded, which a failed check reports, is `refunded`: the final state of the lock on its own chain); a
   * burn is `pending` until it is released.
   */
  status: "pending" | "minted" | "refunded" | "released";
  /** Token base units, decimal string (the lock's or the burn's amount). */
  amount: string;
  /** The lock's sender or the burner, EIP-55 checksummed. */
  from: string;
  /** The recipient of the lock or the burn, EIP-55 checksummed. */
  to: string;
  /** For a lock: its deadline, Unix seconds (destination-chain time). */
  deadline?: number;
  /** In order: lock, then mint and/or refund; burn, then release. */
  legs: TransferLeg[];
  /** The transfer's runs: the mint run (and the refund run when it exists or the lock was refunded), or the release run. */
  runs: TransferRun[];
  /** Every comparison made, passed or failed. */
  checks: TransferCheck[];
}

/**
 * What {@link transferReceiptOf} reads: the chains (configuration and RPC client) and the result store. The
 * pipeline (`Pick<Pipeline, "ctx">`, runtime/queue/pipeline.ts) is one.
 */
export interface TransferReceiptSource {
  ctx: {
    chains: ReadonlyMap<string, { config: ChainConfig; writer: { rpc: Pick<ChainRpc, "send"> } }>;
    results: Pick<ResultStore, "getReceipt">;
  };
}

/** Views of the contracts that {@link CROSSCHAIN_VIEWS} does not list, and the events of both contracts. */
const READS = new Interface([
  ...CROSSCHAIN_VIEWS.fragments,
  LOCKED_EVENT,
  BURNED_EVENT,
  "function mintResultOf(bytes32 lockId) view returns (bytes32)",
  "function isReleased(bytes32 burnId) view returns (bool)",
  "function releaseResultOf(bytes32 burnId) view returns (bytes32)",
]);
const TOPIC = {
  Locked: LOCKED_EVENT.topicHash,
  Burned: BURNED_EVENT.topicHash,
  Minted: READS.getEvent("Minted")!.topicHash,
  Released: READS.getEvent("Released")!.topicHash,
  Refunded: READS.getEvent("Refunded")!.topicHash,
} as const;
type EventName = keyof typeof TOPIC;

/** A log with its decoded arguments. */
interface FoundLog {
  raw: RpcLog;
  args: Result;
}

interface Chain {
  config: ChainConfig;
  rpc: Pick<ChainRpc, "send">;
  /** Blocks per `eth_getLogs` call ({@link TRANSFER_LOG_RANGE_BLOCKS} unless a caller sets another). */
  logRangeBlocks: number;
}

const eq = (a: unknown, b: unknown): boolean => String(a).toLowerCase() === String(b).toLowerCase();

/**
 * Blocks per `eth_getLogs` call of a transfer receipt's reads (the triggers' default `maxBlockRange` too): within
 * what public RPCs accept.
 */
export const TRANSFER_LOG_RANGE_BLOCKS = 2000;

/**
 * The logs of `event` with first indexed argument `subject` emitted by `address` (`eth_getLogs`): scanned back from
 * the latest block to the package's `fromBlock` on this chain (default 0) in ranges of `chain.logRangeBlocks`, ending at the
 * first range that has any (an id's event is emitted once: the latest range holding one has them all).
 */
async function logsOf(
  chain: Chain,
  cryptlet: string,
  address: string | string[],
  event: EventName,
  subject: string,
): Promise<FoundLog[]> {
  const rangeBlocks = chain.logRangeBlocks;
  const first = chain.config.contracts.crosschain?.[cryptlet]?.fromBlock ?? 0;
  const latest = Number(await chain.rpc.send<string>("eth_blockNumber", []));
  for (let to = latest; to >= first; to -= rangeBlocks) {
    const from = Math.max(first, to - rangeBlocks + 1);
    const logs = (
      await chain.rpc.send<RpcLog[]>("eth_getLogs", [
        { address, topics: [TOPIC[event], subject], fromBlock: toQuantity(from), toBlock: toQuantity(to) },
      ])
    ).filter((l) => l.removed !== true);
    if (logs.length > 0) return logs.map((raw) => ({ raw, args: READS.decodeEventLog(event, raw.data, raw.topics) }));
  }
  return [];
}

/** `eth_call` of the view `fn(...args)` of `to` at the latest block. */
async function view(chain: Chain, cryptlet: string, to: string, fn: string, args: unknown[]): Promise<Result> {
  const data = await chain.rpc.send<string>("eth_call", [{ to, data: READS.encodeFunctionData(fn, args) }, "latest"]);
  if (data === "0x") {
    throw new CrosschainRouteUnknownError(
      cryptlet,
      `${to} on chain "${chain.config.name}" answers nothing to ${fn} (not a cross-chain contract of the package?)`,
      { chain: chain.config.name, contract: to },
    );
  }
  return READS.decodeFunctionResult(fn, data);
}

/** The leg of `step` that `log` on `chain` is. */
function legOf(step: TransferLeg["step"], chain: Chain, log: FoundLog, runId?: string): TransferLeg {
  return {
    step,
    chain: chain.config.name,
    chainId: chain.config.chainId,
    contract: getAddress(log.raw.address),
    txHash: log.raw.transactionHash,
    blockNumber: Number(BigInt(log.raw.blockNumber)),
    blockHash: log.raw.blockHash,
    ...(runId === undefined ? {} : { runId }),
  };
}

/** The pipeline's run id of the chain-log event `log` on `chain` for `cryptletId`. */
function runOfLog(cryptletId: Hex32, chain: Chain, log: FoundLog): string {
  return computeResultId(
    cryptletId,
    chainLogEventId({
      chainId: chain.config.chainId,
      blockHash: log.raw.blockHash,
      txHash: log.raw.transactionHash,
      logIndex: BigInt(log.raw.logIndex),
    }),
  );
}

const short = (hex: string) => `${hex.slice(0, 10)}…`;

/**
 * Compares a run's composite receipt with the event the chain holds for its step (`event`, or none): the run's
 * transaction is the event's; a run that found the write already recorded names the event's result; a run that
 * wrote nothing (superseded, failed) has no event carrying its result. No receipt while the event exists is a
 * failed check too (nothing to compare with).
 */
function compareRun(
  checks: TransferCheck[],
  mode: TransferRun["mode"],
  runId: string,
  receipt: CompositeReceipt | undefined,
  eventName: EventName,
  event: FoundLog | undefined,
): void {
  const onChain = event
    ? `the ${eventName} event's (tx ${event.raw.transactionHash})`
    : `a ${eventName} event's (none on the chain)`;
  if (!receipt) {
    if (event)
      checks.push({
        description: `the ${mode} run ${short(runId)} has a composite receipt (to compare with the ${eventName} event)`,
        ok: false,
      });
    return;
  }
  const target = receipt.targets.find((t) => t.mode === mode);
  if (!target) {
    checks.push({ description: `the ${mode} run's receipt has a ${mode} target`, ok: false });
    return;
  }
  const txHash = target.receipt?.txHash ?? target.anchor?.txHash;
  if (txHash !== undefined) {
    checks.push({
      description: `the ${mode} run's transaction ${txHash} is ${onChain}`,
      ok: event !== undefined && eq(txHash, event.raw.transactionHash),
    });
  } else if (target.status === "already-recorded") {
    checks.push({
      description: `the ${mode} run found the ${mode} already recorded, and ${event ? `the ${eventName} event` : `a ${eventName} event (none on the chain)`} carries its result`,
      ok: event !== undefined && eq(event.args.resultId, runId),
    });
  } else {
    const why = `${target.status}${target.reason ? `: ${target.reason}` : target.error ? `: ${target.error.code}` : ""}`;
    checks.push({
      description: `the ${mode} run wrote nothing (${why}), and no ${eventName} event carries its result`,
      ok: !(event !== undefined && eq(event.args.resultId, runId)),
    });
  }
}

/**
 * The receipt of the transfer `id` of `cryptlet`, read from the chains and compared with the pipeline's runs.
 *
 * `id` is a lock if a lockbox configured for `cryptlet` (`contracts.crosschain[cryptlet].lockbox`, on any chain)
 * has it (`lockOf(id).status` not `None`), else a burn if a configured wrapped token emitted `Burned` with it. For
 * a lock: the `Locked` log is the lock leg, the `Minted` log of the lockbox's peer (`peerOf(destinationChainId)`)
 * on the configured chain of that chain id the mint leg, the lockbox's `Refunded` log the refund leg; the mint run
 * is the run of the `Locked` log (`computeResultId(cryptletId, chainLogEventId(log))`) and the refund run the run
 * of the deadline watcher's observation (`computeResultId(cryptletId, refundEventIdOf(lockId))`). For a burn: the
 * `Burned` log, and the `Released` log of the lockbox it names on the chain of its `sourceChainId`; the release
 * run is the run of the `Burned` log.
 *
 * @param pipeline - the pipeline (its chains and result store), or any {@link TransferReceiptSource}.
 * @param cryptlet - the package name, e.g. `@cryptlet/xchain-transfer`.
 * @param id - a `lockId` or `burnId` (32-byte hex).
 * @param options.logRangeBlocks - blocks per `eth_getLogs` call (default {@link TRANSFER_LOG_RANGE_BLOCKS}); the
 *   logs are read back from the latest block to the package's `contracts.crosschain[…].fromBlock` on each chain.
 * @returns the receipt; its `checks` say what held (a failed check is a finding, not an error).
 * @throws CrosschainEventInvalidError (`ERR_CROSSCHAIN_EVENT_INVALID`, `details.field` `id`) when `id` is not
 *   32-byte hex or no configured contract of the package knows it; CrosschainRouteUnknownError
 *   (`ERR_CROSSCHAIN_ROUTE_UNKNOWN`) when no chain configures cross-chain contracts for the package, or one does
 *   not answer as one; the RPC client's errors (`ERR_CHAIN_RPC_UNAVAILABLE`, node errors) and the result store's.
 *
 * @example
 * ```ts
 * const receipt = await transferReceiptOf(pipeline, "@cryptlet/xchain-transfer", lockId);
 * if (receipt.status === "minted" && receipt.checks.every((c) => c.ok)) console.log(receipt.legs);
 * ```
 */
export async function transferReceiptOf(
  pipeline: TransferReceiptSource,
  cryptlet: string,
  id: string,
  options: { logRangeBlocks?: number } = {},
): Promise<TransferReceipt> {
  if (!isHexString(id, 32)) throw new CrosschainEventInvalidError("id", "is not a 32-byte hex lock or burn id");
  const key = id.toLowerCase();
  const logRangeBlocks = Math.max(1, Math.floor(options.logRangeBlocks ?? TRANSFER_LOG_RANGE_BLOCKS));
  const chains: Chain[] = [...pipeline.ctx.chains.values()].map((c) => ({
    config: c.config,
    rpc: c.writer.rpc,
    logRangeBlocks,
  }));
  const entryOf = (chain: Chain) => chain.config.contracts.crosschain?.[cryptlet];
  const configured = chains.filter((c) => entryOf(c) !== undefined);
  if (configured.length === 0) {
    throw new CrosschainRouteUnknownError(cryptlet, "no configured chain lists cross-chain contracts for the package", {
      field: "contracts.crosschain",
    });
  }

  for (const chain of configured) {
    const lockbox = entryOf(chain)?.lockbox;
    if (lockbox === undefined) continue;
    const [lock] = await view(chain, cryptlet, lockbox, "lockOf", [key]);
    if (Number((lock as Result).status) !== LOCK_STATUS.None) {
      return lockReceipt(pipeline, cryptlet, key, chains, chain, lockbox, lock as Result);
    }
  }
  for (const chain of configured) {
    const tokens = entryOf(chain)?.wrappedTokens ?? [];
    if (tokens.length === 0) continue;
    const [burned] = await logsOf(chain, cryptlet, tokens, "Burned", key);
    if (burned) return burnReceipt(pipeline, cryptlet, key, chains, chain, burned);
  }
  throw new CrosschainEventInvalidError(
    "id",
    `${key} is neither a lock of a configured lockbox nor a burn of a configured wrapped token of ${cryptlet}`,
  );
}

/** The receipt of the lock `lockId` of `lockbox` on `source`, stored as `lock` (`lockOf`). */
async function lockReceipt(
  pipeline: TransferReceiptSource,
  cryptlet: string,
  lockId: string,
  chains: Chain[],
  source: Chain,
  lockbox: string,
  lock: Result,
): Promise<TransferReceipt> {
  const cryptletId = cryptletIdOf(cryptlet);
  const checks: TransferCheck[] = [];
  const legs: TransferLeg[] = [];
  const amount = BigInt(lock.amount as bigint);
  const destinationChainId = BigInt(lock.destinationChainId as bigint);
  const at = (chain: Chain) => `chain "${chain.config.name}"`;

  // The lock leg, and the lock as its event says.
  const [locked] = await logsOf(source, cryptlet, lockbox, "Locked", lockId);
  checks.push({ description: `the Locked event of the lock is on ${at(source)} (lockbox ${lockbox})`, ok: !!locked });
  if (locked) {
    legs.push(legOf("lock", source, locked));
    const a = locked.args;
    const differ = [
      ...(eq(a.sender, lock.sender) ? [] : ["sender"]),
      ...(eq(a.recipient, lock.recipient) ? [] : ["recipient"]),
      ...(BigInt(a.amount as bigint) === amount ? [] : ["amount"]),
      ...(BigInt(a.destinationChainId as bigint) === destinationChainId ? [] : ["destination chain"]),
      ...(BigInt(a.deadline as bigint) === BigInt(lock.deadline as bigint) ? [] : ["deadline"]),
    ];
    checks.push({
      description:
        differ.length === 0
          ? "the Locked event agrees with lockOf (sender, recipient, amount, destination chain, deadline)"
          : `the Locked event differs from lockOf in ${differ.join(", ")}`,
      ok: differ.length === 0,
    });
  }
  const mintRunId = locked ? runOfLog(cryptletId, source, locked) : undefined;
  const refundRunId = computeResultId(cryptletId, refundEventIdOf(lockId));

  // The peer that mints, on the destination chain.
  const [peerAddress] = await view(source, cryptlet, lockbox, "peerOf", [destinationChainId]);
  const peer = getAddress(String(peerAddress));
  if (locked) {
    checks.push({
      description: `the Locked event's token ${getAddress(String(locked.args.token))} is the lockbox's peer on chain ${destinationChainId} (peerOf)`,
      ok: eq(locked.args.token, peer),
    });
  }
  const destination = chains.find((c) => BigInt(c.config.chainId) === destinationChainId);
  checks.push({
    description: destination
      ? `the destination chain ${destinationChainId} is configured (${at(destination)})`
      : `the destination chain ${destinationChainId} is configured (to read the mint)`,
    ok: destination !== undefined,
  });

  let minted: FoundLog | undefined;
  let isMinted = false;
  if (destination) {
    const tokens = destination.config.contracts.crosschain?.[cryptlet]?.wrappedTokens ?? [];
    checks.push({
      description: `the peer ${peer} is a configured wrapped token of ${cryptlet} on ${at(destination)}`,
      ok: tokens.some((t) => eq(t, peer)),
    });
    [minted] = await logsOf(destination, cryptlet, peer, "Minted", lockId);
    isMinted = (await view(destination, cryptlet, peer, "isMinted", [lockId]))[0] === true;
    if (minted || isMinted) {
      checks.push({ description: `isMinted(lockId) true on the wrapped token ${peer}`, ok: isMinted });
      checks.push({ description: `the Minted event of the lock is on ${at(destination)}`, ok: !!minted });
    }
    if (minted) {
      const resultId = String(minted.args.resultId);
      legs.push(legOf("mint", destination, minted, resultId));
      const [mintResult] = await view(destination, cryptlet, peer, "mintResultOf", [lockId]);
      checks.push({ description: "mintResultOf(lockId) is the Minted event's resultId", ok: eq(mintResult, resultId) });
      checks.push({
        description: `the Minted event's resultId is the mint run's (the run of the Locked log${mintRunId ? ` ${short(mintRunId)}` : ""})`,
        ok: mintRunId !== undefined && eq(resultId, mintRunId),
      });
      checks.push({
        description: `lock's amount ${amount} equals minted amount ${String(minted.args.amount)}`,
        ok: BigInt(minted.args.amount as bigint) === amount,
      });
      checks.push({
        description: "minted to the lock's recipient",
        ok: eq(minted.args.recipient, lock.recipient),
      });
    }
  }

  // The refund leg.
  const [refunded] = await logsOf(source, cryptlet, lockbox, "Refunded", lockId);
  const statusRefunded = Number(lock.status) === LOCK_STATUS.Refunded;
  if (refunded || statusRefunded) {
    checks.push({ description: "lock status Refunded (lockOf)", ok: statusRefunded });
    checks.push({ description: `the Refunded event of the lock is on ${at(source)}`, ok: !!refunded });
  }
  if (refunded) {
    const resultId = String(refunded.args.resultId);
    legs.push(legOf("refund", source, refunded, resultId));
    checks.push({
      description: `the Refunded event's resultId is the refund run's (${short(refundRunId)})`,
      ok: eq(resultId, refundRunId),
    });
    const recorded = (await view(source, cryptlet, lockbox, "isRecorded", [resultId]))[0] === true;
    checks.push({ description: "isRecorded(resultId) of the refund true on the lockbox", ok: recorded });
    checks.push({
      description: `lock's amount ${amount} equals refunded amount ${String(refunded.args.amount)}`,
      ok: BigInt(refunded.args.amount as bigint) === amount,
    });
    checks.push({ description: "refunded to the lock's sender", ok: eq(refunded.args.sender, lock.sender) });
  }

  const wasMinted = minted !== undefined || isMinted;
  const wasRefunded = refunded !== undefined || statusRefunded;
  checks.push(
    wasMinted && wasRefunded
      ? { description: "exactly one of mint or refund happened: both did", ok: false }
      : wasMinted || wasRefunded
        ? { description: `exactly one of mint or refund happened (${wasMinted ? "minted" : "refunded"})`, ok: true }
        : { description: "neither mint nor refund happened yet (pending)", ok: true },
  );

  // The runs, compared with the chains.
  const runs: TransferRun[] = [];
  if (mintRunId !== undefined) {
    const receipt = await pipeline.ctx.results.getReceipt(mintRunId);
    runs.push({ runId: mintRunId, mode: "mint", status: receipt?.status ?? "not found" });
    compareRun(checks, "mint", mintRunId, receipt, "Minted", minted);
  }
  const refundReceipt = await pipeline.ctx.results.getReceipt(refundRunId);
  if (refundReceipt || wasRefunded) {
    runs.push({ runId: refundRunId, mode: "refund", status: refundReceipt?.status ?? "not found" });
    compareRun(checks, "refund", refundRunId, refundReceipt, "Refunded", refunded);
  }

  return {
    kind: "lock",
    id: lockId,
    cryptlet,
    status: wasRefunded ? "refunded" : wasMinted ? "minted" : "pending",
    amount: amount.toString(),
    from: getAddress(String(lock.sender)),
    to: getAddress(String(lock.recipient)),
    deadline: Number(lock.deadline),
    legs,
    runs,
    checks,
  };
}

/** The receipt of the burn `burnId` that `burned` (a `Burned` log on `origin`) is. */
async function burnReceipt(
  pipeline: TransferReceiptSource,
  cryptlet: string,
  burnId: string,
  chains: Chain[],
  origin: Chain,
  burned: FoundLog,
): Promise<TransferReceipt> {
  const cryptletId = cryptletIdOf(cryptlet);
  const checks: TransferCheck[] = [];
  const legs: TransferLeg[] = [legOf("burn", origin, burned)];
  const a = burned.args;
  const amount = BigInt(a.amount as bigint);
  const sourceChainId = BigInt(a.sourceChainId as bigint);
  const lockbox = getAddress(String(a.lockbox));
  const token = getAddress(burned.raw.address);
  const releaseRunId = runOfLog(cryptletId, origin, burned);

  const source = chains.find((c) => BigInt(c.config.chainId) === sourceChainId);
  checks.push({
    description: source
      ? `the burn's source chain ${sourceChainId} is configured (chain "${source.config.name}")`
      : `the burn's source chain ${sourceChainId} is configured (to read the release)`,
    ok: source !== undefined,
  });
  let released: FoundLog | undefined;
  let isReleased = false;
  if (source) {
    const configuredLockbox = source.config.contracts.crosschain?.[cryptlet]?.lockbox;
    checks.push({
      description: `the Burned event's lockbox ${lockbox} is the configured lockbox of ${cryptlet} on chain "${source.config.name}"`,
      ok: eq(configuredLockbox, lockbox),
    });
    const [peer] = await view(source, cryptlet, lockbox, "peerOf", [origin.config.chainId]);
    checks.push({
      description: `the burning token ${token} is the lockbox's peer on chain ${origin.config.chainId} (peerOf)`,
      ok: eq(peer, token),
    });
    [released] = await logsOf(source, cryptlet, lockbox, "Released", burnId);
    isReleased = (await view(source, cryptlet, lockbox, "isReleased", [burnId]))[0] === true;
    if (released || isReleased) {
      checks.push({ description: `isReleased(burnId) true on the lockbox ${lockbox}`, ok: isReleased });
      checks.push({
        description: `the Released event of the burn is on chain "${source.config.name}"`,
        ok: !!released,
      });
    }
    if (released) {
      const resultId = String(released.args.resultId);
      legs.push(legOf("release", source, released, resultId));
      const [releaseResult] = await view(source, cryptlet, lockbox, "releaseResultOf", [burnId]);
      checks.push({
        description: "releaseResultOf(burnId) is the Released event's resultId",
        ok: eq(releaseResult, resultId),
      });
      checks.push({
        description: `the Released event's resultId is the release run's (the run of the Burned log ${short(releaseRunId)})`,
        ok: eq(resultId, releaseRunId),
      });
      checks.push({
        description: `burned amount ${amount} equals released amount ${String(released.args.amount)}`,
        ok: BigInt(released.args.amount as bigint) === amount,
      });
      checks.push({ description: "released to the burn's recipient", ok: eq(released.args.recipient, a.recipient) });
      checks.push({
        description: `the Released event names the burn's chain (${origin.config.chainId})`,
        ok: BigInt(released.args.destinationChainId as bigint) === BigInt(origin.config.chainId),
      });
    }
  }

  const receipt = await pipeline.ctx.results.getReceipt(releaseRunId);
  const runs: TransferRun[] = [{ runId: releaseRunId, mode: "release", status: receipt?.status ?? "not found" }];
  compareRun(checks, "release", releaseRunId, receipt, "Released", released);

  return {
    kind: "burn",
    id: burnId,
    cryptlet,
    status: released !== undefined || isReleased ? "released" : "pending",
    amount: amount.toString(),
    from: getAddress(String(a.burner)),
    to: getAddress(String(a.recipient)),
    legs,
    runs,
    checks,
  };
}
