/**
 * `cryptlet verify <bundle.json>`: verifies a proof bundle offline (`verifyBundle`, docs/proof-bundle.md) against
 * trust that comes from somewhere the operator can name, never from a default:
 *
 * - `--config <file>`: the `CryptletRegistry` of each chain the bundle was written to (its trusted signers,
 *   threshold M, consortium id and the approved code hashes of the bundle's Cryptlet), read over JSON-RPC with a
 *   deadline ({@link readRegistryTrust}), at the block of the write when the receipt or the bundle's anchor names
 *   one and that write is on the chain, else at the latest block. The bundle must pass against **every** chain
 *   read. The attestation JWKS and issuer come from the configuration's attestation key (no chain holds them).
 * - `--rpc <url,...>` (no configuration): for each anchor of the bundle, the endpoint answering its chain id, the
 *   registry the written contract names (`registry()`), read at the block of the write once that write is
 *   confirmed on the chain; the JWKS from `--jwks` (else the attestation is not checked).
 * - `--trust <file>`: a JSON {@link TrustFile} (or the output of `cryptlet trust export`), which must carry
 *   `trustedSigners` and `threshold`.
 *
 * With `--config` or `--rpc` the bundle is verified on-chain too: every anchor on a chain read must hold
 * (`verifyBundle`'s `anchors` check, runtime/chains/anchorCheck.ts), and the output says whether the registry's
 * trust changed between the block read and the latest block.
 *
 * Without either, or when a chain cannot be read, the command refuses with exit code 2 (`ERR_CLI_USAGE`, or
 * `ERR_REGISTRY_TRUST_UNAVAILABLE` naming the chain and its redacted endpoint). Reference: docs/cli.md.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import { fileURLToPath } from "node:url";

import { FetchRequest, JsonRpcProvider, Network, getAddress, isHexString, type FetchGetUrlFunc } from "ethers";
import type { JSONWebKeySet } from "jose";

import {
  verifyBundle,
  type BundleCheck,
  type VerificationReport,
  type VerifyBundleOptions,
  type WriteMode,
} from "../../attestation/verifyBundle.ts";
import { registryOfContract } from "../../chains/anchorCheck.ts";
import type { ChainConfig } from "../../chains/config.ts";
import { ERR_REGISTRY_TRUST_UNAVAILABLE } from "../../chains/errors.ts";
import { readRegistryTrust, type RegistryTrust } from "../../chains/registryTrust.ts";
import type { RuntimeConfig } from "../../config.ts";
import { isCryptletError, redactUrl } from "../../errors.ts";
import { DEFAULT_CONFIG_FILE } from "../config.ts";
import { ChainTrustUnreadableError, CliInputError, CliUsageError } from "../errors.ts";
import { bundleOf, readJsonFile } from "../io.ts";
import { rerunSetup, type RerunCommandOptions, type RerunSetup } from "./rerun.ts";

/** Default deadline of each JSON-RPC request, and of reading one chain's trust from one endpoint, in ms. */
export const DEFAULT_RPC_TIMEOUT_MS = 10_000;

/** The trust file: {@link VerifyBundleOptions} as JSON (`now` as an ISO 8601 string). */
export interface TrustFile {
  /** The consortium's trusted result-signer addresses. Required. */
  trustedSigners: string[];
  /** Distinct trusted signatures required (M). Required: there is no default threshold. */
  threshold: number;
  /** The consortium member id of each named signer (address → member id), to say who signed. */
  signerMembers?: Record<string, string>;
  consortiumId?: string;
  /** Approved code hashes: a list, or lists by Cryptlet id (as `cryptlet trust export` writes them). */
  approvedCodeHashes?: string[] | Record<string, string[]>;
  jwks?: JSONWebKeySet;
  attestationIssuer?: string;
  /** ISO 8601 time to verify the token's validity at (default now). */
  now?: string;
  clockToleranceSeconds?: number;
}

/** Options of {@link verifyCommand} (the command line's, parsed). */
export interface VerifyCommandOptions extends RerunCommandOptions {
  /** `--trust <file>`: verify against a trust file; the configuration is not read. */
  trust?: string;
  /** `--config <file>` as given; without it `$CRYPTLET_CONFIG`, else `./cryptlet.config.json` if it exists. */
  config?: string;
  /** `--chain <name...>`: read these configured chains instead of the ones the receipt or bundle names. */
  chains?: string[];
  /** `--latest`: read every registry at its latest block, even when the write's block is known. */
  latest?: boolean;
  /** `--threshold <m>`: with a trust file, M (overrides the file's); with chains, may only raise the registry's M. */
  threshold?: number;
  /** `--code-hash <hash...>`: with a trust file, the approved set; with chains, narrows the registry's set. */
  codeHashes?: string[];
  /** `--rpc-timeout <ms>`, default {@link DEFAULT_RPC_TIMEOUT_MS}. */
  rpcTimeoutMs?: number;
  /** `--rpc <url,...>`: JSON-RPC endpoints; trust from the registry of each anchor's contract, no configuration. */
  rpc?: string[];
  /** `--jwks <file|url>`: the attestation JWKS (with `--rpc`; with `--config` it replaces the configuration's). */
  jwks?: string;
  /** `--confirmations <n>`: confirmations each anchor's write needs. Default 1. */
  confirmations?: number;
  /** `--registry <address>`: with `--rpc`, the registry every anchor's contract must name. */
  registry?: string;
  /**
   * `--at <time>`: verify the attestation token's validity window at this time instead of now, for archived
   * bundles (e.g. the result's own time); overrides a trust file's `now`.
   */
  at?: Date;
}

/** How the registry's trust differs between the block read and the latest block. */
export interface TrustChange {
  /** The latest block, read for the comparison. */
  latestBlock: number;
  /** Whether anything below differs. */
  changed: boolean;
  /** Signers trusted at the latest block and not at the block read (EIP-55). */
  signersAdded: string[];
  /** Signers trusted at the block read and no longer. */
  signersRemoved: string[];
  /** Present when M differs. */
  threshold?: { then: number; now: number };
  /** Whether the bundle's code hash was approved at the block read, and at the latest block. */
  codeHashApproved?: { then: boolean; now: boolean };
}

/** What one chain's registry trusted, as read for a verification. */
export interface ChainTrustRead {
  /** The configured chain's name. */
  chain: string;
  chainId: number;
  /** The endpoint that answered, credentials redacted. */
  rpcUrl: string;
  /** The registry's address (EIP-55). */
  registry: string;
  /** The block the registry was read at. */
  blockNumber: number;
  /**
   * Why that block: `write` (the block of the receipt's write on this chain), `anchor` (the block of the bundle's
   * anchor on this chain id), `latest` (no write known, `--latest`, or the claimed write is not on the chain:
   * then `note` says why).
   */
  at: "write" | "anchor" | "latest";
  /** Why a claimed write's block was not used. */
  note?: string;
  /** The registry's threshold M. */
  threshold: number;
  /** The registry's trusted signers (EIP-55, sorted). */
  signers: string[];
  /** The member id of each named trusted signer (`signerMember`), by EIP-55 address. */
  signerMembers: Record<string, string>;
  consortiumId: string;
  /** The code hashes the registry approves for the bundle's Cryptlet (lower case, sorted). */
  approvedCodeHashes: string[];
  /** With `--rpc`: the written contract (the anchor's) whose `registry()` named the registry. */
  contract?: string;
  /** Where the registry publishes the attestation keys and their SHA-256 (`attestationKeys()`), if it does. */
  attestationKeys?: { uri: string; sha256: string };
  /** When the registry was read at an earlier block than the latest: what changed since. */
  changedSince?: TrustChange;
}

/** One chain's verdict: the trust read and the report of `verifyBundle` against it. */
export interface ChainVerification extends ChainTrustRead, VerificationReport {
  /** The M actually required (the registry's, or a higher `--threshold`). */
  requiredThreshold: number;
}

/** The result of {@link verifyCommand}. */
export type VerifyOutcome =
  | {
      ok: boolean;
      source: "trust-file";
      trustFile: string;
      threshold: number;
      trustedSigners: string[];
      checks: BundleCheck[];
    }
  | { ok: boolean; source: "chains"; configFile: string; chains: ChainVerification[] }
  | {
      ok: boolean;
      source: "rpc";
      /** The endpoints given (credentials redacted). */
      rpcUrls: string[];
      /** Where the attestation JWKS came from (`--jwks`), or null: the attestation was not checked. */
      jwks: string | null;
      chains: ChainVerification[];
      /** Anchors on chains no endpoint serves: not checked. */
      unchecked: { chainId: string; reason: string }[];
    };

/**
 * Reads a trust file.
 * @param thresholdOverride - `--threshold`, which stands in for a missing `threshold`.
 * @throws {@link CliUsageError} `ERR_CLI_USAGE` (exit 2) when `trustedSigners` or `threshold` is missing or bad;
 *   `ERR_CLI_INPUT` (exit 1) when the file cannot be read or is not JSON.
 */
export async function readTrustFile(
  file: string,
  thresholdOverride?: number,
  cryptletId?: string,
): Promise<VerifyBundleOptions> {
  const raw = (await readJsonFile(file)) as Partial<TrustFile> | null;
  if (typeof raw !== "object" || raw === null || !Array.isArray(raw.trustedSigners)) {
    throw new CliUsageError(`${file}: trustedSigners (an array of addresses) is required`, "--trust");
  }
  const threshold = thresholdOverride ?? raw.threshold;
  if (threshold === undefined) {
    throw new CliUsageError(
      `${file} has no threshold: add "threshold": M (the distinct trusted signatures a result needs, the registry's threshold) or pass --threshold <m>; there is no default`,
      "--trust",
    );
  }
  if (!Number.isSafeInteger(threshold) || threshold < 1) {
    throw new CliUsageError(`${file}: threshold must be an integer ≥ 1`, "--trust");
  }
  const t = raw as TrustFile;
  const approved = Array.isArray(t.approvedCodeHashes)
    ? t.approvedCodeHashes
    : t.approvedCodeHashes === undefined
      ? undefined
      : (Object.entries(t.approvedCodeHashes).find(([id]) => id.toLowerCase() === cryptletId?.toLowerCase())?.[1] ??
        []);
  return {
    trustedSigners: t.trustedSigners,
    threshold,
    ...(t.signerMembers === undefined ? {} : { signerMembers: t.signerMembers }),
    ...(t.consortiumId === undefined ? {} : { consortiumId: t.consortiumId }),
    ...(approved === undefined ? {} : { approvedCodeHashes: approved }),
    ...(t.jwks === undefined ? {} : { jwks: t.jwks }),
    ...(t.attestationIssuer === undefined ? {} : { attestationIssuer: t.attestationIssuer }),
    ...(t.now === undefined ? {} : { now: new Date(t.now) }),
    ...(t.clockToleranceSeconds === undefined ? {} : { clockToleranceSeconds: t.clockToleranceSeconds }),
  };
}

/** A write whose block may be used to read the registry as it was then. */
interface ClaimedWrite {
  txHash: string;
  blockNumber: number;
  from: "write" | "anchor";
}

/** What of a chain's configuration a verification uses (with `--rpc`, made up from the anchor). */
export type TrustChain = Pick<ChainConfig, "name" | "chainId" | "rpcUrls" | "contracts">;

/** A chain to read, and the write on it (if any is known). */
export interface ChainSelection {
  chain: TrustChain;
  write?: ClaimedWrite;
}

interface TargetLike {
  chain?: unknown;
  mode?: unknown;
  status?: unknown;
  receipt?: { txHash?: unknown; blockNumber?: unknown };
}

/** The targets of a composite receipt (or of `cryptlet status --json` output), if `document` is one. */
function targetsOf(document: unknown): TargetLike[] | undefined {
  if (typeof document !== "object" || document === null) return undefined;
  if ("targets" in document && Array.isArray(document.targets)) return document.targets as TargetLike[];
  if ("receipt" in document) return targetsOf(document.receipt);
  return undefined;
}

function writeOfTarget(t: TargetLike): ClaimedWrite | undefined {
  const { txHash, blockNumber } = t.receipt ?? {};
  return typeof txHash === "string" && Number.isSafeInteger(blockNumber)
    ? { txHash, blockNumber: blockNumber as number, from: "write" }
    : undefined;
}

function anchorWrites(bundle: unknown): Map<number, ClaimedWrite> {
  const writes = new Map<number, ClaimedWrite>();
  const anchors = (bundle as { anchors?: unknown } | null)?.anchors;
  if (!Array.isArray(anchors)) return writes;
  for (const a of anchors as { chainId?: unknown; txHash?: unknown; blockNumber?: unknown }[]) {
    const chainId = Number(a?.chainId);
    const blockNumber = Number(a?.blockNumber);
    if (!Number.isSafeInteger(chainId) || !Number.isSafeInteger(blockNumber) || typeof a.txHash !== "string") continue;
    if (!writes.has(chainId)) writes.set(chainId, { txHash: a.txHash, blockNumber, from: "anchor" });
  }
  return writes;
}

/**
 * The configured chains to read trust from: `names` (`--chain`) when given; else the chains of a composite
 * receipt's targets (those written to; all of them when every target failed); else, for a bare bundle, the
 * configured chains whose chain id one of its anchors names, or every configured chain when none does. The write's
 * block comes from the receipt's target (`receipt.blockNumber`, `txHash`), else from the bundle's anchor on that
 * chain id.
 * @throws {@link CliUsageError} for a `--chain` or a receipt target that is not a configured chain.
 */
export function chainsToRead(
  document: unknown,
  chains: readonly ChainConfig[],
  names?: readonly string[],
): ChainSelection[] {
  const bundle = bundleOf(document);
  const targets = targetsOf(document);
  const anchors = anchorWrites(bundle);
  const configured = chains.map((c) => c.name).join(", ");
  const byName = (name: string, option: string, what: string): ChainConfig => {
    const chain = chains.find((c) => c.name === name);
    if (!chain) throw new CliUsageError(`${what} ${name} is not a chain of the configuration (${configured})`, option);
    return chain;
  };
  const selectionOf = (chain: ChainConfig): ChainSelection => {
    const fromTarget = (targets ?? [])
      .filter((t) => t.chain === chain.name && t.status !== "failed")
      .map(writeOfTarget)
      .find((w) => w !== undefined);
    const write = fromTarget ?? anchors.get(chain.chainId);
    return { chain, ...(write ? { write } : {}) };
  };
  if (names && names.length > 0) {
    return [...new Set(names)].map((n) => selectionOf(byName(n, "--chain", "--chain")));
  }
  if (targets && targets.length > 0) {
    const written = targets.filter((t) => t.status !== "failed");
    const chosen = [...new Set((written.length > 0 ? written : targets).map((t) => String(t.chain)))];
    return chosen.map((n) => selectionOf(byName(n, "--chain", "the receipt's target chain")));
  }
  const anchored = chains.filter((c) => anchors.has(c.chainId));
  return (anchored.length > 0 ? anchored : chains).map(selectionOf);
}

/** Rejects after `ms` with `message` unless `work` settles first. */
async function withDeadline<T>(ms: number, message: string, work: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * An ethers `getUrlFunc` that really ends a request at its deadline: ethers' own Node transport rejects on timeout
 * but leaves the socket open, so a silent endpoint would keep the process alive. This one destroys the request
 * (the deadline, or ethers cancelling it). Like ethers' transport it uses `http`/`https`, so user info in the URL
 * is sent as Basic authentication. Responses are not compressed (`allowGzip` must be off on the request).
 */
export function getUrlWithDeadline(timeoutMs: number): FetchGetUrlFunc {
  return (req, signal) =>
    new Promise((resolve, reject) => {
      const url = new URL(req.url);
      const client = url.protocol === "https:" ? https : http;
      const request = client.request(url, { method: req.method, headers: { ...req.headers } }, (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("error", reject);
        response.on("end", () => {
          const headers: Record<string, string> = {};
          for (const [name, value] of Object.entries(response.headers)) {
            if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value;
          }
          resolve({
            statusCode: response.statusCode ?? 0,
            statusMessage: response.statusMessage ?? "",
            headers,
            body: new Uint8Array(Buffer.concat(chunks)),
          });
        });
      });
      const end = (message: string, code: string) => request.destroy(Object.assign(new Error(message), { code }));
      const timer = setTimeout(() => end(`request timeout (${timeoutMs} ms)`, "TIMEOUT"), timeoutMs);
      request.on("close", () => clearTimeout(timer));
      request.on("error", reject);
      signal?.addListener(() => end("request cancelled", "CANCELLED"));
      if (req.body) request.write(req.body);
      request.end();
    });
}

/** One line for an error, without the library's full message (ethers puts the request URL in it). */
function reasonOf(error: unknown): string {
  const describe = (e: unknown): string => {
    const { code, shortMessage, message } = (e ?? {}) as { code?: unknown; shortMessage?: unknown; message?: unknown };
    const text = typeof shortMessage === "string" ? shortMessage : typeof message === "string" ? message : String(e);
    return typeof code === "string" && !code.startsWith("ERR_") && !text.startsWith(code) ? `${code}: ${text}` : text;
  };
  const cause = (error as { cause?: unknown } | null)?.cause;
  return isCryptletError(error) && cause !== undefined ? `${describe(error)} (${describe(cause)})` : describe(error);
}

/**
 * Why a claimed write cannot be used to pick the block (undefined when it can): the transaction must be on the
 * chain in that block, have succeeded, and have a log of one of the chain's configured Cryptlet contracts (ledger,
 * oracle, feeds) with the result id or the batch root as a topic. Those contracts check every proof against the
 * registry, so such a write shows the registry accepted this result at that block; a block taken from the file
 * alone could be any block the file's author liked.
 */
async function writeUnconfirmed(
  provider: JsonRpcProvider,
  chain: TrustChain,
  write: ClaimedWrite,
  ids: readonly string[],
): Promise<string | undefined> {
  if (!isHexString(write.txHash, 32)) return `${write.txHash} is not a transaction hash`;
  const receipt = await provider.getTransactionReceipt(write.txHash);
  if (receipt === null) return `transaction ${write.txHash} is not on the chain`;
  if (receipt.blockNumber !== write.blockNumber) {
    return `transaction ${write.txHash} is in block ${receipt.blockNumber}, not ${write.blockNumber}`;
  }
  if (receipt.status !== 1) return `transaction ${write.txHash} reverted`;
  const { ledger, oracle, feeds } = chain.contracts;
  const contracts = new Set(
    [ledger, oracle, ...Object.values(feeds ?? {})].flatMap((a) => (a ? [a.toLowerCase()] : [])),
  );
  const wanted = new Set(ids.map((i) => i.toLowerCase()));
  const found = receipt.logs.some(
    (l) => contracts.has(l.address.toLowerCase()) && l.topics.some((t) => wanted.has(t.toLowerCase())),
  );
  return found ? undefined : `transaction ${write.txHash} wrote no event of this result by a configured contract`;
}

/**
 * A JSON-RPC provider for one endpoint of a known chain, whose every request ends at `timeoutMs` (no network
 * detection, no batching, no cache).
 */
export function rpcProvider(url: string, chainId: number, timeoutMs: number): JsonRpcProvider {
  const request = new FetchRequest(url);
  request.timeout = timeoutMs;
  request.allowGzip = false;
  request.getUrlFunc = getUrlWithDeadline(timeoutMs);
  return new JsonRpcProvider(request, Network.from(chainId), {
    staticNetwork: true,
    batchMaxCount: 1,
    cacheTimeout: -1,
  });
}

/** What changed in `now` compared with `then` (the bundle's code hash approval when `codeHash` is given). */
export function trustChange(
  then: RegistryTrust,
  now: RegistryTrust,
  cryptletId: string | undefined,
  codeHash: string | undefined,
): TrustChange {
  const signersAdded = now.signers.filter((s) => !then.signers.includes(s));
  const signersRemoved = then.signers.filter((s) => !now.signers.includes(s));
  const approved = (t: RegistryTrust) =>
    (t.approvedCodeHashes[cryptletId?.toLowerCase() ?? ""] ?? []).includes(codeHash?.toLowerCase() ?? "");
  const codeHashApproved = cryptletId && codeHash ? { then: approved(then), now: approved(now) } : undefined;
  const thresholdChanged = then.threshold !== now.threshold;
  return {
    latestBlock: now.blockNumber,
    changed:
      signersAdded.length > 0 ||
      signersRemoved.length > 0 ||
      thresholdChanged ||
      (codeHashApproved !== undefined && codeHashApproved.then !== codeHashApproved.now),
    signersAdded,
    signersRemoved,
    ...(thresholdChanged ? { threshold: { then: then.threshold, now: now.threshold } } : {}),
    ...(codeHashApproved ? { codeHashApproved } : {}),
  };
}

/** Options of {@link readChainTrust}. */
export interface ReadChainTrustOptions {
  /** Deadline per JSON-RPC request and per endpoint's whole read, in ms. */
  timeoutMs?: number;
  /** Read at the latest block even when the write's block is known. */
  latest?: boolean;
  /** The bundle's code hash, for `changedSince.codeHashApproved`. */
  codeHash?: string;
}

/**
 * Reads one chain's registry trust for `cryptletId`: each endpoint in turn, each with a deadline of `timeoutMs`
 * (per JSON-RPC request, and for the whole read). Checks the endpoint's chain id first. When the registry is read
 * at the write's block, it is read at the latest block too and `changedSince` says what changed.
 * @param ids - the result id and batch root whose write may pick the block (see {@link writeUnconfirmed}).
 * @throws {@link CliUsageError} when the chain has no `contracts.registry`; {@link ChainTrustUnreadableError}
 *   `ERR_REGISTRY_TRUST_UNAVAILABLE` when no endpoint gave an answer.
 */
export async function readChainTrust(
  selection: ChainSelection,
  cryptletId: string | undefined,
  ids: readonly string[],
  options: ReadChainTrustOptions = {},
): Promise<ChainTrustRead> {
  return (await readChainTrustVia(selection, cryptletId, ids, options)).read;
}

/** {@link readChainTrust}, and the endpoint (unredacted, for this process only) that answered. */
async function readChainTrustVia(
  selection: ChainSelection,
  cryptletId: string | undefined,
  ids: readonly string[],
  options: ReadChainTrustOptions = {},
): Promise<{ read: ChainTrustRead; url: string }> {
  const { chain } = selection;
  const timeoutMs = options.timeoutMs ?? DEFAULT_RPC_TIMEOUT_MS;
  const registry = chain.contracts.registry;
  if (!registry) {
    throw new CliUsageError(
      `chain ${chain.name} has no contracts.registry in the configuration: its trusted signers and threshold cannot be read (name other chains with --chain, or use --trust)`,
      "--config",
    );
  }
  const write = options.latest ? undefined : selection.write;
  let last: { url: string; error: unknown } = { url: chain.rpcUrls[0] ?? "", error: new Error("no RPC URL") };
  for (const url of chain.rpcUrls) {
    const provider = rpcProvider(url, chain.chainId, timeoutMs);
    try {
      const read = await withDeadline(timeoutMs, `no answer within ${timeoutMs} ms`, async () => {
        const remote = Number(await provider.send("eth_chainId", []));
        if (remote !== chain.chainId) {
          throw new Error(`the endpoint answers chain id ${remote}, the configuration says ${chain.chainId}`);
        }
        const note = write ? await writeUnconfirmed(provider, chain, write, ids) : undefined;
        const blockTag = write && note === undefined ? write.blockNumber : undefined;
        const cryptletIds = cryptletId ? [cryptletId] : [];
        const trust = await readRegistryTrust(provider, registry, {
          cryptletIds,
          ...(blockTag === undefined ? {} : { blockTag }),
        });
        const latest =
          blockTag === undefined ? undefined : await readRegistryTrust(provider, registry, { cryptletIds });
        const result: ChainTrustRead = {
          chain: chain.name,
          chainId: chain.chainId,
          rpcUrl: redactUrl(url),
          registry: trust.registry,
          blockNumber: trust.blockNumber,
          at: blockTag === undefined ? "latest" : (write?.from ?? "latest"),
          ...(note === undefined ? {} : { note: `claimed write not used: ${note}` }),
          threshold: trust.threshold,
          signers: trust.signers,
          signerMembers: trust.signerMembers,
          consortiumId: trust.consortiumId,
          approvedCodeHashes: cryptletId ? (trust.approvedCodeHashes[cryptletId.toLowerCase()] ?? []) : [],
          ...(trust.attestationKeys === undefined ? {} : { attestationKeys: trust.attestationKeys }),
          ...(latest === undefined ? {} : { changedSince: trustChange(trust, latest, cryptletId, options.codeHash) }),
        };
        return result;
      });
      return { read, url };
    } catch (error) {
      if (isCryptletError(error) && !isCryptletError(error, ERR_REGISTRY_TRUST_UNAVAILABLE.code)) throw error;
      last = { url, error };
    } finally {
      provider.destroy();
    }
  }
  const block = write && !options.latest ? write.blockNumber : "latest";
  throw new ChainTrustUnreadableError(chain.name, last.url, registry, block, reasonOf(last.error));
}

/** A file name as is, a URL with its credentials redacted. */
const sourceName = (source: string): string => (/^[a-z]+:\/\//i.test(source) ? redactUrl(source) : source);

/** Whether `value` has a JWKS's shape (an object with a `keys` array, RFC 7517 §5). */
function isJwks(value: unknown): value is JSONWebKeySet {
  return typeof value === "object" && value !== null && Array.isArray((value as { keys?: unknown }).keys);
}

/** The bytes at an `http(s)` URL, within `timeoutMs`. @throws when there is no 2xx answer in time. */
async function fetchBytes(url: string, timeoutMs: number): Promise<Buffer> {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return Buffer.from(await response.arrayBuffer());
}

/**
 * Reads an attestation JWKS from a file or an `http(s)` URL (e.g. the API's `/.well-known/jwks.json`).
 * @throws {@link CliInputError} `ERR_CLI_INPUT` when it cannot be read or has no `keys` array.
 */
export async function readJwks(source: string, timeoutMs = DEFAULT_RPC_TIMEOUT_MS): Promise<JSONWebKeySet> {
  let value: unknown;
  if (/^https?:\/\//i.test(source)) {
    try {
      value = JSON.parse((await fetchBytes(source, timeoutMs)).toString("utf8")) as unknown;
    } catch (cause) {
      throw new CliInputError(
        sourceName(source),
        "unreadable",
        `cannot fetch the JWKS at ${sourceName(source)}`,
        cause,
      );
    }
  } else {
    value = await readJsonFile(source);
  }
  if (!isJwks(value)) {
    throw new CliInputError(
      sourceName(source),
      "unexpected-shape",
      `${sourceName(source)} is not a JWKS (no "keys" array)`,
    );
  }
  return value as JSONWebKeySet;
}

/**
 * The JWKS a registry publishes (`attestationKeys()`: a URI and the SHA-256 of the document's bytes): fetched from
 * `file:` or `http(s):` within the deadline, its bytes hashed and compared before they are parsed.
 * @throws {@link ChainTrustUnreadableError} (exit 2) when it cannot be fetched, or its hash is not the registry's.
 */
export async function readPublishedJwks(
  published: { uri: string; sha256: string },
  timeoutMs = DEFAULT_RPC_TIMEOUT_MS,
): Promise<JSONWebKeySet> {
  const refuse = (why: string, cause?: unknown) =>
    new ChainTrustUnreadableError(
      "registry",
      redactUrl(published.uri),
      "attestation keys",
      "latest",
      cause === undefined ? why : `${why} (${reasonOf(cause)})`,
    );
  let bytes: Buffer;
  try {
    if (/^file:/i.test(published.uri)) bytes = await readFile(fileURLToPath(published.uri));
    else if (/^https?:\/\//i.test(published.uri)) bytes = await fetchBytes(published.uri, timeoutMs);
    else throw new Error("not a file:, http: or https: URI");
  } catch (cause) {
    throw refuse(`cannot fetch the attestation keys the registry publishes at ${redactUrl(published.uri)}`, cause);
  }
  const digest = `0x${createHash("sha256").update(bytes).digest("hex")}`;
  if (digest !== published.sha256.toLowerCase()) {
    throw refuse(
      `the JWKS at ${redactUrl(published.uri)} hashes to ${digest}, not the ${published.sha256} the registry publishes`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch (cause) {
    throw refuse("the published attestation keys are not JSON", cause);
  }
  if (!isJwks(value)) {
    throw refuse('the published attestation keys are not a JWKS (no "keys" array)');
  }
  return value as JSONWebKeySet;
}

/**
 * The bundle write mode of each receipt target mode (runtime/chains/targets.ts `WriteMode`): `oracle` writes are
 * `fulfill`, `feed` writes `submit`; the others, cross-chain `mint`, `release` and `refund` included, keep their
 * name. The bundle names themselves are accepted too.
 */
const BUNDLE_MODE_OF_TARGET: Readonly<Record<string, WriteMode>> = {
  record: "record",
  anchor: "anchor",
  oracle: "fulfill",
  fulfill: "fulfill",
  feed: "submit",
  submit: "submit",
  mint: "mint",
  release: "release",
  refund: "refund",
};

/** The write modes of a composite receipt's targets that were written (none for a bare bundle). */
function writeModesOf(document: unknown): WriteMode[] {
  const modes = new Set<WriteMode>();
  for (const t of targetsOf(document) ?? []) {
    if (t.status === "failed") continue;
    const mode =
      typeof t.mode === "string" && Object.hasOwn(BUNDLE_MODE_OF_TARGET, t.mode)
        ? BUNDLE_MODE_OF_TARGET[t.mode]
        : undefined;
    if (mode !== undefined) modes.add(mode);
  }
  return [...modes];
}

/** Verifies `document`'s bundle against one chain's trust, with that chain's anchors checked on-chain. */
async function verifyOnChain(
  document: unknown,
  trust: ChainTrustRead,
  url: string,
  options: Omit<VerifyCommandOptions, "jwks"> & {
    jwks: JSONWebKeySet | undefined;
    attestationIssuer?: string;
    timeoutMs: number;
    reexecution: RerunSetup;
  },
): Promise<ChainVerification> {
  if (options.threshold !== undefined && options.threshold < trust.threshold) {
    throw new CliUsageError(
      `--threshold ${options.threshold} is below the threshold ${trust.threshold} of the registry on chain ${trust.chain}: a verification may raise M, not lower it`,
      "--threshold",
    );
  }
  const requiredThreshold = Math.max(trust.threshold, options.threshold ?? 0);
  const narrowed = options.codeHashes?.map((h) => h.toLowerCase());
  const provider = rpcProvider(url, trust.chainId, options.timeoutMs);
  try {
    const report = await verifyBundle(bundleOf(document), {
      trustedSigners: trust.signers,
      signerMembers: trust.signerMembers,
      threshold: requiredThreshold,
      consortiumId: trust.consortiumId,
      approvedCodeHashes: narrowed
        ? trust.approvedCodeHashes.filter((h) => narrowed.includes(h))
        : trust.approvedCodeHashes,
      ...(options.jwks === undefined ? {} : { jwks: options.jwks }),
      ...(options.attestationIssuer === undefined ? {} : { attestationIssuer: options.attestationIssuer }),
      chains: { [String(trust.chainId)]: provider },
      ...(options.confirmations === undefined ? {} : { confirmations: options.confirmations }),
      ...(options.at === undefined ? {} : { now: options.at }),
      writeModes: writeModesOf(document),
      ...options.reexecution.options,
    });
    return { ...trust, requiredThreshold, ...report };
  } finally {
    provider.destroy();
  }
}

/** The anchors of a bundle with usable fields (chain id, contract, tx hash, block), first per chain id. */
function anchorsOf(bundle: unknown): { chainId: string; contract: string; txHash: string; blockNumber: number }[] {
  const anchors = (bundle as { anchors?: unknown } | null)?.anchors;
  if (!Array.isArray(anchors)) return [];
  const seen = new Set<string>();
  const out: { chainId: string; contract: string; txHash: string; blockNumber: number }[] = [];
  for (const a of anchors as { chainId?: unknown; contract?: unknown; txHash?: unknown; blockNumber?: unknown }[]) {
    const chainId = String(a?.chainId);
    const blockNumber = Number(a?.blockNumber);
    if (!/^[0-9]+$/.test(chainId) || seen.has(chainId) || !Number.isSafeInteger(blockNumber)) continue;
    if (typeof a.txHash !== "string" || typeof a.contract !== "string" || !isHexString(a.contract, 20)) continue;
    seen.add(chainId);
    out.push({ chainId, contract: getAddress(a.contract), txHash: a.txHash, blockNumber });
  }
  return out;
}

/**
 * `verify --rpc`: no configuration. Each endpoint is asked its chain id; for each anchor of the bundle on a chain
 * an endpoint serves, the registry is the one the anchor's contract names (`registry()`), read at the block of the
 * write when that write is confirmed (else at the latest block, with a note), and the anchors are checked.
 * @throws {@link CliUsageError} (exit 2) for a bundle without anchors, or when no endpoint serves any anchor's
 *   chain; {@link ChainTrustUnreadableError} (exit 2) when a contract names no registry, names another than
 *   `--registry`, or the registry cannot be read.
 */
async function verifyWithRpc(
  file: string,
  options: VerifyCommandOptions & { reexecution: RerunSetup },
): Promise<VerifyOutcome> {
  const urls = options.rpc ?? [];
  const timeoutMs = options.rpcTimeoutMs ?? DEFAULT_RPC_TIMEOUT_MS;
  const document = await readJsonFile(file);
  const bundle = bundleOf(document) as {
    result?: { cryptletId?: unknown; resultId?: unknown; codeHash?: unknown };
    batch?: { root?: unknown };
  } | null;
  const anchors = anchorsOf(bundle);
  if (anchors.length === 0) {
    throw new CliUsageError(
      `${file} has no anchors: --rpc reads the trust from the registry of the contract each anchor names; use --config or --trust for a result that was not written`,
      "--rpc",
    );
  }
  const cryptletId = isHexString(bundle?.result?.cryptletId, 32) ? (bundle?.result?.cryptletId as string) : undefined;
  const codeHash = isHexString(bundle?.result?.codeHash, 32) ? (bundle?.result?.codeHash as string) : undefined;
  const ids = [bundle?.result?.resultId, bundle?.batch?.root].filter((x): x is string => isHexString(x, 32));

  // Which chain each endpoint serves (the first endpoint of a chain id wins).
  const served = new Map<string, string>();
  const probes = await Promise.all(
    urls.map(async (url) => {
      const provider = rpcProvider(url, 1, timeoutMs);
      try {
        const id = await withDeadline(timeoutMs, `no answer within ${timeoutMs} ms`, () =>
          provider.send("eth_chainId", []),
        );
        return { url, chainId: BigInt(id as string).toString() };
      } catch (error) {
        return { url, error: reasonOf(error) };
      } finally {
        provider.destroy();
      }
    }),
  );
  for (const p of probes) if (p.chainId !== undefined && !served.has(p.chainId)) served.set(p.chainId, p.url);

  const unchecked: { chainId: string; reason: string }[] = [];
  const reads: { read: ChainTrustRead; url: string }[] = [];
  for (const anchor of anchors) {
    const url = served.get(anchor.chainId);
    if (url === undefined) {
      unchecked.push({ chainId: anchor.chainId, reason: `no --rpc endpoint answers chain id ${anchor.chainId}` });
      continue;
    }
    const name = `chain ${anchor.chainId}`;
    const chainId = Number(anchor.chainId);
    const provider = rpcProvider(url, chainId, timeoutMs);
    let registry: string;
    try {
      registry = await withDeadline(timeoutMs, `no answer within ${timeoutMs} ms`, () =>
        registryOfContract(provider, anchor.contract),
      );
    } catch (error) {
      throw new ChainTrustUnreadableError(
        name,
        url,
        anchor.contract,
        "latest",
        `the anchor's contract ${anchor.contract} names no registry (no registry() view there): ${reasonOf(error)}`,
      );
    } finally {
      provider.destroy();
    }
    if (options.registry !== undefined && registry.toLowerCase() !== options.registry.toLowerCase()) {
      throw new ChainTrustUnreadableError(
        name,
        url,
        registry,
        "latest",
        `the anchor's contract ${anchor.contract} checks proofs against registry ${registry}, not the --registry ${getAddress(options.registry)}`,
      );
    }
    const selection: ChainSelection = {
      chain: { name, chainId, rpcUrls: [url], contracts: { registry, ledger: anchor.contract } },
      write: { txHash: anchor.txHash, blockNumber: anchor.blockNumber, from: "anchor" },
    };
    const via = await readChainTrustVia(selection, cryptletId, ids, {
      timeoutMs,
      latest: options.latest ?? false,
      ...(codeHash === undefined ? {} : { codeHash }),
    });
    reads.push({ read: { ...via.read, contract: anchor.contract }, url: via.url });
  }
  if (reads.length === 0) {
    const answered = probes.map((p) =>
      p.chainId === undefined ? `${redactUrl(p.url)}: ${p.error}` : `${redactUrl(p.url)}: chain id ${p.chainId}`,
    );
    throw new CliUsageError(
      `no --rpc endpoint serves a chain the bundle was written to (anchors on chain id ${anchors.map((a) => a.chainId).join(", ")}; ${answered.join("; ")})`,
      "--rpc",
    );
  }
  // The attestation keys: --jwks, else the JWKS the registry publishes (fetched, and checked against its hash).
  const published = reads.map((r) => r.read.attestationKeys).find((k) => k !== undefined);
  const jwks =
    options.jwks !== undefined
      ? await readJwks(options.jwks, timeoutMs)
      : published === undefined
        ? undefined
        : await readPublishedJwks(published, timeoutMs);
  const chains: ChainVerification[] = [];
  for (const { read, url } of reads) {
    chains.push(await verifyOnChain(document, read, url, { ...options, jwks, timeoutMs }));
  }
  return {
    ok: chains.every((c) => c.ok),
    source: "rpc",
    rpcUrls: urls.map((u) => redactUrl(u)),
    jwks:
      options.jwks !== undefined
        ? sourceName(options.jwks)
        : published === undefined
          ? null
          : `published by the registry: ${published.uri} (SHA-256 checked)`,
    chains,
    unchecked,
  };
}

/**
 * Verifies the bundle (or composite receipt) in `file` against the trust the options name.
 * @throws {@link CliUsageError} (exit 2) without trust material, for a trust file without `threshold`, an unknown
 *   `--chain`, a chain without a registry, a `--threshold` below a registry's; {@link ChainTrustUnreadableError}
 *   (exit 2) when a chain's registry cannot be read; `ERR_CLI_INPUT` (exit 1) when a file cannot be read.
 */
export async function verifyCommand(file: string, options: VerifyCommandOptions): Promise<VerifyOutcome> {
  const rerun = await rerunSetup(options);
  try {
    return await verifyWith(file, options, rerun);
  } finally {
    await rerun.close();
  }
}

async function verifyWith(file: string, options: VerifyCommandOptions, rerun: RerunSetup): Promise<VerifyOutcome> {
  if (options.trust !== undefined) {
    if (options.chains !== undefined)
      throw new CliUsageError("--chain reads trust from --config, not --trust", "--chain");
    if (options.rpc !== undefined)
      throw new CliUsageError("--rpc and --trust are two sources of trust: give one", "--rpc");
    const document = await readJsonFile(file);
    const bundle = bundleOf(document);
    const cryptletId = (bundle as { result?: { cryptletId?: unknown } } | null)?.result?.cryptletId;
    const trust = await readTrustFile(
      options.trust,
      options.threshold,
      typeof cryptletId === "string" ? cryptletId : undefined,
    );
    const report = await verifyBundle(bundle, {
      ...trust,
      ...(options.codeHashes ? { approvedCodeHashes: options.codeHashes } : {}),
      ...(options.at === undefined ? {} : { now: options.at }),
      writeModes: writeModesOf(document),
      ...rerun.options,
    });
    return {
      ...report,
      source: "trust-file",
      trustFile: options.trust,
      threshold: trust.threshold,
      trustedSigners: [...trust.trustedSigners],
    };
  }

  if (options.rpc !== undefined) {
    if (options.chains !== undefined)
      throw new CliUsageError("--chain names configured chains; with --rpc the anchors name them", "--chain");
    if (options.config !== undefined)
      throw new CliUsageError("--rpc and --config are two sources of trust: give one", "--rpc");
    return verifyWithRpc(file, { ...options, reexecution: rerun });
  }

  const configFile = options.config ?? process.env.CRYPTLET_CONFIG ?? DEFAULT_CONFIG_FILE;
  if (options.config === undefined && !existsSync(configFile)) {
    throw new CliUsageError(
      `no trust to verify against: pass --config <file> (the registries of its chains are read: signers, threshold, approved code hashes) or --trust <file> (trustedSigners and threshold); no --config given, CRYPTLET_CONFIG ${process.env.CRYPTLET_CONFIG === undefined ? "not set" : "names no file"}, no ${configFile}`,
      "--trust",
    );
  }
  const { configFor } = await import("../config.ts");
  const config: RuntimeConfig = configFor(options.config);

  const document = await readJsonFile(file);
  const bundle = bundleOf(document) as {
    result?: { cryptletId?: unknown; resultId?: unknown; codeHash?: unknown };
    batch?: { root?: unknown };
  } | null;
  const cryptletId = isHexString(bundle?.result?.cryptletId, 32) ? (bundle?.result?.cryptletId as string) : undefined;
  const codeHash = isHexString(bundle?.result?.codeHash, 32) ? (bundle?.result?.codeHash as string) : undefined;
  const ids = [bundle?.result?.resultId, bundle?.batch?.root].filter((x): x is string => isHexString(x, 32));
  const selections = chainsToRead(document, config.chains, options.chains);
  const timeoutMs = options.rpcTimeoutMs ?? DEFAULT_RPC_TIMEOUT_MS;

  // Loaded here: the key adapters pull in the Azure SDK, which a verification with --trust does not need.
  const { keyProviderOf } = await import("../../bootstrap.ts");
  const { buildJwks } = await import("../../attestation/token.ts");
  const [jwks, ...reads] = await Promise.all([
    options.jwks === undefined
      ? withDeadline(timeoutMs, `the attestation key gave no answer within ${timeoutMs} ms`, () =>
          buildJwks([keyProviderOf(config.keys.attestation, config)]),
        )
      : readJwks(options.jwks, timeoutMs),
    ...selections.map((s) =>
      readChainTrustVia(s, cryptletId, ids, {
        timeoutMs,
        latest: options.latest ?? false,
        ...(codeHash === undefined ? {} : { codeHash }),
      }),
    ),
  ]);

  const chains: ChainVerification[] = [];
  for (const { read, url } of reads as { read: ChainTrustRead; url: string }[]) {
    chains.push(
      await verifyOnChain(document, read, url, {
        ...options,
        jwks: jwks as JSONWebKeySet,
        attestationIssuer: config.issuer,
        timeoutMs,
        reexecution: rerun,
      }),
    );
  }
  return { ok: chains.every((c) => c.ok), source: "chains", configFile, chains };
}

/** Whether `error` means "no trust could be had" (exit code 2 rather than 1). */
export function isTrustUnavailable(error: unknown): boolean {
  return isCryptletError(error, ERR_REGISTRY_TRUST_UNAVAILABLE.code);
}

const BLOCK_WHY: Record<ChainTrustRead["at"], string> = {
  write: "the block of the write",
  anchor: "the block of the bundle's anchor",
  latest: "the latest block",
};

/** One line: what changed in the registry between the block read and the latest block. */
export function describeChange(change: TrustChange): string {
  if (!change.changed) {
    return `unchanged at the latest block ${change.latestBlock} (signers, threshold${change.codeHashApproved ? ", approval of this code hash" : ""})`;
  }
  const parts = [
    change.signersAdded.length > 0 ? `signers added ${change.signersAdded.join(", ")}` : "",
    change.signersRemoved.length > 0 ? `signers removed ${change.signersRemoved.join(", ")}` : "",
    change.threshold ? `threshold ${change.threshold.then} -> ${change.threshold.now}` : "",
    change.codeHashApproved && change.codeHashApproved.then !== change.codeHashApproved.now
      ? `this code hash ${change.codeHashApproved.now ? "approved" : "revoked"} since`
      : "",
  ].filter(Boolean);
  return `CHANGED by the latest block ${change.latestBlock}: ${parts.join("; ")}`;
}

/** The human form of an outcome: `VALID`/`INVALID`, what trust was used, and every check. */
export function describeOutcome(outcome: VerifyOutcome): string {
  const checks = (list: readonly BundleCheck[]) =>
    list.map((c) => `  ${c.verdict.padEnd(7)} ${c.name.padEnd(16)} ${c.reason}`);
  const lines = [outcome.ok ? "VALID" : "INVALID"];
  if (outcome.source === "trust-file") {
    lines.push(
      `trust file ${outcome.trustFile}: threshold ${outcome.threshold} of ${outcome.trustedSigners.length} trusted signer(s)`,
    );
    lines.push(...checks(outcome.checks));
    return lines.join("\n");
  }
  if (outcome.source === "rpc") {
    lines.push(
      `trust from the registries the anchors' contracts name, via ${outcome.rpcUrls.join(", ")}; attestation JWKS: ${outcome.jwks ?? "none (the attestation is not checked)"}`,
    );
    for (const u of outcome.unchecked) lines.push(`chain id ${u.chainId}: anchor not checked (${u.reason})`);
  }
  for (const c of outcome.chains) {
    const m =
      c.requiredThreshold === c.threshold
        ? `${c.threshold}`
        : `${c.requiredThreshold} (--threshold; registry ${c.threshold})`;
    const name =
      c.chain === `chain ${c.chainId}` ? `chain id ${c.chainId}` : `chain ${c.chain} (chain id ${c.chainId})`;
    const named = c.contract === undefined ? "" : ` (named by contract ${c.contract})`;
    lines.push(
      `${name} ${c.ok ? "VALID" : "INVALID"}: registry ${c.registry}${named} at block ${c.blockNumber} (${BLOCK_WHY[c.at]}) via ${c.rpcUrl}: threshold ${m} of ${c.signers.length} signer(s), ${c.approvedCodeHashes.length} approved code hash(es) for this Cryptlet; consortium ${c.consortiumId}`,
    );
    if (c.note) lines.push(`  note: ${c.note}`);
    if (c.changedSince) lines.push(`  since: ${describeChange(c.changedSince)}`);
    lines.push(...checks(c.checks));
  }
  return lines.join("\n");
}
