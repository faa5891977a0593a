/**
 * The sandbox host refuses to run Cryptlets in a Node process whose flags would weaken their isolation. V8 flags
 * are process-wide: `--expose-gc` installs `gc()` in every new context, `--allow-natives-syntax` lets any code
 * compiled afterwards call V8's internal `%` functions, `--harmony-*` adds unfinished language features, and all of
 * them reach the isolates isolated-vm creates (measured: with `--expose-gc --allow-natives-syntax
 * --harmony-shadow-realm`, an isolate sees `typeof gc === "function"`, `%IsBeingInterpreted()` compiles and
 * `ShadowRealm` exists). So before the first Cryptlet is loaded, each engine calls {@link assertHostSafe}, which
 * checks once per process:
 *
 * - the flags on the command line (`process.execArgv`) and in `NODE_OPTIONS` against {@link DENIED_FLAGS};
 * - what V8 does now, to catch flags set while running (`v8.setFlagsFromString`, which Node allows because it
 *   runs V8 with `--no-freeze-flags-after-init`): whether `%` natives syntax compiles and whether a new context
 *   gets a `gc` function;
 * - the Node major version against {@link TESTED_NODE_MAJORS}.
 *
 * Flags changed after the first check are not seen (host code can always call `v8.setFlagsFromString`; it is
 * trusted code, this check is about how the process was started). Flags that were examined and are allowed:
 * `--experimental-vm-modules` (Jest needs it; a Node module-loader flag that reaches no isolate), `--stack-size` and
 * `--disallow-code-generation-from-strings` (isolated-vm gives each isolate its own stack limit and code-generation
 * setting: checked by hand, neither reaches an isolate), `--max-old-space-size` and other heap sizes of the host
 * isolate, and `--jitless` for isolated-vm (it only removes executable memory; QuickJS, which needs WebAssembly,
 * refuses it; Node's own TypeScript stripping needs WebAssembly too, so the runtime's `.ts` sources do not load under
 * `--jitless` at all). docs/sandbox.md ("The host refuses what would weaken it") has the list as a table.
 *
 * @example
 * ```ts
 * import { assertHostSafe } from "./runtime/sandbox/hostCheck.ts";
 *
 * assertHostSafe("isolated-vm"); // throws ERR_SANDBOX_HOST_UNSAFE under `node --expose-gc`
 * ```
 *
 * @module
 */
import vm from "node:vm";

import { SandboxHostUnsafeError, type HostProblem } from "./errors.ts";
import type { SandboxEngineName } from "./SandboxEngine.ts";

/**
 * The Node major versions the sandbox was tested with (the conformance, hostile and engine-difference suites),
 * matching the Node pinned in package.json's devDependencies. Another major version brings another V8, hence other
 * engine results and unreviewed isolation behaviour: the host refuses it until it is tested and added here.
 */
export const TESTED_NODE_MAJORS: readonly number[] = Object.freeze([24]);

/** One entry of the deny-list. */
export interface DeniedFlag {
  /** The flags it covers, as the documentation shows them, e.g. `--expose-*`. */
  readonly flags: string;
  /** Why they are refused, one sentence. */
  readonly why: string;
  /** The engines it matters to; every engine when absent. */
  readonly engines?: readonly SandboxEngineName[];
  /**
   * Whether a flag matches, given its normalised name (no leading dashes, `_` written `-`, no `=value`, no `no`
   * prefix) and whether it was negated (`--no-foo`, `--nofoo`).
   */
  matches(name: string, negated: boolean): boolean;
}

const exactly =
  (...names: string[]) =>
  (name: string, negated: boolean): boolean =>
    !negated && names.includes(name);

/**
 * The deny-list: flags of Node or V8 that weaken the isolation of Cryptlets, change the language they see (so a
 * result would depend on how the host was started), or open the host to a debugger. Matched in either spelling
 * (`--expose-gc`, `--expose_gc`, `-expose-gc`) and with or without a value.
 */
export const DENIED_FLAGS: readonly DeniedFlag[] = Object.freeze([
  {
    flags: "--allow-natives-syntax, --allow-natives-for-differential-fuzzing",
    why: "lets code compiled in any isolate, a Cryptlet's included, call V8's internal %-functions, some of which corrupt memory",
    matches: exactly("allow-natives-syntax", "allow-natives-for-differential-fuzzing"),
  },
  {
    flags: "--expose-* (--expose-gc, --expose-gc-as, --expose-externalize-string, --expose-internals, ...)",
    why: "installs host functions (gc, externalizeString, statistics, the memory corruption API) in every new context, the Cryptlets' included, or Node's internals in the host",
    matches: (name, negated) => !negated && name.startsWith("expose-") && name !== "expose-wasm",
  },
  {
    flags: "--harmony, --harmony-*, --js-*, --experimental-shadow-realm (either polarity)",
    why: "adds unfinished or removes shipped JavaScript features in every isolate: results would depend on how the host was started, and unfinished features are where engine bugs are",
    matches: (name) =>
      name === "harmony" ||
      name.startsWith("harmony-") ||
      name.startsWith("js-") ||
      name === "experimental-shadow-realm",
  },
  {
    flags: "--inspect, --inspect-brk, --inspect-wait, --inspect-port, --debug-port",
    why: "opens a debugger that can run code in the host and read its memory, the sandboxes' included",
    matches: (name, negated) =>
      !negated && (name === "inspect" || name.startsWith("inspect-") || name === "debug-port"),
  },
  {
    flags:
      "--no-wasm-bounds-checks, --no-wasm-stack-checks, --experimental-wasm-skip-*, --experimental-wasm-*-nop, --experimental-wasm-assume-*",
    why: "removes the WebAssembly checks that confine the QuickJS interpreter to its own linear memory",
    matches: (name, negated) =>
      (negated && (name === "wasm-bounds-checks" || name === "wasm-stack-checks")) ||
      (!negated &&
        (name.startsWith("experimental-wasm-skip-") ||
          name.startsWith("experimental-wasm-assume-") ||
          (name.startsWith("experimental-wasm-") && name.endsWith("-nop")))),
  },
  {
    flags: "--no-memory-protection-keys, --allow-unsafe-function-constructor",
    why: "turns off a V8 hardening (write protection of generated code, the Function constructor's checks)",
    matches: (name, negated) =>
      (negated && name === "memory-protection-keys") || (!negated && name === "allow-unsafe-function-constructor"),
  },
  {
    flags: "--sandbox-testing, --sandbox-fuzzing, --fuzzing, --*-fuzzing, --fuzzer-*",
    why: "V8 testing modes: expose the memory corruption API or make internal functions fail silently",
    matches: (name, negated) =>
      !negated && (name.includes("fuzzing") || name.startsWith("fuzzer-") || name === "sandbox-testing"),
  },
  {
    flags: "--jitless, --no-expose-wasm (QuickJS only)",
    why: "removes WebAssembly, in which the QuickJS engine runs",
    engines: ["quickjs"],
    matches: (name, negated) => (!negated && name === "jitless") || (negated && name === "expose-wasm"),
  },
]);

/** Options whose next command-line word is their value (so it is not read as a flag). */
const TAKES_VALUE = new Set([
  "-e",
  "--eval",
  "-p",
  "--print",
  "-r",
  "--require",
  "--import",
  "--loader",
  "--experimental-loader",
  "-C",
  "--conditions",
]);

/** What the check looks at; {@link currentHostFacts} reads them from this process. */
export interface HostFacts {
  /** `process.execArgv`: the Node and V8 options on the command line. */
  execArgv: readonly string[];
  /** The `NODE_OPTIONS` environment variable the process started with. */
  nodeOptions: string | undefined;
  /** `process.versions.node`, e.g. `24.21.0`. */
  nodeVersion: string;
  /** Whether V8 compiles `%` natives syntax now (set on the command line or while running). */
  nativesSyntax: boolean;
  /** Whether a new context gets a `gc` function now. */
  gcExposed: boolean;
}

/**
 * Splits `NODE_OPTIONS` as Node does: words separated by white space, `"…"` quoting (with `\` escaping the next
 * character inside quotes).
 *
 * @param text - the variable's value.
 * @returns the words, e.g. `["--max-old-space-size=4096", "--expose-gc"]`.
 */
export function splitNodeOptions(text: string | undefined): string[] {
  const words: string[] = [];
  if (text === undefined) return words;
  let word: string | undefined;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quoted) {
      if (c === "\\" && i + 1 < text.length) word += text[++i] as string;
      else if (c === '"') quoted = false;
      else word += c;
    } else if (c === '"') {
      quoted = true;
      word ??= "";
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else {
      word = (word ?? "") + c;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

/** `--No_Foo=1` → candidates `{name: "no-foo"}`, `{name: "foo", negated: true}`. */
function candidates(word: string): { name: string; negated: boolean }[] {
  const name = word.replace(/^--?/, "").replace(/=.*$/s, "").replace(/_/g, "-");
  const out = [{ name, negated: false }];
  if (name.startsWith("no-")) out.push({ name: name.slice(3), negated: true });
  else if (name.startsWith("no") && name.length > 2) out.push({ name: name.slice(2), negated: true });
  return out;
}

/** The flags of a command line: words that start with `-`, skipping the values of `-e`, `-r`, `--import`... */
function flagsOf(words: readonly string[]): string[] {
  const flags: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const word = words[i] as string;
    if (word === "--") break;
    if (!word.startsWith("-") || word === "-") continue;
    flags.push(word);
    if (TAKES_VALUE.has(word)) i++;
  }
  return flags;
}

/** The deny-list entry a flag falls under, if any. */
function deniedBy(flag: string, engine: SandboxEngineName | undefined): DeniedFlag | undefined {
  for (const { name, negated } of candidates(flag)) {
    const rule = DENIED_FLAGS.find(
      (r) =>
        (engine === undefined || r.engines === undefined || r.engines.includes(engine)) && r.matches(name, negated),
    );
    if (rule !== undefined) return rule;
  }
  return undefined;
}

/**
 * Every reason to refuse, in order: command-line flags, `NODE_OPTIONS` flags, flags V8 shows set while running,
 * then the Node version. Pure: give it any {@link HostFacts}.
 *
 * @param facts - what to judge (default: this process, {@link currentHostFacts}).
 * @param engine - the engine about to run; flags that matter to one engine only are judged for it (all engines
 *   when absent).
 * @returns the problems, empty when the host is fit to run Cryptlets.
 */
export function findHostProblems(facts: HostFacts = currentHostFacts(), engine?: SandboxEngineName): HostProblem[] {
  const problems: HostProblem[] = [];
  const { nodeVersion } = facts;
  const seen = new Set<string>();
  const sources: [HostProblem["source"], readonly string[]][] = [
    ["execArgv", flagsOf(facts.execArgv)],
    ["NODE_OPTIONS", flagsOf(splitNodeOptions(facts.nodeOptions))],
  ];
  for (const [source, flags] of sources) {
    for (const flag of flags) {
      const rule = deniedBy(flag, engine);
      if (rule === undefined) continue;
      problems.push({ reason: "flag", flag, source, why: rule.why, nodeVersion });
      seen.add(candidates(flag)[0]?.name ?? flag);
    }
  }
  const natives = DENIED_FLAGS[0] as DeniedFlag;
  if (facts.nativesSyntax && !seen.has("allow-natives-syntax")) {
    problems.push({ reason: "flag", flag: "--allow-natives-syntax", source: "runtime", why: natives.why, nodeVersion });
  }
  const expose = DENIED_FLAGS[1] as DeniedFlag;
  if (facts.gcExposed && ![...seen].some((name) => name.startsWith("expose-gc"))) {
    problems.push({ reason: "flag", flag: "--expose-gc", source: "runtime", why: expose.why, nodeVersion });
  }
  const major = Number.parseInt(nodeVersion, 10);
  if (!TESTED_NODE_MAJORS.includes(major)) {
    problems.push({
      reason: "node-version",
      why: `the sandbox was tested with Node ${TESTED_NODE_MAJORS.join(", ")} only (TESTED_NODE_MAJORS in runtime/sandbox/hostCheck.ts)`,
      nodeVersion,
    });
  }
  return problems;
}

/**
 * Reads the {@link HostFacts} of this process. The two probes compile a function that uses `%` syntax (never run)
 * and ask a new `node:vm` context for `typeof gc`.
 */
export function currentHostFacts(): HostFacts {
  let nativesSyntax = false;
  try {
    new vm.Script("(function () { return %IsBeingInterpreted(); })");
    nativesSyntax = true;
  } catch {
    // SyntaxError: natives syntax is off
  }
  return {
    execArgv: [...process.execArgv],
    nodeOptions: process.env.NODE_OPTIONS,
    nodeVersion: process.versions.node,
    nativesSyntax,
    gcExposed: vm.runInNewContext("typeof gc") === "function",
  };
}

let processFacts: HostFacts | undefined;
const verdicts = new Map<SandboxEngineName, HostProblem | null>();

/**
 * Throws when this process is unfit to run Cryptlets on `engine`. The engines call it at the start of every
 * `load`; the process is examined on the first call only, later calls return the remembered verdict.
 *
 * @param engine - the engine about to load a Cryptlet.
 * @throws {@link SandboxHostUnsafeError} (`ERR_SANDBOX_HOST_UNSAFE`, not retryable) for the first problem
 *   {@link findHostProblems} finds; `details` holds `reason`, `flag`, `source`, `why` and `nodeVersion`.
 */
export function assertHostSafe(engine: SandboxEngineName): void {
  let verdict = verdicts.get(engine);
  if (verdict === undefined) {
    processFacts ??= currentHostFacts();
    verdict = findHostProblems(processFacts, engine)[0] ?? null;
    verdicts.set(engine, verdict);
  }
  if (verdict !== null) throw new SandboxHostUnsafeError(verdict);
}
