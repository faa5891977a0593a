/**
 * Canonical hashing of a Cryptlet run: RFC 8785 canonical JSON, `inputHash`, `outputHash` and the ABI encoding of a
 * public output. The byte layouts are specified in docs/proof-bundle.md ("Identifiers and hashes").
 *
 * @module
 */
import canonicalizeModule from "canonicalize";
import { AbiCoder, getBytes, hexlify, keccak256, toUtf8Bytes, type BytesLike } from "ethers";

import { AbiEncodingError, CanonicalJsonError } from "./errors.ts";
import type { Hex32 } from "./eip712.ts";

// `canonicalize` is CommonJS with an ESM-style declaration: under Node's ESM the default import is the function
// itself, while TypeScript (NodeNext) types it as the module object. Accept both shapes.
const canonicalize = (
  typeof canonicalizeModule === "function"
    ? canonicalizeModule
    : (canonicalizeModule as unknown as { default: (input: unknown) => string | undefined }).default
) as (input: unknown) => string | undefined;

/** A value that RFC 8785 can represent: JSON's null, booleans, finite numbers, strings, arrays and plain objects. */
export type CanonicalValue = null | boolean | number | string | CanonicalValue[] | { [key: string]: CanonicalValue };

/**
 * Deepest nesting of objects and arrays {@link canonicalJson} accepts (the top-level value is level 1). The walk and
 * the `canonicalize` package recurse once per level; the bound keeps them far from V8's stack limit, so a deeper
 * value is a typed {@link CanonicalJsonError}, never a `RangeError` (the API refuses deeper bodies earlier, see
 * docs/api.md "Limits").
 */
export const MAX_CANONICAL_JSON_DEPTH = 1000;

/** 0x-prefixed hex of any length. */
export type Hex = `0x${string}`;

function describe(value: unknown): string | undefined {
  switch (typeof value) {
    case "undefined":
      return "undefined";
    case "function":
      return "a function";
    case "symbol":
      return "a symbol";
    case "bigint":
      return "a bigint";
    case "number":
      return Number.isFinite(value) ? undefined : `the number ${String(value)}`;
    default:
      return undefined;
  }
}

function assertCanonicalisable(value: unknown, path: string, seen: Set<object>): void {
  const bad = describe(value);
  if (bad !== undefined) throw new CanonicalJsonError(path, bad);
  if (value === null || typeof value !== "object") return;
  if (seen.has(value)) throw new CanonicalJsonError(path, "a cycle");
  // `seen` holds exactly the objects on the path from the root, so its size is this value's nesting level - 1.
  if (seen.size >= MAX_CANONICAL_JSON_DEPTH) {
    throw new CanonicalJsonError(
      path.length > 64 ? `${path.slice(0, 61)}...` : path,
      `nesting deeper than ${MAX_CANONICAL_JSON_DEPTH} levels`,
    );
  }
  seen.add(value);
  if (Array.isArray(value)) {
    value.forEach((item, i) => assertCanonicalisable(item, `${path}[${i}]`, seen));
  } else {
    // A plain object of any realm (JSON parsed in another VM context or worker has that realm's Object.prototype).
    const proto = Object.getPrototypeOf(value) as object | null;
    if (proto !== null && Object.getPrototypeOf(proto) !== null) {
      const name = (value as { constructor?: { name?: string } }).constructor?.name ?? "object";
      throw new CanonicalJsonError(path, `a ${name} instance (plain objects only)`);
    }
    for (const [key, item] of Object.entries(value)) {
      assertCanonicalisable(
        item,
        /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`,
        seen,
      );
    }
  }
  seen.delete(value);
}

/**
 * Serialises a value as RFC 8785 (JSON Canonicalization Scheme) text: sorted keys (UTF-16 code units), no
 * whitespace, ECMAScript number formatting. Uses the `canonicalize` package after a strict walk.
 *
 * @param value - plain JSON data: objects with `Object.prototype` or `null` prototype, arrays, strings, booleans,
 *   `null` and finite numbers.
 * @returns the canonical JSON text.
 * @throws {@link CanonicalJsonError} (`ERR_CANONICAL_JSON_UNSUPPORTED`) naming the path of the first value that
 *   JSON cannot represent (`undefined`, function, symbol, bigint, non-finite number, class instance, cycle), or
 *   of the first object or array nested deeper than {@link MAX_CANONICAL_JSON_DEPTH} levels.
 *
 * @example
 * ```ts
 * import { canonicalJson } from "./runtime/attestation/hashing.ts";
 * canonicalJson({ b: 1, a: [true, null] }); // '{"a":[true,null],"b":1}'
 * ```
 */
export function canonicalJson(value: unknown): string {
  assertCanonicalisable(value, "$", new Set());
  const text = canonicalize(value);
  if (text === undefined) throw new CanonicalJsonError("$", "a value without JSON form");
  return text;
}

/** The UTF-8 bytes of {@link canonicalJson}. */
export function canonicalBytes(value: unknown): Uint8Array {
  return toUtf8Bytes(canonicalJson(value));
}

/**
 * One host call made on the Cryptlet's behalf during a run (a granted capability), recorded by the sandbox host.
 * `fetch` is the only kind today; other kinds add their own fields and keep `kind`.
 */
export interface FetchHostCallRecord {
  /** Capability name. */
  kind: "fetch";
  /** The requested absolute URL (as the Cryptlet passed it). */
  url: string;
  /** `"GET"` or `"POST"`. */
  method: "GET" | "POST";
  /** HTTP status code of the final response. */
  status: number;
  /** The final URL after redirects. */
  finalUrl: string;
  /** SHA-256 of the response body bytes, 0x-prefixed lowercase hex (32 bytes). */
  bodySha256: Hex32;
  /** Length of the response body in bytes. */
  bodyBytes: number;
}

/** A host-call record: {@link FetchHostCallRecord}, or a future capability's record with its own `kind`. */
export type HostCallRecord = FetchHostCallRecord | ({ kind: string } & { [key: string]: CanonicalValue });

/**
 * What `inputHash` commits to: the normalised event (as the trigger stage built it, e.g. a chain log with
 * `chainId`, `blockHash`, `txHash`, `logIndex`, `address`, `topics`, `data`) and every host-call record in call
 * order.
 */
export interface RunInput {
  /** The normalised event, plain JSON. */
  event: CanonicalValue | Record<string, unknown>;
  /** Host-call records in the order the calls were made (empty when the Cryptlet made none). */
  hostCalls: readonly HostCallRecord[];
}

/**
 * The input commitment of format 1 (tokens with `inputFormat` 1, issued before runs kept their evidence):
 * `inputHash = keccak256(utf8(JCS({"event": event, "hostCalls": [records...]})))` (RFC 8785). The runtime now
 * commits to the run's evidence instead (format 2, `evidenceInputHash` in runtime/attestation/evidence.ts).
 *
 * @param input - the normalised event and the host-call records, in call order.
 * @returns the `bytes32` hash.
 * @throws {@link CanonicalJsonError} when the event or a record holds a non-JSON value.
 *
 * @example
 * ```ts
 * import { computeInputHash } from "./runtime/attestation/hashing.ts";
 * const inputHash = computeInputHash({ event: { kind: "schedule", slotTime: 1704412800 }, hostCalls: [] });
 * ```
 */
export function computeInputHash(input: RunInput): Hex32 {
  return keccak256(canonicalBytes({ event: input.event, hostCalls: [...input.hostCalls] })) as Hex32;
}

/**
 * ABI-encodes a public output as the contract decodes it: `abi.encode(value)` for the manifest's single ABI type,
 * e.g. `tuple(int256 answer, uint8 decimals, uint64 observedAt)` (ethers `AbiCoder.encode([abiType], [value])`).
 *
 * @param abiType - a Solidity ABI type string as in the manifest's `output` field.
 * @param value - the Cryptlet's output: for a tuple an object keyed by component names or an array; integers as
 *   numbers, decimal strings or bigints.
 * @returns the encoded bytes as 0x hex.
 * @throws {@link AbiEncodingError} (`ERR_ABI_ENCODING`) when the type is invalid or the value does not fit it.
 */
export function encodePublicOutput(abiType: string, value: unknown): Hex {
  try {
    return AbiCoder.defaultAbiCoder().encode([abiType], [value]) as Hex;
  } catch (cause) {
    throw new AbiEncodingError(abiType, cause);
  }
}

/**
 * Encodes a run's output for a public manifest output (runtime/packages/manifest.ts):
 * - `{abi}`: `abi.encode(output)` as {@link encodePublicOutput};
 * - `{abiOneOf}`: the output is `{ variant: <index>, value }` and `value` is encoded as `abiOneOf[variant]`.
 * @returns the ABI type used (the proof bundle's `payload.public.abiType`) and the bytes as 0x hex.
 * @throws {@link AbiEncodingError} (`ERR_ABI_ENCODING`) when the output does not fit its type, or an `abiOneOf`
 *   output is not `{variant, value}` with an integer `variant` in range.
 */
export function encodeManifestOutput(
  output: { abi: string } | { abiOneOf: readonly string[] },
  value: unknown,
): { abiType: string; payload: Hex } {
  if ("abi" in output) return { abiType: output.abi, payload: encodePublicOutput(output.abi, value) };
  const chosen = value as { variant?: unknown; value?: unknown } | null;
  const variant = typeof chosen === "object" && chosen !== null ? chosen.variant : undefined;
  if (
    typeof variant !== "number" ||
    !Number.isInteger(variant) ||
    variant < 0 ||
    variant >= output.abiOneOf.length ||
    !("value" in (chosen as object))
  ) {
    throw new AbiEncodingError(
      `one of ${output.abiOneOf.length} (abiOneOf)`,
      new Error(`the output must be {"variant": 0..${output.abiOneOf.length - 1}, "value": ...}`),
    );
  }
  const abiType = output.abiOneOf[variant]!;
  return { abiType, payload: encodePublicOutput(abiType, chosen!.value) };
}

/**
 * Decodes {@link encodePublicOutput}'s bytes back into ethers values (a `Result` for tuples).
 * @throws {@link AbiEncodingError} when the bytes do not decode as `abiType`.
 */
export function decodePublicOutput(abiType: string, data: BytesLike): unknown {
  try {
    return AbiCoder.defaultAbiCoder().decode([abiType], data)[0];
  } catch (cause) {
    throw new AbiEncodingError(abiType, cause);
  }
}

/**
 * The bytes written on-chain for a sealed result: the UTF-8 of the RFC 8785 canonical JSON of the JWE General JSON
 * object. A string is taken as the exact JSON text already written and is used unchanged.
 */
export function sealedOutputBytes(jwe: object | string): Uint8Array {
  return typeof jwe === "string" ? toUtf8Bytes(jwe) : canonicalBytes(jwe);
}

/**
 * `outputHash = keccak256(bytes written on-chain)` (docs/proof-bundle.md).
 * @param payload - a public result's ABI bytes (hex or bytes), or `{ sealed: jwe }` for a sealed result.
 *
 * @example
 * ```ts
 * import { computeOutputHash, encodePublicOutput } from "./runtime/attestation/hashing.ts";
 * const data = encodePublicOutput("tuple(int256 answer, uint8 decimals)", { answer: 224312n, decimals: 2 });
 * const outputHash = computeOutputHash(data);
 * ```
 */
export function computeOutputHash(payload: BytesLike | { sealed: object | string }): Hex32 {
  if (typeof payload === "object" && payload !== null && "sealed" in payload) {
    return keccak256(sealedOutputBytes(payload.sealed)) as Hex32;
  }
  return keccak256(getBytes(payload)) as Hex32;
}

/** `0x` hex of bytes (re-exported convenience for payload fields). */
export function toHex(bytes: Uint8Array): Hex {
  return hexlify(bytes) as Hex;
}
