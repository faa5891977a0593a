/**
 * Node-side loader of the shipped Uniswap V3 logs (not part of the Cryptlet bundle): reads the BigQuery-exported
 * CSV files in `../data/`, keeps the `Swap` logs and decodes them, and groups swaps per UTC minute into the
 * Cryptlet's input. Also decodes a `Swap` log read from a chain (a replayed one), for the dev stack.
 *
 * The two export files write `topics` differently (a JSON array with `""`-escaped quotes in one, a Python list with
 * single quotes in the other); both are read.
 *
 * @example
 * ```ts
 * import { loadSwaps, groupByMinute, POOL_005 } from "./cryptlets/uniswap-price/replay/swaps.ts";
 * const swaps = await loadSwaps(POOL_005);
 * swaps.length; // 6046
 * const minutes = groupByMinute(swaps); // 1408 minutes with swaps
 * ```
 * @module
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";

import { AbiCoder, getAddress, id, type Log } from "ethers";

import type { SwapInput } from "../src/price.ts";

/** The Uniswap V3 `Swap` event signature (as in `IUniswapV3PoolEvents`). */
export const SWAP_EVENT =
  "Swap(address indexed sender, address indexed recipient, int256 amount0, int256 amount1, uint160 sqrtPriceX96, uint128 liquidity, int24 tick)";
/** topics[0] of a `Swap` log: keccak256 of the canonical signature. */
export const SWAP_TOPIC = id("Swap(address,address,int256,int256,uint160,uint128,int24)");

/** A data file of one pool. */
export interface PoolLogFile {
  /** The pool contract on Ethereum mainnet (lower case). */
  address: string;
  /** Fee tier in hundredths of a basis point (500 = 0.05 %). */
  fee: number;
  /** File name under `data/`. */
  file: string;
}

/** USDC/WETH 0.05 % pool, 2024-01-05: 6,234 logs, 6,046 swaps (topics as JSON arrays). */
export const POOL_005: PoolLogFile = {
  address: "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640",
  fee: 500,
  file: "ethereum-0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640-2024-01-05.raw.csv",
};
/** USDC/WETH 0.30 % pool, 2024-01-05: 304 logs (topics with single quotes). */
export const POOL_030: PoolLogFile = {
  address: "0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8",
  fee: 3000,
  file: "ethereum-0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8-2024-01-05.raw.csv",
};

/** A decoded `Swap` log with its provenance: every event argument plus block, transaction and time. */
export interface DecodedSwap extends Required<SwapInput> {
  /** Indexed `sender` (EIP-55). */
  sender: string;
  /** Indexed `recipient` (EIP-55). */
  recipient: string;
  /** uint128, decimal string. */
  liquidity: string;
  /** int24. */
  tick: number;
  /** Mainnet (or replay) transaction hash. */
  transactionHash: string;
}

/** A malformed line of a log file or a log that is not a `Swap`. */
export class SwapLogFormatError extends Error {
  readonly code = "SWAP_LOG_FORMAT";
  /** 1-based line number in the file, when from a file. */
  readonly line: number | undefined;
  constructor(message: string, line?: number) {
    super(line === undefined ? message : `line ${line}: ${message}`);
    this.name = "SwapLogFormatError";
    this.line = line;
  }
}

const abi = AbiCoder.defaultAbiCoder();
const DATA_TYPES = ["int256", "int256", "uint160", "uint128", "int24"] as const;
// block_number,block_timestamp,transaction_hash,transaction_index,log_index,"topics",data
const LINE = /^(\d+),(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(0x[0-9a-f]{64}),(\d+),(\d+),"(\[.*\])",(0x[0-9a-f]*)$/;
const TOPIC = /0x[0-9a-f]{64}/g;

function topicAddress(topic: string): string {
  return getAddress(`0x${topic.slice(26)}`);
}

/** Decodes a `Swap` log's topics and data into its arguments. @throws {@link SwapLogFormatError}. */
export function decodeSwapArgs(
  topics: readonly string[],
  data: string,
): Pick<DecodedSwap, "sender" | "recipient" | "amount0" | "amount1" | "sqrtPriceX96" | "liquidity" | "tick"> {
  if (topics.length !== 3 || topics[0]?.toLowerCase() !== SWAP_TOPIC) {
    throw new SwapLogFormatError("not a Swap log (topics[0] or topic count)");
  }
  let values;
  try {
    values = abi.decode(DATA_TYPES, data);
  } catch (cause) {
    throw new SwapLogFormatError(`Swap data does not decode: ${(cause as Error).message.slice(0, 80)}`);
  }
  return {
    sender: topicAddress(topics[1] as string),
    recipient: topicAddress(topics[2] as string),
    amount0: (values[0] as bigint).toString(),
    amount1: (values[1] as bigint).toString(),
    sqrtPriceX96: (values[2] as bigint).toString(),
    liquidity: (values[3] as bigint).toString(),
    tick: Number(values[4] as bigint),
  };
}

/**
 * Parses one export file's text: keeps the `Swap` logs (other events are skipped), in file order.
 * @throws {@link SwapLogFormatError} for a line that is not in the export format.
 */
export function parseSwapLogCsv(text: string): DecodedSwap[] {
  const lines = text.split(/\r?\n/);
  if (
    !(lines[0] ?? "").startsWith(
      "block_number,block_timestamp,transaction_hash,transaction_index,log_index,topics,data",
    )
  ) {
    throw new SwapLogFormatError("unexpected header", 1);
  }
  const swaps: DecodedSwap[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line === "") continue;
    const m = LINE.exec(line);
    if (m === null) throw new SwapLogFormatError("not in the export format", i + 1);
    const topics = (m[6] as string).match(TOPIC) ?? [];
    if (topics[0] !== SWAP_TOPIC) continue;
    try {
      swaps.push({
        blockNumber: Number(m[1]),
        timestamp: Date.parse(`${(m[2] as string).replace(" ", "T")}Z`) / 1000,
        transactionHash: m[3] as string,
        logIndex: Number(m[5]),
        ...decodeSwapArgs(topics, m[7] as string),
      });
    } catch (e) {
      throw new SwapLogFormatError((e as Error).message, i + 1);
    }
  }
  return swaps;
}

/** Reads and decodes a pool's shipped log file (`data/<file>`). */
export async function loadSwaps(pool: PoolLogFile = POOL_005): Promise<DecodedSwap[]> {
  return parseSwapLogCsv(await readFile(join(import.meta.dirname, "..", "data", pool.file), "utf8"));
}

/**
 * Decodes a `Swap` log read from a chain (e.g. the replayer's) with its block's timestamp.
 * @param log - an ethers `Log` (or the same fields).
 * @param timestamp - the log's block time, Unix seconds.
 */
export function swapFromLog(
  log: Pick<Log, "topics" | "data" | "blockNumber" | "index" | "transactionHash">,
  timestamp: number,
): DecodedSwap {
  return {
    blockNumber: log.blockNumber,
    logIndex: log.index,
    timestamp,
    transactionHash: log.transactionHash,
    ...decodeSwapArgs(log.topics, log.data),
  };
}

/** One minute's swaps, ready as the Cryptlet input. */
export interface MinuteOfSwaps {
  /** Start of the UTC minute, Unix seconds. */
  minute: number;
  /** `{swaps}` in (blockNumber, logIndex) order. */
  input: { swaps: SwapInput[] };
}

/** Groups swaps per UTC minute (ascending), each minute's swaps in `(blockNumber, logIndex)` order. */
export function groupByMinute(swaps: readonly SwapInput[]): MinuteOfSwaps[] {
  const byMinute = new Map<number, SwapInput[]>();
  for (const s of swaps) {
    const minute = s.timestamp - (s.timestamp % 60);
    const list = byMinute.get(minute) ?? [];
    list.push({
      blockNumber: s.blockNumber,
      logIndex: s.logIndex,
      timestamp: s.timestamp,
      sqrtPriceX96: s.sqrtPriceX96,
      ...(s.amount0 === undefined ? {} : { amount0: s.amount0 }),
      ...(s.amount1 === undefined ? {} : { amount1: s.amount1 }),
    });
    byMinute.set(minute, list);
  }
  return [...byMinute.entries()]
    .sort(([a], [b]) => a - b)
    .map(([minute, list]) => ({
      minute,
      input: { swaps: list.sort((a, b) => a.blockNumber - b.blockNumber || a.logIndex - b.logIndex) },
    }));
}

/** One row of the reference per-minute price file (`data/*.rel-price.csv`). */
export interface ReferencePrice {
  /** Start of the UTC minute, Unix seconds. */
  minute: number;
  /** USD per ETH as written in the file (decimal string). */
  eth: string;
  sqrtPriceX96: bigint;
}

/** Reads the reference prices of the 0.05 % pool (1,440 minutes). */
export async function loadReferencePrices(): Promise<ReferencePrice[]> {
  const text = await readFile(
    join(
      import.meta.dirname,
      "..",
      "data",
      "ethereum-0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640-2024-01-05.rel-price.csv",
    ),
    "utf8",
  );
  const [header = "", ...lines] = text.trim().split("\n");
  if (header !== "block_timestamp,usdc,eth,total_liquidity,sqrtPriceX96") {
    throw new SwapLogFormatError("unexpected reference header", 1);
  }
  return lines.map((line) => {
    const [at = "", , eth = "", , sqrt = ""] = line.split(",");
    return { minute: Date.parse(`${at.replace(" ", "T")}Z`) / 1000, eth, sqrtPriceX96: BigInt(sqrt) };
  });
}
