/**
 * Typed errors of the cross-chain runtime (`ERR_CROSSCHAIN_*`): routing a transfer's result to its chain and
 * contract, and the deadline watcher. Each says whether the job queue retries it.
 * @module
 */
import { defineErrorCode } from "../errorCodes.ts";
import { CryptletError } from "../errors.ts";

const module = "crosschain";

export const ERR_CROSSCHAIN_ROUTE_UNKNOWN = defineErrorCode({
  code: "ERR_CROSSCHAIN_ROUTE_UNKNOWN",
  module,
  meaning:
    "A cross-chain event names a chain or contract the chain configuration does not list for the package (`contracts.crosschain`); `details` names which.",
  retry: "no",
});
export const ERR_CROSSCHAIN_EVENT_INVALID = defineErrorCode({
  code: "ERR_CROSSCHAIN_EVENT_INVALID",
  module,
  meaning:
    "An event for a `crosschain` target is not a `Locked` or `Burned` log of a configured contract, nor a deadline observation (`details.field`).",
  retry: "no",
});

/** The event's route names a chain or contract the configuration does not list (`details.chainId`, `contract`). */
export class CrosschainRouteUnknownError extends CryptletError {
  constructor(cryptlet: string, message: string, details: Record<string, unknown>) {
    super(ERR_CROSSCHAIN_ROUTE_UNKNOWN, `${cryptlet}: ${message}`, { details: { cryptlet, ...details } });
  }
}

/** The event cannot be routed: not a `Locked`/`Burned` log nor a deadline observation (`details.field`). */
export class CrosschainEventInvalidError extends CryptletError {
  constructor(field: string, problem: string) {
    super(ERR_CROSSCHAIN_EVENT_INVALID, `cross-chain event: ${field} ${problem}`, { details: { field } });
  }
}

export const ERR_CROSSCHAIN_REFUND_EARLY = defineErrorCode({
  code: "ERR_CROSSCHAIN_REFUND_EARLY",
  module,
  meaning:
    "The lockbox refused a refund because the source chain's clock has not passed the lock's deadline yet (the destination's has: the chains' clocks differ); the write is retried.",
  retry: "yes",
});

/**
 * `CryptletLockbox.refund` reverted with `CryptletLockboxDeadlineNotPassed`: the refund is attested (the destination
 * chain was read after the deadline) but the source chain's block time is not past the deadline yet. Retryable: the
 * source chain's clock catches up. `details`: `lockId`, `deadline`, `now` (source block time), Unix seconds.
 */
export class CrosschainRefundEarlyError extends CryptletError {
  constructor(details: Record<string, unknown>, cause: unknown) {
    super(
      ERR_CROSSCHAIN_REFUND_EARLY,
      "refund refused: the source chain's block time is not past the lock's deadline yet; retried",
      { details, cause, retryable: true },
    );
  }
}
