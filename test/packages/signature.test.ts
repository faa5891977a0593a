import { execFileSync } from "node:child_process";
import { CompactSign, SignJWT, base64url, decodeJwt, decodeProtectedHeader } from "jose";
import { isCryptletError } from "../../runtime/errors.ts";
import { assembleBuiltPackage } from "../../runtime/packages/builtPackage.ts";
import type { BuiltPackage } from "../../runtime/packages/builtPackage.ts";
import { PUBLISH_JWT_TYPE, signPackage, verifyPackageSignature } from "../../runtime/packages/signature.ts";
import { manifestOf, publisherKey } from "./helpers.ts";

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

function demoPackage(overrides: Record<string, unknown> = {}, bundle = "var cryptlet = {};\n"): BuiltPackage {
  return assembleBuiltPackage(manifestOf(overrides), { "bundle.js": bytes(bundle) });
}

async function reasonOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (e) {
    expect(isCryptletError(e, "ERR_PUBLISHER_SIGNATURE_INVALID")).toBe(true);
    return (e as { details: { reason: string } }).details.reason;
  }
  throw new Error("expected ERR_PUBLISHER_SIGNATURE_INVALID");
}

describe("publisher signature", () => {
  let alice: Awaited<ReturnType<typeof publisherKey>>;
  let bob: Awaited<ReturnType<typeof publisherKey>>;
  beforeAll(async () => {
    alice = await publisherKey("alice-2026");
    bob = await publisherKey("bob-2026");
  });

  it("is a compact ES256 JWS with typ cryptlet-publish+jwt over {cryptletId, name, version, codeHash}", async () => {
    const built = demoPackage();
    const jws = await signPackage(built, alice.privateKey, "alice-2026");
    expect(decodeProtectedHeader(jws)).toEqual({ alg: "ES256", typ: PUBLISH_JWT_TYPE, kid: "alice-2026" });
    const payload = decodeJwt(jws);
    expect(payload).toEqual({
      cryptletId: built.cryptletId,
      name: "@test/demo",
      version: "1.0.0",
      codeHash: built.codeHash,
      iat: expect.any(Number),
    });
    const verified = await verifyPackageSignature(built, jws, [bob.publicJwk, alice.publicJwk]);
    expect(verified.kid).toBe("alice-2026");
    expect(verified.claims.codeHash).toBe(built.codeHash);
    expect(verified.issuedAt).toBe(payload.iat);
    // A JWKS works as well as an array.
    await expect(verifyPackageSignature(built, jws, { keys: [alice.publicJwk] })).resolves.toMatchObject({
      kid: "alice-2026",
    });
  });

  it("recomputes codeHash from the bytes: a package with other bytes is refused", async () => {
    const built = demoPackage();
    const jws = await signPackage(built, alice.privateKey, "alice-2026");
    const other = demoPackage({}, "var cryptlet = { evil: true };\n");
    expect(await reasonOf(verifyPackageSignature(other, jws, [alice.publicJwk]))).toBe("codehash-mismatch");
    // A lying codeHash field on the package object changes nothing.
    const liar = { ...other, codeHash: built.codeHash };
    expect(await reasonOf(verifyPackageSignature(liar, jws, [alice.publicJwk]))).toBe("codehash-mismatch");
  });

  it("refuses another version or name", async () => {
    const jws = await signPackage(demoPackage(), alice.privateKey, "alice-2026");
    expect(await reasonOf(verifyPackageSignature(demoPackage({ version: "1.0.1" }), jws, [alice.publicJwk]))).toBe(
      "claims-mismatch",
    );
    expect(await reasonOf(verifyPackageSignature(demoPackage({ name: "@test/other" }), jws, [alice.publicJwk]))).toBe(
      "claims-mismatch",
    );
  });

  it("refuses a tampered payload or signature", async () => {
    const built = demoPackage();
    const jws = await signPackage(built, alice.privateKey, "alice-2026");
    const [header, payload, signature] = jws.split(".") as [string, string, string];
    const claims = JSON.parse(new TextDecoder().decode(base64url.decode(payload))) as Record<string, unknown>;
    const forgedPayload = base64url.encode(JSON.stringify({ ...claims, version: "9.9.9" }));
    expect(
      await reasonOf(verifyPackageSignature(built, `${header}.${forgedPayload}.${signature}`, [alice.publicJwk])),
    ).toBe("bad-signature");
    const sig = base64url.decode(signature);
    sig[10] = (sig[10] ?? 0) ^ 1;
    expect(
      await reasonOf(verifyPackageSignature(built, `${header}.${payload}.${base64url.encode(sig)}`, [alice.publicJwk])),
    ).toBe("bad-signature");
  });

  it("refuses the wrong key and an unknown kid", async () => {
    const built = demoPackage();
    // Signed by Bob's key but claiming Alice's kid.
    const forged = await signPackage(built, bob.privateKey, "alice-2026");
    expect(await reasonOf(verifyPackageSignature(built, forged, [alice.publicJwk, bob.publicJwk]))).toBe(
      "bad-signature",
    );
    const byBob = await signPackage(built, bob.privateKey, "bob-2026");
    expect(await reasonOf(verifyPackageSignature(built, byBob, [alice.publicJwk]))).toBe("unknown-kid");
    expect(await reasonOf(verifyPackageSignature(built, byBob, []))).toBe("unknown-kid");
  });

  it("refuses other algorithms, types, a missing kid and garbage", async () => {
    const built = demoPackage();
    const claims = { cryptletId: built.cryptletId, name: "@test/demo", version: "1.0.0", codeHash: built.codeHash };
    const hs = await new SignJWT(claims)
      .setProtectedHeader({ alg: "HS256", typ: PUBLISH_JWT_TYPE, kid: "alice-2026" })
      .sign(bytes("a shared secret that is long enough!"));
    expect(await reasonOf(verifyPackageSignature(built, hs, [alice.publicJwk]))).toBe("malformed");
    const wrongTyp = await new SignJWT(claims)
      .setProtectedHeader({ alg: "ES256", typ: "JWT", kid: "alice-2026" })
      .sign(alice.privateKey);
    expect(await reasonOf(verifyPackageSignature(built, wrongTyp, [alice.publicJwk]))).toBe("malformed");
    const noKid = await new SignJWT(claims)
      .setProtectedHeader({ alg: "ES256", typ: PUBLISH_JWT_TYPE })
      .sign(alice.privateKey);
    expect(await reasonOf(verifyPackageSignature(built, noKid, [alice.publicJwk]))).toBe("malformed");
    const notJson = await new CompactSign(bytes("not json"))
      .setProtectedHeader({ alg: "ES256", typ: PUBLISH_JWT_TYPE, kid: "alice-2026" })
      .sign(alice.privateKey);
    expect(await reasonOf(verifyPackageSignature(built, notJson, [alice.publicJwk]))).toBe("malformed");
    const none = `${base64url.encode(JSON.stringify({ alg: "none", typ: PUBLISH_JWT_TYPE, kid: "alice-2026" }))}.${base64url.encode(JSON.stringify(claims))}.`;
    expect(await reasonOf(verifyPackageSignature(built, none, [alice.publicJwk]))).toBe("malformed");
    expect(await reasonOf(verifyPackageSignature(built, "a.b", [alice.publicJwk]))).toBe("malformed");
    expect(await reasonOf(verifyPackageSignature(built, "@@@.###.$$$", [alice.publicJwk]))).toBe("malformed");
  });

  it("interoperates with python-jwcrypto in both directions", async () => {
    const built = demoPackage();
    const ours = await signPackage(built, alice.privateKey, "alice-2026");
    const script = `
import json, sys
from jwcrypto import jwk, jws
data = json.load(sys.stdin)
pub = jwk.JWK(**data["publicJwk"])
token = jws.JWS()
token.deserialize(data["ours"])
token.verify(pub)
print(json.dumps({"verified": json.loads(token.payload)}))
key = jwk.JWK.generate(kty="EC", crv="P-256", kid="py-1")
signed = jws.JWS(json.dumps(data["claims"]).encode())
signed.add_signature(key, None, json.dumps({"alg": "ES256", "typ": "${PUBLISH_JWT_TYPE}", "kid": "py-1"}))
print(json.dumps({"theirs": signed.serialize(compact=True), "publicJwk": json.loads(key.export_public())}))
`;
    const claims = { cryptletId: built.cryptletId, name: "@test/demo", version: "1.0.0", codeHash: built.codeHash };
    const lines = execFileSync("/usr/bin/python3", ["-c", script], {
      input: JSON.stringify({ publicJwk: alice.publicJwk, ours, claims }),
    })
      .toString()
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect((lines[0] as { verified: Record<string, unknown> }).verified).toMatchObject(claims);
    const { theirs, publicJwk } = lines[1] as { theirs: string; publicJwk: Record<string, string> };
    const verified = await verifyPackageSignature(built, theirs, [publicJwk]);
    expect(verified).toEqual({ kid: "py-1", claims, issuedAt: undefined });
  });
});
