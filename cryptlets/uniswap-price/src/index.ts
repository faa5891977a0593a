/**
 * `@cryptlet/uniswap-price`: the ETH/USD price of one minute from the Uniswap V3 USDC/WETH 0.05 % pool's `Swap`
 * events, answered as `tuple(int256 answer, uint8 decimals, uint64 observedAt)` for `CryptletPriceFeed`.
 *
 * Input: {@link UniswapPriceInput}, the minute's swaps (the dev stack groups the chain-log events per minute).
 * The computation lives in `./price.ts` so it can be tested directly in Node and run the same in the sandbox.
 *
 * @example
 * ```ts
 * // as the sandbox calls it (ctx from the host)
 * const output = await cryptlet.default.run({ swaps: [{ blockNumber: 1, logIndex: 0, timestamp: 1704412823,
 *   sqrtPriceX96: "1662989727226084088942105379516512" }] }, ctx);
 * // { answer: "226976050376", decimals: 8, observedAt: 1704412823 }
 * ```
 */
import { defineCryptlet } from "cryptlet-runtime/sdk";
import { inputOfEvent, priceOfMinute } from "./price.ts";
import type { UniswapPriceInput, UniswapPriceOutput } from "./price.ts";

export default defineCryptlet<UniswapPriceInput | { logs: unknown }, UniswapPriceOutput>({
  run(event, ctx) {
    // From the HTTP trigger: `{swaps}`; from the chain-log trigger (one transaction's Swap logs): `{logs}`.
    const input = inputOfEvent(event);
    const output = priceOfMinute(input);
    ctx.log("price", { swaps: input.swaps.length, answer: output.answer, observedAt: output.observedAt });
    return output;
  },
});
