/**
 * The Key Vault emulator's key store: named keys, each with its versions (newest last), soft-deleted keys, and
 * optional persistence to a JSON file (written atomically with file mode 0600, since it holds private keys).
 *
 * Shapes follow the Key Vault REST API 2025-07-01 ("Keys" operations): a version is 32 lowercase hex characters,
 * times are Unix seconds, `recoveryLevel` is `CustomizedRecoverable+Purgeable` with 7 recoverable days (the values
 * the recordings in `test/keys/fixtures/keyvault-recordings/` show).
 *
 * @module
 */
import { generateKeyPairSync, randomBytes, randomUUID } from "node:crypto";
import type { JsonWebKey } from "node:crypto";
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";

/** Key types the emulator creates (`kty` of the create request; `-HSM` variants behave the same here). */
export type EmulatedKeyType = "EC" | "EC-HSM" | "RSA" | "RSA-HSM";
/** Curves the emulator creates, in Key Vault's names. */
export type EmulatedCurve = "P-256" | "P-256K";

/** Key Vault key attributes (REST `KeyAttributes`); times in Unix seconds. */
export interface EmulatedKeyAttributes {
  enabled: boolean;
  nbf?: number;
  exp?: number;
  created: number;
  updated: number;
  exportable: boolean;
}

/** One key version as stored: the private JWK never leaves the emulator process (and its file). */
export interface StoredKeyVersion {
  /** 32 lowercase hex characters. */
  version: string;
  kty: EmulatedKeyType;
  crv?: EmulatedCurve;
  /** RSA modulus length in bits. */
  keySize?: number;
  keyOps: string[];
  attributes: EmulatedKeyAttributes;
  tags?: Record<string, string>;
  /** The private key as a JWK (Node's export; EC curve names are Node's: `P-256`, `secp256k1`). */
  privateJwk: JsonWebKey;
}

/** A named key: its versions, oldest first, and its soft-delete state. */
export interface StoredKey {
  name: string;
  versions: StoredKeyVersion[];
  /** Set while the key is soft-deleted (Unix seconds). */
  deleted?: { deletedDate: number; scheduledPurgeDate: number; pendingPolls: number };
}

/** Days a deleted key can be recovered, as the recorded vault reports (`recoverableDays`). */
export const RECOVERABLE_DAYS = 7;
/** The recovery level the recorded vault reports. */
export const RECOVERY_LEVEL = "CustomizedRecoverable+Purgeable";

/** Parameters of a new key (from the REST create request, already validated). */
export interface NewKeyParameters {
  kty: EmulatedKeyType;
  crv?: EmulatedCurve;
  keySize?: number;
  keyOps?: string[];
  enabled?: boolean;
  nbf?: number;
  exp?: number;
  exportable?: boolean;
  tags?: Record<string, string>;
}

interface StoreFile {
  format: "cryptlet-keyvault-emulator/1";
  /** Secret for the emulator's access tokens (base64url), so tokens survive a restart of a persisted emulator. */
  tokenSecret: string;
  /** The emulated tenant and managed identity, kept so that tokens and challenges stay the same across runs. */
  tenantId: string;
  clientId: string;
  keys: StoredKey[];
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/**
 * In-memory key store with optional JSON-file persistence.
 */
export class KeyStore {
  readonly #keys = new Map<string, StoredKey>();
  readonly #persistPath: string | undefined;
  /** Secret (32 bytes) for signing access tokens; persisted with the keys. */
  readonly tokenSecret: Uint8Array;
  /** The emulated tenant (a UUID); persisted. */
  readonly tenantId: string;
  /** The emulated managed identity's client id (a UUID); persisted. */
  readonly clientId: string;

  /**
   * @param persistPath - JSON file to load from (when it exists) and save to after every change; omitted: memory only.
   * @param identity - the access-token secret, tenant and client id to use instead of the persisted (or new random)
   *   ones.
   * @throws Error when the file exists but is not an emulator store.
   */
  constructor(persistPath?: string, identity: { tokenSecret?: Uint8Array; tenantId?: string; clientId?: string } = {}) {
    this.#persistPath = persistPath;
    let secret: Uint8Array | undefined;
    let persisted: Partial<StoreFile> = {};
    if (persistPath !== undefined && existsSync(persistPath)) {
      const file = JSON.parse(readFileSync(persistPath, "utf8")) as Partial<StoreFile>;
      if (
        file.format !== "cryptlet-keyvault-emulator/1" ||
        !Array.isArray(file.keys) ||
        typeof file.tokenSecret !== "string"
      ) {
        throw new Error(`${persistPath} is not a Key Vault emulator store (format cryptlet-keyvault-emulator/1)`);
      }
      for (const key of file.keys) this.#keys.set(key.name, key);
      secret = Buffer.from(file.tokenSecret, "base64url");
      persisted = file;
    }
    this.tokenSecret = identity.tokenSecret ?? secret ?? randomBytes(32);
    this.tenantId = identity.tenantId ?? persisted.tenantId ?? randomUUID();
    this.clientId = identity.clientId ?? persisted.clientId ?? randomUUID();
    this.#save();
  }

  /** The key (deleted or not), or undefined. */
  get(name: string): StoredKey | undefined {
    return this.#keys.get(name);
  }

  /** All keys that are not deleted, in creation order. */
  list(): StoredKey[] {
    return [...this.#keys.values()].filter((key) => key.deleted === undefined);
  }

  /**
   * Adds a new version to `name` (creating the key when absent): REST "Create Key" and "Rotate Key".
   * @throws Error when the key is soft-deleted (the caller answers 409 Conflict).
   */
  addVersion(name: string, params: NewKeyParameters): StoredKeyVersion {
    const existing = this.#keys.get(name);
    if (existing?.deleted !== undefined) throw new Error("key is deleted");
    const now = nowSeconds();
    const family = params.kty.startsWith("EC") ? "EC" : "RSA";
    const keySize = family === "RSA" ? (params.keySize ?? 2048) : undefined;
    const privateJwk =
      family === "EC"
        ? generateKeyPairSync("ec", { namedCurve: params.crv === "P-256K" ? "secp256k1" : "P-256" }).privateKey.export({
            format: "jwk",
          })
        : generateKeyPairSync("rsa", { modulusLength: keySize ?? 2048 }).privateKey.export({ format: "jwk" });
    const attributes: EmulatedKeyAttributes = {
      enabled: params.enabled ?? true,
      created: now,
      updated: now,
      exportable: params.exportable ?? false,
    };
    if (params.nbf !== undefined) attributes.nbf = params.nbf;
    if (params.exp !== undefined) attributes.exp = params.exp;
    const version: StoredKeyVersion = {
      version: randomBytes(16).toString("hex"),
      kty: params.kty,
      keyOps:
        params.keyOps ??
        (family === "EC" ? ["sign", "verify"] : ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"]),
      attributes,
      privateJwk,
    };
    if (params.crv !== undefined && family === "EC") version.crv = params.crv;
    if (keySize !== undefined) version.keySize = keySize;
    if (params.tags !== undefined) version.tags = params.tags;
    if (existing) existing.versions.push(version);
    else this.#keys.set(name, { name, versions: [version] });
    this.#save();
    return version;
  }

  /** Applies an attribute/tag update to one version (REST "Update Key"). */
  update(
    version: StoredKeyVersion,
    change: { enabled?: boolean; nbf?: number; exp?: number; keyOps?: string[]; tags?: Record<string, string> },
  ): void {
    if (change.enabled !== undefined) version.attributes.enabled = change.enabled;
    if (change.nbf !== undefined) version.attributes.nbf = change.nbf;
    if (change.exp !== undefined) version.attributes.exp = change.exp;
    if (change.keyOps !== undefined) version.keyOps = change.keyOps;
    if (change.tags !== undefined) version.tags = change.tags;
    version.attributes.updated = nowSeconds();
    this.#save();
  }

  /**
   * Soft-deletes a key (REST "Delete Key").
   * @param pendingPolls - how many `GET /deletedkeys/{name}` answer 404 before the deletion shows (the real
   *   service completes deletion asynchronously).
   */
  softDelete(key: StoredKey, pendingPolls: number): void {
    const now = nowSeconds();
    key.deleted = { deletedDate: now, scheduledPurgeDate: now + RECOVERABLE_DAYS * 86_400, pendingPolls };
    this.#save();
  }

  /** Ends a soft delete (REST "Recover Deleted Key"). */
  recover(key: StoredKey): void {
    delete key.deleted;
    this.#save();
  }

  /** Removes a key for good (REST "Purge Deleted Key"). */
  purge(name: string): void {
    this.#keys.delete(name);
    this.#save();
  }

  /** Counts one poll of a pending deletion; true while the deletion is still invisible. */
  consumePendingPoll(key: StoredKey): boolean {
    if (key.deleted === undefined || key.deleted.pendingPolls <= 0) return false;
    key.deleted.pendingPolls -= 1;
    return true;
  }

  #save(): void {
    if (this.#persistPath === undefined) return;
    const file: StoreFile = {
      format: "cryptlet-keyvault-emulator/1",
      tokenSecret: Buffer.from(this.tokenSecret).toString("base64url"),
      tenantId: this.tenantId,
      clientId: this.clientId,
      keys: [...this.#keys.values()],
    };
    const temporary = `${this.#persistPath}.${process.pid}.tmp`;
    writeFileSync(temporary, JSON.stringify(file), { mode: 0o600 });
    chmodSync(temporary, 0o600);
    renameSync(temporary, this.#persistPath);
  }
}
