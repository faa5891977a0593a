/**
 * `npm run bench:sandbox`: cold start, warm call p50/p99 and calls per second of the sandbox engines and an
 * unsandboxed baseline (node:vm context, same bundle), on the real price-median bundle and real Uniswap prices;
 * then the time to stop an infinite loop and a memory bomb. Writes the "sandbox" section of docs/benchmarks.md.
 * Runs in well under a minute.
 */
import path from "node:path";
import { runInNewContext } from "node:vm";
import { buildPackage } from "../../runtime/packages/build.ts";
import { IsolatedVmEngine, QuickJsEngine, type SandboxEngine } from "../../runtime/sandbox/index.ts";
import type { JsonValue } from "../../runtime/sdk/index.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";
import { writeBenchSection } from "./report.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..");
const WARM_CALLS = 400;
const COLD_STARTS = 30;

const built = await buildPackage(path.join(ROOT, "cryptlets", "price-median"), { outDir: false });
const minutes = await loadMinuteInputs();
const inputs = minutes.map((m) => m.input as unknown as JsonValue);
const context = (i: number) => ({
  event: { kind: "schedule" },
  requestId: "0x" + i.toString(16).padStart(64, "0"),
  resultId: "0x" + (i + 1).toString(16).padStart(64, "0"),
  now: (minutes[i % minutes.length]?.minute ?? 0) + 30,
});

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

interface Row {
  engine: string;
  coldMs: number;
  p50: number;
  p99: number;
  perSecond: number;
}

async function measureEngine(engine: SandboxEngine): Promise<Row> {
  // Warm-up (module instantiation, JIT of the host side).
  (await engine.load(built.bundle)).dispose();
  const colds: number[] = [];
  for (let i = 0; i < COLD_STARTS; i++) {
    const t = performance.now();
    const cryptlet = await engine.load(built.bundle);
    await cryptlet.run(inputs[i % inputs.length] as JsonValue, context(i));
    colds.push(performance.now() - t);
    cryptlet.dispose();
  }
  const cryptlet = await engine.load(built.bundle);
  const times: number[] = [];
  const start = performance.now();
  for (let i = 0; i < WARM_CALLS; i++) {
    const t = performance.now();
    await cryptlet.run(inputs[i % inputs.length] as JsonValue, context(i));
    times.push(performance.now() - t);
  }
  const total = performance.now() - start;
  cryptlet.dispose();
  times.sort((a, b) => a - b);
  colds.sort((a, b) => a - b);
  return {
    engine: engine.name,
    coldMs: percentile(colds, 50),
    p50: percentile(times, 50),
    p99: percentile(times, 99),
    perSecond: (WARM_CALLS / total) * 1000,
  };
}

/** The same bundle in a node:vm context: no isolation worth the name, the floor the sandboxes are compared with. */
async function measureBaseline(): Promise<Row> {
  const load = () =>
    runInNewContext(`${built.bundle}\ncryptlet`) as { default: { run(i: unknown, c: unknown): unknown } };
  const colds: number[] = [];
  for (let i = 0; i < COLD_STARTS; i++) {
    const t = performance.now();
    await load().default.run(structuredClone(inputs[i % inputs.length]), { ...context(i), log: () => undefined });
    colds.push(performance.now() - t);
  }
  const exported = load();
  const times: number[] = [];
  const start = performance.now();
  for (let i = 0; i < WARM_CALLS; i++) {
    const t = performance.now();
    const output = await exported.default.run(JSON.parse(JSON.stringify(inputs[i % inputs.length])), {
      ...context(i),
      log: () => undefined,
    });
    JSON.stringify(output);
    times.push(performance.now() - t);
  }
  const total = performance.now() - start;
  times.sort((a, b) => a - b);
  colds.sort((a, b) => a - b);
  return {
    engine: "node:vm (unsandboxed baseline)",
    coldMs: percentile(colds, 50),
    p50: percentile(times, 50),
    p99: percentile(times, 99),
    perSecond: (WARM_CALLS / total) * 1000,
  };
}

async function timeToStop(
  engine: SandboxEngine,
  body: string,
  timeoutMs: number,
): Promise<{ ms: number; code: string }> {
  const cryptlet = await engine.load(`var cryptlet = { default: { run() { ${body} } } };`, { limits: { timeoutMs } });
  const t = performance.now();
  const code = await cryptlet.run(null, context(0)).then(
    () => "none",
    (e: { code?: string }) => e.code ?? "?",
  );
  const ms = performance.now() - t;
  cryptlet.dispose();
  return { ms, code };
}

const engines: SandboxEngine[] = [new IsolatedVmEngine(), new QuickJsEngine()];
const rows: Row[] = [];
for (const engine of engines) rows.push(await measureEngine(engine));
rows.push(await measureBaseline());

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

const f = (n: number, digits = 2) => n.toFixed(digits);
const markdown = `
Bundle: \`cryptlets/price-median\` (${(Buffer.byteLength(built.bundle) / 1024).toFixed(1)} KiB), built by
\`buildPackage\`; input: the real per-minute observations of two Uniswap V3 USDC/WETH pools on 2024-01-05.
Default limits (64 MiB, 1 s, 64 KiB). A warm call is one \`run\` on a loaded Cryptlet: a fresh context (isolated-vm)
or a fresh runtime and context (QuickJS), the prelude, the bundle's evaluation, \`run\`, output checks.
Cold start is \`load\` (new isolate or module runtime, compile, probe) plus the first run (median of ${COLD_STARTS}).

| engine | cold start (ms) | warm p50 (ms) | warm p99 (ms) | calls/s (1 loaded Cryptlet, sequential) |
| --- | ---: | ---: | ---: | ---: |
${rows.map((r) => `| ${r.engine} | ${f(r.coldMs)} | ${f(r.p50, 3)} | ${f(r.p99, 3)} | ${f(r.perSecond, 0)} |`).join("\n")}

Time to stop hostile code (ms, with the error code; infinite loop at \`timeoutMs\` 1000, memory bombs at
\`memoryMb\` 64 with \`timeoutMs\` 10000):

| engine | infinite loop | array bomb | typed-array bomb | string bomb |
| --- | ---: | ---: | ---: | ---: |
${bombs.join("\n")}
`;

writeBenchSection("sandbox", "Sandbox engines", "npm run bench:sandbox", markdown);
console.log(markdown);
