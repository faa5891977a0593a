/**
 * The proof audit report: one self-contained HTML page per run that a person can read (docs/proof-bundle.md,
 * "Audit report"). {@link renderAuditReport} is a pure function from the run's composite receipt (or bare proof
 * bundle), the `verifyBundle` report(s), the trust used and a few options to an HTML string; `cryptlet report` and
 * `GET /v1/runs/{runId}/report` both use it.
 *
 * The page shows the Cryptlet and its code hash, the event, every chain's transaction (with an explorer link when
 * an explorer base URL is configured for the chain), each signer and whether each chain (or the given trust)
 * trusts it, the Merkle path of a batched result, the attestation token's claims, the re-execution verdict (the
 * verification's `reexecution` check, or "not re-executed"), the sealed-for parties of a sealed result (recipient kids only: the page never holds
 * plaintext, nor even the ciphertext) and every check of the verification with its verdict and reason.
 *
 * The page is inert: inline CSS only, no script, no external resource (a `Content-Security-Policy` meta element
 * says `default-src 'none'`), and every value taken from the bundle, the receipt or the options is HTML-escaped.
 * The input may be a tampered or malformed bundle: rendering never throws for it (missing fields show as "—").
 *
 * @module
 */
import { AbiCoder, getAddress, isHexString } from "ethers";

import { bundleResultToStruct, type ProofBundle } from "../attestation/bundle.ts";
import { cryptletResultDigest, hashCryptletResult, resultBatchDigest, type Hex32 } from "../attestation/eip712.ts";
import { resultLeaf } from "../attestation/merkle.ts";
import { recoverDigestSigner } from "../attestation/signing.ts";
import type { BundleCheck, VerificationReport } from "../attestation/verifyBundle.ts";
import type { CompositeReceipt } from "../queue/results.ts";

/** The Content-Security-Policy of the page (also sent as a header by the API). */
export const AUDIT_REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/** One verification shown on the page: what trust it used, and `verifyBundle`'s report. */
export interface AuditVerification {
  /** What the report was verified against, e.g. `chain consortium (chain id 31337): registry 0x… at block 12`. */
  label: string;
  /** The report (its `reexecution` check is the re-execution verdict). */
  report: VerificationReport;
}

/** Trust used for a verification: whose signatures count, and how many are needed. */
export interface AuditTrust {
  /** The configured chain's name, when the trust was read from that chain's registry. */
  chain?: string;
  /** Decimal chain id of that chain. */
  chainId?: string;
  /** `registry`: read from the chain's `CryptletRegistry` (`readRegistryTrust`); `given`: a trust file or settings. */
  source: "registry" | "given";
  /** Trusted signer addresses (any case). */
  signers: readonly string[];
  /** The threshold M. */
  threshold: number;
  /** The registry address, for `registry` trust. */
  registry?: string;
  /** The block the registry was read at. */
  blockNumber?: number | string;
  /** Where `given` trust came from, e.g. `trust file trust.json` or `API verification settings`. */
  origin?: string;
}

/** What is known about the run's event (from the run record); the bundle alone knows only its ids. */
export interface AuditEvent {
  /** `http`, `schedule`, `chain-log`, `oracle`. */
  type?: string;
  eventId?: string;
  requestId?: string;
  /** The event's time, Unix seconds. */
  time?: number;
  /** When the runtime accepted the event, Unix ms. */
  acceptedAt?: number;
}

/** Options of {@link renderAuditReport}. */
export interface AuditReportOptions {
  /**
   * Explorer base URLs by chain name or decimal chain id, e.g. `{sepolia: "https://sepolia.etherscan.io"}`: a
   * transaction links to `<base>/tx/<hash>`, a block to `<base>/block/<n>`. Only `http:` and `https:` URLs are
   * used. A chain without one (a local chain) gets no link, and the page says so.
   */
  explorers?: Readonly<Record<string, string>>;
  /** Chain names by decimal chain id, for a bare bundle's anchors (a receipt names its chains). */
  chainNames?: Readonly<Record<string, string>>;
  /** When the page is generated. Default: now. */
  generatedAt?: Date;
}

/** The input of {@link renderAuditReport}. */
export interface AuditReportInput {
  /** The proof bundle (as parsed: it may be malformed or tampered). */
  bundle: unknown;
  /** The composite receipt, when the run's receipt is known (gives chain names, statuses, gas). */
  receipt?: CompositeReceipt;
  /** The run's event, when known. */
  event?: AuditEvent;
  /** The verification reports (one per chain read, or one for given trust). */
  verifications: readonly AuditVerification[];
  /** The trust each verification used (one column each in the signers table). */
  trust: readonly AuditTrust[];
  options?: AuditReportOptions;
}

/**
 * Escapes a value for HTML text and attribute values (`&`, `<`, `>`, `"`, `'`).
 * @param value - any value; `undefined` and `null` become an empty string, others `String(value)`.
 */
export function escapeHtml(value: unknown): string {
  return (value === undefined || value === null ? "" : String(value))
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

/**
 * Splits a document into its proof bundle and composite receipt: a composite receipt, `cryptlet status --json`
 * output (`{receipt}`), `GET /v1/runs/{runId}` output, or a bare proof bundle.
 * @param document - the parsed JSON.
 * @returns the bundle (the document itself when it is neither) and the receipt when there is one.
 */
export function auditSubjectOf(document: unknown): { bundle: unknown; receipt?: CompositeReceipt } {
  if (typeof document !== "object" || document === null || "bundleVersion" in document) return { bundle: document };
  const d = document as { receipt?: unknown; bundle?: unknown; targets?: unknown };
  if (typeof d.receipt === "object" && d.receipt !== null) return auditSubjectOf(d.receipt);
  if ("bundle" in d && Array.isArray(d.targets)) return { bundle: d.bundle, receipt: document as CompositeReceipt };
  if ("bundle" in d) return { bundle: d.bundle };
  return { bundle: document };
}

/**
 * The explorer URL of a transaction or block, or undefined (no base URL for the chain, a base that is not
 * `http(s):`, or a value that is not a hash / block number).
 */
export function explorerUrl(base: string | undefined, kind: "tx" | "block", value: unknown): string | undefined {
  if (base === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    return undefined;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return undefined;
  const v = String(value ?? "");
  if (kind === "tx" ? !isHexString(v, 32) : !/^\d+$/.test(v)) return undefined;
  return `${url.href.replace(/\/+$/, "")}/${kind}/${v}`;
}

// ---------------------------------------------------------------------------------------------------------------

/** A bundle as parsed, every field possibly missing (rendering must survive a malformed bundle). */
interface LooseBundle {
  bundleVersion?: unknown;
  consortiumId?: unknown;
  manifest?: { cryptletId?: unknown; name?: unknown; version?: unknown; parties?: unknown };
  requestId?: unknown;
  result?: Partial<Record<keyof ProofBundle["result"], unknown>>;
  signatures?: unknown;
  batch?: { root?: unknown; count?: unknown; timestamp?: unknown; proof?: unknown; signatures?: unknown };
  attestation?: unknown;
  attestationProof?: unknown;
  payload?: { public?: { abiType?: unknown; data?: unknown }; sealed?: { jwe?: unknown } };
  anchors?: unknown;
}

interface LooseSignature {
  signer?: unknown;
  signature?: unknown;
  keyId?: unknown;
  keyVersion?: unknown;
}

interface LooseAnchor {
  chainId?: unknown;
  contract?: unknown;
  txHash?: unknown;
  blockNumber?: unknown;
  blockHash?: unknown;
  gasUsed?: unknown;
  mode?: unknown;
}

const DASH = "—";
const asObject = <T>(v: unknown): T => (typeof v === "object" && v !== null ? (v as T) : ({} as T));
const asArray = <T>(v: unknown): T[] => (Array.isArray(v) ? (v as T[]) : []);
const text = (v: unknown): string => (v === undefined || v === null || v === "" ? DASH : escapeHtml(v));
const code = (v: unknown): string =>
  v === undefined || v === null || v === "" ? DASH : `<code>${escapeHtml(v)}</code>`;

function isoOfSeconds(v: unknown): string | undefined {
  const n = typeof v === "string" && /^\d+$/.test(v) ? Number(v) : typeof v === "number" ? v : NaN;
  if (!Number.isFinite(n) || n < 0 || n > 8.64e12) return undefined;
  return new Date(n * 1000).toISOString();
}

function timeCell(seconds: unknown): string {
  const iso = isoOfSeconds(seconds);
  return iso ? `${escapeHtml(iso)} <span class="muted">(${escapeHtml(seconds)})</span>` : text(seconds);
}

function row(label: string, value: string): string {
  return `<tr><th scope="row">${escapeHtml(label)}</th><td>${value}</td></tr>`;
}

function link(href: string | undefined, inner: string): string {
  return href ? `<a href="${escapeHtml(href)}" rel="noopener noreferrer">${inner}</a>` : inner;
}

function section(id: string, title: string, body: string): string {
  return `<section id="${escapeHtml(id)}"><h2>${escapeHtml(title)}</h2>${body}</section>`;
}

function decodeJwtPart(part: string | undefined): Record<string, unknown> | undefined {
  if (part === undefined || !/^[A-Za-z0-9_-]*$/.test(part)) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function jsonCell(value: unknown): string {
  if (typeof value === "object" && value !== null) return `<pre>${escapeHtml(JSON.stringify(value, null, 2))}</pre>`;
  return code(value);
}

function verdictBadge(verdict: string): string {
  const mark = verdict === "pass" ? "✔" : verdict === "fail" ? "✘" : "–";
  return `<span class="badge ${verdict === "pass" ? "pass" : verdict === "fail" ? "fail" : "skipped"}">${mark} ${escapeHtml(verdict)}</span>`;
}

/** A Cryptlet result as the signatures commit to it, or undefined for a malformed bundle. */
function structOf(b: LooseBundle): ReturnType<typeof bundleResultToStruct> | undefined {
  try {
    return bundleResultToStruct(b.result as ProofBundle["result"]);
  } catch {
    return undefined;
  }
}

/** Whether a signature entry recovers to the signer it names: `valid`, or why not. */
function signatureStatus(digest: Hex32 | undefined, entry: LooseSignature): { ok: boolean; why: string } {
  if (digest === undefined) return { ok: false, why: "the signed value cannot be rebuilt from the bundle" };
  try {
    const recovered = recoverDigestSigner(digest, String(entry.signature));
    let claimed: string | undefined;
    try {
      claimed = getAddress(String(entry.signer));
    } catch {
      claimed = undefined;
    }
    return claimed === recovered
      ? { ok: true, why: "recovers to the signer" }
      : { ok: false, why: `recovers to ${recovered}, not to the signer named` };
  } catch (e) {
    const reason = (e as { details?: { reason?: unknown } }).details?.reason;
    return { ok: false, why: typeof reason === "string" ? reason : "malformed signature" };
  }
}

function trustLabel(t: AuditTrust): string {
  if (t.source === "registry") {
    return `${t.chain ?? `chain ${t.chainId ?? "?"}`} registry`;
  }
  return t.origin ?? "given trust";
}

function isTrusted(t: AuditTrust, signer: unknown): boolean {
  try {
    const a = getAddress(String(signer));
    return t.signers.some((s) => {
      try {
        return getAddress(s) === a;
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

function signersTable(
  title: string,
  entries: readonly LooseSignature[],
  digest: Hex32 | undefined,
  trust: readonly AuditTrust[],
): string {
  if (entries.length === 0) return `<p class="muted">${escapeHtml(title)}: none.</p>`;
  const head = trust.map((t) => `<th scope="col">trusted by ${escapeHtml(trustLabel(t))} (M = ${t.threshold})</th>`);
  const rows = entries.map((e, i) => {
    const s = signatureStatus(digest, e);
    const cells = trust.map((t) =>
      isTrusted(t, e.signer)
        ? `<td class="pass" data-trusted="yes">✔ trusted</td>`
        : `<td class="fail" data-trusted="no">✘ not trusted</td>`,
    );
    return `<tr data-signer="${escapeHtml(e.signer)}"><td>#${i}</td><td>${code(e.signer)}</td><td>${code(e.keyId)}</td><td class="${s.ok ? "pass" : "fail"}">${s.ok ? "✔" : "✘"} ${escapeHtml(s.why)}</td>${cells.join("")}</tr>`;
  });
  return `<h3>${escapeHtml(title)}</h3><table class="grid"><thead><tr><th>#</th><th>signer</th><th>key id</th><th>signature</th>${head.join("")}</tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

interface TxRow {
  chainName?: string;
  chainId?: string;
  mode?: string;
  status?: string;
  txHash?: unknown;
  blockNumber?: unknown;
  gasUsed?: unknown;
  contract?: unknown;
  error?: string;
}

function transactionRows(b: LooseBundle, receipt: CompositeReceipt | undefined, o: AuditReportOptions): TxRow[] {
  const anchors = asArray<LooseAnchor>(b.anchors);
  if (receipt && Array.isArray(receipt.targets)) {
    return receipt.targets.map((t) => {
      const chainId = t.receipt?.chainId ?? t.anchor?.chainId;
      const anchor = t.anchor ?? anchors.find((a) => chainId !== undefined && String(a.chainId) === String(chainId));
      return {
        chainName: t.chain,
        ...(chainId === undefined ? {} : { chainId: String(chainId) }),
        mode: t.mode,
        status: t.status,
        txHash: t.receipt?.txHash ?? anchor?.txHash,
        blockNumber: t.receipt?.blockNumber ?? anchor?.blockNumber,
        gasUsed: t.receipt?.gasUsed ?? anchor?.gasUsed,
        contract: anchor?.contract,
        ...(t.error ? { error: `${t.error.code}: ${t.error.message}` } : {}),
      };
    });
  }
  return anchors.map((a) => {
    const chainId = a.chainId === undefined ? undefined : String(a.chainId);
    const chainName = chainId === undefined ? undefined : o.chainNames?.[chainId];
    return {
      ...(chainName === undefined ? {} : { chainName }),
      ...(chainId === undefined ? {} : { chainId }),
      mode: a.mode === undefined ? undefined : String(a.mode),
      status: "anchored",
      txHash: a.txHash,
      blockNumber: a.blockNumber,
      gasUsed: a.gasUsed,
      contract: a.contract,
    } as TxRow;
  });
}

function transactionsSection(rows: readonly TxRow[], o: AuditReportOptions): string {
  if (rows.length === 0) return `<p class="muted">No chain transaction: the result was not written (yet).</p>`;
  const body = rows.map((r) => {
    const base =
      (r.chainName === undefined ? undefined : o.explorers?.[r.chainName]) ??
      (r.chainId === undefined ? undefined : o.explorers?.[r.chainId]);
    const txUrl = explorerUrl(base, "tx", r.txHash);
    const blockUrl = explorerUrl(base, "block", r.blockNumber);
    const note = txUrl
      ? `<span class="muted">explorer: ${escapeHtml(new URL(txUrl).host)}</span>`
      : `<span class="muted">no explorer link: no explorer is configured for this chain (a local chain)</span>`;
    const statusClass = r.status === "failed" ? "fail" : "pass";
    return `<tr data-chain="${escapeHtml(r.chainName ?? r.chainId)}"><td>${text(r.chainName)}</td><td>${text(r.chainId)}</td><td>${text(r.mode)}</td><td class="${statusClass}">${text(r.status)}${r.error ? `<br><span class="reason">${escapeHtml(r.error)}</span>` : ""}</td><td>${link(txUrl, code(r.txHash))}<br>${note}</td><td>${link(blockUrl, text(r.blockNumber))}</td><td>${text(r.gasUsed)}</td><td>${code(r.contract)}</td></tr>`;
  });
  return `<table class="grid"><thead><tr><th>chain</th><th>chain id</th><th>mode</th><th>status</th><th>transaction</th><th>block</th><th>gas used</th><th>contract</th></tr></thead><tbody>${body.join("")}</tbody></table>`;
}

function payloadSection(b: LooseBundle): string {
  const p = asObject<NonNullable<LooseBundle["payload"]>>(b.payload);
  const parties = asArray<{ name?: unknown; kid?: unknown }>(asObject<{ parties?: unknown }>(b.manifest).parties);
  if (p.sealed !== undefined) {
    const jwe = asObject<{ recipients?: unknown; ciphertext?: unknown }>(p.sealed.jwe);
    const recipients = asArray<{ header?: { kid?: unknown } }>(jwe.recipients).map(
      (r) => asObject<{ kid?: unknown }>(r.header).kid,
    );
    const partyRows = parties.map(
      (party) =>
        `<tr><td>${text(party.name)}</td><td>${code(party.kid)}</td><td>${recipients.some((k) => k === party.kid) ? '<span class="pass">✔ a recipient</span>' : '<span class="fail">✘ not a recipient</span>'}</td></tr>`,
    );
    const ciphertextBytes =
      typeof jwe.ciphertext === "string" ? Math.floor((jwe.ciphertext.length * 3) / 4) : undefined;
    return `<p>Sealed result (JWE). Only its parties can open it; this page shows who it is sealed for, never its plaintext${ciphertextBytes === undefined ? "" : ` (ciphertext of about ${ciphertextBytes} bytes, not shown)`}.</p>
<table class="grid" id="parties"><thead><tr><th>party</th><th>recipient kid</th><th>in the JWE</th></tr></thead><tbody>${partyRows.join("")}</tbody></table>
<p>JWE recipient kids: ${recipients.length === 0 ? DASH : recipients.map((k) => code(k)).join(", ")}</p>`;
  }
  if (p.public !== undefined) {
    let decoded: string;
    try {
      const value = AbiCoder.defaultAbiCoder().decode([String(p.public.abiType)], String(p.public.data))[0] as unknown;
      const plain = (v: unknown): unknown =>
        typeof v === "bigint"
          ? v.toString()
          : v && typeof (v as { toObject?: unknown }).toObject === "function"
            ? Object.fromEntries(
                Object.entries((v as { toObject(): object }).toObject()).map(([k, x]) => [k, plain(x)]),
              )
            : Array.isArray(v)
              ? v.map(plain)
              : v;
      decoded = row("decoded", `<pre>${escapeHtml(JSON.stringify(plain(value), null, 2))}</pre>`);
    } catch {
      decoded = row("decoded", '<span class="muted">does not decode as the ABI type</span>');
    }
    return `<p>Public result, as written on-chain.</p><table class="kv">${row("ABI type", code(p.public.abiType))}${row("data", `<code class="wrap">${escapeHtml(p.public.data)}</code>`)}${decoded}</table>`;
  }
  return `<p class="muted">No payload in the bundle.</p>`;
}

function merkleSection(b: LooseBundle, struct: ReturnType<typeof structOf>): string {
  if (b.batch === undefined)
    return `<p class="muted">Not batched: the result was signed and written on its own (no Merkle path).</p>`;
  const batch = asObject<NonNullable<LooseBundle["batch"]>>(b.batch);
  let leaf: string | undefined;
  try {
    leaf = struct ? resultLeaf(hashCryptletResult(struct)) : undefined;
  } catch {
    leaf = undefined;
  }
  const proof = asArray<unknown>(batch.proof);
  const steps = proof.map((h, i) => `<li data-step="${i}">${code(h)}</li>`).join("");
  return `<table class="kv">${row("root", code(batch.root))}${row("leaf", `${code(leaf)} <span class="muted">keccak256(keccak256(structHash))</span>`)}${row("results in the batch", text(batch.count))}${row("batch time", timeCell(batch.timestamp))}</table>
<h3>Proof (leaf to root, ${proof.length} hash${proof.length === 1 ? "" : "es"})</h3>${proof.length === 0 ? '<p class="muted">empty: the leaf is the root</p>' : `<ol class="proof">${steps}</ol>`}`;
}

function attestationSection(token: unknown, proof: unknown): string {
  if (typeof token !== "string") return `<p class="muted">No attestation token.</p>`;
  const [h, p] = token.split(".");
  const header = decodeJwtPart(h);
  const claims = decodeJwtPart(p);
  if (!claims) return `<p class="fail">The attestation token is not a decodable JWT.</p>`;
  const headerRows = header
    ? Object.entries(header)
        .map(([k, v]) => row(k, jsonCell(v)))
        .join("")
    : "";
  const claimRows = Object.entries(claims)
    .map(([k, v]) => {
      if ((k === "iat" || k === "exp" || k === "nbf") && typeof v === "number") return row(k, timeCell(v));
      return row(k, jsonCell(v));
    })
    .join("");
  const proofRows =
    typeof proof === "object" && proof !== null
      ? `<h3>This result's leaf in the batch token</h3><table class="kv" id="attestation-proof">${Object.entries(proof)
          .map(([k, v]) => row(k, jsonCell(v)))
          .join("")}</table>`
      : "";
  return `<p>Decoded from the token (its signature is checked by the <code>attestation</code> check below).</p><h3>Header</h3><table class="kv">${headerRows}</table><h3>Claims</h3><table class="kv" id="claims">${claimRows}</table>${proofRows}`;
}

function checksSection(v: AuditVerification, index: number): string {
  const rows = v.report.checks.map(
    (c: BundleCheck) =>
      `<tr class="check ${c.verdict === "pass" ? "pass" : c.verdict === "fail" ? "fail" : "skipped"}" data-check="${escapeHtml(c.name)}" data-verdict="${escapeHtml(c.verdict)}"><td>${verdictBadge(c.verdict)}</td><td><code>${escapeHtml(c.name)}</code></td><td class="reason">${escapeHtml(c.reason)}</td></tr>`,
  );
  return `<div class="verification" data-verification="${index}" data-ok="${v.report.ok ? "true" : "false"}"><h3>${v.report.ok ? '<span class="badge pass">VALID</span>' : '<span class="badge fail">INVALID</span>'} ${escapeHtml(v.label)}</h3><table class="grid checks"><thead><tr><th>verdict</th><th>check</th><th>reason</th></tr></thead><tbody>${rows.join("")}</tbody></table></div>`;
}

function reexecutionSection(verifications: readonly AuditVerification[]): string {
  const checks = verifications
    .map((v) => v.report.checks.find((c) => c.name === "reexecution"))
    .filter((c): c is BundleCheck => c !== undefined);
  const found = checks.find((c) => c.verdict === "fail") ?? checks.find((c) => c.verdict === "pass");
  if (!found) {
    return `<p id="reexecution" data-verdict="none">Not re-executed: no verification of this report re-ran the Cryptlet (<code>cryptlet report --rerun --package &lt;dir&gt;</code> does).</p>`;
  }
  return `<p id="reexecution" data-verdict="${escapeHtml(found.verdict)}">${verdictBadge(found.verdict)} ${escapeHtml(found.reason)}</p>`;
}

const STYLE = `
:root{color-scheme:light;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;font-size:14px;color:#1f2328;background:#fff}
body{margin:0 auto;max-width:1200px;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:28px}h3{font-size:15px;margin:16px 0 6px}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
pre{margin:0;white-space:pre-wrap;word-break:break-all}
code{word-break:break-all}
table{border-collapse:collapse;width:100%}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
table.kv th{width:200px;background:#f6f8fa;font-weight:600}
table.grid thead th{background:#f6f8fa}
.muted{color:#656d76}
.pass{color:#116329}.fail{color:#a40e26}.skipped{color:#656d76}
tr.check.pass{background:#dafbe1}tr.check.fail{background:#ffebe9}tr.check.skipped{background:#f6f8fa}
td.pass{background:#dafbe1}td.fail{background:#ffebe9}
table.checks td:first-child,table.checks td:nth-child(2){white-space:nowrap;width:1%}
.badge{white-space:nowrap;display:inline-block;border-radius:10px;padding:1px 8px;font-weight:600;font-size:12px;border:1px solid currentColor}
.badge.pass{background:#dafbe1}.badge.fail{background:#ffebe9}.badge.skipped{background:#f6f8fa}
.summary{padding:10px 14px;border-radius:6px;margin:12px 0;font-weight:600}
.summary.pass{background:#dafbe1;border:1px solid #4ac26b}.summary.fail{background:#ffebe9;border:1px solid #ff8182}
ol.proof{margin:0;padding-left:28px}
footer{margin-top:32px;color:#656d76;font-size:12px}
`;

/**
 * Renders the audit report of one run.
 *
 * @param input - the bundle (and receipt), the verification report(s) with the trust each used, the event,
 *   explorer URLs.
 * @returns a complete HTML document (UTF-8), self-contained and script-free.
 *
 * @example
 * ```ts
 * import { renderAuditReport } from "./runtime/report/auditReport.ts";
 * import { verifyBundle } from "./runtime/attestation/verifyBundle.ts";
 * const trust = { source: "given" as const, origin: "trust.json", signers, threshold: 2 };
 * const report = await verifyBundle(bundle, { trustedSigners: signers, threshold: 2, jwks });
 * const html = renderAuditReport({ bundle, verifications: [{ label: "trust.json", report }], trust: [trust] });
 * ```
 */
export function renderAuditReport(input: AuditReportInput): string {
  const o = input.options ?? {};
  const b = asObject<LooseBundle>(input.bundle);
  const manifest = asObject<NonNullable<LooseBundle["manifest"]>>(b.manifest);
  const result = asObject<NonNullable<LooseBundle["result"]>>(b.result);
  const receipt = input.receipt;
  const struct = structOf(b);
  const ok = input.verifications.length > 0 && input.verifications.every((v) => v.report.ok);
  const runId = receipt?.runId ?? (typeof result.resultId === "string" ? result.resultId : undefined);
  const name = receipt?.cryptlet.name ?? manifest.name;
  const version = receipt?.cryptlet.version ?? manifest.version;

  let resultDigest: Hex32 | undefined;
  let batchDigest: Hex32 | undefined;
  try {
    if (struct) resultDigest = cryptletResultDigest(b.consortiumId as Hex32, struct);
  } catch {
    resultDigest = undefined;
  }
  try {
    if (b.batch)
      batchDigest = resultBatchDigest(b.consortiumId as Hex32, {
        root: b.batch.root as Hex32,
        count: Number(b.batch.count),
        timestamp: BigInt(String(b.batch.timestamp)),
      });
  } catch {
    batchDigest = undefined;
  }

  const cryptlet = `<table class="kv" id="cryptlet">${row("name", text(name))}${row("version", text(version))}${row("cryptletId", code(receipt?.cryptlet.cryptletId ?? manifest.cryptletId))}${row("code hash", code(result.codeHash))}${row("consortium id", code(b.consortiumId))}</table>`;

  const e = input.event ?? {};
  const event = `<table class="kv" id="event">${row("type", text(e.type ?? (e.requestId && e.eventId && e.requestId !== e.eventId ? "oracle" : undefined)))}${row("event id", code(e.eventId))}${row("request id", code(e.requestId ?? b.requestId))}${row("event time", e.time === undefined ? DASH : timeCell(e.time))}${row("accepted", e.acceptedAt === undefined ? DASH : escapeHtml(new Date(e.acceptedAt).toISOString()))}</table>
<h3>Result</h3><table class="kv" id="result">${row("result id (run id)", code(result.resultId))}${row("input hash", code(result.inputHash))}${row("output hash", code(result.outputHash))}${row("result time", timeCell(result.timestamp))}</table>`;

  const signers = `${signersTable("Result signatures (EIP-712 CryptletResult)", asArray<LooseSignature>(b.signatures), resultDigest, input.trust)}${b.batch ? signersTable("Batch signatures (EIP-712 ResultBatch)", asArray<LooseSignature>(b.batch.signatures), batchDigest, input.trust) : ""}
<p class="muted">Trust: ${input.trust.length === 0 ? "none given" : input.trust.map((t) => escapeHtml(t.source === "registry" ? `${trustLabel(t)} ${t.registry ?? ""} at block ${t.blockNumber ?? "?"}: ${t.signers.length} signer(s), M = ${t.threshold}` : `${trustLabel(t)}: ${t.signers.length} signer(s), M = ${t.threshold}`)).join("; ")}.</p>`;

  const checks =
    input.verifications.length === 0
      ? `<p class="fail">Not verified.</p>`
      : input.verifications.map((v, i) => checksSection(v, i)).join("");

  const generated = (o.generatedAt ?? new Date()).toISOString();
  const title = `Proof audit report: ${String(name ?? "unknown Cryptlet")} run ${String(runId ?? "")}`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(AUDIT_REPORT_CSP)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>Proof audit report</h1>
<p>${text(name)}@${text(version)} · run ${code(runId)}${receipt ? ` · receipt ${escapeHtml(receipt.status)}` : ""}</p>
<div class="summary ${ok ? "pass" : "fail"}" id="verdict" data-ok="${ok ? "true" : "false"}">${ok ? "✔ VALID: no check failed" : "✘ INVALID: at least one check failed (see Checks)"}</div>
</header>
${section("cryptlet-section", "Cryptlet", cryptlet)}
${section("event-section", "Event and result", event)}
${section("transactions", "Chain transactions", transactionsSection(transactionRows(b, receipt, o), o))}
${section("signers", "Signers", signers)}
${section("merkle", "Merkle path", merkleSection(b, struct))}
${section("attestation", "Attestation token", attestationSection(b.attestation, b.attestationProof))}
${section("reexecution-section", "Re-execution", reexecutionSection(input.verifications))}
${section("payload", "Payload", payloadSection(b))}
${section("checks", "Checks", checks)}
<footer>Generated ${escapeHtml(generated)} by the Cryptlet runtime. This page is self-contained: no script, no external resource. Checks: docs/proof-bundle.md, "Verification".</footer>
</body>
</html>
`;
}
