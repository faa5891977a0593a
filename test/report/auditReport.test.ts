/**
 * The proof audit report (runtime/report/auditReport.ts) rendered from real bundles (test/verify/bundleFixture.ts:
 * real EIP-712 signatures, a real ES256 attestation token, a real JWE) and real `verifyBundle` reports, then opened
 * in headless Chromium (Debian's `/usr/bin/chromium`, driven by puppeteer-core): every check row of a valid bundle
 * is green (or grey when the check does not apply, with its reason), a flipped signature byte turns the
 * `signatures` row red with its reason, a `<script>` in a field stays text, and the page makes no request.
 * The test takes a screenshot of the valid report; with `UPDATE_SCREENSHOTS=1` it replaces
 * docs/img/audit-report.png with it (keys are random per run, so the picture changes every time: it is only written
 * when asked).
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

import { Wallet } from "ethers";
import { exportJWK, generateKeyPair, type JSONWebKeySet } from "jose";
import type { Browser, Page } from "puppeteer-core";

import type { ProofBundle } from "../../runtime/attestation/bundle.ts";
import { buildJwks } from "../../runtime/attestation/token.ts";
import { verifyBundle, type VerifyBundleOptions } from "../../runtime/attestation/verifyBundle.ts";
import type { CompositeReceipt } from "../../runtime/queue/results.ts";
import {
  AUDIT_REPORT_CSP,
  auditSubjectOf,
  escapeHtml,
  explorerUrl,
  renderAuditReport,
  type AuditTrust,
} from "../../runtime/report/auditReport.ts";
import { generateLocalP256 } from "../attestation/localKeys.ts";
import { CODE_HASH, CONSORTIUM_ID, PACKAGE_NAME, makeBundle, type FixtureKeys } from "../verify/bundleFixture.ts";

// Browser globals used inside page callbacks (they run in Chromium; the project compiles without the DOM lib).
interface BrowserElement {
  textContent: string | null;
  getAttribute(name: string): string | null;
  querySelector(selector: string): BrowserElement | null;
}
declare const document: {
  querySelector(selector: string): BrowserElement | null;
  querySelectorAll(selector: string): ArrayLike<BrowserElement> & Iterable<BrowserElement>;
};
declare const window: object;
declare function getComputedStyle(element: unknown): { backgroundColor: string };

const CHROMIUM = "/usr/bin/chromium";
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const SCREENSHOT = path.join(import.meta.dirname, "..", "..", "docs", "img", "audit-report.png");

let keys: FixtureKeys;
let jwks: JSONWebKeySet;
let options: VerifyBundleOptions;
let trust: AuditTrust[];
let publicBundle: ProofBundle;
let sealedBundle: ProofBundle;
let plaintext: string;
let tmp: string;

beforeAll(async () => {
  const wallets = [Wallet.createRandom(), Wallet.createRandom(), Wallet.createRandom()];
  const attestation = generateLocalP256("attestation").provider;
  const parties = [];
  for (const name of ["shipper", "carrier"]) {
    const kp = await generateKeyPair("ECDH-ES+A256KW", { crv: "P-256", extractable: true });
    parties.push({ name, jwk: await exportJWK(kp.publicKey) });
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
  trust = [{ source: "given", origin: "test trust", signers: options.trustedSigners, threshold: 2 }];
  publicBundle = (await makeBundle(keys)).bundle;
  const sealed = await makeBundle(keys, { sealed: true, batchSize: 4 });
  sealedBundle = sealed.bundle;
  plaintext = sealed.plaintext!;
  tmp = await mkdtemp(path.join(os.tmpdir(), "cryptlet-report-"));
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A composite receipt around a bundle: one confirmed `record` write on the local chain `consortium`. */
function receiptOf(bundle: ProofBundle): CompositeReceipt {
  const anchor = bundle.anchors[0]!;
  return {
    runId: bundle.result.resultId,
    resultId: bundle.result.resultId,
    cryptlet: { name: PACKAGE_NAME, version: "1.0.0", cryptletId: bundle.manifest.cryptletId, codeHash: CODE_HASH },
    status: "confirmed",
    targets: [
      {
        chain: "consortium",
        mode: "record",
        status: "confirmed",
        receipt: {
          status: "confirmed",
          chain: "consortium",
          chainId: 31337,
          idempotencyKey: "k",
          txHash: anchor.txHash,
          blockNumber: Number(anchor.blockNumber),
          gasUsed: anchor.gasUsed,
          confirmations: 1,
        },
        anchor,
        updatedAt: 1704412803000,
      },
    ],
    bundle,
    gasUsed: anchor.gasUsed,
    summary: "consortium/record: confirmed",
    completedAt: 1704412803000,
  };
}

async function render(
  bundle: unknown,
  extra: Partial<Parameters<typeof renderAuditReport>[0]> = {},
): Promise<{ html: string; ok: boolean }> {
  const report = await verifyBundle(bundle, options);
  const html = renderAuditReport({
    bundle,
    verifications: [{ label: "test trust: 3 signers, threshold 2", report }],
    trust,
    event: { type: "schedule", eventId: publicBundle.requestId!, requestId: publicBundle.requestId!, time: 1704412800 },
    options: { generatedAt: new Date("2024-01-05T00:05:00Z") },
    ...extra,
  });
  return { html, ok: report.ok };
}

function flipSignatureByte(bundle: ProofBundle): ProofBundle {
  const copy = structuredClone(bundle);
  const sig = copy.signatures[0]!.signature;
  // Byte 5 of r: still a well-formed low-s signature, it just recovers to another address.
  const at = 2 + 5 * 2;
  const flipped = (parseInt(sig.slice(at, at + 2), 16) ^ 0xff).toString(16).padStart(2, "0");
  copy.signatures[0]!.signature = sig.slice(0, at) + flipped + sig.slice(at + 2);
  return copy;
}

describe("the HTML (no browser)", () => {
  test("shows the re-execution verdict of the verification (the reexecution check), red when it failed", async () => {
    // The Reexecutor port stands in for the sandbox here: the page shows whatever verdict the check carries.
    const rerun = async (verdict: "pass" | "fail", reason: string) => {
      const report = await verifyBundle(publicBundle, {
        ...options,
        reexecutor: { reexecute: () => Promise.resolve({ verdict, reason }) },
      });
      return renderAuditReport({
        bundle: publicBundle,
        verifications: [{ label: "test trust", report }],
        trust,
        options: { generatedAt: new Date("2024-01-05T00:05:00Z") },
      });
    };
    const passed = await rerun("pass", "re-ran @acme/eth-usd-median@1.0.0: inputHash and outputHash reproduced");
    expect(passed).toMatch(/<p id="reexecution" data-verdict="pass">.*inputHash and outputHash reproduced/);
    const failed = await rerun("fail", "re-ran <x>: outputHash 0x12 differs");
    expect(failed).toMatch(/<p id="reexecution" data-verdict="fail">.*re-ran &lt;x&gt;: outputHash 0x12 differs/);
  });

  test("escapes every value; links only http(s) explorers; finds the bundle in a receipt", async () => {
    expect(escapeHtml(`<a href="x" onclick='y'>&`)).toBe("&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;");
    expect(explorerUrl("https://sepolia.etherscan.io/", "tx", publicBundle.anchors[0]!.txHash)).toBe(
      `https://sepolia.etherscan.io/tx/${publicBundle.anchors[0]!.txHash}`,
    );
    expect(explorerUrl("javascript:alert(1)", "tx", publicBundle.anchors[0]!.txHash)).toBeUndefined();
    expect(explorerUrl("https://x.example", "tx", "0x12<script>")).toBeUndefined();
    expect(explorerUrl(undefined, "block", "12")).toBeUndefined();
    const receipt = receiptOf(publicBundle);
    expect(auditSubjectOf(receipt)).toEqual({ bundle: publicBundle, receipt });
    expect(auditSubjectOf({ runId: "x", status: "complete", receipt })).toEqual({ bundle: publicBundle, receipt });
    expect(auditSubjectOf(publicBundle)).toEqual({ bundle: publicBundle });

    const { html } = await render(publicBundle, { receipt });
    expect(html).toContain(`content="${escapeHtml(AUDIT_REPORT_CSP)}"`);
    expect(html).not.toMatch(/<script|<link|<img|<iframe|src=|url\(/i);
    expect(html).toContain(publicBundle.result.resultId);
  });

  test("a sealed result names its parties and recipient kids, never the plaintext or the ciphertext", async () => {
    const { html } = await render(sealedBundle);
    for (const party of sealedBundle.manifest.parties) expect(html).toContain(escapeHtml(party.kid));
    expect(html).not.toContain(plaintext);
    expect(html).not.toContain(JSON.parse(plaintext).answer);
    const jwe = sealedBundle.payload.sealed!.jwe as { ciphertext: string; iv: string };
    expect(html).not.toContain(jwe.ciphertext);
    expect(html).not.toContain(jwe.iv);
  });
});

(HAVE_CHROMIUM ? describe : describe.skip)("in headless Chromium", () => {
  let browser: Browser;
  const requests: string[] = [];

  beforeAll(async () => {
    const puppeteer = (await import("puppeteer-core")).default;
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        `--user-data-dir=${path.join(tmp, "profile")}`,
      ],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
  });

  /** Opens `html` from a file; every request other than the document itself is recorded and aborted. */
  async function open(html: string, name: string): Promise<Page> {
    const file = path.join(tmp, `${name}.html`);
    await writeFile(file, html);
    const url = pathToFileURL(file).href;
    const page = await browser.newPage();
    await page.setViewport({ width: 1200, height: 900 });
    await page.setRequestInterception(true);
    page.on("request", (request) => {
      if (request.url() === url) {
        void request.continue();
        return;
      }
      requests.push(`${name}: ${request.url()}`);
      void request.abort();
    });
    await page.goto(url, { waitUntil: "load" });
    return page;
  }

  const checkRows = (page: Page) =>
    page.$$eval("tr.check", (rows) =>
      rows.map((r) => ({
        name: r.getAttribute("data-check"),
        verdict: r.getAttribute("data-verdict"),
        badge: r.querySelector(".badge")?.textContent ?? "",
        reason: r.querySelector(".reason")?.textContent ?? "",
        background: getComputedStyle(r).backgroundColor,
      })),
    );
  const GREEN = "rgb(218, 251, 225)";
  const RED = "rgb(255, 235, 233)";
  const GREY = "rgb(246, 248, 250)";

  test("the request detector works: a page with an external stylesheet is caught", async () => {
    const before = requests.length;
    const page = await open(
      `<!DOCTYPE html><link rel="stylesheet" href="http://127.0.0.1:9/x.css"><p>x</p>`,
      "control",
    );
    await page.close();
    expect(requests.slice(before)).toEqual(["control: http://127.0.0.1:9/x.css"]);
    requests.length = before;
  });

  test("valid bundles: every check that applies is green with its reason; the others grey with why", async () => {
    const publicPage = await open((await render(publicBundle, { receipt: receiptOf(publicBundle) })).html, "public");
    const publicRows = await checkRows(publicPage);
    const sealedPage = await open((await render(sealedBundle)).html, "sealed");
    const sealedRows = await checkRows(sealedPage);
    const sealed = await sealedPage.evaluate(() => ({
      merkle: document.querySelector("#merkle")?.textContent ?? "",
      steps: [...document.querySelectorAll("#merkle ol.proof li")].map((li) => li.textContent),
      parties: [...document.querySelectorAll("#parties tbody tr")].map((tr) => tr.textContent),
      batchSigners: document.querySelectorAll("#signers td[data-trusted]").length,
    }));
    await sealedPage.close();
    // The Merkle path of the batched result: root, leaf, the proof hashes in order; the sealed-for parties.
    expect(sealed.merkle).toContain(sealedBundle.batch!.root);
    expect(sealed.merkle).toMatch(/leaf\s*0x[0-9a-f]{64}/);
    expect(sealedBundle.batch!.proof).toHaveLength(2); // four leaves: two levels, so the order shows
    expect(sealed.steps).toEqual(sealedBundle.batch!.proof);
    expect(sealed.parties).toEqual(sealedBundle.manifest.parties.map((p) => `${p.name}${p.kid}✔ a recipient`));
    expect(sealed.batchSigners).toBe(sealedBundle.batch!.signatures.length);

    // The rows are the report's checks, in its order (verifyBundle may gain checks: they must not fail either).
    const reportOf = async (b: ProofBundle) => (await verifyBundle(b, options)).checks.map((c) => c.name);
    expect(publicRows.map((r) => r.name)).toEqual(await reportOf(publicBundle));
    expect(sealedRows.map((r) => r.name)).toEqual(await reportOf(sealedBundle));
    const names = [
      "schema",
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
    for (const rows of [publicRows, sealedRows]) expect(rows.map((r) => r.name)).toEqual(expect.arrayContaining(names));
    // What does not apply to a bundle is skipped (docs/proof-bundle.md, "skipped when"), never failed.
    const notApplicable = {
      public: ["merkleProof", "batchSignatures", "recipients", "reexecution", "anchors"],
      sealed: ["signatures", "reexecution", "anchors"],
    };
    for (const [which, rows] of [
      ["public", publicRows],
      ["sealed", sealedRows],
    ] as const) {
      for (const row of rows) {
        const known = names.includes(row.name!);
        const skipped = known ? notApplicable[which].includes(row.name!) : row.verdict === "skipped";
        expect({ which, name: row.name, verdict: row.verdict, background: row.background }).toEqual({
          which,
          name: row.name,
          verdict: skipped ? "skipped" : "pass",
          background: skipped ? GREY : GREEN,
        });
        expect(row.badge).toContain(skipped ? "skipped" : "pass");
        expect(row.reason.length).toBeGreaterThan(5);
      }
    }
    // Between the two bundles every check but the on-chain ones passed once.
    const passed = new Set([...publicRows, ...sealedRows].filter((r) => r.verdict === "pass").map((r) => r.name));
    expect(names.filter((n) => !passed.has(n))).toEqual(["anchors"]);

    // The rest of the page, as a reader sees it.
    const page = await publicPage.evaluate(() => ({
      verdict: document.querySelector("#verdict")?.textContent,
      cryptlet: document.querySelector("#cryptlet")?.textContent,
      tx: document.querySelector("#transactions")?.textContent,
      links: [...document.querySelectorAll("a")].map((a) => a.getAttribute("href")),
      signerCells: [...document.querySelectorAll("#signers td[data-trusted]")].map((td) => td.textContent),
      claims: document.querySelector("#claims")?.textContent,
      reexecution: document.querySelector("#reexecution")?.textContent,
      scripts: document.querySelectorAll("script").length,
    }));
    expect(page.verdict).toContain("VALID");
    expect(page.cryptlet).toContain(PACKAGE_NAME);
    expect(page.cryptlet).toContain(CODE_HASH);
    expect(page.tx).toContain(publicBundle.anchors[0]!.txHash);
    expect(page.tx).toContain("148213");
    expect(page.tx).toContain("no explorer is configured for this chain");
    expect(page.links).toEqual([]);
    expect(page.signerCells).toEqual(["✔ trusted", "✔ trusted"]);
    expect(page.claims).toContain("runtime-test-1");
    expect(page.claims).toContain("7.0.1+v8.13.6.233.17-node.53");
    expect(page.reexecution).toContain("Not re-executed");
    expect(page.scripts).toBe(0);

    const shot = process.env.UPDATE_SCREENSHOTS === "1" ? SCREENSHOT : path.join(tmp, "audit-report.png");
    await mkdir(path.dirname(shot), { recursive: true });
    await publicPage.screenshot({ path: shot as `${string}.png`, fullPage: true });
    await publicPage.close();
    const png = await readFile(shot);
    expect(png.subarray(1, 4).toString()).toBe("PNG");
    expect(png.length).toBeGreaterThan(50_000);
  });

  test("with an explorer configured, the transaction and block link to it", async () => {
    const html = (
      await render(publicBundle, {
        receipt: receiptOf(publicBundle),
        options: { explorers: { consortium: "https://explorer.example/" } },
      })
    ).html;
    const page = await open(html, "explorer");
    const links = await page.$$eval("#transactions a", (as) => as.map((a) => a.getAttribute("href")));
    await page.close();
    expect(links).toEqual([
      `https://explorer.example/tx/${publicBundle.anchors[0]!.txHash}`,
      "https://explorer.example/block/12",
    ]);
  });

  test("one flipped signature byte: the signatures check is red with its reason, the page INVALID", async () => {
    const tampered = flipSignatureByte(publicBundle);
    const { html, ok } = await render(tampered);
    expect(ok).toBe(false);
    const page = await open(html, "tampered");
    const rows = await checkRows(page);
    const verdict = await page.$eval("#verdict", (e) => e.textContent);
    const sigCell = await page.$eval("#signers tbody tr td:nth-child(4)", (td) => td.textContent);
    await page.close();
    const signatures = rows.find((r) => r.name === "signatures")!;
    expect(signatures).toMatchObject({ verdict: "fail", background: RED });
    expect(signatures.badge).toContain("fail");
    // The flipped r recovers to another address, or (when it is no curve point) to none.
    expect(signatures.reason).toMatch(
      /^1 distinct trusted result signer\(s\) \(0x[0-9a-fA-F]{40}\), threshold 2; not counted: #0 (wrong-signer|unrecoverable)$/,
    );
    expect(rows.filter((r) => r.verdict === "fail").map((r) => r.name)).toEqual(["signatures"]);
    expect(verdict).toContain("INVALID");
    expect(sigCell).toMatch(/^✘ (recovers to 0x[0-9a-fA-F]{40}, not to the signer named|unrecoverable)$/);
  });

  test("a <script> in a field is shown as text and does not run", async () => {
    const hostile = structuredClone(publicBundle) as ProofBundle;
    const payload = `<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">"'&`;
    hostile.manifest.name = payload;
    (hostile.anchors[0] as { mode: string }).mode = payload;
    const { html } = await render(hostile, { options: { chainNames: { "31337": payload } } });
    expect(html).not.toContain("<script>window");
    const page = await open(html, "hostile");
    const seen = await page.evaluate(() => ({
      pwned: typeof (window as { __pwned?: unknown }).__pwned,
      scripts: document.querySelectorAll("script").length,
      images: document.querySelectorAll("img").length,
      name: document.querySelector("#cryptlet td")?.textContent,
      schemaCheck: document.querySelector('tr[data-check="schema"]')?.getAttribute("data-verdict"),
    }));
    await page.close();
    expect(seen).toEqual({ pwned: "undefined", scripts: 0, images: 0, name: payload, schemaCheck: "fail" });
  });

  test("no page made a network request", () => {
    expect(requests).toEqual([]);
  });
});

if (!HAVE_CHROMIUM) {
  // Outside CI a developer without Chromium still runs the string-level checks above; CI installs it (.ci/run),
  // so there its absence is a failure, never a silent skip.
  test(`the browser checks need ${CHROMIUM} (apt-get install -y chromium; .ci/run installs it)`, () => {
    expect(process.env.CI).not.toBe("true");
  });
}
