/**
 * Sealed inputs at rest (issue 13 item 3). The envelope is a standard JWE (jose opens it with the private key) bound
 * to its run; and end to end, a sealed Cryptlet's HTTP event carrying a canary goes through the real API, BullMQ
 * pipeline, Key Vault emulator and a hardhat chain, on a redis-server of this test with AOF on (a free port): the
 * canary is in no Redis key of any type, not in the AOF files, not in any API response (run, bundle, report, dead
 * letters, the queue dashboard's API) and not in the logs, for a run that succeeds after a retryable failure whose
 * text carries the canary and one that dead-letters; with a job per stage, and with micro-batches.
 */
import { readdirSync, readFileSync } from "node:fs";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";

import { jest } from "@jest/globals";
import { compactDecrypt, exportJWK, generateKeyPair, importJWK } from "jose";
import pino from "pino";

import { apiDepsOf } from "../../runtime/api/deps.ts";
import { LocalIssuer } from "../../runtime/api/localIssuer.ts";
import { startApiServer, type ApiServer } from "../../runtime/api/server.ts";
import { isCryptletError } from "../../runtime/errors.ts";
import { SandboxEngineFailureError } from "../../runtime/sandbox/errors.ts";
import { LocalKeyProvider, generateLocalKeyFile } from "../../runtime/keys/LocalKeyProvider.ts";
import { openSealedInput, sealInput } from "../../runtime/sealing/inputEnvelope.ts";
import { startPipelineStack, type PipelineStack } from "../support/pipelineStack.ts";
import { startRedisServer, type TestRedisServer } from "../support/redisServer.ts";

jest.setTimeout(240_000);

const binding = { cryptletId: `0x${"ab".repeat(32)}`, eventId: `0x${"cd".repeat(32)}` };

describe("the sealed-input envelope", () => {
  let dir: string;
  let key: LocalKeyProvider;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "sealed-input-"));
    await generateLocalKeyFile(path.join(dir, "input.json"), { rsaModulusLength: 2048 });
    key = new LocalKeyProvider({ keyFile: path.join(dir, "input.json") });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("is a JWE (RSA-OAEP-256, A256GCM) that jose opens with the private key, bound to its run", async () => {
    const input = { bid: 42, note: "canary-envelope" };
    const jwe = await sealInput(input, binding, key);
    expect(jwe).not.toContain("canary");
    const privateJwk = JSON.parse(readFileSync(path.join(dir, "input.json"), "utf8")) as Record<string, unknown>;
    const opened = await compactDecrypt(jwe, await importJWK({ ...privateJwk, alg: "RSA-OAEP-256" }, "RSA-OAEP-256"));
    expect(opened.protectedHeader).toMatchObject({ alg: "RSA-OAEP-256", enc: "A256GCM", ...binding });
    expect(JSON.parse(new TextDecoder().decode(opened.plaintext))).toEqual({ input });
    expect(await openSealedInput(jwe, binding, key)).toEqual(input);
    expect(await sealInput(input, binding, key)).not.toBe(jwe); // a fresh data key and IV each time
  });

  it("does not open in another run, nor altered (ERR_SEALED_INPUT_INVALID)", async () => {
    const jwe = await sealInput({ x: 1 }, binding, key);
    const other = { ...binding, eventId: `0x${"ce".repeat(32)}` };
    const codeOf = (p: Promise<unknown>) =>
      p.then(
        () => "opened",
        (e: unknown) => (isCryptletError(e) ? e.code : e),
      );
    expect(await codeOf(openSealedInput(jwe, other, key))).toBe("ERR_SEALED_INPUT_INVALID");
    const parts = jwe.split(".");
    const ciphertext = Buffer.from(parts[3]!, "base64url");
    ciphertext[0] = (ciphertext[0] ?? 0) ^ 1;
    parts[3] = ciphertext.toString("base64url");
    expect(await codeOf(openSealedInput(parts.join("."), binding, key))).toBe("ERR_SEALED_INPUT_INVALID");
    expect(await codeOf(openSealedInput("a.b.c", binding, key))).toBe("ERR_SEALED_INPUT_INVALID");
  });
});

/** Runs with their own jobs (a record target), and micro-batched runs (an anchor target, `microBatch`). */
const VARIANTS = [
  { name: "a job per stage", mode: "record" as const, microBatch: false },
  { name: "micro-batches", mode: "anchor" as const, microBatch: true },
];

describe.each(VARIANTS)("a sealed Cryptlet's input at rest, end to end ($name)", ({ mode, microBatch }) => {
  const CANARY = `canary-${randomBytes(12).toString("hex")}`;
  let redis: TestRedisServer;
  let stack: PipelineStack;
  let api: ApiServer;
  let issuer: LocalIssuer;
  const logs: string[] = [];

  beforeAll(async () => {
    redis = await startRedisServer(0, ["--appendonly", "yes", "--appendfsync", "always"]);
    const party = await generateKeyPair("ECDH-ES+A256KW", { crv: "P-256", extractable: true });
    const partyJwk = { ...(await exportJWK(party.publicKey)), kid: "auditor" } as never;
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logs.push(chunk.toString("utf8"));
        done();
      },
    });
    stack = await startPipelineStack({
      chains: [{ name: "c", chainId: 72_395 }],
      targets: [{ chain: "c", mode }],
      ...(microBatch ? { microBatch: {} } : {}),
      sealedFor: [{ name: "auditor", jwk: partyJwk }],
      redisUrl: redis.url,
      logger: pino({ level: "trace" }, sink),
    });
    issuer = await LocalIssuer.create();
    api = await startApiServer(
      apiDepsOf(stack.ctx, stack.pipeline, {
        auth: issuer.authOptions(),
        verification: { trustedSigners: stack.resultSignerAddresses, threshold: 2 },
        logger: stack.ctx.logger!,
      }),
      { port: 0 },
    );
  });
  afterAll(async () => {
    await api?.close();
    await stack?.close();
    await redis?.close();
  });

  it("leaves no trace of the canary in Redis, the AOF, the API's responses or the logs", async () => {
    // The first run of the Cryptlet fails once with a retryable error whose text carries the canary (as a
    // Cryptlet's error could echo its input): retried, and its text kept nowhere.
    const sandbox = stack.ctx.sandbox;
    const run = sandbox.run.bind(sandbox);
    let failedOnce = false;
    sandbox.run = async (...args: Parameters<typeof sandbox.run>) => {
      if (!failedOnce) {
        failedOnce = true;
        throw new SandboxEngineFailureError("test", `a transient failure near ${CANARY}`);
      }
      return run(...args);
    };
    const token = await issuer.mint({ roles: ["admin"], subject: "scan" });
    const call = async (method: string, route: string, json?: unknown, headers: Record<string, string> = {}) => {
      const response = await fetch(`${api.url}${route}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(json === undefined ? {} : { "content-type": "application/json" }),
          ...headers,
        },
        ...(json === undefined ? {} : { body: JSON.stringify(json) }),
      });
      return { status: response.status, text: await response.text() };
    };
    const name = encodeURIComponent(stack.pkg.manifest.name);
    const now = Math.floor(Date.now() / 1000);
    const responses: { route: string; status: number; text: string }[] = [];
    const good = await call(
      "POST",
      `/v1/cryptlets/${name}/invoke`,
      { observations: [{ source: CANARY, price: "2000.5", observedAt: now }] },
      { "idempotency-key": randomUUID() },
    );
    // price-median refuses an empty observation list: this run fails in execute and is dead-lettered.
    const bad = await call(
      "POST",
      `/v1/cryptlets/${name}/invoke`,
      { observations: [], note: CANARY },
      { "idempotency-key": randomUUID() },
    );
    responses.push({ route: "invoke", ...good }, { route: "invoke (failing)", ...bad });
    expect([good.status, bad.status]).toEqual([202, 202]);
    const goodRun = (JSON.parse(good.text) as { runId: string }).runId;
    const badRun = (JSON.parse(bad.text) as { runId: string }).runId;
    expect((await stack.pipeline.waitForRun(goodRun, 120_000)).status).toBe("complete");
    expect((await stack.pipeline.waitForRun(badRun, 120_000)).status).toBe("failed");
    sandbox.run = run;
    expect(failedOnce).toBe(true);
    for (let i = 0; i < 100 && (await stack.pipeline.deadLetters()).length === 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    expect((await stack.pipeline.deadLetters()).length).toBeGreaterThan(0);

    for (const route of [
      `/v1/runs/${goodRun}`,
      `/v1/runs/${badRun}`,
      `/v1/results/${goodRun}/bundle`,
      `/v1/runs/${goodRun}/report`,
      `/v1/dead-letters`,
      `/admin/queues/api/queues?activeQueue=execute&status=completed&page=1`,
      `/admin/queues/api/queues?activeQueue=execute&status=failed&page=1`,
      `/admin/queues/api/queues?activeQueue=events&status=completed&page=1`,
      `/admin/queues/api/queues?activeQueue=dead-letter&status=waiting&page=1`,
      `/admin/queues/api/queues?activeQueue=batches&status=completed&page=1`,
    ]) {
      const response = await call("GET", route);
      responses.push({ route, ...response });
    }
    expect(responses.filter((r) => r.status !== 200 && r.status !== 202).map((r) => r.route)).toEqual([]);
    expect(responses.filter((r) => r.text.includes(CANARY)).map((r) => r.route)).toEqual([]);
    // The dashboard really lists the jobs (so a leak would show): the execute job's data is there, as ciphertext;
    // or the batches, with the retried one's error (its text withheld).
    if (microBatch) {
      const batches = responses.find((r) => r.route.includes("activeQueue=batches"))?.text ?? "";
      expect(batches).toContain("withheld: sealed Cryptlet");
    } else {
      expect(responses.find((r) => r.route.includes("activeQueue=execute&status=completed"))?.text).toContain(
        "sealedInput",
      );
    }

    // Every key of every type, read by type, and its DUMP.
    const client = stack.redis.duplicate();
    const leaks: string[] = [];
    let keys = 0;
    let cursor = "0";
    do {
      const [next, found] = await client.scanBuffer(cursor, "COUNT", 500);
      cursor = String(next);
      for (const keyBuffer of found) {
        keys++;
        const key = keyBuffer.toString("latin1");
        const type = await client.type(keyBuffer);
        const values: (string | Buffer)[] = [keyBuffer];
        if (type === "string") values.push((await client.getBuffer(keyBuffer)) ?? "");
        else if (type === "hash")
          values.push(
            ...Object.values(await client.hgetallBuffer(keyBuffer)),
            ...(await client.hkeysBuffer(keyBuffer)),
          );
        else if (type === "list") values.push(...(await client.lrangeBuffer(keyBuffer, 0, -1)));
        else if (type === "set") values.push(...(await client.smembersBuffer(keyBuffer)));
        else if (type === "zset") values.push(...(await client.zrangeBuffer(keyBuffer, 0, -1)));
        else if (type === "stream") values.push(Buffer.from(JSON.stringify(await client.xrange(keyBuffer, "-", "+"))));
        else if (type !== "none") leaks.push(`${key}: unscanned type ${type}`);
        // "none": the key expired between SCAN and TYPE (BullMQ's short-lived locks such as `…:stalled-check`, a
        // fresh-clone CI run saw two): nothing is left in it to scan.
        values.push((await client.dumpBuffer(keyBuffer)) ?? "");
        if (values.some((v) => Buffer.from(v).includes(CANARY))) leaks.push(`${key} (${type})`);
      }
    } while (cursor !== "0");
    client.disconnect();
    expect(keys).toBeGreaterThan(20);
    expect(leaks).toEqual([]);

    // The AOF: every file Redis appended to (appendfsync always: every write is on disk).
    const aofDir = path.join(redis.dir, "appendonlydir");
    const aof = Buffer.concat(readdirSync(aofDir).map((f) => readFileSync(path.join(aofDir, f))));
    expect(aof.length).toBeGreaterThan(10_000);
    expect(aof.includes("sealedInput")).toBe(true);
    expect(aof.includes(CANARY)).toBe(false);

    // The logs (pino, every level), which did record the failing run.
    expect(logs.some((l) => l.includes(microBatch ? "run of a micro-batch failed" : "job failed"))).toBe(true);
    expect(logs.some((l) => l.includes("ERR_SANDBOX_ENGINE_FAILURE"))).toBe(true);
    expect(logs.filter((l) => l.includes(CANARY))).toEqual([]);
  });
});
