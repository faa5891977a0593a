/**
 * The attestation token signed through Azure Key Vault: the real `@azure/keyvault-keys` SDK via
 * `AzureKeyVaultProvider`, `DefaultAzureCredential` unchanged, against the Key Vault emulator over HTTPS.
 */
import { DefaultAzureCredential } from "@azure/identity";
import { KeyClient } from "@azure/keyvault-keys";
import { keccak256, toUtf8Bytes } from "ethers";
import { decodeProtectedHeader } from "jose";

import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import { buildJwks, createAttestationToken, verifyAttestationToken } from "../../runtime/attestation/token.ts";
import { AzureKeyVaultProvider } from "../../runtime/keys/AzureKeyVaultProvider.ts";
import { startTestVault, type TestVault } from "../support/keyvault.ts";

const h = (s: string): Hex32 => keccak256(toUtf8Bytes(s)) as Hex32;
const claims = {
  issuer: "runtime-kv-1",
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
};

let vault: TestVault;
let client: KeyClient;
beforeAll(async () => {
  vault = await startTestVault();
  client = new KeyClient(vault.vaultUrl, new DefaultAzureCredential(), vault.clientOptions);
});
afterAll(() => vault.close());

describe("attestation token through Azure Key Vault", () => {
  it("signs with a vault P-256 key (kid = vault key id with version) and survives a key rotation", async () => {
    const created = await client.createEcKey("attestation", { curve: "P-256" });
    const provider = new AzureKeyVaultProvider({
      vaultUrl: vault.vaultUrl,
      keyName: "attestation",
      clientOptions: vault.clientOptions,
    });
    const token = await createAttestationToken(provider, claims);
    const before = await provider.getPublicKey();
    expect(decodeProtectedHeader(token).kid).toBe(before.keyId);
    expect(before.keyId).toBe(created.id);
    const jwksBefore = await buildJwks([provider]);
    const { claims: verified } = await verifyAttestationToken(token, jwksBefore, { codeHash: claims.codeHash });
    expect(verified.resultId).toBe(claims.resultId);

    await client.rotateKey("attestation");
    provider.refresh();
    const after = await provider.getPublicKey();
    expect(after.version).not.toBe(before.version);
    const newToken = await createAttestationToken(provider, claims);
    expect(decodeProtectedHeader(newToken).kid).toBe(after.keyId);
    // Rotated out: a JWKS with only the new version no longer accepts the old token...
    const jwksAfter = await buildJwks([provider]);
    await expect(verifyAttestationToken(token, jwksAfter)).rejects.toMatchObject({
      code: "ERR_ATTESTATION_UNKNOWN_KID",
    });
    await expect(verifyAttestationToken(newToken, jwksAfter)).resolves.toBeDefined();
    // ...while a JWKS listing both versions (the overlap) accepts both.
    const both = await buildJwks([before, after]);
    await expect(verifyAttestationToken(token, both)).resolves.toBeDefined();
    await expect(verifyAttestationToken(newToken, both)).resolves.toBeDefined();
  });

  it("refuses a secp256k1 vault key for the token", async () => {
    await client.createEcKey("k1", { curve: "P-256K" });
    const provider = new AzureKeyVaultProvider({
      vaultUrl: vault.vaultUrl,
      keyName: "k1",
      clientOptions: vault.clientOptions,
    });
    await expect(createAttestationToken(provider, claims)).rejects.toMatchObject({ code: "ERR_ATTESTATION_SIGNING" });
  });
});
