/**
 * Flow: `@cryptlet/cold-chain-sla` on real freezer telemetry (cryptlets/cold-chain-sla/data), posted through the
 * HTTP API's invoke endpoint (the HTTP trigger, with an `Idempotency-Key` and an operator token from the local
 * issuer) in windows of 30 readings. Each result is sealed for manufacturer, carrier and retailer, recorded on the
 * consortium chain and anchored (hash only) on the public chain. Each party decrypts a report with the `cryptlet`
 * CLI; a fourth key cannot.
 * @module
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";

import { exportJWK, generateKeyPair } from "jose";

import { commissionedAtOf, loadReadings, windowsOf } from "../../../cryptlets/cold-chain-sla/data/loadReadings.ts";
import type { CompositeReceipt } from "../../queue/results.ts";
import type { FlowProgress, FlowReport } from "./types.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..", "..");
const NAME = "@cryptlet/cold-chain-sla";
const PARTIES = ["manufacturer", "carrier", "retailer"] as const;

/** Where the API is and how to call it. */
export interface ApiAccess {
  url: string;
  /** A bearer token with the operator and auditor roles. */
  token: string;
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
  api: ApiAccess,
  stateDir: string,
  { onProgress }: { onProgress?: FlowProgress } = {},
): Promise<FlowReport> {
  const readings = await loadReadings();
  const windows = windowsOf(readings, 30);
  const commissionedAt = commissionedAtOf(readings);
  const runIds: string[] = [];
  for (const [i, window] of windows.entries()) {
    const input = {
      deviceId: "freezer-135-1570",
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

  // Each party opens a report with the CLI; a fourth key cannot.
  const checks: FlowReport["checks"] = [
    { description: `${receipts.length} of ${runIds.length} windows complete`, ok: receipts.length === runIds.length },
  ];
  const bundles = path.join(stateDir, "bundles");
  mkdirSync(bundles, { recursive: true });
  const sample = receipts[receipts.length - 1];
  if (sample) {
    const bundleFile = path.join(bundles, `${sample.runId}.json`);
    writeFileSync(bundleFile, JSON.stringify(sample.bundle, null, 2));
    const cli = (keyFile: string) =>
      spawnSync(
        process.execPath,
        [path.join(ROOT, "runtime", "cli", "main.ts"), "decrypt", bundleFile, "--key", keyFile, "--json"],
        {
          encoding: "utf8",
          env: { ...process.env, NODE_OPTIONS: "" },
        },
      );
    const opened: string[] = [];
    for (const party of PARTIES) {
      const result = cli(path.join(ROOT, "cryptlets", "cold-chain-sla", "keys", `${party}.private.jwk.json`));
      if (result.status === 0) opened.push(party);
    }
    const stranger = await generateKeyPair("ECDH-ES+A256KW", { crv: "P-256", extractable: true });
    const strangerFile = path.join(stateDir, "fourth-party.private.jwk.json");
    writeFileSync(strangerFile, JSON.stringify(await exportJWK(stranger.privateKey)), { mode: 0o600 });
    const refused = cli(strangerFile).status === 1;
    checks.push({
      description: `sealed report opened with the CLI by ${opened.join(", ") || "nobody"}`,
      ok: opened.length === PARTIES.length,
    });
    checks.push({ description: "a fourth key cannot open it (exit code 1)", ok: refused });
    const onPublic = sample.targets.find((t) => t.chain === "public");
    checks.push({
      description: `public chain holds only the hash (anchor mode: Merkle root ${onPublic?.batch?.root.slice(0, 10) ?? "?"}…), consortium chain the ciphertext`,
      ok: onPublic?.mode === "anchor" && onPublic.status === "confirmed" && "sealed" in sample.bundle.payload,
    });
  }
  return { name: "cold-chain-sla (real freezer telemetry, HTTP API, sealed)", receipts, checks };
}
