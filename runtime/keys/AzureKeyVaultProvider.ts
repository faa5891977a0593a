/**
 * The Azure Key Vault adapter of the {@link KeyProvider} port, on the real `@azure/keyvault-keys` SDK: the private
 * key never leaves the vault (or its HSM); this process only asks it to sign digests.
 *
 * @module
 */
import { DefaultAzureCredential } from "@azure/identity";
import type { TokenCredential } from "@azure/identity";
import { CryptographyClient, KeyClient } from "@azure/keyvault-keys";
import type { CryptographyClientOptions, KeyClientOptions, KeyVaultKey } from "@azure/keyvault-keys";
import type { JWK } from "jose";
import { isCryptletError, redactUrl } from "../errors.ts";
import {
  DEFAULT_DEPENDENCY_POLICIES,
  dependencyGuard,
  type DependencyGuard,
  type DependencyLogger,
  type DependencyPolicy,
} from "../resilience/dependency.ts";
import { DIGEST_LENGTH, algorithmFitsKey, joseCurveName } from "./digestSignature.ts";
import {
  KeyAccessDeniedError,
  KeyAlgorithmUnsupportedError,
  KeyDigestInvalidError,
  KeyNotFoundError,
  KeyProviderConfigError,
  KeyProviderUnavailableError,
  KeyRequestRejectedError,
} from "./errors.ts";
import { GuardedCredential } from "./guardedCredential.ts";
import type {
  KeyProvider,
  KeyWrapAlgorithm,
  ProviderSignature,
  PublicKeyInfo,
  SignatureAlgorithm,
  WrappedKey,
} from "./KeyProvider.ts";

/** Options of {@link AzureKeyVaultProvider}. */
export interface AzureKeyVaultProviderOptions {
  /** The vault URL, e.g. `https://my-vault.vault.azure.net` (the emulator's `vaultUrl` locally). */
  vaultUrl: string;
  /** The key name (1 to 127 letters, digits and dashes). */
  keyName: string;
  /**
   * Pin one key version (32 hex characters): the provider then signs with it even after the key rotates.
   * @defaultValue none: follow the latest version (see `latestVersionTtlMs`)
   */
  keyVersion?: string;
  /**
   * The Azure credential. @defaultValue `new GuardedCredential(new DefaultAzureCredential())` (managed identity in
   * Azure and with the emulator; token requests with a deadline, see `./guardedCredential.ts`)
   */
  credential?: TokenCredential;
  /**
   * Options passed unchanged to `KeyClient` and `CryptographyClient`, e.g. `retryOptions`, or for the emulator
   * `tlsOptions: {ca}` and `disableChallengeResourceVerification: true`.
   */
  clientOptions?: KeyClientOptions & CryptographyClientOptions;
  /**
   * When following the latest version: how long (ms) a resolved latest version is used before the vault is asked
   * again. After a rotation, call {@link AzureKeyVaultProvider.refresh} to switch at once. @defaultValue 60000
   */
  latestVersionTtlMs?: number;
  /**
   * Deadline, retries and circuit breaker of every request to the vault (ms; merged over
   * `DEFAULT_DEPENDENCY_POLICIES.keyVault`: 5000 ms per attempt, 3 attempts, breaker open after 5 consecutive
   * failures for 5000 ms). Ignored when `guard` is given, or when the process already has a guard for this vault.
   */
  policy?: Partial<DependencyPolicy>;
  /**
   * The guard of this vault. @defaultValue the process's guard named `key-vault:<vault origin>` (one breaker per
   * vault, shared by every provider of the process that uses it)
   */
  guard?: DependencyGuard;
  /** Where the guard logs its circuit opening and closing (once each). */
  logger?: DependencyLogger;
}

const KEY_NAME = /^[0-9a-zA-Z-]{1,127}$/;
const KEY_VERSION = /^[0-9a-f]{32}$/i;
const NETWORK_CODES = new Set([
  "REQUEST_SEND_ERROR",
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "ENOTFOUND",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
]);

/**
 * Signs with a key in Azure Key Vault through `CryptographyClient.sign` (REST "Sign", over a digest the caller
 * computed; Key Vault does not hash it again). Public keys are read with `KeyClient.getKey` and cached per version
 * (a version's public key never changes). Follows the latest key version, or a pinned one.
 *
 * Every request has a deadline and goes through the vault's circuit breaker (`options.policy`,
 * runtime/resilience/dependency.ts): a vault that accepts connections but never answers fails the call with
 * `ERR_DEPENDENCY_TIMEOUT` after `attempts × timeoutMs` plus backoff, and once the breaker is open, calls fail at
 * once with `ERR_DEPENDENCY_CIRCUIT_OPEN` until a trial call succeeds.
 *
 * Errors (all {@link CryptletError}s): `ERR_KEY_NOT_FOUND` (404), `ERR_KEY_ACCESS_DENIED` (401, 403, credential
 * failures), `ERR_KEY_PROVIDER_UNAVAILABLE` (retryable: network errors, 408, 429, 5xx, after the SDK's own
 * retries and the guard's), `ERR_DEPENDENCY_TIMEOUT` and `ERR_DEPENDENCY_CIRCUIT_OPEN` (retryable),
 * `ERR_KEY_ALGORITHM_UNSUPPORTED`, `ERR_KEY_DIGEST_INVALID`, `ERR_KEY_REQUEST_REJECTED` (other 4xx),
 * `ERR_KEY_PROVIDER_CONFIG_INVALID` (bad options, thrown by the constructor).
 *
 * @example
 * ```ts
 * import { keccak256, toUtf8Bytes, getBytes } from "ethers";
 * import { AzureKeyVaultProvider } from "./runtime/keys/AzureKeyVaultProvider.ts";
 *
 * // In Azure: the managed identity needs the "Key Vault Crypto User" role (get, sign) on the key.
 * const provider = new AzureKeyVaultProvider({ vaultUrl: "https://my-vault.vault.azure.net", keyName: "cryptlet-signer" });
 * const { jwk, keyId } = await provider.getPublicKey();
 * const { signature } = await provider.sign(getBytes(keccak256(toUtf8Bytes("hello"))), "ES256K");
 * ```
 */
export class AzureKeyVaultProvider implements KeyProvider {
  /** @inheritDoc */
  readonly kind = "azure-key-vault" as const;
  /** The vault URL as configured (no trailing slash). */
  readonly vaultUrl: string;
  /** The key name. */
  readonly keyName: string;
  /** The pinned version, or `undefined` when following the latest. */
  readonly pinnedVersion: string | undefined;

  readonly #credential: TokenCredential;
  readonly #clientOptions: KeyClientOptions & CryptographyClientOptions;
  readonly #keyClient: KeyClient;
  readonly #latestTtlMs: number;
  readonly #guard: DependencyGuard;
  readonly #byVersion = new Map<string, Promise<PublicKeyInfo>>();
  readonly #cryptoClients = new Map<string, CryptographyClient>();
  #latest: { info: Promise<PublicKeyInfo>; at: number } | undefined;

  /**
   * @param options - see {@link AzureKeyVaultProviderOptions}.
   * @throws KeyProviderConfigError (`ERR_KEY_PROVIDER_CONFIG_INVALID`) for a malformed vault URL, key name or version.
   */
  constructor(options: AzureKeyVaultProviderOptions) {
    let url: URL;
    try {
      url = new URL(options.vaultUrl);
    } catch {
      throw new KeyProviderConfigError("vaultUrl", `not a URL: ${redactUrl(String(options.vaultUrl))}`);
    }
    if (url.protocol !== "https:") throw new KeyProviderConfigError("vaultUrl", "Key Vault is reached over https only");
    if (!KEY_NAME.test(options.keyName))
      throw new KeyProviderConfigError(
        "keyName",
        `use 1 to 127 letters, digits and dashes, got "${String(options.keyName).slice(0, 130)}"`,
      );
    if (options.keyVersion !== undefined && !KEY_VERSION.test(options.keyVersion)) {
      throw new KeyProviderConfigError(
        "keyVersion",
        `a Key Vault key version is 32 hex characters, got "${String(options.keyVersion).slice(0, 64)}"`,
      );
    }
    this.vaultUrl = url.origin;
    this.keyName = options.keyName;
    this.pinnedVersion = options.keyVersion?.toLowerCase();
    this.#credential =
      options.credential ??
      new GuardedCredential(new DefaultAzureCredential(), options.logger ? { logger: options.logger } : {});
    this.#clientOptions = options.clientOptions ?? {};
    this.#keyClient = new KeyClient(this.vaultUrl, this.#credential, this.#clientOptions);
    this.#latestTtlMs = options.latestVersionTtlMs ?? 60_000;
    this.#guard =
      options.guard ??
      dependencyGuard({
        name: `key-vault:${this.vaultUrl}`,
        policy: { ...DEFAULT_DEPENDENCY_POLICIES.keyVault, ...options.policy },
        ...(options.logger ? { logger: options.logger } : {}),
      });
    // While the vault's breaker is open, reading this key's public part tells when the vault answers again.
    this.#guard.setProbe((signal) => this.#keyClient.getKey(this.keyName, { abortSignal: signal }));
  }

  /** The guard (deadline, retries, circuit breaker) of this provider's vault. */
  get guard(): DependencyGuard {
    return this.#guard;
  }

  /** Options for one SDK request under the guard: its abort signal and the same deadline as a request timeout. */
  #requestOptions(signal: AbortSignal) {
    return { abortSignal: signal, requestOptions: { timeout: this.#guard.policy.timeoutMs } };
  }

  /**
   * The public key of the version this provider signs with: the pinned version, or the latest (re-read from the
   * vault at most every `latestVersionTtlMs`).
   */
  async getPublicKey(): Promise<PublicKeyInfo> {
    if (this.pinnedVersion !== undefined) return this.getPublicKeyVersion(this.pinnedVersion);
    const now = Date.now();
    if (this.#latest === undefined || now - this.#latest.at > this.#latestTtlMs) {
      const info = this.#fetch(undefined);
      this.#latest = { info, at: now };
      info.catch(() => {
        if (this.#latest?.info === info) this.#latest = undefined;
      });
    }
    return this.#latest.info;
  }

  /**
   * The public key of one version (cached: a version's key material never changes).
   * @param version - a key version (32 hex characters).
   */
  async getPublicKeyVersion(version: string): Promise<PublicKeyInfo> {
    const normalised = version.toLowerCase();
    let cached = this.#byVersion.get(normalised);
    if (cached === undefined) {
      cached = this.#fetch(normalised);
      this.#byVersion.set(normalised, cached);
      cached.catch(() => this.#byVersion.delete(normalised));
    }
    return cached;
  }

  /**
   * The public keys of every enabled version, oldest first (for a JWKS that still verifies signatures of earlier
   * versions after a rotation).
   */
  async listPublicKeys(): Promise<PublicKeyInfo[]> {
    const versions = await this.#guard.call(async (signal) => {
      const found: string[] = [];
      try {
        for await (const properties of this.#keyClient.listPropertiesOfKeyVersions(
          this.keyName,
          this.#requestOptions(signal),
        )) {
          if (properties.enabled !== false && properties.version !== undefined) found.push(properties.version);
        }
      } catch (error) {
        throw this.#mapError(error, undefined);
      }
      return found;
    });
    return Promise.all(versions.map((v) => this.getPublicKeyVersion(v)));
  }

  /**
   * Forgets the resolved latest version, so the next call reads it from the vault (call after rotating the key).
   * No effect on a pinned provider.
   */
  refresh(): void {
    this.#latest = undefined;
  }

  /**
   * Wraps a data key with the current key version through `CryptographyClient.wrapKey` (Key Vault REST API 7.4+
   * "Wrap Key": `POST {vaultBaseUrl}/keys/{key-name}/{key-version}/wrapkey`, body `{alg, value}`; the SDK sends
   * RSA-OAEP-256 to the vault). The managed identity needs the `wrapKey` permission ("Key Vault Crypto User").
   * @inheritDoc
   */
  async wrapKey(key: Uint8Array, algorithm: KeyWrapAlgorithm): Promise<WrappedKey> {
    const info = await this.getPublicKey();
    if (algorithm !== "RSA-OAEP-256" || info.jwk.kty !== "RSA")
      throw new KeyAlgorithmUnsupportedError(algorithm, { kty: info.jwk.kty, keyId: info.keyId });
    const result = await this.#guard.call(async (signal) => {
      try {
        return await this.#cryptoClient(info.keyId).wrapKey(algorithm, key, this.#requestOptions(signal));
      } catch (error) {
        throw this.#mapError(error, info.version);
      }
    });
    return { wrappedKey: result.result, keyId: result.keyID ?? info.keyId, algorithm };
  }

  /**
   * Unwraps a data key with the version that wrapped it, through `CryptographyClient.unwrapKey` (Key Vault REST
   * API "Unwrap Key": `POST {vaultBaseUrl}/keys/{key-name}/{key-version}/unwrapkey`). Needs the `unwrapKey`
   * permission. Earlier versions unwrap as long as they stay enabled in the vault (see docs/keys.md, rotation).
   * @inheritDoc
   */
  async unwrapKey(wrapped: WrappedKey): Promise<Uint8Array> {
    const prefix = `${this.vaultUrl}/keys/${this.keyName}/`;
    const version = wrapped.keyId.startsWith(prefix) ? wrapped.keyId.slice(prefix.length) : "";
    if (!KEY_VERSION.test(version))
      throw new KeyNotFoundError(`${wrapped.keyId} (not a version of ${this.keyName} in ${this.vaultUrl})`, {
        vault: this.vaultUrl,
        keyName: this.keyName,
      });
    if (wrapped.algorithm !== "RSA-OAEP-256")
      throw new KeyAlgorithmUnsupportedError(wrapped.algorithm, { keyId: wrapped.keyId });
    const result = await this.#guard.call(async (signal) => {
      try {
        return await this.#cryptoClient(wrapped.keyId).unwrapKey(
          wrapped.algorithm,
          wrapped.wrappedKey,
          this.#requestOptions(signal),
        );
      } catch (error) {
        throw this.#mapError(error, version);
      }
    });
    return result.result;
  }

  #cryptoClient(keyId: string): CryptographyClient {
    let client = this.#cryptoClients.get(keyId);
    if (client === undefined) {
      client = new CryptographyClient(keyId, this.#credential, this.#clientOptions);
      this.#cryptoClients.set(keyId, client);
    }
    return client;
  }

  /**
   * A provider for the same key pinned to `version` (sharing this one's credential and client options).
   * @param version - a key version (32 hex characters); defaults to the version the latest resolves to now.
   */
  async pinned(version?: string): Promise<AzureKeyVaultProvider> {
    const target = version ?? (await this.getPublicKey()).version;
    return new AzureKeyVaultProvider({
      vaultUrl: this.vaultUrl,
      keyName: this.keyName,
      keyVersion: target,
      credential: this.#credential,
      clientOptions: this.#clientOptions,
      guard: this.#guard,
    });
  }

  /** @inheritDoc */
  async sign(digest: Uint8Array, algorithm: SignatureAlgorithm): Promise<ProviderSignature> {
    if (!(digest instanceof Uint8Array) || digest.length !== DIGEST_LENGTH) {
      throw new KeyDigestInvalidError(digest instanceof Uint8Array ? digest.length : typeof digest, DIGEST_LENGTH);
    }
    const info = await this.getPublicKey();
    if (!algorithmFitsKey(algorithm, info.jwk.kty, info.jwk.crv))
      throw new KeyAlgorithmUnsupportedError(algorithm, { ...info.jwk, keyId: info.keyId });
    const signer = this.#cryptoClient(info.keyId);
    const result = await this.#guard.call(async (signal) => {
      try {
        return await signer.sign(algorithm, digest, this.#requestOptions(signal));
      } catch (error) {
        throw this.#mapError(error, info.version);
      }
    });
    return { signature: result.result, keyId: result.keyID ?? info.keyId, algorithm };
  }

  async #fetch(version: string | undefined): Promise<PublicKeyInfo> {
    const key: KeyVaultKey = await this.#guard.call(async (signal) => {
      try {
        return await this.#keyClient.getKey(this.keyName, {
          ...this.#requestOptions(signal),
          ...(version === undefined ? {} : { version }),
        });
      } catch (error) {
        throw this.#mapError(error, version);
      }
    });
    return toPublicKeyInfo(key);
  }

  #mapError(error: unknown, version: string | undefined): Error {
    return mapKeyVaultError(error, { vault: this.vaultUrl, keyName: this.keyName, keyVersion: version });
  }
}

function b64(bytes: Uint8Array | undefined): string | undefined {
  return bytes === undefined ? undefined : Buffer.from(bytes).toString("base64url");
}

/** The port's view of a `KeyVaultKey`: JOSE names (`secp256k1` for Key Vault's `P-256K`), public members only. */
function toPublicKeyInfo(key: KeyVaultKey): PublicKeyInfo {
  const material = key.key;
  const kid = key.id ?? material?.kid;
  if (material === undefined || kid === undefined || key.properties.version === undefined) {
    throw new KeyRequestRejectedError("the vault returned a key without key material", { keyName: key.name });
  }
  const kty = String(material.kty ?? "").replace(/-HSM$/, "");
  const jwk: JWK =
    kty === "EC"
      ? {
          kty,
          crv: joseCurveName(material.crv) as string,
          x: b64(material.x) as string,
          y: b64(material.y) as string,
          kid,
        }
      : { kty, n: b64(material.n) as string, e: b64(material.e) as string, kid };
  return { keyId: kid, name: key.name, version: key.properties.version, jwk };
}

/**
 * Maps an error from the Azure SDK (a `RestError`, a network error, or an `@azure/identity` credential error) to
 * the provider's typed errors.
 * @param context - vault, key name and version, for the error's details.
 */
export function mapKeyVaultError(
  error: unknown,
  context: { vault: string; keyName: string; keyVersion?: string | undefined },
): Error {
  if (isCryptletError(error)) return error as Error;
  const { statusCode, code, name } = (typeof error === "object" && error !== null ? error : {}) as {
    statusCode?: unknown;
    code?: unknown;
    name?: unknown;
  };
  const details: Record<string, unknown> = { vault: context.vault, keyName: context.keyName };
  if (context.keyVersion !== undefined) details.keyVersion = context.keyVersion;
  if (typeof statusCode === "number") details.status = statusCode;
  if (typeof code === "string") details.serviceCode = code;
  const what = `${context.keyName}${context.keyVersion === undefined ? "" : `/${context.keyVersion}`} in ${context.vault}`;
  if (typeof statusCode === "number") {
    if (statusCode === 404) return new KeyNotFoundError(what, details, error);
    if (statusCode === 401 || statusCode === 403) return new KeyAccessDeniedError(what, details, error);
    if (statusCode === 408 || statusCode === 429 || statusCode >= 500)
      return new KeyProviderUnavailableError(what, details, error);
    return new KeyRequestRejectedError(what, details, error);
  }
  if (typeof code === "string" && NETWORK_CODES.has(code)) return new KeyProviderUnavailableError(what, details, error);
  if (
    typeof name === "string" &&
    /CredentialUnavailableError|AuthenticationError|AggregateAuthenticationError/.test(name)
  ) {
    return new KeyAccessDeniedError(`${what}: no usable Azure credential`, { ...details, reason: "credential" }, error);
  }
  return new KeyProviderUnavailableError(what, details, error);
}
