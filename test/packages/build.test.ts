import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { runInNewContext } from "node:vm";
import { isCryptletError } from "../../runtime/errors.ts";
import { buildPackage } from "../../runtime/packages/build.ts";
import { assembleBuiltPackage, loadBuiltPackage } from "../../runtime/packages/builtPackage.ts";
import { cryptletIdOf as cryptletId } from "../../runtime/attestation/ids.ts";
import { codeHashPreimage, computeCodeHash } from "../../runtime/packages/digest.ts";
import { parseManifest } from "../../runtime/packages/manifest.ts";
import { installedEngineVersion } from "../../runtime/sandbox/engineVersion.ts";
import { PRICE_MEDIAN_DIR, cleanupTempDirs, copyPriceMedian, manifestOf, writePackage } from "./helpers.ts";

afterAll(cleanupTempDirs);

const SDK_IMPORT = 'import { defineCryptlet } from "cryptlet-runtime/sdk";\n';

async function buildError(dir: string): Promise<{ code: string; details: Record<string, unknown> }> {
  try {
    await buildPackage(dir, { outDir: false });
  } catch (e) {
    expect(isCryptletError(e)).toBe(true);
    return e as { code: string; details: Record<string, unknown> };
  }
  throw new Error("expected the build to fail");
}

/** Evaluates a bundle as a classic script in a fresh V8 context, as the sandbox does, and returns `cryptlet`. */
function evaluateBundle(bundle: string): { default: { run(input: unknown, ctx: unknown): unknown } } {
  const context: Record<string, unknown> = {};
  runInNewContext(bundle, context, { filename: "bundle.js" });
  return context.cryptlet as { default: { run(input: unknown, ctx: unknown): unknown } };
}

describe("identifiers and codeHash", () => {
  it("cryptletId is keccak256 of the UTF-8 name", () => {
    expect(cryptletId("hello")).toBe("0x1c8aff950685c2ed4bc3174f3472287b56d9517b9c948127319a09a7a36deac8");
  });

  it("matches an independently computed vector (Python json.dumps sort_keys + hashlib)", () => {
    const manifest = parseManifest({
      name: "@test/vector",
      version: "1.0.0",
      entry: "src/index.ts",
      // Given, so that the vector does not depend on the engine installed here.
      engineVersion: "7.0.1+v8.13.6.233.17-node.53",
      output: { abi: "uint256" },
    });
    const bundle = new TextEncoder().encode("var cryptlet = (() => ({ default: { run: (input) => input } }))();\n");
    expect(codeHashPreimage(manifest, { "bundle.js": bundle })).toBe(
      '{"files":{"bundle.js":"979ace3211fd8980fedca7fd3ddad313ae63b921087ed86bfd65e2cb46024294"},"manifest":{"capabilities":{},"description":"","engine":"isolated-vm","engineVersion":"7.0.1+v8.13.6.233.17-node.53","entry":"src/index.ts","limits":{"maxOutputBytes":65536,"memoryMb":64,"timeoutMs":1000},"name":"@test/vector","output":{"abi":"uint256"},"targets":[],"triggers":[],"version":"1.0.0"}}',
    );
    expect(computeCodeHash(manifest, { "bundle.js": bundle })).toBe(
      "0xcb0864d2d22fed1dc740107f2e980376bec6277e943ec9d32cb2a7f3153d492a",
    );
  });

  it("measures the engine: another engine version, another codeHash; the build records the installed one", async () => {
    const bundle = new TextEncoder().encode("var cryptlet = (() => ({ default: { run: (input) => input } }))();\n");
    const base = { name: "@test/vector", version: "1.0.0", entry: "src/index.ts", output: { abi: "uint256" } };
    const hashOf = (engineVersion?: string): string =>
      computeCodeHash(parseManifest(engineVersion === undefined ? base : { ...base, engineVersion }), {
        "bundle.js": bundle,
      });
    const installed = installedEngineVersion("isolated-vm").version;
    expect(hashOf()).toBe(hashOf(installed));
    expect(hashOf("7.0.1+v8.1.2.3.4-node.5")).not.toBe(hashOf(installed));
    const built = await buildPackage(PRICE_MEDIAN_DIR, { outDir: false });
    expect(built.manifest.engineVersion).toBe(installed);
  });
});

describe("buildPackage: reproducible", () => {
  it("gives the same bytes and codeHash in two folders of different path lengths, and in the repository", async () => {
    const short = await copyPriceMedian([]);
    const long = await copyPriceMedian(["a-much-longer-folder-name", "with", "several", "levels", "price-median"]);
    const [a, b, inRepo] = await Promise.all([
      buildPackage(short, { outDir: false }),
      buildPackage(long, { outDir: false }),
      buildPackage(PRICE_MEDIAN_DIR, { outDir: false }),
    ]);
    expect(short.length).not.toBe(long.length);
    expect(
      Buffer.from(a.files["bundle.js"] as Uint8Array).equals(Buffer.from(b.files["bundle.js"] as Uint8Array)),
    ).toBe(true);
    expect(a.bundle).toBe(b.bundle);
    expect(a.codeHash).toBe(b.codeHash);
    // The repository copy sits below the project's tsconfig.json, which the build must ignore.
    expect(inRepo.codeHash).toBe(a.codeHash);
    for (const [built, dir] of [
      [a, short],
      [b, long],
      [inRepo, PRICE_MEDIAN_DIR],
    ] as const) {
      expect(built.bundle.includes(dir)).toBe(false);
      expect(built.bundle.includes("/tmp/")).toBe(false);
      expect(built.bundle.includes("/work/")).toBe(false);
    }
    expect(a.cryptletId).toBe(cryptletId("@cryptlet/price-median"));
    expect(a.manifest.name).toBe("@cryptlet/price-median");
  });

  it("changes codeHash when one source byte changes, and when the manifest changes", async () => {
    const original = await copyPriceMedian(["x"]);
    const edited = await copyPriceMedian(["y"]);
    const median = join(edited, "src", "median.ts");
    const text = await readFile(median, "utf8");
    await writeFile(median, text.replace("maxDeviationBps ?? 100", "maxDeviationBps ?? 101"));
    const retuned = await copyPriceMedian(["z"]);
    const manifestPath = join(retuned, "cryptlet.json");
    const manifest = JSON.parse(await readFile(manifestPath, "utf8")) as { limits: { memoryMb: number } };
    manifest.limits.memoryMb = 33;
    await writeFile(manifestPath, JSON.stringify(manifest));
    const [a, b, c] = await Promise.all([
      buildPackage(original, { outDir: false }),
      buildPackage(edited, { outDir: false }),
      buildPackage(retuned, { outDir: false }),
    ]);
    expect(b.codeHash).not.toBe(a.codeHash);
    expect(b.bundle).not.toBe(a.bundle);
    expect(c.bundle).toBe(a.bundle);
    expect(c.codeHash).not.toBe(a.codeHash);
  });

  it("codeHash is sha256 of the canonical JSON of the normalised manifest and the file digests", async () => {
    const built = await buildPackage(PRICE_MEDIAN_DIR, { outDir: false });
    const bundleDigest = createHash("sha256")
      .update(built.files["bundle.js"] as Uint8Array)
      .digest("hex");
    const preimage = codeHashPreimage(built.manifest, built.files);
    expect(JSON.parse(preimage)).toEqual({ manifest: built.manifest, files: { "bundle.js": bundleDigest } });
    expect(`0x${createHash("sha256").update(preimage, "utf8").digest("hex")}`).toBe(built.codeHash);
    expect(Object.keys(built.files)).toEqual(["bundle.js"]);
  });
});

describe("buildPackage: bundle format", () => {
  it("is a classic script defining global cryptlet whose default export is the defineCryptlet object", async () => {
    const built = await buildPackage(PRICE_MEDIAN_DIR, { outDir: false });
    expect(built.bundle.startsWith("var cryptlet = (() => {")).toBe(true);
    expect(built.bundle).toContain("// cryptlet-runtime:sdk/index.ts");
    const cryptlet = evaluateBundle(built.bundle);
    const logs: unknown[] = [];
    const output = cryptlet.default.run(
      {
        observations: [
          { source: "a", price: "2269.7605037562785", observedAt: 1704412800 },
          { source: "b", price: "2272.7319494521353", observedAt: 1704412800 },
          { source: "c", price: "3000", observedAt: 1704412860 },
        ],
        decimals: 8,
      },
      { now: 1704412900, log: (...args: unknown[]) => logs.push(args), event: {}, requestId: "0x", resultId: "0x" },
    );
    // c is rejected (32% from the median of 3); a = 226976050376 and b = 227273194945 after rounding half up
    // to 8 decimals; their mean 227124622660.5 rounds half up.
    expect(output).toEqual({ answer: "227124622661", decimals: 8, observedAt: 1704412800 });
    expect(logs).toHaveLength(1);
  });

  it("writes dist/ (cryptlet.json + bundle.js) that loadBuiltPackage reads back with the same codeHash", async () => {
    const dir = await copyPriceMedian(["dist-test"]);
    const built = await buildPackage(dir);
    const loaded = await loadBuiltPackage(join(dir, "dist"));
    expect(loaded.codeHash).toBe(built.codeHash);
    expect(loaded.bundle).toBe(built.bundle);
    expect(loaded.manifest).toEqual(built.manifest);
    expect(JSON.parse(await readFile(join(dir, "dist", "cryptlet.json"), "utf8"))).toEqual(built.manifest);

    await writeFile(join(dir, "dist", "bundle.js"), `${built.bundle}\n// tampered`);
    expect((await loadBuiltPackage(join(dir, "dist"))).codeHash).not.toBe(built.codeHash);
    await expect(loadBuiltPackage(join(dir, "nowhere"))).rejects.toMatchObject({ code: "ERR_PACKAGE_INVALID" });
  });

  it("bundles JSON and the package's own node_modules", async () => {
    const dir = await writePackage({
      "cryptlet.json": manifestOf(),
      "src/index.ts": `${SDK_IMPORT}import table from "./table.json";\nimport { twice } from "tiny-dep";\nexport default defineCryptlet({ run: (input: number) => twice(input) + table.offset });\n`,
      "src/table.json": { offset: 1 },
      "node_modules/tiny-dep/package.json": { name: "tiny-dep", version: "1.0.0", main: "index.js" },
      "node_modules/tiny-dep/index.js": "exports.twice = (x) => x * 2;\n",
    });
    const built = await buildPackage(dir, { outDir: false });
    expect(evaluateBundle(built.bundle).default.run(20, {})).toBe(41);
  });
});

describe("buildPackage: refusals", () => {
  it.each([
    ['import { readFileSync } from "node:fs";', "node:fs"],
    ['import { createHash } from "crypto";', "crypto"],
    ['import { join } from "path/posix";', "path/posix"],
    ['const cp = await import("child_process");', "child_process"],
  ])("refuses a Node builtin: %s", async (line, specifier) => {
    const dir = await writePackage({
      "cryptlet.json": manifestOf(),
      "src/index.ts": `${SDK_IMPORT}${line}\nexport default defineCryptlet({ run: () => 1 });\n`,
    });
    const error = await buildError(dir);
    expect(error.code).toBe("ERR_PACKAGE_BUILD_FAILED");
    expect(error.details.imports).toEqual([specifier]);
  });

  it("refuses a builtin imported deep inside a dependency, naming it", async () => {
    const dir = await writePackage({
      "cryptlet.json": manifestOf(),
      "src/index.ts": `${SDK_IMPORT}import { read } from "./util/io.ts";\nexport default defineCryptlet({ run: () => read() });\n`,
      "src/util/io.ts": 'import fs from "fs";\nexport const read = () => fs.readFileSync("/etc/passwd", "utf8");\n',
    });
    const error = await buildError(dir);
    expect(error.code).toBe("ERR_PACKAGE_BUILD_FAILED");
    expect(error.details.imports).toEqual(["fs"]);
    expect(error.details.messages).toEqual(
      expect.arrayContaining([expect.objectContaining({ file: "src/util/io.ts", line: 1 })]),
    );
  });

  it("refuses imports that resolve outside the package folder", async () => {
    const dir = await writePackage(
      {
        "pkg/cryptlet.json": manifestOf(),
        "pkg/src/index.ts": `${SDK_IMPORT}import { secret } from "../../outside.ts";\nexport default defineCryptlet({ run: () => secret });\n`,
        "outside.ts": "export const secret = 42;\n",
      },
      [],
    );
    const error = await buildError(join(dir, "pkg"));
    expect(error.code).toBe("ERR_PACKAGE_BUILD_FAILED");
    expect(error.details.imports).toEqual(["../../outside.ts"]);
  });

  it("refuses an entry without a default export", async () => {
    const dir = await writePackage({
      "cryptlet.json": manifestOf(),
      "src/index.ts": `${SDK_IMPORT}export const cryptlet = defineCryptlet({ run: () => 1 });\n`,
    });
    expect((await buildError(dir)).code).toBe("ERR_PACKAGE_BUILD_FAILED");
  });

  it("fails on esbuild warnings (import.meta is empty in a classic script) unless allowed", async () => {
    const dir = await writePackage({
      "cryptlet.json": manifestOf(),
      "src/index.ts": `${SDK_IMPORT}export default defineCryptlet({ run: () => String(import.meta.url) });\n`,
    });
    const error = await buildError(dir);
    expect(error.code).toBe("ERR_PACKAGE_BUILD_FAILED");
    expect(error.details.messages).toEqual([expect.objectContaining({ file: "src/index.ts", line: 2 })]);
    const built = await buildPackage(dir, { outDir: false, failOnWarnings: false });
    expect(built.bundle.includes(dir)).toBe(false);
  });

  it("reports syntax errors with file and line", async () => {
    const dir = await writePackage({
      "cryptlet.json": manifestOf(),
      "src/index.ts": `${SDK_IMPORT}export default defineCryptlet({ run: () => { return 1 + ; } });\n`,
    });
    const error = await buildError(dir);
    expect(error.code).toBe("ERR_PACKAGE_BUILD_FAILED");
    expect(error.details.messages).toEqual([expect.objectContaining({ file: "src/index.ts", line: 2 })]);
  });

  it("refuses a missing manifest, a missing entry and an invalid manifest", async () => {
    const noManifest = await writePackage({ "src/index.ts": "export default 1;\n" });
    expect((await buildError(noManifest)).code).toBe("ERR_PACKAGE_BUILD_FAILED");
    const noEntry = await writePackage({ "cryptlet.json": manifestOf({ entry: "src/main.ts" }) });
    expect((await buildError(noEntry)).details).toEqual({ entry: "src/main.ts" });
    const invalid = await writePackage({
      "cryptlet.json": manifestOf({ limits: { memoryMb: 513 } }),
      "src/index.ts": "",
    });
    const error = await buildError(invalid);
    expect(error.code).toBe("ERR_MANIFEST_INVALID");
    expect(error.details.errors).toEqual([{ path: "limits.memoryMb", message: "must be at most 512" }]);
    await expect(buildPackage("/nonexistent/cryptlet")).rejects.toMatchObject({ code: "ERR_PACKAGE_BUILD_FAILED" });
  });
});

describe("assembleBuiltPackage", () => {
  const bundle = new TextEncoder().encode("var cryptlet = {};\n");
  it.each([["../bundle.js"], ["/abs.js"], ["a//b.js"], ["cryptlet.json"], ["a\\b.js"], ["./bundle.js"]])(
    "refuses the file path %s",
    (path) => {
      expect(() => assembleBuiltPackage(manifestOf(), { "bundle.js": bundle, [path]: bundle })).toThrow(
        expect.objectContaining({ code: "ERR_PACKAGE_INVALID" }),
      );
    },
  );

  it("refuses a package without bundle.js or with a bundle that is not UTF-8", () => {
    expect(() => assembleBuiltPackage(manifestOf(), {})).toThrow(
      expect.objectContaining({ code: "ERR_PACKAGE_INVALID" }),
    );
    expect(() => assembleBuiltPackage(manifestOf(), { "bundle.js": Uint8Array.of(0xff, 0xfe, 0x00) })).toThrow(
      expect.objectContaining({ code: "ERR_PACKAGE_INVALID" }),
    );
  });

  it("copies the bytes (later changes to the caller's buffer do not change the package)", () => {
    const bytes = Uint8Array.from(bundle);
    const built = assembleBuiltPackage(manifestOf(), { "bundle.js": bytes });
    bytes[0] = 0x20;
    expect(computeCodeHash(built.manifest, built.files)).toBe(built.codeHash);
  });
});

describe("build command", () => {
  const node = join(import.meta.dirname, "..", "..", "node_modules", ".bin", "node");
  const command = join(import.meta.dirname, "..", "..", "runtime", "packages", "buildCommand.ts");

  it("builds a package folder, writes dist and prints its codeHash", async () => {
    const dir = await copyPriceMedian(["cli"]);
    const stdout = execFileSync(node, [command, dir, "--out", "out"]).toString();
    const line = JSON.parse(stdout) as Record<string, unknown>;
    const loaded = await loadBuiltPackage(join(dir, "out"));
    expect(line).toEqual({
      name: "@cryptlet/price-median",
      version: "1.0.0",
      cryptletId: loaded.cryptletId,
      codeHash: loaded.codeHash,
      bundleBytes: (loaded.files["bundle.js"] as Uint8Array).byteLength,
      outDir: join(dir, "out"),
    });
  });

  it("exits 1 with the error's JSON on standard error", async () => {
    const dir = await writePackage({ "cryptlet.json": manifestOf({ limits: { memoryMb: 4 } }), "src/index.ts": "" });
    const result = spawnSync(node, [command, dir]);
    expect(result.status).toBe(1);
    expect(JSON.parse(result.stderr.toString())).toMatchObject({ code: "ERR_MANIFEST_INVALID" });
  });
});
