/**
 * Chains configuration: which EVM chains the runtime writes to, how (RPC, confirmations, fee caps, replacement
 * policy), with which signer key, and where the Cryptlet contracts are. Loaded from a JSON file (see
 * `docs/chains.md` for an example) and validated with a JSON Schema (ajv), so that a mistake is reported with its
 * path, e.g. `chains[1].fees.maxFeePerGasGwei: must be a decimal string of gwei`.
 *
 * @module
 */
import { readFileSync } from "node:fs";

import { Ajv, type ErrorObject } from "ajv";
import { getAddress, isAddress, parseUnits } from "ethers";

import { redactUrl } from "../errors.ts";
import { ChainConfigInvalidError } from "./errors.ts";

/** How the writer signs on a chain: a Key Vault key (production) or a local JWK file (development). */
export type SignerRef =
  | { type: "azure-key-vault"; vaultUrl: string; keyName: string; keyVersion?: string }
  | { type: "local"; jwkPath: string };

/** Where the Cryptlet contracts live on a chain (checksummed addresses). */
export interface ChainContracts {
  registry?: string;
  oracle?: string;
  ledger?: string;
  /** Price feeds by Cryptlet package name, e.g. `{"@cryptlet/price-median": "0x..."}`. */
  feeds?: Record<string, string>;
  /**
   * Cross-chain contracts by Cryptlet package name (docs/crosschain.md): the `CryptletLockbox` on this chain (the
   * source of its locks) and the `CryptletWrappedToken`s on this chain (destinations of other chains' lockboxes),
   * e.g. `{"@cryptlet/xchain-transfer": {"lockbox": "0x...", "wrappedTokens": ["0x..."]}}`. The triggers listen
   * to their `Locked` and `Burned` events, and the writer calls only these contracts for that package.
   */
  crosschain?: Record<string, CrosschainContracts>;
}

/** The cross-chain contracts of one package on one chain (checksummed addresses). */
export interface CrosschainContracts {
  lockbox?: string;
  wrappedTokens?: string[];
  /**
   * The first block of this chain to read the package's cross-chain logs from (the contracts' deployment block), for
   * transfer receipts (runtime/crosschain/transferReceipt.ts); default 0. A public RPC that caps `eth_getLogs`
   * ranges answers the receipts' reads only with it set: they scan back from the latest block to it, in ranges of
   * `TRANSFER_LOG_RANGE_BLOCKS`.
   */
  fromBlock?: number;
}

/** One chain, normalised: defaults applied, gwei converted to wei. */
export interface ChainConfig {
  /** Short unique name used in logs, job names and Redis keys, e.g. `consortium`. */
  name: string;
  /** EIP-155 chain id; checked against `eth_chainId` at start. */
  chainId: number;
  /** JSON-RPC endpoints (HTTP(S)), tried in order on failure. May contain credentials: log them with `redactUrl`. */
  rpcUrls: string[];
  /** Blocks on top of the including block before a write counts (1 = included). Default 1. */
  confirmations: number;
  /**
   * How often the writer polls for receipts and new blocks, in milliseconds. Default 250 (fits a local chain; a
   * public chain with 2–12 s blocks and a rate-limited RPC: 1000–3000, see docs/chains.md "Latency settings").
   */
  pollIntervalMs: number;
  /**
   * A WebSocket JSON-RPC endpoint (`ws://` or `wss://`) of the same chain, for block subscriptions
   * (`eth_subscribe("newHeads")`): the chain-log listener scans, and a writer waiting for confirmations checks its
   * receipt, when a block arrives instead of only every poll interval. Polling stays the fallback (a dropped socket
   * is reconnected with backoff). Absent: polling only.
   * May contain credentials: log it with `redactUrl`.
   */
  wsUrl?: string;
  /** Fee policy (EIP-1559). */
  fees: {
    /** Upper bound of `maxFeePerGas`, in wei. */
    maxFeePerGas: bigint;
    /** Upper bound of `maxPriorityFeePerGas`, in wei. */
    maxPriorityFeePerGas: bigint;
    /** Fee increase of a replacement transaction, in percent (at least 10, the usual node rule). Default 15. */
    bumpPercent: number;
    /** A transaction not included after this many milliseconds is replaced with bumped fees. Default 30000. */
    replaceAfterMs: number;
    /** Multiplier applied to `eth_estimateGas`, in percent. Default 125. */
    gasLimitPercent: number;
  };
  /** The key that signs this chain's transactions (the relayer; the first lane). */
  signer: SignerRef;
  /**
   * Further relayer keys, one lane each (distinct addresses, each funded): writes are spread over `signer` and
   * these by idempotency key and go out concurrently, one nonce sequence per lane (runtime/chains/writer.ts).
   * Default none: one lane.
   */
  laneSigners: SignerRef[];
  /** The Cryptlet contracts on this chain. */
  contracts: ChainContracts;
  /**
   * Anchor-mode batching: a batch closes at `maxBatchSize` results or `maxBatchDelayMs` after its first.
   * `pollIntervalMs` is the shortest wait, in milliseconds, of an `anchor` write between two checks of its batch,
   * and the longest sleep of the batcher's loop between flushes (capped by `maxBatchDelayMs`). Default 250.
   */
  anchor: { maxBatchSize: number; maxBatchDelayMs: number; pollIntervalMs: number };
  /**
   * A block explorer's base URL (e.g. `https://sepolia.etherscan.io`): the audit report links transactions to
   * `<explorerUrl>/tx/<hash>` and blocks to `<explorerUrl>/block/<n>`. Absent for a local chain (no links).
   */
  explorerUrl?: string;
}

/** The whole file, normalised. */
export interface ChainsConfig {
  chains: ChainConfig[];
}

const address = { type: "string", pattern: "^0x[0-9a-fA-F]{40}$" } as const;

/** JSON Schema of a {@link SignerRef} (also used for the runtime configuration's keys). */
export const SIGNER_REF_SCHEMA = {
  oneOf: [
    {
      type: "object",
      additionalProperties: false,
      required: ["type", "vaultUrl", "keyName"],
      properties: {
        type: { const: "azure-key-vault" },
        vaultUrl: { type: "string", pattern: "^https://" },
        keyName: { type: "string", pattern: "^[0-9a-zA-Z-]{1,127}$" },
        keyVersion: { type: "string", pattern: "^[0-9a-f]{32}$" },
      },
    },
    {
      type: "object",
      additionalProperties: false,
      required: ["type", "jwkPath"],
      properties: { type: { const: "local" }, jwkPath: { type: "string", minLength: 1 } },
    },
  ],
} as const;
const gwei = { type: "string", pattern: "^[0-9]+(\\.[0-9]{1,9})?$" } as const;

/**
 * JSON-RPC endpoints must be HTTP(S): the runtime talks to them with ethers' `JsonRpcProvider` (per-request
 * timeouts, failover across `rpcUrls`). WebSocket endpoints (`ws://`, `wss://`) are refused there when the file
 * is loaded rather than failing at the first request; a chain's WebSocket endpoint is its `wsUrl`, used for block
 * subscriptions only (runtime/chains/heads.ts).
 */
const RPC_URL_PATTERN = "^https?://";

/** The block-subscription endpoint (`wsUrl`) must be a WebSocket URL. */
const WS_URL_PATTERN = "^wss?://";

/** The message of a refused `wsUrl`. */
export const WS_URL_MESSAGE = "must be a ws:// or wss:// URL (a WebSocket JSON-RPC endpoint of the same chain)";

/** The message of a refused RPC URL (its path in the document says which field). */
export const RPC_URL_MESSAGE =
  "must be an http:// or https:// URL; a WebSocket endpoint (ws://, wss://) is given as wsUrl, for block subscriptions only";

/** JSON Schema (draft-07 subset understood by ajv) of the chains file. */
export const CHAINS_SCHEMA = {
  type: "object",
  additionalProperties: false,
  required: ["chains"],
  properties: {
    chains: {
      type: "array",
      minItems: 1,
      items: {
        type: "object",
        additionalProperties: false,
        required: ["name", "chainId", "signer"],
        properties: {
          name: { type: "string", pattern: "^[a-z][a-z0-9-]{0,31}$" },
          chainId: { type: "integer", minimum: 1, maximum: 4503599627370476 },
          rpcUrl: { type: "string", pattern: RPC_URL_PATTERN },
          rpcUrls: { type: "array", minItems: 1, items: { type: "string", pattern: RPC_URL_PATTERN } },
          explorerUrl: { type: "string", pattern: "^https?://[^\\s]+$", maxLength: 2048 },
          confirmations: { type: "integer", minimum: 1, maximum: 1000 },
          pollIntervalMs: { type: "integer", minimum: 10, maximum: 60000 },
          wsUrl: { type: "string", pattern: WS_URL_PATTERN, maxLength: 2048 },
          fees: {
            type: "object",
            additionalProperties: false,
            required: ["maxFeePerGasGwei"],
            properties: {
              maxFeePerGasGwei: gwei,
              maxPriorityFeePerGasGwei: gwei,
              bumpPercent: { type: "integer", minimum: 10, maximum: 1000 },
              replaceAfterMs: { type: "integer", minimum: 100, maximum: 3600000 },
              gasLimitPercent: { type: "integer", minimum: 100, maximum: 1000 },
            },
          },
          signer: SIGNER_REF_SCHEMA,
          laneSigners: { type: "array", maxItems: 63, items: SIGNER_REF_SCHEMA },
          contracts: {
            type: "object",
            additionalProperties: false,
            properties: {
              registry: address,
              oracle: address,
              ledger: address,
              feeds: { type: "object", additionalProperties: address },
              crosschain: {
                type: "object",
                additionalProperties: {
                  type: "object",
                  additionalProperties: false,
                  properties: {
                    lockbox: address,
                    wrappedTokens: { type: "array", maxItems: 64, uniqueItems: true, items: address },
                    fromBlock: { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
                  },
                },
              },
            },
          },
          anchor: {
            type: "object",
            additionalProperties: false,
            properties: {
              maxBatchSize: { type: "integer", minimum: 1, maximum: 65536 },
              maxBatchDelayMs: { type: "integer", minimum: 0, maximum: 3600000 },
              pollIntervalMs: { type: "integer", minimum: 10, maximum: 60000 },
            },
          },
        },
      },
    },
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: true });
const validate = ajv.compile(CHAINS_SCHEMA);

function toPath(error: ErrorObject): string {
  const path = error.instancePath
    .split("/")
    .slice(1)
    // JSON Pointer escapes (RFC 6901): "~1" is "/", "~0" is "~", e.g. in a package name key `@acme/bridge`.
    .map((part) => part.replaceAll("~1", "/").replaceAll("~0", "~"))
    .map((part) => (/^\d+$/.test(part) ? `[${part}]` : `.${part}`))
    .join("")
    .replace(/^\./, "");
  if (error.keyword === "additionalProperties") {
    return `${path ? path + "." : ""}${String(error.params.additionalProperty)}`;
  }
  if (error.keyword === "required") return `${path ? path + "." : ""}${String(error.params.missingProperty)}`;
  return path || "(root)";
}

function describe(error: ErrorObject): string {
  switch (error.keyword) {
    case "additionalProperties":
      return "is not a known field";
    case "required":
      return "is required";
    case "pattern":
      if (error.instancePath.endsWith("Gwei")) return 'must be a decimal string of gwei, e.g. "30" or "1.5"';
      if (/registry|oracle|ledger|feeds|crosschain/.test(error.instancePath))
        return "must be a 0x-prefixed 20-byte address";
      if (/\/rpcUrls?(\/\d+)?$/.test(error.instancePath)) return RPC_URL_MESSAGE;
      if (error.instancePath.endsWith("/wsUrl")) return WS_URL_MESSAGE;
      return `must match ${String(error.params.pattern)}`;
    default:
      return error.message ?? "is invalid";
  }
}

/**
 * Validates and normalises a parsed chains document.
 * @param document - the parsed JSON.
 * @param source - where it came from, for error messages (a file path, `"env"`, ...).
 * @throws ChainConfigInvalidError (`ERR_CHAIN_CONFIG_INVALID`) listing every problem with its path.
 */
export function parseChainsConfig(document: unknown, source = "chains config"): ChainsConfig {
  if (!validate(document)) {
    // oneOf failures repeat each branch's errors; keep the most specific ones.
    const errors = (validate.errors ?? [])
      .filter((e) => e.keyword !== "oneOf" && e.keyword !== "if")
      .map((e) => ({ path: toPath(e), message: describe(e) }));
    const unique = [...new Map(errors.map((e) => [`${e.path}|${e.message}`, e])).values()];
    throw new ChainConfigInvalidError(source, unique);
  }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const raw = document as { chains: any[] };
  const problems: { path: string; message: string }[] = [];
  const names = new Set<string>();
  const ids = new Set<number>();
  const chains = raw.chains.map((chain, i): ChainConfig => {
    const at = `chains[${i}]`;
    if (names.has(chain.name))
      problems.push({ path: `${at}.name`, message: `duplicates another chain's name "${chain.name}"` });
    if (ids.has(chain.chainId))
      problems.push({ path: `${at}.chainId`, message: `duplicates another chain's id ${chain.chainId}` });
    names.add(chain.name);
    ids.add(chain.chainId);
    const rpcUrls: string[] = chain.rpcUrls ?? (chain.rpcUrl ? [chain.rpcUrl] : []);
    if (rpcUrls.length === 0) problems.push({ path: `${at}.rpcUrl`, message: "is required (or rpcUrls)" });
    for (const [j, url] of rpcUrls.entries()) {
      try {
        new URL(url);
      } catch {
        problems.push({ path: `${at}.rpcUrls[${j}]`, message: `is not a URL (${redactUrl(url)})` });
      }
    }
    if (chain.wsUrl !== undefined) {
      try {
        new URL(chain.wsUrl);
      } catch {
        problems.push({ path: `${at}.wsUrl`, message: `is not a URL (${redactUrl(chain.wsUrl)})` });
      }
    }
    const fees = chain.fees ?? { maxFeePerGasGwei: "500" };
    const maxFeePerGas = parseUnits(fees.maxFeePerGasGwei, "gwei");
    const maxPriorityFeePerGas = parseUnits(fees.maxPriorityFeePerGasGwei ?? "2", "gwei");
    if (maxPriorityFeePerGas > maxFeePerGas) {
      problems.push({ path: `${at}.fees.maxPriorityFeePerGasGwei`, message: "must not exceed maxFeePerGasGwei" });
    }
    const contracts: ChainContracts = {};
    for (const key of ["registry", "oracle", "ledger"] as const) {
      const value = chain.contracts?.[key];
      if (value !== undefined) contracts[key] = checksum(value, `${at}.contracts.${key}`, problems);
    }
    if (chain.contracts?.feeds) {
      contracts.feeds = Object.fromEntries(
        Object.entries(chain.contracts.feeds as Record<string, string>).map(([name, value]) => [
          name,
          checksum(value, `${at}.contracts.feeds.${name}`, problems),
        ]),
      );
    }
    if (chain.contracts?.crosschain) {
      contracts.crosschain = Object.fromEntries(
        Object.entries(
          chain.contracts.crosschain as Record<
            string,
            { lockbox?: string; wrappedTokens?: string[]; fromBlock?: number }
          >,
        ).map(([name, value]) => {
          const where = `${at}.contracts.crosschain.${name}`;
          const entry: CrosschainContracts = {};
          if (value.lockbox !== undefined) entry.lockbox = checksum(value.lockbox, `${where}.lockbox`, problems);
          if (value.wrappedTokens !== undefined) {
            entry.wrappedTokens = value.wrappedTokens.map((token, i) =>
              checksum(token, `${where}.wrappedTokens[${i}]`, problems),
            );
          }
          if (value.fromBlock !== undefined) entry.fromBlock = value.fromBlock;
          return [name, entry];
        }),
      );
    }
    return {
      name: chain.name,
      chainId: chain.chainId,
      rpcUrls,
      confirmations: chain.confirmations ?? 1,
      pollIntervalMs: chain.pollIntervalMs ?? 250,
      fees: {
        maxFeePerGas,
        maxPriorityFeePerGas,
        bumpPercent: fees.bumpPercent ?? 15,
        replaceAfterMs: fees.replaceAfterMs ?? 30_000,
        gasLimitPercent: fees.gasLimitPercent ?? 125,
      },
      signer: chain.signer,
      laneSigners: chain.laneSigners ?? [],
      contracts,
      anchor: {
        maxBatchSize: chain.anchor?.maxBatchSize ?? 256,
        maxBatchDelayMs: chain.anchor?.maxBatchDelayMs ?? 1000,
        pollIntervalMs: chain.anchor?.pollIntervalMs ?? 250,
      },
      ...(chain.wsUrl === undefined ? {} : { wsUrl: chain.wsUrl as string }),
      ...(chain.explorerUrl === undefined ? {} : { explorerUrl: chain.explorerUrl as string }),
    };
  });
  if (problems.length > 0) throw new ChainConfigInvalidError(source, problems);
  return { chains };
}

function checksum(value: string, path: string, problems: { path: string; message: string }[]): string {
  if (!isAddress(value)) {
    problems.push({ path, message: "has an invalid EIP-55 checksum" });
    return value;
  }
  return getAddress(value);
}

/**
 * Reads and validates a chains file (JSON).
 * @throws ChainConfigInvalidError when the file is missing, not JSON, or invalid.
 */
export function loadChainsConfig(path: string): ChainsConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    throw new ChainConfigInvalidError(path, [
      { path: "(file)", message: `cannot be read: ${(cause as Error).message}` },
    ]);
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (cause) {
    throw new ChainConfigInvalidError(path, [{ path: "(file)", message: `is not JSON: ${(cause as Error).message}` }]);
  }
  return parseChainsConfig(document, path);
}
