/**
 * Flow: `@cryptlet/price-median` on the real per-minute ETH/USD prices of two Uniswap V3 pools
 * (cryptlets/price-median/data): one run per minute, the median of the two pools written to the price feed.
 * Checks that the feed's answers lie between the two pools' prices of their minute.
 * @module
 */
import { Contract } from "ethers";

import { loadMinuteInputs } from "../../../cryptlets/price-median/data/loadObservations.ts";
import { httpEventId } from "../../attestation/ids.ts";
import { interfaceOf } from "../../chains/contracts.ts";
import type { LocalStack } from "../stack.ts";
import type { FlowProgress, FlowReport } from "./types.ts";

const NAME = "@cryptlet/price-median";

/**
 * Runs `minutes` consecutive minutes of the day (from `startMinute`), waits for every run, and checks the feed.
 */
export async function priceMedianFlow(
  stack: LocalStack,
  {
    minutes = 60,
    startMinute = 600,
    onProgress,
  }: { minutes?: number; startMinute?: number; onProgress?: FlowProgress } = {},
): Promise<FlowReport> {
  const all = await loadMinuteInputs();
  const slice = all.slice(startMinute, startMinute + minutes);
  // Minute by minute, as a live feed receives them: a feed accepts only observations newer than its latest
  // round, so runs submitted all at once would mostly be superseded.
  const receipts = [];
  for (const { minute, input } of slice) {
    const run = await stack.pipeline.submit({
      eventId: httpEventId(`price-median-${minute}`),
      cryptlet: { name: NAME },
      source: { type: "http", idempotencyKey: `price-median-${minute}` },
      input,
      time: minute + 59,
    });
    const outcome = await stack.pipeline.waitForRun(run.runId, 300_000);
    if (outcome.status === "complete") receipts.push(outcome.receipt);
    onProgress?.(receipts.length, slice.length);
  }
  const runs = slice;
  const checks: FlowReport["checks"] = [];
  const feedTargets = receipts.flatMap((r) => r.targets.filter((t) => t.mode === "feed"));
  for (const chain of stack.chains) {
    const address = chain.contracts.feeds[NAME];
    if (!address || !feedTargets.some((t) => t.chain === chain.name)) continue;
    const feed = new Contract(address, interfaceOf("CryptletPriceFeed"), chain.chain.provider);
    const [roundId, answer, startedAt] = (await feed.getFunction("latestRoundData")()) as bigint[];
    const minute = slice.find((m) => m.minute + 59 >= Number(startedAt) && m.minute <= Number(startedAt));
    const prices = (minute?.input.observations ?? []).map((o) => Number(o.price));
    const value = Number(answer) / 1e8;
    checks.push({
      description: `${chain.name} feed: ${Number(roundId)} rounds; latest ${value.toFixed(2)} USD within the two pools' prices of its minute (${prices.map((p) => p.toFixed(2)).join(", ")})`,
      ok: prices.length > 0 && value >= Math.min(...prices) - 1e-6 && value <= Math.max(...prices) + 1e-6,
    });
  }
  checks.push({
    description: `${receipts.length} of ${runs.length} runs complete`,
    ok: receipts.length === runs.length,
  });
  return { name: "price-median (real Uniswap per-minute prices, HTTP events)", receipts, checks };
}
