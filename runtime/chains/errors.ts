/**
 * Typed errors of the chain layer (`ERR_CHAIN_*`). Each says whether the job queue retries it.
 * @module
 */
import { defineErrorCode } from "../errorCodes.ts";
import { CryptletError } from "../errors.ts";

const module = "chains";

export const ERR_CHAIN_CONFIG_INVALID = defineErrorCode({
  code: "ERR_CHAIN_CONFIG_INVALID",
  module,
  meaning: "The chains configuration is invalid; `details.errors` lists `{path, message}`.",
  retry: "no",
});
export const ERR_CHAIN_RPC_UNAVAILABLE = defineErrorCode({
  code: "ERR_CHAIN_RPC_UNAVAILABLE",
  module,
  meaning: "A JSON-RPC endpoint failed or timed out on every attempt (URL redacted).",
  retry: "yes",
});
export const ERR_CHAIN_REVERTED = defineErrorCode({
  code: "ERR_CHAIN_REVERTED",
  module,
  meaning: "A contract call reverted; `details.error` is the decoded custom error, `details.args` its arguments.",
  retry: "no",
});
export const ERR_CHAIN_WRITE_TIMEOUT = defineErrorCode({
  code: "ERR_CHAIN_WRITE_TIMEOUT",
  module,
  meaning:
    "A write was not confirmed in time (still pending, perhaps because the fee cap is below the market); the retry resumes the same nonce.",
  retry: "yes",
});
export const ERR_CHAIN_LANE_BUSY = defineErrorCode({
  code: "ERR_CHAIN_LANE_BUSY",
  module,
  meaning: "The lane's lock could not be taken in time (another process holds it).",
  retry: "yes",
});
export const ERR_CHAIN_LANE_STATE_LOST = defineErrorCode({
  code: "ERR_CHAIN_LANE_STATE_LOST",
  module,
  meaning:
    "The lane no longer holds a write at its nonce and no other nonce for it (another process rewrote the lane); the retry sends it again.",
  retry: "yes",
});
export const ERR_CHAIN_ID_MISMATCH = defineErrorCode({
  code: "ERR_CHAIN_ID_MISMATCH",
  module,
  meaning: "The endpoint answers another chain id than the one configured (`ChainWriter.start()`, `cryptlet chains`).",
  retry: "no",
});
export const ERR_CHAIN_WRITE_INVALID = defineErrorCode({
  code: "ERR_CHAIN_WRITE_INVALID",
  module,
  meaning:
    "The write target is missing or malformed (`details.field`: `address`, `payload`, `signatures`, `result.<field>`, `callbackGasLimit`, `mode`).",
  retry: "no",
});
export const ERR_CHAIN_TARGET_UNCONFIGURED = defineErrorCode({
  code: "ERR_CHAIN_TARGET_UNCONFIGURED",
  module,
  meaning: "The chain has no contract configured for the mode (`details.chain`, `details.mode`, `details.feed`).",
  retry: "no",
});
export const ERR_CONTRACTS_NOT_BUILT = defineErrorCode({
  code: "ERR_CONTRACTS_NOT_BUILT",
  module,
  meaning: "A contract artifact is missing: run `npm run build:contracts`.",
  retry: "no",
});
export const ERR_CONTRACTS_BUILD_FAILED = defineErrorCode({
  code: "ERR_CONTRACTS_BUILD_FAILED",
  module,
  meaning: "Building the contracts on demand failed (`hardhat build` failed, timed out, or is not installed).",
  retry: "no",
});
export const ERR_ANCHOR_BATCH_FAILED = defineErrorCode({
  code: "ERR_ANCHOR_BATCH_FAILED",
  module,
  meaning:
    "A batch could not be anchored; it stays open and is retried when the cause is retryable (`details.reason` is the cause's code).",
  retry: "depends",
});
export const ERR_ANCHOR_RESULT_CONFLICT = defineErrorCode({
  code: "ERR_ANCHOR_RESULT_CONFLICT",
  module,
  meaning: "A result with this id was enqueued before with different contents (`details.resultId`).",
  retry: "no",
});
export const ERR_ANCHOR_TIMEOUT = defineErrorCode({
  code: "ERR_ANCHOR_TIMEOUT",
  module,
  meaning: "`AnchorBatcher.waitForAnchor` gave up (`details.status` says where the result was).",
  retry: "yes",
});
export const ERR_ANCHOR_CONFIG_INVALID = defineErrorCode({
  code: "ERR_ANCHOR_CONFIG_INVALID",
  module,
  meaning: "The anchor batcher was constructed with unusable options (`details.option`).",
  retry: "no",
});
export const ERR_ANCHOR_STATE_CORRUPT = defineErrorCode({
  code: "ERR_ANCHOR_STATE_CORRUPT",
  module,
  meaning: "A signed batch stored in Redis no longer hashes to its recorded Merkle root.",
  retry: "no",
});
export const ERR_ANCHOR_TX_NOT_FOUND = defineErrorCode({
  code: "ERR_ANCHOR_TX_NOT_FOUND",
  module,
  meaning: "The ledger says a root is anchored but the transaction that anchored it was not found (yet).",
  retry: "yes",
});
export const ERR_REGISTRY_TRUST_UNAVAILABLE = defineErrorCode({
  code: "ERR_REGISTRY_TRUST_UNAVAILABLE",
  module,
  meaning: "The registry's trust material (signers, threshold, approved code hashes) could not be read.",
  retry: "yes",
});

/** The chains configuration file is invalid; `details.errors` lists `{path, message}`. Not retryable. */
export class ChainConfigInvalidError extends CryptletError {
  constructor(source: string, errors: { path: string; message: string }[]) {
    super(
      ERR_CHAIN_CONFIG_INVALID,
      `invalid chains configuration (${source}): ${errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`,
      { details: { source, errors } },
    );
  }
}

/** A JSON-RPC endpoint failed or timed out (URL redacted). Retryable. */
export class ChainRpcUnavailableError extends CryptletError {
  constructor(chain: string, method: string, cause: unknown) {
    super(ERR_CHAIN_RPC_UNAVAILABLE, `JSON-RPC ${method} failed on chain ${chain}`, {
      details: { chain, method },
      cause,
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
      ERR_CHAIN_REVERTED,
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
    super(ERR_CHAIN_WRITE_TIMEOUT, `write ${idempotencyKey} on chain ${chain} not confirmed after ${waitedMs} ms`, {
      details: { chain, idempotencyKey, nonce, waitedMs },
    });
  }
}

/** The lane's lock could not be taken in time (another process holds it). Retryable. */
export class ChainLaneBusyError extends CryptletError {
  constructor(lane: string, waitedMs: number) {
    super(ERR_CHAIN_LANE_BUSY, `lane ${lane} stayed locked for ${waitedMs} ms`, {
      details: { lane, waitedMs },
    });
  }
}
