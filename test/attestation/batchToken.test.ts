/**
 * Batch attestation tokens (runtime/attestation/token.ts) and their batcher (runtime/attestation/tokenBatcher.ts).
 * The root is compared with `@openzeppelin/merkle-tree`'s `StandardMerkleTree.of` over the same leaf values (an
 * independent implementation of the tree), and the signature with jose's own `jwtVerify`.
 */
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";
import { SignJWT, base64url, createLocalJWKSet, decodeJwt, decodeProtectedHeader, importJWK, jwtVerify } from "jose";
import { keccak256, toUtf8Bytes } from "ethers";

import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import {
  ATTESTATION_LEAF_TYPES,
  BATCH_ATTESTATION_TOKEN_TYPE,
  buildJwks,
  createAttestationToken,
  createBatchAttestationToken,
  decodeAttestationClaims,
  verifyAttestationToken,
  type AttestedResult,
} from "../../runtime/attestation/token.ts";
import { AttestationTokenBatcher, type BatchClaims } from "../../runtime/attestation/tokenBatcher.ts";
import type { KeyProvider } from "../../runtime/keys/KeyProvider.ts";
import type { LocalKeyProvider } from "../../runtime/keys/LocalKeyProvider.ts";
import { generateLocalP256 } from "./localKeys.ts";

const h = (s: string): Hex32 => keccak256(toUtf8Bytes(s)) as Hex32;
const claims: BatchClaims = {
  issuer: "runtime-test-1",
  consortiumId: h("consortium"),
  runtime: { version: "0.1.0", buildHash: h("build") },
  sandbox: {
    engine: "isolated-vm",
    engineVersion: "7.0.1+v8.13.6.233.17-node.53",
    limits: { memoryBytes: 67108864, wallTimeMs: 1000, outputBytes: 65536 },
  },
  ttlSeconds: 3600,
};
const resultOf = (i: number): AttestedResult => ({
  resultId: h(`result ${i}`),
  cryptletId: h("@acme/eth-usd-median"),
  codeHash: h("code"),
  inputHash: h(`input ${i}`),
  outputHash: h(`output ${i}`),
  evidenceHash: h(`evidence ${i}`),
});
const expectedOf = (r: AttestedResult) => ({
  cryptletId: r.cryptletId,
  codeHash: r.codeHash,
  resultId: r.resultId,
  consortiumId: h("consortium"),
  inputHash: r.inputHash,
  outputHash: r.outputHash,
  evidenceHash: r.evidenceHash,
});
const leafValues = (r: AttestedResult) =>
  [r.resultId, r.cryptletId, r.codeHash, r.inputHash, r.outputHash, r.evidenceHash] as string[];

let provider: LocalKeyProvider;
beforeAll(() => {
  provider = generateLocalP256("attestation").provider;
});

describe("createBatchAttestationToken / verifyAttestationToken with a proof", () => {
  const results = Array.from({ length: 13 }, (_, i) => resultOf(i));

  it("signs StandardMerkleTree's root over the leaves, and every result verifies with its proof", async () => {
    const batch = await createBatchAttestationToken(provider, { ...claims, results });
    const tree = StandardMerkleTree.of(results.map(leafValues), [...ATTESTATION_LEAF_TYPES]);
    expect(batch.root).toBe(tree.root);
    results.forEach((r, i) => expect(batch.proofs[i]).toEqual(tree.getProof(leafValues(r))));

    const jwks = await buildJwks([provider]);
    const header = decodeProtectedHeader(batch.token);
    expect(header).toEqual({
      alg: "ES256",
      typ: BATCH_ATTESTATION_TOKEN_TYPE,
      kid: (await provider.getPublicKey()).keyId,
    });
    // jose alone, without the runtime's verifier: the signature and the batch claims.
    const { payload } = await jwtVerify(batch.token, createLocalJWKSet(jwks), { typ: BATCH_ATTESTATION_TOKEN_TYPE });
    expect(payload).toMatchObject({ sub: tree.root, batch: { root: tree.root, count: 13 }, inputFormat: 2 });
    expect(payload).not.toHaveProperty("resultId");

    for (const [i, r] of results.entries()) {
      const { claims: verified } = await verifyAttestationToken(batch.token, jwks, expectedOf(r), {
        ...r,
        proof: batch.proofs[i]!,
      });
      expect(verified).toMatchObject({ ...r, sub: r.resultId, batch: { root: tree.root, count: 13 } });
      expect(verified.sandbox).toEqual(claims.sandbox);
    }
  });

  it("refuses a proof of another leaf, a changed value, a missing proof and a proof for a per-result token", async () => {
    const batch = await createBatchAttestationToken(provider, { ...claims, results });
    const jwks = await buildJwks([provider]);
    const r = results[3]!;
    const invalid = { code: "ERR_ATTESTATION_INVALID" };
    await expect(
      verifyAttestationToken(batch.token, jwks, expectedOf(r), { ...r, proof: batch.proofs[4]! }),
    ).rejects.toMatchObject(invalid);
    for (const field of ["resultId", "cryptletId", "codeHash", "inputHash", "outputHash", "evidenceHash"] as const) {
      const changed = { ...r, [field]: h("forged") };
      await expect(
        verifyAttestationToken(batch.token, jwks, expectedOf(changed), { ...changed, proof: batch.proofs[3]! }),
      ).rejects.toMatchObject(invalid);
    }
    // A result of a different batch, with its own (valid) proof, does not reach this token's root.
    const other = await createBatchAttestationToken(provider, { ...claims, results: [resultOf(100), resultOf(101)] });
    await expect(
      verifyAttestationToken(batch.token, jwks, expectedOf(resultOf(100)), {
        ...resultOf(100),
        proof: other.proofs[0]!,
      }),
    ).rejects.toMatchObject(invalid);
    await expect(verifyAttestationToken(batch.token, jwks, expectedOf(r))).rejects.toThrow(/needs the result's/);
    const single = await createAttestationToken(provider, { ...claims, ...r });
    await expect(
      verifyAttestationToken(single, jwks, expectedOf(r), { ...r, proof: batch.proofs[3]! }),
    ).rejects.toThrow(/per-result token/);
    // The proven leaf's values are then compared with what the verifier expects, as a per-result token's claims.
    await expect(
      verifyAttestationToken(
        batch.token,
        jwks,
        { ...expectedOf(r), inputHash: h("other") },
        { ...r, proof: batch.proofs[3]! },
      ),
    ).rejects.toMatchObject({ code: "ERR_ATTESTATION_CLAIM_MISMATCH" });
  });

  it("refuses a batch token whose sub is not its root, or whose batch claim is malformed", async () => {
    const key = generateLocalP256("attestation");
    const jwks = await buildJwks([key.provider]);
    const batch = await createBatchAttestationToken(key.provider, { ...claims, results });
    const payload = decodeJwt(batch.token);
    const sign = async (edit: (p: Record<string, unknown>) => void) => {
      const p = structuredClone(payload) as Record<string, unknown>;
      edit(p);
      return new SignJWT(p)
        .setProtectedHeader({
          alg: "ES256",
          typ: BATCH_ATTESTATION_TOKEN_TYPE,
          kid: (await key.provider.getPublicKey()).keyId,
        })
        .sign(await importJWK(key.privateJwk, "ES256"));
    };
    const r = results[0]!;
    const proof = { ...r, proof: batch.proofs[0]! };
    await expect(
      verifyAttestationToken(await sign((p) => (p.sub = h("elsewhere"))), jwks, expectedOf(r), proof),
    ).rejects.toThrow(/sub is not the batch root/);
    await expect(
      verifyAttestationToken(
        await sign((p) => (p.batch = { root: payload.sub, count: 0 })),
        jwks,
        expectedOf(r),
        proof,
      ),
    ).rejects.toThrow(/claim batch/);
    // The untouched re-signed token passes (the edits above are what fails).
    await expect(verifyAttestationToken(await sign(() => {}), jwks, expectedOf(r), proof)).resolves.toBeDefined();
  });

  it("decodes a result's claims from a batch token and its proof without verifying", async () => {
    const batch = await createBatchAttestationToken(provider, { ...claims, results });
    const r = results[5]!;
    expect(decodeAttestationClaims(batch.token, { ...r, proof: batch.proofs[5]! })).toMatchObject({
      resultId: r.resultId,
      evidenceHash: r.evidenceHash,
      inputFormat: 2,
    });
    expect(decodeAttestationClaims(batch.token)).toBeUndefined();
    expect(decodeAttestationClaims(`${base64url.encode("{}")}.x.y`)).toBeUndefined();
  });
});

/** A provider that counts signatures and holds each for `delayMs`, or fails while `failing` is set. */
function countingProvider(inner: KeyProvider, delayMs: number): KeyProvider & { signs: number; failing: boolean } {
  const counting = Object.create(inner) as KeyProvider & { signs: number; failing: boolean };
  counting.signs = 0;
  counting.failing = false;
  counting.getPublicKey = () => inner.getPublicKey();
  counting.sign = async (digest, alg) => {
    counting.signs += 1;
    await new Promise((r) => setTimeout(r, delayMs));
    if (counting.failing) throw Object.assign(new Error("vault unavailable"), { code: "ERR_KEY_PROVIDER_UNAVAILABLE" });
    return inner.sign(digest, alg);
  };
  return counting;
}

describe("AttestationTokenBatcher", () => {
  it("signs once for the results asked in one turn, and once more for those asked while it signed", async () => {
    const counting = countingProvider(provider, 50);
    const batcher = new AttestationTokenBatcher(counting);
    const jwks = await buildJwks([provider]);
    const first = Array.from({ length: 20 }, (_, i) => batcher.attest(claims, resultOf(i)));
    await new Promise((r) => setTimeout(r, 10)); // the first token is being signed now
    const second = Array.from({ length: 7 }, (_, i) => batcher.attest(claims, resultOf(20 + i)));
    const done = await Promise.all([...first, ...second]);
    expect(counting.signs).toBe(2);
    expect(batcher.stats()).toEqual({ tokens: 2, results: 27 });
    expect(new Set(done.slice(0, 20).map((d) => d.token)).size).toBe(1);
    expect(new Set(done.slice(20).map((d) => d.token)).size).toBe(1);
    expect(done[0]!.count).toBe(20);
    expect(done[20]!.count).toBe(7);
    for (const [i, d] of done.entries()) {
      expect(d.proof).toMatchObject(resultOf(i));
      await expect(verifyAttestationToken(d.token, jwks, expectedOf(resultOf(i)), d.proof)).resolves.toBeDefined();
    }
  });

  it("keeps results of different sandboxes apart and splits at maxResults", async () => {
    const counting = countingProvider(provider, 5);
    const batcher = new AttestationTokenBatcher(counting, { maxResults: 4 });
    const quickjs: BatchClaims = { ...claims, sandbox: { ...claims.sandbox, engine: "quickjs" } };
    const done = await Promise.all([
      ...Array.from({ length: 6 }, (_, i) => batcher.attest(claims, resultOf(i))),
      ...Array.from({ length: 3 }, (_, i) => batcher.attest(quickjs, resultOf(10 + i))),
    ]);
    expect(done.map((d) => d.count)).toEqual([4, 4, 4, 4, 2, 2, 3, 3, 3]);
    expect(counting.signs).toBe(3);
    for (const d of done.slice(6)) expect(decodeJwt(d.token).sandbox).toMatchObject({ engine: "quickjs" });
    for (const d of done.slice(0, 6)) expect(decodeJwt(d.token).sandbox).toMatchObject({ engine: "isolated-vm" });
  });

  it("fails every result of a token whose signature failed, and signs the next ones", async () => {
    const counting = countingProvider(provider, 5);
    const batcher = new AttestationTokenBatcher(counting);
    counting.failing = true;
    const failed = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => batcher.attest(claims, resultOf(i))));
    expect(failed.map((f) => f.status)).toEqual(Array(5).fill("rejected"));
    expect((failed[0] as PromiseRejectedResult).reason).toMatchObject({ code: "ERR_KEY_PROVIDER_UNAVAILABLE" });
    counting.failing = false;
    const ok = await Promise.all(Array.from({ length: 5 }, (_, i) => batcher.attest(claims, resultOf(i))));
    expect(ok.every((d) => d.count === 5)).toBe(true);
    expect(counting.signs).toBe(2);
  });

  it("refuses a malformed result alone, before it joins a batch", async () => {
    const batcher = new AttestationTokenBatcher(provider);
    const [bad, good] = await Promise.allSettled([
      batcher.attest(claims, { ...resultOf(1), inputHash: "0x1234" as Hex32 }),
      batcher.attest(claims, resultOf(2)),
    ]);
    expect(bad).toMatchObject({ status: "rejected", reason: { code: "ERR_ATTESTATION_INVALID" } });
    expect(good).toMatchObject({ status: "fulfilled", value: { count: 1 } });
  });
});
