/**
 * Error codes of the sandbox processes (SandboxProcessPool.ts). The watchdog's and the memory limit's stops are
 * the sandbox's own `ERR_SANDBOX_TIMEOUT` and `ERR_SANDBOX_MEMORY_LIMIT`; this module adds what only a process
 * boundary can observe.
 * @module
 */
import { defineErrorCode } from "../../errorCodes.ts";
import { CryptletError } from "../../errors.ts";

/** A sandbox process died during a run, not killed by the host (a signal such as SIGABRT, or an exit). */
export const ERR_SANDBOX_PROCESS_CRASHED = defineErrorCode({
  code: "ERR_SANDBOX_PROCESS_CRASHED",
  module: "sandbox/process",
  meaning:
    "The sandbox process died during the run without the host killing it (e.g. V8 aborted on a huge array-like `sort`); the run is presumed to have caused it and is not retried; the host and the other runs go on.",
  retry: "no",
});

/**
 * The sandbox process running the Cryptlet died (signal or exit code in `details`) without being killed by the
 * host's watchdog or memory limit. Not retryable: the Cryptlet is presumed to have caused it.
 */
export class SandboxProcessCrashedError extends CryptletError {
  /** @param how - the signal (e.g. `SIGABRT`) or `exit code N`. */
  constructor(how: string) {
    super(ERR_SANDBOX_PROCESS_CRASHED, `the sandbox process died during the run (${how})`, { details: { how } });
  }
}
