/**
 * EIP-712 typed data for Cryptlet proofs (https://eips.ethereum.org/EIPS/eip-712).
 *
 * The domain is `{name: "CryptletRuntime", version: "1", salt: consortiumId}`: deliberately without `chainId` and
 * `verifyingContract`, so that one signature is accepted by every contract of the consortium on every chain (a
 * result is one truth, written to several chains); the `salt` keeps consortia apart. Replay inside one contract
 * is prevented by the contracts' "once per `resultId`" rule. The Solidity side is `contracts/CryptletProofs.sol`;
 * the type strings here and there must stay byte-for-byte equal (a test checks it).
 *
 * @module
 */
import { bytesToHex } from "@noble/hashes/utils";
import { AbiCoder, TypedDataEncoder, getBytes, keccak256, type TypedDataDomain } from "ethers";

import { keccak256Bytes } from "./keccak.ts";

/** A 32-byte value as 0x-prefixed lowercase or mixed-case hex (66 characters). */
export type Hex32 = `0x${string}`;

/** EIP-712 domain name of every Cryptlet proof. */
export const DOMAIN_NAME = "CryptletRuntime";
/** EIP-712 domain version of every Cryptlet proof. */
export const DOMAIN_VERSION = "1";

/**
 * One Cryptlet result as signed (the `CryptletResult` EIP-712 struct).
 * All identifiers are `bytes32` hex; see docs/ARCHITECTURE.md "Identifiers and hashes" for their derivation.
 */
export interface CryptletResult {
  /** keccak256(abi.encode(cryptletId, requestId)): one result per request, ever. */
  resultId: Hex32;
  /** keccak256(utf8 package name). */
  cryptletId: Hex32;
  /** The package measurement: sha256 of the canonical JSON of the built package. */
  codeHash: Hex32;
  /** keccak256 of the canonical JSON of the normalised event and every host-call record. */
  inputHash: Hex32;
  /** keccak256 of the bytes written on-chain (ABI output, or the UTF-8 JWE JSON of a sealed result). */
  outputHash: Hex32;
  /** When the result was produced, in Unix seconds (uint64). */
  timestamp: bigint;
}

/** A Merkle batch of results as signed (the `ResultBatch` EIP-712 struct). */
export interface ResultBatch {
  /** Root of the OpenZeppelin StandardMerkleTree over the results' struct hashes (leaf encoding `["bytes32"]`). */
  root: Hex32;
  /** Number of results (leaves) in the batch (uint32). */
  count: number;
  /** When the batch was sealed, in Unix seconds (uint64). */
  timestamp: bigint;
}

/** The EIP-712 `types` for {@link CryptletResult}, in ethers' format. */
export const CRYPTLET_RESULT_TYPES = {
  CryptletResult: [
    { name: "resultId", type: "bytes32" },
    { name: "cryptletId", type: "bytes32" },
    { name: "codeHash", type: "bytes32" },
    { name: "inputHash", type: "bytes32" },
    { name: "outputHash", type: "bytes32" },
    { name: "timestamp", type: "uint64" },
  ],
} as const satisfies Record<string, { name: string; type: string }[]>;

/** The EIP-712 `types` for {@link ResultBatch}, in ethers' format. */
export const RESULT_BATCH_TYPES = {
  ResultBatch: [
    { name: "root", type: "bytes32" },
    { name: "count", type: "uint32" },
    { name: "timestamp", type: "uint64" },
  ],
} as const satisfies Record<string, { name: string; type: string }[]>;

// The encoders only derive the type strings (once); struct hashes and digests are computed directly below.
const RESULT_ENCODER = TypedDataEncoder.from(CRYPTLET_RESULT_TYPES);
const BATCH_ENCODER = TypedDataEncoder.from(RESULT_BATCH_TYPES);

/** `CryptletResult(bytes32 resultId,bytes32 cryptletId,bytes32 codeHash,bytes32 inputHash,bytes32 outputHash,uint64 timestamp)` */
export const CRYPTLET_RESULT_TYPE = RESULT_ENCODER.encodeType("CryptletResult");
/** `ResultBatch(bytes32 root,uint32 count,uint64 timestamp)` */
export const RESULT_BATCH_TYPE = BATCH_ENCODER.encodeType("ResultBatch");

// Domain separators by lower-case consortium id; a runtime serves a handful of consortia, the bound is a guard.
const separators = new Map<string, { hex: Hex32; bytes: Uint8Array }>();
const MAX_CACHED_SEPARATORS = 256;

/**
 * The EIP-712 domain of a consortium.
 * @param consortiumId - the consortium's `bytes32` id, used as the domain `salt`.
 */
export function cryptletDomain(consortiumId: Hex32): TypedDataDomain {
  return { name: DOMAIN_NAME, version: DOMAIN_VERSION, salt: consortiumId };
}

function cachedSeparator(consortiumId: Hex32): { hex: Hex32; bytes: Uint8Array } {
  const key = consortiumId.toLowerCase();
  let separator = separators.get(key);
  if (separator === undefined) {
    const hex = TypedDataEncoder.hashDomain(cryptletDomain(consortiumId)) as Hex32;
    separator = { hex, bytes: getBytes(hex) };
    if (separators.size >= MAX_CACHED_SEPARATORS) separators.clear();
    separators.set(key, separator);
  }
  return separator;
}

/** The domain separator (`hashStruct(eip712Domain)`) of a consortium; equals `CryptletRegistry.domainSeparator()`. */
export function domainSeparator(consortiumId: Hex32): Hex32 {
  return cachedSeparator(consortiumId).hex;
}

const separatorBytes = (consortiumId: Hex32): Uint8Array => cachedSeparator(consortiumId).bytes;

const BYTES32 = /^0x[0-9a-fA-F]{64}$/;
const UINT64_MAX = 2n ** 64n - 1n;
const UINT32_MAX = 2 ** 32 - 1;

const utf8 = new TextEncoder();
const RESULT_TYPE_HASH = keccak256Bytes(utf8.encode(CRYPTLET_RESULT_TYPE));
const BATCH_TYPE_HASH = keccak256Bytes(utf8.encode(RESULT_BATCH_TYPE));

/** Value of one hex digit given its char code (the caller has checked it is one of `0-9a-fA-F`). */
const nibble = (c: number): number => (c <= 57 ? c - 48 : (c | 32) - 87);

/**
 * Writes a `bytes32` member into `out` at `offset` (its EIP-712 word is the 32 bytes themselves).
 * @throws TypeError `${struct}.${name} must be 32-byte hex` unless `value` is 0x + 64 hex digits.
 */
function writeBytes32(out: Uint8Array, offset: number, value: unknown, struct: string, name: string): void {
  if (typeof value !== "string" || !BYTES32.test(value)) throw new TypeError(`${struct}.${name} must be 32-byte hex`);
  for (let i = 0; i < 32; i += 1) {
    out[offset + i] = (nibble(value.charCodeAt(2 + 2 * i)) << 4) | nibble(value.charCodeAt(3 + 2 * i));
  }
}

/**
 * Writes a `uint64` member as its 32-byte big-endian EIP-712 word (the word must be zero-filled).
 * @throws TypeError `${struct}.timestamp must be a uint64` when out of range; what `BigInt()` throws otherwise.
 */
function writeUint64(out: Uint8Array, offset: number, value: bigint | number, struct: string, name: string): void {
  const n = BigInt(value);
  if (n < 0n || n > UINT64_MAX) throw new TypeError(`${struct}.${name} must be a uint64`);
  new DataView(out.buffer, out.byteOffset, out.byteLength).setBigUint64(offset + 24, n);
}

/**
 * `hashStruct(result)` as bytes: `keccak256(typeHash ‖ resultId ‖ cryptletId ‖ codeHash ‖ inputHash ‖ outputHash ‖
 * uint256(timestamp))` (EIP-712 `encodeData`: every member is a static 32-byte word).
 * @returns 32 bytes (a new array).
 * @throws TypeError when a `bytes32` member is not 0x + 64 hex digits or the timestamp is not a uint64.
 */
export function hashCryptletResultBytes(result: CryptletResult): Uint8Array {
  const encoded = new Uint8Array(7 * 32);
  encoded.set(RESULT_TYPE_HASH, 0);
  writeBytes32(encoded, 32, result.resultId, "CryptletResult", "resultId");
  writeBytes32(encoded, 64, result.cryptletId, "CryptletResult", "cryptletId");
  writeBytes32(encoded, 96, result.codeHash, "CryptletResult", "codeHash");
  writeBytes32(encoded, 128, result.inputHash, "CryptletResult", "inputHash");
  writeBytes32(encoded, 160, result.outputHash, "CryptletResult", "outputHash");
  writeUint64(encoded, 192, result.timestamp, "CryptletResult", "timestamp");
  return keccak256Bytes(encoded);
}

/**
 * `hashStruct(result)` (EIP-712): the struct hash of a {@link CryptletResult}, also the value a batched result's
 * Merkle leaf is made from.
 *
 * Computed directly over bytes (the type hash and six static words, hashed with the WebAssembly keccak-256 of runtime/attestation/keccak.ts) rather
 * than with ethers' generic `TypedDataEncoder`; the tests compare the two on random results, and with the contract.
 * @returns the 32-byte struct hash as 0x-prefixed lowercase hex.
 * @throws TypeError when a member is not 32-byte hex or the timestamp is not a uint64.
 */
export function hashCryptletResult(result: CryptletResult): Hex32 {
  return `0x${bytesToHex(hashCryptletResultBytes(result))}`;
}

/**
 * `hashStruct(batch)` (EIP-712): `keccak256(typeHash ‖ root ‖ uint256(count) ‖ uint256(timestamp))`.
 * @returns the 32-byte struct hash as 0x-prefixed lowercase hex.
 * @throws TypeError when `root` is not 32-byte hex, `count` not a uint32 or `timestamp` not a uint64.
 */
export function hashResultBatch(batch: ResultBatch): Hex32 {
  return `0x${bytesToHex(hashResultBatchBytes(batch))}`;
}

function hashResultBatchBytes(batch: ResultBatch): Uint8Array {
  const encoded = new Uint8Array(4 * 32);
  encoded.set(BATCH_TYPE_HASH, 0);
  writeBytes32(encoded, 32, batch.root, "ResultBatch", "root");
  const count = batch.count as unknown;
  if (
    (typeof count !== "number" && typeof count !== "bigint") ||
    (typeof count === "number" && !Number.isInteger(count)) ||
    count < 0 ||
    count > UINT32_MAX
  ) {
    throw new TypeError("ResultBatch.count must be a uint32");
  }
  new DataView(encoded.buffer).setUint32(64 + 28, Number(count));
  writeUint64(encoded, 96, batch.timestamp, "ResultBatch", "timestamp");
  return keccak256Bytes(encoded);
}

/** EIP-712 §"Specification": `keccak256("\x19\x01" ‖ domainSeparator ‖ hashStruct(message))`, as hex. */
function typedDataDigest(consortiumId: Hex32, structHash: Uint8Array): Hex32 {
  const message = new Uint8Array(66);
  message[0] = 0x19;
  message[1] = 0x01;
  message.set(separatorBytes(consortiumId), 2);
  message.set(structHash, 34);
  return `0x${bytesToHex(keccak256Bytes(message))}`;
}

/**
 * The EIP-712 digest that signers sign for one result: `keccak256("\x19\x01" ‖ domainSeparator ‖ hashStruct)`.
 * @param consortiumId - the consortium's `bytes32` id (the domain `salt`).
 * @returns the 32-byte digest as 0x-prefixed lowercase hex.
 * @throws TypeError as {@link hashCryptletResult}.
 */
export function cryptletResultDigest(consortiumId: Hex32, result: CryptletResult): Hex32 {
  return typedDataDigest(consortiumId, hashCryptletResultBytes(result));
}

/**
 * The EIP-712 digest that signers sign for a Merkle batch: `keccak256("\x19\x01" ‖ domainSeparator ‖
 * hashStruct(batch))`.
 * @param consortiumId - the consortium's `bytes32` id (the domain `salt`).
 * @returns the 32-byte digest as 0x-prefixed lowercase hex.
 * @throws TypeError as {@link hashResultBatch}.
 */
export function resultBatchDigest(consortiumId: Hex32, batch: ResultBatch): Hex32 {
  return typedDataDigest(consortiumId, hashResultBatchBytes(batch));
}

/**
 * `resultId = keccak256(abi.encode(cryptletId, requestId))` (docs/ARCHITECTURE.md §3): one result per request, ever.
 */
export function computeResultId(cryptletId: Hex32, requestId: Hex32): Hex32 {
  return keccak256(AbiCoder.defaultAbiCoder().encode(["bytes32", "bytes32"], [cryptletId, requestId])) as Hex32;
}
