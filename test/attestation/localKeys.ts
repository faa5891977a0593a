/** Local P-256 attestation keys for tests, through the real {@link LocalKeyProvider} (development adapter). */
import { generateKeyPairSync } from "node:crypto";

import type { JWK } from "jose";

import { LocalKeyProvider } from "../../runtime/keys/LocalKeyProvider.ts";

/** A provider over the given private JWK (EC P-256), named `name` in its keyId (`local:{name}/{thumbprint}`). */
export function localP256Provider(name: string, privateJwk: JWK): LocalKeyProvider {
  return new LocalKeyProvider({ jwk: privateJwk, name, production: false });
}

/** A fresh P-256 key and its provider. */
export function generateLocalP256(name: string): { provider: LocalKeyProvider; privateJwk: JWK } {
  const privateJwk = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "jwk" }) as JWK;
  return { provider: localP256Provider(name, privateJwk), privateJwk };
}
