/**
 * CPU accounting for the benchmarks, from Linux's /proc: each process's user + system clock ticks
 * (/proc/<pid>/stat, fields 14 and 15), summed over a process and its descendants, and the machine's busy and total
 * time (/proc/stat, first line, all cores). proc(5) is the reference.
 *
 * @module
 */
import { readdirSync, readFileSync } from "node:fs";

import { Redis } from "ioredis";

const TICKS = 100; // USER_HZ: /proc's clock ticks per second on Linux

/** CPU ticks (user + system) of every process, by pid, and each process's parent. */
export function processTable(): Map<number, { ppid: number; ticks: number }> {
  const table = new Map<number, { ppid: number; ticks: number }>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // Fields after the command name (which may hold spaces) start at field 3 (state).
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      table.set(Number(entry), { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // the process ended meanwhile
    }
  }
  return table;
}

/** CPU seconds so far of `roots` and all their descendants. */
export function cpuSecondsOf(roots: number[], table = processTable()): number {
  const children = new Map<number, number[]>();
  for (const [pid, { ppid }] of table) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  let ticks = 0;
  const seen = new Set<number>();
  const stack = [...roots];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    ticks += table.get(pid)?.ticks ?? 0;
    stack.push(...(children.get(pid) ?? []));
  }
  return ticks / TICKS;
}

/** The machine's busy and total CPU seconds so far (/proc/stat, all cores). */
export function machineSeconds(): { busy: number; total: number } {
  const [, ...values] = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = values.map(Number) as number[];
  const busy = user! + nice! + system! + irq! + softirq! + steal!;
  return { busy: busy / TICKS, total: (busy + idle! + iowait!) / TICKS };
}

/** The pid of the redis-server at `port` (INFO server's `process_id`). */
export async function redisPid(port: number): Promise<number> {
  const redis = new Redis({ port, lazyConnect: true, commandTimeout: 2000, connectTimeout: 2000 });
  try {
    await redis.connect();
    return Number(/process_id:(\d+)/.exec(await redis.info("server"))![1]);
  } finally {
    redis.disconnect();
  }
}
