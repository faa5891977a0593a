/**
 * Sealing a result for the contract's parties (docs/sealing.md): JWE General JSON Serialization (RFC 7516 §7.2.1),
 * content encryption `A256GCM` (RFC 7518 §5.3), one recipient per party: `ECDH-ES+A256KW` (RFC 7518 §4.6;
 * RFC 8037 for X25519) for EC P-256 and OKP X25519 keys, `RSA-OAEP-256` (RFC 7518 §4.3) for RSA keys of at least
 * 2048 bits. Each recipient's unprotected header carries `alg` and `kid` (the party JWK's `kid`, else its RFC 7638
 * SHA-256 thumbprint). Built with jose `GeneralEncrypt`.
 *
 * @module
 */
import { GeneralEncrypt, base64url, calculateJwkThumbprint, type GeneralJWE, type JWK } from "jose";

import { JweInvalidError, SealingPartyError } from "./errors.ts";

/** A party of a sealed Cryptlet, as named in the manifest. */
export interface SealingParty {
  /** Human-readable party name (e.g. `"Contoso Bank"`), for errors and manifests only. */
  name: string;
  /** The party's public encryption key (RFC 7517): EC P-256, OKP X25519 or RSA (≥ 2048 bits). */
  jwk: JWK;
}

/** The key-management algorithm used for a party, by key type. */
export type PartyKeyAlgorithm = "ECDH-ES+A256KW" | "RSA-OAEP-256";

/** Content encryption of every sealed result. */
export const SEAL_CONTENT_ENCRYPTION = "A256GCM";

const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] as const;

/** The recipient `alg` for a party key. @throws {@link SealingPartyError} for unsupported keys. */
export function partyKeyAlgorithm(party: SealingParty): PartyKeyAlgorithm {
  const { jwk } = party;
  if (typeof jwk !== "object" || jwk === null) throw new SealingPartyError(party.name, "jwk missing");
  if (PRIVATE_MEMBERS.some((m) => jwk[m] !== undefined)) {
    throw new SealingPartyError(party.name, "jwk has private members (give the public key)");
  }
  if (jwk.kty === "EC" && jwk.crv === "P-256") return "ECDH-ES+A256KW";
  if (jwk.kty === "OKP" && jwk.crv === "X25519") return "ECDH-ES+A256KW";
  if (jwk.kty === "RSA") {
    if (typeof jwk.n !== "string") throw new SealingPartyError(party.name, "RSA jwk without n");
    const bits = base64url.decode(jwk.n).length * 8;
    if (bits < 2048) throw new SealingPartyError(party.name, `RSA modulus of ${bits} bits (2048 or more required)`);
    return "RSA-OAEP-256";
  }
  throw new SealingPartyError(
    party.name,
    `unsupported key ${jwk.kty ?? "?"}/${jwk.crv ?? "-"} (EC P-256, OKP X25519 or RSA)`,
  );
}

/**
 * The recipient `kid` of a party: its JWK `kid` when present, else the RFC 7638 JWK thumbprint (SHA-256, base64url).
 */
export async function partyKid(party: SealingParty): Promise<string> {
  if (typeof party.jwk.kid === "string" && party.jwk.kid.length > 0) return party.jwk.kid;
  return calculateJwkThumbprint(party.jwk, "sha256");
}

/**
 * Encrypts `payload` for every party.
 *
 * @param payload - bytes, or a string encoded as UTF-8.
 * @param parties - one or more parties with distinct kids.
 * @returns a JWE in General JSON Serialization: `{protected, recipients: [{header: {alg, kid, epk?}, encrypted_key}],
 *   iv, ciphertext, tag}`, protected header `{"enc":"A256GCM"}`. Its on-chain bytes are the UTF-8 of its RFC 8785
 *   canonical JSON (`sealedOutputBytes` in runtime/attestation/hashing.ts).
 * @throws {@link SealingPartyError} (`ERR_SEALING_PARTY_INVALID`) for no parties, an unsupported or private key, or
 *   duplicate kids.
 *
 * @example
 * ```ts
 * import { seal } from "./runtime/sealing/seal.ts";
 * const jwe = await seal(JSON.stringify({ price: 2243.12 }), [
 *   { name: "Contoso", jwk: contosoPublicJwk },
 *   { name: "Fabrikam", jwk: fabrikamPublicJwk },
 * ]);
 * ```
 */
export async function seal(payload: Uint8Array | string, parties: readonly SealingParty[]): Promise<GeneralJWE> {
  if (parties.length === 0) throw new SealingPartyError("(none)", "at least one party is required");
  const bytes = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
  const encrypt = new GeneralEncrypt(bytes).setProtectedHeader({ enc: SEAL_CONTENT_ENCRYPTION });
  const kids = new Set<string>();
  for (const party of parties) {
    const alg = partyKeyAlgorithm(party);
    const kid = await partyKid(party);
    if (kids.has(kid)) throw new SealingPartyError(party.name, `duplicate recipient kid ${kid}`);
    kids.add(kid);
    const { kid: _kid, alg: _alg, use: _use, key_ops: _ops, ...publicJwk } = party.jwk;
    encrypt.addRecipient(publicJwk).setUnprotectedHeader({ alg, kid });
  }
  return encrypt.encrypt();
}

/**
 * The recipient kids of a JWE in General JSON Serialization (or the single `kid` of a flattened one), in order.
 * Recipients without a `kid` are listed as `null`.
 * @throws {@link JweInvalidError} (`ERR_JWE_INVALID`) when `jwe` has no recipients array.
 */
export function recipientsOf(jwe: unknown): (string | null)[] {
  const value = typeof jwe === "string" ? parseJwe(jwe) : jwe;
  if (typeof value !== "object" || value === null) throw new JweInvalidError("not an object");
  const recipients = (value as { recipients?: unknown }).recipients;
  if (!Array.isArray(recipients) || recipients.length === 0) throw new JweInvalidError("recipients missing");
  return recipients.map((r: unknown) => {
    const kid = (r as { header?: { kid?: unknown } } | null)?.header?.kid;
    return typeof kid === "string" ? kid : null;
  });
}

/** Parses JWE JSON text. @throws {@link JweInvalidError} when it is not JSON. */
export function parseJwe(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new JweInvalidError("not JSON");
  }
}
