/**
 * Replays recorded Uniswap V3 swaps as real transactions on a (local) chain through `SwapReplayer`
 * (`contracts/examples/SwapReplayer.sol`), which emits `Swap` events with the same signature, topics and data as
 * the pool did. Swaps are sent in batches (one transaction per UTC minute, split at `maxBatch`), so a day of the
 * 0.05 % pool (6,046 swaps, 1,408 minutes) is 1,408 transactions.
 *
 * The replayer is deployed by a fixed **demo deployer key** at its nonce 0, so its address is the same on every
 * fresh chain ({@link REPLAYER_ADDRESS}); the Cryptlet's manifest names that address in its `chain-log` trigger.
 * IMPORTANT: the deployer key is public (derived from a published string): use it on local chains only.
 *
 * @example
 * ```ts
 * import { network } from "hardhat";
 * import { deployReplayer, replaySwaps } from "./cryptlets/uniswap-price/replay/replayer.ts";
 * import { loadSwaps } from "./cryptlets/uniswap-price/replay/swaps.ts";
 *
 * const { ethers } = await network.create({ override: { initialDate: "2024-01-04T23:00:00Z" } });
 * const [funder] = await ethers.getSigners();
 * const replayer = await deployReplayer(funder!);
 * const batches = await replaySwaps(replayer, (await loadSwaps()).slice(0, 100), { setBlockTimestamps: true });
 * ```
 * @module
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

import {
  Contract,
  ContractFactory,
  getCreateAddress,
  id,
  parseEther,
  Wallet,
  type ContractRunner,
  type JsonRpcApiProvider,
  type Provider,
  type Signer,
} from "ethers";

import type { DecodedSwap } from "./swaps.ts";

/** Demo deployer private key: keccak256("cryptlet-runtime/uniswap-price swap replayer deployer v1"). PUBLIC. */
export const REPLAYER_DEPLOYER_KEY = id("cryptlet-runtime/uniswap-price swap replayer deployer v1");
/** The deployer's address. */
export const REPLAYER_DEPLOYER = new Wallet(REPLAYER_DEPLOYER_KEY).address;
/** Where {@link deployReplayer} puts the replayer on any chain: the deployer's CREATE address at nonce 0. */
export const REPLAYER_ADDRESS = getCreateAddress({ from: REPLAYER_DEPLOYER, nonce: 0 });

const ARTIFACT = join(
  import.meta.dirname,
  "..",
  "..",
  "..",
  "artifacts",
  "contracts",
  "examples",
  "SwapReplayer.sol",
  "SwapReplayer.json",
);

/** A replay failed: not built, wrong deployer state, chain time ahead of the data, a reverted batch. */
export class SwapReplayError extends Error {
  readonly code: "REPLAYER_NOT_BUILT" | "REPLAYER_ADDRESS_TAKEN" | "CHAIN_TIME_AHEAD" | "BATCH_FAILED";
  constructor(code: SwapReplayError["code"], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SwapReplayError";
    this.code = code;
  }
}

function artifact(): { abi: unknown[]; bytecode: string } {
  try {
    return JSON.parse(readFileSync(ARTIFACT, "utf8")) as { abi: unknown[]; bytecode: string };
  } catch (cause) {
    throw new SwapReplayError("REPLAYER_NOT_BUILT", "no SwapReplayer artifact: run `npx hardhat build`", { cause });
  }
}

/** Attaches to a replayer at `address` with `runner` (a signer holding `REPLAYER_ROLE` to replay). */
export function replayerAt(address: string, runner: ContractRunner): Contract {
  return new Contract(address, artifact().abi as never, runner);
}

/**
 * Deploys the replayer at {@link REPLAYER_ADDRESS} (idempotent: attaches when code is already there). Funds the
 * demo deployer from `funder` (0.1 ETH), deploys with `admin` (default: the funder) as admin and replayer.
 * @returns the contract, connected to `funder`.
 * @throws {@link SwapReplayError} `REPLAYER_ADDRESS_TAKEN` when the deployer's nonce 0 was used for something else.
 */
export async function deployReplayer(funder: Signer, admin?: string): Promise<Contract> {
  const provider = funder.provider as Provider;
  if ((await provider.getCode(REPLAYER_ADDRESS)) !== "0x") return replayerAt(REPLAYER_ADDRESS, funder);
  if ((await provider.getTransactionCount(REPLAYER_DEPLOYER)) !== 0) {
    throw new SwapReplayError("REPLAYER_ADDRESS_TAKEN", `deployer ${REPLAYER_DEPLOYER} already used its nonce 0`);
  }
  const { abi, bytecode } = artifact();
  const fund = await funder.sendTransaction({ to: REPLAYER_DEPLOYER, value: parseEther("0.1") });
  await fund.wait();
  const deployer = new Wallet(REPLAYER_DEPLOYER_KEY, provider);
  const factory = new ContractFactory(abi as never, bytecode, deployer);
  const contract = await factory.deploy(admin ?? (await funder.getAddress()), { nonce: 0 });
  await contract.waitForDeployment();
  return replayerAt(REPLAYER_ADDRESS, funder);
}

/** Options of {@link replaySwaps}. */
export interface ReplayOptions {
  /** Most swaps per transaction (≤ the contract's `MAX_BATCH`, 512). Default 256. */
  maxBatch?: number;
  /**
   * Give each batch's block the original time of the batch's last swap (`evm_setNextBlockTimestamp`, Hardhat and
   * Anvil). The chain's clock must be behind the data (start the chain with an `initialDate` before 2024-01-05).
   * Default false (blocks get the chain's time).
   */
  setBlockTimestamps?: boolean;
  /** Transactions in flight at once (each waited for before the next window). Default 16. */
  inFlight?: number;
  /** Called after each confirmed batch (progress). */
  onBatch?: (batch: ReplayedBatch, done: number, total: number) => void;
}

/** One replayed transaction. */
export interface ReplayedBatch {
  /** UTC minute (Unix seconds) of the original swaps. */
  minute: number;
  txHash: string;
  blockNumber: number;
  /** Swaps emitted. */
  count: number;
  gasUsed: bigint;
  /** The original swaps, in emission order (log i of the tx is `swaps[i]`). */
  swaps: DecodedSwap[];
}

/** Splits swaps (in order) into batches that never cross a UTC minute and hold at most `maxBatch`. */
export function batchesOf(swaps: readonly DecodedSwap[], maxBatch = 256): DecodedSwap[][] {
  const batches: DecodedSwap[][] = [];
  let current: DecodedSwap[] = [];
  for (const swap of swaps) {
    const first = current[0];
    if (first && (Math.floor(first.timestamp / 60) !== Math.floor(swap.timestamp / 60) || current.length >= maxBatch)) {
      batches.push(current);
      current = [];
    }
    current.push(swap);
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/**
 * Sends the swaps to `replayer` as `replay(SwapRecord[])` transactions, one per minute (split at `maxBatch`), in
 * order, with explicit nonces so up to `inFlight` transactions are pending at once.
 *
 * @param replayer - from {@link deployReplayer} / {@link replayerAt}, connected to a signer with `REPLAYER_ROLE`.
 * @param swaps - decoded swaps in chain order (as from `loadSwaps`).
 * @returns one entry per transaction.
 * @throws {@link SwapReplayError} `CHAIN_TIME_AHEAD` (with `setBlockTimestamps`) or `BATCH_FAILED`.
 */
export async function replaySwaps(
  replayer: Contract,
  swaps: readonly DecodedSwap[],
  options: ReplayOptions = {},
): Promise<ReplayedBatch[]> {
  const batches = batchesOf(swaps, options.maxBatch ?? 256);
  const signer = replayer.runner as Signer;
  const provider = signer.provider as JsonRpcApiProvider;
  const from = await signer.getAddress();
  const inFlight = options.setBlockTimestamps ? 1 : (options.inFlight ?? 16);
  let nonce = await provider.getTransactionCount(from, "pending");
  const replayed: ReplayedBatch[] = [];
  if (options.setBlockTimestamps && batches[0]) {
    const head = await provider.getBlock("latest");
    const firstTime = (batches[0].at(-1) as DecodedSwap).timestamp;
    if (head && head.timestamp >= firstTime) {
      throw new SwapReplayError(
        "CHAIN_TIME_AHEAD",
        `chain time ${head.timestamp} is not before the first swap (${firstTime}); start the chain with an earlier initialDate`,
      );
    }
  }
  for (let start = 0; start < batches.length; start += inFlight) {
    const window = batches.slice(start, start + inFlight);
    const sent = [];
    for (const batch of window) {
      if (options.setBlockTimestamps) {
        await provider.send("evm_setNextBlockTimestamp", [(batch.at(-1) as DecodedSwap).timestamp]);
      }
      const records = batch.map((s) => [
        s.sender,
        s.recipient,
        s.amount0,
        s.amount1,
        s.sqrtPriceX96,
        s.liquidity,
        s.tick,
      ]);
      try {
        sent.push(await replayer.getFunction("replay")(records, { nonce: nonce++ }));
      } catch (cause) {
        throw new SwapReplayError("BATCH_FAILED", `replay of ${batch.length} swaps failed`, { cause });
      }
    }
    for (const [i, tx] of sent.entries()) {
      const receipt = await tx.wait();
      const batch = window[i] as DecodedSwap[];
      if (!receipt || receipt.status !== 1) throw new SwapReplayError("BATCH_FAILED", `replay tx ${tx.hash} reverted`);
      const entry: ReplayedBatch = {
        minute: (batch[0] as DecodedSwap).timestamp - ((batch[0] as DecodedSwap).timestamp % 60),
        txHash: receipt.hash,
        blockNumber: receipt.blockNumber,
        count: batch.length,
        gasUsed: receipt.gasUsed,
        swaps: batch,
      };
      replayed.push(entry);
      options.onBatch?.(entry, replayed.length, batches.length);
    }
  }
  return replayed;
}
