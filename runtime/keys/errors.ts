/**
 * Typed errors of the key providers and the signer. Codes are stable; `retryable` tells the job queue whether to
 * retry with backoff (`ERR_KEY_PROVIDER_UNAVAILABLE`: network failure, throttling, 5xx) or fail at once.
 * Messages and details name keys, versions, vaults, algorithms and HTTP statuses, never key material or tokens.
 *
 * @module
 */
import { defineErrorCode } from "../errorCodes.ts";
import { CryptletError } from "../errors.ts";

const module = "keys";

export const ERR_KEY_NOT_FOUND = defineErrorCode({
  code: "ERR_KEY_NOT_FOUND",
  module,
  meaning: "The key (or the requested version, or the local key file) does not exist.",
  retry: "no",
});
export const ERR_KEY_ACCESS_DENIED = defineErrorCode({
  code: "ERR_KEY_ACCESS_DENIED",
  module,
  meaning:
    "The caller may not use the key: no or wrong credential (401), missing permission, or a disabled or expired key (403).",
  retry: "no",
});
export const ERR_KEY_PROVIDER_UNAVAILABLE = defineErrorCode({
  code: "ERR_KEY_PROVIDER_UNAVAILABLE",
  module,
  meaning:
    "The key service could not be reached or asked to come back later: network errors, 408, 429 throttling, 5xx.",
  retry: "yes",
});
export const ERR_KEY_ALGORITHM_UNSUPPORTED = defineErrorCode({
  code: "ERR_KEY_ALGORITHM_UNSUPPORTED",
  module,
  meaning: "The algorithm does not fit the key (e.g. `ES256` on a secp256k1 key).",
  retry: "no",
});
export const ERR_KEY_DIGEST_INVALID = defineErrorCode({
  code: "ERR_KEY_DIGEST_INVALID",
  module,
  meaning: "The digest to sign is not 32 bytes.",
  retry: "no",
});
export const ERR_KEY_REQUEST_REJECTED = defineErrorCode({
  code: "ERR_KEY_REQUEST_REJECTED",
  module,
  meaning: "The key service refused the request as malformed (a 4xx other than 401, 403, 404, 408, 429).",
  retry: "no",
});
export const ERR_KEY_PROVIDER_CONFIG_INVALID = defineErrorCode({
  code: "ERR_KEY_PROVIDER_CONFIG_INVALID",
  module,
  meaning: "A key provider option is missing or malformed (vault URL, key name, version).",
  retry: "no",
});
export const ERR_LOCAL_KEY_IN_PRODUCTION = defineErrorCode({
  code: "ERR_LOCAL_KEY_IN_PRODUCTION",
  module,
  meaning: "A local (file) key was requested in production without `allowInProduction: true`.",
  retry: "no",
});
export const ERR_LOCAL_KEY_INVALID = defineErrorCode({
  code: "ERR_LOCAL_KEY_INVALID",
  module,
  meaning: "The local key file is not a usable private JWK.",
  retry: "no",
});
export const ERR_SIGNER_KEY_MISMATCH = defineErrorCode({
  code: "ERR_SIGNER_KEY_MISMATCH",
  module,
  meaning:
    "The signer could not tie a signature to its key: no recovery id recovers the key's address, or the provider signed with another key version than the one it reported.",
  retry: "no",
});

/** The key (or the requested version, or the local key file) does not exist. Code `ERR_KEY_NOT_FOUND`. */
export class KeyNotFoundError extends CryptletError {
  constructor(what: string, details: Record<string, unknown>, cause?: unknown) {
    super(ERR_KEY_NOT_FOUND, `key not found: ${what}`, { details, cause });
  }
}

/**
 * The caller may not use the key: no or wrong credential (401), missing permission, or a disabled or expired key
 * (403). Code `ERR_KEY_ACCESS_DENIED`; not retryable (an operator must grant access).
 */
export class KeyAccessDeniedError extends CryptletError {
  constructor(what: string, details: Record<string, unknown>, cause?: unknown) {
    super(ERR_KEY_ACCESS_DENIED, `access to key denied: ${what}`, { details, cause });
  }
}

/**
 * The key service could not be reached or asked to come back later: network errors, 408, 429 throttling, 5xx.
 * Code `ERR_KEY_PROVIDER_UNAVAILABLE`; retryable.
 */
export class KeyProviderUnavailableError extends CryptletError {
  constructor(what: string, details: Record<string, unknown>, cause?: unknown) {
    super(ERR_KEY_PROVIDER_UNAVAILABLE, `key provider unavailable: ${what}`, { details, cause });
  }
}

/** The algorithm does not fit the key (e.g. `ES256` on a secp256k1 key). Code `ERR_KEY_ALGORITHM_UNSUPPORTED`. */
export class KeyAlgorithmUnsupportedError extends CryptletError {
  constructor(
    algorithm: string,
    key: { kty?: string | undefined; crv?: string | undefined; keyId?: string | undefined },
  ) {
    super(
      ERR_KEY_ALGORITHM_UNSUPPORTED,
      `algorithm ${algorithm} is not supported by key ${key.keyId ?? "(unknown)"} (${key.kty ?? "?"}${key.crv === undefined ? "" : ` ${key.crv}`})`,
      {
        details: { algorithm, kty: key.kty, crv: key.crv, keyId: key.keyId },
      },
    );
  }
}

/** The digest to sign is not 32 bytes. Code `ERR_KEY_DIGEST_INVALID`. */
export class KeyDigestInvalidError extends CryptletError {
  constructor(length: number | string, expected: number) {
    super(ERR_KEY_DIGEST_INVALID, `the digest must be ${expected} bytes, got ${length}`, {
      details: { length, expected },
    });
  }
}

/** The key service refused the request as malformed (a 4xx other than 401, 403, 404, 408, 429). Code `ERR_KEY_REQUEST_REJECTED`. */
export class KeyRequestRejectedError extends CryptletError {
  constructor(what: string, details: Record<string, unknown>, cause?: unknown) {
    super(ERR_KEY_REQUEST_REJECTED, `key request rejected: ${what}`, { details, cause });
  }
}

/** A provider option is missing or malformed (vault URL, key name, version). Code `ERR_KEY_PROVIDER_CONFIG_INVALID`. */
export class KeyProviderConfigError extends CryptletError {
  constructor(option: string, reason: string) {
    super(ERR_KEY_PROVIDER_CONFIG_INVALID, `invalid key provider option ${option}: ${reason}`, {
      details: { option, reason },
    });
  }
}

/**
 * A local (file) key was requested in production without `allowInProduction: true`. Code
 * `ERR_LOCAL_KEY_IN_PRODUCTION`: production keys belong in Key Vault, where they cannot be copied.
 */
export class LocalKeyInProductionError extends CryptletError {
  constructor(source: string) {
    super(
      ERR_LOCAL_KEY_IN_PRODUCTION,
      `a local key (${source}) is refused in production; use Azure Key Vault or set allowInProduction`,
      {
        details: { source },
      },
    );
  }
}

/** The local key file is not a usable private JWK. Code `ERR_LOCAL_KEY_INVALID` (the reason never quotes key material). */
export class LocalKeyInvalidError extends CryptletError {
  constructor(source: string, reason: string, cause?: unknown) {
    super(ERR_LOCAL_KEY_INVALID, `the local key ${source} is not a usable private JWK: ${reason}`, {
      details: { source, reason },
      cause,
    });
  }
}

/**
 * The signer could not tie a signature to its key: no recovery id recovers the key's address, or the provider
 * signed with a key version other than the one it reported. Code `ERR_SIGNER_KEY_MISMATCH`.
 */
export class SignerKeyMismatchError extends CryptletError {
  constructor(reason: string, details: Record<string, unknown>) {
    super(ERR_SIGNER_KEY_MISMATCH, `signature does not match the signer's key: ${reason}`, { details });
  }
}
