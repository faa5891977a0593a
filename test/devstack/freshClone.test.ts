/**
 * A fresh clone has no build output: no `artifacts/`, no `.cryptlet/`. Every entry point must answer there, no
 * module may read build output when it is imported, and `ensureContractsBuilt` must build what is missing. The
 * tracked and untracked, not ignored, files are copied (as they are in the working tree) into an empty folder, with `node_modules` linked.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync } from "node:fs";
import os from "node:os";
import path from "node:path";

import { contractsBuildNeeded, ensureContractsBuilt } from "../../runtime/chains/contractsBuild.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..");
/** Entry points: they run when imported, so they are started as programs instead. */
const ENTRY_POINTS = new Set([
  "runtime/devstack/main.ts",
  "runtime/devstack/chaos/main.ts",
  "runtime/cli/main.ts",
  "runtime/queue/worker.ts",
  "runtime/keys/emulator/cli.ts",
  "runtime/packages/buildCommand.ts",
]);

describe("a fresh clone (no artifacts, no .cryptlet)", () => {
  let dir: string;
  const node = (args: string[], timeout = 60_000) =>
    spawnSync(process.execPath, args, {
      cwd: dir,
      encoding: "utf8",
      timeout,
      env: { ...process.env, NODE_OPTIONS: "", CRYPTLET_CONFIG: "" },
    });

  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "cryptlet-fresh-"));
    const tracked = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], {
      cwd: ROOT,
      encoding: "utf8",
    }).split("\0");
    for (const file of tracked.filter((f) => f && existsSync(path.join(ROOT, f)))) {
      cpSync(path.join(ROOT, file), path.join(dir, file), { recursive: true });
    }
    symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"), "dir");
    expect(existsSync(path.join(dir, "artifacts"))).toBe(false);
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test.each([
    [["runtime/devstack/main.ts", "--help"], 0, /--swap-minutes/],
    [["runtime/devstack/chaos/main.ts", "--help"], 0, /--events/],
    [["runtime/cli/main.ts", "--help"], 0, /decrypt/],
    [["runtime/cli/main.ts", "verify", "--help"], 0, /verify/],
    [["runtime/queue/worker.ts"], 2, /usage/],
  ])("node %j answers (exit %d)", (args, status, output) => {
    const result = node(args as string[]);
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status, stderr: expect.any(String) });
    expect(result.stdout + result.stderr).toMatch(output);
    expect(result.stdout + result.stderr).not.toMatch(/ERR_CONTRACTS_NOT_BUILT|no artifact/);
  });

  test("every runtime module imports without build output", () => {
    const modules: string[] = [];
    const walk = (folder: string) => {
      for (const entry of readdirSync(path.join(dir, folder), { withFileTypes: true })) {
        const rel = `${folder}/${entry.name}`;
        if (entry.isDirectory()) walk(rel);
        else if (rel.endsWith(".ts") && !ENTRY_POINTS.has(rel)) modules.push(rel);
      }
    };
    walk("runtime");
    expect(modules.length).toBeGreaterThan(80);
    const script = `for (const m of ${JSON.stringify(modules)}) await import("./" + m);\nconsole.log("imported", ${modules.length});`;
    const result = node(["--input-type=module", "-e", script], 120_000);
    expect(result.stderr).not.toMatch(/Error/);
    expect(result.stdout).toContain(`imported ${modules.length}`);
    expect(existsSync(path.join(dir, "artifacts"))).toBe(false);
  });

  test("ensureContractsBuilt builds missing contracts, then finds them up to date, and rebuilds a changed source", async () => {
    expect(contractsBuildNeeded(dir)).toBe("missing");
    const progress: string[] = [];
    expect(await ensureContractsBuilt({ root: dir, onProgress: (d) => progress.push(d) })).toBe("built");
    expect(progress).toEqual(["compiling contracts/ with solc (artifacts missing)"]);
    expect(
      statSync(path.join(dir, "artifacts", "contracts", "CryptletOracle.sol", "CryptletOracle.json")).size,
    ).toBeGreaterThan(1000);
    expect(contractsBuildNeeded(dir)).toBeUndefined();
    expect(await ensureContractsBuilt({ root: dir })).toBe("up-to-date");
    const later = new Date(Date.now() + 5_000);
    utimesSync(path.join(dir, "contracts", "CryptletOracle.sol"), later, later);
    expect(contractsBuildNeeded(dir)).toBe("stale");
  }, 300_000);
});
