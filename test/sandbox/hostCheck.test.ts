/**
 * The sandbox host refuses to start in a Node process whose flags weaken isolation (runtime/sandbox/hostCheck.ts).
 * Child processes are started with the flags and load a Cryptlet on both engines through `createSandboxEngine`,
 * printing what happened; the pure function `findHostProblems` is checked on given facts (Node versions, spellings).
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";

import {
  DENIED_FLAGS,
  TESTED_NODE_MAJORS,
  findHostProblems,
  splitNodeOptions,
  type HostFacts,
} from "../../runtime/sandbox/hostCheck.ts";

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, "..", "..");
const SANDBOX = path.join(ROOT, "runtime", "sandbox", "index.ts");

interface Outcome {
  ok: boolean;
  code?: string;
  retryable?: boolean;
  details?: { reason?: string; flag?: string; source?: string; why?: string };
}

/** Loads and runs a trivial Cryptlet on both engines in a child Node with `args` and `env`; `before` runs first. */
async function childLoads(
  args: string[],
  env: Record<string, string> = {},
  before = "",
): Promise<Record<"isolated-vm" | "quickjs", Outcome>> {
  const script = `
    ${before}
    const { createSandboxEngine } = await import(${JSON.stringify(SANDBOX)});
    const out = {};
    for (const name of ["isolated-vm", "quickjs"]) {
      try {
        const c = await createSandboxEngine(name).load("var cryptlet = { default: { run: () => 1 } };");
        await c.run(null, { event: {}, requestId: "0x01", resultId: "0x02", now: 0 });
        c.dispose();
        out[name] = { ok: true };
      } catch (e) {
        out[name] = { ok: false, code: e.code, retryable: e.retryable, details: e.details };
      }
    }
    console.log(JSON.stringify(out));`;
  const { stdout } = await run(process.execPath, [...args, "--input-type=module", "-e", script], {
    cwd: ROOT,
    env: { ...process.env, NODE_OPTIONS: "", ...env },
    timeout: 60_000,
  });
  return JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as Record<"isolated-vm" | "quickjs", Outcome>;
}

const refused = (flag: string, source: string): Outcome => ({
  ok: false,
  code: "ERR_SANDBOX_HOST_UNSAFE",
  retryable: false,
  details: expect.objectContaining({ reason: "flag", flag, source }) as Outcome["details"],
});

describe("the sandbox host refuses a process started with flags that weaken isolation", () => {
  it("why: without the check, host flags reach the isolates (gc, natives syntax, unfinished features)", async () => {
    const script = `
      const ivm = (await import("isolated-vm")).default;
      const context = await new ivm.Isolate({ memoryLimit: 16 }).createContext();
      const natives = "(function () { try { return String(eval('%IsBeingInterpreted()')); } catch (e) { return e.name; } })()";
      console.log(JSON.stringify([await context.eval("typeof gc"), await context.eval(natives), await context.eval("typeof ShadowRealm")]));`;
    const args = ["--expose-gc", "--allow-natives-syntax", "--harmony-shadow-realm", "--input-type=module", "-e"];
    const { stdout } = await run(process.execPath, [...args, script], {
      cwd: ROOT,
      env: { ...process.env, NODE_OPTIONS: "" },
    });
    expect(JSON.parse(stdout)).toEqual(["function", "true", "function"]);
  });

  it.each([
    [["--expose-gc"], "--expose-gc"],
    [["--expose_gc"], "--expose_gc"],
    [["--allow-natives-syntax"], "--allow-natives-syntax"],
    [["--harmony-shadow-realm"], "--harmony-shadow-realm"],
    [["--inspect=127.0.0.1:0"], "--inspect=127.0.0.1:0"],
    [["--nowasm-bounds-checks"], "--nowasm-bounds-checks"],
    [["--expose-internals"], "--expose-internals"],
  ])("%j: both engines refuse to load, naming the flag (ERR_SANDBOX_HOST_UNSAFE)", async (args, flag) => {
    const outcome = await childLoads(args);
    expect(outcome).toEqual({ "isolated-vm": refused(flag, "execArgv"), quickjs: refused(flag, "execArgv") });
  });

  it("finds the flag in NODE_OPTIONS, and a flag set while running (v8.setFlagsFromString)", async () => {
    expect(await childLoads([], { NODE_OPTIONS: "--max-old-space-size=512 --expose-gc" })).toEqual({
      "isolated-vm": refused("--expose-gc", "NODE_OPTIONS"),
      quickjs: refused("--expose-gc", "NODE_OPTIONS"),
    });
    const setLater = 'const v8 = await import("node:v8"); v8.setFlagsFromString("--allow-natives-syntax");';
    expect(await childLoads([], {}, setLater)).toEqual({
      "isolated-vm": refused("--allow-natives-syntax", "runtime"),
      quickjs: refused("--allow-natives-syntax", "runtime"),
    });
  });

  it("allows Jest's flag, heap and stack sizes and a negated expose flag", async () => {
    // (--jitless cannot be tried here: Node's own TypeScript stripping needs WebAssembly, so no .ts file loads.)
    const allowed = await childLoads(["--max-old-space-size=256", "--stack-size=900", "--noexpose-gc"], {
      NODE_OPTIONS: "--experimental-vm-modules",
    });
    expect(allowed).toEqual({ "isolated-vm": { ok: true }, quickjs: { ok: true } });
  });

  it("this Jest process (--experimental-vm-modules) is fit", () => {
    expect(findHostProblems()).toEqual([]);
  });
});

describe("findHostProblems (given facts)", () => {
  const facts = (overrides: Partial<HostFacts> = {}): HostFacts => ({
    execArgv: [],
    nodeOptions: undefined,
    nodeVersion: "24.21.0",
    nativesSyntax: false,
    gcExposed: false,
    ...overrides,
  });

  it("refuses a Node major version it was not tested with, and tests the Node pinned in package.json", () => {
    expect(findHostProblems(facts({ nodeVersion: "22.12.0" }))).toEqual([
      expect.objectContaining({ reason: "node-version", nodeVersion: "22.12.0" }),
    ]);
    expect(findHostProblems(facts({ nodeVersion: "25.0.0" }))[0]?.reason).toBe("node-version");
    expect(findHostProblems(facts())).toEqual([]);
    const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as {
      devDependencies: Record<string, string>;
    };
    expect(TESTED_NODE_MAJORS).toContain(Number.parseInt(pkg.devDependencies.node ?? "", 10));
  });

  it("reads flags in every spelling, skips the values of -e/-r/--import, stops at --", () => {
    const flagsOf = (execArgv: string[], nodeOptions?: string): (string | undefined)[] =>
      findHostProblems(facts({ execArgv, nodeOptions })).map((p) => p.flag);
    expect(flagsOf(["-expose-gc", "--expose-gc-as=collect", "--no-harmony-import-attributes", "--js-staging"])).toEqual(
      ["-expose-gc", "--expose-gc-as=collect", "--no-harmony-import-attributes", "--js-staging"],
    );
    expect(flagsOf(["-e", "--expose-gc", "-r", "--inspect", "--import", "--allow-natives-syntax"])).toEqual([]);
    expect(flagsOf(["--", "--expose-gc"])).toEqual([]);
    expect(flagsOf(["--noexpose-gc", "--expose-wasm", "--wasm-bounds-checks", "--no-node-snapshot"])).toEqual([]);
    expect(flagsOf([], '--max-old-space-size=64 "--inspect-port=9229"')).toEqual(["--inspect-port=9229"]);
    expect(splitNodeOptions(' --a  "--b c" "--d=x\\"y"  ')).toEqual(["--a", "--b c", '--d=x"y']);
  });

  it("reports flags V8 shows set while running once, not twice when the command line has them", () => {
    expect(findHostProblems(facts({ nativesSyntax: true, gcExposed: true })).map((p) => [p.flag, p.source])).toEqual([
      ["--allow-natives-syntax", "runtime"],
      ["--expose-gc", "runtime"],
    ]);
    expect(
      findHostProblems(facts({ execArgv: ["--expose-gc"], gcExposed: true })).map((p) => [p.flag, p.source]),
    ).toEqual([["--expose-gc", "execArgv"]]);
  });

  it("judges engine-specific flags for that engine only", () => {
    const jitless = facts({ execArgv: ["--jitless"] });
    expect(findHostProblems(jitless, "isolated-vm")).toEqual([]);
    expect(findHostProblems(jitless, "quickjs")[0]?.flag).toBe("--jitless");
    expect(findHostProblems(jitless)[0]?.flag).toBe("--jitless");
  });

  it("every deny-list entry says which flags and why", () => {
    for (const rule of DENIED_FLAGS) {
      expect(rule.flags).toMatch(/^--/);
      expect(rule.why.length).toBeGreaterThan(20);
    }
  });
});
