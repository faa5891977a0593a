/**
 * Secrets never reach error output. One RPC URL carries credentials three ways (user info, an Infura-style path
 * key, an `apikey` query parameter); its endpoint is a local HTTP server that answers 500 and echoes the request's
 * `Authorization` header, so the real ethers errors carry the whole URL (`requestUrl="…"`) and the encoded basic
 * credentials. The test follows that URL through every way out: `CryptletError.toJSON` of the real error, the
 * `cryptlet` CLI (a child process, `--json` and text), the API's problem documents and its log, and the pipeline
 * (real Redis, BullMQ, the sandbox): the worker's log (pino), the dead letters, the composite receipt and every key
 * the run left in Redis.
 */
import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";

import { FetchRequest, JsonRpcProvider, Network, id } from "ethers";
import { Redis } from "ioredis";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import pino from "pino";

import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import { httpEventId } from "../../runtime/attestation/ids.ts";
import { parseChainsConfig, type ChainConfig } from "../../runtime/chains/config.ts";
import { ChainRpc } from "../../runtime/chains/rpc.ts";
import { ChainWriter } from "../../runtime/chains/writer.ts";
import { initCryptlet } from "../../runtime/cli/commands/init.ts";
import {
  CryptletError,
  errorToJSON,
  redactSecrets,
  redactUrl,
  redactedError,
  type CryptletErrorJSON,
} from "../../runtime/errors.ts";
import { KeyVaultSigner } from "../../runtime/keys/KeyVaultSigner.ts";
import { LocalKeyProvider } from "../../runtime/keys/LocalKeyProvider.ts";
import { buildPackage } from "../../runtime/packages/build.ts";
import { PackageStore } from "../../runtime/packages/PackageStore.ts";
import { signPackage } from "../../runtime/packages/signature.ts";
import type { PipelineContext } from "../../runtime/queue/context.ts";
import { Pipeline, type DeadLetter } from "../../runtime/queue/pipeline.ts";
import { ResultStore } from "../../runtime/queue/results.ts";
import { QUEUES, RETRY } from "../../runtime/queue/topology.ts";
import { SandboxPool } from "../../runtime/sandbox/pool.ts";
import { cleanRedis, closedPort, request, startLightApi, type LightApi } from "../api/helpers.ts";
import { cli, json } from "../cli/cliProcess.ts";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/** The secrets in the URL, and the basic credentials ethers derives from its user info. */
const SECRETS = [
  "s3cretPass",
  "0123456789abcdef0123456789abcdef",
  "SECRETKEY123",
  Buffer.from("user:s3cretPass").toString("base64"),
];

/** The secrets found in `text` (expected: none). */
const leaked = (text: string): string[] => SECRETS.filter((secret) => text.includes(secret));

const secretUrl = (port: number) =>
  `http://user:s3cretPass@127.0.0.1:${port}/v3/0123456789abcdef0123456789abcdef?apikey=SECRETKEY123`;
/** What the URL must become wherever it is shown. */
const redactedForm = (port: number) => `http://redacted:redacted@127.0.0.1:${port}/v3/redacted?apikey=redacted`;

let server: http.Server;
let port: number;
let url: string;
let tmp: string;

/** The endpoint: every request answers 500 and echoes the credentials it was sent, as some proxies do. */
beforeAll(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    res.statusCode = 500;
    res.end(`upstream failed for authorization: ${req.headers.authorization ?? "(none)"}`);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
  url = secretUrl(port);
  tmp = await mkdtemp(path.join(os.tmpdir(), "cryptlet-redaction-"));
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await rm(tmp, { recursive: true, force: true });
});

/** A chain configuration (parsed as the runtime parses it) whose endpoint is `rpcUrl`. */
function chainConfig(name: string, chainId: number, rpcUrl: string): ChainConfig {
  return parseChainsConfig({
    chains: [
      {
        name,
        chainId,
        rpcUrl,
        signer: { type: "local", jwkPath: "unused.jwk.json" },
        contracts: { ledger: "0x5FbDB2315678afecb367f032d93F642f64180aa3" },
      },
    ],
  }).chains[0]!;
}

/** The real error of a JSON-RPC call to `rpcUrl` through ethers (no retries). */
async function ethersErrorOf(rpcUrl: string): Promise<Error> {
  const fetch = new FetchRequest(rpcUrl);
  fetch.timeout = 2000;
  const provider = new JsonRpcProvider(fetch, 31337, { staticNetwork: Network.from(31337) });
  try {
    await provider.send("eth_chainId", []);
  } catch (error) {
    return error as Error;
  } finally {
    provider.destroy();
  }
  throw new Error("the endpoint answered");
}

/** The runtime's own error for that call: `ERR_CHAIN_RPC_UNAVAILABLE` from {@link ChainRpc}, the ethers error its cause. */
async function chainRpcErrorOf(rpcUrl: string): Promise<CryptletError> {
  const rpc = new ChainRpc(chainConfig("consortium", 31337, rpcUrl), { requestTimeoutMs: 2000 });
  try {
    await rpc.send("eth_chainId", [], 1);
  } catch (error) {
    return error as CryptletError;
  } finally {
    rpc.destroy();
  }
  throw new Error("the endpoint answered");
}

describe("redactUrl and redactSecrets", () => {
  test.each([
    ["https://mainnet.infura.io/v3/0123456789abcdef0123456789abcdef", "https://mainnet.infura.io/v3/redacted"],
    ["wss://mainnet.infura.io/ws/v3/0123456789abcdef0123456789abcdef", "wss://mainnet.infura.io/ws/v3/redacted"],
    ["https://eth-mainnet.g.alchemy.com/v2/abc123DEF456ghi7", "https://eth-mainnet.g.alchemy.com/v2/redacted"],
    ["https://user:pw@rpc.example.com:8545/rpc", "https://redacted:redacted@rpc.example.com:8545/rpc"],
    [
      "https://rpc.example.com/?apikey=A1&api-key=A2&x-api-key=A3&access_token=A4&chain=1",
      "https://rpc.example.com/?apikey=redacted&api-key=redacted&x-api-key=redacted&access_token=redacted&chain=1",
    ],
    ["redis://:hunter22@redis.example.com:6380/0", "redis://:redacted@redis.example.com:6380/0"],
    ["rediss://default:hunter22@redis.example.com:6380", "rediss://redacted:redacted@redis.example.com:6380"],
    ["http://127.0.0.1:8545/", "http://127.0.0.1:8545/"],
    ["https://rpc.example.com/v1/mainnet/latest", "https://rpc.example.com/v1/mainnet/latest"],
    ["not a url", "<invalid url>"],
  ])("redactUrl(%s)", (input, expected) => {
    expect(redactUrl(input)).toBe(expected);
  });

  test("every URL in text is redacted (quoted, JSON-escaped, at the end of a sentence); other URLs stay as written", () => {
    const text = [
      `request failed (requestUrl="${url}", code=SERVER_ERROR)`,
      JSON.stringify({ err: `info={ "requestUrl": "${url}" }` }),
      `see ${url}.`,
      "local node http://127.0.0.1:8545 is fine, redis://127.0.0.1:6379 too",
    ].join("\n");
    const redacted = redactSecrets(text);
    expect(leaked(redacted)).toEqual([]);
    expect(redacted).toContain(`requestUrl="${redactedForm(port)}"`);
    expect(redacted).toContain(`see ${redactedForm(port)}.`);
    expect(redacted).toContain("local node http://127.0.0.1:8545 is fine, redis://127.0.0.1:6379 too");
    expect(JSON.parse(redacted.split("\n")[1]!).err).toBe(`info={ "requestUrl": "${redactedForm(port)}" }`);
  });

  test("bearer and basic credentials, JWTs and authorization, API key and password fields are redacted; prose is not", () => {
    const jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz";
    expect(redactSecrets(`Authorization: Bearer ${jwt}`)).toBe("Authorization: <redacted>");
    expect(redactSecrets(`{"authorization":"Bearer tok_12345678"}`)).toBe(`{"authorization":"<redacted>"}`);
    expect(redactSecrets(`sent Bearer tok_12345678 and Basic dXNlcjpzM2NyZXRQYXNz`)).toBe(
      "sent Bearer <redacted> and Basic <redacted>",
    );
    expect(redactSecrets(`token ${jwt} expired`)).toBe("token <redacted jwt> expired");
    expect(redactSecrets("x-api-key=K1; apikey: K2 DB_PASSWORD=hunter22 client_secret=S")).toBe(
      "x-api-key=<redacted>; apikey: <redacted> DB_PASSWORD=<redacted> client_secret=<redacted>",
    );
    const prose =
      'Basic configuration; bearer token missing; Bearer error="invalid_token"; JSON-RPC eth_call failed on chain consortium; must match "^https?://"; result 0x' +
      "ab".repeat(32);
    expect(redactSecrets(prose)).toBe(prose);
  });
});

describe("CryptletError.toJSON and errorToJSON with the real ethers error", () => {
  test("the runtime's ERR_CHAIN_RPC_UNAVAILABLE: its cause names the endpoint, redacted", async () => {
    const raw = await ethersErrorOf(url);
    expect(leaked(raw.message)).toEqual(SECRETS); // ethers writes the URL and the echoed credentials
    const error = await chainRpcErrorOf(url);
    expect(error.code).toBe("ERR_CHAIN_RPC_UNAVAILABLE");
    const serialised = JSON.stringify(error.toJSON());
    expect(leaked(serialised)).toEqual([]);
    expect(error.toJSON().cause).toContain(`requestUrl": "${redactedForm(port)}"`);
    expect(error.toJSON().cause).toContain("authorization: <redacted>");
    expect(JSON.stringify(errorToJSON(error))).toBe(serialised);
  });

  test("a raw ethers error (ERR_UNEXPECTED), a CryptletError with secrets in details, and redactedError", async () => {
    const raw = await ethersErrorOf(url);
    const unexpected = errorToJSON(raw);
    expect(unexpected).toMatchObject({ code: "ERR_UNEXPECTED", retryable: true });
    expect(unexpected.message).toMatch(/^SERVER_ERROR: server response 500/);
    expect(leaked(JSON.stringify(unexpected))).toEqual([]);

    const withDetails = new CryptletError("ERR_CHAIN_RPC_UNAVAILABLE", `endpoint ${url} failed`, {
      details: { endpoints: [url], nested: { note: `via ${url}` }, apiKey: "SECRETKEY123" },
      cause: raw,
    });
    const json: CryptletErrorJSON = withDetails.toJSON();
    expect(leaked(JSON.stringify(json))).toEqual([]);
    expect(json.message).toBe(`endpoint ${redactedForm(port)} failed`);
    expect(json.details).toEqual({
      endpoints: [redactedForm(port)],
      nested: { note: `via ${redactedForm(port)}` },
      apiKey: "<redacted>",
    });
    expect(withDetails.details?.endpoints).toEqual([url]); // the error itself is not changed

    const safe = redactedError(raw);
    expect(leaked(`${safe.message}\n${safe.stack}`)).toEqual([]);
    expect(safe.stack).toContain(redactedForm(port));
    const clean = new Error("nothing to hide");
    expect(redactedError(clean)).toBe(clean);
  });
});

describe("the cryptlet CLI (child process) with the endpoint in its configuration", () => {
  let config: string;
  let input: string;

  beforeAll(async () => {
    const jwk = (curve: string) =>
      JSON.stringify(generateKeyPairSync("ec", { namedCurve: curve }).privateKey.export({ format: "jwk" }));
    await writeFile(path.join(tmp, "signer.jwk.json"), jwk("secp256k1"));
    await writeFile(path.join(tmp, "attestation.jwk.json"), jwk("P-256"));
    input = path.join(tmp, "input.json");
    await writeFile(input, JSON.stringify({ values: ["1"] }));
    config = path.join(tmp, "cryptlet.config.json");
    await writeFile(
      config,
      JSON.stringify({
        redisUrl: REDIS_URL,
        prefix: `redact${Date.now().toString(36)}`,
        consortiumId: `0x${"11".repeat(32)}`,
        keys: {
          resultSigners: [{ type: "local", jwkPath: "signer.jwk.json" }],
          attestation: { type: "local", jwkPath: "attestation.jwk.json" },
        },
        chains: [
          {
            name: "consortium",
            chainId: 31337,
            rpcUrl: url,
            signer: { type: "local", jwkPath: "signer.jwk.json" },
            contracts: {},
          },
        ],
      }),
    );
  });

  test("invoke fails on the chain: --json names the redacted endpoint in `cause`; text output too", async () => {
    const machine = await cli("invoke", "redaction-sum", "-i", input, "--config", config, "--json");
    expect(machine.code).toBe(1);
    expect(leaked(machine.stdout + machine.stderr)).toEqual([]);
    const { error } = json(machine) as { error: CryptletErrorJSON };
    expect(error.code).toBe("ERR_CHAIN_RPC_UNAVAILABLE");
    expect(error.cause).toContain(redactedForm(port));

    const human = await cli("invoke", "redaction-sum", "-i", input, "--config", config);
    expect(human.code).toBe(1);
    expect(leaked(human.stdout + human.stderr)).toEqual([]);
    expect(human.stderr).toContain("error ERR_CHAIN_RPC_UNAVAILABLE: JSON-RPC eth_chainId failed on chain consortium");
    expect(human.stderr).toContain(`cause: SERVER_ERROR: server response 500`);
    expect(human.stderr).toContain(redactedForm(port));
  });

  test("chains reports the failing chain with its endpoint redacted", async () => {
    const machine = await cli("chains", "--config", config, "--json");
    expect(machine.code).toBe(1);
    expect(leaked(machine.stdout + machine.stderr)).toEqual([]);
    expect(json(machine)[0]).toMatchObject({ ok: false, rpcUrl: redactedForm(port) });
    const human = await cli("chains", "--config", config);
    expect(human.code).toBe(1);
    expect(leaked(human.stdout + human.stderr)).toEqual([]);
  });
});

describe("API problem documents and the API's log", () => {
  let fixture: LightApi;
  let rpc: ChainRpc;
  const logged: unknown[] = [];
  let failure: unknown;

  beforeAll(async () => {
    const log = (obj: object, msg?: string) => void logged.push({ ...obj, msg });
    rpc = new ChainRpc(chainConfig("consortium", 31337, url), { requestTimeoutMs: 2000 });
    const results = {
      getReceipt: () => Promise.reject(failure),
      getRun: () => Promise.reject(failure),
    } as unknown as ResultStore;
    fixture = await startLightApi({
      logger: { info: log, warn: log, error: log },
      results,
      chains: new Map([["consortium", { writer: { rpc } }]]),
    });
  });

  afterAll(async () => {
    rpc?.destroy();
    await fixture?.close();
  });

  const runPath = `/v1/runs/0x${"cd".repeat(32)}`;

  test("a dependency's ERR_CHAIN_RPC_UNAVAILABLE: a 503 problem; the logged cause is redacted", async () => {
    logged.length = 0;
    failure = await chainRpcErrorOf(url);
    const res = await request(fixture.url, "GET", runPath, { token: await fixture.token("auditor") });
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({ code: "ERR_CHAIN_RPC_UNAVAILABLE", status: 503 });
    expect(leaked(res.text)).toEqual([]);
    const log = JSON.stringify(logged);
    expect(leaked(log)).toEqual([]);
    expect(log).toContain(redactedForm(port)); // the cause's stack was logged, with the URL redacted
  });

  test("a raw ethers error: a 500 ERR_INTERNAL problem; the logged stack is redacted", async () => {
    logged.length = 0;
    failure = await ethersErrorOf(url);
    const res = await request(fixture.url, "GET", runPath, { token: await fixture.token("auditor") });
    expect(res.status).toBe(500);
    expect(res.body.code).toBe("ERR_INTERNAL");
    expect(leaked(res.text)).toEqual([]);
    const log = JSON.stringify(logged);
    expect(leaked(log)).toEqual([]);
    expect(log).toContain(redactedForm(port));
  });

  test("a CryptletError with the URL in its message and details: the problem's title and details are redacted", async () => {
    failure = new CryptletError("ERR_CHAIN_RPC_UNAVAILABLE", `endpoint ${url} failed`, {
      details: { endpoint: url },
      retryable: true,
    });
    const res = await request(fixture.url, "GET", runPath, { token: await fixture.token("auditor") });
    expect(res.status).toBe(503);
    expect(leaked(res.text)).toEqual([]);
    expect(res.body.title).toBe(`endpoint ${redactedForm(port)} failed`);
    expect(res.body.details).toEqual({ endpoint: redactedForm(port) });
  });

  test("/ready with the chain down, and a dead letter stored unredacted (before this change) as /v1/dead-letters shows it", async () => {
    const ready = await request(fixture.url, "GET", "/ready");
    expect(ready.status).toBe(503);
    expect(ready.body.code).toBe("ERR_API_NOT_READY");
    expect(leaked(ready.text)).toEqual([]);

    const raw = await ethersErrorOf(url);
    await fixture.pipeline.queue<DeadLetter>(QUEUES.deadLetter).add("dead-letter", {
      queue: "writes",
      jobId: "write-legacy",
      name: "write",
      data: { chain: "consortium" },
      error: { code: "ERR_UNEXPECTED", message: raw.message, retryable: true },
      attemptsMade: 12,
      failedAt: Date.now(),
    });
    const res = await request(fixture.url, "GET", "/v1/dead-letters", { token: await fixture.token("admin") });
    expect(res.status).toBe(200);
    expect(res.body.deadLetters).toHaveLength(1);
    expect(leaked(res.text)).toEqual([]);
    expect(res.body.deadLetters[0].error.message).toContain(redactedForm(port));
  });
});

describe("the pipeline: worker log, dead letters, receipt and Redis (real Redis, BullMQ, sandbox)", () => {
  const prefix = `redact${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  let redis: Redis;
  let pipeline: Pipeline;
  let ctx: PipelineContext;
  const logLines: string[] = [];
  const writesRetry = RETRY.writes;

  /** A JSON-RPC client that lets the raw ethers error through, as a library call outside ChainRpc would. */
  class RawRpc extends ChainRpc {
    override async send<T = unknown>(method: string, params: unknown[]): Promise<T> {
      return (await this.provider.send(method, params)) as T;
    }
  }

  beforeAll(async () => {
    // The first failure of a write is final, so that it reaches the dead-letter queue at once.
    RETRY.writes = { attempts: 1 };
    redis = new Redis(REDIS_URL);
    const dir = path.join(tmp, "redaction-sum");
    await initCryptlet(dir, { name: "redaction-sum" });
    const manifestFile = path.join(dir, "cryptlet.json");
    const manifest = JSON.parse(await readFile(manifestFile, "utf8")) as { targets: unknown[] };
    manifest.targets = [
      { chain: "consortium", mode: "record" },
      { chain: "public", mode: "record" },
    ];
    await writeFile(manifestFile, JSON.stringify(manifest));
    const pkg = await buildPackage(dir, { outDir: false });
    const publisher = await generateKeyPair("ES256", { extractable: true });
    const publisherJwk = { ...(await exportJWK(publisher.publicKey)), kid: "redaction-publisher" };
    const packages = new PackageStore({ redis, trustedPublisherKeys: [publisherJwk], prefix: `{${prefix}-packages}:` });
    await packages.deploy(pkg, await signPackage(pkg, publisher.privateKey, "redaction-publisher"));

    const local = (curve: string, name: string) =>
      new LocalKeyProvider({
        jwk: generateKeyPairSync("ec", { namedCurve: curve }).privateKey.export({ format: "jwk" }) as JWK,
        name,
        production: false,
      });
    const writerSigner = new KeyVaultSigner(local("secp256k1", "writer"));
    const chain = (name: string, chainId: number, raw: boolean) => {
      const config = chainConfig(name, chainId, url);
      const rpc = raw
        ? new RawRpc(config, { requestTimeoutMs: 2000 })
        : new ChainRpc(config, { requestTimeoutMs: 2000 });
      return [
        name,
        { config, writer: new ChainWriter({ chain: config, signer: writerSigner, redis, prefix, rpc }) },
      ] as const;
    };
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logLines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
        done();
      },
    });
    ctx = {
      redis,
      redisUrl: REDIS_URL,
      prefix,
      consortiumId: id("redaction-consortium") as Hex32,
      packages,
      sandbox: new SandboxPool(1),
      resultSigners: [new KeyVaultSigner(local("secp256k1", "result-signer"))],
      attestationKey: local("P-256", "attestation"),
      runtime: { issuer: "redaction-test", version: "0.1.0", buildHash: "test" },
      chains: new Map([chain("consortium", 31337, false), chain("public", 31338, true)]),
      results: new ResultStore(redis, prefix),
      logger: pino({ level: "info" }, sink),
    };
    pipeline = new Pipeline(ctx);
    pipeline.startWorkers({ lockDurationMs: 5000, stalledIntervalMs: 2000 });
  });

  afterAll(async () => {
    RETRY.writes = writesRetry;
    await pipeline?.close();
    await ctx?.sandbox.dispose();
    for (const chain of ctx?.chains.values() ?? []) chain.writer.rpc.destroy();
    if (redis) {
      await cleanRedis(redis, prefix);
      await redis.quit();
    }
  });

  test("both writes fail on the endpoint; nothing the run left behind holds a secret", async () => {
    const key = `${prefix}-1`;
    const { runId } = await pipeline.submit({
      eventId: httpEventId(key),
      cryptlet: { name: "redaction-sum" },
      source: { type: "http", idempotencyKey: key },
      input: { values: ["2", "3"] },
      time: 1_704_412_800,
    });
    const outcome = await pipeline.waitForRun(runId, 45_000);
    expect(outcome.status).toBe("complete");
    if (outcome.status !== "complete") return;

    const receipt = outcome.receipt;
    const letters = await pipeline.deadLetters();
    // Every key the run left in Redis: BullMQ's jobs (data, failedReason, stacktrace), the dead-letter queue,
    // the result store, the lanes.
    const dump: string[] = [];
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `*${prefix}*`, "COUNT", 1000);
      cursor = next;
      for (const k of keys) {
        const type = await redis.type(k);
        if (type === "string") dump.push((await redis.get(k)) ?? "");
        else if (type === "hash") dump.push(JSON.stringify(await redis.hgetall(k)));
        else if (type === "list") dump.push(...(await redis.lrange(k, 0, -1)));
        else if (type === "set") dump.push(...(await redis.smembers(k)));
        else if (type === "zset") dump.push(...(await redis.zrange(k, 0, -1)));
        else if (type === "stream") dump.push(JSON.stringify(await redis.xrange(k, "-", "+")));
      }
    } while (cursor !== "0");
    const stored = dump.join("\n");
    expect({
      receipt: leaked(JSON.stringify(receipt)),
      deadLetters: leaked(JSON.stringify(letters)),
      workerLog: leaked(logLines.join("\n")),
      redis: leaked(stored),
    }).toEqual({ receipt: [], deadLetters: [], workerLog: [], redis: [] });

    // The receipt: both targets failed; the raw error's message names the endpoint, redacted.
    expect(receipt.status).toBe("failed");
    const byChain = Object.fromEntries(receipt.targets.map((t) => [t.chain, t.error]));
    expect(byChain.consortium?.code).toBe("ERR_CHAIN_RPC_UNAVAILABLE");
    expect(byChain.public?.code).toBe("ERR_UNEXPECTED");
    expect(byChain.public?.message).toContain(redactedForm(port));
    // The dead letters: code, message and cause, redacted.
    expect(letters).toHaveLength(2);
    const consortium = letters.find((l) => (l.data as { chain?: string }).chain === "consortium")!;
    expect(consortium.error).toMatchObject({ code: "ERR_CHAIN_RPC_UNAVAILABLE", retryable: true });
    expect(consortium.error.cause).toContain(redactedForm(port));
    // The worker's log (pino): the failures with their redacted causes.
    const failures = logLines.filter((line) => line.includes('"job failed"'));
    expect(failures.length).toBeGreaterThanOrEqual(2);
    expect(failures.join("\n")).toContain(redactedForm(port));
    // Redis: BullMQ's failedReason of the raw error is the redacted message.
    expect(stored).toContain(redactedForm(port));
  });
});

test("a closed port: the connection error carries no URL, and the output none either", async () => {
  const closed = secretUrl(await closedPort());
  const error = await chainRpcErrorOf(closed);
  expect(leaked(JSON.stringify(error.toJSON()))).toEqual([]);
});
