/**
 * Schedules: cron triggers as BullMQ job schedulers (`Queue.upsertJobScheduler`), one per package and cron, on
 * the `triggers-schedule` queue. Each tick submits an event whose id is `scheduleEventId(cryptletId, slotTime)`,
 * so a tick delivered twice (a retried or stalled job, two processes) is one run.
 *
 * @module
 */
import { DelayedError, Queue, Worker, type Job } from "bullmq";

import { cryptletIdOf, scheduleEventId } from "../attestation/ids.ts";
import { isCryptletError } from "../errors.ts";
import type { PipelineLogger } from "../queue/context.ts";
import { ERR_BACKLOG_FULL, type BacklogFullError } from "../queue/errors.ts";
import type { Pipeline, SubmittedRun } from "../queue/pipeline.ts";
import { closeRedis, type RedisClient } from "../queue/redisClient.ts";
import type { CryptletEvent } from "../queue/topology.ts";
import { redactSecrets } from "../redact.ts";
import { TriggerSubscriptionInvalidError } from "./errors.ts";
import type { ScheduleSpec } from "./subscriptions.ts";

/** The BullMQ queue of schedule ticks (keys `<prefix>:triggers-schedule:…`). */
export const SCHEDULE_QUEUE = "triggers-schedule";

/** A tick job's payload. */
export interface ScheduleTick {
  cryptlet: { name: string };
  /** The schedule's cron pattern or interval, for the Cryptlet's input. */
  cron?: string;
  every?: number;
}

/** The input a scheduled Cryptlet receives. */
export interface ScheduleInput {
  /** The slot this run is for, Unix seconds. */
  slotTime: number;
  cron?: string;
  every?: number;
}

/**
 * The event of a schedule slot: `eventId = scheduleEventId(cryptletId, slotTime)`, source `schedule`, time =
 * the slot (s).
 * @param slotTime - Unix **seconds**.
 */
export function scheduleEventOf(tick: ScheduleTick, slotTime: number): CryptletEvent {
  const input: ScheduleInput = {
    slotTime,
    ...(tick.cron ? { cron: tick.cron } : {}),
    ...(tick.every ? { every: tick.every } : {}),
  };
  return {
    eventId: scheduleEventId(cryptletIdOf(tick.cryptlet.name), slotTime),
    cryptlet: { name: tick.cryptlet.name },
    source: { type: "schedule", slotTime },
    input,
    time: slotTime,
  };
}

/** A job scheduler's job id: `repeat:<scheduler id>:<slot, Unix milliseconds>` (BullMQ's `getSchedulerNextJobId`). */
const SCHEDULER_JOB_ID = /^repeat:.+:(\d+)$/;

/**
 * The slot of a tick job, Unix seconds: the time BullMQ's job scheduler planned it for, not when it ran.
 *
 * The scheduler's own record of that time is the job id (`repeat:<scheduler>:<millis>`, the score it put in its
 * schedule), read first. `opts.prevMillis` is not reliable for `every` schedules (BullMQ sets it only where it
 * computes the next time in JavaScript), and `timestamp + delay` changes when the tick is moved back to the delayed
 * set (a full backlog): both are fallbacks for a job added without a scheduler. A tick delivered late therefore
 * keeps its slot, and the slot's event id, on every attempt.
 * @param job - the tick job (`id`, `opts`, `timestamp`, `delay`).
 */
export function slotTimeOf(job: Pick<Job, "id" | "opts" | "timestamp" | "delay">): number {
  const scheduled = job.id === undefined ? undefined : SCHEDULER_JOB_ID.exec(job.id)?.[1];
  const millis =
    scheduled !== undefined
      ? Number(scheduled)
      : ((job.opts as { prevMillis?: number }).prevMillis ?? job.timestamp + (job.delay ?? 0));
  return Math.floor(millis / 1000);
}

/** Options of {@link ScheduleService}. */
export interface ScheduleServiceOptions {
  pipeline: Pipeline;
  /** Concurrent ticks. Default 4. */
  concurrency?: number;
  logger?: PipelineLogger;
  /** Called after each tick is submitted. */
  onTick?: (tick: { schedule: string; slotTime: number; runId: string }) => void;
}

/**
 * Keeps BullMQ job schedulers in step with the wanted schedules and turns their ticks into events.
 *
 * @example
 * ```ts
 * import { ScheduleService } from "./runtime/triggers/ScheduleService.ts";
 * const schedules = new ScheduleService({ pipeline });
 * await schedules.sync([{ id: "schedule:@acme/report:0 * * * *", cryptlet: { name: "@acme/report" }, cron: "0 * * * *" }]);
 * schedules.start();
 * await schedules.stop();
 * ```
 */
export class ScheduleService {
  readonly queue: Queue<ScheduleTick>;
  readonly #pipeline: Pipeline;
  readonly #concurrency: number;
  readonly #logger: PipelineLogger | undefined;
  readonly #onTick: ScheduleServiceOptions["onTick"];
  #worker: Worker<ScheduleTick> | undefined;
  /** Cluster clients given to BullMQ (on a Redis Cluster), closed by {@link stop}. */
  readonly #clusterClients: RedisClient[] = [];

  constructor(options: ScheduleServiceOptions) {
    this.#pipeline = options.pipeline;
    this.#concurrency = options.concurrency ?? 4;
    this.#logger = options.logger ?? options.pipeline.ctx.logger;
    this.#onTick = options.onTick;
    this.queue = new Queue<ScheduleTick>(SCHEDULE_QUEUE, options.pipeline.bullmqOptions(this.#clusterClients));
  }

  /**
   * Makes the job schedulers exactly `schedules`: upserts each (cron in UTC, or `every` ms) and removes
   * schedulers no longer wanted.
   * @throws TriggerSubscriptionInvalidError (`ERR_TRIGGER_SUBSCRIPTION_INVALID`) for a schedule with neither or
   *   both of `cron` and `every`, or a non-positive `every`; nothing is changed then.
   */
  async sync(schedules: readonly ScheduleSpec[]): Promise<void> {
    for (const spec of schedules) {
      if ((spec.cron === undefined) === (spec.every === undefined)) {
        throw new TriggerSubscriptionInvalidError(spec.id, "cron", "or every must be given (exactly one)");
      }
      if (spec.every !== undefined && (!Number.isSafeInteger(spec.every) || spec.every <= 0)) {
        throw new TriggerSubscriptionInvalidError(spec.id, "every", "must be a positive number of milliseconds");
      }
    }
    const wanted = new Set(schedules.map((s) => s.id));
    for (const existing of await this.queue.getJobSchedulers(0, -1)) {
      if (!wanted.has(existing.key)) await this.queue.removeJobScheduler(existing.key);
    }
    for (const spec of schedules) {
      const data: ScheduleTick = {
        cryptlet: spec.cryptlet,
        ...(spec.cron ? { cron: spec.cron } : {}),
        ...(spec.every ? { every: spec.every } : {}),
      };
      await this.queue.upsertJobScheduler(
        spec.id,
        spec.cron !== undefined ? { pattern: spec.cron, tz: "UTC" } : { every: spec.every! },
        {
          name: "tick",
          data,
          opts: {
            attempts: 5,
            backoff: { type: "exponential", delay: 200 },
            removeOnComplete: 1000,
            removeOnFail: 1000,
          },
        },
      );
    }
  }

  /** The ids of the job schedulers in Redis. */
  async scheduled(): Promise<string[]> {
    return (await this.queue.getJobSchedulers(0, -1)).map((s) => s.key).sort();
  }

  /**
   * Submits the event of one tick (what the worker does for each tick job).
   * @param slotTime - Unix seconds.
   */
  async tick(schedule: string, tick: ScheduleTick, slotTime: number): Promise<SubmittedRun> {
    const submitted = await this.#pipeline.submit(scheduleEventOf(tick, slotTime));
    this.#onTick?.({ schedule, slotTime, runId: submitted.runId });
    return submitted;
  }

  /** Starts the tick worker. */
  start(): void {
    if (this.#worker) return;
    this.#worker = new Worker<ScheduleTick>(
      SCHEDULE_QUEUE,
      async (job, token) => {
        try {
          return await this.tick(job.repeatJobKey ?? job.name, job.data, slotTimeOf(job));
        } catch (error) {
          if (!isCryptletError(error, ERR_BACKLOG_FULL.code) || token === undefined) throw error;
          // A full backlog: the tick waits (a delayed job, not a failed attempt) and submits again; none is dropped.
          const retryAt = Date.now() + (error as BacklogFullError).retryAfterSeconds * 1000;
          await job.moveToDelayed(retryAt, token);
          throw new DelayedError();
        }
      },
      {
        ...this.#pipeline.bullmqOptions(this.#clusterClients),
        concurrency: this.#concurrency,
      },
    );
    this.#worker.on("error", (error) =>
      this.#logger?.error({ err: redactSecrets(String(error)) }, "schedule worker error"),
    );
  }

  /** Stops the worker (finishing the ticks it holds) and closes the queue. Job schedulers stay in Redis. */
  async stop(): Promise<void> {
    await this.#worker?.close();
    this.#worker = undefined;
    await this.queue.close();
    await Promise.all(this.#clusterClients.splice(0).map(closeRedis));
  }
}
