/**
 * The Cryptlet manifest, `cryptlet.json`: its JSON Schema (draft 2020-12, checked with ajv 8 in `allErrors`
 * mode), the TypeScript type of the normalised manifest (every default applied), and {@link parseManifest}.
 * Every field, its unit and its default are documented in `docs/packages.md`.
 */
import { createPublicKey } from "node:crypto";
import type { JsonWebKey } from "node:crypto";
import { Ajv2020 } from "ajv/dist/2020.js";
import type { ErrorObject } from "ajv/dist/2020.js";
import { CronExpressionParser } from "cron-parser";
import { EventFragment, ParamType, isAddress } from "ethers";
import semver from "semver";
import { checkEngineVersionFormat, installedEngineVersion } from "../sandbox/engineVersion.ts";
import { checkFetchAllowEntry } from "../sandbox/fetchAllow.ts";
import {
  DEFAULT_ENGINE,
  DEFAULT_FETCH,
  DEFAULT_LIMITS,
  FETCH_BOUNDS,
  MAX_FETCH_ALLOW_ENTRIES,
  MAX_LIMITS,
  MIN_LIMITS,
} from "../sandbox/SandboxEngine.ts";
import type {
  FetchCapability as SandboxFetchCapability,
  SandboxEngineName,
  SandboxLimits,
} from "../sandbox/SandboxEngine.ts";
import { ManifestInvalidError } from "./errors.ts";
import type { ManifestProblem } from "./errors.ts";

export type { SandboxEngineName };

/**
 * Resource limits of one run: the sandbox's {@link SandboxLimits}, with the same names, units, defaults and
 * bounds (memoryMb MiB, default 64, 8..512; timeoutMs ms, default 1000, 1..30000; maxOutputBytes UTF-8 bytes of
 * the output JSON, default 65536, 1..1048576).
 */
export type ManifestLimits = SandboxLimits;

/**
 * The `fetch` capability after normalisation: the sandbox's {@link SandboxFetchCapability} with every default
 * applied (methods `["GET"]`, timeoutMs 2000 ms, maxResponseBytes 1 MiB, maxRequests 8 with each redirect hop
 * counted, maxRedirects 5). `allow` entries are origin plus path prefix (runtime/sandbox/fetchAllow.ts).
 */
export type FetchCapability = Required<SandboxFetchCapability>;

/** Capabilities granted to the Cryptlet; absent ones are denied. */
export interface ManifestCapabilities {
  fetch?: FetchCapability;
}

/** A log of a contract on a chain; the event fires after `confirmations` blocks. */
export interface ChainLogTrigger {
  type: "chain-log";
  /** Chain name in the runtime's chain configuration, e.g. `consortium`. */
  chain: string;
  /** Emitting contract, EIP-55 checksummed or all lower-case 0x address. */
  address: string;
  /** Solidity event signature, e.g. `Swap(address indexed sender, ..., int24 tick)`. */
  event: string;
  /** Blocks mined on top of the log's block before it is acted on. Default 12, range 0..10000. */
  confirmations: number;
  /**
   * `"transaction"`: all matching logs of one transaction are one event (input `{logs: [...]}`, see
   * docs/triggers.md), e.g. a batch of swaps emitted together. Absent: one event per log.
   */
  group?: "transaction";
}

/** A `CryptletRequested` event of the chain's `CryptletOracle` for this Cryptlet. */
export interface OracleTrigger {
  type: "oracle";
  chain: string;
  /** As for {@link ChainLogTrigger.confirmations}. Default 12. */
  confirmations: number;
}

/**
 * The cross-chain events of the contracts the runtime's chain configuration names for this Cryptlet
 * (`contracts.crosschain["<package name>"]`, docs/chains.md): `Locked` of each lockbox and `Burned` of each wrapped
 * token, on every configured chain, plus the deadline watcher's refund observations (docs/crosschain.md). The
 * addresses come from the configuration, not the manifest, so one package serves every deployment.
 */
export interface CrosschainTrigger {
  type: "crosschain";
  /**
   * Blocks mined on top of a `Locked` or `Burned` log, or of a deadline observation, before it is acted on.
   * Default 12, range 0..10000. Finality matters here (docs/crosschain.md "Finality").
   */
  confirmations: number;
}

/** An HTTP call to the runtime's invoke endpoint. */
export interface HttpTrigger {
  type: "http";
}

/** A schedule: a five-field cron expression (minute hour day-of-month month day-of-week), evaluated in UTC. */
export interface ScheduleTrigger {
  type: "schedule";
  cron: string;
}

/** What starts a run. */
export type Trigger = ChainLogTrigger | OracleTrigger | CrosschainTrigger | HttpTrigger | ScheduleTrigger;

/** A public output: the run's JSON output is ABI-encoded as `abi` and written in the clear. */
export interface PublicOutput {
  /** One Solidity ABI type (ethers `ParamType` syntax), e.g. `tuple(int256 answer, uint8 decimals, uint64 observedAt)`. */
  abi: string;
}

/**
 * A public output of one of several ABI types, chosen per run: the run's JSON output is
 * `{ "variant": <index into abiOneOf>, "value": <output> }` and `value` is ABI-encoded as `abiOneOf[variant]`
 * (the proof bundle names the type used). For contracts that take several payload kinds, e.g. the cross-chain
 * outputs (docs/crosschain.md).
 */
export interface PublicOutputOneOf {
  /** 2 to 16 distinct Solidity ABI types (ethers `ParamType` syntax). */
  abiOneOf: string[];
}

/** A public JWK of a party: EC P-256, OKP X25519 or RSA (modulus at least 2048 bits). Private members are refused. */
export interface PartyJwk {
  kty: "EC" | "OKP" | "RSA";
  crv?: "P-256" | "X25519";
  x?: string;
  y?: string;
  n?: string;
  e?: string;
  kid?: string;
  use?: "enc";
  alg?: "ECDH-ES+A256KW" | "ECDH-ES" | "RSA-OAEP-256";
  key_ops?: string[];
  ext?: boolean;
}

/** A party that may read a sealed result. */
export interface Party {
  /** Unique within the manifest, e.g. `buyer`. */
  name: string;
  /** The party's public key (RFC 7517 JWK), used as a JWE recipient (RFC 7516). */
  jwk: PartyJwk;
}

/** A sealed output: the run's JSON output is encrypted (JWE) for `parties`; only ciphertext leaves the runtime. */
export interface SealedOutput {
  sealed: true;
  parties: Party[];
}

/** How the output is published. */
export type ManifestOutput = PublicOutput | PublicOutputOneOf | SealedOutput;

/** How a result is written to a chain. */
export type TargetMode = "oracle" | "record" | "anchor" | "feed";

/** Where results go. */
export interface ChainTarget {
  /** Chain name in the runtime's chain configuration. */
  chain: string;
  /** `oracle` (fulfil a request), `record` (one result), `anchor` (Merkle batch), `feed` (price feed). */
  mode: TargetMode;
  /** The contract to write to; absent means the chain configuration's contract for `mode`. */
  address?: string;
}

/**
 * A cross-chain result goes where its event says (docs/crosschain.md): a `Locked` event's mint to the wrapped
 * token on the destination chain, a `Burned` event's release and a deadline observation's refund to the lockbox
 * on the source chain. The chain and contract come from the event and the chain configuration.
 */
export interface CrosschainTarget {
  mode: "crosschain";
}

/** Where results go. */
export type Target = ChainTarget | CrosschainTarget;

/**
 * A normalised manifest: `cryptlet.json` after validation with every default applied. This object (as JSON)
 * enters the `codeHash`.
 */
export interface Manifest {
  /** npm-style package name, lower case, scoped allowed: `@acme/price-median`. */
  name: string;
  /** Semantic version (semver 2.0.0), exactly as `semver.valid` prints it, e.g. `1.2.3`. */
  version: string;
  /** Free text for humans. Default `""`. */
  description: string;
  /** Source entry, a relative POSIX path under `src/`, e.g. `src/index.ts`. */
  entry: string;
  /** Sandbox engine. Default `DEFAULT_ENGINE` (isolated-vm). */
  engine: SandboxEngineName;
  /**
   * The exact version of `engine` the package runs on (runtime/sandbox/engineVersion.ts), e.g.
   * `7.0.1+v8.13.6.233.17-node.53`; the runtime refuses to run the package on any other. Default: the version
   * installed where the manifest is normalised, i.e. where the package is built.
   */
  engineVersion: string;
  limits: ManifestLimits;
  /** Default `{}` (nothing granted). */
  capabilities: ManifestCapabilities;
  /** Default `[]`. */
  triggers: Trigger[];
  output: ManifestOutput;
  /** Default `[]`. */
  targets: Target[];
}

const NAME_PATTERN = "^(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$";
const CHAIN_PATTERN = "^[a-z0-9][a-z0-9_-]{0,63}$";
const ENTRY_PATTERN = "^src/(?!(?:.*/)?\\.{1,2}(?:/|$))(?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9_.-]+\\.(?:ts|mts|js|mjs)$";
const B64URL_32 = "^[A-Za-z0-9_-]{43}$";
const B64URL = "^[A-Za-z0-9_-]+$";

const chain = {
  type: "string",
  pattern: CHAIN_PATTERN,
  xHint: "must be a chain name from the runtime's chain configuration: lower-case letters, digits, - and _",
};
const address = { type: "string", format: "evm-address" };
const confirmations = { type: "integer", minimum: 0, maximum: 10000, default: 12 };

/** Schema of one run limit, with the sandbox's bounds and default (one source of truth). */
function limit(name: keyof SandboxLimits): { type: "integer"; minimum: number; maximum: number; default: number } {
  return { type: "integer", minimum: MIN_LIMITS[name], maximum: MAX_LIMITS[name], default: DEFAULT_LIMITS[name] };
}

/** Schema of one numeric fetch option, with the sandbox's bounds and default. */
function fetchLimit(name: keyof typeof FETCH_BOUNDS): {
  type: "integer";
  minimum: number;
  maximum: number;
  default: number;
} {
  const [minimum, maximum] = FETCH_BOUNDS[name];
  return { type: "integer", minimum, maximum, default: DEFAULT_FETCH[name] };
}

const publicJwk = {
  type: "object",
  required: ["kty"],
  properties: {
    kty: { enum: ["EC", "OKP", "RSA"] },
    crv: { enum: ["P-256", "X25519"] },
    x: { type: "string", pattern: B64URL_32, xHint: "must be 32 bytes in base64url (43 characters)" },
    y: { type: "string", pattern: B64URL_32, xHint: "must be 32 bytes in base64url (43 characters)" },
    n: { type: "string", pattern: B64URL, xHint: "must be base64url" },
    e: { type: "string", pattern: B64URL, xHint: "must be base64url" },
    kid: { type: "string", minLength: 1, maxLength: 256 },
    use: { const: "enc" },
    alg: { enum: ["ECDH-ES+A256KW", "ECDH-ES", "RSA-OAEP-256"] },
    key_ops: { type: "array", items: { enum: ["encrypt", "wrapKey", "deriveKey", "deriveBits"] } },
    ext: { type: "boolean" },
    // Private key members (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2; `k` of symmetric keys): never in a manifest.
    d: false,
    p: false,
    q: false,
    dp: false,
    dq: false,
    qi: false,
    oth: false,
    k: false,
  },
  additionalProperties: false,
  allOf: [
    {
      if: { properties: { kty: { const: "EC" } }, required: ["kty"] },
      then: { required: ["crv", "x", "y"], properties: { crv: { const: "P-256" }, n: false, e: false } },
    },
    {
      if: { properties: { kty: { const: "OKP" } }, required: ["kty"] },
      then: { required: ["crv", "x"], properties: { crv: { const: "X25519" }, y: false, n: false, e: false } },
    },
    {
      if: { properties: { kty: { const: "RSA" } }, required: ["kty"] },
      then: { required: ["n", "e"], properties: { crv: false, x: false, y: false } },
    },
  ],
};

/**
 * The JSON Schema (draft 2020-12) of `cryptlet.json`. Besides standard keywords it uses ajv's `discriminator`,
 * the formats `semver`, `evm-address`, `abi-type`, `event-signature`, `cron5`, `fetch-allow`, and the annotation
 * `xHint` (the message for a failed `pattern` or `format`).
 */
export const manifestSchema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: "https://cryptlet.dev/schemas/cryptlet.json",
  title: "Cryptlet manifest (cryptlet.json)",
  type: "object",
  required: ["name", "version", "entry", "output"],
  additionalProperties: false,
  properties: {
    $schema: { type: "string" },
    name: {
      type: "string",
      minLength: 1,
      maxLength: 214,
      pattern: NAME_PATTERN,
      xHint: "must be an npm-style package name in lower case, optionally scoped, e.g. @acme/price-median",
    },
    version: { type: "string", maxLength: 256, format: "semver" },
    description: { type: "string", maxLength: 1024, default: "" },
    entry: {
      type: "string",
      maxLength: 256,
      pattern: ENTRY_PATTERN,
      xHint: "must be a relative path under src/ ending in .ts, .mts, .js or .mjs, e.g. src/index.ts",
    },
    engine: { enum: ["isolated-vm", "quickjs"], default: DEFAULT_ENGINE },
    // The default depends on `engine` and on what is installed: parseManifest fills it in.
    engineVersion: {
      type: "string",
      maxLength: 256,
      pattern: "^[0-9]+\\.[0-9]+\\.[0-9]+(?:-[0-9A-Za-z.-]+)?\\+[0-9A-Za-z.-]+$",
      xHint:
        'must be an engine version "<package version>+<core>.<core version>", e.g. 7.0.1+v8.13.6.233.17-node.53 (runtime/sandbox/engineVersion.ts)',
    },
    limits: {
      type: "object",
      default: {},
      additionalProperties: false,
      properties: {
        memoryMb: limit("memoryMb"),
        timeoutMs: limit("timeoutMs"),
        maxOutputBytes: limit("maxOutputBytes"),
      },
    },
    capabilities: {
      type: "object",
      default: {},
      additionalProperties: false,
      properties: {
        fetch: {
          type: "object",
          required: ["allow"],
          additionalProperties: false,
          properties: {
            allow: {
              type: "array",
              minItems: 1,
              maxItems: MAX_FETCH_ALLOW_ENTRIES,
              uniqueItems: true,
              items: { type: "string", maxLength: 2048, format: "fetch-allow" },
            },
            methods: {
              type: "array",
              minItems: 1,
              uniqueItems: true,
              items: { enum: ["GET", "POST"] },
              default: [...DEFAULT_FETCH.methods],
            },
            timeoutMs: fetchLimit("timeoutMs"),
            maxResponseBytes: fetchLimit("maxResponseBytes"),
            maxRequests: fetchLimit("maxRequests"),
            maxRedirects: fetchLimit("maxRedirects"),
          },
        },
      },
    },
    triggers: {
      type: "array",
      default: [],
      maxItems: 64,
      items: {
        type: "object",
        required: ["type"],
        discriminator: { propertyName: "type" },
        oneOf: [
          {
            properties: {
              type: { const: "chain-log" },
              chain,
              address,
              event: { type: "string", maxLength: 1024, format: "event-signature" },
              confirmations,
              group: { enum: ["transaction"] },
            },
            required: ["type", "chain", "address", "event"],
            additionalProperties: false,
          },
          {
            properties: { type: { const: "oracle" }, chain, confirmations },
            required: ["type", "chain"],
            additionalProperties: false,
          },
          {
            properties: { type: { const: "crosschain" }, confirmations },
            required: ["type"],
            additionalProperties: false,
          },
          {
            properties: { type: { const: "http" } },
            required: ["type"],
            additionalProperties: false,
          },
          {
            properties: { type: { const: "schedule" }, cron: { type: "string", maxLength: 256, format: "cron5" } },
            required: ["type", "cron"],
            additionalProperties: false,
          },
        ],
      },
    },
    output: {
      type: "object",
      if: { required: ["sealed"] },
      then: {
        required: ["sealed", "parties"],
        additionalProperties: false,
        properties: {
          sealed: { const: true },
          parties: {
            type: "array",
            minItems: 1,
            maxItems: 32,
            items: {
              type: "object",
              required: ["name", "jwk"],
              additionalProperties: false,
              properties: {
                name: {
                  type: "string",
                  pattern: "^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$",
                  xHint: "must be 1 to 64 letters, digits, spaces, . _ or -, starting with a letter or digit",
                },
                jwk: publicJwk,
              },
            },
          },
        },
      },
      else: {
        if: { required: ["abiOneOf"] },
        then: {
          required: ["abiOneOf"],
          additionalProperties: false,
          properties: {
            abiOneOf: {
              type: "array",
              minItems: 2,
              maxItems: 16,
              uniqueItems: true,
              items: { type: "string", maxLength: 4096, format: "abi-type" },
            },
          },
        },
        else: {
          required: ["abi"],
          additionalProperties: false,
          properties: { abi: { type: "string", maxLength: 4096, format: "abi-type" } },
        },
      },
    },
    targets: {
      type: "array",
      default: [],
      maxItems: 32,
      items: {
        type: "object",
        if: { properties: { mode: { const: "crosschain" } }, required: ["mode"] },
        then: { required: ["mode"], additionalProperties: false, properties: { mode: { const: "crosschain" } } },
        else: {
          required: ["chain", "mode"],
          additionalProperties: false,
          properties: { chain, mode: { enum: ["oracle", "record", "anchor", "feed", "crosschain"] }, address },
        },
      },
    },
  },
} as const;

const FORMAT_HINTS: Record<string, string> = {
  semver: "must be a semantic version (semver 2.0.0) in canonical form, e.g. 1.2.3",
  "evm-address": "must be a 0x-prefixed 20-byte address (EIP-55 checksum when mixed case)",
  "abi-type":
    "must be one Solidity ABI type that ethers ParamType parses, e.g. tuple(int256 answer, uint8 decimals, uint64 observedAt)",
  "event-signature":
    "must be a Solidity event signature, e.g. Transfer(address indexed from, address indexed to, uint256 value)",
  cron5: "must be a five-field cron expression (minute hour day-of-month month day-of-week), e.g. */5 * * * *",
};

function isAbiType(value: string): boolean {
  try {
    ParamType.from(value);
    return true;
  } catch {
    return false;
  }
}

function isEventSignature(value: string): boolean {
  try {
    EventFragment.from(value.startsWith("event ") ? value : `event ${value}`);
    return true;
  } catch {
    return false;
  }
}

function isCron5(value: string): boolean {
  if (value.trim().split(/\s+/).length !== 5) return false;
  try {
    CronExpressionParser.parse(value, { tz: "UTC" });
    return true;
  } catch {
    return false;
  }
}

const ajv = new Ajv2020({
  allErrors: true,
  useDefaults: true,
  discriminator: true,
  verbose: true,
  strict: true,
  strictRequired: false,
});
ajv.addKeyword({ keyword: "xHint", schemaType: "string" });
ajv.addFormat("semver", { type: "string", validate: (v: string) => semver.valid(v) === v });
ajv.addFormat("evm-address", {
  type: "string",
  validate: (v: string) => /^0x[0-9a-fA-F]{40}$/.test(v) && isAddress(v),
});
ajv.addFormat("abi-type", { type: "string", validate: isAbiType });
ajv.addFormat("event-signature", { type: "string", validate: isEventSignature });
ajv.addFormat("cron5", { type: "string", validate: isCron5 });
ajv.addFormat("fetch-allow", { type: "string", validate: (v: string) => checkFetchAllowEntry(v) === undefined });
const validateManifest = ajv.compile(manifestSchema);

/** `/limits/memoryMb` → `limits.memoryMb`; `/triggers/0/cron` → `triggers[0].cron`. */
function toPath(instancePath: string, child?: string): string {
  const segments = instancePath === "" ? [] : instancePath.slice(1).split("/");
  if (child !== undefined) segments.push(child);
  let path = "";
  for (const raw of segments) {
    const segment = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (/^\d+$/.test(segment)) path += `[${segment}]`;
    else path += path === "" ? segment : `.${segment}`;
  }
  return path;
}

function describe(error: ErrorObject): ManifestProblem | undefined {
  const params = error.params as Record<string, unknown>;
  const hint = (error.parentSchema as { xHint?: string } | undefined)?.xHint;
  switch (error.keyword) {
    case "if":
      return undefined; // the failing then/else branch reports the precise error
    case "required":
      return { path: toPath(error.instancePath, String(params.missingProperty)), message: "is required" };
    case "additionalProperties":
      return { path: toPath(error.instancePath, String(params.additionalProperty)), message: "is not a known field" };
    case "false schema": {
      const member = error.instancePath.split("/").pop() ?? "";
      const message = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"].includes(member)
        ? "is a private key member; a party's JWK must be its public key only"
        : "is not allowed here";
      return { path: toPath(error.instancePath), message };
    }
    case "minimum":
      return { path: toPath(error.instancePath), message: `must be at least ${String(params.limit)}` };
    case "maximum":
      return { path: toPath(error.instancePath), message: `must be at most ${String(params.limit)}` };
    case "minLength":
      return {
        path: toPath(error.instancePath),
        message: params.limit === 1 ? "must not be empty" : `must have at least ${String(params.limit)} characters`,
      };
    case "maxLength":
      return { path: toPath(error.instancePath), message: `must have at most ${String(params.limit)} characters` };
    case "minItems":
      return { path: toPath(error.instancePath), message: `must have at least ${String(params.limit)} items` };
    case "maxItems":
      return { path: toPath(error.instancePath), message: `must have at most ${String(params.limit)} items` };
    case "enum":
      return {
        path: toPath(error.instancePath),
        message: `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`,
      };
    case "const":
      return { path: toPath(error.instancePath), message: `must be ${JSON.stringify(params.allowedValue)}` };
    case "discriminator": {
      const tag = String(params.tag);
      const path = toPath(error.instancePath, tag);
      if (params.error === "tag") return { path, message: "is required and must be a string" };
      return { path, message: 'must be one of "chain-log", "oracle", "crosschain", "http", "schedule"' };
    }
    case "pattern":
      return { path: toPath(error.instancePath), message: hint ?? `must match ${String(params.pattern)}` };
    case "format": {
      const format = String(params.format);
      if (format === "fetch-allow") {
        const reason = checkFetchAllowEntry(String(error.data));
        return { path: toPath(error.instancePath), message: reason ?? "is not a valid allow-list entry" };
      }
      return { path: toPath(error.instancePath), message: FORMAT_HINTS[format] ?? `must be a valid ${format}` };
    }
    case "uniqueItems":
      return {
        path: toPath(error.instancePath),
        message: `must not contain duplicates (items ${String(params.j)} and ${String(params.i)} are equal)`,
      };
    default:
      return { path: toPath(error.instancePath), message: error.message ?? "is invalid" };
  }
}

/**
 * Checks that need code: an engine version of the manifest's engine, party names unique, party keys that really
 * are public keys of the allowed sizes.
 */
function semanticProblems(manifest: Manifest): ManifestProblem[] {
  const problems: ManifestProblem[] = [];
  const engineVersionProblem = checkEngineVersionFormat(manifest.engine, manifest.engineVersion);
  if (engineVersionProblem !== undefined) problems.push({ path: "engineVersion", message: engineVersionProblem });
  if ("sealed" in manifest.output) {
    const seen = new Map<string, number>();
    manifest.output.parties.forEach((party, i) => {
      const previous = seen.get(party.name);
      if (previous !== undefined) {
        problems.push({
          path: `output.parties[${i}].name`,
          message: `must be unique (same as output.parties[${previous}].name)`,
        });
      }
      seen.set(party.name, i);
      try {
        const key = createPublicKey({ key: party.jwk as unknown as JsonWebKey, format: "jwk" });
        const bits = key.asymmetricKeyDetails?.modulusLength;
        if (party.jwk.kty === "RSA" && (bits === undefined || bits < 2048)) {
          problems.push({
            path: `output.parties[${i}].jwk.n`,
            message: `must be an RSA modulus of at least 2048 bits (got ${String(bits)})`,
          });
        }
      } catch {
        problems.push({ path: `output.parties[${i}].jwk`, message: "is not a valid public key (RFC 7517 JWK)" });
      }
    });
  }
  return problems;
}

/**
 * Validates a manifest and returns it normalised (a new object; every default applied). Accepts the parsed
 * JSON value, or the text of `cryptlet.json`. Idempotent: parsing a normalised manifest returns an equal one.
 *
 * One default depends on the machine: a manifest without `engineVersion` gets the version of its `engine` that is
 * installed here (`installedEngineVersion` in runtime/sandbox/engineVersion.ts), so a package built without a pin
 * is pinned to the engine of the machine that built it, and its `codeHash` covers that version. A manifest that
 * names `engineVersion` normalises the same everywhere.
 *
 * @param json - the manifest, as a JSON string or an already parsed value.
 * @returns the normalised {@link Manifest}.
 * @throws {@link ManifestInvalidError} (`ERR_MANIFEST_INVALID`) listing every problem as `{path, message}`,
 *   e.g. `{path: "limits.memoryMb", message: "must be at most 512"}`; for text that is not JSON, one problem
 *   with path `""`.
 *
 * @example
 * ```ts
 * import { parseManifest } from "./runtime/packages/manifest.ts";
 *
 * const manifest = parseManifest({
 *   name: "@acme/price-median",
 *   version: "1.0.0",
 *   entry: "src/index.ts",
 *   output: { abi: "tuple(int256 answer, uint8 decimals, uint64 observedAt)" },
 * });
 * manifest.limits.memoryMb; // 64
 * ```
 */
export function parseManifest(json: unknown): Manifest {
  let value: unknown = json;
  if (typeof json === "string") {
    try {
      value = JSON.parse(json);
    } catch (cause) {
      throw new ManifestInvalidError([{ path: "", message: "is not valid JSON" }], { cause });
    }
  }
  // Work on a copy: ajv writes the defaults into the object it validates. JSON round trip also drops
  // `undefined` members and refuses values that have no JSON form.
  let copy: unknown;
  try {
    copy = JSON.parse(JSON.stringify(value ?? null));
  } catch (cause) {
    throw new ManifestInvalidError([{ path: "", message: "must be a JSON value" }], { cause });
  }
  if (!validateManifest(copy)) {
    const problems: ManifestProblem[] = [];
    const seen = new Set<string>();
    for (const error of validateManifest.errors ?? []) {
      const problem = describe(error);
      if (problem === undefined) continue;
      const key = `${problem.path}\u0000${problem.message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      problems.push(problem);
    }
    if (problems.length === 0) problems.push({ path: "", message: "does not match the manifest schema" });
    throw new ManifestInvalidError(problems);
  }
  const validated = copy as Manifest;
  delete (validated as { $schema?: string }).$schema;
  // The engine version's default depends on the engine; it is placed right after `engine` (readable dist/ output).
  const engineVersion = validated.engineVersion ?? installedEngineVersion(validated.engine).version;
  const ordered: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(validated)) {
    if (key === "engineVersion") continue;
    ordered[key] = value;
    if (key === "engine") ordered.engineVersion = engineVersion;
  }
  const manifest = ordered as unknown as Manifest;
  const problems = semanticProblems(manifest);
  if (problems.length > 0) throw new ManifestInvalidError(problems);
  return manifest;
}
