/**
 * `@cryptlet/price-median`: the median of several price observations with outlier rejection, answered as
 * `tuple(int256 answer, uint8 decimals, uint64 observedAt)` for a Chainlink-compatible price feed.
 *
 * Input: {@link PriceMedianInput} (e.g. `{observations: [{source, price: "2269.76", observedAt}], decimals: 8}`).
 * The computation lives in `./median.ts` so it can be tested directly in Node and run the same in the sandbox.
 *
 * @example
 * ```ts
 * // as the sandbox calls it (ctx from the host)
 * const output = await cryptlet.default.run(
 *   { observations: [{ source: "a", price: "2269.76", observedAt: 1704412800 }], decimals: 8 },
 *   ctx,
 * );
 * // { answer: "226976000000", decimals: 8, observedAt: 1704412800 }
 * ```
 */
import { defineCryptlet } from "cryptlet-runtime/sdk";
import { aggregatePrices } from "./median.ts";
import type { PriceMedianInput, PriceMedianOutput } from "./median.ts";

export default defineCryptlet<PriceMedianInput, PriceMedianOutput>({
  run(input, ctx) {
    const result = aggregatePrices(input, ctx.now);
    ctx.log("median", { accepted: result.accepted.length, rejected: result.rejected });
    return result.output;
  },
});
