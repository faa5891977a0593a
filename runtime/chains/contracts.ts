/**
 * The Cryptlet contracts as the runtime sees them: ABIs and bytecode from the Hardhat build
 * (`artifacts/contracts/**`, produced by `npm run build:contracts`, or on demand by `ensureContractsBuilt` in
 * contractsBuild.ts), an interface with every custom error to decode reverts, and a deployer for a consortium's
 * contract set (used by the dev stack and tests). Artifacts are read lazily, on first use, never on import.
 *
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

import {
  Contract,
  ContractFactory,
  Interface,
  type ContractTransactionResponse,
  type InterfaceAbi,
  type Signer,
} from "ethers";

import { CryptletError } from "../errors.ts";
import { ERR_CONTRACTS_NOT_BUILT, type DecodedRevert } from "./errors.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..");

/** The Hardhat build's artifact folder for `contracts/`, relative to the project root. */
export const ARTIFACTS_DIR = path.join("artifacts", "contracts");

/** Where each contract's artifact lives, relative to {@link ARTIFACTS_DIR}. */
export const ARTIFACT_FILES = {
  CryptletRegistry: "CryptletRegistry.sol/CryptletRegistry.json",
  CryptletOracle: "CryptletOracle.sol/CryptletOracle.json",
  ResultLedger: "ResultLedger.sol/ResultLedger.json",
  CryptletPriceFeed: "CryptletPriceFeed.sol/CryptletPriceFeed.json",
  ExampleOracleConsumer: "examples/ExampleOracleConsumer.sol/ExampleOracleConsumer.json",
  PriceFeedConsumer: "examples/PriceFeedConsumer.sol/PriceFeedConsumer.json",
  CryptletLockbox: "crosschain/CryptletLockbox.sol/CryptletLockbox.json",
  CryptletWrappedToken: "crosschain/CryptletWrappedToken.sol/CryptletWrappedToken.json",
  TestERC20: "testing/TestERC20.sol/TestERC20.json",
} as const;

/** A contract the runtime knows by name. */
export type CryptletContractName = keyof typeof ARTIFACT_FILES;

interface Artifact {
  abi: InterfaceAbi;
  bytecode: string;
}

const cache = new Map<string, Artifact>();

/**
 * The compiled artifact of `name`.
 * @throws CryptletError `ERR_CONTRACTS_NOT_BUILT` when the contracts were not compiled.
 */
export function artifactOf(name: CryptletContractName): Artifact {
  let artifact = cache.get(name);
  if (!artifact) {
    const file = path.join(ROOT, ARTIFACTS_DIR, ARTIFACT_FILES[name]);
    if (!existsSync(file)) {
      throw new CryptletError(ERR_CONTRACTS_NOT_BUILT, `no artifact for ${name}: run \`npm run build:contracts\``, {
        details: { file },
      });
    }
    const json = JSON.parse(readFileSync(file, "utf8")) as Artifact;
    artifact = { abi: json.abi, bytecode: json.bytecode };
    cache.set(name, artifact);
  }
  return artifact;
}

/** The ethers `Interface` of `name`. */
export function interfaceOf(name: CryptletContractName): Interface {
  return new Interface(artifactOf(name).abi);
}

let errorsInterface: Interface | undefined;

/** An `Interface` holding every custom error of every Cryptlet contract (errors bubble up between them). */
export function errorsInterfaceOf(): Interface {
  if (!errorsInterface) {
    const fragments = new Map<string, string>();
    for (const name of Object.keys(ARTIFACT_FILES) as CryptletContractName[]) {
      interfaceOf(name).forEachError((e) => fragments.set(e.selector, e.format("full")));
    }
    errorsInterface = new Interface([...fragments.values()]);
  }
  return errorsInterface;
}

/**
 * Decodes revert data into a custom error of our contracts, `Error(string)`, `Panic(uint256)` or `unknown`.
 * @param data - the revert data (0x hex); `undefined` or `0x` when the node returned none.
 */
export function decodeRevert(data: string | undefined): DecodedRevert {
  const raw = data ?? "0x";
  if (raw.length < 10) return { name: "unknown", args: [], data: raw };
  const stringify = (v: unknown): string => (typeof v === "bigint" ? v.toString() : String(v));
  try {
    const parsed = errorsInterfaceOf().parseError(raw);
    if (parsed) return { name: parsed.name, args: [...parsed.args].map(stringify), data: raw };
  } catch {
    // fall through to the standard errors
  }
  const standard = new Interface(["error Error(string)", "error Panic(uint256)"]);
  try {
    const parsed = standard.parseError(raw);
    if (parsed) return { name: parsed.name, args: [...parsed.args].map(stringify), data: raw };
  } catch {
    // unknown selector
  }
  return { name: "unknown", args: [], data: raw };
}

/**
 * Custom errors meaning "this result (or batch) is on-chain already": a writer treats them as an idempotent
 * success, never as a failure.
 */
export const ALREADY_RECORDED_ERRORS = new Set([
  "CryptletOracleAlreadyFulfilled",
  "ResultLedgerAlreadyRecorded",
  "ResultLedgerAlreadyAnchored",
  "CryptletFeedAlreadyRecorded",
  "CryptletWrappedResultAlreadyRecorded",
  "CryptletLockboxResultAlreadyRecorded",
]);

/** Addresses of a deployed consortium contract set. */
export interface DeployedContracts {
  registry: string;
  oracle: string;
  ledger: string;
  /** Price feeds by Cryptlet package name. */
  feeds: Record<string, string>;
}

/**
 * Deploys registry, oracle and ledger (and a price feed per entry of `feeds`) with `deployer`.
 * @param options.consortiumId - the EIP-712 salt (bytes32 hex).
 * @param options.signers - trusted signer addresses; `threshold` of them must sign (1 ≤ threshold ≤ signers).
 * @param options.signerMembers - the consortium member id (1 to 64 bytes) holding each signer, by address: set on
 *   the registry with `setSignerMember`, so verifiers can say which members signed a proof.
 * @param options.maxCallbackGasLimit - the oracle's cap on callback gas (default 2,000,000).
 * @param options.feeds - `{packageName: {cryptletId, decimals, description}}`.
 */
export async function deployCryptletContracts(
  deployer: Signer,
  options: {
    consortiumId: string;
    signers: string[];
    threshold: number;
    signerMembers?: Record<string, string>;
    maxCallbackGasLimit?: number;
    feeds?: Record<string, { cryptletId: string; decimals: number; description: string }>;
  },
): Promise<DeployedContracts> {
  const deploy = async (name: CryptletContractName, args: unknown[]): Promise<string> => {
    const { abi, bytecode } = artifactOf(name);
    const contract = await new ContractFactory(abi, bytecode, deployer).deploy(...args);
    await contract.waitForDeployment();
    return contract.getAddress();
  };
  const admin = await deployer.getAddress();
  const registry = await deploy("CryptletRegistry", [options.consortiumId, admin, options.signers, options.threshold]);
  if (options.signerMembers !== undefined) {
    const governed = new Contract(registry, interfaceOf("CryptletRegistry"), deployer);
    for (const [signer, member] of Object.entries(options.signerMembers)) {
      await ((await governed.getFunction("setSignerMember")(signer, member)) as ContractTransactionResponse).wait();
    }
  }
  const oracle = await deploy("CryptletOracle", [registry, options.maxCallbackGasLimit ?? 2_000_000]);
  const ledger = await deploy("ResultLedger", [registry]);
  const feeds: Record<string, string> = {};
  for (const [name, feed] of Object.entries(options.feeds ?? {})) {
    feeds[name] = await deploy("CryptletPriceFeed", [registry, feed.cryptletId, feed.decimals, feed.description, 1]);
  }
  return { registry, oracle, ledger, feeds };
}
