/**
 * Which engine, exactly, runs a Cryptlet. The two engines do not compute the same results (docs/sandbox.md,
 * "Engine differences": `10 ** -5`, `Math.pow`, `toString(radix)`, sort with an inconsistent comparator...), and
 * an engine's results can change with its version, so a package pins its engine **and its exact version** in the
 * manifest (`engine`, `engineVersion`, both inside the `codeHash`), the runtime refuses to run it on any other
 * engine version ({@link assertEngineVersion}), and the attestation token names the engine version that ran it.
 *
 * An engine version is one string, read at run time from what is installed ({@link installedEngineVersion}):
 *
 * | engine        | format                                      | example                                  |
 * | ------------- | ------------------------------------------- | ---------------------------------------- |
 * | `isolated-vm` | `<isolated-vm version>+v8.<V8 version>`     | `7.0.1+v8.13.6.233.17-node.53`           |
 * | `quickjs`     | `<quickjs-emscripten version>+quickjs.<QuickJS version>` | `0.32.0+quickjs.2025-09-13.f1139494` |
 *
 * It is a valid semver 2.0.0 version whose build metadata names the JavaScript core: isolated-vm runs the V8 of
 * the Node process that loads it (`process.versions.v8`), quickjs-emscripten runs the QuickJS release its
 * release-sync WebAssembly variant was built from (named in that package's README). Two versions are the same
 * engine only when the strings are equal, build metadata included (semver precedence ignores build metadata; we
 * do not).
 *
 * @example
 * ```ts
 * import { assertEngineVersion, installedEngineVersion } from "./runtime/sandbox/engineVersion.ts";
 *
 * installedEngineVersion("isolated-vm").version; // "7.0.1+v8.13.6.233.17-node.53"
 * assertEngineVersion("isolated-vm", manifest.engineVersion); // throws ERR_SANDBOX_ENGINE_VERSION_MISMATCH if not
 * ```
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

import semver from "semver";

import { EngineVersionMismatchError } from "./errors.ts";
import type { SandboxEngineName } from "./SandboxEngine.ts";

/** The installed version of one engine, and what it is made of. */
export interface EngineVersionInfo {
  /** The engine, `isolated-vm` or `quickjs`. */
  engine: SandboxEngineName;
  /** The engine version string (see the module comment), e.g. `7.0.1+v8.13.6.233.17-node.53`. */
  version: string;
  /** The npm package that embeds the engine and its version, e.g. `{name: "isolated-vm", version: "7.0.1"}`. */
  package: { name: string; version: string };
  /** The JavaScript core and its version as its project writes it, e.g. `{name: "V8", version: "13.6.233.17-node.53"}`. */
  core: { name: "V8" | "QuickJS"; version: string };
}

/** The build-metadata tag that names each engine's JavaScript core. */
export const ENGINE_CORE_TAG: Readonly<Record<SandboxEngineName, string>> = Object.freeze({
  "isolated-vm": "v8",
  quickjs: "quickjs",
});

/** The quickjs-emscripten variant QuickJsEngine runs (`newQuickJSWASMModule()` without a variant). */
const QUICKJS_VARIANT = "@jitl/quickjs-wasmfile-release-sync";

const requireHere = createRequire(import.meta.url);

function packageJson(require: NodeJS.Require, name: string): { file: string; version: string } {
  const file = require.resolve(`${name}/package.json`);
  const json = JSON.parse(readFileSync(file, "utf8")) as { version?: unknown };
  if (typeof json.version !== "string") throw new Error(`${file} has no version`);
  return { file, version: json.version };
}

/** A build-metadata identifier list from free text: `2025-09-13+f1139494` → `2025-09-13.f1139494`. */
function metadata(text: string): string {
  return text
    .split(/[^0-9A-Za-z-]+/)
    .filter((part) => part !== "")
    .join(".");
}

function readIsolatedVm(): EngineVersionInfo {
  const pkg = packageJson(requireHere, "isolated-vm");
  const v8 = process.versions.v8;
  return {
    engine: "isolated-vm",
    version: `${pkg.version}+${ENGINE_CORE_TAG["isolated-vm"]}.${metadata(v8)}`,
    package: { name: "isolated-vm", version: pkg.version },
    core: { name: "V8", version: v8 },
  };
}

function readQuickJs(): EngineVersionInfo {
  const pkg = packageJson(requireHere, "quickjs-emscripten");
  // The variant is quickjs-emscripten's own dependency: resolve it from there, as quickjs-emscripten does.
  const variant = packageJson(createRequire(pkg.file), QUICKJS_VARIANT);
  let core = "unknown";
  try {
    const readme = readFileSync(path.join(path.dirname(variant.file), "README.md"), "utf8");
    core = /\bVersion \[([^\]\s]+)\]/.exec(readme)?.[1] ?? core;
  } catch {
    // no README: the package version alone still identifies the WebAssembly binary
  }
  const version = variant.version === pkg.version ? pkg.version : `${pkg.version}-${metadata(variant.version)}`;
  return {
    engine: "quickjs",
    version: `${version}+${ENGINE_CORE_TAG.quickjs}.${metadata(core)}`,
    package: { name: "quickjs-emscripten", version: pkg.version },
    core: { name: "QuickJS", version: core },
  };
}

const cache = new Map<SandboxEngineName, EngineVersionInfo>();

/**
 * The installed version of an engine, read once per process from the installed packages (`package.json` of
 * isolated-vm, quickjs-emscripten and its WebAssembly variant) and from `process.versions.v8`. Loads no engine.
 *
 * @param engine - `isolated-vm` or `quickjs`.
 * @returns the {@link EngineVersionInfo} (a frozen object, the same one on every call).
 * @throws Error when the engine's package is not installed.
 */
export function installedEngineVersion(engine: SandboxEngineName): EngineVersionInfo {
  let info = cache.get(engine);
  if (info === undefined) {
    if (engine === "isolated-vm") info = readIsolatedVm();
    else if (engine === "quickjs") info = readQuickJs();
    else throw new TypeError(`unknown sandbox engine ${JSON.stringify(engine)}`);
    info = Object.freeze({ ...info, package: Object.freeze(info.package), core: Object.freeze(info.core) });
    cache.set(engine, info);
  }
  return info;
}

/**
 * Checks the form of an engine version for an engine (not whether it is installed): a semver 2.0.0 version with
 * build metadata that starts with the engine's core tag (`v8.` for isolated-vm, `quickjs.` for quickjs).
 *
 * @param engine - the engine the version is for.
 * @param version - the candidate, e.g. from a manifest's `engineVersion`.
 * @returns `undefined` when it is well formed, else why not (a phrase for `ERR_MANIFEST_INVALID`).
 */
export function checkEngineVersionFormat(engine: SandboxEngineName, version: string): string | undefined {
  const example = `e.g. ${installedEngineVersion(engine).version} (the installed one)`;
  const tag = ENGINE_CORE_TAG[engine];
  const parsed = semver.parse(version);
  const canonical =
    parsed === null ? null : `${parsed.version}${parsed.build.length > 0 ? "+" : ""}${parsed.build.join(".")}`;
  if (parsed === null || canonical !== version || parsed.build[0] !== tag || parsed.build.length < 2) {
    const form =
      engine === "isolated-vm"
        ? "<isolated-vm version>+v8.<V8 version>"
        : "<quickjs-emscripten version>+quickjs.<QuickJS version>";
    return `must be ${engine === "isolated-vm" ? "an" : "a"} ${engine} engine version "${form}", ${example}`;
  }
  return undefined;
}

/**
 * Refuses to run code pinned to another engine version than the installed one.
 *
 * @param engine - the engine the package asks for.
 * @param pinned - the package's `engineVersion`.
 * @returns the installed {@link EngineVersionInfo} (equal to the pin).
 * @throws {@link EngineVersionMismatchError} (`ERR_SANDBOX_ENGINE_VERSION_MISMATCH`, not retryable) naming both
 *   versions when they differ in any character.
 */
export function assertEngineVersion(engine: SandboxEngineName, pinned: string): EngineVersionInfo {
  const installed = installedEngineVersion(engine);
  if (pinned !== installed.version) throw new EngineVersionMismatchError(engine, pinned, installed.version);
  return installed;
}
