/**
 * Errors of the `cryptlet` command line. Each maps to an exit code (see `io.ts`): usage mistakes exit 2, every
 * other failure exits 1.
 *
 * @module
 */
import { ERR_REGISTRY_TRUST_UNAVAILABLE } from "../chains/errors.ts";
import { defineErrorCode } from "../errorCodes.ts";
import { CryptletError, redactUrl } from "../errors.ts";

const module = "cli";

export const ERR_CLI_USAGE = defineErrorCode({
  code: "ERR_CLI_USAGE",
  module,
  meaning: "The command line was used wrongly: a missing or conflicting option, a bad argument (exit code 2).",
  retry: "no",
});
export const ERR_CLI_INPUT = defineErrorCode({
  code: "ERR_CLI_INPUT",
  module,
  meaning: "A file the command needs cannot be read or is not what it should be (exit code 1).",
  retry: "no",
});
export const ERR_CLI_TARGET_EXISTS = defineErrorCode({
  code: "ERR_CLI_TARGET_EXISTS",
  module,
  meaning: "`init` would overwrite something: the target folder exists and is not empty (exit code 1).",
  retry: "no",
});
export const ERR_CLI_ROTATE_REFUSED = defineErrorCode({
  code: "ERR_CLI_ROTATE_REFUSED",
  module,
  meaning:
    "`registry rotate-signer`: a chain's registry does not allow the rotation (it does not trust the old address, or already trusts the new one besides the old), or the `--key` lacks `SIGNER_MANAGER_ROLE` there; `details.chain` names it. Checked on every chain before anything is sent; with `--key` it also means a chain's transaction failed or its registry, read back, disagrees (the chains before it are rotated: run the command again). Exit code 1.",
  retry: "no",
});

/** `ERR_CLI_ROTATE_REFUSED`: a chain's registry does not allow a signer rotation (`details.chain`, `details.reason`). */
export class RotateSignerRefusedError extends CryptletError {
  constructor(chain: string, reason: string) {
    super(ERR_CLI_ROTATE_REFUSED, `cannot rotate the signer on chain ${chain}: ${reason}`, {
      details: { chain, reason },
    });
  }
}

export const ERR_RUN_NOT_FOUND = defineErrorCode({
  code: "ERR_RUN_NOT_FOUND",
  module,
  meaning: "`cryptlet status`: the run is not known to the store (exit code 1).",
  retry: "no",
});

/**
 * The command line was used wrongly: a missing or conflicting option, a bad argument (exit code 2).
 * Code `ERR_CLI_USAGE`; `details.option` names the offending option or argument.
 */
export class CliUsageError extends CryptletError {
  constructor(message: string, option?: string) {
    super(ERR_CLI_USAGE, message, option === undefined ? {} : { details: { option } });
  }
}

/**
 * A file the command needs cannot be read or is not what it should be (exit code 1).
 * Code `ERR_CLI_INPUT`; `details.file` names it, `details.reason` is `unreadable`, `not-json` or `unexpected-shape`.
 */
export class CliInputError extends CryptletError {
  constructor(file: string, reason: "unreadable" | "not-json" | "unexpected-shape", message: string, cause?: unknown) {
    super(ERR_CLI_INPUT, message, { details: { file, reason }, ...(cause === undefined ? {} : { cause }) });
  }
}

/** `init` would overwrite something: the target folder exists and is not empty (exit code 1). `ERR_CLI_TARGET_EXISTS`. */
export class CliTargetExistsError extends CryptletError {
  constructor(dir: string) {
    super(ERR_CLI_TARGET_EXISTS, `${dir} exists and is not empty`, { details: { dir } });
  }
}

/** A run is not known to the store (exit code 1). `ERR_RUN_NOT_FOUND`. */
export class RunNotFoundError extends CryptletError {
  constructor(runId: string) {
    super(ERR_RUN_NOT_FOUND, `no run ${runId}`, { details: { runId } });
  }
}

/**
 * `cryptlet verify --config`: the trust of a configured chain could not be read from its `CryptletRegistry`
 * (no endpoint answered in time, the endpoint answers another chain id, no registry at the configured address, an
 * old block on a node that keeps no history). Verification stops there (exit code 2): it never falls back to other
 * trust, such as a threshold of 1. Code `ERR_REGISTRY_TRUST_UNAVAILABLE` (declared by the chains module);
 * `details`: `chain`, `rpcUrl` (the last endpoint tried, credentials redacted), `registry`, `block` (a number or
 * `latest`), `reason`.
 */
export class ChainTrustUnreadableError extends CryptletError {
  constructor(chain: string, rpcUrl: string, registry: string, block: number | "latest", reason: string) {
    const url = redactUrl(rpcUrl);
    super(ERR_REGISTRY_TRUST_UNAVAILABLE, `cannot read trust from chain ${chain} at ${url}: ${reason}`, {
      details: { chain, rpcUrl: url, registry, block, reason },
    });
  }
}
