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
import "./consortium/errors.ts";
import "./crosschain/errors.ts";
import "./devstack/errors.ts";
import "./errors.ts";
import "./keys/errors.ts";
import "./packages/errors.ts";
import "./queue/errors.ts";
import "./resilience/errors.ts";
import "./sandbox/errors.ts";
import "./sandbox/process/errors.ts";
import "./sealing/errors.ts";
import "./triggers/errors.ts";

import { declaredErrorCodes, type ErrorCodeDeclaration } from "./errorCodes.ts";

/**
 * Every error code of the runtime, sorted by module, then code.
 * @returns the frozen declarations (`{code, module, meaning, retry}`).
 */
export function allErrorCodes(): ErrorCodeDeclaration[] {
  return declaredErrorCodes();
}
