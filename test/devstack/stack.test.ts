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

  test("starts, runs every flow on a slice of the real data, verifies every proof; a second start works too", async () => {
    const prefix = `t-devstack-${process.pid}`;
    stack = await startLocalStack({ prefix, stateDir, preferredPorts: false });
    expect(stack.packages.map((p) => p.manifest.name)).toEqual(
      expect.arrayContaining(["@cryptlet/price-median", "@cryptlet/uniswap-price", "@cryptlet/cold-chain-sla"]),
    );
    const token = await stack.api!.issuer.mint({ roles: ["operator", "auditor"] });
    const reports = [
      await priceMedianFlow(stack, { minutes: 3, startMinute: 100 }),
      await uniswapPriceFlow(stack, { minutes: 3, startMinute: 300 }),
      await oracleFlow(stack),
      await coldChainFlow(stack, { url: stack.api!.server.url, token }),
    ];
    const summary = await summarize(stack, reports);
    expect(summary.checks.filter((c) => !c.ok)).toEqual([]);
    expect(summary.failedVerification).toEqual([]);
    expect(summary.results).toBe(3 + 3 + 1 + 5);
    expect(summary.verified).toBe(summary.results);
    expect(summary.perTarget.every((t) => t.failed === 0)).toBe(true);
    expect(summary.perTarget.map((t) => `${t.chain}/${t.mode}`)).toEqual([
      "consortium/feed",
      "consortium/oracle",
      "consortium/record",
      "public/anchor",
      "public/feed",
    ]);
    expect(formatSummary(summary, stack, 1, [])).toContain(
      `${summary.results} of ${summary.results} proof bundles verified`,
    );
    await stack.stop();

    // Second start: same state directory (persisted Key Vault keys), fresh chains, clean Redis prefix.
    stack = await startLocalStack({ prefix, stateDir, preferredPorts: false });
    const again = await priceMedianFlow(stack, { minutes: 2, startMinute: 200 });
    expect((await summarize(stack, [again])).verified).toBe(2);
  }, 180_000);
});
