/**
 * The sandbox host's public entry point: the {@link SandboxEngine} port, its two adapters, typed errors and
 * the deterministic PRNG. See docs/sandbox.md.
 *
 * @example
 * ```ts
 * import { createSandboxEngine } from "./runtime/sandbox/index.ts";
 *
 * const engine = createSandboxEngine("quickjs");
 * const cryptlet = await engine.load('var cryptlet = { default: { run: (input) => input.length } };');
 * console.log((await cryptlet.run("héllo", { event: {}, requestId: "0x01", resultId: "0x02", now: 0 })).output); // 5
 * cryptlet.dispose();
 * ```
 */
import { IsolatedVmEngine } from "./IsolatedVmEngine.ts";
import { QuickJsEngine } from "./QuickJsEngine.ts";
import { SandboxOptionsInvalidError } from "./errors.ts";
import { DEFAULT_ENGINE, type SandboxEngine, type SandboxEngineName } from "./SandboxEngine.ts";

export * from "./SandboxEngine.ts";
export * from "./errors.ts";
export { mathRandomSeed, sfc32 } from "./prng.ts";
export {
  assertEngineVersion,
  checkEngineVersionFormat,
  installedEngineVersion,
  type EngineVersionInfo,
} from "./engineVersion.ts";
export { assertHostSafe, DENIED_FLAGS, findHostProblems, TESTED_NODE_MAJORS } from "./hostCheck.ts";
export { IsolatedVmEngine } from "./IsolatedVmEngine.ts";
export { QuickJsEngine, QUICKJS_MAX_STACK_BYTES } from "./QuickJsEngine.ts";

/**
 * Creates an engine by name.
 * @param name - `"isolated-vm"` or `"quickjs"`; default {@link DEFAULT_ENGINE} (isolated-vm).
 * @throws SandboxOptionsInvalidError for another name.
 */
export function createSandboxEngine(name: SandboxEngineName = DEFAULT_ENGINE): SandboxEngine {
  if (name === "isolated-vm") return new IsolatedVmEngine();
  if (name === "quickjs") return new QuickJsEngine();
  throw new SandboxOptionsInvalidError("engine", 'must be "isolated-vm" or "quickjs"', name);
}
