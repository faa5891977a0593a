/**
 * Access tokens of the Key Vault emulator: JWTs (RFC 7519, HS256 with the emulator's own secret) issued by its
 * managed-identity endpoint and accepted only by the same emulator (or a restart of it that keeps its store file).
 * Claims follow Microsoft Entra ID access tokens: `aud` (the resource, `https://vault.azure.net`), `iss`
 * (`https://sts.windows.net/{tenant}/`), `tid`, `appid` and `oid` (the managed identity), `iat`, `nbf`, `exp`.
 *
 * @module
 */
import { SignJWT, jwtVerify, errors as joseErrors } from "jose";

/** The resource (audience) that Key Vault tokens are issued for. */
export const KEY_VAULT_RESOURCE = "https://vault.azure.net";

/** What an accepted token says. */
export interface AccessTokenClaims {
  /** The managed identity's client id. */
  clientId: string;
  /** Expiry in Unix seconds. */
  expiresOn: number;
}

/** Why a token was refused, with the AKV error text the real service uses. */
export class AccessTokenRefusal extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AccessTokenRefusal";
  }
}

/** Issues and checks the emulator's access tokens. */
export class AccessTokenIssuer {
  readonly #secret: Uint8Array;
  readonly #tenantId: string;
  readonly #lifetimeSeconds: number;

  /**
   * @param secret - HMAC key, 32 bytes.
   * @param tenantId - the tenant (a UUID) named in `iss` and `tid`.
   * @param lifetimeSeconds - token lifetime in seconds (real Entra tokens live 60 to 90 minutes).
   */
  constructor(secret: Uint8Array, tenantId: string, lifetimeSeconds: number) {
    this.#secret = secret;
    this.#tenantId = tenantId;
    this.#lifetimeSeconds = lifetimeSeconds;
  }

  /** Issues a token for `resource` to the managed identity `clientId`. */
  async issue(resource: string, clientId: string): Promise<{ token: string; expiresOn: number }> {
    const now = Math.floor(Date.now() / 1000);
    const expiresOn = now + this.#lifetimeSeconds;
    const token = await new SignJWT({ tid: this.#tenantId, appid: clientId, oid: clientId, idtyp: "app" })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setIssuer(this.#issuer())
      .setAudience(resource)
      .setSubject(clientId)
      .setIssuedAt(now)
      .setNotBefore(now - 300)
      .setExpirationTime(expiresOn)
      .sign(this.#secret);
    return { token, expiresOn };
  }

  /**
   * Checks a bearer token for Key Vault.
   * @throws AccessTokenRefusal with the service's AKV message when the token is malformed, forged, expired, or for
   *   another audience.
   */
  async verify(token: string): Promise<AccessTokenClaims> {
    try {
      const { payload } = await jwtVerify(token, this.#secret, { issuer: this.#issuer(), algorithms: ["HS256"] });
      if (payload.aud !== KEY_VAULT_RESOURCE && payload.aud !== `${KEY_VAULT_RESOURCE}/`) {
        throw new AccessTokenRefusal(
          `AKV10022: Invalid audience. Expected ${KEY_VAULT_RESOURCE}, found: ${String(payload.aud)}.`,
        );
      }
      return { clientId: String(payload.appid), expiresOn: payload.exp ?? 0 };
    } catch (error) {
      if (error instanceof AccessTokenRefusal) throw error;
      if (error instanceof joseErrors.JWTExpired)
        throw new AccessTokenRefusal("AKV10016: Token validation failed: token expired.");
      if (error instanceof joseErrors.JWTClaimValidationFailed)
        throw new AccessTokenRefusal("AKV10032: Invalid issuer.");
      throw new AccessTokenRefusal("AKV10012: Token could not be validated.");
    }
  }

  #issuer(): string {
    return `https://sts.windows.net/${this.#tenantId}/`;
  }
}
