/**
 * Builds real proof bundles for tests and for the committed vectors (test/vectors/proof-bundle/): real EIP-712
 * signatures, a real ES256 attestation token signed through a KeyProvider, a real JWE. The observation values are
 * real ETH/USD prices of 2024-01-05 00:00 UTC from two Uniswap V3 pools (see test/vectors/README.md).
 */
import { createHash } from "node:crypto";

import { Wallet, keccak256, toUtf8Bytes, type Signer } from "ethers";
import type { JWK } from "jose";

import { buildProofBundle, type ProofBundle } from "../../runtime/attestation/bundle.ts";
import { computeResultId, type CryptletResult, type Hex32 } from "../../runtime/attestation/eip712.ts";
import {
  buildRunEvidence,
  bundleEvidenceHash,
  evidenceInputHash,
  sealRunEvidence,
  type BundleEvidence,
  type RunEvidence,
} from "../../runtime/attestation/evidence.ts";
import { computeOutputHash, encodePublicOutput } from "../../runtime/attestation/hashing.ts";
import { cryptletIdOf, scheduleEventId } from "../../runtime/attestation/ids.ts";
import { signCryptletResult, signResultBatch, type ResultSigner } from "../../runtime/attestation/signing.ts";
import { createAttestationToken } from "../../runtime/attestation/token.ts";
import type { KeyProvider } from "../../runtime/keys/KeyProvider.ts";
import { partyKid, seal, type SealingParty } from "../../runtime/sealing/seal.ts";

export const CONSORTIUM_ID = keccak256(toUtf8Bytes("consortium:cryptlet-test-vectors")) as Hex32;
export const PACKAGE_NAME = "@acme/eth-usd-median";
export const PACKAGE_VERSION = "1.0.0";
export const CRYPTLET_ID = cryptletIdOf(PACKAGE_NAME);
export const CODE_HASH = `0x${createHash("sha256").update("eth-usd-median 1.0.0 build").digest("hex")}` as Hex32;
/** 2024-01-05T00:00:00Z, the schedule slot, Unix seconds. */
export const SLOT_TIME = 1704412800n;
export const OUTPUT_ABI = "tuple(int256 answer, uint8 decimals, uint64 observedAt)";
export const RUNTIME_ID = "runtime-test-1";

/** Two pools' ETH price in USD at the slot (0.05 % and 0.30 % USDC/WETH pools). */
export const OBSERVATIONS = [
  { pool: "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640", eth: "2269.7605037562785" },
  { pool: "0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8", eth: "2272.7319494521353" },
];

export function eventFor(slotTime: bigint): Record<string, unknown> {
  return { kind: "schedule", cryptletId: CRYPTLET_ID, slotTime: Number(slotTime), observations: OBSERVATIONS };
}

/**
 * The evidence of the run at `slotTime` (format 2): the schedule event, no input, no fetch (the observations are
 * in the event).
 */
export function evidenceFor(slotTime: bigint): RunEvidence {
  const requestId = scheduleEventId(CRYPTLET_ID, slotTime);
  return buildRunEvidence({
    event: eventFor(slotTime),
    input: null,
    context: { requestId, resultId: computeResultId(CRYPTLET_ID, requestId), now: Number(slotTime) },
    hostCalls: [],
  });
}

/** Median of two = mean, with 8 decimals: 2271.24622660 USD. */
export const ANSWER = 227124622660n;

export interface FixtureKeys {
  signers: ResultSigner[];
  attestation: KeyProvider;
  parties: SealingParty[];
}

export interface FixtureOptions {
  sealed?: boolean;
  /** Batch the result with `batchSize - 1` siblings (per-result signatures are then omitted). */
  batchSize?: number;
  codeHash?: Hex32;
  slotTime?: bigint;
  /** Issue time of the attestation token; defaults to the slot time + 2 s. */
  attestedAt?: Date;
  ttlSeconds?: number;
  /** Result timestamp, Unix seconds; defaults to slot time + 2. */
  timestamp?: bigint;
}

/** Result of {@link makeBundle}: the bundle and its ingredients. */
export interface Fixture {
  bundle: ProofBundle;
  result: CryptletResult;
  requestId: Hex32;
  plaintext?: string;
}

export async function makeBundle(keys: FixtureKeys, options: FixtureOptions = {}): Promise<Fixture> {
  const slotTime = options.slotTime ?? SLOT_TIME;
  const requestId = scheduleEventId(CRYPTLET_ID, slotTime);
  const resultId = computeResultId(CRYPTLET_ID, requestId);
  const codeHash = options.codeHash ?? CODE_HASH;
  const timestamp = options.timestamp ?? slotTime + 2n;
  const data = encodePublicOutput(OUTPUT_ABI, { answer: ANSWER, decimals: 8, observedAt: slotTime });
  let payload: Parameters<typeof buildProofBundle>[0]["payload"];
  let outputHash: Hex32;
  let plaintext: string | undefined;
  if (options.sealed) {
    plaintext = JSON.stringify({ answer: ANSWER.toString(), decimals: 8, observedAt: Number(slotTime) });
    const jwe = await seal(plaintext, keys.parties);
    payload = { sealed: { jwe } };
    outputHash = computeOutputHash({ sealed: jwe });
  } else {
    payload = { public: { abiType: OUTPUT_ABI, data } };
    outputHash = computeOutputHash(data);
  }
  const runEvidence = evidenceFor(slotTime);
  const evidence: BundleEvidence = options.sealed
    ? { sealed: { jwe: await sealRunEvidence(runEvidence, keys.parties) } }
    : { public: runEvidence };
  const result: CryptletResult = {
    resultId,
    cryptletId: CRYPTLET_ID,
    codeHash,
    inputHash: evidenceInputHash(runEvidence),
    outputHash,
    timestamp,
  };
  const attestation = await createAttestationToken(keys.attestation, {
    issuer: RUNTIME_ID,
    cryptletId: CRYPTLET_ID,
    codeHash,
    resultId,
    consortiumId: CONSORTIUM_ID,
    inputHash: result.inputHash,
    outputHash: result.outputHash,
    evidenceHash: bundleEvidenceHash(evidence),
    runtime: { version: "0.1.0", buildHash: keccak256(toUtf8Bytes("runtime 0.1.0")) },
    sandbox: {
      engine: "isolated-vm",
      engineVersion: "7.0.1+v8.13.6.233.17-node.53",
      limits: { memoryBytes: 67_108_864, wallTimeMs: 1000, outputBytes: 65_536 },
    },
    now: options.attestedAt ?? new Date(Number(timestamp) * 1000),
    ...(options.ttlSeconds === undefined ? {} : { ttlSeconds: options.ttlSeconds }),
  });
  const parties = options.sealed
    ? await Promise.all(keys.parties.map(async (p) => ({ name: p.name, kid: await partyKid(p) })))
    : [];
  const manifest = { cryptletId: CRYPTLET_ID, name: PACKAGE_NAME, version: PACKAGE_VERSION, parties };
  if (options.batchSize !== undefined && options.batchSize > 1) {
    const siblings: CryptletResult[] = [];
    for (let i = 1; i < options.batchSize; i++) {
      const otherRequest = scheduleEventId(CRYPTLET_ID, slotTime + BigInt(60 * i));
      siblings.push({
        ...result,
        resultId: computeResultId(CRYPTLET_ID, otherRequest),
        inputHash: evidenceInputHash(evidenceFor(slotTime + BigInt(60 * i))),
        timestamp: timestamp + BigInt(60 * i),
      });
    }
    const signed = await signResultBatch(CONSORTIUM_ID, [result, ...siblings], keys.signers, timestamp + 300n);
    const bundle = buildProofBundle({
      consortiumId: CONSORTIUM_ID,
      manifest,
      requestId,
      result,
      signatures: [],
      batch: { ...signed.batch, proof: signed.proofs[0] ?? [], signatures: signed.signatures },
      attestation,
      payload,
      evidence,
    });
    return { bundle, result, requestId, ...(plaintext === undefined ? {} : { plaintext }) };
  }
  const signatures = await signCryptletResult(CONSORTIUM_ID, result, keys.signers);
  const bundle = buildProofBundle({
    consortiumId: CONSORTIUM_ID,
    manifest,
    requestId,
    result,
    signatures,
    attestation,
    payload,
    evidence,
    anchors: [
      {
        chainId: "31337",
        contract: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        txHash: keccak256(toUtf8Bytes(`tx:${resultId}`)) as Hex32,
        blockNumber: "12",
        blockHash: keccak256(toUtf8Bytes(`block:${resultId}`)) as Hex32,
        gasUsed: "148213",
        mode: "record",
      },
    ],
  });
  return { bundle, result, requestId, ...(plaintext === undefined ? {} : { plaintext }) };
}

/** Wallets from fixed private keys (test keys only). */
export function walletsFrom(privateKeys: readonly string[]): Signer[] {
  return privateKeys.map((k) => new Wallet(k));
}

/** Public half of a private JWK. */
export function publicJwk(jwk: JWK): JWK {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = jwk;
  return pub;
}
