/**
 * An independent proof-bundle verifier, written from docs/proof-bundle.md and docs/proof-bundle.schema.json only,
 * with libraries the runtime does not sign with: viem for EIP-712, secp256k1 recovery, keccak256 and ABI encoding,
 * and Python jwcrypto (test/interop/jwcrypto_attestation.py) for the ES256 attestation token. It imports nothing
 * from runtime/: where the runtime and this file agree, two readings of the document agree.
 *
 * A batch attestation token (docs/proof-bundle.md, "Batch attestation token") is checked in two parts: the Merkle
 * proof of the bundle's `attestationProof` is walked here with viem (leaf = keccak256(keccak256(abi.encode(six
 * bytes32))), sorted-pair nodes, written from the document, not with @openzeppelin/merkle-tree), and the root it reaches
 * is given to Python as an expected value, which must equal the token's signed `batch.root`.
 *
 * Its checks carry the names of the document's "Verification" table so that a disagreement with `verifyBundle` can
 * be located; `ok` is true when no check failed (a skipped check is not verified, as in the document).
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { Ajv2020 } from "ajv/dist/2020.js";
import {
  concat,
  encodeAbiParameters,
  getAddress,
  hashStruct,
  hashTypedData,
  isAddress,
  keccak256,
  recoverAddress,
  stringToBytes,
  toHex,
  type Hex,
} from "viem";

/** What the verifier trusts; the same meaning as the document's verification options. */
export interface IndependentTrust {
  trustedSigners: readonly string[];
  threshold: number;
  consortiumId?: string;
  approvedCodeHashes?: readonly string[];
  requestId?: string;
  /** `{keys: [...]}`; the attestation check is skipped without it. */
  jwks?: { keys: Record<string, unknown>[] };
  attestationIssuer?: string;
  /** Verification time (required here: no hidden clock). */
  now: Date;
  clockToleranceSeconds?: number;
}

export type Verdict = "pass" | "fail" | "skipped";
export interface IndependentReport {
  ok: boolean;
  checks: Record<string, { verdict: Verdict; reason: string }>;
}

/** The attestation-token part of one verification, answered by Python jwcrypto. */
export interface AttestationRequest {
  token: string;
  jwks: { keys: Record<string, unknown>[] };
  now: number;
  tolerance: number;
  expected: {
    cryptletId: string;
    codeHash: string;
    resultId: string;
    inputHash: string;
    outputHash: string;
    aud: string;
    /** keccak256(JCS(bundle.evidence)) when the bundle carries evidence. */
    evidenceHash?: string;
    iss?: string;
    /**
     * When the bundle carries `attestationProof`: its `evidenceHash` (the leaf's last value) and the root that the
     * leaf of the result's five hashes and that evidenceHash reaches with `attestationProof.proof`.
     */
    attestationProof?: { evidenceHash: string; root: string };
  };
}
export type AttestationAnswer = { ok: boolean; reason: string; kid?: string };

// docs/proof-bundle.md, "EIP-712 proof".
const DOMAIN_NAME = "CryptletRuntime";
const DOMAIN_VERSION = "1";
const TYPES = {
  CryptletResult: [
    { name: "resultId", type: "bytes32" },
    { name: "cryptletId", type: "bytes32" },
    { name: "codeHash", type: "bytes32" },
    { name: "inputHash", type: "bytes32" },
    { name: "outputHash", type: "bytes32" },
    { name: "timestamp", type: "uint64" },
  ],
  ResultBatch: [
    { name: "root", type: "bytes32" },
    { name: "count", type: "uint32" },
    { name: "timestamp", type: "uint64" },
  ],
} as const;
// docs/proof-bundle.md, "Batch attestation token".
const BATCH_TOKEN_TYPE = "cryptlet-batch-attestation+jwt";
/** secp256k1 order n; a signature's s must be ≤ n/2 (EIP-2). */
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

const schemaPath = fileURLToPath(new URL("../../docs/proof-bundle.schema.json", import.meta.url));
const validateSchema = new Ajv2020({ allErrors: true, strict: true }).compile(
  JSON.parse(readFileSync(schemaPath, "utf8")) as object,
);
const pythonScript = fileURLToPath(new URL("./jwcrypto_attestation.py", import.meta.url));

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
interface Sig {
  signer: string;
  signature: string;
}
interface Bundle {
  consortiumId: Hex;
  manifest: { cryptletId: string; name: string; version: string; parties: { name: string; kid: string }[] };
  requestId?: Hex;
  result: { resultId: Hex; cryptletId: Hex; codeHash: Hex; inputHash: Hex; outputHash: Hex; timestamp: string };
  signatures: Sig[];
  batch?: { root: Hex; count: number; timestamp: string; proof: Hex[]; signatures: Sig[] };
  attestation: string;
  attestationProof?: { evidenceHash: Hex; proof: Hex[] };
  payload: { public?: { abiType: string; data: Hex }; sealed?: { jwe: { [k: string]: Json } } };
  evidence?: { public?: { [k: string]: Json }; sealed?: { jwe: { [k: string]: Json } } };
  anchors: { chainId: string; mode: "record" | "anchor" | "fulfill" | "submit" | "mint" | "release" | "refund" }[];
}

const eq = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

/** RFC 8785 canonical JSON (keys sorted by UTF-16 code units; strings and numbers as ECMAScript JSON.stringify). */
export function jcs(value: Json): string {
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isFinite(value)) throw new TypeError("non-finite number");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(jcs).join(",")}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${jcs(value[k]!)}`).join(",")}}`;
}

/**
 * An address as the document accepts it: 0x + 40 hex, all-lowercase, all-uppercase or EIP-55 checksummed (a
 * mixed-case address with a wrong checksum is malformed). Returns the checksummed form, or undefined.
 */
function parseAddress(text: string): string | undefined {
  if (!/^0x[0-9a-fA-F]{40}$/.test(text)) return undefined;
  const digits = text.slice(2);
  const mixed = /[a-f]/.test(digits) && /[A-F]/.test(digits);
  if (mixed && !isAddress(text, { strict: true })) return undefined;
  return getAddress(text.toLowerCase());
}

/** Counts distinct trusted signers over an EIP-712 digest, strictly as docs/proof-bundle.md "Signature entries". */
async function countSigners(
  digest: Hex,
  sigs: readonly Sig[],
  trust: IndependentTrust,
): Promise<{ verdict: Verdict; reason: string }> {
  const trusted = new Set<string>(trust.trustedSigners.map((a) => getAddress(a.toLowerCase())));
  const counted = new Set<string>();
  const notes: string[] = [];
  for (const [i, entry] of sigs.entries()) {
    const hex = entry.signature;
    if (!/^0x[0-9a-fA-F]{130}$/.test(hex)) {
      notes.push(`#${i} malformed`);
      continue;
    }
    const r = BigInt(`0x${hex.slice(2, 66)}`);
    const s = BigInt(`0x${hex.slice(66, 130)}`);
    const v = Number.parseInt(hex.slice(130, 132), 16);
    if (r === 0n || r >= N || s === 0n || s >= N) {
      notes.push(`#${i} r or s out of range`);
      continue;
    }
    if (s > N / 2n) {
      notes.push(`#${i} high-s`);
      continue;
    }
    if (v !== 27 && v !== 28) {
      notes.push(`#${i} v not 27/28`);
      continue;
    }
    let recovered: string;
    try {
      recovered = await recoverAddress({ hash: digest, signature: hex as Hex });
    } catch {
      notes.push(`#${i} unrecoverable`);
      continue;
    }
    const claimed = parseAddress(entry.signer);
    if (claimed === undefined || claimed !== recovered) notes.push(`#${i} does not recover to its signer`);
    else if (!trusted.has(recovered)) notes.push(`#${i} untrusted`);
    else if (counted.has(recovered)) notes.push(`#${i} duplicate`);
    else counted.add(recovered);
  }
  const reason = `${counted.size} distinct trusted signer(s), threshold ${trust.threshold}${notes.length ? `; ${notes.join(", ")}` : ""}`;
  return { verdict: counted.size >= trust.threshold ? "pass" : "fail", reason };
}

/** Sorted-pair node hash: keccak256(min(a, b) ‖ max(a, b)), the two compared as 256-bit unsigned integers. */
function hashPair(a: Hex, b: Hex): Hex {
  const [x, y] = BigInt(a) < BigInt(b) ? [a, b] : [b, a];
  return keccak256(concat([x, y]));
}

/**
 * The root a bundle's `attestationProof` reaches (docs/proof-bundle.md, "Batch attestation token"): the
 * StandardMerkleTree leaf of `[resultId, cryptletId, codeHash, inputHash, outputHash, evidenceHash]` (six bytes32,
 * `keccak256(keccak256(abi.encode(values)))`, 192 bytes hashed) walked up with each proof element by sorted-pair
 * hashing. Lower-case hex.
 */
export function attestationProofRoot(
  result: Pick<Bundle["result"], "resultId" | "cryptletId" | "codeHash" | "inputHash" | "outputHash">,
  attestationProof: { evidenceHash: string; proof: readonly string[] },
): Hex {
  const values = [
    result.resultId,
    result.cryptletId,
    result.codeHash,
    result.inputHash,
    result.outputHash,
    attestationProof.evidenceHash,
  ].map((v) => v.toLowerCase() as Hex);
  const encoded = encodeAbiParameters(
    values.map(() => ({ type: "bytes32" })),
    values,
  );
  let node = keccak256(keccak256(encoded));
  for (const sibling of attestationProof.proof) node = hashPair(node, sibling.toLowerCase() as Hex);
  return node;
}

/** The attestation request of a (schema-valid) bundle, or undefined when the check is skipped. */
function attestationRequest(bundle: Bundle, trust: IndependentTrust): AttestationRequest | undefined {
  if (trust.jwks === undefined) return undefined;
  return {
    token: bundle.attestation,
    jwks: trust.jwks,
    now: Math.floor(trust.now.getTime() / 1000),
    tolerance: trust.clockToleranceSeconds ?? 0,
    expected: {
      cryptletId: bundle.result.cryptletId,
      codeHash: bundle.result.codeHash,
      resultId: bundle.result.resultId,
      inputHash: bundle.result.inputHash,
      outputHash: bundle.result.outputHash,
      aud: bundle.consortiumId,
      ...(bundle.evidence === undefined
        ? {}
        : { evidenceHash: keccak256(stringToBytes(jcs(bundle.evidence as unknown as Json))) }),
      ...(trust.attestationIssuer === undefined ? {} : { iss: trust.attestationIssuer }),
      ...(bundle.attestationProof === undefined
        ? {}
        : {
            attestationProof: {
              evidenceHash: bundle.attestationProof.evidenceHash,
              root: attestationProofRoot(bundle.result, bundle.attestationProof),
            },
          }),
    },
  };
}

/**
 * What the token states of the result for the evidence check, decoded without verification (the attestation check
 * verifies it): a per-result token's own `inputFormat` and `evidenceHash`; for a batch token its `inputFormat` with
 * the leaf's `evidenceHash` from `attestationProof`. Undefined when unreadable, for a batch token without
 * `attestationProof` and for an `attestationProof` beside a per-result token (no claims of the result then).
 */
function resultClaimsOf(b: Bundle): { inputFormat?: unknown; evidenceHash?: unknown } | undefined {
  const [header, payload] = b.attestation.split(".");
  let typ: unknown;
  let claims: { inputFormat?: unknown; evidenceHash?: unknown };
  try {
    typ = (JSON.parse(Buffer.from(header ?? "", "base64url").toString("utf8")) as { typ?: unknown }).typ;
    claims = JSON.parse(Buffer.from(payload ?? "", "base64url").toString("utf8")) as typeof claims;
  } catch {
    return undefined;
  }
  if (claims === null || typeof claims !== "object") return undefined;
  if (typ !== BATCH_TOKEN_TYPE) return b.attestationProof === undefined ? claims : undefined;
  if (b.attestationProof === undefined) return undefined;
  return { inputFormat: claims.inputFormat, evidenceHash: b.attestationProof.evidenceHash };
}

/** Asks Python jwcrypto about many tokens in one process. */
export function jwcryptoAttestations(requests: readonly AttestationRequest[]): AttestationAnswer[] {
  if (requests.length === 0) return [];
  const out = execFileSync("/usr/bin/python3", [pythonScript], {
    input: JSON.stringify({ requests }),
    encoding: "utf8",
    timeout: 60_000,
    maxBuffer: 64 * 1024 * 1024,
    stdio: ["pipe", "pipe", "pipe"],
  });
  return (JSON.parse(out) as { answers: AttestationAnswer[] }).answers;
}

/**
 * Verifies bundles independently; the attestation tokens of all of them are checked by one Python process.
 * @param bundles - parsed JSON values (anything: the schema is checked first).
 */
export async function verifyIndependently(
  bundles: readonly unknown[],
  trust: IndependentTrust,
): Promise<IndependentReport[]> {
  if (!Number.isInteger(trust.threshold) || trust.threshold < 1) throw new RangeError("threshold must be ≥ 1");
  const partial = await Promise.all(bundles.map((b) => offlineChecks(b, trust)));
  const requests = partial.map((p) => p.attestation).filter((r): r is AttestationRequest => r !== undefined);
  const answers = jwcryptoAttestations(requests);
  let next = 0;
  return partial.map(({ checks, attestation, schemaOk }) => {
    if (!schemaOk) checks.attestation = { verdict: "skipped", reason: "bundle does not match the schema" };
    else if (attestation === undefined) checks.attestation = { verdict: "skipped", reason: "no JWKS given" };
    else {
      const a = answers[next++]!;
      checks.attestation = { verdict: a.ok ? "pass" : "fail", reason: a.reason };
    }
    return { ok: Object.values(checks).every((c) => c.verdict !== "fail"), checks };
  });
}

/** A JWE's recipients are exactly the parties: each has a kid, no kid twice, the same set as the parties' kids. */
function exactlyTheParties(jwe: { [k: string]: Json }, parties: readonly string[]): boolean {
  const recipients = (jwe.recipients as { header?: { kid?: unknown } }[]).map((r) => r.header?.kid);
  const kids = recipients.filter((k): k is string => typeof k === "string");
  return (
    kids.length === recipients.length &&
    new Set(kids).size === kids.length &&
    kids.length === new Set(parties).size &&
    kids.every((k) => parties.includes(k))
  );
}

async function offlineChecks(
  value: unknown,
  trust: IndependentTrust,
): Promise<{ checks: IndependentReport["checks"]; attestation?: AttestationRequest; schemaOk: boolean }> {
  const checks: IndependentReport["checks"] = {};
  const set = (name: string, verdict: Verdict, reason: string): void => {
    checks[name] = { verdict, reason };
  };
  if (!validateSchema(value)) {
    set(
      "schema",
      "fail",
      `schema: ${validateSchema.errors?.[0]?.instancePath ?? ""} ${validateSchema.errors?.[0]?.message ?? ""}`,
    );
    return { checks, schemaOk: false };
  }
  set("schema", "pass", "matches docs/proof-bundle.schema.json");
  const b = value as Bundle;
  const guard = async (name: string, run: () => Promise<[Verdict, string]> | [Verdict, string]): Promise<void> => {
    try {
      const [verdict, reason] = await run();
      set(name, verdict, reason);
    } catch (e) {
      set(name, "fail", `threw: ${(e as Error).message.split("\n")[0] ?? ""}`);
    }
  };

  await guard("manifest", () => {
    const id = keccak256(stringToBytes(b.manifest.name));
    if (!eq(id, b.manifest.cryptletId)) return ["fail", "manifest.cryptletId ≠ keccak256(utf8(name))"];
    if (!eq(id, b.result.cryptletId)) return ["fail", "result.cryptletId ≠ manifest.cryptletId"];
    return ["pass", "cryptletId = keccak256(utf8(name))"];
  });

  await guard("consortium", () => {
    if (trust.consortiumId === undefined) return ["skipped", "no expected consortium"];
    return eq(trust.consortiumId, b.consortiumId) ? ["pass", "expected consortium"] : ["fail", "another consortium"];
  });

  await guard("resultId", () => {
    const requestId = trust.requestId ?? b.requestId;
    if (requestId === undefined) return ["skipped", "no requestId"];
    const id = keccak256(
      encodeAbiParameters([{ type: "bytes32" }, { type: "bytes32" }], [b.result.cryptletId, requestId as Hex]),
    );
    return eq(id, b.result.resultId) ? ["pass", "resultId recomputed"] : ["fail", "resultId ≠ keccak256(abi.encode)"];
  });

  await guard("codeHash", () => {
    if (trust.approvedCodeHashes === undefined) return ["skipped", "no approved set"];
    return trust.approvedCodeHashes.some((h) => eq(h, b.result.codeHash))
      ? ["pass", "approved"]
      : ["fail", "not approved"];
  });

  await guard("outputHash", () => {
    const bytes = b.payload.public
      ? (b.payload.public.data as Hex)
      : toHex(stringToBytes(jcs(b.payload.sealed!.jwe as Json)));
    return eq(keccak256(bytes), b.result.outputHash)
      ? ["pass", "outputHash = keccak256(payload bytes)"]
      : ["fail", "outputHash ≠ keccak256(payload bytes)"];
  });

  const domain = { name: DOMAIN_NAME, version: DOMAIN_VERSION, salt: b.consortiumId };
  const message = { ...b.result, timestamp: BigInt(b.result.timestamp) };

  // Required proofs (docs/proof-bundle.md, "Required proofs"): a record/fulfill/submit write, or no batch, needs
  // per-result signatures; an anchor write needs the batch.
  const needsSignatures = b.batch === undefined || b.anchors.some((a) => a.mode !== "anchor");
  const needsBatch = b.anchors.some((a) => a.mode === "anchor");

  await guard("signatures", async () => {
    if (b.signatures.length === 0 && !needsSignatures) return ["skipped", "proven by its batch"];
    if (b.signatures.length === 0) return ["fail", "per-result signatures required but absent"];
    const digest = hashTypedData({ domain, types: TYPES, primaryType: "CryptletResult", message });
    const r = await countSigners(digest, b.signatures, trust);
    return [r.verdict, r.reason];
  });

  await guard("merkleProof", () => {
    if (b.batch === undefined) return ["skipped", "not batched"];
    const structHash = hashStruct({ data: message, primaryType: "CryptletResult", types: TYPES });
    let node = keccak256(keccak256(encodeAbiParameters([{ type: "bytes32" }], [structHash])));
    for (const sibling of b.batch.proof) {
      const [x, y] = BigInt(node) < BigInt(sibling) ? [node, sibling] : [sibling, node];
      node = keccak256(concat([x, y]));
    }
    return eq(node, b.batch.root) ? ["pass", "proof reaches the root"] : ["fail", "proof does not reach the root"];
  });

  await guard("batchSignatures", async () => {
    if (b.batch === undefined) return ["skipped", "not batched"];
    const digest = hashTypedData({
      domain,
      types: TYPES,
      primaryType: "ResultBatch",
      message: { root: b.batch.root, count: b.batch.count, timestamp: BigInt(b.batch.timestamp) },
    });
    const r = await countSigners(digest, b.batch.signatures, trust);
    return [r.verdict, r.reason];
  });

  await guard("recipients", () => {
    const parties = b.manifest.parties.map((p) => p.kid);
    if (b.payload.sealed === undefined) {
      return parties.length === 0 ? ["skipped", "public"] : ["fail", "parties named but the payload is public"];
    }
    return exactlyTheParties(b.payload.sealed.jwe, parties)
      ? ["pass", "recipients are the parties"]
      : ["fail", "recipients are not exactly the parties"];
  });

  // docs/proof-bundle.md, "Evidence": the token's evidenceHash commits to the evidence as carried; public evidence
  // commits to inputHash once every response body is taken out (each body checked against its sha256 and length).
  await guard("evidence", () => {
    if (b.evidence === undefined) return ["skipped", "no evidence"];
    const claims = resultClaimsOf(b);
    if (claims === undefined) {
      return [
        "fail",
        "the token states no claims of this result (unreadable, or batch token and attestationProof unpaired)",
      ];
    }
    if (claims.inputFormat !== 2) return ["fail", "evidence with a token of another inputFormat than 2"];
    const carried = keccak256(stringToBytes(jcs(b.evidence as unknown as Json)));
    if (typeof claims.evidenceHash !== "string" || !eq(claims.evidenceHash, carried)) {
      return ["fail", "keccak256(JCS(evidence)) ≠ the token's evidenceHash"];
    }
    if (b.evidence.sealed !== undefined) {
      if (b.payload.public !== undefined) return ["fail", "sealed evidence for a public result"];
      return exactlyTheParties(
        b.evidence.sealed.jwe,
        b.manifest.parties.map((p) => p.kid),
      )
        ? ["pass", "sealed for the parties"]
        : ["fail", "sealed evidence recipients are not the parties"];
    }
    if (b.payload.sealed !== undefined) return ["fail", "public evidence for a sealed result"];
    const e = b.evidence.public as {
      evidenceFormat: number;
      context: { requestId: string; resultId: string };
      fetches: { response: { body: string; bodySha256: string; bodyBytes: number; [k: string]: Json } }[];
      [k: string]: Json | object;
    };
    if (e.evidenceFormat !== 2) return ["fail", "evidenceFormat ≠ 2"];
    for (const f of e.fetches) {
      const body = Buffer.from(f.response.body, "base64");
      if (body.length !== f.response.bodyBytes) return ["fail", "a body's length ≠ bodyBytes"];
      if (`0x${createHash("sha256").update(body).digest("hex")}` !== f.response.bodySha256) {
        return ["fail", "a body's sha256 ≠ bodySha256"];
      }
    }
    const commitment = {
      ...e,
      fetches: e.fetches.map((f) => {
        const { body: _body, ...response } = f.response;
        return { ...f, response };
      }),
    };
    if (!eq(keccak256(stringToBytes(jcs(commitment as unknown as Json))), b.result.inputHash)) {
      return ["fail", "keccak256(JCS(evidence without bodies)) ≠ inputHash"];
    }
    if (!eq(e.context.resultId, b.result.resultId)) return ["fail", "evidence resultId ≠ resultId"];
    if (b.requestId !== undefined && !eq(e.context.requestId, b.requestId)) {
      return ["fail", "evidence requestId ≠ requestId"];
    }
    return ["pass", "evidence commits to inputHash"];
  });

  await guard("proofs", () => {
    const missing = [
      ...(needsSignatures && b.signatures.length === 0 ? ["per-result signatures"] : []),
      ...(needsBatch && b.batch === undefined ? ["batch"] : []),
    ];
    return missing.length === 0 ? ["pass", "required proofs present"] : ["fail", `missing: ${missing.join(", ")}`];
  });

  await guard("anchors", () => {
    const chains = b.anchors.map((a) => a.chainId);
    return new Set(chains).size === chains.length
      ? ["skipped", "on-chain checks not offline"]
      : ["fail", "two anchors on one chain"];
  });

  const attestation = attestationRequest(b, trust);
  return { checks, schemaOk: true, ...(attestation === undefined ? {} : { attestation }) };
}
