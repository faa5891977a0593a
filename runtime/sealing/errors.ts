/**
 * Typed errors of sealing. Decryption errors are deliberately vague (as jose's `JWEDecryptionFailed`): they say
 * only that the key did not open the JWE, never why, and never carry plaintext or key material.
 *
 * @module
 */
import { defineErrorCode } from "../errorCodes.ts";
import { CryptletError } from "../errors.ts";

const module = "sealing";

export const ERR_SEALING_PARTY_INVALID = defineErrorCode({
  code: "ERR_SEALING_PARTY_INVALID",
  module,
  meaning:
    "A party's key cannot be a JWE recipient (unsupported key type or curve, private members, duplicate kid...).",
  retry: "no",
});
export const ERR_NOT_A_RECIPIENT = defineErrorCode({
  code: "ERR_NOT_A_RECIPIENT",
  module,
  meaning: "The key is not a recipient of the JWE, or decryption failed (the two are not told apart, on purpose).",
  retry: "no",
});
export const ERR_JWE_INVALID = defineErrorCode({
  code: "ERR_JWE_INVALID",
  module,
  meaning:
    "The value is not a JWE in General JSON Serialization (RFC 7516 \u00a77.2.1), or uses an algorithm not allowed.",
  retry: "no",
});

/** A party's key cannot be a JWE recipient (unsupported key type or curve, private members, duplicate kid...). */
export class SealingPartyError extends CryptletError {
  constructor(party: string, reason: string) {
    super(ERR_SEALING_PARTY_INVALID, `party ${party}: ${reason}`, { details: { party, reason } });
  }
}

/** The key is not a recipient of the JWE, or decryption failed (the two are not told apart, on purpose). */
export class NotARecipientError extends CryptletError {
  constructor() {
    super(ERR_NOT_A_RECIPIENT, "not a recipient or decryption failed");
  }
}

/** The value is not a JWE in General JSON Serialization (RFC 7516 §7.2.1), or uses an algorithm not allowed. */
export class JweInvalidError extends CryptletError {
  constructor(reason: string) {
    super(ERR_JWE_INVALID, `invalid JWE: ${reason}`, { details: { reason } });
  }
}

export const ERR_SEALED_INPUT_KEY_MISSING = defineErrorCode({
  code: "ERR_SEALED_INPUT_KEY_MISSING",
  module,
  meaning:
    "An event for a sealed Cryptlet arrived, but the runtime has no input-encryption key (`keys.inputEncryption`), so its input cannot be stored encrypted; nothing was accepted.",
  retry: "no",
});
export const ERR_SEALED_INPUT_INVALID = defineErrorCode({
  code: "ERR_SEALED_INPUT_INVALID",
  module,
  meaning:
    "A sealed input (JWE) in a job does not open: malformed, bound to another run, or altered (not told apart, on purpose).",
  retry: "no",
});

/**
 * `ERR_SEALED_INPUT_KEY_MISSING`: an event for a sealed Cryptlet cannot be accepted, because the runtime has no
 * input-encryption key to store its input encrypted (configure `keys.inputEncryption`, docs/sealing.md).
 */
export class SealedInputKeyMissingError extends CryptletError {
  constructor(cryptlet: string) {
    super(
      ERR_SEALED_INPUT_KEY_MISSING,
      `${cryptlet} is sealed: its input is stored encrypted, but no input-encryption key is configured (keys.inputEncryption)`,
      { details: { cryptlet } },
    );
  }
}

/** `ERR_SEALED_INPUT_INVALID`: a sealed input does not open (malformed, bound to another run, or altered). */
export class SealedInputInvalidError extends CryptletError {
  constructor(reason: "malformed" | "binding" | "decryption") {
    super(ERR_SEALED_INPUT_INVALID, `sealed input does not open (${reason})`, { details: { reason } });
  }
}
