/**
 * Offline verification of a proof bundle (docs/proof-bundle.md, "Verification"). Every check yields a
 * verdict (`pass`, `fail`, `skipped`) and a reason; a malformed or forged bundle never makes it throw.
 *
 * Checks, in order: `schema`, `manifest`, `consortium`, `resultId`, `codeHash`, `outputHash`, `signatures`,
 * `merkleProof`, `batchSignatures`, `attestation`, `recipients`, `evidence`, `reexecution`, `proofs`, `anchors`.
 * The bundle is `ok` when no check failed; a `skipped` check was not verified (its option was not given, or it does
 * not apply), so callers that need it must pass the option. `proofs` compares the proofs present with the ones the
 * write modes require (a stripped proof fails it). `evidence` checks the run's evidence against `inputHash` and the
 * token; `reexecution` re-runs the Cryptlet on it when a re-executor is given. The on-chain `anchors` check runs only when chain providers are given in
 * `options.chains`; without them no chain is touched.
 *
 * @module
 */
import { getBytes, isHexString, keccak256, type Provider } from "ethers";
import type { JSONWebKeySet } from "jose";

import { checkAnchor } from "../chains/anchorCheck.ts";
import type { open } from "../sealing/open.ts";
import { recipientsOf } from "../sealing/seal.ts";
import { bundleResultToStruct, validateProofBundle, type ProofBundle } from "./bundle.ts";
import {
  bundleEvidenceHash,
  checkRunEvidence,
  evidenceInputHash,
  openRunEvidence,
  type RunEvidence,
} from "./evidence.ts";
import { computeResultId, cryptletResultDigest, resultBatchDigest, type Hex32 } from "./eip712.ts";
import { sealedOutputBytes } from "./hashing.ts";
import { cryptletIdOf } from "./ids.ts";
import { verifyMerkleProof } from "./merkle.ts";
import { evaluateSignatures, type SignatureEvaluation } from "./signing.ts";
import {
  decodeAttestationClaims,
  verifyAttestationToken,
  type AttestationClaims,
  type AttestationLeafProof,
} from "./token.ts";

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
  | "evidence"
  | "reexecution"
  | "proofs"
  | "anchors";

/** The proofs a bundle can carry (docs/proof-bundle.md, "Required proofs"). */
export type BundleProofKind = "signatures" | "batch" | "attestation" | "evidence" | "anchors";

/** Which proofs a bundle carries and which the trust policy requires of it, with why. */
export interface ProofsReport {
  /** The proofs the bundle carries: `signatures` (per-result), `batch` (batch signatures + Merkle proof),
   *  `attestation` (the token), `evidence` (the run's evidence), `anchors` (at least one chain write). */
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
  /**
   * `signatures` and `batchSignatures`: the distinct trusted signers whose signature counted (EIP-55, in the
   * bundle's order), each with its consortium member id when `options.signerMembers` names it.
   */
  signers?: { address: string; member?: string }[];
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
export type WriteMode = "record" | "anchor" | "fulfill" | "submit" | "mint" | "release" | "refund";

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
  /**
   * The consortium member id of each trusted signer (address in any case → member id), e.g. read from the
   * registry's `signerMember` views (`readRegistryTrust`); used only to say who signed, never to decide.
   */
  signerMembers?: Readonly<Record<string, string>>;
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
   * targets): each adds the proofs that mode requires (`record`/`fulfill`/`submit` and the cross-chain
   * `mint`/`release`/`refund`: per-result signatures; `anchor`: the batch).
   */
  writeModes?: readonly WriteMode[];
  /**
   * Private keys of parties of a sealed Cryptlet (JWKs or key objects). With one that opens the sealed evidence,
   * the `evidence` check checks its contents as for a public one, and re-execution can use it.
   */
  partyKeys?: readonly PartyKey[];
  /**
   * Re-executes the Cryptlet on the bundle's evidence (runtime/reexecution/reexecute.ts `createReexecutor`). When
   * given, re-execution is required: the evidence becomes a required proof and the `reexecution` check fails
   * unless the re-run reproduces `inputHash` and `outputHash`.
   */
  reexecutor?: Reexecutor;
}

/** A party's private key, as `open` (runtime/sealing/open.ts) takes it. */
export type PartyKey = Parameters<typeof open>[1];

/**
 * What {@link verifyBundle} calls to re-execute (implemented in runtime/reexecution/, which runs the sandbox: kept
 * behind this interface so offline verification does not load a sandbox unless asked to).
 */
export interface Reexecutor {
  /**
   * Re-runs the bundle's Cryptlet on `evidence` (already checked against `inputHash`) and compares.
   * @returns the check's verdict and reason; never throws for a failed re-run.
   */
  reexecute(
    bundle: ProofBundle,
    evidence: RunEvidence,
    options: { partyKeys: readonly PartyKey[] },
  ): Promise<{ verdict: "pass" | "fail"; reason: string }>;
}

/** Human names of the proofs, for reasons. */
const PROOF_NAMES: Record<BundleProofKind, string> = {
  signatures: "per-result signatures",
  batch: "batch signatures + Merkle proof",
  attestation: "attestation token",
  evidence: "evidence",
  anchors: "anchors",
};

/**
 * The proof each write mode requires: the batch (its signatures and Merkle proof) for `anchor`, which is all
 * `ResultLedger.anchor` checked; the per-result signatures for every mode whose contract checked them itself
 * (`record`, `fulfill`, `submit`, and the cross-chain `mint`, `release`, `refund`).
 */
const PROOF_OF_WRITE: Readonly<Record<WriteMode, "signatures" | "batch">> = {
  record: "signatures",
  anchor: "batch",
  fulfill: "signatures",
  submit: "signatures",
  mint: "signatures",
  release: "signatures",
  refund: "signatures",
};

/**
 * The proofs `bundle` carries and the ones required of it: per-result signatures for a `record`, `fulfill`,
 * `submit`, `mint`, `release` or `refund` write (the contract checked those signatures; a batch does not stand in
 * for them) and whenever there is no batch; the batch (its signatures and Merkle proof) for an `anchor` write; the
 * attestation token always; anchors when verifying on-chain.
 * @param bundle - a schema-valid bundle.
 * @param options.onChain - whether the verification is on-chain (anchors then required).
 * @param options.writeModes - modes known besides the anchors' (e.g. a receipt's targets).
 * @param options.reexecution - whether re-execution is required (the evidence then is).
 */
export function proofsOf(
  bundle: ProofBundle,
  options: { onChain?: boolean; writeModes?: readonly WriteMode[]; reexecution?: boolean } = {},
): ProofsReport {
  const present: BundleProofKind[] = [];
  if (bundle.signatures.length > 0) present.push("signatures");
  if (bundle.batch !== undefined) present.push("batch");
  if (bundle.attestation.length > 0) present.push("attestation");
  if (bundle.evidence !== undefined) present.push("evidence");
  if (bundle.anchors.length > 0) present.push("anchors");
  const required: ProofsReport["required"] = [];
  const need = (proof: BundleProofKind, why: string) => {
    if (!required.some((r) => r.proof === proof)) required.push({ proof, why });
  };
  const writes = [
    ...bundle.anchors.map((a) => ({ mode: a.mode, where: `${a.mode} write on chain ${a.chainId}` })),
    ...(options.writeModes ?? []).map((mode) => ({ mode, where: `${mode} target` })),
  ];
  for (const w of writes) need(PROOF_OF_WRITE[w.mode], `the ${w.where}`);
  if (bundle.batch === undefined) need("signatures", "no batch: the result's own signatures are its only proof");
  need("attestation", "always");
  if (options.reexecution) need("evidence", "re-execution requested");
  if (options.onChain) need("anchors", "verifying on-chain");
  const missing = required.map((r) => r.proof).filter((p) => !present.includes(p));
  return { present, required, missing };
}

type CheckResult = Pick<BundleCheck, "verdict" | "reason" | "signers">;
const pass = (reason: string): CheckResult => ({ verdict: "pass", reason });
const fail = (reason: string): CheckResult => ({ verdict: "fail", reason });
const skipped = (reason: string): CheckResult => ({ verdict: "skipped", reason });

const eqHex = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

function describeEvaluation(
  what: string,
  e: SignatureEvaluation,
  members: Readonly<Record<string, string>> | undefined,
): CheckResult {
  const byAddress = new Map(Object.entries(members ?? {}).map(([address, member]) => [address.toLowerCase(), member]));
  const signers = e.valid.map((address) => {
    const member = byAddress.get(address.toLowerCase());
    return member === undefined ? { address } : { address, member };
  });
  const named = signers.map((s) => (s.member === undefined ? s.address : `${s.member} ${s.address}`)).join(", ");
  const rejected = e.rejected.map((r) => `#${r.index} ${r.reason}`).join(", ");
  const summary = `${e.valid.length} distinct trusted ${what} signer(s)${named ? ` (${named})` : ""}, threshold ${e.threshold}${rejected ? `; not counted: ${rejected}` : ""}`;
  return { ...(e.met ? pass(summary) : fail(summary)), signers };
}

/**
 * Why a JWE's recipients are not exactly the manifest's parties (docs/proof-bundle.md, `recipients`): a party that is
 * not a recipient, a recipient that is not a party or has no kid, a duplicate recipient; undefined when they are.
 */
function recipientMismatch(jwe: unknown, parties: readonly { kid: string }[]): string | undefined {
  const kids = recipientsOf(jwe);
  const expected = parties.map((p) => p.kid);
  const present = new Set(kids.filter((k): k is string => k !== null));
  const missing = expected.filter((k) => !present.has(k));
  const extra = kids.filter((k) => k === null || !expected.includes(k));
  const duplicated = kids.length !== present.size;
  if (missing.length === 0 && extra.length === 0 && !duplicated) return undefined;
  return [
    missing.length > 0 ? `parties not recipients: ${missing.join(", ")}` : "",
    extra.length > 0 ? `recipients not parties: ${extra.map((k) => k ?? "(no kid)").join(", ")}` : "",
    duplicated ? "duplicate recipients" : "",
  ]
    .filter(Boolean)
    .join("; ");
}

/** The result's place in a batch token: the bundle's `attestationProof` with its result's hashes, if any. */
function attestationProofOf(b: ProofBundle): AttestationLeafProof | undefined {
  if (b.attestationProof === undefined) return undefined;
  const { resultId, cryptletId, codeHash, inputHash, outputHash } = b.result;
  return { resultId, cryptletId, codeHash, inputHash, outputHash, ...b.attestationProof };
}

/** The token's claims of the result, decoded without verification (the `attestation` check verifies them). */
function tokenClaims(b: ProofBundle): Partial<AttestationClaims> | undefined {
  return decodeAttestationClaims(b.attestation, attestationProofOf(b));
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
      "evidence",
      "reexecution",
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
    reexecution: options.reexecutor !== undefined,
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
    return describeEvaluation(
      "result",
      evaluateSignatures(digest, b.signatures, options.trustedSigners, threshold),
      options.signerMembers,
    );
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
      options.signerMembers,
    );
  });

  let sandbox: VerificationReport["sandbox"];
  await guarded("attestation", async () => {
    if (options.jwks === undefined) return skipped("not checked (no JWKS)");
    const { kid, claims } = await verifyAttestationToken(
      b.attestation,
      options.jwks,
      {
        cryptletId: result.cryptletId,
        codeHash: result.codeHash,
        resultId: result.resultId,
        consortiumId: b.consortiumId,
        inputHash: result.inputHash,
        outputHash: result.outputHash,
        ...(b.evidence === undefined ? {} : { evidenceHash: bundleEvidenceHash(b.evidence) }),
        ...(options.attestationIssuer === undefined ? {} : { issuer: options.attestationIssuer }),
        ...(options.now === undefined ? {} : { currentDate: options.now }),
        ...(options.clockToleranceSeconds === undefined
          ? {}
          : { clockToleranceSeconds: options.clockToleranceSeconds }),
      },
      attestationProofOf(b),
    );
    sandbox = { engine: claims.sandbox.engine, engineVersion: claims.sandbox.engineVersion };
    const batched = claims.batch === undefined ? "" : `batch token of ${claims.batch.count} result(s), leaf proven; `;
    return pass(
      `ES256 ${batched}token by ${kid}, claims match the result; ran on ${sandbox.engine} ${sandbox.engineVersion}`,
    );
  });

  await guarded("recipients", () => {
    if (b.payload.sealed === undefined) {
      return b.manifest.parties.length === 0
        ? skipped("public payload")
        : fail("manifest names parties but the payload is not sealed");
    }
    const mismatch = recipientMismatch(b.payload.sealed.jwe, b.manifest.parties);
    if (mismatch === undefined) {
      return pass(`${recipientsOf(b.payload.sealed.jwe).length} recipient(s), exactly the manifest's parties`);
    }
    return fail(mismatch);
  });

  let opened: RunEvidence | undefined;
  await guarded("evidence", async () => {
    const carried = b.evidence;
    const claims = tokenClaims(b);
    if (carried === undefined) {
      return skipped(
        claims?.inputFormat === 1
          ? "no evidence (inputFormat 1: the run kept none)"
          : "no evidence in this bundle (the token commits to one: ask the operator for the full bundle)",
      );
    }
    if (claims?.inputFormat !== 2)
      return fail(`evidence present but the token's inputFormat is ${String(claims?.inputFormat)}, not 2`);
    const hash = bundleEvidenceHash(carried);
    if (!eqHex(String(claims.evidenceHash), hash))
      return fail(`keccak256(JCS(evidence)) ${hash} is not the token's evidenceHash`);
    if (carried.public !== undefined) {
      if (b.payload.sealed !== undefined) return fail("the result is sealed but its evidence is in clear");
      return checkOpenedEvidence((opened = carried.public), "public");
    }
    if (b.payload.public !== undefined) return fail("the evidence is sealed but the result is public");
    const kids = recipientsOf(carried.sealed.jwe);
    const mismatch = recipientMismatch(carried.sealed.jwe, b.manifest.parties);
    if (mismatch !== undefined) return fail(`the sealed evidence's recipients: ${mismatch}`);
    for (const key of options.partyKeys ?? []) {
      try {
        opened = await openRunEvidence(carried.sealed.jwe, key);
      } catch (e) {
        if ((e as { code?: unknown }).code === "ERR_NOT_A_RECIPIENT") continue;
        throw e;
      }
      return checkOpenedEvidence(opened, "opened with a party key");
    }
    return pass(
      `sealed for ${kids.length} part${kids.length === 1 ? "y" : "ies"}, bound by the token's evidenceHash; contents not checked (no party key opens it)`,
    );
  });

  function checkOpenedEvidence(evidence: RunEvidence, how: string): CheckResult {
    checkRunEvidence(evidence);
    const inputHash = evidenceInputHash(evidence);
    if (!eqHex(inputHash, result.inputHash))
      return fail(`the evidence's commitment ${inputHash} is not result.inputHash`);
    if (!eqHex(evidence.context.resultId, result.resultId))
      return fail("evidence.context.resultId is not result.resultId");
    if (b.requestId !== undefined && !eqHex(evidence.context.requestId, b.requestId)) {
      return fail("evidence.context.requestId is not the bundle's requestId");
    }
    return pass(
      `${how}: format 2, ${evidence.fetches.length} recorded fetch(es); keccak256(JCS(commitment)) = inputHash`,
    );
  }

  await guarded("reexecution", async () => {
    const reexecutor = options.reexecutor;
    if (reexecutor === undefined) return skipped("not re-executed (not requested)");
    if (b.evidence === undefined) return fail("cannot re-execute: the bundle has no evidence");
    if (opened === undefined) {
      return fail(
        b.evidence.sealed !== undefined
          ? "cannot re-execute: the evidence is sealed for the parties and no party key given opens it"
          : "cannot re-execute: the evidence does not check",
      );
    }
    if (checks.find((c) => c.name === "evidence")?.verdict !== "pass") {
      return fail("cannot re-execute: the evidence does not check");
    }
    return reexecutor.reexecute(b, opened, { partyKeys: options.partyKeys ?? [] });
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
