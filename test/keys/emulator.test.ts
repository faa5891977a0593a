/**
 * The Key Vault emulator through the real SDK (`@azure/keyvault-keys` with `DefaultAzureCredential`) and through raw
 * HTTPS for the protocol details the SDK hides (challenge, status codes, error bodies).
 */
import { constants, publicEncrypt, createPublicKey, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { DefaultAzureCredential } from "@azure/identity";
import { CryptographyClient, KeyClient } from "@azure/keyvault-keys";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { verifyDigest } from "../../runtime/keys/digestSignature.ts";
import { ALL_KEY_PERMISSIONS, startKeyVaultEmulator } from "../../runtime/keys/emulator/startKeyVaultEmulator.ts";
import { fetchToken, rawRequest, startTestVault } from "../support/keyvault.ts";
import type { TestVault } from "../support/keyvault.ts";

const API = "api-version=2025-07-01";
const HALF_N = secp256k1.CURVE.n / 2n;

let vault: TestVault;
let client: KeyClient;
let credential: DefaultAzureCredential;
let token: string;

beforeAll(async () => {
  vault = await startTestVault();
  credential = new DefaultAzureCredential();
  client = new KeyClient(vault.vaultUrl, credential, vault.clientOptions);
  token = (await credential.getToken("https://vault.azure.net/.default")).token;
});
afterAll(async () => {
  await vault.close();
});

const digest = (): Uint8Array => new Uint8Array(randomBytes(32));

describe("keys through the real SDK", () => {
  it.each([
    ["ES256K", () => client.createEcKey("ec-k", { curve: "P-256K" }), "secp256k1"],
    ["ES256", () => client.createEcKey("ec-p", { curve: "P-256" }), "P-256"],
    ["RS256", () => client.createRsaKey("rsa-2048", { keySize: 2048 }), undefined],
    ["PS256", () => client.createRsaKey("rsa-3072", { keySize: 3072 }), undefined],
  ] as const)("signs %s over a digest, verifiable with the public key and by the vault", async (alg, create, crv) => {
    const key = await create();
    expect(key.properties.version).toMatch(/^[0-9a-f]{32}$/);
    const crypto = new CryptographyClient(key.id as string, credential, vault.clientOptions);
    const d = digest();
    const signed = await crypto.sign(alg, d);
    expect(signed.keyID).toBe(key.id);
    const jwk = { ...key.key, crv: crv === "secp256k1" ? "P-256K" : key.key?.crv } as Record<string, unknown>;
    const publicJwk = {
      kty: jwk.kty as string,
      crv: jwk.crv as string | undefined,
      x: jwk.x === undefined ? undefined : Buffer.from(jwk.x as Uint8Array).toString("base64url"),
      y: jwk.y === undefined ? undefined : Buffer.from(jwk.y as Uint8Array).toString("base64url"),
      n: jwk.n === undefined ? undefined : Buffer.from(jwk.n as Uint8Array).toString("base64url"),
      e: jwk.e === undefined ? undefined : Buffer.from(jwk.e as Uint8Array).toString("base64url"),
    };
    expect(verifyDigest(publicJwk, alg, d, signed.result)).toBe(true);
    expect((await crypto.verify(alg, d, signed.result)).result).toBe(true);
    const other = digest();
    expect((await crypto.verify(alg, other, signed.result)).result).toBe(false);
    expect(signed.result.length).toBe(alg.startsWith("E") ? 64 : alg === "RS256" ? 256 : 384);
  });

  it("signs ES256K as raw r||s with s not normalised (high-s occurs) and a fresh nonce each time", async () => {
    const key = await client.createEcKey("high-s", { curve: "P-256K" });
    const crypto = new CryptographyClient(key.id as string, credential, vault.clientOptions);
    const d = digest();
    const signatures = await Promise.all(Array.from({ length: 16 }, () => crypto.sign("ES256K", d)));
    const sValues = signatures.map((s) => BigInt(`0x${Buffer.from(s.result.subarray(32)).toString("hex")}`));
    expect(sValues.some((s) => s > HALF_N)).toBe(true);
    expect(new Set(signatures.map((s) => Buffer.from(s.result).toString("hex"))).size).toBe(16);
  });

  it("rotates to a new version, serves latest on an empty version segment, and pages the versions", async () => {
    const first = await client.createEcKey("rotating", { curve: "P-256K" });
    const second = await client.rotateKey("rotating");
    expect(second.properties.version).not.toBe(first.properties.version);
    expect((await client.getKey("rotating")).properties.version).toBe(second.properties.version);
    expect((await client.getKey("rotating", { version: first.properties.version as string })).key?.x).toEqual(
      first.key?.x,
    );
    const raw = await rawRequest(vault, "GET", `/keys/rotating/?${API}`, { token });
    expect((raw.body as { key: { kid: string } }).key.kid).toBe(second.id);
    const pages: string[][] = [];
    for await (const page of client.listPropertiesOfKeyVersions("rotating").byPage({ maxPageSize: 1 })) {
      pages.push(page.map((p) => p.version as string));
    }
    expect(pages).toEqual([[first.properties.version], [second.properties.version]]);
    const listed = await rawRequest(vault, "GET", `/keys/rotating/versions?${API}&maxresults=1`, { token });
    expect((listed.body as { nextLink: string }).nextLink).toMatch(
      /^https:\/\/127\.0\.0\.1:\d+\/keys\/rotating\/versions\?api-version=2025-07-01&\$skiptoken=/,
    );
  });

  it("wraps and unwraps with RSA-OAEP-256, interoperable with Node's OAEP", async () => {
    const key = await client.createRsaKey("wrapper");
    const crypto = new CryptographyClient(key.id as string, credential, vault.clientOptions);
    const cek = randomBytes(32);
    const wrapped = await crypto.wrapKey("RSA-OAEP-256", cek);
    expect(Buffer.from((await crypto.unwrapKey("RSA-OAEP-256", wrapped.result)).result)).toEqual(cek);
    const jwk = {
      kty: "RSA",
      n: Buffer.from(key.key?.n as Uint8Array).toString("base64url"),
      e: Buffer.from(key.key?.e as Uint8Array).toString("base64url"),
    };
    const local = publicEncrypt(
      {
        key: createPublicKey({ key: jwk, format: "jwk" }),
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: "sha256",
      },
      cek,
    );
    expect(Buffer.from((await crypto.unwrapKey("RSA-OAEP-256", local)).result)).toEqual(cek);
  });

  it("deletes (deleted-key shape), refuses the name while deleted (409), recovers and purges", async () => {
    await client.createEcKey("doomed", { curve: "P-256" });
    const deleted = await rawRequest(vault, "DELETE", `/keys/doomed?${API}`, { token });
    expect(deleted.status).toBe(200);
    expect(deleted.body).toMatchObject({
      recoveryId: expect.stringMatching(/\/deletedkeys\/doomed$/),
      deletedDate: expect.any(Number),
      key: { kty: "EC" },
    });
    expect((await rawRequest(vault, "GET", `/keys/doomed?${API}`, { token })).status).toBe(404);
    const again = await rawRequest(vault, "POST", `/keys/doomed/create?${API}`, {
      token,
      body: { kty: "EC", crv: "P-256" },
    });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({
      error: { code: "Conflict", innererror: { code: "ObjectIsDeletedButRecoverable" } },
    });
    expect((await rawRequest(vault, "POST", `/deletedkeys/doomed/recover?${API}`, { token })).status).toBe(200);
    expect((await client.getKey("doomed")).name).toBe("doomed");
    const poller = await client.beginDeleteKey("doomed");
    await poller.pollUntilDone();
    await client.purgeDeletedKey("doomed");
    expect((await rawRequest(vault, "GET", `/deletedkeys/doomed?${API}`, { token })).status).toBe(404);
  });

  it("builds kid from the request's Host header, port included", async () => {
    await client.createEcKey("hosted", { curve: "P-256" });
    const res = await rawRequest(vault, "GET", `/keys/hosted?${API}`, {
      token,
      hostHeader: "myvault.vault.azure.net:8443",
    });
    expect((res.body as { key: { kid: string } }).key.kid).toMatch(
      /^https:\/\/myvault\.vault\.azure\.net:8443\/keys\/hosted\/[0-9a-f]{32}$/,
    );
  });
});

describe("protocol errors as the real service answers them", () => {
  const errorOf = (body: unknown): string => (body as { error: { code: string } }).error.code;

  it("answers the bearer challenge and refuses unauthenticated, forged and wrong-audience tokens", async () => {
    for (const bad of [undefined, "not-a-jwt", `${token.slice(0, -4)}AAAA`]) {
      const res = await rawRequest(vault, "GET", `/keys?${API}`, bad === undefined ? {} : { token: bad });
      expect(res.status).toBe(401);
      expect(errorOf(res.body)).toBe("Unauthorized");
      expect(res.headers["www-authenticate"]).toBe(
        `Bearer authorization="https://login.microsoftonline.com/${vault.tenantId}", resource="https://vault.azure.net"`,
      );
    }
    const management = await fetchToken(vault, "https://management.azure.com");
    expect(management.status).toBe(200);
    const res = await rawRequest(vault, "GET", `/keys?${API}`, { token: management.body.access_token as string });
    expect(res.status).toBe(401);
  });

  it("issues managed-identity tokens only with the right X-IDENTITY-HEADER, in App Service's shape", async () => {
    const ok = await fetchToken(vault);
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({
      access_token: expect.any(String),
      expires_on: expect.stringMatching(/^\d{10}$/),
      resource: "https://vault.azure.net",
      token_type: "Bearer",
      client_id: vault.clientId,
    });
    expect((await fetchToken(vault, "https://vault.azure.net", "wrong")).status).toBe(401);
  });

  it.each([
    ["a wrong api-version", "GET", `/keys?api-version=7.4`, undefined, 400, "BadParameter"],
    ["a missing api-version", "GET", `/keys`, undefined, 400, "BadParameter"],
    ["an unknown key", "GET", `/keys/missing?${API}`, undefined, 404, "KeyNotFound"],
    [
      "an unknown version",
      "GET",
      `/keys/err-ec/0123456789abcdef0123456789abcdef?${API}`,
      undefined,
      404,
      "KeyNotFound",
    ],
    ["an invalid key name", "GET", `/keys/bad_name?${API}`, undefined, 400, "BadParameter"],
    ["an unsupported curve", "POST", `/keys/x/create?${API}`, { kty: "EC", crv: "P-384" }, 400, "BadParameter"],
    ["an unsupported RSA size", "POST", `/keys/x/create?${API}`, { kty: "RSA", key_size: 1024 }, 400, "BadParameter"],
    [
      "an algorithm the key cannot do",
      "POST",
      `/keys/err-ec//sign?${API}`,
      { alg: "ES256", value: Buffer.alloc(32).toString("base64url") },
      400,
      "BadParameter",
    ],
    [
      "an unknown algorithm",
      "POST",
      `/keys/err-ec//sign?${API}`,
      { alg: "ES999", value: Buffer.alloc(32).toString("base64url") },
      400,
      "BadParameter",
    ],
    [
      "a digest of the wrong length",
      "POST",
      `/keys/err-ec//sign?${API}`,
      { alg: "ES256K", value: Buffer.alloc(31).toString("base64url") },
      400,
      "BadParameter",
    ],
    ["a body that is not JSON", "POST", `/keys/x/create?${API}`, "[]", 400, "BadParameter"],
  ])("answers %s with the service's status and code", async (_what, method, p, body, status, code) => {
    await client.createEcKey("err-ec", { curve: "P-256K" });
    const res = await rawRequest(vault, method, p, { token, body });
    expect(res.status).toBe(status);
    expect(errorOf(res.body)).toBe(code);
    expect(typeof (res.body as { error: { message: string } }).error.message).toBe("string");
  });

  it("answers 403 Forbidden when the access policy lacks a permission or the key is disabled", async () => {
    const key = await client.createEcKey("guarded", { curve: "P-256K" });
    const sign = (): Promise<{ status: number; body: unknown }> =>
      rawRequest(vault, "POST", `/keys/guarded/${key.properties.version}/sign?${API}`, {
        token,
        body: { alg: "ES256K", value: Buffer.alloc(32, 1).toString("base64url") },
      });
    vault.setPermissions(["get", "list"]);
    try {
      const denied = await sign();
      expect(denied.status).toBe(403);
      expect(errorOf(denied.body)).toBe("Forbidden");
    } finally {
      vault.setPermissions(ALL_KEY_PERMISSIONS);
    }
    expect((await sign()).status).toBe(200);
    await client.updateKeyProperties("guarded", key.properties.version as string, { enabled: false });
    const disabled = await sign();
    expect(disabled.status).toBe(403);
    expect(errorOf(disabled.body)).toBe("Forbidden");
  });

  it("answers injected throttling with 429, code Throttled and Retry-After", async () => {
    vault.injectFault({ status: 429, retryAfterSeconds: 2 });
    const res = await rawRequest(vault, "GET", `/keys?${API}`, { token });
    expect(res.status).toBe(429);
    expect(errorOf(res.body)).toBe("Throttled");
    expect(res.headers["retry-after"]).toBe("2");
    expect((await rawRequest(vault, "GET", `/keys?${API}`, { token })).status).toBe(200);
  });
});

describe("persistence", () => {
  it("keeps keys, versions and its token secret in a 0600 file between runs", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "kv-emulator-"));
    const file = path.join(dir, "vault.json");
    try {
      const first = await startKeyVaultEmulator({ persistPath: file });
      const issued = await fetchToken(first);
      const accessToken = issued.body.access_token as string;
      const created = await rawRequest(first, "POST", `/keys/kept/create?${API}`, {
        token: accessToken,
        body: { kty: "EC", crv: "P-256K" },
      });
      await rawRequest(first, "POST", `/keys/kept/rotate?${API}`, { token: accessToken });
      await first.close();
      expect(statSync(file).mode & 0o777).toBe(0o600);

      const second = await startKeyVaultEmulator({ persistPath: file });
      try {
        const versions = await rawRequest(second, "GET", `/keys/kept/versions?${API}`, { token: accessToken });
        expect(versions.status).toBe(200);
        const kids = (versions.body as { value: { kid: string }[] }).value.map((v) => v.kid.split("/").pop());
        expect(kids).toHaveLength(2);
        expect(kids[0]).toBe((created.body as { key: { kid: string } }).key.kid.split("/").pop());
        const d = Buffer.alloc(32, 7).toString("base64url");
        const signed = await rawRequest(second, "POST", `/keys/kept/${kids[0]}/sign?${API}`, {
          token: accessToken,
          body: { alg: "ES256K", value: d },
        });
        expect(signed.status).toBe(200);
      } finally {
        await second.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
