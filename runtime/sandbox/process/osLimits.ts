/**
 * OS-level limits for sandbox processes: each child process of the pool gets its own control group with a memory
 * limit (the kernel OOM-kills the child at the limit, never the host) and a CPU quota (one core), plus a bound on
 * its threads. Linux cgroup v2 is used where its memory controller is available to us, cgroup v1 otherwise (as on
 * the machine this was developed on); where neither is writable (not root, not Linux), {@link detectOsLimits}
 * says `none` and the pool falls back to sampling the child's resident memory (`/proc/<pid>/statm`) and killing it
 * above the limit.
 *
 * References: Linux kernel docs, "Control Group v2" (memory.max, memory.events, cpu.max, pids.max) and cgroup v1
 * "Memory Resource Controller" (memory.limit_in_bytes, memory.oom_control, cpu.cfs_quota_us).
 *
 * @module
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import path from "node:path";

/** Which mechanism bounds a sandbox process. */
export type OsLimitKind = "cgroup-v2" | "cgroup-v1" | "none";

/** What {@link detectOsLimits} found. */
export interface OsLimitSupport {
  kind: OsLimitKind;
  /** The cgroup folder under which child groups are made (v2: one folder; v1: per controller). */
  roots: { memory?: string; cpu?: string; pids?: string; unified?: string };
  /** Why the kind is `none`, when it is. */
  reason?: string;
}

const CGROUP_FS = "/sys/fs/cgroup";

function ownCgroupPaths(): Map<string, string> {
  const paths = new Map<string, string>();
  try {
    for (const line of readFileSync("/proc/self/cgroup", "utf8").trim().split("\n")) {
      const [, controllers = "", where = "/"] = line.split(":");
      for (const c of controllers === "" ? [""] : controllers.split(",")) paths.set(c, where);
    }
  } catch {
    // not Linux
  }
  return paths;
}

function writable(folder: string): boolean {
  const probe = path.join(folder, `cryptlet-probe-${process.pid}`);
  try {
    mkdirSync(probe);
    rmdirSync(probe);
    return true;
  } catch {
    return false;
  }
}

let detected: OsLimitSupport | undefined;

/**
 * Finds the cgroup hierarchy this process may create child groups in: v2 when its `memory` controller is enabled
 * for our group's children, else v1's `memory` hierarchy, else `none`. Memoised.
 */
export function detectOsLimits(): OsLimitSupport {
  if (detected) return detected;
  const own = ownCgroupPaths();
  if (own.size === 0) return (detected = { kind: "none", roots: {}, reason: "no /proc/self/cgroup (not Linux)" });
  const unifiedPath = own.get("");
  const v2root = existsSync(path.join(CGROUP_FS, "cgroup.controllers"))
    ? CGROUP_FS
    : existsSync(path.join(CGROUP_FS, "unified", "cgroup.controllers"))
      ? path.join(CGROUP_FS, "unified")
      : undefined;
  if (v2root && unifiedPath !== undefined) {
    const folder = path.join(v2root, unifiedPath);
    const subtree = existsSync(path.join(folder, "cgroup.subtree_control"))
      ? readFileSync(path.join(folder, "cgroup.subtree_control"), "utf8")
      : "";
    if (/\bmemory\b/.test(subtree) && writable(folder)) {
      return (detected = { kind: "cgroup-v2", roots: { unified: folder } });
    }
  }
  const memoryPath = own.get("memory");
  const memory = memoryPath === undefined ? undefined : path.join(CGROUP_FS, "memory", memoryPath);
  if (memory && existsSync(path.join(memory, "memory.limit_in_bytes")) && writable(memory)) {
    const roots: OsLimitSupport["roots"] = { memory };
    for (const controller of ["cpu", "pids"] as const) {
      const where = own.get(controller) ?? own.get("cpu,cpuacct");
      const folder = where === undefined ? undefined : path.join(CGROUP_FS, controller, where);
      if (folder && writable(folder)) roots[controller] = folder;
    }
    return (detected = { kind: "cgroup-v1", roots });
  }
  return (detected = {
    kind: "none",
    roots: {},
    reason: "no writable cgroup with a memory controller (run as root, or delegate a cgroup v2 subtree)",
  });
}

/** One child process's control group(s). */
export class ProcessCgroup {
  readonly kind: OsLimitKind;
  readonly #folders: { memory?: string; cpu?: string; pids?: string; unified?: string } = {};
  /** The limit in force, in bytes (a new group has none). */
  #memoryLimitBytes = Number.POSITIVE_INFINITY;

  /**
   * Creates the group(s) named `name` under the detected roots. With kind `none` nothing is created and every
   * method is a no-op that reports nothing.
   */
  constructor(name: string, support: OsLimitSupport = detectOsLimits()) {
    this.kind = support.kind;
    for (const [controller, root] of Object.entries(support.roots) as [keyof OsLimitSupport["roots"], string][]) {
      const folder = path.join(root, name);
      mkdirSync(folder, { recursive: true });
      this.#folders[controller] = folder;
    }
    if (this.#folders.cpu) {
      // One core per sandbox process: a Cryptlet cannot starve the host or its neighbours of CPU.
      writeFileSync(path.join(this.#folders.cpu, "cpu.cfs_period_us"), "100000");
      writeFileSync(path.join(this.#folders.cpu, "cpu.cfs_quota_us"), "100000");
    }
    if (this.#folders.unified) {
      try {
        writeFileSync(path.join(this.#folders.unified, "cpu.max"), "100000 100000");
      } catch {
        // cpu controller not delegated: memory still holds
      }
    }
    const pids = this.#folders.pids ?? this.#folders.unified;
    if (pids) {
      try {
        writeFileSync(path.join(pids, "pids.max"), "64");
      } catch {
        // pids controller not available
      }
    }
  }

  /** Moves process `pid` into the group(s). */
  add(pid: number): void {
    for (const folder of Object.values(this.#folders)) writeFileSync(path.join(folder, "cgroup.procs"), String(pid));
  }

  /**
   * Sets the memory limit, in bytes (v1 `memory.limit_in_bytes`, and `memory.memsw.limit_in_bytes` when present
   * so that swap does not extend it; v2 `memory.max` with `memory.swap.max` 0).
   * @returns false when the kernel refused (e.g. the group already uses more than the new limit).
   */
  setMemoryLimit(bytes: number): boolean {
    if (bytes === this.#memoryLimitBytes) return true;
    try {
      if (this.#folders.memory) {
        const memsw = path.join(this.#folders.memory, "memory.memsw.limit_in_bytes");
        const limit = path.join(this.#folders.memory, "memory.limit_in_bytes");
        // memsw must stay ≥ the memory limit: raise memory first when shrinking memsw would fail, and vice versa.
        if (bytes > this.#memoryLimitBytes) {
          if (existsSync(memsw)) writeFileSync(memsw, String(bytes));
          writeFileSync(limit, String(bytes));
        } else {
          writeFileSync(limit, String(bytes));
          if (existsSync(memsw)) writeFileSync(memsw, String(bytes));
        }
      } else if (this.#folders.unified) {
        writeFileSync(path.join(this.#folders.unified, "memory.max"), String(bytes));
        try {
          writeFileSync(path.join(this.#folders.unified, "memory.swap.max"), "0");
        } catch {
          // no swap accounting
        }
      }
      this.#memoryLimitBytes = bytes;
      return true;
    } catch {
      return false;
    }
  }

  /** How many times the kernel OOM-killed a process of this group. */
  oomKills(): number {
    try {
      if (this.#folders.memory) {
        const text = readFileSync(path.join(this.#folders.memory, "memory.oom_control"), "utf8");
        return Number(/oom_kill (\d+)/.exec(text)?.[1] ?? 0);
      }
      if (this.#folders.unified) {
        const text = readFileSync(path.join(this.#folders.unified, "memory.events"), "utf8");
        return Number(/oom_kill (\d+)/.exec(text)?.[1] ?? 0);
      }
    } catch {
      // group gone
    }
    return 0;
  }

  /** Memory the group uses now, in bytes (0 when unknown). */
  memoryUsage(): number {
    try {
      if (this.#folders.memory) {
        return Number(readFileSync(path.join(this.#folders.memory, "memory.usage_in_bytes"), "utf8"));
      }
      if (this.#folders.unified) {
        return Number(readFileSync(path.join(this.#folders.unified, "memory.current"), "utf8"));
      }
    } catch {
      // group gone
    }
    return 0;
  }

  /** Removes the group(s); call after the process exited (a group with members cannot be removed). */
  remove(): void {
    for (const folder of Object.values(this.#folders)) {
      try {
        rmdirSync(folder);
      } catch {
        // still has a member, or gone already
      }
    }
  }
}

/** Resident memory of process `pid`, in bytes, from `/proc/<pid>/statm` (0 when unknown). */
export function residentBytes(pid: number): number {
  try {
    const pages = Number(readFileSync(`/proc/${pid}/statm`, "utf8").split(" ")[1]);
    return pages * 4096;
  } catch {
    return 0;
  }
}

/** The name of a sandbox process's group: `cryptlet-sandbox-<host pid>-<pool>-<slot>-<serial>`. */
const GROUP_NAME = /^cryptlet-sandbox-(\d+)-/;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes the empty groups that sandbox hosts which are no longer running left behind (a host that crashed or
 * exited without closing its pool). Groups of live hosts, and groups that still hold a process, are kept.
 * @returns how many were removed.
 */
export function removeStaleCgroups(support: OsLimitSupport = detectOsLimits()): number {
  let removed = 0;
  for (const root of Object.values(support.roots)) {
    let names: string[];
    try {
      names = readdirSync(root);
    } catch {
      continue;
    }
    for (const name of names) {
      const pid = Number(GROUP_NAME.exec(name)?.[1]);
      if (!pid || pid === process.pid || alive(pid)) continue;
      try {
        rmdirSync(path.join(root, name));
        removed += 1;
      } catch {
        // still has a member, or not ours to remove
      }
    }
  }
  return removed;
}
