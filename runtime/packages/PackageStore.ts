/**
 * The package store in Redis: deployed packages by `name@version`, by `codeHash` and by `cryptletId`. Versions
 * are immutable. The key layout is documented in `docs/packages.md` ("Package store").
 */
import type { Cluster, Redis } from "ioredis";
import type { JSONWebKeySet, JWK } from "jose";
import canonicalizeModule from "canonicalize";
import semver from "semver";
import { LRUCache } from "lru-cache";
import { BUNDLE_FILE, assembleBuiltPackage } from "./builtPackage.ts";
import type { BuiltPackage } from "./builtPackage.ts";
import { cryptletIdOf as computeCryptletId } from "../attestation/ids.ts";
import type { Hex32 } from "../attestation/eip712.ts";
import { PackageInvalidError, PackageNotFoundError, PackageVersionExistsError } from "./errors.ts";
import { verifyPackageSignature } from "./signature.ts";
import { loadLuaScript, runLuaScript } from "../queue/luaScript.ts";

const canonicalize = (
  typeof canonicalizeModule === "function"
    ? canonicalizeModule
    : (canonicalizeModule as unknown as { default: (input: unknown) => string | undefined }).default
) as (input: unknown) => string | undefined;

/** Default key prefix. The `{…}` hash tag puts every key of the store in one Redis Cluster slot. */
export const DEFAULT_PACKAGE_STORE_PREFIX = "{cryptlet-packages}:";

/** Options of {@link PackageStore}. */
export interface PackageStoreOptions {
  /** A connected ioredis client (or Cluster). The store does not close it. */
  redis: Redis | Cluster;
  /** Publisher keys trusted to sign packages: public EC P-256 JWKs with a `kid`, as an array or a JWKS. */
  trustedPublisherKeys: readonly JWK[] | JSONWebKeySet;
  /**
   * Prefix of every key. Default `{cryptlet-packages}:`. On Redis Cluster it must contain a hash tag (`{…}`)
   * so that the deploy script's keys share a slot.
   */
  prefix?: string;
  /** Largest total size of a package's files, in bytes. Default 5242880 (5 MiB). */
  maxPackageBytes?: number;
  /**
   * Bytes of verified packages kept in this process, by `codeHash` (least recently used out first). A `codeHash`
   * names its bytes for ever, so a cached package is the one Redis holds; only the version record (signature,
   * `kid`, `deployedAt`) and the lookups that lead to the `codeHash` are read from Redis on every call. 0 turns
   * the cache off. Default 67108864 (64 MiB).
   */
  cacheBytes?: number;
}

/** What `deploy` takes: a manifest and files (a `BuiltPackage` qualifies; its `codeHash` is not trusted). */
export interface DeployablePackage {
  readonly manifest: unknown;
  readonly files: Readonly<Record<string, Uint8Array>>;
}

/** The outcome of a deploy. */
export interface DeployResult {
  /** `true` when this call stored the version; `false` when the same bytes were already deployed (idempotent). */
  created: boolean;
  name: string;
  version: string;
  codeHash: Hex32;
  cryptletId: Hex32;
}

/** A deployed package: the built package plus its publisher signature and deploy time. */
export interface StoredPackage extends BuiltPackage {
  /** The publisher's compact JWS, as deployed. */
  readonly signature: string;
  /** The trusted publisher key that signed it. */
  readonly publisherKid: string;
  /** When it was first deployed, Unix time in milliseconds. */
  readonly deployedAt: number;
}

/** One package in {@link PackageStore.list}. */
export interface PackageSummary {
  name: string;
  cryptletId: Hex32;
  /** Deployed versions, ascending by semver precedence. */
  versions: string[];
  /** The version `get(name)` returns: the highest release, or the highest pre-release when there is no release. */
  latest: string;
}

const DEPLOY_SCRIPT = loadLuaScript(new URL("./lua/deployPackage-5.lua", import.meta.url));

type DeployReply = [number, string];

/** Orders versions by semver precedence (ascending). */
function sortVersions(versions: readonly string[]): string[] {
  return [...versions].sort(semver.compare);
}

/** The highest release, else the highest pre-release. */
function latestOf(versions: readonly string[]): string | undefined {
  const sorted = sortVersions(versions);
  const releases = sorted.filter((v) => semver.prerelease(v) === null);
  return (releases.length > 0 ? releases : sorted).at(-1);
}

/**
 * The package store. Deploy validates the manifest, recomputes `codeHash` from the bytes, checks the publisher
 * signature, and stores the package atomically (one Lua script, lua/deployPackage-5.lua): of two concurrent
 * deploys of one version with different bytes exactly one wins.
 *
 * @example
 * ```ts
 * import { Redis } from "ioredis";
 * import { buildPackage } from "./runtime/packages/build.ts";
 * import { PackageStore } from "./runtime/packages/PackageStore.ts";
 * import { signPackage } from "./runtime/packages/signature.ts";
 *
 * const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
 * const store = new PackageStore({ redis, trustedPublisherKeys: { keys: [publisherPublicJwk] } });
 * const built = await buildPackage("cryptlets/price-median");
 * await store.deploy(built, await signPackage(built, publisherPrivateKey, publisherPublicJwk.kid));
 * const latest = await store.get("@cryptlet/price-median");
 * ```
 */
export class PackageStore {
  readonly #redis: Redis | Cluster;
  readonly #trusted: readonly JWK[] | JSONWebKeySet;
  readonly #prefix: string;
  readonly #maxPackageBytes: number;
  /** Packages whose bytes were checked against their `codeHash`, by `codeHash` (see `cacheBytes`). */
  readonly #verified: LRUCache<string, BuiltPackage> | undefined;

  /** @param options - see {@link PackageStoreOptions}. */
  constructor(options: PackageStoreOptions) {
    this.#redis = options.redis;
    this.#trusted = options.trustedPublisherKeys;
    this.#prefix = options.prefix ?? DEFAULT_PACKAGE_STORE_PREFIX;
    this.#maxPackageBytes = options.maxPackageBytes ?? 5 * 1024 * 1024;
    const cacheBytes = options.cacheBytes ?? 64 * 1024 * 1024;
    this.#verified =
      cacheBytes > 0
        ? new LRUCache<string, BuiltPackage>({
            maxSize: cacheBytes,
            sizeCalculation: (built) =>
              Math.max(
                1,
                Object.values(built.files).reduce((n, bytes) => n + bytes.byteLength, 0),
              ),
          })
        : undefined;
  }

  #key(kind: "code" | "version" | "versions" | "id", id: string): string {
    return `${this.#prefix}${kind}:${id}`;
  }

  get #namesKey(): string {
    return `${this.#prefix}names`;
  }

  /**
   * Deploys a package version.
   *
   * @param pkg - manifest and files (e.g. a `BuiltPackage`); `codeHash` is recomputed, never taken from it.
   * @param signature - the publisher's compact JWS over the package (see `signPackage`).
   * @returns whether it was stored now, and its identifiers.
   * @throws `ERR_MANIFEST_INVALID`, `ERR_PACKAGE_INVALID` (bad files, too large), `ERR_PUBLISHER_SIGNATURE_INVALID`,
   *   `ERR_PACKAGE_VERSION_EXISTS` (same `name@version` already stored with another `codeHash`).
   */
  async deploy(pkg: DeployablePackage, signature: string): Promise<DeployResult> {
    const built = assembleBuiltPackage(pkg.manifest, pkg.files);
    const size = Object.values(built.files).reduce((total, bytes) => total + bytes.byteLength, 0);
    if (size > this.#maxPackageBytes) {
      throw new PackageInvalidError(`package files total ${size} bytes, more than ${this.#maxPackageBytes}`, {
        bytes: size,
        maxPackageBytes: this.#maxPackageBytes,
      });
    }
    const verified = await verifyPackageSignature(built, signature, this.#trusted);
    const { name, version } = built.manifest;
    const manifestJson = canonicalize(built.manifest) ?? "";
    const fileArgs: (string | Buffer)[] = [];
    const paths = Object.keys(built.files).sort();
    for (const path of paths) fileArgs.push(path, Buffer.from(built.files[path] as Uint8Array));
    const reply = (await runLuaScript(
      this.#redis,
      DEPLOY_SCRIPT,
      [
        this.#key("version", `${name}@${version}`),
        this.#key("code", built.codeHash),
        this.#key("versions", name),
        this.#namesKey,
        this.#key("id", built.cryptletId),
      ],
      [
        built.codeHash,
        signature,
        verified.kid,
        String(Date.now()),
        name,
        version,
        manifestJson,
        String(paths.length),
        ...fileArgs,
      ],
    )) as DeployReply;
    const [status, existing] = reply;
    if (status === -1) throw new PackageVersionExistsError(name, version, existing, built.codeHash);
    return { created: status === 1, name, version, codeHash: built.codeHash, cryptletId: built.cryptletId };
  }

  /**
   * Every deployed package with its versions, sorted by name.
   * @returns one {@link PackageSummary} per name.
   */
  async list(): Promise<PackageSummary[]> {
    const names = (await this.#redis.smembers(this.#namesKey)).sort();
    const summaries: PackageSummary[] = [];
    for (const name of names) {
      const versions = sortVersions(await this.#redis.smembers(this.#key("versions", name)));
      const latest = latestOf(versions);
      if (latest === undefined) continue;
      const cryptletId = computeCryptletId(name);
      summaries.push({ name, cryptletId, versions, latest });
    }
    return summaries;
  }

  /**
   * A deployed package by name and version; without a version, the latest (highest release by semver
   * precedence, or the highest pre-release when there is no release).
   * @throws `ERR_PACKAGE_NOT_FOUND`; `ERR_PACKAGE_INVALID` when stored bytes no longer match their `codeHash`.
   */
  async get(name: string, version?: string): Promise<StoredPackage> {
    const chosen = version ?? latestOf(await this.#redis.smembers(this.#key("versions", name)));
    if (chosen === undefined) throw new PackageNotFoundError({ name });
    const record = await this.#redis.hgetall(this.#key("version", `${name}@${chosen}`));
    if (record.codeHash === undefined) throw new PackageNotFoundError({ name, version: chosen });
    return this.#load(record.codeHash, record);
  }

  /**
   * A deployed package by its measurement.
   * @param codeHash - 0x hex, 32 bytes (lower or upper case).
   * @throws `ERR_PACKAGE_NOT_FOUND`; `ERR_PACKAGE_INVALID` when stored bytes no longer match their `codeHash`.
   */
  async getByCodeHash(codeHash: string): Promise<StoredPackage> {
    const normalised = codeHash.toLowerCase();
    if (!/^0x[0-9a-f]{64}$/.test(normalised)) throw new PackageNotFoundError({ codeHash });
    const manifestText = await this.#redis.hget(this.#key("code", normalised), "manifest");
    if (manifestText === null) throw new PackageNotFoundError({ codeHash: normalised });
    const manifest = JSON.parse(manifestText) as { name: string; version: string };
    const record = await this.#redis.hgetall(this.#key("version", `${manifest.name}@${manifest.version}`));
    if (record.codeHash !== normalised) throw new PackageNotFoundError({ codeHash: normalised });
    return this.#load(normalised, record);
  }

  /**
   * The latest version (as {@link PackageStore.get}) of the package whose `keccak256(utf8(name))` is `cryptletId`.
   * @param cryptletId - 0x hex, 32 bytes.
   * @throws `ERR_PACKAGE_NOT_FOUND`.
   */
  async resolve(cryptletId: string): Promise<StoredPackage> {
    const normalised = cryptletId.toLowerCase();
    const name = /^0x[0-9a-f]{64}$/.test(normalised) ? await this.#redis.get(this.#key("id", normalised)) : null;
    if (name === null) throw new PackageNotFoundError({ cryptletId });
    return this.get(name);
  }

  async #load(codeHash: string, record: Record<string, string>): Promise<StoredPackage> {
    const built = this.#verified?.get(codeHash) ?? (await this.#loadBytes(codeHash));
    this.#verified?.set(codeHash, built);
    return {
      ...built,
      signature: record.signature ?? "",
      publisherKid: record.kid ?? "",
      deployedAt: Number(record.deployedAt),
    };
  }

  /** Reads a package's bytes from Redis and checks them against `codeHash`. */
  async #loadBytes(codeHash: string): Promise<BuiltPackage> {
    const fields = await this.#redis.hgetallBuffer(this.#key("code", codeHash));
    const manifestBytes = fields.manifest;
    if (manifestBytes === undefined) throw new PackageInvalidError("stored package has no manifest", { codeHash });
    const files: Record<string, Uint8Array> = {};
    for (const [field, bytes] of Object.entries(fields)) {
      if (field.startsWith("file:")) files[field.slice(5)] = new Uint8Array(bytes);
    }
    if (files[BUNDLE_FILE] === undefined) throw new PackageInvalidError("stored package has no bundle", { codeHash });
    const built = assembleBuiltPackage(manifestBytes.toString("utf8"), files);
    if (built.codeHash !== codeHash) {
      throw new PackageInvalidError("stored package bytes do not match their codeHash", {
        codeHash,
        recomputed: built.codeHash,
      });
    }
    return built;
  }
}
