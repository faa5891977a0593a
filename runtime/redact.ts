/**
 * Redaction of secrets from text that leaves the process or is stored: error messages and causes, problem
 * documents, log lines, dead letters, receipts, CLI output. Libraries put secrets in their error messages (ethers
 * writes the full endpoint URL, `requestUrl="https://mainnet.infura.io/v3/<key>"`, into every transport error),
 * so every serialisation of an error goes through {@link redactSecrets} (`CryptletError.toJSON`,
 * `errorToJSON` in ./errors.ts), and never through `error.message` alone.
 *
 * What is removed, and what is kept so that the text still says which endpoint failed:
 *
 * | in the text | becomes |
 * | --- | --- |
 * | `http(s)`, `ws(s)`, `redis(s)` URL | {@link redactUrl}: scheme, host, port and ordinary path segments kept; user name and password, secret-named query values and key-like path segments replaced by `redacted` |
 * | `Bearer <token>`, `Basic <credentials>` | `Bearer <redacted>` |
 * | a JWT or JWE (`eyJ…` in three or five base64url segments) | `<redacted jwt>` |
 * | `authorization: …`, `x-api-key=…`, `apikey: …`, `access_token=…`, `client_secret=…`, `password=…` (also JSON-quoted) | the name kept, the value `<redacted>` |
 *
 * Redaction is best effort on free text: it catches what libraries and our own messages are known to produce,
 * not a secret spelled out in prose. Messages the runtime writes must still never contain secrets.
 *
 * @example
 * ```ts
 * import { redactSecrets } from "./runtime/redact.ts";
 * redactSecrets('server response 500 (info={ "requestUrl": "https://mainnet.infura.io/v3/0123456789abcdef0123456789abcdef" })');
 * // 'server response 500 (info={ "requestUrl": "https://mainnet.infura.io/v3/redacted" })'
 * ```
 *
 * @module
 */

/** Query parameter (and fragment) names whose values are secrets: `apikey`, `api-key`, `x-api-key`, `access_token`, `sig`, … */
const SECRET_PARAM = /key|token|secret|sig|pass|pwd|auth|credential|session/i;

/** A path segment that is an API key: 20+ URL-safe characters, or 16+ mixing letters and digits. */
function isKeyLikeSegment(segment: string): boolean {
  if (/^[A-Za-z0-9_-]{20,}$/.test(segment)) return true;
  return /^[A-Za-z0-9_-]{16,}$/.test(segment) && /[A-Za-z]/.test(segment) && /[0-9]/.test(segment);
}

/** The redacted form of a parsed URL, and whether anything was removed. */
function redactParsed(parsed: URL): { url: string; changed: boolean } {
  let changed = false;
  if (parsed.username) {
    parsed.username = "redacted";
    changed = true;
  }
  if (parsed.password) {
    parsed.password = "redacted";
    changed = true;
  }
  for (const name of [...new Set(parsed.searchParams.keys())]) {
    if (SECRET_PARAM.test(name)) {
      parsed.searchParams.set(name, "redacted");
      changed = true;
    }
  }
  const segments = parsed.pathname.split("/");
  if (segments.some(isKeyLikeSegment)) {
    parsed.pathname = segments.map((s) => (isKeyLikeSegment(s) ? "redacted" : s)).join("/");
    changed = true;
  }
  if (parsed.hash.length > 1 && (SECRET_PARAM.test(parsed.hash) || isKeyLikeSegment(parsed.hash.slice(1)))) {
    parsed.hash = "redacted";
    changed = true;
  }
  return { url: parsed.toString(), changed };
}

/**
 * Removes credentials from a URL for logs and errors. Kept: the scheme, host, port, ordinary path segments
 * (`/v3`, `/rpc`) and ordinary query parameters. Replaced by `redacted`: the user name and password
 * (`https://user:pass@host`, `redis://:pass@host`), the values of query parameters whose name suggests a secret
 * (`key`, `apikey`, `api-key`, `x-api-key`, `token`, `access_token`, `secret`, `sig`/`signature`, `password`,
 * `auth`, `credential`, `session`), path segments that look like API keys (20+ URL-safe characters, or 16+ mixing
 * letters and digits, as Infura's `/v3/<32 hex>` and Alchemy's `/v2/<key>`), and a fragment that names or looks
 * like a secret. Invalid URLs become `"<invalid url>"`.
 *
 * @example
 * ```ts
 * redactUrl("https://user:pw@eth-mainnet.g.alchemy.com/v2/Ab12Cd34Ef56Gh78?chain=1&apikey=x");
 * // "https://redacted:redacted@eth-mainnet.g.alchemy.com/v2/redacted?chain=1&apikey=redacted"
 * ```
 */
export function redactUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "<invalid url>";
  }
  return redactParsed(parsed).url;
}

/** URLs in free text: up to whitespace, a quote, a backslash (JSON escapes) or an angle bracket. */
const URL_SOURCE = String.raw`(?<url>\b(?:https?|wss?|rediss?):\/\/[^\s"'\x60<>\\{}|^]+)`;
/** Header and parameter names whose value is a secret, followed by `:` or `=` (optionally JSON-quoted). */
const KEY_VALUE_SOURCE =
  String.raw`(?<![A-Za-z0-9])(?<key>(?:proxy-)?authorization|x-api-key|api[-_]?key|access[-_]token|refresh[-_]token|client[-_]secret|password|passwd)` +
  String.raw`(?<separator>\\?["']?\s*[:=]\s*\\?["']?)(?:(?:Bearer|Basic|Digest|Token)\s+)?[^\s"'\\,;&)}\]]+`;
/** `Bearer <token>` / `Basic <credentials>` with a token of 8+ characters (see {@link isCredential}). */
const AUTH_SCHEME_SOURCE = String.raw`\b(?<scheme>bearer|basic)\s+(?<token>[A-Za-z0-9._~+/-]{8,}=*)`;
/** A compact JWS or JWE: a base64url JSON header (`eyJ`) and two or four more segments. */
const JWT_SOURCE = String.raw`(?<jwt>\beyJ[A-Za-z0-9_-]{6,}(?:\.[A-Za-z0-9_-]*){2,4})`;

/** Every kind of secret in text, as alternatives: the leftmost match wins, so a URL is redacted as a whole. */
const SECRETS_IN_TEXT = new RegExp(`${URL_SOURCE}|${KEY_VALUE_SOURCE}|${AUTH_SCHEME_SOURCE}|${JWT_SOURCE}`, "gi");

/**
 * Whether `Bearer x` / `Basic x` is a credential rather than prose ("Basic configuration"): the scheme is
 * capitalised as in a header (`Bearer`, `bearer`, `Basic`) and the token is not a plain lower-case word.
 */
function isCredential(scheme: string, token: string): boolean {
  return /^(?:[Bb]earer|Basic)$/.test(scheme) && !/^[a-z]+$/.test(token);
}

interface SecretGroups {
  url?: string;
  key?: string;
  separator?: string;
  scheme?: string;
  token?: string;
  jwt?: string;
}

/** Trailing characters that end a sentence rather than a URL. */
const URL_TRAILER = /[.,;:!?)\]]+$/;

function redactUrlInText(match: string): string {
  const trailer = URL_TRAILER.exec(match)?.[0] ?? "";
  const url = trailer ? match.slice(0, -trailer.length) : match;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `<redacted url>${trailer}`;
  }
  const redacted = redactParsed(parsed);
  return `${redacted.changed ? redacted.url : url}${trailer}`;
}

/**
 * Redacts secrets in free text (see the module documentation for what is found): every `http`, `https`, `ws`,
 * `wss`, `redis` and `rediss` URL is replaced by its {@link redactUrl} form (a URL with nothing to redact is left
 * exactly as written), bearer and basic credentials, JWTs, and the values of `authorization`, API key, access
 * token, client secret and password fields.
 *
 * @example
 * ```ts
 * redactSecrets('request failed (requestUrl="http://u:p@127.0.0.1:8545/") authorization: Bearer abc.def-123');
 * // 'request failed (requestUrl="http://redacted:redacted@127.0.0.1:8545/") authorization: <redacted>'
 * ```
 */
export function redactSecrets(text: string): string {
  return text.replace(SECRETS_IN_TEXT, (match: string, ...rest: unknown[]) => {
    const groups = rest.at(-1) as SecretGroups;
    if (groups.url !== undefined) return redactUrlInText(groups.url);
    if (groups.key !== undefined) return `${groups.key}${groups.separator ?? ""}<redacted>`;
    if (groups.scheme !== undefined && groups.token !== undefined) {
      return isCredential(groups.scheme, groups.token) ? `${groups.scheme} <redacted>` : match;
    }
    return groups.jwt !== undefined ? "<redacted jwt>" : match;
  });
}

/** Field names whose string value is a secret wherever it appears in structured data. */
const SECRET_FIELD =
  /^(?:(?:proxy-)?authorization|password|passwd|secret|client[-_]?secret|api[-_]?key|x-api-key|access[-_]?token|refresh[-_]?token|private[-_]?key|bearer)$/i;

/**
 * {@link redactSecrets} on every string inside a JSON-like value (plain objects and arrays, to a depth of 10),
 * and `<redacted>` for the string value of a field named like a secret (`authorization`, `password`, `apiKey`,
 * `accessToken`, `privateKey`, …). Returns a copy; numbers, booleans, bigints and other objects (class
 * instances) are kept as they are.
 */
export function redactDeep<T>(value: T): T {
  return redactValue(value, 0, new WeakSet()) as T;
}

function redactValue(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (typeof value === "string") return redactSecrets(value);
  if (typeof value !== "object" || value === null) return value;
  const prototype = Object.getPrototypeOf(value) as unknown;
  const plain = Array.isArray(value) || prototype === Object.prototype || prototype === null;
  if (!plain) return value;
  if (seen.has(value)) return "[circular]";
  if (depth >= 10) return "[too deep]";
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((item) => redactValue(item, depth + 1, seen));
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [
        key,
        typeof item === "string" && SECRET_FIELD.test(key) ? "<redacted>" : redactValue(item, depth + 1, seen),
      ]),
    );
  } finally {
    seen.delete(value);
  }
}
