/**
 * `npm run bench:consortium`: what co-signing costs (issue 12). The same events (price-median, `record` on two
 * `hardhat node` chains, real Redis and BullMQ, Key Vault emulators through the Azure SDK) go through
 *
 * 1. a single runtime that holds both result-signing keys (the pipeline without a `consortium` section), and
 * 2. a consortium of three member runtimes, threshold 2, each with its own Key Vault emulator, Redis prefix,
 *    pipeline, workers and API server; events are submitted round-robin to the members (each leads its own), and
 *    every result is co-signed over real HTTP (peer-authenticated proposal, the follower's re-execution, its
 *    signature) before it is written.
 *
 * Both run in this one process (workers in-process), in the same run, on the same machine. Reports results per
 * second, latency from submission to the composite receipt (p50, p99) and, for the consortium, the co-signing call
 * per result (the leader's `cosign`: its own signature, the proposals, the peers' re-execution and signatures;
 * p50, p99). Writes the section "consortium" of docs/benchmarks.md.
 *
 * Environment: `BENCH_CONSORTIUM_EVENTS` (default 40).
 */
import os from "node:os";

import { httpEventId } from "../../runtime/attestation/ids.ts";
import type { Cosigner } from "../../runtime/consortium/cosigner.ts";
import type { Pipeline } from "../../runtime/queue/pipeline.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";
import { protocolWiring, startConsortiumStack } from "../../test/support/consortiumStack.ts";
import { startPipelineStack } from "../../test/support/pipelineStack.ts";
import { writeBenchSection } from "./report.ts";

const EVENTS = Number(process.env.BENCH_CONSORTIUM_EVENTS ?? 40);
const CHAINS = [
  { name: "consortium", chainId: 74_001 },
  { name: "public", chainId: 74_002 },
];
const TARGETS = [
  { chain: "consortium", mode: "record" as const },
  { chain: "public", mode: "record" as const },
];

const minutes = await loadMinuteInputs();
const percentile = (values: number[], p: number) => {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};
const ms = (v: number) => (Number.isFinite(v) ? `${Math.round(v).toLocaleString("en-US")} ms` : "–");

interface Round {
  seconds: number;
  perSecond: number;
  latencies: number[];
  failed: number;
}

/** Submits `EVENTS` events (to `pipelines` round-robin) at once and waits for every receipt. */
async function round(pipelines: Pipeline[], pkgName: string, tag: string): Promise<Round> {
  const started = Date.now();
  const latencies: number[] = [];
  let failed = 0;
  await Promise.all(
    Array.from({ length: EVENTS }, async (_, i) => {
      const pipeline = pipelines[i % pipelines.length]!;
      const { minute, input } = minutes[i % minutes.length]!;
      const key = `bench-consortium-${tag}-${i}`;
      const submitted = Date.now();
      const { runId } = await pipeline.submit({
        eventId: httpEventId(`${tag}-${key}`),
        cryptlet: { name: pkgName },
        source: { type: "http", idempotencyKey: key },
        input,
        time: minute + 59,
      });
      const outcome = await pipeline.waitForRun(runId, 600_000, 100);
      if (outcome.status === "complete" && outcome.receipt.status === "confirmed") {
        latencies.push(outcome.receipt.completedAt - submitted);
      } else failed += 1;
    }),
  );
  const seconds = (Date.now() - started) / 1000;
  return { seconds, perSecond: EVENTS / seconds, latencies, failed };
}

console.log(`single runtime: ${EVENTS} events`);
const single = await startPipelineStack({ chains: CHAINS, targets: TARGETS });
let singleRound: Round;
try {
  await round([single.pipeline], single.pkg.manifest.name, `${single.prefix}-warm`).catch(() => undefined);
  singleRound = await round([single.pipeline], single.pkg.manifest.name, single.prefix);
} finally {
  await single.close();
}
console.log(`  ${singleRound.perSecond.toFixed(2)} results/s`);

console.log(`consortium of 3 (threshold 2): ${EVENTS} events`);
const cosignMs: number[] = [];
const wiring = protocolWiring();
const consortium = await startConsortiumStack({
  members: 3,
  threshold: 2,
  chains: CHAINS.map((c) => ({ ...c, chainId: c.chainId + 10 })),
  targets: TARGETS,
  wiring: {
    serve: wiring.serve,
    cosigner(member, stack): Cosigner {
      const inner = wiring.cosigner(member, stack);
      return {
        async cosign(input) {
          const t0 = performance.now();
          try {
            return await inner.cosign(input);
          } finally {
            cosignMs.push(performance.now() - t0);
          }
        },
      };
    },
  },
  answerTimeoutMs: 60_000,
});
let consortiumRound: Round;
try {
  const pipelines = consortium.members.map((m) => m.pipeline);
  await round(pipelines, consortium.pkg.manifest.name, `${consortium.members[0]!.prefix}-warm`).catch(() => undefined);
  cosignMs.length = 0;
  consortiumRound = await round(pipelines, consortium.pkg.manifest.name, consortium.members[0]!.prefix);
} finally {
  await consortium.close();
}
console.log(`  ${consortiumRound.perSecond.toFixed(2)} results/s`);

const load = os.loadavg().map((v) => v.toFixed(2));
const row = (name: string, r: Round, cosign: string) =>
  `| ${name} | ${EVENTS} | ${r.failed} | ${r.perSecond.toFixed(2)} | ${ms(percentile(r.latencies, 50))} | ${ms(percentile(r.latencies, 99))} | ${cosign} |`;
const markdown = [
  `${EVENTS} price-median events submitted at once (after a warm-up round of the same size), each written with`,
  "`record` to two `hardhat node` chains; workers in this process; latency = submission to composite receipt.",
  `The machine is shared: load average (1, 5, 15 min) at the end of the run ${load.join(", ")}.`,
  "",
  "| runtime | events | failed | results/s | latency p50 | latency p99 | co-signing per result (p50 / p99) |",
  "| --- | --- | --- | --- | --- | --- | --- |",
  row("single runtime, both result keys (no `consortium`)", singleRound, "–"),
  row(
    "consortium: 3 members, threshold 2, round-robin leaders",
    consortiumRound,
    `${ms(percentile(cosignMs, 50))} / ${ms(percentile(cosignMs, 99))} (${cosignMs.length} calls)`,
  ),
  "",
  "Co-signing per result is the leader's `cosign` call: its own Key Vault signature, a peer-authenticated proposal",
  "to each other member over HTTP, each peer's registry check, re-execution of the package on the evidence and",
  "Key Vault signature; it returns once M signatures are in. The three members share this machine's cores, so",
  "each result's re-executions compete with the members' own runs, and each member has one sandbox (pool size 1)",
  "for its own runs and its peers' re-executions: with every event submitted at once, most of a call is queueing.",
].join("\n");
writeBenchSection("consortium", "Consortium co-signing (3 members, threshold 2)", "npm run bench:consortium", markdown);
console.log(markdown);
process.exit(0);
