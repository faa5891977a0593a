/**
 * Re-execution on a run's evidence (runtime/reexecution/), with a real package built by esbuild, real sandbox
 * processes and a real HTTP server the Cryptlet fetches from (a GET with an API-key header and a POST with a body):
 *
 * - the original run's evidence commits to `inputHash`; a re-run on that evidence, with the server stopped, makes
 *   the same requests, is answered from the recorded responses and gives the same `inputHash` and `outputHash`;
 * - a recorded body changed (and re-hashed, so the evidence is self-consistent) gives another output and another
 *   input commitment; a body changed without re-hashing is refused as invalid evidence;
 * - other code (a request to another URL, or another body) diverges: `ERR_REPLAY_DIVERGED` names the fetch and
 *   what differs; code that makes fewer requests than recorded gives another `inputHash`;
 * - through `verifyBundle`: a public bundle built from the run re-executes VALID; its package changed is not found
 *   by `codeHash`; a sealed bundle re-executes with a party's key and fails without one.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

import { keccak256 } from "ethers";

import { buildProofBundle } from "../../runtime/attestation/bundle.ts";
import { computeResultId, type Hex32 } from "../../runtime/attestation/eip712.ts";
import {
  buildRunEvidence,
  bundleEvidenceHash,
  checkRunEvidence,
  evidenceInputHash,
  sealRunEvidence,
  type RunEvidence,
} from "../../runtime/attestation/evidence.ts";
import { encodePublicOutput, sealedOutputBytes } from "../../runtime/attestation/hashing.ts";
import { cryptletIdOf } from "../../runtime/attestation/ids.ts";
import { signCryptletResult } from "../../runtime/attestation/signing.ts";
import { buildJwks, createAttestationToken } from "../../runtime/attestation/token.ts";
import { verifyBundle } from "../../runtime/attestation/verifyBundle.ts";
import { buildPackage } from "../../runtime/packages/build.ts";
import type { BuiltPackage } from "../../runtime/packages/builtPackage.ts";
import { sandboxOptionsFromManifest } from "../../runtime/packages/sandboxOptions.ts";
import { createReexecutor, reexecuteRun } from "../../runtime/reexecution/reexecute.ts";
import type { PackageSource } from "../../runtime/reexecution/packageSources.ts";
import { SandboxPool } from "../../runtime/sandbox/pool.ts";
import type { JsonValue } from "../../runtime/sdk/index.ts";
import { seal, partyKid } from "../../runtime/sealing/seal.ts";
import { generateLocalP256 } from "../attestation/localKeys.ts";
import { cleanupTempDirs, writePackage } from "../packages/helpers.ts";
import { testWallets } from "../support/contracts.ts";
import { generateKeyPair, exportJWK, type JWK } from "jose";

const CONSORTIUM = keccak256(new TextEncoder().encode("consortium:reexecution-test")) as Hex32;
const ABI = "tuple(int256 answer, uint8 decimals, uint64 observedAt)";

/** The Cryptlet: GET price A with an API key, POST for price B, answer their mean with 8 decimals. */
function source(variant: "original" | "other-url" | "other-body" | "one-fetch"): string {
  const pathB = variant === "other-url" ? "/prices/c" : "/prices/b";
  const body = variant === "other-body" ? '{"pair":"BTC/USD"}' : '{"pair":"ETH/USD"}';
  const second =
    variant === "one-fetch"
      ? "const pb = pa;"
      : `const b = await ctx.fetch(input.base + "${pathB}", { method: "POST", headers: { "content-type": "application/json" }, body: '${body}' });
    const pb = (await b.json()).price;`;
  return `import { defineCryptlet } from "cryptlet-runtime/sdk";
export default defineCryptlet({
  async run(input, ctx) {
    const a = await ctx.fetch(input.base + "/prices/a", { headers: { "x-api-key": "k-123" } });
    const pa = (await a.json()).price;
    ${second}
    return { answer: Math.round(((pa + pb) / 2) * 1e8), decimals: 8, observedAt: ctx.now };
  },
});
`;
}

let server: http.Server;
let base: string;
const hits: string[] = [];
let sandbox: SandboxPool;
const packages = new Map<string, BuiltPackage>();

async function build(variant: Parameters<typeof source>[0], sealedFor?: JWK[]): Promise<BuiltPackage> {
  const manifest: Record<string, unknown> = {
    name: "@test/fetch-mean",
    version: "1.0.0",
    entry: "src/index.ts",
    capabilities: { fetch: { allow: [`${base}/prices/`], methods: ["GET", "POST"] } },
    output: sealedFor
      ? { sealed: true, parties: sealedFor.map((jwk, i) => ({ name: `party-${i}`, jwk })) }
      : { abi: ABI },
    targets: [{ chain: "consortium", mode: "record" }],
  };
  const dir = await writePackage({ "cryptlet.json": manifest, "src/index.ts": source(variant) });
  const pkg = await buildPackage(dir, { outDir: false });
  packages.set(pkg.codeHash.toLowerCase(), pkg);
  return pkg;
}

const source$: PackageSource = {
  description: "the test's packages",
  byCodeHash: (codeHash) => Promise.resolve(packages.get(codeHash.toLowerCase())),
};

const event = { kind: "http", body: { pair: "ETH/USD" } };
const requestId = keccak256(new TextEncoder().encode("request-1")) as Hex32;

/** The original run, as the execute stage does it: network fetches, then the evidence. */
async function originalRun(
  pkg: BuiltPackage,
): Promise<{ evidence: RunEvidence; outputJson: string; output: JsonValue }> {
  const { engine, load } = sandboxOptionsFromManifest(pkg.manifest);
  const context = { requestId, resultId: computeResultId(pkg.cryptletId, requestId), now: 1704412800 };
  const input = { base };
  const run = await sandbox.run({ codeHash: pkg.codeHash, bundle: pkg.bundle, engine, options: load }, input, {
    event,
    ...context,
  });
  return {
    evidence: buildRunEvidence({ event, input, context, hostCalls: run.hostCalls }),
    outputJson: run.outputJson,
    output: run.output,
  };
}

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString("utf8")));
    req.on("end", () => {
      hits.push(`${req.method} ${req.url} ${req.headers["x-api-key"] ?? ""} ${body}`);
      const price = req.url === "/prices/a" ? 2269.7605037562785 : 2272.7319494521353;
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ price }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  sandbox = new SandboxPool(1);
});

afterAll(async () => {
  server.close();
  await sandbox.dispose();
  await cleanupTempDirs();
});

describe("re-execution on recorded evidence", () => {
  let pkg: BuiltPackage;
  let original: Awaited<ReturnType<typeof originalRun>>;

  beforeAll(async () => {
    pkg = await build("original");
    original = await originalRun(pkg);
  });

  it("records every request (headers and body by hash) and response (body included) in the evidence", () => {
    const { fetches } = original.evidence;
    expect(fetches.map((f) => [f.request.method, f.request.url])).toEqual([
      ["GET", `${base}/prices/a`],
      ["POST", `${base}/prices/b`],
    ]);
    expect(fetches[1]!.request.bodySha256).toMatch(/^0x[0-9a-f]{64}$/);
    expect(fetches[0]!.request.bodySha256).toBeNull();
    expect(Buffer.from(fetches[0]!.response.body, "base64").toString()).toBe('{"price":2269.7605037562785}');
    // The API key is not in the evidence, only its hash.
    expect(JSON.stringify(original.evidence)).not.toContain("k-123");
    expect(hits.filter((h) => h.includes("k-123"))).toHaveLength(1);
  });

  it("reproduces inputHash and outputHash from the evidence alone (the server is not asked again)", async () => {
    const before = hits.length;
    const rerun = await reexecuteRun(pkg, original.evidence, sandbox);
    expect(hits.length).toBe(before);
    expect(rerun.inputHash).toBe(evidenceInputHash(original.evidence));
    expect(rerun.outputJson).toBe(original.outputJson);
    expect(rerun.outputHash).toBe(keccak256(encodePublicOutput(ABI, original.output)));
    expect(rerun.fetchesReplayed).toBe(2);
    // The mean, computed here independently of the Cryptlet.
    expect(JSON.parse(rerun.outputJson)).toEqual({
      answer: Math.round(((2269.7605037562785 + 2272.7319494521353) / 2) * 1e8),
      decimals: 8,
      observedAt: 1704412800,
    });
  });

  it("a changed recorded body (re-hashed) gives another output and another input commitment", async () => {
    const changed = structuredClone(original.evidence);
    const body = Buffer.from('{"price":3000}');
    const { createHash } = await import("node:crypto");
    changed.fetches[0]!.response.body = body.toString("base64");
    changed.fetches[0]!.response.bodyBytes = body.length;
    changed.fetches[0]!.response.bodySha256 = `0x${createHash("sha256").update(body).digest("hex")}`;
    checkRunEvidence(changed);
    const rerun = await reexecuteRun(pkg, changed, sandbox);
    expect(rerun.inputHash).not.toBe(evidenceInputHash(original.evidence));
    expect(rerun.outputJson).not.toBe(original.outputJson);
  });

  it("a changed body that does not match its hash is invalid evidence, naming the field", () => {
    const changed = structuredClone(original.evidence);
    changed.fetches[1]!.response.body = Buffer.from('{"price":1}').toString("base64");
    expect(() => checkRunEvidence(changed)).toThrow(
      expect.objectContaining({
        code: "ERR_EVIDENCE_INVALID",
        message: expect.stringContaining("fetches[1].response.body"),
      }),
    );
  });

  it.each([
    ["other-url", "url"],
    ["other-body", "body"],
  ] as const)("code that makes another request (%s) diverges with ERR_REPLAY_DIVERGED", async (variant, field) => {
    const other = await build(variant);
    await expect(reexecuteRun(other, original.evidence, sandbox)).rejects.toMatchObject({
      code: "ERR_REPLAY_DIVERGED",
      details: { index: 1, field },
    });
  });

  it("code that makes fewer requests than recorded gives another inputHash", async () => {
    const fewer = await build("one-fetch");
    const rerun = await reexecuteRun(fewer, original.evidence, sandbox);
    expect(rerun.fetchesReplayed).toBe(1);
    expect(rerun.inputHash).not.toBe(evidenceInputHash(original.evidence));
  });
});

describe("re-execution as a verifyBundle check", () => {
  const [signer] = testWallets(1) as [ReturnType<typeof testWallets>[number]];
  const attestation = generateLocalP256("attestation").provider;

  /** A bundle as the attest stage builds it, for a run of `pkg` (public or sealed for `parties`). */
  async function bundleOf(pkg: BuiltPackage, parties?: { jwk: JWK; name: string }[], sealedPlaintext?: string) {
    const run = await originalRun(pkg);
    const resultId = computeResultId(pkg.cryptletId, requestId);
    let payload: Parameters<typeof buildProofBundle>[0]["payload"];
    let evidence: Parameters<typeof buildProofBundle>[0]["evidence"];
    let bytes: Uint8Array;
    if (parties) {
      const jwe = await seal(sealedPlaintext ?? run.outputJson, parties);
      payload = { sealed: { jwe } };
      evidence = { sealed: { jwe: await sealRunEvidence(run.evidence, parties) } };
      bytes = sealedOutputBytes(jwe);
    } else {
      const data = encodePublicOutput(ABI, run.output);
      payload = { public: { abiType: ABI, data } };
      evidence = { public: run.evidence };
      bytes = Buffer.from(data.slice(2), "hex");
    }
    const result = {
      resultId,
      cryptletId: pkg.cryptletId,
      codeHash: pkg.codeHash,
      inputHash: evidenceInputHash(run.evidence),
      outputHash: keccak256(bytes) as Hex32,
      timestamp: 1704412801n,
    };
    const token = await createAttestationToken(attestation, {
      issuer: "runtime-test",
      ...result,
      consortiumId: CONSORTIUM,
      evidenceHash: bundleEvidenceHash(evidence!),
      runtime: { version: "0.1.0", buildHash: CONSORTIUM },
      sandbox: {
        engine: "isolated-vm",
        engineVersion: pkg.manifest.engineVersion,
        limits: { memoryBytes: 1, wallTimeMs: 1, outputBytes: 1 },
      },
      now: new Date(1704412801_000),
      ttlSeconds: 3600,
    });
    const kids = parties ? await Promise.all(parties.map(async (p) => ({ name: p.name, kid: await partyKid(p) }))) : [];
    return buildProofBundle({
      consortiumId: CONSORTIUM,
      manifest: {
        cryptletId: cryptletIdOf(pkg.manifest.name),
        name: pkg.manifest.name,
        version: "1.0.0",
        parties: kids,
      },
      requestId,
      result,
      signatures: await signCryptletResult(CONSORTIUM, result, [signer]),
      attestation: token,
      payload,
      evidence,
    });
  }

  async function verify(bundle: unknown, partyKeys: JWK[] = []) {
    const reexecutor = createReexecutor({ packages: source$, sandbox });
    return verifyBundle(bundle, {
      trustedSigners: [await signer.getAddress()],
      threshold: 1,
      jwks: await buildJwks([attestation]),
      now: new Date(1704412802_000),
      partyKeys,
      reexecutor,
    });
  }

  const verdict = (report: Awaited<ReturnType<typeof verify>>, name: string) =>
    report.checks.find((c) => c.name === name)!;

  it("a public bundle re-executes VALID; with its evidence stripped it is INVALID (evidence required)", async () => {
    const pkg = await build("original");
    const bundle = await bundleOf(pkg);
    const report = await verify(bundle);
    expect(verdict(report, "reexecution")).toMatchObject({ verdict: "pass" });
    expect(verdict(report, "reexecution").reason).toContain("inputHash and outputHash reproduced");
    expect(report.ok).toBe(true);
    const { evidence: _e, ...stripped } = bundle;
    const strippedReport = await verify(stripped);
    expect(strippedReport.ok).toBe(false);
    expect(verdict(strippedReport, "proofs").reason).toContain("evidence (required by re-execution requested)");
    expect(verdict(strippedReport, "reexecution").verdict).toBe("fail");
  });

  it("a bundle whose code hash names no package known is INVALID, naming the code hash", async () => {
    const pkg = await build("original");
    const bundle = await bundleOf(pkg);
    packages.delete(pkg.codeHash.toLowerCase());
    try {
      const report = await verify(bundle);
      expect(verdict(report, "reexecution")).toMatchObject({ verdict: "fail" });
      expect(verdict(report, "reexecution").reason).toContain(`no package with codeHash ${pkg.codeHash}`);
    } finally {
      packages.set(pkg.codeHash.toLowerCase(), pkg);
    }
  });

  it("a sealed bundle re-executes with a party's key, and cannot without one", async () => {
    const keys = await Promise.all(
      ["a", "b"].map(async () =>
        exportJWK((await generateKeyPair("ECDH-ES+A256KW", { crv: "P-256", extractable: true })).privateKey),
      ),
    );
    const publicOf = (jwk: JWK): JWK => {
      const { d: _d, ...pub } = jwk;
      return pub;
    };
    const pkg = await build("original", keys.map(publicOf));
    const bundle = await bundleOf(
      pkg,
      keys.map((jwk, i) => ({ name: `party-${i}`, jwk: publicOf(jwk) })),
    );
    // Nothing of the input is readable in the bundle without a key.
    expect(JSON.stringify(bundle)).not.toContain(base);
    const withKey = await verify(bundle, [keys[1]!]);
    expect(verdict(withKey, "evidence").reason).toContain("opened with a party key");
    expect(verdict(withKey, "reexecution")).toMatchObject({ verdict: "pass" });
    expect(verdict(withKey, "reexecution").reason).toContain("output identical to the sealed plaintext");
    expect(withKey.ok).toBe(true);
    const withoutKey = await verify(bundle);
    expect(verdict(withoutKey, "evidence")).toMatchObject({ verdict: "pass" });
    expect(verdict(withoutKey, "reexecution")).toMatchObject({ verdict: "fail" });
    expect(verdict(withoutKey, "reexecution").reason).toContain("no party key");
    // An operator that sealed (and signed) another output than the code computes: a party re-executing sees it.
    const lying = await bundleOf(
      pkg,
      keys.map((jwk, i) => ({ name: `party-${i}`, jwk: publicOf(jwk) })),
      '{"answer":1,"decimals":8,"observedAt":1704412800}',
    );
    const caught = await verify(lying, [keys[0]!]);
    expect(verdict(caught, "outputHash").verdict).toBe("pass");
    expect(verdict(caught, "reexecution")).toMatchObject({ verdict: "fail" });
    expect(verdict(caught, "reexecution").reason).toContain("the output differs from the sealed plaintext");
  });
});
