/**
 * Sealed inputs at rest: the input of a sealed Cryptlet is encrypted before it enters Redis, by envelope
 * encryption, and opened only inside the execute stage.
 *
 * Format: a JWE in Compact Serialization (RFC 7516 §7.1) with `alg` `RSA-OAEP-256` (RFC 7518 §4.3) and `enc`
 * `A256GCM` (RFC 7518 §5.3): a fresh 256-bit content-encryption key (the data key) per event, wrapped by the
 * runtime's input-encryption key through the {@link KeyProvider} (Key Vault "Wrap Key"; the private key never
 * leaves the vault). The protected header names the wrapping key version (`kid`) and binds the ciphertext to its
 * run with two private header parameters (RFC 7515 §4.3), `cryptletId` and `eventId`: the header is the AES-GCM
 * additional authenticated data, so a sealed input copied into another run's job does not open there.
 *
 * ```
 * BASE64URL(header) . BASE64URL(wrapped data key, 256 bytes for RSA 2048) . BASE64URL(IV, 12 bytes)
 *   . BASE64URL(ciphertext) . BASE64URL(tag, 16 bytes)
 * header  = {"alg":"RSA-OAEP-256","enc":"A256GCM","kid":<key id with version>,"cryptletId":<0x…>,"eventId":<0x…>}
 * plaintext = UTF-8 JSON {"input": <the Cryptlet's input>}
 * ```
 *
 * Any JOSE library holding the private key opens it (the tests check with `jose`). See docs/sealing.md.
 *
 * @module
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

import type { KeyProvider } from "../keys/KeyProvider.ts";
import { SealedInputInvalidError } from "./errors.ts";

/** What a sealed input is bound to: the run's Cryptlet and event (bytes32 hex). */
export interface SealedInputBinding {
  cryptletId: string;
  eventId: string;
}

/** The protected header of a sealed input. */
interface SealedInputHeader {
  alg: "RSA-OAEP-256";
  enc: "A256GCM";
  kid: string;
  cryptletId: string;
  eventId: string;
}

const b64u = (bytes: Uint8Array | string) => Buffer.from(bytes).toString("base64url");

/**
 * Encrypts a Cryptlet's input for storage (envelope encryption, see the module documentation).
 * @param input - the Cryptlet's input (JSON; `undefined` stays absent).
 * @param binding - the run's `cryptletId` and `eventId`, bound into the protected header.
 * @param key - the input-encryption key (RSA, `RSA-OAEP-256`).
 * @returns the JWE Compact Serialization (ASCII).
 * @throws the key provider's errors (`ERR_KEY_PROVIDER_UNAVAILABLE` retryable, `ERR_KEY_ALGORITHM_UNSUPPORTED`…).
 *
 * @example
 * ```ts
 * import { LocalKeyProvider, generateLocalKeyFile } from "./runtime/keys/LocalKeyProvider.ts";
 * import { openSealedInput, sealInput } from "./runtime/sealing/inputEnvelope.ts";
 *
 * await generateLocalKeyFile("input.jwk.json", { rsaModulusLength: 2048 });
 * const key = new LocalKeyProvider({ keyFile: "input.jwk.json" });
 * const binding = { cryptletId: "0x…", eventId: "0x…" };
 * const jwe = await sealInput({ bid: 42 }, binding, key);
 * const input = await openSealedInput(jwe, binding, key); // { bid: 42 }
 * ```
 */
export async function sealInput(input: unknown, binding: SealedInputBinding, key: KeyProvider): Promise<string> {
  const dataKey = randomBytes(32);
  try {
    const wrapped = await key.wrapKey(dataKey, "RSA-OAEP-256");
    const header: SealedInputHeader = {
      alg: "RSA-OAEP-256",
      enc: "A256GCM",
      kid: wrapped.keyId,
      cryptletId: binding.cryptletId.toLowerCase(),
      eventId: binding.eventId.toLowerCase(),
    };
    const protectedHeader = b64u(JSON.stringify(header));
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", dataKey, iv);
    cipher.setAAD(Buffer.from(protectedHeader, "ascii"));
    const ciphertext = Buffer.concat([cipher.update(JSON.stringify({ input }), "utf8"), cipher.final()]);
    return [protectedHeader, b64u(wrapped.wrappedKey), b64u(iv), b64u(ciphertext), b64u(cipher.getAuthTag())].join(".");
  } finally {
    dataKey.fill(0);
  }
}

/**
 * Decrypts a sealed input (only the execute stage calls it).
 * @param jwe - what {@link sealInput} returned.
 * @param binding - the job's `cryptletId` and `eventId`: must equal the header's.
 * @param key - the input-encryption key; the header's `kid` picks the version that unwraps.
 * @returns the input.
 * @throws SealedInputInvalidError (`ERR_SEALED_INPUT_INVALID`, reason `malformed`, `binding` or `decryption`);
 *   the key provider's errors (`ERR_KEY_NOT_FOUND` for a deleted key version, `ERR_KEY_PROVIDER_UNAVAILABLE`…).
 */
export async function openSealedInput(jwe: string, binding: SealedInputBinding, key: KeyProvider): Promise<unknown> {
  const parts = typeof jwe === "string" ? jwe.split(".") : [];
  if (parts.length !== 5) throw new SealedInputInvalidError("malformed");
  const [protectedHeader, wrappedKey, iv, ciphertext, tag] = parts as [string, string, string, string, string];
  let header: SealedInputHeader;
  try {
    header = JSON.parse(Buffer.from(protectedHeader, "base64url").toString("utf8")) as SealedInputHeader;
  } catch {
    throw new SealedInputInvalidError("malformed");
  }
  if (header?.alg !== "RSA-OAEP-256" || header.enc !== "A256GCM" || typeof header.kid !== "string")
    throw new SealedInputInvalidError("malformed");
  if (header.cryptletId !== binding.cryptletId.toLowerCase() || header.eventId !== binding.eventId.toLowerCase())
    throw new SealedInputInvalidError("binding");
  const dataKey = await key.unwrapKey({
    wrappedKey: new Uint8Array(Buffer.from(wrappedKey, "base64url")),
    keyId: header.kid,
    algorithm: "RSA-OAEP-256",
  });
  try {
    if (dataKey.length !== 32) throw new SealedInputInvalidError("decryption");
    const decipher = createDecipheriv("aes-256-gcm", dataKey, Buffer.from(iv, "base64url"), {
      authTagLength: 16,
    });
    decipher.setAAD(Buffer.from(protectedHeader, "ascii"));
    decipher.setAuthTag(Buffer.from(tag, "base64url"));
    const plaintext = Buffer.concat([decipher.update(Buffer.from(ciphertext, "base64url")), decipher.final()]);
    return (JSON.parse(plaintext.toString("utf8")) as { input?: unknown }).input;
  } catch {
    throw new SealedInputInvalidError("decryption");
  } finally {
    dataKey.fill(0);
  }
}
