/** Kinds of key `cryptlet keys create` makes (see `keys.ts`). */
export const KEY_KINDS = ["signer", "attestation", "publisher", "party-p256", "party-x25519", "party-rsa"] as const;

/** A kind of key. */
export type KeyKind = (typeof KEY_KINDS)[number];
