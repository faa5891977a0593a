/**
 * The follower's check that a proposal's EVENT happened (docs/consortium.md, "What a follower checks"): re-execution
 * proves that the output follows from the evidence's event and input, not that the event is real. For an event of a
 * chain, {@link checkEventOnChain} reads the chain itself and requires that the event and the input are exactly what
 * this runtime's trigger makes of what is on the chain, so that a member below the threshold cannot get honest
 * members to co-sign the result of a log that was never emitted (e.g. a MINT for a `Locked` that never happened) or
 * of a chain read that says otherwise (a REFUND for a lock that was minted).
 *
 * - `chain-log`: the emitter is a contract the package's triggers listen to (`options.emitters`); the transaction's
 *   receipt is in the source's block, which is canonical; the receipt has the log at `logIndex` of `address`; the
 *   input is that log re-decoded with the package's declared event (`options.events`), or the group re-made from the
 *   receipt's matching logs; the event id, request id and time are the log's.
 * - `oracle`: the same for the `CryptletRequested` log of the configured oracle (`options.oracles`); the request is
 *   for the result's Cryptlet (`options.cryptletId`); the input is `oracleInputOf(params)`.
 * - `chain-state` with a refund input: runtime/crosschain/refundCheck.ts `checkRefundObservation`, and the event id
 *   is `refundEventIdOf(lockId)`.
 * - `http`, `schedule`: nothing, there is nothing on a chain to check. The members trust the leader's account of an
 *   HTTP body or a schedule slot; what re-execution guarantees is that the output follows from it.
 * - anything else (another chain-state input, an unknown source): cannot be checked.
 *
 * The answer separates "the event is false" (`ERR_COSIGN_EVENT_NOT_ON_CHAIN`, not retryable: the leader lied, or
 * acted on a block that was reorganised away) from "it cannot be checked now" (`ERR_COSIGN_EVENT_UNVERIFIABLE`,
 * retryable: no client of that chain, an RPC failure or timeout, this member's node behind the event's block, a
 * contract or event this member's configuration does not name for the package).
 * Either way the member does not sign. Reasons name fields and chain positions (chain id, block, transaction, log
 * index), never the input's values.
 *
 * @module
 */
import { EventFragment, getAddress, isAddress } from "ethers";

import { computeResultId } from "../attestation/eip712.ts";
import { canonicalJson } from "../attestation/hashing.ts";
import { chainLogEventId } from "../attestation/ids.ts";
import { parseOracleRequest } from "../chains/targets.ts";
import { BURNED_EVENT, LOCKED_EVENT, refundEventIdOf } from "../crosschain/events.ts";
import {
  ChainCheckRefusal,
  ChainReader,
  DEFAULT_CHAIN_CHECK_TIMEOUT_MS,
  checkRefundObservation,
  describeChainError,
  type ChainClients,
  type JsonRpcClient,
} from "../crosschain/refundCheck.ts";
import type { ChainConfig } from "../chains/config.ts";
import type { Manifest } from "../packages/manifest.ts";
import { decodeLog, type ChainLogInput, type RpcLog } from "../triggers/decodeLog.ts";
import { oracleInputOf } from "../triggers/oracleRequest.ts";
import { ORACLE_REQUEST_TOPIC } from "../triggers/subscriptions.ts";
import { ERR_COSIGN_EVENT_NOT_ON_CHAIN, ERR_COSIGN_EVENT_UNVERIFIABLE } from "./errors.ts";

export type { ChainClients, JsonRpcClient };
export { DEFAULT_CHAIN_CHECK_TIMEOUT_MS };

/** The outcome of {@link checkEventOnChain}. */
export type EventCheck =
  | {
      ok: true;
      /** What was checked: the log, the oracle request, the refund observation, or nothing (HTTP, schedule). */
      checked: "chain-log" | "oracle" | "refund" | "none";
    }
  | {
      ok: false;
      code: typeof ERR_COSIGN_EVENT_NOT_ON_CHAIN.code | typeof ERR_COSIGN_EVENT_UNVERIFIABLE.code;
      /** The rule that failed, naming the field that differs (no values of the input). */
      reason: string;
    };

/** Options of {@link checkEventOnChain}. */
export interface EventCheckOptions {
  /** Deadline of each JSON-RPC call, ms. Default 10000. */
  timeoutMs?: number;
  /**
   * The event signatures the package's triggers declare ({@link declaredEventsOf}: a manifest's `chain-log`
   * triggers' `event`, and for a `crosschain` trigger the `Locked` and `Burned` events), with their parameter names
   * and `indexed` markers: a log input whose `signature` (the bare form decodeLog writes, without names or markers)
   * is one of them is re-decoded with the declared fragment, as the trigger decoded it. Without one, the bare
   * signature is used (unnamed parameters, the first `topics.length - 1` indexed); an input that names its
   * arguments then cannot be checked (`ERR_COSIGN_EVENT_UNVERIFIABLE`).
   */
  events?: readonly string[];
  /** The result's `cryptletId`: an oracle request must be for it. */
  cryptletId?: string;
  /**
   * The contracts whose logs the package's triggers listen to, by chain id ({@link eventCheckOptionsOf}): a
   * chain-log event's `source.address` must be one of them, or anyone could deploy a contract that emits look-alike
   * logs. Absent: not checked.
   */
  emitters?: readonly { chainId: number; address: string }[];
  /**
   * The `CryptletOracle` of each chain the package has an oracle trigger on, by chain id: an oracle event's
   * `source.oracle` must be it (a look-alike contract could emit a real request's id with other params). Absent: not
   * checked.
   */
  oracles?: ReadonlyMap<number, string>;
}

const BYTES32 = /^0x[0-9a-fA-F]{64}$/;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const sameHex = (a: unknown, b: string): boolean => typeof a === "string" && a.toLowerCase() === b.toLowerCase();
const notOnChain = (reason: string): ChainCheckRefusal => new ChainCheckRefusal("not-on-chain", reason);
const unverifiable = (reason: string): ChainCheckRefusal => new ChainCheckRefusal("unverifiable", reason);

function canonical(value: unknown): string | undefined {
  try {
    return canonicalJson(value);
  } catch {
    return undefined;
  }
}

/**
 * The first place where `actual` is not `expected` (object members in sorted order), as a path from `path`:
 * `"input.args.amount"`, `"input.logs (2 entries, the chain's 1)"`. `undefined` when they are the same JSON.
 */
function firstDifference(expected: unknown, actual: unknown, path: string): string | undefined {
  const e = canonical(expected);
  if (e !== undefined && e === canonical(actual)) return undefined;
  if (isObject(expected) && isObject(actual)) {
    for (const key of [...new Set([...Object.keys(expected), ...Object.keys(actual)])].sort()) {
      if (!(key in actual)) return `${path}.${key} (missing)`;
      if (!(key in expected)) return `${path}.${key} (not made by the trigger)`;
      const found = firstDifference(expected[key], actual[key], `${path}.${key}`);
      if (found !== undefined) return found;
    }
  }
  if (Array.isArray(expected) && Array.isArray(actual)) {
    if (expected.length !== actual.length) return `${path} (${actual.length} entries, the chain's ${expected.length})`;
    for (let i = 0; i < expected.length; i += 1) {
      const found = firstDifference(expected[i], actual[i], `${path}[${i}]`);
      if (found !== undefined) return found;
    }
  }
  return path;
}

/** Exactly these members, or the source is not one the runtime makes. */
function sourceOf(source: Record<string, unknown>, keys: readonly string[]): void {
  for (const k of Object.keys(source))
    if (!keys.includes(k)) throw notOnChain(`event.source.${k} is not a member of it`);
  for (const k of keys) if (!(k in source)) throw notOnChain(`event.source.${k} is missing`);
}

interface LogPosition {
  chainId: number;
  blockNumber: number;
  blockHash: string;
  txHash: string;
  logIndex: number;
}

/** The position members of a log source, checked for type. */
function positionOf(source: Record<string, unknown>): LogPosition {
  if (!isCount(source.chainId) || source.chainId === 0) throw notOnChain("event.source.chainId is not a chain id");
  for (const k of ["blockNumber", "logIndex"] as const) {
    if (!isCount(source[k])) throw notOnChain(`event.source.${k} is not a non-negative integer`);
  }
  for (const k of ["blockHash", "txHash"] as const) {
    if (typeof source[k] !== "string" || !BYTES32.test(source[k])) throw notOnChain(`event.source.${k} is not bytes32`);
  }
  return source as unknown as LogPosition;
}

interface Receipt {
  transactionHash: string;
  blockHash: string;
  blockNumber: string;
  logs: RpcLog[];
}

/**
 * The log at `position` as the chain has it: the transaction's receipt is in block `blockNumber` with hash
 * `blockHash`, that block is the canonical one at its height, and the receipt has a log at `logIndex`.
 * @returns the receipt, the log and the block's timestamp.
 */
async function locate(
  reader: ChainReader,
  p: LogPosition,
): Promise<{ receipt: Receipt; log: RpcLog; timestamp: number }> {
  const where = `chain ${p.chainId}`;
  const answered = await reader.call(p.chainId, "eth_getTransactionReceipt", [p.txHash]);
  if (answered === null) {
    await reader.notBehind(p.chainId, p.blockNumber);
    throw notOnChain(`${where} has no transaction event.source.txHash ${p.txHash}`);
  }
  const receipt = answered as Partial<Receipt>;
  if (
    typeof receipt.transactionHash !== "string" ||
    typeof receipt.blockHash !== "string" ||
    typeof receipt.blockNumber !== "string" ||
    !Array.isArray(receipt.logs)
  ) {
    throw unverifiable(`the node of ${where} answered a malformed receipt of ${p.txHash}`);
  }
  const inBlock = Number(BigInt(receipt.blockNumber));
  if (inBlock !== p.blockNumber || !sameHex(receipt.blockHash, p.blockHash)) {
    const field = inBlock !== p.blockNumber ? "event.source.blockNumber" : "event.source.blockHash";
    throw notOnChain(
      `transaction ${p.txHash} is in block ${inBlock} (${receipt.blockHash}) of ${where}: ${field} differs (another block, or reorged)`,
    );
  }
  const block = await reader.block(p.chainId, p.blockNumber);
  if (!sameHex(block.hash, p.blockHash)) {
    throw notOnChain(
      `block ${p.blockNumber} of ${where} is ${block.hash}: event.source.blockHash is not canonical (reorged)`,
    );
  }
  const log = receipt.logs.find((l) => typeof l?.logIndex === "string" && Number(BigInt(l.logIndex)) === p.logIndex);
  if (log === undefined) {
    throw notOnChain(`transaction ${p.txHash} of ${where} has no log at event.source.logIndex ${p.logIndex}`);
  }
  return { receipt: receipt as Receipt, log, timestamp: block.timestamp };
}

function parseFragment(text: string): EventFragment | undefined {
  try {
    const t = text.trim();
    return EventFragment.from(t.startsWith("event ") ? t : `event ${t}`);
  } catch {
    return undefined;
  }
}

/**
 * The fragments a log input's `signature` (the bare form decodeLog writes) is re-decoded with: the package's
 * declared events of that signature (their parameter names and `indexed` markers are the trigger's), else the bare
 * signature itself (unnamed parameters, the first `topics.length - 1` indexed).
 */
function fragmentsFor(
  signature: unknown,
  declared: readonly string[],
  path: string,
): { fragments: EventFragment[]; declared: boolean } {
  if (typeof signature !== "string") throw notOnChain(`${path}.signature is missing: the input is not a decoded log`);
  const matching = new Map<string, EventFragment>();
  for (const text of declared) {
    const fragment = parseFragment(text);
    if (fragment && fragment.format("sighash") === signature) matching.set(fragment.format("full"), fragment);
  }
  if (matching.size > 0) return { fragments: [...matching.values()], declared: true };
  const bare = parseFragment(signature);
  if (!bare) throw notOnChain(`${path}.signature is not an event signature`);
  return { fragments: [bare], declared: false };
}

/**
 * Throws for an input that differs from the re-decoded log: `not-on-chain`, unless no declared event gave the
 * parameters' names and the input names them (this member cannot know the names of an event its package does not
 * declare, e.g. of an explicit subscription): then `unverifiable`.
 */
function refuseDecoded(difference: string, declared: boolean, args: unknown, where: string): never {
  const named =
    typeof args === "object" && args !== null && Object.keys(args).some((k) => !/^(0|[1-9][0-9]*)$/.test(k));
  if (!declared && named) {
    throw unverifiable(
      `the package declares no trigger event of input.signature: this member cannot re-decode ${where} with the names of its parameters`,
    );
  }
  throw notOnChain(`${difference} differs from ${where}`);
}

/**
 * What a member knows of a package's events, for {@link checkEventOnChain}: the event signatures its triggers
 * declare, with their parameter names and `indexed` markers (`events`: each `chain-log` trigger's `event`, and
 * `Locked` and `Burned` for a `crosschain` trigger), the contracts they listen to (`emitters`: each `chain-log`
 * trigger's address on its chain; for a `crosschain` trigger each chain's `contracts.crosschain[<package>]` lockbox
 * and wrapped tokens) and the oracle of each chain it has an `oracle` trigger on (`oracles`), all from this member's
 * own chain configuration. A chain its configuration does not name contributes nothing.
 *
 * @param manifest - the package's manifest (its name and triggers).
 * @param chains - this member's chain configurations.
 */
export function eventCheckOptionsOf(
  manifest: Pick<Manifest, "name" | "triggers">,
  chains: readonly Pick<ChainConfig, "name" | "chainId" | "contracts">[],
): Required<Pick<EventCheckOptions, "events" | "emitters" | "oracles">> {
  const events: string[] = [];
  const emitters: { chainId: number; address: string }[] = [];
  const oracles = new Map<number, string>();
  const named = (name: string) => chains.find((c) => c.name === name);
  for (const trigger of manifest.triggers) {
    if (trigger.type === "chain-log") {
      events.push(trigger.event);
      const chain = named(trigger.chain);
      if (chain) emitters.push({ chainId: chain.chainId, address: trigger.address });
    } else if (trigger.type === "crosschain") {
      events.push(LOCKED_EVENT.format("full"), BURNED_EVENT.format("full"));
      for (const chain of chains) {
        const contracts = chain.contracts.crosschain?.[manifest.name];
        for (const address of [
          ...(contracts?.lockbox ? [contracts.lockbox] : []),
          ...(contracts?.wrappedTokens ?? []),
        ]) {
          emitters.push({ chainId: chain.chainId, address });
        }
      }
    } else if (trigger.type === "oracle") {
      const chain = named(trigger.chain);
      if (chain?.contracts.oracle) oracles.set(chain.chainId, chain.contracts.oracle);
    }
  }
  return { events, emitters, oracles };
}

/** What the trigger makes of `log` with `fragment` (`undefined` when the log is not such an event). */
function decoded(fragment: EventFragment, log: RpcLog, timestamp: number): ChainLogInput | undefined {
  try {
    return decodeLog(fragment, { ...log, address: getAddress(log.address) }, timestamp);
  } catch {
    return undefined;
  }
}

/** Compares the event with what the trigger makes; the first difference is `not-on-chain`. */
function compareEvent(expected: unknown, event: unknown, chainId: number): void {
  const differs = firstDifference(expected, event, "event");
  if (differs !== undefined) throw notOnChain(`${differs} is not what this runtime makes of chain ${chainId}`);
}

async function checkChainLog(
  event: Record<string, unknown>,
  source: Record<string, unknown>,
  input: unknown,
  reader: ChainReader,
  declared: readonly string[],
  emitters: EventCheckOptions["emitters"],
): Promise<void> {
  sourceOf(source, ["type", "chainId", "address", "blockNumber", "blockHash", "txHash", "logIndex"]);
  const p = positionOf(source);
  if (typeof source.address !== "string" || !isAddress(source.address)) {
    throw notOnChain("event.source.address is not an address");
  }
  if (
    emitters !== undefined &&
    !emitters.some((e) => e.chainId === p.chainId && sameHex(e.address, source.address as string))
  ) {
    throw unverifiable(
      `event.source.address is no contract whose logs the package's triggers listen to on chain ${p.chainId} in this member's configuration`,
    );
  }
  const { receipt, log, timestamp } = await locate(reader, p);
  if (!sameHex(log.address, source.address)) {
    throw notOnChain(
      `the log at index ${p.logIndex} of transaction ${p.txHash} on chain ${p.chainId} was not emitted by event.source.address`,
    );
  }
  const where = `the log at index ${p.logIndex} of transaction ${p.txHash} on chain ${p.chainId}`;
  if (isObject(input) && Array.isArray(input.logs)) {
    // One event for the matching logs of one transaction (`group: "transaction"`): every matching log of the
    // receipt, decodable as the first one's event, in log order; the source is the first log's.
    const first: unknown = input.logs[0];
    if (!isObject(first)) throw notOnChain("input.logs[0] is not a decoded log");
    const candidates = fragmentsFor(first.signature, declared, "input.logs[0]");
    let difference: string | undefined;
    for (const fragment of candidates.fragments) {
      const logs = receipt.logs
        .filter((l) => sameHex(l.address, source.address as string) && sameHex(l.topics?.[0], fragment.topicHash))
        .map((l) => decoded(fragment, l, timestamp))
        .filter((l): l is ChainLogInput => l !== undefined);
      const expected = { logs, blockNumber: p.blockNumber, txHash: receipt.transactionHash, timestamp };
      difference = firstDifference(expected, input, "input");
      if (difference === undefined) {
        if (logs[0]?.logIndex !== p.logIndex) {
          throw notOnChain(`event.source.logIndex is not the first log of the group in ${where}`);
        }
        break;
      }
    }
    if (difference !== undefined) {
      refuseDecoded(difference, candidates.declared, first.args, `${where} and the logs it groups`);
    }
  } else {
    if (!isObject(input)) throw notOnChain("input is not a decoded log");
    const candidates = fragmentsFor(input.signature, declared, "input");
    let difference: string | undefined;
    let decodable = false;
    for (const fragment of candidates.fragments) {
      const expected = decoded(fragment, log, timestamp);
      if (expected === undefined) continue;
      decodable = true;
      difference = firstDifference(expected, input, "input");
      if (difference === undefined) break;
    }
    if (!decodable) throw notOnChain(`${where} is not an event of input.signature`);
    if (difference !== undefined) refuseDecoded(difference, candidates.declared, input.args, where);
  }
  const eventId = chainLogEventId({
    chainId: p.chainId,
    blockHash: log.blockHash,
    txHash: receipt.transactionHash,
    logIndex: p.logIndex,
  });
  compareEvent(
    {
      eventId,
      requestId: eventId,
      source: {
        type: "chain-log",
        chainId: p.chainId,
        address: getAddress(log.address),
        blockNumber: p.blockNumber,
        blockHash: log.blockHash,
        txHash: receipt.transactionHash,
        logIndex: p.logIndex,
      },
      time: timestamp,
    },
    event,
    p.chainId,
  );
}

async function checkOracle(
  event: Record<string, unknown>,
  source: Record<string, unknown>,
  input: unknown,
  reader: ChainReader,
  cryptletId: string | undefined,
  oracles: EventCheckOptions["oracles"],
): Promise<void> {
  sourceOf(source, [
    "type",
    "chain",
    "chainId",
    "oracle",
    "requestId",
    "consumer",
    "callbackGasLimit",
    "blockNumber",
    "blockHash",
    "txHash",
    "logIndex",
  ]);
  const p = positionOf(source);
  if (typeof source.oracle !== "string" || !isAddress(source.oracle)) {
    throw notOnChain("event.source.oracle is not an address");
  }
  if (oracles !== undefined) {
    const configured = oracles.get(p.chainId);
    if (configured === undefined || !sameHex(configured, source.oracle)) {
      throw unverifiable(
        `event.source.oracle is not the CryptletOracle of chain ${p.chainId} that the package's oracle trigger uses in this member's configuration`,
      );
    }
  }
  const { receipt, log, timestamp } = await locate(reader, p);
  const where = `the log at index ${p.logIndex} of transaction ${p.txHash} on chain ${p.chainId}`;
  if (!sameHex(log.address, source.oracle)) throw notOnChain(`${where} was not emitted by event.source.oracle`);
  const request = sameHex(log.topics?.[0], ORACLE_REQUEST_TOPIC) ? parseOracleRequest(log) : undefined;
  if (request === undefined) throw notOnChain(`${where} is not a CryptletRequested log`);
  if (computeResultId(request.cryptletId, request.requestId).toLowerCase() !== request.resultId.toLowerCase()) {
    throw notOnChain(
      `${where} names a resultId that is not keccak256(abi.encode(cryptletId, requestId)): no trigger accepts it`,
    );
  }
  if (cryptletId !== undefined && !sameHex(request.cryptletId, cryptletId)) {
    throw notOnChain(`${where} requests another Cryptlet than the result's cryptletId`);
  }
  const differs = firstDifference(oracleInputOf(request.params), input, "input");
  if (differs !== undefined) throw notOnChain(`${differs} differs from the params of ${where}`);
  compareEvent(
    {
      eventId: chainLogEventId({
        chainId: p.chainId,
        blockHash: log.blockHash,
        txHash: receipt.transactionHash,
        logIndex: p.logIndex,
      }),
      requestId: request.requestId,
      source: {
        type: "oracle",
        // The chain's name is the leader's configuration's: only its type is checked.
        chain: typeof source.chain === "string" ? source.chain : null,
        chainId: p.chainId,
        oracle: getAddress(log.address),
        requestId: request.requestId,
        consumer: request.consumer,
        callbackGasLimit: request.callbackGasLimit,
        blockNumber: p.blockNumber,
        blockHash: log.blockHash,
        txHash: receipt.transactionHash,
        logIndex: p.logIndex,
      },
      time: timestamp,
    },
    event,
    p.chainId,
  );
}

/**
 * Checks that the evidence's event happened as the evidence says, on the chain it names (see the module comment for
 * the rules of each source).
 *
 * @param event - the evidence's normalised event `{eventId, requestId, source, time}` (any shape; checked here).
 * @param input - the evidence's input (any shape; checked here).
 * @param chains - EIP-155 chain id → a JSON-RPC client of that chain (`ChainRpc`, an ethers `JsonRpcProvider`,
 *   anything with `send(method, params)`); `undefined` or a missing chain makes a chain event unverifiable.
 * @param options - the deadline of each call (default 10000 ms), the package's declared event signatures and the
 *   result's `cryptletId` (see {@link EventCheckOptions}).
 * @returns `{ok: true, checked}`, or `{ok: false, code, reason}` with `ERR_COSIGN_EVENT_NOT_ON_CHAIN` (the event is
 *   false) or `ERR_COSIGN_EVENT_UNVERIFIABLE` (it cannot be checked now). Never throws.
 *
 * @example
 * ```ts
 * import { checkEventOnChain } from "./runtime/consortium/eventCheck.ts";
 * const check = await checkEventOnChain(evidence.event, evidence.input, new Map([[31337, chainRpc]]));
 * if (!check.ok) console.log(check.code, check.reason);
 * ```
 */
export async function checkEventOnChain(
  event: unknown,
  input: unknown,
  chains: ChainClients | undefined,
  options: EventCheckOptions = {},
): Promise<EventCheck> {
  try {
    if (!isObject(event) || !isObject(event.source) || typeof event.source.type !== "string") {
      throw notOnChain("the event is not a normalised event {eventId, requestId, source, time} with a source type");
    }
    const source = event.source;
    const reader = new ChainReader(chains, options.timeoutMs ?? DEFAULT_CHAIN_CHECK_TIMEOUT_MS);
    switch (source.type) {
      case "http":
      case "schedule":
        // Nothing on a chain to check: the members trust the leader's account of the request or the slot.
        return { ok: true, checked: "none" };
      case "chain-log":
        await checkChainLog(event, source, input, reader, options.events ?? [], options.emitters);
        return { ok: true, checked: "chain-log" };
      case "oracle":
        await checkOracle(event, source, input, reader, options.cryptletId, options.oracles);
        return { ok: true, checked: "oracle" };
      case "chain-state": {
        if (!isObject(input) || input.kind !== "refund") {
          throw unverifiable("a chain-state event other than a refund observation cannot be checked by this member");
        }
        const lockId = isObject(input.lock) ? input.lock.lockId : undefined;
        if (typeof lockId !== "string" || !BYTES32.test(lockId)) throw notOnChain("input.lock.lockId is not bytes32");
        const eventId = refundEventIdOf(lockId);
        compareEvent(
          { eventId, requestId: eventId, source, time: source.timestamp ?? null },
          event,
          typeof source.chainId === "number" ? source.chainId : Number.NaN,
        );
        const check = await checkRefundObservation(input, source, chains, options);
        if (!check.ok) throw new ChainCheckRefusal(check.verdict, check.reason);
        return { ok: true, checked: "refund" };
      }
      default:
        throw unverifiable(
          `an event of source type ${JSON.stringify(source.type).slice(0, 40)} cannot be checked by this member`,
        );
    }
  } catch (error) {
    if (error instanceof ChainCheckRefusal) {
      const code = error.verdict === "not-on-chain" ? ERR_COSIGN_EVENT_NOT_ON_CHAIN : ERR_COSIGN_EVENT_UNVERIFIABLE;
      return { ok: false, code: code.code, reason: error.message };
    }
    return {
      ok: false,
      code: ERR_COSIGN_EVENT_UNVERIFIABLE.code,
      reason: `the event check failed: ${describeChainError(error)}`,
    };
  }
}
