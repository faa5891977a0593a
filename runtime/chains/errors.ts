/**
 * Typed errors of the chain layer (`ERR_CHAIN_*`). Each says whether the job queue retries it.
 * @module
 */
import { CryptletError } from "../errors.ts";

/** The chains configuration file is invalid; `details.errors` lists `{path, message}`. Not retryable. */
export class ChainConfigInvalidError extends CryptletError {
  constructor(source: string, errors: { path: string; message: string }[]) {
    super(
      "ERR_CHAIN_CONFIG_INVALID",
      `invalid chains configuration (${source}): ${errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`,
      { details: { source, errors } },
    );
  }
}

/** A JSON-RPC endpoint failed or timed out (URL redacted). Retryable. */
export class ChainRpcUnavailableError extends CryptletError {
  constructor(chain: string, method: string, cause: unknown) {
    super("ERR_CHAIN_RPC_UNAVAILABLE", `JSON-RPC ${method} failed on chain ${chain}`, {
      details: { chain, method },
      cause,
      retryable: true,
    });
  }
}

/**
 * A contract call reverted. `details.error` is the decoded custom error name (e.g. `CryptletProofHighS`) and
 * `details.args` its arguments as strings; `details.data` the raw revert data. Not retryable: the same call
 * reverts again.
 */
export class ChainRevertedError extends CryptletError {
  constructor(chain: string, contract: string, method: string, revert: DecodedRevert) {
    super(
      "ERR_CHAIN_REVERTED",
      `${contract}.${method} reverted on chain ${chain}: ${revert.name}(${revert.args.join(", ")})`,
      { details: { chain, contract, method, error: revert.name, args: revert.args, data: revert.data } },
    );
  }
}

/** A decoded revert: custom error name and arguments, `Error(string)`, `Panic(uint256)` or `unknown`. */
export interface DecodedRevert {
  /** The custom error's name, `Error`, `Panic`, or `unknown`. */
  name: string;
  /** The arguments, stringified (bigints in decimal). */
  args: string[];
  /** The raw revert data (0x hex), or `0x` when the node gave none. */
  data: string;
}

/**
 * A write was not confirmed in time (still pending, perhaps because the fee cap is below the market). Retryable:
 * the next attempt resumes the same transaction (same nonce) instead of sending a second one.
 */
export class ChainWriteTimeoutError extends CryptletError {
  constructor(chain: string, idempotencyKey: string, nonce: number, waitedMs: number) {
    super("ERR_CHAIN_WRITE_TIMEOUT", `write ${idempotencyKey} on chain ${chain} not confirmed after ${waitedMs} ms`, {
      details: { chain, idempotencyKey, nonce, waitedMs },
      retryable: true,
    });
  }
}

/** The lane's lock could not be taken in time (another process holds it). Retryable. */
export class ChainLaneBusyError extends CryptletError {
  constructor(lane: string, waitedMs: number) {
    super("ERR_CHAIN_LANE_BUSY", `lane ${lane} stayed locked for ${waitedMs} ms`, {
      details: { lane, waitedMs },
      retryable: true,
    });
  }
}
