/**
 * The API over real Redis, the real package store and a real Pipeline without workers (events stay queued):
 * every endpoint's success path, malformed input (never a 5xx), size and rate limits, idempotent invoke,
 * dead letters, readiness, metrics exposition, the OpenAPI document.
 */
import { randomUUID } from "node:crypto";

import { assembleBuiltPackage } from "../../runtime/packages/builtPackage.ts";
import { signPackage } from "../../runtime/packages/signature.ts";
import { parseChainsConfig } from "../../runtime/chains/config.ts";
import { ChainRpc, rpcDependencyName } from "../../runtime/chains/rpc.ts";
import { computeResultId } from "../../runtime/attestation/eip712.ts";
import { cryptletIdOf, httpEventId } from "../../runtime/attestation/ids.ts";
import { QUEUES } from "../../runtime/queue/topology.ts";
import { closedPort, deployBody, request, startLightApi, type LightApi, type TestResponse } from "./helpers.ts";

const BUNDLE =
  "var cryptlet = (() => ({ default: { run: (input) => ({ answer: 1, decimals: 8, observedAt: 1 }) } }))();\n";

function built(overrides: Record<string, unknown> = {}, bundle = BUNDLE) {
  return assembleBuiltPackage(
    {
      name: "@api-test/demo",
      version: "1.0.0",
      entry: "src/index.ts",
      triggers: [{ type: "http" }],
      output: { abi: "tuple(int256 answer, uint8 decimals, uint64 observedAt)" },
      targets: [{ chain: "public", mode: "record" }],
      ...overrides,
    },
    { "bundle.js": new TextEncoder().encode(bundle) },
  );
}

function expectProblem(res: TestResponse, status: number, code: string): void {
  expect({ status: res.status, code: res.body?.code }).toEqual({ status, code });
  expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  expect(res.body.type).toBe(`urn:cryptlet:problem:${code}`);
  expect(typeof res.body.title).toBe("string");
  expect(res.body.status).toBe(status);
}

describe("API (real Redis, package store, pipeline queues, local issuer)", () => {
  let f: LightApi;
  let publisher: string;
  let operator: string;
  let auditor: string;
  let admin: string;

  beforeAll(async () => {
    f = await startLightApi();
    [publisher, operator, auditor, admin] = await Promise.all([
      f.token("publisher"),
      f.token("operator"),
      f.token("auditor"),
      f.token("admin"),
    ]);
  });

  afterAll(async () => {
    await f?.close();
  });

  const sign = (pkg: ReturnType<typeof built>) => signPackage(pkg, f.publisher.privateKey, f.publisher.kid);

  describe("packages", () => {
    test("deploy answers 201, the same bytes again 200, other bytes under the version 409", async () => {
      const pkg = built();
      const first = await request(f.url, "POST", "/v1/packages", {
        token: publisher,
        json: deployBody(pkg, await sign(pkg)),
      });
      expect(first.status).toBe(201);
      expect(first.body).toEqual({
        created: true,
        name: "@api-test/demo",
        version: "1.0.0",
        codeHash: pkg.codeHash,
        cryptletId: pkg.cryptletId,
      });
      const again = await request(f.url, "POST", "/v1/packages", {
        token: publisher,
        json: deployBody(pkg, await sign(pkg)),
      });
      expect(again.status).toBe(200);
      expect(again.body.created).toBe(false);
      const other = built({}, BUNDLE.replace("answer: 1", "answer: 2"));
      const conflict = await request(f.url, "POST", "/v1/packages", {
        token: publisher,
        json: deployBody(other, await sign(other)),
      });
      expectProblem(conflict, 409, "ERR_PACKAGE_VERSION_EXISTS");
      expect(conflict.body.details.existingCodeHash).toBe(pkg.codeHash);
    });

    test("list, get latest, get a version; unknown names and versions are 404", async () => {
      const v2 = built({ version: "1.1.0" });
      expect(
        (await request(f.url, "POST", "/v1/packages", { token: publisher, json: deployBody(v2, await sign(v2)) }))
          .status,
      ).toBe(201);
      const list = await request(f.url, "GET", "/v1/packages", { token: auditor });
      expect(list.status).toBe(200);
      expect(list.body.packages).toEqual([
        {
          name: "@api-test/demo",
          cryptletId: cryptletIdOf("@api-test/demo"),
          versions: ["1.0.0", "1.1.0"],
          latest: "1.1.0",
        },
      ]);
      const name = encodeURIComponent("@api-test/demo");
      const latest = await request(f.url, "GET", `/v1/packages/${name}`, { token: operator });
      expect(latest.status).toBe(200);
      expect(latest.body).toMatchObject({ name: "@api-test/demo", version: "1.1.0", codeHash: v2.codeHash });
      expect(latest.body.publisherKid).toBe(f.publisher.kid);
      expect(latest.body.files["bundle.js"].bytes).toBe(Buffer.byteLength(BUNDLE));
      const pinned = await request(f.url, "GET", `/v1/packages/${name}/versions/1.0.0`, { token: publisher });
      expect(pinned.status).toBe(200);
      expect(pinned.body.version).toBe("1.0.0");
      expectProblem(
        await request(f.url, "GET", `/v1/packages/${name}/versions/9.9.9`, { token: auditor }),
        404,
        "ERR_PACKAGE_NOT_FOUND",
      );
      expectProblem(
        await request(f.url, "GET", `/v1/packages/${encodeURIComponent("@api-test/none")}`, { token: auditor }),
        404,
        "ERR_PACKAGE_NOT_FOUND",
      );
    });

    test("a bad publisher signature and an invalid manifest are 422 with the reason", async () => {
      const pkg = built({ version: "2.0.0" });
      const forged = await signPackage(
        built({ version: "2.0.0" }, BUNDLE + "//x\n"),
        f.publisher.privateKey,
        f.publisher.kid,
      );
      const bad = await request(f.url, "POST", "/v1/packages", { token: publisher, json: deployBody(pkg, forged) });
      expectProblem(bad, 422, "ERR_PUBLISHER_SIGNATURE_INVALID");
      expect(bad.body.details.reason).toBe("codehash-mismatch");
      const body = deployBody(pkg, await sign(pkg));
      (body.manifest as Record<string, unknown>).limits = { memoryMb: 100_000 };
      const invalid = await request(f.url, "POST", "/v1/packages", { token: publisher, json: body });
      expectProblem(invalid, 422, "ERR_MANIFEST_INVALID");
      expect(invalid.body.errors.map((e: { path: string }) => e.path)).toContain("/limits/memoryMb");
    });
  });

  describe("malformed input is a 4xx problem, never a 5xx", () => {
    test("bad JSON, wrong types, unknown fields, missing fields", async () => {
      expectProblem(
        await request(f.url, "POST", "/v1/packages", {
          token: publisher,
          body: '{"manifest": {',
          headers: { "content-type": "application/json" },
        }),
        400,
        "ERR_API_MALFORMED_JSON",
      );
      const wrongTypes = await request(f.url, "POST", "/v1/packages", {
        token: publisher,
        json: { manifest: "x", files: [1], signature: 42 },
      });
      expectProblem(wrongTypes, 400, "ERR_API_VALIDATION");
      const paths = wrongTypes.body.errors.map((e: { path: string }) => e.path);
      expect(paths).toEqual(expect.arrayContaining(["/body/manifest", "/body/files", "/body/signature"]));
      const unknown = await request(f.url, "POST", "/v1/verify", {
        token: auditor,
        json: { bundle: {}, extra: true },
      });
      expectProblem(unknown, 400, "ERR_API_VALIDATION");
      expect(JSON.stringify(unknown.body.errors)).toContain("extra");
      expectProblem(
        await request(f.url, "POST", "/v1/verify", { token: auditor, json: {} }),
        400,
        "ERR_API_VALIDATION",
      );
      expectProblem(
        await request(f.url, "POST", "/v1/verify", {
          token: auditor,
          json: { bundle: {}, onChain: true, confirmations: 0 },
        }),
        400,
        "ERR_API_VALIDATION",
      );
      // This API process has no chain: asked to check anchors on-chain, it says so instead of skipping the check.
      expectProblem(
        await request(f.url, "POST", "/v1/verify", { token: auditor, json: { bundle: {}, onChain: true } }),
        501,
        "ERR_API_ONCHAIN_UNAVAILABLE",
      );
      expectProblem(
        await request(f.url, "POST", "/v1/verify", { token: auditor, json: [1, 2] }),
        400,
        "ERR_API_VALIDATION",
      );
      const badBase64 = await request(f.url, "POST", "/v1/packages", {
        token: publisher,
        json: { manifest: {}, files: { "bundle.js": "***" }, signature: "a.b.c" },
      });
      expectProblem(badBase64, 400, "ERR_API_VALIDATION");
      expect(badBase64.body.errors[0].path).toBe("/body/files/bundle.js");
    });

    test("bad ids, bad names, bad versions, unknown query parameters, bad headers", async () => {
      for (const path of ["/v1/runs/0x1234", "/v1/runs/not-hex", `/v1/results/0x${"g".repeat(64)}/bundle`]) {
        const res = await request(f.url, "GET", path, { token: auditor });
        expectProblem(res, 400, "ERR_API_VALIDATION");
        expect(res.body.errors[0].path).toMatch(/^\/params\//);
      }
      expectProblem(
        await request(f.url, "GET", `/v1/packages/${encodeURIComponent("Bad Name!")}`, { token: auditor }),
        400,
        "ERR_API_VALIDATION",
      );
      expectProblem(
        await request(f.url, "GET", `/v1/packages/demo/versions/not-semver`, { token: auditor }),
        400,
        "ERR_API_VALIDATION",
      );
      const unknownQuery = await request(f.url, "GET", "/v1/packages?debug=1", { token: auditor });
      expectProblem(unknownQuery, 400, "ERR_API_VALIDATION");
      expectProblem(
        await request(f.url, "GET", "/v1/dead-letters?limit=zero", { token: admin }),
        400,
        "ERR_API_VALIDATION",
      );
      const badKey = await request(f.url, "POST", `/v1/cryptlets/${encodeURIComponent("@api-test/demo")}/invoke`, {
        token: operator,
        json: { a: 1 },
        headers: { "idempotency-key": "has spaces in it" },
      });
      expectProblem(badKey, 400, "ERR_API_VALIDATION");
      expect(badKey.body.errors[0].path).toMatch(/idempotency-key/i);
    });

    test("a sweep of garbage over every operation: always a 4xx problem", async () => {
      const bodies: (string | undefined)[] = [
        "null",
        '"text"',
        "42",
        "[]",
        "{}",
        '{"bundle":null,"manifest":[],"files":{"../x":"AA=="},"signature":"a.b.c"}',
        '{"__proto__":{"admin":true}}',
        "\u0000\u0001",
        "[".repeat(5000),
        undefined,
      ];
      const paths: [string, string][] = [
        ["POST", "/v1/packages"],
        ["POST", `/v1/cryptlets/${encodeURIComponent("@api-test/demo")}/invoke`],
        ["POST", "/v1/verify"],
        ["POST", "/v1/dead-letters/%00/replay"],
        ["GET", "/v1/runs/%ZZ"],
        ["GET", `/v1/packages/${"a".repeat(300)}`],
      ];
      for (const [method, path] of paths) {
        for (const body of bodies) {
          const res = await request(f.url, method, path, {
            token: admin,
            ...(body === undefined || method === "GET"
              ? {}
              : { body, headers: { "content-type": "application/json" } }),
          });
          expect([
            method,
            path,
            body?.slice(0, 20),
            (res.status < 500 && res.status >= 400) || res.status === 202,
          ]).toEqual([method, path, body?.slice(0, 20), true]);
          if (res.status >= 400) expect(res.body.code).toMatch(/^ERR_/);
        }
      }
    });

    test("wrong media type is 415; unknown routes 404; wrong methods 405", async () => {
      expectProblem(
        await request(f.url, "POST", "/v1/verify", {
          token: auditor,
          body: "bundle=1",
          headers: { "content-type": "application/x-www-form-urlencoded" },
        }),
        415,
        "ERR_API_UNSUPPORTED_MEDIA_TYPE",
      );
      expectProblem(await request(f.url, "GET", "/v2/anything", { token: auditor }), 404, "ERR_API_NOT_FOUND");
      expectProblem(
        await request(f.url, "DELETE", "/v1/packages", { token: admin }),
        405,
        "ERR_API_METHOD_NOT_ALLOWED",
      );
    });

    test("a body over the limit is 413 (1 MiB JSON; deploy has its own larger limit)", async () => {
      const huge = { bundle: { blob: "x".repeat(1024 * 1024 + 10) } };
      const res = await request(f.url, "POST", "/v1/verify", { token: auditor, json: huge });
      expectProblem(res, 413, "ERR_API_PAYLOAD_TOO_LARGE");
      expect(res.body.details.limitBytes).toBe(1024 * 1024);
      // 1.5 MiB of base64 is accepted by the deploy route (and then refused by the manifest check, not by size).
      const pkg = built({ version: "3.0.0" });
      const body = deployBody(pkg, await sign(pkg));
      body.files["padding.bin"] = Buffer.alloc(1024 * 1024 + 512 * 1024).toString("base64");
      const big = await request(f.url, "POST", "/v1/packages", { token: publisher, json: body });
      expect(big.status).toBe(422);
      expect(big.body.code).toBe("ERR_PUBLISHER_SIGNATURE_INVALID");
    });
  });

  describe("invoke (HTTP trigger)", () => {
    const name = encodeURIComponent("@api-test/demo");

    test("202 with Location; the same Idempotency-Key is the same run; the run is queued until a worker takes it", async () => {
      const key = `api-test-${randomUUID()}`;
      const first = await request(f.url, "POST", `/v1/cryptlets/${name}/invoke`, {
        token: operator,
        json: { observations: [1, 2, 3] },
        headers: { "idempotency-key": key },
      });
      expect(first.status).toBe(202);
      const eventId = httpEventId(key);
      const runId = computeResultId(cryptletIdOf("@api-test/demo"), eventId);
      expect(first.body).toEqual({
        runId,
        resultId: runId,
        eventId,
        idempotencyKey: key,
        status: "accepted",
        replayed: false,
      });
      expect(first.headers.get("location")).toBe(`/v1/runs/${runId}`);
      expect(first.headers.get("idempotency-key")).toBe(key);

      const second = await request(f.url, "POST", `/v1/cryptlets/${name}/invoke`, {
        token: operator,
        json: { observations: [1, 2, 3] },
        headers: { "idempotency-key": key },
      });
      expect(second.status).toBe(202);
      expect(second.body.runId).toBe(runId);
      expect(second.body.replayed).toBe(true);
      // One event in the queue, pinned to the latest version at the first call.
      const jobs = await f.pipeline.queue(QUEUES.events).getJobs(["waiting"]);
      const ours = jobs.filter((j) => (j.data as { eventId: string }).eventId === eventId);
      expect(ours).toHaveLength(1);
      expect((ours[0]!.data as { cryptlet: unknown }).cryptlet).toEqual({ name: "@api-test/demo", version: "1.1.0" });

      const run = await request(f.url, "GET", first.headers.get("location")!, { token: auditor });
      expect(run.status).toBe(200);
      expect(run.body).toMatchObject({ runId, status: "queued", eventId });

      const reused = await request(f.url, "POST", `/v1/cryptlets/${name}/invoke`, {
        token: operator,
        json: { observations: [9] },
        headers: { "idempotency-key": key },
      });
      expectProblem(reused, 422, "ERR_IDEMPOTENCY_KEY_REUSED");
    });

    test("without Idempotency-Key a UUID is generated and returned", async () => {
      const res = await request(f.url, "POST", `/v1/cryptlets/${name}/invoke?version=1.0.0`, {
        token: operator,
        json: { a: 1 },
      });
      expect(res.status).toBe(202);
      const key = res.headers.get("idempotency-key")!;
      expect(key).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(res.body.eventId).toBe(httpEventId(key));
    });

    test("unknown Cryptlet 404; a package without an http trigger 409; unknown run 404", async () => {
      expectProblem(
        await request(f.url, "POST", `/v1/cryptlets/nobody/invoke`, { token: operator, json: {} }),
        404,
        "ERR_PACKAGE_NOT_FOUND",
      );
      const scheduled = built({ name: "api-test-scheduled", triggers: [{ type: "schedule", cron: "* * * * *" }] });
      await f.ctx.packages.deploy(scheduled, await sign(scheduled));
      expectProblem(
        await request(f.url, "POST", `/v1/cryptlets/api-test-scheduled/invoke`, { token: operator, json: {} }),
        409,
        "ERR_HTTP_TRIGGER_DISABLED",
      );
      expectProblem(
        await request(f.url, "GET", `/v1/runs/0x${"ab".repeat(32)}`, { token: auditor }),
        404,
        "ERR_API_NOT_FOUND",
      );
      expectProblem(
        await request(f.url, "GET", `/v1/results/0x${"ab".repeat(32)}/bundle`, { token: auditor }),
        404,
        "ERR_API_NOT_FOUND",
      );
    });
  });

  describe("dead letters", () => {
    test("listed for admins (input withheld); a write is replayed, other stages are 409, unknown entries 404", async () => {
      const dlq = f.pipeline.queue(QUEUES.deadLetter);
      const write = { runId: "0x01", resultId: `0x${"01".repeat(32)}`, chain: "public", mode: "record" };
      await dlq.add(
        "dead-letter",
        {
          queue: "writes",
          jobId: "write-public-record-x",
          name: "write",
          data: write,
          error: { code: "ERR_CHAIN_REVERTED", message: "reverted", retryable: false },
          attemptsMade: 1,
          failedAt: Date.now(),
        },
        { jobId: "dlq-write-public-record-x-0" },
      );
      await dlq.add(
        "dead-letter",
        {
          queue: "execute",
          jobId: "execute-x",
          name: "execute",
          data: { resultId: `0x${"02".repeat(32)}`, input: { secret: "telemetry" } },
          error: { code: "ERR_CRYPTLET_THREW", message: "threw", retryable: false },
          attemptsMade: 3,
          failedAt: Date.now() - 1000,
        },
        { jobId: "dlq-execute-x-2" },
      );
      const list = await request(f.url, "GET", "/v1/dead-letters", { token: admin });
      expect(list.status).toBe(200);
      expect(list.body.deadLetters.map((d: { entryId: string }) => d.entryId)).toEqual([
        "dlq-write-public-record-x-0",
        "dlq-execute-x-2",
      ]);
      expect(list.text).not.toContain("telemetry");
      expectProblem(await request(f.url, "GET", "/v1/dead-letters", { token: operator }), 403, "ERR_AUTH_FORBIDDEN");

      expectProblem(
        await request(f.url, "POST", "/v1/dead-letters/dlq-execute-x-2/replay", { token: operator }),
        409,
        "ERR_DEAD_LETTER_NOT_REPLAYABLE",
      );
      expectProblem(
        await request(f.url, "POST", "/v1/dead-letters/dlq-none/replay", { token: operator }),
        404,
        "ERR_DEAD_LETTER_NOT_FOUND",
      );
      const replayed = await request(f.url, "POST", "/v1/dead-letters/dlq-write-public-record-x-0/replay", {
        token: operator,
      });
      expect(replayed.status).toBe(202);
      const job = await f.pipeline.queue(QUEUES.writes).getJob(replayed.body.jobId);
      expect(job?.data).toEqual(write);
      expect(await dlq.getJob("dlq-write-public-record-x-0")).toBeUndefined();
    });
  });

  describe("operations", () => {
    test("health, readiness, the OpenAPI document, JWKS", async () => {
      expect((await request(f.url, "GET", "/health")).body).toEqual({ status: "ok" });
      const ready = await request(f.url, "GET", "/ready");
      expect(ready.status).toBe(200);
      expect(ready.body.checks).toEqual([expect.objectContaining({ name: "redis", ok: true })]);
      const doc = await request(f.url, "GET", "/openapi.json");
      expect(doc.body.openapi).toBe("3.1.0");
      expect(doc.body.paths["/v1/cryptlets/{name}/invoke"].post.security).toEqual([{ bearer: ["operator"] }]);
      const jwks = await request(f.url, "GET", "/.well-known/jwks.json");
      const own = await f.ctx.attestationKey.getPublicKey();
      expect(jwks.body.keys).toEqual([
        expect.objectContaining({ kid: own.keyId, kty: "EC", crv: "P-256", use: "sig" }),
      ]);
      expect(jwks.body.keys[0].d).toBeUndefined();
    });

    test("readiness is 503 when a chain does not answer", async () => {
      const chain = parseChainsConfig({
        chains: [
          {
            name: "down",
            chainId: 1,
            rpcUrl: `http://127.0.0.1:${await closedPort()}`,
            signer: { type: "local", jwkPath: "/nonexistent.json" },
            contracts: {},
          },
        ],
      }).chains[0]!;
      const rpc = new ChainRpc(chain, { requestTimeoutMs: 1000 });
      const down = await startLightApi({ chains: new Map([["down", { writer: { rpc } }]]) });
      try {
        const res = await request(down.url, "GET", "/ready");
        expectProblem(res, 503, "ERR_API_NOT_READY");
        expect(res.headers.get("retry-after")).toBe("5");
        const checks = res.body.details.checks as { name: string; ok: boolean }[];
        // The chain's JSON-RPC breaker is listed too: still closed after one failed request (it opens after 5).
        const ours = checks.filter((c) => !c.name.startsWith("dependency:") || c.name.includes("chain-rpc:down/"));
        expect(ours.map((c) => [c.name, c.ok])).toEqual([
          ["redis", true],
          ["chain:down", false],
          [`dependency:${rpcDependencyName(chain)}`, true],
        ]);
      } finally {
        rpc.destroy();
        await down.close();
      }
    });

    test("metrics: the exposition parses, with request counters, queue depths and runs by status", async () => {
      const res = await request(f.url, "GET", "/metrics");
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
      const samples = new Map<string, number>();
      for (const line of res.text.split("\n")) {
        if (line === "" || line.startsWith("#")) continue;
        // Text format 0.0.4: name, optional {label="value",...} with escaped quotes, a space, a float.
        const match =
          /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})?) (-?[0-9.]+(?:e[+-]?[0-9]+)?|NaN|\+Inf|-Inf)$/.exec(
            line,
          );
        expect(match).not.toBeNull();
        samples.set(match![1]!, Number(match![2]));
      }
      expect(samples.get('cryptlet_queue_jobs{queue="events",state="waiting"}')).toBeGreaterThanOrEqual(2);
      expect(samples.get('cryptlet_queue_jobs{queue="writes",state="waiting"}')).toBe(1);
      expect(samples.has('cryptlet_runs{status="running"}')).toBe(true);
      expect(samples.get("cryptlet_dead_letters")).toBe(1);
      expect(
        samples.get('cryptlet_api_http_requests_total{method="POST",route="/v1/packages",status="201"}'),
      ).toBeGreaterThanOrEqual(2);
      expect(samples.get('cryptlet_api_invocations_total{cryptlet="@api-test/demo",outcome="replayed"}')).toBe(1);
      expect(
        samples.get(
          'cryptlet_api_http_request_duration_seconds_count{method="GET",route="/v1/runs/:runId",status="200"}',
        ),
      ).toBeGreaterThanOrEqual(1);
    });

    test("the dashboard is for admins only", async () => {
      expectProblem(await request(f.url, "GET", "/admin/queues"), 401, "ERR_AUTH_UNAUTHENTICATED");
      expectProblem(await request(f.url, "GET", "/admin/queues", { token: operator }), 403, "ERR_AUTH_FORBIDDEN");
      const page = await request(f.url, "GET", "/admin/queues", { token: admin });
      expect(page.status).toBe(200);
      expect(page.text).toContain("<html");
      const queues = await request(f.url, "GET", "/admin/queues/api/queues", { token: admin });
      expect(queues.status).toBe(200);
      expect(queues.body.queues.map((q: { name: string }) => q.name)).toEqual(
        expect.arrayContaining(["events", "execute", "attest", "writes", "runs", "dead-letter"]),
      );
    });
  });

  test("rate limit: 429 per token subject with Retry-After", async () => {
    const limited = await startLightApi({ limits: { perSubject: 3, perIp: 1000 } });
    try {
      const token = await limited.token("auditor");
      const other = await limited.issuer.mint({ roles: ["auditor"], subject: "someone-else" });
      for (let i = 0; i < 3; i++)
        expect((await request(limited.url, "GET", "/v1/packages", { token })).status).toBe(200);
      const res = await request(limited.url, "GET", "/v1/packages", { token });
      expectProblem(res, 429, "ERR_API_RATE_LIMITED");
      expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
      expect((await request(limited.url, "GET", "/v1/packages", { token: other })).status).toBe(200);
    } finally {
      await limited.close();
    }
  });
});
