/**
 * What the runtime reads from the cross-chain contracts (contracts/crosschain, docs/crosschain.md): their events
 * and views as ABI fragments (computed from the signatures, so importing this module needs no compiled contracts;
 * test/crosschain checks them against the compiled ABIs), the lock and burn identifiers, and the id of a refund
 * observation event.
 *
 * @module
 */
import { AbiCoder, EventFragment, Interface, keccak256 } from "ethers";

import type { Hex32 } from "../attestation/eip712.ts";

/** `CryptletLockbox.Locked`: a lock on the source chain, with the peer `token` that may mint it. */
export const LOCKED_EVENT = EventFragment.from(
  "event Locked(bytes32 indexed lockId, address indexed sender, address indexed recipient, uint256 amount, uint256 destinationChainId, uint64 deadline, address token)",
);

/** `CryptletWrappedToken.Burned`: a burn on the destination chain, to be released by `lockbox` on `sourceChainId`. */
export const BURNED_EVENT = EventFragment.from(
  "event Burned(bytes32 indexed burnId, address indexed burner, address indexed recipient, uint256 amount, uint256 sourceChainId, address lockbox)",
);

/** The views the deadline watcher and the transfer receipts read. */
export const CROSSCHAIN_VIEWS = new Interface([
  "function lockCount() view returns (uint256)",
  "function lockIdOf(uint256 nonce) view returns (bytes32)",
  "function lockOf(bytes32 lockId) view returns (tuple(address sender, uint64 deadline, uint8 status, address recipient, uint256 amount, uint256 destinationChainId))",
  "function peerOf(uint256 chainId) view returns (address)",
  "function isMinted(bytes32 lockId) view returns (bool)",
  "function isRecorded(bytes32 resultId) view returns (bool)",
  "function sourceChainId() view returns (uint256)",
  "function lockbox() view returns (address)",
  "event Minted(bytes32 indexed lockId, address indexed recipient, uint256 amount, bytes32 resultId)",
  "event Released(bytes32 indexed burnId, address indexed recipient, uint256 amount, uint256 destinationChainId, bytes32 resultId)",
  "event Refunded(bytes32 indexed lockId, address indexed sender, uint256 amount, bytes32 resultId)",
]);

/** `CryptletLockbox.LockStatus`: `None` (no such lock), `Locked` (minted or not), `Refunded` (final). */
export const LOCK_STATUS = { None: 0, Locked: 1, Refunded: 2 } as const;

const abi = AbiCoder.defaultAbiCoder();

/**
 * `lockId = keccak256(abi.encode(uint256 chainId, address lockbox, uint256 nonce))`, as `CryptletLockbox.lockIdOf`.
 * @param chainId - the lockbox's chain (EIP-155 id).
 * @param nonce - the lockbox's `lockCount()` before the lock (0, 1, 2, ...).
 */
export function lockIdOf(chainId: number | bigint, lockbox: string, nonce: number | bigint): Hex32 {
  return keccak256(abi.encode(["uint256", "address", "uint256"], [chainId, lockbox, nonce])) as Hex32;
}

/**
 * The event id of the deadline watcher's refund observation of a lock:
 * `keccak256(abi.encode(string "cryptlet.crosschain.refund", bytes32 lockId))`. One per lock, whatever block it
 * was observed at, so a lock has at most one refund run (the pipeline's per-event idempotency).
 */
export function refundEventIdOf(lockId: string): Hex32 {
  return keccak256(abi.encode(["string", "bytes32"], ["cryptlet.crosschain.refund", lockId])) as Hex32;
}
