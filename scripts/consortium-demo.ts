/**
 * `npm start -- --members <n>` (runtime/devstack/main.ts runs this script): a consortium of `n` member runtimes
 * (threshold: a majority, 2 of 3) on two local chains, each member with its own Key Vault emulator, Redis prefix,
 * package store, and its own process (`cryptlet serve api,worker` from its own configuration file), co-signing every
 * result over real HTTP (peer-authenticated proposals, the followers' re-execution). Events enter through the
 * members' APIs in turn; the last member's process is SIGKILLed midway. Prints which members signed each result, as
 * an outsider reads it from each chain (signatures recovered, the registry's names of the signers), and checks every
 * result on both chains. Exit 0 when every run is confirmed on both chains with at least M members' signatures, 1
 * otherwise.
 *
 * Options: `--members <n>` (default 3), `--events <n>` (default 12). Redis: `REDIS_URL` (default
 * `redis://127.0.0.1:6379`), under fresh key prefixes removed at the end.
 */
import { Command } from "commander";

import { verifyBundle } from "../runtime/attestation/verifyBundle.ts";
import { readRegistryTrust, verifyOptionsOf } from "../runtime/chains/registryTrust.ts";
import { Pipeline } from "../runtime/queue/pipeline.ts";
import type { CompositeReceipt } from "../runtime/queue/results.ts";
import { loadMinuteInputs } from "../cryptlets/price-median/data/loadObservations.ts";
import {
  invokeThroughMember,
  protocolWiring,
  startConsortiumStack,
  startMemberProcesses,
} from "../test/support/consortiumStack.ts";
import { stopServed } from "../test/support/serveProcess.ts";

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
const processes = await startMemberProcesses(stack);
for (const m of stack.members) {
  const pid = processes.get(m.id)!.served.ready.pid;
  console.log(`${elapsed()}  member     ${m.id}: process ${pid}, API ${m.url}, signer ${m.signer}`);
}
const alive = new Set(stack.members.map((m) => m.id));

let code: number;
try {
  const stopped = stack.members[stack.members.length - 1]!;
  const receipts: CompositeReceipt[] = [];
  const failures: string[] = [];
  const half = Math.ceil(options.events / 2);
  for (let i = 0; i < options.events; i++) {
    if (i === half) {
      await stopServed(processes.get(stopped.id)!.served, "SIGKILL");
      alive.delete(stopped.id);
      console.log(`${elapsed()}  stopped    ${stopped.id} (its process SIGKILLed)`);
    }
    const live = stack.members.filter((m) => alive.has(m.id));
    const leader = live[i % live.length]!;
    const runId = await invokeThroughMember(
      stack,
      processes.get(leader.id)!,
      minutes[i % minutes.length]!.input,
      `demo-${leader.prefix}-${i}`,
    );
    const reader = new Pipeline(leader.ctx);
    const outcome = await reader.waitForRun(runId, 180_000).finally(() => reader.close());
    if (outcome.status === "complete") receipts.push(outcome.receipt);
    else failures.push(`${runId}: ${outcome.error.code} ${outcome.error.message}`);
    console.log(`${elapsed()}  run        ${i + 1}/${options.events} led by ${leader.id}: ${outcome.status}`);
  }
  console.log("\nresult          leader     signed by (from each chain's registry)  unanswered*  consortium  public");
  for (const r of receipts) {
    const onChain = await Promise.all(
      stack.chains.map(async (c) => Boolean(await c.ledger.getFunction("isRecorded")(r.resultId))),
    );
    // Who signed, as an outsider reads it: the signatures recovered, the members named by each chain's registry.
    const signedBy = await Promise.all(
      stack.chains.map(async (c) => {
        const trust = await readRegistryTrust(c.node.provider, c.contracts.registry, {
          cryptletIds: [r.bundle.result.cryptletId],
        });
        const report = await verifyBundle(r.bundle, verifyOptionsOf(trust, r.bundle.result.cryptletId));
        const check = report.checks.find((k) => k.name === "signatures");
        return check?.verdict === "pass"
          ? (check.signers ?? []).map((x) => x.member ?? x.address).join(", ")
          : "INVALID";
      }),
    );
    const c = r.cosigning;
    console.log(
      `${r.resultId.slice(0, 14)}  ${(c?.leader ?? "?").padEnd(9)}  ${signedBy[0]!.padEnd(38)}  ` +
        `${(c?.unanswered.map((u) => u.member).join(", ") || "-").padEnd(11)}  ${onChain.map((w) => (w ? "written   " : "MISSING   ")).join(" ")}`,
    );
    if (
      r.status !== "confirmed" ||
      onChain.includes(false) ||
      signedBy.some((s) => s === "INVALID" || s !== signedBy[0] || s.split(", ").length < threshold)
    ) {
      failures.push(
        `${r.resultId}: status ${r.status}, on chain ${onChain.join("/")}, signed by ${signedBy.join(" / ")}`,
      );
    }
  }
  console.log(
    `\n${receipts.length} of ${options.events} results written on both chains with ${threshold} of ${options.members} ` +
      `members' signatures each; ${stopped.id} killed after ${half} events. ${failures.length} shortfall(s).`,
  );
  console.log("* timed out, unreachable, or not waited for once M signatures were in");
  for (const f of failures) console.log(`  ${f}`);
  code = failures.length === 0 && receipts.length === options.events ? 0 : 1;
} finally {
  for (const { served } of processes.values()) await stopServed(served);
  await stack.close();
}
process.exit(code);
