/**
 * `cryptlet trust export`: writes a public trust file, what a verifier needs to check proof bundles without a
 * configuration or a chain (`cryptlet verify --trust <file>`): one registry's trusted signers, threshold M,
 * consortium id and approved code hashes per Cryptlet id, read from the chain at one block, and the attestation
 * JWKS public keys. Never private material: each JWK is reduced to its public members.
 *
 * Sources: `--config` (a configured chain's registry; the JWKS from the configuration's attestation key) or
 * `--rpc <url>` with `--registry <address>` or `--contract <address>` (a ledger, oracle or feed: its `registry()`)
 * and `--jwks <file|url>`. Reference: docs/cli.md.
 *
 * @module
 */
import { writeFile } from "node:fs/promises";

import { Contract, getAddress, isHexString } from "ethers";
import type { JSONWebKeySet, JWK } from "jose";

import { cryptletIdOf } from "../../attestation/ids.ts";
import { registryOfContract } from "../../chains/anchorCheck.ts";
import { readRegistryTrust } from "../../chains/registryTrust.ts";
import type { RuntimeConfig } from "../../config.ts";
import { ChainTrustUnreadableError, CliUsageError } from "../errors.ts";
import { DEFAULT_RPC_TIMEOUT_MS, readJwks, rpcProvider } from "./verify.ts";

/** The trust file `trust export` writes (a superset of what `verify --trust` reads). */
export interface ExportedTrust {
  /** Format version of this file. */
  trustFileVersion: 1;
  /** When the file was written (ISO 8601). */
  exportedAt: string;
  /** The configured chain's name (with `--config`). */
  chain?: string;
  /** EIP-155 chain id of the chain read. */
  chainId: number;
  /** The registry read (EIP-55). */
  registry: string;
  /** The block the registry was read at. */
  blockNumber: number;
  /** The registry's consortium id (the EIP-712 domain salt), lower case. */
  consortiumId: string;
  /** The registry's trusted signers (EIP-55, sorted). */
  trustedSigners: string[];
  /** The consortium member id of each named trusted signer (the registry's `signerMember`), by EIP-55 address. */
  signerMembers: Record<string, string>;
  /** The registry's threshold M. */
  threshold: number;
  /** Approved code hashes by Cryptlet id (lower case, sorted). */
  approvedCodeHashes: Record<string, string[]>;
  /** The attestation public keys (absent when none was given with `--rpc`). */
  jwks?: JSONWebKeySet;
  /** The runtime id tokens must carry as `iss` (with `--config`). */
  attestationIssuer?: string;
}

/** Options of {@link trustExport}. */
export interface TrustExportOptions {
  /** The file to write. */
  out: string;
  /** With `--config`: the configuration (already loaded). */
  config?: RuntimeConfig;
  /** With `--config`: the chain to read (required when more than one has a registry). */
  chain?: string;
  /** Instead of a configuration: the JSON-RPC endpoint. */
  rpc?: string;
  /** With `--rpc`: the registry's address. */
  registry?: string;
  /** With `--rpc`: a Cryptlet contract whose `registry()` is read. */
  contract?: string;
  /** The Cryptlets (package names or 0x ids) whose approvals to export; default: every Cryptlet the registry's
   *  `CodeHashApproved` events name. */
  cryptlets?: string[];
  /** The attestation JWKS (file or URL); with `--config` it defaults to the configuration's attestation key. */
  jwks?: string;
  /** The block to read at (default latest). */
  block?: number;
  /** Deadline of each JSON-RPC request, in ms. */
  rpcTimeoutMs?: number;
}

/** JWK members that are public (everything else, e.g. `d`, `p`, `q`, is dropped). */
const PUBLIC_JWK_MEMBERS = ["kty", "crv", "x", "y", "n", "e", "kid", "alg", "use", "key_ops", "x5c", "x5t"] as const;

/** A JWKS with only the public members of each key. */
export function publicJwks(jwks: JSONWebKeySet): JSONWebKeySet {
  return {
    keys: jwks.keys.map((k) => {
      const out: Record<string, unknown> = {};
      for (const m of PUBLIC_JWK_MEMBERS) if ((k as Record<string, unknown>)[m] !== undefined) out[m] = k[m];
      return out as JWK;
    }),
  };
}

const REGISTRY_EVENTS = [
  "event CodeHashApproved(bytes32 indexed cryptletId, bytes32 indexed codeHash, address indexed account)",
];

/**
 * Reads a registry's trust and writes the public trust file.
 * @returns what was written.
 * @throws {@link CliUsageError} (exit 2) for missing or conflicting sources; {@link ChainTrustUnreadableError}
 *   (exit 2) when the chain cannot be read.
 */
export async function trustExport(options: TrustExportOptions): Promise<ExportedTrust> {
  const timeoutMs = options.rpcTimeoutMs ?? DEFAULT_RPC_TIMEOUT_MS;
  let url: string;
  let chainId: number;
  let chainName: string | undefined;
  let registry: string | undefined;
  let jwks: JSONWebKeySet | undefined;
  let issuer: string | undefined;
  if (options.rpc !== undefined) {
    if (options.registry === undefined && options.contract === undefined) {
      throw new CliUsageError("--rpc needs --registry <address> or --contract <address>", "--registry");
    }
    url = options.rpc;
    const probe = rpcProvider(url, 1, timeoutMs);
    try {
      chainId = Number(await probe.send("eth_chainId", []));
    } catch (error) {
      throw new ChainTrustUnreadableError(
        "(--rpc)",
        url,
        options.registry ?? options.contract ?? "",
        "latest",
        String((error as Error).message),
      );
    } finally {
      probe.destroy();
    }
    registry = options.registry;
  } else if (options.config !== undefined) {
    const withRegistry = options.config.chains.filter((c) => c.contracts.registry);
    const chain =
      options.chain === undefined
        ? withRegistry.length === 1
          ? withRegistry[0]
          : undefined
        : options.config.chains.find((c) => c.name === options.chain);
    if (chain === undefined) {
      throw new CliUsageError(
        options.chain === undefined
          ? `name the chain to export with --chain (chains with a registry: ${withRegistry.map((c) => c.name).join(", ") || "none"})`
          : `--chain ${options.chain} is not a chain of the configuration`,
        "--chain",
      );
    }
    if (!chain.contracts.registry) throw new CliUsageError(`chain ${chain.name} has no contracts.registry`, "--chain");
    url = chain.rpcUrls[0] ?? "";
    chainId = chain.chainId;
    chainName = chain.name;
    registry = chain.contracts.registry;
    issuer = options.config.issuer;
    if (options.jwks === undefined) {
      const { keyProviderOf } = await import("../../bootstrap.ts");
      const { buildJwks } = await import("../../attestation/token.ts");
      jwks = await buildJwks([keyProviderOf(options.config.keys.attestation, options.config)]);
    }
  } else {
    throw new CliUsageError("trust export reads a registry: give --config <file> or --rpc <url>", "--rpc");
  }
  if (options.jwks !== undefined) jwks = await readJwks(options.jwks, timeoutMs);

  const provider = rpcProvider(url, chainId, timeoutMs);
  try {
    if (registry === undefined) registry = await registryOfContract(provider, options.contract!);
    const block = options.block ?? (await provider.getBlockNumber());
    let cryptletIds = (options.cryptlets ?? []).map((c) => (isHexString(c, 32) ? c.toLowerCase() : cryptletIdOf(c)));
    if (cryptletIds.length === 0) {
      const events = new Contract(registry, REGISTRY_EVENTS, provider);
      const logs = await events.queryFilter(events.filters.CodeHashApproved!(), 0, block);
      cryptletIds = [...new Set(logs.map((l) => String(l.topics[1]).toLowerCase()))];
    }
    const trust = await readRegistryTrust(provider, registry, { cryptletIds, blockTag: block });
    const exported: ExportedTrust = {
      trustFileVersion: 1,
      exportedAt: new Date().toISOString(),
      ...(chainName === undefined ? {} : { chain: chainName }),
      chainId: trust.chainId,
      registry: getAddress(trust.registry),
      blockNumber: trust.blockNumber,
      consortiumId: trust.consortiumId,
      trustedSigners: trust.signers,
      signerMembers: trust.signerMembers,
      threshold: trust.threshold,
      approvedCodeHashes: trust.approvedCodeHashes,
      ...(jwks === undefined ? {} : { jwks: publicJwks(jwks) }),
      ...(issuer === undefined ? {} : { attestationIssuer: issuer }),
    };
    await writeFile(options.out, `${JSON.stringify(exported, null, 2)}\n`);
    return exported;
  } catch (error) {
    if (error instanceof CliUsageError) throw error;
    throw new ChainTrustUnreadableError(
      chainName ?? `chain ${chainId}`,
      url,
      registry ?? options.contract ?? "",
      options.block ?? "latest",
      String((error as { shortMessage?: string; message?: string }).shortMessage ?? (error as Error).message),
    );
  } finally {
    provider.destroy();
  }
}

/** The human form: what was exported. */
export function describeExport(t: ExportedTrust, out: string): string {
  const hashes = Object.values(t.approvedCodeHashes).reduce((n, l) => n + l.length, 0);
  return [
    `wrote ${out}: registry ${t.registry} on chain id ${t.chainId} at block ${t.blockNumber}`,
    `  threshold ${t.threshold} of ${t.trustedSigners.length} signer(s), consortium ${t.consortiumId}`,
    `  ${hashes} approved code hash(es) for ${Object.keys(t.approvedCodeHashes).length} Cryptlet(s); ${t.jwks ? `${t.jwks.keys.length} attestation key(s)` : "no attestation JWKS (give --jwks)"}`,
    `  verify with: cryptlet verify <bundle> --trust ${out}`,
  ].join("\n");
}
