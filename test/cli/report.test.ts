/**
 * `cryptlet report` as a child process on the proof-bundle vectors with their trust file: a valid bundle gives a
 * VALID page (exit 0) whose check rows are the verification's; a tampered signature gives an INVALID page with the
 * `signatures` row failed (exit 1); without trust nothing is written (exit 2); a run id is read from the result
 * store of `--config` (real Redis), with the chain's `explorerUrl` links. The page's rendering is tested in a
 * browser in test/report/auditReport.test.ts.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { Redis } from "ioredis";

import type { ProofBundle } from "../../runtime/attestation/bundle.ts";
import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import { ResultStore } from "../../runtime/queue/results.ts";
import { cleanRedis } from "../api/helpers.ts";
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

describe("a run id, looked up in the result store of --config (real Redis)", () => {
  const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  let redis: Redis;
  let prefix: string;
  let config: string;
  let runId: string;

  beforeAll(async () => {
    prefix = `clirep${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
    redis = new Redis(REDIS_URL);
    const keysDir = path.join(tmp, "keys");
    await mkdir(keysDir);
    const created = await Promise.all(
      [
        ["signer.jwk.json", "signer"],
        ["attestation.jwk.json", "attestation"],
      ].map(([file, kind]) => cli("keys", "create", path.join(keysDir, file!), "--kind", kind!, "--json")),
    );
    expect(created.map((r) => r.code)).toEqual([0, 0]);
    config = path.join(tmp, "cryptlet.config.json");
    await writeFile(
      config,
      JSON.stringify({
        redisUrl: REDIS_URL,
        prefix,
        consortiumId: `0x${"11".repeat(32)}`,
        keys: {
          resultSigners: [{ type: "local", jwkPath: "keys/signer.jwk.json" }],
          attestation: { type: "local", jwkPath: "keys/attestation.jwk.json" },
        },
        chains: [
          {
            name: "consortium",
            chainId: 31337,
            rpcUrl: "http://127.0.0.1:9",
            explorerUrl: "https://explorer.example",
            signer: { type: "local", jwkPath: "keys/signer.jwk.json" },
            contracts: {},
          },
        ],
        packages: { trustedPublishers: [] },
      }),
    );
    // A completed run of the valid vector, stored the way the pipeline stores it.
    const bundle = vectors.cases.find((c) => c.name === "valid-public")!.bundle as unknown as ProofBundle;
    runId = bundle.result.resultId;
    const results = new ResultStore(redis, prefix);
    const cryptlet = {
      name: bundle.manifest.name,
      version: bundle.manifest.version,
      cryptletId: bundle.manifest.cryptletId as Hex32,
      codeHash: bundle.result.codeHash as Hex32,
    };
    const anchor = bundle.anchors[0]!;
    await results.putRun({
      runId,
      resultId: runId as Hex32,
      eventId: bundle.requestId as Hex32,
      requestId: bundle.requestId as Hex32,
      cryptlet,
      targets: [{ chain: "consortium", mode: "record" }],
      acceptedAt: Date.now(),
      event: { type: "schedule", time: 1704412800 },
    });
    await results.putAttested(runId, {
      bundle: { ...bundle, anchors: [] },
      payload: bundle.payload.public!.data,
      signatures: [],
      attestedAt: Date.now(),
    });
    await results.putOutcome(runId, {
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
      },
      anchor,
      updatedAt: Date.now(),
    });
    await results.buildReceipt(runId, runId as Hex32, cryptlet, [{ chain: "consortium", mode: "record" }]);
  });

  afterAll(async () => {
    await cleanRedis(redis, prefix);
    await redis.quit();
  });

  test("the page has the run's event, its transaction linked to the chain's explorerUrl, and VALID", async () => {
    const out = path.join(tmp, "run.html");
    const run = await cli("report", runId, "--config", config, "--trust", trustFile, "--html", out, "--json");
    expect(run.code).toBe(0);
    expect(json(run)).toMatchObject({ ok: true, runId });
    const html = await readFile(out, "utf8");
    const tx = vectors.cases.find((c) => c.name === "valid-public")!.bundle as unknown as ProofBundle;
    expect(html).toContain(`href="https://explorer.example/tx/${tx.anchors[0]!.txHash}"`);
    expect(html).toContain(`href="https://explorer.example/block/12"`);
    expect(html).toMatch(/<th scope="row">type<\/th><td>schedule<\/td>/);
    expect(html).toContain("2024-01-05T00:00:00.000Z");
    expect(html).toContain('id="verdict" data-ok="true"');
    // --explorer overrides the configuration's.
    const other = await cli(
      "report",
      runId,
      "--config",
      config,
      "--trust",
      trustFile,
      "--html",
      out,
      "--explorer",
      "31337=https://other.example",
    );
    expect(other.code).toBe(0);
    expect(await readFile(out, "utf8")).toContain(`href="https://other.example/block/12"`);
  });

  test("an unknown run id: ERR_RUN_NOT_FOUND, exit 1, nothing written", async () => {
    const out = path.join(tmp, "unknown.html");
    const run = await cli(
      "report",
      `0x${"ab".repeat(32)}`,
      "--config",
      config,
      "--trust",
      trustFile,
      "--html",
      out,
      "--json",
    );
    expect(run.code).toBe(1);
    expect(json(run).error.code).toBe("ERR_RUN_NOT_FOUND");
    expect(existsSync(out)).toBe(false);
  });
});
