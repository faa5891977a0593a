import fc from "fast-check";
import { TypedDataEncoder, hexlify } from "ethers";

import {
  CRYPTLET_RESULT_TYPES,
  RESULT_BATCH_TYPES,
  cryptletDomain,
  cryptletResultDigest,
  hashCryptletResult,
  hashResultBatch,
  resultBatchDigest,
  type CryptletResult,
  type Hex32,
  type ResultBatch,
} from "../../runtime/attestation/eip712.ts";

// The independent reference: ethers' generic EIP-712 encoder (type parsing, ABI word encoding, its own keccak).
const types = (t: object) => t as unknown as Record<string, { name: string; type: string }[]>;
const RESULT_REFERENCE = TypedDataEncoder.from(types(CRYPTLET_RESULT_TYPES));
const BATCH_REFERENCE = TypedDataEncoder.from(types(RESULT_BATCH_TYPES));

/** 32 random bytes as 0x hex, in lower, upper or mixed case (all are valid bytes32 inputs). */
const bytes32 = fc
  .tuple(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.constantFrom("lower", "upper", "mixed"))
  .map(([bytes, style]) => {
    const hex = hexlify(bytes).slice(2);
    const cased =
      style === "lower"
        ? hex
        : style === "upper"
          ? hex.toUpperCase()
          : [...hex].map((c, i) => (i % 2 ? c.toUpperCase() : c)).join("");
    return `0x${cased}` as Hex32;
  });
const uint64 = fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constantFrom(0n, 2n ** 64n - 1n, 2n ** 32n));
const result: fc.Arbitrary<CryptletResult> = fc.record({
  resultId: bytes32,
  cryptletId: bytes32,
  codeHash: bytes32,
  inputHash: bytes32,
  outputHash: bytes32,
  timestamp: uint64,
});
const batch: fc.Arbitrary<ResultBatch> = fc.record({
  root: bytes32,
  count: fc.oneof(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.constantFrom(0, 1, 2 ** 32 - 1)),
  timestamp: uint64,
});

describe("EIP-712 struct hashes and digests, computed directly", () => {
  test("CryptletResult: hashStruct and digest equal ethers' TypedDataEncoder on random results", () => {
    fc.assert(
      fc.property(result, bytes32, (r, consortiumId) => {
        expect(hashCryptletResult(r)).toBe(RESULT_REFERENCE.hash(r));
        expect(cryptletResultDigest(consortiumId, r)).toBe(
          TypedDataEncoder.hash(cryptletDomain(consortiumId), types(CRYPTLET_RESULT_TYPES), r),
        );
      }),
      { numRuns: 300 },
    );
  });

  test("ResultBatch: hashStruct and digest equal ethers' TypedDataEncoder on random batches", () => {
    fc.assert(
      fc.property(batch, bytes32, (b, consortiumId) => {
        expect(hashResultBatch(b)).toBe(BATCH_REFERENCE.hash(b));
        expect(resultBatchDigest(consortiumId, b)).toBe(
          TypedDataEncoder.hash(cryptletDomain(consortiumId), types(RESULT_BATCH_TYPES), b),
        );
      }),
      { numRuns: 300 },
    );
  });

  test("malformed members throw a TypeError naming the member", () => {
    const r: CryptletResult = {
      resultId: `0x${"11".repeat(32)}`,
      cryptletId: `0x${"22".repeat(32)}`,
      codeHash: `0x${"33".repeat(32)}`,
      inputHash: `0x${"44".repeat(32)}`,
      outputHash: `0x${"55".repeat(32)}`,
      timestamp: 1n,
    };
    for (const name of ["resultId", "cryptletId", "codeHash", "inputHash", "outputHash"] as const) {
      for (const bad of ["0x1234", `0x${"zz".repeat(32)}`, `${"11".repeat(33)}`, `0x${"11".repeat(33)}`, 5]) {
        expect(() => hashCryptletResult({ ...r, [name]: bad as Hex32 })).toThrow(
          new TypeError(`CryptletResult.${name} must be 32-byte hex`),
        );
      }
    }
    for (const timestamp of [-1n, 2n ** 64n]) {
      expect(() => hashCryptletResult({ ...r, timestamp })).toThrow(
        new TypeError("CryptletResult.timestamp must be a uint64"),
      );
    }
    const b: ResultBatch = { root: r.resultId, count: 1, timestamp: 1n };
    expect(() => hashResultBatch({ ...b, root: "0x12" as Hex32 })).toThrow(
      new TypeError("ResultBatch.root must be 32-byte hex"),
    );
    for (const count of [-1, 2 ** 32, 1.5, Number.NaN]) {
      expect(() => hashResultBatch({ ...b, count })).toThrow(new TypeError("ResultBatch.count must be a uint32"));
    }
    expect(() => resultBatchDigest(r.resultId, { ...b, timestamp: 2n ** 64n })).toThrow(
      new TypeError("ResultBatch.timestamp must be a uint64"),
    );
  });
});
