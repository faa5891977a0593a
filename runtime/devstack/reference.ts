/**
 * Reference figures for `npm start`'s checks, computed straight from the shipped data files by code that shares
 * nothing with the Cryptlets, their data loaders or the runtime: its own CSV reading, its own median, its own
 * cold-chain rules written from the SLA's definition. A check that compares the chain with these can fail when
 * the Cryptlet, the pipeline or the chain writer is wrong; a check against the code under test could not.
 *
 * Units: prices in USD per ETH as float64; times in Unix seconds (UTC); temperatures in °C.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import path from "node:path";

const CRYPTLETS = path.resolve(import.meta.dirname, "..", "..", "cryptlets");

/** Reads a CSV file with a header row into records (the shipped files have no quoted commas). */
export function readCsv(file: string): Record<string, string>[] {
  const [header, ...lines] = readFileSync(file, "utf8").trim().split(/\r?\n/);
  const names = (header ?? "").split(",");
  return lines.map((line) => {
    const cells = line.split(",");
    return Object.fromEntries(names.map((name, i) => [name, cells[i] ?? ""]));
  });
}

/** `"2024-01-05 10:00:00"` (UTC) as Unix seconds. */
export function utcSeconds(text: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})$/.exec(text.trim());
  if (!m) throw new Error(`not a "YYYY-MM-DD hh:mm:ss" time: ${text}`);
  const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
  return Date.UTC(y!, mo! - 1, d!, h!, mi!, s!) / 1000;
}

/** Median of numbers; the mean of the middle two for an even count. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * The expected `@cryptlet/price-median` answer of each minute of 2024-01-05: the median of the two pools' prices
 * in cryptlets/price-median/data (USD per ETH), by minute (Unix seconds). Both pools are always within 1 % of
 * each other on that day, so the Cryptlet's outlier rule rejects nothing and the plain median is the answer.
 */
export function referencePriceMedians(): Map<number, number> {
  const dir = path.join(CRYPTLETS, "price-median", "data");
  const files = [
    ["ethereum-0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640-2024-01-05.rel-price.csv", "eth"],
    ["ethereum-0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8-2024-01-05.rel-price.csv", "weth"],
  ] as const;
  const byMinute = new Map<number, number[]>();
  for (const [file, column] of files) {
    for (const row of readCsv(path.join(dir, file))) {
      const minute = utcSeconds(row.block_timestamp!);
      byMinute.set(minute, [...(byMinute.get(minute) ?? []), Number(row[column])]);
    }
  }
  return new Map([...byMinute].map(([minute, prices]) => [minute, median(prices)]));
}

/**
 * The reference ETH/USD price of each minute of the USDC/WETH 0.05 % pool (cryptlets/uniswap-price/data, the
 * price the pool's own analytics computed), by minute (Unix seconds).
 */
export function referenceUniswapPrices(): Map<number, number> {
  const file = path.join(
    CRYPTLETS,
    "uniswap-price",
    "data",
    "ethereum-0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640-2024-01-05.rel-price.csv",
  );
  return new Map(readCsv(file).map((row) => [utcSeconds(row.block_timestamp!), Number(row.eth)]));
}

/** One cold-room reading of the shipped telemetry. */
export interface ReferenceReading {
  at: number;
  roomC: number;
  door: boolean;
}

/** The freezer telemetry in cryptlets/cold-chain-sla/data (`sGekoeldeRuimte` °C, `sDeurcontact` 0/1). */
export function referenceReadings(): ReferenceReading[] {
  return readCsv(path.join(CRYPTLETS, "cold-chain-sla", "data", "135_1570_sample.csv")).map((row) => ({
    at: utcSeconds(row.timestamp!),
    roomC: Number(row.sGekoeldeRuimte),
    door: Number(row.sDeurcontact) === 1,
  }));
}

/**
 * The cold-chain SLA report of one window, written from the rule's definition: readings before commissioning
 * (the first reading at or below the limit, over the whole file) are excluded; an excursion is a run of readings
 * above the limit (-18 °C), from its first reading to the first reading back at or below it (or the window's
 * last reading: ongoing); it breaches when it lasts more than 15 minutes or peaks above the hard limit (-12 °C);
 * a gap is more than 10 minutes between evaluated readings; the window complies when it has evaluated readings,
 * no gap and no breach. Temperatures are compared in hundredths of a degree, as the sensor reports them.
 */
export function referenceColdChainReport(
  deviceId: string,
  window: readonly ReferenceReading[],
  commissionedAt: number | undefined,
): Record<string, unknown> {
  const rule = { limitC: -18, hardLimitC: -12, graceMinutes: 15, maxGapMinutes: 10 };
  const iso = (at: number) => new Date(at * 1000).toISOString().replace(".000Z", "Z");
  const hundredths = (c: number) => Math.round(c * 100);
  const evaluated = window.filter((r) => commissionedAt === undefined || r.at >= commissionedAt);
  const excursions: Record<string, unknown>[] = [];
  const gaps: Record<string, unknown>[] = [];
  let start: number | undefined;
  let peak = -Infinity;
  let door = false;
  const endExcursion = (end: number, ongoing: boolean) => {
    const minutes = (end - start!) / 60;
    const reasons = [
      ...(minutes > rule.graceMinutes ? ["duration"] : []),
      ...(peak > hundredths(rule.hardLimitC) ? ["hard-limit"] : []),
    ];
    excursions.push({
      start: iso(start!),
      end: iso(end),
      durationMinutes: minutes,
      maxTempC: peak / 100,
      doorOpen: door,
      ongoing,
      breach: reasons.length > 0,
      reasons,
    });
    start = undefined;
    peak = -Infinity;
    door = false;
  };
  for (let i = 0; i < evaluated.length; i += 1) {
    const r = evaluated[i]!;
    if (i > 0 && r.at - evaluated[i - 1]!.at > rule.maxGapMinutes * 60) {
      gaps.push({ from: iso(evaluated[i - 1]!.at), to: iso(r.at), minutes: (r.at - evaluated[i - 1]!.at) / 60 });
    }
    if (hundredths(r.roomC) > hundredths(rule.limitC)) {
      start ??= r.at;
      peak = Math.max(peak, hundredths(r.roomC));
      door = door || r.door;
    } else if (start !== undefined) {
      endExcursion(r.at, false);
    }
  }
  if (start !== undefined) endExcursion(evaluated.at(-1)!.at, true);
  const temps = evaluated.map((r) => hundredths(r.roomC));
  const compliant = evaluated.length > 0 && gaps.length === 0 && excursions.every((e) => e.breach === false);
  return {
    deviceId,
    status: evaluated.length === 0 ? "not-in-service" : compliant ? "compliant" : "non-compliant",
    rule,
    window: {
      from: iso(window[0]!.at),
      to: iso(window.at(-1)!.at),
      readings: window.length,
      evaluated: evaluated.length,
      excluded: window.length - evaluated.length,
    },
    compliant,
    excursions,
    gaps,
    minTempC: temps.length > 0 ? Math.min(...temps) / 100 : null,
    maxTempC: temps.length > 0 ? Math.max(...temps) / 100 : null,
    doorOpenReadings: evaluated.filter((r) => r.door).length,
  };
}
