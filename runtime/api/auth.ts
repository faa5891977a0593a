/**
 * Bearer authentication (RFC 6750) with JWTs (RFC 7519) from an OpenID Connect issuer, verified with jose
 * against the issuer's JWK Set, and role-based authorisation.
 *
 * - **Issuer and audience** are configured; several issuers may be accepted (Entra ID v1 `https://sts.windows.net/<tid>/`
 *   and v2 `https://login.microsoftonline.com/<tid>/v2.0`).
 * - **Keys**: a JWK Set given inline (the dev stack's local issuer), a `jwksUri`, or OIDC discovery
 *   (`<issuer>/.well-known/openid-configuration` → `jwks_uri`, OpenID Connect Discovery 1.0 §4). Remote sets are
 *   cached and refreshed by jose's `createRemoteJWKSet` (a new `kid` triggers a refetch, with a cooldown).
 * - **Roles** come from the `roles` claim (an array of strings, as Entra ID issues app roles); `roleMap` maps
 *   the issuer's role values (e.g. `Cryptlet.Publisher`) to the API's roles. `admin` satisfies every role.
 * - **Tenants**: with `allowedTenants`, the Entra `tid` claim must be one of them.
 *
 * @module
 */
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors as jose,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
} from "jose";

import { ForbiddenError, UnauthenticatedError, type AuthFailure } from "./errors.ts";

/** The API's roles. */
export const ROLES = ["publisher", "operator", "auditor", "admin"] as const;

/** A role: `publisher` deploys packages, `operator` invokes and replays, `auditor` reads runs and verifies, `admin` everything. */
export type Role = (typeof ROLES)[number];

/** Who called: from a verified token. */
export interface Principal {
  /** `sub` (for Entra ID: the user's or service principal's object id in the tenant). */
  subject: string;
  issuer: string;
  /** The API roles the token grants (after `roleMap`). */
  roles: Role[];
  /** Entra ID tenant (`tid`), when present. */
  tenantId?: string;
  /** Every verified claim. */
  claims: JWTPayload;
}

/** Options of {@link BearerAuthenticator}. */
export interface AuthOptions {
  /** Accepted `iss` value(s), compared exactly. */
  issuer: string | readonly string[];
  /** Accepted `aud` value(s) (e.g. `api://cryptlet-runtime` or the app's client id). */
  audience: string | readonly string[];
  /** The issuer's keys, inline. */
  jwks?: JSONWebKeySet;
  /** The issuer's JWK Set URL; without it (and without `jwks`) it is discovered from the (first) issuer. */
  jwksUri?: string;
  /** The claim with the role values. Default `roles`. */
  rolesClaim?: string;
  /** Role values of the issuer → API roles. Default: each API role name maps to itself. */
  roleMap?: Readonly<Record<string, Role>>;
  /** Entra ID tenants (`tid`) allowed; every tenant when absent. */
  allowedTenants?: readonly string[];
  /** Accepted JWS algorithms. Default `["RS256", "PS256", "ES256"]` (Entra ID signs RS256). */
  algorithms?: readonly string[];
  /** Allowed clock skew in seconds for `exp`/`nbf`. Default 30. */
  clockToleranceSeconds?: number;
  /** Timeout of JWKS and discovery fetches, in ms. Default 5000. */
  fetchTimeoutMs?: number;
}

const DEFAULT_ROLE_MAP: Readonly<Record<string, Role>> = Object.fromEntries(ROLES.map((r) => [r, r]));

/** Every error code of jose (they all start with `ERR_J`): a jose failure not listed below is a malformed token. */
const JOSE_CODES: ReadonlySet<string> = new Set(
  Object.values(jose).map((errorClass) => (errorClass as { code?: string }).code ?? ""),
);

function failureOf(error: unknown): AuthFailure {
  const { code, claim } = (error ?? {}) as { code?: unknown; claim?: unknown };
  switch (code) {
    case jose.JWTExpired.code:
      return "expired";
    case jose.JWTClaimValidationFailed.code:
      if (claim === "iss") return "wrong-issuer";
      if (claim === "aud") return "wrong-audience";
      if (claim === "nbf") return "expired";
      return "invalid-claims";
    case jose.JWSSignatureVerificationFailed.code:
    case jose.JWKSNoMatchingKey.code:
    case jose.JWKSMultipleMatchingKeys.code:
      return "bad-signature";
    case jose.JWKSTimeout.code:
    case jose.JWKSInvalid.code:
      return "issuer-unavailable";
    case jose.JWSInvalid.code:
    case jose.JWTInvalid.code:
    case jose.JOSENotSupported.code:
    case jose.JOSEAlgNotAllowed.code:
      return "malformed";
    default:
      return typeof code === "string" && JOSE_CODES.has(code) ? "malformed" : "issuer-unavailable";
  }
}

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * Verifies bearer tokens and checks roles.
 *
 * @example
 * ```ts
 * import { BearerAuthenticator } from "./runtime/api/auth.ts";
 *
 * const auth = new BearerAuthenticator({
 *   issuer: "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0",
 *   audience: "api://cryptlet-runtime",
 *   roleMap: { "Cryptlet.Publisher": "publisher", "Cryptlet.Operator": "operator" },
 * });
 * const principal = await auth.authenticate(req.headers.authorization);
 * auth.authorize(principal, ["operator"]);
 * ```
 */
export class BearerAuthenticator {
  readonly #options: AuthOptions;
  readonly #issuers: string[];
  readonly #audiences: string[];
  #keys: JWTVerifyGetKey | undefined;
  #discovering: Promise<JWTVerifyGetKey> | undefined;

  /** @throws TypeError when no issuer or audience is given. */
  constructor(options: AuthOptions) {
    this.#options = options;
    this.#issuers = typeof options.issuer === "string" ? [options.issuer] : [...options.issuer];
    this.#audiences = typeof options.audience === "string" ? [options.audience] : [...options.audience];
    if (this.#issuers.length === 0 || this.#audiences.length === 0) {
      throw new TypeError("auth: at least one issuer and one audience are required");
    }
    if (options.jwks) this.#keys = createLocalJWKSet(options.jwks);
    else if (options.jwksUri) this.#keys = this.#remote(options.jwksUri);
  }

  #remote(uri: string): JWTVerifyGetKey {
    return createRemoteJWKSet(new URL(uri), { timeoutDuration: this.#options.fetchTimeoutMs ?? 5000 });
  }

  async #getKeys(): Promise<JWTVerifyGetKey> {
    if (this.#keys) return this.#keys;
    this.#discovering ??= (async () => {
      const base = (this.#issuers[0] as string).replace(/\/$/, "");
      const response = await fetch(`${base}/.well-known/openid-configuration`, {
        signal: AbortSignal.timeout(this.#options.fetchTimeoutMs ?? 5000),
      });
      if (!response.ok) throw new Error(`OIDC discovery answered ${response.status}`);
      const metadata = (await response.json()) as { jwks_uri?: unknown };
      if (typeof metadata.jwks_uri !== "string") throw new Error("OIDC discovery has no jwks_uri");
      this.#keys = this.#remote(metadata.jwks_uri);
      return this.#keys;
    })();
    try {
      return await this.#discovering;
    } catch (cause) {
      this.#discovering = undefined;
      throw new UnauthenticatedError("issuer-unavailable", cause);
    }
  }

  /**
   * Verifies the `Authorization` header's bearer token.
   * @param authorization - the header value, `Bearer <JWT>`.
   * @returns the caller.
   * @throws {@link UnauthenticatedError} (`ERR_AUTH_UNAUTHENTICATED`, `details.reason`: missing, malformed,
   *   expired, bad-signature, wrong-issuer, wrong-audience, wrong-tenant, invalid-claims, issuer-unavailable).
   */
  async authenticate(authorization: string | undefined): Promise<Principal> {
    if (authorization === undefined || authorization === "") throw new UnauthenticatedError("missing");
    const match = /^Bearer +(\S+)$/i.exec(authorization);
    const token = match?.[1];
    if (token === undefined || !COMPACT_JWS.test(token)) throw new UnauthenticatedError("malformed");
    const keys = await this.#getKeys();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys, {
        issuer: this.#issuers,
        audience: this.#audiences,
        algorithms: [...(this.#options.algorithms ?? ["RS256", "PS256", "ES256"])],
        clockTolerance: this.#options.clockToleranceSeconds ?? 30,
        requiredClaims: ["exp", "sub"],
      }));
    } catch (cause) {
      throw new UnauthenticatedError(failureOf(cause), cause);
    }
    const tenantId = typeof payload.tid === "string" ? payload.tid : undefined;
    const allowed = this.#options.allowedTenants;
    if (allowed && (tenantId === undefined || !allowed.includes(tenantId))) {
      throw new UnauthenticatedError("wrong-tenant");
    }
    const raw = payload[this.#options.rolesClaim ?? "roles"];
    if (raw !== undefined && (!Array.isArray(raw) || raw.some((r) => typeof r !== "string"))) {
      throw new UnauthenticatedError("invalid-claims");
    }
    const map = this.#options.roleMap ?? DEFAULT_ROLE_MAP;
    const roles = [
      ...new Set(((raw ?? []) as string[]).flatMap((r) => (Object.hasOwn(map, r) ? [map[r] as Role] : []))),
    ];
    return {
      subject: payload.sub as string,
      issuer: payload.iss as string,
      roles,
      ...(tenantId === undefined ? {} : { tenantId }),
      claims: payload,
    };
  }

  /**
   * Checks that the caller holds one of `required` (or `admin`).
   * @throws {@link ForbiddenError} (`ERR_AUTH_FORBIDDEN`) otherwise.
   */
  authorize(principal: Principal, required: readonly string[]): void {
    if (required.length === 0 || principal.roles.includes("admin")) return;
    if (principal.roles.some((r) => required.includes(r))) return;
    throw new ForbiddenError(required, principal.roles);
  }
}
