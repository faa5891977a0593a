/**
 * runtime/attestation/keccak.ts (hash-wasm's WebAssembly Keccak-256) against ethers' `keccak256` (@noble/hashes, a
 * second implementation), on known vectors and random inputs across the rate boundary (136 bytes) and beyond.
 */
import fc from "fast-check";
import { keccak256 } from "ethers";

import { keccak256Bytes, keccak256Hex } from "../../runtime/attestation/keccak.ts";

const hex = (bytes: Uint8Array) => `0x${Buffer.from(bytes).toString("hex")}`;

describe("keccak256Bytes / keccak256Hex", () => {
  it("is Ethereum's Keccak-256, not SHA3-256", () => {
    expect(keccak256Hex(new Uint8Array())).toBe("0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
    expect(keccak256Hex(new TextEncoder().encode("abc"))).toBe(
      "0x4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45",
    );
  });

  it("equals ethers' keccak256 on random inputs of 0 to 600 bytes, as hex and as bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), (data) => {
        const expected = keccak256(data);
        expect(keccak256Hex(data)).toBe(expected);
        expect(hex(keccak256Bytes(data))).toBe(expected);
      }),
      { numRuns: 500 },
    );
  });

  it("returns a fresh array each time (a later hash does not overwrite an earlier digest)", () => {
    const a = keccak256Bytes(new Uint8Array([1]));
    const before = hex(a);
    keccak256Bytes(new Uint8Array([2]));
    expect(hex(a)).toBe(before);
    expect(a.length).toBe(32);
  });
});
