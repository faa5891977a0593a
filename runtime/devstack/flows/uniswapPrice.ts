/**
 * Flow: `@cryptlet/uniswap-price` fed by chain events. The real Uniswap V3 USDC/WETH 0.05 % `Swap` logs of
 * 2024-01-05 are replayed as real transactions on the local public chain by `SwapReplayer` (the same events with
 * the same data, one transaction per minute); the trigger service picks the logs up (chain-log trigger, grouped per
 * transaction); the Cryptlet computes the ETH/USD price of the minute; the results go to `CryptletPriceFeed` on
 * both chains, read by `PriceFeedConsumer` (Chainlink-style staleness checks). Checks every round against the
 * per-minute reference prices of the same pool (cryptlets/uniswap-price/data).
 * @module
 */
import { Contract, ContractFactory } from "ethers";

import { deployReplayer, replaySwaps } from "../../../cryptlets/uniswap-price/replay/replayer.ts";
import { loadSwaps, POOL_005 } from "../../../cryptlets/uniswap-price/replay/swaps.ts";
import { computeResultId, type Hex32 } from "../../attestation/eip712.ts";
import { chainLogEventId, cryptletIdOf } from "../../attestation/ids.ts";
import { artifactOf, interfaceOf } from "../../chains/contracts.ts";
import type { CompositeReceipt } from "../../queue/results.ts";
import { checkConsumerRead, checkFeedRounds, readFeedRounds } from "../checks.ts";
import { referenceUniswapPrices } from "../reference.ts";
import type { LocalStack } from "../stack.ts";
import type { FlowProgress, FlowReport } from "./types.ts";

const NAME = "@cryptlet/uniswap-price";
/** Replays `minutes` minutes of swaps (from `startMinute` of the day), one at a time, as a live pool would emit them. */
export async function uniswapPriceFlow(
  stack: LocalStack,
  {
    minutes = 30,
    startMinute = 600,
    onProgress,
  }: { minutes?: number; startMinute?: number; onProgress?: FlowProgress } = {},
): Promise<FlowReport> {
  const pub = stack.chains.find((c) => c.name === "public")!;
  const replayer = await deployReplayer(pub.chain.funder);
  const swaps = await loadSwaps(POOL_005);
  const dayStart = swaps[0]!.timestamp - (swaps[0]!.timestamp % 86_400);
  const byMinute = new Map<number, typeof swaps>();
  for (const swap of swaps) {
    const minute = swap.timestamp - (swap.timestamp % 60);
    byMinute.set(minute, [...(byMinute.get(minute) ?? []), swap]);
  }
  const chosen = [...byMinute.keys()]
    .sort((a, b) => a - b)
    .filter((m) => m >= dayStart + startMinute * 60)
    .slice(0, minutes);
  const feeds = stack.chains.map((c) => ({
    chain: c,
    feed: new Contract(c.contracts.feeds[NAME]!, interfaceOf("CryptletPriceFeed"), c.chain.provider),
  }));

  const receipts: CompositeReceipt[] = [];
  for (const [i, minute] of chosen.entries()) {
    const [batch] = await replaySwaps(replayer, byMinute.get(minute)!, { inFlight: 1 });
    const txReceipt = await pub.chain.provider.getTransactionReceipt(batch!.txHash);
    const first = txReceipt!.logs[0]!;
    const eventId = chainLogEventId({
      chainId: pub.chain.chainId,
      blockHash: first.blockHash,
      txHash: first.transactionHash,
      logIndex: first.index,
    });
    const outcome = await stack.pipeline.waitForRun(computeResultId(cryptletIdOf(NAME), eventId as Hex32), 120_000);
    if (outcome.status === "complete") receipts.push(outcome.receipt);
    onProgress?.(i + 1, chosen.length);
  }

  // Every round of both feeds against the pool's reference prices, read from the data file by reference.ts.
  const reference = referenceUniswapPrices();
  const checks: FlowReport["checks"] = [
    { description: `${receipts.length} of ${chosen.length} minutes complete`, ok: receipts.length === chosen.length },
  ];
  for (const { chain, feed } of feeds) {
    checks.push(
      checkFeedRounds(`${chain.name} feed`, await readFeedRounds(feed), chosen, reference, {
        what: "the pool's reference price (from the data file)",
        // Replayed swaps carry today's block times, so rounds are matched to the minutes in replay order: one
        // minute at a time, each accepted as the feed's next round.
        minuteOf: (_round, index) => chosen[index],
      }),
    );
  }

  // Read the feeds as a Chainlink consumer does: the consumer's answer is the last minute's reference price.
  const { abi, bytecode } = artifactOf("PriceFeedConsumer");
  for (const { chain, feed } of feeds) {
    const consumer = await new ContractFactory(abi, bytecode, chain.chain.funder).deploy(await feed.getAddress(), 3600);
    await consumer.waitForDeployment();
    const answer = await new Contract(await consumer.getAddress(), abi, chain.chain.provider)
      .getFunction("latestPrice")()
      .then(
        (r: bigint[]) => r[0],
        () => undefined,
      );
    checks.push(
      checkConsumerRead(
        `${chain.name} PriceFeedConsumer.latestPrice (staleness ≤ 3600 s) equals the reference price of the last minute`,
        answer,
        reference.get(chosen.at(-1)!),
      ),
    );
  }
  return {
    name: "uniswap-price (real Swap logs replayed on the public chain, chain-log trigger)",
    receipts,
    checks,
  };
}
