/**
 * A `TokenCredential` (Azure identity) whose token requests have a deadline, retries and a circuit breaker
 * (runtime/resilience/dependency.ts). Without it a token endpoint that accepts connections but never answers
 * holds every Key Vault request forever: the SDK's bearer-token policy shares one pending refresh among all
 * callers, so a refresh that never settles blocks them all, even after the endpoint recovers.
 *
 * @module
 */
import type { AccessToken, GetTokenOptions, TokenCredential } from "@azure/identity";

import {
  DEFAULT_DEPENDENCY_POLICIES,
  dependencyGuard,
  type DependencyGuard,
  type DependencyLogger,
  type DependencyPolicy,
} from "../resilience/dependency.ts";

/**
 * Wraps a credential so that each `getToken` attempt ends within the policy's `timeoutMs` (the request is aborted
 * through `options.abortSignal`), failed attempts are retried with backoff and jitter, and consecutive failures
 * open the process's `identity` breaker. Errors: the credential's own, `ERR_DEPENDENCY_TIMEOUT`,
 * `ERR_DEPENDENCY_CIRCUIT_OPEN` (both retryable).
 *
 * @example
 * ```ts
 * import { DefaultAzureCredential } from "@azure/identity";
 * import { GuardedCredential } from "./runtime/keys/guardedCredential.ts";
 *
 * const credential = new GuardedCredential(new DefaultAzureCredential());
 * ```
 */
export class GuardedCredential implements TokenCredential {
  readonly inner: TokenCredential;
  readonly guard: DependencyGuard;

  /**
   * @param inner - the credential to guard (e.g. `DefaultAzureCredential`).
   * @param options - `policy` (merged over {@link DEFAULT_DEPENDENCY_POLICIES}`.identity`), `logger`, and `name`
   *   of the guard (default `identity`: one breaker for the process's token endpoint).
   */
  constructor(
    inner: TokenCredential,
    options: { policy?: Partial<DependencyPolicy>; logger?: DependencyLogger; name?: string } = {},
  ) {
    this.inner = inner;
    this.guard = dependencyGuard({
      name: options.name ?? "identity",
      policy: { ...DEFAULT_DEPENDENCY_POLICIES.identity, ...options.policy },
      ...(options.logger ? { logger: options.logger } : {}),
    });
  }

  /** @inheritDoc */
  getToken(scopes: string | string[], options: GetTokenOptions = {}): Promise<AccessToken | null> {
    // While the breaker is open, asking for a token of the same scopes tells when the endpoint answers again.
    this.guard.setProbe((signal) => this.inner.getToken(scopes, { abortSignal: signal }));
    // The SDK's AbortSignalLike is structurally a DOM AbortSignal in Node; the guard combines it with the deadline.
    const outer = options.abortSignal as AbortSignal | undefined;
    return this.guard.call(
      (signal) =>
        this.inner.getToken(scopes, {
          ...options,
          abortSignal: outer ? AbortSignal.any([outer, signal]) : signal,
        }),
      outer,
    );
  }
}
