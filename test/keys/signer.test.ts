/**
 * KeyVaultSigner: an ethers signer over a key provider. Over the emulated Key Vault (real SDK, HTTPS,
 * DefaultAzureCredential) and over a local key: messages, typed data, the CryptletResult digest; real transactions
 * on an in-process Hardhat chain; a foundation contract (CryptletRegistry) deployed by and accepting a result signed
 * through the emulator; low-s normalisation of the vault's high-s signatures.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { DefaultAzureCredential } from "@azure/identity";
import { KeyClient } from "@azure/keyvault-keys";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import {
  Signature,
  getBytes,
  hexlify,
  id,
  keccak256,
  parseEther,
  recoverAddress,
  toUtf8Bytes,
  verifyMessage,
  verifyTypedData,
} from "ethers";
import { network } from "hardhat";
import {
  CRYPTLET_RESULT_TYPES,
  computeResultId,
  cryptletDomain,
  cryptletResultDigest,
} from "../../runtime/attestation/eip712.ts";
import type { CryptletResult, Hex32 } from "../../runtime/attestation/eip712.ts";
import { isCryptletError } from "../../runtime/errors.ts";
import { AzureKeyVaultProvider } from "../../runtime/keys/AzureKeyVaultProvider.ts";
import type { KeyProvider, ProviderSignature } from "../../runtime/keys/KeyProvider.ts";
import { KeyVaultSigner } from "../../runtime/keys/KeyVaultSigner.ts";
import { LocalKeyProvider, generateLocalKeyFile } from "../../runtime/keys/LocalKeyProvider.ts";
import { startTestVault } from "../support/keyvault.ts";
import type { TestVault } from "../support/keyvault.ts";

const N = secp256k1.CURVE.n;
const CONSORTIUM = id("keys-test-consortium") as Hex32;

let vault: TestVault;
let dir: string;
let azure: AzureKeyVaultProvider;
let local: LocalKeyProvider;

beforeAll(async () => {
  vault = await startTestVault();
  const client = new KeyClient(vault.vaultUrl, new DefaultAzureCredential(), vault.clientOptions);
  await client.createEcKey("eth-signer", { curve: "P-256K" });
  await client.createEcKey("p256", { curve: "P-256" });
  azure = new AzureKeyVaultProvider({
    vaultUrl: vault.vaultUrl,
    keyName: "eth-signer",
    clientOptions: vault.clientOptions,
  });
  dir = mkdtempSync(path.join(os.tmpdir(), "signer-"));
  await generateLocalKeyFile(path.join(dir, "eth.json"), { curve: "secp256k1" });
  local = new LocalKeyProvider({ keyFile: path.join(dir, "eth.json") });
});
afterAll(async () => {
  await vault.close();
  rmSync(dir, { recursive: true, force: true });
});

function sampleResult(): CryptletResult {
  const cryptletId = keccak256(toUtf8Bytes("@acme/price-median")) as Hex32;
  const requestId = hexlify(randomBytes(32)) as Hex32;
  return {
    resultId: computeResultId(cryptletId, requestId),
    cryptletId,
    codeHash: hexlify(randomBytes(32)) as Hex32,
    inputHash: hexlify(randomBytes(32)) as Hex32,
    outputHash: keccak256(toUtf8Bytes("2271.04")) as Hex32,
    timestamp: 1_704_412_800n,
  };
}

describe.each([
  ["emulated Azure Key Vault", () => azure],
  ["local key", () => local],
])("KeyVaultSigner over %s", (_name, keys) => {
  it("gives signatures that ethers' recoverAddress attributes to its address, for many digests", async () => {
    // The first signature builds the key's window table; the following ones use it.
    const signer = new KeyVaultSigner(keys());
    const address = await signer.getAddress();
    for (let i = 0; i < 24; i++) {
      const digest = hexlify(randomBytes(32));
      const signature = await signer.signDigest(digest);
      expect(BigInt(signature.s) <= N / 2n).toBe(true);
      expect(recoverAddress(digest, signature)).toBe(address);
    }
  });

  it("derives the address from the public JWK: the last 20 bytes of keccak256(x || y)", async () => {
    const signer = new KeyVaultSigner(keys());
    const { jwk } = await keys().getPublicKey();
    const xy = Buffer.concat([Buffer.from(jwk.x as string, "base64url"), Buffer.from(jwk.y as string, "base64url")]);
    expect((await signer.getAddress()).toLowerCase()).toBe(`0x${keccak256(xy).slice(-40)}`);
  });

  it("signs EIP-191 messages that ethers.verifyMessage attributes to its address", async () => {
    const signer = new KeyVaultSigner(keys());
    for (const message of ["hello Cryptlet", getBytes(hexlify(randomBytes(40)))]) {
      const signature = await signer.signMessage(message);
      expect(verifyMessage(message, signature)).toBe(await signer.getAddress());
      expect(BigInt(Signature.from(signature).s)).toBeLessThanOrEqual(N / 2n);
    }
  });

  it("signs EIP-712 typed data (the CryptletResult) that ethers.verifyTypedData and the digest both recover", async () => {
    const signer = new KeyVaultSigner(keys());
    const result = sampleResult();
    const signature = await signer.signTypedData(
      cryptletDomain(CONSORTIUM),
      CRYPTLET_RESULT_TYPES,
      result as unknown as Record<string, unknown>,
    );
    expect(
      verifyTypedData(
        cryptletDomain(CONSORTIUM),
        CRYPTLET_RESULT_TYPES,
        result as unknown as Record<string, unknown>,
        signature,
      ),
    ).toBe(await signer.getAddress());
    const digest = cryptletResultDigest(CONSORTIUM, result);
    const direct = await signer.signDigestWithKey(digest);
    expect(recoverAddress(digest, direct.signature)).toBe(await signer.getAddress());
    expect(direct.keyId).toBe((await keys().getPublicKey()).keyId);
    expect(direct.address).toBe(await signer.getAddress());
  });
});

describe("normalisation of the vault's signatures", () => {
  it("turns a high-s signature from the vault into its low-s twin (s' = n - s) with the right v", async () => {
    const raw: ProviderSignature[] = [];
    const recording: KeyProvider = {
      kind: azure.kind,
      getPublicKey: () => azure.getPublicKey(),
      wrapKey: (key, alg) => azure.wrapKey(key, alg),
      unwrapKey: (wrapped) => azure.unwrapKey(wrapped),
      sign: async (digest, algorithm) => {
        const signed = await azure.sign(digest, algorithm);
        raw.push(signed);
        return signed;
      },
    };
    const signer = new KeyVaultSigner(recording);
    const digest = keccak256(toUtf8Bytes("high-s please"));
    let seenHigh = false;
    for (let attempt = 0; attempt < 40 && !seenHigh; attempt++) {
      const signature = await signer.signDigest(digest);
      const last = raw[raw.length - 1] as ProviderSignature;
      const rawS = BigInt(hexlify(last.signature.subarray(32)));
      expect(signature.r).toBe(hexlify(last.signature.subarray(0, 32)));
      if (rawS > N / 2n) {
        seenHigh = true;
        expect(BigInt(signature.s)).toBe(N - rawS);
      } else {
        expect(BigInt(signature.s)).toBe(rawS);
      }
      expect(recoverAddress(digest, signature)).toBe(await signer.getAddress());
    }
    expect(seenHigh).toBe(true);
  });

  it("refuses a key that is not secp256k1 with ERR_KEY_ALGORITHM_UNSUPPORTED", async () => {
    const p256 = new AzureKeyVaultProvider({
      vaultUrl: vault.vaultUrl,
      keyName: "p256",
      clientOptions: vault.clientOptions,
    });
    const error = await new KeyVaultSigner(p256).signMessage("x").catch((e: unknown) => e);
    expect(isCryptletError(error, "ERR_KEY_ALGORITHM_UNSUPPORTED")).toBe(true);
  });

  it("refuses a provider whose signatures do not recover to its reported key with ERR_SIGNER_KEY_MISMATCH", async () => {
    await generateLocalKeyFile(path.join(dir, "other.json"), { curve: "secp256k1" });
    const other = new LocalKeyProvider({ keyFile: path.join(dir, "other.json") });
    const lying: KeyProvider = {
      kind: "local",
      getPublicKey: () => local.getPublicKey(),
      wrapKey: (key, alg) => local.wrapKey(key, alg),
      unwrapKey: (wrapped) => local.unwrapKey(wrapped),
      sign: async (digest, algorithm) => ({
        ...(await other.sign(digest, algorithm)),
        keyId: (await local.getPublicKey()).keyId,
      }),
    };
    const error = await new KeyVaultSigner(lying).signMessage("x").catch((e: unknown) => e);
    expect(isCryptletError(error, "ERR_SIGNER_KEY_MISMATCH")).toBe(true);
  });
});

describe("on a Hardhat chain, signed through the emulated Key Vault", () => {
  let ethers: Awaited<ReturnType<typeof network.create>>["ethers"];
  let signer: KeyVaultSigner;

  beforeAll(async () => {
    ({ ethers } = await network.create());
    signer = new KeyVaultSigner(azure).connect(ethers.provider);
    expect(signer.provider).toBe(ethers.provider);
    const [funder] = await ethers.getSigners();
    await (await funder!.sendTransaction({ to: await signer.getAddress(), value: parseEther("10") })).wait();
  });

  it.each([
    ["EIP-1559 (type 2)", 2],
    ["legacy (type 0)", 0],
  ] as const)("sends a %s transaction that the chain attributes to the vault key's address", async (_name, type) => {
    const to = "0x000000000000000000000000000000000000dEaD";
    const before = await ethers.provider.getBalance(to);
    const response = await signer.sendTransaction({ to, value: parseEther("0.25"), type });
    const receipt = await response.wait();
    expect(receipt?.status).toBe(1);
    expect(receipt?.from).toBe(await signer.getAddress());
    expect(await ethers.provider.getBalance(to)).toBe(before + parseEther("0.25"));
    const mined = await ethers.provider.getTransaction(response.hash);
    expect(mined?.type).toBe(type);
    expect(mined?.from).toBe(await signer.getAddress());
    expect(BigInt(mined?.signature.s ?? N)).toBeLessThanOrEqual(N / 2n);
  });

  it("refuses a transaction whose from is another address", async () => {
    const [funder] = await ethers.getSigners();
    const error = await signer
      .signTransaction({ from: await funder!.getAddress(), to: await funder!.getAddress(), value: 1n })
      .catch((e: unknown) => e);
    expect((error as { code?: string }).code).toBe("INVALID_ARGUMENT");
  });

  it("deploys CryptletRegistry with ethers' ContractFactory and has it accept a result it signed", async () => {
    const address = await signer.getAddress();
    const factory = await ethers.getContractFactory("CryptletRegistry", signer);
    const registry = await factory.deploy(CONSORTIUM, address, [address], 1);
    await registry.waitForDeployment();
    const result = sampleResult();
    await (await registry.getFunction("approveCodeHash")(result.cryptletId, result.codeHash)).wait();
    const signature = await signer.signDigest(cryptletResultDigest(CONSORTIUM, result));
    const digest = await registry.getFunction("verifyResultProof")(result, [signature.serialized]);
    expect(digest).toBe(cryptletResultDigest(CONSORTIUM, result));
  });
});
