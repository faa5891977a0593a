/**
 * Sealing with a disclosed content key (docs/consortium.md, "Sealed results"): a co-signer has recomputed a sealed
 * Cryptlet's plaintext but is not one of its parties, so it cannot open the leader's JWE. The leader therefore
 * discloses to the co-signers the content-encryption key (CEK) of that one JWE; with it a co-signer decrypts the
 * ciphertext and checks that it is exactly the plaintext it computed itself. The CEK is fresh for each JWE and opens
 * nothing else, so a co-signer learns nothing it did not compute.
 *
 * {@link sealDisclosed} builds the JWE as runtime/sealing/seal.ts does (General JSON Serialization, RFC 7516 §7.2.1;
 * `enc` A256GCM, RFC 7518 §5.3; one recipient per party, `ECDH-ES+A256KW` or `RSA-OAEP-256`, `kid` as `partyKid`)
 * but chooses the CEK and IV itself: jose's `GeneralEncrypt` does not take a CEK. The content is encrypted here with
 * AES-256-GCM (Node's OpenSSL) under the protected header `{"enc":"A256GCM"}` as AAD (RFC 7516 §5.1 step 14); each
 * recipient's `encrypted_key` (and `epk`) is produced by jose's `FlattenedEncrypt` with the same CEK given through
 * `setContentEncryptionKey` (jose marks it for vectors and tests because reusing a CEK across messages is unsafe;
 * here the CEK is used for this one message only, and the key management is jose's, not ours). The per-recipient
 * header carries `{alg, kid, epk?}`: what `GeneralEncrypt` writes for several recipients, and what jose's
 * `generalDecrypt` (runtime/sealing/open.ts) and Python jwcrypto read.
 *
 * {@link checkDisclosedJwe} is the co-signer's check. It cannot check the recipients' `encrypted_key`s: an
 * ECDH-ES+A256KW or RSA-OAEP wrapped key can only be opened with the party's private key, so a co-signer cannot tell
 * whether each party will be able to open the JWE (see docs/consortium.md for what a party then does).
 *
 * @module
 */
import { createCipheriv, createDecipheriv, randomBytes, timingSafeEqual } from "node:crypto";

import { FlattenedEncrypt, base64url, type GeneralJWE } from "jose";

import { partyKeyAlgorithm, partyKid, SEAL_CONTENT_ENCRYPTION, type SealingParty } from "../sealing/seal.ts";
import { SealingPartyError } from "../sealing/errors.ts";
import type { DisclosedJwe } from "./protocol.ts";

/** The protected header of every disclosed-key JWE, base64url of `{"enc":"A256GCM"}`. */
const PROTECTED = base64url.encode(JSON.stringify({ enc: SEAL_CONTENT_ENCRYPTION }));

/** A256GCM: 32-byte key, 96-bit IV, 128-bit tag (RFC 7518 §5.3). */
const CEK_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * Encrypts `plaintext` for every party and returns the JWE with its content-encryption key.
 *
 * @param plaintext - bytes, or a string encoded as UTF-8 (a sealed result's output JSON).
 * @param parties - one or more parties with distinct kids (as in the manifest).
 * @returns `{jwe, contentKey}`: the JWE in General JSON Serialization (`{protected, recipients: [{header: {alg, kid,
 *   epk?}, encrypted_key}], iv, ciphertext, tag}`), and the CEK, base64url (32 bytes). Keep the CEK in memory only.
 * @throws {@link SealingPartyError} (`ERR_SEALING_PARTY_INVALID`) as `seal`.
 *
 * @example
 * ```ts
 * import { sealDisclosed } from "./runtime/consortium/disclosure.ts";
 * const { jwe, contentKey } = await sealDisclosed(run.outputJson, manifest.output.parties);
 * ```
 */
export async function sealDisclosed(
  plaintext: Uint8Array | string,
  parties: readonly SealingParty[],
): Promise<DisclosedJwe> {
  if (parties.length === 0) throw new SealingPartyError("(none)", "at least one party is required");
  const bytes = typeof plaintext === "string" ? new TextEncoder().encode(plaintext) : plaintext;
  const cek = new Uint8Array(randomBytes(CEK_BYTES));
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", cek, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(PROTECTED, "ascii"));
  const ciphertext = Buffer.concat([cipher.update(bytes), cipher.final()]);
  const tag = cipher.getAuthTag();

  const recipients: GeneralJWE["recipients"] = [];
  const kids = new Set<string>();
  for (const party of parties) {
    const alg = partyKeyAlgorithm(party);
    const kid = await partyKid(party);
    if (kids.has(kid)) throw new SealingPartyError(party.name, `duplicate recipient kid ${kid}`);
    kids.add(kid);
    const { kid: _kid, alg: _alg, use: _use, key_ops: _ops, ...publicJwk } = party.jwk;
    // Key management only: jose wraps (or derives and wraps) our CEK for this party. The content it encrypts here
    // (nothing) is discarded; ECDH-ES's ephemeral key lands in that throwaway protected header, and moves to the
    // recipient's header.
    const wrapped = await new FlattenedEncrypt(new Uint8Array(0))
      .setProtectedHeader({ enc: SEAL_CONTENT_ENCRYPTION })
      .setUnprotectedHeader({ alg, kid })
      .setContentEncryptionKey(cek)
      .encrypt(publicJwk);
    const throwaway = JSON.parse(new TextDecoder().decode(base64url.decode(wrapped.protected ?? ""))) as {
      epk?: unknown;
    };
    if (typeof wrapped.encrypted_key !== "string") {
      throw new SealingPartyError(party.name, "key management produced no encrypted_key");
    }
    recipients.push({
      header: { alg, kid, ...(throwaway.epk === undefined ? {} : { epk: throwaway.epk as never }) },
      encrypted_key: wrapped.encrypted_key,
    });
  }
  return {
    jwe: {
      protected: PROTECTED,
      recipients,
      iv: base64url.encode(iv),
      ciphertext: base64url.encode(ciphertext),
      tag: base64url.encode(tag),
    },
    contentKey: base64url.encode(cek),
  };
}

/** Why {@link checkDisclosedJwe} refused. */
export type DisclosedJweFailure = "structure" | "algorithm" | "content-key" | "does-not-decrypt" | "plaintext-differs";

/** The outcome of {@link checkDisclosedJwe}: `ok`, or the rule that failed. */
export type DisclosedJweCheck = { ok: true } | { ok: false; failure: DisclosedJweFailure };

const B64URL = /^[A-Za-z0-9_-]*$/;

/**
 * Checks that `jwe`'s ciphertext decrypts, under `contentKey`, to exactly `expectedPlaintext`: A256GCM with the
 * protected header (and the JWE `aad`, when present) as additional authenticated data (RFC 7516 §5.2 steps 14-15),
 * then a constant-time byte comparison. Nothing about the recipients is checked (it cannot be: see the module
 * documentation); their `kid`s and `alg`s can be compared with the manifest's parties by the caller.
 *
 * @param jwe - the JWE object (General JSON Serialization).
 * @param contentKey - the disclosed CEK, base64url, 32 bytes.
 * @param expectedPlaintext - the plaintext the checker computed itself (a string is UTF-8).
 * @returns `{ok: true}`, or `{ok: false, failure}`; never throws, never returns the decrypted bytes.
 *
 * @example
 * ```ts
 * import { checkDisclosedJwe } from "./runtime/consortium/disclosure.ts";
 * const check = checkDisclosedJwe(jwe, proposal.contentKey, rerun.outputJson);
 * if (!check.ok) refuse(check.failure);
 * ```
 */
export function checkDisclosedJwe(
  jwe: unknown,
  contentKey: string,
  expectedPlaintext: Uint8Array | string,
): DisclosedJweCheck {
  const value = jwe as Partial<GeneralJWE> | null;
  if (typeof value !== "object" || value === null) return { ok: false, failure: "structure" };
  const { protected: protectedHeader, iv, ciphertext, tag, aad } = value;
  for (const part of [protectedHeader, iv, ciphertext, tag]) {
    if (typeof part !== "string" || !B64URL.test(part)) return { ok: false, failure: "structure" };
  }
  if (aad !== undefined && (typeof aad !== "string" || !B64URL.test(aad))) return { ok: false, failure: "structure" };
  if (!Array.isArray(value.recipients) || value.recipients.length === 0) return { ok: false, failure: "structure" };
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(base64url.decode(protectedHeader as string))) as Record<
      string,
      unknown
    >;
  } catch {
    return { ok: false, failure: "structure" };
  }
  // `enc` must be A256GCM, and nowhere else may a header say otherwise or ask for compression.
  const shared = (value.unprotected ?? {}) as Record<string, unknown>;
  const perRecipient = value.recipients.map((r) => (r?.header ?? {}) as Record<string, unknown>);
  if (
    header.enc !== SEAL_CONTENT_ENCRYPTION ||
    [header, shared, ...perRecipient].some((h) => h.zip !== undefined) ||
    [shared, ...perRecipient].some((h) => h.enc !== undefined)
  ) {
    return { ok: false, failure: "algorithm" };
  }
  let key: Uint8Array;
  let ivBytes: Uint8Array;
  let tagBytes: Uint8Array;
  try {
    key = base64url.decode(contentKey);
    ivBytes = base64url.decode(iv as string);
    tagBytes = base64url.decode(tag as string);
  } catch {
    return { ok: false, failure: "structure" };
  }
  if (key.length !== CEK_BYTES || !B64URL.test(contentKey)) return { ok: false, failure: "content-key" };
  if (ivBytes.length !== IV_BYTES || tagBytes.length !== TAG_BYTES) return { ok: false, failure: "structure" };
  const additional = aad === undefined ? (protectedHeader as string) : `${protectedHeader as string}.${aad}`;
  let plaintext: Buffer;
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, ivBytes, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(additional, "ascii"));
    decipher.setAuthTag(tagBytes);
    plaintext = Buffer.concat([decipher.update(base64url.decode(ciphertext as string)), decipher.final()]);
  } catch {
    return { ok: false, failure: "does-not-decrypt" };
  }
  const expected = Buffer.from(
    typeof expectedPlaintext === "string" ? new TextEncoder().encode(expectedPlaintext) : expectedPlaintext,
  );
  const same = expected.length === plaintext.length && timingSafeEqual(expected, plaintext);
  plaintext.fill(0);
  return same ? { ok: true } : { ok: false, failure: "plaintext-differs" };
}
