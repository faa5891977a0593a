/**
 * `cryptlet report <runId|bundle-or-receipt.json> --html out.html`: writes the proof audit report of one run, a
 * self-contained HTML page (runtime/report/auditReport.ts, docs/proof-bundle.md "Audit report").
 *
 * The bundle is verified exactly as `cryptlet verify` does (same options, same trust rules): with `--config`, the
 * trust is read from the `CryptletRegistry` of each chain the run was written to (`readRegistryTrust`, at the block
 * of the write), one verification per chain; with `--trust <file>`, the trust given. Without trust, or when a chain
 * cannot be read, nothing is written (exit 2). A run id is looked up in the result store of `--config` (the run
 * must be complete). Explorer links come from each configured chain's `explorerUrl`, or `--explorer name=url`.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { isHexString } from "ethers";

import type { RuntimeConfig } from "../../config.ts";
import { ResultStore, type RunRecord } from "../../queue/results.ts";
import { openRedis, redisEndpointOf } from "../../queue/redisClient.ts";
import {
  auditSubjectOf,
  renderAuditReport,
  type AuditEvent,
  type AuditTrust,
  type AuditVerification,
} from "../../report/auditReport.ts";
import { DEFAULT_CONFIG_FILE } from "../config.ts";
import { CliInputError, CliUsageError, RunNotFoundError } from "../errors.ts";
import { readJsonFile } from "../io.ts";
import type { RerunCommandOptions } from "./rerun.ts";
import { verifyCommand, type VerifyOutcome } from "./verify.ts";

/** Options of {@link reportCommand} (the command line's, parsed). */
export interface ReportCommandOptions extends RerunCommandOptions {
  /** `--html <file>`: where to write the page. */
  html: string;
  /** `--config <file>`: chains (trust, names, explorers) and the result store for a run id. */
  config?: string;
  /** `--trust <file>`: verify against a trust file instead of the chains. */
  trust?: string;
  /** `--chain <name...>`: the configured chains to read trust from (default: the run's). */
  chains?: string[];
  /** `--explorer <chain=url...>`: explorer base URLs by chain name or chain id (override the configuration's). */
  explorers?: string[];
  /** `--rpc-timeout <ms>`. */
  rpcTimeoutMs?: number;
}

/** The result of {@link reportCommand}. */
export interface ReportOutcome {
  /** True when no check failed in any verification. */
  ok: boolean;
  /** The file written. */
  html: string;
  bytes: number;
  /** The run (result) id, when the bundle names one. */
  runId?: string;
  /** Failed checks, as `name: reason` (per chain with `--config`). */
  failed: string[];
}

/**
 * Parses `--explorer` values.
 * @throws {@link CliUsageError} for a value that is not `name=http(s)://...`.
 */
export function parseExplorers(values: readonly string[] = []): Record<string, string> {
  const explorers: Record<string, string> = {};
  for (const value of values) {
    const at = value.indexOf("=");
    const url = value.slice(at + 1);
    if (at < 1 || !/^https?:\/\/\S+$/.test(url)) {
      throw new CliUsageError(`--explorer ${value}: expected <chain name or id>=<http(s) URL>`, "--explorer");
    }
    explorers[value.slice(0, at)] = url;
  }
  return explorers;
}

/** Reads a complete run's receipt and run record from the result store of `config`. */
async function loadRun(runId: string, config: RuntimeConfig): Promise<{ document: unknown; run?: RunRecord }> {
  const redis = openRedis(redisEndpointOf(config), { maxRetriesPerRequest: 2, lazyConnect: true });
  try {
    await redis.connect();
    const results = new ResultStore(redis, config.prefix);
    const [receipt, run] = await Promise.all([results.getReceipt(runId), results.getRun(runId)]);
    if (receipt) return { document: receipt, ...(run ? { run } : {}) };
    if (!run) throw new RunNotFoundError(runId);
    throw new CliInputError(
      runId,
      "unexpected-shape",
      `run ${runId} has no receipt yet (${run.error ? "failed" : "pending"}): nothing to report`,
    );
  } finally {
    redis.disconnect();
  }
}

/** The verifications and trust columns of a `cryptlet verify` outcome. */
function verificationsOf(outcome: VerifyOutcome): { verifications: AuditVerification[]; trust: AuditTrust[] } {
  if (outcome.source === "trust-file") {
    const label = `trust file ${outcome.trustFile}: ${outcome.trustedSigners.length} trusted signer(s), threshold ${outcome.threshold}`;
    return {
      verifications: [{ label, report: { ok: outcome.ok, checks: outcome.checks } }],
      trust: [
        {
          source: "given",
          origin: `trust file ${path.basename(outcome.trustFile)}`,
          signers: outcome.trustedSigners,
          threshold: outcome.threshold,
        },
      ],
    };
  }
  return {
    verifications: outcome.chains.map((c) => ({
      label: `chain ${c.chain} (chain id ${c.chainId}): registry ${c.registry} at block ${c.blockNumber}, threshold ${c.requiredThreshold} of ${c.signers.length} signer(s)`,
      report: c,
    })),
    trust: outcome.chains.map((c) => ({
      source: "registry",
      chain: c.chain,
      chainId: String(c.chainId),
      signers: c.signers,
      threshold: c.requiredThreshold,
      registry: c.registry,
      blockNumber: c.blockNumber,
    })),
  };
}

/**
 * Verifies a run (by id, or a bundle / receipt file) and writes its audit report.
 * @param target - a run id (`0x` + 64 hex digits, looked up with `--config`) or a JSON file.
 * @throws {@link CliUsageError} (exit 2) without trust, for a bad `--explorer`; `ERR_REGISTRY_TRUST_UNAVAILABLE`
 *   (exit 2) when a chain cannot be read; `ERR_RUN_NOT_FOUND` / `ERR_CLI_INPUT` (exit 1).
 *
 * @example
 * ```ts
 * import { reportCommand } from "./runtime/cli/commands/report.ts";
 * const r = await reportCommand("receipt.json", { html: "report.html", trust: "trust.json" });
 * ```
 */
export async function reportCommand(target: string, options: ReportCommandOptions): Promise<ReportOutcome> {
  const explorers = parseExplorers(options.explorers);
  const wantsConfig =
    options.config !== undefined || process.env.CRYPTLET_CONFIG !== undefined || existsSync(DEFAULT_CONFIG_FILE);
  let config: RuntimeConfig | undefined;
  const loadConfig = async () => {
    config ??= (await import("../config.ts")).configFor(options.config);
    return config;
  };

  let document: unknown;
  let run: RunRecord | undefined;
  let file = target;
  let tmp: string | undefined;
  try {
    if (existsSync(target)) {
      document = await readJsonFile(target);
    } else if (isHexString(target, 32)) {
      ({ document, run } = await loadRun(target.toLowerCase(), await loadConfig()));
      tmp = await mkdtemp(path.join(os.tmpdir(), "cryptlet-report-"));
      file = path.join(tmp, "receipt.json");
      await writeFile(file, JSON.stringify(document));
    } else {
      throw new CliUsageError(`${target} is neither a file nor a run id (0x + 64 hex digits)`, "<runId|file>");
    }
    const outcome = await verifyCommand(file, {
      ...(options.trust === undefined ? {} : { trust: options.trust }),
      ...(options.config === undefined ? {} : { config: options.config }),
      ...(options.chains === undefined ? {} : { chains: options.chains }),
      ...(options.rpcTimeoutMs === undefined ? {} : { rpcTimeoutMs: options.rpcTimeoutMs }),
      ...(options.rerun ? { rerun: true } : {}),
      ...(options.packages === undefined ? {} : { packages: options.packages }),
      ...(options.partyKeys === undefined ? {} : { partyKeys: options.partyKeys }),
    });
    const chains = wantsConfig ? (await loadConfig()).chains : [];
    // By chain name and by chain id; an --explorer value (by either) overrides the configuration's for that chain.
    const merged: Record<string, string> = {};
    for (const c of chains) {
      if (c.explorerUrl) merged[c.name] = merged[String(c.chainId)] = c.explorerUrl;
    }
    for (const [key, url] of Object.entries(explorers)) {
      merged[key] = url;
      const chain = chains.find((c) => c.name === key || String(c.chainId) === key);
      if (chain) merged[chain.name] = merged[String(chain.chainId)] = url;
    }
    const chainNames = Object.fromEntries(chains.map((c) => [String(c.chainId), c.name]));
    const { bundle, receipt } = auditSubjectOf(document);
    const event: AuditEvent | undefined = run
      ? {
          eventId: run.eventId,
          requestId: run.requestId,
          acceptedAt: run.acceptedAt,
          ...(run.event ? { type: run.event.type, time: run.event.time } : {}),
        }
      : undefined;
    const html = renderAuditReport({
      bundle,
      ...(receipt ? { receipt } : {}),
      ...(event ? { event } : {}),
      ...verificationsOf(outcome),
      options: { explorers: merged, chainNames },
    });
    await writeFile(options.html, html);
    const checks =
      outcome.source === "trust-file"
        ? [{ label: "", checks: outcome.checks }]
        : outcome.chains.map((c) => ({ label: `${c.chain} `, checks: c.checks }));
    const resultId = (bundle as { result?: { resultId?: unknown } } | null)?.result?.resultId;
    return {
      ok: outcome.ok,
      html: options.html,
      bytes: Buffer.byteLength(html),
      ...(typeof resultId === "string" ? { runId: resultId } : {}),
      failed: checks.flatMap((v) =>
        v.checks.filter((c) => c.verdict === "fail").map((c) => `${v.label}${c.name}: ${c.reason}`),
      ),
    };
  } finally {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }
}
