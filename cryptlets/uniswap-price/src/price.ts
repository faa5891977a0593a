/**
 * The ETH/USD price of one minute from the Uniswap V3 USDC/WETH pool's `Swap` events of that minute, in exact
 * integer arithmetic (`BigInt`). No sandbox or Node API: the tests run this module directly in Node and the
 * sandbox runs the same code from the bundle.
 *
 * Method: the price at the minute's close, i.e. after its **last swap** (greatest `(blockNumber, logIndex)`).
 * Uniswap V3 stores the pool price as `sqrtPriceX96 = sqrt(token1/token0) · 2^96` in raw units; with token0 = USDC
 * (6 decimals) and token1 = WETH (18 decimals):
 *
 * ```
 * USD per ETH = 1 / ((sqrtPriceX96 / 2^96)^2 · 10^(6−18)) = 2^192 · 10^12 / sqrtPriceX96^2
 * answer      = round_half_up(2^192 · 10^(12 + decimals) / sqrtPriceX96^2)
 * ```
 *
 * @example
 * ```ts
 * import { priceOfMinute } from "./cryptlets/uniswap-price/src/price.ts";
 * const out = priceOfMinute({ swaps: [{ blockNumber: 18937382, logIndex: 169, timestamp: 1704412823,
 *   sqrtPriceX96: "1662989727226084088942105379516512", amount0: "-22686110", amount1: "10000000000000000" }] });
 * // { answer: "226976050376", decimals: 8, observedAt: 1704412823 }
 * ```
 * @module
 */

/** One decoded `Swap` event (the non-indexed arguments as decimal strings, plus where and when it was emitted). */
export interface SwapInput {
  /** Block of the log (orders the swaps; the chain's own numbering, local or mainnet). */
  blockNumber: number;
  /** Log index within the block (orders swaps of one block). */
  logIndex: number;
  /** Block time of the swap, Unix seconds (UTC). */
  timestamp: number;
  /** The pool's Q64.96 square-root price after the swap (uint160), decimal string. */
  sqrtPriceX96: string;
  /** USDC delta of the pool, raw units (6 decimals), signed decimal string. Optional: only for volume. */
  amount0?: string;
  /** WETH delta of the pool, raw units (18 decimals), signed decimal string. Optional: only for volume. */
  amount1?: string;
}

/** The Cryptlet input: the swaps of one minute (any order). */
export interface UniswapPriceInput {
  swaps: SwapInput[];
  /** Fractional digits of `answer`, 0..18. Default 8 (as Chainlink USD feeds). */
  decimals?: number;
  /** token0's decimals (USDC: 6). Default 6. */
  token0Decimals?: number;
  /** token1's decimals (WETH: 18). Default 18. */
  token1Decimals?: number;
}

/** The output, ABI-encoded as `tuple(int256 answer, uint8 decimals, uint64 observedAt)` for `CryptletPriceFeed`. */
export interface UniswapPriceOutput {
  /** USD per ETH scaled by 10^decimals, decimal integer string (int256). */
  answer: string;
  decimals: number;
  /** Time of the last swap, Unix seconds. */
  observedAt: number;
}

/** Error codes of {@link UniswapPriceError}. */
export type UniswapPriceErrorCode = "INVALID_INPUT" | "NO_SWAPS";

/** A bad input. The sandbox reports it as a Cryptlet that threw, keeping `code` at the start of the message. */
export class UniswapPriceError extends Error {
  readonly code: UniswapPriceErrorCode;
  constructor(code: UniswapPriceErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = "UniswapPriceError";
    this.code = code;
  }
}

const UINT = /^(0|[1-9][0-9]{0,77})$/;
const INT = /^-?(0|[1-9][0-9]{0,76})$/;
const MAX_UINT160 = (1n << 160n) - 1n;
/** Uniswap V3's TickMath bounds on sqrtPriceX96. */
const MIN_SQRT_RATIO = 4295128739n;
const MAX_SQRT_RATIO = 1461446703485210103287273052203988822282350386n;
const MAX_SWAPS = 10_000;

function integerIn(value: unknown, min: number, max: number, name: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new UniswapPriceError("INVALID_INPUT", `${name} must be an integer from ${min} to ${max}`);
  }
  return value;
}

function bigintOf(value: unknown, pattern: RegExp, name: string): bigint {
  if (typeof value !== "string" || !pattern.test(value)) {
    throw new UniswapPriceError("INVALID_INPUT", `${name} must be a decimal integer string`);
  }
  return BigInt(value);
}

/**
 * USD per token1 scaled by 10^decimals from a Q64.96 square-root price, rounded half up:
 * `2^192 · 10^(token1Decimals − token0Decimals + decimals) / sqrtPriceX96²`.
 *
 * @param sqrtPriceX96 - within Uniswap V3's `[MIN_SQRT_RATIO, MAX_SQRT_RATIO)`.
 * @throws {@link UniswapPriceError} `INVALID_INPUT` outside that range or for a negative total exponent.
 */
export function priceFromSqrtPriceX96(
  sqrtPriceX96: bigint,
  decimals = 8,
  token0Decimals = 6,
  token1Decimals = 18,
): bigint {
  if (sqrtPriceX96 < MIN_SQRT_RATIO || sqrtPriceX96 >= MAX_SQRT_RATIO) {
    throw new UniswapPriceError("INVALID_INPUT", `sqrtPriceX96 ${sqrtPriceX96} is outside Uniswap V3's range`);
  }
  const exponent = token1Decimals - token0Decimals + decimals;
  if (exponent < 0) throw new UniswapPriceError("INVALID_INPUT", "token1Decimals − token0Decimals + decimals < 0");
  const numerator = (1n << 192n) * 10n ** BigInt(exponent);
  const denominator = sqrtPriceX96 * sqrtPriceX96;
  return (2n * numerator + denominator) / (2n * denominator);
}

/**
 * The price of one minute: the pool price after the minute's last swap.
 *
 * @param input - the minute's swaps (1..10,000, any order; all within one UTC minute).
 * @returns `{answer, decimals, observedAt}`.
 * @throws {@link UniswapPriceError} `NO_SWAPS` for an empty list; `INVALID_INPUT` for a malformed swap, two swaps at
 *   the same `(blockNumber, logIndex)`, swaps from different minutes, or a bad parameter.
 */
export function priceOfMinute(input: UniswapPriceInput): UniswapPriceOutput {
  if (typeof input !== "object" || input === null || !Array.isArray(input.swaps)) {
    throw new UniswapPriceError("INVALID_INPUT", "input.swaps must be an array");
  }
  if (input.swaps.length === 0) throw new UniswapPriceError("NO_SWAPS", "no swap in this minute");
  integerIn(input.swaps.length, 1, MAX_SWAPS, "swaps.length");
  const decimals = integerIn(input.decimals ?? 8, 0, 18, "decimals");
  const token0Decimals = integerIn(input.token0Decimals ?? 6, 0, 36, "token0Decimals");
  const token1Decimals = integerIn(input.token1Decimals ?? 18, 0, 36, "token1Decimals");

  const parsed = input.swaps.map((s, i) => {
    if (typeof s !== "object" || s === null)
      throw new UniswapPriceError("INVALID_INPUT", `swaps[${i}] must be an object`);
    const blockNumber = integerIn(s.blockNumber, 0, Number.MAX_SAFE_INTEGER, `swaps[${i}].blockNumber`);
    const logIndex = integerIn(s.logIndex, 0, 2 ** 32, `swaps[${i}].logIndex`);
    const timestamp = integerIn(s.timestamp, 0, 2 ** 32 - 1, `swaps[${i}].timestamp`);
    const sqrtPriceX96 = bigintOf(s.sqrtPriceX96, UINT, `swaps[${i}].sqrtPriceX96`);
    if (sqrtPriceX96 > MAX_UINT160)
      throw new UniswapPriceError("INVALID_INPUT", `swaps[${i}].sqrtPriceX96 exceeds uint160`);
    if (s.amount0 !== undefined) bigintOf(s.amount0, INT, `swaps[${i}].amount0`);
    if (s.amount1 !== undefined) bigintOf(s.amount1, INT, `swaps[${i}].amount1`);
    return { blockNumber, logIndex, timestamp, sqrtPriceX96 };
  });
  const minute = Math.floor((parsed[0] as (typeof parsed)[number]).timestamp / 60);
  for (const [i, s] of parsed.entries()) {
    if (Math.floor(s.timestamp / 60) !== minute) {
      throw new UniswapPriceError("INVALID_INPUT", `swaps[${i}].timestamp is not in the same minute as swaps[0]`);
    }
  }
  parsed.sort((a, b) => a.blockNumber - b.blockNumber || a.logIndex - b.logIndex);
  for (let i = 1; i < parsed.length; i++) {
    const a = parsed[i - 1] as (typeof parsed)[number];
    const b = parsed[i] as (typeof parsed)[number];
    if (a.blockNumber === b.blockNumber && a.logIndex === b.logIndex) {
      throw new UniswapPriceError("INVALID_INPUT", `two swaps at block ${a.blockNumber} log ${a.logIndex}`);
    }
  }
  const last = parsed[parsed.length - 1] as (typeof parsed)[number];
  return {
    answer: priceFromSqrtPriceX96(last.sqrtPriceX96, decimals, token0Decimals, token1Decimals).toString(),
    decimals,
    observedAt: Math.max(...parsed.map((s) => s.timestamp)),
  };
}

/** One decoded `Swap` log as the runtime's chain-log trigger delivers it (arguments by name, decimal strings). */
export interface SwapLogInput {
  args: { sqrtPriceX96: string; amount0?: string; amount1?: string };
  blockNumber: number;
  logIndex: number;
  timestamp: number;
}

/**
 * The Cryptlet's input from the trigger's event for a transaction's `Swap` logs (a chain-log trigger with
 * `group: "transaction"`: the replayer emits each minute's swaps in one transaction): `{logs: [...]}` becomes
 * `{swaps: [...]}`. Input already in the `{swaps}` form is returned as it is.
 * @throws UniswapPriceError `INVALID_INPUT` when `logs` is not an array of decoded Swap logs.
 */
export function inputOfEvent(input: UniswapPriceInput | { logs: unknown }): UniswapPriceInput {
  if (typeof input !== "object" || input === null || !("logs" in input)) return input as UniswapPriceInput;
  if (!Array.isArray(input.logs)) throw new UniswapPriceError("INVALID_INPUT", "input.logs must be an array");
  const swaps = input.logs.map((log, i) => {
    const l = log as Partial<SwapLogInput> | null;
    if (typeof l !== "object" || l === null || typeof l.args !== "object" || l.args === null) {
      throw new UniswapPriceError("INVALID_INPUT", `logs[${i}] must be a decoded Swap log`);
    }
    return {
      blockNumber: l.blockNumber as number,
      logIndex: l.logIndex as number,
      timestamp: l.timestamp as number,
      sqrtPriceX96: l.args.sqrtPriceX96 as string,
      ...(l.args.amount0 === undefined ? {} : { amount0: l.args.amount0 }),
      ...(l.args.amount1 === undefined ? {} : { amount1: l.args.amount1 }),
    };
  });
  return { swaps };
}
