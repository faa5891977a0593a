import { AbiCoder, id } from "ethers";

import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import {
  cryptletIdOf,
  deploy,
  deployStack,
  expectCustomError,
  makeResult,
  signResult,
  type AnyContract,
  type CryptletStack,
} from "../support/contracts.ts";

const FEED_CRYPTLET = cryptletIdOf("@cryptlet/price-median");
const CODE = id("price-median-v1") as Hex32;
const abi = AbiCoder.defaultAbiCoder();

function pricePayload(answer: bigint, decimals: number, observedAt: bigint): string {
  return abi.encode(["int256", "uint8", "uint64"], [answer, decimals, observedAt]);
}

describe("CryptletPriceFeed (Chainlink AggregatorV3Interface)", () => {
  let s: CryptletStack;
  let feed: AnyContract;
  let sequence = 0;

  async function submit(answer: bigint, observedAt: bigint, decimals = 8) {
    const payload = pricePayload(answer, decimals, observedAt);
    const result = makeResult(FEED_CRYPTLET, id(`feed-request-${sequence++}`) as Hex32, CODE, payload);
    const signatures = await signResult(s.signers.slice(0, 2), result);
    return { result, payload, signatures, send: () => feed.submit(result, payload, signatures) };
  }

  beforeEach(async () => {
    s = await deployStack(3, 2);
    await (await s.registry.approveCodeHash(FEED_CRYPTLET, CODE)).wait();
    feed = await deploy(s.ethers, "CryptletPriceFeed", [
      await s.registry.getAddress(),
      FEED_CRYPTLET,
      8,
      "ETH / USD",
      1,
    ]);
  });

  test("metadata, and no data before the first answer", async () => {
    expect(await feed.decimals()).toBe(8n);
    expect(await feed.description()).toBe("ETH / USD");
    expect(await feed.version()).toBe(1n);
    await expectCustomError(feed.latestRoundData(), s.errors, "CryptletFeedUnknownRound", [0n]);
    await expectCustomError(feed.getRoundData(1), s.errors, "CryptletFeedUnknownRound", [1n]);
  });

  test("rounds: roundId increases, startedAt = observation, updatedAt = block time, answeredInRound = roundId", async () => {
    const first = await submit(227_812_345_678n, 1_704_412_800n);
    const receipt = await (await first.send()).wait();
    const names = receipt.logs.map((l: never) => feed.interface.parseLog(l)?.name);
    expect(names).toEqual(["NewRound", "AnswerUpdated", "CryptletResultApplied"]);
    const block1 = await s.ethers.provider.getBlock(receipt.blockNumber);

    const second = await submit(228_000_000_000n, 1_704_412_860n);
    const receipt2 = await (await second.send()).wait();
    const block2 = await s.ethers.provider.getBlock(receipt2.blockNumber);

    expect([...(await feed.getRoundData(1))]).toEqual([
      1n,
      227_812_345_678n,
      1_704_412_800n,
      BigInt(block1!.timestamp),
      1n,
    ]);
    expect([...(await feed.latestRoundData())]).toEqual([
      2n,
      228_000_000_000n,
      1_704_412_860n,
      BigInt(block2!.timestamp),
      2n,
    ]);
    expect(await feed.isRecorded(first.result.resultId)).toBe(true);
    expect(await feed.roundOf(second.result.resultId)).toBe(2n);
    await expectCustomError(feed.getRoundData(3), s.errors, "CryptletFeedUnknownRound", [3n]);
    await expectCustomError(feed.getRoundData(0), s.errors, "CryptletFeedUnknownRound", [0n]);
  });

  test("answers arrive only as verified results of the feed's Cryptlet", async () => {
    const ok = await submit(1n, 100n);
    await expectCustomError(
      feed.submit(ok.result, ok.payload, ok.signatures.slice(0, 1)),
      s.errors,
      "CryptletProofThresholdNotMet",
    );
    const other = cryptletIdOf("@test/other");
    const wrong = { ...ok.result, cryptletId: other };
    await expectCustomError(feed.submit(wrong, ok.payload, ok.signatures), s.errors, "CryptletFeedWrongCryptlet", [
      FEED_CRYPTLET,
      other,
    ]);
    await expectCustomError(
      feed.submit(ok.result, pricePayload(2n, 8, 100n), ok.signatures),
      s.errors,
      "CryptletFeedOutputHashMismatch",
    );
    await (await ok.send()).wait();
    await expectCustomError(ok.send(), s.errors, "CryptletFeedAlreadyRecorded", [ok.result.resultId]);
  });

  test("bad payloads get named errors", async () => {
    const malformed = makeResult(FEED_CRYPTLET, id("m") as Hex32, CODE, "0x1234");
    await expectCustomError(
      feed.submit(malformed, "0x1234", await signResult(s.signers, malformed)),
      s.errors,
      "CryptletFeedMalformedPayload",
      [2n],
    );
    const wrongDecimals = await submit(1n, 100n, 18);
    await expectCustomError(wrongDecimals.send(), s.errors, "CryptletFeedDecimalsMismatch", [8n, 18n]);
    const huge = await submit(2n ** 200n, 100n);
    await expectCustomError(huge.send(), s.errors, "CryptletFeedAnswerOutOfRange", [2n ** 200n]);
    const zeroTime = await submit(1n, 0n);
    await expectCustomError(zeroTime.send(), s.errors, "CryptletFeedObservationTimeOutOfRange", [0n]);
    const farFuture = await submit(1n, 2n ** 40n);
    await expectCustomError(farFuture.send(), s.errors, "CryptletFeedObservationTimeOutOfRange", [2n ** 40n]);
  });

  test("observations must be strictly newer than the latest round's", async () => {
    await (await (await submit(10n, 1_000n)).send()).wait();
    await expectCustomError((await submit(11n, 1_000n)).send(), s.errors, "CryptletFeedStaleObservation", [
      1_000n,
      1_000n,
    ]);
    await expectCustomError((await submit(11n, 999n)).send(), s.errors, "CryptletFeedStaleObservation", [999n, 1_000n]);
  });

  test("the example consumer reads latestRoundData with Chainlink's staleness and sanity checks", async () => {
    const consumer = await deploy(s.ethers, "PriceFeedConsumer", [await feed.getAddress(), 3_600]);
    await expectCustomError(consumer.latestPrice(), s.errors, "CryptletFeedUnknownRound", [0n]);
    await (await (await submit(227_812_345_678n, 1_704_412_800n)).send()).wait();
    expect([...(await consumer.latestPrice())]).toEqual([227_812_345_678n, 8n]);

    await s.ethers.provider.send("evm_increaseTime", [3_601]);
    await s.ethers.provider.send("evm_mine", []);
    const [updatedAt, now, maxStaleness] = (await expectCustomError(
      consumer.latestPrice(),
      s.errors,
      "PriceFeedConsumerStalePrice",
    )) as bigint[];
    expect(maxStaleness).toBe(3_600n);
    expect(now! - updatedAt!).toBeGreaterThan(3_600n);

    await (await (await submit(-5n, 1_704_412_900n)).send()).wait();
    await expectCustomError(consumer.latestPrice(), s.errors, "PriceFeedConsumerInvalidAnswer", [-5n]);
  });
});
