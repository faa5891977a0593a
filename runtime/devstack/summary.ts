/**
 * The local stack's closing summary: results and gas per chain and target, every proof bundle verified offline
 * against the trust read from each chain's `CryptletRegistry` (trusted signers, threshold M, approved code hashes;
 * not the in-process keys that signed) and the attestation JWKS as the API serves it, the flows' checks against
 * the data files, and every shortfall that makes `npm start` exit non-zero. Each run's receipt (with its proof
 * bundle) is written to `<stateDir>/bundles/<runId>.json`.
 * @module
 */
import type { JSONWebKeySet } from "jose";

import { buildJwks } from "../attestation/token.ts";
import { verifyBundle } from "../attestation/verifyBundle.ts";
import { readRegistryTrust, verifyOptionsOf, type RegistryTrust } from "../chains/registryTrust.ts";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";

import type { JWK } from "jose";

import { createReexecutor } from "../reexecution/reexecute.ts";
import { packagesFromPaths } from "../reexecution/packageSources.ts";
import { writeBundleFile, writePackageFolders } from "./bundles.ts";
import type { FlowReport } from "./flows/types.ts";
import type { LocalStack } from "./stack.ts";

/** Figures of the summary. */
export interface StackSummary {
  results: number;
  verified: number;
  /** Bundles re-executed (the package re-run on the bundle's evidence) with the same inputHash and outputHash. */
  reexecuted: number;
  failedVerification: string[];
  /** What each chain's registry trusts, as read when verifying. */
  trust: { chain: string; registry: string; blockNumber: number; signers: number; threshold: number }[];
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
  /** Entries in the pipeline's dead-letter queue. */
  deadLetters: number;
  /** Every reason the run fell short; empty when everything held. `npm start` exits 1 when it is not empty. */
  shortfalls: string[];
}

/** The attestation JWKS as an outside verifier gets it: from the API's `/.well-known/jwks.json` when it runs. */
async function attestationJwks(stack: LocalStack): Promise<JSONWebKeySet> {
  if (stack.api) {
    const response = await fetch(`${stack.api.server.url}/.well-known/jwks.json`, {
      signal: AbortSignal.timeout(10_000),
    });
    if (response.ok) return (await response.json()) as JSONWebKeySet;
  }
  return buildJwks([stack.ctx.attestationKey]);
}

/**
 * Private keys of the parties of the sealed packages, as their example folders ship them
 * (`cryptlets/<name>/keys/*.private.jwk.json`: test keys): the local stack re-executes sealed results as a party.
 */
function examplePartyKeys(): JWK[] {
  const root = path.join(import.meta.dirname, "..", "..", "cryptlets");
  const keys: JWK[] = [];
  for (const pkg of readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory())) {
    const dir = path.join(root, pkg.name, "keys");
    if (!existsSync(dir)) continue;
    const files = readdirSync(dir).filter((f) => f.endsWith(".private.jwk.json"));
    for (const f of files.sort()) keys.push(JSON.parse(readFileSync(path.join(dir, f), "utf8")) as JWK);
  }
  return keys;
}

/**
 * Verifies every bundle against each of its chains' registry trust, totals the receipts of all flows, writes one
 * bundle file per run and lists every shortfall.
 */
export async function summarize(stack: LocalStack, reports: FlowReport[]): Promise<StackSummary> {
  const jwks = await attestationJwks(stack);
  const cryptletIds = stack.packages.map((p) => p.cryptletId);
  const trustByChain = new Map<string, RegistryTrust | Error>();
  for (const chain of stack.chains) {
    trustByChain.set(
      chain.name,
      await readRegistryTrust(chain.chain.provider, chain.contracts.registry, { cryptletIds }).catch(
        (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
      ),
    );
  }
  const perTarget = new Map<string, StackSummary["perTarget"][number]>();
  let results = 0;
  let verified = 0;
  let reexecuted = 0;
  // Every bundle is re-executed once, as an outsider would: the packages read back from the folder written for
  // them, the run replayed on the bundle's evidence in a sandbox process (sealed ones opened with a party's key).
  const reexecutor = createReexecutor({
    packages: await packagesFromPaths([await writePackageFolders(stack.stateDir, stack.packages)]),
  });
  const partyKeys = examplePartyKeys();
  const failedVerification: string[] = [];
  const notConfirmed: string[] = [];
  const anchorTxs = new Set<string>();
  for (const report of reports) {
    for (const receipt of report.receipts) {
      results += 1;
      writeBundleFile(stack.stateDir, receipt);
      if (receipt.status !== "confirmed") notConfirmed.push(`${receipt.runId} (${receipt.status})`);
      const problems: string[] = [];
      let rerun = true;
      for (const chainName of new Set(receipt.targets.map((t) => t.chain))) {
        const trust = trustByChain.get(chainName);
        if (!trust || trust instanceof Error) {
          problems.push(`${chainName}: no trust material (${trust?.message ?? "unknown chain"})`);
          continue;
        }
        const verification = await verifyBundle(receipt.bundle, {
          ...verifyOptionsOf(trust, receipt.cryptlet.cryptletId),
          jwks,
          attestationIssuer: stack.config.issuer,
          partyKeys,
          ...(rerun ? { reexecutor } : {}),
        });
        if (rerun && verification.checks.some((c) => c.name === "reexecution" && c.verdict === "pass")) {
          reexecuted += 1;
        }
        rerun = false;
        for (const check of verification.checks.filter((c) => c.verdict === "fail")) {
          problems.push(`${chainName}: ${check.name} (${check.reason})`);
        }
        if (!verification.ok && problems.length === 0) problems.push(`${chainName}: not valid`);
      }
      if (problems.length === 0) verified += 1;
      else failedVerification.push(`${receipt.runId}: ${problems.join("; ")}`);
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
  await reexecutor.close();
  const deadLetters = (await stack.pipeline.deadLetters(1000)).length;
  const checks = reports.flatMap((r) => r.checks.map((c) => ({ flow: r.name, ...c })));
  const rows = [...perTarget.values()].sort((a, b) => `${a.chain}/${a.mode}`.localeCompare(`${b.chain}/${b.mode}`));
  const shortfalls = [
    ...(results === 0 ? ["no run produced a result"] : []),
    ...(reexecuted < results
      ? [
          `${results - reexecuted} of ${results} bundle(s) not reproduced by re-execution (see "Bundles that did not verify")`,
        ]
      : []),
    ...(notConfirmed.length > 0
      ? [`${notConfirmed.length} receipt(s) not confirmed on every target: ${notConfirmed.slice(0, 5).join(", ")}`]
      : []),
    ...rows
      .filter((r) => r.failed > 0)
      .map(
        (r) =>
          `${r.chain}/${r.mode}: ${r.failed} failed write(s) (${Object.entries(r.errors)
            .map(([code, n]) => `${code} ×${n}`)
            .join(", ")})`,
      ),
    ...(deadLetters > 0 ? [`${deadLetters} job(s) in the dead-letter queue`] : []),
    ...(failedVerification.length > 0
      ? [`${failedVerification.length} of ${results} proof bundle(s) did not verify`]
      : []),
    ...checks.filter((c) => !c.ok).map((c) => `check failed: ${c.flow}: ${c.description}`),
  ];
  return {
    results,
    verified,
    reexecuted,
    failedVerification,
    trust: stack.chains.flatMap((c) => {
      const trust = trustByChain.get(c.name);
      return trust && !(trust instanceof Error)
        ? [
            {
              chain: c.name,
              registry: trust.registry,
              blockNumber: trust.blockNumber,
              signers: trust.signers.length,
              threshold: trust.threshold,
            },
          ]
        : [];
    }),
    perTarget: rows,
    checks,
    deadLetters,
    shortfalls,
  };
}

/** The summary as terminal text. */
export function formatSummary(summary: StackSummary, stack: LocalStack, seconds: number, where: string[]): string {
  const lines = [
    "",
    "Summary",
    "=======",
    `${summary.results} results in ${seconds.toFixed(1)} s; ${summary.verified} of ${summary.results} proof bundles verified offline (signatures, approved code hash, attestation token, payload hash, Merkle proofs, evidence) against the trust read from each chain's CryptletRegistry; ${summary.reexecuted} of ${summary.results} re-executed on their evidence with the same inputHash and outputHash:`,
    ...summary.trust.map(
      (t) => `  ${t.chain}: registry ${t.registry} at block ${t.blockNumber}: ${t.threshold}-of-${t.signers} signers`,
    ),
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
    "Checks against the real data (read from the chains, compared with figures computed from the data files):",
    ...summary.checks.map((c) => `  ${c.ok ? "ok  " : "FAIL"} ${c.flow}: ${c.description}`),
    ...(summary.failedVerification.length > 0
      ? ["", "Bundles that did not verify:", ...summary.failedVerification.map((f) => `  ${f}`)]
      : []),
    "",
    ...(summary.shortfalls.length === 0
      ? ["Every run complete on every target, every proof verified, every check held."]
      : [
          `FAILED: ${summary.shortfalls.length} shortfall(s):`,
          ...summary.shortfalls.map((f) => `  - ${f}`),
          "  (receipts and bundles: the bundles folder below, `npx cryptlet status <runId> --config <runtime config>`;",
          "   dead letters: the queue dashboard, queue 'dead-letter'; worker errors: this output above)",
        ]),
    "",
    "Where to look:",
    ...where.map((w) => `  ${w}`),
    `  chains: ${stack.chains.map((c) => `${c.name} ${c.chain.url} (chain id ${c.chain.chainId})`).join(", ")}`,
    `  runtime config: ${stack.configFile}`,
  ];
  return lines.join("\n");
}
