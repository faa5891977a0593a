/**
 * Builds a Cryptlet package folder (`cryptlet.json` + `src/`) into one classic script for the sandbox, with
 * esbuild, reproducibly: the same sources give the same bytes and the same `codeHash` in any folder, on any
 * machine with the same esbuild version (pinned exactly in package.json). The bundle format and the build
 * settings are documented in `docs/packages.md` ("Bundle format", "Reproducible build").
 */
import { readFile, realpath, stat } from "node:fs/promises";
import { builtinModules } from "node:module";
import { extname, isAbsolute, join, posix, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import type { BuildOptions as EsbuildOptions, Loader, Message, Plugin } from "esbuild";
import { BUNDLE_FILE, MANIFEST_FILE, assembleBuiltPackage, writeBuiltPackage } from "./builtPackage.ts";
import type { BuiltPackage } from "./builtPackage.ts";
import { PackageBuildError } from "./errors.ts";
import { parseManifest } from "./manifest.ts";

/** The import specifier of the Cryptlet SDK. */
export const SDK_SPECIFIER = "cryptlet-runtime/sdk";

/** The SDK's folder in this runtime (`runtime/sdk/`); its `index.ts` is bundled into every Cryptlet. */
const SDK_DIR = fileURLToPath(new URL("../sdk/", import.meta.url));
/** esbuild namespace of the SDK's modules; their paths in the bundle's comments are `cryptlet-runtime:sdk/…`. */
const SDK_NAMESPACE = "cryptlet-runtime";

/** Options of {@link buildPackage}. */
export interface BuildPackageOptions {
  /**
   * Where to write the built package (`cryptlet.json` + `bundle.js`): a path relative to the package folder or
   * absolute, or `false` to write nothing. Default `"dist"`.
   */
  outDir?: string | false;
  /** Fail the build on any esbuild warning (e.g. `import.meta`, which is empty in a classic script). Default `true`. */
  failOnWarnings?: boolean;
}

const NODE_BUILTINS = new Set(builtinModules.map((name) => name.replace(/^node:/, "")));

function isNodeBuiltin(specifier: string): boolean {
  if (specifier.startsWith("node:")) return true;
  return NODE_BUILTINS.has(specifier) || NODE_BUILTINS.has(specifier.split("/")[0] ?? "");
}

const LOADERS: Record<string, Loader> = { ".ts": "ts", ".mts": "ts", ".js": "js", ".mjs": "js", ".json": "json" };

/**
 * The esbuild plugin that (1) refuses Node builtins, naming the import, (2) maps `cryptlet-runtime/sdk` to this
 * runtime's SDK under a virtual namespace, so no absolute path of the machine reaches the bundle.
 */
function cryptletResolverPlugin(refused: string[]): Plugin {
  return {
    name: "cryptlet-resolver",
    setup(build) {
      build.onResolve({ filter: /.*/ }, (args) => {
        if (args.namespace === SDK_NAMESPACE) {
          if (!args.path.startsWith("./") && !args.path.startsWith("../")) {
            refused.push(args.path);
            return { errors: [{ text: `the SDK may only import its own files, not "${args.path}"` }] };
          }
          return { path: posix.join(posix.dirname(args.importer), args.path), namespace: SDK_NAMESPACE };
        }
        if (args.path === SDK_SPECIFIER) return { path: "sdk/index.ts", namespace: SDK_NAMESPACE };
        if (isNodeBuiltin(args.path)) {
          refused.push(args.path);
          return {
            errors: [
              { text: `Node builtin "${args.path}" cannot be used in a Cryptlet: the sandbox has no Node APIs` },
            ],
          };
        }
        return undefined;
      });
      build.onLoad({ filter: /.*/, namespace: SDK_NAMESPACE }, async (args) => {
        const relative = args.path.replace(/^sdk\//, "");
        const file = join(SDK_DIR, ...relative.split("/"));
        const loader = LOADERS[extname(file)];
        if (loader === undefined) return { errors: [{ text: `unsupported SDK file type: ${args.path}` }] };
        return { contents: await readFile(file), loader, resolveDir: SDK_DIR };
      });
    },
  };
}

/** Formats esbuild messages with file paths relative to the package (esbuild already prints them so). */
function describeMessages(
  messages: readonly Message[],
): { text: string; file?: string; line?: number; column?: number }[] {
  return messages.map((m) => ({
    text: m.text,
    ...(m.location ? { file: m.location.file, line: m.location.line, column: m.location.column } : {}),
  }));
}

/**
 * Builds the package in `dir`: validates `cryptlet.json`, bundles its `entry` with esbuild into one classic
 * script (`format: "iife"`, `globalName: "cryptlet"`, `platform: "neutral"`, `target: "es2022"`, not minified,
 * no source map, no legal comments, UTF-8, `tsconfig.json` files ignored), checks the result and computes
 * `codeHash` and `cryptletId`. Writes `cryptlet.json` and `bundle.js` to `dist/` unless told otherwise.
 *
 * Imports allowed: files inside the package folder (including its own `node_modules`) and
 * `cryptlet-runtime/sdk`. Refused: Node builtins (`node:*`, `fs`, `crypto`, ...), anything resolving outside the
 * package folder (it would not be part of the source that others rebuild).
 *
 * @param dir - the package folder (holds `cryptlet.json` and `src/`).
 * @param options - see {@link BuildPackageOptions}.
 * @returns the {@link BuiltPackage}.
 * @throws `ERR_MANIFEST_INVALID` (manifest), `ERR_PACKAGE_BUILD_FAILED` (missing manifest or entry, esbuild
 *   errors or warnings, refused imports named in `details.imports`, no default export, absolute paths in the
 *   output).
 *
 * @example
 * ```ts
 * import { buildPackage } from "./runtime/packages/build.ts";
 *
 * const built = await buildPackage("cryptlets/price-median");
 * console.log(built.manifest.name, built.codeHash, built.bundle.length);
 * ```
 */
export async function buildPackage(dir: string, options: BuildPackageOptions = {}): Promise<BuiltPackage> {
  let root: string;
  try {
    root = await realpath(resolve(dir));
  } catch (cause) {
    throw new PackageBuildError(`package folder not found: ${dir}`, { dir }, { cause });
  }
  let manifestText: string;
  try {
    manifestText = await readFile(join(root, MANIFEST_FILE), "utf8");
  } catch (cause) {
    throw new PackageBuildError(`package folder has no readable ${MANIFEST_FILE}`, { file: MANIFEST_FILE }, { cause });
  }
  const manifest = parseManifest(manifestText);
  const entryFile = join(root, ...manifest.entry.split("/"));
  const entryStat = await stat(entryFile).catch(() => undefined);
  if (!entryStat?.isFile()) {
    throw new PackageBuildError(`entry ${manifest.entry} does not exist`, { entry: manifest.entry });
  }

  const refused: string[] = [];
  const common: EsbuildOptions = {
    absWorkingDir: root,
    entryPoints: [manifest.entry],
    outfile: BUNDLE_FILE,
    bundle: true,
    write: false,
    platform: "neutral",
    mainFields: ["module", "main"],
    target: "es2022",
    charset: "utf8",
    legalComments: "none",
    sourcemap: false,
    minify: false,
    metafile: true,
    logLevel: "silent",
    // An explicit tsconfig: esbuild then reads no tsconfig.json from the folders above the package, whose
    // settings would otherwise depend on where the package happens to be checked out.
    tsconfigRaw: { compilerOptions: { useDefineForClassFields: true, verbatimModuleSyntax: true } },
    plugins: [cryptletResolverPlugin(refused)],
  };

  let result: esbuild.BuildResult<{ write: false; metafile: true }>;
  let esm: esbuild.BuildResult<{ write: false; metafile: true }>;
  try {
    result = (await esbuild.build({ ...common, format: "iife", globalName: "cryptlet" })) as typeof result;
    // The same graph as ESM, only to learn the entry's exports (the IIFE metafile does not list them).
    esm = (await esbuild.build({ ...common, format: "esm" })) as typeof esm;
  } catch (cause) {
    const failure = cause as { errors?: Message[]; warnings?: Message[] };
    const messages = describeMessages(failure.errors ?? []);
    const first = messages[0]?.text ?? String(cause);
    if (refused.length > 0) {
      throw new PackageBuildError(
        `import of ${refused.map((s) => JSON.stringify(s)).join(", ")} is not allowed in a Cryptlet`,
        { imports: [...new Set(refused)], messages },
        { cause },
      );
    }
    throw new PackageBuildError(`esbuild failed: ${first}`, { messages }, { cause });
  }

  if ((options.failOnWarnings ?? true) && result.warnings.length > 0) {
    const messages = describeMessages(result.warnings);
    throw new PackageBuildError(`esbuild warned: ${messages[0]?.text ?? ""}`, { messages });
  }

  // Every input must come from the package folder or the SDK: anything else is not part of the source.
  const outside: { input: string; import: string }[] = [];
  for (const [input, info] of Object.entries(result.metafile.inputs)) {
    for (const imported of info.imports) {
      const target = imported.path;
      if (target.startsWith(`${SDK_NAMESPACE}:`) || imported.external) continue;
      if (target.startsWith("../") || isAbsolute(target)) {
        outside.push({ input, import: imported.original ?? target });
      }
    }
  }
  if (outside.length > 0) {
    throw new PackageBuildError(
      `import ${outside.map((o) => `"${o.import}" in ${o.input}`).join(", ")} resolves outside the package folder`,
      { imports: outside.map((o) => o.import), messages: outside },
    );
  }

  const esmOutput = Object.values(esm.metafile.outputs)[0];
  if (!esmOutput?.exports.includes("default")) {
    throw new PackageBuildError(
      `entry ${manifest.entry} has no default export (export default defineCryptlet({ run }))`,
      { entry: manifest.entry, exports: esmOutput?.exports ?? [] },
    );
  }

  const output = result.outputFiles[0];
  if (output === undefined) throw new PackageBuildError("esbuild produced no output", {});
  const bundleBytes = output.contents;
  const bundleText = output.text;
  for (const leak of [root, SDK_DIR.replace(/\/$/, "")]) {
    if (bundleText.includes(leak)) {
      throw new PackageBuildError("the bundle contains an absolute path of the build machine", {
        path: leak === root ? "<package folder>" : "<runtime sdk folder>",
      });
    }
  }

  const built = assembleBuiltPackage(manifest, { [BUNDLE_FILE]: bundleBytes });
  const outDir = options.outDir ?? "dist";
  if (outDir !== false) await writeBuiltPackage(built, resolve(root, outDir));
  return built;
}
