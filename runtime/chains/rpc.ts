/**
 * A JSON-RPC client for one chain with failover across its endpoints, retries of transport failures, and a
 * circuit breaker per chain and process. JSON-RPC error responses (reverts, nonce errors) are returned to the
 * caller unchanged: only "the endpoint did not answer" is retried here, and only that counts towards the breaker.
 * URLs are redacted in every error, and never appear in the breaker's name.
 *
 * @module
 */
import { createHash } from "node:crypto";

import { FetchRequest, JsonRpcProvider } from "ethers";

import { classifyError, isCryptletError } from "../errors.ts";
import { dependencyGuard, type DependencyGuard, type DependencyLogger } from "../resilience/dependency.ts";
import { ERR_DEPENDENCY_CIRCUIT_OPEN, ERR_DEPENDENCY_TIMEOUT } from "../resilience/errors.ts";
import type { ChainConfig } from "./config.ts";
import { ChainRpcUnavailableError, ERR_CHAIN_RPC_UNAVAILABLE } from "./errors.ts";

/** A JSON-RPC error answered by the node (not a transport failure). */
export interface NodeError {
  /** The ethers error code, e.g. `CALL_EXCEPTION`, `NONCE_EXPIRED`, `UNKNOWN_ERROR`. */
  code: string | undefined;
  /** The node's message, e.g. `nonce too high`. */
  message: string;
  /** Revert data (0x hex) when the node returned some. */
  data: string | undefined;
}

/** Extracts the node's message and revert data from an ethers error. */
export function nodeErrorOf(error: unknown): NodeError {
  const e = error as {
    code?: string;
    shortMessage?: string;
    message?: string;
    data?: unknown;
    info?: { error?: { message?: string; data?: unknown } };
    error?: { message?: string; data?: unknown };
  };
  const inner = e.info?.error ?? e.error;
  const data = [e.data, inner?.data].find((d): d is string => typeof d === "string" && d.startsWith("0x"));
  return { code: e.code, message: inner?.message ?? e.shortMessage ?? e.message ?? String(error), data };
}

/** Whether `error` is a transport-level failure worth retrying on this or another endpoint. */
function isTransportFailure(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  if (code === "SERVER_ERROR" || code === "TIMEOUT" || code === "NETWORK_ERROR") return true;
  if (code === "UNKNOWN_ERROR") {
    // ethers reports a garbled or non-JSON-RPC answer as UNKNOWN_ERROR without a node error object
    const e = error as { error?: unknown; info?: { error?: unknown } };
    return e.error === undefined && e.info?.error === undefined;
  }
  return classifyError(error) === "retry" && code !== "NONCE_EXPIRED" && code !== "REPLACEMENT_UNDERPRICED";
}

/** The JSON-RPC circuit breaker's settings (the configuration's `resilience.rpcBreaker`). */
export interface RpcBreakerPolicy {
  /** Consecutive failed requests (each already tried on every endpoint, 4 attempts) that open the breaker. */
  threshold: number;
  /** How long the breaker stays open before one trial request (a caller's, or its own `eth_blockNumber`), ms. */
  halfOpenMs: number;
}

/** Defaults of {@link RpcBreakerPolicy}: open after 5 failed requests, a trial request every 5000 ms. */
export const DEFAULT_RPC_BREAKER: RpcBreakerPolicy = { threshold: 5, halfOpenMs: 5000 };

/** Attempts of one request (the first included), each on the next endpoint. */
const ATTEMPTS = 4;

/** Options of {@link ChainRpc}. */
export interface ChainRpcOptions {
  /** Deadline of one HTTP request to an endpoint, ms (ethers `FetchRequest.timeout`). Default 10000. */
  requestTimeoutMs?: number;
  /** The chain's circuit breaker; `false` for none (one-shot tools that report the failure themselves). */
  breaker?: RpcBreakerPolicy | false;
  /** Where the breaker writes its one line on open and one on close. */
  logger?: DependencyLogger;
}

/**
 * The breaker's name for `chain`: `chain-rpc:<name>/<chainId>#<8 hex>`, the suffix being the first 8 hex digits of
 * the SHA-256 of the endpoint list, so clients of different endpoints for one chain name do not share a breaker,
 * while no URL (which may hold an API key) appears in readiness, metrics or logs.
 */
export function rpcDependencyName(chain: Pick<ChainConfig, "name" | "chainId" | "rpcUrls">): string {
  const fingerprint = createHash("sha256").update(chain.rpcUrls.join("\n")).digest("hex").slice(0, 8);
  return `chain-rpc:${chain.name}/${chain.chainId}#${fingerprint}`;
}

/**
 * JSON-RPC access to one chain.
 *
 * Its circuit breaker (one per chain and endpoint list in the process, runtime/resilience/dependency.ts) opens
 * after `threshold` consecutive requests that failed on every attempt. While it is open, requests fail at once,
 * without being sent, with `ERR_CHAIN_RPC_UNAVAILABLE` whose cause is `ERR_DEPENDENCY_CIRCUIT_OPEN` (so the chain
 * writer's handling of an unavailable RPC is unchanged, and the job queue delays the job without spending an
 * attempt); every `halfOpenMs` the breaker sends `eth_blockNumber` itself, and closes when it is answered. The state
 * shows in readiness, the `cryptlet_dependency_circuit_state` gauge and one log line per transition.
 */
export class ChainRpc {
  readonly chain: ChainConfig;
  readonly #providers: JsonRpcProvider[];
  readonly #guard: DependencyGuard | undefined;
  #current = 0;

  constructor(chain: ChainConfig, options: ChainRpcOptions = {}) {
    const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.chain = chain;
    this.#providers = chain.rpcUrls.map((url) => {
      const request = new FetchRequest(url);
      request.timeout = requestTimeoutMs;
      return new JsonRpcProvider(request, chain.chainId, { staticNetwork: true, batchMaxCount: 1, cacheTimeout: -1 });
    });
    const breaker = options.breaker ?? DEFAULT_RPC_BREAKER;
    if (breaker !== false) {
      this.#guard = dependencyGuard({
        name: rpcDependencyName(chain),
        policy: {
          // The request's own attempts and deadlines run inside; this deadline only backs them up.
          timeoutMs: ATTEMPTS * (requestTimeoutMs + 1000) + 2000,
          attempts: 1,
          backoffInitialMs: 1,
          backoffMaxMs: 1,
          breakerThreshold: breaker.threshold,
          breakerHalfOpenMs: breaker.halfOpenMs,
        },
        isOutage: (error) =>
          isCryptletError(error, ERR_CHAIN_RPC_UNAVAILABLE.code) || isCryptletError(error, ERR_DEPENDENCY_TIMEOUT.code),
        ...(options.logger ? { logger: options.logger } : {}),
      });
      this.#guard.setProbe(() => this.#sendWithFailover("eth_blockNumber", [], 1));
    }
  }

  /** The breaker's state: `closed`, `open` or `half-open` (`closed` when the client has no breaker). */
  get circuitState(): "closed" | "open" | "half-open" {
    return this.#guard?.state ?? "closed";
  }

  /** The ethers provider of the endpoint in use (for contract reads). */
  get provider(): JsonRpcProvider {
    return this.#providers[this.#current]!;
  }

  /**
   * Sends one JSON-RPC request; transport failures are retried `attempts` times with backoff (20 ms doubling, with
   * jitter), moving to the next endpoint each time. Each request has the `requestTimeoutMs` deadline (default
   * 10000 ms; the runtime configuration's `resilience.rpcTimeoutMs`).
   * @throws the node's own error (JSON-RPC error response) unchanged, or `ERR_CHAIN_RPC_UNAVAILABLE` (retryable;
   *   its cause is `ERR_DEPENDENCY_CIRCUIT_OPEN` when the breaker refused the request without sending it).
   */
  async send<T = unknown>(method: string, params: unknown[], attempts = ATTEMPTS): Promise<T> {
    if (this.#guard === undefined) return this.#sendWithFailover<T>(method, params, attempts);
    try {
      return await this.#guard.call(() => this.#sendWithFailover<T>(method, params, attempts));
    } catch (error) {
      if (
        isCryptletError(error, ERR_DEPENDENCY_CIRCUIT_OPEN.code) ||
        isCryptletError(error, ERR_DEPENDENCY_TIMEOUT.code)
      )
        throw new ChainRpcUnavailableError(this.chain.name, method, error);
      throw error;
    }
  }

  async #sendWithFailover<T>(method: string, params: unknown[], attempts: number): Promise<T> {
    let lastError: unknown;
    for (let attempt = 0; attempt < attempts; attempt += 1) {
      try {
        return (await this.provider.send(method, params)) as T;
      } catch (error) {
        if (!isTransportFailure(error)) throw error;
        lastError = error;
        this.#current = (this.#current + 1) % this.#providers.length;
        // Exponential backoff with jitter (×0.5 to ×1.5), so processes that lost an endpoint together do not retry
        // in step.
        await new Promise((resolve) => setTimeout(resolve, 20 * 2 ** attempt * (0.5 + Math.random())));
      }
    }
    throw new ChainRpcUnavailableError(this.chain.name, method, lastError);
  }

  /** Stops the providers' timers. */
  destroy(): void {
    for (const provider of this.#providers) provider.destroy();
  }
}
