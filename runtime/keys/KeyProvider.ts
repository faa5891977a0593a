/**
 * The key-provider port: a signing key that the runtime can use but never holds (Azure Key Vault), or a local
 * development key. Adapters: `AzureKeyVaultProvider` (the real `@azure/keyvault-keys` SDK) and
 * `LocalKeyProvider` (a JWK file). Both pass one conformance suite (`test/keys/provider-conformance.test.ts`).
 *
 * @module
 */
import type { JWK } from "jose";

/** Signature algorithms a provider may support (JWA names, RFC 7518 §3.1; ES256K from RFC 8812). */
export type SignatureAlgorithm = "ES256K" | "ES256" | "RS256" | "PS256";

/** The public half of a provider's current key version. */
export interface PublicKeyInfo {
  /**
   * The key identifier including its version: for Key Vault the `kid` URL
   * (`https://{vault}/keys/{name}/{version}`), for a local key `local:{name}/{version}`.
   */
  keyId: string;
  /** The key name (without vault and version). */
  name: string;
  /** The key version (Key Vault's 32-hex version, or the local key's JWK thumbprint, RFC 7638). */
  version: string;
  /** The public key as a JWK (RFC 7517), with `kid` set to {@link PublicKeyInfo.keyId}; no private members. */
  jwk: JWK;
}

/**
 * Key-wrapping algorithms a provider may support (JWA names, RFC 7518 §4.3): RSAES-OAEP with SHA-256 and MGF1
 * with SHA-256, on an RSA key of 2048 bits or more. It is the one Key Vault offers on every tier for RSA keys
 * (REST API "Wrap Key" / "Unwrap Key"), and a JWE `alg` any JOSE library reads.
 */
export type KeyWrapAlgorithm = "RSA-OAEP-256";

/** A key encrypted ("wrapped") by a provider's key: what {@link KeyProvider.unwrapKey} takes back. */
export interface WrappedKey {
  /** The encrypted key: RSAES-OAEP ciphertext, as long as the RSA modulus (256 bytes for RSA 2048). */
  wrappedKey: Uint8Array;
  /** The `keyId` (with version) of the key that wrapped it: unwrapping uses that version, even after a rotation. */
  keyId: string;
  /** The algorithm used. */
  algorithm: KeyWrapAlgorithm;
}

/** A signature made by a provider. */
export interface ProviderSignature {
  /**
   * The raw signature: for EC keys `r‖s` (32+32 bytes for P-256 and P-256K, as Key Vault returns it: not DER,
   * no recovery id, `s` not normalised), for RSA keys the PKCS#1 signature (modulus length).
   */
  signature: Uint8Array;
  /** The `keyId` (with version) of the key that made the signature. */
  keyId: string;
  /** The algorithm used. */
  algorithm: SignatureAlgorithm;
}

/**
 * A key held by someone else (Key Vault) or locally, that signs digests and wraps data keys.
 *
 * Errors are {@link CryptletError}s: `ERR_KEY_NOT_FOUND`, `ERR_KEY_ALGORITHM_UNSUPPORTED`, `ERR_KEY_PROVIDER_UNAVAILABLE`
 * (retryable: network, throttling), `ERR_KEY_ACCESS_DENIED`; also `ERR_KEY_DIGEST_INVALID` for a digest that is not
 * 32 bytes (all defined in `./errors.ts`; codes and retry verdicts in docs/keys.md).
 */
export interface KeyProvider {
  /** Which adapter this is, for logs and attestation claims. */
  readonly kind: "azure-key-vault" | "local";
  /** The public key of the version this provider signs with (the pinned version, or the latest). */
  getPublicKey(): Promise<PublicKeyInfo>;
  /**
   * Signs a digest that the caller already computed (Key Vault does not hash it again).
   * @param digest - the message digest: 32 bytes for ES256K, ES256, RS256 and PS256 (SHA-256 or keccak256).
   * @param algorithm - the JWA algorithm; must match the key type and curve.
   */
  sign(digest: Uint8Array, algorithm: SignatureAlgorithm): Promise<ProviderSignature>;
  /**
   * Encrypts a symmetric key (envelope encryption's data key) with this provider's key, the current version.
   * Key Vault: REST API "Wrap Key" (`POST {vault}/keys/{name}/{version}/wrapkey`); locally, RSAES-OAEP.
   * @param key - the key to wrap (e.g. 32 bytes for AES-256); at most 190 bytes for RSA 2048 with OAEP-SHA-256.
   * @param algorithm - `RSA-OAEP-256`; the key must be RSA (`ERR_KEY_ALGORITHM_UNSUPPORTED` otherwise).
   */
  wrapKey(key: Uint8Array, algorithm: KeyWrapAlgorithm): Promise<WrappedKey>;
  /**
   * Decrypts a key that {@link KeyProvider.wrapKey} wrapped, with the key version named by `wrapped.keyId` (Key Vault:
   * REST API "Unwrap Key", `POST {vault}/keys/{name}/{version}/unwrapkey`). The private key never leaves the vault.
   * @throws `ERR_KEY_NOT_FOUND` when `wrapped.keyId` is not a version of this provider's key (or it was deleted),
   *   `ERR_KEY_REQUEST_REJECTED` when the ciphertext does not decrypt, `ERR_KEY_ALGORITHM_UNSUPPORTED`.
   */
  unwrapKey(wrapped: WrappedKey): Promise<Uint8Array>;
}
