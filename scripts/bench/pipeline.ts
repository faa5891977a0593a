/**
 * `npm run bench:pipeline`: the pipeline end to end (real Redis and BullMQ, two `hardhat node` chains, the Key
 * Vault emulator through the Azure SDK, price-median in isolated-vm), with 1, 2 and 4 worker processes, in
 * `anchor` and `record` mode (both chains each). Reports results per second, latency from submission to the
 * first transaction and to confirmation (p50, p99), gas per result, and where the time goes per stage (BullMQ job
 * timestamps). Writes the section "pipeline" of docs/benchmarks.md.
 *
 * Environment: `BENCH_ANCHOR_EVENTS` (default 1000), `BENCH_RECORD_EVENTS` (default 200), `BENCH_WORKERS`
 * (default `1,2,4`), `BENCH_MODES` (default `anchor,record`).
 */
import type { ChildProcess } from "node:child_process";
import path from "node:path";

import { httpEventId } from "../../runtime/attestation/ids.ts";
import { jobIds, QUEUES } from "../../runtime/queue/topology.ts";
import type { CompositeReceipt } from "../../runtime/queue/results.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";
import { startPipelineStack, type PipelineStack } from "../../test/support/pipelineStack.ts";
import { startWorker, stopWorker } from "../../test/support/workerProcess.ts";
import { writeBenchSection } from "./report.ts";

const ANCHOR_EVENTS = Number(process.env.BENCH_ANCHOR_EVENTS ?? 1000);
const RECORD_EVENTS = Number(process.env.BENCH_RECORD_EVENTS ?? 200);
const WORKERS = (process.env.BENCH_WORKERS ?? "1,2,4").split(",").map(Number);
const MODES = (process.env.BENCH_MODES ?? "anchor,record").split(",") as ("anchor" | "record")[];

const minutes = await loadMinuteInputs();
const percentile = (values: number[], p: number) => {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};
const ms = (v: number) => (Number.isFinite(v) ? `${Math.round(v).toLocaleString("en-US")} ms` : "–");

interface Row {
  mode: string;
  workers: number;
  events: number;
  seconds: number;
  perSecond: number;
  submittedP50: number;
  submittedP99: number;
  confirmedP50: number;
  confirmedP99: number;
  gasPerResult: number;
  stages: Record<string, number>;
}

async function runRound(
  stack: PipelineStack,
  mode: string,
  workers: number,
  events: number,
  round: number,
): Promise<Row> {
  const configFile = await stack.writeConfig();
  const caFile = path.join(path.dirname(configFile), "ca.pem");
  const processes: ChildProcess[] = [];
  for (let i = 0; i < workers; i += 1) processes.push(await startWorker(configFile, caFile, { LOG_LEVEL: "error" }));
  const submittedAt = new Map<string, number>();
  const started = Date.now();
  const runs: string[] = [];
  for (let i = 0; i < events; i += 250) {
    const chunk = await Promise.all(
      Array.from({ length: Math.min(250, events - i) }, async (_, j) => {
        const { minute, input } = minutes[(i + j) % minutes.length]!;
        const key = `bench-${mode}-${round}-${i + j}`;
        const now = Date.now();
        const run = await stack.pipeline.submit({
          eventId: httpEventId(`${stack.prefix}-${key}`),
          cryptlet: { name: stack.pkg.manifest.name },
          source: { type: "http", idempotencyKey: key },
          input,
          time: minute + 59,
        });
        submittedAt.set(run.runId, now);
        return run.runId;
      }),
    );
    runs.push(...chunk);
  }
  const receipts: CompositeReceipt[] = [];
  for (const runId of runs) {
    const outcome = await stack.pipeline.waitForRun(runId, 600_000, 100);
    if (outcome.status !== "complete") throw new Error(`run ${runId} failed: ${JSON.stringify(outcome.error)}`);
    receipts.push(outcome.receipt);
  }
  const finished = Math.max(...receipts.map((r) => Math.max(...r.targets.map((t) => t.updatedAt))));
  const seconds = (finished - started) / 1000;
  const submitted = receipts.flatMap((r) =>
    r.targets.flatMap((t) => (t.receipt?.submittedAt ? [t.receipt.submittedAt - submittedAt.get(r.runId)!] : [])),
  );
  const confirmed = receipts.map((r) => Math.max(...r.targets.map((t) => t.updatedAt)) - submittedAt.get(r.runId)!);
  // Gas: the run's own transactions (record), or each anchor transaction shared by its batch (anchor).
  let gas: bigint;
  if (mode === "anchor") {
    const perRoot = new Map<string, bigint>();
    for (const r of receipts)
      for (const t of r.targets)
        if (t.anchor && t.batch) perRoot.set(`${t.chain}:${t.batch.root}`, BigInt(t.anchor.gasUsed));
    gas = [...perRoot.values()].reduce((a, b) => a + b, 0n);
  } else {
    gas = receipts.reduce((sum, r) => sum + BigInt(r.gasUsed), 0n);
  }
  const writes = receipts.reduce((n, r) => n + r.targets.length, 0);
  // Time per stage, from BullMQ's own timestamps on a sample of jobs.
  const stages: Record<string, number> = {};
  const sample = receipts.slice(0, 50);
  for (const [stage, idOf] of [
    [QUEUES.execute, (r: CompositeReceipt) => jobIds.execute(r.resultId)],
    [QUEUES.attest, (r: CompositeReceipt) => jobIds.attest(r.resultId)],
  ] as const) {
    const durations: number[] = [];
    for (const r of sample) {
      const job = await stack.pipeline.queue(stage).getJob(idOf(r));
      if (job?.processedOn && job.finishedOn) durations.push(job.finishedOn - job.processedOn);
    }
    stages[stage] = percentile(durations, 50);
  }
  for (const p of processes) await stopWorker(p);
  return {
    mode,
    workers,
    events,
    seconds,
    perSecond: events / seconds,
    submittedP50: percentile(submitted, 50),
    submittedP99: percentile(submitted, 99),
    confirmedP50: percentile(confirmed, 50),
    confirmedP99: percentile(confirmed, 99),
    gasPerResult: Number(gas) / writes,
    stages,
  };
}

const rows: Row[] = [];
for (const mode of MODES) {
  const stack = await startPipelineStack({
    chains: [
      { name: "consortium", chainId: 75_001 },
      { name: "public", chainId: 75_002 },
    ],
    targets: [
      { chain: "consortium", mode },
      { chain: "public", mode },
    ],
    workers: false,
  });
  try {
    for (const [round, workers] of WORKERS.entries()) {
      const row = await runRound(stack, mode, workers, mode === "anchor" ? ANCHOR_EVENTS : RECORD_EVENTS, round);
      rows.push(row);
      console.log(JSON.stringify(row));
    }
  } finally {
    await stack.close();
  }
}

const table = rows
  .map(
    (r) =>
      `| ${r.mode} | ${r.workers} | ${r.events.toLocaleString("en-US")} | ${r.perSecond.toFixed(1)} | ${ms(r.submittedP50)} / ${ms(r.submittedP99)} | ${ms(r.confirmedP50)} / ${ms(r.confirmedP99)} | ${Math.round(r.gasPerResult).toLocaleString("en-US")} | ${ms(r.stages.execute!)} / ${ms(r.stages.attest!)} |`,
  )
  .join("\n");
writeBenchSection(
  "pipeline",
  "Pipeline end to end",
  "npm run bench:pipeline",
  `Each event runs price-median (isolated-vm), is attested (attestation token signed through the Key Vault emulator
over HTTPS; in record mode also two EIP-712 result signatures by two Key Vault keys) and is written to two
\`hardhat node\` chains (JSON-RPC, automine, 1 confirmation), all jobs in BullMQ on one local Redis. Worker
processes are separate OS processes (\`runtime/queue/worker.ts\`) sharing the machine's 2 cores with the two
chains, the Key Vault emulator, Redis and the submitting process. Latencies are measured from the submission of
the event; "submitted" is the first broadcast of the run's transactions (record mode; an anchor transaction is
shared by its batch), "confirmed" the last target's confirmation. Gas per result: record = the run's
transactions / 2 targets; anchor = anchor transactions / results anchored (256 per batch at most, or fewer when
the 300 ms batch timer closes a batch first).

| mode | worker processes | events | results/s | submitted p50 / p99 | confirmed p50 / p99 | gas per result | execute / attest job p50 |
| --- | ---: | ---: | ---: | --- | --- | ---: | --- |
${table}

Targets (issue 5): ≥ 2,000 results/s into two chains in anchor mode; p99 event → submitted ≤ 250 ms at 500
events/s; ≤ 1,500 gas per result at 256 per batch. See the note under the table in docs/pipeline.md for the
bottleneck analysis.`,
);
console.log(table);
process.exit(0);
