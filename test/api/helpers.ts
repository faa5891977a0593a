/**
 * Test support for the API: a real API server on 127.0.0.1:0 over real Redis (fresh key prefix), a real package
 * store with a test publisher, a real Pipeline (queues only, no workers: events wait in the `events` queue) and
 * the local issuer, so every request goes through real JWT verification. `request()` is a small fetch wrapper.
 */
import { generateKeyPairSync } from "node:crypto";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";

import { id } from "ethers";
import { Redis } from "ioredis";
import { exportJWK, generateKeyPair, type CryptoKey, type JWK } from "jose";

import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import type { ApiDeps } from "../../runtime/api/deps.ts";
import { apiDepsOf } from "../../runtime/api/deps.ts";
import { LocalIssuer } from "../../runtime/api/localIssuer.ts";
import { startApiServer, type ApiServer, type ApiServerOptions } from "../../runtime/api/server.ts";
import { LocalKeyProvider } from "../../runtime/keys/LocalKeyProvider.ts";
import { PackageStore } from "../../runtime/packages/PackageStore.ts";
import type { PipelineContext } from "../../runtime/queue/context.ts";
import { Pipeline } from "../../runtime/queue/pipeline.ts";
import { ResultStore } from "../../runtime/queue/results.ts";
import { SandboxPool } from "../../runtime/sandbox/pool.ts";

export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/** A parsed response. */
export interface TestResponse {
  status: number;
  headers: Headers;
  /** Parsed JSON when the body is JSON, else the text. */
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  text: string;
}

/** Sends a request; `json` is serialised with `content-type: application/json`, `body` is sent raw. */
export async function request(
  base: string,
  method: string,
  path: string,
  options: { token?: string; json?: unknown; body?: string | Uint8Array; headers?: Record<string, string> } = {},
): Promise<TestResponse> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | Uint8Array | undefined = options.body;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers["content-type"] ??= "application/json";
  }
  const response = await fetch(`${base}${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
  const text = await response.text();
  let parsed: unknown = text;
  if (/json/.test(response.headers.get("content-type") ?? "")) parsed = JSON.parse(text);
  return { status: response.status, headers: response.headers, body: parsed, text };
}

/** The light API fixture. */
export interface LightApi {
  api: ApiServer;
  url: string;
  issuer: LocalIssuer;
  redis: Redis;
  prefix: string;
  ctx: PipelineContext;
  pipeline: Pipeline;
  publisher: { privateKey: CryptoKey; publicJwk: JWK; kid: string };
  /** A token for the given roles. */
  token(...roles: string[]): Promise<string>;
  close(): Promise<void>;
}

/**
 * Starts the light fixture. `overrides` replace API dependencies (limits, auth, verification...), or are computed
 * from the fixture's pipeline context (e.g. a consortium member's follower, which uses its package store and
 * sandbox); `server` sets the server's options (timeouts).
 */
export async function startLightApi(
  overrides: Partial<ApiDeps> | ((ctx: PipelineContext) => Partial<ApiDeps>) = {},
  server: Omit<ApiServerOptions, "port"> = {},
): Promise<LightApi> {
  const prefix = `tapi${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const redis = new Redis(REDIS_URL);
  const pair = await generateKeyPair("ES256", { extractable: true });
  const kid = "api-test-publisher";
  const publicJwk = { ...(await exportJWK(pair.publicKey)), kid };
  const attestationJwk = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "jwk" }) as JWK;
  const ctx: PipelineContext = {
    redis,
    redisUrl: REDIS_URL,
    prefix,
    consortiumId: id("api-test-consortium") as Hex32,
    packages: new PackageStore({ redis, trustedPublisherKeys: [publicJwk], prefix: `{${prefix}-packages}:` }),
    sandbox: new SandboxPool(1),
    resultSigners: [],
    attestationKey: new LocalKeyProvider({ jwk: attestationJwk, name: "api-attestation", production: false }),
    runtime: { issuer: "api-test-runtime", version: "0.1.0", buildHash: "test" },
    chains: new Map(),
    results: new ResultStore(redis, prefix),
  };
  const pipeline = new Pipeline(ctx);
  const issuer = await LocalIssuer.create();
  const api = await startApiServer(
    {
      ...apiDepsOf(ctx, pipeline, {
        auth: issuer.authOptions(),
        localIssuer: issuer,
        verification: { trustedSigners: [], threshold: 1 },
        validateResponses: true,
      }),
      ...(typeof overrides === "function" ? overrides(ctx) : overrides),
    },
    { ...server, port: 0 },
  );
  return {
    api,
    url: api.url,
    issuer,
    redis,
    prefix,
    ctx,
    pipeline,
    publisher: { privateKey: pair.privateKey, publicJwk, kid },
    token: (...roles) => issuer.mint({ roles, subject: `test-${roles.join("-") || "none"}` }),
    async close() {
      await api.close();
      await pipeline.close();
      await ctx.sandbox.dispose(); // its sandbox processes, if a run started any
      await cleanRedis(redis, prefix);
      await redis.quit();
    },
  };
}

/** Deletes every key containing `prefix`. */
export async function cleanRedis(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, found] = await redis.scan(cursor, "MATCH", `*${prefix}*`, "COUNT", 1000);
    cursor = next;
    if (found.length > 0) await redis.del(...found);
  } while (cursor !== "0");
}

/** The deploy request body of a built package. */
export function deployBody(
  built: { manifest: unknown; files: Readonly<Record<string, Uint8Array>> },
  signature: string,
): { manifest: unknown; files: Record<string, string>; signature: string } {
  return {
    manifest: built.manifest,
    files: Object.fromEntries(Object.entries(built.files).map(([p, b]) => [p, Buffer.from(b).toString("base64")])),
    signature,
  };
}

/** A loopback port nothing listens on (bound, then released): connections to it are refused. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
