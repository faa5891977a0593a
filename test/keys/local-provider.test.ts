/**
 * LocalKeyProvider beyond the conformance suite: the production guard, key-file validation and a local rotation
 * (replacing the file, then refresh()).
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { generateKeyPairSync } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { isCryptletError } from "../../runtime/errors.ts";
import { LocalKeyProvider, generateLocalKeyFile } from "../../runtime/keys/LocalKeyProvider.ts";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "local-provider-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isCryptletError(e) ? e.code : String(e);
  }
  return undefined;
}

describe("production guard", () => {
  const saved = process.env.NODE_ENV;
  afterEach(() => {
    if (saved === undefined) delete process.env.NODE_ENV;
    else process.env.NODE_ENV = saved;
  });

  it("refuses a local key when NODE_ENV=production or production: true, unless allowInProduction", () => {
    const file = path.join(dir, "any.json");
    process.env.NODE_ENV = "production";
    expect(codeOf(() => new LocalKeyProvider({ keyFile: file }))).toBe("ERR_LOCAL_KEY_IN_PRODUCTION");
    expect(codeOf(() => new LocalKeyProvider({ keyFile: file, allowInProduction: true }))).toBeUndefined();
    process.env.NODE_ENV = "development";
    expect(codeOf(() => new LocalKeyProvider({ keyFile: file, production: true }))).toBe("ERR_LOCAL_KEY_IN_PRODUCTION");
    expect(codeOf(() => new LocalKeyProvider({ keyFile: file }))).toBeUndefined();
  });
});

describe("key file", () => {
  it("is written with mode 0600 and named after the file; the version is the RFC 7638 thumbprint", async () => {
    const file = path.join(dir, "signer.jwk.json");
    await generateLocalKeyFile(file, { curve: "secp256k1" });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const info = await new LocalKeyProvider({ keyFile: file }).getPublicKey();
    expect(info.name).toBe("signer");
    expect(info.version).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(info.keyId).toBe(`local:signer/${info.version}`);
  });

  it("accepts Key Vault's curve name P-256K and an in-memory JWK", async () => {
    const jwk = generateKeyPairSync("ec", { namedCurve: "secp256k1" }).privateKey.export({ format: "jwk" });
    const provider = new LocalKeyProvider({ jwk: { ...jwk, crv: "P-256K" } as Record<string, string> });
    expect((await provider.getPublicKey()).jwk.crv).toBe("secp256k1");
    expect((await provider.sign(new Uint8Array(32).fill(1), "ES256K")).signature).toHaveLength(64);
  });

  const p256 = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "jwk" });
  const other = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "jwk" });
  it.each([
    ["not JSON", "{ nope"],
    ["not an object", "[1,2]"],
    ["a public key only", JSON.stringify({ ...p256, d: undefined })],
    ["an unsupported curve", JSON.stringify({ ...p256, crv: "P-384" })],
    ["an unsupported kty", JSON.stringify({ kty: "oct", k: "AAAA", d: "x" })],
    ["public members of another key", JSON.stringify({ ...p256, x: other.x, y: other.y })],
    [
      "a 1024-bit RSA key",
      JSON.stringify(generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({ format: "jwk" })),
    ],
  ])("refuses %s with ERR_LOCAL_KEY_INVALID", async (_what, content) => {
    const file = path.join(dir, "bad.json");
    writeFileSync(file, content);
    const error = await new LocalKeyProvider({ keyFile: file }).getPublicKey().catch((e: unknown) => e);
    expect(isCryptletError(error, "ERR_LOCAL_KEY_INVALID")).toBe(true);
    expect(JSON.stringify(error)).not.toContain(p256.d as string);
  });

  it("refuses neither or both of keyFile and jwk", () => {
    expect(codeOf(() => new LocalKeyProvider({}))).toBe("ERR_LOCAL_KEY_INVALID");
    expect(codeOf(() => new LocalKeyProvider({ keyFile: "a", jwk: p256 as Record<string, string> }))).toBe(
      "ERR_LOCAL_KEY_INVALID",
    );
  });

  it("rotates locally: a replaced file is used after refresh()", async () => {
    const file = path.join(dir, "rotating.json");
    await generateLocalKeyFile(file, { curve: "secp256k1" });
    const provider = new LocalKeyProvider({ keyFile: file });
    const before = await provider.getPublicKey();
    await generateLocalKeyFile(file, { curve: "secp256k1" });
    expect(await provider.getPublicKey()).toEqual(before);
    provider.refresh();
    const after = await provider.getPublicKey();
    expect(after.version).not.toBe(before.version);
    expect((await provider.sign(new Uint8Array(32), "ES256K")).keyId).toBe(after.keyId);
  });
});
