/**
 * The pipeline: BullMQ queues and workers that carry an event through execute → attest → one write per target →
 * the run's composite receipt (see topology.ts for the queues and docs/pipeline.md for operations).
 *
 * One process may run every stage (the dev stack) or only some (scale-out: API processes submit, worker
 * processes on many machines share one Redis). Everything a stage needs survives a crash: jobs are in Redis,
 * the chain writer's nonces and transactions are in Redis, and every job id derives from the `resultId`.
 *
 * @module
 */
import {
  DelayedError,
  ErrorCode,
  FlowProducer,
  Queue,
  UnrecoverableError,
  WaitingChildrenError,
  Worker,
  type Job,
  type JobsOptions,
  type QueueOptions,
} from "bullmq";

import { computeResultId, type Hex32 } from "../attestation/eip712.ts";
import { cryptletIdOf } from "../attestation/ids.ts";
import { crosschainTargetOf } from "../crosschain/routes.ts";
import { CryptletError, classifyError, errorToJSON, redactSecrets, redactedError } from "../errors.ts";
import { COSIGN_RETRY } from "../consortium/cosigner.ts";
import { ERR_COSIGN_ANCHOR_UNSUPPORTED, ERR_COSIGN_THRESHOLD_NOT_MET } from "../consortium/errors.ts";
import { circuitOpenRetryAfterMs } from "../resilience/dependency.ts";
import { bullmqTelemetry } from "../telemetry/tracing.ts";
import { Backlog } from "./backlog.ts";
import type { PipelineContext } from "./context.ts";
import {
  ERR_CHAIN_UNKNOWN,
  ERR_DEAD_LETTER_NOT_FOUND,
  ERR_DEAD_LETTER_NOT_REPLAYABLE,
  ERR_RUN_TIMEOUT,
} from "./errors.ts";
import { DEFAULT_MICRO_BATCH, isMicroBatched, MicroBatchStore, type BatchEntry } from "./microBatch.ts";
import { attest } from "./processors/attest.ts";
import { runBatch, type BatchHost } from "./processors/batch.ts";
import { execute } from "./processors/execute.ts";
import { finalizeRun } from "./processors/finalize.ts";
import { write } from "./processors/write.ts";
import { RedisConnectionLog } from "./redisConnectionLog.ts";
import {
  bullmqConnectionOf,
  closeRedis,
  queuePrefixOf,
  redisEndpointOf,
  type RedisClient,
  type RedisEndpoint,
} from "./redisClient.ts";
import type { CompositeReceipt, RunRecord } from "./results.ts";
import { executeInputOf, sealEventInput } from "./sealedInput.ts";
import {
  QUEUES,
  RETRY,
  jobIds,
  jobRetention,
  type AttestJob,
  type BatchJob,
  type CryptletEvent,
  type ExecuteJob,
  type QueueName,
  type RunJob,
  type WriteJob,
} from "./topology.ts";

/**
 * Default bound on stalls per job (BullMQ `maxStalledCount`): 100. The chaos suite kills workers every 5-10 s; with 10
 * some writes stalled more often than that and were failed by BullMQ, silently (docs/reliability.md).
 */
export const MAX_STALLED_COUNT = 100;

/** BullMQ's answers to a job command from a worker that no longer holds the job (its `Error.code`). */
const LOCK_LOST_CODES: ReadonlySet<number> = new Set([
  ErrorCode.JobLockNotExist,
  ErrorCode.JobNotInState,
  ErrorCode.JobLockMismatch,
]);

/**
 * Whether `error` is BullMQ's refusal of a job command (`moveToDelayed` …) because this worker lost the job's lock:
 * the lock expired while Redis did not answer, or a Redis fail-over lost it, and the stalled-job check gave the job
 * to another worker (BullMQ `ErrorCode` -2, -3 or -6; "Missing lock for job …", "Lock mismatch …").
 */
export function isJobLockLost(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return error instanceof Error && typeof code === "number" && LOCK_LOST_CODES.has(code);
}

/** Worker tuning; every duration in milliseconds. */
export interface WorkerOptions {
  /** Stages this process works on. Default: all. */
  stages?: Exclude<QueueName, "dead-letter">[];
  /** Concurrent jobs per stage. Defaults: events 16, execute 4, attest 8, writes 64, runs 16, batches 4. */
  concurrency?: Partial<Record<Exclude<QueueName, "dead-letter">, number>>;
  /** A job whose worker stops renewing its lock for this long is re-queued (crash recovery). Default 30000. */
  lockDurationMs?: number;
  /** How often workers look for stalled jobs. Default 15000. */
  stalledIntervalMs?: number;
  /** Times a job may stall (its worker died or lost its lock) before BullMQ fails it. Default {@link MAX_STALLED_COUNT}. */
  maxStalledCount?: number;
}

/** A dead-letter entry: a job that failed for good. */
export interface DeadLetter {
  queue: QueueName;
  jobId: string;
  name: string;
  data: unknown;
  /**
   * The error as {@link errorToJSON} gives it, secrets redacted: code, message, retry verdict, and the error's
   * `details` and `cause` (for a sealed Cryptlet's execute failure, the code only).
   */
  error: { code: string; message: string; retryable: boolean; details?: Record<string, unknown>; cause?: string };
  attemptsMade: number;
  failedAt: number;
}

/** What {@link Pipeline.submit} returns. */
export interface SubmittedRun {
  runId: string;
  resultId: Hex32;
}

/** The status of a run, as {@link Pipeline.waitForRun} sees it. */
export type RunOutcome =
  | { status: "complete"; receipt: CompositeReceipt }
  | { status: "failed"; run: RunRecord; error: NonNullable<RunRecord["error"]> };

/**
 * How long a BullMQ worker's close may take once none of its jobs runs, ms: above its blocking wait (`drainDelay`,
 * 5 s, plus ioredis's 100 ms), after which {@link Pipeline.close} goes on without it.
 */
const WORKER_CLOSE_GRACE_MS = 10_000;

const DEFAULT_CONCURRENCY = { events: 16, execute: 4, attest: 8, writes: 64, runs: 16, batches: 4 } as const;

/** How often a process running workers removes dead letters older than the retention, in ms. */
const DEAD_LETTER_SWEEP_MS = 60_000;

/**
 * A queue that gives every job it adds the deployment's job retention ({@link jobRetention} of the result
 * store's `retentionSeconds`), whatever the caller passed: one place bounds how long finished jobs stay in Redis.
 */
class RetainingQueue<T> extends Queue<T> {
  readonly #retention: Pick<JobsOptions, "removeOnComplete" | "removeOnFail">;

  constructor(name: string, options: QueueOptions, retention: Pick<JobsOptions, "removeOnComplete" | "removeOnFail">) {
    super(name, options);
    this.#retention = retention;
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  override add(name: any, data: any, opts?: JobsOptions): any {
    return super.add(name, data, { ...opts, ...this.#retention });
  }
}

/** Queues, flow producer and (optionally) workers of one process. */
export class Pipeline {
  readonly ctx: PipelineContext;
  readonly #queues: Map<QueueName, Queue>;
  readonly #flows: FlowProducer;
  readonly #workers: Worker[] = [];
  /** The jobs each worker of this process is running now (their processor calls), for {@link close}. */
  readonly #inFlight = new Map<Worker, Set<Promise<unknown>>>();
  readonly #anchorLoops: Promise<void>[] = [];
  readonly #stopAnchors = new AbortController();
  /** The backlog bound (runs in flight), see runtime/queue/backlog.ts. */
  readonly backlog: Backlog;
  /** `removeOnComplete`/`removeOnFail` of every job, from the result store's retention. */
  readonly #retention: Pick<JobsOptions, "removeOnComplete" | "removeOnFail">;
  #deadLetterSweep: NodeJS.Timeout | undefined;
  #closing = false;

  /** The cluster clients given to BullMQ, which does not close them. */
  readonly #clusterClients: RedisClient[] = [];

  /** Redis connection errors of the pipeline's clients and queues, logged once per state change. */
  readonly redisConnection: RedisConnectionLog;

  readonly #telemetry: { telemetry?: NonNullable<ReturnType<typeof bullmqTelemetry>> };

  /**
   * The micro-batch queues and settings (runtime/queue/microBatch.ts). Every worker can run `batches` jobs; runs
   * are routed to them only when `ctx.microBatch` is set.
   */
  readonly #microBatches: Pick<BatchHost, "store" | "settings">;

  constructor(ctx: PipelineContext) {
    this.ctx = ctx;
    const connection = this.#connection();
    this.backlog = new Backlog(ctx.redis, ctx.prefix, ctx.backlog);
    this.#retention = jobRetention(ctx.results.retentionSeconds);
    this.#microBatches = {
      store: new MicroBatchStore(ctx.redis, ctx.prefix, ctx.results.retentionSeconds),
      settings: { ...DEFAULT_MICRO_BATCH, ...ctx.microBatch },
    };
    // Tracing (runtime/telemetry/tracing.ts): spans per job and the trace context carried in jobs, when started.
    const telemetry = bullmqTelemetry();
    this.#telemetry = telemetry ? { telemetry } : {};
    this.#queues = new Map(
      Object.values(QUEUES).map((name) => {
        const options = { connection, prefix: this.queuePrefix, ...this.#telemetry };
        const queue =
          name === QUEUES.deadLetter ? new Queue(name, options) : new RetainingQueue(name, options, this.#retention);
        return [name, queue] as const;
      }),
    );
    this.#flows = new FlowProducer({ connection, prefix: this.queuePrefix, ...this.#telemetry });
    // Connection errors go through the logger, one line per state change, never a raw stack trace per retry.
    this.redisConnection = new RedisConnectionLog(ctx.logger, ctx.redisUrl);
    for (const emitter of [ctx.redis, ...this.#queues.values(), this.#flows]) this.redisConnection.watch(emitter);
  }

  /** A BullMQ connection: options for one server, a new cluster client (closed by {@link close}) on a cluster. */
  #connection() {
    return bullmqConnectionOf(this.#endpoint, this.#clusterClients);
  }

  get #endpoint(): RedisEndpoint {
    return redisEndpointOf(this.ctx);
  }

  /**
   * BullMQ `connection` and `prefix` options for another queue or worker of this deployment (the schedules').
   * @param clients - receives the cluster client opened on a Redis Cluster: the caller closes it (BullMQ does not).
   */
  bullmqOptions(clients: RedisClient[]): { connection: ReturnType<typeof bullmqConnectionOf>; prefix: string } {
    return { connection: bullmqConnectionOf(this.#endpoint, clients), prefix: this.queuePrefix };
  }

  /** The BullMQ key prefix: `{prefix}` on a Redis Cluster (runtime/queue/redisClient.ts), else the prefix. */
  get queuePrefix(): string {
    return queuePrefixOf(this.ctx.prefix, this.#endpoint);
  }

  /** The BullMQ queue `name` (for dashboards and tests). */
  queue<T = unknown>(name: QueueName): Queue<T> {
    return this.#queues.get(name) as Queue<T>;
  }

  /**
   * Accepts an event: adds it to the `events` queue with a job id derived from the Cryptlet and the event id,
   * so the same event submitted twice is one run. The run is first counted into the backlog
   * ({@link Pipeline.backlog}); a run already in flight or already finished (the same event again) is accepted
   * whatever the backlog.
   * @returns the run id (= `resultId`).
   * @throws BacklogFullError (`ERR_BACKLOG_FULL`, retryable, `retryAfterSeconds`) when the backlog bound of all
   *   Cryptlets or of this one is reached; nothing is stored then, and the caller submits the event again later.
   */
  async submit(event: CryptletEvent): Promise<SubmittedRun> {
    const cryptletId = cryptletIdOf(event.cryptlet.name);
    const resultId = computeResultId(cryptletId, event.requestId ?? event.eventId);
    const counted =
      !(await this.ctx.results.isSettled(resultId)) &&
      (await this.backlog.admit(resultId, cryptletId, event.cryptlet.name));
    try {
      await this.queue<CryptletEvent>(QUEUES.events).add("event", await sealEventInput(event, this.ctx), {
        jobId: `event-${cryptletId}-${event.eventId}`,
        ...RETRY.events,
      });
    } catch (error) {
      if (counted) await this.backlog.release(resultId, cryptletId).catch(() => undefined);
      throw error;
    }
    return { runId: resultId, resultId };
  }

  /**
   * Withdraws a run from its package's micro-batch queue while no `batches` job has claimed it (runtime/queue/
   * microBatch.ts): for a trigger cancelling a run after a reorg.
   * @returns `withdrawn`, `claimed` (a job holds it: it will run), or `absent` (not micro-batched, or settled).
   */
  async withdrawBatchedRun(resultId: Hex32, codeHash: Hex32): Promise<"withdrawn" | "claimed" | "absent"> {
    return this.#microBatches.store.withdraw(codeHash, resultId);
  }

  /**
   * Takes a run out of the backlog: for a run that ends outside the pipeline's stages (a trigger cancelled it
   * after a reorg). Idempotent.
   * @param cryptlet - the run's Cryptlet name.
   */
  async releaseRun(runId: string, cryptlet: string): Promise<void> {
    await this.backlog.release(runId, cryptletIdOf(cryptlet));
  }

  /**
   * Waits until a run has its composite receipt or has failed before its writes.
   * @throws CryptletError `ERR_RUN_TIMEOUT` after `timeoutMs`.
   */
  async waitForRun(runId: string, timeoutMs = 60_000, pollMs = 50): Promise<RunOutcome> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const receipt = await this.ctx.results.getReceipt(runId);
      if (receipt) return { status: "complete", receipt };
      const run = await this.ctx.results.getRun(runId);
      if (run?.error) return { status: "failed", run, error: run.error };
      if (Date.now() > deadline) {
        throw new CryptletError(ERR_RUN_TIMEOUT, `run ${runId} not complete after ${timeoutMs} ms`, {
          details: { runId, timeoutMs },
        });
      }
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
  }

  /** Starts workers for the configured stages in this process. */
  startWorkers(options: WorkerOptions = {}): void {
    const stages = options.stages ?? ["events", "execute", "attest", "writes", "runs", "batches"];
    const concurrency = { ...DEFAULT_CONCURRENCY, ...options.concurrency };
    const ctx = this.ctx;
    const processors: Record<(typeof stages)[number], (job: Job, token?: string) => Promise<unknown>> = {
      events: (job) => this.#accept(job as Job<CryptletEvent>),
      execute: (job, token) => execute(job as Job<ExecuteJob>, ctx, token),
      attest: (job, token) => attest(job as Job<AttestJob>, ctx, this.queue<WriteJob>(QUEUES.writes), token),
      writes: (job, token) => write(job as Job<WriteJob>, ctx, token),
      runs: (job) => finalizeRun(job as Job<RunJob>, ctx),
      batches: (job, token) => runBatch(job as Job<BatchJob>, ctx, this.#batchHost(), token),
    };
    for (const stage of stages) {
      const processor = processors[stage];
      const inFlight = new Set<Promise<unknown>>();
      const worker = new Worker(
        stage,
        async (job, token) => {
          let finished = () => {};
          const running = new Promise<void>((resolve) => (finished = resolve));
          inFlight.add(running);
          try {
            const value = await processor(job, token);
            if (stage === "runs") {
              const data = job.data as RunJob;
              await this.backlog.release(data.resultId, data.cryptlet.cryptletId);
            }
            return value;
          } catch (error) {
            throw await this.#onError(stage, job, error);
          } finally {
            inFlight.delete(running);
            finished();
          }
        },
        {
          connection: this.#connection(),
          prefix: this.queuePrefix,
          ...this.#telemetry,
          concurrency: concurrency[stage],
          lockDuration: options.lockDurationMs ?? 30_000,
          stalledInterval: options.stalledIntervalMs ?? 15_000,
          // A job whose worker died mid-way is taken over (every stage is idempotent on its key); BullMQ fails a job
          // that stalled more than this many times, outside the pipeline's error handling (no retry, no dead
          // letter), so the bound is high: it only stops a job that kills every worker taking it.
          maxStalledCount: options.maxStalledCount ?? MAX_STALLED_COUNT,
        },
      );
      // Connection errors: one line per outage (the pipeline's RedisConnectionLog); others: one line each.
      this.redisConnection.watch(worker, (error) =>
        ctx.logger?.error({ stage, err: redactSecrets(String(error)) }, "worker error"),
      );
      this.#workers.push(worker);
      this.#inFlight.set(worker, inFlight);
    }
    if (stages.includes("writes") || stages.includes("batches")) {
      // Anchor batches are closed and written by every process that runs writes or micro-batches (which wait for
      // them); batch locks keep them apart.
      for (const chain of ctx.chains.values()) {
        if (chain.anchors) this.#anchorLoops.push(chain.anchors.run(this.#stopAnchors.signal));
      }
    }
    this.#deadLetterSweep ??= setInterval(() => {
      this.sweepDeadLetters().catch((error: unknown) =>
        ctx.logger?.warn({ err: redactSecrets(String(error)) }, "dead-letter sweep failed"),
      );
    }, DEAD_LETTER_SWEEP_MS);
    this.#deadLetterSweep.unref();
  }

  /**
   * Removes dead-letter entries older than the retention (the result store's `retentionSeconds`): they are kept
   * for inspection and replay within the window, like everything else. Processes running workers call it every
   * minute.
   * @returns how many entries were removed.
   */
  async sweepDeadLetters(): Promise<number> {
    const removed = await this.queue(QUEUES.deadLetter).clean(this.ctx.results.retentionSeconds * 1000, 1000, "wait");
    return removed.length;
  }

  /** Routes an event to its run: resolves the package, records the run, adds the flow. */
  async #accept(job: Job<CryptletEvent>): Promise<SubmittedRun & { duplicate: boolean }> {
    const event = job.data;
    const pkg = await this.ctx.packages.get(event.cryptlet.name, event.cryptlet.version);
    const requestId = event.requestId ?? event.eventId;
    const resultId = computeResultId(pkg.cryptletId, requestId);
    const runId = resultId;
    const targets: RunRecord["targets"] = pkg.manifest.targets
      .filter((t) => t.mode !== "oracle")
      .map((t) =>
        // A cross-chain result goes where its event says: the destination's wrapped token for a lock, the source's
        // lockbox for a burn or a refund (runtime/crosschain/routes.ts).
        t.mode === "crosschain"
          ? crosschainTargetOf(
              event,
              pkg.manifest.name,
              [...this.ctx.chains.values()].map((c) => c.config),
            )
          : { ...t },
      );
    if (event.source.type === "oracle") {
      targets.unshift({ chain: event.source.chain, mode: "oracle", address: event.source.oracle });
    }
    for (const target of targets) {
      // A member signs results, not batches: a batch would carry one member's signature, below the threshold.
      if (this.ctx.consortium && target.mode === "anchor") {
        throw new CryptletError(
          ERR_COSIGN_ANCHOR_UNSUPPORTED,
          `${pkg.manifest.name} has an anchor target on chain "${target.chain}": a consortium member does not co-sign batches`,
          { details: { cryptlet: pkg.manifest.name, chain: target.chain } },
        );
      }
      if (!this.ctx.chains.has(target.chain)) {
        throw new CryptletError(
          ERR_CHAIN_UNKNOWN,
          `target chain "${target.chain}" of ${pkg.manifest.name} is not configured`,
          {
            details: { chain: target.chain, cryptlet: pkg.manifest.name },
          },
        );
      }
    }
    const cryptlet = {
      name: pkg.manifest.name,
      version: pkg.manifest.version,
      cryptletId: pkg.cryptletId,
      codeHash: pkg.codeHash,
    };
    await this.ctx.results.putRun({
      runId,
      resultId,
      eventId: event.eventId,
      requestId,
      cryptlet,
      targets,
      acceptedAt: Date.now(),
      event: { type: event.source.type, time: event.time },
    });
    const normalisedEvent = { eventId: event.eventId, requestId, source: event.source, time: event.time };
    const callbackGasLimit = event.source.type === "oracle" ? event.source.callbackGasLimit : undefined;
    const attestJob: AttestJob = {
      runId,
      resultId,
      requestId,
      codeHash: pkg.codeHash,
      ...(callbackGasLimit === undefined ? {} : { callbackGasLimit }),
    };
    const executeJob: ExecuteJob = {
      runId,
      resultId,
      requestId,
      eventId: event.eventId,
      cryptletId: pkg.cryptletId,
      codeHash: pkg.codeHash,
      event: normalisedEvent,
      ...(await executeInputOf(event, pkg, this.ctx)),
      time: event.time,
    };
    if (isMicroBatched(this.ctx.microBatch, this.ctx.consortium !== undefined, targets)) {
      // Anchor-only: the run joins its package's open micro-batch (runtime/queue/microBatch.ts), whose job is made
      // sure to exist here, also for a duplicate (a first accept may have died between the two).
      const { joined, generation } = await this.#microBatches.store.join({ execute: executeJob, attest: attestJob });
      await this.#scheduleBatch(pkg, generation, this.#microBatches.settings.windowMs);
      return { runId, resultId, duplicate: !joined };
    }
    const existing = await this.queue(QUEUES.runs).getJob(jobIds.run(resultId));
    if (existing) {
      // The same event again after its events job was removed: the run exists. If it already finished, this
      // submission's count in the backlog has nobody else to release it.
      const state = await existing.getState();
      if (state === "completed" || state === "failed") await this.backlog.release(resultId, pkg.cryptletId);
      return { runId, resultId, duplicate: true };
    }
    await this.#addRunFlow(
      "",
      { runId, resultId, eventId: event.eventId, cryptlet },
      attestJob,
      executeJob,
      "sealed" in pkg.manifest.output,
    );
    return { runId, resultId, duplicate: false };
  }

  /**
   * Makes sure the `batches` job of a package's micro-batch generation exists (its id derives from the generation:
   * adding it again is a no-op).
   * @param delayMs - how long the job waits before it claims its runs.
   */
  async #scheduleBatch(
    pkg: Pick<BatchJob, "codeHash" | "cryptletId">,
    generation: number,
    delayMs: number,
  ): Promise<void> {
    const data: BatchJob = { codeHash: pkg.codeHash, cryptletId: pkg.cryptletId, generation };
    await this.queue<BatchJob>(QUEUES.batches).add("batch", data, {
      jobId: jobIds.batch(pkg.codeHash, generation),
      ...(delayMs > 0 ? { delay: delayMs } : {}),
      ...RETRY.batches,
    });
  }

  /** What the `batches` stage needs from this pipeline (runtime/queue/processors/batch.ts). */
  #batchHost(): BatchHost {
    return {
      ...this.#microBatches,
      schedule: (pkg, generation, delayMs) => this.#scheduleBatch(pkg, generation, delayMs),
      failRun: (job, entry, stage, error) => this.#failBatchedRun(job, entry, stage, error),
      release: (resultId, cryptletId) => this.backlog.release(resultId, cryptletId),
    };
  }

  /**
   * A run of a micro-batch that failed for good: logged, dead-lettered on its own (the entry names the batch job
   * and the run), its run record failed, and out of the backlog. A sealed Cryptlet's error keeps its code only.
   */
  async #failBatchedRun(
    job: Job<BatchJob>,
    entry: BatchEntry,
    stage: "execute" | "attest",
    error: unknown,
  ): Promise<void> {
    const { resultId, cryptletId, codeHash } = entry.execute;
    const { withheld: _withheld, ...described } = await this.#describeFailure(stage, codeHash, error);
    this.ctx.logger?.warn(
      { stage: QUEUES.batches, jobId: job.id, resultId, code: described.code, final: true, error: described },
      "run of a micro-batch failed",
    );
    const dead: DeadLetter = {
      queue: QUEUES.batches,
      jobId: `${job.id}:${resultId}`,
      name: stage,
      data: entry,
      error: described,
      attemptsMade: job.attemptsMade + 1,
      failedAt: Date.now(),
    };
    await this.queue<DeadLetter>(QUEUES.deadLetter).add("dead-letter", dead, {
      jobId: `dlq-${job.id}-${resultId}`,
      removeOnComplete: false,
      removeOnFail: false,
    });
    await this.ctx.results.failRun(resultId, { code: described.code, message: described.message, stage });
    await this.backlog.release(resultId, cryptletId);
  }

  /**
   * A failure as dead letters and run records keep it ({@link errorToJSON}, secrets redacted). An `execute`
   * failure of a sealed Cryptlet keeps its code only: a Cryptlet's error text may echo its input.
   * @param codeHash - the run's package, when known.
   */
  async #describeFailure(
    stage: string,
    codeHash: string | undefined,
    error: unknown,
  ): Promise<DeadLetter["error"] & { withheld: boolean }> {
    const json = errorToJSON(error);
    const described: DeadLetter["error"] & { withheld: boolean } = {
      code: json.code,
      message: json.message,
      retryable: json.retryable,
      ...(json.details === undefined ? {} : { details: json.details }),
      ...(json.cause === undefined ? {} : { cause: json.cause }),
      withheld: false,
    };
    if (stage === "execute" && codeHash) {
      const pkg = await this.ctx.packages.getByCodeHash(codeHash).catch(() => undefined);
      if (pkg && "sealed" in pkg.manifest.output) {
        described.message = "(withheld: sealed Cryptlet)";
        described.withheld = true;
        delete described.details;
        delete described.cause;
      }
    }
    return described;
  }

  /**
   * Adds a run's flow (run ← attest ← execute). `tail` (appended to the job ids) is empty for a new run and unique
   * for a resumed one ({@link Pipeline.replay}). In consortium mode the stage that co-signs (attest, or execute for
   * a sealed result) retries with the consortium's policy.
   */
  async #addRunFlow(
    tail: string,
    run: RunJob,
    attestJob: AttestJob,
    executeJob: ExecuteJob,
    sealed: boolean,
  ): Promise<void> {
    const { resultId } = run;
    const cosignRetry = this.ctx.consortium ? (this.ctx.consortium.retry ?? COSIGN_RETRY) : undefined;
    await this.#flows.add({
      name: "run",
      queueName: QUEUES.runs,
      data: run,
      opts: { jobId: jobIds.run(resultId) + tail, ...RETRY.runs, ...this.#retention },
      children: [
        {
          name: "attest",
          queueName: QUEUES.attest,
          data: attestJob,
          opts: {
            jobId: jobIds.attest(resultId) + tail,
            failParentOnFailure: true,
            ...(cosignRetry && !sealed ? cosignRetry : RETRY.attest),
            ...this.#retention,
          },
          children: [
            {
              name: "execute",
              queueName: QUEUES.execute,
              data: executeJob,
              opts: {
                jobId: jobIds.execute(resultId) + tail,
                failParentOnFailure: true,
                ...(cosignRetry && sealed ? cosignRetry : RETRY.execute),
                ...this.#retention,
              },
            },
          ],
        },
      ],
    });
  }

  /**
   * Classifies a failure: BullMQ's own control-flow errors pass through; a failure that will not be retried
   * (not retryable, or attempts exhausted) goes to the dead-letter queue and, for a write, into the run's
   * receipt as `failed`.
   */
  async #onError(stage: QueueName, job: Job, error: unknown): Promise<unknown> {
    if (error instanceof DelayedError || error instanceof WaitingChildrenError) return error;
    // The job is no longer this worker's: whatever this attempt did is not its outcome. The worker that holds the
    // job now finishes it (every stage is idempotent on its key), so no dead letter, failed outcome or failed run:
    // one here once named a result that the other worker then wrote (the Redis Cluster fail-over test).
    if (isJobLockLost(error)) {
      this.ctx.logger?.warn(
        { stage, jobId: job.id, err: redactSecrets(String(error)) },
        "job lock lost: another worker holds the job now",
      );
      return error;
    }
    // A dependency whose circuit breaker is open (runtime/resilience; a chain's JSON-RPC breaker too, as the cause
    // of ERR_CHAIN_RPC_UNAVAILABLE): the job waits for it without spending an attempt, so an outage of any length
    // ends in a retry, not a dead letter (and no log line per job).
    const retryAfterMs = circuitOpenRetryAfterMs(error);
    if (retryAfterMs !== undefined && job.token) {
      await job.moveToDelayed(Date.now() + retryAfterMs + Math.floor(Math.random() * retryAfterMs), job.token);
      return new DelayedError();
    }
    const retry = classifyError(error) === "retry";
    const final = !retry || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    // Everything recorded below (log, dead letter, run record, receipt, BullMQ's failedReason) is redacted.
    const data = job.data as { resultId?: Hex32; chain?: string; mode?: WriteJob["mode"] };
    const run = stage === "execute" && data.resultId ? await this.ctx.results.getRun(data.resultId) : undefined;
    const { withheld, ...described } = await this.#describeFailure(stage, run?.cryptlet.codeHash, error);
    this.ctx.logger?.warn({ stage, jobId: job.id, code: described.code, final, error: described }, "job failed");
    // Redis that lost its data fails every job ("Missing key for job"): the guard stops the runtime, no dead letter.
    const lost = final ? await this.ctx.durability?.check() : undefined;
    if (lost) return lost;
    if (final) {
      const entry: DeadLetter = {
        queue: stage,
        jobId: String(job.id),
        name: job.name,
        data: job.data,
        error: described,
        attemptsMade: job.attemptsMade + 1,
        failedAt: Date.now(),
      };
      await this.queue<DeadLetter>(QUEUES.deadLetter).add("dead-letter", entry, {
        jobId: `dlq-${job.id}-${job.attemptsMade}`,
        removeOnComplete: false,
        removeOnFail: false,
      });
      await this.#releaseFailed(stage, job).catch((e: unknown) =>
        this.ctx.logger?.warn({ stage, jobId: job.id, err: redactSecrets(String(e)) }, "backlog release failed"),
      );
      if (data.resultId) {
        if (stage === "writes" && data.chain && data.mode) {
          await this.ctx.results.putOutcome(data.resultId, {
            chain: data.chain,
            mode: data.mode,
            status: "failed",
            error: { code: described.code, message: described.message },
            updatedAt: Date.now(),
          });
        } else if (stage === "execute" || stage === "attest") {
          await this.ctx.results.failRun(data.resultId, { code: described.code, message: described.message, stage });
        }
      }
      if (stage === "batches") await this.#failBatch(job as Job<BatchJob>, described);
    }
    if (!retry) return new UnrecoverableError(`${described.code}: ${described.message}`);
    return withheld ? new Error(`${described.code}: ${described.message}`) : redactedError(error);
  }

  /**
   * A `batches` job that failed for good as a whole (its runs' own failures are handled inside it): every run it
   * claimed that has not settled fails with the job's error (the job's dead-letter entry names the batch) and
   * leaves the backlog.
   */
  async #failBatch(job: Job<BatchJob>, error: { code: string; message: string }): Promise<void> {
    const { codeHash, generation } = job.data;
    const { store, settings } = this.#microBatches;
    const { entries } = await store.claim(codeHash, generation, settings.maxResults);
    for (const { execute: run } of entries) {
      if (!(await this.ctx.results.isSettled(run.resultId))) {
        await this.ctx.results.failRun(run.resultId, { code: error.code, message: error.message, stage: "batches" });
        await this.backlog.release(run.resultId, run.cryptletId);
      }
      await store.settle(codeHash, run.resultId);
    }
    await store.release(codeHash, generation);
  }

  /** Takes a run that failed for good in `stage` out of the backlog (a failed write does not end its run). */
  async #releaseFailed(stage: QueueName, job: Job): Promise<void> {
    if (stage === "events") {
      const event = job.data as CryptletEvent;
      const cryptletId = cryptletIdOf(event.cryptlet.name);
      await this.backlog.release(computeResultId(cryptletId, event.requestId ?? event.eventId), cryptletId);
    } else if (stage === "execute") {
      const data = job.data as ExecuteJob;
      await this.backlog.release(data.resultId, data.cryptletId);
    } else if (stage === "attest") {
      const run = await this.ctx.results.getRun((job.data as AttestJob).resultId);
      if (run) await this.backlog.release(run.resultId, run.cryptlet.cryptletId);
    } else if (stage === "runs") {
      const data = job.data as RunJob;
      await this.backlog.release(data.resultId, data.cryptlet.cryptletId);
    }
  }

  /** Dead-letter entries, newest first. */
  async deadLetters(limit = 100): Promise<DeadLetter[]> {
    const jobs = await this.queue<DeadLetter>(QUEUES.deadLetter).getJobs(["waiting", "delayed"], 0, limit - 1);
    return jobs.map((j) => j.data).sort((a, b) => b.failedAt - a.failedAt);
  }

  /**
   * Replays a dead-lettered write: adds it again (a new job id) and removes the entry. A write is the one stage
   * that can be replayed alone; a run that failed before its writes is submitted again as a new event instead,
   * except a consortium run that failed with `ERR_COSIGN_THRESHOLD_NOT_MET`: it is resumed (its run runs again,
   * execute, co-signing and writes, under new job ids; the chain's `isRecorded` keeps it to one write), and the
   * returned id is the new run job's.
   * @throws CryptletError `ERR_DEAD_LETTER_NOT_REPLAYABLE` for other stages.
   */
  async replay(entryJobId: string): Promise<string> {
    const queue = this.queue<DeadLetter>(QUEUES.deadLetter);
    const entry = await queue.getJob(entryJobId);
    if (!entry) throw new CryptletError(ERR_DEAD_LETTER_NOT_FOUND, `no dead-letter entry ${entryJobId}`);
    if (entry.data.error.code === ERR_COSIGN_THRESHOLD_NOT_MET.code && this.ctx.consortium) {
      const jobId = await this.#resumeRun(entry.data.data as { resultId: Hex32 });
      await entry.remove();
      return jobId;
    }
    if (entry.data.queue !== "writes") {
      throw new CryptletError(
        ERR_DEAD_LETTER_NOT_REPLAYABLE,
        `entries of stage ${entry.data.queue} are not replayable; resubmit the event`,
        {
          details: { queue: entry.data.queue },
        },
      );
    }
    const jobId = `${entry.data.jobId}-replay-${Date.now()}`;
    await this.queue<WriteJob>(QUEUES.writes).add("write", entry.data.data as WriteJob, {
      jobId,
      ...RETRY.writes,
    });
    await entry.remove();
    return jobId;
  }

  /**
   * Resumes a consortium run that failed for lack of co-signatures: clears its failure and adds its flow again
   * (new job ids) from the original execute job's data (a sealed Cryptlet's input stays encrypted at rest).
   * @throws CryptletError `ERR_DEAD_LETTER_NOT_REPLAYABLE` when the run record or the execute job is gone.
   */
  async #resumeRun(data: { resultId: Hex32 }): Promise<string> {
    const run = await this.ctx.results.getRun(data.resultId);
    const executeJob = await this.queue<ExecuteJob>(QUEUES.execute).getJob(jobIds.execute(data.resultId));
    const attestJob = await this.queue<AttestJob>(QUEUES.attest).getJob(jobIds.attest(data.resultId));
    if (!run || !executeJob || !attestJob) {
      throw new CryptletError(ERR_DEAD_LETTER_NOT_REPLAYABLE, `run ${data.resultId} can no longer be resumed`, {
        details: { resultId: data.resultId },
      });
    }
    const pkg = await this.ctx.packages.getByCodeHash(run.cryptlet.codeHash);
    const tail = `-resume-${Date.now()}`;
    await this.ctx.results.reopenRun(run.resultId);
    const { leadAfter: _a, ...attestData } = attestJob.data;
    const { leadAfter: _e, ...executeData } = executeJob.data;
    await this.#addRunFlow(
      tail,
      { runId: run.runId, resultId: run.resultId, eventId: run.eventId, cryptlet: run.cryptlet },
      attestData,
      executeData,
      "sealed" in pkg.manifest.output,
    );
    return jobIds.run(run.resultId) + tail;
  }

  /**
   * Resolves once every queue, the flow producer and every worker started so far have their Redis connections
   * (BullMQ `waitUntilReady`; a worker's blocking connection too).
   * @throws what BullMQ throws when a connection cannot be made.
   */
  async waitUntilReady(): Promise<void> {
    await Promise.all([
      ...[...this.#queues.values()].map((q) => q.waitUntilReady()),
      this.#flows.waitUntilReady(),
      ...this.#workers.map((w) => w.waitUntilReady()),
    ]);
  }

  /**
   * Graceful shutdown: workers stop taking jobs and finish the ones they hold (a write in flight completes or
   * stays resumable from its lane record), then connections close.
   */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    clearInterval(this.#deadLetterSweep);
    await Promise.all(this.#workers.map((w) => this.#closeWorker(w)));
    this.#stopAnchors.abort();
    await Promise.all(this.#anchorLoops);
    await this.#flows.close();
    await Promise.all([...this.#queues.values()].map((q) => q.close()));
    await Promise.all(this.#clusterClients.map(closeRedis));
  }

  /**
   * Closes one BullMQ worker gracefully: it takes no new job and the jobs it runs finish. BullMQ's close then ends
   * the worker's blocking connection and waits for its `end` event, which ioredis does not always emit (after a
   * Redis Cluster fail-over a duplicated cluster client was seen to stay in status `close` for ever, and the drain
   * ran into the process's shutdown deadline, exit 1; upstream taskforcesh/bullmq#4065 and #4656). So once the
   * worker runs no job of ours, its close gets {@link WORKER_CLOSE_GRACE_MS} more; past that it is left, with a
   * warning, and shutdown goes on: nothing of it is running, and its connections hold no socket that matters.
   */
  async #closeWorker(worker: Worker): Promise<void> {
    const closed = worker.close();
    const inFlight = this.#inFlight.get(worker) ?? new Set();
    // Jobs may start until BullMQ has stopped fetching: wait until none runs.
    while (inFlight.size > 0) {
      const done = await Promise.race([closed.then(() => true), Promise.all(inFlight).then(() => false)]);
      if (done) return;
    }
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), WORKER_CLOSE_GRACE_MS);
    });
    const outcome = await Promise.race([closed.then(() => "closed" as const), grace]);
    clearTimeout(timer);
    if (outcome === "late") {
      closed.catch(() => undefined);
      this.ctx.logger?.warn(
        { stage: worker.name, graceMs: WORKER_CLOSE_GRACE_MS },
        "a queue worker's close did not end after its jobs finished (its blocking connection); shutting down without it",
      );
    }
  }
}
