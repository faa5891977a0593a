/**
 * The `cryptlet` command as a child process (Node 24 running runtime/cli/main.ts) against real files: init + build
 * (codeHash equal to buildPackage's), decrypt with each party key and not with a fourth, verify on the
 * proof-bundle vectors (valid and tampered), and the exit codes (0 ok, 1 failure, 2 usage). Commands with a
 * configuration (Redis, keys, chains): config.test.ts.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { exportJWK, generateKeyPair } from "jose";

import { buildPackage } from "../../runtime/packages/build.ts";
import { parseManifest, type SealedOutput } from "../../runtime/packages/manifest.ts";
import { seal } from "../../runtime/sealing/seal.ts";
import { cli, json, ROOT } from "./cliProcess.ts";

const COLD_CHAIN = path.join(ROOT, "cryptlets", "cold-chain-sla");

let tmp: string;
let vectors: {
  trust: Record<string, unknown>;
  cases: { name: string; bundle: Record<string, unknown>; expected: { ok: boolean } }[];
};

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "cryptlet-cli-"));
  vectors = JSON.parse(await readFile(path.join(ROOT, "test", "vectors", "proof-bundle", "vectors.json"), "utf8"));
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

test("init then build: the package builds and its codeHash is buildPackage's", async () => {
  const dir = path.join(tmp, "my-first");
  const init = await cli("init", dir, "--name", "@acme/my-first", "--json");
  expect(init.code).toBe(0);
  expect(json(init).files).toEqual(["cryptlet.json", "src/index.ts", "test/index.test.ts", ".gitignore"]);
  const build = await cli("build", dir, "--json");
  expect(build.code).toBe(0);
  const reported = json(build);
  const built = await buildPackage(dir, { outDir: false });
  expect(reported).toMatchObject({ name: "@acme/my-first", version: "0.1.0", codeHash: built.codeHash });
  expect(reported.cryptletId).toBe(built.cryptletId);
  // The scaffold is a working Cryptlet: its bundle defines run() and the manifest is valid.
  expect(built.bundle).toContain("defineCryptlet");
  // A second init into the same folder refuses (exit 1, typed code).
  const again = await cli("init", dir, "--json");
  expect(again.code).toBe(1);
  expect(json(again).error.code).toBe("ERR_CLI_TARGET_EXISTS");
});

describe("decrypt", () => {
  test("the sealed vector opens with each of its three party keys; a fourth key fails with exit 1", async () => {
    const keys = JSON.parse(await readFile(path.join(ROOT, "test", "vectors", "proof-bundle", "keys.json"), "utf8"));
    const sealed = vectors.cases.find((c) => c.name === "valid-sealed-batched");
    const bundleFile = path.join(tmp, "sealed-bundle.json");
    await writeFile(bundleFile, JSON.stringify(sealed?.bundle));
    const partyJwks = (keys.parties as { jwk: unknown }[]).map((p) => p.jwk);
    expect(partyJwks).toHaveLength(3);
    const outputs: unknown[] = [];
    for (const [i, jwk] of partyJwks.entries()) {
      const keyFile = path.join(tmp, `vector-party-${i}.jwk.json`);
      await writeFile(keyFile, JSON.stringify(jwk));
      const run = await cli("decrypt", bundleFile, "--key", keyFile, "--json");
      expect(run.code).toBe(0);
      outputs.push(json(run).plaintext);
    }
    expect(outputs[1]).toEqual(outputs[0]);
    expect(outputs[2]).toEqual(outputs[0]);

    // The vectors' outsider, and a freshly generated key: neither is a recipient.
    const stranger = path.join(tmp, "stranger.jwk.json");
    await writeFile(stranger, JSON.stringify(keys.outsider.jwk));
    const fresh = path.join(tmp, "fresh.jwk.json");
    await writeFile(
      fresh,
      JSON.stringify(await exportJWK((await generateKeyPair("ECDH-ES+A256KW", { extractable: true })).privateKey)),
    );
    const refusedFresh = await cli("decrypt", bundleFile, "--key", fresh, "--json");
    expect(refusedFresh.code).toBe(1);
    expect(json(refusedFresh).error.code).toBe("ERR_NOT_A_RECIPIENT");
    const refused = await cli("decrypt", bundleFile, "--key", stranger, "--json");
    expect(refused.code).toBe(1);
    expect(json(refused).error.code).toBe("ERR_NOT_A_RECIPIENT");
  });

  test("a cold-chain report sealed for the manifest's parties opens with each demo key (human output)", async () => {
    const manifest = parseManifest(JSON.parse(await readFile(path.join(COLD_CHAIN, "cryptlet.json"), "utf8")));
    const report = { deviceId: "freezer-135-1570", status: "compliant", compliant: true, excursions: [] };
    const jweFile = path.join(tmp, "cold-chain.jwe.json");
    await writeFile(
      jweFile,
      JSON.stringify(await seal(JSON.stringify(report), (manifest.output as SealedOutput).parties)),
    );
    for (const party of ["manufacturer", "carrier", "retailer"]) {
      const run = await cli("decrypt", jweFile, "--key", path.join(COLD_CHAIN, "keys", `${party}.private.jwk.json`));
      expect(run.code).toBe(0);
      expect(JSON.parse(run.stdout)).toEqual(report);
    }
    const publicBundle = path.join(tmp, "public-bundle.json");
    await writeFile(publicBundle, JSON.stringify(vectors.cases[0]?.bundle));
    const notSealed = await cli(
      "decrypt",
      publicBundle,
      "--key",
      path.join(COLD_CHAIN, "keys", "carrier.private.jwk.json"),
      "--json",
    );
    expect(notSealed.code).toBe(1);
    expect(json(notSealed).error).toMatchObject({ code: "ERR_CLI_INPUT", details: { reason: "unexpected-shape" } });
  });
});

test("verify: a valid vector passes (exit 0), a tampered one fails (exit 1) naming the failed check", async () => {
  const trustFile = path.join(tmp, "trust.json");
  await writeFile(trustFile, JSON.stringify(vectors.trust));
  const valid = vectors.cases.find((c) => c.name === "valid-public");
  const validFile = path.join(tmp, "valid.json");
  await writeFile(validFile, JSON.stringify(valid?.bundle));
  const ok = await cli("verify", validFile, "--trust", trustFile, "--json");
  expect(ok.code).toBe(0);
  expect(json(ok).ok).toBe(true);

  // Tamper: change one byte of the public payload.
  const tampered = structuredClone(valid?.bundle) as { payload: { public: { data: string } } };
  const data = tampered.payload.public.data;
  tampered.payload.public.data = `${data.slice(0, -1)}${data.endsWith("0") ? "1" : "0"}`;
  const tamperedFile = path.join(tmp, "tampered.json");
  await writeFile(tamperedFile, JSON.stringify(tampered));
  const bad = await cli("verify", tamperedFile, "--trust", trustFile, "--json");
  expect(bad.code).toBe(1);
  expect(json(bad).checks).toContainEqual(expect.objectContaining({ name: "outputHash", verdict: "fail" }));
  const human = await cli("verify", tamperedFile, "--trust", trustFile);
  expect(human.code).toBe(1);
  expect(human.stdout).toMatch(/^INVALID/);
});

test("verify --at: an archived bundle's token is checked at the given time, not now", async () => {
  // The vectors' trust file pins `now` inside the tokens' validity; without it they have long expired.
  const { now, ...withoutNow } = vectors.trust as { now: string };
  const trustFile = path.join(tmp, "trust-without-now.json");
  await writeFile(trustFile, JSON.stringify(withoutNow));
  const validFile = path.join(tmp, "archived.json");
  await writeFile(validFile, JSON.stringify(vectors.cases.find((c) => c.name === "valid-public")?.bundle));
  const expired = await cli("verify", validFile, "--trust", trustFile, "--json");
  expect(expired.code).toBe(1);
  expect(json(expired).checks).toContainEqual(expect.objectContaining({ name: "attestation", verdict: "fail" }));
  const archived = await cli("verify", validFile, "--trust", trustFile, "--at", now, "--json");
  expect(archived.code).toBe(0);
  expect((await cli("verify", validFile, "--trust", trustFile, "--at", "yesterday")).code).toBe(2);
});

test("usage errors exit 2", async () => {
  const runs = await Promise.all([
    cli("no-such-command"),
    cli("decrypt", "bundle.json"), // --key missing
    cli("keys", "create", path.join(tmp, "k.json"), "--kind", "dsa"),
    cli("verify", "x.json", "--threshold", "zero"),
    cli("build"),
  ]);
  expect(runs.map((r) => r.code)).toEqual([2, 2, 2, 2, 2]);
  const noConfig = await cli("status", "0x01", "--json");
  expect(noConfig.code).toBe(2);
  expect(json(noConfig).error).toMatchObject({ code: "ERR_CLI_USAGE", details: { option: "--config" } });
});
