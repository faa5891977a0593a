/**
 * The proof bundle (docs/proof-bundle.md): the JSON document that lets anyone check a Cryptlet result offline and on
 * each chain. Format version 1 is specified field by field in docs/proof-bundle.md and by the JSON Schema (draft
 * 2020-12) docs/proof-bundle.schema.json, which {@link validateProofBundle} applies with Ajv.
 *
 * Integers that can exceed 2^53 (uint64 timestamps, chain ids, block numbers, gas) are decimal strings.
 *
 * @module
 */
import { readFileSync } from "node:fs";

import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import { getAddress, hexlify, type BytesLike } from "ethers";
import type { GeneralJWE } from "jose";

import type { CryptletResult, Hex32 } from "./eip712.ts";
import type { BundleEvidence } from "./evidence.ts";
import { ProofBundleSchemaError } from "./errors.ts";
import type { ResultSignature } from "./signing.ts";

/** The bundle format version this module writes and reads. */
export const PROOF_BUNDLE_VERSION = 1;

/** A result as carried in a bundle: {@link CryptletResult} with `timestamp` as a decimal string (Unix seconds). */
export interface BundleResult {
  resultId: Hex32;
  cryptletId: Hex32;
  codeHash: Hex32;
  inputHash: Hex32;
  outputHash: Hex32;
  /** Unix seconds, decimal string (uint64). */
  timestamp: string;
}

/** The Merkle batch a result was anchored in. */
export interface BundleBatch {
  root: Hex32;
  /** Number of results in the batch (uint32). */
  count: number;
  /** Unix seconds, decimal string (uint64). */
  timestamp: string;
  /** Sibling hashes from the leaf to the root (OpenZeppelin StandardMerkleTree proof). */
  proof: Hex32[];
  /** Signatures over the `ResultBatch` struct. */
  signatures: ResultSignature[];
}

/** A result's place in a batch attestation token (runtime/attestation/token.ts `AttestationLeafProof`). */
export interface BundleAttestationProof {
  /** keccak256 of the JCS of this bundle's `evidence` member, the leaf's last value. */
  evidenceHash: Hex32;
  /** Sibling hashes from the leaf to the token's `batch.root` (OpenZeppelin StandardMerkleTree proof). */
  proof: Hex32[];
}

/** How the result was written to one chain. */
export interface BundleAnchor {
  /** EIP-155 chain id, decimal string. */
  chainId: string;
  /** The contract written to (checksummed address). */
  contract: string;
  txHash: Hex32;
  /** Decimal string. */
  blockNumber: string;
  blockHash: Hex32;
  /** Gas used by the transaction (receipt `gasUsed`), decimal string. */
  gasUsed: string;
  /** `record` (ResultLedger.record), `anchor` (ResultLedger.anchor), `fulfill` (CryptletOracle.fulfill),
   *  `submit` (CryptletPriceFeed.submit), `mint` (CryptletWrappedToken.mint), `release` and `refund`
   *  (CryptletLockbox.release, .refund). */
  mode: "record" | "anchor" | "fulfill" | "submit" | "mint" | "release" | "refund";
}

/** The payload written on-chain: exactly one of a public ABI output or a sealed JWE. */
export type BundlePayload =
  | { public: { abiType: string; data: `0x${string}` }; sealed?: never }
  | { sealed: { jwe: GeneralJWE }; public?: never };

/** A proof bundle, version 1. */
export interface ProofBundle {
  bundleVersion: 1;
  /** The consortium id, the EIP-712 domain salt. */
  consortiumId: Hex32;
  manifest: {
    cryptletId: Hex32;
    /** The package name (`cryptletId = keccak256(utf8(name))`). */
    name: string;
    /** The package version (semver). */
    version: string;
    /** The parties of a sealed Cryptlet with their recipient kids (empty for a public one). */
    parties: { name: string; kid: string }[];
  };
  /** The oracle request id, or the event id; lets a verifier recompute `resultId`. */
  requestId?: Hex32;
  result: BundleResult;
  /** Signatures over the `CryptletResult` struct (may be empty when the result is batched). */
  signatures: ResultSignature[];
  batch?: BundleBatch;
  /** The attestation token (compact JWS): a per-result token, or a batch token with `attestationProof`. */
  attestation: string;
  /**
   * Present exactly when `attestation` is a batch token (docs/proof-bundle.md, "Batch attestation token"): the
   * `evidenceHash` of this result's leaf and the leaf's Merkle proof to the token's `batch.root`.
   */
  attestationProof?: BundleAttestationProof;
  payload: BundlePayload;
  /**
   * The run's evidence (format 2, runtime/attestation/evidence.ts): public, or sealed for the parties when the
   * payload is. Optional: a bundle without it verifies, but cannot be re-executed.
   */
  evidence?: BundleEvidence;
  /** One entry per chain write (empty until written). */
  anchors: BundleAnchor[];
}

/** Converts a bundle's result to the EIP-712 struct (bigint timestamp). */
export function bundleResultToStruct(result: BundleResult): CryptletResult {
  return { ...result, timestamp: BigInt(result.timestamp) };
}

/** Converts an EIP-712 result to its bundle form. */
export function structToBundleResult(result: CryptletResult): BundleResult {
  return {
    resultId: result.resultId,
    cryptletId: result.cryptletId,
    codeHash: result.codeHash,
    inputHash: result.inputHash,
    outputHash: result.outputHash,
    timestamp: result.timestamp.toString(),
  };
}

/** What {@link buildProofBundle} takes. */
export interface BuildProofBundleInput {
  consortiumId: Hex32;
  manifest: { cryptletId: Hex32; name: string; version: string; parties?: { name: string; kid: string }[] };
  requestId?: Hex32;
  result: CryptletResult;
  signatures?: ResultSignature[];
  batch?: { root: Hex32; count: number; timestamp: bigint; proof: Hex32[]; signatures: ResultSignature[] };
  attestation: string;
  /** With a batch token: the result's leaf `evidenceHash` and Merkle proof. */
  attestationProof?: BundleAttestationProof;
  payload: { public: { abiType: string; data: BytesLike } } | { sealed: { jwe: GeneralJWE } };
  evidence?: BundleEvidence;
  anchors?: BundleAnchor[];
}

/**
 * Assembles a version-1 bundle from the runtime's values (bigints become decimal strings, addresses checksummed)
 * and validates it against the schema.
 * @throws {@link ProofBundleSchemaError} (`ERR_PROOF_BUNDLE_SCHEMA`) when the result does not match the schema.
 *
 * @example
 * ```ts
 * import { buildProofBundle } from "./runtime/attestation/bundle.ts";
 * const bundle = buildProofBundle({ consortiumId, manifest, result, signatures, attestation: token,
 *   payload: { public: { abiType: "tuple(int256 answer, uint8 decimals)", data } } });
 * ```
 */
export function buildProofBundle(input: BuildProofBundleInput): ProofBundle {
  const bundle: ProofBundle = {
    bundleVersion: PROOF_BUNDLE_VERSION,
    consortiumId: input.consortiumId,
    manifest: {
      cryptletId: input.manifest.cryptletId,
      name: input.manifest.name,
      version: input.manifest.version,
      parties: input.manifest.parties ?? [],
    },
    ...(input.requestId === undefined ? {} : { requestId: input.requestId }),
    result: structToBundleResult(input.result),
    signatures: (input.signatures ?? []).map(checksummed),
    ...(input.batch === undefined
      ? {}
      : {
          batch: {
            root: input.batch.root,
            count: input.batch.count,
            timestamp: input.batch.timestamp.toString(),
            proof: input.batch.proof,
            signatures: input.batch.signatures.map(checksummed),
          },
        }),
    attestation: input.attestation,
    ...(input.attestationProof === undefined
      ? {}
      : {
          attestationProof: { evidenceHash: input.attestationProof.evidenceHash, proof: input.attestationProof.proof },
        }),
    payload:
      "public" in input.payload
        ? {
            public: {
              abiType: input.payload.public.abiType,
              data: hexlify(input.payload.public.data) as `0x${string}`,
            },
          }
        : { sealed: { jwe: input.payload.sealed.jwe } },
    ...(input.evidence === undefined ? {} : { evidence: input.evidence }),
    anchors: input.anchors ?? [],
  };
  assertProofBundle(bundle);
  return bundle;
}

function checksummed(sig: ResultSignature): ResultSignature {
  return { ...sig, signer: getAddress(sig.signer) };
}

let validator: ValidateFunction | undefined;

/** The JSON Schema of version-1 bundles (docs/proof-bundle.schema.json). */
export function proofBundleSchema(): object {
  return JSON.parse(readFileSync(new URL("../../docs/proof-bundle.schema.json", import.meta.url), "utf8")) as object;
}

function compiled(): ValidateFunction {
  validator ??= new Ajv2020({ allErrors: true, strict: true }).compile(proofBundleSchema());
  return validator;
}

/** Schema errors of a value, as `{path, message}` with JSON Pointer paths; empty when it is a valid bundle. */
export function validateProofBundle(value: unknown): { path: string; message: string }[] {
  const validate = compiled();
  if (validate(value)) return [];
  return (validate.errors ?? []).map((e: ErrorObject) => ({
    path: e.instancePath === "" ? "/" : e.instancePath,
    message: `${e.message ?? "invalid"}${e.keyword === "additionalProperties" ? ` (${String(e.params.additionalProperty)})` : ""}`,
  }));
}

/**
 * Asserts that a value is a version-1 proof bundle.
 * @throws {@link ProofBundleSchemaError} (`ERR_PROOF_BUNDLE_SCHEMA`) with every schema error in `details.errors`.
 */
export function assertProofBundle(value: unknown): asserts value is ProofBundle {
  const errors = validateProofBundle(value);
  if (errors.length > 0) throw new ProofBundleSchemaError(errors);
}
