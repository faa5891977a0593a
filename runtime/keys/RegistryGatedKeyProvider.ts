/**
 * A key provider that follows a Key Vault key's versions only as fast as the chains trust them: after a rotation
 * it keeps signing with the version it has until every configured `CryptletRegistry` trusts the new version's
 * address (`rotateSigner(old, new)` landed), then switches, without a restart. See docs/operations.md, "Rotating a
 * signer key".
 *
 * @module
 */
import type { AzureKeyVaultProvider } from "./AzureKeyVaultProvider.ts";
import type {
  KeyProvider,
  KeyWrapAlgorithm,
  ProviderSignature,
  PublicKeyInfo,
  SignatureAlgorithm,
  WrappedKey,
} from "./KeyProvider.ts";
import { KeyVaultSigner } from "./KeyVaultSigner.ts";

/** What the gated provider needs of a Key Vault provider that follows the latest version. */
export type FollowingKeyProvider = Pick<
  AzureKeyVaultProvider,
  "getPublicKey" | "refresh" | "pinned" | "listPublicKeys" | "unwrapKey"
>;

/** A logger (pino-compatible subset). */
interface GateLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/** Options of {@link RegistryGatedKeyProvider}. */
export interface RegistryGatedKeyProviderOptions {
  /** The key, following its latest version (not pinned). */
  inner: FollowingKeyProvider;
  /**
   * Whether every chain that checks proofs trusts `address` now (e.g. `CryptletRegistry.isSigner` on each chain
   * with a registry). Throwing counts as "not known": the provider keeps its version and asks again later.
   * @param address - EIP-55 address of a key version.
   */
  isTrusted(address: string): Promise<boolean>;
  /**
   * How often (ms) the latest version is read from the vault (and, when it is new, its address checked against the
   * chains). The check runs in the background of `getPublicKey`, never delaying a signature. @defaultValue 5000
   */
  checkIntervalMs?: number;
  logger?: GateLogger;
}

/** The Ethereum address of a secp256k1 key version (through the signer's own derivation). */
async function addressOf(provider: KeyProvider): Promise<string> {
  return new KeyVaultSigner(provider).getAddress();
}

/**
 * Signs with one pinned version of a Key Vault key at a time, and moves to the key's latest version only once
 * `isTrusted(address of the latest)` holds:
 *
 * - **At start** (first use): the latest version if it is trusted; otherwise the newest enabled version that is
 *   (`listPublicKeys`, the `list` permission); if none is, the latest (as an ungated provider would, logged).
 * - **While running**: at most every `checkIntervalMs`, in the background, the latest version is read again
 *   (`refresh()` of the inner provider); a version other than the active one becomes active when trusted.
 *   {@link RegistryGatedKeyProvider.check} does the same at once (the write stage calls it when a chain refused a
 *   signature of a signer it no longer trusts).
 *
 * So between the new version's creation in the vault and `rotateSigner` landing, results keep being signed by the
 * old version, which the chains still accept; afterwards by the new one. A result signed by the old version and
 * written after `rotateSigner` is refused by the registry (`CryptletProofUntrustedSigner`); the write stage signs
 * it again (runtime/queue/processors/write.ts).
 *
 * Errors: those of the inner provider (`ERR_KEY_*`), from `getPublicKey` and `sign` when the active version cannot
 * be resolved or used. A failing background check is logged and retried at the next interval.
 */
export class RegistryGatedKeyProvider implements KeyProvider {
  /** @inheritDoc */
  readonly kind = "azure-key-vault" as const;
  readonly #inner: FollowingKeyProvider;
  readonly #isTrusted: (address: string) => Promise<boolean>;
  readonly #intervalMs: number;
  readonly #logger: GateLogger | undefined;
  #active: Promise<KeyProvider> | undefined;
  #lastCheck = 0;
  #checking: Promise<boolean> | undefined;
  readonly #pinned = new Map<string, Promise<KeyProvider>>();

  /** @param options - see {@link RegistryGatedKeyProviderOptions}. */
  constructor(options: RegistryGatedKeyProviderOptions) {
    this.#inner = options.inner;
    this.#isTrusted = options.isTrusted;
    this.#intervalMs = options.checkIntervalMs ?? 5000;
    this.#logger = options.logger;
  }

  /** The version signing now (resolved at first use, see the class description). */
  async #activeProvider(): Promise<KeyProvider> {
    if (this.#active === undefined) {
      const chosen = this.#initial();
      this.#active = chosen;
      this.#lastCheck = Date.now();
      chosen.catch(() => {
        if (this.#active === chosen) this.#active = undefined;
      });
    }
    return this.#active;
  }

  /** The inner key pinned to `version` (one provider per version, so each version's public key is read once). */
  async #pinnedTo(version: string): Promise<KeyProvider> {
    let pinned = this.#pinned.get(version);
    if (pinned === undefined) {
      pinned = this.#inner.pinned(version);
      this.#pinned.set(version, pinned);
      pinned.catch(() => this.#pinned.delete(version));
    }
    return pinned;
  }

  async #initial(): Promise<KeyProvider> {
    const latest = await this.#pinnedTo((await this.#inner.getPublicKey()).version);
    if (await this.#trusted(await addressOf(latest))) return latest;
    let versions: PublicKeyInfo[] = [];
    try {
      versions = await this.#inner.listPublicKeys();
    } catch (error) {
      this.#logger?.warn({ err: String(error) }, "cannot list the key's versions; signing with the latest");
    }
    for (const info of versions.reverse()) {
      const candidate = await this.#pinnedTo(info.version);
      if (await this.#trusted(await addressOf(candidate))) return candidate;
    }
    this.#logger?.warn(
      { keyId: (await latest.getPublicKey()).keyId },
      "no version of the key is trusted by the registries yet; signing with the latest",
    );
    return latest;
  }

  async #trusted(address: string): Promise<boolean> {
    try {
      return await this.#isTrusted(address);
    } catch (error) {
      this.#logger?.warn({ err: String(error), address }, "cannot read whether the registries trust a signer");
      return false;
    }
  }

  /**
   * Reads the key's latest version from the vault now and makes it the active one if the chains trust its address.
   * Concurrent calls share one check.
   * @returns whether the active version changed.
   */
  async check(): Promise<boolean> {
    this.#checking ??= this.#check().finally(() => {
      this.#checking = undefined;
    });
    return this.#checking;
  }

  async #check(): Promise<boolean> {
    this.#lastCheck = Date.now();
    const active = await this.#activeProvider();
    this.#inner.refresh();
    const latest = await this.#inner.getPublicKey();
    const current = await active.getPublicKey();
    if (latest.version === current.version) return false;
    const candidate = await this.#pinnedTo(latest.version);
    const address = await addressOf(candidate);
    if (!(await this.#trusted(address))) return false;
    this.#active = Promise.resolve(candidate);
    this.#logger?.info(
      { from: current.keyId, to: latest.keyId, address },
      "the registries trust the key's new version: signing with it",
    );
    return true;
  }

  /** @inheritDoc The active version's public key; starts a background check when `checkIntervalMs` has passed. */
  async getPublicKey(): Promise<PublicKeyInfo> {
    const active = await this.#activeProvider();
    if (this.#checking === undefined && Date.now() - this.#lastCheck >= this.#intervalMs) {
      this.check().catch((error: unknown) =>
        this.#logger?.warn({ err: String(error) }, "checking the key's latest version failed"),
      );
    }
    return active.getPublicKey();
  }

  /** @inheritDoc Signs with the active version. */
  async sign(digest: Uint8Array, algorithm: SignatureAlgorithm): Promise<ProviderSignature> {
    return (await this.#activeProvider()).sign(digest, algorithm);
  }

  /** @inheritDoc Wraps with the active version. */
  async wrapKey(key: Uint8Array, algorithm: KeyWrapAlgorithm): Promise<WrappedKey> {
    return (await this.#activeProvider()).wrapKey(key, algorithm);
  }

  /** @inheritDoc Unwraps with the version that wrapped. */
  async unwrapKey(wrapped: WrappedKey): Promise<Uint8Array> {
    return this.#inner.unwrapKey(wrapped);
  }
}

/**
 * Makes every gated provider among `signers` check the key's latest version now ({@link
 * RegistryGatedKeyProvider.check}); other signers are left alone.
 * @returns whether any active version changed.
 */
export async function checkGatedSigners(signers: readonly unknown[]): Promise<boolean> {
  let changed = false;
  for (const signer of signers) {
    const provider = (signer as { keyProvider?: unknown }).keyProvider;
    if (provider instanceof RegistryGatedKeyProvider && (await provider.check())) changed = true;
  }
  return changed;
}
