/**
 * Malformed input is a 4xx problem document, never a 5xx nor a held connection (issue 13 item 5), over the real
 * API (real Redis, package store, pipeline queues, local issuer): bodies nested thousands of levels deep, a
 * `Content-Encoding` the bytes are not in, empty bodies where the OpenAPI document requires one, a declared
 * `Content-Length` that never arrives, slow or oversized headers, paths that are not valid percent-encoding, and a
 * forged `Host` header at the local issuer's discovery document.
 */
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { connect } from "node:net";
import { brotliCompressSync, deflateSync, gzipSync } from "node:zlib";

import { assembleBuiltPackage } from "../../runtime/packages/builtPackage.ts";
import { signPackage } from "../../runtime/packages/signature.ts";
import { QUEUES } from "../../runtime/queue/topology.ts";
import { deployBody, startLightApi, type LightApi } from "./helpers.ts";

const NAME = "@malformed-test/echo";
const INVOKE = `/v1/cryptlets/${encodeURIComponent(NAME)}/invoke`;

interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

/** One request through node:http, with exactly the headers and bytes given. */
function send(
  base: string,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<RawResponse> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method, path, headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        const json = /json/.test(res.headers["content-type"] ?? "");
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body: json ? JSON.parse(text) : text });
      });
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

/** Writes `bytes` on a raw TCP connection and collects everything until the server closes it. */
function rawExchange(base: string, bytes: string, limitMs: number): Promise<{ text: string; closedAfterMs: number }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect(Number(url.port), url.hostname, () => socket.write(bytes));
    let text = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connection still open after ${limitMs} ms; received ${JSON.stringify(text)}`));
    }, limitMs);
    socket.on("data", (d: Buffer) => (text += d.toString("utf8")));
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ text, closedAfterMs: performance.now() - started });
    });
  });
}

function expectProblem(res: RawResponse, status: number, code: string): void {
  expect({ status: res.status, code: res.body?.code }).toEqual({ status, code });
  expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ type: `urn:cryptlet:problem:${code}`, status });
  expect(typeof res.body.title).toBe("string");
}

/** `levels` nested arrays around 1: `[[[1]]]` is 3 levels. */
const nestedArrays = (levels: number) => `${"[".repeat(levels)}1${"]".repeat(levels)}`;

describe("malformed input is a 4xx problem, never a 5xx (issue 13 item 5)", () => {
  let f: LightApi;
  let operator: string;
  let auditor: string;
  let publisher: string;
  let json: (token: string, extra?: Record<string, string>) => Record<string, string>;

  beforeAll(async () => {
    f = await startLightApi();
    [operator, auditor, publisher] = await Promise.all([f.token("operator"), f.token("auditor"), f.token("publisher")]);
    json = (token, extra = {}) => ({ authorization: `Bearer ${token}`, "content-type": "application/json", ...extra });
    const pkg = assembleBuiltPackage(
      {
        name: NAME,
        version: "1.0.0",
        entry: "src/index.ts",
        triggers: [{ type: "http" }],
        output: { abi: "tuple(int256 answer)" },
        targets: [{ chain: "public", mode: "record" }],
      },
      { "bundle.js": new TextEncoder().encode("var cryptlet = { default: { run: () => ({ answer: 1 }) } };\n") },
    );
    const deployed = await send(f.url, "POST", "/v1/packages", {
      headers: json(publisher),
      body: JSON.stringify(deployBody(pkg, await signPackage(pkg, f.publisher.privateKey, f.publisher.kid))),
    });
    expect(deployed.status).toBe(201);
  });

  afterAll(async () => {
    await f?.close();
  });

  test("a body nested deeper than the limit is 400 ERR_API_BODY_TOO_DEEP naming it, before canonicalisation", async () => {
    // 5,000 levels overflowed the stack of the RFC 8785 canonicalisation of the invoke body: a 500.
    for (const [path, token, body] of [
      [INVOKE, operator, nestedArrays(5000)],
      [INVOKE, operator, `{"a":${nestedArrays(100_000)}}`],
      ["/v1/verify", auditor, `{"bundle":${'{"a":'.repeat(5000)}1${"}".repeat(5000)}}`],
      [
        "/v1/packages",
        publisher,
        `{"manifest":${'{"a":'.repeat(5000)}1${"}".repeat(5000)},"files":{},"signature":"a.b.c"}`,
      ],
    ] as const) {
      const res = await send(f.url, "POST", path, { headers: json(token), body });
      expectProblem(res, 400, "ERR_API_BODY_TOO_DEEP");
      expect(res.body.details).toEqual({ maxDepth: 128 });
    }
    // The limit itself is accepted (and canonicalised: the idempotency record hashes it).
    const atLimit = await send(f.url, "POST", INVOKE, { headers: json(operator), body: nestedArrays(128) });
    expect(atLimit.status).toBe(202);
    const over = await send(f.url, "POST", INVOKE, { headers: json(operator), body: nestedArrays(129) });
    expectProblem(over, 400, "ERR_API_BODY_TOO_DEEP");
  });

  test("a body that is not in its declared Content-Encoding is 400; real gzip/deflate/br bodies are decoded", async () => {
    const body = JSON.stringify({ price: 1 });
    for (const encoding of ["gzip", "deflate", "br", "GZIP"]) {
      const res = await send(f.url, "POST", INVOKE, {
        headers: json(operator, { "content-encoding": encoding }),
        body,
      });
      expectProblem(res, 400, "ERR_API_CONTENT_ENCODING");
      expect(res.body.details).toEqual({ encoding: encoding.toLowerCase() });
    }
    for (const [encoding, compress] of [
      ["gzip", gzipSync],
      ["deflate", deflateSync],
      ["br", brotliCompressSync],
    ] as const) {
      const res = await send(f.url, "POST", INVOKE, {
        headers: json(operator, { "content-encoding": encoding, "idempotency-key": `enc-${encoding}` }),
        body: compress(Buffer.from(body)),
      });
      expect(res.status).toBe(202);
    }
    // A coding the API does not decode: 415 with the codings it does (RFC 9110 §15.5.16).
    for (const encoding of ["compress", "gzip, gzip", "x-unknown"]) {
      const res = await send(f.url, "POST", INVOKE, {
        headers: json(operator, { "content-encoding": encoding }),
        body,
      });
      expectProblem(res, 415, "ERR_API_UNSUPPORTED_MEDIA_TYPE");
      expect(res.headers["accept-encoding"]).toMatch(/^gzip, deflate, br/);
    }
  });

  test("an empty or missing body where the OpenAPI document requires one is 400 ERR_API_BODY_REQUIRED", async () => {
    const events = f.pipeline.queue(QUEUES.events);
    const before = await events.count();
    for (const [path, token] of [
      [INVOKE, operator],
      ["/v1/verify", auditor],
      ["/v1/packages", publisher],
    ] as const) {
      // Content-Length: 0 with a JSON media type (the body parser alone reads it as `{}`), and no body at all.
      expectProblem(await send(f.url, "POST", path, { headers: json(token), body: "" }), 400, "ERR_API_BODY_REQUIRED");
      expectProblem(
        await send(f.url, "POST", path, { headers: { authorization: `Bearer ${token}` } }),
        400,
        "ERR_API_BODY_REQUIRED",
      );
    }
    expect(await events.count()).toBe(before); // no run was submitted with an input of `{}`
    // An operation without a request body is unaffected by an empty one.
    const replay = await send(f.url, "POST", "/v1/dead-letters/none/replay", { headers: json(operator), body: "" });
    expectProblem(replay, 404, "ERR_DEAD_LETTER_NOT_FOUND");
  });

  test("a path that is not valid percent-encoding is 400, not 500", async () => {
    for (const path of ["/v1/packages/%E0%A4%A", "/v1/packages/%", "/v1/packages/%zz/versions/1.0.0"]) {
      const res = await send(f.url, "GET", path, { headers: { authorization: `Bearer ${auditor}` } });
      expect(res.status).toBe(400);
      expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
      expect(res.body.status).toBe(400);
    }
  });

  test("the local issuer's discovery document names the configured URL, never the Host header", async () => {
    const res = await send(f.url, "GET", "/local-issuer/.well-known/openid-configuration", {
      headers: { host: "attacker.example:666", "x-forwarded-host": "attacker.example" },
    });
    expect(res.status).toBe(200);
    expect(res.body.jwks_uri).toBe(`${f.url}/local-issuer/jwks.json`);
    expect(res.text).not.toContain("attacker");
  });

  test("the server's request limits default to the documented 10 s for headers and 30 s for the whole request", () => {
    expect({ headers: f.api.server.headersTimeout, request: f.api.server.requestTimeout }).toEqual({
      headers: 10_000,
      request: 30_000,
    });
  });
});

describe("a configured public URL (behind a proxy)", () => {
  let f: LightApi;
  beforeAll(async () => {
    f = await startLightApi({ publicUrl: "https://cryptlet.example.com/" });
  });
  afterAll(async () => {
    await f?.close();
  });

  test("is what the local issuer's jwks_uri names", async () => {
    const res = await send(f.url, "GET", "/local-issuer/.well-known/openid-configuration", {
      headers: { host: "attacker.example" },
    });
    expect(res.body.jwks_uri).toBe("https://cryptlet.example.com/local-issuer/jwks.json");
  });
});

describe("requests that do not arrive in time are answered 408 and closed within the limit", () => {
  const HEADERS_MS = 1000;
  const REQUEST_MS = 2000;
  // Node checks the limits every second; the rest is margin for a loaded machine.
  const SLACK_MS = 1000 + 3000;
  let f: LightApi;
  let auditor: string;

  beforeAll(async () => {
    f = await startLightApi({}, { headersTimeoutMs: HEADERS_MS, requestTimeoutMs: REQUEST_MS });
    auditor = await f.token("auditor");
  });
  afterAll(async () => {
    await f?.close();
  });

  const problemOf = (text: string) => JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4)) as Record<string, unknown>;

  test("a declared Content-Length of 100 MB with a few bytes sent: 408 ERR_API_REQUEST_TIMEOUT, connection closed", async () => {
    const { text, closedAfterMs } = await rawExchange(
      f.url,
      "POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
        `Authorization: Bearer ${auditor}\r\nContent-Length: 100000000\r\n\r\n{"bun`,
      REQUEST_MS + SLACK_MS + 5000,
    );
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(text).toMatch(/\r\nContent-Type: application\/problem\+json\r\n/i);
    expect(text).toMatch(/\r\nConnection: close\r\n/i);
    expect(problemOf(text)).toMatchObject({
      type: "urn:cryptlet:problem:ERR_API_REQUEST_TIMEOUT",
      status: 408,
      code: "ERR_API_REQUEST_TIMEOUT",
      details: { timeoutMs: REQUEST_MS },
    });
    expect(closedAfterMs).toBeGreaterThanOrEqual(REQUEST_MS - 100);
    expect(closedAfterMs).toBeLessThan(REQUEST_MS + SLACK_MS);
  });

  test("headers that never finish: 408 after the headers limit", async () => {
    const { text, closedAfterMs } = await rawExchange(
      f.url,
      "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ",
      HEADERS_MS + SLACK_MS + 5000,
    );
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(problemOf(text)).toMatchObject({ code: "ERR_API_REQUEST_TIMEOUT", details: { timeoutMs: HEADERS_MS } });
    expect(closedAfterMs).toBeLessThan(HEADERS_MS + SLACK_MS);
  });

  test("headers over Node's limit are 431 and unparseable HTTP is 400, both problem documents", async () => {
    const big = await rawExchange(
      f.url,
      `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`,
      10_000,
    );
    expect(big.text).toMatch(/^HTTP\/1\.1 431 /);
    expect(problemOf(big.text)).toMatchObject({ status: 431, code: "ERR_API_HEADERS_TOO_LARGE" });
    const garbage = await rawExchange(f.url, "NOT HTTP AT ALL\r\n\r\n", 10_000);
    expect(garbage.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(problemOf(garbage.text)).toMatchObject({ status: 400, code: "ERR_API_BAD_REQUEST" });
  });
});
