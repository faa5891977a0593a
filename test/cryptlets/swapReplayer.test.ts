/**
 * SwapReplayer on Hardhat's in-process chain: the first two hours of real 0.05 % pool swaps replayed as
 * transactions with their original block times; the replayed logs are byte-identical to mainnet's (topics and
 * data), decode back to the same swaps, and priced per minute give the reference prices.
 */
import { network } from "hardhat";
import { id, type Log } from "ethers";

import {
  batchesOf,
  deployReplayer,
  REPLAYER_ADDRESS,
  replaySwaps,
  type ReplayedBatch,
} from "../../cryptlets/uniswap-price/replay/replayer.ts";
import {
  groupByMinute,
  loadReferencePrices,
  loadSwaps,
  swapFromLog,
  SWAP_TOPIC,
  type DecodedSwap,
} from "../../cryptlets/uniswap-price/replay/swaps.ts";
import { priceFromSqrtPriceX96, priceOfMinute } from "../../cryptlets/uniswap-price/src/price.ts";

type Ethers = Awaited<ReturnType<typeof network.create>>["ethers"];

let ethers: Ethers;
let swaps: DecodedSwap[];

beforeAll(async () => {
  ({ ethers } = await network.create({ override: { initialDate: "2024-01-04T00:00:00Z" } }));
  const all = await loadSwaps();
  const end = Date.parse("2024-01-05T02:00:00Z") / 1000;
  swaps = all.filter((s) => s.timestamp < end);
});

test("the Swap topic is Uniswap V3's", () => {
  expect(SWAP_TOPIC).toBe("0xc42079f94a6350d7e6235f29174924f928cc2ac818eb64fed8004e115fbcca67");
});

test("batches never cross a minute and respect the size limit", () => {
  const batches = batchesOf(swaps, 3);
  expect(batches.flat()).toEqual(swaps);
  for (const batch of batches) {
    expect(batch.length).toBeLessThanOrEqual(3);
    expect(new Set(batch.map((s) => Math.floor(s.timestamp / 60))).size).toBe(1);
  }
});

test("replays two hours of swaps with original times; logs identical to mainnet; prices match the reference", async () => {
  const [funder, other] = await ethers.getSigners();
  const replayer = await deployReplayer(funder!);
  expect(await replayer.getAddress()).toBe(REPLAYER_ADDRESS);
  // Idempotent: a second deploy attaches to the same contract.
  expect(await (await deployReplayer(funder!)).getAddress()).toBe(REPLAYER_ADDRESS);

  const progress: number[] = [];
  const batches: ReplayedBatch[] = await replaySwaps(replayer, swaps, {
    setBlockTimestamps: true,
    onBatch: (_b, done) => progress.push(done),
  });
  const minutes = groupByMinute(swaps);
  expect(batches).toHaveLength(minutes.length);
  expect(progress.at(-1)).toBe(batches.length);

  const logs: Log[] = await ethers.provider.getLogs({
    address: REPLAYER_ADDRESS,
    topics: [SWAP_TOPIC],
    fromBlock: 0,
    toBlock: "latest",
  });
  expect(logs).toHaveLength(swaps.length);

  // The raw mainnet data of the first swap (from the shipped CSV) equals the replayed log's data.
  expect(logs[0]?.data).toBe(
    "0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffea5d662000000000000000000000000000000000000000000000000002386f26fc1000000000000000000000000000000000000000051fdf2fd9b2526872a9b723450f2000000000000000000000000000000000000000000000000acd43e0e7cf808c50000000000000000000000000000000000000000000000000000000000030985",
  );
  expect(logs[0]?.topics[1]).toBe("0x0000000000000000000000003fc91a3afd70395cd496c647d5a6cc9d4b2b7fad");

  const times = new Map<number, number>();
  const replayed: DecodedSwap[] = [];
  for (const log of logs) {
    if (!times.has(log.blockNumber))
      times.set(log.blockNumber, (await ethers.provider.getBlock(log.blockNumber))!.timestamp);
    replayed.push(swapFromLog(log, times.get(log.blockNumber)!));
  }
  replayed.forEach((r, i) => {
    const original = swaps[i] as DecodedSwap;
    expect({ ...r, blockNumber: 0, logIndex: 0, transactionHash: "" }).toEqual({
      ...original,
      // Each batch's block carries the time of the batch's last swap: the same minute as the original.
      timestamp: r.timestamp,
      blockNumber: 0,
      logIndex: 0,
      transactionHash: "",
    });
    expect(Math.floor(r.timestamp / 60)).toBe(Math.floor(original.timestamp / 60));
  });

  // Grouped per minute from the chain's own logs, the Cryptlet's prices equal the reference file.
  const reference = new Map((await loadReferencePrices()).map((r) => [r.minute, r]));
  const fromChain = groupByMinute(replayed);
  expect(fromChain.map((m) => m.minute)).toEqual(minutes.map((m) => m.minute));
  for (const { minute, input } of fromChain) {
    const ref = reference.get(minute);
    expect(BigInt(priceOfMinute(input).answer)).toBe(priceFromSqrtPriceX96(ref!.sqrtPriceX96));
  }

  // Only REPLAYER_ROLE may replay; empty batches are refused.
  const one = swaps[0]!;
  const record = [one.sender, one.recipient, one.amount0, one.amount1, one.sqrtPriceX96, one.liquidity, one.tick];
  const asOther = replayer.connect(other!) as typeof replayer;
  await expect(asOther.getFunction("replay").staticCall([record])).rejects.toMatchObject({
    data: expect.stringMatching(new RegExp(`^${id("AccessControlUnauthorizedAccount(address,bytes32)").slice(0, 10)}`)),
  });
  await expect(replayer.getFunction("replay").staticCall([])).rejects.toMatchObject({
    data: id("SwapReplayerEmptyBatch()").slice(0, 10),
  });
});
