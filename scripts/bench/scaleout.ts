/**
 * `npm run bench:scaleout`: the scale-out curve. Results per second of the pipeline end to end in `anchor` mode
 * (two `hardhat node` chains, the Key Vault emulator over HTTPS, price-median in isolated-vm) with 1, 2 and 4 worker
 * processes, on one Redis and on a local Redis Cluster (three masters, three replicas), and where the CPU went
 * during each round: the machine's busy time (/proc/stat) and each process group's CPU seconds (/proc/<pid>/stat of
 * the process and its descendants). "Per busy core" = results / (busy CPU seconds of the whole machine). Writes the
 * section "scaleout" of docs/benchmarks.md.
 *
 * Environment: `BENCH_SCALEOUT_EVENTS` (default 600), `BENCH_WORKERS` (default `1,2,4`), `BENCH_REDIS` (default
 * `single,cluster`).
 */
import type { ChildProcess } from "node:child_process";
import os from "node:os";
import path from "node:path";

import { httpEventId } from "../../runtime/attestation/ids.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";
import { REDIS_URL, startPipelineStack, type PipelineStack } from "../../test/support/pipelineStack.ts";
import { startRedisCluster, type TestRedisCluster } from "../../test/support/redisCluster.ts";
import { startWorker, stopWorker } from "../../test/support/workerProcess.ts";
import { cpuSecondsOf, machineSeconds, processTable, redisPid } from "./cpu.ts";
import { writeBenchSection } from "./report.ts";

const EVENTS = Number(process.env.BENCH_SCALEOUT_EVENTS ?? 600);
const WORKERS = (process.env.BENCH_WORKERS ?? "1,2,4").split(",").map(Number);
const REDIS_KINDS = (process.env.BENCH_REDIS ?? "single,cluster").split(",") as ("single" | "cluster")[];
interface Row {
  redis: "single" | "cluster";
  workers: number;
  events: number;
  seconds: number;
  perSecond: number;
  busyCores: number;
  perBusyCore: number;
  cpu: Record<"workers" | "chains" | "redis" | "bench", number>;
}

const minutes = await loadMinuteInputs();

async function runRound(
  stack: PipelineStack,
  kind: Row["redis"],
  redisPids: number[],
  workers: number,
  round: number,
): Promise<Row> {
  const configFile = await stack.writeConfig();
  const caFile = path.join(path.dirname(configFile), "ca.pem");
  const processes: ChildProcess[] = [];
  for (let i = 0; i < workers; i += 1) processes.push(await startWorker(configFile, caFile, { LOG_LEVEL: "error" }));
  const groups = {
    workers: processes.map((p) => p.pid!),
    chains: stack.chains.map((c) => c.node.pid),
    redis: redisPids,
  };
  const cpuOf = () => {
    const table = processTable();
    return {
      workers: cpuSecondsOf(groups.workers, table),
      chains: cpuSecondsOf(groups.chains, table),
      redis: cpuSecondsOf(groups.redis, table),
      bench: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
    };
  };
  const cpuBefore = cpuOf();
  const machineBefore = machineSeconds();
  const started = Date.now();
  const runs: string[] = [];
  for (let i = 0; i < EVENTS; i += 200) {
    const chunk = await Promise.all(
      Array.from({ length: Math.min(200, EVENTS - i) }, async (_, j) => {
        const { minute, input } = minutes[(i + j) % minutes.length]!;
        const key = `scaleout-${kind}-${round}-${i + j}`;
        const run = await stack.pipeline.submit({
          eventId: httpEventId(`${stack.prefix}-${key}`),
          cryptlet: { name: stack.pkg.manifest.name },
          source: { type: "http", idempotencyKey: key },
          input,
          time: minute + 59,
        });
        return run.runId;
      }),
    );
    runs.push(...chunk);
  }
  let finished = started;
  for (const runId of runs) {
    const outcome = await stack.pipeline.waitForRun(runId, 600_000, 100);
    if (outcome.status !== "complete") throw new Error(`run ${runId} failed: ${JSON.stringify(outcome.error)}`);
    finished = Math.max(finished, ...outcome.receipt.targets.map((t) => t.updatedAt));
  }
  const seconds = (finished - started) / 1000;
  const machineAfter = machineSeconds();
  const cpuAfter = cpuOf();
  for (const p of processes) await stopWorker(p);
  const busy = machineAfter.busy - machineBefore.busy;
  const wall = (machineAfter.total - machineBefore.total) / os.cpus().length;
  return {
    redis: kind,
    workers,
    events: EVENTS,
    seconds,
    perSecond: EVENTS / seconds,
    busyCores: busy / wall,
    perBusyCore: EVENTS / busy,
    cpu: {
      workers: cpuAfter.workers - cpuBefore.workers,
      chains: cpuAfter.chains - cpuBefore.chains,
      redis: cpuAfter.redis - cpuBefore.redis,
      bench: cpuAfter.bench - cpuBefore.bench,
    },
  };
}

const rows: Row[] = [];
for (const kind of REDIS_KINDS) {
  let cluster: TestRedisCluster | undefined;
  let redisPids: number[];
  if (kind === "cluster") {
    cluster = await startRedisCluster();
    redisPids = await Promise.all(cluster.servers.map((s) => redisPid(s.port)));
  } else {
    redisPids = [await redisPid(Number(new URL(REDIS_URL).port || 6379))];
  }
  const stack = await startPipelineStack({
    chains: [
      { name: "consortium", chainId: 76_001 },
      { name: "public", chainId: 76_002 },
    ],
    targets: [
      { chain: "consortium", mode: "anchor" },
      { chain: "public", mode: "anchor" },
    ],
    workers: false,
    ...(cluster ? { redisCluster: cluster.nodes } : {}),
  });
  try {
    for (const [round, workers] of WORKERS.entries()) {
      const row = await runRound(stack, kind, redisPids, workers, round);
      rows.push(row);
      console.log(JSON.stringify(row));
    }
  } finally {
    await stack.close();
    await cluster?.close();
  }
}

const s = (v: number) => v.toFixed(1);
const table = rows
  .map((r) => {
    const share = (v: number) => `${Math.round((100 * v) / (r.busyCores * r.seconds))} %`;
    const perResult = (v: number) => `${Math.round((1000 * v) / r.events)} ms`;
    return `| ${r.redis === "single" ? "one Redis" : "Redis Cluster (3 + 3)"} | ${r.workers} | ${r.events} | ${s(r.perSecond)} | ${r.busyCores.toFixed(2)} of ${os.cpus().length} | ${s(r.perBusyCore)} | ${share(r.cpu.workers)} / ${share(r.cpu.chains)} / ${share(r.cpu.redis)} / ${share(r.cpu.bench)} | ${perResult(r.cpu.workers)} / ${perResult(r.cpu.redis)} |`;
  })
  .join("\n");
/** What limits the curve, read off this run's rows (each Redis kind: the fewest and the most worker processes). */
const reading = REDIS_KINDS.map((kind) => {
  const of = rows.filter((r) => r.redis === kind).sort((a, b) => a.workers - b.workers);
  const [few, many] = [of[0]!, of[of.length - 1]!];
  const perResult = (r: Row) => (1000 * r.cpu.workers) / r.events;
  return `- ${kind === "single" ? "One Redis" : "Redis Cluster"}: with ${few.workers} worker process(es) the machine is already ${few.busyCores.toFixed(2)} of ${os.cpus().length} cores busy, so more processes add no CPU; from ${few.workers} to ${many.workers} processes the workers' CPU per result goes from ${Math.round(perResult(few))} ms to ${Math.round(perResult(many))} ms (${(perResult(many) / perResult(few)).toFixed(1)}×: each process repeats a worker's fixed work (its polling loops, lock renewals and stalled-job checks, its own sandbox pool and Key Vault connections) and they share ${os.cpus().length} cores; not profiled further), and results/s from ${s(few.perSecond)} to ${s(many.perSecond)}. Per busy core: ${s(few.perBusyCore)} results/s with ${few.workers} process(es); Redis takes ${Math.round((1000 * few.cpu.redis) / few.events)} ms of CPU per result.`;
}).join("\n");
const load = os
  .loadavg()
  .map((l) => l.toFixed(2))
  .join(", ");
writeBenchSection(
  "scaleout",
  "Scale-out: worker processes on one Redis and on a Redis Cluster",
  "npm run bench:scaleout",
  `${EVENTS} price-median events per round, submitted at once in chunks of 200 and written in \`anchor\` mode to
two \`hardhat node\` chains (automine, 1 confirmation), attestation tokens signed through the Key Vault emulator
over HTTPS. Worker processes are separate OS processes (\`runtime/queue/worker.ts\`, every stage), started anew
for each round; the chains, Redis (one server on 6379, or a local cluster of three masters and three replicas,
AOF on), the Key Vault emulator and the submitting process run on the same machine. "results/s" is events over
the time from the first submission to the last confirmation. "busy cores" is the machine's CPU busy time over
the round's wall time (/proc/stat); "per busy core" is results per busy CPU second, the figure a machine with
more cores would multiply while CPU is what limits. The CPU split is each process group's CPU seconds
(/proc/<pid>/stat, with descendants) as a share of the machine's busy time: workers / chains / Redis / the
bench process (submitter, Key Vault emulator, anchor status polling); "CPU per result" divides a group's CPU
seconds by the round's results. Load average (1, 5, 15 min) at the end of
the run: ${load}.

| Redis | worker processes | events | results/s | busy cores | results per busy core-second | CPU: workers / chains / Redis / bench | CPU per result: workers / Redis |
| --- | ---: | ---: | ---: | --- | ---: | --- | --- |
${table}

What limits it (computed from the rows above):

${reading}`,
);
console.log(table);
process.exit(0);
