/**
 * Deadlines, retries and circuit breakers for calls to other processes (Key Vault, the identity endpoint), on
 * `cockatiel`: every attempt has a deadline (an aggressive timeout that also aborts the request through its
 * `AbortSignal`), failed attempts are retried with exponential backoff and decorrelated jitter (AWS Architecture
 * Blog, "Exponential Backoff and Jitter"), and consecutive failures open a circuit breaker (Nygard, "Release It!")
 * so that an outage is refused at once with a typed, retryable error instead of holding the job queue's slots.
 *
 * One {@link DependencyGuard} per dependency and process ({@link dependencyGuard} returns the same guard for the
 * same name). An outage is a visible state: {@link dependencyStates} (read by the API's `GET /ready` and the
 * worker's health endpoint), the Prometheus gauge `cryptlet_dependency_circuit_state`
 * ({@link registerDependencyMetrics}), and one log line when the breaker opens and one when it closes again
 * (not one per call, nor per trial call while it stays open). Settings and defaults: docs/operations.md.
 *
 * @module
 */
import {
  CircuitState,
  ConsecutiveBreaker,
  ExponentialBackoff,
  TimeoutStrategy,
  circuitBreaker,
  decorrelatedJitterGenerator,
  handleWhen,
  isBrokenCircuitError,
  isTaskCancelledError,
  retry,
  timeout,
  wrap,
  type CircuitBreakerPolicy,
} from "cockatiel";
import { Gauge, type Registry } from "prom-client";

import { classifyError, errorToJSON, isCryptletError } from "../errors.ts";
import { DependencyCircuitOpenError, DependencyTimeoutError, ERR_DEPENDENCY_CIRCUIT_OPEN } from "./errors.ts";

/** How one dependency is called. Every duration in milliseconds. */
export interface DependencyPolicy {
  /** Deadline of one attempt, ms: the request is aborted and the attempt fails with a timeout. */
  timeoutMs: number;
  /** Attempts per call, the first included (1: no retry). */
  attempts: number;
  /** First backoff delay between attempts, ms (then about ×2 per attempt, with jitter). */
  backoffInitialMs: number;
  /** Largest backoff delay, ms. */
  backoffMaxMs: number;
  /** Consecutive failed attempts (timeouts, network errors, 429, 5xx) that open the breaker. */
  breakerThreshold: number;
  /** How long the breaker stays open before one trial call is let through, ms. */
  breakerHalfOpenMs: number;
}

/**
 * Defaults per dependency kind. A call's worst case before it fails is about
 * `attempts × timeoutMs + (attempts − 1) × backoffMaxMs`: 3 × 5000 + 2 × 2000 = 19000 ms for Key Vault.
 */
export const DEFAULT_DEPENDENCY_POLICIES = {
  /** Azure Key Vault (get key, sign): 5000 ms per attempt, 3 attempts, backoff 200 to 2000 ms, open after 5, 5000 ms. */
  keyVault: {
    timeoutMs: 5000,
    attempts: 3,
    backoffInitialMs: 200,
    backoffMaxMs: 2000,
    breakerThreshold: 5,
    breakerHalfOpenMs: 5000,
  },
  /** The Entra ID / managed-identity token endpoint: 5000 ms per attempt, 2 attempts, open after 5, 5000 ms. */
  identity: {
    timeoutMs: 5000,
    attempts: 2,
    backoffInitialMs: 200,
    backoffMaxMs: 2000,
    breakerThreshold: 5,
    breakerHalfOpenMs: 5000,
  },
} as const satisfies Record<string, DependencyPolicy>;

/** A breaker's state: `closed` (calls pass), `open` (calls refused), `half-open` (one trial call passes). */
export type DependencyState = "closed" | "open" | "half-open";

/** What {@link dependencyStates} reports per guard. */
export interface DependencyStatus {
  /** The guard's name, e.g. `key-vault:https://my-vault.vault.azure.net`. */
  name: string;
  state: DependencyState;
  /** Since when (Unix ms) the dependency has been unavailable (open or half-open); absent when closed. */
  unavailableSince?: number;
}

/** The logger a guard writes its two lines to (pino-compatible subset). */
export interface DependencyLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/** Options of {@link DependencyGuard}. */
export interface DependencyGuardOptions {
  /** The dependency's name in errors, logs, metrics and readiness, e.g. `key-vault:https://v.vault.azure.net`. */
  name: string;
  policy: DependencyPolicy;
  logger?: DependencyLogger;
  /**
   * Whether a failure means the dependency is unavailable (retried, and counted by the breaker). Default: a
   * timeout, or an error {@link classifyError} deems retryable (network errors, 408, 429, 5xx, retryable
   * `CryptletError`s). Other failures (404, 403, a malformed request) pass through at once and count as answers.
   */
  isOutage?: (error: unknown) => boolean;
  /**
   * A cheap call (e.g. read a key's public part) that the guard makes itself every `breakerHalfOpenMs` while the
   * breaker is open, so that the breaker closes, and readiness turns true, when the dependency is back even if
   * nothing else calls it. Set later with {@link DependencyGuard.setProbe}. @defaultValue none
   */
  probe?: (signal: AbortSignal) => Promise<unknown>;
}

const defaultIsOutage = (error: unknown) => isTaskCancelledError(error) || classifyError(error) === "retry";

const STATES: Record<CircuitState, DependencyState> = {
  [CircuitState.Closed]: "closed",
  [CircuitState.Open]: "open",
  [CircuitState.HalfOpen]: "half-open",
  [CircuitState.Isolated]: "open",
};

/**
 * Calls one dependency with a deadline per attempt, retries with backoff and jitter, and a circuit breaker.
 *
 * Errors: the call's own error when it is not an outage (or after the last attempt, when the last attempt
 * failed otherwise than by timing out); `ERR_DEPENDENCY_TIMEOUT` ({@link DependencyTimeoutError}) when the last
 * attempt timed out; `ERR_DEPENDENCY_CIRCUIT_OPEN` ({@link DependencyCircuitOpenError}) when the breaker is open.
 * Both are retryable `CryptletError`s.
 *
 * @example
 * ```ts
 * import { DependencyGuard, DEFAULT_DEPENDENCY_POLICIES } from "./runtime/resilience/dependency.ts";
 *
 * const guard = new DependencyGuard({ name: "key-vault:https://v.vault.azure.net", policy: DEFAULT_DEPENDENCY_POLICIES.keyVault });
 * const answer = await guard.call((signal) => fetch("https://v.vault.azure.net/healthstatus", { signal }));
 * ```
 */
export class DependencyGuard {
  readonly name: string;
  readonly policy: DependencyPolicy;
  readonly #breaker: CircuitBreakerPolicy;
  readonly #run: <T>(fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal) => Promise<T>;
  #unavailableSince: number | undefined;
  #probe: ((signal: AbortSignal) => Promise<unknown>) | undefined;
  #probeTimer: NodeJS.Timeout | undefined;

  constructor(options: DependencyGuardOptions) {
    const { name, policy, logger } = options;
    this.name = name;
    this.policy = { ...policy };
    this.#probe = options.probe;
    const isOutage = options.isOutage ?? defaultIsOutage;
    const deadline = timeout(policy.timeoutMs, TimeoutStrategy.Aggressive);
    this.#breaker = circuitBreaker(handleWhen(isOutage), {
      halfOpenAfter: policy.breakerHalfOpenMs,
      breaker: new ConsecutiveBreaker(policy.breakerThreshold),
    });
    const retries = retry(
      handleWhen((e) => !isBrokenCircuitError(e) && isOutage(e)),
      {
        maxAttempts: Math.max(0, policy.attempts - 1),
        backoff: new ExponentialBackoff({
          generator: decorrelatedJitterGenerator,
          initialDelay: policy.backoffInitialMs,
          maxDelay: policy.backoffMaxMs,
        }),
      },
    );
    const policies = wrap(retries, this.#breaker, deadline);
    this.#breaker.onStateChange((state) => {
      if (state === CircuitState.Open && this.#unavailableSince === undefined) {
        this.#unavailableSince = Date.now();
        const last = this.#breaker.lastFailure;
        const cause = last && "error" in last ? errorToJSON(last.error).code : undefined;
        logger?.warn(
          { dependency: name, state: "open", cause, retryAfterMs: policy.breakerHalfOpenMs },
          "dependency unavailable: circuit open",
        );
        this.#probeTimer = setInterval(() => {
          if (this.#probe && this.#breaker.state === CircuitState.Open) this.call(this.#probe).catch(() => undefined);
        }, policy.breakerHalfOpenMs + 1).unref();
      } else if (state === CircuitState.Closed && this.#unavailableSince !== undefined) {
        const unavailableMs = Date.now() - this.#unavailableSince;
        this.#unavailableSince = undefined;
        clearInterval(this.#probeTimer);
        logger?.info({ dependency: name, state: "closed", unavailableMs }, "dependency available: circuit closed");
      }
    });
    this.#run = async <T>(fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> => {
      let attempts = 0;
      try {
        return await policies.execute(({ signal: attemptSignal }) => {
          attempts += 1;
          return fn(attemptSignal);
        }, signal);
      } catch (error) {
        if (isBrokenCircuitError(error)) throw new DependencyCircuitOpenError(name, policy.breakerHalfOpenMs);
        if (isTaskCancelledError(error) && !signal?.aborted)
          throw new DependencyTimeoutError(name, policy.timeoutMs, attempts);
        throw error;
      }
    };
  }

  /**
   * Runs `fn` under the policy.
   * @param fn - the call; must pass `signal` on to the request (it is aborted at the attempt's deadline).
   * @param signal - the caller's own cancellation, if any.
   * @throws see the class documentation.
   */
  call<T>(fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.#run(fn, signal);
  }

  /** Sets the call made while the breaker is open (see {@link DependencyGuardOptions.probe}) unless one is set. */
  setProbe(probe: (signal: AbortSignal) => Promise<unknown>): void {
    this.#probe ??= probe;
  }

  /** The breaker's state now. */
  get state(): DependencyState {
    return STATES[this.#breaker.state];
  }

  /** The guard's status for readiness and metrics. */
  status(): DependencyStatus {
    const state = this.state;
    return {
      name: this.name,
      state,
      ...(this.#unavailableSince === undefined ? {} : { unavailableSince: this.#unavailableSince }),
    };
  }
}

/**
 * When `error` is, or was caused by (through `cause`, up to 8 levels), a refusal of an open circuit breaker
 * (`ERR_DEPENDENCY_CIRCUIT_OPEN`, e.g. the cause of a JSON-RPC client's `ERR_CHAIN_RPC_UNAVAILABLE`): its
 * `retryAfterMs` (the breaker's half-open delay, ms; 1000 when absent). Otherwise `undefined`.
 */
export function circuitOpenRetryAfterMs(error: unknown): number | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 8 && typeof current === "object" && current !== null; depth += 1) {
    if (isCryptletError(current, ERR_DEPENDENCY_CIRCUIT_OPEN.code)) {
      return Number((current as { details?: { retryAfterMs?: unknown } }).details?.retryAfterMs) || 1000;
    }
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

const guards = new Map<string, DependencyGuard>();

/**
 * The process's guard named `options.name`, created on first use (later calls return the same guard and ignore
 * their `policy` and `logger`): one breaker per dependency, shared by every client of it in the process.
 */
export function dependencyGuard(options: DependencyGuardOptions): DependencyGuard {
  let guard = guards.get(options.name);
  if (guard === undefined) {
    guard = new DependencyGuard(options);
    guards.set(options.name, guard);
  }
  return guard;
}

/** The status of every guard of this process ({@link dependencyGuard}), by name. */
export function dependencyStates(): DependencyStatus[] {
  return [...guards.values()].map((g) => g.status()).sort((a, b) => a.name.localeCompare(b.name));
}

/** The gauge's value per state: 0 closed, 1 open, 2 half-open. */
export const CIRCUIT_STATE_VALUES: Record<DependencyState, number> = { closed: 0, open: 1, "half-open": 2 };

/**
 * Adds the gauge `cryptlet_dependency_circuit_state{dependency}` (0 closed, 1 open, 2 half-open; read at
 * scrape time from {@link dependencyStates}) to a prom-client registry.
 */
export function registerDependencyMetrics(registry: Registry): void {
  new Gauge({
    name: "cryptlet_dependency_circuit_state",
    help: "Circuit breaker state per dependency of this process: 0 closed, 1 open, 2 half-open.",
    labelNames: ["dependency"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of dependencyStates()) this.set({ dependency: s.name }, CIRCUIT_STATE_VALUES[s.state]);
    },
  });
}
