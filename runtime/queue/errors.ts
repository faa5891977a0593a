/**
 * The error codes of the job pipeline (BullMQ stages, run records, receipts, dead letters). The pipeline raises
 * them as plain {@link CryptletError}s with these declarations (`new CryptletError(ERR_RUN_UNKNOWN, …)`); a
 * failure that is not a `CryptletError` is recorded as the core `ERR_UNEXPECTED` (runtime/errors.ts).
 *
 * @module
 */
import { defineErrorCode } from "../errorCodes.ts";

const module = "queue";

export const ERR_RUN_UNKNOWN = defineErrorCode({
  code: "ERR_RUN_UNKNOWN",
  module,
  meaning:
    "A stage found no run record, attested result or parent job for its result id; retried when the record may still appear (attest before execute's output, write before attest).",
  retry: "depends",
});
export const ERR_RUN_TIMEOUT = defineErrorCode({
  code: "ERR_RUN_TIMEOUT",
  module,
  meaning: "`Pipeline.waitForRun` (and `cryptlet invoke --wait`) gave up before the run completed.",
  retry: "yes",
});
export const ERR_CHAIN_UNKNOWN = defineErrorCode({
  code: "ERR_CHAIN_UNKNOWN",
  module,
  meaning:
    "A run targets a chain this runtime has no configuration (or no anchor batcher) for (`details.chain`); the event is refused or the write fails.",
  retry: "no",
});
export const ERR_WRITE_MISSING = defineErrorCode({
  code: "ERR_WRITE_MISSING",
  module,
  meaning: "In a composite receipt: a target of the run has no recorded write outcome, so it counts as failed.",
  retry: "no",
});
export const ERR_DEAD_LETTER_NOT_FOUND = defineErrorCode({
  code: "ERR_DEAD_LETTER_NOT_FOUND",
  module,
  meaning: "No dead-letter entry has this job id (replay).",
  retry: "no",
});
export const ERR_DEAD_LETTER_NOT_REPLAYABLE = defineErrorCode({
  code: "ERR_DEAD_LETTER_NOT_REPLAYABLE",
  module,
  meaning: "Only dead-lettered writes can be replayed; a run that failed before its writes is submitted again.",
  retry: "no",
});
