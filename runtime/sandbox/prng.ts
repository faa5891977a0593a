/**
 * The deterministic `Math.random` of the sandbox: sfc32 (Chris Doty-Humphrey's "Small Fast Counting" generator
 * from PractRand, 32-bit variant), seeded from the run's `resultId`, so the same `resultId` gives the same
 * sequence on every engine and every machine, and a verifier re-running the Cryptlet gets the same output.
 *
 * Seeding: `SHA-256(UTF-8(lower-case resultId))`; the first 16 bytes, read as four big-endian uint32, are the
 * state words `a, b, c, d`; the first 12 outputs are discarded. Each `Math.random()` returns one 32-bit output
 * divided by 2^32 (32 bits of precision, in [0, 1)). The in-sandbox copy of the generator lives in
 * internal/prelude.ts; {@link sfc32} here is the reference implementation the tests compare it with.
 *
 * IMPORTANT: not a cryptographic generator, and predictable by anyone who knows the `resultId`.
 *
 * @example
 * ```ts
 * import { mathRandomSeed, sfc32 } from "./runtime/sandbox/prng.ts";
 *
 * const random = sfc32(mathRandomSeed("0x" + "ab".repeat(32)));
 * console.log(random(), random()); // what Math.random() returns in the sandbox for that resultId
 * ```
 */
import { createHash } from "node:crypto";

/** Number of outputs discarded after seeding. */
export const SFC32_WARMUP = 12;

/**
 * The four sfc32 state words for a `resultId`.
 * @param resultId - 0x-prefixed hex (any case).
 * @returns `[a, b, c, d]`, unsigned 32-bit integers.
 */
export function mathRandomSeed(resultId: string): [number, number, number, number] {
  const digest = createHash("sha256").update(resultId.toLowerCase(), "utf8").digest();
  return [digest.readUInt32BE(0), digest.readUInt32BE(4), digest.readUInt32BE(8), digest.readUInt32BE(12)];
}

/**
 * The reference sfc32 generator, warmed up by {@link SFC32_WARMUP} outputs.
 * @param seed - the state words from {@link mathRandomSeed}.
 * @returns a function giving the next number in [0, 1).
 */
export function sfc32(seed: readonly [number, number, number, number]): () => number {
  let [a, b, c, d] = seed;
  const next = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < SFC32_WARMUP; i++) next();
  return next;
}
