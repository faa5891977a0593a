/**
 * The `fetch` allow-list rule, one for the manifest (`capabilities.fetch.allow`, validated with
 * {@link checkFetchAllowEntry}) and the sandbox host (which enforces it with {@link isFetchAllowed}): each entry is an **origin plus a path
 * prefix**, written as a normalised absolute URL (WHATWG URL Standard), e.g. `https://api.example.com/v1/`.
 *
 * A request URL is allowed when, after WHATWG parsing (which removes default ports, lower-cases the host and
 * resolves `.` and `..` segments), its scheme, host and port equal the entry's, it carries no user info, and its
 * path either equals the entry's path, or starts with it where the entry's path ends with `/`. The query string
 * of the request is free; entries carry none. There are no wildcards: what a reviewer reads is what is matched.
 *
 * We chose this over URLPattern syntax because prefix matching has no regular-expression semantics to get wrong,
 * it is the same in every engine (URLPattern is not in every JavaScript runtime), and the manifest is part of the
 * `codeHash`, so one canonical spelling per rule matters.
 */

/**
 * Checks one allow-list entry. Returns `undefined` when it is valid, else a message saying what is wrong.
 *
 * @param entry - e.g. `https://api.example.com/v1/`.
 * @returns `undefined`, or e.g. `must be in normalised form "https://api.example.com/"`.
 *
 * @example
 * ```ts
 * import { checkFetchAllowEntry } from "./runtime/sandbox/fetchAllow.ts";
 * checkFetchAllowEntry("https://api.example.com/v1/"); // undefined
 * checkFetchAllowEntry("ftp://example.com/");          // "must be an http: or https: URL"
 * ```
 */
export function checkFetchAllowEntry(entry: string): string | undefined {
  let url: URL;
  try {
    url = new URL(entry);
  } catch {
    return "must be an absolute URL (origin and path prefix), e.g. https://api.example.com/v1/";
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return "must be an http: or https: URL";
  if (url.username !== "" || url.password !== "") return "must not contain user info (credentials)";
  if (entry.includes("?") || entry.includes("#")) return "must not contain a query or a fragment";
  if (url.href !== entry) return `must be in normalised form "${url.href}"`;
  return undefined;
}

/**
 * Whether `requestUrl` may be fetched under the allow-list `allow` (see the module documentation for the rule).
 * The sandbox host (internal/hostFetch.ts) calls this for the first request and for every redirect hop.
 *
 * @param requestUrl - the absolute URL the Cryptlet (or a redirect) asks for.
 * @param allow - the manifest's `capabilities.fetch.allow` entries.
 * @returns `true` when some entry allows it; `false` for invalid URLs, other schemes, credentials, or no match.
 *
 * @example
 * ```ts
 * import { isFetchAllowed } from "./runtime/sandbox/fetchAllow.ts";
 * const allow = ["https://api.example.com/v1/"];
 * isFetchAllowed("https://api.example.com/v1/prices?pair=ETH-USD", allow); // true
 * isFetchAllowed("https://api.example.com/v1/../admin", allow);            // false: resolves to /admin
 * isFetchAllowed("https://api.example.com.evil.test/v1/", allow);          // false: another host
 * ```
 */
export function isFetchAllowed(requestUrl: string, allow: readonly string[]): boolean {
  let url: URL;
  try {
    url = new URL(requestUrl);
  } catch {
    return false;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return false;
  if (url.username !== "" || url.password !== "") return false;
  for (const entry of allow) {
    let rule: URL;
    try {
      rule = new URL(entry);
    } catch {
      continue;
    }
    if (rule.protocol !== url.protocol || rule.host !== url.host) continue;
    if (rule.pathname.endsWith("/") ? url.pathname.startsWith(rule.pathname) : url.pathname === rule.pathname) {
      return true;
    }
  }
  return false;
}
