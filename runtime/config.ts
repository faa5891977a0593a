/**
 * The runtime configuration file (`cryptlet.config.json`): Redis, the consortium, the keys, the chains, the
 * trusted package publishers. Every process of a deployment (API, workers) reads the same file; pointing the
 * runtime at real chains and a real Key Vault is a change of this file only. Validated with a JSON Schema
 * (ajv): mistakes are reported with their path (`ERR_RUNTIME_CONFIG_INVALID`).
 *
 * @module
 */
import { readFileSync } from "node:fs";
import path from "node:path";

import { Ajv, type ErrorObject } from "ajv";
import type { JWK } from "jose";

import { ROLES, type Role } from "./api/auth.ts";
import { SIGNER_REF_SCHEMA, parseChainsConfig, type ChainConfig, type SignerRef } from "./chains/config.ts";
import { DEFAULT_RPC_BREAKER, type RpcBreakerPolicy } from "./chains/rpc.ts";
import { CONSORTIUM_CONFIG_SCHEMA, checkConsortiumSettings, type ConsortiumConfig } from "./consortium/settings.ts";
import { CryptletError, ERR_RUNTIME_CONFIG_INVALID } from "./errors.ts";
import { redactUrl } from "./redact.ts";
import type { BacklogLimits } from "./queue/backlog.ts";
import { MAX_MICRO_BATCH, type MicroBatchSettings } from "./queue/microBatch.ts";
import type { RedisClusterSettings } from "./queue/redisClient.ts";
import { DEFAULT_RETENTION_SECONDS } from "./queue/results.ts";
import { DEFAULT_DEPENDENCY_POLICIES, type DependencyPolicy } from "./resilience/dependency.ts";
import type { TelemetryConfig } from "./telemetry/tracing.ts";

/** A key the runtime uses: in Azure Key Vault (production) or a local JWK file (development). */
export type KeyRef = SignerRef;

/** The normalised runtime configuration. */
export interface RuntimeConfig {
  /** Redis for BullMQ and the stores. Default `redis://127.0.0.1:6379` (or `REDIS_URL`). */
  redisUrl: string;
  /**
   * A Redis Cluster in place of `redisUrl`: its seed nodes (`redis://host:port`, `rediss://`), or
   * `CRYPTLET_REDIS_CLUSTER_NODES` (comma-separated). BullMQ's keys then sit under `{prefix}` (one hash slot),
   * the stores' keys spread by their own hash tags (runtime/queue/redisClient.ts).
   */
  redisCluster?: RedisClusterSettings;
  /** Prefix of every Redis key of this deployment. Default `cryptlet`. */
  prefix: string;
  /** The consortium id (bytes32 hex): EIP-712 domain salt. */
  consortiumId: `0x${string}`;
  /** This runtime's identity in attestation tokens (`iss`). */
  issuer: string;
  /** Bounds of the pipeline's backlog, in runs in flight (runtime/queue/backlog.ts); unset fields take defaults. */
  backlog: BacklogLimits;
  /**
   * Micro-batching of anchor-only runs (runtime/queue/microBatch.ts, docs/pipeline.md "Micro-batches"): absent,
   * every run has its own jobs.
   */
  microBatch?: MicroBatchSettings;
  /** How long results stay in Redis and where receipts are archived beyond that (docs/pipeline.md "Retention"). */
  retention: {
    /** Seconds after a run's last change. Default 604800 (7 days). */
    seconds: number;
    /** The bundle archive: `{type: "directory", path}` (relative to the configuration file). Default none. */
    archive?: { type: "directory"; path: string };
  };
  keys: {
    /** Result and batch signers (M of N, the registry's trusted signers), secp256k1 keys. */
    resultSigners: KeyRef[];
    /** The P-256 key that signs attestation tokens. */
    attestation: KeyRef;
    /**
     * The RSA key (2048 bits or more) that wraps the data keys of sealed Cryptlets' inputs at rest
     * (`RSA-OAEP-256`, docs/sealing.md). Required once a sealed Cryptlet receives events.
     */
    inputEncryption?: KeyRef;
    /**
     * Key Vault client settings. For a real vault leave them unset. For a Key Vault-compatible endpoint on
     * loopback (the emulator): `disableChallengeResourceVerification`, the PEM file of its CA (`caFile`), and its
     * managed-identity endpoint (`identityEndpoint` and `identityHeader`, exported as `IDENTITY_ENDPOINT` and
     * `IDENTITY_HEADER` for `DefaultAzureCredential`, as Azure App Service does).
     */
    keyVault: {
      disableChallengeResourceVerification: boolean;
      caFile?: string;
      identityEndpoint?: string;
      identityHeader?: string;
      /**
       * How often (ms) a result signer that follows its key's latest version reads that version and, when it is
       * new, asks every chain's registry whether it trusts its address before signing with it
       * (runtime/keys/RegistryGatedKeyProvider.ts). Default 5000.
       */
      signerCheckIntervalMs: number;
    };
  };
  /** The chains, as in the chains file (see docs/chains.md). */
  chains: ChainConfig[];
  packages: {
    /** Public EC P-256 JWKs (with `kid`) of the publishers whose signed packages may be deployed. */
    trustedPublishers: JWK[];
  };
  /**
   * What this deployment is: `production` refuses a Redis without AOF persistence, `development` warns (docs/operations.md).
   * Default `production` when `NODE_ENV=production`, else `development`.
   */
  role: "production" | "development";
  /** The Redis durability check at start (runtime/queue/redisDurability.ts). */
  redisDurability: {
    /**
     * Run a `production` role on a Redis without AOF anyway: a warning is logged at every start. Default false;
     * the environment variable `CRYPTLET_ALLOW_REDIS_WITHOUT_PERSISTENCE=1` sets it too.
     */
    allowWithoutPersistence: boolean;
    /**
     * Where this machine keeps the Redis epoch it expects (a JSON file, outside Redis). Default
     * `redis-epoch.<prefix>.json` beside the configuration file.
     */
    epochFile: string;
  };
  /** Sandbox copies loaded per package per worker process. Default 2. */
  sandboxPoolSize: number;
  /** Deadlines, retries and circuit breakers of calls to other processes; every duration in ms (docs/operations.md). */
  resilience: ResilienceConfig;
  /**
   * Consortium membership (docs/consortium.md, runtime/consortium/settings.ts): this runtime is one member of N,
   * co-signs with its peers and serves `POST /v1/consortium/proposals`. Default none (a single runtime).
   */
  consortium?: ConsortiumConfig;
  /** The HTTP API of a process in the `api` role (`cryptlet serve api`, runtime/serve/roles.ts). Default none. */
  api?: ApiConfig;
  /** The triggers of a process in the `triggers` role. */
  triggers: {
    /** How often chain logs and oracle requests are polled, ms. Default: the listener's (1000). */
    pollIntervalMs?: number;
    /** Whether this process runs the packages' schedules. Default true. */
    schedules: boolean;
  };
  /**
   * The health endpoint (`/healthz`, `/readyz`, `/metrics`) of worker and trigger processes; none when unset.
   * `CRYPTLET_HEALTH_PORT` and `CRYPTLET_HEALTH_HOST` set or override it.
   */
  health?: { host: string; port: number };
  /** Distributed tracing (runtime/telemetry/tracing.ts): off unless an OTLP endpoint is set here or in the environment. */
  telemetry?: TelemetryConfig;
}

/** The `api` section. `CRYPTLET_API_PORT` and `CRYPTLET_API_HOST` override its address. */
export interface ApiConfig {
  /** Listening address. Default `127.0.0.1` (`0.0.0.0` in a container). */
  host: string;
  /** Listening port. Default 8080. */
  port: number;
  /** The absolute URL clients reach the API at (behind a proxy, the proxy's). Default: the bound URL. */
  publicUrl?: string;
  /**
   * Bearer tokens of an OpenID Connect issuer (Entra ID or any other): `issuer` and `audience` (required), `jwksUri`
   * or discovery, `rolesClaim`, `roleMap`, `allowedTenants`, `algorithms`, `clockToleranceSeconds`
   * (runtime/api/auth.ts `AuthOptions`).
   */
  auth?: {
    issuer: string | string[];
    audience: string | string[];
    jwksUri?: string;
    rolesClaim?: string;
    roleMap?: Record<string, Role>;
    allowedTenants?: string[];
    algorithms?: string[];
    clockToleranceSeconds?: number;
  };
  /** Development only: the runtime's own token issuer, its private key in `keyFile` (created when absent). */
  localIssuer?: { keyFile: string };
}

/** The `resilience` section: every duration in milliseconds; defaults in {@link DEFAULT_RESILIENCE}. */
export interface ResilienceConfig {
  /** Requests to Azure Key Vault (get key, sign, wrap, unwrap), one breaker per vault. */
  keyVault: DependencyPolicy;
  /** Token requests to the identity endpoint (Entra ID or the managed-identity endpoint). */
  identity: DependencyPolicy;
  /** Deadline of one JSON-RPC request, ms (then the next endpoint; 4 attempts in all). */
  rpcTimeoutMs: number;
  /** Each chain's JSON-RPC circuit breaker (runtime/chains/rpc.ts): `threshold` failed requests, `halfOpenMs`. */
  rpcBreaker: RpcBreakerPolicy;
  /** The stores' Redis client (not BullMQ's connections, whose blocking commands must not time out). */
  redis: { commandTimeoutMs: number; connectTimeoutMs: number };
  /**
   * A worker process's shutdown deadline after SIGTERM/SIGINT, ms: jobs still running then are abandoned (their
   * locks lapse and another worker takes them over as stalled jobs) and the process exits with code 1.
   */
  shutdownTimeoutMs: number;
}

/** Defaults of the `resilience` section. */
export const DEFAULT_RESILIENCE: ResilienceConfig = {
  keyVault: DEFAULT_DEPENDENCY_POLICIES.keyVault,
  identity: DEFAULT_DEPENDENCY_POLICIES.identity,
  rpcTimeoutMs: 10_000,
  rpcBreaker: DEFAULT_RPC_BREAKER,
  redis: { commandTimeoutMs: 5000, connectTimeoutMs: 10_000 },
  shutdownTimeoutMs: 20_000,
};

const ms = { type: "integer", minimum: 1, maximum: 3_600_000 } as const;
const POLICY_SCHEMA = {
  type: "object",
  additionalProperties: false,
  properties: {
    timeoutMs: ms,
    attempts: { type: "integer", minimum: 1, maximum: 20 },
    backoffInitialMs: ms,
    backoffMaxMs: ms,
    breakerThreshold: { type: "integer", minimum: 1, maximum: 1000 },
    breakerHalfOpenMs: ms,
  },
} as const;

const keyRef = SIGNER_REF_SCHEMA;
const stringOrList = {
  oneOf: [
    { type: "string", minLength: 1 },
    { type: "array", minItems: 1, items: { type: "string", minLength: 1 } },
  ],
} as const;

/** A Redis Cluster seed node: `redis://host:port` or `rediss://host:port` (the file's and the environment's). */
const REDIS_NODE_PATTERN = "^rediss?://[^/]+:[0-9]+/?$";

const SCHEMA = {
  type: "object",
  additionalProperties: false,
  required: ["consortiumId", "keys", "chains"],
  properties: {
    $schema: { type: "string" },
    redisUrl: { type: "string", pattern: "^rediss?://" },
    redisCluster: {
      type: "object",
      additionalProperties: false,
      required: ["nodes"],
      properties: {
        nodes: { type: "array", minItems: 1, items: { type: "string", pattern: REDIS_NODE_PATTERN } },
      },
    },
    prefix: { type: "string", pattern: "^[A-Za-z0-9_{}-]{1,64}$" },
    consortiumId: { type: "string", pattern: "^0x[0-9a-fA-F]{64}$" },
    issuer: { type: "string", minLength: 1, maxLength: 200 },
    backlog: {
      type: "object",
      additionalProperties: false,
      properties: {
        maxRuns: { type: "integer", minimum: 1 },
        maxRunsPerCryptlet: { type: "integer", minimum: 1 },
        retryAfterSeconds: { type: "integer", minimum: 1, maximum: 3600 },
        staleAfterSeconds: { type: "integer", minimum: 60 },
      },
    },
    microBatch: {
      type: "object",
      additionalProperties: false,
      properties: {
        maxResults: { type: "integer", minimum: 1, maximum: MAX_MICRO_BATCH },
        windowMs: { type: "integer", minimum: 0, maximum: 10_000 },
      },
    },
    retention: {
      type: "object",
      additionalProperties: false,
      properties: {
        seconds: { type: "integer", minimum: 1 },
        archive: {
          type: "object",
          additionalProperties: false,
          required: ["type", "path"],
          properties: { type: { const: "directory" }, path: { type: "string", minLength: 1 } },
        },
      },
    },
    keys: {
      type: "object",
      additionalProperties: false,
      required: ["resultSigners", "attestation"],
      properties: {
        resultSigners: { type: "array", minItems: 1, items: keyRef },
        attestation: keyRef,
        inputEncryption: keyRef,
        keyVault: {
          type: "object",
          additionalProperties: false,
          properties: {
            disableChallengeResourceVerification: { type: "boolean" },
            caFile: { type: "string", minLength: 1 },
            identityEndpoint: { type: "string", pattern: "^https?://" },
            identityHeader: { type: "string", minLength: 1 },
            signerCheckIntervalMs: { type: "integer", minimum: 100, maximum: 3600000 },
          },
        },
      },
    },
    chains: { type: "array", minItems: 1 },
    packages: {
      type: "object",
      additionalProperties: false,
      properties: { trustedPublishers: { type: "array", items: { type: "object" } } },
    },
    role: { enum: ["production", "development"] },
    redisDurability: {
      type: "object",
      additionalProperties: false,
      properties: { allowWithoutPersistence: { type: "boolean" }, epochFile: { type: "string", minLength: 1 } },
    },
    sandboxPoolSize: { type: "integer", minimum: 1, maximum: 64 },
    consortium: CONSORTIUM_CONFIG_SCHEMA,
    api: {
      type: "object",
      additionalProperties: false,
      properties: {
        host: { type: "string", minLength: 1 },
        port: { type: "integer", minimum: 0, maximum: 65535 },
        publicUrl: { type: "string", pattern: "^https?://" },
        auth: {
          type: "object",
          additionalProperties: false,
          required: ["issuer", "audience"],
          properties: {
            issuer: stringOrList,
            audience: stringOrList,
            jwksUri: { type: "string", pattern: "^https?://" },
            rolesClaim: { type: "string", minLength: 1 },
            roleMap: {
              type: "object",
              additionalProperties: { enum: [...ROLES] },
            },
            allowedTenants: { type: "array", items: { type: "string", minLength: 1 } },
            algorithms: { type: "array", minItems: 1, items: { type: "string", minLength: 1 } },
            clockToleranceSeconds: { type: "integer", minimum: 0, maximum: 600 },
          },
        },
        localIssuer: {
          type: "object",
          additionalProperties: false,
          required: ["keyFile"],
          properties: { keyFile: { type: "string", minLength: 1 } },
        },
      },
    },
    triggers: {
      type: "object",
      additionalProperties: false,
      properties: { pollIntervalMs: ms, schedules: { type: "boolean" } },
    },
    telemetry: {
      type: "object",
      additionalProperties: false,
      properties: { otlpEndpoint: { type: "string", pattern: "^https?://" } },
    },
    health: {
      type: "object",
      additionalProperties: false,
      required: ["port"],
      properties: { host: { type: "string", minLength: 1 }, port: { type: "integer", minimum: 0, maximum: 65535 } },
    },
    resilience: {
      type: "object",
      additionalProperties: false,
      properties: {
        keyVault: POLICY_SCHEMA,
        identity: POLICY_SCHEMA,
        rpcTimeoutMs: ms,
        rpcBreaker: {
          type: "object",
          additionalProperties: false,
          properties: { threshold: { type: "integer", minimum: 1, maximum: 1000 }, halfOpenMs: ms },
        },
        redis: {
          type: "object",
          additionalProperties: false,
          properties: { commandTimeoutMs: ms, connectTimeoutMs: ms },
        },
        shutdownTimeoutMs: ms,
      },
    },
  },
} as const;

const validate = new Ajv({ allErrors: true, strict: true }).compile(SCHEMA);

function pathOf(e: ErrorObject): string {
  const base = e.instancePath
    .slice(1)
    .replace(/\/(\d+)/g, "[$1]")
    .replace(/\//g, ".");
  const extra =
    e.keyword === "required"
      ? String(e.params.missingProperty)
      : e.keyword === "additionalProperties"
        ? String(e.params.additionalProperty)
        : "";
  return [base, extra].filter(Boolean).join(".") || "(root)";
}

/**
 * Validates and normalises a parsed configuration; relative `jwkPath`s are resolved against `baseDir`.
 * @throws CryptletError `ERR_RUNTIME_CONFIG_INVALID` (with `details.errors: {path, message}[]`), `ERR_CONSORTIUM_CONFIG_INVALID`
 * (the consortium section contradicts itself), or the chains
 * section's `ERR_CHAIN_CONFIG_INVALID`.
 */
export function parseRuntimeConfig(
  document: unknown,
  source = "runtime config",
  baseDir = process.cwd(),
): RuntimeConfig {
  if (!validate(document)) {
    const errors = (validate.errors ?? [])
      .filter((e) => e.keyword !== "oneOf")
      .map((e) => ({
        path: pathOf(e),
        message: e.keyword === "additionalProperties" ? "is not a known field" : (e.message ?? "is invalid"),
      }));
    throw new CryptletError(
      ERR_RUNTIME_CONFIG_INVALID,
      `invalid runtime configuration (${source}): ${errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`,
      {
        details: { source, errors },
      },
    );
  }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const raw = document as any;
  const resolveKey = (ref: KeyRef): KeyRef =>
    ref.type === "local" ? { ...ref, jwkPath: path.resolve(baseDir, ref.jwkPath) } : ref;
  // JSON-RPC URLs often hold an API key: the environment may give them instead of the file (twelve-factor).
  const rawChains = (raw.chains as { name: string; rpcUrl?: string; rpcUrls?: string[] }[]).map((c) => {
    const wsFromEnv = process.env[wsUrlEnvName(c.name)]?.trim();
    const chain = wsFromEnv ? { ...c, wsUrl: wsFromEnv } : c;
    const fromEnv = process.env[rpcUrlsEnvName(c.name)];
    if (fromEnv === undefined || fromEnv.trim() === "") return chain;
    const { rpcUrl: _rpcUrl, ...rest } = chain;
    return { ...rest, rpcUrls: fromEnv.split(",").map((u) => u.trim()) };
  });
  const chains = parseChainsConfig({ chains: rawChains }, `${source}: chains`).chains.map((c) => ({
    ...c,
    signer: resolveKey(c.signer),
    laneSigners: c.laneSigners.map(resolveKey),
  }));
  return {
    redisUrl: raw.redisUrl ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
    ...redisClusterOf(raw.redisCluster, source),
    prefix: raw.prefix ?? "cryptlet",
    consortiumId: raw.consortiumId,
    issuer: raw.issuer ?? "cryptlet-runtime",
    backlog: raw.backlog ?? {},
    ...(raw.microBatch ? { microBatch: raw.microBatch } : {}),
    retention: {
      seconds: raw.retention?.seconds ?? DEFAULT_RETENTION_SECONDS,
      ...(raw.retention?.archive
        ? { archive: { type: "directory", path: path.resolve(baseDir, raw.retention.archive.path) } }
        : {}),
    },
    keys: {
      resultSigners: raw.keys.resultSigners.map(resolveKey),
      attestation: resolveKey(raw.keys.attestation),
      ...(raw.keys.inputEncryption ? { inputEncryption: resolveKey(raw.keys.inputEncryption) } : {}),
      keyVault: {
        disableChallengeResourceVerification: raw.keys.keyVault?.disableChallengeResourceVerification ?? false,
        ...(raw.keys.keyVault?.caFile ? { caFile: path.resolve(baseDir, raw.keys.keyVault.caFile) } : {}),
        ...(raw.keys.keyVault?.identityEndpoint ? { identityEndpoint: raw.keys.keyVault.identityEndpoint } : {}),
        ...(raw.keys.keyVault?.identityHeader ? { identityHeader: raw.keys.keyVault.identityHeader } : {}),
        signerCheckIntervalMs: raw.keys.keyVault?.signerCheckIntervalMs ?? 5000,
      },
    },
    chains,
    packages: { trustedPublishers: raw.packages?.trustedPublishers ?? [] },
    role: raw.role ?? (process.env.NODE_ENV === "production" ? "production" : "development"),
    redisDurability: {
      allowWithoutPersistence:
        raw.redisDurability?.allowWithoutPersistence === true ||
        process.env.CRYPTLET_ALLOW_REDIS_WITHOUT_PERSISTENCE === "1",
      epochFile: path.resolve(
        baseDir,
        raw.redisDurability?.epochFile ?? `redis-epoch.${raw.prefix ?? "cryptlet"}.json`,
      ),
    },
    sandboxPoolSize: raw.sandboxPoolSize ?? 2,
    resilience: {
      keyVault: { ...DEFAULT_RESILIENCE.keyVault, ...raw.resilience?.keyVault },
      identity: { ...DEFAULT_RESILIENCE.identity, ...raw.resilience?.identity },
      rpcTimeoutMs: raw.resilience?.rpcTimeoutMs ?? DEFAULT_RESILIENCE.rpcTimeoutMs,
      rpcBreaker: { ...DEFAULT_RESILIENCE.rpcBreaker, ...raw.resilience?.rpcBreaker },
      redis: { ...DEFAULT_RESILIENCE.redis, ...raw.resilience?.redis },
      shutdownTimeoutMs: raw.resilience?.shutdownTimeoutMs ?? DEFAULT_RESILIENCE.shutdownTimeoutMs,
    },
    ...(raw.api
      ? {
          api: {
            ...raw.api,
            host: process.env.CRYPTLET_API_HOST ?? raw.api.host ?? "127.0.0.1",
            port: envPort("CRYPTLET_API_PORT") ?? raw.api.port ?? 8080,
          },
        }
      : {}),
    triggers: { schedules: true, ...raw.triggers },
    ...(raw.telemetry ? { telemetry: raw.telemetry } : {}),
    ...(raw.health || envPort("CRYPTLET_HEALTH_PORT") !== undefined
      ? {
          health: {
            host: process.env.CRYPTLET_HEALTH_HOST ?? raw.health?.host ?? "127.0.0.1",
            port: envPort("CRYPTLET_HEALTH_PORT") ?? raw.health.port,
          },
        }
      : {}),
    ...(raw.consortium
      ? {
          consortium: checkConsortiumSettings({
            ...raw.consortium,
            requestKey: resolveKey(raw.consortium.requestKey),
          } as ConsortiumConfig),
        }
      : {}),
  };
}

/**
 * The environment variable that gives chain `name`'s JSON-RPC URLs (comma-separated) in place of the configuration
 * file's `rpcUrl`/`rpcUrls`: `CRYPTLET_RPC_URLS_` and the name in upper case, each other character than A-Z and 0-9
 * an underscore (chain `public-mainnet`: `CRYPTLET_RPC_URLS_PUBLIC_MAINNET`).
 */
export function rpcUrlsEnvName(name: string): string {
  return `CRYPTLET_RPC_URLS_${name.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

/**
 * The environment variable that gives chain `name`'s WebSocket endpoint (block subscriptions) in place of the
 * configuration file's `wsUrl`: `CRYPTLET_WS_URL_` and the name as in {@link rpcUrlsEnvName} (chain
 * `public-mainnet`: `CRYPTLET_WS_URL_PUBLIC_MAINNET`). Checked like the file's value.
 */
export function wsUrlEnvName(name: string): string {
  return `CRYPTLET_WS_URL_${name.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

/**
 * The `redisCluster` setting: `CRYPTLET_REDIS_CLUSTER_NODES` (comma-separated seed node URLs) over the file's.
 * @throws CryptletError `ERR_RUNTIME_CONFIG_INVALID` naming a node of the variable that is not `redis[s]://host:port`.
 */
function redisClusterOf(
  fromFile: RedisClusterSettings | undefined,
  source: string,
): { redisCluster?: RedisClusterSettings } {
  const env = process.env.CRYPTLET_REDIS_CLUSTER_NODES;
  if (env === undefined || env.trim() === "") return fromFile ? { redisCluster: { nodes: [...fromFile.nodes] } } : {};
  const nodes = env.split(",").map((n) => n.trim());
  for (const node of nodes) {
    if (!new RegExp(REDIS_NODE_PATTERN).test(node)) {
      throw new CryptletError(
        ERR_RUNTIME_CONFIG_INVALID,
        `${source}: CRYPTLET_REDIS_CLUSTER_NODES: "${redactUrl(node)}" is not a redis://host:port or rediss://host:port URL`,
        { details: { errors: [{ path: "$CRYPTLET_REDIS_CLUSTER_NODES", message: "not a redis[s]://host:port URL" }] } },
      );
    }
  }
  return { redisCluster: { nodes } };
}

/**
 * A port from the environment variable `name`, or `undefined` when unset.
 * @throws CryptletError `ERR_RUNTIME_CONFIG_INVALID` when it is not an integer from 0 to 65535.
 */
function envPort(name: string): number | undefined {
  const value = process.env[name];
  if (value === undefined || value === "") return undefined;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new CryptletError(
      ERR_RUNTIME_CONFIG_INVALID,
      `${name} must be a port (0 to 65535), got "${value.slice(0, 20)}"`,
      {
        details: { errors: [{ path: `$${name}`, message: "not a port" }] },
      },
    );
  }
  return port;
}

/** Reads and validates a configuration file (JSON). */
export function loadRuntimeConfig(file: string): RuntimeConfig {
  let document: unknown;
  try {
    document = JSON.parse(readFileSync(file, "utf8"));
  } catch (cause) {
    throw new CryptletError(
      ERR_RUNTIME_CONFIG_INVALID,
      `cannot read runtime configuration ${file}: ${(cause as Error).message}`,
      {
        details: { source: file },
      },
    );
  }
  return parseRuntimeConfig(document, file, path.dirname(path.resolve(file)));
}
