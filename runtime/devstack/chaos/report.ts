/**
 * The chaos run's summary: a Markdown table of what the chains hold and what was injected, printed by
 * `npm run chaos` and, with `--write-docs`, written to the section "Chaos run" of docs/reliability.md (between
 * `<!-- chaos:begin -->` and `<!-- chaos:end -->`; the rest of the file, e.g. another section, is left alone).
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

import type { ChaosReport } from "./run.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..", "..");
/** The document the long run's figures go to. */
export const RELIABILITY_DOC = path.join(ROOT, "docs", "reliability.md");

const n = (v: number) => (Number.isFinite(v) ? Math.round(v).toLocaleString("en-US") : "–");
const ms = (v: number) => (Number.isFinite(v) ? `${n(v)} ms` : "–");

/** The summary table (Markdown) and the verdict line. */
export function formatChaosSummary(report: ChaosReport): string {
  const [a, b] = report.chains;
  const row = (label: string, f: (c: ChaosReport["chains"][number]) => string) =>
    `| ${label} | ${report.chains.map(f).join(" | ")} |`;
  const retries = Object.entries(report.events.submitRetries)
    .map(([code, count]) => `${code} ${n(count)}`)
    .join(", ");
  const proxies = Object.entries(report.faults.proxies)
    .map(
      ([name, s]) =>
        `${name}: ${n(s.received)} received, ${n(s.refused)} refused, ${n(s.blackHoled)} black-holed, ${n(s.answered502)} answered 502 after forwarding`,
    )
    .join("; ");
  const injected = Object.entries(report.faults.injected)
    .map(([kind, count]) => `${kind} ×${count}`)
    .join(", ");
  const letters = Object.entries(report.deadLetters.byCode)
    .map(([code, count]) => `${code} ${count}`)
    .join(", ");
  return [
    `| counted from the chains | ${a?.chain ?? ""} | ${b?.chain ?? ""} |`,
    "| --- | ---: | ---: |",
    row("events accepted", (c) => n(c.accepted)),
    row("results written (ResultRecorded)", (c) => n(c.recorded)),
    row("**lost** (accepted, not written)", (c) => `**${n(c.lost)}**`),
    row("**written more than once**", (c) => `**${n(c.writtenTwice)}**`),
    row("**more than one write transaction mined**", (c) => `**${n(c.sentTwice)}**`),
    row("write transactions mined / reverted", (c) => `${n(c.writeTxs)} / ${n(c.revertedWriteTxs)}`),
    row("relayer transactions in blocks / other than writes", (c) => `${n(c.relayerTxs)} / ${n(c.otherRelayerTxs)}`),
    row("relayer nonce latest / pending", (c) => `${n(c.nonceLatest)} / ${n(c.noncePending)}`),
    row("written but never accepted", (c) => n(c.unexpected)),
    "",
    "| run | |",
    "| --- | --- |",
    `| events planned / accepted | ${n(report.events.planned)} / ${n(report.events.accepted)}${report.events.stoppedEarly ? " (submission stopped early by the operator)" : ""} |`,
    `| submissions retried | ${retries || "none"} |`,
    `| receipts confirmed / partial or failed / missing | ${n(report.receipts.confirmed)} / ${n(report.receipts.partialOrFailed)} / ${n(report.receipts.missing)} |`,
    `| dead letters | ${n(report.deadLetters.count)}${letters ? ` (${letters})` : ""} |`,
    `| latency accept → receipt p50 / p99 / max | ${ms(report.latencyMs.p50)} / ${ms(report.latencyMs.p99)} / ${ms(report.latencyMs.max)} |`,
    `| accepted/s while submitting, confirmed/s overall | ${report.throughput.acceptedPerSecond.toFixed(1)}, ${report.throughput.confirmedPerSecond.toFixed(1)} |`,
    `| faults injected | ${injected || "none"} |`,
    `| worker processes started / SIGKILLed / exited on their own | ${n(report.workers.started)} / ${n(report.workers.killed)} / ${n(report.workers.unexpectedExits)} |`,
    `| worker start-up (spawn → ready) p50 / max | ${ms(report.workers.readyMs.p50)} / ${ms(report.workers.readyMs.max)} |`,
    `| worker shutdown (SIGTERM → exit, slowest) | ${ms(report.workers.shutdownMs ?? NaN)}${report.workers.shutdownOverdue ? `, ${report.workers.shutdownOverdue} overdue (killed)` : ""} |`,
    `| Redis restarts (AOF) | ${n(report.redisRestarts)} |`,
    `| proxies | ${proxies} |`,
    `| time: total / submitting / draining | ${n(report.seconds.total)} s / ${n(report.seconds.submitting)} s / ${n(report.seconds.draining)} s |`,
    "",
    report.verdict.pass
      ? "**PASS**: every accepted event written exactly once on each chain, nothing stuck, nothing dead-lettered."
      : `**FAIL**: ${report.verdict.reasons.join("; ")}.${report.verdict.dir ? ` Logs and Redis files kept in ${report.verdict.dir}.` : ""}`,
  ].join("\n");
}

/**
 * Writes the run into docs/reliability.md, section "Chaos run" (replacing the previous figures), with the
 * machine, load, command and date, and formats the file with Prettier.
 * @param command - the command line that produced the report.
 */
export function writeChaosSection(report: ChaosReport, command: string, file = RELIABILITY_DOC): void {
  const begin = "<!-- chaos:begin -->";
  const end = "<!-- chaos:end -->";
  const o = report.options;
  const section = [
    begin,
    "## Chaos run",
    "",
    `Measured ${report.startedAt.slice(0, 16).replace("T", " ")} UTC with \`${command}\` on ${report.machine}; load`,
    `average ${report.load.atStart.toFixed(1)} at the start, at most ${report.load.max.toFixed(1)} during the run (the machine was shared).`,
    "",
    `Load: ${n(o.events)} events at ${o.rate} events/s (at most ${n(o.maxInFlight)} without a receipt), price-median`,
    `writing each result with \`record\` to two \`hardhat node\` chains; ${o.workers} worker processes, one SIGKILLed every`,
    `${o.killMinMs / 1000}–${o.killMaxMs / 1000} s (among those taking jobs for at least ${o.minUptimeMs / 1000} s) and restarted; the other faults took turns for ${o.faultMs / 1000} s each`,
    `(Key Vault hang ${(2 * o.faultMs) / 1000} s), ${o.gapMs / 1000} s apart: ${o.scenarios.filter((s) => s !== "worker-kill").join(", ")}.`,
    "",
    "How it counts: every block of both chains since the deployment is read straight from the node. A result is",
    "_written_ when the ledger emitted `ResultRecorded` for its `resultId`; a _write transaction_ is a relayer",
    "transaction calling `ResultLedger.record` for it (decoded from the calldata), whether it succeeded or reverted,",
    "so a duplicate send that reached the chain is counted even though the ledger refuses a second record. The",
    "relayer's nonce (`eth_getTransactionCount`, latest and pending) must equal its transactions found in blocks.",
    "Receipts and dead letters come from the runtime; latency runs from the accepted submission to the composite",
    "receipt. The run fails on any accepted event not written on a chain, any result with more than one write",
    "transaction, a nonce mismatch or a pending transaction, a missing or partial receipt, a dead letter, or a fault",
    "that never hit a request (a fault that has not hit one stays on past its time, up to 60 s).",
    "",
    formatChaosSummary(report),
    end,
  ].join("\n");
  let doc = existsSync(file)
    ? readFileSync(file, "utf8")
    : "# Reliability\n\nHow the runtime behaves when what it depends on fails, measured. Each section names its command, machine and date.\n";
  const from = doc.indexOf(begin);
  const to = doc.indexOf(end);
  if (from >= 0 && to > from) doc = doc.slice(0, from) + section + doc.slice(to + end.length);
  else doc = `${doc.trimEnd()}\n\n${section}\n`;
  writeFileSync(file, doc);
  const prettier = path.join(ROOT, "node_modules", "prettier", "bin", "prettier.cjs");
  spawnSync(process.execPath, [prettier, "--write", file], { stdio: "ignore" });
}
