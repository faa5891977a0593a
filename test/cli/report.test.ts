/**
 * `cryptlet report` as a child process on the proof-bundle vectors with their trust file: a valid bundle gives a
 * VALID page (exit 0) whose check rows are the verification's; a tampered signature gives an INVALID page with the
 * `signatures` row failed (exit 1); without trust nothing is written (exit 2). The page's rendering is tested in a
 * browser in test/report/auditReport.test.ts.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { cli, json, ROOT } from "./cliProcess.ts";

let tmp: string;
let vectors: { trust: Record<string, unknown>; cases: { name: string; bundle: Record<string, unknown> }[] };
let trustFile: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "cryptlet-cli-report-"));
  vectors = JSON.parse(await readFile(path.join(ROOT, "test", "vectors", "proof-bundle", "vectors.json"), "utf8"));
  trustFile = path.join(tmp, "trust.json");
  await writeFile(trustFile, JSON.stringify(vectors.trust));
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function bundleFile(name: string): Promise<string> {
  const file = path.join(tmp, `${name}.json`);
  await writeFile(file, JSON.stringify(vectors.cases.find((c) => c.name === name)?.bundle));
  return file;
}

/** The check rows of a page, as `name=verdict`. */
const rowsOf = (html: string): string[] =>
  [...html.matchAll(/<tr class="check [a-z]+" data-check="([A-Za-z]+)" data-verdict="([a-z]+)"/g)].map(
    (m) => `${m[1]}=${m[2]}`,
  );

test("a valid bundle: exit 0, a VALID page with the verification's checks", async () => {
  const out = path.join(tmp, "valid.html");
  const run = await cli("report", await bundleFile("valid-public"), "--html", out, "--trust", trustFile, "--json");
  expect(run.code).toBe(0);
  expect(json(run)).toMatchObject({ ok: true, html: out, failed: [] });
  const html = await readFile(out, "utf8");
  expect(html).toContain('id="verdict" data-ok="true"');
  const verify = await cli("verify", await bundleFile("valid-public"), "--trust", trustFile, "--json");
  const checks = (json(verify).checks as { name: string; verdict: string }[]).map((c) => `${c.name}=${c.verdict}`);
  expect(rowsOf(html)).toEqual(checks);
  expect(rowsOf(html).some((r) => r.endsWith("=fail"))).toBe(false);
});

test("a tampered signature: exit 1, an INVALID page whose signatures row failed", async () => {
  const out = path.join(tmp, "tampered.html");
  const run = await cli("report", await bundleFile("tampered-signature"), "--html", out, "--trust", trustFile);
  expect(run.code).toBe(1);
  expect(run.stdout).toMatch(/^INVALID: wrote .*tampered\.html/);
  expect(run.stdout).toMatch(/fail signatures: /);
  const html = await readFile(out, "utf8");
  expect(html).toContain('id="verdict" data-ok="false"');
  expect(rowsOf(html)).toContain("signatures=fail");
});

test("without trust nothing is written (exit 2); a bad --explorer is exit 2", async () => {
  const out = path.join(tmp, "none.html");
  const noTrust = await cli("report", await bundleFile("valid-public"), "--html", out);
  expect(noTrust.code).toBe(2);
  expect(noTrust.stderr).toMatch(/ERR_CLI_USAGE: no trust to verify against/);
  expect(existsSync(out)).toBe(false);
  const bad = await cli(
    "report",
    await bundleFile("valid-public"),
    "--html",
    out,
    "--trust",
    trustFile,
    "--explorer",
    "consortium=javascript:x",
  );
  expect(bad.code).toBe(2);
  expect(existsSync(out)).toBe(false);
  const notRun = await cli("report", "not-a-file-or-run", "--html", out, "--trust", trustFile);
  expect(notRun.code).toBe(2);
});
