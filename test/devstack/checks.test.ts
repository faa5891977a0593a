/**
 * npm start's checks fail when what they check is wrong: a wrong, missing or extra feed round, a consumer that
 * reads another price, a tampered report, ciphertext on the public chain. And the reference figures they compare
 * with agree with the Cryptlets' own code on the whole data set (two implementations, one answer).
 */
import { AbiCoder, hexlify, toUtf8Bytes } from "ethers";

import { aggregatePrices } from "../../cryptlets/price-median/src/median.ts";
import { commissionedAtOf, loadReadings, windowsOf } from "../../cryptlets/cold-chain-sla/data/loadReadings.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";
import { evaluateColdChain } from "../../cryptlets/cold-chain-sla/src/sla.ts";
import {
  checkConsumerRead,
  checkFeedRounds,
  checkOnlyHashOnPublicChain,
  checkReports,
  ciphertextForms,
  type FeedRound,
} from "../../runtime/devstack/checks.ts";
import {
  referenceColdChainReport,
  referencePriceMedians,
  referenceReadings,
} from "../../runtime/devstack/reference.ts";
import { ORACLE_REQUEST_TOPIC } from "../../runtime/triggers/subscriptions.ts";
import { interfaceOf } from "../../runtime/chains/contracts.ts";

const reference = referencePriceMedians();
const minutes = [...reference.keys()].sort((a, b) => a - b).slice(600, 605);
const rounds = (): FeedRound[] =>
  minutes.map((minute, i) => ({
    roundId: BigInt(i + 1),
    answer: BigInt(Math.round(reference.get(minute)! * 1e8)),
    startedAt: minute,
  }));

describe("feed round check", () => {
  test("holds for one round per minute at the reference price", () => {
    expect(checkFeedRounds("public feed", rounds(), minutes, reference).ok).toBe(true);
  });

  test("fails on a wrong round, a missing round, an extra round, a repeated minute, or no round at all", () => {
    const wrong = rounds();
    wrong[2] = { ...wrong[2]!, answer: wrong[2]!.answer + 2n }; // 2e-8 USD off
    const wrongCheck = checkFeedRounds("public feed", wrong, minutes, reference);
    expect(wrongCheck.ok).toBe(false);
    expect(wrongCheck.description).toContain("round 3");
    expect(checkFeedRounds("public feed", rounds().slice(1), minutes, reference).ok).toBe(false);
    const extra = [...rounds(), { roundId: 6n, answer: 1n, startedAt: minutes[0]! - 60 }];
    expect(checkFeedRounds("public feed", extra, minutes, reference).ok).toBe(false);
    const repeated = rounds();
    repeated[1] = { ...repeated[1]!, startedAt: minutes[0]!, answer: repeated[0]!.answer };
    expect(checkFeedRounds("public feed", repeated, minutes, reference).ok).toBe(false);
    expect(checkFeedRounds("public feed", [], [], reference).ok).toBe(false);
  });

  test("matches rounds by replay order when asked to", () => {
    const shifted = rounds().map((r) => ({ ...r, startedAt: r.startedAt + 1_000_000 }));
    expect(checkFeedRounds("f", shifted, minutes, reference, { minuteOf: (_r, i) => minutes[i] }).ok).toBe(true);
    const swapped = shifted.reverse();
    expect(checkFeedRounds("f", swapped, minutes, reference, { minuteOf: (_r, i) => minutes[i] }).ok).toBe(false);
  });
});

describe("consumer read check", () => {
  test("holds at the reference price and fails one unit past the tolerance, or with no answer", () => {
    const price = reference.get(minutes[0]!)!;
    const answer = BigInt(Math.round(price * 1e8));
    expect(checkConsumerRead("c", answer, price).ok).toBe(true);
    expect(checkConsumerRead("c", answer + 2n, price).ok).toBe(false);
    expect(checkConsumerRead("c", undefined, price).ok).toBe(false);
    expect(checkConsumerRead("c", answer, undefined).ok).toBe(false);
  });
});

/** A deep copy in this realm (structuredClone would make objects of Node's realm, not Jest's). */
const copy = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

describe("cold-chain report check", () => {
  const all = referenceReadings();
  const commissioned = all.find((r) => Math.round(r.roomC * 100) <= -1800)?.at;
  const expected = [0, 1, 2].map((i) =>
    referenceColdChainReport("freezer-135-1570", all.slice(i * 30, (i + 1) * 30), commissioned),
  );

  test("holds for equal reports in any key order, fails for a tampered one or a missing one", () => {
    const decrypted = expected.map((r) => JSON.parse(JSON.stringify(r)) as Record<string, unknown>);
    expect(checkReports(decrypted, expected).ok).toBe(true);
    const tampered = copy(decrypted);
    tampered[1]!.compliant = !tampered[1]!.compliant;
    const check = checkReports(tampered, expected);
    expect(check.ok).toBe(false);
    expect(check.description).toContain("window 1");
    const maxTemp = copy(decrypted);
    maxTemp[0]!.maxTempC = (maxTemp[0]!.maxTempC as number) + 0.01;
    expect(checkReports(maxTemp, expected).ok).toBe(false);
    expect(checkReports([decrypted[0], undefined, decrypted[2]], expected).ok).toBe(false);
    expect(checkReports([], []).ok).toBe(false);
  });
});

describe("public chain holds only the hash", () => {
  const jwe = { ciphertext: Buffer.from("a sealed cold-chain report, 48 bytes long......").toString("base64url") };
  const forms = ciphertextForms(jwe);
  const root = `0x${"ab".repeat(32)}`;
  const anchor = { txHash: "0x01", calldata: `0x12345678${root.slice(2)}`, logs: [root] };
  const record = {
    txHash: "0x02",
    calldata: hexlify(toUtf8Bytes(JSON.stringify({ ciphertext: jwe.ciphertext }))),
    logs: [],
  };

  test("holds when the anchor carries the root only and the record carries the ciphertext", () => {
    expect(checkOnlyHashOnPublicChain(anchor, record, [forms], root).ok).toBe(true);
  });

  test("fails when the anchor carries the ciphertext (raw or base64url), lacks the root, or a transaction is missing", () => {
    const raw = { ...anchor, calldata: anchor.calldata + hexlify(forms[0]!).slice(2) };
    expect(checkOnlyHashOnPublicChain(raw, record, [forms], root).ok).toBe(false);
    const text = { ...anchor, logs: [...anchor.logs, hexlify(forms[1]!)] };
    expect(checkOnlyHashOnPublicChain(text, record, [forms], root).ok).toBe(false);
    expect(checkOnlyHashOnPublicChain({ ...anchor, calldata: "0x", logs: [] }, record, [forms], root).ok).toBe(false);
    expect(checkOnlyHashOnPublicChain(undefined, record, [forms], root).ok).toBe(false);
    expect(checkOnlyHashOnPublicChain(anchor, { ...record, calldata: "0x" }, [forms], root).ok).toBe(false);
  });
});

describe("reference figures agree with the Cryptlets' own code on the whole data set", () => {
  test("price-median: the reference median of every minute of the day is the Cryptlet's answer within 1e-8 USD", async () => {
    const inputs = await loadMinuteInputs();
    expect(inputs).toHaveLength(1440);
    let largest = 0;
    for (const { minute, input } of inputs) {
      const answer = Number(aggregatePrices(input).output.answer);
      largest = Math.max(largest, Math.abs(answer - reference.get(minute)! * 1e8));
    }
    expect(largest).toBeLessThanOrEqual(1);
  });

  test("cold-chain-sla: the reference report of every 30-reading window is the Cryptlet's", async () => {
    const readings = await loadReadings();
    const commissionedAt = commissionedAtOf(readings);
    const all = referenceReadings();
    const commissioned = all.find((r) => Math.round(r.roomC * 100) <= -1800)?.at;
    expect(commissioned).toBe(commissionedAt);
    const windows = windowsOf(readings, 30);
    expect(windows.length).toBeGreaterThan(3);
    for (const [i, window] of windows.entries()) {
      const ours = evaluateColdChain({
        deviceId: "d",
        readings: window,
        ...(commissionedAt ? { commissionedAt } : {}),
      });
      expect(referenceColdChainReport("d", all.slice(i * 30, (i + 1) * 30), commissioned)).toEqual(ours);
    }
  });

  test("cold-chain-sla: the two implementations agree on excursions, breaches and gaps too", async () => {
    // The shipped windows hold no excursion, so perturb the real readings: spikes of a few degrees (short and long
    // excursions, some over the hard limit, some with the door open) and dropped readings (gaps).
    const readings = await loadReadings();
    const commissionedAt = commissionedAtOf(readings)!;
    const base = readings.filter((r) => r.at >= commissionedAt);
    expect(base.length).toBeGreaterThan(40);
    let breaches = 0;
    let gaps = 0;
    for (let seed = 1; seed <= 40; seed += 1) {
      const window = base
        .slice((seed * 7) % 10, ((seed * 7) % 10) + 40)
        .filter((_, i) => seed % 4 !== 0 || i < 5 + (seed % 13) || i >= 17 + (seed % 13))
        .map((r, i) => ({
          ...r,
          roomC: Math.round((r.roomC + (i % seed < seed / 3 ? (seed % 9) * 3.01 : 0)) * 100) / 100,
          door: r.door || i % 11 === seed % 11,
        }));
      const ours = evaluateColdChain({ deviceId: "d", readings: window, commissionedAt });
      expect(referenceColdChainReport("d", window, commissionedAt)).toEqual(ours);
      breaches += ours.excursions.filter((e) => e.breach).length;
      gaps += ours.gaps.length;
    }
    expect(breaches).toBeGreaterThan(5);
    expect(gaps).toBeGreaterThan(5);
  });
});

test("the oracle request topic computed from its ABI fragment equals the compiled contract's", () => {
  expect(ORACLE_REQUEST_TOPIC).toBe(interfaceOf("CryptletOracle").getEvent("CryptletRequested")!.topicHash);
  // and the encoding the flows decode is the one the contract emits
  expect(AbiCoder.defaultAbiCoder().encode(["uint8"], [1])).toHaveLength(66);
});
