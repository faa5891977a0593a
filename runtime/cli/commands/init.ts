/**
 * `cryptlet init <dir>`: scaffolds a Cryptlet package: `cryptlet.json`, `src/index.ts` (a working Cryptlet built
 * on `defineCryptlet`) and a Jest test `test/index.test.ts`, ready for `cryptlet build`.
 *
 * @module
 */
import { mkdir, readdir, writeFile } from "node:fs/promises";
import path from "node:path";

import { parseManifest } from "../../packages/manifest.ts";
import { DEFAULT_ENGINE } from "../../sandbox/SandboxEngine.ts";
import { CliTargetExistsError, CliUsageError } from "../errors.ts";

/** Options of {@link initCryptlet}. */
export interface InitOptions {
  /** Package name; default: the folder's name (lower-cased). */
  name?: string;
  /** Target chain for the `record` target. Default `consortium`. */
  chain?: string;
}

/** What {@link initCryptlet} wrote. */
export interface InitResult {
  dir: string;
  name: string;
  files: string[];
}

const SOURCE = `/**
 * A Cryptlet: the sum and count of a list of integers, as \`tuple(int256 total, uint32 count)\`.
 * Replace with your logic. Everything in \`run\` must be deterministic: there is no Date (use \`ctx.now\`),
 * Math.random is seeded from the result id, and I/O is only the manifest's \`fetch\` capability.
 */
import { defineCryptlet } from "cryptlet-runtime/sdk";

/** The input: integers as decimal strings (exact beyond 2^53). */
export interface Input {
  values: string[];
}

/** The output, ABI-encoded with the manifest's \`output.abi\`. */
export interface Output {
  total: string;
  count: number;
}

/** The logic, separate from the wrapper so tests can call it directly. */
export function sum(input: Input): Output {
  if (!Array.isArray(input.values) || input.values.some((v) => !/^-?[0-9]{1,70}$/.test(v))) {
    throw new Error("INVALID_INPUT: values must be integer strings");
  }
  const total = input.values.reduce((acc, v) => acc + BigInt(v), 0n);
  return { total: total.toString(), count: input.values.length };
}

export default defineCryptlet<Input, Output>({
  run(input, ctx) {
    const output = sum(input);
    ctx.log("summed", output.count);
    return output;
  },
});
`;

const TEST = `import cryptlet, { sum } from "../src/index.ts";

describe("the Cryptlet", () => {
  test("sums exactly", () => {
    expect(sum({ values: ["9007199254740993", "1", "-4"] })).toEqual({ total: "9007199254740990", count: 3 });
  });

  test("runs through defineCryptlet with a context", async () => {
    const logs: unknown[] = [];
    const ctx = { event: {}, requestId: "0x01", resultId: "0x02", now: 1704412800, log: (...a: unknown[]) => logs.push(a) };
    await expect(cryptlet.run({ values: ["2", "3"] }, ctx as never)).resolves.toEqual({ total: "5", count: 2 });
    expect(logs).toHaveLength(1);
  });

  test("refuses bad input", () => {
    expect(() => sum({ values: ["1.5"] })).toThrow(/INVALID_INPUT/);
  });
});
`;

/**
 * Creates the package folder.
 * @throws {@link CliTargetExistsError} when `dir` exists and is not empty; {@link CliUsageError} for a name that is
 *   not a valid package name.
 *
 * @example
 * ```ts
 * import { initCryptlet } from "./runtime/cli/commands/init.ts";
 * await initCryptlet("cryptlets/my-first", { name: "@acme/my-first" });
 * ```
 */
export async function initCryptlet(dir: string, options: InitOptions = {}): Promise<InitResult> {
  const entries = await readdir(dir).catch(() => [] as string[]);
  if (entries.length > 0) throw new CliTargetExistsError(dir);
  const name = options.name ?? path.basename(path.resolve(dir)).toLowerCase();
  const manifest = {
    name,
    version: "0.1.0",
    description: "Sum and count of a list of integers (scaffolded by cryptlet init).",
    entry: "src/index.ts",
    engine: DEFAULT_ENGINE,
    limits: { memoryMb: 32, timeoutMs: 1000, maxOutputBytes: 1024 },
    triggers: [{ type: "http" }],
    output: { abi: "tuple(int256 total, uint32 count)" },
    targets: [{ chain: options.chain ?? "consortium", mode: "record" }],
  };
  try {
    parseManifest(manifest);
  } catch {
    throw new CliUsageError(`"${name}" cannot be a package name or chain name (see docs/packages.md)`, "--name");
  }
  await mkdir(path.join(dir, "src"), { recursive: true });
  await mkdir(path.join(dir, "test"), { recursive: true });
  const files: Record<string, string> = {
    "cryptlet.json": `${JSON.stringify(manifest, null, 2)}\n`,
    "src/index.ts": SOURCE,
    "test/index.test.ts": TEST,
    ".gitignore": "dist/\n",
  };
  for (const [file, text] of Object.entries(files)) await writeFile(path.join(dir, file), text, { flag: "wx" });
  return { dir, name, files: Object.keys(files) };
}
