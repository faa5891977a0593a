/**
 * An ethers v6 signer over any {@link KeyProvider} with a secp256k1 key (Azure Key Vault `P-256K`, or a local key):
 * Ethereum transactions, EIP-191 messages and EIP-712 typed data signed by a key this process never holds.
 *
 * @module
 */
import {
  AbstractSigner,
  Signature,
  Transaction,
  TypedDataEncoder,
  assertArgument,
  computeAddress,
  copyRequest,
  getAddress,
  getBytes,
  hashMessage,
  hexlify,
  resolveAddress,
  resolveProperties,
} from "ethers";
import type { Provider, TransactionRequest, TypedDataDomain, TypedDataField } from "ethers";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { recoveryIdOf } from "../attestation/secp256k1.ts";
import { KeyAlgorithmUnsupportedError, SignerKeyMismatchError } from "./errors.ts";
import type { KeyProvider, PublicKeyInfo } from "./KeyProvider.ts";

const N = secp256k1.CURVE.n;
const HALF_N = N >> 1n;

/**
 * An ethers `AbstractSigner` whose key lives behind a {@link KeyProvider}. Each signature is one `ES256K` sign
 * call over a 32-byte digest; the provider's raw `r‖s` is made Ethereum-canonical here: `s` is normalised to the
 * low half of the curve order (EIP-2: `s' = n − s`), and `v` (the y-parity, 27/28 or EIP-155/EIP-2718 as the
 * format needs) is the parity of the signature's nonce point: the recovery id with which libsecp256k1 recovers the
 * key's own public key from the signature (at most two recoveries, which also check that the signature is the
 * key's). Works unchanged with ethers contracts and providers (`contract.connect(signer)`,
 * `signer.sendTransaction`).
 *
 * When the provider follows the latest key version, the address changes with a rotation; the address of a
 * signature is always the address of the version that made it (`ProviderSignature.keyId`).
 *
 * Errors: `ERR_KEY_ALGORITHM_UNSUPPORTED` (the key is not secp256k1), `ERR_SIGNER_KEY_MISMATCH` (the signature does
 * not recover to the key's address), the provider's errors (`ERR_KEY_*`), and ethers' argument errors (e.g. a
 * transaction `from` that is not this signer).
 *
 * @example
 * ```ts
 * import { JsonRpcProvider, parseEther } from "ethers";
 * import { AzureKeyVaultProvider } from "./runtime/keys/AzureKeyVaultProvider.ts";
 * import { KeyVaultSigner } from "./runtime/keys/KeyVaultSigner.ts";
 *
 * const keys = new AzureKeyVaultProvider({ vaultUrl: "https://my-vault.vault.azure.net", keyName: "eth-signer" });
 * const signer = new KeyVaultSigner(keys, new JsonRpcProvider("http://127.0.0.1:8545"));
 * const tx = await signer.sendTransaction({ to: "0x000000000000000000000000000000000000dEaD", value: parseEther("0.01") });
 * ```
 */
export class KeyVaultSigner extends AbstractSigner {
  /** The key provider that signs. */
  readonly keyProvider: KeyProvider;
  readonly #addresses = new Map<string, string>();
  readonly #publicKeys = new Map<string, Uint8Array>();

  /**
   * @param keyProvider - any provider whose key is secp256k1 (`ES256K`).
   * @param provider - the ethers provider for sending and reading; `null` for offline signing.
   */
  constructor(keyProvider: KeyProvider, provider: Provider | null = null) {
    super(provider);
    this.keyProvider = keyProvider;
  }

  /** The Ethereum address of the provider's current key version (keccak256 of the public key, last 20 bytes). */
  async getAddress(): Promise<string> {
    return this.#addressOf(await this.keyProvider.getPublicKey());
  }

  /** A signer over the same key provider, connected to `provider`. */
  connect(provider: Provider | null): KeyVaultSigner {
    return new KeyVaultSigner(this.keyProvider, provider);
  }

  /**
   * Signs a 32-byte digest: one provider `ES256K` call, then low-s normalisation (EIP-2) and `v` by recovery.
   * @param digest - 32 bytes (hex or bytes), e.g. an EIP-712 digest from `cryptletResultDigest`.
   * @returns the canonical signature (`signature.serialized` is the 65-byte `r‖s‖v` hex).
   */
  async signDigest(digest: string | Uint8Array): Promise<Signature> {
    return (await this.signDigestWithKey(digest)).signature;
  }

  /**
   * Like {@link KeyVaultSigner.signDigest}, also returning the key id (with version) and the address that signed,
   * for proof bundles that record which key version made a signature.
   */
  async signDigestWithKey(
    digest: string | Uint8Array,
  ): Promise<{ signature: Signature; keyId: string; address: string }> {
    const bytes = getBytes(digest, "digest");
    assertArgument(bytes.length === 32, "digest must be 32 bytes", "digest", hexlify(bytes));
    let info = await this.keyProvider.getPublicKey();
    if (info.jwk.kty !== "EC" || info.jwk.crv !== "secp256k1") {
      throw new KeyAlgorithmUnsupportedError("ES256K", { kty: info.jwk.kty, crv: info.jwk.crv, keyId: info.keyId });
    }
    const signed = await this.keyProvider.sign(bytes, "ES256K");
    if (signed.keyId !== info.keyId) {
      // The provider moved to another version (rotation) between the two calls: use the version that signed.
      info = await this.keyProvider.getPublicKey();
      if (signed.keyId !== info.keyId) {
        throw new SignerKeyMismatchError("the provider signed with a key version it does not report", {
          signedBy: signed.keyId,
          reported: info.keyId,
        });
      }
    }
    const raw = signed.signature;
    if (raw.length !== 64)
      throw new SignerKeyMismatchError("an ES256K signature must be 64 bytes r||s", {
        length: raw.length,
        keyId: signed.keyId,
      });
    const r = hexlify(raw.subarray(0, 32));
    let s = BigInt(hexlify(raw.subarray(32)));
    if (s > HALF_N) s = N - s;
    const sHex = `0x${s.toString(16).padStart(64, "0")}`;
    const address = this.#addressOf(info);
    // v is the parity of the nonce point R: the recovery id with which the signature recovers the key's own public
    // key (libsecp256k1, runtime/attestation/secp256k1.ts). Finding one also proves the signature is the key's.
    const recovery = recoveryIdOf(bytes, BigInt(r), s, this.#publicKeyOf(info));
    if (recovery === undefined) {
      throw new SignerKeyMismatchError("the signature does not verify with the key", { keyId: signed.keyId, address });
    }
    const signature = Signature.from({ r, s: sHex, v: recovery === 1 ? 28 : 27 });
    return { signature, keyId: signed.keyId, address };
  }

  /** Signs a transaction (legacy, EIP-2930, EIP-1559, ...): the unsigned serialisation's keccak256, then RLP with the signature. */
  async signTransaction(tx: TransactionRequest): Promise<string> {
    const request = copyRequest(tx);
    const { to, from } = await resolveProperties({
      to: request.to ? resolveAddress(request.to, this) : undefined,
      from: request.from ? resolveAddress(request.from, this) : undefined,
    });
    if (to != null) request.to = to;
    if (from != null) {
      assertArgument(
        getAddress(from) === (await this.getAddress()),
        "transaction from address mismatch",
        "tx.from",
        from,
      );
    }
    delete request.from;
    const unsigned = Transaction.from(request as Parameters<typeof Transaction.from>[0]);
    unsigned.signature = await this.signDigest(unsigned.unsignedHash);
    return unsigned.serialized;
  }

  /** Signs an EIP-191 personal message (`"\x19Ethereum Signed Message:\n" + length + message`). */
  async signMessage(message: string | Uint8Array): Promise<string> {
    return (await this.signDigest(hashMessage(message))).serialized;
  }

  /** Signs EIP-712 typed data (ENS names in the data are resolved through the connected provider). */
  async signTypedData(
    domain: TypedDataDomain,
    types: Record<string, TypedDataField[]>,
    value: Record<string, unknown>,
  ): Promise<string> {
    const populated = await TypedDataEncoder.resolveNames(domain, types, value, async (name: string) => {
      if (this.provider === null) throw new Error(`cannot resolve the ENS name ${name} without a provider`);
      const address = await this.provider.resolveName(name);
      if (address === null) throw new Error(`the ENS name ${name} is not configured`);
      return address;
    });
    return (await this.signDigest(TypedDataEncoder.hash(populated.domain, types, populated.value))).serialized;
  }

  /** The key's uncompressed SEC 1 public key (65 bytes), from its JWK. */
  #publicKeyOf(info: PublicKeyInfo): Uint8Array {
    let key = this.#publicKeys.get(info.keyId);
    if (key === undefined) {
      const { x, y } = info.jwk;
      key = Buffer.concat([Buffer.from([4]), Buffer.from(String(x), "base64url"), Buffer.from(String(y), "base64url")]);
      this.#publicKeys.set(info.keyId, key);
    }
    return key;
  }

  #addressOf(info: PublicKeyInfo): string {
    let address = this.#addresses.get(info.keyId);
    if (address === undefined) {
      const { x, y } = info.jwk;
      if (info.jwk.kty !== "EC" || info.jwk.crv !== "secp256k1" || typeof x !== "string" || typeof y !== "string") {
        throw new KeyAlgorithmUnsupportedError("ES256K", { kty: info.jwk.kty, crv: info.jwk.crv, keyId: info.keyId });
      }
      address = computeAddress(
        `0x04${Buffer.from(x, "base64url").toString("hex")}${Buffer.from(y, "base64url").toString("hex")}`,
      );
      this.#addresses.set(info.keyId, address);
    }
    return address;
  }
}
