/**
 * `npm run chaos`: the chaos run (see run.ts) from the command line. Starts its own Redis (AOF, on `--redis-port`,
 * files in a temporary directory), two `hardhat node` chains and the Key Vault emulator behind fault proxies, and
 * worker processes; submits `--events` events at `--rate` while the faults take turns; counts from the chains;
 * prints a summary table. Exits 0 when nothing was lost or duplicated and every check held, 1 otherwise (2 on a
 * usage or start-up error).
 *
 * @example
 * ```sh
 * npm run chaos -- --events 300 --rate 8 --scenarios worker-kill,redis-restart,rpc-502-after-forward
 * npm run chaos -- --events 10000 --rate 8 --write-docs   # the long run recorded in docs/reliability.md
 * ```
 * @module
 */
import { writeFileSync } from "node:fs";

import { Command, InvalidArgumentError, Option } from "commander";

import { formatChaosSummary, writeChaosSection } from "./report.ts";
import { runChaos, SCENARIOS, type Scenario } from "./run.ts";

const int =
  (min: number, max = Number.MAX_SAFE_INTEGER) =>
  (value: string) => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < min || parsed > max)
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return parsed;
  };
const positive = (value: string) => {
  const parsed = Number(value);
  if (!(parsed > 0)) throw new InvalidArgumentError("expected a positive number");
  return parsed;
};
const seconds = (value: string) => Math.round(positive(value) * 1000);
const scenarios = (value: string): Scenario[] => {
  const list = value.split(",").map((s) => s.trim()) as Scenario[];
  for (const s of list)
    if (!SCENARIOS.includes(s))
      throw new InvalidArgumentError(`unknown scenario ${s} (known: ${SCENARIOS.join(", ")})`);
  return list;
};

const program = new Command()
  .name("npm run chaos --")
  .description(
    "Events through both chains while workers are SIGKILLed and Redis, JSON-RPC, Key Vault and a chain fail; counts from the chains and fails on any loss or duplicate",
  )
  .option("--events <n>", "events to submit", int(1), 1000)
  .option("--rate <events/s>", "submission rate, events per second", positive, 8)
  .option("--duration <s>", "submit over this many seconds (sets --rate to events / duration)", positive)
  .option("--max-in-flight <n>", "accepted events without a receipt before submission waits", int(1), 400)
  .option("--scenarios <list>", `comma-separated faults (default: all): ${SCENARIOS.join(", ")}`, scenarios, [
    ...SCENARIOS,
  ])
  .option(
    "--fault <s>",
    "how long each turn-taking fault lasts, in s (a Key Vault hang twice as long)",
    seconds,
    10_000,
  )
  .option("--gap <s>", "quiet time between two faults, in s", seconds, 10_000)
  .option("--workers <n>", "worker processes", int(1, 16), 2)
  .option("--kill-every <min-max>", "a worker is SIGKILLed every min..max seconds", "5-10")
  .option("--min-uptime <s>", "only a worker taking jobs for at least this long is killed, in s", seconds, 5_000)
  .option(
    "--lock <s>",
    "the workers' BullMQ lock duration (a killed worker's jobs wait this long), in s",
    seconds,
    10_000,
  )
  .option("--stalled <s>", "the workers' stalled-job check interval, in s", seconds, 5_000)
  .option("--redis-port <port>", "port of the run's own redis-server", int(1, 65535), 6400)
  .addOption(
    new Option("--redis-persistence <kind>", "aof, or none (to watch a Redis without persistence lose events)")
      .choices(["aof", "none"])
      .default("aof"),
  )
  .option("--submit-timeout <s>", "give up an event whose submission keeps failing this long, in s", seconds, 120_000)
  .option("--drain-timeout <s>", "give up draining after this long without a run completing, in s", seconds, 300_000)
  .option("--seed <n>", "seed of the schedule's random choices", int(0), 42)
  .option("--keep-dir", "keep the run's directory (configuration, worker logs, Redis files)", false)
  .option("--json <file>", "also write the full report as JSON")
  .option("--write-docs", 'write the figures to docs/reliability.md, section "Chaos run"', false)
  .parse();

const o = program.opts<{
  events: number;
  rate: number;
  duration?: number;
  maxInFlight: number;
  scenarios: Scenario[];
  fault: number;
  gap: number;
  workers: number;
  killEvery: string;
  minUptime: number;
  lock: number;
  stalled: number;
  redisPort: number;
  redisPersistence: "aof" | "none";
  drainTimeout: number;
  submitTimeout: number;
  seed: number;
  keepDir: boolean;
  json?: string;
  writeDocs: boolean;
}>();
const kill = /^(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)$/.exec(o.killEvery);
if (!kill || Number(kill[1]) <= 0 || Number(kill[2]) < Number(kill[1])) {
  console.error("--kill-every: expected min-max seconds, e.g. 5-10");
  process.exit(2);
}

// Ctrl-C (SIGINT) or SIGTERM once: stop submitting and faulting, then drain and count what was accepted; twice:
// exit at once (every process the run started is killed on the way out).
const stopSubmitting = new AbortController();
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.on(signal, () => {
    if (stopSubmitting.signal.aborted) process.exit(130);
    console.log(`${signal}: submission stops; draining and counting the events accepted so far (again to exit)`);
    stopSubmitting.abort();
  });

try {
  const report = await runChaos(
    {
      events: o.events,
      rate: o.duration ? o.events / o.duration : o.rate,
      maxInFlight: o.maxInFlight,
      scenarios: o.scenarios,
      faultMs: o.fault,
      gapMs: o.gap,
      workers: o.workers,
      killMinMs: Number(kill[1]) * 1000,
      killMaxMs: Number(kill[2]) * 1000,
      minUptimeMs: o.minUptime,
      lockMs: o.lock,
      stalledMs: o.stalled,
      redisPort: o.redisPort,
      redisPersistence: o.redisPersistence,
      drainTimeoutMs: o.drainTimeout,
      submitTimeoutMs: o.submitTimeout,
      seed: o.seed,
      keepDir: o.keepDir,
      stopSubmitting: stopSubmitting.signal,
    },
    (line) => console.log(line),
  );
  const summary = formatChaosSummary(report);
  console.log(`\n${summary}`);
  if (o.json) writeFileSync(o.json, JSON.stringify(report, null, 2));
  if (o.writeDocs) {
    writeChaosSection(
      report,
      `npm run chaos -- ${process.argv
        .slice(2)
        .filter((a) => a !== "--write-docs")
        .join(" ")}`,
    );
    console.log('\nwritten to docs/reliability.md (section "Chaos run")');
  }
  process.exit(report.verdict.pass ? 0 : 1);
} catch (error) {
  console.error(error);
  process.exit(2);
}
