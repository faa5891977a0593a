/**
 * The identifiers of docs/ARCHITECTURE.md §3: `cryptletId`, `eventId` per trigger kind, `requestId`. All are
 * `bytes32` 0x hex, except an HTTP event's id, which is the caller's `Idempotency-Key`
 * (draft-ietf-httpapi-idempotency-key-header) hashed to `bytes32` so that every `eventId` has one type. `resultId`
 * is `computeResultId` in ./eip712.ts.
 *
 * @module
 */
import { AbiCoder, isHexString, keccak256, toUtf8Bytes } from "ethers";

import type { Hex32 } from "./eip712.ts";
import { InvalidIdentifierError } from "./errors.ts";

const coder = AbiCoder.defaultAbiCoder();

function assertBytes32(field: string, value: string): asserts value is Hex32 {
  if (!isHexString(value, 32)) throw new InvalidIdentifierError(field, "expected 32-byte 0x hex");
}

function assertUint(field: string, value: bigint | number, bits: number): void {
  const big = typeof value === "bigint" ? value : Number.isSafeInteger(value) ? BigInt(value) : -1n;
  if (big < 0n || big >= 1n << BigInt(bits)) throw new InvalidIdentifierError(field, `expected a uint${bits}`);
}

/**
 * `cryptletId = keccak256(utf8(package name))`, e.g. of `@acme/price-median`.
 * @throws {@link InvalidIdentifierError} (`ERR_INVALID_IDENTIFIER`) for an empty name.
 */
export function cryptletIdOf(packageName: string): Hex32 {
  if (packageName.length === 0) throw new InvalidIdentifierError("packageName", "empty");
  return keccak256(toUtf8Bytes(packageName)) as Hex32;
}

/**
 * Event id of a chain log: `keccak256(abi.encode(uint256 chainId, bytes32 blockHash, bytes32 txHash, uint256 logIndex))`.
 * The block hash makes a re-orged log a new event.
 *
 * @throws {@link InvalidIdentifierError} when a hash is not 32-byte hex or a number is negative.
 *
 * @example
 * ```ts
 * import { chainLogEventId } from "./runtime/attestation/ids.ts";
 * const eventId = chainLogEventId({ chainId: 1n, blockHash: "0x…", txHash: "0x…", logIndex: 7 });
 * ```
 */
export function chainLogEventId(log: {
  chainId: bigint | number;
  blockHash: string;
  txHash: string;
  logIndex: bigint | number;
}): Hex32 {
  assertUint("chainId", log.chainId, 256);
  assertBytes32("blockHash", log.blockHash);
  assertBytes32("txHash", log.txHash);
  assertUint("logIndex", log.logIndex, 256);
  return keccak256(
    coder.encode(["uint256", "bytes32", "bytes32", "uint256"], [log.chainId, log.blockHash, log.txHash, log.logIndex]),
  ) as Hex32;
}

/**
 * Event id of an HTTP trigger: `keccak256(utf8(Idempotency-Key))`. The caller's key makes retries of one call the
 * same event; the HTTP layer generates a UUID when the header is absent.
 * @param idempotencyKey - the header value, 1 to 255 visible ASCII characters.
 * @throws {@link InvalidIdentifierError} for an empty, over-long or non-visible-ASCII key.
 */
export function httpEventId(idempotencyKey: string): Hex32 {
  if (!/^[\x21-\x7e]{1,255}$/.test(idempotencyKey)) {
    throw new InvalidIdentifierError("idempotencyKey", "expected 1-255 visible ASCII characters");
  }
  return keccak256(toUtf8Bytes(idempotencyKey)) as Hex32;
}

/**
 * Event id of a schedule tick: `keccak256(abi.encode(bytes32 cryptletId, uint64 slotTime))`.
 * @param slotTime - the scheduled slot in Unix **seconds** (not the time the tick fired).
 */
export function scheduleEventId(cryptletId: string, slotTime: bigint | number): Hex32 {
  assertBytes32("cryptletId", cryptletId);
  assertUint("slotTime", slotTime, 64);
  return keccak256(coder.encode(["bytes32", "uint64"], [cryptletId, slotTime])) as Hex32;
}
