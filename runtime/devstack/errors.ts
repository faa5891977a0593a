/**
 * Error codes of the local stack (`npm start`, runtime/devstack/). Declared in the error-code registry
 * (runtime/errorCodes.ts); docs/errors.md lists them.
 * @module
 */
import { defineErrorCode } from "../errorCodes.ts";

const module = "devstack";

/** A local `hardhat node` did not start. */
export const ERR_LOCAL_CHAIN_START = defineErrorCode({
  code: "ERR_LOCAL_CHAIN_START",
  module,
  meaning: "`npm start`: a local `hardhat node` did not start (its output is in the details).",
  retry: "no",
});

/** Redis does not answer. */
export const ERR_REDIS_UNAVAILABLE = defineErrorCode({
  code: "ERR_REDIS_UNAVAILABLE",
  module,
  meaning: "`npm start`: Redis does not answer at the configured URL (the message says how to start one).",
  retry: "no",
});

/** A process the chaos run needs did not start. */
export const ERR_CHAOS_PROCESS_START = defineErrorCode({
  code: "ERR_CHAOS_PROCESS_START",
  module,
  meaning:
    "`npm run chaos`: a process the run starts (its `redis-server`, e.g. on a port already taken) did not start (its output is in the details).",
  retry: "no",
});
