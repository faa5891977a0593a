/**
 * The process boundary (runtime/sandbox/process/): the red team's cases that hung, starved or bloated the host
 * in-process, on both engines, through sandbox processes. Each asserts the typed error, the time to stop
 * (≤ timeoutMs + grace + a stated margin for a loaded 2-core machine), that the host stayed responsive, and that
 * the next legitimate run on the same pool is correct.
 */
import { ProcessSandboxEngine } from "../../runtime/sandbox/process/ProcessSandboxEngine.ts";
import { MEMORY_SLACK_MB, SandboxProcessPool } from "../../runtime/sandbox/process/SandboxProcessPool.ts";
import { detectOsLimits } from "../../runtime/sandbox/process/osLimits.ts";
import type { SandboxEngineName } from "../../runtime/sandbox/SandboxEngine.ts";
import { isCryptletError } from "../../runtime/errors.ts";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { PerformanceObserver } from "node:perf_hooks";

import { ControlTicker, type ControlReading } from "../support/controlTicker.ts";
import { StepTimeoutError, withDeadline } from "../support/deadline.ts";

const ENGINES: SandboxEngineName[] = ["isolated-vm", "quickjs"];
const CTX = { event: {}, requestId: "0x01", resultId: "0x02", now: 1704412800 };
const TIMEOUT_MS = 400;
const GRACE_MS = 300;
/** Scheduling slack on a loaded 2-core machine: the child's kill and exit, the parent's timers. */
const MARGIN_MS = 1500;

const script = (run: string) => `var cryptlet = { default: { run: ${run} } };`;
const LEGIT = script("(input) => ({ doubled: input.n * 2 })");

let control: ControlTicker;
beforeAll(() => {
  control = new ControlTicker();
});
afterAll(async () => {
  await control.close();
});

/**
 * Runs `fn` while a 10 ms interval ticks on the host's event loop and the control thread ticks on its own; returns
 * the outcome, how many ticks the host ran, and what the control saw in the same window. A host blocked by the
 * Cryptlet ticks about never while the control ticks on; a responsive host ticks about as often as the control
 * does, however busy the machine is.
 */
async function observed<T>(fn: () => Promise<T>): Promise<{
  value?: T;
  error?: unknown;
  ms: number;
  ticks: number;
  maxGapMs: number;
  gcMs: number;
  control: ControlReading;
}> {
  let ticks = 0;
  let maxGapMs = 0;
  const before = await control.read();
  const started = performance.now();
  let last = started;
  // The host's own garbage collections in the window (they pause its event loop, not the control's).
  let gcMs = 0;
  const gcs = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gcMs += entry.duration;
  });
  gcs.observe({ entryTypes: ["gc"] });
  const ticker = setInterval(() => {
    const now = performance.now();
    ticks += 1;
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
  }, 10);
  let outcome: { value?: T; error?: unknown };
  try {
    outcome = { value: await fn() };
  } catch (error) {
    outcome = { error };
  }
  const ms = performance.now() - started;
  clearInterval(ticker);
  for (const entry of gcs.takeRecords()) gcMs += entry.duration;
  gcs.disconnect();
  maxGapMs = Math.max(maxGapMs, performance.now() - last);
  const after = await control.read();
  const reading = { ticks: after.ticks - before.ticks, lateMs: after.lateMs - before.lateMs, maxGapMs: after.maxGapMs };
  return { ...outcome, ms, ticks, maxGapMs, gcMs, control: reading };
}

/**
 * Slack for the host's own pauses beyond the control's longest gap (garbage collection, spawning the next sandbox
 * process), in milliseconds: 148 ms was the most seen with three CPU hogs beside the test, against the control's
 * 14 ms. A Cryptlet blocking the host for its deadline (400 ms) stops it for longer than this.
 */
const HOST_PAUSE_SLACK_MS = 300;

/**
 * The host was responsive, judged against the control thread in the same window: it ticked at least a sixteenth
 * as often (a host blocked for the whole run ticks 0 or 1 times against the control's ~ms/10; a quarter was too
 * strict once in CI, 9 against 48, the host's own work such as garbage collection of the test worker's heap
 * pausing only the host), and its event loop never stopped for longer than the control's longest gap plus
 * {@link HOST_PAUSE_SLACK_MS} and the host's own garbage collections in the window (`PerformanceObserver` "gc"
 * entries: a quiet CI once saw a 1537 ms pause of the test worker's host, its heap grown by earlier test files;
 * the control, with a heap of its own, does not pause for them). A Cryptlet blocking the host is no collection.
 */
function expectResponsive(outcome: { ticks: number; maxGapMs: number; gcMs: number; control: ControlReading }): void {
  expect(outcome.ticks).toBeGreaterThanOrEqual(Math.floor(outcome.control.ticks / 16));
  expect(outcome.maxGapMs).toBeLessThan(outcome.control.maxGapMs + HOST_PAUSE_SLACK_MS + outcome.gcMs);
}

/**
 * Stopped in time: within timeout + grace + margin, plus however long the control thread itself was kept from
 * running in that window (on a starved machine the watchdog's own timers fire late by as much). A watchdog that
 * never fires fails this whatever the load, since the control's lateness stays below the run's length.
 */
function expectStoppedInTime(outcome: { ms: number; control: ControlReading }): void {
  expect(outcome.ms).toBeLessThan(TIMEOUT_MS + GRACE_MS + MARGIN_MS + outcome.control.lateMs);
}

/** The cases, and the codes accepted besides a timeout (QuickJS caps BigInt sizes and throws at once). */
const HANGS: [string, string, string[]?][] = [
  ["includes on a huge array-like", "() => Array.prototype.includes.call({ length: 2 ** 53 - 1 }, 1)"],
  ["indexOf on a huge array-like", "() => Array.prototype.indexOf.call({ length: 2 ** 53 - 1 }, 1)"],
  ["lastIndexOf on a huge array-like", "() => Array.prototype.lastIndexOf.call({ length: 2 ** 53 - 1 }, 1)"],
  ["reverse on a huge array-like", "() => Array.prototype.reverse.call({ length: 2 ** 32 - 2 })"],
  ["join on a huge array-like", "() => Array.prototype.join.call({ length: 2 ** 31 }, '').length"],
  ["copyWithin on a huge array-like", "() => Array.prototype.copyWithin.call({ length: 2 ** 53 - 1 }, 0, 1)"],
  ["BigInt power and toString", "() => (7n ** 3000000n).toString().length", ["ERR_CRYPTLET_THREW"]],
  ["a catastrophic regular expression", "() => /^(a+)+$/.test('a'.repeat(40) + 'b')"],
  // Further cases in the same spirit.
  [
    "fill on a huge array-like",
    "() => Array.prototype.fill.call({ length: 2 ** 53 - 1 }, 0)",
    ["ERR_SANDBOX_MEMORY_LIMIT"],
  ],
  [
    "sort on a huge array-like",
    "() => Array.prototype.sort.call({ length: 2 ** 32 - 1 })",
    // V8 aborts the whole process (SIGABRT) here on isolated-vm: in-process, this would take the host down.
    ["ERR_SANDBOX_MEMORY_LIMIT", "ERR_CRYPTLET_THREW", "ERR_SANDBOX_PROCESS_CRASHED"],
  ],
  ["a second catastrophic regular expression", "() => /(x+x+)+y/.test('x'.repeat(60))"],
  ["an alternation regex blow-up", "() => /^(a|a)*$/.test('a'.repeat(45) + '!')"],
  [
    "BigInt factorial",
    "() => { let f = 1n; for (let i = 1n; ; i++) f *= i; }",
    ["ERR_CRYPTLET_THREW", "ERR_SANDBOX_MEMORY_LIMIT"],
  ],
  ["a microtask flood", "() => new Promise(() => { const spin = () => Promise.resolve().then(spin); spin(); })"],
  ["a promise that never settles", "async () => { await new Promise(() => {}); }"],
  ["stack overflow caught forever", "() => { const f = () => f(); for (;;) { try { f(); } catch (e) {} } }"],
  ["an output getter that loops", "() => ({ get x() { for (;;) {} } })"],
  ["an output Proxy whose ownKeys loops", "() => new Proxy({}, { ownKeys() { for (;;) {} } })"],
  [
    "a Map that grows without end",
    "() => { const m = new Map(); for (let i = 0; ; i++) m.set(i, { i }); }",
    // V8 aborts the sandbox process (SIGABRT) here on isolated-vm in some runs on a loaded machine: 3 and 2 of 20
    // beside three CPU hogs, with the memory limit's base taken either way (cgroup charge or resident set), once in
    // CI. The host is not touched, and the error is not retryable.
    ["ERR_SANDBOX_MEMORY_LIMIT", "ERR_SANDBOX_PROCESS_CRASHED"],
  ],
  ["string doubling", "() => { let s = 'x'; for (;;) s += s; }", ["ERR_SANDBOX_MEMORY_LIMIT", "ERR_CRYPTLET_THREW"]],
  [
    "a typed array per iteration, kept",
    "() => { const k = []; for (;;) k.push(new Float64Array(1 << 16)); }",
    ["ERR_SANDBOX_MEMORY_LIMIT"],
  ],
  [
    "a deep structure serialised as output",
    "() => { let o = []; for (let i = 0; i < 1e7; i++) o = [o]; return o; }",
    ["ERR_SANDBOX_MEMORY_LIMIT", "ERR_OUTPUT_NOT_SERIALIZABLE", "ERR_SANDBOX_STACK_OVERFLOW", "ERR_CRYPTLET_THREW"],
  ],
];

describe.each(ENGINES)("sandbox processes on %s", (engine) => {
  let pool: SandboxProcessPool;
  let sandbox: ProcessSandboxEngine;

  beforeAll(async () => {
    pool = new SandboxProcessPool({ size: 1, graceMs: GRACE_MS });
    sandbox = new ProcessSandboxEngine(engine, pool);
    await pool.warm();
  });

  afterAll(async () => {
    await pool.close();
  });

  test("a legitimate Cryptlet runs, warm, and answers its output", async () => {
    const cryptlet = await sandbox.load(LEGIT);
    for (let n = 0; n < 5; n += 1) {
      expect((await cryptlet.run({ n }, CTX)).output).toEqual({ doubled: n * 2 });
    }
  });

  test.each(HANGS)(
    "%s: stopped at its deadline by the watchdog; the host stays responsive; the next run is right",
    async (_name, run, alsoAccepted = []) => {
      // Each step has a deadline of its own (a new sandbox process may take up to the pool's 30 s spawn deadline),
      // so that a step that hangs is named, with the pool's counters, instead of running into Jest's timeout.
      const step = <T>(promise: Promise<T>, ms: number, what: string) =>
        withDeadline(promise, ms, `${what} (pool: ${JSON.stringify(pool.stats())})`);
      const hostile = await step(
        sandbox.load(script(run), { limits: { timeoutMs: TIMEOUT_MS } }),
        35_000,
        "loading the hostile script",
      );
      const outcome = await observed(() => step(hostile.run({}, CTX), 30_000, "the hostile run"));
      if (outcome.error instanceof StepTimeoutError) throw outcome.error;
      expect(isCryptletError(outcome.error)).toBe(true);
      expect(["ERR_SANDBOX_TIMEOUT", ...alsoAccepted]).toContain((outcome.error as { code: string }).code);
      expect((outcome.error as { retryable: boolean }).retryable).toBe(false);
      expectStoppedInTime(outcome);
      expectResponsive(outcome);
      // The next run is judged on its answer, not its speed (the host's responsiveness is checked above): its
      // process was just spawned in place of the killed one, and on a loaded 2-core machine (CI runs test files
      // side by side) its first run once took more than the default 1000 ms.
      const legit = await step(
        sandbox.load(LEGIT, { limits: { timeoutMs: 10_000 } }),
        35_000,
        "loading a legitimate script after it",
      );
      expect((await step(legit.run({ n: 21 }, CTX), 10_000, "the legitimate run")).output).toEqual({ doubled: 42 });
    },
    120_000,
  );

  test("a top-level throw of a Proxy whose get loops does not hang load()", async () => {
    const source = `var p = new Proxy({}, { get() { for (;;) {} } }); throw p;`;
    const outcome = await observed(() => sandbox.load(source, { limits: { timeoutMs: TIMEOUT_MS } }));
    expect(outcome.error).toBeDefined();
    expect(isCryptletError(outcome.error)).toBe(true);
    expectStoppedInTime(outcome);
    expectResponsive(outcome);
    expect((await (await sandbox.load(LEGIT)).run({ n: 1 }, CTX)).output).toEqual({ doubled: 2 });
  });

  test("800 MiB of live typed arrays at a 64 MiB limit is a memory-limit error; the host's memory does not grow", async () => {
    const rssBefore = process.memoryUsage().rss;
    const hog = await sandbox.load(
      script(
        "() => { const keep = []; for (let i = 0; i < 800; i++) keep.push(new Uint8Array(1 << 20).fill(i)); return keep.length; }",
      ),
      { limits: { memoryMb: 64, timeoutMs: 10_000 } },
    );
    const outcome = await observed(() => hog.run({}, CTX));
    expect(isCryptletError(outcome.error, "ERR_SANDBOX_MEMORY_LIMIT")).toBe(true);
    expect((outcome.error as { retryable: boolean }).retryable).toBe(false);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(64 * 1024 * 1024);
    expect((await (await sandbox.load(LEGIT)).run({ n: 3 }, CTX)).output).toEqual({ doubled: 6 });
  });

  test("the memory limit holds within its stated margin: 32 MiB live at a 64 MiB limit runs, 320 MiB is stopped", async () => {
    const hold = (mib: number) =>
      script(
        `() => { const keep = []; for (let i = 0; i < ${mib}; i++) keep.push(new Uint8Array(1 << 20).fill(i & 255)); return keep.reduce((n, a) => n + a.length, 0); }`,
      );
    const limits = { memoryMb: 64, timeoutMs: 10_000 };
    const fits = await sandbox.load(hold(32), { limits });
    expect((await fits.run({}, CTX)).output).toBe(32 * 1024 * 1024);
    const over = await sandbox.load(hold(320), { limits }); // well past memoryMb + MEMORY_SLACK_MB (64 + 128 MiB)
    const outcome = await observed(() => over.run({}, CTX));
    expect(String(outcome.error)).toMatch(/ERR_SANDBOX_MEMORY_LIMIT|memory/);
    expect(isCryptletError(outcome.error, "ERR_SANDBOX_MEMORY_LIMIT")).toBe(true);
    expect((await fits.run({}, CTX)).output).toBe(32 * 1024 * 1024);
  });

  test("a run that ends after its limit is a timeout, whatever the engine reported", async () => {
    // About twice the limit of pure computation, in small steps (each engine's own interrupt may miss it).
    const source = script("() => { let x = 0; for (let i = 0; i < 3e9; i++) { x = (x + i) % 1000003; } return x; }");
    // The load runs under the same 50 ms: a process that the previous test's memory kill left new may need longer
    // for a first load on a loaded machine (it timed out once beside another test file). The load is not what this
    // test is about: warm the process, and load again when the load alone ran out of time.
    await sandbox.load(LEGIT);
    let slow: Awaited<ReturnType<typeof sandbox.load>> | undefined;
    for (let attempt = 1; !slow; attempt++) {
      try {
        slow = await sandbox.load(source, { limits: { timeoutMs: 50 } });
      } catch (error) {
        if (attempt >= 5 || !isCryptletError(error, "ERR_SANDBOX_TIMEOUT")) throw error;
      }
    }
    const outcome = await observed(() => slow.run({}, CTX));
    expect(isCryptletError(outcome.error, "ERR_SANDBOX_TIMEOUT")).toBe(true);
  });
});

test("no state survives between runs: a global set by run A is not there in run B, on either engine", async () => {
  const pool = new SandboxProcessPool({ size: 1 });
  try {
    for (const engine of ENGINES) {
      const probe = await new ProcessSandboxEngine(engine, pool).load(
        script(
          "(input) => { const seen = globalThis.secret ?? null; globalThis.secret = input.secret; Object.prototype.leak = input.secret; return { seen, proto: ({}).leak ?? null }; }",
        ),
      );
      const first = await probe.run({ secret: 1 }, CTX);
      const second = await probe.run({ secret: 2 }, CTX);
      expect(first.output).toEqual({ seen: null, proto: 1 });
      expect(second.output).toEqual({ seen: null, proto: 2 });
    }
  } finally {
    await pool.close();
  }
});

test("no state survives between runs: run B allocates the same whether run A left garbage or not", async () => {
  const pool = new SandboxProcessPool({ size: 1 });
  try {
    const sandbox = new ProcessSandboxEngine("isolated-vm", pool);
    // Phase A keeps 40 MiB reachable from the context while it returns (garbage once the context is gone);
    // phase B then needs 40 MiB of a 64 MiB heap. With one isolate for both runs, B would depend on whether the
    // collector has freed A's garbage yet; with an isolate per run it cannot.
    const probe = await sandbox.load(
      script(`(input) => {
        if (input.phase === "A") {
          globalThis.kept = [];
          if (input.secret) for (let i = 0; i < 40; i++) globalThis.kept.push(new Array(1 << 17).fill(i + 0.5));
          return "A";
        }
        const mine = [];
        for (let i = 0; i < 40; i++) mine.push(new Array(1 << 17).fill(i + 0.5));
        return mine.length;
      }`),
      { limits: { memoryMb: 64, timeoutMs: 5000 } },
    );
    const outcomes: string[] = [];
    for (const secret of [true, false, true, false]) {
      await probe.run({ phase: "A", secret }, CTX);
      outcomes.push(
        await probe.run({ phase: "B" }, CTX).then(
          (r) => `ok ${JSON.stringify(r.output)}`,
          (e: { code?: string }) => `error ${e.code}`,
        ),
      );
    }
    expect(new Set(outcomes).size).toBe(1);
    expect(outcomes[0]).toBe("ok 40");
  } finally {
    await pool.close();
  }
});

/** Runs only where the pool limits memory with a cgroup v1 memory group (this machine and CI): skipped elsewhere. */
const cgroupV1Test = detectOsLimits().kind === "cgroup-v1" ? test : test.skip;

cgroupV1Test("the memory limit the kernel holds is the group's own charge at start + memoryMb + slack", async () => {
  // Read from the kernel's files, not from the pool: the group's charge when the process has started, and the
  // limit in force after a run. A base taken from the resident set (which also counts Node's code shared with the
  // host) put the limit about 60 MiB higher.
  const MiB = 1024 * 1024;
  const root = detectOsLimits().roots.memory!;
  // Earlier test files of this Jest worker may have left groups, some with live sandbox processes of pools never
  // closed: the new pool's group is the one that was not there before (group names are unique per pool).
  const live = () =>
    readdirSync(root).filter(
      (name) =>
        name.startsWith(`cryptlet-sandbox-${process.pid}-`) &&
        readFileSync(path.join(root, name, "cgroup.procs"), "utf8").trim() !== "",
    );
  const before = new Set(live());
  const pool = new SandboxProcessPool({ size: 1 });
  try {
    await pool.warm();
    const groups = live().filter((name) => !before.has(name));
    expect(groups).toHaveLength(1);
    const read = (file: string) => Number(readFileSync(path.join(root, groups[0]!, file), "utf8"));
    const chargeAtStart = read("memory.usage_in_bytes");
    const cryptlet = await new ProcessSandboxEngine("quickjs", pool).load(LEGIT, { limits: { memoryMb: 64 } });
    expect((await cryptlet.run({ n: 1 }, CTX)).output).toEqual({ doubled: 2 });
    const limit = read("memory.limit_in_bytes");
    expect(Math.abs(limit - (chargeAtStart + (64 + MEMORY_SLACK_MB) * MiB)) / MiB).toBeLessThan(8);
  } finally {
    await pool.close();
  }
});
