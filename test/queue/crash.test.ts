import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";

import { httpEventId } from "../../runtime/attestation/ids.ts";
import { interfaceOf } from "../../runtime/chains/contracts.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";
import { startPipelineStack, type PipelineStack } from "../support/pipelineStack.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..");

/** Starts `runtime/queue/worker.ts` as its own process and waits for its ready line. */
async function startWorker(configFile: string, caFile: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [path.join(ROOT, "runtime", "queue", "worker.ts"), configFile], {
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_OPTIONS: "",
      NODE_EXTRA_CA_CERTS: caFile,
      CRYPTLET_LOCK_MS: "3000",
      CRYPTLET_STALLED_MS: "1000",
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker not ready:\n${stderr}`)), 60_000);
    child.stdout!.on("data", (c: Buffer) => {
      if (c.toString().includes('"ready":true')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited with ${code}:\n${stderr}`));
    });
  });
  return child;
}

describe("a worker process killed with SIGKILL mid-run, then restarted", () => {
  let stack: PipelineStack;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    stack = await startPipelineStack({
      chains: [
        { name: "alpha", chainId: 73_001 },
        { name: "beta", chainId: 73_002 },
      ],
      targets: [
        { chain: "alpha", mode: "record" },
        { chain: "beta", mode: "record" },
      ],
      workers: false,
    });
  }, 120_000);

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    await stack?.close();
  });

  test("every result lands on every chain exactly once", async () => {
    const configFile = await stack.writeConfig();
    const caFile = path.join(path.dirname(configFile), "ca.pem");
    const first = await startWorker(configFile, caFile);
    children.push(first);

    const minutes = (await loadMinuteInputs()).slice(0, 40);
    const runs = await Promise.all(
      minutes.map(({ minute, input }) =>
        stack.pipeline.submit({
          eventId: httpEventId(`${stack.prefix}-crash-${minute}`),
          cryptlet: { name: stack.pkg.manifest.name },
          source: { type: "http", idempotencyKey: `crash-${minute}` },
          input,
          time: minute + 59,
        }),
      ),
    );

    // Kill the worker once some writes have landed and others are in flight.
    const deadline = Date.now() + 60_000;
    let landed = 0;
    while (Date.now() < deadline) {
      landed = (await Promise.all(runs.map((r) => stack.ctx.results.outcomes(r.resultId)))).flat().length;
      if (landed >= 6) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    first.kill("SIGKILL");
    await new Promise((resolve) => first.once("exit", resolve));
    expect(landed).toBeGreaterThanOrEqual(6);
    expect(landed).toBeLessThan(runs.length * 2);

    const second = await startWorker(configFile, caFile);
    children.push(second);
    for (const run of runs) {
      const outcome = await stack.pipeline.waitForRun(run.runId, 90_000);
      expect(outcome.status).toBe("complete");
      if (outcome.status === "complete") expect(outcome.receipt.status).toBe("confirmed");
    }

    const topic = interfaceOf("ResultLedger").getEvent("ResultRecorded")!.topicHash;
    for (const chain of stack.chains) {
      const logs = await chain.node.provider.getLogs({
        address: chain.contracts.ledger,
        topics: [topic],
        fromBlock: 0,
      });
      const perResult = new Map<string, number>();
      for (const log of logs) perResult.set(log.topics[1]!, (perResult.get(log.topics[1]!) ?? 0) + 1);
      expect(perResult.size).toBe(runs.length);
      expect([...perResult.values()].every((n) => n === 1)).toBe(true);
      for (const run of runs) expect(perResult.get(run.resultId)).toBe(1);
    }

    // Graceful shutdown: SIGTERM drains and exits 0.
    second.kill("SIGTERM");
    const code = await new Promise((resolve) => second.once("exit", resolve));
    expect(code).toBe(0);
  }, 180_000);
});
