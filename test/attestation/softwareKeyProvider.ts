/**
 * A P-256 {@link KeyProvider} for tests, until runtime/keys' LocalKeyProvider is used here: it signs a caller-given
 * digest (no second hash) with @noble/curves (an ethers dependency), returning raw r||s like Key Vault, and can
 * return a high-s signature on purpose. Test-only: the private key lives in memory.
 */
import { p256 } from "@noble/curves/p256";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from "jose";

import type {
  KeyProvider,
  ProviderSignature,
  PublicKeyInfo,
  SignatureAlgorithm,
} from "../../runtime/keys/KeyProvider.ts";

export class SoftwareP256Provider implements KeyProvider {
  readonly kind = "local" as const;
  readonly name: string;
  #privateJwk: JWK;
  #info: PublicKeyInfo | undefined;

  constructor(name: string, privateJwk: JWK) {
    this.name = name;
    this.#privateJwk = privateJwk;
  }

  static async generate(name: string): Promise<SoftwareP256Provider> {
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    return new SoftwareP256Provider(name, await exportJWK(privateKey));
  }

  async getPublicKey(): Promise<PublicKeyInfo> {
    if (this.#info === undefined) {
      const { kty, crv, x, y } = this.#privateJwk;
      const jwk: JWK = { kty, crv, x, y };
      const version = await calculateJwkThumbprint(jwk, "sha256");
      const keyId = `local:${this.name}/${version}`;
      this.#info = { keyId, name: this.name, version, jwk: { ...jwk, kid: keyId } };
    }
    return this.#info;
  }

  async sign(digest: Uint8Array, algorithm: SignatureAlgorithm): Promise<ProviderSignature> {
    if (algorithm !== "ES256") throw new Error(`unsupported ${algorithm}`);
    const d = Buffer.from(this.#privateJwk.d ?? "", "base64url");
    const signature = p256.sign(digest, d, { lowS: false, prehash: false }).toCompactRawBytes();
    return { signature, keyId: (await this.getPublicKey()).keyId, algorithm };
  }
}
