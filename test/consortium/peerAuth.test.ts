/**
 * Peer authentication and the consortium settings, below the three-member test (test/consortium/protocol.test.ts):
 * real HTTP servers on 127.0.0.1 and local P-256 keys.
 *
 * - a token that lives longer than 60 s is refused (`lifetime`), one signed by a key the sender's JWKS does not list
 *   is `unknown-key`, and a sender whose JWKS URL does not answer is `jwks-unavailable` (503, retryable);
 * - the replay caches (memory, Redis) accept a `jti` once;
 * - `sendToPeer` gives up at its deadline on a peer that never answers (`ERR_PEER_UNREACHABLE`) and reports a peer's
 *   HTTP error with its problem code (`ERR_PEER_REJECTED`); it refuses to call without a deadline;
 * - a runtime that is not a consortium member answers the proposals route 401;
 * - the `consortium` configuration section: validated by the runtime configuration's schema, and refused when self
 *   is not a member, ids or signers repeat, or M is not a majority of N.
 */
import { createHash, generateKeyPairSync, randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

import { Wallet } from "ethers";
import { Redis } from "ioredis";
import { base64url, type JWK } from "jose";

import { buildJwks } from "../../runtime/attestation/token.ts";
import { parseRuntimeConfig } from "../../runtime/config.ts";
import { isCryptletError } from "../../runtime/errors.ts";
import { gatherCosignatures, PROPOSALS_PATH } from "../../runtime/consortium/leader.ts";
import {
  MemoryReplayCache,
  PeerAuthenticator,
  RedisReplayCache,
  bodySha256,
  createPeerRequestToken,
  sendToPeer,
} from "../../runtime/consortium/peerAuth.ts";
import type { ConsortiumMember } from "../../runtime/consortium/protocol.ts";
import { checkConsortiumSettings } from "../../runtime/consortium/settings.ts";
import { LocalKeyProvider } from "../../runtime/keys/LocalKeyProvider.ts";
import { REDIS_URL, cleanRedis, closedPort, startLightApi } from "../api/helpers.ts";

const localKey = (name: string) =>
  new LocalKeyProvider({
    jwk: generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "jwk" }) as JWK,
    name,
    production: false,
  });

async function membersWith(acmeJwks: ConsortiumMember["jwks"]): Promise<ConsortiumMember[]> {
  return [
    { id: "acme", url: "http://127.0.0.1:1", jwks: acmeJwks, signer: Wallet.createRandom().address },
    {
      id: "globex",
      url: "http://127.0.0.1:1",
      jwks: (await buildJwks([localKey("globex")])) as { keys: Record<string, unknown>[] },
      signer: Wallet.createRandom().address,
    },
  ];
}

/** A hand-made token (to set claims that createPeerRequestToken refuses to make). */
async function handMade(key: LocalKeyProvider, claims: Record<string, unknown>): Promise<string> {
  const { keyId } = await key.getPublicKey();
  const header = base64url.encode(JSON.stringify({ alg: "ES256", typ: "cryptlet-peer+jwt", kid: keyId }));
  const payload = base64url.encode(JSON.stringify(claims));
  const digest = createHash("sha256").update(`${header}.${payload}`).digest();
  const { signature } = await key.sign(new Uint8Array(digest), "ES256");
  return `${header}.${payload}.${base64url.encode(signature)}`;
}

const reasonOf = async (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => "accepted",
    (e: unknown) => ({ code: (e as { code?: string }).code, reason: (e as { reason?: string }).reason }),
  );

describe("peer request tokens", () => {
  const acmeKey = localKey("acme");

  it("refuses a token living longer than 60 s, and one signed by a key the sender's JWKS does not list", async () => {
    const members = await membersWith((await buildJwks([acmeKey])) as { keys: Record<string, unknown>[] });
    const auth = new PeerAuthenticator({ self: "globex", members, replay: new MemoryReplayCache() });
    const now = Math.floor(Date.now() / 1000);
    const body = "{}";
    const claims = { iss: "acme", aud: "globex", iat: now, jti: randomUUID(), bodySha256: bodySha256(body) };
    const ok = await handMade(acmeKey, { ...claims, exp: now + 60 });
    expect(await reasonOf(auth.authenticate(`Bearer ${ok}`, bodySha256(body)))).toBe("accepted");
    const long = await handMade(acmeKey, { ...claims, jti: randomUUID(), exp: now + 61 });
    expect(await reasonOf(auth.authenticate(`Bearer ${long}`, bodySha256(body)))).toEqual({
      code: "ERR_PEER_UNAUTHENTICATED",
      reason: "lifetime",
    });
    const stranger = await createPeerRequestToken(localKey("acme"), { issuer: "acme", audience: "globex", body });
    expect(await reasonOf(auth.authenticate(`Bearer ${stranger}`, bodySha256(body)))).toEqual({
      code: "ERR_PEER_UNAUTHENTICATED",
      reason: "unknown-key",
    });
    await expect(
      createPeerRequestToken(acmeKey, { issuer: "acme", audience: "globex", body, ttlSeconds: 61 }),
    ).rejects.toMatchObject({ code: "ERR_CONSORTIUM_CONFIG_INVALID" });
  });

  it("a sender whose JWKS URL does not answer is jwks-unavailable (503, retryable), within the deadline", async () => {
    const hanging = http.createServer(() => undefined);
    await new Promise<void>((resolve) => hanging.listen(0, "127.0.0.1", resolve));
    try {
      const url = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/jwks.json`;
      const auth = new PeerAuthenticator({
        self: "globex",
        members: await membersWith(url),
        replay: new MemoryReplayCache(),
        jwksTimeoutMs: 300,
      });
      const token = await createPeerRequestToken(acmeKey, { issuer: "acme", audience: "globex", body: "" });
      const started = Date.now();
      const error = await auth.authenticate(`Bearer ${token}`, bodySha256("")).catch((e: unknown) => e);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(error).toMatchObject({ code: "ERR_PEER_UNAUTHENTICATED", reason: "jwks-unavailable", status: 503 });
      expect((error as { retryable: boolean }).retryable).toBe(true);
      // Refused, not down: the same.
      const refused = new PeerAuthenticator({
        self: "globex",
        members: await membersWith(`http://127.0.0.1:${await closedPort()}/jwks.json`),
        replay: new MemoryReplayCache(),
      });
      await expect(refused.authenticate(`Bearer ${token}`, bodySha256(""))).rejects.toMatchObject({
        reason: "jwks-unavailable",
      });
    } finally {
      hanging.closeAllConnections();
      hanging.close();
    }
  });

  it("replay caches accept a jti once (memory, and Redis shared by a member's processes)", async () => {
    const memory = new MemoryReplayCache();
    expect(await memory.claim("acme:1", 60_000)).toBe(true);
    expect(await memory.claim("acme:1", 60_000)).toBe(false);
    expect(await memory.claim("acme:2", 60_000)).toBe(true);
    const redis = new Redis(REDIS_URL);
    const prefix = `tpeer${Date.now().toString(36)}`;
    try {
      const a = new RedisReplayCache(redis, prefix);
      const b = new RedisReplayCache(redis, prefix);
      expect(await a.claim("acme:1", 60_000)).toBe(true);
      expect(await b.claim("acme:1", 60_000)).toBe(false);
      expect(await redis.pttl(`${prefix}:consortium:jti:acme:1`)).toBeGreaterThan(50_000);
    } finally {
      await cleanRedis(redis, prefix);
      await redis.quit();
    }
  });
});

describe("sendToPeer", () => {
  const from = { id: "acme", requestKey: localKey("acme") };
  const member = (url: string): ConsortiumMember => ({
    id: "globex",
    url,
    jwks: { keys: [] },
    signer: Wallet.createRandom().address,
  });

  it("gives up at the deadline on a peer that never answers, and reports a peer's HTTP error", async () => {
    const server = http.createServer((req, res) => {
      if (req.url === "/hang") return;
      res.statusCode = 500;
      res.setHeader("content-type", "application/problem+json");
      res.end(JSON.stringify({ code: "ERR_INTERNAL" }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const started = Date.now();
      const hung = await sendToPeer(member(url), "/hang", {}, { deadlineMs: 300, from }).catch((e: unknown) => e);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(isCryptletError(hung, "ERR_PEER_UNREACHABLE")).toBe(true);
      expect((hung as { retryable: boolean }).retryable).toBe(true);
      await expect(sendToPeer(member(url), "/fail", {}, { deadlineMs: 5000, from })).rejects.toMatchObject({
        code: "ERR_PEER_REJECTED",
        details: { member: "globex", status: 500, code: "ERR_INTERNAL" },
        retryable: true,
      });
      await expect(sendToPeer(member(url), "/fail", {}, { deadlineMs: 0, from })).rejects.toMatchObject({
        code: "ERR_CONSORTIUM_CONFIG_INVALID",
      });
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it("a runtime that is not a consortium member answers the proposals route 401", async () => {
    const api = await startLightApi();
    try {
      const text = "{}";
      const token = await createPeerRequestToken(from.requestKey, { issuer: "acme", audience: "globex", body: text });
      const response = await fetch(`${api.url}${PROPOSALS_PATH}`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: text,
      });
      expect(response.status).toBe(401);
      expect(((await response.json()) as { code: string }).code).toBe("ERR_PEER_UNAUTHENTICATED");
      // Proposals carry the evidence: bodies above the 1 MiB JSON limit are read (up to 16 MiB), not refused 413.
      const post = (bytes: number) =>
        fetch(`${api.url}${PROPOSALS_PATH}`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
          body: JSON.stringify({ padding: "x".repeat(bytes) }),
        }).then((r) => r.status);
      expect(await post(2 * 1024 * 1024)).toBe(401);
      expect(await post(17 * 1024 * 1024)).toBe(413);
    } finally {
      await api.close();
    }
  });
});

describe("a hostile peer's answer", () => {
  it("is kept bounded in the outcome: a code of the ERR_* form only, a reason of at most 1000 characters", async () => {
    const server = http.createServer((_req, res) => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ verdict: "dissent", member: "globex", code: "<script>", reason: "x".repeat(5000) }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const wallet = Wallet.createRandom();
      const self: ConsortiumMember = {
        id: "acme",
        url: "http://127.0.0.1:1",
        jwks: { keys: [] },
        signer: wallet.address,
      };
      const peer: ConsortiumMember = {
        id: "globex",
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        jwks: { keys: [] },
        signer: Wallet.createRandom().address,
      };
      const h = `0x${"ab".repeat(32)}` as `0x${string}`;
      const outcome = await gatherCosignatures(
        {
          version: 1,
          leader: "acme",
          consortiumId: h,
          cryptlet: { name: "@test/x", version: "1.0.0" },
          result: { resultId: h, cryptletId: h, codeHash: h, inputHash: h, outputHash: h, timestamp: "1" },
          evidence: {
            evidenceFormat: 2,
            event: null,
            input: null,
            context: { requestId: h, resultId: h, now: 1 },
            fetches: [],
          },
          payload: "0x",
        },
        { self, signer: wallet, requestKey: localKey("acme"), peers: [peer], threshold: 2, answerTimeoutMs: 5000 },
      );
      expect(outcome.ok).toBe(false);
      expect(outcome.dissented).toEqual([{ member: "globex", code: "(invalid)", reason: "x".repeat(1000) }]);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe("the consortium configuration section", () => {
  const signers = [0, 1, 2].map(() => Wallet.createRandom().address);
  const section = {
    self: "acme",
    members: ["acme", "globex", "initech"].map((id, i) => ({
      id,
      url: `https://${id}.example`,
      jwks: `https://${id}.example/.well-known/jwks.json`,
      signer: signers[i],
    })),
    threshold: 2,
    requestKey: { type: "local", jwkPath: "peer.jwk.json" },
  };
  const base = {
    consortiumId: `0x${"11".repeat(32)}`,
    keys: {
      resultSigners: [{ type: "local", jwkPath: "s.jwk.json" }],
      attestation: { type: "local", jwkPath: "a.jwk.json" },
    },
    chains: [
      {
        name: "consortium",
        chainId: 31337,
        rpcUrl: "http://127.0.0.1:8545",
        signer: { type: "local", jwkPath: "r.jwk.json" },
      },
    ],
  };

  it("is read from the runtime configuration (request key resolved beside the file); absent by default", () => {
    expect(parseRuntimeConfig(base, "test", "/etc/cryptlet").consortium).toBeUndefined();
    const config = parseRuntimeConfig({ ...base, consortium: section }, "test", "/etc/cryptlet");
    expect(config.consortium).toMatchObject({ self: "acme", threshold: 2 });
    expect(config.consortium?.requestKey).toEqual({ type: "local", jwkPath: "/etc/cryptlet/peer.jwk.json" });
    expect(() => parseRuntimeConfig({ ...base, consortium: { ...section, answerTimeoutMs: -1 } })).toThrow(
      expect.objectContaining({ code: "ERR_RUNTIME_CONFIG_INVALID" }),
    );
  });

  it.each([
    ["self not a member", { self: "hooli" }],
    ["a repeated id", { members: [section.members[0], section.members[0], section.members[2]] }],
    [
      "a repeated signer",
      { members: [section.members[0], { ...section.members[1], signer: signers[0] }, section.members[2]] },
    ],
    ["a threshold above N", { threshold: 4 }],
    ["a threshold that is not a majority", { threshold: 1 }],
  ])("refuses %s", (_what, change) => {
    expect(() => checkConsortiumSettings({ ...section, ...change } as never)).toThrow(
      expect.objectContaining({ code: "ERR_CONSORTIUM_CONFIG_INVALID" }),
    );
  });
});
