/**
 * `npm run chaos`, short: every fault kind at least once while a few hundred events go through both chains, then
 * the chains are counted. The command itself runs (a child process, as an operator would run it); its JSON report
 * must show no loss, no duplicate, nothing stuck or dead-lettered, and each fault having hit something.
 *
 * The second case proves the run can fail: the same command on a Redis without persistence (restarted, so it
 * comes back empty) must report the accepted events it lost and exit 1.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import type { ChaosReport } from "../../runtime/devstack/chaos/run.ts";
import { SCENARIOS } from "../../runtime/devstack/chaos/run.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..");

/**
 * Runs `npm run chaos` with `args`; past `timeoutMs` it is stopped with two SIGINTs (the second exits at once,
 * killing every process the run started), so a hung run fails the test instead of outliving it.
 */
async function chaos(
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; output: string; report?: ChaosReport }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "chaos-test-"));
  const json = path.join(dir, "report.json");
  const child = spawn(
    process.execPath,
    [path.join(ROOT, "runtime", "devstack", "chaos", "main.ts"), ...args, "--json", json],
    {
      cwd: ROOT,
      env: { ...process.env, NODE_OPTIONS: "" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let output = "";
  child.stdout.on("data", (c: Buffer) => (output += c.toString()));
  child.stderr.on("data", (c: Buffer) => (output += c.toString()));
  const timer = setTimeout(() => {
    child.kill("SIGINT");
    setTimeout(() => child.kill("SIGINT"), 1_000);
  }, timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  clearTimeout(timer);
  const report = await readFile(json, "utf8")
    .then((text) => JSON.parse(text) as ChaosReport)
    .catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
  return { code, output, ...(report ? { report } : {}) };
}

describe("npm run chaos", () => {
  test("a short run with every fault: nothing lost, nothing written twice", async () => {
    const { code, output, report } = await chaos(
      [
        "--events",
        "200",
        "--rate",
        "5",
        "--workers",
        "3",
        "--fault",
        "5",
        "--gap",
        "5",
        "--redis-port",
        "6403",
        "--drain-timeout",
        "240",
      ],
      840_000,
    );
    if (code !== 0) console.log(output);
    expect(report).toBeDefined();
    const r = report!;
    expect(r.verdict).toMatchObject({ pass: true, reasons: [] });
    expect(code).toBe(0);
    expect(r.events.accepted).toBe(200);
    for (const chain of r.chains) {
      expect(chain).toMatchObject({ accepted: 200, recorded: 200, lost: 0, writtenTwice: 0, sentTwice: 0 });
      expect(chain.nonceLatest).toBe(chain.relayerTxs);
      expect(chain.noncePending).toBe(chain.nonceLatest);
    }
    expect(r.receipts).toMatchObject({ confirmed: 200, missing: 0 });
    expect(r.deadLetters.count).toBe(0);
    // Every fault kind happened and hit something.
    for (const kind of SCENARIOS) expect(r.faults.injected[kind]).toBeGreaterThanOrEqual(1);
    for (const fault of r.faults.log) expect(fault.hits).toBeGreaterThan(0);
    expect(r.workers.killed).toBeGreaterThanOrEqual(1);
    expect(r.redisRestarts).toBeGreaterThanOrEqual(1);
    const rpc = Object.entries(r.faults.proxies).filter(([name]) => name.startsWith("rpc "));
    expect(rpc.reduce((n, [, s]) => n + s.answered502, 0)).toBeGreaterThan(0);
    expect(r.faults.proxies["key vault"]!.blackHoled).toBeGreaterThan(0);
  }, 900_000);

  test("fails, and says why, when Redis has no persistence", async () => {
    const { code, report } = await chaos(
      [
        "--events",
        "120",
        "--rate",
        "40",
        "--workers",
        "2",
        "--scenarios",
        "redis-restart",
        "--fault",
        "3",
        // The restart comes 2 s into a 3 s submission at 40 events/s, faster than the pipeline finishes them (two
        // chains each): events are still queued when Redis comes back empty. With 10 events/s and the restart after
        // the last one, a quiet machine had written them all and nothing was lost to count.
        "--gap",
        "2",
        "--redis-port",
        "6404",
        "--redis-persistence",
        "none",
        "--submit-timeout",
        "20",
        "--drain-timeout",
        "30",
      ],
      540_000,
    );
    expect(code).toBe(1);
    expect(report!.verdict.pass).toBe(false);
    const lost = report!.chains.reduce((n, c) => n + c.lost, 0);
    expect(lost).toBeGreaterThan(0);
    expect(report!.verdict.reasons.join("; ")).toMatch(/lost/);
  }, 600_000);
});
