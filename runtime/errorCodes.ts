/**
 * The registry of the runtime's error codes. Every stable `ERR_*` code the runtime produces (thrown by an error
 * class, or written into a run record, a receipt, a dead letter, a problem document, a CLI answer) is declared
 * exactly once, by the module that owns it, with {@link defineErrorCode}: its code, the owning module, a one-line
 * meaning and the job queue's retry verdict. Error classes take their code from the declaration
 * (`super(ERR_FOO, …)`), so a class cannot raise a code nobody declared.
 *
 * docs/errors.md is generated from this registry (`node scripts/errors-table.ts`), and
 * test/errors/registry.test.ts fails when a code literal in `runtime/` is not declared here or the document is
 * out of date. `runtime/errorCatalog.ts` imports every module's declarations.
 *
 * @example
 * ```ts
 * import { defineErrorCode } from "./runtime/errorCodes.ts";
 * import { CryptletError } from "./runtime/errors.ts";
 *
 * export const ERR_QUOTA_EXCEEDED = defineErrorCode({
 *   code: "ERR_QUOTA_EXCEEDED",
 *   module: "billing",
 *   meaning: "The tenant used up its monthly quota of runs.",
 *   retry: "no",
 * });
 * export class QuotaExceededError extends CryptletError {
 *   constructor(used: number, limit: number) {
 *     super(ERR_QUOTA_EXCEEDED, `quota exceeded: ${used} of ${limit}`, { details: { used, limit } });
 *   }
 * }
 * ```
 *
 * @module
 */

/**
 * What the job queue does with an error of a code: `yes` (always retried with backoff), `no` (fails at once, into
 * the dead-letter queue) or `depends` (the error says so itself from the situation, e.g. a network failure versus
 * a refusal: the class sets `retryable` explicitly).
 */
export type RetryVerdict = "yes" | "no" | "depends";

/** The declaration of one error code, as given to {@link defineErrorCode}. */
export interface ErrorCodeDeclaration<Code extends string = string> {
  /** The stable code, `ERR_` followed by capitals, digits and underscores; never changes once released. */
  readonly code: Code;
  /** The module that owns the code: its folder under `runtime/` (`chains`, `queue`, …), or `(core)`. */
  readonly module: string;
  /** One line (one sentence, no line break, no `|`) saying what the code means to an operator. */
  readonly meaning: string;
  /** The job queue's verdict, see {@link RetryVerdict}. */
  readonly retry: RetryVerdict;
}

const CODE_PATTERN = /^ERR_[A-Z0-9]+(?:_[A-Z0-9]+)*$/;
const MODULE_PATTERN = /^(?:\(core\)|[a-z][a-zA-Z0-9]*(?:\/[a-z][a-zA-Z0-9]*)*)$/;
const VERDICTS: ReadonlySet<string> = new Set<RetryVerdict>(["yes", "no", "depends"]);

const registry = new Map<string, ErrorCodeDeclaration>();

/**
 * Declares an error code in the registry and returns the frozen declaration, to be passed to the
 * {@link CryptletError} constructor (which takes the code and, unless the verdict is `depends`, the default of
 * `retryable` from it). Call it once per code, at the top level of the owning module's `errors.ts`.
 *
 * Declaring the same code again with the very same fields returns the first declaration (a module evaluated twice,
 * as Jest's isolated module registries do); with different fields it throws.
 *
 * @param declaration - `{code, module, meaning, retry}`, see {@link ErrorCodeDeclaration}.
 * @returns the registered declaration, typed with the literal code.
 * @throws TypeError when the code is not `ERR_[A-Z0-9_]+`, the module is not a `runtime/` folder name or
 *   `(core)`, the meaning is empty or spans several lines or contains `|`, the verdict is not `yes`/`no`/`depends`,
 *   or the code is already declared differently (by another module, or with another meaning or verdict).
 */
export function defineErrorCode<const Code extends `ERR_${string}`>(
  declaration: ErrorCodeDeclaration<Code>,
): ErrorCodeDeclaration<Code> {
  const { code, module, meaning, retry } = declaration;
  if (!CODE_PATTERN.test(code)) throw new TypeError(`error code ${JSON.stringify(code)} is not ERR_[A-Z0-9_]+`);
  if (!MODULE_PATTERN.test(module)) {
    throw new TypeError(`error code ${code}: module ${JSON.stringify(module)} is not a runtime/ folder or "(core)"`);
  }
  if (meaning.trim() === "" || /[\r\n|]/.test(meaning)) {
    throw new TypeError(`error code ${code}: the meaning must be one non-empty line without "|"`);
  }
  if (!VERDICTS.has(retry)) throw new TypeError(`error code ${code}: retry must be "yes", "no" or "depends"`);
  const existing = registry.get(code);
  if (existing) {
    if (existing.module === module && existing.meaning === meaning && existing.retry === retry) {
      return existing as ErrorCodeDeclaration<Code>;
    }
    throw new TypeError(`error code ${code} is declared twice (modules ${existing.module} and ${module})`);
  }
  const frozen = Object.freeze({ code, module, meaning, retry });
  registry.set(code, frozen);
  return frozen;
}

/**
 * The declaration of `code`, or `undefined` when no module loaded so far declares it. Import
 * `runtime/errorCatalog.ts` first to be sure every module's codes are loaded.
 */
export function errorCodeDeclaration(code: string): ErrorCodeDeclaration | undefined {
  return registry.get(code);
}

/**
 * Every code declared by the modules loaded so far, sorted by module, then code. Import `runtime/errorCatalog.ts`
 * (or call its `allErrorCodes()`) to have them all.
 */
export function declaredErrorCodes(): ErrorCodeDeclaration[] {
  return [...registry.values()].sort((a, b) => a.module.localeCompare(b.module) || a.code.localeCompare(b.code));
}
