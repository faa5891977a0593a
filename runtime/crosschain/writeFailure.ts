/**
 * What a failed cross-chain write means (docs/crosschain.md), decided from the chains rather than from the revert
 * reason alone:
 *
 * - a `mint` that failed while its lock can no longer be minted (`isMinted(lockId)` false and the destination's
 *   latest block after the lock's deadline) is obsolete: the deadline watcher refunds the lock instead. The revert
 *   reason cannot be relied on for this: a mint sent in time and mined after the deadline reverts in its block,
 *   but the writer decodes a mined revert by replaying the call at the block before, where it succeeds
 *   (`unknown()`);
 * - a `refund` refused with `CryptletLockboxDeadlineNotPassed` was attested correctly (the destination was read
 *   after the deadline) but the source chain's clock is behind the destination's: it is retried until it
 *   catches up.
 *
 * @module
 */
import { AbiCoder, dataLength } from "ethers";

import type { ChainReader } from "../chains/targets.ts";
import { isCryptletError } from "../errors.ts";
import { CrosschainRefundEarlyError } from "./errors.ts";
import { CROSSCHAIN_VIEWS } from "./events.ts";

/** A MINT payload's length in bytes (`CrossChainOutputs.MintOutput`: nine 32-byte words). */
const MINT_BYTES = 288;

/**
 * Whether the lock of a MINT payload can no longer be minted on `token`: not minted, and the destination chain's
 * latest block is after the lock's deadline (the wrapped token mints only at `block.timestamp ≤ deadline`, and
 * block times never decrease). Reads `isMinted(lockId)` and the latest block through `reader` (deadlines and
 * failover are the reader's).
 * @param payload - the MINT payload (0x hex, 288 bytes); anything else gives `false`.
 * @returns `false` too when the lock is minted (then the failure is not about the deadline).
 * @throws the reader's errors (`ERR_CHAIN_RPC_UNAVAILABLE`, node errors).
 */
export async function mintExpired(reader: ChainReader, token: string, payload: string): Promise<boolean> {
  if (dataLength(payload) !== MINT_BYTES) return false;
  const words = AbiCoder.defaultAbiCoder().decode(
    ["uint8", "bytes32", "uint256", "address", "uint256", "address", "address", "uint256", "uint64"],
    payload,
  );
  const lockId = words[1] as string;
  const deadline = words[8] as bigint;
  const data = CROSSCHAIN_VIEWS.encodeFunctionData("isMinted", [lockId]);
  const [minted, latest] = await Promise.all([
    reader.send<string>("eth_call", [{ to: token, data }, "latest"]),
    reader.send<{ timestamp: string }>("eth_getBlockByNumber", ["latest", false]),
  ]);
  return (
    !(CROSSCHAIN_VIEWS.decodeFunctionResult("isMinted", minted)[0] as boolean) && BigInt(latest.timestamp) > deadline
  );
}

/**
 * The retryable error for a refund the lockbox refused only because the source chain's clock is not past the
 * deadline yet, or `undefined` for any other failure.
 */
export function refundTooEarly(error: unknown): CrosschainRefundEarlyError | undefined {
  if (!isCryptletError(error, "ERR_CHAIN_REVERTED") || error.details?.error !== "CryptletLockboxDeadlineNotPassed") {
    return undefined;
  }
  const args = error.details?.args as unknown[] | undefined;
  return new CrosschainRefundEarlyError(
    args ? { lockId: String(args[0]), deadline: String(args[1]), now: String(args[2]) } : {},
    error,
  );
}
