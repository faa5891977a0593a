/**
 * The run's evidence (docs/proof-bundle.md, "Evidence"): everything a Cryptlet's run depended on besides its code,
 * in a versioned format, so that anyone holding the package can run it again and get the same `inputHash` and
 * `outputHash`. Format 2 (the attestation token's `inputFormat`):
 *
 * ```
 * { evidenceFormat: 2,
 *   event,                                  the normalised event given as ctx.event (JSON)
 *   input,                                  the Cryptlet's input (JSON)
 *   context: { requestId, resultId, now },  bytes32, bytes32, Unix seconds (ctx.now; Math.random's seed is resultId)
 *   fetches: [ { request:  { method, url, headersSha256, bodySha256 | null },
 *                response: { status, finalUrl, redirects, contentType | null, bodySha256, bodyBytes, body } } ] }
 * ```
 *
 * `inputHash = keccak256(utf8(JCS(evidence without every response.body)))`: the bodies are committed to through
 * their `bodySha256` and `bodyBytes`, so the commitment is small and a body can be checked on its own. Hashes in
 * the evidence are SHA-256, `0x` + 64 lower-case hex digits.
 *
 * For a sealed Cryptlet the evidence is sealed for the same parties as the result (a JWE of its canonical JSON): it
 * holds the input, which the sealed result hides. The attestation token's `evidenceHash` claim is
 * `keccak256(utf8(JCS(bundle.evidence)))`, public or sealed, so that a sealed evidence cannot be altered unseen by
 * those who cannot open it.
 *
 * @module
 */
import { createHash } from "node:crypto";

import type { GeneralJWE } from "jose";

import { open } from "../sealing/open.ts";
import { seal, type SealingParty } from "../sealing/seal.ts";
import { EvidenceInvalidError } from "./errors.ts";
import type { Hex32 } from "./eip712.ts";
import { canonicalBytes, canonicalJson, type CanonicalValue } from "./hashing.ts";
import { keccak256Hex } from "./keccak.ts";

/** The evidence format this runtime writes, and the token's `inputFormat` for it. */
export const EVIDENCE_FORMAT = 2;

/** One fetch's request, as the Cryptlet made it (headers and body by hash: they may hold secrets). */
export interface EvidenceRequest {
  /** `"GET"` or `"POST"`. */
  method: "GET" | "POST";
  /** The URL the Cryptlet asked for, exactly as it passed it. */
  url: string;
  /** SHA-256 of the JCS of the headers it set, names lower-cased (`{}` when none). */
  headersSha256: string;
  /** SHA-256 of the request body's UTF-8 bytes, or `null` without a body. */
  bodySha256: string | null;
}

/** One fetch's response, as the Cryptlet was given it. */
export interface EvidenceResponse {
  /** HTTP status of the final response. */
  status: number;
  /** The URL of the final response, after redirects. */
  finalUrl: string;
  /** Each redirect hop's target, in order. */
  redirects: string[];
  /** The final response's `content-type` header, or `null`. */
  contentType: string | null;
  /** SHA-256 of the body bytes (after content decoding). */
  bodySha256: string;
  /** Length of the body, in bytes. */
  bodyBytes: number;
  /** The body bytes, base64 (RFC 4648 §4). Not part of the commitment (its hash and length are). */
  body: string;
}

/** One recorded fetch. */
export interface EvidenceFetch {
  request: EvidenceRequest;
  response: EvidenceResponse;
}

/** The evidence of one run, format 2. */
export interface RunEvidence {
  evidenceFormat: 2;
  /** The normalised event (`ctx.event`). */
  event: CanonicalValue;
  /** The Cryptlet's input. */
  input: CanonicalValue;
  /** `ctx.requestId`, `ctx.resultId` (bytes32) and `ctx.now` (Unix seconds). */
  context: { requestId: Hex32; resultId: Hex32; now: number };
  /** Every fetch, in call order. */
  fetches: EvidenceFetch[];
}

/** How a bundle carries the evidence: in clear for a public Cryptlet, sealed for the parties of a sealed one. */
export type BundleEvidence = { public: RunEvidence; sealed?: never } | { sealed: { jwe: GeneralJWE }; public?: never };

/** A fetch record as the sandbox writes it (runtime/sandbox/SandboxEngine.ts `HostCallRecord`). */
export interface SandboxFetchRecord {
  kind: "fetch";
  method: string;
  url: string;
  requestHeadersSha256: string;
  requestSha256?: string;
  finalUrl: string;
  redirects: string[];
  status: number;
  contentType: string | null;
  sha256: string;
  bytes: number;
  body: string;
}

const SHA256 = /^0x[0-9a-f]{64}$/;
const BYTES32 = /^0x[0-9a-fA-F]{64}$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Builds a run's evidence from what the execute stage gave the sandbox and the sandbox's fetch records.
 * @param run.event - the normalised event; `run.input` the input (`undefined` is recorded as `null`, as the
 *   sandbox receives it); `run.context` the identifiers and time; `run.hostCalls` the records in call order.
 */
export function buildRunEvidence(run: {
  event: unknown;
  input: unknown;
  context: { requestId: string; resultId: string; now: number };
  hostCalls: readonly SandboxFetchRecord[];
}): RunEvidence {
  const evidence: RunEvidence = {
    evidenceFormat: EVIDENCE_FORMAT,
    event: run.event as CanonicalValue,
    input: (run.input ?? null) as CanonicalValue,
    context: {
      requestId: run.context.requestId as Hex32,
      resultId: run.context.resultId as Hex32,
      now: run.context.now,
    },
    fetches: run.hostCalls.map((r) => ({
      request: {
        method: r.method as "GET" | "POST",
        url: r.url,
        headersSha256: `0x${r.requestHeadersSha256}`,
        bodySha256: r.requestSha256 === undefined ? null : `0x${r.requestSha256}`,
      },
      response: {
        status: r.status,
        finalUrl: r.finalUrl,
        redirects: [...r.redirects],
        contentType: r.contentType,
        bodySha256: `0x${r.sha256}`,
        bodyBytes: r.bytes,
        body: r.body,
      },
    })),
  };
  checkRunEvidence(evidence);
  return evidence;
}

/** The sandbox's fetch records of an evidence (for a replay). */
export function evidenceFetchRecords(evidence: RunEvidence): SandboxFetchRecord[] {
  return evidence.fetches.map((f) => ({
    kind: "fetch",
    method: f.request.method,
    url: f.request.url,
    requestHeadersSha256: f.request.headersSha256.slice(2),
    ...(f.request.bodySha256 === null ? {} : { requestSha256: f.request.bodySha256.slice(2) }),
    finalUrl: f.response.finalUrl,
    redirects: [...f.response.redirects],
    status: f.response.status,
    contentType: f.response.contentType,
    sha256: f.response.bodySha256.slice(2),
    bytes: f.response.bodyBytes,
    body: f.response.body,
  }));
}

/** The evidence as committed to: every `response.body` removed. */
export function evidenceCommitment(evidence: RunEvidence): CanonicalValue {
  return {
    evidenceFormat: evidence.evidenceFormat,
    event: evidence.event,
    input: evidence.input,
    context: evidence.context,
    fetches: evidence.fetches.map((f) => {
      const { body: _body, ...response } = f.response;
      return { request: { ...f.request }, response: { ...response } };
    }),
  } as unknown as CanonicalValue;
}

/**
 * `inputHash` of format 2: keccak256 of the UTF-8 of the RFC 8785 canonical JSON of {@link evidenceCommitment}.
 * @throws {@link CanonicalJsonError} when the event or input holds a value JSON cannot represent.
 */
export function evidenceInputHash(evidence: RunEvidence): Hex32 {
  return keccak256Hex(canonicalBytes(evidenceCommitment(evidence))) as Hex32;
}

/** The token's `evidenceHash`: keccak256 of the UTF-8 of the JCS of the bundle's `evidence` member. */
export function bundleEvidenceHash(evidence: BundleEvidence): Hex32 {
  return keccak256Hex(canonicalBytes(evidence)) as Hex32;
}

/**
 * Checks the shape of an evidence and that every body matches its `bodySha256` and `bodyBytes`.
 * @throws {@link EvidenceInvalidError} (`ERR_EVIDENCE_INVALID`) naming the first field that is wrong.
 */
export function checkRunEvidence(value: unknown): asserts value is RunEvidence {
  const bad = (path: string, why: string): never => {
    throw new EvidenceInvalidError(path, why);
  };
  const obj = (v: unknown, path: string): Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : bad(path, "not an object");
  const only = (o: Record<string, unknown>, path: string, keys: string[]): void => {
    for (const k of Object.keys(o)) if (!keys.includes(k)) bad(`${path}.${k}`, "unknown member");
    for (const k of keys) if (!(k in o)) bad(`${path}.${k}`, "missing");
  };
  const str = (v: unknown, path: string): string => (typeof v === "string" ? v : bad(path, "not a string"));
  const sha = (v: unknown, path: string): string =>
    SHA256.test(str(v, path)) ? (v as string) : bad(path, "not 0x + 64 lower-case hex digits");
  const e = obj(value, "evidence");
  only(e, "evidence", ["evidenceFormat", "event", "input", "context", "fetches"]);
  if (e.evidenceFormat !== EVIDENCE_FORMAT) bad("evidence.evidenceFormat", `must be ${EVIDENCE_FORMAT}`);
  canonicalJson(e.event);
  canonicalJson(e.input);
  const c = obj(e.context, "evidence.context");
  only(c, "evidence.context", ["requestId", "resultId", "now"]);
  for (const k of ["requestId", "resultId"] as const)
    if (!BYTES32.test(str(c[k], `evidence.context.${k}`))) bad(`evidence.context.${k}`, "not bytes32");
  if (typeof c.now !== "number" || !Number.isSafeInteger(c.now) || c.now < 0)
    bad("evidence.context.now", "not a non-negative integer (Unix seconds)");
  if (!Array.isArray(e.fetches)) bad("evidence.fetches", "not an array");
  (e.fetches as unknown[]).forEach((f, i) => {
    const at = `evidence.fetches[${i}]`;
    const fo = obj(f, at);
    only(fo, at, ["request", "response"]);
    const rq = obj(fo.request, `${at}.request`);
    only(rq, `${at}.request`, ["method", "url", "headersSha256", "bodySha256"]);
    if (rq.method !== "GET" && rq.method !== "POST") bad(`${at}.request.method`, "must be GET or POST");
    str(rq.url, `${at}.request.url`);
    sha(rq.headersSha256, `${at}.request.headersSha256`);
    if (rq.bodySha256 !== null) sha(rq.bodySha256, `${at}.request.bodySha256`);
    const rs = obj(fo.response, `${at}.response`);
    only(rs, `${at}.response`, ["status", "finalUrl", "redirects", "contentType", "bodySha256", "bodyBytes", "body"]);
    if (typeof rs.status !== "number" || !Number.isInteger(rs.status) || rs.status < 100 || rs.status > 599)
      bad(`${at}.response.status`, "not an HTTP status");
    str(rs.finalUrl, `${at}.response.finalUrl`);
    if (!Array.isArray(rs.redirects)) bad(`${at}.response.redirects`, "not an array");
    (rs.redirects as unknown[]).forEach((r, j) => str(r, `${at}.response.redirects[${j}]`));
    if (rs.contentType !== null) str(rs.contentType, `${at}.response.contentType`);
    sha(rs.bodySha256, `${at}.response.bodySha256`);
    if (typeof rs.bodyBytes !== "number" || !Number.isSafeInteger(rs.bodyBytes) || rs.bodyBytes < 0)
      bad(`${at}.response.bodyBytes`, "not a byte count");
    const body = str(rs.body, `${at}.response.body`);
    if (body.length % 4 !== 0 || !BASE64.test(body)) bad(`${at}.response.body`, "not base64");
    const bytes = Buffer.from(body, "base64");
    if (bytes.length !== rs.bodyBytes)
      bad(`${at}.response.body`, `is ${bytes.length} bytes, bodyBytes says ${String(rs.bodyBytes)}`);
    if (`0x${createHash("sha256").update(bytes).digest("hex")}` !== rs.bodySha256)
      bad(`${at}.response.body`, "does not match bodySha256");
  });
}

/**
 * Seals an evidence for the parties (JWE General JSON, as the sealed result; runtime/sealing/seal.ts): the plaintext
 * is the UTF-8 of its RFC 8785 canonical JSON.
 */
export async function sealRunEvidence(evidence: RunEvidence, parties: readonly SealingParty[]): Promise<GeneralJWE> {
  return seal(canonicalJson(evidence), parties);
}

/**
 * Opens a sealed evidence with a party's private key and checks it.
 * @throws `ERR_NOT_A_RECIPIENT` / `ERR_JWE_INVALID` from opening; {@link EvidenceInvalidError} when the plaintext is
 *   not a valid evidence.
 */
export async function openRunEvidence(jwe: GeneralJWE, privateKey: Parameters<typeof open>[1]): Promise<RunEvidence> {
  const text = new TextDecoder().decode(await open(jwe, privateKey));
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new EvidenceInvalidError("evidence", "the sealed evidence is not JSON");
  }
  checkRunEvidence(value);
  return value;
}
