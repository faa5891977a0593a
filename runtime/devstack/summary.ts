/**
 * The local stack's closing summary: results and gas per chain and target, every proof bundle verified offline
 * (`verifyBundle` against the consortium's signers, approved code hashes and attestation keys), and the flows'
 * checks against the real data.
 * @module
 */
import { buildJwks } from "../attestation/token.ts";
import { verifyBundle } from "../attestation/verifyBundle.ts";
import type { FlowReport } from "./flows/types.ts";
import type { LocalStack } from "./stack.ts";

/** Figures of the summary. */
export interface StackSummary {
  results: number;
  verified: number;
  failedVerification: string[];
  perTarget: {
    chain: string;
    mode: string;
    confirmed: number;
    alreadyRecorded: number;
    superseded: number;
    failed: number;
    gasUsed: bigint;
    /** Failures by error code. */
    errors: Record<string, number>;
  }[];
  checks: { flow: string; description: string; ok: boolean }[];
}

/** Verifies every bundle and totals the receipts of all flows. */
export async function summarize(stack: LocalStack, reports: FlowReport[]): Promise<StackSummary> {
  const signers = await Promise.all(
    stack.ctx.resultSigners.map((s) => ("getAddress" in s ? s.getAddress() : s.signer.getAddress())),
  );
  const jwks = await buildJwks([stack.ctx.attestationKey]);
  const approved = stack.packages.map((p) => p.codeHash);
  const perTarget = new Map<string, StackSummary["perTarget"][number]>();
  let results = 0;
  let verified = 0;
  const failedVerification: string[] = [];
  const anchorTxs = new Set<string>();
  for (const report of reports) {
    for (const receipt of report.receipts) {
      results += 1;
      const verification = await verifyBundle(receipt.bundle, {
        trustedSigners: signers,
        threshold: 2,
        consortiumId: stack.config.consortiumId,
        approvedCodeHashes: approved,
        jwks,
      });
      if (verification.ok) verified += 1;
      else
        failedVerification.push(
          `${receipt.runId}: ${verification.checks
            .filter((c) => c.verdict === "fail")
            .map((c) => `${c.name} (${c.reason})`)
            .join("; ")}`,
        );
      for (const target of receipt.targets) {
        const key = `${target.chain}/${target.mode}`;
        const row = perTarget.get(key) ?? {
          chain: target.chain,
          mode: target.mode,
          confirmed: 0,
          alreadyRecorded: 0,
          superseded: 0,
          failed: 0,
          gasUsed: 0n,
          errors: {},
        };
        if (target.status === "confirmed") row.confirmed += 1;
        else if (target.status === "already-recorded") row.alreadyRecorded += 1;
        else if (target.status === "superseded") row.superseded += 1;
        else {
          row.failed += 1;
          const code = target.error?.code ?? "unknown";
          row.errors[code] = (row.errors[code] ?? 0) + 1;
        }
        if (target.receipt?.gasUsed) row.gasUsed += BigInt(target.receipt.gasUsed);
        else if (target.anchor && !anchorTxs.has(target.anchor.txHash)) {
          // An anchor transaction is shared by its batch: count it once.
          anchorTxs.add(target.anchor.txHash);
          row.gasUsed += BigInt(target.anchor.gasUsed);
        }
        perTarget.set(key, row);
      }
    }
  }
  return {
    results,
    verified,
    failedVerification,
    perTarget: [...perTarget.values()].sort((a, b) => `${a.chain}/${a.mode}`.localeCompare(`${b.chain}/${b.mode}`)),
    checks: reports.flatMap((r) => r.checks.map((c) => ({ flow: r.name, ...c }))),
  };
}

/** The summary as terminal text. */
export function formatSummary(summary: StackSummary, stack: LocalStack, seconds: number, where: string[]): string {
  const lines = [
    "",
    "Summary",
    "=======",
    `${summary.results} results in ${seconds.toFixed(1)} s; ${summary.verified} of ${summary.results} proof bundles verified offline (signatures 2-of-2, approved code hash, attestation token, payload hash, Merkle proofs).`,
    "",
    "chain/mode            confirmed  already  superseded  failed   gas (own transactions)",
    ...summary.perTarget.map(
      (r) =>
        `${`${r.chain}/${r.mode}`.padEnd(22)}${String(r.confirmed).padStart(9)}${String(r.alreadyRecorded).padStart(9)}${String(r.superseded).padStart(12)}${String(r.failed).padStart(8)}   ${r.gasUsed.toLocaleString("en-US")}` +
        (r.failed > 0
          ? `   failures: ${Object.entries(r.errors)
              .map(([code, n]) => `${code} ×${n}`)
              .join(", ")}`
          : ""),
    ),
    "",
    "Checks against the real data:",
    ...summary.checks.map((c) => `  ${c.ok ? "ok  " : "FAIL"} ${c.flow}: ${c.description}`),
    ...(summary.failedVerification.length > 0
      ? ["", "Bundles that did not verify:", ...summary.failedVerification.map((f) => `  ${f}`)]
      : []),
    "",
    "Where to look:",
    ...where.map((w) => `  ${w}`),
    `  chains: ${stack.chains.map((c) => `${c.name} ${c.chain.url} (chain id ${c.chain.chainId})`).join(", ")}`,
    `  runtime config: ${stack.configFile}`,
  ];
  return lines.join("\n");
}
