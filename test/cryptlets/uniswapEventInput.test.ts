import { inputOfEvent, priceOfMinute, UniswapPriceError } from "../../cryptlets/uniswap-price/src/price.ts";
import { groupByMinute, loadSwaps, POOL_005 } from "../../cryptlets/uniswap-price/replay/swaps.ts";

describe("uniswap-price input from the chain-log trigger (one transaction's Swap logs)", () => {
  test("a grouped event of decoded Swap logs gives the same price as the minute's swaps", async () => {
    const minutes = groupByMinute(await loadSwaps(POOL_005)).slice(0, 25);
    for (const { input } of minutes) {
      const event = {
        logs: input.swaps.map((s) => ({
          event: "Swap",
          args: {
            sender: "0x0",
            recipient: "0x0",
            amount0: s.amount0,
            amount1: s.amount1,
            sqrtPriceX96: s.sqrtPriceX96,
            liquidity: "1",
            tick: "0",
          },
          blockNumber: s.blockNumber,
          logIndex: s.logIndex,
          timestamp: s.timestamp,
        })),
        blockNumber: 1,
        txHash: "0x00",
        timestamp: input.swaps.at(-1)!.timestamp,
      };
      expect(priceOfMinute(inputOfEvent(event))).toEqual(priceOfMinute(input));
    }
  });

  test("the HTTP form passes through; malformed grouped input is INVALID_INPUT", () => {
    const swaps = {
      swaps: [
        { blockNumber: 1, logIndex: 0, timestamp: 1704412823, sqrtPriceX96: "1662989727226084088942105379516512" },
      ],
    };
    expect(inputOfEvent(swaps)).toBe(swaps);
    expect(() => inputOfEvent({ logs: "nope" })).toThrow(UniswapPriceError);
    expect(() => inputOfEvent({ logs: [null] })).toThrow(/INVALID_INPUT/);
  });
});
