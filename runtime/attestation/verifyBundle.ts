/**
 * Offline verification of a proof bundle (docs/proof-bundle.md, "Verification"). Every check yields a
 * verdict (`pass`, `fail`, `skipped`) and a reason; a malformed or forged bundle never makes it throw.
 *
 * Checks, in order: `schema`, `manifest`, `consortium`, `resultId`, `codeHash`, `outputHash`, `signatures`,
 * `merkleProof`, `batchSignatures`, `attestation`, `recipients`, `anchors`. The bundle is `ok` when no check
 * failed; a `skipped` check was not verified (its option was not given, or it does not apply), so callers that
 * need it must pass the option. On-chain checks (`anchors`) are reserved for chain providers in `options.chains`.
 *
 * @module
 */
import { getBytes, isHexString, keccak256 } from "ethers";
import type { JSONWebKeySet } from "jose";

import { recipientsOf } from "../sealing/seal.ts";
import { bundleResultToStruct, validateProofBundle, type ProofBundle } from "./bundle.ts";
import { computeResultId, cryptletResultDigest, resultBatchDigest, type Hex32 } from "./eip712.ts";
import { sealedOutputBytes } from "./hashing.ts";
import { cryptletIdOf } from "./ids.ts";
import { verifyMerkleProof } from "./merkle.ts";
import { evaluateSignatures, type SignatureEvaluation } from "./signing.ts";
import { verifyAttestationToken } from "./token.ts";

/** Names of the checks, in report order. */
export type BundleCheckName =
  | "schema"
  | "manifest"
  | "consortium"
  | "resultId"
  | "codeHash"
  | "outputHash"
  | "signatures"
  | "merkleProof"
  | "batchSignatures"
  | "attestation"
  | "recipients"
  | "anchors";

/** One check's outcome. */
export interface BundleCheck {
  name: BundleCheckName;
  verdict: "pass" | "fail" | "skipped";
  /** Why, in one line (secret-free; never contains payload plaintext). */
  reason: string;
}

/** The verification report. */
export interface VerificationReport {
  /** True when no check failed. */
  ok: boolean;
  checks: BundleCheck[];
  /**
   * The engine and exact engine version that ran the Cryptlet, from the attestation token's `sandbox` claim
   * (docs/proof-bundle.md, "Attestation token"); present when the `attestation` check passed. Re-running the
   * Cryptlet to check its output takes this engine at this version (the engines differ: docs/sandbox.md).
   */
  sandbox?: { engine: string; engineVersion: string };
}

/** Options of {@link verifyBundle}. */
export interface VerifyBundleOptions {
  /** Addresses allowed to sign results and batches (the registry's trusted signers). Required. */
  trustedSigners: readonly string[];
  /**
   * Distinct trusted signers required (M). Required, with no default: a verifier that does not know the
   * consortium's M must not guess one (a guessed 1 passes a bundle with one valid and one forged signature). Take
   * it from the registry (`readRegistryTrust` in runtime/chains/registryTrust.ts) or from the consortium's
   * published trust settings.
   */
  threshold: number;
  /** Expected consortium id; `consortium` is skipped when absent. */
  consortiumId?: string;
  /** Approved `codeHash` values for this Cryptlet; `codeHash` is skipped when absent. */
  approvedCodeHashes?: readonly string[];
  /** The request id to recompute `resultId` with; defaults to the bundle's `requestId`; skipped when neither. */
  requestId?: string;
  /** Accepted attestation keys; `attestation` is skipped when absent. */
  jwks?: JSONWebKeySet;
  /** Expected attestation issuer (runtime id); not compared when absent. */
  attestationIssuer?: string;
  /** Verification time for the attestation token's validity window. Default: now. To check an archived bundle
   *  as of its creation, pass the result's time. */
  now?: Date;
  /** Allowed clock skew for the token, in seconds. Default 0. */
  clockToleranceSeconds?: number;
  /** Reserved for on-chain checks (a later version): JSON-RPC providers by decimal chain id. */
  chains?: Readonly<Record<string, unknown>>;
}

type CheckResult = Pick<BundleCheck, "verdict" | "reason">;
const pass = (reason: string): CheckResult => ({ verdict: "pass", reason });
const fail = (reason: string): CheckResult => ({ verdict: "fail", reason });
const skipped = (reason: string): CheckResult => ({ verdict: "skipped", reason });

const eqHex = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

function describeEvaluation(what: string, e: SignatureEvaluation): CheckResult {
  const rejected = e.rejected.map((r) => `#${r.index} ${r.reason}`).join(", ");
  const summary = `${e.valid.length} distinct trusted ${what} signer(s), threshold ${e.threshold}${rejected ? `; not counted: ${rejected}` : ""}`;
  return e.met ? pass(summary) : fail(summary);
}

function errorReason(e: unknown): string {
  if (typeof e === "object" && e !== null) {
    const { code, shortMessage, message } = e as { code?: unknown; shortMessage?: unknown; message?: unknown };
    const text = typeof shortMessage === "string" ? shortMessage : typeof message === "string" ? message : "error";
    return typeof code === "string" ? `${code}: ${text}` : text;
  }
  return String(e);
}

/**
 * Verifies a proof bundle offline.
 *
 * @param bundle - the parsed JSON (any value: it is schema-checked first).
 * @param options - trusted signers and threshold (both required), approved code hashes, JWKS, verification time...
 * @returns the report; never throws for a bad bundle (a missing or bad `options.threshold` throws `RangeError`).
 *
 * @example
 * ```ts
 * import { verifyBundle } from "./runtime/attestation/verifyBundle.ts";
 * const report = await verifyBundle(JSON.parse(text), {
 *   trustedSigners: ["0x…"], threshold: 2, approvedCodeHashes: ["0x…"], jwks,
 * });
 * if (!report.ok) console.table(report.checks);
 * ```
 */
export async function verifyBundle(bundle: unknown, options: VerifyBundleOptions): Promise<VerificationReport> {
  const { threshold } = options;
  if (!Number.isInteger(threshold) || threshold < 1) throw new RangeError("options.threshold must be an integer ≥ 1");
  const checks: BundleCheck[] = [];
  const add = (name: BundleCheckName, r: CheckResult): void => {
    checks.push({ name, ...r });
  };

  const schemaErrors = validateProofBundle(bundle);
  if (schemaErrors.length > 0) {
    const first = schemaErrors.slice(0, 3).map((e) => `${e.path} ${e.message}`);
    add("schema", fail(`does not match proof-bundle.schema.json: ${first.join("; ")}`));
    const rest: BundleCheckName[] = [
      "manifest",
      "consortium",
      "resultId",
      "codeHash",
      "outputHash",
      "signatures",
      "merkleProof",
      "batchSignatures",
      "attestation",
      "recipients",
      "anchors",
    ];
    for (const name of rest) add(name, skipped("bundle does not match the schema"));
    return { ok: false, checks };
  }
  add("schema", pass("matches proof-bundle.schema.json (version 1)"));
  const b = bundle as ProofBundle;
  const result = bundleResultToStruct(b.result);

  const guarded = async (name: BundleCheckName, run: () => CheckResult | Promise<CheckResult>): Promise<void> => {
    try {
      add(name, await run());
    } catch (e) {
      add(name, fail(errorReason(e)));
    }
  };

  await guarded("manifest", () => {
    const fromName = cryptletIdOf(b.manifest.name);
    if (!eqHex(fromName, b.manifest.cryptletId)) return fail("manifest.cryptletId is not keccak256(manifest.name)");
    if (!eqHex(b.manifest.cryptletId, result.cryptletId))
      return fail("result.cryptletId differs from manifest.cryptletId");
    return pass(`cryptletId = keccak256("${b.manifest.name}")`);
  });

  await guarded("consortium", () => {
    if (options.consortiumId === undefined) return skipped("no expected consortiumId given");
    return eqHex(options.consortiumId, b.consortiumId)
      ? pass("bundle consortiumId is the expected one")
      : fail("bundle consortiumId differs from the expected one");
  });

  await guarded("resultId", () => {
    const requestId = options.requestId ?? b.requestId;
    if (requestId === undefined) return skipped("no requestId given or in the bundle");
    if (!isHexString(requestId, 32)) return fail("requestId is not bytes32");
    const expected = computeResultId(result.cryptletId, requestId as Hex32);
    return eqHex(expected, result.resultId)
      ? pass("resultId = keccak256(abi.encode(cryptletId, requestId))")
      : fail("resultId is not keccak256(abi.encode(cryptletId, requestId))");
  });

  await guarded("codeHash", () => {
    if (options.approvedCodeHashes === undefined) return skipped("no approved codeHash set given");
    return options.approvedCodeHashes.some((h) => eqHex(h, result.codeHash))
      ? pass("codeHash is approved")
      : fail(`codeHash ${result.codeHash} is not in the approved set`);
  });

  await guarded("outputHash", () => {
    const bytes = b.payload.public ? getBytes(b.payload.public.data) : sealedOutputBytes(b.payload.sealed.jwe);
    const kind = b.payload.public ? "ABI payload" : "canonical JWE JSON";
    return eqHex(keccak256(bytes), result.outputHash)
      ? pass(`outputHash = keccak256(${kind}, ${bytes.length} bytes)`)
      : fail(`outputHash differs from keccak256(${kind})`);
  });

  await guarded("signatures", () => {
    if (b.signatures.length === 0 && b.batch !== undefined) {
      return skipped("no per-result signatures: the result is proven by its batch");
    }
    const digest = cryptletResultDigest(b.consortiumId, result);
    return describeEvaluation("result", evaluateSignatures(digest, b.signatures, options.trustedSigners, threshold));
  });

  await guarded("merkleProof", () => {
    if (b.batch === undefined) return skipped("not batched");
    return verifyMerkleProof(b.batch.root, result, b.batch.proof)
      ? pass(`proof of ${b.batch.proof.length} hash(es) reaches the batch root`)
      : fail("Merkle proof does not reach the batch root");
  });

  await guarded("batchSignatures", () => {
    if (b.batch === undefined) return skipped("not batched");
    const digest = resultBatchDigest(b.consortiumId, {
      root: b.batch.root,
      count: b.batch.count,
      timestamp: BigInt(b.batch.timestamp),
    });
    return describeEvaluation(
      "batch",
      evaluateSignatures(digest, b.batch.signatures, options.trustedSigners, threshold),
    );
  });

  let sandbox: VerificationReport["sandbox"];
  await guarded("attestation", async () => {
    if (options.jwks === undefined) return skipped("no JWKS given");
    const { kid, claims } = await verifyAttestationToken(b.attestation, options.jwks, {
      cryptletId: result.cryptletId,
      codeHash: result.codeHash,
      resultId: result.resultId,
      ...(options.attestationIssuer === undefined ? {} : { issuer: options.attestationIssuer }),
      ...(options.now === undefined ? {} : { currentDate: options.now }),
      ...(options.clockToleranceSeconds === undefined ? {} : { clockToleranceSeconds: options.clockToleranceSeconds }),
    });
    sandbox = { engine: claims.sandbox.engine, engineVersion: claims.sandbox.engineVersion };
    return pass(`ES256 token by ${kid}, claims match the result; ran on ${sandbox.engine} ${sandbox.engineVersion}`);
  });

  await guarded("recipients", () => {
    if (b.payload.sealed === undefined) {
      return b.manifest.parties.length === 0
        ? skipped("public payload")
        : fail("manifest names parties but the payload is not sealed");
    }
    const kids = recipientsOf(b.payload.sealed.jwe);
    const expected = b.manifest.parties.map((p) => p.kid);
    const present = new Set(kids.filter((k): k is string => k !== null));
    const missing = expected.filter((k) => !present.has(k));
    const extra = kids.filter((k) => k === null || !expected.includes(k));
    const duplicated = kids.length !== present.size;
    if (missing.length === 0 && extra.length === 0 && !duplicated) {
      return pass(`${kids.length} recipient(s), exactly the manifest's parties`);
    }
    const parts = [
      missing.length > 0 ? `parties not recipients: ${missing.join(", ")}` : "",
      extra.length > 0 ? `recipients not parties: ${extra.map((k) => k ?? "(no kid)").join(", ")}` : "",
      duplicated ? "duplicate recipients" : "",
    ].filter(Boolean);
    return fail(parts.join("; "));
  });

  await guarded("anchors", () => {
    const ids = b.anchors.map((a) => a.chainId);
    if (new Set(ids).size !== ids.length) return fail("more than one anchor for one chain");
    return skipped(
      b.anchors.length === 0
        ? "no anchors"
        : `${b.anchors.length} anchor(s) listed; on-chain checks need chain providers (not in this version)`,
    );
  });

  return { ok: checks.every((c) => c.verdict !== "fail"), checks, ...(sandbox === undefined ? {} : { sandbox }) };
}
