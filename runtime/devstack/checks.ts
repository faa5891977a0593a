/**
 * The checks of `npm start`'s summary, as plain functions over what was read from the chains (or decrypted by
 * the CLI) and what was computed independently from the data files (reference.ts). The flows read; these judge.
 * Each returns a line for the summary and whether it holds; tests feed them a wrong round, a tampered report or
 * a ciphertext on the public chain and see them fail.
 *
 * @module
 */
import { isDeepStrictEqual } from "node:util";

import type { Contract } from "ethers";
import { decodeBase64, getBytes, hexlify, toUtf8Bytes } from "ethers";

/** One line of the summary: what was checked, and whether it holds. */
export interface Check {
  description: string;
  ok: boolean;
}

/** One round of a Chainlink-compatible feed (`getRoundData`). */
export interface FeedRound {
  roundId: bigint;
  /** The answer scaled by 10^decimals. */
  answer: bigint;
  /** The observation time (Unix seconds): `CryptletPriceFeed` sets `startedAt` to the result's `observedAt`. */
  startedAt: number;
}

/** Every round of a feed, 1 to `latestRoundData().roundId` (none when the feed has no round yet). */
export async function readFeedRounds(feed: Contract): Promise<FeedRound[]> {
  const rounds: FeedRound[] = [];
  let latest: bigint;
  try {
    [latest] = (await feed.getFunction("latestRoundData")()) as bigint[] as [bigint];
  } catch {
    return rounds; // no data yet: the feed reverts like Chainlink's
  }
  for (let id = 1n; id <= latest; id += 1n) {
    const [roundId, answer, startedAt] = (await feed.getFunction("getRoundData")(id)) as bigint[];
    rounds.push({ roundId: roundId!, answer: answer!, startedAt: Number(startedAt) });
  }
  return rounds;
}

/**
 * Every round of a feed equals the reference price of its minute, one round per expected minute.
 * @param label - which feed, e.g. "public feed".
 * @param rounds - read from the chain ({@link readFeedRounds}).
 * @param expectedMinutes - the minutes (Unix seconds) that were run, each of which must have exactly one round.
 * @param reference - USD per ETH by minute, from the data file.
 * @param options.toleranceUnits - largest accepted |answer − reference × 10^decimals| (default 1: one unit of
 *   the 8th decimal, the rounding of each price to the feed's decimals).
 * @param options.minuteOf - the minute a round belongs to (default: its `startedAt`, the observation time).
 */
export function checkFeedRounds(
  label: string,
  rounds: readonly FeedRound[],
  expectedMinutes: readonly number[],
  reference: ReadonlyMap<number, number>,
  {
    decimals = 8,
    toleranceUnits = 1,
    what = "the reference price",
    minuteOf = (round: FeedRound) => round.startedAt,
  }: {
    decimals?: number;
    toleranceUnits?: number;
    what?: string;
    minuteOf?: (round: FeedRound, index: number) => number | undefined;
  } = {},
): Check {
  const problems: string[] = [];
  let largest = 0;
  const seen = new Set<number>();
  for (const [index, round] of rounds.entries()) {
    const minute = minuteOf(round, index);
    const expected = minute === undefined ? undefined : reference.get(minute);
    if (minute === undefined || !expectedMinutes.includes(minute) || expected === undefined) {
      problems.push(`round ${round.roundId} is for minute ${minute}, which was not run`);
      continue;
    }
    if (seen.has(minute)) problems.push(`round ${round.roundId} repeats minute ${minute}`);
    seen.add(minute);
    const deviation = Math.abs(Number(round.answer) - expected * 10 ** decimals);
    largest = Math.max(largest, deviation);
    if (deviation > toleranceUnits + 1e-6) {
      problems.push(`round ${round.roundId}: ${Number(round.answer) / 10 ** decimals} ≠ ${expected.toFixed(decimals)}`);
    }
  }
  const missing = expectedMinutes.filter((m) => !seen.has(m));
  if (missing.length > 0) problems.push(`no round for ${missing.length} minute(s), first ${missing[0]}`);
  const tolerance = `${toleranceUnits}e-${decimals} USD`;
  return {
    description:
      `${label}: ${rounds.length} rounds for ${expectedMinutes.length} minutes, each equal to ${what} of its minute within ${tolerance} (largest deviation ${largest.toFixed(2)}e-${decimals})` +
      (problems.length > 0 ? `; ${problems.slice(0, 3).join("; ")}${problems.length > 3 ? "; …" : ""}` : ""),
    ok: rounds.length > 0 && problems.length === 0,
  };
}

/**
 * A price read by a consumer contract equals the reference price of the latest minute run.
 * @param answer - what the consumer returned, scaled by 10^decimals.
 */
export function checkConsumerRead(
  label: string,
  answer: bigint | undefined,
  expected: number | undefined,
  { decimals = 8, toleranceUnits = 1 } = {},
): Check {
  if (answer === undefined || expected === undefined) {
    return { description: `${label}: ${answer === undefined ? "no answer" : "no reference price"}`, ok: false };
  }
  const deviation = Math.abs(Number(answer) - expected * 10 ** decimals);
  return {
    description: `${label}: ${(Number(answer) / 10 ** decimals).toFixed(decimals)} USD, reference ${expected.toFixed(decimals)}`,
    ok: deviation <= toleranceUnits + 1e-6,
  };
}

/**
 * Decrypted reports equal the reports computed from the telemetry by the reference implementation (deep strict
 * equality: key order does not matter; every value and type does).
 * @param decrypted - one plaintext (parsed JSON) per window, `undefined` where decryption failed.
 */
export function checkReports(decrypted: readonly unknown[], expected: readonly unknown[]): Check {
  const differing = expected
    .map((report, i) => (isDeepStrictEqual(decrypted[i], report) ? undefined : i))
    .filter((i) => i !== undefined);
  return {
    description:
      `${expected.length - differing.length} of ${expected.length} decrypted reports equal the report computed from the telemetry by the reference implementation` +
      (differing.length > 0 ? ` (differ: window ${differing.join(", ")})` : ""),
    ok: expected.length > 0 && decrypted.length === expected.length && differing.length === 0,
  };
}

/** Whether `haystack` (0x hex) contains `needle`'s bytes. Needles shorter than 16 bytes are refused. */
export function containsBytes(haystack: string, needle: Uint8Array): boolean {
  if (needle.length < 16) throw new Error("needle too short to mean anything");
  return haystack.toLowerCase().includes(hexlify(needle).slice(2));
}

/** What a transaction put on a chain: its calldata and every log's topics and data (0x hex each). */
export interface OnChainBytes {
  txHash: string;
  calldata: string;
  logs: string[];
}

/** Reads a transaction's calldata and logs from the chain itself. */
export async function onChainBytes(
  provider: {
    getTransaction(hash: string): Promise<{ data: string } | null>;
    getTransactionReceipt(
      hash: string,
    ): Promise<{ logs: readonly { topics: readonly string[]; data: string }[] } | null>;
  },
  txHash: string,
): Promise<OnChainBytes | undefined> {
  const [tx, receipt] = await Promise.all([provider.getTransaction(txHash), provider.getTransactionReceipt(txHash)]);
  if (!tx || !receipt) return undefined;
  return { txHash, calldata: tx.data, logs: receipt.logs.flatMap((l) => [...l.topics, l.data]) };
}

/**
 * The sealed result's ciphertext in the two forms it could take on a chain: the raw bytes, and the base64url
 * text as the JWE JSON carries it (the record payload is the JWE's UTF-8 JSON).
 */
export function ciphertextForms(jwe: { ciphertext: string }): Uint8Array[] {
  const raw = decodeBase64(jwe.ciphertext.replace(/-/g, "+").replace(/_/g, "/"));
  return [getBytes(raw), toUtf8Bytes(jwe.ciphertext)];
}

/**
 * The public chain holds only the hash: the anchor transaction carries the batch's Merkle root and none of the
 * sealed results' ciphertext; the consortium chain's record transaction does carry the ciphertext (so the search
 * itself is shown to find it where it is).
 */
export function checkOnlyHashOnPublicChain(
  anchor: OnChainBytes | undefined,
  record: OnChainBytes | undefined,
  ciphertexts: readonly Uint8Array[][],
  merkleRoot: string | undefined,
): Check {
  const all = (b: OnChainBytes) => [b.calldata, ...b.logs].join("");
  const problems: string[] = [];
  if (!anchor) problems.push("anchor transaction not found on the public chain");
  if (!record) problems.push("record transaction not found on the consortium chain");
  if (anchor && ciphertexts.some((forms) => forms.some((f) => containsBytes(all(anchor), f)))) {
    problems.push("the anchor transaction carries ciphertext");
  }
  if (anchor && (!merkleRoot || !all(anchor).toLowerCase().includes(merkleRoot.slice(2).toLowerCase()))) {
    problems.push("the anchor transaction does not carry the batch's Merkle root");
  }
  if (record && !ciphertexts.some((forms) => containsBytes(all(record), forms[1]!))) {
    problems.push("the record transaction does not carry the ciphertext");
  }
  return {
    description:
      `public chain holds only the hash: anchor ${anchor?.txHash.slice(0, 10) ?? "?"}… carries the Merkle root ${merkleRoot?.slice(0, 10) ?? "?"}… and no ciphertext; the consortium record ${record?.txHash.slice(0, 10) ?? "?"}… carries the ciphertext (read from both chains)` +
      (problems.length > 0 ? `; ${problems.join("; ")}` : ""),
    ok: problems.length === 0,
  };
}
