/**
 * AzureKeyVaultProvider beyond the conformance suite: rotation (latest versus pinned), per-version public-key cache,
 * and the mapping of service and network failures to typed, classified errors. Real SDK, emulator over HTTPS.
 */
import { randomBytes } from "node:crypto";
import { DefaultAzureCredential } from "@azure/identity";
import type { AccessToken, TokenCredential } from "@azure/identity";
import { KeyClient } from "@azure/keyvault-keys";
import { classifyError, isCryptletError } from "../../runtime/errors.ts";
import { DEFAULT_DEPENDENCY_POLICIES, DependencyGuard } from "../../runtime/resilience/dependency.ts";
import { AzureKeyVaultProvider } from "../../runtime/keys/AzureKeyVaultProvider.ts";
import { ALL_KEY_PERMISSIONS } from "../../runtime/keys/emulator/startKeyVaultEmulator.ts";
import { verifyDigest } from "../../runtime/keys/digestSignature.ts";
import { startTestVault } from "../support/keyvault.ts";
import type { TestVault } from "../support/keyvault.ts";

let vault: TestVault;
let client: KeyClient;

beforeAll(async () => {
  vault = await startTestVault();
  client = new KeyClient(vault.vaultUrl, new DefaultAzureCredential(), vault.clientOptions);
});
afterAll(() => vault.close());

const providerFor = (
  keyName: string,
  extra: Partial<ConstructorParameters<typeof AzureKeyVaultProvider>[0]> = {},
): AzureKeyVaultProvider =>
  new AzureKeyVaultProvider({ vaultUrl: vault.vaultUrl, keyName, clientOptions: vault.clientOptions, ...extra });

async function errorOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: unknown) => e,
  );
}

describe("rotation", () => {
  it("follows the latest version after a rotation while a pinned provider keeps signing with the old one", async () => {
    const original = await client.createEcKey("rotated", { curve: "P-256K" });
    const latest = providerFor("rotated");
    const pinned = await latest.pinned();
    const before = await latest.getPublicKey();
    expect(before.version).toBe(original.properties.version);
    expect(pinned.pinnedVersion).toBe(before.version);

    const rotated = await client.rotateKey("rotated");
    // Within its TTL the latest provider keeps the version it resolved; refresh() switches at once.
    expect((await latest.getPublicKey()).version).toBe(before.version);
    latest.refresh();
    const after = await latest.getPublicKey();
    expect(after.version).toBe(rotated.properties.version);
    expect(after.jwk.x).not.toBe(before.jwk.x);

    const digest = new Uint8Array(randomBytes(32));
    const newSignature = await latest.sign(digest, "ES256K");
    expect(newSignature.keyId).toBe(after.keyId);
    expect(verifyDigest(after.jwk as { kty: string }, "ES256K", digest, newSignature.signature)).toBe(true);
    expect(verifyDigest(before.jwk as { kty: string }, "ES256K", digest, newSignature.signature)).toBe(false);

    const oldSignature = await pinned.sign(digest, "ES256K");
    expect(oldSignature.keyId).toBe(before.keyId);
    expect(verifyDigest(before.jwk as { kty: string }, "ES256K", digest, oldSignature.signature)).toBe(true);

    const all = await latest.listPublicKeys();
    expect(all.map((k) => k.version)).toEqual([before.version, after.version]);
  });

  it("re-reads the latest version once latestVersionTtlMs has passed", async () => {
    await client.createEcKey("ttl", { curve: "P-256K" });
    const provider = providerFor("ttl", { latestVersionTtlMs: 0 });
    const first = await provider.getPublicKey();
    const rotated = await client.rotateKey("ttl");
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect((await provider.getPublicKey()).version).toBe(rotated.properties.version);
    expect(first.version).not.toBe(rotated.properties.version);
  });

  it("caches a version's public key: a pinned provider needs no vault round trip to answer again", async () => {
    const key = await client.createEcKey("cached", { curve: "P-256K" });
    const pinned = providerFor("cached", { keyVersion: key.properties.version as string });
    const info = await pinned.getPublicKey();
    vault.setPermissions([]);
    try {
      expect(await pinned.getPublicKey()).toEqual(info);
      expect(await pinned.getPublicKeyVersion(info.version)).toEqual(info);
    } finally {
      vault.setPermissions(ALL_KEY_PERMISSIONS);
    }
  });

  it("answers an unknown pinned version with ERR_KEY_NOT_FOUND", async () => {
    await client.createEcKey("versioned", { curve: "P-256K" });
    const error = await errorOf(
      providerFor("versioned", { keyVersion: "0123456789abcdef0123456789abcdef" }).getPublicKey(),
    );
    expect(isCryptletError(error, "ERR_KEY_NOT_FOUND")).toBe(true);
  });
});

describe("failures", () => {
  beforeAll(async () => {
    await client.createEcKey("failing", { curve: "P-256K" });
  });

  it("maps a missing permission (403) to ERR_KEY_ACCESS_DENIED, failed at once", async () => {
    const provider = providerFor("failing");
    await provider.getPublicKey();
    vault.setPermissions(["get"]);
    try {
      const error = await errorOf(provider.sign(new Uint8Array(32), "ES256K"));
      expect(isCryptletError(error, "ERR_KEY_ACCESS_DENIED")).toBe(true);
      expect(classifyError(error)).toBe("fail");
      expect((error as { details: { status: number } }).details.status).toBe(403);
    } finally {
      vault.setPermissions(ALL_KEY_PERMISSIONS);
    }
  });

  it("maps a token the vault refuses (401) to ERR_KEY_ACCESS_DENIED", async () => {
    const forged: TokenCredential = {
      getToken: async (): Promise<AccessToken> => ({
        token: "eyJhbGciOiJIUzI1NiJ9.e30.AAAA",
        expiresOnTimestamp: Date.now() + 3_600_000,
      }),
    };
    const error = await errorOf(providerFor("failing", { credential: forged }).getPublicKey());
    expect(isCryptletError(error, "ERR_KEY_ACCESS_DENIED")).toBe(true);
  });

  it.each([429, 503] as const)(
    "maps %i (after the SDK's own retries) to retryable ERR_KEY_PROVIDER_UNAVAILABLE",
    async (status) => {
      // One attempt, no SDK retry: the fault's own mapping (the vault's shared guard would retry it).
      const provider = providerFor("failing", {
        clientOptions: { ...vault.clientOptions, retryOptions: { maxRetries: 0 } },
        guard: new DependencyGuard({
          name: `test-${status}`,
          policy: { ...DEFAULT_DEPENDENCY_POLICIES.keyVault, attempts: 1 },
        }),
      });
      await provider.getPublicKey();
      vault.injectFault({ status, retryAfterSeconds: 0 });
      const error = await errorOf(provider.sign(new Uint8Array(32), "ES256K"));
      expect(isCryptletError(error, "ERR_KEY_PROVIDER_UNAVAILABLE")).toBe(true);
      expect(classifyError(error)).toBe("retry");
      expect((error as { details: { status: number } }).details.status).toBe(status);
    },
  );

  it("lets the SDK retry a transient 429 with Retry-After, then succeeds", async () => {
    const provider = providerFor("failing");
    await provider.getPublicKey();
    vault.injectFault({ status: 429, retryAfterSeconds: 0 });
    const signed = await provider.sign(new Uint8Array(32).fill(3), "ES256K");
    expect(signed.signature).toHaveLength(64);
  });

  it("maps an unreachable vault to retryable ERR_KEY_PROVIDER_UNAVAILABLE", async () => {
    const other = await startTestVault();
    const url = other.vaultUrl;
    const options = other.clientOptions;
    await other.close(); // restores IDENTITY_ENDPOINT to `vault`, so only the vault itself is unreachable
    const provider = new AzureKeyVaultProvider({
      vaultUrl: url,
      keyName: "failing",
      clientOptions: { ...options, retryOptions: { maxRetries: 0 } },
    });
    const error = await errorOf(provider.getPublicKey());
    expect(isCryptletError(error, "ERR_KEY_PROVIDER_UNAVAILABLE")).toBe(true);
    expect((error as { retryable: boolean }).retryable).toBe(true);
  });

  it.each([
    [{ vaultUrl: "not a url", keyName: "k" }, "vaultUrl"],
    [{ vaultUrl: "http://127.0.0.1:1", keyName: "k" }, "vaultUrl"],
    [{ vaultUrl: "https://v.vault.azure.net", keyName: "bad_name" }, "keyName"],
    [{ vaultUrl: "https://v.vault.azure.net", keyName: "k", keyVersion: "v1" }, "keyVersion"],
  ])("refuses bad options with ERR_KEY_PROVIDER_CONFIG_INVALID naming the option", (options, option) => {
    let error: unknown;
    try {
      new AzureKeyVaultProvider(options);
    } catch (e) {
      error = e;
    }
    expect(isCryptletError(error, "ERR_KEY_PROVIDER_CONFIG_INVALID")).toBe(true);
    expect((error as { details: { option: string } }).details.option).toBe(option);
  });
});
