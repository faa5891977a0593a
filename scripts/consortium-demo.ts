/**
 * `npm start -- --members <n>` (runtime/devstack/main.ts runs this script): a consortium of `n` member runtimes
 * (threshold: a majority, 2 of 3) on two local chains, each member with its own Key Vault emulator, Redis prefix,
 * package store, pipeline and workers and API server, co-signing every result over real HTTP (peer-authenticated
 * proposals, the followers' re-execution). The members are runtime instances in this one process (not separate
 * processes); one member is stopped midway (its API and workers go away at once, as a crash looks to its peers).
 * Prints which members signed each result and checks every result on both chains. Exit 0 when every run is
 * confirmed on both chains with at least M members' signatures, 1 otherwise.
 *
 * Options: `--members <n>` (default 3), `--events <n>` (default 12). Redis: `REDIS_URL` (default
 * `redis://127.0.0.1:6379`), under fresh key prefixes removed at the end.
 */
import { Command } from "commander";

import { httpEventId } from "../runtime/attestation/ids.ts";
import type { CompositeReceipt } from "../runtime/queue/results.ts";
import { loadMinuteInputs } from "../cryptlets/price-median/data/loadObservations.ts";
import { protocolWiring, startConsortiumStack } from "../test/support/consortiumStack.ts";

const options = new Command()
  .option("--members <n>", "member runtimes", (v) => Number.parseInt(v, 10), 3)
  .option("--events <n>", "price-median events", (v) => Number.parseInt(v, 10), 12)
  .allowUnknownOption(true)
  .parse()
  .opts<{ members: number; events: number }>();

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s`;
const threshold = Math.floor(options.members / 2) + 1;
console.log(`Cryptlet runtime: a consortium of ${options.members} members, threshold ${threshold} (local)\n`);
const minutes = await loadMinuteInputs();
const stack = await startConsortiumStack({
  members: options.members,
  threshold,
  chains: [
    { name: "consortium", chainId: 31_401 },
    { name: "public", chainId: 31_402 },
  ],
  targets: [
    { chain: "consortium", mode: "record" },
    { chain: "public", mode: "record" },
  ],
  wiring: protocolWiring(),
  answerTimeoutMs: 10_000,
});
for (const m of stack.members) console.log(`${elapsed()}  member     ${m.id}: API ${m.url}, signer ${m.signer}`);

let code: number;
try {
  const stopped = stack.members[stack.members.length - 1]!;
  const receipts: CompositeReceipt[] = [];
  const failures: string[] = [];
  const half = Math.ceil(options.events / 2);
  for (let i = 0; i < options.events; i++) {
    if (i === half) {
      await stack.stop(stopped.id);
      console.log(`${elapsed()}  stopped    ${stopped.id} (API and workers gone)`);
    }
    const live = stack.members.filter((m) => m.up);
    const leader = live[i % live.length]!;
    const { minute, input } = minutes[i % minutes.length]!;
    const key = `demo-${leader.prefix}-${i}`;
    const { runId } = await leader.pipeline.submit({
      eventId: httpEventId(key),
      cryptlet: { name: stack.pkg.manifest.name },
      source: { type: "http", idempotencyKey: key },
      input,
      time: minute + 59,
    });
    const outcome = await leader.pipeline.waitForRun(runId, 180_000);
    if (outcome.status === "complete") receipts.push(outcome.receipt);
    else failures.push(`${runId}: ${outcome.error.code} ${outcome.error.message}`);
    console.log(`${elapsed()}  run        ${i + 1}/${options.events} led by ${leader.id}: ${outcome.status}`);
  }
  console.log("\nresult          leader     signed by                 unanswered*      consortium  public");
  for (const r of receipts) {
    const onChain = await Promise.all(
      stack.chains.map(async (c) => Boolean(await c.ledger.getFunction("isRecorded")(r.resultId))),
    );
    const c = r.cosigning;
    console.log(
      `${r.resultId.slice(0, 14)}  ${(c?.leader ?? "?").padEnd(9)}  ${(c?.signedBy.join(", ") ?? "").padEnd(24)}  ` +
        `${(c?.unanswered.map((u) => u.member).join(", ") || "-").padEnd(15)}  ${onChain.map((w) => (w ? "written    " : "MISSING    ")).join(" ")}`,
    );
    if (r.status !== "confirmed" || onChain.includes(false) || (c?.signedBy.length ?? 0) < threshold) {
      failures.push(`${r.resultId}: status ${r.status}, on chain ${onChain.join("/")}`);
    }
  }
  console.log(
    `\n${receipts.length} of ${options.events} results written on both chains with ${threshold} of ${options.members} ` +
      `members' signatures each; ${stopped.id} stopped after ${half} events. ${failures.length} shortfall(s).`,
  );
  console.log("* timed out, unreachable, or not waited for once M signatures were in");
  for (const f of failures) console.log(`  ${f}`);
  code = failures.length === 0 && receipts.length === options.events ? 0 : 1;
} finally {
  await stack.close();
}
process.exit(code);
