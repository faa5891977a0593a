import { AbiCoder, keccak256, toUtf8Bytes } from "ethers";

import { isCryptletError } from "../../runtime/errors.ts";
import {
  canonicalJson,
  computeInputHash,
  computeOutputHash,
  decodePublicOutput,
  encodePublicOutput,
  MAX_CANONICAL_JSON_DEPTH,
  sealedOutputBytes,
} from "../../runtime/attestation/hashing.ts";
import { chainLogEventId, cryptletIdOf, httpEventId, scheduleEventId } from "../../runtime/attestation/ids.ts";

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isCryptletError(e) ? e.code : `non-cryptlet: ${String(e)}`;
  }
  return undefined;
}

describe("canonicalJson (RFC 8785)", () => {
  it("sorts keys by UTF-16 code units and drops whitespace", () => {
    expect(canonicalJson({ b: [1, { z: null, a: true }], a: "x", "€": 1, "\r": 2 })).toBe(
      '{"\\r":2,"a":"x","b":[1,{"a":true,"z":null}],"€":1}',
    );
  });

  it("formats numbers as ECMAScript does (RFC 8785 §3.2.2.3 examples)", () => {
    expect(canonicalJson([1e21, 1e-7, 0.000001, -0, 333333333.3333333, 4.5, 2e-3, 1e23])).toBe(
      "[1e+21,1e-7,0.000001,0,333333333.3333333,4.5,0.002,1e+23]",
    );
  });

  it.each([
    [{ a: undefined }, "$.a", "undefined"],
    [{ a: [1, () => 1] }, "$.a[1]", "a function"],
    [{ n: 10n }, "$.n", "a bigint"],
    [{ x: { "y z": Number.NaN } }, '$.x["y z"]', "the number NaN"],
    [[Infinity], "$[0]", "the number Infinity"],
    [{ when: new Date(0) }, "$.when", "a Date instance (plain objects only)"],
    [{ s: Symbol("s") }, "$.s", "a symbol"],
  ])("rejects %p naming the path", (value, path, kind) => {
    try {
      canonicalJson(value);
      throw new Error("expected an error");
    } catch (e) {
      expect(isCryptletError(e, "ERR_CANONICAL_JSON_UNSUPPORTED")).toBe(true);
      expect((e as { details: { path: string; kind: string } }).details).toEqual({ path, kind });
    }
  });

  it("rejects cycles", () => {
    const a: Record<string, unknown> = {};
    a.self = a;
    expect(codeOf(() => canonicalJson(a))).toBe("ERR_CANONICAL_JSON_UNSUPPORTED");
  });

  it("refuses values nested deeper than MAX_CANONICAL_JSON_DEPTH with its typed error, never a RangeError", () => {
    /** `levels` nested objects and arrays, alternating, around the number 1. */
    const nested = (levels: number): unknown => {
      let value: unknown = 1;
      for (let i = 0; i < levels; i++) value = i % 2 === 0 ? [value] : { a: value };
      return value;
    };
    const atLimit = canonicalJson(nested(MAX_CANONICAL_JSON_DEPTH));
    expect(atLimit.length).toBe(1 + MAX_CANONICAL_JSON_DEPTH * 2 + (MAX_CANONICAL_JSON_DEPTH / 2) * 4);
    for (const levels of [MAX_CANONICAL_JSON_DEPTH + 1, 5000, 100_000]) {
      expect(codeOf(() => canonicalJson(nested(levels)))).toBe("ERR_CANONICAL_JSON_UNSUPPORTED");
    }
    try {
      canonicalJson(nested(5000));
    } catch (e) {
      expect((e as { details: { kind: string } }).details.kind).toBe(
        `nesting deeper than ${MAX_CANONICAL_JSON_DEPTH} levels`,
      );
    }
  });

  it("accepts null-prototype objects and repeated (non-cyclic) references", () => {
    const shared = { v: 1 };
    const o = Object.assign(Object.create(null) as object, { b: shared, a: shared });
    expect(canonicalJson(o)).toBe('{"a":{"v":1},"b":{"v":1}}');
  });
});

describe("inputHash", () => {
  it("is keccak256 of the canonical {event, hostCalls} document", () => {
    const event = { kind: "http", body: { price: 1.5 }, receivedAt: 1704412800 };
    const hostCalls = [
      {
        kind: "fetch" as const,
        url: "https://api.example.com/p",
        method: "GET" as const,
        status: 200,
        finalUrl: "https://api.example.com/p",
        bodySha256: `0x${"ab".repeat(32)}` as const,
        bodyBytes: 17,
      },
    ];
    const text =
      '{"event":{"body":{"price":1.5},"kind":"http","receivedAt":1704412800},"hostCalls":[{"bodyBytes":17,' +
      `"bodySha256":"0x${"ab".repeat(32)}","finalUrl":"https://api.example.com/p","kind":"fetch","method":"GET",` +
      '"status":200,"url":"https://api.example.com/p"}]}';
    expect(computeInputHash({ event, hostCalls })).toBe(keccak256(toUtf8Bytes(text)));
  });

  it("does not depend on key order but does on host-call order", () => {
    const r1 = { kind: "x", n: 1 };
    const r2 = { kind: "x", n: 2 };
    expect(computeInputHash({ event: { a: 1, b: 2 }, hostCalls: [r1, r2] })).toBe(
      computeInputHash({ event: { b: 2, a: 1 }, hostCalls: [r1, r2] }),
    );
    expect(computeInputHash({ event: {}, hostCalls: [r1, r2] })).not.toBe(
      computeInputHash({ event: {}, hostCalls: [r2, r1] }),
    );
  });
});

describe("outputHash and the public ABI output", () => {
  const abiType = "tuple(int256 answer, uint8 decimals, uint64 observedAt)";

  it("encodes a named tuple as abi.encode and hashes those bytes", () => {
    const data = encodePublicOutput(abiType, { answer: -5n, decimals: 8, observedAt: 1704412800 });
    const manual = AbiCoder.defaultAbiCoder().encode(["int256", "uint8", "uint64"], [-5n, 8, 1704412800]);
    expect(data).toBe(manual); // a static tuple encodes as its members
    expect(computeOutputHash(data)).toBe(keccak256(data));
    const decoded = decodePublicOutput(abiType, data) as { answer: bigint; decimals: bigint };
    expect(decoded.answer).toBe(-5n);
  });

  it("rejects a value that does not fit the type, and an invalid type", () => {
    expect(codeOf(() => encodePublicOutput(abiType, { answer: 1n, decimals: 300, observedAt: 0 }))).toBe(
      "ERR_ABI_ENCODING",
    );
    expect(codeOf(() => encodePublicOutput("tuple(int256", [1]))).toBe("ERR_ABI_ENCODING");
    expect(codeOf(() => decodePublicOutput(abiType, "0x1234"))).toBe("ERR_ABI_ENCODING");
  });

  it("hashes a sealed result as the UTF-8 of its canonical JWE JSON, or of the exact text given", () => {
    const jwe = {
      recipients: [{ header: { kid: "k", alg: "A" } }],
      protected: "p",
      iv: "i",
      ciphertext: "c",
      tag: "t",
    };
    const canonical =
      '{"ciphertext":"c","iv":"i","protected":"p","recipients":[{"header":{"alg":"A","kid":"k"}}],"tag":"t"}';
    expect(new TextDecoder().decode(sealedOutputBytes(jwe))).toBe(canonical);
    expect(computeOutputHash({ sealed: jwe })).toBe(keccak256(toUtf8Bytes(canonical)));
    expect(computeOutputHash({ sealed: JSON.stringify(jwe) })).toBe(keccak256(toUtf8Bytes(JSON.stringify(jwe))));
  });
});

describe("identifiers", () => {
  const coder = AbiCoder.defaultAbiCoder();
  const blockHash = `0x${"11".repeat(32)}`;
  const txHash = `0x${"22".repeat(32)}`;

  it("cryptletId is keccak256 of the package name", () => {
    expect(cryptletIdOf("@acme/price-median")).toBe(keccak256(toUtf8Bytes("@acme/price-median")));
    expect(codeOf(() => cryptletIdOf(""))).toBe("ERR_INVALID_IDENTIFIER");
  });

  it("chain-log eventId is keccak256(abi.encode(chainId, blockHash, txHash, logIndex))", () => {
    const expected = keccak256(coder.encode(["uint256", "bytes32", "bytes32", "uint256"], [1n, blockHash, txHash, 7n]));
    expect(chainLogEventId({ chainId: 1, blockHash, txHash, logIndex: 7 })).toBe(expected);
    expect(chainLogEventId({ chainId: 1, blockHash: `0x${"33".repeat(32)}`, txHash, logIndex: 7 })).not.toBe(expected);
    expect(codeOf(() => chainLogEventId({ chainId: -1, blockHash, txHash, logIndex: 0 }))).toBe(
      "ERR_INVALID_IDENTIFIER",
    );
    expect(codeOf(() => chainLogEventId({ chainId: 1, blockHash: "0x12", txHash, logIndex: 0 }))).toBe(
      "ERR_INVALID_IDENTIFIER",
    );
  });

  it("schedule eventId is keccak256(abi.encode(cryptletId, slotTime))", () => {
    const id = cryptletIdOf("@acme/x");
    expect(scheduleEventId(id, 1704412800n)).toBe(keccak256(coder.encode(["bytes32", "uint64"], [id, 1704412800n])));
    expect(codeOf(() => scheduleEventId(id, 2n ** 64n))).toBe("ERR_INVALID_IDENTIFIER");
  });

  it("HTTP eventId hashes the Idempotency-Key and refuses bad keys", () => {
    expect(httpEventId("8e03978e-40d5-43e8-bc93-6894a57f9324")).toBe(
      keccak256(toUtf8Bytes("8e03978e-40d5-43e8-bc93-6894a57f9324")),
    );
    expect(codeOf(() => httpEventId(""))).toBe("ERR_INVALID_IDENTIFIER");
    expect(codeOf(() => httpEventId("has space"))).toBe("ERR_INVALID_IDENTIFIER");
  });
});

describe("canonical JSON across realms", () => {
  test("a plain object from another VM context is plain JSON (e.g. parsed by fetch in the main realm)", async () => {
    const { runInNewContext } = await import("node:vm");
    const { canonicalJson } = await import("../../runtime/attestation/hashing.ts");
    const foreign = runInNewContext('({ b: [1, { c: "x" }], a: null })') as unknown;
    expect(canonicalJson(foreign)).toBe('{"a":null,"b":[1,{"c":"x"}]}');
    expect(() => canonicalJson(runInNewContext("({ when: new Date(0) })"))).toThrow(/Date/);
  });
});
