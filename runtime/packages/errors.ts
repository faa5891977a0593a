/**
 * Typed errors of the package format, build, publisher signature and package store. Each has a stable `ERR_*`
 * code; test them with `isCryptletError(e, code)` from `runtime/errors.ts`. None of them is retryable: a bad
 * package stays bad.
 */
import { defineErrorCode } from "../errorCodes.ts";
import { CryptletError } from "../errors.ts";

const module = "packages";

export const ERR_MANIFEST_INVALID = defineErrorCode({
  code: "ERR_MANIFEST_INVALID",
  module,
  meaning:
    "`cryptlet.json` does not follow the manifest schema; `details.errors` lists every problem (`{path, message}`).",
  retry: "no",
});
export const ERR_PACKAGE_BUILD_FAILED = defineErrorCode({
  code: "ERR_PACKAGE_BUILD_FAILED",
  module,
  meaning:
    "The package's sources could not be bundled: a syntax error, an unresolvable or forbidden import (Node builtins, outside the package), no default export, an esbuild warning.",
  retry: "no",
});
export const ERR_PACKAGE_INVALID = defineErrorCode({
  code: "ERR_PACKAGE_INVALID",
  module,
  meaning:
    "A built package is malformed: `bundle.js` missing, a file path that is not a relative POSIX path, a size limit exceeded, or stored bytes that no longer match their `codeHash`.",
  retry: "no",
});
export const ERR_PUBLISHER_SIGNATURE_INVALID = defineErrorCode({
  code: "ERR_PUBLISHER_SIGNATURE_INVALID",
  module,
  meaning:
    "The publisher's JWS does not vouch for this package (`details.reason`: malformed, unknown-kid, bad-signature, claims-mismatch, codehash-mismatch).",
  retry: "no",
});
export const ERR_PACKAGE_VERSION_EXISTS = defineErrorCode({
  code: "ERR_PACKAGE_VERSION_EXISTS",
  module,
  meaning: "`name@version` is already deployed with another `codeHash`; versions are immutable.",
  retry: "no",
});
export const ERR_PACKAGE_NOT_FOUND = defineErrorCode({
  code: "ERR_PACKAGE_NOT_FOUND",
  module,
  meaning: "No deployed package matches the name, version, codeHash or cryptletId asked for.",
  retry: "no",
});

/** One problem found in a manifest: a dotted path into the document (`limits.memoryMb`, `triggers[0].cron`). */
export interface ManifestProblem {
  /** Path of the offending member, e.g. `limits.memoryMb`; `""` for the document itself. */
  path: string;
  /** What is wrong with it, e.g. `must be at most 512`. */
  message: string;
}

/**
 * `ERR_MANIFEST_INVALID`: `cryptlet.json` does not follow the manifest schema. `details.errors` lists every
 * problem (`{path, message}`); the message is the first ones joined, e.g.
 * `cryptlet.json is invalid: limits.memoryMb: must be at most 512`.
 */
export class ManifestInvalidError extends CryptletError {
  /** Every problem found (the schema validator runs with `allErrors`). */
  readonly errors: readonly ManifestProblem[];

  /** @param errors - the problems, at least one. */
  constructor(errors: readonly ManifestProblem[], options: { cause?: unknown } = {}) {
    const shown = errors.slice(0, 5).map((e) => (e.path === "" ? e.message : `${e.path}: ${e.message}`));
    const more = errors.length > 5 ? ` (and ${errors.length - 5} more)` : "";
    super(ERR_MANIFEST_INVALID, `cryptlet.json is invalid: ${shown.join("; ")}${more}`, {
      details: { errors: errors.map((e) => ({ ...e })) },
      cause: options.cause,
    });
    this.errors = errors;
  }
}

/**
 * `ERR_PACKAGE_BUILD_FAILED`: the package's sources could not be bundled: a syntax or type-stripping error, an
 * import that cannot be resolved, a Node builtin (`node:*`, `fs`...), an import from outside the package folder,
 * a missing default export, or an esbuild warning. `details` names the offending imports or messages.
 */
export class PackageBuildError extends CryptletError {
  /**
   * @param shortMessage - one line naming the problem.
   * @param details - `messages` (`{text, file?, line?, column?}` with paths relative to the package folder),
   *   `imports` (offending import specifiers) where known.
   */
  constructor(shortMessage: string, details: Record<string, unknown>, options: { cause?: unknown } = {}) {
    super(ERR_PACKAGE_BUILD_FAILED, shortMessage, { details, cause: options.cause });
  }
}

/**
 * `ERR_PACKAGE_INVALID`: a built package (from disk or from a deploy request) is malformed: `bundle.js` missing,
 * a file path that is not a relative POSIX path, a size limit exceeded, or stored bytes that no longer match
 * their `codeHash`.
 */
export class PackageInvalidError extends CryptletError {
  /** @param shortMessage - one line naming the problem. @param details - the offending path, sizes, hashes. */
  constructor(shortMessage: string, details: Record<string, unknown> = {}, options: { cause?: unknown } = {}) {
    super(ERR_PACKAGE_INVALID, shortMessage, { details, cause: options.cause });
  }
}

/** Why a publisher signature was refused (`details.reason` of {@link PublisherSignatureInvalidError}). */
export type PublisherSignatureFailure =
  | "malformed" // not a compact JWS with the expected header and payload
  | "unknown-kid" // no trusted publisher key has the header's `kid`
  | "bad-signature" // the signature does not verify under the trusted key (tampered or wrong key)
  | "claims-mismatch" // cryptletId, name or version differ from the package's
  | "codehash-mismatch"; // the signed codeHash is not the codeHash recomputed from the package's bytes

/**
 * `ERR_PUBLISHER_SIGNATURE_INVALID`: the publisher's JWS does not vouch for this package. `details.reason` is a
 * {@link PublisherSignatureFailure}; `details.kid` the key id named in the header, when readable.
 */
export class PublisherSignatureInvalidError extends CryptletError {
  /** The machine-readable reason. */
  readonly reason: PublisherSignatureFailure;

  /** @param reason - why. @param message - one line. @param details - extra secret-free facts (kid, hashes). */
  constructor(
    reason: PublisherSignatureFailure,
    message: string,
    details: Record<string, unknown> = {},
    options: { cause?: unknown } = {},
  ) {
    super(ERR_PUBLISHER_SIGNATURE_INVALID, `publisher signature invalid: ${message}`, {
      details: { reason, ...details },
      cause: options.cause,
    });
    this.reason = reason;
  }
}

/**
 * `ERR_PACKAGE_VERSION_EXISTS`: `name@version` is already deployed with another `codeHash`. Versions are
 * immutable: publish a new version instead.
 */
export class PackageVersionExistsError extends CryptletError {
  /** @param name - package name. @param version - semver. @param existing - stored codeHash. @param offered - refused codeHash. */
  constructor(name: string, version: string, existing: string, offered: string) {
    super(ERR_PACKAGE_VERSION_EXISTS, `${name}@${version} is already deployed with other code`, {
      details: { name, version, existingCodeHash: existing, offeredCodeHash: offered },
    });
  }
}

/** `ERR_PACKAGE_NOT_FOUND`: no deployed package matches the name, version, codeHash or cryptletId asked for. */
export class PackageNotFoundError extends CryptletError {
  /** @param what - what was looked up, e.g. `{name, version}` or `{codeHash}`. */
  constructor(what: Record<string, unknown>) {
    const label = Object.entries(what)
      .map(([k, v]) => `${k} ${String(v)}`)
      .join(", ");
    super(ERR_PACKAGE_NOT_FOUND, `no deployed package with ${label}`, { details: { ...what } });
  }
}
