/**
 * Flow: `@cryptlet/cold-chain-sla` on real freezer telemetry (cryptlets/cold-chain-sla/data), posted through the
 * HTTP API's invoke endpoint (the HTTP trigger, with an `Idempotency-Key` and an operator token from the local
 * issuer) in windows of 30 readings. Each result is sealed for manufacturer, carrier and retailer, recorded on the
 * consortium chain and anchored (hash only) on the public chain. Checks: each party opens every report with the
 * `cryptlet` CLI, each report equals the one reference.ts computes from the telemetry file, a fourth key is refused
 * with `ERR_NOT_A_RECIPIENT`, and the public chain's anchor transaction (read from the chain) carries the Merkle
 * root and no ciphertext while the consortium's record transaction carries the ciphertext.
 * @module
 */
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { isDeepStrictEqual, promisify } from "node:util";

import { exportJWK, generateKeyPair } from "jose";

import { commissionedAtOf, loadReadings, windowsOf } from "../../../cryptlets/cold-chain-sla/data/loadReadings.ts";
import type { CompositeReceipt } from "../../queue/results.ts";
import { writeBundleFile } from "../bundles.ts";
import { checkOnlyHashOnPublicChain, checkReports, ciphertextForms, onChainBytes } from "../checks.ts";
import { referenceColdChainReport, referenceReadings } from "../reference.ts";
import type { LocalStack } from "../stack.ts";
import type { FlowProgress, FlowReport } from "./types.ts";

const execFileAsync = promisify(execFile);

const ROOT = path.resolve(import.meta.dirname, "..", "..", "..");
const NAME = "@cryptlet/cold-chain-sla";
const PARTIES = ["manufacturer", "carrier", "retailer"] as const;
const DEVICE = "freezer-135-1570";
/** Readings per window (one run each). */
const WINDOW = 30;

/** Where the API is and how to call it. */
export interface ApiAccess {
  url: string;
  /** A bearer token with the operator and auditor roles. */
  token: string;
}

/** Runs `cryptlet decrypt --json` on a bundle file: the plaintext, or the error code the CLI reports. */
async function decryptWithCli(
  bundleFile: string,
  keyFile: string,
): Promise<{ ok: boolean; plaintext?: unknown; code?: string }> {
  const { stdout } = await execFileAsync(
    process.execPath,
    [path.join(ROOT, "runtime", "cli", "main.ts"), "decrypt", bundleFile, "--key", keyFile, "--json"],
    { encoding: "utf8", env: { ...process.env, NODE_OPTIONS: "" }, timeout: 60_000 },
  ).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? "" }));
  try {
    const out = JSON.parse(stdout) as { ok: boolean; plaintext?: unknown; error?: { code?: string } };
    return out.ok ? { ok: true, plaintext: out.plaintext } : { ok: false, code: out.error?.code ?? "unknown" };
  } catch {
    return { ok: false, code: "no JSON output" };
  }
}

async function call<T>(
  api: ApiAccess,
  method: string,
  route: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: T }> {
  const response = await fetch(`${api.url}${route}`, {
    method,
    headers: {
      authorization: `Bearer ${api.token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, body: (await response.json()) as T };
}

/** Runs the telemetry windows through the API and checks the parties' access. */
export async function coldChainFlow(
  stack: LocalStack,
  api: ApiAccess,
  { onProgress }: { onProgress?: FlowProgress } = {},
): Promise<FlowReport> {
  const readings = await loadReadings();
  const windows = windowsOf(readings, WINDOW);
  const commissionedAt = commissionedAtOf(readings);
  const runIds: string[] = [];
  for (const [i, window] of windows.entries()) {
    const input = {
      deviceId: DEVICE,
      readings: window,
      ...(commissionedAt === undefined ? {} : { commissionedAt }),
    };
    const { status, body } = await call<{ runId: string }>(
      api,
      "POST",
      `/v1/cryptlets/${encodeURIComponent(NAME)}/invoke`,
      input,
      {
        "idempotency-key": `cold-chain-window-${i}`,
      },
    );
    if (status !== 202 && status !== 200) throw new Error(`invoke answered ${status}: ${JSON.stringify(body)}`);
    runIds.push(body.runId);
  }
  const receipts: CompositeReceipt[] = [];
  for (const runId of runIds) {
    for (;;) {
      const { body } = await call<{ status: string; receipt?: CompositeReceipt }>(api, "GET", `/v1/runs/${runId}`);
      if (body.status === "complete" && body.receipt) {
        receipts.push(body.receipt);
        break;
      }
      if (body.status === "failed") break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    onProgress?.(receipts.length, runIds.length);
  }

  const checks: FlowReport["checks"] = [
    { description: `${receipts.length} of ${runIds.length} windows complete`, ok: receipts.length === runIds.length },
  ];

  // Each party opens every report with the CLI; each report equals the one the reference implementation
  // computes from the telemetry file; a fourth key is refused with ERR_NOT_A_RECIPIENT.
  const files = receipts.map((receipt) => writeBundleFile(stack.stateDir, receipt));
  const stranger = await generateKeyPair("ECDH-ES+A256KW", { crv: "P-256", extractable: true });
  const strangerFile = path.join(stack.stateDir, "fourth-party.private.jwk.json");
  writeFileSync(strangerFile, JSON.stringify(await exportJWK(stranger.privateKey)), { mode: 0o600 });
  const keyFile = (party: string) =>
    path.join(ROOT, "cryptlets", "cold-chain-sla", "keys", `${party}.private.jwk.json`);
  const opened = await Promise.all(
    files.map(async (file) => ({
      parties: await Promise.all(PARTIES.map((party) => decryptWithCli(file, keyFile(party)))),
      stranger: await decryptWithCli(file, strangerFile),
    })),
  );
  const byAll = opened.filter((o) => o.parties.every((p) => p.ok)).length;
  const agree = opened.every((o) => o.parties.every((p) => isDeepStrictEqual(p.plaintext, o.parties[0]!.plaintext)));
  checks.push({
    description: `each of ${PARTIES.join(", ")} opened ${byAll} of ${files.length} sealed reports with the CLI${agree ? "" : " (their plaintexts differ)"}`,
    ok: files.length > 0 && byAll === files.length && agree,
  });
  const refused = opened.filter((o) => !o.stranger.ok && o.stranger.code === "ERR_NOT_A_RECIPIENT").length;
  checks.push({
    description: `a fourth key is refused with ERR_NOT_A_RECIPIENT on ${refused} of ${files.length} reports${
      opened.some((o) => o.stranger.ok) ? " (it OPENED one)" : ""
    }`,
    ok: files.length > 0 && refused === files.length,
  });
  const all = referenceReadings();
  const commissioned = all.find((r) => Math.round(r.roomC * 100) <= -1800)?.at;
  const expected = windows.map((_, i) =>
    referenceColdChainReport(DEVICE, all.slice(i * WINDOW, (i + 1) * WINDOW), commissioned),
  );
  checks.push(
    checkReports(
      opened.map((o) => o.parties[0]!.plaintext),
      expected,
    ),
  );

  // The public chain holds only the hash: read both chains' transactions, not the local receipt.
  const pub = stack.chains.find((c) => c.name === "public");
  const consortium = stack.chains.find((c) => c.name === "consortium");
  for (const receipt of receipts.slice(-1)) {
    const anchorTarget = receipt.targets.find((t) => t.chain === "public" && t.mode === "anchor");
    const recordTarget = receipt.targets.find((t) => t.chain === "consortium" && t.mode === "record");
    const jwe = "sealed" in receipt.bundle.payload ? receipt.bundle.payload.sealed?.jwe : undefined;
    checks.push(
      checkOnlyHashOnPublicChain(
        pub && anchorTarget?.anchor ? await onChainBytes(pub.chain.provider, anchorTarget.anchor.txHash) : undefined,
        consortium && recordTarget?.receipt?.txHash
          ? await onChainBytes(consortium.chain.provider, recordTarget.receipt.txHash)
          : undefined,
        receipts.flatMap((r) =>
          "sealed" in r.bundle.payload && r.bundle.payload.sealed ? [ciphertextForms(r.bundle.payload.sealed.jwe)] : [],
        ),
        anchorTarget?.batch?.root,
      ),
    );
    if (!jwe) checks.push({ description: "the report is not sealed", ok: false });
  }
  return { name: "cold-chain-sla (real freezer telemetry, HTTP API, sealed)", receipts, checks };
}
