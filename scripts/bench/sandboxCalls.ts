/**
 * The call measurements of `npm run bench:sandbox`, shared with `npm run bench:peers`: the price-median bundle and
 * its real inputs, warm calls through the sandbox process pool, and a Deno process per call.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { runInNewContext } from "node:vm";
import { buildPackage } from "../../runtime/packages/build.ts";
import type { SandboxEngineName } from "../../runtime/sandbox/SandboxEngine.ts";
import { ProcessSandboxEngine } from "../../runtime/sandbox/process/ProcessSandboxEngine.ts";
import { SandboxProcessPool } from "../../runtime/sandbox/process/SandboxProcessPool.ts";
import type { JsonValue } from "../../runtime/sdk/index.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..");
/** Warm calls per measurement (sequential, and again 2 in flight). */
export const WARM_CALLS = 400;
/** Cold starts (load + first run) per engine. */
export const COLD_STARTS = 30;
/** Cold starts in a new process pool (each one spawns a process): fewer, they cost a process start each. */
export const NEW_POOL_COLD_STARTS = 10;
/** Deno processes, one per call: sequentially, then 2 in flight. */
export const DENO_SEQUENTIAL_CALLS = 200;
export const DENO_PARALLEL_CALLS = 100;
const DENO = path.join(ROOT, "node_modules", ".bin", "deno");

/** The price-median bundle, built in memory. */
export const built = await buildPackage(path.join(ROOT, "cryptlets", "price-median"), { outDir: false });
export const minutes = await loadMinuteInputs();
/** Its real per-minute inputs (two Uniswap V3 USDC/WETH pools, 2024-01-05); `input(i)` cycles through them. */
export const inputs = minutes.map((m) => m.input as unknown as JsonValue);
export const input = (i: number) => inputs[i % inputs.length] as JsonValue;
/** The run context of call `i` (request and result ids, `now` in seconds). */
export const context = (i: number) => ({
  event: { kind: "schedule" },
  requestId: "0x" + i.toString(16).padStart(64, "0"),
  resultId: "0x" + (i + 1).toString(16).padStart(64, "0"),
  now: (minutes[i % minutes.length]?.minute ?? 0) + 30,
});

/** The `p`-th percentile (0–100) of ascending `sorted` values (same unit). */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** The median of `values` (same unit). */
export const median = (values: number[]) =>
  percentile(
    [...values].sort((a, b) => a - b),
    50,
  );

/** Latencies (ms) and throughput (calls/s) of a series of calls. */
export interface Timing {
  p50: number;
  p99: number;
  perSecond: number;
}

/** `calls` calls of `call`, `inFlight` at a time (lane = which of the in-flight loops makes the call). */
export async function timeCalls(
  calls: number,
  inFlight: number,
  call: (i: number, lane: number) => Promise<unknown>,
): Promise<Timing> {
  const times: number[] = [];
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async (_, lane) => {
      while (next < calls) {
        const i = next++;
        const t = performance.now();
        await call(i, lane);
        times.push(performance.now() - t);
      }
    }),
  );
  const total = performance.now() - start;
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p99: percentile(times, 99), perSecond: (calls / total) * 1000 };
}

/** One row of the sandbox tables. */
export interface Row {
  engine: string;
  where: string;
  /** Spawn of the sandbox process + load + first run, in a new pool (process pool rows only). */
  coldNewPoolMs?: number;
  /** load + first run (in this process, or in a pool whose processes already run). */
  coldMs?: number;
  sequential: Timing;
  twoInFlight: Timing;
}

/** The same bundle in a node:vm context: no isolation worth the name, the floor the sandboxes are compared with. */
export function loadBaseline() {
  return runInNewContext(`${built.bundle}\ncryptlet`) as { default: { run(i: unknown, c: unknown): unknown } };
}

/** Through the process pool: cold start in a new pool and on a running one, warm calls 1 and 2 in flight. */
export async function measureProcessPool(name: SandboxEngineName, size: number): Promise<Row> {
  const coldNewPool: number[] = [];
  for (let i = 0; i < NEW_POOL_COLD_STARTS; i++) {
    const pool = new SandboxProcessPool({ size });
    const t = performance.now();
    const cryptlet = await new ProcessSandboxEngine(name, pool).load(built.bundle);
    await cryptlet.run(input(i), context(i));
    coldNewPool.push(performance.now() - t);
    await pool.close();
  }
  const pool = new SandboxProcessPool({ size });
  await pool.warm();
  const engine = new ProcessSandboxEngine(name, pool);
  // Warm-up of the children (engine modules, JIT) before the cold starts on a running pool.
  await (await engine.load(built.bundle)).run(input(0), context(0));
  const colds: number[] = [];
  for (let i = 0; i < COLD_STARTS; i++) {
    // A bundle no child has loaded yet (a new package), so that the child compiles and probes it.
    const bundle = `${built.bundle}\n// cold start ${i}\n`;
    const t = performance.now();
    const cryptlet = await engine.load(bundle);
    await cryptlet.run(input(i), context(i));
    colds.push(performance.now() - t);
  }
  const cryptlets = [await engine.load(built.bundle), await engine.load(built.bundle)];
  const warmUp = (i: number, lane: number) => cryptlets[lane]!.run(input(i), context(i));
  await timeCalls(20, 2, warmUp); // every child has the bundle loaded
  const sequential = await timeCalls(WARM_CALLS, 1, (i) => cryptlets[0]!.run(input(i), context(i)));
  const twoInFlight = await timeCalls(WARM_CALLS, 2, warmUp);
  await pool.close();
  return {
    engine: name,
    where: `process pool, size ${size}`,
    coldNewPoolMs: median(coldNewPool),
    coldMs: median(colds),
    sequential,
    twoInFlight,
  };
}

/** The Deno CLI, when the npm package installed a binary that runs here. */
export function denoVersion(): string | undefined {
  if (!existsSync(DENO)) return undefined;
  const result = spawnSync(DENO, ["--version"], { encoding: "utf8" });
  return result.status === 0 ? /deno (\S+)/.exec(result.stdout)?.[1] : undefined;
}

/**
 * A Deno process per call: `deno run --no-prompt` (no permission granted) on a file holding the bundle and a
 * driver that reads `{input, context}` from stdin and prints the output JSON. Every output is checked against
 * the node:vm baseline's.
 */
export async function measureDeno(version: string): Promise<Row> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "cryptlet-bench-deno-"));
  const script = path.join(dir, "cryptlet.js");
  writeFileSync(
    script,
    `${built.bundle}
const { input, context } = JSON.parse(await new Response(Deno.stdin.readable).text());
const output = await cryptlet.default.run(input, { ...context, log() {} });
console.log(JSON.stringify(output));
`,
  );
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", DENO_DIR: path.join(dir, "cache"), NO_COLOR: "1" };
  const args = ["run", "--no-prompt", "--v8-flags=--max-old-space-size=64", script];
  const expected = inputs.map(
    (_, i) => loadBaseline().default.run(structuredClone(input(i)), { ...context(i), log: () => undefined }) as unknown,
  );
  const call = (i: number) =>
    new Promise<void>((resolve, reject) => {
      const child = spawn(DENO, args, { env: { ...env, DENO_NO_UPDATE_CHECK: "1" }, stdio: "pipe" });
      let out = "";
      let err = "";
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
      child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
      child.on("error", reject);
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        if (code !== 0) return reject(new Error(`deno exited with ${signal ?? code}: ${err.slice(-500)}`));
        const want = JSON.stringify(expected[i % expected.length]);
        if (JSON.stringify(JSON.parse(out)) !== want) return reject(new Error(`deno answered ${out}, not ${want}`));
        resolve();
      });
      child.stdin.end(JSON.stringify({ input: input(i), context: context(i) }));
    });
  try {
    const first = performance.now();
    await call(0); // also fills DENO_DIR (as on a warm host)
    const firstMs = performance.now() - first;
    return {
      engine: `Deno ${version}`,
      where: "a new process per call",
      coldMs: firstMs,
      sequential: await timeCalls(DENO_SEQUENTIAL_CALLS, 1, call),
      twoInFlight: await timeCalls(DENO_PARALLEL_CALLS, 2, call),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
