/**
 * Trust material read from a chain: the trusted signers, the threshold M and the approved code hashes that a
 * `CryptletRegistry` holds at a given block. A verifier that reads these needs no configuration file, no Key
 * Vault and no word of the operator's: the registry is what every contract of the consortium checks proofs
 * against, so it is also what an off-chain verification must use.
 *
 * The ABI used here is the registry's view functions as human-readable fragments, so this module reads no build
 * output and works on a fresh clone.
 *
 * @module
 */
import { Contract, Interface, getAddress, type BlockTag, type ContractRunner } from "ethers";

import type { VerifyBundleOptions } from "../attestation/verifyBundle.ts";
import { CryptletError } from "../errors.ts";
import { ERR_REGISTRY_TRUST_UNAVAILABLE } from "./errors.ts";
import type { ChainReader } from "./targets.ts";

/** The registry views that {@link readRegistryTrust} calls (see contracts/interfaces/ICryptletRegistry.sol). */
export const REGISTRY_TRUST_ABI = [
  "function consortiumId() view returns (bytes32)",
  "function signers() view returns (address[])",
  "function threshold() view returns (uint256)",
  "function approvedCodeHashes(bytes32 cryptletId) view returns (bytes32[])",
  "function attestationKeys() view returns (string uri, bytes32 sha256)",
  "function signerMember(address signer) view returns (string)",
] as const;

/** What a `CryptletRegistry` trusts at one block. */
export interface RegistryTrust {
  /** EIP-155 chain id of the chain read. */
  chainId: number;
  /** EIP-55 address of the registry. */
  registry: string;
  /** The block the views were read at. */
  blockNumber: number;
  /** The consortium id (EIP-712 domain `salt`), 0x-prefixed 32 bytes. */
  consortiumId: string;
  /** The trusted signer addresses (EIP-55), sorted. */
  signers: string[];
  /** Distinct trusted signatures a proof needs (M). */
  threshold: number;
  /** Approved code hashes (0x-prefixed, lower case, sorted) by Cryptlet id, for the Cryptlet ids asked for. */
  approvedCodeHashes: Record<string, string[]>;
  /**
   * Where the attestation keys (a JWKS) are published and the SHA-256 of their bytes (`publishAttestationKeys`);
   * absent when never published (or a registry without the view).
   */
  attestationKeys?: { uri: string; sha256: string };
  /**
   * The consortium member id of each named trusted signer (`setSignerMember`), by EIP-55 address; signers not
   * named are absent (and so is every signer of a registry without the view).
   */
  signerMembers: Record<string, string>;
}

/** The registry could not be read (no contract there, an old registry without the enumerable views, no answer). */
export class RegistryTrustUnavailableError extends CryptletError {
  constructor(registry: string, what: string, cause?: unknown) {
    super(ERR_REGISTRY_TRUST_UNAVAILABLE, `cannot read trust material from the registry at ${registry}: ${what}`, {
      details: { registry },
      cause,
      retryable: true,
    });
  }
}

/**
 * Reads a registry's trust material at `blockTag` (default: the latest block, pinned to its number so every
 * view reads the same state).
 * @param runner - an ethers provider (or signer with a provider) of the registry's chain.
 * @param registry - the registry's address.
 * @param options.cryptletIds - the Cryptlet ids whose approved code hashes to read.
 * @param options.blockTag - a block number or tag; an archive node is needed for old blocks.
 * @throws {@link RegistryTrustUnavailableError} `ERR_REGISTRY_TRUST_UNAVAILABLE` when a view fails.
 */
export async function readRegistryTrust(
  runner: ContractRunner & { provider?: unknown },
  registry: string,
  options: { cryptletIds?: readonly string[]; blockTag?: BlockTag } = {},
): Promise<RegistryTrust> {
  const provider = (runner.provider ?? runner) as {
    getNetwork(): Promise<{ chainId: bigint }>;
    getBlockNumber(): Promise<number>;
  };
  const contract = new Contract(registry, REGISTRY_TRUST_ABI, runner);
  try {
    const [{ chainId }, blockNumber] = await Promise.all([
      provider.getNetwork(),
      typeof options.blockTag === "number" ? Promise.resolve(options.blockTag) : provider.getBlockNumber(),
    ]);
    const at = { blockTag: blockNumber };
    const [consortiumId, signers, threshold] = (await Promise.all([
      contract.getFunction("consortiumId")(at),
      contract.getFunction("signers")(at),
      contract.getFunction("threshold")(at),
    ])) as [string, string[], bigint];
    const approvedCodeHashes: Record<string, string[]> = {};
    for (const cryptletId of new Set(options.cryptletIds ?? [])) {
      const hashes = (await contract.getFunction("approvedCodeHashes")(cryptletId, at)) as string[];
      approvedCodeHashes[cryptletId.toLowerCase()] = [...hashes].map((h) => h.toLowerCase()).sort();
    }
    const published = (await contract
      .getFunction("attestationKeys")(at)
      .catch(() => undefined)) as [string, string] | undefined;
    const signerMembers: Record<string, string> = {};
    for (const signer of signers) {
      const member = (await contract
        .getFunction("signerMember")(signer, at)
        .catch(() => "")) as string;
      if (member !== "") signerMembers[getAddress(signer)] = member;
    }
    return {
      chainId: Number(chainId),
      registry: getAddress(registry),
      blockNumber,
      consortiumId: consortiumId.toLowerCase(),
      signers: [...signers].map((s) => getAddress(s)).sort(),
      threshold: Number(threshold),
      approvedCodeHashes,
      signerMembers,
      ...(published && published[0] !== ""
        ? { attestationKeys: { uri: published[0], sha256: published[1].toLowerCase() } }
        : {}),
    };
  } catch (error) {
    if (error instanceof CryptletError) throw error;
    throw new RegistryTrustUnavailableError(registry, "a view call failed (no registry there, or no answer)", error);
  }
}

/**
 * The `verifyBundle` options for a result of `cryptletId` under `trust`: signers, threshold, consortium id and
 * the approved code hashes read from the chain. Never a default threshold: M is the registry's.
 * @throws CryptletError `ERR_REGISTRY_TRUST_UNAVAILABLE` when `trust` holds no approvals for `cryptletId`
 *   (it was not asked for when reading).
 */
export function verifyOptionsOf(
  trust: RegistryTrust,
  cryptletId: string,
): Pick<VerifyBundleOptions, "trustedSigners" | "threshold" | "consortiumId" | "approvedCodeHashes" | "signerMembers"> {
  const approved = trust.approvedCodeHashes[cryptletId.toLowerCase()];
  if (approved === undefined) {
    throw new RegistryTrustUnavailableError(trust.registry, `approvals of ${cryptletId} were not read`);
  }
  return {
    trustedSigners: trust.signers,
    threshold: trust.threshold,
    consortiumId: trust.consortiumId,
    approvedCodeHashes: approved,
    signerMembers: trust.signerMembers,
  };
}

const IS_SIGNER = new Interface(["function isSigner(address signer) view returns (bool)"]);

/**
 * Whether the registry at `registry` trusts `signer` now (`CryptletRegistry.isSigner`, at the latest block).
 * @param reader - the chain's JSON-RPC client (e.g. the writer's `rpc`).
 * @throws the reader's errors (`ERR_CHAIN_RPC_UNAVAILABLE`); ethers' decoding error when no registry answers there.
 */
export async function isTrustedSigner(reader: ChainReader, registry: string, signer: string): Promise<boolean> {
  const answer = await reader.send<string>("eth_call", [
    { to: getAddress(registry), data: IS_SIGNER.encodeFunctionData("isSigner", [getAddress(signer)]) },
    "latest",
  ]);
  return IS_SIGNER.decodeFunctionResult("isSigner", answer)[0] as boolean;
}
