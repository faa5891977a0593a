/**
 * Flow: `@cryptlet/price-median` on the real per-minute ETH/USD prices of two Uniswap V3 pools
 * (cryptlets/price-median/data): one run per minute, the median of the two pools written to the price feed.
 * Checks every round of the feed on every chain the package targets against the median computed from the data
 * files by reference.ts (a missing feed is a failure).
 * @module
 */
import { Contract } from "ethers";

import { loadMinuteInputs } from "../../../cryptlets/price-median/data/loadObservations.ts";
import { httpEventId } from "../../attestation/ids.ts";
import { interfaceOf } from "../../chains/contracts.ts";
import { checkFeedRounds, readFeedRounds } from "../checks.ts";
import { referencePriceMedians } from "../reference.ts";
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
  // Every round of the feed against the median computed from the data file itself (reference.ts).
  const reference = referencePriceMedians();
  const minutesRun = slice.map((m) => m.minute);
  const checks: FlowReport["checks"] = [
    { description: `${receipts.length} of ${slice.length} runs complete`, ok: receipts.length === slice.length },
  ];
  const targetChains = stack.packages.find((p) => p.manifest.name === NAME)?.manifest.targets ?? [];
  const feedChains = targetChains.flatMap((t) => (t.mode === "feed" ? [t.chain] : []));
  if (feedChains.length === 0) checks.push({ description: `${NAME} declares no feed target`, ok: false });
  for (const chainName of feedChains) {
    const chain = stack.chains.find((c) => c.name === chainName);
    const address = chain?.contracts.feeds[NAME];
    if (!chain || !address) {
      checks.push({ description: `${chainName} feed: no feed deployed for ${NAME}`, ok: false });
      continue;
    }
    const feed = new Contract(address, interfaceOf("CryptletPriceFeed"), chain.chain.provider);
    checks.push(
      checkFeedRounds(`${chainName} feed`, await readFeedRounds(feed), minutesRun, reference, {
        what: "the median of the two pools' prices (from the data files)",
      }),
    );
  }
  return { name: "price-median (real Uniswap per-minute prices, HTTP events)", receipts, checks };
}
