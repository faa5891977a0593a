import type { ChildProcess } from "node:child_process";
import path from "node:path";

import { httpEventId } from "../../runtime/attestation/ids.ts";
import { interfaceOf } from "../../runtime/chains/contracts.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";
import { startPipelineStack, type PipelineStack } from "../support/pipelineStack.ts";
import { startWorker } from "../support/workerProcess.ts";

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
