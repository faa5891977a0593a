/**
 * Redis connection errors through the logger. An ioredis client, and every BullMQ queue, worker or flow producer
 * built on one, emits `error` on each failed (re)connection attempt; without a listener ioredis prints
 * `[ioredis] Unhandled error event` with a stack trace and BullMQ prints the error to stderr, several lines per
 * connection per retry, outside the logger. {@link RedisConnectionLog} listens to all of them and logs the state,
 * not the attempts: one `warn` line when Redis stops answering (with the error's code and redacted message) and
 * one `info` line when a client is ready again, whatever the number of clients and retries in between.
 *
 * @module
 */
import type { EventEmitter } from "node:events";

import { redactSecrets } from "../errors.ts";
import type { PipelineLogger } from "./context.ts";

/** Socket error codes of a lost or refused connection (Node's `net`/`dns` codes). */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/**
 * Whether an `error` event is about the connection (refused, reset, timed out, closed) rather than a command.
 * @param error - what an ioredis client or a BullMQ object emitted.
 */
export function isRedisConnectionError(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === "string" && CONNECTION_CODES.has(code)) return true;
  return typeof message === "string" && /Connection is closed|Stream isn't writeable|connect ETIMEDOUT/.test(message);
}

/** The connection state as last logged. */
export type RedisConnectionState = "up" | "down";

/**
 * One process's (or one pipeline's) Redis connection state, logged once per change.
 *
 * @example
 * ```ts
 * import { Redis } from "ioredis";
 * import { RedisConnectionLog } from "./runtime/queue/redisConnectionLog.ts";
 *
 * const redis = new Redis("redis://127.0.0.1:6379");
 * const log = new RedisConnectionLog(logger, "redis://127.0.0.1:6379");
 * log.watch(redis); // also queues, workers, flow producers: log.watch(queue)
 * ```
 */
export class RedisConnectionLog {
  readonly #logger: PipelineLogger | undefined;
  readonly #target: string;
  readonly #watched = new WeakSet<EventEmitter>();
  #state: RedisConnectionState = "up";
  /** Errors seen since the connection went down (reported with the recovery line). */
  #errorsWhileDown = 0;

  /**
   * @param logger - where the two lines go; without one, the errors are only counted (never printed).
   * @param target - how the lines name Redis, e.g. its URL (credentials are redacted).
   */
  constructor(logger: PipelineLogger | undefined, target = "redis") {
    this.#logger = logger;
    this.#target = redactSecrets(target);
  }

  /** The state as last logged: `down` from the first connection error until a client is ready again. */
  get state(): RedisConnectionState {
    return this.#state;
  }

  /**
   * Listens to an emitter's `error` events (and `ready`, which ioredis clients emit on every (re)connection).
   * Connection errors ({@link isRedisConnectionError}) change the state; any other error goes to `onOther` (default:
   * one `error` line per error). Watching the same emitter twice is a no-op.
   * @param emitter - an ioredis client, or a BullMQ `Queue`, `Worker`, `QueueEvents` or `FlowProducer`.
   * @param onOther - what to do with an error that is not about the connection.
   * @returns the emitter.
   */
  watch<T extends EventEmitter>(emitter: T, onOther?: (error: unknown) => void): T {
    if (this.#watched.has(emitter)) return emitter;
    this.#watched.add(emitter);
    const other =
      onOther ??
      ((error: unknown) =>
        this.#logger?.error(
          { redis: this.#target, err: redactSecrets(error instanceof Error ? error.message : String(error)) },
          "redis client error",
        ));
    emitter.on("error", (error: unknown) => (isRedisConnectionError(error) ? this.#failed(error) : other(error)));
    emitter.on("ready", () => this.#ready());
    return emitter;
  }

  #failed(error: unknown): void {
    this.#errorsWhileDown += 1;
    if (this.#state === "down") return;
    this.#state = "down";
    const code = (error as { code?: unknown }).code;
    this.#logger?.warn(
      {
        redis: this.#target,
        ...(typeof code === "string" ? { code } : {}),
        err: redactSecrets(error instanceof Error ? error.message : String(error)),
      },
      "redis connection lost; retrying",
    );
  }

  #ready(): void {
    if (this.#state === "up") return;
    this.#state = "up";
    this.#logger?.info({ redis: this.#target, errors: this.#errorsWhileDown }, "redis connection restored");
    this.#errorsWhileDown = 0;
  }
}
