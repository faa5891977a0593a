/**
 * Opening a sealed result as one of its parties: JWE General JSON Serialization (RFC 7516 §7.2.1) decrypted with
 * jose `generalDecrypt`, which tries each recipient with the given key.
 *
 * @module
 */
import { errors as jose, generalDecrypt, type CryptoKey, type GeneralJWE, type JWK, type KeyObject } from "jose";

import { JweInvalidError, NotARecipientError } from "./errors.ts";
import { parseJwe } from "./seal.ts";

/** Options of {@link open}. */
export interface OpenOptions {
  /** Allowed recipient `alg` values; default: every algorithm jose supports. */
  keyManagementAlgorithms?: string[];
  /** Allowed `enc` values; default: every algorithm jose supports. */
  contentEncryptionAlgorithms?: string[];
}

function assertGeneralJwe(value: unknown): asserts value is GeneralJWE {
  if (typeof value !== "object" || value === null) throw new JweInvalidError("not an object");
  const jwe = value as Record<string, unknown>;
  if (!Array.isArray(jwe.recipients) || jwe.recipients.length === 0) throw new JweInvalidError("recipients missing");
  for (const member of ["ciphertext", "iv", "tag"] as const) {
    if (typeof jwe[member] !== "string") throw new JweInvalidError(`${member} missing`);
  }
}

/**
 * Decrypts a sealed result with a party's private key.
 *
 * @param jwe - the JWE object, or its JSON text.
 * @param privateKey - the party's private key: a private JWK (EC, OKP, RSA, or `oct` for symmetric key wrapping),
 *   a WebCrypto `CryptoKey` or a Node `KeyObject`.
 * @returns the plaintext bytes.
 * @throws {@link JweInvalidError} (`ERR_JWE_INVALID`) when the input is not a General JSON JWE or names a
 *   disallowed algorithm; {@link NotARecipientError} (`ERR_NOT_A_RECIPIENT`) when the key opens no recipient or the
 *   ciphertext does not authenticate (deliberately indistinguishable).
 *
 * @example
 * ```ts
 * import { open } from "./runtime/sealing/open.ts";
 * const plaintext = new TextDecoder().decode(await open(jwe, myPrivateJwk));
 * ```
 */
export async function open(
  jwe: GeneralJWE | string | unknown,
  privateKey: JWK | CryptoKey | KeyObject,
  options: OpenOptions = {},
): Promise<Uint8Array> {
  const value = typeof jwe === "string" ? parseJwe(jwe) : jwe;
  assertGeneralJwe(value);
  const key = isJwk(privateKey) ? stripJwk(privateKey) : privateKey;
  try {
    const { plaintext } = await generalDecrypt(value, key, {
      ...(options.keyManagementAlgorithms ? { keyManagementAlgorithms: options.keyManagementAlgorithms } : {}),
      ...(options.contentEncryptionAlgorithms
        ? { contentEncryptionAlgorithms: options.contentEncryptionAlgorithms }
        : {}),
    });
    return plaintext;
  } catch (cause) {
    const code = (cause as { code?: string }).code;
    if (code === jose.JWEInvalid.code) throw new JweInvalidError("structure");
    throw new NotARecipientError();
  }
}

function isJwk(key: unknown): key is JWK {
  return typeof key === "object" && key !== null && typeof (key as JWK).kty === "string";
}

/** Drops `alg`/`use`/`key_ops` so one stored JWK opens recipients of any compatible algorithm. */
function stripJwk(jwk: JWK): JWK {
  const { alg: _alg, use: _use, key_ops: _ops, ...rest } = jwk;
  return rest;
}
