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
   * Watching the same emitter twice is a no-op.
   * @param emitter - an ioredis client, or a BullMQ `Queue`, `Worker`, `QueueEvents` or `FlowProducer`.
   * @returns the emitter.
   */
  watch<T extends EventEmitter>(emitter: T): T {
    if (this.#watched.has(emitter)) return emitter;
    this.#watched.add(emitter);
    emitter.on("error", (error: unknown) => this.#failed(error));
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
