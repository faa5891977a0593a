/**
 * One chaos run: N events submitted at a steady rate to a Cryptlet that writes to both chains, while worker
 * processes are SIGKILLed on a schedule and the dependencies fail one after another (Redis restarted, JSON-RPC
 * refused, black-holed, answering 502 after forwarding a transaction, Key Vault refused and hung, a chain frozen);
 * then the faults stop, the backlog drains, and the chains are counted (chainCount.ts). The run passes only when
 * every accepted event is written exactly once on every chain, every run has its receipt, no relayer transaction
 * is stuck or unaccounted for, nothing is dead-lettered, and every requested fault was injected.
 *
 * @module
 */
import os from "node:os";

import { httpEventId } from "../../attestation/ids.ts";
import { isCryptletError } from "../../errors.ts";
import { loadMinuteInputs } from "../../../cryptlets/price-median/data/loadObservations.ts";
import { ChainScanner, judgeChain, type ChainVerdict } from "./chainCount.ts";
import type { FaultProxy, FaultProxyStats } from "./faultProxy.ts";
import { WorkerSupervisor, type RedisPersistence, type WorkerStats } from "./processes.ts";
import { startChaosStack, type ChaosStack } from "./stack.ts";

/** The fault kinds of a chaos run. `worker-kill` runs all along; the others take turns. */
export const SCENARIOS = [
  "worker-kill",
  "redis-restart",
  "rpc-refuse",
  "rpc-black-hole",
  "rpc-502-after-forward",
  "kv-refuse",
  "kv-hang",
  "chain-freeze",
] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** Options of {@link runChaos}; durations in ms. */
export interface ChaosOptions {
  /** Events to submit. */
  events: number;
  /** Submission rate, events per second. */
  rate: number;
  /** At most this many accepted events without a receipt; submission waits above it. */
  maxInFlight: number;
  scenarios: Scenario[];
  /** How long each turn-taking fault lasts (a Key Vault hang: twice as long). */
  faultMs: number;
  /** Quiet time between two faults. */
  gapMs: number;
  /** Worker processes. */
  workers: number;
  /**
   * A worker is SIGKILLed every `killMinMs`..`killMaxMs` (uniform), chosen among those taking jobs for at least
   * `minUptimeMs`; when none qualifies the kill waits for one.
   */
  killMinMs: number;
  killMaxMs: number;
  minUptimeMs: number;
  /** The workers' BullMQ lock duration and stalled-job check interval (`CRYPTLET_LOCK_MS`, `CRYPTLET_STALLED_MS`). */
  lockMs: number;
  stalledMs: number;
  redisPort: number;
  redisPersistence: RedisPersistence;
  /** The drain gives up after this long without a run completing. */
  drainTimeoutMs: number;
  /** Seed of the schedule's random choices. */
  seed: number;
  /** Keep the run's directory (configuration, worker logs, Redis files) instead of deleting it. */
  keepDir: boolean;
  /** An event whose submission keeps failing this long (ms) is given up and counted as not accepted. */
  submitTimeoutMs: number;
  /** When aborted, submission and faults stop (the events accepted so far are drained and counted). */
  stopSubmitting?: AbortSignal;
}

/** One fault as injected. */
export interface FaultRecord {
  kind: Scenario;
  target: string;
  startedAt: number;
  endedAt: number;
  /**
   * Requests or connections the fault hit (refused, black-holed, answered 502; 1 for a restart or a freeze). A
   * proxy fault is held past its duration, up to three times as long, until it hits something.
   */
  hits: number;
}

/** Total of a proxy's fault counters. */
const hitsOf = (proxies: FaultProxy[]) =>
  proxies.reduce((sum, p) => sum + p.stats.refused + p.stats.blackHoled + p.stats.answered502, 0);

/**
 * The longest a fault that has hit no request stays on, in ms: above a lane lock's longest wait (30 s,
 * runtime/chains/lane.ts), so that a chain whose writes wait for their lane (a writer held it across the whole fault,
 * seen in fresh-clone CI runs: `ERR_CHAIN_LANE_BUSY`) still sends a transaction into a `502-after-forward` fault.
 */
const HOLD_UNTIL_HIT_MAX_MS = 60_000;

/**
 * Waits `holdMs`, then longer (up to 3 × `holdMs`, or {@link HOLD_UNTIL_HIT_MAX_MS} if that is longer) while the
 * proxies' fault counters stay at `before`.
 * @returns the fault's hits.
 */
async function holdUntilHit(proxies: FaultProxy[], before: number, holdMs: number): Promise<number> {
  const began = Date.now();
  await sleep(holdMs);
  const longest = Math.max(3 * holdMs, HOLD_UNTIL_HIT_MAX_MS);
  while (hitsOf(proxies) === before && Date.now() - began < longest) await sleep(250);
  return hitsOf(proxies) - before;
}

/** Everything a run measured. */
export interface ChaosReport {
  startedAt: string;
  machine: string;
  /** 1-minute load average when the run started, and its highest value seen during the run. */
  load: { atStart: number; max: number };
  options: ChaosOptions;
  seconds: { total: number; submitting: number; draining: number };
  events: {
    planned: number;
    accepted: number;
    /** Events given up after {@link ChaosOptions.submitTimeoutMs} of failed submissions. */
    givenUp: number;
    /** Submission was stopped before `planned` (by {@link ChaosOptions.stopSubmitting}). */
    stoppedEarly: boolean;
    /** Failed submissions (each retried) by error code. */
    submitRetries: Record<string, number>;
  };
  receipts: { confirmed: number; partialOrFailed: number; missing: number };
  chains: (Omit<ChainVerdict, "lost" | "writtenTwice" | "sentTwice"> & {
    lost: number;
    writtenTwice: number;
    sentTwice: number;
    examples: string[];
  })[];
  faults: { injected: Record<string, number>; log: FaultRecord[]; proxies: Record<string, FaultProxyStats> };
  workers: WorkerStats;
  redisRestarts: number;
  deadLetters: { count: number; byCode: Record<string, number> };
  /** Accept (submit resolved) → composite receipt (last target confirmed), ms. */
  latencyMs: { p50: number; p99: number; max: number };
  /** Accepted events per second while submitting; confirmed runs per second over the whole run. */
  throughput: { acceptedPerSecond: number; confirmedPerSecond: number };
  verdict: { pass: boolean; reasons: string[]; dir?: string };
}

/** mulberry32: a small seeded generator, so a schedule can be replayed. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });

/** Resolves with `promise`, or rejects with a timeout after `ms`. */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(Object.assign(new Error("timeout"), { code: "TIMEOUT" })), ms);
    promise.then(
      (v) => (clearTimeout(timer), resolve(v)),
      (e: unknown) => (clearTimeout(timer), reject(e)),
    );
  });
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** One line describing this machine: CPU model, cores, memory, OS, Node version. */
export function machineDescription(): string {
  const cpus = os.cpus();
  const model = cpus[0]?.model.trim() ?? "unknown CPU";
  const memGiB = (os.totalmem() / 2 ** 30).toFixed(0);
  return `${model}, ${cpus.length} cores, ${memGiB} GiB RAM, ${os.type()} ${os.release()}, Node ${process.versions.node}`;
}

/**
 * Runs the chaos scenario end to end and reports what the chains hold.
 * @param log - progress lines (one per step, fault and status tick).
 * @throws the stack's start-up errors (`ERR_CHAOS_PROCESS_START`, `ERR_LOCAL_CHAIN_START`); a run that loses or
 *   duplicates does not throw: its report's verdict says so.
 */
export async function runChaos(
  options: ChaosOptions,
  log: (line: string) => void = () => undefined,
): Promise<ChaosReport> {
  const began = Date.now();
  const load = { atStart: os.loadavg()[0]!, max: os.loadavg()[0]! };
  const loadTimer = setInterval(() => (load.max = Math.max(load.max, os.loadavg()[0]!)), 5_000);
  const t = () => `${((Date.now() - began) / 1000).toFixed(0).padStart(5)} s`;
  const say = (line: string) => log(`${t()}  ${line}`);
  const random = seeded(options.seed);
  const stack: ChaosStack = await startChaosStack({
    redisPort: options.redisPort,
    redisPersistence: options.redisPersistence,
    onProgress: (step, detail) => say(`${step.padEnd(10)} ${detail}`),
  });
  const workers = new WorkerSupervisor({
    configFile: stack.configFile,
    caFile: stack.caFile,
    logDir: stack.dir,
    count: options.workers,
    lockMs: options.lockMs,
    stalledMs: options.stalledMs,
  });
  let keep = options.keepDir;
  // If this process exits abruptly (a second Ctrl-C), nothing it started is left running.
  const emergencyStop = () => {
    for (const pid of [...workers.pids, ...stack.chains.map((c) => c.node.pid), stack.redis.pid]) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  };
  process.once("exit", emergencyStop);
  try {
    say(`workers    starting ${options.workers} worker processes`);
    await workers.start();
    const minutes = await loadMinuteInputs();
    const accepted = new Map<string, number>(); // resultId → acceptedAt (ms)
    const inFlight = new Set<string>();
    const finalizedAt = new Map<string, number>();
    const receiptStatus = new Map<string, string>();
    const submitRetries: Record<string, number> = {};
    const injected: Record<string, number> = {};
    const faultLog: FaultRecord[] = [];

    // Receipts of runs in flight, polled every second (for the submission window and latency only: the verdict
    // is counted from the chains). One progress line every 10 s.
    const stopPolling = new AbortController();
    let lastTick = Date.now();
    const polling = (async () => {
      while (!stopPolling.signal.aborted) {
        if (Date.now() - lastTick >= 10_000) {
          lastTick = Date.now();
          say(
            `progress   ${accepted.size} accepted, ${finalizedAt.size} with a receipt, ${inFlight.size} in flight, ${workers.alive} workers alive, ${workers.stats.killed} killed`,
          );
        }
        const ids = [...inFlight];
        for (let i = 0; i < ids.length; i += 200) {
          const slice = ids.slice(i, i + 200);
          const receipts = await Promise.all(slice.map((r) => stack.ctx.results.getReceipt(r).catch(() => undefined)));
          receipts.forEach((receipt, j) => {
            if (!receipt) return;
            const resultId = slice[j]!;
            inFlight.delete(resultId);
            receiptStatus.set(resultId, receipt.status);
            finalizedAt.set(resultId, Math.max(...receipt.targets.map((target) => target.updatedAt)));
          });
        }
        await sleep(1_000, stopPolling.signal);
      }
    })();

    // Worker kills, all along.
    const stopFaults = new AbortController();
    const killing = options.scenarios.includes("worker-kill")
      ? (async () => {
          for (;;) {
            await sleep(options.killMinMs + random() * (options.killMaxMs - options.killMinMs), stopFaults.signal);
            while (!stopFaults.signal.aborted && workers.killOne(random, options.minUptimeMs) === undefined)
              await sleep(250, stopFaults.signal);
            if (stopFaults.signal.aborted) return;
            injected["worker-kill"] = (injected["worker-kill"] ?? 0) + 1;
          }
        })()
      : Promise.resolve();

    // The other faults take turns, alternating between the chains, until submission is over and each ran once.
    const turns = options.scenarios.filter((s) => s !== "worker-kill");
    let submissionDone = false;
    const faulting = (async () => {
      if (turns.length === 0) return;
      await sleep(options.gapMs, stopFaults.signal);
      for (let round = 0; ; round += 1) {
        for (const [i, kind] of turns.entries()) {
          if (stopFaults.signal.aborted) return;
          const chain = stack.chains[(round + i) % stack.chains.length]!;
          const record: FaultRecord = { kind, target: "", startedAt: Date.now(), endedAt: 0, hits: 1 };
          const hold = kind === "kv-hang" ? options.faultMs * 2 : options.faultMs;
          switch (kind) {
            case "redis-restart": {
              const signal = round % 2 === 0 ? "SIGKILL" : "SIGTERM";
              record.target = `redis (${signal})`;
              say(`fault      redis-server ${signal}, restarted on the same AOF directory`);
              await stack.redis.restart(signal, Math.min(hold, 5_000));
              break;
            }
            case "rpc-refuse":
            case "rpc-black-hole":
            case "rpc-502-after-forward": {
              const mode =
                kind === "rpc-refuse" ? "refuse" : kind === "rpc-black-hole" ? "black-hole" : "502-after-forward";
              record.target = chain.name;
              say(`fault      JSON-RPC of ${chain.name}: ${mode} for ${hold} ms`);
              const before = hitsOf([chain.proxy]);
              chain.proxy.setMode(mode);
              record.hits = await holdUntilHit([chain.proxy], before, hold);
              chain.proxy.setMode("pass");
              break;
            }
            case "kv-refuse":
            case "kv-hang": {
              const mode = kind === "kv-refuse" ? "refuse" : "black-hole";
              record.target = "key vault";
              say(`fault      Key Vault and identity endpoint: ${mode} for ${hold} ms`);
              const before = hitsOf(stack.vaultProxies);
              for (const proxy of stack.vaultProxies) proxy.setMode(mode);
              record.hits = await holdUntilHit(stack.vaultProxies, before, hold);
              for (const proxy of stack.vaultProxies) proxy.setMode("pass");
              break;
            }
            case "chain-freeze": {
              record.target = chain.name;
              say(`fault      hardhat node ${chain.name} frozen (SIGSTOP) for ${hold} ms`);
              process.kill(chain.node.pid, "SIGSTOP");
              await sleep(hold);
              process.kill(chain.node.pid, "SIGCONT");
              break;
            }
          }
          record.endedAt = Date.now();
          faultLog.push(record);
          injected[kind] = (injected[kind] ?? 0) + 1;
          say(`fault      ${kind} over (${record.hits} hit)`);
          if (options.stopSubmitting?.aborted) return;
          await sleep(options.gapMs, stopFaults.signal);
        }
        if (submissionDone) return;
      }
    })();

    // Submission at a steady rate, each event retried (with backoff) until accepted: never dropped.
    const submitBegan = Date.now();
    const runTag = Date.now().toString(36);
    let notAccepted = 0;
    for (let i = 0; i < options.events && !options.stopSubmitting?.aborted; i += 1) {
      await sleep(Math.max(0, submitBegan + (i * 1000) / options.rate - Date.now()));
      while (inFlight.size >= options.maxInFlight && !options.stopSubmitting?.aborted) await sleep(100);
      if (options.stopSubmitting?.aborted) break;
      const { minute, input } = minutes[i % minutes.length]!;
      const key = `chaos-${runTag}-${i}`;
      const firstTry = Date.now();
      for (let attempt = 0; ; attempt += 1) {
        if (Date.now() - firstTry > options.submitTimeoutMs) {
          notAccepted += 1;
          break;
        }
        try {
          const run = await within(
            stack.pipeline.submit({
              eventId: httpEventId(key),
              cryptlet: { name: stack.pkg.manifest.name },
              source: { type: "http", idempotencyKey: key },
              input,
              time: minute + 59,
            }),
            15_000,
          );
          const resultId = run.resultId.toLowerCase();
          accepted.set(resultId, Date.now());
          inFlight.add(resultId);
          break;
        } catch (error) {
          const code = isCryptletError(error)
            ? error.code
            : String((error as { code?: unknown }).code ?? (error as Error).name ?? "Error");
          submitRetries[code] = (submitRetries[code] ?? 0) + 1;
          const retryAfterMs = isCryptletError(error) ? Number(error.details?.retryAfterMs ?? 0) : 0;
          await sleep(Math.max(retryAfterMs, Math.min(5_000, 100 * 2 ** attempt) * (0.5 + random() / 2)));
        }
      }
    }
    submissionDone = true;
    const submitEnded = Date.now();
    say(`submitted  ${accepted.size} events; waiting for the last fault to end`);
    if (turns.length > 0) await faulting;
    stopFaults.abort();
    await Promise.all([faulting, killing]);
    say(`drain      faults over; waiting for every run (gives up after ${options.drainTimeoutMs} ms without progress)`);

    // Drain: until every accepted run has its receipt, or nothing progressed for drainTimeoutMs.
    let lastProgress = Date.now();
    let lastCount = finalizedAt.size;
    while (inFlight.size > 0 && Date.now() - lastProgress < options.drainTimeoutMs) {
      await sleep(1_000);
      if (finalizedAt.size !== lastCount) {
        lastCount = finalizedAt.size;
        lastProgress = Date.now();
      }
    }
    stopPolling.abort();
    await polling;
    const drainEnded = Date.now();

    // Counting, from the chains.
    say("count      reading every block of both chains");
    const verdicts: ChainVerdict[] = [];
    for (const chain of stack.chains) {
      const scanner = new ChainScanner({
        chain: chain.name,
        rpcUrl: chain.node.url,
        ledger: chain.contracts.ledger,
        relayer: stack.relayer,
        fromBlock: chain.firstBlock,
      });
      await scanner.scan();
      verdicts.push(judgeChain(await scanner.scan(), accepted.keys()));
    }
    say(`workers    SIGTERM to every worker`);
    await workers.stop();
    const letters = await stack.pipeline.deadLetters(1_000_000);
    const byCode: Record<string, number> = {};
    for (const letter of letters) byCode[letter.error.code] = (byCode[letter.error.code] ?? 0) + 1;

    const latencies = [...finalizedAt].map(([r, at]) => at - accepted.get(r)!).sort((a, b) => a - b);
    const confirmed = [...receiptStatus.values()].filter((s) => s === "confirmed").length;
    const report: ChaosReport = {
      startedAt: new Date(began).toISOString(),
      machine: machineDescription(),
      load,
      options: { ...options, stopSubmitting: undefined },
      seconds: {
        total: (Date.now() - began) / 1000,
        submitting: (submitEnded - submitBegan) / 1000,
        draining: (drainEnded - submitEnded) / 1000,
      },
      events: {
        planned: options.events,
        accepted: accepted.size,
        givenUp: notAccepted,
        stoppedEarly: options.stopSubmitting?.aborted ?? false,
        submitRetries,
      },
      receipts: {
        confirmed,
        partialOrFailed: receiptStatus.size - confirmed,
        missing: accepted.size - receiptStatus.size,
      },
      chains: verdicts.map((v) => ({
        ...v,
        lost: v.lost.length,
        writtenTwice: v.writtenTwice.length,
        sentTwice: v.sentTwice.length,
        examples: [...v.lost, ...v.writtenTwice, ...v.sentTwice].slice(0, 5),
      })),
      faults: {
        injected,
        log: faultLog,
        proxies: Object.fromEntries([
          ...stack.chains.map((c) => [`rpc ${c.name}`, { ...c.proxy.stats }] as const),
          ["key vault", { ...stack.vaultProxies[0]!.stats }],
          ["identity endpoint", { ...stack.vaultProxies[1]!.stats }],
        ]),
      },
      workers: { ...workers.stats },
      redisRestarts: stack.redis.restarts,
      deadLetters: { count: letters.length, byCode },
      latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) ?? NaN },
      throughput: {
        acceptedPerSecond: accepted.size / ((submitEnded - submitBegan) / 1000),
        confirmedPerSecond: confirmed / ((drainEnded - submitBegan) / 1000),
      },
      verdict: { pass: true, reasons: [] },
    };
    const reasons = report.verdict.reasons;
    if (report.events.givenUp > 0) reasons.push(`${report.events.givenUp} events given up (submission kept failing)`);
    if (report.events.accepted < options.events && !report.events.stoppedEarly)
      reasons.push(`${options.events - report.events.accepted} events never accepted`);
    for (const c of report.chains) {
      if (c.lost > 0) reasons.push(`${c.chain}: ${c.lost} accepted events not written (lost)`);
      if (c.writtenTwice > 0) reasons.push(`${c.chain}: ${c.writtenTwice} results written more than once`);
      if (c.sentTwice > 0)
        reasons.push(`${c.chain}: ${c.sentTwice} results with more than one write transaction mined`);
      if (c.nonceMismatch)
        reasons.push(`${c.chain}: relayer nonce ${c.nonceLatest} but ${c.relayerTxs} of its transactions in blocks`);
      if (c.stuck) reasons.push(`${c.chain}: relayer transactions stuck (pending nonce ${c.noncePending})`);
    }
    if (report.receipts.missing > 0) reasons.push(`${report.receipts.missing} runs without a receipt`);
    if (report.receipts.partialOrFailed > 0)
      reasons.push(`${report.receipts.partialOrFailed} runs with a partial or failed receipt`);
    if (report.deadLetters.count > 0) reasons.push(`${report.deadLetters.count} dead letters`);
    for (const kind of options.scenarios)
      if (!injected[kind]) reasons.push(`fault ${kind} was requested but never injected`);
    for (const kind of new Set(faultLog.map((f) => f.kind)))
      if (faultLog.filter((f) => f.kind === kind).every((f) => f.hits === 0))
        reasons.push(`fault ${kind} never hit a request`);
    report.verdict.pass = reasons.length === 0;
    if (!report.verdict.pass) keep = true;
    if (keep) report.verdict.dir = stack.dir;
    return report;
  } finally {
    process.off("exit", emergencyStop);
    clearInterval(loadTimer);
    await workers.stop().catch(() => undefined);
    // Nothing stays frozen or faulty for the stop.
    for (const chain of stack.chains) {
      chain.proxy.setMode("pass");
      try {
        process.kill(chain.node.pid, "SIGCONT");
      } catch {
        // already gone
      }
    }
    for (const proxy of stack.vaultProxies) proxy.setMode("pass");
    await stack.stop(keep);
  }
}
