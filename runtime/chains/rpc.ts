/**
 * A JSON-RPC client for one chain with failover across its endpoints and retries of transport failures.
 * JSON-RPC error responses (reverts, nonce errors) are returned to the caller unchanged: only "the endpoint did
 * not answer" is retried here. URLs are redacted in every error.
 *
 * @module
 */
import { FetchRequest, JsonRpcProvider } from "ethers";

import { classifyError } from "../errors.ts";
import type { ChainConfig } from "./config.ts";
import { ChainRpcUnavailableError } from "./errors.ts";

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

/** JSON-RPC access to one chain. */
export class ChainRpc {
  readonly chain: ChainConfig;
  readonly #providers: JsonRpcProvider[];
  #current = 0;

  constructor(chain: ChainConfig, { requestTimeoutMs = 10_000 } = {}) {
    this.chain = chain;
    this.#providers = chain.rpcUrls.map((url) => {
      const request = new FetchRequest(url);
      request.timeout = requestTimeoutMs;
      return new JsonRpcProvider(request, chain.chainId, { staticNetwork: true, batchMaxCount: 1, cacheTimeout: -1 });
    });
  }

  /** The ethers provider of the endpoint in use (for contract reads). */
  get provider(): JsonRpcProvider {
    return this.#providers[this.#current]!;
  }

  /**
   * Sends one JSON-RPC request; transport failures are retried `attempts` times with backoff (20 ms doubling, with
   * jitter), moving to the next endpoint each time. Each request has the `requestTimeoutMs` deadline (default
   * 10000 ms; the runtime configuration's `resilience.rpcTimeoutMs`).
   * @throws the node's own error (JSON-RPC error response) unchanged, or `ERR_CHAIN_RPC_UNAVAILABLE` (retryable).
   */
  async send<T = unknown>(method: string, params: unknown[], attempts = 4): Promise<T> {
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
