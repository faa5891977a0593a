/**
 * A local Azure Key Vault (keys only) that the real `@azure/keyvault-keys` and `@azure/identity` SDKs talk to
 * unchanged: HTTPS on loopback with a self-signed certificate made at start, the bearer challenge, a managed-identity
 * token endpoint (App Service style, so `DefaultAzureCredential` works), and the REST shapes, status codes and error
 * bodies of the real service (api-version 2025-07-01, checked against recordings of a real vault in
 * `test/keys/emulator-recordings.test.ts`). Used by tests and by the dev stack; production points the same runtime
 * code at a real vault through configuration only (docs/keys.md).
 *
 * Implemented operations (Key Vault REST API 2025-07-01, "Keys"): Create Key (EC `P-256K` and `P-256`, RSA 2048,
 * 3072, 4096), Get Key (latest or a version), Get Key Versions and Get Keys (paged), Update Key, Rotate Key, Sign and
 * Verify (`ES256K`, `ES256`, `RS256`, `PS256`, over a digest), Wrap Key and Unwrap Key, Encrypt and Decrypt
 * (`RSA-OAEP-256`, `RSA-OAEP`), Delete Key, Get/Purge/Recover Deleted Key.
 *
 * @module
 */
import { createServer as createHttpsServer } from "node:https";
import { createServer as createHttpServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  constants,
  createPrivateKey,
  createPublicKey,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  randomUUID,
} from "node:crypto";
import type { JsonWebKey } from "node:crypto";
import { generate as generateCertificate } from "selfsigned";
import { DIGEST_LENGTH, algorithmFitsKey, signDigest, verifyDigest } from "../digestSignature.ts";
import type { SignatureAlgorithm } from "../KeyProvider.ts";
import { AccessTokenIssuer, AccessTokenRefusal, KEY_VAULT_RESOURCE } from "./accessTokens.ts";
import { KeyStore, RECOVERABLE_DAYS, RECOVERY_LEVEL } from "./keyStore.ts";
import type { EmulatedCurve, EmulatedKeyType, StoredKey, StoredKeyVersion } from "./keyStore.ts";

/** The only api-version the emulator answers (the one `@azure/keyvault-keys` 4.10.2 sends). */
export const KEY_VAULT_API_VERSION = "2025-07-01";

/** Key Vault key permissions (access policy names) the emulator checks per operation. */
export type KeyPermission =
  | "get"
  | "list"
  | "create"
  | "update"
  | "delete"
  | "recover"
  | "purge"
  | "rotate"
  | "sign"
  | "verify"
  | "wrapKey"
  | "unwrapKey"
  | "encrypt"
  | "decrypt";

/** Every key permission: the default access policy of the emulated identity. */
export const ALL_KEY_PERMISSIONS: readonly KeyPermission[] = Object.freeze([
  "get",
  "list",
  "create",
  "update",
  "delete",
  "recover",
  "purge",
  "rotate",
  "sign",
  "verify",
  "wrapKey",
  "unwrapKey",
  "encrypt",
  "decrypt",
]);

/** Options of {@link startKeyVaultEmulator}. */
export interface KeyVaultEmulatorOptions {
  /** TCP port of the vault (HTTPS). @defaultValue 0 (any free port) */
  port?: number;
  /** TCP port of the managed-identity endpoint (plain HTTP on loopback, as App Service's). @defaultValue 0 */
  identityPort?: number;
  /** JSON file keeping keys (private keys included, mode 0600) between runs. @defaultValue none (memory only) */
  persistPath?: string;
  /** Tenant id in the bearer challenge and in tokens. @defaultValue the persisted one, else a random UUID */
  tenantId?: string;
  /** Client id of the emulated managed identity. @defaultValue the persisted one, else a random UUID */
  clientId?: string;
  /**
   * Secret (32 bytes) that signs access tokens. Emulators sharing it and `tenantId` accept each other's tokens, as
   * the vaults of one Entra tenant do (useful when one process caches a token across emulators). @defaultValue
   * the persisted secret, else a random one
   */
  tokenSecret?: Uint8Array;
  /** Lifetime of issued access tokens, in seconds. @defaultValue 3600 */
  tokenLifetimeSeconds?: number;
  /** Key permissions granted to the managed identity (Key Vault access policy). @defaultValue all */
  permissions?: readonly KeyPermission[];
  /**
   * How many `GET /deletedkeys/{name}` answer 404 after a delete before the deleted key shows (the real service
   * deletes asynchronously; the SDK's delete poller waits for it). @defaultValue 0
   */
  deletionPendingPolls?: number;
}

/** A fault the emulator answers instead of the next requests (after authentication), e.g. throttling. */
export interface InjectedFault {
  /** HTTP status: 429 (code `Throttled`, with `Retry-After`), 500, 502, 503 or 504. */
  status: 429 | 500 | 502 | 503 | 504;
  /** How many requests get the fault. @defaultValue 1 */
  count?: number;
  /** `Retry-After` in seconds for 429. @defaultValue 1 */
  retryAfterSeconds?: number;
}

/** A running emulator. */
export interface KeyVaultEmulator {
  /** The vault URL, e.g. `https://127.0.0.1:41234` (no trailing slash). */
  vaultUrl: string;
  /** PEM of the self-signed certificate to trust (client option `tlsOptions: {ca}` or `NODE_EXTRA_CA_CERTS`). */
  ca: string;
  /** Value for `IDENTITY_ENDPOINT`: the managed-identity token endpoint (`http://127.0.0.1:{port}/msi/token`). */
  identityEndpoint: string;
  /** Value for `IDENTITY_HEADER`: the secret the token endpoint requires in `X-IDENTITY-HEADER`. */
  identityHeader: string;
  /** The tenant named in the bearer challenge. */
  tenantId: string;
  /** The managed identity's client id (returned as `client_id` by the token endpoint). */
  clientId: string;
  /** Replaces the identity's key permissions (as an access-policy change would). */
  setPermissions(permissions: readonly KeyPermission[]): void;
  /**
   * Creates the key when absent (an operator's `az keyvault key create`, without the HTTP round trip); returns the
   * latest version's `kid` (for the `vaultUrl` host) and version either way.
   * @throws Error when the key is soft-deleted.
   */
  ensureKey(
    name: string,
    spec: { kty: "EC"; crv: "P-256" | "P-256K" } | { kty: "RSA"; keySize: 2048 | 3072 | 4096 },
  ): { kid: string; version: string; created: boolean };
  /** Makes the next requests fail with a service fault (throttling, 5xx). */
  injectFault(fault: InjectedFault): void;
  /** Stops both servers and closes open connections. */
  close(): Promise<void>;
}

interface RestErrorBody {
  error: { code: string; message: string; innererror?: { code: string } };
}

class RestFailure extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Record<string, string>;
  readonly innerCode: string | undefined;
  constructor(
    status: number,
    code: string,
    message: string,
    options: { headers?: Record<string, string>; innerCode?: string } = {},
  ) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = options.headers ?? {};
    this.innerCode = options.innerCode;
  }
}

const KEY_NAME = /^[0-9a-zA-Z-]{1,127}$/;
const KEY_VERSION = /^[0-9a-f]{32}$/;
const SIGNATURE_ALGORITHMS: readonly SignatureAlgorithm[] = ["ES256K", "ES256", "RS256", "PS256"];
const ENCRYPTION_ALGORITHMS = ["RSA-OAEP-256", "RSA-OAEP"] as const;
const MAX_BODY_BYTES = 1 << 20;

/**
 * Starts the emulator: an HTTPS vault and an HTTP managed-identity endpoint, both on 127.0.0.1.
 *
 * @param options - ports, persistence, identity and behaviour; see {@link KeyVaultEmulatorOptions}.
 * @returns the running emulator; call `close()` when done.
 * @throws Error when a port is taken or the persisted store file is not an emulator store.
 * @example
 * ```ts
 * import { KeyClient } from "@azure/keyvault-keys";
 * import { DefaultAzureCredential } from "@azure/identity";
 * import { startKeyVaultEmulator } from "./runtime/keys/emulator/startKeyVaultEmulator.ts";
 *
 * const vault = await startKeyVaultEmulator();
 * process.env.IDENTITY_ENDPOINT = vault.identityEndpoint;
 * process.env.IDENTITY_HEADER = vault.identityHeader;
 * const client = new KeyClient(vault.vaultUrl, new DefaultAzureCredential(), {
 *   tlsOptions: { ca: vault.ca },
 *   disableChallengeResourceVerification: true,
 * });
 * const key = await client.createEcKey("signer", { curve: "P-256K" });
 * await vault.close();
 * ```
 */
export async function startKeyVaultEmulator(options: KeyVaultEmulatorOptions = {}): Promise<KeyVaultEmulator> {
  const store = new KeyStore(options.persistPath, options);
  const { tenantId, clientId } = store;
  const identityHeader = randomBytes(24).toString("base64url");
  const tokens = new AccessTokenIssuer(store.tokenSecret, tenantId, options.tokenLifetimeSeconds ?? 3600);
  let permissions = new Set<KeyPermission>(options.permissions ?? ALL_KEY_PERMISSIONS);
  const deletionPendingPolls = options.deletionPendingPolls ?? 0;
  const faults: { status: number; remaining: number; retryAfterSeconds: number }[] = [];

  const pems = await generateCertificate([{ name: "commonName", value: "localhost" }], {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    notAfterDate: new Date(Date.now() + 30 * 86_400_000),
    extensions: [
      { name: "basicConstraints", cA: true },
      { name: "keyUsage", digitalSignature: true, keyCertSign: true },
      { name: "extKeyUsage", serverAuth: true },
      {
        name: "subjectAltName",
        altNames: [
          { type: 2, value: "localhost" },
          { type: 7, ip: "127.0.0.1" },
          { type: 7, ip: "::1" },
        ],
      },
    ],
  });

  const vault = createHttpsServer({ key: pems.private, cert: pems.cert }, (req, res) => {
    void handleVault(req, res);
  });
  const identity = createHttpServer((req, res) => {
    void handleIdentity(req, res);
  });

  async function handleVault(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const text = await readBody(req);
      const url = new URL(req.url ?? "/", "https://placeholder");
      const base = `https://${req.headers.host ?? `127.0.0.1:${(vault.address() as AddressInfo).port}`}`;
      const identityClaims = await authenticate(req);
      checkApiVersion(url);
      const fault = faults[0];
      if (fault !== undefined) {
        fault.remaining -= 1;
        if (fault.remaining <= 0) faults.shift();
        throw faultFailure(fault.status, fault.retryAfterSeconds);
      }
      const answer = route(req.method ?? "GET", url, parseJson(text), base, identityClaims);
      send(res, answer.status, answer.body);
    } catch (error) {
      if (error instanceof RestFailure) {
        const payload: RestErrorBody = { error: { code: error.code, message: error.message } };
        if (error.innerCode !== undefined) payload.error.innererror = { code: error.innerCode };
        send(res, error.status, payload, error.headers);
      } else {
        send(res, 500, {
          error: { code: "InternalServerError", message: "The emulator failed to process the request." },
        });
      }
    }
  }

  async function authenticate(req: IncomingMessage): Promise<{ clientId: string }> {
    const challenge = {
      "WWW-Authenticate": `Bearer authorization="https://login.microsoftonline.com/${tenantId}", resource="${KEY_VAULT_RESOURCE}"`,
    };
    const header = req.headers.authorization;
    if (header === undefined || !/^Bearer\s+\S+/i.test(header)) {
      throw new RestFailure(401, "Unauthorized", "AKV10000: Request is missing a Bearer, PoP, or MTLS_POP token.", {
        headers: challenge,
      });
    }
    try {
      return await tokens.verify(header.replace(/^Bearer\s+/i, "").trim());
    } catch (error) {
      if (error instanceof AccessTokenRefusal)
        throw new RestFailure(401, "Unauthorized", error.message, { headers: challenge });
      throw error;
    }
  }

  function route(
    method: string,
    url: URL,
    body: unknown,
    base: string,
    caller: { clientId: string },
  ): { status: number; body: unknown } {
    const segments = url.pathname.split("/").slice(1).map(decodeURIComponent);
    const [collection, name, third, fourth, ...rest] = segments;
    const allow = (permission: KeyPermission): void => {
      if (!permissions.has(permission)) {
        throw new RestFailure(
          403,
          "Forbidden",
          `The user, group or application 'appid=${caller.clientId};iss=https://sts.windows.net/${tenantId}/' does not have keys ${permission.toLowerCase()} permission on key vault '${new URL(base).host}'.`,
          { innerCode: "AccessDenied" },
        );
      }
    };
    if (rest.length > 0) throw notFoundPath(url);

    if (collection === "keys" && name === undefined && method === "GET") {
      allow("list");
      return {
        status: 200,
        body: page(
          store.list().map((key) => listItem(base, key, latest(key), false)),
          url,
          base,
          "/keys",
        ),
      };
    }
    if (collection === "keys" && name !== undefined) {
      checkName(name);
      if (method === "POST" && third === "create" && fourth === undefined) {
        allow("create");
        return { status: 200, body: createKey(name, body, base) };
      }
      if (method === "POST" && third === "rotate" && fourth === undefined) {
        allow("rotate");
        const key = liveKey(name);
        const current = latest(key);
        const params: Parameters<KeyStore["addVersion"]>[1] = { kty: current.kty, keyOps: [...current.keyOps] };
        if (current.crv !== undefined) params.crv = current.crv;
        if (current.keySize !== undefined) params.keySize = current.keySize;
        if (current.tags !== undefined) params.tags = current.tags;
        const version = store.addVersion(name, params);
        return { status: 200, body: keyBundle(base, key, version) };
      }
      if (method === "GET" && third === "versions" && fourth === undefined) {
        allow("list");
        const key = liveKey(name);
        return {
          status: 200,
          body: page(
            key.versions.map((v) => listItem(base, key, v, true)),
            url,
            base,
            `/keys/${name}/versions`,
          ),
        };
      }
      if (method === "DELETE" && (third === undefined || third === "") && fourth === undefined) {
        allow("delete");
        const key = liveKey(name);
        store.softDelete(key, deletionPendingPolls);
        return { status: 200, body: deletedBundle(base, key) };
      }
      if ((method === "GET" || method === "PATCH") && fourth === undefined) {
        const key = liveKey(name);
        const version = findVersion(key, third ?? "");
        if (method === "GET") {
          allow("get");
          return { status: 200, body: keyBundle(base, key, version) };
        }
        allow("update");
        store.update(version, parseUpdate(body));
        return { status: 200, body: keyBundle(base, key, version) };
      }
      if (method === "POST" && third !== undefined && fourth !== undefined) {
        const operation = fourth.toLowerCase();
        const key = liveKey(name);
        const version = findVersion(key, third);
        return { status: 200, body: cryptoOperation(operation, base, key, version, body, allow) };
      }
    }
    if (collection === "deletedkeys" && name !== undefined) {
      checkName(name);
      const key = store.get(name);
      const deleted = (): StoredKey => {
        if (key?.deleted === undefined || store.consumePendingPoll(key)) {
          throw new RestFailure(404, "KeyNotFound", `Deleted Key not found: ${name}`);
        }
        return key;
      };
      if (method === "GET" && third === undefined) {
        allow("get");
        return { status: 200, body: deletedBundle(base, deleted()) };
      }
      if (method === "DELETE" && third === undefined) {
        allow("purge");
        deleted();
        store.purge(name);
        return { status: 204, body: undefined };
      }
      if (method === "POST" && third === "recover" && fourth === undefined) {
        allow("recover");
        const found = deleted();
        store.recover(found);
        return { status: 200, body: keyBundle(base, found, latest(found)) };
      }
    }
    throw notFoundPath(url);
  }

  function createKey(name: string, body: unknown, base: string): unknown {
    const request = asObject(body, "create key");
    const kty = request.kty;
    if (kty !== "EC" && kty !== "EC-HSM" && kty !== "RSA" && kty !== "RSA-HSM") {
      throw new RestFailure(400, "BadParameter", `Invalid kty: '${String(kty)}'. Supported: EC, EC-HSM, RSA, RSA-HSM.`);
    }
    const isEc = kty.startsWith("EC");
    const crv = request.crv ?? (isEc ? "P-256" : undefined);
    if (isEc && crv !== "P-256" && crv !== "P-256K") {
      throw new RestFailure(
        400,
        "BadParameter",
        `The curve '${String(crv)}' is not supported by this vault (P-256, P-256K).`,
      );
    }
    const keySize = request.key_size ?? (isEc ? undefined : 2048);
    if (!isEc && keySize !== 2048 && keySize !== 3072 && keySize !== 4096) {
      throw new RestFailure(400, "BadParameter", `Invalid key_size: ${String(keySize)}. Supported: 2048, 3072, 4096.`);
    }
    const attributes = request.attributes === undefined ? {} : asObject(request.attributes, "attributes");
    const existing = store.get(name);
    if (existing?.deleted !== undefined) {
      throw new RestFailure(
        409,
        "Conflict",
        `Key ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged.`,
        {
          innerCode: "ObjectIsDeletedButRecoverable",
        },
      );
    }
    const params: Parameters<KeyStore["addVersion"]>[1] = { kty: kty as EmulatedKeyType };
    if (isEc) params.crv = crv as EmulatedCurve;
    if (keySize !== undefined) params.keySize = keySize as number;
    if (Array.isArray(request.key_ops)) params.keyOps = request.key_ops.map(String);
    if (typeof attributes.enabled === "boolean") params.enabled = attributes.enabled;
    if (typeof attributes.nbf === "number") params.nbf = attributes.nbf;
    if (typeof attributes.exp === "number") params.exp = attributes.exp;
    if (typeof attributes.exportable === "boolean") params.exportable = attributes.exportable;
    if (request.tags !== undefined) params.tags = asObject(request.tags, "tags") as Record<string, string>;
    const version = store.addVersion(name, params);
    return keyBundle(base, store.get(name) as StoredKey, version);
  }

  function cryptoOperation(
    operation: string,
    base: string,
    key: StoredKey,
    version: StoredKeyVersion,
    body: unknown,
    allow: (permission: KeyPermission) => void,
  ): unknown {
    const permission = (
      {
        sign: "sign",
        verify: "verify",
        wrapkey: "wrapKey",
        unwrapkey: "unwrapKey",
        encrypt: "encrypt",
        decrypt: "decrypt",
      } as const
    )[operation as "sign"];
    if (permission === undefined)
      throw new RestFailure(404, "NotFound", `The operation '${operation}' is not supported by this vault.`);
    allow(permission);
    const request = asObject(body, operation);
    const kid = versionKid(base, key, version);
    usable(version, permission);
    if (permission === "sign" || permission === "verify") {
      const alg = request.alg as SignatureAlgorithm;
      if (!SIGNATURE_ALGORITHMS.includes(alg))
        throw new RestFailure(400, "BadParameter", `Invalid algorithm: ${String(request.alg)}.`);
      if (!algorithmFitsKey(alg, version.kty, version.crv)) {
        throw new RestFailure(400, "BadParameter", "Key and signing algorithm are incompatible.");
      }
      const digest = base64url(
        permission === "sign" ? request.value : request.digest,
        permission === "sign" ? "value" : "digest",
      );
      if (digest.length !== DIGEST_LENGTH) {
        throw new RestFailure(
          400,
          "BadParameter",
          `Invalid digest length for ${alg}: expected ${DIGEST_LENGTH} bytes, got ${digest.length}.`,
        );
      }
      if (permission === "sign") {
        return { kid, value: Buffer.from(signDigest(version.privateJwk, alg, digest)).toString("base64url") };
      }
      return { value: verifyDigest(publicJwk(version), alg, digest, base64url(request.value, "value")) };
    }
    const alg = request.alg;
    if (!ENCRYPTION_ALGORITHMS.includes(alg as "RSA-OAEP"))
      throw new RestFailure(400, "BadParameter", `Invalid algorithm: ${String(alg)}.`);
    if (!version.kty.startsWith("RSA"))
      throw new RestFailure(400, "BadParameter", "Key and encryption algorithm are incompatible.");
    const oaepHash = alg === "RSA-OAEP-256" ? "sha256" : "sha1";
    const value = base64url(request.value, "value");
    if (permission === "wrapKey" || permission === "encrypt") {
      const publicKey = createPublicKey({ key: publicJwk(version) as JsonWebKey, format: "jwk" });
      try {
        return {
          kid,
          value: publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash }, value).toString(
            "base64url",
          ),
        };
      } catch {
        throw new RestFailure(400, "BadParameter", "The value is too long for this key and algorithm.");
      }
    }
    const privateKey = createPrivateKey({ key: version.privateJwk, format: "jwk" });
    try {
      return {
        kid,
        value: privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash }, value).toString(
          "base64url",
        ),
      };
    } catch {
      throw new RestFailure(400, "BadParameter", "Decryption failed.");
    }
  }

  async function handleIdentity(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      await readBody(req);
      const url = new URL(req.url ?? "/", "http://placeholder");
      if (url.pathname !== "/msi/token" || req.method !== "GET") {
        send(res, 404, { statusCode: 404, message: "Not found", correlationId: randomUUID() });
        return;
      }
      if (req.headers["x-identity-header"] !== identityHeader) {
        send(res, 401, {
          statusCode: 401,
          message: "Unauthorized: the X-IDENTITY-HEADER is missing or wrong",
          correlationId: randomUUID(),
        });
        return;
      }
      const resource = url.searchParams.get("resource");
      const requestedClient = url.searchParams.get("client_id") ?? url.searchParams.get("clientid");
      if (resource === null || resource === "") {
        send(res, 400, { statusCode: 400, message: "Missing resource parameter", correlationId: randomUUID() });
        return;
      }
      if (requestedClient !== null && requestedClient !== clientId) {
        send(res, 400, {
          statusCode: 400,
          message: `No managed identity with client id ${requestedClient}`,
          correlationId: randomUUID(),
        });
        return;
      }
      const { token, expiresOn } = await tokens.issue(resource.replace(/\/\.default$/, ""), clientId);
      send(res, 200, {
        access_token: token,
        expires_on: String(expiresOn),
        resource,
        token_type: "Bearer",
        client_id: clientId,
      });
    } catch {
      send(res, 500, { statusCode: 500, message: "Internal error" });
    }
  }

  await listen(vault, options.port ?? 0);
  await listen(identity, options.identityPort ?? 0);
  const vaultPort = (vault.address() as AddressInfo).port;
  const identityPort = (identity.address() as AddressInfo).port;

  return {
    vaultUrl: `https://127.0.0.1:${vaultPort}`,
    ca: pems.cert,
    identityEndpoint: `http://127.0.0.1:${identityPort}/msi/token`,
    identityHeader,
    tenantId,
    clientId,
    setPermissions(next) {
      permissions = new Set(next);
    },
    ensureKey(name, spec) {
      if (!KEY_NAME.test(name)) throw new Error(`invalid key name ${name.slice(0, 130)}`);
      const existing = store.get(name);
      if (existing?.deleted !== undefined) throw new Error(`key ${name} is deleted`);
      const version =
        existing !== undefined
          ? latest(existing)
          : store.addVersion(
              name,
              spec.kty === "EC" ? { kty: "EC", crv: spec.crv } : { kty: "RSA", keySize: spec.keySize },
            );
      return {
        kid: `https://127.0.0.1:${vaultPort}/keys/${name}/${version.version}`,
        version: version.version,
        created: existing === undefined,
      };
    },
    injectFault(fault) {
      faults.push({
        status: fault.status,
        remaining: fault.count ?? 1,
        retryAfterSeconds: fault.retryAfterSeconds ?? 1,
      });
    },
    async close() {
      await Promise.all([stop(vault), stop(identity)]);
    },
  };

  function liveKey(name: string): StoredKey {
    const key = store.get(name);
    if (key === undefined || key.deleted !== undefined) {
      throw new RestFailure(
        404,
        "KeyNotFound",
        `A key with (name/id) ${name} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command.`,
      );
    }
    return key;
  }

  function findVersion(key: StoredKey, version: string): StoredKeyVersion {
    if (version === "") return latest(key);
    const found = KEY_VERSION.test(version) ? key.versions.find((v) => v.version === version) : undefined;
    if (found === undefined) {
      throw new RestFailure(
        404,
        "KeyNotFound",
        `A key with (name/id) ${key.name}/${version} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command.`,
      );
    }
    return found;
  }
}

function latest(key: StoredKey): StoredKeyVersion {
  return key.versions[key.versions.length - 1] as StoredKeyVersion;
}

function checkName(name: string): void {
  if (!KEY_NAME.test(name)) {
    throw new RestFailure(
      400,
      "BadParameter",
      `The key name '${name.slice(0, 130)}' is invalid: use 1 to 127 letters, digits and dashes.`,
    );
  }
}

function checkApiVersion(url: URL): void {
  const versions = url.searchParams.getAll("api-version");
  if (versions.length === 0)
    throw new RestFailure(
      400,
      "BadParameter",
      "The api-version query parameter (?api-version=) is required for all requests.",
    );
  const wrong = versions.find((v) => v !== KEY_VAULT_API_VERSION);
  if (wrong !== undefined) {
    throw new RestFailure(
      400,
      "BadParameter",
      `The specified version (${wrong.slice(0, 40)}) is not recognized. Consider using the latest supported version (${KEY_VAULT_API_VERSION}).`,
    );
  }
}

function usable(version: StoredKeyVersion, permission: string): void {
  const now = Math.floor(Date.now() / 1000);
  const { enabled, nbf, exp } = version.attributes;
  if (!enabled)
    throw new RestFailure(403, "Forbidden", `Operation ${permission.toLowerCase()} is not allowed on a disabled key.`, {
      innerCode: "KeyDisabled",
    });
  if ((nbf !== undefined && now < nbf) || (exp !== undefined && now >= exp)) {
    throw new RestFailure(
      403,
      "Forbidden",
      `Operation ${permission.toLowerCase()} is not allowed on an expired or not yet valid key.`,
      { innerCode: "KeyExpiredOrNotYetValid" },
    );
  }
  if (!version.keyOps.includes(permission)) {
    throw new RestFailure(403, "Forbidden", `Operation ${permission} is not permitted on this key.`, {
      innerCode: "KeyOperationForbidden",
    });
  }
}

function faultFailure(status: number, retryAfterSeconds: number): RestFailure {
  if (status === 429) {
    return new RestFailure(
      429,
      "Throttled",
      "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
      {
        headers: { "Retry-After": String(retryAfterSeconds) },
      },
    );
  }
  const code =
    status === 503
      ? "ServiceUnavailable"
      : status === 502
        ? "BadGateway"
        : status === 504
          ? "GatewayTimeout"
          : "InternalServerError";
  return new RestFailure(status, code, "The service is temporarily unavailable (injected fault).");
}

function notFoundPath(url: URL): RestFailure {
  return new RestFailure(
    404,
    "NotFound",
    `The requested path ${url.pathname.slice(0, 200)} is not a Key Vault keys operation.`,
  );
}

function asObject(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new RestFailure(400, "BadParameter", `The request body of ${what} must be a JSON object.`);
  }
  return value as Record<string, unknown>;
}

function base64url(value: unknown, field: string): Buffer {
  if (typeof value !== "string" || !/^[A-Za-z0-9_-]*={0,2}$/.test(value)) {
    throw new RestFailure(400, "BadParameter", `Property '${field}' must be a base64url string.`);
  }
  return Buffer.from(value, "base64url");
}

function parseUpdate(body: unknown): Parameters<KeyStore["update"]>[1] {
  const request = asObject(body, "update key");
  const change: Parameters<KeyStore["update"]>[1] = {};
  if (request.attributes !== undefined) {
    const attributes = asObject(request.attributes, "attributes");
    if (typeof attributes.enabled === "boolean") change.enabled = attributes.enabled;
    if (typeof attributes.nbf === "number") change.nbf = attributes.nbf;
    if (typeof attributes.exp === "number") change.exp = attributes.exp;
  }
  if (Array.isArray(request.key_ops)) change.keyOps = request.key_ops.map(String);
  if (request.tags !== undefined) change.tags = asObject(request.tags, "tags") as Record<string, string>;
  return change;
}

function versionKid(base: string, key: StoredKey, version: StoredKeyVersion): string {
  return `${base}/keys/${key.name}/${version.version}`;
}

/** The public JWK in Key Vault's names (`P-256K` for secp256k1). */
function publicJwk(version: StoredKeyVersion): Record<string, unknown> {
  const { kty, crv, x, y, n, e } = version.privateJwk;
  if (kty === "EC") return { kty: "EC", crv: crv === "secp256k1" ? "P-256K" : crv, x, y };
  return { kty: "RSA", n, e };
}

function attributesOf(version: StoredKeyVersion): Record<string, unknown> {
  const { enabled, nbf, exp, created, updated, exportable } = version.attributes;
  const out: Record<string, unknown> = { enabled };
  if (nbf !== undefined) out.nbf = nbf;
  if (exp !== undefined) out.exp = exp;
  if (version.keySize !== undefined) out.key_size = version.keySize;
  Object.assign(out, {
    created,
    updated,
    recoveryLevel: RECOVERY_LEVEL,
    recoverableDays: RECOVERABLE_DAYS,
    exportable,
    hsmPlatform: "0",
  });
  return out;
}

function keyBundle(base: string, key: StoredKey, version: StoredKeyVersion): Record<string, unknown> {
  const jwk = publicJwk(version);
  const { kty, ...material } = jwk;
  const bundle: Record<string, unknown> = {
    key: {
      kid: versionKid(base, key, version),
      kty: version.kty === "EC" || version.kty === "RSA" ? kty : version.kty,
      key_ops: version.keyOps,
      ...material,
    },
    attributes: attributesOf(version),
  };
  if (version.tags !== undefined) bundle.tags = version.tags;
  return bundle;
}

function deletedBundle(base: string, key: StoredKey): Record<string, unknown> {
  const deleted = key.deleted as NonNullable<StoredKey["deleted"]>;
  return {
    recoveryId: `${base}/deletedkeys/${key.name}`,
    deletedDate: deleted.deletedDate,
    scheduledPurgeDate: deleted.scheduledPurgeDate,
    ...keyBundle(base, key, latest(key)),
  };
}

function listItem(
  base: string,
  key: StoredKey,
  version: StoredKeyVersion,
  withVersion: boolean,
): Record<string, unknown> {
  const item: Record<string, unknown> = {
    kid: withVersion ? versionKid(base, key, version) : `${base}/keys/${key.name}`,
    attributes: attributesOf(version),
  };
  if (version.tags !== undefined) item.tags = version.tags;
  return item;
}

/** A page of a list (`value`, `nextLink`), `maxresults` 1 to 25 (default 25), continued by `$skiptoken`. */
function page(items: unknown[], url: URL, base: string, path: string): { value: unknown[]; nextLink: string | null } {
  const maxRaw = url.searchParams.get("maxresults");
  const max = maxRaw === null ? 25 : Number(maxRaw);
  if (!Number.isInteger(max) || max < 1 || max > 25)
    throw new RestFailure(400, "BadParameter", `Invalid maxresults: ${String(maxRaw).slice(0, 20)} (1 to 25).`);
  const skipRaw = url.searchParams.get("$skiptoken");
  const skip = skipRaw === null ? 0 : Number(Buffer.from(skipRaw, "base64url").toString("utf8"));
  if (!Number.isInteger(skip) || skip < 0) throw new RestFailure(400, "BadParameter", "Invalid $skiptoken.");
  const value = items.slice(skip, skip + max);
  const next = skip + max;
  const nextLink =
    next < items.length
      ? `${base}${path}?api-version=${KEY_VAULT_API_VERSION}&$skiptoken=${Buffer.from(String(next)).toString("base64url")}&maxresults=${max}`
      : null;
  return { value, nextLink };
}

function parseJson(text: string): unknown {
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new RestFailure(400, "BadParameter", "The request body is not valid JSON.");
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on("error", reject);
    req.on("end", () => {
      if (tooLarge) {
        reject(new RestFailure(413, "RequestEntityTooLarge", `The request body exceeds ${MAX_BODY_BYTES} bytes.`));
        return;
      }
      resolve(Buffer.concat(chunks).toString("utf8"));
    });
  });
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = body === undefined ? "" : JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    ...(body === undefined ? {} : { "Content-Type": "application/json; charset=utf-8" }),
    "Content-Length": Buffer.byteLength(text),
    "Cache-Control": "no-cache",
    "x-ms-keyvault-service-version": "emulator",
    "x-ms-request-id": randomUUID(),
  });
  res.end(text);
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
}

function stop(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
