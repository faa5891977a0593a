/**
 * Member-to-member request authentication (docs/consortium.md, "Peer authentication"). Every request one member
 * sends another carries `Authorization: Bearer <JWT>`: a JWT (RFC 7519) in JWS Compact Serialization, `alg` ES256
 * (RFC 7518 §3.4), header `typ` {@link PEER_REQUEST_TOKEN_TYPE} (explicit typing, RFC 8725 §3.11), signed through
 * the sender's request-signing {@link KeyProvider} (a P-256 key in the sender's own Key Vault, as the attestation
 * token is, runtime/attestation/token.ts). Claims:
 *
 * | claim        | value                                                                              |
 * | ------------ | ---------------------------------------------------------------------------------- |
 * | `iss`        | the sender's member id                                                             |
 * | `aud`        | the receiver's member id (a token for one member is refused by every other)        |
 * | `iat`, `exp` | Unix seconds; `exp - iat` at most {@link MAX_PEER_TOKEN_LIFETIME_SECONDS} (60)     |
 * | `jti`        | a fresh UUID: the receiver accepts each `(iss, jti)` once ({@link ReplayCache})     |
 * | `bodySha256` | base64url (no padding) SHA-256 of the exact request body bytes (binds the body)    |
 *
 * The receiver ({@link PeerAuthenticator}) verifies the signature with the sender's JWKS from its own configuration
 * (`ConsortiumMember.jwks`: inline, or a URL fetched with a deadline and cached by jose's `createRemoteJWKSet`),
 * then the claims, then records the `jti`. mTLS was the alternative; a signed token was chosen because it keeps the
 * key in Key Vault (a TLS client key would have to live on the host), binds the body, and works through TLS-
 * terminating proxies.
 *
 * @module
 */
import { createHash, randomUUID } from "node:crypto";

import {
  base64url,
  createLocalJWKSet,
  createRemoteJWKSet,
  errors as jose,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
} from "jose";

import type { KeyProvider } from "../keys/KeyProvider.ts";
import { ConsortiumConfigError, PeerRejectedError, PeerUnauthenticatedError, PeerUnreachableError } from "./errors.ts";
import type { ConsortiumMember } from "./protocol.ts";
import type { RedisClient } from "../queue/redisClient.ts";

/** The JWS `typ` header of peer request tokens. */
export const PEER_REQUEST_TOKEN_TYPE = "cryptlet-peer+jwt";

/** Longest accepted token lifetime (`exp - iat`), seconds. */
export const MAX_PEER_TOKEN_LIFETIME_SECONDS = 60;

/** Default token lifetime, seconds. */
export const DEFAULT_PEER_TOKEN_TTL_SECONDS = 30;

/** The claims of a peer request token (times in Unix seconds). */
export interface PeerRequestClaims extends JWTPayload {
  iss: string;
  aud: string;
  iat: number;
  exp: number;
  jti: string;
  /** base64url (RFC 4648 §5, no padding) of the SHA-256 of the request body bytes (of the empty string when none). */
  bodySha256: string;
}

const encoder = new TextEncoder();

/** base64url SHA-256 of `body` (a string is taken as UTF-8), as the `bodySha256` claim carries it. */
export function bodySha256(body: Uint8Array | string): string {
  return base64url.encode(
    createHash("sha256")
      .update(typeof body === "string" ? encoder.encode(body) : body)
      .digest(),
  );
}

/**
 * Signs a peer request token through `provider` (ES256 over the JWS signing input's SHA-256).
 *
 * @param provider - the sender's request-signing key, EC P-256.
 * @param claims.issuer - the sender's member id; `claims.audience` the receiver's; `claims.body` the exact bytes
 *   that will be sent; `claims.ttlSeconds` the lifetime (default 30, at most 60); `claims.now` the issue time.
 * @returns the compact JWS.
 * @throws {@link ConsortiumConfigError} when the key is not P-256 or the lifetime is out of range; the provider's
 *   own errors (`ERR_KEY_*`) pass through.
 *
 * @example
 * ```ts
 * import { createPeerRequestToken } from "./runtime/consortium/peerAuth.ts";
 * const body = JSON.stringify(proposal);
 * const token = await createPeerRequestToken(requestKey, { issuer: "acme", audience: "globex", body });
 * ```
 */
export async function createPeerRequestToken(
  provider: KeyProvider,
  claims: {
    issuer: string;
    audience: string;
    body: Uint8Array | string;
    ttlSeconds?: number;
    now?: Date;
    jti?: string;
  },
): Promise<string> {
  const ttl = claims.ttlSeconds ?? DEFAULT_PEER_TOKEN_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_PEER_TOKEN_LIFETIME_SECONDS) {
    throw new ConsortiumConfigError(`peer token lifetime ${ttl} s (1 to ${MAX_PEER_TOKEN_LIFETIME_SECONDS})`);
  }
  const key = await provider.getPublicKey();
  if (key.jwk.kty !== "EC" || key.jwk.crv !== "P-256") {
    throw new ConsortiumConfigError(`request-signing key ${key.keyId} is not an EC P-256 key`);
  }
  const iat = Math.floor((claims.now ?? new Date()).getTime() / 1000);
  const payload: PeerRequestClaims = {
    iss: claims.issuer,
    aud: claims.audience,
    iat,
    exp: iat + ttl,
    jti: claims.jti ?? randomUUID(),
    bodySha256: bodySha256(claims.body),
  };
  const header = { alg: "ES256", typ: PEER_REQUEST_TOKEN_TYPE, kid: key.keyId };
  const signingInput = `${base64url.encode(JSON.stringify(header))}.${base64url.encode(JSON.stringify(payload))}`;
  const digest = createHash("sha256").update(encoder.encode(signingInput)).digest();
  const signed = await provider.sign(new Uint8Array(digest), "ES256");
  if (signed.signature.length !== 64) {
    throw new ConsortiumConfigError(`expected a 64-byte r||s signature, got ${signed.signature.length} bytes`);
  }
  return `${signingInput}.${base64url.encode(signed.signature)}`;
}

/**
 * Where a receiver remembers the `(iss, jti)` pairs it accepted until they expire: the port of
 * {@link PeerAuthenticator}'s replay check. Adapters: {@link MemoryReplayCache} (one API process) and
 * {@link RedisReplayCache} (several API processes of one member behind a load balancer).
 */
export interface ReplayCache {
  /**
   * Records `key` for `ttlMs` ms. @returns true when it was not recorded yet (first use), false for a replay.
   */
  claim(key: string, ttlMs: number): Promise<boolean>;
}

/** A {@link ReplayCache} in this process's memory, bounded: expired entries are swept on every claim. */
export class MemoryReplayCache implements ReplayCache {
  readonly #seen = new Map<string, number>();
  readonly #maxEntries: number;

  /** @param maxEntries - most entries kept (a claim beyond it is refused: fail closed). Default 100000. */
  constructor(maxEntries = 100_000) {
    this.#maxEntries = maxEntries;
  }

  claim(key: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    for (const [k, until] of this.#seen) if (until <= now) this.#seen.delete(k);
    const until = this.#seen.get(key);
    if (until !== undefined) return Promise.resolve(false);
    if (this.#seen.size >= this.#maxEntries) return Promise.resolve(false);
    this.#seen.set(key, now + ttlMs);
    return Promise.resolve(true);
  }
}

/** A {@link ReplayCache} in Redis: `SET <prefix>:consortium:jti:<key> 1 NX PX ttlMs` (only ids, no content). */
export class RedisReplayCache implements ReplayCache {
  readonly #redis: Pick<RedisClient, "set">;
  readonly #prefix: string;

  /** @param redis - the member's Redis; @param prefix - the deployment's key prefix. */
  constructor(redis: Pick<RedisClient, "set">, prefix: string) {
    this.#redis = redis;
    this.#prefix = prefix;
  }

  async claim(key: string, ttlMs: number): Promise<boolean> {
    const reply = await this.#redis.set(`${this.#prefix}:consortium:jti:${key}`, "1", "PX", Math.max(1, ttlMs), "NX");
    return reply === "OK";
  }
}

/** Options of {@link PeerAuthenticator}. */
export interface PeerAuthenticatorOptions {
  /** This member's id: the `aud` every accepted token must name. */
  self: string;
  /** The consortium's members (this one included; a token from `self` is refused). */
  members: readonly ConsortiumMember[];
  /** Where accepted `jti`s are remembered. */
  replay: ReplayCache;
  /** Deadline of one JWKS fetch, ms. Default 5000. */
  jwksTimeoutMs?: number;
  /** How long a fetched JWKS is used before it is fetched again, ms. Default 600000 (jose's default). */
  jwksCacheMs?: number;
  /** Accepted clock difference between members, seconds. Default 5. */
  clockToleranceSeconds?: number;
}

/** An authenticated peer request. */
export interface AuthenticatedPeer {
  member: ConsortiumMember;
  claims: PeerRequestClaims;
}

/**
 * Verifies member-to-member requests (the receiving side of this module's scheme).
 *
 * @example
 * ```ts
 * import { MemoryReplayCache, PeerAuthenticator, bodySha256 } from "./runtime/consortium/peerAuth.ts";
 * const auth = new PeerAuthenticator({ self: "globex", members, replay: new MemoryReplayCache() });
 * const { member } = await auth.authenticate(req.get("authorization"), bodySha256(rawBody));
 * ```
 */
export class PeerAuthenticator {
  readonly #options: PeerAuthenticatorOptions;
  readonly #keys = new Map<string, JWTVerifyGetKey>();

  /** @throws {@link ConsortiumConfigError} when `self` is not a member or a member's `jwks` is neither form. */
  constructor(options: PeerAuthenticatorOptions) {
    this.#options = options;
    if (!options.members.some((m) => m.id === options.self)) {
      throw new ConsortiumConfigError(`self ${options.self} is not a member`);
    }
    for (const member of options.members) {
      if (member.id === options.self) continue;
      this.#keys.set(member.id, this.#keySet(member));
    }
  }

  #keySet(member: ConsortiumMember): JWTVerifyGetKey {
    if (typeof member.jwks === "string") {
      let url: URL;
      try {
        url = new URL(member.jwks);
      } catch {
        throw new ConsortiumConfigError(`member ${member.id}: jwks is not a URL`);
      }
      return createRemoteJWKSet(url, {
        timeoutDuration: this.#options.jwksTimeoutMs ?? 5000,
        cacheMaxAge: this.#options.jwksCacheMs ?? 600_000,
      });
    }
    if (typeof member.jwks !== "object" || member.jwks === null || !Array.isArray(member.jwks.keys)) {
      throw new ConsortiumConfigError(`member ${member.id}: jwks must be a URL or {keys: [...]}`);
    }
    return createLocalJWKSet(member.jwks as JSONWebKeySet);
  }

  /**
   * Authenticates one request.
   *
   * @param authorization - the `Authorization` header (`Bearer <JWT>`).
   * @param bodyDigest - {@link bodySha256} of the request body bytes exactly as received (after content decoding).
   * @returns the sending member and the token's claims.
   * @throws {@link PeerUnauthenticatedError} (`ERR_PEER_UNAUTHENTICATED`, 401; 503 for `jwks-unavailable`).
   */
  async authenticate(authorization: string | undefined, bodyDigest: string): Promise<AuthenticatedPeer> {
    const match = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/.exec(authorization ?? "");
    if (!match) throw new PeerUnauthenticatedError(authorization ? "malformed" : "missing");
    const token = match[1] as string;
    let unverified: JWTPayload;
    try {
      unverified = JSON.parse(new TextDecoder().decode(base64url.decode(token.split(".")[1] as string))) as JWTPayload;
    } catch (cause) {
      throw new PeerUnauthenticatedError("malformed", cause);
    }
    const sender = typeof unverified.iss === "string" ? unverified.iss : "";
    const keys = this.#keys.get(sender);
    const member = this.#options.members.find((m) => m.id === sender);
    if (keys === undefined || member === undefined) throw new PeerUnauthenticatedError("unknown-sender");
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys, {
        algorithms: ["ES256"],
        typ: PEER_REQUEST_TOKEN_TYPE,
        issuer: sender,
        audience: this.#options.self,
        requiredClaims: ["iss", "aud", "iat", "exp", "jti"],
        clockTolerance: this.#options.clockToleranceSeconds ?? 5,
      }));
    } catch (cause) {
      throw new PeerUnauthenticatedError(failureOf(cause), cause);
    }
    const claims = payload as PeerRequestClaims;
    if (typeof claims.iat !== "number" || typeof claims.exp !== "number") {
      throw new PeerUnauthenticatedError("malformed");
    }
    if (claims.exp - claims.iat > MAX_PEER_TOKEN_LIFETIME_SECONDS) throw new PeerUnauthenticatedError("lifetime");
    if (typeof claims.jti !== "string" || claims.jti.length === 0 || claims.jti.length > 128) {
      throw new PeerUnauthenticatedError("malformed");
    }
    if (typeof claims.bodySha256 !== "string" || claims.bodySha256 !== bodyDigest) {
      throw new PeerUnauthenticatedError("body-mismatch");
    }
    // Remembered until the token expires (plus the tolerance): a replay after that is refused as expired.
    const ttlMs = (claims.exp - Math.floor(Date.now() / 1000) + (this.#options.clockToleranceSeconds ?? 5) + 1) * 1000;
    if (!(await this.#options.replay.claim(`${sender}:${claims.jti}`, ttlMs))) {
      throw new PeerUnauthenticatedError("replayed");
    }
    return { member, claims };
  }
}

function failureOf(cause: unknown): ConstructorParameters<typeof PeerUnauthenticatedError>[0] {
  const code = (cause as { code?: string }).code;
  const claim = (cause as { claim?: string }).claim;
  if (code === jose.JWTExpired.code) return "expired";
  if (code === jose.JWTClaimValidationFailed.code) {
    if (claim === "aud") return "wrong-audience";
    if (claim === "iat" || claim === "nbf") return "expired";
    return "malformed";
  }
  if (code === jose.JWKSNoMatchingKey.code) return "unknown-key";
  if (code === jose.JWSSignatureVerificationFailed.code) return "bad-signature";
  // The remote JWKS could not be had: a timeout, an invalid document, or the fetch itself failed (not a JOSE error).
  if (code === jose.JWKSTimeout.code || code === jose.JWKSInvalid.code || code === jose.JOSEError.code) {
    return "jwks-unavailable";
  }
  if (!(cause instanceof jose.JOSEError)) return "jwks-unavailable";
  return "malformed";
}

/** Options of {@link sendToPeer}. */
export interface SendToPeerOptions {
  /** Deadline of the whole call (connect, send, answer read), ms. Required: no call without one. */
  deadlineMs: number;
  /** The sender: its member id and request-signing key. */
  from: { id: string; requestKey: KeyProvider };
  /** Aborts the call early (e.g. the leader has enough answers). */
  signal?: AbortSignal;
}

/**
 * POSTs `body` (JSON) to `member.url + path`, authenticated as `options.from` ({@link createPeerRequestToken}),
 * and returns the parsed JSON answer.
 *
 * @throws {@link PeerUnreachableError} (`ERR_PEER_UNREACHABLE`, retryable) on a timeout, a refused connection or an
 *   unreadable answer; {@link PeerRejectedError} (`ERR_PEER_REJECTED`) on an HTTP error status (the problem
 *   document's `code` in `details.code`).
 *
 * @example
 * ```ts
 * import { sendToPeer } from "./runtime/consortium/peerAuth.ts";
 * const answer = await sendToPeer(member, "/v1/consortium/proposals", proposal, {
 *   deadlineMs: 20_000,
 *   from: { id: "acme", requestKey },
 * });
 * ```
 */
export async function sendToPeer(
  member: ConsortiumMember,
  path: string,
  body: unknown,
  options: SendToPeerOptions,
): Promise<unknown> {
  if (!Number.isFinite(options.deadlineMs) || options.deadlineMs <= 0) {
    throw new ConsortiumConfigError(`deadlineMs must be a positive number of ms, got ${options.deadlineMs}`);
  }
  const text = JSON.stringify(body);
  const bytes = encoder.encode(text);
  const token = await createPeerRequestToken(options.from.requestKey, {
    issuer: options.from.id,
    audience: member.id,
    body: bytes,
  });
  const signals = [AbortSignal.timeout(options.deadlineMs), ...(options.signal ? [options.signal] : [])];
  const signal = AbortSignal.any(signals);
  const url = `${member.url.replace(/\/$/, "")}${path}`;
  let response: Response;
  let answer: string;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: bytes,
      signal,
    });
    answer = await response.text();
  } catch (cause) {
    const what = signal.aborted
      ? options.signal?.aborted
        ? "call abandoned"
        : `no answer within ${options.deadlineMs} ms`
      : "connection failed";
    throw new PeerUnreachableError(member.id, what, cause);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer);
  } catch (cause) {
    if (!response.ok) throw new PeerRejectedError(member.id, response.status);
    throw new PeerUnreachableError(member.id, "the answer is not JSON", cause);
  }
  if (!response.ok) {
    const code = (parsed as { code?: unknown } | null)?.code;
    throw new PeerRejectedError(member.id, response.status, typeof code === "string" ? code : undefined);
  }
  return parsed;
}
