/**
 * Block subscriptions: `eth_subscribe("newHeads")` over a chain's WebSocket JSON-RPC endpoint (the chain's
 * `wsUrl`), so that a poller can wake when a block arrives instead of only when its poll interval ends.
 *
 * A subscription is a hint, never a dependency: pollers keep polling at their interval whether the socket is up
 * or not. A socket that fails to open, or whose subscription is not answered, within `connectTimeoutMs` is closed;
 * a closed socket is opened again after a backoff that doubles from `minBackoffMs` to `maxBackoffMs` (reset once
 * a subscription is answered). Nothing here throws to its caller. The WebSocket client is Node's own (the WHATWG
 * `WebSocket`, built into Node 22 and later).
 *
 * @module
 */
import { redactUrl } from "../redact.ts";

/** Logger of a {@link HeadSubscription} (pino-compatible subset). */
export interface HeadLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/** Options of {@link HeadSubscription}; durations in milliseconds. */
export interface HeadSubscriptionOptions {
  /** The WebSocket JSON-RPC endpoint, `ws://` or `wss://` (may hold an API key: only logged redacted). */
  url: string;
  /** The chain's name, for logs. */
  chain: string;
  /** Deadline of opening the socket and of the answer to `eth_subscribe`. Default 5000. */
  connectTimeoutMs?: number;
  /** First wait before opening a closed socket again; doubles on each failure. Default 500. */
  minBackoffMs?: number;
  /** Longest wait before opening a closed socket again. Default 30000. */
  maxBackoffMs?: number;
  logger?: HeadLogger;
}

/** A new block announced by the subscription. */
export interface Head {
  /** Block number. */
  number: number;
  /** Block hash (0x hex). */
  hash: string;
}

/**
 * One chain's `newHeads` subscription, kept open (reconnected with backoff) between {@link HeadSubscription.start}
 * and {@link HeadSubscription.stop}.
 *
 * @example
 * ```ts
 * import { HeadSubscription } from "./runtime/chains/heads.ts";
 * const heads = new HeadSubscription({ url: "ws://127.0.0.1:8545", chain: "local" });
 * const off = heads.onHead((head) => console.log("block", head.number));
 * heads.start();
 * // … a poller sleeps until the next block or its interval, whichever comes first:
 * await heads.next(5_000);
 * off();
 * heads.stop();
 * ```
 */
export class HeadSubscription {
  readonly url: string;
  readonly chain: string;
  readonly #connectTimeoutMs: number;
  readonly #minBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #logger: HeadLogger | undefined;
  readonly #listeners = new Set<(head: Head) => void>();
  #socket: WebSocket | undefined;
  #subscription: string | undefined;
  #backoffMs: number;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  /** Sockets opened so far (the first one and every reconnection). */
  attempts = 0;
  /** Heads received so far. */
  heads = 0;

  constructor(options: HeadSubscriptionOptions) {
    this.url = options.url;
    this.chain = options.chain;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 5000;
    this.#minBackoffMs = options.minBackoffMs ?? 500;
    this.#maxBackoffMs = Math.max(this.#minBackoffMs, options.maxBackoffMs ?? 30_000);
    this.#backoffMs = this.#minBackoffMs;
    this.#logger = options.logger;
  }

  /** Whether a subscription is open now (the node answered `eth_subscribe` on a socket still open). */
  get subscribed(): boolean {
    return this.#subscription !== undefined;
  }

  /** Opens the socket and subscribes (no-op when started). Never throws: failures are retried with backoff. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#connect();
  }

  /** Closes the socket and stops reconnecting. */
  stop(): void {
    this.#running = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#drop();
  }

  /**
   * Calls `listener` on every new head.
   * @returns a function that removes the listener.
   */
  onHead(listener: (head: Head) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Waits for the next head or `timeoutMs`, whichever comes first (or `signal`'s abort).
   * @returns true when a head arrived, false on the timeout or an abort.
   */
  next(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (value: boolean) => {
        clearTimeout(timer);
        off();
        signal?.removeEventListener("abort", aborted);
        resolve(value);
      };
      const aborted = () => done(false);
      const timer = setTimeout(() => done(false), timeoutMs);
      const off = this.onHead(() => done(true));
      if (signal?.aborted) done(false);
      else signal?.addEventListener("abort", aborted, { once: true });
    });
  }

  #connect(): void {
    if (!this.#running) return;
    this.attempts += 1;
    let socket: WebSocket;
    try {
      socket = new WebSocket(this.url);
    } catch (error) {
      this.#logger?.warn(
        { chain: this.chain, url: redactUrl(this.url), err: String(error) },
        "block subscription refused",
      );
      this.#retry();
      return;
    }
    this.#socket = socket;
    // One deadline covers opening the socket and the answer to eth_subscribe.
    const deadline = setTimeout(() => {
      this.#logger?.warn(
        { chain: this.chain, url: redactUrl(this.url), timeoutMs: this.#connectTimeoutMs },
        "block subscription not answered in time; reconnecting",
      );
      socket.close();
      this.#closed(socket);
    }, this.#connectTimeoutMs);
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_subscribe", params: ["newHeads"] }));
    });
    socket.addEventListener("message", (message) => {
      let data: { id?: unknown; result?: unknown; error?: unknown; method?: string; params?: { result?: unknown } };
      try {
        data = JSON.parse(String(message.data)) as typeof data;
      } catch {
        return;
      }
      if (data.id === 1) {
        clearTimeout(deadline);
        if (typeof data.result !== "string") {
          this.#logger?.warn(
            { chain: this.chain, url: redactUrl(this.url), error: data.error },
            "eth_subscribe refused; polling only",
          );
          socket.close();
          this.#closed(socket);
          return;
        }
        this.#subscription = data.result;
        this.#backoffMs = this.#minBackoffMs;
        this.#logger?.info({ chain: this.chain, url: redactUrl(this.url) }, "block subscription open");
        return;
      }
      if (data.method !== "eth_subscription") return;
      const head = data.params?.result as { number?: string; hash?: string } | undefined;
      if (!head?.number || !head.hash) return;
      this.heads += 1;
      const announced: Head = { number: Number(BigInt(head.number)), hash: head.hash };
      for (const listener of [...this.#listeners]) listener(announced);
    });
    socket.addEventListener("error", () => undefined); // a "close" event follows
    socket.addEventListener("close", () => {
      clearTimeout(deadline);
      this.#closed(socket);
    });
  }

  /** The socket closed (or was given up): schedule the next attempt, once per socket. */
  #closed(socket: WebSocket): void {
    if (this.#socket !== socket) return;
    const wasSubscribed = this.subscribed;
    this.#socket = undefined;
    this.#subscription = undefined;
    if (!this.#running) return;
    if (wasSubscribed) this.#logger?.warn({ chain: this.chain, url: redactUrl(this.url) }, "block subscription lost");
    this.#retry();
  }

  #retry(): void {
    const wait = this.#backoffMs;
    this.#backoffMs = Math.min(this.#maxBackoffMs, this.#backoffMs * 2);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#connect();
    }, wait);
  }

  #drop(): void {
    const socket = this.#socket;
    this.#socket = undefined;
    this.#subscription = undefined;
    socket?.close();
  }
}
