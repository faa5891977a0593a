/**
 * The price-median computation, free of any sandbox or Node API so that it runs the same in Node (tests), in
 * isolated-vm and in QuickJS (the built bundle). All arithmetic is on `bigint` fixed-point values: decimal
 * strings are parsed exactly, never through a float.
 *
 * Method (see the package README for the reasoning):
 * 1. Optionally drop stale observations (older than `maxAgeSeconds` before `now`) and ones from the future.
 * 2. Scale every price to an integer with `decimals` fractional digits (round half up).
 * 3. Take the median `m` of the fresh prices (even count: mean of the middle two, rounded half up).
 * 4. Reject every observation deviating from `m` by more than `maxDeviationBps` basis points of `m`.
 * 5. Require a quorum: at least `minSources` accepted, and accepted observations a strict majority of the fresh
 *    ones (past 50% contamination the median itself is no longer trustworthy).
 * 6. Answer = median of the accepted prices; `observedAt` = the latest accepted observation time.
 */

/** One price from one source. */
export interface PriceObservation {
  /** Source identifier, unique per call, e.g. a pool address or an exchange name. */
  source: string;
  /** Price as a plain positive decimal string, e.g. `"2269.7605037562785"` (no sign, no exponent). */
  price: string;
  /** When the price was observed, Unix time in seconds. */
  observedAt: number;
}

/** The Cryptlet's input. */
export interface PriceMedianInput {
  observations: PriceObservation[];
  /** Fractional digits of `answer`, 0..36. Default 8 (as Chainlink USD feeds). */
  decimals?: number;
  /** Largest accepted deviation from the median, in basis points (1/100 of a percent). Default 100 (1%). */
  maxDeviationBps?: number;
  /** Observations older than this many seconds before `now` are ignored. Default: no age limit. */
  maxAgeSeconds?: number;
  /** Fewest accepted observations for an answer. Default 1. */
  minSources?: number;
}

/** The output, ABI-encoded as `tuple(int256 answer, uint8 decimals, uint64 observedAt)`. */
export interface PriceMedianOutput {
  /** The median price scaled by 10^decimals, as a decimal integer string (int256). */
  answer: string;
  /** Fractional digits of `answer`. */
  decimals: number;
  /** Latest accepted observation time, Unix seconds. */
  observedAt: number;
}

/** Why an observation was not used. */
export type RejectionReason = "stale" | "future" | "deviation";

/** The full result: the output plus which observations were used. */
export interface PriceMedianResult {
  output: PriceMedianOutput;
  /** Median of all fresh observations, before rejection (scaled integer string). */
  preliminaryMedian: string;
  accepted: string[];
  rejected: { source: string; reason: RejectionReason; price: string }[];
}

/** Error codes of {@link PriceMedianError}. */
export type PriceMedianErrorCode = "INVALID_INPUT" | "NO_QUORUM";

/** A bad input or no quorum. The sandbox reports it as a Cryptlet that threw, keeping `code` in the message. */
export class PriceMedianError extends Error {
  readonly code: PriceMedianErrorCode;
  constructor(code: PriceMedianErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = "PriceMedianError";
    this.code = code;
  }
}

const DECIMAL = /^(0|[1-9][0-9]*)(?:\.([0-9]+))?$/;
const INT256_MAX = (1n << 255n) - 1n;

/**
 * Parses a plain decimal string into an integer scaled by 10^decimals, rounding half up at the last kept digit.
 * Exact: `parseScaledDecimal("2269.7605037562785", 8) === 226976050376n`.
 *
 * @param value - `^(0|[1-9][0-9]*)(\.[0-9]+)?$`, at most 100 characters.
 * @param decimals - fractional digits to keep, 0..36.
 * @throws {@link PriceMedianError} `INVALID_INPUT` for any other form.
 */
export function parseScaledDecimal(value: string, decimals: number): bigint {
  if (typeof value !== "string" || value.length > 100) {
    throw new PriceMedianError("INVALID_INPUT", "price must be a decimal string of at most 100 characters");
  }
  const match = DECIMAL.exec(value);
  if (match === null) {
    throw new PriceMedianError("INVALID_INPUT", `price ${JSON.stringify(value)} is not a plain decimal number`);
  }
  const whole = match[1] ?? "0";
  const fraction = match[2] ?? "";
  const kept = fraction.slice(0, decimals).padEnd(decimals, "0");
  let scaled = BigInt(whole + kept);
  const next = fraction.charCodeAt(decimals);
  if (!Number.isNaN(next) && next >= 53 /* "5" */) scaled += 1n;
  return scaled;
}

/** Formats a scaled integer back as a decimal string (for logs and tests), e.g. `(226976050376n, 8)` → `2269.76050376`. */
export function formatScaledDecimal(value: bigint, decimals: number): string {
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(decimals + 1, "0");
  const whole = digits.slice(0, digits.length - decimals);
  const fraction = digits.slice(digits.length - decimals);
  return `${negative ? "-" : ""}${whole}${decimals > 0 ? `.${fraction}` : ""}`;
}

/** Median of non-empty `values`; for an even count the mean of the middle two, rounded half up. */
export function medianOf(values: readonly bigint[]): bigint {
  if (values.length === 0) throw new PriceMedianError("NO_QUORUM", "median of no values");
  const sorted = [...values].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const mid = sorted.length >> 1;
  const upper = sorted[mid] as bigint;
  if (sorted.length % 2 === 1) return upper;
  const sum = (sorted[mid - 1] as bigint) + upper;
  // Round half up (toward +infinity): floor((sum + 1) / 2) for any sign.
  const shifted = sum + 1n;
  return shifted >= 0n ? shifted / 2n : -((-shifted + 1n) / 2n);
}

function integerIn(value: unknown, min: number, max: number, name: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new PriceMedianError("INVALID_INPUT", `${name} must be an integer from ${min} to ${max}`);
  }
  return value;
}

/**
 * Aggregates price observations into one feed answer (see the module documentation for the method).
 *
 * @param input - observations and parameters.
 * @param now - the event's time in Unix seconds (`ctx.now`); needed only with `maxAgeSeconds`.
 * @returns the output and the accepted and rejected sources.
 * @throws {@link PriceMedianError} `INVALID_INPUT` (malformed input, duplicate source, answer beyond int256) or
 *   `NO_QUORUM` (too few observations survive).
 */
export function aggregatePrices(input: PriceMedianInput, now?: number): PriceMedianResult {
  if (typeof input !== "object" || input === null || !Array.isArray(input.observations)) {
    throw new PriceMedianError("INVALID_INPUT", "input.observations must be an array");
  }
  const decimals = integerIn(input.decimals ?? 8, 0, 36, "decimals");
  const maxDeviationBps = integerIn(input.maxDeviationBps ?? 100, 0, 10_000, "maxDeviationBps");
  const minSources = integerIn(input.minSources ?? 1, 1, 1000, "minSources");
  const maxAge =
    input.maxAgeSeconds === undefined ? undefined : integerIn(input.maxAgeSeconds, 0, 2 ** 32, "maxAgeSeconds");
  if (maxAge !== undefined && (typeof now !== "number" || !Number.isSafeInteger(now))) {
    throw new PriceMedianError("INVALID_INPUT", "maxAgeSeconds needs the event time (now)");
  }
  integerIn(input.observations.length, 1, 1000, "observations.length");

  const seen = new Set<string>();
  const rejected: PriceMedianResult["rejected"] = [];
  const fresh: { source: string; price: string; scaled: bigint; observedAt: number }[] = [];
  input.observations.forEach((o, i) => {
    if (typeof o !== "object" || o === null)
      throw new PriceMedianError("INVALID_INPUT", `observations[${i}] must be an object`);
    if (typeof o.source !== "string" || o.source.length === 0 || o.source.length > 128) {
      throw new PriceMedianError("INVALID_INPUT", `observations[${i}].source must be 1 to 128 characters`);
    }
    if (seen.has(o.source)) throw new PriceMedianError("INVALID_INPUT", `duplicate source ${JSON.stringify(o.source)}`);
    seen.add(o.source);
    const observedAt = integerIn(o.observedAt, 0, Number.MAX_SAFE_INTEGER, `observations[${i}].observedAt`);
    const scaled = parseScaledDecimal(o.price, decimals);
    if (scaled <= 0n) throw new PriceMedianError("INVALID_INPUT", `observations[${i}].price must be positive`);
    if (scaled > INT256_MAX) throw new PriceMedianError("INVALID_INPUT", `observations[${i}].price exceeds int256`);
    if (maxAge !== undefined && now !== undefined) {
      if (observedAt > now) return void rejected.push({ source: o.source, reason: "future", price: o.price });
      if (observedAt < now - maxAge) return void rejected.push({ source: o.source, reason: "stale", price: o.price });
    }
    fresh.push({ source: o.source, price: o.price, scaled, observedAt });
  });
  if (fresh.length === 0) throw new PriceMedianError("NO_QUORUM", "no fresh observation");

  const preliminary = medianOf(fresh.map((o) => o.scaled));
  const accepted = fresh.filter((o) => {
    const deviation = o.scaled > preliminary ? o.scaled - preliminary : preliminary - o.scaled;
    const ok = deviation * 10_000n <= BigInt(maxDeviationBps) * preliminary;
    if (!ok) rejected.push({ source: o.source, reason: "deviation", price: o.price });
    return ok;
  });
  if (accepted.length < minSources || accepted.length * 2 <= fresh.length) {
    throw new PriceMedianError(
      "NO_QUORUM",
      `${accepted.length} of ${fresh.length} fresh observations agree within ${maxDeviationBps} bps (need ${minSources} and a majority)`,
    );
  }
  return {
    output: {
      answer: medianOf(accepted.map((o) => o.scaled)).toString(),
      decimals,
      observedAt: Math.max(...accepted.map((o) => o.observedAt)),
    },
    preliminaryMedian: preliminary.toString(),
    accepted: accepted.map((o) => o.source),
    rejected,
  };
}
