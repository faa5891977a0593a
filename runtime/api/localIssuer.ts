/**
 * The local token issuer of the dev stack: an ES256 (ECDSA P-256, RFC 7518 §3.4) signing key, generated at start
 * or loaded from a private JWK file, that mints access tokens (RFC 9068-style JWTs, `typ: at+jwt`) for given
 * roles and publishes its public JWK Set, so the dev stack and the tests go through the same JWT verification
 * as production (only the issuer differs). Not for production: anyone with the key file can mint admin tokens.
 *
 * @module
 */
import { randomUUID } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";

import { Router } from "express";
import {
  SignJWT,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  type CryptoKey,
  type JSONWebKeySet,
  type JWK,
} from "jose";

import { CryptletError } from "../errors.ts";
import type { AuthOptions, Role } from "./auth.ts";
import { ERR_LOCAL_ISSUER_KEY_INVALID } from "./errors.ts";

/** Default `iss` of the local issuer. */
export const LOCAL_ISSUER = "urn:cryptlet:local-issuer";
/** Default `aud` of tokens for the runtime API. */
export const DEFAULT_API_AUDIENCE = "cryptlet-runtime-api";

/** What {@link LocalIssuer.mint} puts in a token. */
export interface MintOptions {
  /** `sub`. Default `dev-<role>`. */
  subject?: string;
  /** The `roles` claim. */
  roles: readonly (Role | string)[];
  /** Lifetime in seconds. Default 3600. A negative value mints an already-expired token (for tests). */
  ttlSeconds?: number;
  /** Override `aud` (tests of wrong audiences). */
  audience?: string;
  /** Override `iss` (tests of wrong issuers). */
  issuer?: string;
  /** Entra-style tenant id claim `tid`. */
  tenantId?: string;
  /** Extra claims. */
  claims?: Record<string, unknown>;
}

/**
 * A local ES256 token issuer.
 *
 * @example
 * ```ts
 * import { LocalIssuer } from "./runtime/api/localIssuer.ts";
 * import { createApiApp } from "./runtime/api/app.ts";
 *
 * const issuer = await LocalIssuer.create({ keyFile: ".cryptlet/issuer-key.json" });
 * const app = createApiApp({ ...deps, auth: issuer.authOptions(), localIssuer: issuer });
 * const token = await issuer.mint({ roles: ["operator"] });
 * // curl -H "Authorization: Bearer $token" …
 * ```
 */
export class LocalIssuer {
  readonly issuer: string;
  readonly audience: string;
  readonly #privateKey: CryptoKey;
  readonly #publicJwk: JWK;

  private constructor(issuer: string, audience: string, privateKey: CryptoKey, publicJwk: JWK) {
    this.issuer = issuer;
    this.audience = audience;
    this.#privateKey = privateKey;
    this.#publicJwk = publicJwk;
  }

  /**
   * Creates the issuer. With `keyFile`, the private JWK there is loaded, or generated and written (mode 0600)
   * when the file does not exist.
   * @throws CryptletError `ERR_LOCAL_ISSUER_KEY_INVALID` when the file is not an EC P-256 private JWK.
   */
  static async create(options: { issuer?: string; audience?: string; keyFile?: string } = {}): Promise<LocalIssuer> {
    let privateJwk: JWK | undefined;
    if (options.keyFile) {
      try {
        privateJwk = JSON.parse(await readFile(options.keyFile, "utf8")) as JWK;
      } catch (error) {
        if ((error as { code?: string }).code !== "ENOENT") {
          throw new CryptletError(ERR_LOCAL_ISSUER_KEY_INVALID, `cannot read issuer key ${options.keyFile}`, {
            details: { keyFile: options.keyFile },
          });
        }
      }
    }
    if (privateJwk === undefined) {
      const pair = await generateKeyPair("ES256", { extractable: true });
      privateJwk = await exportJWK(pair.privateKey);
      if (options.keyFile) await writeFile(options.keyFile, JSON.stringify(privateJwk), { mode: 0o600 });
    }
    if (privateJwk.kty !== "EC" || privateJwk.crv !== "P-256" || typeof privateJwk.d !== "string") {
      throw new CryptletError(ERR_LOCAL_ISSUER_KEY_INVALID, "issuer key must be an EC P-256 private JWK", {
        details: { keyFile: options.keyFile ?? null },
      });
    }
    const { d: _d, ...publicMembers } = privateJwk;
    const kid = await calculateJwkThumbprint(publicMembers);
    const publicJwk: JWK = {
      kty: "EC",
      crv: "P-256",
      x: publicMembers.x,
      y: publicMembers.y,
      kid,
      alg: "ES256",
      use: "sig",
    };
    const privateKey = (await importJWK({ ...privateJwk, alg: "ES256" }, "ES256")) as CryptoKey;
    return new LocalIssuer(
      options.issuer ?? LOCAL_ISSUER,
      options.audience ?? DEFAULT_API_AUDIENCE,
      privateKey,
      publicJwk,
    );
  }

  /** The public JWK Set (RFC 7517 §5). */
  jwks(): JSONWebKeySet {
    return { keys: [{ ...this.#publicJwk }] };
  }

  /** Mints a signed access token (compact JWS). */
  async mint(options: MintOptions): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const ttl = options.ttlSeconds ?? 3600;
    const jwt = new SignJWT({
      roles: [...options.roles],
      ...(options.tenantId === undefined ? {} : { tid: options.tenantId }),
      ...options.claims,
    })
      .setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid: this.#publicJwk.kid as string })
      .setIssuer(options.issuer ?? this.issuer)
      .setAudience(options.audience ?? this.audience)
      .setSubject(options.subject ?? `dev-${options.roles[0] ?? "anonymous"}`)
      .setJti(randomUUID())
      .setIssuedAt(ttl < 0 ? now + ttl - 60 : now)
      .setExpirationTime(now + ttl);
    return jwt.sign(this.#privateKey);
  }

  /** The {@link AuthOptions} that accept this issuer's tokens (keys inline). */
  authOptions(): AuthOptions {
    return { issuer: this.issuer, audience: this.audience, jwks: this.jwks(), algorithms: ["ES256"] };
  }

  /**
   * An express router serving `GET /jwks.json` and, when `baseUrl` is given, `GET /.well-known/openid-configuration`
   * (issuer and `jwks_uri` only, OpenID Connect Discovery 1.0 §3), so other processes can verify this issuer's
   * tokens by URL. The `jwks_uri` is built from the configured `baseUrl` only, never from the request's `Host`
   * header (which a client chooses).
   * @param baseUrl - absolute URL where this router is mounted, e.g. `http://127.0.0.1:8080/local-issuer`.
   */
  router(baseUrl?: string): Router {
    const router = Router();
    router.get("/jwks.json", (_req, res) => {
      res.json(this.jwks());
    });
    if (baseUrl !== undefined) {
      const jwksUri = new URL(`${baseUrl.replace(/\/$/, "")}/jwks.json`).href;
      router.get("/.well-known/openid-configuration", (_req, res) => {
        res.json({ issuer: this.issuer, jwks_uri: jwksUri, id_token_signing_alg_values_supported: ["ES256"] });
      });
    }
    return router;
  }
}
