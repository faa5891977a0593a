/**
 * The KeyProvider conformance suite: every adapter must pass it. The Azure adapter runs through the real
 * `@azure/keyvault-keys` SDK and `DefaultAzureCredential` (managed identity) against the emulator over HTTPS.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { DefaultAzureCredential } from "@azure/identity";
import { KeyClient } from "@azure/keyvault-keys";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { isCryptletError } from "../../runtime/errors.ts";
import { AzureKeyVaultProvider } from "../../runtime/keys/AzureKeyVaultProvider.ts";
import { verifyDigest } from "../../runtime/keys/digestSignature.ts";
import type { KeyProvider, SignatureAlgorithm } from "../../runtime/keys/KeyProvider.ts";
import { LocalKeyProvider, generateLocalKeyFile } from "../../runtime/keys/LocalKeyProvider.ts";
import { startTestVault } from "../support/keyvault.ts";
import type { TestVault } from "../support/keyvault.ts";

type KeyKind = "secp256k1" | "P-256" | "RSA";

interface Harness {
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** A provider whose key is of this kind. */
  provider(kind: KeyKind): KeyProvider;
  /** A provider for a key that does not exist. */
  missing(): KeyProvider;
}

function azureHarness(): Harness {
  let vault: TestVault;
  const names: Record<KeyKind, string> = { secp256k1: "conf-k", "P-256": "conf-p", RSA: "conf-rsa" };
  return {
    async setup() {
      vault = await startTestVault();
      const client = new KeyClient(vault.vaultUrl, new DefaultAzureCredential(), vault.clientOptions);
      await client.createEcKey(names.secp256k1, { curve: "P-256K" });
      await client.createEcKey(names["P-256"], { curve: "P-256" });
      await client.createRsaKey(names.RSA, { keySize: 2048 });
    },
    teardown: () => vault.close(),
    provider: (kind) =>
      new AzureKeyVaultProvider({ vaultUrl: vault.vaultUrl, keyName: names[kind], clientOptions: vault.clientOptions }),
    missing: () =>
      new AzureKeyVaultProvider({
        vaultUrl: vault.vaultUrl,
        keyName: "no-such-key",
        clientOptions: vault.clientOptions,
      }),
  };
}

function localHarness(): Harness {
  let dir: string;
  return {
    async setup() {
      dir = mkdtempSync(path.join(os.tmpdir(), "local-keys-"));
      await generateLocalKeyFile(path.join(dir, "conf-k.json"), { curve: "secp256k1" });
      await generateLocalKeyFile(path.join(dir, "conf-p.json"), { curve: "P-256" });
      await generateLocalKeyFile(path.join(dir, "conf-rsa.json"), { rsaModulusLength: 2048 });
    },
    async teardown() {
      rmSync(dir, { recursive: true, force: true });
    },
    provider: (kind) =>
      new LocalKeyProvider({
        keyFile: path.join(dir, { secp256k1: "conf-k", "P-256": "conf-p", RSA: "conf-rsa" }[kind] + ".json"),
      }),
    missing: () => new LocalKeyProvider({ keyFile: path.join(dir, "no-such-key.json") }),
  };
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isCryptletError(error) ? error.code : error).toBe(code);
}

const HALF_N = secp256k1.CURVE.n / 2n;

describe.each([
  ["azure-key-vault", azureHarness],
  ["local", localHarness],
] as const)("KeyProvider conformance: %s", (kind, makeHarness) => {
  const harness = makeHarness();
  beforeAll(() => harness.setup());
  afterAll(() => harness.teardown());

  it("reports its kind and a public JWK with the key id, name and version, without private members", async () => {
    const provider = harness.provider("secp256k1");
    expect(provider.kind).toBe(kind);
    const info = await provider.getPublicKey();
    expect(info.jwk).toEqual({
      kty: "EC",
      crv: "secp256k1",
      x: expect.any(String),
      y: expect.any(String),
      kid: info.keyId,
    });
    expect(Buffer.from(info.jwk.x as string, "base64url")).toHaveLength(32);
    expect(info.keyId).toContain(info.name);
    expect(info.keyId.endsWith(`/${info.version}`)).toBe(true);
    expect(await provider.getPublicKey()).toEqual(info);
  });

  it.each([
    ["ES256K", "secp256k1", 64],
    ["ES256", "P-256", 64],
    ["RS256", "RSA", 256],
    ["PS256", "RSA", 256],
  ] as const)(
    "signs a 32-byte digest with %s, verifiable with its public JWK, tagged with its key id",
    async (alg, keyKind, length) => {
      const provider = harness.provider(keyKind);
      const info = await provider.getPublicKey();
      const digest = new Uint8Array(randomBytes(32));
      const signed = await provider.sign(digest, alg);
      expect(signed.algorithm).toBe(alg);
      expect(signed.keyId).toBe(info.keyId);
      expect(signed.signature).toHaveLength(length);
      const jwk = info.jwk as { kty: string; crv?: string; x?: string; y?: string; n?: string; e?: string };
      expect(verifyDigest(jwk, alg, digest, signed.signature)).toBe(true);
      expect(verifyDigest(jwk, alg, new Uint8Array(randomBytes(32)), signed.signature)).toBe(false);
    },
  );

  it("returns EC signatures as Key Vault does: raw r||s, s not normalised (high-s occurs), fresh nonce", async () => {
    const provider = harness.provider("secp256k1");
    const digest = new Uint8Array(randomBytes(32));
    const signatures = await Promise.all(Array.from({ length: 16 }, () => provider.sign(digest, "ES256K")));
    const hex = signatures.map((s) => Buffer.from(s.signature).toString("hex"));
    expect(new Set(hex).size).toBe(16);
    expect(hex.some((h) => BigInt(`0x${h.slice(64)}`) > HALF_N)).toBe(true);
  });

  it.each([
    ["ES256", "secp256k1"],
    ["ES256K", "P-256"],
    ["RS256", "secp256k1"],
    ["ES256K", "RSA"],
  ] as const)("refuses %s on a %s key with ERR_KEY_ALGORITHM_UNSUPPORTED", async (alg, keyKind) => {
    await expectCode(
      harness.provider(keyKind).sign(new Uint8Array(32), alg as SignatureAlgorithm),
      "ERR_KEY_ALGORITHM_UNSUPPORTED",
    );
  });

  it("refuses a digest that is not 32 bytes with ERR_KEY_DIGEST_INVALID", async () => {
    const provider = harness.provider("secp256k1");
    await expectCode(provider.sign(new Uint8Array(31), "ES256K"), "ERR_KEY_DIGEST_INVALID");
    await expectCode(provider.sign(new Uint8Array(64), "ES256K"), "ERR_KEY_DIGEST_INVALID");
  });

  it("answers a key that does not exist (wrong key name) with ERR_KEY_NOT_FOUND, not retryable", async () => {
    const provider = harness.missing();
    await expectCode(provider.getPublicKey(), "ERR_KEY_NOT_FOUND");
    const error = await provider.sign(new Uint8Array(32), "ES256K").catch((e: unknown) => e);
    expect(isCryptletError(error, "ERR_KEY_NOT_FOUND") && error.retryable).toBe(false);
  });

  it("wraps a 32-byte data key with RSA-OAEP-256 (randomised, modulus-length ciphertext) and unwraps it", async () => {
    const provider = harness.provider("RSA");
    const info = await provider.getPublicKey();
    const dataKey = new Uint8Array(randomBytes(32));
    const [a, b] = await Promise.all([
      provider.wrapKey(dataKey, "RSA-OAEP-256"),
      provider.wrapKey(dataKey, "RSA-OAEP-256"),
    ]);
    expect(a).toMatchObject({ keyId: info.keyId, algorithm: "RSA-OAEP-256" });
    expect(a.wrappedKey).toHaveLength(256);
    expect(Buffer.from(a.wrappedKey).equals(Buffer.from(b.wrappedKey))).toBe(false);
    expect(Buffer.from(a.wrappedKey).includes(Buffer.from(dataKey))).toBe(false);
    expect(Buffer.from(await provider.unwrapKey(a))).toEqual(Buffer.from(dataKey));
    expect(Buffer.from(await provider.unwrapKey(b))).toEqual(Buffer.from(dataKey));
  });

  it("refuses to wrap with an EC key, and to unwrap a tampered key or one wrapped by another key", async () => {
    await expectCode(
      harness.provider("secp256k1").wrapKey(new Uint8Array(32), "RSA-OAEP-256"),
      "ERR_KEY_ALGORITHM_UNSUPPORTED",
    );
    const provider = harness.provider("RSA");
    const wrapped = await provider.wrapKey(new Uint8Array(randomBytes(32)), "RSA-OAEP-256");
    const tampered = new Uint8Array(wrapped.wrappedKey);
    tampered[100] = (tampered[100] ?? 0) ^ 1;
    await expectCode(provider.unwrapKey({ ...wrapped, wrappedKey: tampered }), "ERR_KEY_REQUEST_REJECTED");
    const other = await harness.provider("P-256").getPublicKey();
    await expectCode(provider.unwrapKey({ ...wrapped, keyId: other.keyId }), "ERR_KEY_NOT_FOUND");
  });
});
