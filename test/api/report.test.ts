/**
 * `GET /v1/runs/{runId}/report` over the real API (real Redis result store, local issuer, OpenAPI validation of
 * requests and responses): a completed run's receipt, built by the real `ResultStore` from a real bundle
 * (test/verify/bundleFixture.ts), is verified with the API's verification settings and rendered as HTML with the
 * report's Content-Security-Policy; a tampered run's page is INVALID; unknown runs are 404 problems; the route
 * needs the auditor role.
 */
import { Wallet } from "ethers";

import type { ProofBundle } from "../../runtime/attestation/bundle.ts";
import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import { CODE_HASH, CONSORTIUM_ID, PACKAGE_NAME, SLOT_TIME, makeBundle } from "../verify/bundleFixture.ts";
import { request, startLightApi, type LightApi } from "./helpers.ts";

const CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";
const wallets = [Wallet.createRandom(), Wallet.createRandom(), Wallet.createRandom()];
let f: LightApi;
let auditor: string;

beforeAll(async () => {
  f = await startLightApi({
    verification: {
      trustedSigners: wallets.map((w) => w.address),
      threshold: 2,
      consortiumId: CONSORTIUM_ID,
      approvedCodeHashes: [CODE_HASH],
    },
  });
  auditor = await f.token("auditor");
});

afterAll(async () => {
  await f?.close();
});

/** Stores a completed run of `bundle` the way the pipeline does: run record, attested record, outcome, receipt. */
async function storeRun(bundle: ProofBundle): Promise<string> {
  const resultId = bundle.result.resultId as Hex32;
  const cryptlet = {
    name: PACKAGE_NAME,
    version: "1.0.0",
    cryptletId: bundle.manifest.cryptletId as Hex32,
    codeHash: CODE_HASH,
  };
  const anchor = bundle.anchors[0]!;
  await f.ctx.results.putRun({
    runId: resultId,
    resultId,
    eventId: bundle.requestId as Hex32,
    requestId: bundle.requestId as Hex32,
    cryptlet,
    targets: [{ chain: "consortium", mode: "record" }],
    acceptedAt: Date.now(),
    event: { type: "schedule", time: Number(SLOT_TIME) },
  });
  await f.ctx.results.putAttested(resultId, {
    bundle: { ...bundle, anchors: [] },
    payload: bundle.payload.public!.data,
    signatures: bundle.signatures.map((s) => s.signature),
    attestedAt: Date.now(),
  });
  await f.ctx.results.putOutcome(resultId, {
    chain: "consortium",
    mode: "record",
    status: "confirmed",
    receipt: {
      status: "confirmed",
      chain: "consortium",
      chainId: 31337,
      idempotencyKey: `record:${resultId}`,
      txHash: anchor.txHash,
      blockNumber: Number(anchor.blockNumber),
      gasUsed: anchor.gasUsed,
      confirmations: 1,
    },
    anchor,
    updatedAt: Date.now(),
  });
  await f.ctx.results.buildReceipt(resultId, resultId, cryptlet, [{ chain: "consortium", mode: "record" }]);
  return resultId;
}

const keys = () => ({ signers: wallets.slice(0, 2), attestation: f.ctx.attestationKey, parties: [] });

test("a completed run: 200 text/html with the CSP; the page names the run and every check passed or was skipped", async () => {
  const { bundle } = await makeBundle(keys(), { attestedAt: new Date() });
  const runId = await storeRun(bundle);
  const res = await request(f.url, "GET", `/v1/runs/${runId}/report`, { token: auditor });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
  expect(res.headers.get("content-security-policy")).toBe(CSP);
  expect(res.text).toMatch(/^<!DOCTYPE html>/);
  expect(res.text).toContain(runId);
  expect(res.text).toContain(PACKAGE_NAME);
  expect(res.text).toContain('id="verdict" data-ok="true"');
  expect(res.text).toContain("API verification settings");
  expect(res.text).toMatch(/data-check="signatures" data-verdict="pass"/);
  expect(res.text).toMatch(/data-check="attestation" data-verdict="pass"/);
  expect(res.text).not.toMatch(/data-verdict="fail"/);
  // The event type and time come from the run record.
  expect(res.text).toContain("schedule");
  expect(res.text).toContain("2024-01-05T00:00:00.000Z");
  // Upper-case run ids name the same run.
  const upper = await request(f.url, "GET", `/v1/runs/0x${runId.slice(2).toUpperCase()}/report`, { token: auditor });
  expect(upper.status).toBe(200);
});

test("a run whose signature was tampered with: the page is INVALID with the signatures check failed", async () => {
  const { bundle } = await makeBundle(keys(), { attestedAt: new Date(), slotTime: SLOT_TIME + 3600n });
  const sig = bundle.signatures[0]!.signature;
  bundle.signatures[0]!.signature = `${sig.slice(0, 12)}${sig[12] === "0" ? "1" : "0"}${sig.slice(13)}`;
  const runId = await storeRun(bundle);
  const res = await request(f.url, "GET", `/v1/runs/${runId}/report`, { token: auditor });
  expect(res.status).toBe(200);
  expect(res.text).toContain('id="verdict" data-ok="false"');
  expect(res.text).toMatch(/data-check="signatures" data-verdict="fail"/);
});

test("?verifyAt= checks the attestation token at that time (expired in 2100); a malformed one is 400", async () => {
  const { bundle } = await makeBundle(keys(), { attestedAt: new Date(), slotTime: SLOT_TIME + 7200n });
  const runId = await storeRun(bundle);
  const later = await request(
    f.url,
    "GET",
    `/v1/runs/${runId}/report?verifyAt=${encodeURIComponent("2100-01-01T00:00:00Z")}`,
    {
      token: auditor,
    },
  );
  expect(later.status).toBe(200);
  expect(later.text).toMatch(/data-check="attestation" data-verdict="fail"/);
  expect(later.text).toContain("ERR_ATTESTATION_EXPIRED");
  expect(later.text).toContain("at 2100-01-01T00:00:00.000Z");
  const bad = await request(f.url, "GET", `/v1/runs/${runId}/report?verifyAt=tomorrow`, { token: auditor });
  expect(bad.status).toBe(400);
});

test("unknown run 404, malformed id 400, no token 401, another role 403 (problem documents)", async () => {
  const unknown = await request(f.url, "GET", `/v1/runs/0x${"ab".repeat(32)}/report`, { token: auditor });
  expect({ status: unknown.status, code: unknown.body.code }).toEqual({ status: 404, code: "ERR_API_NOT_FOUND" });
  expect(unknown.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  const malformed = await request(f.url, "GET", "/v1/runs/0x12/report", { token: auditor });
  expect(malformed.status).toBe(400);
  expect((await request(f.url, "GET", `/v1/runs/0x${"ab".repeat(32)}/report`)).status).toBe(401);
  const publisher = await f.token("publisher");
  expect((await request(f.url, "GET", `/v1/runs/0x${"ab".repeat(32)}/report`, { token: publisher })).status).toBe(403);
});
