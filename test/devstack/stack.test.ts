import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { coldChainFlow } from "../../runtime/devstack/flows/coldChain.ts";
import { oracleFlow } from "../../runtime/devstack/flows/oracle.ts";
import { priceMedianFlow } from "../../runtime/devstack/flows/priceMedian.ts";
import { uniswapPriceFlow } from "../../runtime/devstack/flows/uniswapPrice.ts";
import { startLocalStack, type LocalStack } from "../../runtime/devstack/stack.ts";
import { formatSummary, summarize } from "../../runtime/devstack/summary.ts";

describe("npm start's local stack on a slice of the real data", () => {
  let stack: LocalStack | undefined;
  let stateDir: string;

  beforeAll(async () => {
    stateDir = await mkdtemp(path.join(os.tmpdir(), "cryptlet-devstack-"));
  });

  afterAll(async () => {
    await stack?.stop();
    await rm(stateDir, { recursive: true, force: true });
  });

  test("starts, runs price-median on 5 minutes of Uniswap prices, verifies every proof; a second start works too", async () => {
    const prefix = `t-devstack-${process.pid}`;
    stack = await startLocalStack({ prefix, stateDir, preferredPorts: false });
    expect(stack.packages.map((p) => p.manifest.name)).toContain("@cryptlet/price-median");
    const report = await priceMedianFlow(stack, { minutes: 5, startMinute: 100 });
    const summary = await summarize(stack, [report]);
    expect(summary.results).toBe(5);
    expect(summary.verified).toBe(5);
    expect(summary.checks.every((c) => c.ok)).toBe(true);
    expect(summary.perTarget).toEqual([
      expect.objectContaining({ chain: "public", mode: "feed", confirmed: 5, failed: 0 }),
    ]);
    expect(formatSummary(summary, stack, 1, [])).toContain("5 of 5 proof bundles verified");
    await stack.stop();

    // Second start: same state directory (persisted Key Vault keys), fresh chains, clean Redis prefix.
    stack = await startLocalStack({ prefix, stateDir, preferredPorts: false });
    const again = await priceMedianFlow(stack, { minutes: 2, startMinute: 200 });
    expect((await summarize(stack, [again])).verified).toBe(2);
  }, 180_000);
});
