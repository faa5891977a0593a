/**
 * Fee policy of the chain writer: EIP-1559 fees (or a legacy gas price where the chain has no base fee) under
 * the chain's caps, and the bump of a replacement transaction. All amounts in wei.
 *
 * @module
 */
import type { ChainConfig } from "./config.ts";
import type { ChainRpc } from "./rpc.ts";

/** Fees of one transaction, in wei. A legacy (type 0) transaction has `gasPrice` only. */
export type Fees = { type: 2; maxFeePerGas: bigint; maxPriorityFeePerGas: bigint } | { type: 0; gasPrice: bigint };

const min = (a: bigint, b: bigint) => (a < b ? a : b);
const max = (a: bigint, b: bigint) => (a > b ? a : b);

/**
 * Current fees: priority = the node's `eth_maxPriorityFeePerGas` (1 gwei if it has none), max fee =
 * 2 × base fee + priority (room for six full blocks of base-fee growth), each capped by the chain's caps.
 */
export async function currentFees(rpc: ChainRpc, chain: ChainConfig): Promise<Fees> {
  const block = await rpc.send<{ baseFeePerGas?: string } | null>("eth_getBlockByNumber", ["latest", false]);
  if (!block?.baseFeePerGas) {
    const gasPrice = BigInt(await rpc.send<string>("eth_gasPrice", []));
    return { type: 0, gasPrice: min(gasPrice, chain.fees.maxFeePerGas) };
  }
  const baseFee = BigInt(block.baseFeePerGas);
  let priority = 1_000_000_000n;
  try {
    priority = BigInt(await rpc.send<string>("eth_maxPriorityFeePerGas", []));
  } catch {
    // not every node implements it; keep 1 gwei
  }
  const maxPriorityFeePerGas = min(priority, chain.fees.maxPriorityFeePerGas);
  const maxFeePerGas = min(baseFee * 2n + maxPriorityFeePerGas, chain.fees.maxFeePerGas);
  return { type: 2, maxFeePerGas: max(maxFeePerGas, maxPriorityFeePerGas), maxPriorityFeePerGas };
}

/**
 * The fees of a replacement for a transaction sent with `previous`: each fee raised by `bumpPercent` (nodes
 * require at least 10 %) and at least the current market `current`, capped by the chain's caps.
 * @returns the new fees, or `undefined` when the caps leave no room for a valid replacement.
 */
export function bumpedFees(previous: Fees, current: Fees, chain: ChainConfig): Fees | undefined {
  const bump = (value: bigint) => (value * BigInt(100 + chain.fees.bumpPercent) + 99n) / 100n;
  const required = (value: bigint) => (value * 110n + 99n) / 100n;
  if (previous.type === 0) {
    const market = current.type === 0 ? current.gasPrice : current.maxFeePerGas;
    const gasPrice = min(max(bump(previous.gasPrice), market), chain.fees.maxFeePerGas);
    return gasPrice >= required(previous.gasPrice) ? { type: 0, gasPrice } : undefined;
  }
  const marketFee = current.type === 2 ? current.maxFeePerGas : current.gasPrice;
  const marketTip = current.type === 2 ? current.maxPriorityFeePerGas : 0n;
  const maxFeePerGas = min(max(bump(previous.maxFeePerGas), marketFee), chain.fees.maxFeePerGas);
  const maxPriorityFeePerGas = min(
    min(max(bump(previous.maxPriorityFeePerGas), marketTip), chain.fees.maxPriorityFeePerGas),
    maxFeePerGas,
  );
  if (
    maxFeePerGas < required(previous.maxFeePerGas) ||
    maxPriorityFeePerGas < required(previous.maxPriorityFeePerGas)
  ) {
    return undefined;
  }
  return { type: 2, maxFeePerGas, maxPriorityFeePerGas };
}
