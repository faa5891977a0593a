/**
 * A control for timing checks on a busy machine: a worker thread of the test's own process, ticking every 10 ms on
 * its own event loop. A Cryptlet that blocks the host's event loop (an in-process engine on a built-in call) cannot
 * stop it, but it is starved exactly as the host is when the machine is busy (CI runs two test files, their sandbox
 * processes, chains and Redis servers on two cores). A timing bound is judged against what the control saw in the
 * same window, not against a free machine: how often it ticked, how late its timers fired in all (the time it was
 * not scheduled), and its longest gap between two ticks.
 *
 * @module
 */
import { once } from "node:events";
import { readdirSync, readFileSync } from "node:fs";
import { Worker } from "node:worker_threads";

/** What the control saw in a window, in ticks and milliseconds. */
export interface ControlReading {
  ticks: number;
  /** How long in all its timers fired late: the time it was kept from running, ms. */
  lateMs: number;
  /** The longest gap between two of its ticks, ms. */
  maxGapMs: number;
}

/** A window's reading: the control's, and how long this process was kept from running in it. */
export interface WindowReading extends ControlReading {
  /**
   * How long this process was kept from running in the window, ms: the larger of the control's lateness and the
   * longest time one of its threads waited, runnable, on a CPU run queue (Linux /proc/self/task/<tid>/schedstat,
   * second field, ns; sched-stats.rst). A thread busy computing (an engine's) is starved by load as much as the
   * scheduler keeps it waiting, which the control, mostly asleep, does not show.
   */
  starvedMs: number;
}

/** Run-queue wait so far of each thread of this process, ns (empty where /proc has no schedstat). */
function runQueueWaits(): Map<string, number> {
  const waits = new Map<string, number>();
  try {
    for (const tid of readdirSync("/proc/self/task")) {
      try {
        waits.set(tid, Number(readFileSync(`/proc/self/task/${tid}/schedstat`, "utf8").split(" ")[1]));
      } catch {
        // the thread ended meanwhile
      }
    }
  } catch {
    // not Linux
  }
  return waits;
}

/** The control thread. One per test file: `start()` in `beforeAll`, `close()` in `afterAll`. */
export class ControlTicker {
  readonly #worker = new Worker(
    `const { parentPort } = require("node:worker_threads");
     let ticks = 0, lateMs = 0, maxGapMs = 0, last = performance.now();
     setInterval(() => {
       const now = performance.now();
       ticks += 1; lateMs += Math.max(0, now - last - 10); maxGapMs = Math.max(maxGapMs, now - last); last = now;
     }, 10);
     parentPort.on("message", () => { parentPort.postMessage({ ticks, lateMs, maxGapMs }); maxGapMs = 0; });
     parentPort.postMessage("ready");`,
    { eval: true },
  );
  readonly #ready = once(this.#worker, "message");

  /** The control's counters so far (reading resets its longest gap). */
  async read(): Promise<ControlReading> {
    await this.#ready;
    this.#worker.postMessage("read");
    const [reading] = (await once(this.#worker, "message")) as [ControlReading];
    return reading;
  }

  /** Opens a window; the function it returns closes it and tells what happened in it. */
  async window(): Promise<() => Promise<WindowReading>> {
    const before = await this.read();
    const waitsBefore = runQueueWaits();
    return async () => {
      let waitedNs = 0;
      for (const [tid, ns] of runQueueWaits()) waitedNs = Math.max(waitedNs, ns - (waitsBefore.get(tid) ?? 0));
      const after = await this.read();
      const lateMs = after.lateMs - before.lateMs;
      return {
        ticks: after.ticks - before.ticks,
        lateMs,
        maxGapMs: after.maxGapMs,
        starvedMs: Math.max(lateMs, waitedNs / 1e6),
      };
    };
  }

  /** What happened while `fn` ran, with `fn`'s outcome (never throws `fn`'s error: it is returned). */
  async during<T>(fn: () => Promise<T>): Promise<{ value?: T; error?: unknown; control: WindowReading }> {
    const close = await this.window();
    let outcome: { value?: T; error?: unknown };
    try {
      outcome = { value: await fn() };
    } catch (error) {
      outcome = { error };
    }
    return { ...outcome, control: await close() };
  }

  async close(): Promise<void> {
    await this.#worker.terminate();
  }
}
