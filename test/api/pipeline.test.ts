/**
 * The API in front of a real pipeline (Redis, a hardhat JSON-RPC chain, the Key Vault emulator through the Azure
 * SDK, the price-median Cryptlet on real price data): invoke → run → composite receipt → proof bundle → verify,
 * the attestation token verified with the keys from `/.well-known/jwks.json`, and an idempotent retry.
 */
import { createRemoteJWKSet, jwtVerify } from "jose";

import { apiDepsOf } from "../../runtime/api/deps.ts";
import { LocalIssuer } from "../../runtime/api/localIssuer.ts";
import { startApiServer, type ApiServer } from "../../runtime/api/server.ts";
import { ATTESTATION_TOKEN_TYPE, verifyAttestationToken } from "../../runtime/attestation/token.ts";
import { QUEUES } from "../../runtime/queue/topology.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";
import { startPipelineStack, type PipelineStack } from "../support/pipelineStack.ts";
import { request, type TestResponse } from "./helpers.ts";

async function until(check: () => Promise<TestResponse>, done: (r: TestResponse) => boolean, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await check();
    if (done(res) || Date.now() > deadline) return res;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe("API → pipeline: invoke, run, bundle, verify (Redis, hardhat node, Key Vault emulator)", () => {
  let stack: PipelineStack;
  let api: ApiServer;
  let operator: string;
  let auditor: string;
  let input: unknown;
  const name = encodeURIComponent("@cryptlet/price-median");

  beforeAll(async () => {
    input = (await loadMinuteInputs())[600]!.input;
    stack = await startPipelineStack({
      chains: [{ name: "consortium", chainId: 73_001 }],
      targets: [{ chain: "consortium", mode: "record" }],
    });
    const issuer = await LocalIssuer.create();
    api = await startApiServer(
      apiDepsOf(stack.ctx, stack.pipeline, {
        auth: issuer.authOptions(),
        verification: {
          trustedSigners: stack.resultSignerAddresses,
          threshold: 2,
          approvedCodeHashes: [stack.pkg.codeHash],
        },
        validateResponses: true,
      }),
      { port: 0 },
    );
    operator = await issuer.mint({ roles: ["operator"] });
    auditor = await issuer.mint({ roles: ["auditor"] });
  }, 120_000);

  afterAll(async () => {
    await api?.close();
    await stack?.close();
  });

  test("an invoked run completes on the chain; its bundle verifies; a retry with the key is the same run", async () => {
    const key = `${stack.prefix}-minute-600`;
    const accepted = await request(api.url, "POST", `/v1/cryptlets/${name}/invoke`, {
      token: operator,
      json: input,
      headers: { "idempotency-key": key },
    });
    expect(accepted.status).toBe(202);
    const { runId } = accepted.body as { runId: string };

    const run = await until(
      () => request(api.url, "GET", accepted.headers.get("location")!, { token: auditor }),
      (r) => r.body.status === "complete" || r.body.status === "failed",
      60_000,
    );
    expect(run.status).toBe(200);
    expect(run.body.status).toBe("complete");
    const receipt = run.body.receipt;
    expect(receipt.status).toBe("confirmed");
    expect(
      receipt.targets.map((t: { chain: string; mode: string; status: string }) => [t.chain, t.mode, t.status]),
    ).toEqual([["consortium", "record", "confirmed"]]);
    expect(run.body.cryptlet.codeHash).toBe(stack.pkg.codeHash);
    expect(await stack.chains[0]!.ledger.getFunction("isRecorded")(runId)).toBe(true);

    const bundle = await request(api.url, "GET", `/v1/results/${runId}/bundle`, { token: auditor });
    expect(bundle.status).toBe(200);
    expect(bundle.headers.get("cryptlet-bundle-state")).toBe("complete");
    expect(bundle.body).toEqual(receipt.bundle);
    expect(bundle.body.anchors).toHaveLength(1);

    const report = await request(api.url, "POST", "/v1/verify", { token: auditor, json: { bundle: bundle.body } });
    expect(report.status).toBe(200);
    expect(report.body.ok).toBe(true);
    const verdicts = Object.fromEntries(
      (report.body.checks as { name: string; verdict: string }[]).map((c) => [c.name, c.verdict]),
    );
    expect(verdicts).toMatchObject({
      schema: "pass",
      consortium: "pass",
      resultId: "pass",
      codeHash: "pass",
      outputHash: "pass",
      signatures: "pass",
      attestation: "pass",
    });

    // Re-executed by the API (rerun: the package from its store, its sandbox): the same inputHash and outputHash.
    const rerun = await request(api.url, "POST", "/v1/verify", {
      token: auditor,
      json: { bundle: bundle.body, rerun: true },
    });
    expect(rerun.status).toBe(200);
    const rerunCheck = (rerun.body.checks as { name: string; verdict: string; reason: string }[]).find(
      (c) => c.name === "reexecution",
    );
    expect(rerunCheck).toMatchObject({ verdict: "pass", reason: expect.stringContaining("reproduced") });
    expect(rerun.body.ok).toBe(true);
    // The evidence's input changed (the price observations): the token's evidenceHash and the commitment fail.
    const changedInput = structuredClone(bundle.body);
    changedInput.evidence.public.input = { changed: true };
    const rerunChanged = await request(api.url, "POST", "/v1/verify", {
      token: auditor,
      json: { bundle: changedInput, rerun: true },
    });
    expect(rerunChanged.body.ok).toBe(false);
    expect(
      (rerunChanged.body.checks as { name: string; verdict: string }[])
        .filter((c) => c.verdict === "fail")
        .map((c) => c.name),
    ).toEqual(expect.arrayContaining(["attestation", "evidence", "reexecution"]));

    // A forged output is a failed report, not a request error.
    const forged = structuredClone(bundle.body);
    forged.result.outputHash = `0x${"00".repeat(32)}`;
    const refused = await request(api.url, "POST", "/v1/verify", { token: auditor, json: { bundle: forged } });
    expect(refused.status).toBe(200);
    expect(refused.body.ok).toBe(false);
    expect(
      (refused.body.checks as { name: string; verdict: string }[])
        .filter((c) => c.verdict === "fail")
        .map((c) => c.name),
    ).toEqual(expect.arrayContaining(["outputHash", "signatures"]));

    // On-chain (onChain): the anchor is checked on the API's chain. Without it the check is skipped; with it, it
    // holds for the real write, fails for an anchor whose transaction is not on the chain, and fails when more
    // confirmations are asked for than the chain itself has (read from the node here, not from the runtime).
    const anchorsCheck = (report: { body: { checks: { name: string; verdict: string; reason: string }[] } }) =>
      report.body.checks.find((c) => c.name === "anchors");
    expect(anchorsCheck(report)?.verdict).toBe("skipped");
    const onChain = await request(api.url, "POST", "/v1/verify", {
      token: auditor,
      json: { bundle: bundle.body, onChain: true },
    });
    expect(onChain.status).toBe(200);
    expect(anchorsCheck(onChain)).toMatchObject({ verdict: "pass" });
    expect(onChain.body.ok).toBe(true);
    const elsewhere = structuredClone(bundle.body);
    elsewhere.anchors[0].txHash = `0x${"ab".repeat(32)}`;
    const notOnChain = await request(api.url, "POST", "/v1/verify", {
      token: auditor,
      json: { bundle: elsewhere, onChain: true },
    });
    expect(anchorsCheck(notOnChain)?.verdict).toBe("fail");
    expect(notOnChain.body.ok).toBe(false);
    const node = stack.chains[0]!.node.provider;
    const confirmations = (await node.getBlockNumber()) - Number(bundle.body.anchors[0].blockNumber) + 1;
    const enough = await request(api.url, "POST", "/v1/verify", {
      token: auditor,
      json: { bundle: bundle.body, onChain: true, confirmations },
    });
    expect(anchorsCheck(enough)?.verdict).toBe("pass");
    const tooMany = await request(api.url, "POST", "/v1/verify", {
      token: auditor,
      json: { bundle: bundle.body, onChain: true, confirmations: confirmations + 5 },
    });
    expect(anchorsCheck(tooMany)?.verdict).toBe("fail");
    expect(tooMany.body.ok).toBe(false);

    // The JWKS endpoint verifies the run's attestation token, with jose's remote key set as any client would.
    const remote = createRemoteJWKSet(new URL(`${api.url}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(bundle.body.attestation, remote, {
      algorithms: ["ES256"],
      typ: ATTESTATION_TOKEN_TYPE,
      issuer: "test-runtime",
    });
    expect(payload.resultId).toBe(runId);
    expect(payload.codeHash).toBe(stack.pkg.codeHash);
    const jwks = (await request(api.url, "GET", "/.well-known/jwks.json")).body;
    expect(jwks.keys.map((k: { kid: string }) => k.kid)).toContain(protectedHeader.kid);
    await expect(
      verifyAttestationToken(bundle.body.attestation, jwks, { resultId: runId, codeHash: stack.pkg.codeHash }),
    ).resolves.toMatchObject({ kid: protectedHeader.kid });

    // Retrying with the same key answers the same run, adds no event and no second write.
    const retry = await request(api.url, "POST", `/v1/cryptlets/${name}/invoke`, {
      token: operator,
      json: input,
      headers: { "idempotency-key": key },
    });
    expect(retry.status).toBe(202);
    expect(retry.body).toMatchObject({ runId, replayed: true });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const after = await request(api.url, "GET", `/v1/runs/${runId}`, { token: auditor });
    expect(after.body.receipt.targets[0].receipt.txHash).toBe(receipt.targets[0].receipt.txHash);
    const events = await stack.pipeline.queue(QUEUES.events).getJobs(["completed", "waiting", "active"]);
    expect(events.filter((j) => (j.data as { eventId: string }).eventId === accepted.body.eventId)).toHaveLength(1);
    const runs = await stack.pipeline.queue(QUEUES.runs).getJobs(["completed"]);
    expect(runs.filter((j) => (j.data as { runId: string }).runId === runId)).toHaveLength(1);
  }, 90_000);
});
