/**
 * `npm start`: the main job on local defaults. Starts the local stack (see stack.ts), runs the example Cryptlets
 * on real data through the whole pipeline onto two chains, verifies every proof, and prints a summary. With
 * `--serve` it stays up afterwards (Ctrl-C stops it); otherwise it stops everything and exits: 0 when every run
 * is complete on every target, nothing was dead-lettered, every proof verified against the chains' registries and
 * every check against the data files held; 1 otherwise, with the summary naming each shortfall. Contracts and
 * packages are built first when missing or stale.
 *
 * Options: `--serve`, `--minutes <n>` (price-median minutes, default 60), `--swap-minutes <n>` (Uniswap minutes
 * replayed, default 30), `--redis <url>` (or `REDIS_URL`). `--members <n>` runs a consortium of `n` member runtimes
 * instead (scripts/consortium-demo.ts, issue 12): the single stack is not started.
 * @module
 */
import { spawnSync } from "node:child_process";
import path from "node:path";

import { Command } from "commander";
import { MultiBar, Presets } from "cli-progress";

import { isCryptletError } from "../errors.ts";
import { coldChainFlow } from "./flows/coldChain.ts";
import { crossChainFlow } from "./flows/crossChain.ts";
import { oracleFlow } from "./flows/oracle.ts";
import { uniswapPriceFlow } from "./flows/uniswapPrice.ts";
import { priceMedianFlow } from "./flows/priceMedian.ts";
import type { FlowReport } from "./flows/types.ts";
import { startLocalStack, type LocalStack } from "./stack.ts";
import { formatSummary, summarize } from "./summary.ts";

const program = new Command()
  .name("npm start")
  .description("Run the Cryptlet runtime's local stack on real data and print a summary")
  .option("--serve", "keep the stack running after the summary (Ctrl-C to stop)", false)
  .option("--minutes <n>", "minutes of price data for price-median", (v) => Number.parseInt(v, 10), 60)
  .option(
    "--swap-minutes <n>",
    "minutes of Uniswap swaps to replay for uniswap-price",
    (v) => Number.parseInt(v, 10),
    30,
  )
  .option("--redis <url>", "Redis URL (default REDIS_URL or redis://127.0.0.1:6379)")
  .option("--members <n>", "run a consortium of n member runtimes (threshold: a majority) instead", (v) =>
    Number.parseInt(v, 10),
  )
  .parse();
const options = program.opts<{
  serve: boolean;
  minutes: number;
  swapMinutes: number;
  redis?: string;
  members?: number;
}>();

if (options.members !== undefined) {
  // A consortium of member runtimes co-signing every result (scripts/consortium-demo.ts), in its own process.
  const demo = path.resolve(import.meta.dirname, "..", "..", "scripts", "consortium-demo.ts");
  const child = spawnSync(process.execPath, [demo, "--members", String(options.members)], {
    stdio: "inherit",
    env: { ...process.env, ...(options.redis ? { REDIS_URL: options.redis } : {}) },
  });
  process.exit(child.status ?? 1);
}

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s`;
let stack: LocalStack | undefined;

async function main(): Promise<number> {
  console.log("Cryptlet runtime: local stack (no cloud account needed)\n");
  stack = await startLocalStack({
    ...(options.redis ? { redisUrl: options.redis } : {}),
    onProgress: (step, detail) => console.log(`${elapsed()}  ${step.padEnd(10)} ${detail ?? ""}`),
  });
  console.log(
    `${elapsed()}  ready      ${stack.packages.map((p) => `${p.manifest.name}@${p.manifest.version}`).join(", ")}\n`,
  );

  // Progress bars on a terminal; one line per flow otherwise (CI logs).
  const bars = process.stdout.isTTY
    ? new MultiBar(
        { format: " {flow} [{bar}] {value}/{total} runs", hideCursor: true, clearOnComplete: false },
        Presets.shades_classic,
      )
    : undefined;
  const bar = (flow: string, total: number) => {
    const progress = bars?.create(total, 0, { flow: flow.padEnd(14) });
    return {
      update(done: number) {
        progress?.update(done);
        if (!bars && done === total) console.log(`${elapsed()}  ${flow.padEnd(10)} ${done}/${total} runs complete`);
      },
    };
  };
  const reports: FlowReport[] = [];
  // First, while the local chains' clocks are closest to the wall clock (each automined block takes a later second
  // than the one before, so the busy chains run ahead): the refund's outage lasts until the wall clock passes a
  // deadline taken from the chains' clocks (flows/crossChain.ts).
  const crossBar = bar("xchain-transfer", 3);
  reports.push(await crossChainFlow(stack, { onProgress: (done) => crossBar.update(done) }));
  const priceBar = bar("price-median", options.minutes);
  reports.push(await priceMedianFlow(stack, { minutes: options.minutes, onProgress: (done) => priceBar.update(done) }));
  const swapBar = bar("uniswap-price", options.swapMinutes);
  reports.push(
    await uniswapPriceFlow(stack, { minutes: options.swapMinutes, onProgress: (done) => swapBar.update(done) }),
  );
  const oracleBar = bar("oracle", 1);
  reports.push(await oracleFlow(stack));
  oracleBar.update(1);
  if (stack.api) {
    const token = await stack.api.issuer.mint({ roles: ["operator", "auditor"], subject: "npm-start" });
    const coldBar = bar("cold-chain-sla", 5);
    reports.push(
      await coldChainFlow(stack, { url: stack.api.server.url, token }, { onProgress: (done) => coldBar.update(done) }),
    );
  }
  bars?.stop();

  const summary = await summarize(stack, reports);
  console.log(
    formatSummary(summary, stack, (Date.now() - started) / 1000, [
      ...(stack.api
        ? [
            `API: ${stack.api.server.url} (OpenAPI: ${stack.api.server.url}/openapi.json, JWKS: ${stack.api.server.url}/.well-known/jwks.json)`,
            `queue dashboard: ${stack.api.server.url}/admin/queues (admin token)`,
          ]
        : []),
      `receipts: runs are in Redis under prefix "${stack.config.prefix}" (npx cryptlet status <runId> --config ${stack.configFile})`,
      `bundles: ${stack.stateDir}/bundles/`,
    ]),
  );
  const ok = summary.shortfalls.length === 0;
  if (options.serve) {
    console.log("\nServing; Ctrl-C to stop.");
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
  }
  return ok ? 0 : 1;
}

let code = 1;
try {
  code = await main();
} catch (error) {
  if (isCryptletError(error)) console.error(`\n${error.code}: ${error.shortMessage}`);
  else console.error(error);
} finally {
  await stack?.stop().catch((e: unknown) => console.error("while stopping:", e));
}
process.exit(code);
