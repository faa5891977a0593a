/**
 * The error code registry is complete and docs/errors.md is its true image:
 * - every `ERR_*` code written in a string or template literal anywhere in `runtime/` (comments excluded) is
 *   declared with `defineErrorCode`, and every declared code is used somewhere in `runtime/`;
 * - docs/errors.md is exactly what `node scripts/errors-table.ts` would write now;
 * - `defineErrorCode` refuses malformed and conflicting declarations, and `CryptletError` takes its code and its
 *   default `retryable` from the declaration.
 */
import { readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";

import ts from "typescript";

import { allErrorCodes } from "../../runtime/errorCatalog.ts";
import { defineErrorCode, errorCodeDeclaration } from "../../runtime/errorCodes.ts";
import { CryptletError, isCryptletError } from "../../runtime/errors.ts";
import { ERR_RUN_TIMEOUT, ERR_RUN_UNKNOWN } from "../../runtime/queue/errors.ts";
import { RegistryTrustUnavailableError } from "../../runtime/chains/registryTrust.ts";
import { SandboxTimeoutError } from "../../runtime/sandbox/errors.ts";
import { ERRORS_DOC, renderErrorsDoc } from "../../scripts/errors-table.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..");
const RUNTIME = path.join(ROOT, "runtime");
const CODE = /\bERR_[A-Z0-9_]*[A-Z0-9]\b/g;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sourceFiles(full);
    return /\.(ts|mts|js|mjs)$/.test(name) && !name.endsWith(".d.ts") ? [full] : [];
  });
}

/** Where a code appears: `file:line`. */
type Sites = Map<string, string[]>;

interface Scan {
  /** Codes written in string or template literals, outside the `code:` of a `defineErrorCode` call. */
  literals: Sites;
  /** Identifiers named like a code (the declarations' constants), outside their own declaration. */
  references: Sites;
}

function add(sites: Sites, code: string, where: string): void {
  sites.set(code, [...(sites.get(code) ?? []), where]);
}

function isDeclarationSite(node: ts.Node): boolean {
  // `defineErrorCode({ code: "ERR_X", ... })`
  const property = node.parent;
  if (!property || !ts.isPropertyAssignment(property) || property.name.getText() !== "code") return false;
  const call = property.parent?.parent;
  return call !== undefined && ts.isCallExpression(call) && call.expression.getText() === "defineErrorCode";
}

/** Parses every runtime source file (so comments are never scanned) and collects its codes. */
function scanRuntime(): Scan {
  const scan: Scan = { literals: new Map(), references: new Map() };
  for (const file of sourceFiles(RUNTIME)) {
    const text = readFileSync(file, "utf8");
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
    const where = (node: ts.Node): string =>
      `${path.relative(ROOT, file)}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1}`;
    const visit = (node: ts.Node): void => {
      if (
        ts.isStringLiteral(node) ||
        ts.isNoSubstitutionTemplateLiteral(node) ||
        ts.isTemplateHead(node) ||
        ts.isTemplateMiddle(node) ||
        ts.isTemplateTail(node)
      ) {
        // Codes inside generated source or JSON text (the sandbox prelude, envelopes) count too.
        if (!isDeclarationSite(node))
          for (const [code] of node.text.matchAll(CODE)) add(scan.literals, code, where(node));
      } else if (ts.isIdentifier(node) && /^ERR_[A-Z0-9_]+$/.test(node.text)) {
        const parent = node.parent;
        const declaresIt = parent && ts.isVariableDeclaration(parent) && parent.name === node;
        if (!declaresIt) add(scan.references, node.text, where(node));
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return scan;
}

describe("error code registry", () => {
  const declared = new Map(allErrorCodes().map((d) => [d.code, d]));
  const scan = scanRuntime();

  it("declares every ERR_* code that a string or template literal in runtime/ uses", () => {
    const undeclared = [...scan.literals]
      .filter(([code]) => !declared.has(code))
      .map(([code, sites]) => `${code} (${sites.join(", ")})`);
    // Declare a new code with defineErrorCode in the owning module's errors.ts (imported by
    // runtime/errorCatalog.ts); compare a library's codes with the library's own constants (e.g. jose's `errors`).
    expect(undeclared).toEqual([]);
  });

  it("declares only codes that runtime/ uses (by constant or literal)", () => {
    const unused = [...declared.keys()].filter((code) => !scan.literals.has(code) && !scan.references.has(code));
    expect(unused).toEqual([]);
  });

  it("names an existing runtime/ folder (or the core) as each code's module", () => {
    const wrong = [...declared.values()]
      .filter((d) => d.module !== "(core)")
      .filter((d) => !statSync(path.join(RUNTIME, d.module), { throwIfNoEntry: false })?.isDirectory())
      .map((d) => `${d.code}: ${d.module}`);
    expect(wrong).toEqual([]);
  });

  it("keeps docs/errors.md identical to what scripts/errors-table.ts generates (run it after a change)", async () => {
    const expected = await renderErrorsDoc();
    expect(readFileSync(ERRORS_DOC, "utf8")).toBe(expected);
    for (const code of declared.keys()) expect(expected).toContain(`\`${code}\``);
  });
});

describe("defineErrorCode", () => {
  const valid = { module: "queue", meaning: "A test code.", retry: "no" } as const;

  it("refuses malformed codes, modules, meanings and verdicts", () => {
    expect(() => defineErrorCode({ ...valid, code: "ERR_lower" as `ERR_${string}` })).toThrow(TypeError);
    expect(() => defineErrorCode({ ...valid, code: "ERR__DOUBLE" })).toThrow(/ERR_/);
    expect(() => defineErrorCode({ ...valid, code: "ERR_TEST_A", module: "Queue" })).toThrow(/module/);
    expect(() => defineErrorCode({ ...valid, code: "ERR_TEST_A", meaning: "two\nlines" })).toThrow(/one/);
    expect(() => defineErrorCode({ ...valid, code: "ERR_TEST_A", meaning: "a | b" })).toThrow(/one/);
    expect(() => defineErrorCode({ ...valid, code: "ERR_TEST_A", meaning: " " })).toThrow(/one/);
    expect(() => defineErrorCode({ ...valid, code: "ERR_TEST_A", retry: "maybe" as unknown as "no" })).toThrow(/retry/);
    expect(errorCodeDeclaration("ERR_TEST_A")).toBeUndefined();
  });

  it("refuses a code declared twice with other fields, and returns the first for an identical declaration", () => {
    expect(() => defineErrorCode({ ...ERR_RUN_UNKNOWN, module: "chains" })).toThrow(/declared twice/);
    expect(() => defineErrorCode({ ...ERR_RUN_UNKNOWN, retry: "yes" })).toThrow(/declared twice/);
    expect(defineErrorCode({ ...ERR_RUN_UNKNOWN })).toBe(ERR_RUN_UNKNOWN);
    expect(Object.isFrozen(ERR_RUN_UNKNOWN)).toBe(true);
  });
});

describe("CryptletError with a declaration", () => {
  it("takes the code, and retryable from the verdict unless given", () => {
    const timeout = new CryptletError(ERR_RUN_TIMEOUT, "late");
    expect(timeout.code).toBe("ERR_RUN_TIMEOUT");
    expect(timeout.retryable).toBe(true); // verdict "yes"
    expect(new CryptletError(ERR_RUN_UNKNOWN, "x").retryable).toBe(false); // "depends" without a value
    expect(new CryptletError(ERR_RUN_UNKNOWN, "x", { retryable: true }).retryable).toBe(true);
    expect(isCryptletError(timeout, "ERR_RUN_TIMEOUT")).toBe(true);
    expect(CryptletError.fromJSON(timeout.toJSON()).code).toBe("ERR_RUN_TIMEOUT");
    // An error class passes its declaration; its verdict still drives the queue.
    expect(new RegistryTrustUnavailableError("0x01", "no answer").retryable).toBe(true); // "yes"
    expect(new SandboxTimeoutError(100).retryable).toBe(false); // "no": the Cryptlet's own doing
  });

  it("still accepts a bare code string (errors restored from JSON)", () => {
    const restored = new CryptletError("ERR_RUN_TIMEOUT", "late");
    expect(restored.code).toBe("ERR_RUN_TIMEOUT");
    expect(restored.retryable).toBe(false);
  });
});
