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
 * A signing key held by someone else (Key Vault) or locally.
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
}
