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
import { AbiCoder, TypedDataEncoder, concat, keccak256, toUtf8Bytes, type TypedDataDomain } from "ethers";

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

// One encoder per struct, built once: `TypedDataEncoder.from` parses and validates the types on every call, which
// cost more than the hashing itself (see docs/benchmarks.md, "proofs").
const RESULT_ENCODER = TypedDataEncoder.from(CRYPTLET_RESULT_TYPES);
const BATCH_ENCODER = TypedDataEncoder.from(RESULT_BATCH_TYPES);

/** `CryptletResult(bytes32 resultId,bytes32 cryptletId,bytes32 codeHash,bytes32 inputHash,bytes32 outputHash,uint64 timestamp)` */
export const CRYPTLET_RESULT_TYPE = RESULT_ENCODER.encodeType("CryptletResult");
/** `ResultBatch(bytes32 root,uint32 count,uint64 timestamp)` */
export const RESULT_BATCH_TYPE = BATCH_ENCODER.encodeType("ResultBatch");

// Domain separators by lower-case consortium id; a runtime serves a handful of consortia, the bound is a guard.
const separators = new Map<string, Hex32>();
const MAX_CACHED_SEPARATORS = 256;

/**
 * The EIP-712 domain of a consortium.
 * @param consortiumId - the consortium's `bytes32` id, used as the domain `salt`.
 */
export function cryptletDomain(consortiumId: Hex32): TypedDataDomain {
  return { name: DOMAIN_NAME, version: DOMAIN_VERSION, salt: consortiumId };
}

/** The domain separator (`hashStruct(eip712Domain)`) of a consortium; equals `CryptletRegistry.domainSeparator()`. */
export function domainSeparator(consortiumId: Hex32): Hex32 {
  const key = consortiumId.toLowerCase();
  let separator = separators.get(key);
  if (separator === undefined) {
    separator = TypedDataEncoder.hashDomain(cryptletDomain(consortiumId)) as Hex32;
    if (separators.size >= MAX_CACHED_SEPARATORS) separators.clear();
    separators.set(key, separator);
  }
  return separator;
}

/** EIP-712 §"Specification": `keccak256("\x19\x01" ‖ domainSeparator ‖ hashStruct(message))`. */
function typedDataDigest(consortiumId: Hex32, structHash: string): Hex32 {
  return keccak256(concat(["0x1901", domainSeparator(consortiumId), structHash])) as Hex32;
}

const RESULT_TYPE_HASH = keccak256(toUtf8Bytes(CRYPTLET_RESULT_TYPE)).slice(2);
const BYTES32 = /^0x[0-9a-fA-F]{64}$/;
const UINT64_MAX = 2n ** 64n - 1n;

/**
 * `hashStruct(result)`: the EIP-712 struct hash, also the Merkle leaf value of a batched result.
 *
 * Every member is a static 32-byte word, so `encodeData` is the type hash followed by the six words; this is
 * computed directly (about 20 times faster than ethers' generic encoder, which dominated Merkle batching) and
 * checked against `TypedDataEncoder` and the contract in the tests.
 * @throws TypeError when a member is not 32-byte hex or the timestamp is not a uint64.
 */
export function hashCryptletResult(result: CryptletResult): Hex32 {
  const words = [result.resultId, result.cryptletId, result.codeHash, result.inputHash, result.outputHash];
  const names = ["resultId", "cryptletId", "codeHash", "inputHash", "outputHash"];
  let encoded = RESULT_TYPE_HASH;
  for (let i = 0; i < words.length; i += 1) {
    const word = words[i];
    if (typeof word !== "string" || !BYTES32.test(word))
      throw new TypeError(`CryptletResult.${names[i]} must be 32-byte hex`);
    encoded += word.slice(2);
  }
  const timestamp = BigInt(result.timestamp);
  if (timestamp < 0n || timestamp > UINT64_MAX) throw new TypeError("CryptletResult.timestamp must be a uint64");
  encoded += timestamp.toString(16).padStart(64, "0");
  return keccak256("0x" + encoded) as Hex32;
}

/** The EIP-712 digest that signers sign for one result: `keccak256("\x19\x01" ‖ domainSeparator ‖ hashStruct)`. */
export function cryptletResultDigest(consortiumId: Hex32, result: CryptletResult): Hex32 {
  return typedDataDigest(consortiumId, hashCryptletResult(result));
}

/** The EIP-712 digest that signers sign for a Merkle batch. */
export function resultBatchDigest(consortiumId: Hex32, batch: ResultBatch): Hex32 {
  return typedDataDigest(consortiumId, BATCH_ENCODER.hash(batch));
}

/**
 * `resultId = keccak256(abi.encode(cryptletId, requestId))` (docs/ARCHITECTURE.md §3): one result per request, ever.
 */
export function computeResultId(cryptletId: Hex32, requestId: Hex32): Hex32 {
  return keccak256(AbiCoder.defaultAbiCoder().encode(["bytes32", "bytes32"], [cryptletId, requestId])) as Hex32;
}
