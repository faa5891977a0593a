/**
 * Typed errors of the dependency guards (runtime/resilience/dependency.ts): a call to another process (Key Vault,
 * the identity endpoint, a JSON-RPC node, Redis) that did not answer within its deadline, and a call refused at
 * once because the dependency's circuit breaker is open. Both are retryable: the job queue backs off and the work
 * resumes when the dependency answers again. Messages name the dependency, never URLs with credentials or tokens.
 *
 * @module
 */
import { defineErrorCode } from "../errorCodes.ts";
import { CryptletError } from "../errors.ts";

const module = "resilience";

export const ERR_DEPENDENCY_TIMEOUT = defineErrorCode({
  code: "ERR_DEPENDENCY_TIMEOUT",
  module,
  meaning:
    "A dependency (Key Vault, the identity endpoint) did not answer within its deadline on any attempt (`details.dependency`, `details.timeoutMs`, `details.attempts`).",
  retry: "yes",
});
export const ERR_DEPENDENCY_CIRCUIT_OPEN = defineErrorCode({
  code: "ERR_DEPENDENCY_CIRCUIT_OPEN",
  module,
  meaning:
    "A dependency's circuit breaker is open after consecutive failures: the call was refused without being sent (`details.dependency`, `details.retryAfterMs`).",
  retry: "yes",
});

/**
 * A dependency did not answer within its deadline, on every attempt. Code `ERR_DEPENDENCY_TIMEOUT`; retryable.
 */
export class DependencyTimeoutError extends CryptletError {
  /**
   * @param dependency - the guard's name, e.g. `key-vault https://my-vault.vault.azure.net`.
   * @param timeoutMs - the deadline of each attempt, ms.
   * @param attempts - attempts made.
   */
  constructor(dependency: string, timeoutMs: number, attempts: number, cause?: unknown) {
    super(ERR_DEPENDENCY_TIMEOUT, `${dependency} did not answer within ${timeoutMs} ms (${attempts} attempts)`, {
      details: { dependency, timeoutMs, attempts },
      cause,
    });
  }
}

/**
 * The dependency's circuit breaker is open: the call was refused without being sent. Code
 * `ERR_DEPENDENCY_CIRCUIT_OPEN`; retryable (after `details.retryAfterMs`, when the breaker lets a trial call through).
 */
export class DependencyCircuitOpenError extends CryptletError {
  /**
   * @param dependency - the guard's name.
   * @param retryAfterMs - the breaker's half-open delay, ms.
   */
  constructor(dependency: string, retryAfterMs: number, cause?: unknown) {
    super(ERR_DEPENDENCY_CIRCUIT_OPEN, `${dependency} is unavailable (circuit open); retry after ${retryAfterMs} ms`, {
      details: { dependency, retryAfterMs },
      cause,
    });
  }
}
