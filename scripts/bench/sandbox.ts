/**
 * `npm run bench:sandbox`: cold start, warm call p50/p99 and calls per second of the sandbox engines, in this
 * process and through the sandbox process pool (runtime/sandbox/process/, pool sizes 1 and 2, 1 and 2 calls in
 * flight), next to an unsandboxed baseline (node:vm context, same bundle) and a Deno process per call (the npm
 * package `deno`, the model of Chainlink Functions and Gelato), on the real price-median bundle and real Uniswap
 * prices; then the time to stop hostile code in this process and through the process pool, and the host's
 * resident memory across a series of hostile runs through the pool (the pool's counters alongside). Writes the
 * "sandbox" section of docs/benchmarks.md. Takes about nine minutes on 2 busy cores, up to five of them the hostile
 * runs (each kill by the watchdog costs the run's limit, the grace and the start of a new process).
 */
import os from "node:os";
import { IsolatedVmEngine, QuickJsEngine, type SandboxEngine } from "../../runtime/sandbox/index.ts";
import type { SandboxedCryptlet } from "../../runtime/sandbox/SandboxEngine.ts";
import { ProcessSandboxEngine } from "../../runtime/sandbox/process/ProcessSandboxEngine.ts";
import { DEFAULT_GRACE_MS, SandboxProcessPool } from "../../runtime/sandbox/process/SandboxProcessPool.ts";
import { writeBenchSection } from "./report.ts";
import {
  built,
  COLD_STARTS,
  context,
  DENO_PARALLEL_CALLS,
  DENO_SEQUENTIAL_CALLS,
  denoVersion,
  input,
  loadBaseline,
  measureDeno,
  measureProcessPool,
  median,
  NEW_POOL_COLD_STARTS,
  percentile,
  type Row,
  timeCalls,
  WARM_CALLS,
} from "./sandboxCalls.ts";

const HOSTILE_RUNS = 1000;
const HOSTILE_TIMEOUT_MS = 100;
/** The hostile series stops early (and says how many runs it made) past this wall time. */
const HOSTILE_BUDGET_MS = 300_000;
const ATTACK_TIMEOUT_MS = 1000;

const loadAverages: { phase: string; load: number }[] = [];
const noteLoad = (phase: string) => loadAverages.push({ phase, load: os.loadavg()[0] ?? NaN });
const loadAt = (phase: string) => (loadAverages.find((l) => l.phase === phase)?.load ?? NaN).toFixed(2);
noteLoad("start");

/** In-process engine: cold starts, then 1 loaded Cryptlet sequentially, then 2 loaded Cryptlets 2 in flight. */
async function measureEngine(engine: SandboxEngine, label: string = engine.name): Promise<Row> {
  // Warm-up (module instantiation, JIT of the host side).
  (await engine.load(built.bundle)).dispose();
  const colds: number[] = [];
  for (let i = 0; i < COLD_STARTS; i++) {
    const t = performance.now();
    const cryptlet = await engine.load(built.bundle);
    await cryptlet.run(input(i), context(i));
    colds.push(performance.now() - t);
    cryptlet.dispose();
  }
  const cryptlets = [await engine.load(built.bundle), await engine.load(built.bundle)];
  const sequential = await timeCalls(WARM_CALLS, 1, (i) => cryptlets[0]!.run(input(i), context(i)));
  const twoInFlight = await timeCalls(WARM_CALLS, 2, (i, lane) => cryptlets[lane]!.run(input(i), context(i)));
  for (const c of cryptlets) c.dispose();
  return { engine: label, where: "this process", coldMs: median(colds), sequential, twoInFlight };
}

async function measureBaseline(): Promise<Row> {
  const colds: number[] = [];
  for (let i = 0; i < COLD_STARTS; i++) {
    const t = performance.now();
    await loadBaseline().default.run(structuredClone(input(i)), { ...context(i), log: () => undefined });
    colds.push(performance.now() - t);
  }
  const exported = [loadBaseline(), loadBaseline()];
  const call = async (i: number, lane: number) => {
    const output = await exported[lane]!.default.run(JSON.parse(JSON.stringify(input(i))), {
      ...context(i),
      log: () => undefined,
    });
    JSON.stringify(output);
  };
  return {
    engine: "node:vm (unsandboxed baseline)",
    where: "this process",
    coldMs: median(colds),
    sequential: await timeCalls(WARM_CALLS, 1, call),
    twoInFlight: await timeCalls(WARM_CALLS, 2, call),
  };
}

const hostile = (body: string) => `var cryptlet = { default: { run() { ${body} } } };`;
const ATTACKS = {
  "infinite loop": "for (;;) {}",
  "`Array.prototype.includes` on length 2^53−1": "return Array.prototype.includes.call({ length: 2 ** 53 - 1 }, 1);",
  "catastrophic regex": 'return /^(a+)+$/.test("a".repeat(40) + "!");',
  "typed-array memory bomb": "const k = []; for (;;) k.push(new Float64Array(1 << 20));",
} as const;
type Attack = keyof typeof ATTACKS;

interface Stopped {
  ms: number;
  code: string;
  stoppedBy: string;
}

async function runHostile(cryptlet: SandboxedCryptlet, i = 0): Promise<Stopped> {
  const t = performance.now();
  const outcome = await cryptlet.run(null, context(i)).then(
    () => ({ code: "none", stoppedBy: "–" }),
    (e: { code?: string; details?: { stoppedBy?: unknown; observedMs?: unknown } }) => ({
      code: e.code ?? "?",
      // "host clock": the process answered, but after its limit (the pool's own measurement).
      stoppedBy:
        typeof e.details?.stoppedBy === "string"
          ? e.details.stoppedBy
          : e.details?.observedMs !== undefined
            ? "host clock"
            : "engine",
    }),
  );
  return { ms: performance.now() - t, ...outcome };
}

async function timeToStop(engine: SandboxEngine, body: string, timeoutMs: number): Promise<Stopped> {
  const cryptlet = await engine.load(hostile(body), { limits: { timeoutMs } });
  const stopped = await runHostile(cryptlet);
  cryptlet.dispose();
  return stopped;
}

/** Each attack once per engine through a process pool of size 1, `timeoutMs` 1000, `memoryMb` 64. */
async function attacksThroughPool(): Promise<string[]> {
  const lines: string[] = [];
  for (const name of ["isolated-vm", "quickjs"] as const) {
    const pool = new SandboxProcessPool({ size: 1 });
    await pool.warm();
    const engine = new ProcessSandboxEngine(name, pool);
    const cells: string[] = [];
    for (const body of Object.values(ATTACKS)) {
      const s = await timeToStop(engine, body, ATTACK_TIMEOUT_MS);
      cells.push(`${s.ms.toFixed(0)} (${s.code}, ${s.stoppedBy})`);
    }
    await pool.close();
    lines.push(`| ${name} | ${cells.join(" | ")} |`);
  }
  return lines;
}

interface HostileReport {
  runs: number;
  wallMs: number;
  rssBefore: number;
  rssAfter: number;
  rssAfterClose: number;
  heapBefore: number;
  heapAfter: number;
  stats: ReturnType<SandboxProcessPool["stats"]>;
  perAttack: { engine: string; attack: Attack; runs: number; p50: number; max: number; outcomes: string }[];
  /** Loads of the hostile Cryptlets (a probe under the same 100 ms limit) that timed out and were repeated. */
  loadRetries: number;
}

/**
 * Up to {@link HOSTILE_RUNS} hostile runs through one pool of size 2, 2 in flight: the attacks in turn, the
 * engines alternating, `timeoutMs` {@link HOSTILE_TIMEOUT_MS}. The host's RSS before (pool running, the 8
 * Cryptlets loaded) and after.
 */
async function hostileSeries(): Promise<HostileReport> {
  const pool = new SandboxProcessPool({ size: 2 });
  await pool.warm();
  const engines = ["isolated-vm", "quickjs"] as const;
  const attacks = Object.keys(ATTACKS) as Attack[];
  const loaded = new Map<string, SandboxedCryptlet>();
  let loadRetries = 0;
  for (const name of engines) {
    const engine = new ProcessSandboxEngine(name, pool);
    // Both processes run this engine once first (its load probe at 100 ms can time out in a cold process).
    const benign = await engine.load(hostile("return 1;"));
    await Promise.all([0, 1].map((i) => benign.run(null, context(i))));
    for (const attack of attacks) {
      for (let attempt = 1; ; attempt++) {
        try {
          const options = { limits: { timeoutMs: HOSTILE_TIMEOUT_MS } };
          loaded.set(`${name}/${attack}`, await engine.load(hostile(ATTACKS[attack]), options));
          break;
        } catch (error) {
          if ((error as { code?: string }).code !== "ERR_SANDBOX_TIMEOUT" || attempt === 5) throw error;
          loadRetries += 1;
        }
      }
    }
  }
  const results = new Map<string, Stopped[]>();
  const rssBefore = process.memoryUsage().rss;
  const heapBefore = process.memoryUsage().heapUsed;
  let next = 0;
  let runs = 0;
  const start = performance.now();
  await Promise.all(
    [0, 1].map(async () => {
      while (next < HOSTILE_RUNS && performance.now() - start < HOSTILE_BUDGET_MS) {
        const i = next++;
        const key = `${engines[i % 2]}/${attacks[Math.floor(i / 2) % attacks.length]}`;
        const stopped = await runHostile(loaded.get(key)!, i);
        runs += 1;
        results.set(key, [...(results.get(key) ?? []), stopped]);
      }
    }),
  );
  const wallMs = performance.now() - start;
  const rssAfter = process.memoryUsage().rss;
  const heapAfter = process.memoryUsage().heapUsed;
  const stats = pool.stats();
  await pool.close();
  const rssAfterClose = process.memoryUsage().rss;
  const perAttack = [...results].map(([key, list]) => {
    const [engine = "", attack] = key.split("/") as [string, Attack];
    const counts = new Map<string, number>();
    for (const s of list) counts.set(`${s.code} (${s.stoppedBy})`, (counts.get(`${s.code} (${s.stoppedBy})`) ?? 0) + 1);
    const times = list.map((s) => s.ms).sort((a, b) => a - b);
    return {
      engine,
      attack,
      runs: list.length,
      p50: percentile(times, 50),
      max: times[times.length - 1] ?? NaN,
      outcomes: [...counts].map(([outcome, n]) => `${n} × ${outcome}`).join(", "),
    };
  });
  perAttack.sort((a, b) => a.engine.localeCompare(b.engine) || attacks.indexOf(a.attack) - attacks.indexOf(b.attack));
  return { runs, wallMs, rssBefore, rssAfter, rssAfterClose, heapBefore, heapAfter, stats, perAttack, loadRetries };
}

// The hostile series first, while this process has run nothing else (the in-process bombs below grow its RSS).
noteLoad("hostile");
const hostileReport = await hostileSeries();

noteLoad("calls");
const rows: Row[] = [];
rows.push(await measureEngine(new IsolatedVmEngine()));
rows.push(await measureEngine(new IsolatedVmEngine({ isolatePerRun: true }), "isolated-vm, isolate per run"));
rows.push(await measureEngine(new QuickJsEngine()));
rows.push(await measureBaseline());
for (const name of ["isolated-vm", "quickjs"] as const) {
  for (const size of [1, 2]) rows.push(await measureProcessPool(name, size));
}
noteLoad("deno");
const deno = denoVersion();
if (deno) rows.push(await measureDeno(deno));

noteLoad("attacks");
const engines: SandboxEngine[] = [new IsolatedVmEngine(), new QuickJsEngine()];
const bombs: string[] = [];
for (const engine of engines) {
  const loop = await timeToStop(engine, "for (;;) {}", 1000);
  const arrays = await timeToStop(engine, "const k = []; for (;;) k.push(new Array(100000).fill(k.length));", 10000);
  const typed = await timeToStop(engine, "const k = []; for (;;) k.push(new Float64Array(1 << 20));", 10000);
  const strings = await timeToStop(engine, 'let s = "x"; for (;;) s += s;', 10000);
  bombs.push(
    `| ${engine.name} | ${loop.ms.toFixed(0)} (${loop.code}) | ${arrays.ms.toFixed(0)} (${arrays.code}) | ${typed.ms.toFixed(0)} (${typed.code}) | ${strings.ms.toFixed(0)} (${strings.code}) |`,
  );
}
const poolAttacks = await attacksThroughPool();
noteLoad("end");

const f = (n: number | undefined, digits = 2) => (n === undefined ? "–" : n.toFixed(digits));
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
const cpus = os.cpus();
const h = hostileReport;
const s = h.stats;
const markdown = `
Sandbox processes: OS limits \`${s.osLimits}\` (\`SandboxProcessPool#osLimits\`), watchdog grace
\`DEFAULT_GRACE_MS\` = ${DEFAULT_GRACE_MS} ms. Machine: ${cpus[0]?.model.trim() ?? "unknown CPU"}, ${cpus.length}
cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, shared with other work: 1-minute load average
${loadAt("start")} at the start of the run, ${loadAt("end")} at its end (per table below).

Bundle: \`cryptlets/price-median\` (${(Buffer.byteLength(built.bundle) / 1024).toFixed(1)} KiB), built by
\`buildPackage\`; input: the real per-minute observations of two Uniswap V3 USDC/WETH pools on 2024-01-05.
Default limits (64 MiB, 1 s, 64 KiB). A warm call is one \`run\` on a loaded Cryptlet: a fresh context (isolated-vm)
or a fresh runtime and context (QuickJS), the prelude, the bundle's evaluation, \`run\`, output checks; through the
process pool (\`new ProcessSandboxEngine(engine, new SandboxProcessPool({ size }))\`) also the IPC round trip, and
for isolated-vm a new isolate per run (the sandbox process's setting; the in-process "isolate per run" row
separates that cost from the boundary's). Cold start is \`load\` (new isolate or module runtime, compile, probe)
plus the first run (median of ${COLD_STARTS}); "new pool" is the same in a pool just made, i.e. including the spawn
of the sandbox process (median of ${NEW_POOL_COLD_STARTS}); on a running pool each cold start loads a bundle no
process has seen yet. Sequential: ${WARM_CALLS} calls on 1 loaded Cryptlet; 2 in flight: ${WARM_CALLS} calls by two
loops on 2 loaded Cryptlets (with a pool of size 1 the second call waits for the process).
${
  deno
    ? `Deno: \`deno run --no-prompt --v8-flags=--max-old-space-size=64 cryptlet.js\` per call (npm package \`deno\`,
no permission granted), the file holding the same bundle and a driver that reads \`{input, context}\` from stdin and
prints the output JSON; every output checked against node:vm's. Every Deno call is a cold start (its "load + first
run" column is the very first call, which also fills a fresh \`DENO_DIR\`); ${DENO_SEQUENTIAL_CALLS} calls
sequentially, ${DENO_PARALLEL_CALLS} with 2 in flight.`
    : `Deno: not measured, the npm package \`deno\` did not provide a working \`node_modules/.bin/deno\` here.`
}
1-minute load average when these rows started: ${loadAt("calls")} (Deno: ${loadAt("deno")}).

| engine | runs in | cold start, new pool (ms) | cold start, load + first run (ms) | warm p50 (ms) | warm p99 (ms) | calls/s (sequential) | p50 / p99, 2 in flight (ms) | calls/s, 2 in flight |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows
  .map(
    (r) =>
      `| ${r.engine} | ${r.where} | ${f(r.coldNewPoolMs)} | ${f(r.coldMs)} | ${f(r.sequential.p50, 3)} | ${f(r.sequential.p99, 3)} | ${f(r.sequential.perSecond, 0)} | ${f(r.twoInFlight.p50, 3)} / ${f(r.twoInFlight.p99, 3)} | ${f(r.twoInFlight.perSecond, 0)} |`,
  )
  .join("\n")}

Time to stop hostile code in this process (ms, with the error code; infinite loop at \`timeoutMs\` 1000, memory
bombs at \`memoryMb\` 64 with \`timeoutMs\` 10000; load average ${loadAt("attacks")}):

| engine | infinite loop | array bomb | typed-array bomb | string bomb |
| --- | ---: | ---: | ---: | ---: |
${bombs.join("\n")}

Time to stop hostile code through the process pool (size 1, running): ms from the start of \`run\` to its typed
error, with the code and what stopped it (\`engine\`: the engine's own limit inside the sandbox process;
\`host clock\`: the process answered after its limit;
\`watchdog\`: SIGKILL at \`timeoutMs\` + grace = ${ATTACK_TIMEOUT_MS + DEFAULT_GRACE_MS} ms; \`${s.osLimits}\`: the
kernel's OOM kill at the process's memory limit). \`timeoutMs\` ${ATTACK_TIMEOUT_MS}, \`memoryMb\` 64.

| engine | ${Object.keys(ATTACKS).join(" | ")} |
| --- | ${Object.keys(ATTACKS)
  .map(() => "---:")
  .join(" | ")} |
${poolAttacks.join("\n")}

Host after hostile runs: **${h.runs}${h.runs < HOSTILE_RUNS ? ` (of ${HOSTILE_RUNS} planned: the ${HOSTILE_BUDGET_MS / 1000} s budget ran out)` : ""} hostile runs**
through one pool of size 2, 2 in flight, the four attacks above in turn with isolated-vm and QuickJS alternating,
\`timeoutMs\` ${HOSTILE_TIMEOUT_MS}, \`memoryMb\` 64; ${(h.wallMs / 1000).toFixed(1)} s in all (load average
${loadAt("hostile")} at its start). This process's RSS is measured after the pool started and the 8 Cryptlets were
loaded${h.loadRetries > 0 ? ` (${h.loadRetries} of these loads, a probe under the same ${HOSTILE_TIMEOUT_MS} ms limit, timed out and were repeated)` : ""}, and right after the last run.

| measure | value |
| --- | --- |
| host RSS before → after the runs | ${mib(h.rssBefore)} MiB → ${mib(h.rssAfter)} MiB (${h.rssAfter >= h.rssBefore ? "+" : ""}${mib(h.rssAfter - h.rssBefore)} MiB); ${mib(h.rssAfterClose)} MiB after \`close()\` |
| host JS heap used before → after | ${mib(h.heapBefore)} MiB → ${mib(h.heapAfter)} MiB |
| sandbox processes spawned | ${s.spawned} (2 at the start) |
| killed by the watchdog (timeout) | ${s.killedForTimeout} |
| killed for memory (${s.osLimits}) | ${s.killedForMemory} |
| recycled (grown past their start, or over the limit before a run) | ${s.recycled} |

Per attack: time from the call to its typed error, including the wait for a ready sandbox process (a process the
watchdog killed is replaced, and its replacement's start is part of the next run's wait). An \`engine\` timeout of an
attack that only the watchdog can stop is a run whose ${HOSTILE_TIMEOUT_MS} ms ran out before the attack began (the first
run in a just-started sandbox process, on a loaded machine).

| engine | attack | runs | p50 to the error (ms) | max (ms) | outcomes (code, stopped by) |
| --- | --- | ---: | ---: | ---: | --- |
${h.perAttack.map((a) => `| ${a.engine} | ${a.attack} | ${a.runs} | ${f(a.p50, 0)} | ${f(a.max, 0)} | ${a.outcomes} |`).join("\n")}
`;

writeBenchSection("sandbox", "Sandbox engines", "npm run bench:sandbox", markdown);
console.log(markdown);
