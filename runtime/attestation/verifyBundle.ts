/**
 * Offline verification of a proof bundle (docs/proof-bundle.md, "Verification"). Every check yields a
 * verdict (`pass`, `fail`, `skipped`) and a reason; a malformed or forged bundle never makes it throw.
 *
 * Checks, in order: `schema`, `manifest`, `consortium`, `resultId`, `codeHash`, `outputHash`, `signatures`,
 * `merkleProof`, `batchSignatures`, `attestation`, `recipients`, `proofs`, `anchors`. The bundle is `ok` when no
 * check failed; a `skipped` check was not verified (its option was not given, or it does not apply), so callers
 * that need it must pass the option. `proofs` compares the proofs present with the ones the write modes require
 * (a stripped proof fails it). The on-chain `anchors` check runs only when chain providers are given in
 * `options.chains`; without them no chain is touched.
 *
 * @module
 */
import { getBytes, isHexString, keccak256, type Provider } from "ethers";
import type { JSONWebKeySet } from "jose";

import { checkAnchor } from "../chains/anchorCheck.ts";
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
  | "proofs"
  | "anchors";

/** The proofs a bundle can carry (docs/proof-bundle.md, "Required proofs"). */
export type BundleProofKind = "signatures" | "batch" | "attestation" | "anchors";

/** Which proofs a bundle carries and which the trust policy requires of it, with why. */
export interface ProofsReport {
  /** The proofs the bundle carries: `signatures` (per-result), `batch` (batch signatures + Merkle proof),
   *  `attestation` (the token), `anchors` (at least one chain write). */
  present: BundleProofKind[];
  /** The proofs required, each with the reason (e.g. "record write on chain 31337"). */
  required: { proof: BundleProofKind; why: string }[];
  /** Required proofs that are absent (the `proofs` check fails when any is). */
  missing: BundleProofKind[];
}

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
  /** The proofs present and required (absent when the bundle does not match the schema). */
  proofs?: ProofsReport;
}

/** A write mode of a proof bundle's anchor (and of a receipt's target). */
export type WriteMode = "record" | "anchor" | "fulfill" | "submit";

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
  /**
   * JSON-RPC providers by decimal chain id. When given, the bundle is verified on-chain: it must have anchors,
   * and each anchor on a chain given here is checked (`checkAnchor`, runtime/chains/anchorCheck.ts): the
   * transaction is in the named block, succeeded, has `confirmations`, emitted this result's (or batch's) event
   * with the same hashes, and the contract's views agree. Anchors on other chains are listed as not checked;
   * at least one must be checked. The caller checks that each provider serves the chain id it is listed under.
   */
  chains?: Readonly<Record<string, Provider>>;
  /** Confirmations each checked anchor needs (with `chains`). Default 1. */
  confirmations?: number;
  /**
   * Write modes the result is known to have been written in besides its anchors' (e.g. a composite receipt's
   * targets): each adds the proofs that mode requires (`record`/`fulfill`/`submit`: per-result signatures;
   * `anchor`: the batch).
   */
  writeModes?: readonly WriteMode[];
}

/** Human names of the proofs, for reasons. */
const PROOF_NAMES: Record<BundleProofKind, string> = {
  signatures: "per-result signatures",
  batch: "batch signatures + Merkle proof",
  attestation: "attestation token",
  anchors: "anchors",
};

/**
 * The proofs `bundle` carries and the ones required of it: per-result signatures for a `record`, `fulfill` or
 * `submit` write (the contract checked those signatures; a batch does not stand in for them) and whenever there is
 * no batch; the batch (its signatures and Merkle proof) for an `anchor` write; the attestation token always;
 * anchors when verifying on-chain.
 * @param bundle - a schema-valid bundle.
 * @param options.onChain - whether the verification is on-chain (anchors then required).
 * @param options.writeModes - modes known besides the anchors' (e.g. a receipt's targets).
 */
export function proofsOf(
  bundle: ProofBundle,
  options: { onChain?: boolean; writeModes?: readonly WriteMode[] } = {},
): ProofsReport {
  const present: BundleProofKind[] = [];
  if (bundle.signatures.length > 0) present.push("signatures");
  if (bundle.batch !== undefined) present.push("batch");
  if (bundle.attestation.length > 0) present.push("attestation");
  if (bundle.anchors.length > 0) present.push("anchors");
  const required: ProofsReport["required"] = [];
  const need = (proof: BundleProofKind, why: string) => {
    if (!required.some((r) => r.proof === proof)) required.push({ proof, why });
  };
  const writes = [
    ...bundle.anchors.map((a) => ({ mode: a.mode, where: `${a.mode} write on chain ${a.chainId}` })),
    ...(options.writeModes ?? []).map((mode) => ({ mode, where: `${mode} target` })),
  ];
  for (const w of writes) {
    if (w.mode === "anchor") need("batch", `the ${w.where}`);
    else need("signatures", `the ${w.where}`);
  }
  if (bundle.batch === undefined) need("signatures", "no batch: the result's own signatures are its only proof");
  need("attestation", "always");
  if (options.onChain) need("anchors", "verifying on-chain");
  const missing = required.map((r) => r.proof).filter((p) => !present.includes(p));
  return { present, required, missing };
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
      "proofs",
      "anchors",
    ];
    for (const name of rest) add(name, skipped("bundle does not match the schema"));
    return { ok: false, checks };
  }
  add("schema", pass("matches proof-bundle.schema.json (version 1)"));
  const b = bundle as ProofBundle;
  const result = bundleResultToStruct(b.result);
  const proofs = proofsOf(b, {
    onChain: options.chains !== undefined,
    ...(options.writeModes === undefined ? {} : { writeModes: options.writeModes }),
  });
  const signaturesRequired = proofs.required.some((r) => r.proof === "signatures");

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
    if (b.signatures.length === 0 && b.batch !== undefined && !signaturesRequired) {
      return skipped("no per-result signatures: the result is proven by its batch");
    }
    if (b.signatures.length === 0) {
      const why = proofs.required.find((r) => r.proof === "signatures")?.why ?? "";
      return fail(`no per-result signatures, required by ${why} (threshold ${threshold})`);
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
    if (options.jwks === undefined) return skipped("not checked (no JWKS)");
    const { kid, claims } = await verifyAttestationToken(b.attestation, options.jwks, {
      cryptletId: result.cryptletId,
      codeHash: result.codeHash,
      resultId: result.resultId,
      consortiumId: b.consortiumId,
      inputHash: result.inputHash,
      outputHash: result.outputHash,
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

  await guarded("proofs", () => {
    const present = proofs.present.map((p) => PROOF_NAMES[p]).join(", ") || "none";
    const required = proofs.required.map((r) => `${PROOF_NAMES[r.proof]} (${r.why})`).join(", ");
    if (proofs.missing.length === 0) return pass(`present: ${present}; required: ${required}`);
    const missing = proofs.required
      .filter((r) => proofs.missing.includes(r.proof))
      .map((r) => `${PROOF_NAMES[r.proof]} (required by ${r.why})`);
    return fail(`missing: ${missing.join(", ")}; present: ${present}`);
  });

  await guarded("anchors", async () => {
    const ids = b.anchors.map((a) => a.chainId);
    if (new Set(ids).size !== ids.length) return fail("more than one anchor for one chain");
    const chains = options.chains;
    if (chains === undefined) {
      return skipped(
        b.anchors.length === 0
          ? "no anchors"
          : `${b.anchors.length} anchor(s) listed; not checked on-chain (no chain providers given)`,
      );
    }
    if (b.anchors.length === 0) return fail("no anchors: a result verified on-chain must name its writes");
    const held: string[] = [];
    const failed: string[] = [];
    const unchecked: string[] = [];
    for (const anchor of b.anchors) {
      const provider = chains[anchor.chainId];
      if (provider === undefined) {
        unchecked.push(anchor.chainId);
        continue;
      }
      const outcome = await checkAnchor(provider, b, anchor, {
        ...(options.confirmations === undefined ? {} : { confirmations: options.confirmations }),
      });
      (outcome.ok ? held : failed).push(outcome.reason);
    }
    const notChecked = unchecked.length > 0 ? `; not checked (no provider): chain ${unchecked.join(", ")}` : "";
    if (failed.length > 0) return fail(`${failed.join("; ")}${notChecked}`);
    if (held.length === 0) return fail(`none of the ${b.anchors.length} anchor(s) is on a chain given${notChecked}`);
    return pass(`${held.join("; ")}${notChecked}`);
  });

  return {
    ok: checks.every((c) => c.verdict !== "fail"),
    checks,
    ...(sandbox === undefined ? {} : { sandbox }),
    proofs,
  };
}
