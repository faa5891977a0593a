import { SignJWT, base64url, decodeProtectedHeader, exportJWK, generateKeyPair, importJWK } from "jose";
import { keccak256, toUtf8Bytes } from "ethers";

import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import {
  ATTESTATION_TOKEN_TYPE,
  buildJwks,
  createAttestationToken,
  verifyAttestationToken,
  type CreateAttestationTokenInput,
} from "../../runtime/attestation/token.ts";
import type { KeyProvider } from "../../runtime/keys/KeyProvider.ts";
import type { LocalKeyProvider } from "../../runtime/keys/LocalKeyProvider.ts";
import { generateLocalP256, localP256Provider } from "./localKeys.ts";

const h = (s: string): Hex32 => keccak256(toUtf8Bytes(s)) as Hex32;
const issuedAt = new Date("2024-01-05T00:00:02Z");
const input: CreateAttestationTokenInput = {
  issuer: "runtime-test-1",
  cryptletId: h("@acme/eth-usd-median"),
  codeHash: h("code"),
  resultId: h("result"),
  consortiumId: h("consortium"),
  inputHash: h("input"),
  outputHash: h("output"),
  evidenceHash: h("evidence"),
  runtime: { version: "0.1.0", buildHash: h("build") },
  sandbox: {
    engine: "isolated-vm",
    engineVersion: "7.0.1+v8.13.6.233.17-node.53",
    limits: { memoryBytes: 67108864, wallTimeMs: 1000, outputBytes: 65536 },
  },
  now: issuedAt,
  ttlSeconds: 3600,
};
const during = new Date("2024-01-05T00:30:00Z");

let provider: LocalKeyProvider;
let rotated: LocalKeyProvider;
beforeAll(async () => {
  provider = generateLocalP256("attestation").provider;
  rotated = generateLocalP256("attestation").provider;
});

describe("createAttestationToken / verifyAttestationToken", () => {
  it("binds the run: inputHash, outputHash and the consortium (aud) must be the expected ones", async () => {
    const token = await createAttestationToken(provider, input);
    const jwks = await buildJwks([provider]);
    const expected = {
      currentDate: during,
      inputHash: h("input"),
      outputHash: h("output"),
      consortiumId: h("consortium"),
    };
    const { claims } = await verifyAttestationToken(token, jwks, expected);
    expect(claims).toMatchObject({
      inputHash: h("input"),
      outputHash: h("output"),
      aud: h("consortium"),
      inputFormat: 2,
      evidenceHash: h("evidence"),
    });
    for (const field of ["inputHash", "outputHash", "consortiumId"] as const) {
      await expect(verifyAttestationToken(token, jwks, { ...expected, [field]: h("other") })).rejects.toMatchObject({
        code: "ERR_ATTESTATION_CLAIM_MISMATCH",
      });
    }
  });

  it("issues an ES256 JWT through the provider with the documented header and claims", async () => {
    const token = await createAttestationToken(provider, input);
    const key = await provider.getPublicKey();
    expect(decodeProtectedHeader(token)).toEqual({ alg: "ES256", typ: ATTESTATION_TOKEN_TYPE, kid: key.keyId });
    const { claims, kid } = await verifyAttestationToken(token, await buildJwks([provider]), {
      issuer: "runtime-test-1",
      cryptletId: input.cryptletId.toUpperCase().replace("0X", "0x"),
      codeHash: input.codeHash,
      resultId: input.resultId,
      currentDate: during,
    });
    expect(kid).toBe(key.keyId);
    expect(claims).toMatchObject({
      iss: "runtime-test-1",
      sub: input.resultId,
      iat: 1704412802,
      exp: 1704412802 + 3600,
      cryptletId: input.cryptletId,
      runtime: input.runtime,
      sandbox: input.sandbox,
      platform: { type: "software" },
    });
    expect(claims.jti).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("verifies whatever s the provider returns (Key Vault does not normalise P-256 signatures)", async () => {
    const jwks = await buildJwks([provider]);
    let high = 0;
    const halfN = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n / 2n;
    for (let i = 0; i < 12; i++) {
      const token = await createAttestationToken(provider, input);
      const sig = base64url.decode(token.split(".")[2]!);
      if (BigInt(`0x${Buffer.from(sig.slice(32)).toString("hex")}`) > halfN) high++;
      await expect(verifyAttestationToken(token, jwks, { currentDate: during })).resolves.toBeDefined();
    }
    expect(high).toBeGreaterThan(0);
  });

  it("carries Azure Attestation or TEE evidence as given", async () => {
    const platform = {
      type: "azure-attestation" as const,
      issuer: "https://shared.weu.attest.azure.net",
      token: "a.b.c",
    };
    const token = await createAttestationToken(provider, { ...input, platform });
    const { claims } = await verifyAttestationToken(token, await buildJwks([provider]), { currentDate: during });
    expect(claims.platform).toEqual(platform);
  });

  it("says ERR_ATTESTATION_EXPIRED after exp", async () => {
    const token = await createAttestationToken(provider, input);
    await expect(
      verifyAttestationToken(token, await buildJwks([provider]), { currentDate: new Date("2024-01-05T01:00:03Z") }),
    ).rejects.toMatchObject({ code: "ERR_ATTESTATION_EXPIRED", details: { claim: "exp" } });
    await expect(
      verifyAttestationToken(token, await buildJwks([provider]), {
        currentDate: new Date("2024-01-05T01:00:03Z"),
        clockToleranceSeconds: 10,
      }),
    ).resolves.toBeDefined();
  });

  it("says ERR_ATTESTATION_CLAIM_MISMATCH for a wrong codeHash, cryptletId, resultId or issuer", async () => {
    const token = await createAttestationToken(provider, input);
    const jwks = await buildJwks([provider]);
    for (const [field, claim] of [
      ["codeHash", "codeHash"],
      ["cryptletId", "cryptletId"],
      ["resultId", "resultId"],
      ["issuer", "iss"],
    ] as const) {
      await expect(
        verifyAttestationToken(token, jwks, { currentDate: during, [field]: field === "issuer" ? "other" : h("x") }),
      ).rejects.toMatchObject({ code: "ERR_ATTESTATION_CLAIM_MISMATCH", details: expect.objectContaining({ claim }) });
    }
  });

  it("attests the engine and its exact version: compared when expected, required in every token", async () => {
    const jwks = await buildJwks([provider]);
    const token = await createAttestationToken(provider, input);
    const { claims } = await verifyAttestationToken(token, jwks, {
      currentDate: during,
      engine: "isolated-vm",
      engineVersion: "7.0.1+v8.13.6.233.17-node.53",
    });
    expect(claims.sandbox).toEqual(input.sandbox);
    for (const [field, value] of [
      ["engine", "quickjs"],
      ["engineVersion", "7.0.1+v8.13.6.233.10-node.27"],
    ] as const) {
      await expect(verifyAttestationToken(token, jwks, { currentDate: during, [field]: value })).rejects.toMatchObject({
        code: "ERR_ATTESTATION_CLAIM_MISMATCH",
        details: expect.objectContaining({ claim: `sandbox.${field}` }),
      });
    }
    // Validly signed, but without the engine version: not an attestation of what ran.
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    const privateJwk = await exportJWK(privateKey);
    const signer = localP256Provider("no-engine-version", privateJwk);
    const payload = JSON.parse(new TextDecoder().decode(base64url.decode(token.split(".")[1]!))) as {
      sandbox: Record<string, unknown>;
    };
    delete payload.sandbox.engineVersion;
    const withoutVersion = await new SignJWT(payload)
      .setProtectedHeader({ alg: "ES256", typ: ATTESTATION_TOKEN_TYPE, kid: (await signer.getPublicKey()).keyId })
      .sign(await importJWK(privateJwk, "ES256"));
    await expect(
      verifyAttestationToken(withoutVersion, await buildJwks([signer]), { currentDate: during }),
    ).rejects.toMatchObject({
      code: "ERR_ATTESTATION_INVALID",
      message: expect.stringContaining("engineVersion"),
    });
  });

  it("says ERR_ATTESTATION_UNKNOWN_KID for a rotated-out key version, and accepts both during the overlap", async () => {
    const token = await createAttestationToken(rotated, input);
    await expect(
      verifyAttestationToken(token, await buildJwks([provider]), { currentDate: during }),
    ).rejects.toMatchObject({
      code: "ERR_ATTESTATION_UNKNOWN_KID",
      details: { kid: (await rotated.getPublicKey()).keyId },
    });
    const both = await buildJwks([provider, await rotated.getPublicKey(), provider]);
    expect(both.keys).toHaveLength(2);
    await expect(verifyAttestationToken(token, both, { currentDate: during })).resolves.toBeDefined();
  });

  it("a JWKS object reused across verifications answers as a fresh copy of it does, also after it is changed", async () => {
    const byProvider = await createAttestationToken(provider, input);
    const byRotated = await createAttestationToken(rotated, input);
    const outcome = (token: string, jwks: Parameters<typeof verifyAttestationToken>[1]) =>
      verifyAttestationToken(token, jwks, { currentDate: during }).then(
        (v) => `ok ${v.kid}`,
        (e: { code?: string }) => String(e.code),
      );
    const jwks = await buildJwks([provider]);
    const rotatedKey = (await buildJwks([rotated])).keys[0]!;
    const states: (() => void)[] = [
      () => undefined,
      () => undefined, // the same object again, unchanged
      () => jwks.keys.push(rotatedKey),
      () => jwks.keys.shift(),
      // the provider's kid with the rotated key's material: a signature by the provider no longer verifies
      () => jwks.keys.push({ ...rotatedKey, kid: byProviderKid }),
    ];
    const byProviderKid = decodeProtectedHeader(byProvider).kid!;
    const seen: string[][] = [];
    for (const change of states) {
      change();
      const reused = [await outcome(byProvider, jwks), await outcome(byRotated, jwks)];
      expect(reused).toEqual([
        await outcome(byProvider, structuredClone(jwks)),
        await outcome(byRotated, structuredClone(jwks)),
      ]);
      seen.push(reused);
    }
    expect(seen.map((pair) => pair.map((o) => o.split(" ")[0]))).toEqual([
      ["ok", "ERR_ATTESTATION_UNKNOWN_KID"],
      ["ok", "ERR_ATTESTATION_UNKNOWN_KID"],
      ["ok", "ok"],
      ["ERR_ATTESTATION_UNKNOWN_KID", "ok"],
      ["ERR_ATTESTATION_INVALID", "ok"],
    ]);
  });

  it("says ERR_ATTESTATION_INVALID for a tampered token, a wrong typ, a non-ES256 alg and garbage", async () => {
    const jwks = await buildJwks([provider]);
    const token = await createAttestationToken(provider, input);
    const [header, payload, signature] = token.split(".");
    const claims = JSON.parse(new TextDecoder().decode(base64url.decode(payload!))) as Record<string, unknown>;
    const forged = base64url.encode(JSON.stringify({ ...claims, codeHash: h("evil") }));
    await expect(
      verifyAttestationToken(`${header}.${forged}.${signature}`, jwks, { currentDate: during }),
    ).rejects.toMatchObject({
      code: "ERR_ATTESTATION_INVALID",
      details: { reason: "bad signature" },
    });
    const kid = (await provider.getPublicKey()).keyId;
    const hs = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256", typ: ATTESTATION_TOKEN_TYPE, kid })
      .sign(new Uint8Array(32));
    await expect(verifyAttestationToken(hs, jwks, { currentDate: during })).rejects.toMatchObject({
      code: "ERR_ATTESTATION_INVALID",
    });
    // Same key, valid signature, but typ "JWT": not an attestation token (explicit typing, RFC 8725 §3.11).
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    const privateJwk = await exportJWK(privateKey);
    const sameKey = localP256Provider("typed", privateJwk);
    const plainJwt = await new SignJWT(claims)
      .setProtectedHeader({ alg: "ES256", typ: "JWT", kid: (await sameKey.getPublicKey()).keyId })
      .sign(await importJWK(privateJwk, "ES256"));
    await expect(
      verifyAttestationToken(await createAttestationToken(sameKey, input), await buildJwks([sameKey]), {
        currentDate: during,
      }),
    ).resolves.toBeDefined();
    await expect(
      verifyAttestationToken(plainJwt, await buildJwks([sameKey]), { currentDate: during }),
    ).rejects.toMatchObject({
      code: "ERR_ATTESTATION_INVALID",
    });
    await expect(verifyAttestationToken("not a token", jwks)).rejects.toMatchObject({
      code: "ERR_ATTESTATION_INVALID",
    });
  });

  it("refuses a non-P-256 key and a provider that answers DER instead of r||s", async () => {
    const k1: KeyProvider = {
      kind: "local",
      getPublicKey: () =>
        Promise.resolve({
          keyId: "local:k1/1",
          name: "k1",
          version: "1",
          jwk: { kty: "EC", crv: "secp256k1", x: "a", y: "b" },
        }),
      sign: () => Promise.reject(new Error("unreachable")),
      wrapKey: (key, alg) => provider.wrapKey(key, alg),
      unwrapKey: (wrapped) => provider.unwrapKey(wrapped),
    };
    await expect(createAttestationToken(k1, input)).rejects.toMatchObject({ code: "ERR_ATTESTATION_SIGNING" });
    const der: KeyProvider = {
      kind: "local",
      getPublicKey: () => provider.getPublicKey(),
      sign: async (digest, alg) => ({ ...(await provider.sign(digest, alg)), signature: new Uint8Array(71) }),
      wrapKey: (key, alg) => provider.wrapKey(key, alg),
      unwrapKey: (wrapped) => provider.unwrapKey(wrapped),
    };
    await expect(createAttestationToken(der, input)).rejects.toMatchObject({ code: "ERR_ATTESTATION_SIGNING" });
  });
});

describe("buildJwks", () => {
  it("lists public members only, with kid (key id with version), alg and use", async () => {
    const jwks = await buildJwks([provider]);
    const info = await provider.getPublicKey();
    expect(jwks.keys).toEqual([
      { kty: "EC", crv: "P-256", x: info.jwk.x, y: info.jwk.y, kid: info.keyId, alg: "ES256", use: "sig" },
    ]);
  });
});
