import { bundleEvidenceHash } from "../../runtime/attestation/evidence.ts";
import { Wallet } from "ethers";
import { decodeJwt, exportJWK, generateKeyPair, type JWK, type JSONWebKeySet } from "jose";

import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import { assertProofBundle, type ProofBundle } from "../../runtime/attestation/bundle.ts";
import { buildJwks, createAttestationToken, createBatchAttestationToken } from "../../runtime/attestation/token.ts";
import { verifyBundle, type VerifyBundleOptions } from "../../runtime/attestation/verifyBundle.ts";
import { isCryptletError } from "../../runtime/errors.ts";
import { open } from "../../runtime/sealing/open.ts";
import { generateLocalP256 } from "../attestation/localKeys.ts";
import { CODE_HASH, CONSORTIUM_ID, makeBundle, type FixtureKeys } from "./bundleFixture.ts";

let keys: FixtureKeys;
let partyPrivate: JWK[];
let jwks: JSONWebKeySet;
let options: VerifyBundleOptions;
let publicBundle: ProofBundle;
let sealedBundle: ProofBundle;
let plaintext: string;

beforeAll(async () => {
  const wallets = [Wallet.createRandom(), Wallet.createRandom(), Wallet.createRandom()];
  const attestation = generateLocalP256("attestation").provider;
  const parties = [];
  partyPrivate = [];
  for (const [alg, opts] of [
    ["ECDH-ES+A256KW", { crv: "P-256" }],
    ["ECDH-ES+A256KW", { crv: "X25519" }],
    ["RSA-OAEP-256", { modulusLength: 2048 }],
  ] as const) {
    const kp = await generateKeyPair(alg, { ...opts, extractable: true });
    parties.push({ name: `party ${parties.length}`, jwk: await exportJWK(kp.publicKey) });
    partyPrivate.push(await exportJWK(kp.privateKey));
  }
  keys = { signers: wallets.slice(0, 2), attestation, parties };
  jwks = await buildJwks([attestation]);
  options = {
    trustedSigners: wallets.map((w) => w.address),
    threshold: 2,
    consortiumId: CONSORTIUM_ID,
    approvedCodeHashes: [CODE_HASH],
    jwks,
    now: new Date("2024-01-05T00:05:00Z"),
  };
  publicBundle = (await makeBundle(keys)).bundle;
  const sealed = await makeBundle(keys, { sealed: true });
  sealedBundle = sealed.bundle;
  plaintext = sealed.plaintext!;
});

const verdicts = (checks: { name: string; verdict: string }[]): Record<string, string> =>
  Object.fromEntries(checks.map((c) => [c.name, c.verdict]));

describe("verifyBundle", () => {
  it("passes a freshly built public bundle, surviving a JSON round trip", async () => {
    const report = await verifyBundle(JSON.parse(JSON.stringify(publicBundle)), options);
    expect(report.ok).toBe(true);
    expect(verdicts(report.checks)).toEqual({
      schema: "pass",
      manifest: "pass",
      consortium: "pass",
      resultId: "pass",
      codeHash: "pass",
      outputHash: "pass",
      signatures: "pass",
      merkleProof: "skipped",
      batchSignatures: "skipped",
      attestation: "pass",
      recipients: "skipped",
      evidence: "pass",
      reexecution: "skipped",
      proofs: "pass",
      anchors: "skipped",
    });
    expect(report.proofs).toEqual({
      present: ["signatures", "attestation", "evidence", "anchors"],
      required: [
        { proof: "signatures", why: "the record write on chain 31337" },
        { proof: "attestation", why: "always" },
      ],
      missing: [],
    });
    // The engine that ran the Cryptlet, from the verified token.
    expect(report.sandbox).toEqual({ engine: "isolated-vm", engineVersion: "7.0.1+v8.13.6.233.17-node.53" });
    expect(report.checks.find((c) => c.name === "attestation")?.reason).toContain(
      "ran on isolated-vm 7.0.1+v8.13.6.233.17-node.53",
    );
  });

  it("passes a sealed bundle whose payload each party opens", async () => {
    const report = await verifyBundle(sealedBundle, options);
    expect(report.ok).toBe(true);
    expect(verdicts(report.checks)).toMatchObject({ outputHash: "pass", recipients: "pass", signatures: "pass" });
    for (const key of partyPrivate) {
      expect(new TextDecoder().decode(await open(sealedBundle.payload.sealed!.jwe, key))).toBe(plaintext);
    }
    // The bundle text never holds the plaintext.
    expect(JSON.stringify(sealedBundle)).not.toContain("227124622660");
  });

  it("requires the proofs of each write mode: stripped per-result signatures beside a batch are INVALID", async () => {
    // A result recorded on chain 31337 and batched, whose per-result signatures were removed.
    const batched = (await makeBundle(keys, { batchSize: 3 })).bundle;
    const withBatch: ProofBundle = { ...batched, signatures: [], anchors: publicBundle.anchors };
    const stripped = await verifyBundle(withBatch, options);
    expect(stripped.ok).toBe(false);
    const proofs = stripped.checks.find((c) => c.name === "proofs")!;
    expect(proofs.verdict).toBe("fail");
    expect(proofs.reason).toMatch(
      /^missing: per-result signatures \(required by the record write on chain 31337\); present: batch signatures \+ Merkle proof, attestation token, evidence, anchors$/,
    );
    expect(stripped.checks.find((c) => c.name === "signatures")).toMatchObject({
      verdict: "fail",
      reason: "no per-result signatures, required by the record write on chain 31337 (threshold 2)",
    });
    expect(stripped.proofs?.missing).toEqual(["signatures"]);
    // The same batch without any write (or with an anchor-mode write) needs no per-result signatures.
    expect((await verifyBundle(batched, options)).ok).toBe(true);
    const anchorMode = { ...withBatch, anchors: [{ ...publicBundle.anchors[0]!, mode: "anchor" as const }] };
    expect((await verifyBundle(anchorMode, options)).ok).toBe(true);
    // ...unless a receipt's target says it was recorded.
    const viaTarget = await verifyBundle(batched, { ...options, writeModes: ["record"] });
    expect(viaTarget.checks.find((c) => c.name === "proofs")?.reason).toMatch(
      /^missing: per-result signatures \(required by the record target\)/,
    );
    // An anchor-mode write without its batch is INVALID, and a bundle with both is VALID.
    const noBatch = { ...publicBundle, anchors: [{ ...publicBundle.anchors[0]!, mode: "anchor" as const }] };
    const withoutBatch = await verifyBundle(noBatch, options);
    expect(withoutBatch.checks.find((c) => c.name === "proofs")).toMatchObject({
      verdict: "fail",
      reason: expect.stringMatching(
        /^missing: batch signatures \+ Merkle proof \(required by the anchor write on chain 31337\)/,
      ),
    });
  });

  it("fails a token that binds another input, output or consortium than the bundle's result", async () => {
    const claims = decodeJwt(publicBundle.attestation);
    for (const [field, value] of [
      ["inputHash", `0x${"11".repeat(32)}`],
      ["outputHash", `0x${"22".repeat(32)}`],
      ["consortiumId", `0x${"33".repeat(32)}`],
    ] as const) {
      // A valid token, signed by the trusted attestation key, but for another run.
      const token = await createAttestationToken(keys.attestation, {
        issuer: claims.iss!,
        cryptletId: publicBundle.result.cryptletId,
        codeHash: publicBundle.result.codeHash,
        resultId: publicBundle.result.resultId,
        consortiumId: publicBundle.consortiumId,
        inputHash: publicBundle.result.inputHash,
        outputHash: publicBundle.result.outputHash,
        evidenceHash: bundleEvidenceHash(publicBundle.evidence!),
        [field]: value,
        runtime: claims.runtime as { version: string; buildHash: string },
        sandbox: claims.sandbox as never,
        now: new Date(Number(claims.iat) * 1000),
      });
      const report = await verifyBundle({ ...publicBundle, attestation: token }, options);
      const check = report.checks.find((c) => c.name === "attestation");
      expect({ field, verdict: check?.verdict }).toEqual({ field, verdict: "fail" });
      expect(check?.reason).toContain(field === "consortiumId" ? "aud" : field);
    }
  });

  it("passes a result under a batch attestation token, and fails it without or with a wrong attestation proof", async () => {
    for (const original of [publicBundle, sealedBundle]) {
      const claims = decodeJwt(original.attestation);
      const r = original.result;
      const evidenceHash = bundleEvidenceHash(original.evidence!);
      // The bundle's result among two others under one batch token (as the attest stage issues in anchor mode).
      const [first, second] = [1, 2].map((i) => ({
        ...r,
        resultId: `0x${String(i).repeat(64)}` as Hex32,
        evidenceHash,
      }));
      const batch = await createBatchAttestationToken(keys.attestation, {
        issuer: claims.iss!,
        consortiumId: original.consortiumId,
        runtime: claims.runtime as { version: string; buildHash: string },
        sandbox: claims.sandbox as never,
        now: new Date(Number(claims.iat) * 1000),
        results: [first!, { ...r, evidenceHash }, second!],
      });
      const bundle: ProofBundle = {
        ...original,
        attestation: batch.token,
        attestationProof: { evidenceHash, proof: batch.proofs[1]! },
      };
      assertProofBundle(bundle);
      const report = await verifyBundle(JSON.parse(JSON.stringify(bundle)), { ...options, partyKeys: partyPrivate });
      expect(report.ok).toBe(true);
      expect(report.checks.find((c) => c.name === "attestation")?.reason).toMatch(/batch token of 3 result\(s\)/);
      expect(report.checks.find((c) => c.name === "evidence")?.verdict).toBe("pass");

      const attestationOf = async (b: unknown) =>
        (await verifyBundle(b, options)).checks.find((c) => c.name === "attestation")!;
      const { attestationProof: _dropped, ...withoutProof } = bundle;
      expect(await attestationOf(withoutProof)).toMatchObject({
        verdict: "fail",
        reason: expect.stringMatching(/needs the result's attestation proof/),
      });
      expect(
        await attestationOf({ ...bundle, attestationProof: { evidenceHash, proof: batch.proofs[0] } }),
      ).toMatchObject({ verdict: "fail", reason: expect.stringMatching(/does not reach the batch token's root/) });
      expect(await attestationOf({ ...original, attestationProof: bundle.attestationProof })).toMatchObject({
        verdict: "fail",
        reason: expect.stringMatching(/per-result token/),
      });
      // Another evidence than the leaf's: the proof fails with the carried hash, and the evidence check with the leaf's.
      const otherEvidence = { public: { ...publicBundle.evidence!.public!, input: { changed: true } } };
      const swapped = await verifyBundle({ ...bundle, evidence: otherEvidence }, options);
      expect(swapped.checks.find((c) => c.name === "evidence")?.verdict).toBe("fail");
      const relabelled = await verifyBundle(
        { ...bundle, attestationProof: { evidenceHash: bundleEvidenceHash(otherEvidence), proof: batch.proofs[1] } },
        options,
      );
      expect(relabelled.checks.find((c) => c.name === "attestation")?.verdict).toBe("fail");
    }
  });

  it("skips what it was not asked to check", async () => {
    const report = await verifyBundle(publicBundle, { trustedSigners: options.trustedSigners, threshold: 2 });
    expect(report.ok).toBe(true);
    expect(verdicts(report.checks)).toMatchObject({
      consortium: "skipped",
      codeHash: "skipped",
      attestation: "skipped",
    });
    // An unverified token names no engine.
    expect(report.sandbox).toBeUndefined();
  });

  it("fails a consortium mismatch, a threshold higher than the signers, a tampered JWE and a swapped result field", async () => {
    const other = await verifyBundle(publicBundle, { ...options, consortiumId: `0x${"00".repeat(32)}` });
    expect(verdicts(other.checks).consortium).toBe("fail");
    const m3 = await verifyBundle(publicBundle, { ...options, threshold: 3 });
    expect(verdicts(m3.checks).signatures).toBe("fail");
    const tamperedJwe = structuredClone(sealedBundle);
    const ct = tamperedJwe.payload.sealed!.jwe.ciphertext;
    tamperedJwe.payload.sealed!.jwe.ciphertext = `${ct[0] === "A" ? "B" : "A"}${ct.slice(1)}`;
    expect(verdicts((await verifyBundle(tamperedJwe, options)).checks).outputHash).toBe("fail");
    const swapped = structuredClone(publicBundle);
    swapped.result.inputHash = swapped.result.outputHash;
    const r = verdicts((await verifyBundle(swapped, options)).checks);
    expect(r.signatures).toBe("fail");
    expect(r.outputHash).toBe("pass");
  });

  it("fails a public bundle whose manifest names parties, and a wrong cryptletId", async () => {
    const b = structuredClone(publicBundle);
    b.manifest.parties = [{ name: "x", kid: "y" }];
    expect(verdicts((await verifyBundle(b, options)).checks).recipients).toBe("fail");
    const c = structuredClone(publicBundle);
    c.manifest.name = "@acme/other";
    expect(verdicts((await verifyBundle(c, options)).checks).manifest).toBe("fail");
  });

  it("never throws for a bad bundle", async () => {
    const overflow = structuredClone(publicBundle);
    overflow.result.timestamp = "99999999999999999999"; // fits the schema's digits, not uint64
    const badJwe = structuredClone(sealedBundle);
    (badJwe.payload.sealed!.jwe as unknown as { recipients: unknown[] }).recipients = [{ header: { alg: 1, kid: 2 } }];
    const inputs: unknown[] = [
      null,
      undefined,
      42,
      "bundle",
      [],
      {},
      { bundleVersion: 1 },
      { ...publicBundle, signatures: "0x" },
      { ...publicBundle, payload: { public: publicBundle.payload.public, sealed: sealedBundle.payload.sealed } },
      { ...publicBundle, bundleVersion: 2 },
      overflow,
      badJwe,
    ];
    for (const input of inputs) {
      const report = await verifyBundle(input, options);
      expect(report.ok).toBe(false);
      expect(report.checks.length).toBe(15);
    }
    const o = verdicts((await verifyBundle(overflow, options)).checks);
    expect(o.schema).toBe("pass");
    expect(o.signatures).toBe("fail");
  });

  it("throws only for a bad option (threshold < 1)", async () => {
    await expect(verifyBundle(publicBundle, { ...options, threshold: 0 })).rejects.toThrow(RangeError);
  });
});

describe("assertProofBundle", () => {
  it("names the schema errors with JSON Pointer paths", () => {
    const bad = { ...structuredClone(publicBundle), extra: true } as unknown;
    try {
      assertProofBundle(bad);
      throw new Error("expected an error");
    } catch (e) {
      expect(isCryptletError(e, "ERR_PROOF_BUNDLE_SCHEMA")).toBe(true);
      expect((e as { details: { errors: { path: string; message: string }[] } }).details.errors).toContainEqual({
        path: "/",
        message: "must NOT have additional properties (extra)",
      });
    }
    expect(() => assertProofBundle(publicBundle)).not.toThrow();
  });
});
