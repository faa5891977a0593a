/**
 * Our proof-bundle test vectors (test/vectors/proof-bundle/vectors.json): every case's verdicts must match the
 * file, and independently of the file, each tampered case must fail exactly the checks listed here.
 */
import { readFileSync } from "node:fs";

import canonicalizeModule from "canonicalize";
import { keccak256, toUtf8Bytes } from "ethers";

import type { JSONWebKeySet, JWK } from "jose";

import { verifyBundle } from "../../runtime/attestation/verifyBundle.ts";
import { open } from "../../runtime/sealing/open.ts";

interface Vectors {
  trust: {
    trustedSigners: string[];
    threshold: number;
    consortiumId: string;
    approvedCodeHashes: string[];
    jwks: JSONWebKeySet;
    now: string;
  };
  cases: {
    name: string;
    bundle: unknown;
    optionOverrides?: { now?: string };
    expected: { ok: boolean; checks: Record<string, string> };
  }[];
}
const read = <T>(name: string): T =>
  JSON.parse(readFileSync(new URL(`../vectors/proof-bundle/${name}`, import.meta.url), "utf8")) as T;
// CommonJS package: the default import is the function under Node's ESM, the module object under the type checker.
const canonicalize = ((canonicalizeModule as unknown as { default?: unknown }).default ?? canonicalizeModule) as (
  value: unknown,
) => string | undefined;

const vectors = read<Vectors>("vectors.json");
const keys = read<{ parties: { name: string; jwk: JWK }[] }>("keys.json");

/** The checks each case must fail (all others pass or are skipped). */
const MUST_FAIL: Record<string, string[]> = {
  "valid-public": [],
  "valid-sealed-batched": [],
  "tampered-payload": ["outputHash"],
  "tampered-signature": ["signatures"],
  "high-s-signature": ["signatures"],
  "duplicate-signer": ["signatures"],
  "untrusted-signer": ["signatures"],
  "tampered-merkle-proof": ["merkleProof"],
  "unapproved-code-hash": ["codeHash"],
  "expired-attestation": ["attestation"],
  "unknown-attestation-key": ["attestation"],
  "attestation-for-another-result": ["attestation", "evidence"],
  "party-not-a-recipient": ["recipients", "evidence"],
  "wrong-request-id": ["resultId", "evidence"],
  "schema-invalid": ["schema"],
  "tampered-evidence": ["attestation", "evidence"],
  "evidence-stripped": [],
};

describe("proof-bundle vectors", () => {
  it("cover every listed case", () => {
    expect(vectors.cases.map((c) => c.name).sort()).toEqual(Object.keys(MUST_FAIL).sort());
  });

  it.each(vectors.cases.map((c) => [c.name, c] as const))("%s", async (name, c) => {
    const now = new Date(c.optionOverrides?.now ?? vectors.trust.now);
    const report = await verifyBundle(c.bundle, { ...vectors.trust, now });
    const verdicts = Object.fromEntries(report.checks.map((k) => [k.name, k.verdict]));
    expect(verdicts).toEqual(c.expected.checks);
    expect(report.ok).toBe(c.expected.ok);
    const failed = report.checks.filter((k) => k.verdict === "fail").map((k) => k.name);
    expect(failed).toEqual(MUST_FAIL[name]);
    for (const check of report.checks) expect(check.reason.length).toBeGreaterThan(0);
  });

  it("the sealed vector opens with each party's test key", async () => {
    const sealed = vectors.cases.find((c) => c.name === "valid-sealed-batched")!.bundle as {
      payload: { sealed: { jwe: unknown } };
    };
    for (const party of keys.parties) {
      const text = new TextDecoder().decode(await open(sealed.payload.sealed.jwe, party.jwk));
      expect(JSON.parse(text)).toEqual({ answer: "227124622660", decimals: 8, observedAt: 1704412800 });
    }
  });

  it("the sealed vector's evidence opens with each party's key, and its commitment is the result's inputHash", async () => {
    const sealed = vectors.cases.find((c) => c.name === "valid-sealed-batched")!.bundle as {
      result: { inputHash: string };
      evidence: { sealed: { jwe: unknown } };
    };
    for (const party of keys.parties) {
      const evidence = JSON.parse(new TextDecoder().decode(await open(sealed.evidence.sealed.jwe, party.jwk))) as {
        fetches: unknown[];
        event: { slotTime: number };
      };
      expect(evidence.event.slotTime).toBe(1704412800);
      // The commitment is the evidence without response bodies; with no fetch, the evidence itself. Hashed here
      // with the canonicalize package and ethers' keccak256 directly, not with runtime/attestation/evidence.ts.
      expect(evidence.fetches).toEqual([]);
      expect(keccak256(toUtf8Bytes(canonicalize(evidence)!))).toBe(sealed.result.inputHash);
    }
  });

  it("gives the reasons a reader needs (high-s, duplicate, expired, unknown kid)", async () => {
    const reason = async (name: string, check: string): Promise<string> => {
      const c = vectors.cases.find((x) => x.name === name)!;
      const report = await verifyBundle(c.bundle, {
        ...vectors.trust,
        now: new Date(c.optionOverrides?.now ?? vectors.trust.now),
      });
      return report.checks.find((k) => k.name === check)!.reason;
    };
    expect(await reason("high-s-signature", "signatures")).toContain("#0 high-s");
    expect(await reason("duplicate-signer", "signatures")).toContain("#1 duplicate");
    expect(await reason("expired-attestation", "attestation")).toContain("ERR_ATTESTATION_EXPIRED");
    expect(await reason("unknown-attestation-key", "attestation")).toContain("ERR_ATTESTATION_UNKNOWN_KID");
    expect(await reason("attestation-for-another-result", "attestation")).toContain("ERR_ATTESTATION_CLAIM_MISMATCH");
  });
});
