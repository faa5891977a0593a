/**
 * `npm run soak`: the memory soak of issue 13 item 4. Events at a steady rate through the whole pipeline (real
 * Redis and BullMQ, two `hardhat node` chains, the Key Vault emulator through the Azure SDK, price-median in the
 * sandbox; targets `record` on one chain and `anchor` on the other) for a configurable duration, with a short
 * retention so that the steady state (as many keys expiring as written) is reached within the run. Every minute
 * it samples Redis `INFO memory` (`used_memory`) and `DBSIZE`, the backlog and the load average; at the end it
 * judges flatness and writes the section "Memory soak" of docs/reliability.md (between `<!-- soak:memory -->`
 * markers, leaving the file's other sections alone).
 *
 * It starts its own `redis-server` (no persistence, `--save ''`) on `SOAK_REDIS_PORT`, so that the memory figures
 * are the soak's alone on a machine where others use the shared Redis.
 *
 * Environment: `SOAK_MINUTES` (default 30), `SOAK_RATE` events per second (default 2), `SOAK_RETENTION_SECONDS`
 * (default 300), `SOAK_REDIS_PORT` (default 6395), `SOAK_WRITE_DOCS` (default 1; 0 prints only).
 *
 * Criterion (flat): over the last 10 minutes, the least-squares slope of `used_memory` times 10 minutes is within
 * ±5% of the mean `used_memory` of those minutes, and so is the key count's; and no run was lost (every event
 * accepted reached its receipt).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { Redis } from "ioredis";

import { httpEventId } from "../runtime/attestation/ids.ts";
import { isCryptletError } from "../runtime/errors.ts";
import { ERR_BACKLOG_FULL } from "../runtime/queue/errors.ts";
import { loadMinuteInputs } from "../cryptlets/price-median/data/loadObservations.ts";
import { startPipelineStack } from "../test/support/pipelineStack.ts";
import { machineDescription } from "./bench/report.ts";

const MINUTES = Number(process.env.SOAK_MINUTES ?? 30);
const RATE = Number(process.env.SOAK_RATE ?? 2);
const RETENTION_SECONDS = Number(process.env.SOAK_RETENTION_SECONDS ?? 300);
const PORT = Number(process.env.SOAK_REDIS_PORT ?? 6395);
const WRITE_DOCS = process.env.SOAK_WRITE_DOCS !== "0";
const FLAT_WINDOW_MIN = 10;
const FLAT_TOLERANCE = 0.05;
const DOC = path.resolve(import.meta.dirname, "..", "docs", "reliability.md");

interface Sample {
  minute: number;
  usedMemory: number;
  keys: number;
  backlog: number;
  accepted: number;
  completed: number;
  refused: number;
  load1: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(2);

/** Least-squares slope of `ys` over `xs`. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i += 1) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

async function startRedis(): Promise<{ process: ChildProcess; dir: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "cryptlet-soak-redis-"));
  const child = spawn("redis-server", ["--port", String(PORT), "--save", "", "--appendonly", "no", "--dir", dir], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  for (let i = 0; i < 100; i += 1) {
    const probe = new Redis(PORT, "127.0.0.1", {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    probe.on("error", () => undefined); // refused until the server listens
    try {
      await probe.connect();
      await probe.ping();
      probe.disconnect();
      return { process: child, dir };
    } catch {
      probe.disconnect();
      if (child.exitCode !== null) break;
      await sleep(100);
    }
  }
  child.kill("SIGKILL");
  throw new Error(`redis-server on port ${PORT} did not start: ${output.slice(-500)}`);
}

const redisProcess = await startRedis();
const redisUrl = `redis://127.0.0.1:${PORT}`;
const monitor = new Redis(redisUrl);
const redisVersion = /redis_version:(\S+)/.exec(await monitor.info("server"))?.[1] ?? "?";
const minutes = await loadMinuteInputs();
const stack = await startPipelineStack({
  chains: [
    { name: "consortium", chainId: 76_001 },
    { name: "public", chainId: 76_002 },
  ],
  targets: [
    { chain: "consortium", mode: "record" },
    { chain: "public", mode: "anchor" },
  ],
  redisUrl,
  retentionSeconds: RETENTION_SECONDS,
});
const loadAtStart = os.loadavg();
const started = Date.now();
const end = started + MINUTES * 60_000;
let accepted = 0;
let refused = 0;
let completed = 0;
let failed = 0;
const inFlight = new Set<Promise<void>>();
const latencies: number[] = [];

async function usedMemory(): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await monitor.info("memory"))?.[1] ?? NaN);
}

const samples: Sample[] = [];
async function sample(minute: number): Promise<void> {
  samples.push({
    minute,
    usedMemory: await usedMemory(),
    keys: await monitor.dbsize(),
    backlog: (await stack.pipeline.backlog.size()).runs,
    accepted,
    completed,
    refused,
    load1: os.loadavg()[0]!,
  });
  const s = samples.at(-1)!;
  console.log(
    `minute ${minute}: used_memory ${mib(s.usedMemory)} MiB, keys ${s.keys}, backlog ${s.backlog}, accepted ${accepted}, completed ${completed}, refused ${refused}, load ${s.load1.toFixed(2)}`,
  );
}

await sample(0);
let nextSample = started + 60_000;
let sequence = 0;
const interval = 1000 / RATE;
let due = Date.now();
while (Date.now() < end) {
  if (Date.now() >= nextSample) {
    await sample(Math.round((nextSample - started) / 60_000));
    nextSample += 60_000;
  }
  const wait = due - Date.now();
  if (wait > 0) await sleep(wait);
  due += interval;
  const i = sequence++;
  const { minute, input } = minutes[i % minutes.length]!;
  const key = `soak-${i}`;
  const submittedAt = Date.now();
  try {
    const run = await stack.pipeline.submit({
      eventId: httpEventId(`${stack.prefix}-${key}`),
      cryptlet: { name: stack.pkg.manifest.name },
      source: { type: "http", idempotencyKey: key },
      input,
      time: minute + 59,
    });
    accepted += 1;
    const waiter = stack.pipeline.waitForRun(run.runId, 600_000, 250).then(
      (outcome) => {
        if (outcome.status === "complete") {
          completed += 1;
          latencies.push(outcome.receipt.completedAt - submittedAt);
        } else failed += 1;
      },
      () => {
        failed += 1;
      },
    );
    const tracked = waiter.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  } catch (error) {
    if (!isCryptletError(error, ERR_BACKLOG_FULL.code)) throw error;
    refused += 1; // the pipeline is slower than the rate: counted, and this event is not retried (steady rate)
  }
}
await sample(MINUTES);
const drainStarted = Date.now();
await Promise.all([...inFlight]);
const drainSeconds = (Date.now() - drainStarted) / 1000;
const loadAtEnd = os.loadavg();

const window = samples.filter((s) => s.minute >= MINUTES - FLAT_WINDOW_MIN);
const judge = (values: number[]) => {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const change = slope(
    window.map((s) => s.minute),
    values,
  );
  return { mean, changeOverWindow: change * FLAT_WINDOW_MIN, ratio: (change * FLAT_WINDOW_MIN) / mean };
};
const memory = judge(window.map((s) => s.usedMemory));
const keys = judge(window.map((s) => s.keys));
const flat = window.length >= 2 && Math.abs(memory.ratio) <= FLAT_TOLERANCE && Math.abs(keys.ratio) <= FLAT_TOLERANCE;
const sorted = [...latencies].sort((a, b) => a - b);
const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
const lost = accepted - completed - failed;

const table = [
  "| minute | used_memory (MiB) | keys | backlog (runs in flight) | accepted | complete | refused | load (1 min) |",
  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ...samples.map(
    (s) =>
      `| ${s.minute} | ${mib(s.usedMemory)} | ${s.keys} | ${s.backlog} | ${s.accepted} | ${s.completed} | ${s.refused} | ${s.load1.toFixed(2)} |`,
  ),
].join("\n");
const pctText = (r: number) => `${(r * 100).toFixed(2)}%`;
const body = `Measured ${new Date(started).toISOString().slice(0, 16).replace("T", " ")} UTC with \`SOAK_MINUTES=${MINUTES} SOAK_RATE=${RATE} SOAK_RETENTION_SECONDS=${RETENTION_SECONDS} npm run soak\` on ${machineDescription()}; Redis ${redisVersion} of its own (port ${PORT}, no persistence). The machine was shared with other engineers' test runs: load average (1, 5, 15 min) ${loadAtStart.map((l) => l.toFixed(2)).join(", ")} at the start and ${loadAtEnd.map((l) => l.toFixed(2)).join(", ")} at the end.

Load: ${RATE} events per second offered for ${MINUTES} minutes (${sequence} events), each run writing \`record\` on one \`hardhat node\` chain and \`anchor\` on another, through Key Vault emulator signatures (two result signers, the attestation key, the chain signer). Retention ${RETENTION_SECONDS} s (the default is 7 days; a short one lets Redis reach the steady state, where as many keys expire as are written, within the run). Backlog bound: the defaults (10,000 runs, 5,000 per Cryptlet).

Outcome: ${accepted} accepted, ${completed} complete, ${failed} failed, ${lost} lost; ${refused} refused with \`ERR_BACKLOG_FULL\`; latency submit → receipt p50 ${Math.round(pct(50))} ms, p99 ${Math.round(pct(99))} ms; the last runs drained ${drainSeconds.toFixed(0)} s after the last submission.

Criterion: over the last ${FLAT_WINDOW_MIN} minutes, the least-squares slope of \`used_memory\` (and of the key count) times ${FLAT_WINDOW_MIN} minutes stays within ±${FLAT_TOLERANCE * 100}% of its mean. Measured: \`used_memory\` ${pctText(memory.ratio)} (mean ${mib(memory.mean)} MiB, ${(memory.changeOverWindow / 1024).toFixed(0)} KiB over ${FLAT_WINDOW_MIN} minutes), keys ${pctText(keys.ratio)} (mean ${keys.mean.toFixed(0)}). Verdict: **${flat && lost === 0 ? "flat, nothing lost" : "NOT flat or runs lost"}**.

${table}`;
console.log(body);

if (WRITE_DOCS) {
  const start = "<!-- soak:memory -->";
  const stop = "<!-- /soak:memory -->";
  const section = `${start}\n## Memory soak\n\n${body}\n${stop}`;
  let doc = existsSync(DOC)
    ? readFileSync(DOC, "utf8")
    : "# Reliability\n\nHow the runtime behaves under faults and sustained load, from the runs that measured it.\n";
  const from = doc.indexOf(start);
  const to = doc.indexOf(stop);
  if (from >= 0 && to > from) doc = doc.slice(0, from) + section + doc.slice(to + stop.length);
  else doc = `${doc.trimEnd()}\n\n${section}\n`;
  writeFileSync(DOC, doc);
  const prettier = path.resolve(import.meta.dirname, "..", "node_modules", "prettier", "bin", "prettier.cjs");
  spawnSync(process.execPath, [prettier, "--write", DOC], { stdio: "ignore" });
}

await stack.close();
monitor.disconnect();
redisProcess.process.kill("SIGTERM");
await rm(redisProcess.dir, { recursive: true, force: true });
process.exit(flat && lost === 0 ? 0 : 1);
