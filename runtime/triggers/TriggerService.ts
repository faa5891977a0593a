/**
 * The triggers of one runtime process: the chain-log listener (manifest chain-log triggers, each chain's oracle
 * requests and the cross-chain contracts' events), the cross-chain deadline watcher and the schedules, kept in
 * step with the deployed packages.
 *
 * @module
 */
import { DeadlineWatcher } from "../crosschain/deadlineWatcher.ts";
import { crosschainConfirmationsOf, crosschainSubscriptionsOf } from "../crosschain/routes.ts";
import type { PipelineLogger } from "../queue/context.ts";
import type { Pipeline } from "../queue/pipeline.ts";
import { redactSecrets } from "../redact.ts";
import { ChainLogListener, type ChainLogListenerOptions } from "./ChainLogListener.ts";
import { ScheduleService } from "./ScheduleService.ts";
import { subscriptionsOf, type LogSubscription, type ScheduleSpec } from "./subscriptions.ts";
import type { TriggerProblem } from "./TriggerStore.ts";

/** Options of {@link TriggerService}; durations in milliseconds. */
export interface TriggerServiceOptions extends Pick<
  ChainLogListenerOptions,
  "pollIntervalMs" | "heads" | "maxBlockRange" | "reorgWindow" | "lockTtlMs" | "onEvent"
> {
  pipeline: Pipeline;
  /** How often the deployed packages are re-read for new or removed triggers. Default 5000. */
  refreshIntervalMs?: number;
  /** Subscriptions in addition to the manifests' (e.g. an oracle with an explicit confirmation depth). */
  subscriptions?: readonly LogSubscription[];
  /** Schedules in addition to the manifests'. */
  schedules?: readonly ScheduleSpec[];
  /** Run schedules in this process. Default true. */
  schedulesEnabled?: boolean;
  logger?: PipelineLogger;
}

/**
 * Starts and stops every trigger for a pipeline.
 *
 * @example
 * ```ts
 * import { createPipelineContext } from "./runtime/bootstrap.ts";
 * import { loadRuntimeConfig } from "./runtime/config.ts";
 * import { Pipeline } from "./runtime/queue/pipeline.ts";
 * import { TriggerService } from "./runtime/triggers/TriggerService.ts";
 *
 * const pipeline = new Pipeline(await createPipelineContext(loadRuntimeConfig("cryptlet.config.json")));
 * const triggers = new TriggerService({ pipeline });
 * await triggers.start();
 * process.once("SIGTERM", () => void triggers.stop()); // finishes the scan in progress, keeps checkpoints
 * ```
 */
export class TriggerService {
  readonly listener: ChainLogListener;
  readonly schedules: ScheduleService | undefined;
  /** Refunds of cross-chain locks not minted by their deadline (runtime/crosschain/deadlineWatcher.ts). */
  readonly deadlines: DeadlineWatcher;
  readonly #pipeline: Pipeline;
  readonly #refreshIntervalMs: number;
  readonly #explicit: readonly LogSubscription[];
  readonly #explicitSchedules: readonly ScheduleSpec[];
  readonly #logger: PipelineLogger | undefined;
  #timer: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> | undefined;

  constructor(options: TriggerServiceOptions) {
    this.#pipeline = options.pipeline;
    this.#refreshIntervalMs = options.refreshIntervalMs ?? 5000;
    this.#explicit = options.subscriptions ?? [];
    this.#explicitSchedules = options.schedules ?? [];
    this.#logger = options.logger ?? options.pipeline.ctx.logger;
    const { pipeline, pollIntervalMs, heads, maxBlockRange, reorgWindow, lockTtlMs, onEvent } = options;
    this.listener = new ChainLogListener({
      pipeline,
      ...(pollIntervalMs === undefined ? {} : { pollIntervalMs }),
      ...(heads === undefined ? {} : { heads }),
      ...(maxBlockRange === undefined ? {} : { maxBlockRange }),
      ...(reorgWindow === undefined ? {} : { reorgWindow }),
      ...(lockTtlMs === undefined ? {} : { lockTtlMs }),
      ...(onEvent === undefined ? {} : { onEvent }),
      ...(this.#logger ? { logger: this.#logger } : {}),
    });
    this.deadlines = new DeadlineWatcher({
      pipeline,
      ...(pollIntervalMs === undefined ? {} : { pollIntervalMs }),
      ...(this.#logger ? { logger: this.#logger } : {}),
    });
    this.schedules =
      options.schedulesEnabled === false
        ? undefined
        : new ScheduleService({ pipeline, ...(this.#logger ? { logger: this.#logger } : {}) });
  }

  /**
   * Re-reads the deployed packages (latest version of each) and applies their triggers: listener subscriptions
   * and job schedulers. A package whose triggers cannot be derived is recorded in the problems journal.
   */
  async refresh(): Promise<{ subscriptions: LogSubscription[]; schedules: ScheduleSpec[] }> {
    const store = this.#pipeline.ctx.packages;
    const packages = [];
    for (const summary of await store.list()) {
      try {
        packages.push(await store.get(summary.name));
      } catch (error) {
        await this.listener.store.recordProblem(error);
      }
    }
    const oracles = new Map<string, string>();
    for (const [name, chain] of this.#pipeline.ctx.chains) {
      if (chain.config.contracts.oracle) oracles.set(name, chain.config.contracts.oracle);
    }
    const derived = subscriptionsOf(packages, oracles);
    // Cross-chain packages listen to the lockboxes and wrapped tokens the chain configuration names for them.
    const configs = [...this.#pipeline.ctx.chains.values()].map((c) => c.config);
    derived.logs.push(...crosschainSubscriptionsOf(packages, configs));
    this.deadlines.setPackages(
      packages.flatMap((p) => {
        const confirmations = crosschainConfirmationsOf(p.manifest);
        return confirmations === undefined ? [] : [{ name: p.manifest.name, confirmations }];
      }),
    );
    const explicitIds = new Set(this.#explicit.map((s) => s.id));
    const subscriptions = [...this.#explicit, ...derived.logs.filter((s) => !explicitIds.has(s.id))];
    await this.listener.setSubscriptions(subscriptions);
    const explicitSchedules = new Set(this.#explicitSchedules.map((s) => s.id));
    const schedules = [...this.#explicitSchedules, ...derived.schedules.filter((s) => !explicitSchedules.has(s.id))];
    if (this.schedules) {
      try {
        await this.schedules.sync(schedules);
      } catch (error) {
        await this.listener.store.recordProblem(error);
      }
    }
    return { subscriptions: this.listener.subscriptions, schedules };
  }

  /** Applies the packages' triggers, then starts the listener, the schedule worker and the periodic refresh. */
  async start(): Promise<void> {
    await this.refresh();
    this.listener.start();
    this.deadlines.start();
    this.schedules?.start();
    this.#timer = setInterval(() => {
      if (this.#refreshing) return;
      this.#refreshing = this.refresh()
        .then(() => undefined)
        .catch((error: unknown) => this.#logger?.error({ err: redactSecrets(String(error)) }, "trigger refresh failed"))
        .finally(() => (this.#refreshing = undefined));
    }, this.#refreshIntervalMs);
  }

  /** Graceful stop: no more refreshes; the listener finishes its range and keeps its checkpoint; ticks in hand finish. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#refreshing;
    await this.listener.stop();
    await this.deadlines.stop();
    await this.schedules?.stop();
  }

  /** The problems journal (skipped logs, unknown Cryptlets, invalid triggers), oldest first. */
  problems(limit?: number): Promise<TriggerProblem[]> {
    return this.listener.store.problems(limit);
  }
}
