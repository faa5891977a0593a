import {
  AbstractSigner,
  Signature,
  Wallet,
  keccak256,
  toUtf8Bytes,
  verifyTypedData,
  type Provider,
  type TransactionRequest,
  type TypedDataDomain,
  type TypedDataField,
} from "ethers";

import {
  CRYPTLET_RESULT_TYPES,
  cryptletDomain,
  cryptletResultDigest,
  resultBatchDigest,
  type CryptletResult,
  type Hex32,
} from "../../runtime/attestation/eip712.ts";
import { verifyMerkleProof } from "../../runtime/attestation/merkle.ts";
import {
  assertResultThreshold,
  evaluateSignatures,
  normaliseSignature,
  recoverDigestSigner,
  signCryptletResult,
  signResultBatch,
} from "../../runtime/attestation/signing.ts";
import { isCryptletError } from "../../runtime/errors.ts";

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const consortiumId = keccak256(toUtf8Bytes("consortium:signing-test")) as Hex32;
const h = (s: string): Hex32 => keccak256(toUtf8Bytes(s)) as Hex32;
const result: CryptletResult = {
  resultId: h("result"),
  cryptletId: h("@acme/eth-usd-median"),
  codeHash: h("code"),
  inputHash: h("input"),
  outputHash: h("output"),
  timestamp: 1704412802n,
};

function highSTwin(signature: string): string {
  const sig = Signature.from(signature);
  const s = N - BigInt(sig.s);
  return `${sig.r}${s.toString(16).padStart(64, "0")}${sig.v === 27 ? "1c" : "1b"}`;
}

/** An AbstractSigner that answers like a raw Key Vault key would before normalisation: high-s, v 0/1. */
class RawVaultLikeSigner extends AbstractSigner {
  readonly #wallet: Wallet;
  readonly #sigOf: Wallet;
  constructor(wallet: Wallet, signWith: Wallet = wallet, provider: Provider | null = null) {
    super(provider);
    this.#wallet = wallet;
    this.#sigOf = signWith;
  }
  getAddress(): Promise<string> {
    return Promise.resolve(this.#wallet.address);
  }
  connect(provider: Provider | null): RawVaultLikeSigner {
    return new RawVaultLikeSigner(this.#wallet, this.#sigOf, provider);
  }
  signTransaction(_tx: TransactionRequest): Promise<string> {
    throw new Error("not used");
  }
  signMessage(): Promise<string> {
    throw new Error("not used");
  }
  async signTypedData(
    domain: TypedDataDomain,
    types: Record<string, TypedDataField[]>,
    value: Record<string, unknown>,
  ): Promise<string> {
    const twin = highSTwin(await this.#sigOf.signTypedData(domain, types, value));
    const v = Number.parseInt(twin.slice(130), 16) - 27;
    return `${twin.slice(0, 130)}0${v}`;
  }
  getPublicKey(): Promise<{ keyId: string; version: string }> {
    return Promise.resolve({ keyId: "https://vault.example/keys/signer/0123abcd", version: "0123abcd" });
  }
}

const wallets = [0, 1, 2].map((i) => new Wallet(keccak256(toUtf8Bytes(`signer-${i}`))));
const trusted = wallets.map((w) => w.address);

describe("signCryptletResult", () => {
  it("gives low-s, v 27/28 signatures that ethers' EIP-712 verifier recovers to each signer", async () => {
    const signatures = await signCryptletResult(consortiumId, result, wallets);
    expect(signatures.map((s) => s.signer)).toEqual(trusted);
    for (const { signer, signature } of signatures) {
      expect(signature).toMatch(/^0x[0-9a-f]{130}$/);
      expect(BigInt(`0x${signature.slice(66, 130)}`) <= N / 2n).toBe(true);
      expect(["1b", "1c"]).toContain(signature.slice(130));
      const types = { CryptletResult: [...CRYPTLET_RESULT_TYPES.CryptletResult] };
      expect(verifyTypedData(cryptletDomain(consortiumId), types, result, signature)).toBe(signer);
    }
  });

  it("normalises a vault-style high-s / v 0-1 answer and reads key metadata from the signer", async () => {
    const signer = new RawVaultLikeSigner(wallets[0]!);
    const [sig] = await signCryptletResult(consortiumId, result, [signer]);
    expect(sig).toMatchObject({ signer: wallets[0]!.address, keyVersion: "0123abcd" });
    expect(sig!.keyId).toBe("https://vault.example/keys/signer/0123abcd");
    expect(recoverDigestSigner(cryptletResultDigest(consortiumId, result), sig!.signature)).toBe(wallets[0]!.address);
  });

  it("carries explicit key metadata", async () => {
    const [sig] = await signCryptletResult(consortiumId, result, [
      { signer: wallets[1]!, keyId: "local:signer-1/v1", keyVersion: "v1" },
    ]);
    expect(sig).toMatchObject({ keyId: "local:signer-1/v1", keyVersion: "v1", signer: wallets[1]!.address });
  });

  it("refuses a signer whose signature is made by another key (wrong key)", async () => {
    const liar = new RawVaultLikeSigner(wallets[0]!, wallets[2]!);
    await expect(signCryptletResult(consortiumId, result, [liar])).rejects.toMatchObject({
      code: "ERR_RESULT_SIGNATURE_INVALID",
      details: expect.objectContaining({ reason: "wrong-signer" }),
    });
  });
});

describe("signature checks and thresholds", () => {
  const digest = cryptletResultDigest(consortiumId, result);

  it("counts distinct trusted signers; duplicates count once", async () => {
    const sigs = await signCryptletResult(consortiumId, result, wallets.slice(0, 2));
    expect(evaluateSignatures(digest, sigs, trusted, 2)).toMatchObject({ met: true, valid: trusted.slice(0, 2) });
    const dup = evaluateSignatures(digest, [sigs[0]!, sigs[0]!, sigs[0]!], trusted, 2);
    expect(dup.met).toBe(false);
    expect(dup.valid).toEqual([trusted[0]]);
    expect(dup.rejected.map((r) => r.reason)).toEqual(["duplicate", "duplicate"]);
  });

  it("rejects a high-s signature even though it is valid ECDSA", async () => {
    const [sig] = await signCryptletResult(consortiumId, result, [wallets[0]!]);
    const twin = highSTwin(sig!.signature);
    expect(() => recoverDigestSigner(digest, twin)).toThrow(
      expect.objectContaining({ code: "ERR_RESULT_SIGNATURE_INVALID" }),
    );
    const e = evaluateSignatures(digest, [{ ...sig!, signature: twin }], trusted, 1);
    expect(e).toMatchObject({ met: false, rejected: [{ index: 0, reason: "high-s" }] });
    // The same twin, normalised, is the original signature again.
    expect(normaliseSignature(twin)).toBe(sig!.signature);
  });

  it("rejects tampered signatures, tampered results, untrusted and rotated-out keys", async () => {
    const sigs = await signCryptletResult(consortiumId, result, wallets);
    // A low bit of s flipped: still a well-formed low-s signature, but it recovers to some other address.
    const sig0 = sigs[0]!.signature;
    const flipped = `${sig0.slice(0, 128)}${(Number.parseInt(sig0.slice(128, 130), 16) ^ 1).toString(16).padStart(2, "0")}${sig0.slice(130)}`;
    expect(evaluateSignatures(digest, [{ ...sigs[0]!, signature: flipped }], trusted, 1).rejected[0]?.reason).toBe(
      "wrong-signer",
    );
    const tamperedDigest = cryptletResultDigest(consortiumId, { ...result, outputHash: h("other output") });
    expect(evaluateSignatures(tamperedDigest, sigs, trusted, 1).met).toBe(false);
    const otherConsortium = cryptletResultDigest(h("another consortium"), result);
    expect(evaluateSignatures(otherConsortium, sigs, trusted, 1).met).toBe(false);
    // Key rotation: the registry now trusts only signers 1 and 2; the old key's signature no longer counts.
    const rotated = evaluateSignatures(digest, sigs, trusted.slice(1), 3);
    expect(rotated.valid).toEqual(trusted.slice(1));
    expect(rotated.rejected).toEqual([{ index: 0, signer: trusted[0], reason: "untrusted" }]);
  });

  it("reports malformed signatures and bad v without throwing", () => {
    const e = evaluateSignatures(
      digest,
      [
        { signer: trusted[0]!, signature: "0x1234" },
        { signer: trusted[0]!, signature: `0x${"11".repeat(64)}05` },
      ],
      trusted,
      1,
    );
    expect(e.rejected.map((r) => r.reason)).toEqual(["malformed", "bad-v"]);
  });

  it("assertResultThreshold throws ERR_THRESHOLD_NOT_MET below M", async () => {
    const sigs = await signCryptletResult(consortiumId, result, [wallets[0]!]);
    expect(() => assertResultThreshold(consortiumId, result, sigs, trusted, 2)).toThrow(
      expect.objectContaining({ code: "ERR_THRESHOLD_NOT_MET", details: { valid: 1, threshold: 2 } }),
    );
    expect(assertResultThreshold(consortiumId, result, sigs, trusted, 1).met).toBe(true);
    expect(() => evaluateSignatures(digest, sigs, trusted, 0)).toThrow(RangeError);
  });
});

describe("signResultBatch", () => {
  it("signs the Merkle root; every result's proof verifies, a tampered one does not", async () => {
    const results = [0, 1, 2, 3, 4].map((i) => ({ ...result, resultId: h(`result-${i}`) }));
    const signed = await signResultBatch(consortiumId, results, wallets.slice(0, 2), 1704413100n);
    expect(signed.batch.count).toBe(5);
    const digest = resultBatchDigest(consortiumId, signed.batch);
    expect(evaluateSignatures(digest, signed.signatures, trusted, 2).met).toBe(true);
    results.forEach((r, i) => expect(verifyMerkleProof(signed.batch.root, r, signed.proofs[i]!)).toBe(true));
    const bad = [...signed.proofs[0]!];
    bad[0] = h("not a sibling");
    expect(verifyMerkleProof(signed.batch.root, results[0]!, bad)).toBe(false);
    expect(verifyMerkleProof(signed.batch.root, results[0]!, signed.proofs[1]!)).toBe(false);
  });

  it("refuses an empty batch", async () => {
    await expect(signResultBatch(consortiumId, [], wallets, 1n)).rejects.toThrow(RangeError);
    expect(isCryptletError(new RangeError("x"))).toBe(false);
  });
});
