/**
 * The local adapter of the {@link KeyProvider} port: a private JWK (RFC 7517) in a file or in memory, for
 * development and tests. Refused in production (the key could be copied; use Key Vault) unless explicitly allowed.
 *
 * @module
 */
import {
  constants,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  privateDecrypt,
  publicEncrypt,
} from "node:crypto";
import type { JsonWebKey } from "node:crypto";
import { readFile, writeFile, chmod } from "node:fs/promises";
import path from "node:path";
import { calculateJwkThumbprint } from "jose";
import type { JWK } from "jose";
import { DIGEST_LENGTH, algorithmFitsKey, joseCurveName, signDigest, verifyDigest } from "./digestSignature.ts";
import {
  KeyAlgorithmUnsupportedError,
  KeyDigestInvalidError,
  KeyNotFoundError,
  KeyRequestRejectedError,
  LocalKeyInProductionError,
  LocalKeyInvalidError,
} from "./errors.ts";
import type {
  KeyProvider,
  KeyWrapAlgorithm,
  ProviderSignature,
  PublicKeyInfo,
  SignatureAlgorithm,
  WrappedKey,
} from "./KeyProvider.ts";

/** Options of {@link LocalKeyProvider}: exactly one of `keyFile` and `jwk`. */
export interface LocalKeyProviderOptions {
  /** Path of a JSON file holding one private JWK (EC P-256 or secp256k1, or RSA 2048+). Read on first use. */
  keyFile?: string;
  /** The private JWK itself (instead of `keyFile`). */
  jwk?: JWK;
  /** The key name in `keyId` (`local:{name}/{version}`). @defaultValue the file name without extension, else `"local"` */
  name?: string;
  /** Whether this is a production deployment. @defaultValue `process.env.NODE_ENV === "production"` */
  production?: boolean;
  /** Allow a local key in production anyway (not recommended). @defaultValue false */
  allowInProduction?: boolean;
}

interface LoadedKey {
  privateJwk: JsonWebKey;
  info: PublicKeyInfo;
}

/**
 * Signs digests with a local private JWK, producing the same formats as Key Vault (raw `r‖s` with `s` not
 * normalised for EC, PKCS#1 for RSA), and wraps data keys with an RSA JWK (`RSA-OAEP-256`, as Key Vault's
 * Wrap Key). The key version is the JWK thumbprint (RFC 7638, SHA-256).
 *
 * Errors: `ERR_LOCAL_KEY_IN_PRODUCTION` (constructor), `ERR_KEY_NOT_FOUND` (no such file),
 * `ERR_LOCAL_KEY_INVALID` (not a private EC/RSA JWK, or `x`/`y` not matching `d`), `ERR_KEY_ALGORITHM_UNSUPPORTED`,
 * `ERR_KEY_DIGEST_INVALID`.
 *
 * @example
 * ```ts
 * import { LocalKeyProvider, generateLocalKeyFile } from "./runtime/keys/LocalKeyProvider.ts";
 *
 * await generateLocalKeyFile(".keys/signer.jwk.json", { curve: "secp256k1" });
 * const provider = new LocalKeyProvider({ keyFile: ".keys/signer.jwk.json" });
 * const { signature } = await provider.sign(new Uint8Array(32).fill(1), "ES256K");
 * ```
 */
export class LocalKeyProvider implements KeyProvider {
  /** @inheritDoc */
  readonly kind = "local" as const;
  readonly #options: LocalKeyProviderOptions;
  readonly #name: string;
  #loaded: Promise<LoadedKey> | undefined;

  /**
   * @throws LocalKeyInProductionError (`ERR_LOCAL_KEY_IN_PRODUCTION`) in production without `allowInProduction`.
   * @throws LocalKeyInvalidError (`ERR_LOCAL_KEY_INVALID`) when neither or both of `keyFile` and `jwk` are given.
   */
  constructor(options: LocalKeyProviderOptions) {
    const source = options.keyFile ?? "(in-memory JWK)";
    if ((options.keyFile === undefined) === (options.jwk === undefined)) {
      throw new LocalKeyInvalidError(source, "give exactly one of keyFile and jwk");
    }
    const production = options.production ?? process.env.NODE_ENV === "production";
    if (production && options.allowInProduction !== true) throw new LocalKeyInProductionError(source);
    this.#options = options;
    this.#name =
      options.name ??
      (options.keyFile === undefined ? "local" : path.basename(options.keyFile).replace(/\..*$/, "") || "local");
  }

  /** @inheritDoc */
  async getPublicKey(): Promise<PublicKeyInfo> {
    return (await this.#load()).info;
  }

  /** Forgets the loaded key, so the next call reads the key file again (after replacing the file: a rotation). */
  refresh(): void {
    this.#loaded = undefined;
  }

  /** @inheritDoc */
  async sign(digest: Uint8Array, algorithm: SignatureAlgorithm): Promise<ProviderSignature> {
    if (!(digest instanceof Uint8Array) || digest.length !== DIGEST_LENGTH) {
      throw new KeyDigestInvalidError(digest instanceof Uint8Array ? digest.length : typeof digest, DIGEST_LENGTH);
    }
    const { privateJwk, info } = await this.#load();
    if (!algorithmFitsKey(algorithm, info.jwk.kty, info.jwk.crv))
      throw new KeyAlgorithmUnsupportedError(algorithm, { ...info.jwk, keyId: info.keyId });
    return { signature: signDigest(privateJwk, algorithm, digest), keyId: info.keyId, algorithm };
  }

  /** @inheritDoc */
  async wrapKey(key: Uint8Array, algorithm: KeyWrapAlgorithm): Promise<WrappedKey> {
    const { privateJwk, info } = await this.#load();
    if (algorithm !== "RSA-OAEP-256" || info.jwk.kty !== "RSA")
      throw new KeyAlgorithmUnsupportedError(algorithm, { kty: info.jwk.kty, keyId: info.keyId });
    const publicKey = createPublicKey({ key: publicMembers(privateJwk) as JsonWebKey, format: "jwk" });
    const wrappedKey = publicEncrypt(
      { key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
      key,
    );
    return { wrappedKey: new Uint8Array(wrappedKey), keyId: info.keyId, algorithm };
  }

  /**
   * @inheritDoc
   * A local key has one version (its thumbprint): a key wrapped before the file was replaced does not unwrap
   * (`ERR_KEY_NOT_FOUND`).
   */
  async unwrapKey(wrapped: WrappedKey): Promise<Uint8Array> {
    const { privateJwk, info } = await this.#load();
    if (wrapped.algorithm !== "RSA-OAEP-256" || info.jwk.kty !== "RSA")
      throw new KeyAlgorithmUnsupportedError(wrapped.algorithm, { kty: info.jwk.kty, keyId: info.keyId });
    if (wrapped.keyId !== info.keyId)
      throw new KeyNotFoundError(wrapped.keyId, { keyId: wrapped.keyId, current: info.keyId });
    try {
      const privateKey = createPrivateKey({ key: privateJwk, format: "jwk" });
      return new Uint8Array(
        privateDecrypt(
          { key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
          wrapped.wrappedKey,
        ),
      );
    } catch {
      // Vague on purpose (as jose's decryption errors): no detail on why OAEP decoding failed.
      throw new KeyRequestRejectedError(`unwrap with ${info.keyId} failed`, { keyId: info.keyId });
    }
  }

  #load(): Promise<LoadedKey> {
    if (this.#loaded === undefined) {
      const loading = this.#read();
      this.#loaded = loading;
      loading.catch(() => {
        if (this.#loaded === loading) this.#loaded = undefined;
      });
    }
    return this.#loaded;
  }

  async #read(): Promise<LoadedKey> {
    const { keyFile } = this.#options;
    const source = keyFile ?? "(in-memory JWK)";
    let candidate: unknown = this.#options.jwk;
    if (keyFile !== undefined) {
      let text: string;
      try {
        text = await readFile(keyFile, "utf8");
      } catch (error) {
        if ((error as { code?: unknown }).code === "ENOENT") throw new KeyNotFoundError(keyFile, { keyFile }, error);
        throw new LocalKeyInvalidError(source, "the file cannot be read", error);
      }
      try {
        candidate = JSON.parse(text);
      } catch {
        throw new LocalKeyInvalidError(source, "the file is not JSON");
      }
    }
    const privateJwk = validatePrivateJwk(candidate, source);
    const publicJwk = publicMembers(privateJwk);
    const version = await calculateJwkThumbprint(publicJwk as JWK, "sha256");
    const keyId = `local:${this.#name}/${version}`;
    return { privateJwk, info: { keyId, name: this.#name, version, jwk: { ...(publicJwk as JWK), kid: keyId } } };
  }
}

function validatePrivateJwk(candidate: unknown, source: string): JsonWebKey {
  if (typeof candidate !== "object" || candidate === null || Array.isArray(candidate))
    throw new LocalKeyInvalidError(source, "not a JSON object");
  const jwk = candidate as Record<string, unknown>;
  if (typeof jwk.d !== "string")
    throw new LocalKeyInvalidError(source, "no private member d (a public key cannot sign)");
  const crv = joseCurveName(typeof jwk.crv === "string" ? jwk.crv : undefined);
  if (jwk.kty === "EC" && crv !== "P-256" && crv !== "secp256k1")
    throw new LocalKeyInvalidError(source, `unsupported curve ${String(jwk.crv)} (P-256, secp256k1)`);
  if (jwk.kty !== "EC" && jwk.kty !== "RSA")
    throw new LocalKeyInvalidError(source, `unsupported kty ${String(jwk.kty)} (EC, RSA)`);
  const normalised = { ...(jwk as JsonWebKey), ...(jwk.kty === "EC" ? { crv } : {}) };
  try {
    createPrivateKey({ key: normalised, format: "jwk" });
  } catch (error) {
    throw new LocalKeyInvalidError(source, "the key members do not form a valid key", error);
  }
  if (jwk.kty === "RSA" && Buffer.from(String(jwk.n), "base64url").length < 256)
    throw new LocalKeyInvalidError(source, "RSA keys must be 2048 bits or more");
  // A pair-wise consistency test (FIPS 140-3 style): sign with the private members, verify with the public ones.
  const algorithm = jwk.kty === "RSA" ? "RS256" : crv === "secp256k1" ? "ES256K" : "ES256";
  const probe = new Uint8Array(DIGEST_LENGTH).fill(0x5a);
  let consistent: boolean;
  try {
    consistent = verifyDigest(publicMembers(normalised), algorithm, probe, signDigest(normalised, algorithm, probe));
  } catch {
    consistent = false;
  }
  if (!consistent) throw new LocalKeyInvalidError(source, "the public members do not belong to the private key");
  return normalised;
}

function publicMembers(jwk: JsonWebKey): Record<string, string> {
  if (jwk.kty === "EC") return { kty: "EC", crv: jwk.crv as string, x: jwk.x as string, y: jwk.y as string };
  return { kty: "RSA", n: jwk.n as string, e: jwk.e as string };
}

/**
 * Creates a new private key and writes it as a JWK file with mode 0600 (for development).
 * @param file - where to write; an existing file is replaced (a local "rotation").
 * @param options - `curve` for EC keys (`secp256k1` for Ethereum signing, `P-256` for ES256), or `rsaModulusLength`.
 * @returns the public JWK written (without `d`).
 */
export async function generateLocalKeyFile(
  file: string,
  options: { curve: "secp256k1" | "P-256" } | { rsaModulusLength: 2048 | 3072 | 4096 },
): Promise<Record<string, string>> {
  const { privateKey } =
    "curve" in options
      ? generateKeyPairSync("ec", { namedCurve: options.curve })
      : generateKeyPairSync("rsa", { modulusLength: options.rsaModulusLength });
  const jwk = privateKey.export({ format: "jwk" });
  await writeFile(file, `${JSON.stringify(jwk)}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  return publicMembers(jwk);
}
