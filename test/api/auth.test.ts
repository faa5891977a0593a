/**
 * Authentication and authorisation through real JWT verification: tokens from the local ES256 issuer, an
 * Entra ID-shaped issuer (tenant issuer URL, `tid`, app roles mapped with `roleMap`) whose keys are fetched by
 * OIDC discovery from a real HTTP server, and every way a token can be refused.
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";

import express from "express";
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from "jose";

import { BearerAuthenticator } from "../../runtime/api/auth.ts";
import { LocalIssuer } from "../../runtime/api/localIssuer.ts";
import { isCryptletError } from "../../runtime/errors.ts";
import { closedPort, request, startLightApi, type LightApi, type TestResponse } from "./helpers.ts";

function expectAuthProblem(res: TestResponse, status: number, code: string, reason?: string): void {
  expect({ status: res.status, code: res.body?.code }).toEqual({ status, code });
  expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  if (reason !== undefined) expect(res.body.details.reason).toBe(reason);
  if (status === 401) expect(res.headers.get("www-authenticate")).toMatch(/^Bearer error="invalid_token"/);
}

describe("API auth with the local issuer", () => {
  let f: LightApi;

  beforeAll(async () => {
    f = await startLightApi();
  });
  afterAll(async () => {
    await f?.close();
  });

  test("no token, a non-Bearer header and a non-JWT are 401", async () => {
    expectAuthProblem(await request(f.url, "GET", "/v1/packages"), 401, "ERR_AUTH_UNAUTHENTICATED", "missing");
    expectAuthProblem(
      await request(f.url, "GET", "/v1/packages", { headers: { authorization: "Basic dXNlcjpwYXNz" } }),
      401,
      "ERR_AUTH_UNAUTHENTICATED",
      "malformed",
    );
    expectAuthProblem(
      await request(f.url, "GET", "/v1/packages", { token: "not-a-jwt" }),
      401,
      "ERR_AUTH_UNAUTHENTICATED",
      "malformed",
    );
  });

  test("expired, wrong audience, wrong issuer, foreign key are 401 with the reason", async () => {
    const cases: [string, string][] = [
      [await f.issuer.mint({ roles: ["auditor"], ttlSeconds: -3600 }), "expired"],
      [await f.issuer.mint({ roles: ["auditor"], audience: "another-api" }), "wrong-audience"],
      [await f.issuer.mint({ roles: ["auditor"], issuer: "https://evil.example" }), "wrong-issuer"],
    ];
    const stranger = await LocalIssuer.create({ issuer: f.issuer.issuer, audience: f.issuer.audience });
    cases.push([await stranger.mint({ roles: ["admin"] }), "bad-signature"]);
    for (const [token, reason] of cases) {
      expectAuthProblem(
        await request(f.url, "GET", "/v1/packages", { token }),
        401,
        "ERR_AUTH_UNAUTHENTICATED",
        reason,
      );
    }
    // A tampered payload (roles raised to admin) fails the signature.
    const [h, p, s] = (await f.issuer.mint({ roles: ["auditor"] })).split(".");
    const claims = JSON.parse(Buffer.from(p!, "base64url").toString());
    claims.roles = ["admin"];
    const tampered = `${h}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${s}`;
    expectAuthProblem(
      await request(f.url, "GET", "/v1/dead-letters", { token: tampered }),
      401,
      "ERR_AUTH_UNAUTHENTICATED",
      "bad-signature",
    );
  });

  test("roles map to endpoints: wrong role is 403, admin passes everywhere", async () => {
    const matrix: [string, string, string, unknown, string[], string[]][] = [
      // method, path, description, body, allowed roles, refused roles
      [
        "POST",
        "/v1/packages",
        "deploy",
        { manifest: {}, files: { a: "" }, signature: "a.b.c" },
        ["publisher"],
        ["operator", "auditor"],
      ],
      ["POST", "/v1/cryptlets/demo/invoke", "invoke", { a: 1 }, ["operator"], ["publisher", "auditor"]],
      ["GET", `/v1/runs/0x${"11".repeat(32)}`, "run", undefined, ["auditor", "operator"], ["publisher"]],
      ["GET", `/v1/results/0x${"11".repeat(32)}/bundle`, "bundle", undefined, ["auditor", "operator"], ["publisher"]],
      ["POST", "/v1/verify", "verify", { bundle: {} }, ["auditor", "operator"], ["publisher"]],
      ["GET", "/v1/dead-letters", "dead letters", undefined, [], ["publisher", "operator", "auditor"]],
    ];
    for (const [method, path, , json, allowed, refused] of matrix) {
      for (const role of refused) {
        const res = await request(f.url, method, path, { token: await f.token(role), json });
        expectAuthProblem(res, 403, "ERR_AUTH_FORBIDDEN");
        expect(res.body.details.held).toEqual([role]);
      }
      for (const role of [...allowed, "admin"]) {
        const res = await request(f.url, method, path, { token: await f.token(role), json });
        expect([res.status, role, path]).not.toEqual([403, role, path]);
        expect(res.status).not.toBe(401);
        expect(res.status).toBeLessThan(500);
      }
    }
    // A token with no known role at all.
    expectAuthProblem(
      await request(f.url, "GET", "/v1/packages", { token: await f.issuer.mint({ roles: ["Reader"] }) }),
      403,
      "ERR_AUTH_FORBIDDEN",
    );
  });

  test("public endpoints need no token", async () => {
    for (const path of ["/health", "/ready", "/metrics", "/openapi.json", "/.well-known/jwks.json"]) {
      expect((await request(f.url, "GET", path)).status).toBe(200);
    }
  });

  test("the local issuer serves its discovery document and JWKS", async () => {
    const config = await request(f.url, "GET", "/local-issuer/.well-known/openid-configuration");
    expect(config.body.issuer).toBe(f.issuer.issuer);
    expect(config.body.jwks_uri).toBe(`${f.url}/local-issuer/jwks.json`);
    const jwks = await request(f.url, "GET", "/local-issuer/jwks.json");
    expect(jwks.body).toEqual(f.issuer.jwks());
    expect(jwks.body.keys[0].d).toBeUndefined();
  });
});

describe("API auth with an Entra ID-shaped issuer found by OIDC discovery", () => {
  const tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
  let idp: Server;
  let issuerUrl: string;
  let signingKey: CryptoKey;
  let f: LightApi;

  beforeAll(async () => {
    // A real HTTP identity provider: /{tenant}/v2.0/.well-known/openid-configuration and its keys (RS256, as Entra ID).
    const pair = await generateKeyPair("RS256", { extractable: true });
    signingKey = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: "entra-key-1", use: "sig", alg: "RS256" };
    const app = express();
    app.get(`/${tenant}/v2.0/.well-known/openid-configuration`, (_req, res) => {
      res.json({
        issuer: issuerUrl,
        jwks_uri: `${issuerUrl.replace(`/${tenant}/v2.0`, "")}/${tenant}/discovery/v2.0/keys`,
      });
    });
    app.get(`/${tenant}/discovery/v2.0/keys`, (_req, res) => {
      res.json({ keys: [jwk] });
    });
    idp = await new Promise((resolve) => {
      const s = app.listen(0, "127.0.0.1", () => resolve(s));
    });
    issuerUrl = `http://127.0.0.1:${(idp.address() as AddressInfo).port}/${tenant}/v2.0`;
    f = await startLightApi({
      auth: {
        issuer: issuerUrl,
        audience: "api://cryptlet-runtime",
        roleMap: { "Cryptlet.Auditor": "auditor", "Cryptlet.Admin": "admin" },
        allowedTenants: [tenant],
      },
    });
  });

  afterAll(async () => {
    await f?.close();
    await new Promise((resolve) => idp?.close(resolve));
  });

  const entraToken = (claims: Record<string, unknown>, audience = "api://cryptlet-runtime") =>
    new SignJWT({ tid: tenant, ver: "2.0", azp: "client-app", ...claims })
      .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: "entra-key-1" })
      .setIssuer(issuerUrl)
      .setAudience(audience)
      .setSubject("8a1e3f4b-user-object-id")
      .setIssuedAt()
      .setExpirationTime("10m")
      .sign(signingKey);

  test("an app-role token is accepted; roles are mapped; other tenants and unmapped roles are refused", async () => {
    const ok = await request(f.url, "GET", "/v1/packages", {
      token: await entraToken({ roles: ["Cryptlet.Auditor"] }),
    });
    expect(ok.status).toBe(200);
    expectAuthProblem(
      await request(f.url, "GET", "/v1/packages", { token: await entraToken({ roles: ["auditor"] }) }),
      403,
      "ERR_AUTH_FORBIDDEN",
    );
    expectAuthProblem(
      await request(f.url, "GET", "/v1/packages", {
        token: await entraToken({ roles: ["Cryptlet.Auditor"], tid: "00000000-0000-0000-0000-000000000000" }),
      }),
      401,
      "ERR_AUTH_UNAUTHENTICATED",
      "wrong-tenant",
    );
    expectAuthProblem(
      await request(f.url, "GET", "/v1/packages", {
        token: await entraToken({ roles: ["Cryptlet.Auditor"] }, "api://another-app"),
      }),
      401,
      "ERR_AUTH_UNAUTHENTICATED",
      "wrong-audience",
    );
    expectAuthProblem(
      await request(f.url, "GET", "/v1/packages", { token: await entraToken({ roles: "Cryptlet.Auditor" }) }),
      401,
      "ERR_AUTH_UNAUTHENTICATED",
      "invalid-claims",
    );
    const admin = await request(f.url, "GET", "/v1/dead-letters", {
      token: await entraToken({ roles: ["Cryptlet.Admin"] }),
    });
    expect(admin.status).toBe(200);
  });

  test("an unreachable issuer is 503 (retryable), not 401", async () => {
    const deadUrl = `http://127.0.0.1:${await closedPort()}/${tenant}/v2.0`;
    const auth = new BearerAuthenticator({ issuer: deadUrl, audience: "api://cryptlet-runtime", fetchTimeoutMs: 500 });
    const token = await entraToken({ roles: ["Cryptlet.Auditor"] });
    const error = await auth.authenticate(`Bearer ${token}`).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isCryptletError(error, "ERR_AUTH_UNAUTHENTICATED")).toBe(true);
    expect((error as { retryable: boolean }).retryable).toBe(true);
    const down = await startLightApi({ auth });
    try {
      const res = await request(down.url, "GET", "/v1/packages", { token });
      expectAuthProblem(res, 503, "ERR_AUTH_UNAUTHENTICATED", "issuer-unavailable");
    } finally {
      await down.close();
    }
  });
});
