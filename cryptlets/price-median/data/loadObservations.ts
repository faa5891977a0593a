/**
 * Node-side loader of the shipped price data (not part of the Cryptlet bundle): turns the two per-minute CSV files
 * into one price-median input per minute, two sources each. Used by the tests and benchmarks, here and in the
 * sandbox suite.
 *
 * @example
 * ```ts
 * import { loadMinuteInputs } from "./cryptlets/price-median/data/loadObservations.ts";
 * const minutes = await loadMinuteInputs();
 * minutes.length; // 1440
 * minutes[0]?.input.observations.length; // 2
 * ```
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { PriceMedianInput } from "../src/median.ts";

/** One pool's per-minute price file: its address and the name of its price column. */
export interface PriceSourceFile {
  /** The Uniswap V3 pool address, used as the observation `source`. */
  source: string;
  file: string;
  /** `eth` in one file, `weth` in the other (the source files differ). */
  priceColumn: string;
}

/** The two USDC/WETH pools on Ethereum mainnet, 2024-01-05 (fee tiers 0.05% and 0.30%). */
export const PRICE_SOURCES: readonly PriceSourceFile[] = [
  {
    source: "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640",
    file: "ethereum-0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640-2024-01-05.rel-price.csv",
    priceColumn: "eth",
  },
  {
    source: "0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8",
    file: "ethereum-0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8-2024-01-05.rel-price.csv",
    priceColumn: "weth",
  },
];

/** One row of a price file. */
export interface PriceRow {
  /** Unix seconds of the minute (the CSV's `block_timestamp` is UTC). */
  observedAt: number;
  /** USD per ETH, the decimal string exactly as in the file. */
  price: string;
  /** The pool's Q64.96 square-root price at that minute. */
  sqrtPriceX96: bigint;
}

/** Reads one price file. */
export async function readPriceRows(source: PriceSourceFile): Promise<PriceRow[]> {
  const text = await readFile(join(import.meta.dirname, source.file), "utf8");
  const [header = "", ...lines] = text.trim().split("\n");
  const columns = header.split(",");
  const at = columns.indexOf("block_timestamp");
  const price = columns.indexOf(source.priceColumn);
  const sqrt = columns.indexOf("sqrtPriceX96");
  if (at < 0 || price < 0 || sqrt < 0) throw new Error(`unexpected columns in ${source.file}: ${header}`);
  return lines.map((line) => {
    const cells = line.split(",");
    return {
      observedAt: Date.parse(`${(cells[at] ?? "").replace(" ", "T")}Z`) / 1000,
      price: cells[price] ?? "",
      sqrtPriceX96: BigInt(cells[sqrt] ?? "0"),
    };
  });
}

/** One input per minute of the day (1440), each with one observation per pool, `decimals` 8. */
export async function loadMinuteInputs(): Promise<{ minute: number; input: PriceMedianInput }[]> {
  const tables = await Promise.all(PRICE_SOURCES.map(readPriceRows));
  const byMinute = new Map<number, PriceMedianInput>();
  tables.forEach((rows, i) => {
    const source = (PRICE_SOURCES[i] as PriceSourceFile).source;
    for (const row of rows) {
      const input = byMinute.get(row.observedAt) ?? { observations: [], decimals: 8 };
      input.observations.push({ source, price: row.price, observedAt: row.observedAt });
      byMinute.set(row.observedAt, input);
    }
  });
  return [...byMinute.entries()].sort(([a], [b]) => a - b).map(([minute, input]) => ({ minute, input }));
}
