/**
 * The complete catalog of the runtime's error codes: importing this module loads the declarations of every
 * module (each module's `errors.ts`, see runtime/errorCodes.ts), so {@link allErrorCodes} lists every code the
 * runtime can produce. scripts/errors-table.ts writes docs/errors.md from it; test/errors/registry.test.ts checks
 * that every `ERR_*` literal in `runtime/` is in it.
 *
 * A module that gets an `errors.ts` (or declares codes elsewhere) must be imported here.
 *
 * @module
 */
import "./api/errors.ts";
import "./attestation/errors.ts";
import "./chains/errors.ts";
import "./cli/errors.ts";
import "./errors.ts";
import "./keys/errors.ts";
import "./packages/errors.ts";
import "./queue/errors.ts";
import "./sandbox/errors.ts";
import "./sealing/errors.ts";
import "./triggers/errors.ts";

import { declaredErrorCodes, defineErrorCode, type ErrorCodeDeclaration } from "./errorCodes.ts";

// The dev stack (runtime/devstack/) raises its two codes as plain `CryptletError`s and has no errors.ts of its
// own yet; its codes are declared here, under its name, until it has one.
defineErrorCode({
  code: "ERR_LOCAL_CHAIN_START",
  module: "devstack",
  meaning: "`npm start`: a local `hardhat node` did not start (its output is in the details).",
  retry: "no",
});
defineErrorCode({
  code: "ERR_REDIS_UNAVAILABLE",
  module: "devstack",
  meaning: "`npm start`: Redis does not answer at the configured URL (the message says how to start one).",
  retry: "no",
});

/**
 * Every error code of the runtime, sorted by module, then code.
 * @returns the frozen declarations (`{code, module, meaning, retry}`).
 */
export function allErrorCodes(): ErrorCodeDeclaration[] {
  return declaredErrorCodes();
}
