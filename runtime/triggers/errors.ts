/**
 * Errors of the triggers (chain-log listener, oracle routing, schedules). None of them stops a listener: a log
 * or request that cannot be acted on is recorded in the problems stream (see docs/triggers.md) and skipped.
 *
 * @module
 */
import { defineErrorCode } from "../errorCodes.ts";
import { CryptletError } from "../errors.ts";

const module = "triggers";

export const ERR_TRIGGER_SUBSCRIPTION_INVALID = defineErrorCode({
  code: "ERR_TRIGGER_SUBSCRIPTION_INVALID",
  module,
  meaning:
    "A subscription or schedule is malformed: `details.field` names what (`address`, `event`, `chain`, `confirmations`, `cron`, `every`, `fromBlock`).",
  retry: "no",
});
export const ERR_TRIGGER_SUBSCRIPTION_UNKNOWN = defineErrorCode({
  code: "ERR_TRIGGER_SUBSCRIPTION_UNKNOWN",
  module,
  meaning: "No subscription with this id is in force in the listener (`details.subscription`).",
  retry: "no",
});
export const ERR_TRIGGER_CHAIN_UNKNOWN = defineErrorCode({
  code: "ERR_TRIGGER_CHAIN_UNKNOWN",
  module,
  meaning: "A trigger names a chain the runtime has no configuration for (`details.chain`).",
  retry: "no",
});
export const ERR_TRIGGER_CRYPTLET_UNKNOWN = defineErrorCode({
  code: "ERR_TRIGGER_CRYPTLET_UNKNOWN",
  module,
  meaning: "An oracle request names a `cryptletId` that no deployed package has; skipped and recorded.",
  retry: "no",
});
export const ERR_TRIGGER_ORACLE_NOT_DECLARED = defineErrorCode({
  code: "ERR_TRIGGER_ORACLE_NOT_DECLARED",
  module,
  meaning:
    "An oracle request names a Cryptlet whose manifest declares no `oracle` trigger for the request's chain; skipped and recorded.",
  retry: "no",
});
export const ERR_TRIGGER_ORACLE_REQUEST_INVALID = defineErrorCode({
  code: "ERR_TRIGGER_ORACLE_REQUEST_INVALID",
  module,
  meaning:
    "A `CryptletRequested` log does not decode, or its `resultId` is not `keccak256(abi.encode(cryptletId, requestId))`.",
  retry: "no",
});
export const ERR_TRIGGER_LOG_UNDECODABLE = defineErrorCode({
  code: "ERR_TRIGGER_LOG_UNDECODABLE",
  module,
  meaning:
    "A log matched a subscription's address and topic but does not decode with its event signature; skipped and recorded.",
  retry: "no",
});
export const ERR_TRIGGER_LOG_REORGED = defineErrorCode({
  code: "ERR_TRIGGER_LOG_REORGED",
  module,
  meaning: "The run of a log that a reorg removed was cancelled before it wrote anything (the run record's `error`).",
  retry: "no",
});
export const ERR_TRIGGER_REORG_TOO_DEEP = defineErrorCode({
  code: "ERR_TRIGGER_REORG_TOO_DEEP",
  module,
  meaning:
    "A reorg reached below every block the listener remembers (its reorg window); runs of logs below it cannot be checked.",
  retry: "no",
});
export const ERR_TRIGGER_CHAIN_INCONSISTENT = defineErrorCode({
  code: "ERR_TRIGGER_CHAIN_INCONSISTENT",
  module,
  meaning: "The node answered inconsistently during a scan (a block vanished mid-scan); retried at the next poll.",
  retry: "yes",
});

/**
 * A subscription or schedule is malformed: `details.field` names what (`address`, `event`, `chain`,
 * `confirmations`, `cron`, `every`, `fromBlock`). Not retryable.
 */
export class TriggerSubscriptionInvalidError extends CryptletError {
  constructor(id: string, field: string, problem: string, cause?: unknown) {
    super(ERR_TRIGGER_SUBSCRIPTION_INVALID, `trigger ${id}: ${field} ${problem}`, {
      details: { subscription: id, field },
      ...(cause === undefined ? {} : { cause }),
    });
  }
}

/** No subscription with this id is in force in the listener (`details.subscription`). Not retryable. */
export class TriggerSubscriptionUnknownError extends CryptletError {
  constructor(id: string) {
    super(ERR_TRIGGER_SUBSCRIPTION_UNKNOWN, `no subscription ${id}`, { details: { subscription: id } });
  }
}

/** A trigger names a chain the runtime has no configuration for (`details.chain`). Not retryable. */
export class TriggerChainUnknownError extends CryptletError {
  constructor(id: string, chain: string) {
    super(ERR_TRIGGER_CHAIN_UNKNOWN, `trigger ${id}: chain "${chain}" is not configured`, {
      details: { subscription: id, chain },
    });
  }
}

/** Where an oracle request was found: chain and position of its `CryptletRequested` log. */
export interface OracleRequestLocation {
  chain: string;
  requestId: string;
  cryptletId: string;
  blockNumber: number;
  txHash: string;
  logIndex: number;
}

/**
 * An oracle request names a `cryptletId` that no deployed package has. The request is skipped (recorded in the
 * problems stream); the consumer's request stays pending on-chain. Not retryable.
 */
export class TriggerCryptletUnknownError extends CryptletError {
  constructor(location: OracleRequestLocation, cause?: unknown) {
    super(
      ERR_TRIGGER_CRYPTLET_UNKNOWN,
      `oracle request ${location.requestId} names unknown Cryptlet ${location.cryptletId}`,
      {
        details: { ...location },
        ...(cause === undefined ? {} : { cause }),
      },
    );
  }
}

/**
 * An oracle request names a Cryptlet whose manifest declares no `oracle` trigger for the request's chain: the
 * package did not agree to answer oracle requests there. Skipped and recorded. Not retryable.
 */
export class TriggerOracleNotDeclaredError extends CryptletError {
  constructor(location: OracleRequestLocation, cryptlet: string) {
    super(
      ERR_TRIGGER_ORACLE_NOT_DECLARED,
      `${cryptlet} declares no oracle trigger for chain ${location.chain} (request ${location.requestId})`,
      { details: { ...location, cryptlet } },
    );
  }
}

/**
 * A `CryptletRequested` log does not decode, or its `resultId` is not `keccak256(abi.encode(cryptletId,
 * requestId))`. Skipped and recorded. Not retryable.
 */
export class TriggerOracleRequestInvalidError extends CryptletError {
  constructor(problem: string, details: Record<string, unknown>) {
    super(ERR_TRIGGER_ORACLE_REQUEST_INVALID, `invalid oracle request: ${problem}`, { details });
  }
}

/**
 * A log matched a subscription's address and topic but does not decode with its event signature (e.g. the
 * signature's `indexed` markers do not match the contract's). Skipped and recorded. Not retryable.
 */
export class TriggerLogUndecodableError extends CryptletError {
  constructor(
    subscription: string,
    location: { blockNumber: number; txHash: string; logIndex: number },
    cause: unknown,
  ) {
    super(
      ERR_TRIGGER_LOG_UNDECODABLE,
      `log ${location.txHash}#${location.logIndex} does not decode for ${subscription}`,
      {
        details: { subscription, ...location },
        cause,
      },
    );
  }
}

/**
 * The run of a log that a reorg removed was cancelled before it wrote anything (the run record's `error`, so
 * that waiters learn it). Not retryable.
 */
export class TriggerLogReorgedError extends CryptletError {
  constructor(details: { eventId: string; runId: string; blockNumber: number; blockHash: string }) {
    super(ERR_TRIGGER_LOG_REORGED, `the log of run ${details.runId} was removed by a reorg; run cancelled`, {
      details,
    });
  }
}

/**
 * A reorg reached below every block the listener remembers (its reorg window): the listener rescans from the
 * window's start, but runs of logs below it cannot be checked. Recorded. Not retryable.
 */
export class TriggerReorgTooDeepError extends CryptletError {
  constructor(subscription: string, checkpoint: number, window: number) {
    super(
      ERR_TRIGGER_REORG_TOO_DEEP,
      `trigger ${subscription}: reorg deeper than the ${window}-block window below block ${checkpoint}`,
      { details: { subscription, checkpoint, window } },
    );
  }
}

/** The node answered inconsistently during a scan (a block vanished mid-scan). Retried at the next poll. */
export class TriggerChainInconsistentError extends CryptletError {
  constructor(subscription: string, problem: string, details: Record<string, unknown> = {}) {
    super(ERR_TRIGGER_CHAIN_INCONSISTENT, `trigger ${subscription}: ${problem}`, {
      details: { subscription, ...details },
    });
  }
}
