/**
 * Turns a raw log (`eth_getLogs`) into a Cryptlet's JSON input: the event's arguments by name, with every
 * integer as a decimal string (JSON has no 256-bit integers), plus where the log came from.
 *
 * @module
 */
import type { EventFragment } from "ethers";
import { Indexed, Interface, Result, type ParamType } from "ethers";

/** A log as `eth_getLogs` returns it (quantities as 0x hex). */
export interface RpcLog {
  address: string;
  topics: string[];
  data: string;
  blockNumber: string;
  blockHash: string;
  transactionHash: string;
  logIndex: string;
  removed?: boolean;
}

/** The input a chain-log Cryptlet receives (`input` of the `CryptletEvent`). */
export interface ChainLogInput {
  /** Event name, e.g. `Swap`. */
  event: string;
  /** Canonical signature, e.g. `Swap(address,address,int256,int256,uint160,uint128,int24)`. */
  signature: string;
  /**
   * Arguments by name (by position `"0"`, `"1"`, … where the signature names none). Integers are decimal
   * strings, bytes 0x hex, tuples objects (or arrays when unnamed), and an indexed dynamic value (string, bytes,
   * array) is its topic: the keccak256 hash of its encoding.
   */
  args: Record<string, unknown>;
  /** Emitting contract, EIP-55 checksummed. */
  address: string;
  topics: string[];
  data: string;
  blockNumber: number;
  blockHash: string;
  txHash: string;
  logIndex: number;
  /** The block's timestamp, Unix seconds. */
  timestamp: number;
}

const interfaces = new Map<string, Interface>();

/**
 * The interface that decodes logs of `fragment` with `indexedCount` indexed parameters: the fragment itself when
 * it marks any parameter `indexed`, else the same event with its first `indexedCount` parameters indexed.
 */
function interfaceFor(fragment: EventFragment, indexedCount: number): Interface {
  const marked = fragment.inputs.some((p) => p.indexed === true);
  const key = `${fragment.format("full")}#${marked ? "marked" : indexedCount}`;
  let iface = interfaces.get(key);
  if (!iface) {
    const params = fragment.inputs.map((p, i) => {
      const indexed = marked ? p.indexed === true : i < indexedCount;
      return `${p.format("sighash")}${indexed ? " indexed" : ""}${p.name ? ` ${p.name}` : ""}`;
    });
    iface = new Interface([`event ${fragment.name}(${params.join(", ")})`]);
    interfaces.set(key, iface);
  }
  return iface;
}

/** JSON form of one decoded value. */
function jsonOf(value: unknown, type: ParamType): unknown {
  if (value instanceof Indexed) return value.hash;
  if (typeof value === "bigint") return value.toString(10);
  if (value instanceof Result) {
    if (type.isArray()) return value.map((v: unknown) => jsonOf(v, type.arrayChildren));
    if (type.isTuple()) {
      const components = type.components;
      if (components.every((c) => c.name)) {
        return Object.fromEntries(components.map((c, i) => [c.name, jsonOf(value[i], c)]));
      }
      return components.map((c, i) => jsonOf(value[i], c));
    }
  }
  return value;
}

/**
 * Decodes a log with an event signature.
 * @param timestamp - the block's timestamp, Unix seconds.
 * @throws the ethers decoding error when the log does not match the event (callers wrap it in
 *   `ERR_TRIGGER_LOG_UNDECODABLE`).
 *
 * @example
 * ```ts
 * import { EventFragment } from "ethers";
 * import { decodeLog } from "./runtime/triggers/decodeLog.ts";
 * const input = decodeLog(EventFragment.from("event Transfer(address indexed from, address indexed to, uint256 value)"), log, 1704412800);
 * // input.args.value === "1000000"
 * ```
 */
export function decodeLog(fragment: EventFragment, log: RpcLog, timestamp: number): ChainLogInput {
  const iface = interfaceFor(fragment, Math.max(0, log.topics.length - 1));
  const parsed = iface.parseLog({ topics: log.topics, data: log.data });
  if (!parsed) throw new Error(`log topic ${log.topics[0] ?? "(none)"} is not ${fragment.format("sighash")}`);
  const args: Record<string, unknown> = {};
  parsed.fragment.inputs.forEach((param, i) => {
    args[param.name || String(i)] = jsonOf(parsed.args[i], param);
  });
  return {
    event: fragment.name,
    signature: fragment.format("sighash"),
    args,
    address: log.address,
    topics: log.topics,
    data: log.data,
    blockNumber: Number(BigInt(log.blockNumber)),
    blockHash: log.blockHash,
    txHash: log.transactionHash,
    logIndex: Number(BigInt(log.logIndex)),
    timestamp,
  };
}
