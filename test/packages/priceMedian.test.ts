import { runInNewContext } from "node:vm";
import { AbiCoder } from "ethers";
import { buildPackage } from "../../runtime/packages/build.ts";
import { PRICE_SOURCES, loadMinuteInputs, readPriceRows } from "../../cryptlets/price-median/data/loadObservations.ts";
import {
  aggregatePrices,
  formatScaledDecimal,
  medianOf,
  parseScaledDecimal,
} from "../../cryptlets/price-median/src/median.ts";
import type { PriceMedianInput, PriceObservation } from "../../cryptlets/price-median/src/median.ts";
import { PRICE_MEDIAN_DIR } from "./helpers.ts";

function errorCode(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as { code: string }).code;
  }
  throw new Error("expected a PriceMedianError");
}

describe("exact decimal parsing", () => {
  it.each([
    ["2269.7605037562785", 8, 226976050376n],
    ["2272.7319494521353", 8, 227273194945n],
    ["1", 0, 1n],
    ["1.5", 0, 2n],
    ["2.4999999", 0, 2n],
    ["0.000000005", 8, 1n],
    ["0.000000004999", 8, 0n],
    ["123", 2, 12300n],
    ["0.1", 18, 100000000000000000n],
    ["99999999999999999999.99999999", 8, 9999999999999999999999999999n],
  ])("%s at %d decimals is %s", (text, decimals, expected) => {
    expect(parseScaledDecimal(text, decimals)).toBe(expected);
  });

  it.each(["1e5", "-1", "01", ".5", "1.", " 1", "", "1,5", "0x10", "1".repeat(101)])("refuses %j", (text) => {
    expect(errorCode(() => parseScaledDecimal(text, 8))).toBe("INVALID_INPUT");
  });

  it("formats back", () => {
    expect(formatScaledDecimal(226976050376n, 8)).toBe("2269.76050376");
    expect(formatScaledDecimal(5n, 8)).toBe("0.00000005");
    expect(formatScaledDecimal(-5n, 2)).toBe("-0.05");
    expect(formatScaledDecimal(42n, 0)).toBe("42");
  });

  it("medianOf: odd count, even count rounded half up", () => {
    expect(medianOf([3n, 1n, 2n])).toBe(2n);
    expect(medianOf([1n, 2n])).toBe(2n);
    expect(medianOf([1n, 4n])).toBe(3n);
    expect(medianOf([-3n, -2n])).toBe(-2n);
    expect(medianOf([10n, 1n, 7n, 3n])).toBe(5n);
  });
});

describe("price-median on the real Uniswap V3 data (2024-01-05, two pools, 1440 minutes)", () => {
  let minutes: { minute: number; input: PriceMedianInput }[];
  beforeAll(async () => {
    minutes = await loadMinuteInputs();
  });

  it("the decimal prices agree with the pools' sqrtPriceX96 (exact BigInt derivation)", async () => {
    for (const source of PRICE_SOURCES) {
      const rows = await readPriceRows(source);
      expect(rows).toHaveLength(1440);
      for (const row of rows) {
        // USD per ETH = 2^192 * 10^(18 - 6) / sqrtPriceX96^2, at 8 decimals, rounded half up.
        const numerator = (1n << 192n) * 10n ** 12n * 10n ** 8n;
        const denominator = row.sqrtPriceX96 * row.sqrtPriceX96;
        const exact = (2n * numerator + denominator) / (2n * denominator);
        const parsed = parseScaledDecimal(row.price, 8);
        const diff = parsed > exact ? parsed - exact : exact - parsed;
        expect(diff).toBeLessThanOrEqual(1n);
      }
    }
  });

  it("answers the median of both pools for every minute, none rejected", () => {
    expect(minutes).toHaveLength(1440);
    let maxDeviationBps = 0;
    for (const { minute, input } of minutes) {
      const result = aggregatePrices(input, minute);
      expect(result.rejected).toEqual([]);
      const [a, b] = input.observations.map((o) => parseScaledDecimal(o.price, 8)) as [bigint, bigint];
      const answer = BigInt(result.output.answer);
      expect(answer).toBeGreaterThanOrEqual(a < b ? a : b);
      expect(answer).toBeLessThanOrEqual(a > b ? a : b);
      // Independent float check: within one unit of the last decimal.
      const [fa, fb] = input.observations.map((o) => Number(o.price)) as [number, number];
      expect(Math.abs(Number(answer) - Math.round(((fa + fb) / 2) * 1e8))).toBeLessThanOrEqual(1);
      expect(result.output).toMatchObject({ decimals: 8, observedAt: minute });
      maxDeviationBps = Math.max(maxDeviationBps, (Math.abs(fa - fb) / ((fa + fb) / 2)) * 10_000);
    }
    // The two pools never differ by more than ~31 bps that day: the 100 bps default keeps both.
    expect(maxDeviationBps).toBeGreaterThan(20);
    expect(maxDeviationBps).toBeLessThan(50);
  });

  it("rejects an injected outlier in every minute and keeps the two-pool answer", () => {
    const injections: [string, (p: bigint) => bigint][] = [
      ["fat-finger-high", (p) => (p * 3n) / 2n],
      ["fat-finger-low", (p) => p / 2n],
      ["off-by-plus-3pct", (p) => (p * 103n) / 100n],
      ["off-by-minus-1.5pct", (p) => (p * 985n) / 1000n],
    ];
    minutes.forEach(({ minute, input }, i) => {
      const clean = aggregatePrices(input, minute).output;
      const base = parseScaledDecimal((input.observations[0] as PriceObservation).price, 8);
      const [source, distort] = injections[i % injections.length] as [string, (p: bigint) => bigint];
      const injected = [
        ...input.observations,
        { source, price: formatScaledDecimal(distort(base), 8), observedAt: minute + 30 },
      ];
      const result = aggregatePrices({ ...input, observations: injected }, minute + 60);
      expect(result.rejected).toEqual([{ source, reason: "deviation", price: expect.any(String) }]);
      expect(result.output).toEqual(clean);
    });
  });

  it("refuses to answer when outliers are as many as the pools (no majority)", () => {
    const { minute, input } = minutes[0] as { minute: number; input: PriceMedianInput };
    const base = parseScaledDecimal((input.observations[0] as PriceObservation).price, 8);
    const observations = [
      ...input.observations,
      { source: "high", price: formatScaledDecimal((base * 3n) / 2n, 8), observedAt: minute },
      { source: "low", price: formatScaledDecimal(base / 2n, 8), observedAt: minute },
    ];
    expect(errorCode(() => aggregatePrices({ ...input, observations }, minute))).toBe("NO_QUORUM");
  });

  it("keeps a third source within the threshold: the answer becomes the middle price", () => {
    const { minute, input } = minutes[600] as { minute: number; input: PriceMedianInput };
    const prices = input.observations.map((o) => parseScaledDecimal(o.price, 8));
    const mid = (prices[0] as bigint) + (prices[1] as bigint);
    const third = formatScaledDecimal(mid / 2n + 1000n, 8);
    const result = aggregatePrices(
      { ...input, observations: [...input.observations, { source: "cex", price: third, observedAt: minute + 5 }] },
      minute,
    );
    expect(result.accepted).toHaveLength(3);
    expect(result.output.answer).toBe(parseScaledDecimal(third, 8).toString());
    expect(result.output.observedAt).toBe(minute + 5);
  });

  it("the output encodes with the manifest's ABI type", () => {
    const { minute, input } = minutes[0] as { minute: number; input: PriceMedianInput };
    const output = aggregatePrices(input, minute).output;
    const coder = AbiCoder.defaultAbiCoder();
    const type = "tuple(int256 answer, uint8 decimals, uint64 observedAt)";
    const encoded = coder.encode([type], [output]);
    const [decoded] = coder.decode([type], encoded) as unknown as [[bigint, bigint, bigint]];
    expect(decoded.map(String)).toEqual([output.answer, "8", String(minute)]);
  });

  it("the built bundle gives the same outputs as the source for every minute", async () => {
    const built = await buildPackage(PRICE_MEDIAN_DIR, { outDir: false });
    const context: Record<string, unknown> = {};
    runInNewContext(built.bundle, context);
    const run = (context.cryptlet as { default: { run(i: unknown, c: unknown): unknown } }).default.run;
    for (const { minute, input } of minutes) {
      const ctx = { now: minute, log: () => undefined, event: {}, requestId: "0x", resultId: "0x" };
      expect(run(JSON.parse(JSON.stringify(input)), ctx)).toEqual(aggregatePrices(input, minute).output);
    }
  });
});

describe("price-median: quorum, freshness and bad input", () => {
  const at = 1704412800;
  const obs = (source: string, price: string, observedAt = at): PriceObservation => ({ source, price, observedAt });

  it("refuses to answer when the two sources disagree beyond the threshold (no majority)", () => {
    expect(errorCode(() => aggregatePrices({ observations: [obs("a", "2000"), obs("b", "2100")] }))).toBe("NO_QUORUM");
    // A wider threshold accepts both.
    expect(
      aggregatePrices({ observations: [obs("a", "2000"), obs("b", "2100")], maxDeviationBps: 300 }).output.answer,
    ).toBe("205000000000");
  });

  it("refuses when outliers are the majority, or fewer than minSources agree", () => {
    const observations = [obs("a", "100"), obs("b", "200"), obs("c", "201"), obs("d", "300"), obs("e", "5")];
    expect(errorCode(() => aggregatePrices({ observations }))).toBe("NO_QUORUM");
    expect(errorCode(() => aggregatePrices({ observations: [obs("a", "100")], minSources: 2 }))).toBe("NO_QUORUM");
  });

  it("drops stale and future observations when maxAgeSeconds is given", () => {
    const result = aggregatePrices(
      {
        observations: [
          obs("old", "1", at - 301),
          obs("fresh", "2000", at - 10),
          obs("future", "2000", at + 1),
          obs("now", "2001"),
        ],
        maxAgeSeconds: 300,
      },
      at,
    );
    expect(result.rejected).toEqual([
      { source: "old", reason: "stale", price: "1" },
      { source: "future", reason: "future", price: "2000" },
    ]);
    expect(result.output).toEqual({ answer: "200050000000", decimals: 8, observedAt: at });
    expect(errorCode(() => aggregatePrices({ observations: [obs("a", "1")], maxAgeSeconds: 10 }))).toBe(
      "INVALID_INPUT",
    );
  });

  it.each([
    ["no observations", { observations: [] }],
    ["duplicate sources", { observations: [obs("a", "1"), obs("a", "2")] }],
    ["a zero price", { observations: [obs("a", "0")] }],
    ["a float price", { observations: [{ source: "a", price: 1.5, observedAt: at }] }],
    ["a fractional time", { observations: [obs("a", "1", 1.5)] }],
    ["an empty source", { observations: [obs("", "1")] }],
    ["decimals beyond 36", { observations: [obs("a", "1")], decimals: 37 }],
    ["a negative threshold", { observations: [obs("a", "1")], maxDeviationBps: -1 }],
    ["observations not an array", { observations: "x" }],
  ])("refuses %s", (_label, input) => {
    expect(errorCode(() => aggregatePrices(input as unknown as PriceMedianInput))).toBe("INVALID_INPUT");
  });
});
