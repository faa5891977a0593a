/**
 * Test support: deploys the Cryptlet contracts on a Hardhat chain and signs results with local wallets.
 */
import { Interface, Signature, Wallet, id, keccak256, toUtf8Bytes, type BaseContract, type Signer } from "ethers";
import { network } from "hardhat";

import { signCryptletResult } from "../../runtime/attestation/signing.ts";
import {
  RESULT_BATCH_TYPES,
  computeResultId,
  cryptletDomain,
  type CryptletResult,
  type Hex32,
  type ResultBatch,
} from "../../runtime/attestation/eip712.ts";

/** The hardhat-ethers helpers of one in-process chain. */
export type HardhatEthers = Awaited<ReturnType<typeof network.create>>["ethers"];

/**
 * A deployed contract whose methods are called by name (no generated bindings): every member is `any`, so that
 * `noUncheckedIndexedAccess` does not make each method "possibly undefined".
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyContract = BaseContract & { [member: string]: any };

/** Deploys `name` with constructor `args` and waits for it. */
export async function deploy(ethers: HardhatEthers, name: string, args: unknown[] = []): Promise<AnyContract> {
  const contract = await ethers.deployContract(name, args);
  await contract.waitForDeployment();
  return contract as unknown as AnyContract;
}

/** A consortium id for tests. */
export const CONSORTIUM_ID = id("test-consortium") as Hex32;

/** keccak256 of a package name, as `cryptletId` (re-exported from the runtime, the one definition). */
export { cryptletIdOf } from "../../runtime/attestation/ids.ts";

/** Deterministic test wallets (never use these keys anywhere else). */
export function testWallets(count: number): Wallet[] {
  return Array.from({ length: count }, (_, i) => new Wallet(id(`cryptlet-test-signer-${i}`)));
}

/** Signs `result` with each wallet (runtime `signCryptletResult`); 65-byte `r‖s‖v` hex signatures (low-s, v 27/28). */
export async function signResult(
  wallets: readonly Wallet[],
  result: CryptletResult,
  consortiumId: Hex32 = CONSORTIUM_ID,
): Promise<string[]> {
  return (await signCryptletResult(consortiumId, result, wallets)).map((s) => s.signature);
}

/** Signs a batch with each wallet. */
export async function signBatch(
  wallets: readonly Wallet[],
  batch: ResultBatch,
  consortiumId: Hex32 = CONSORTIUM_ID,
): Promise<string[]> {
  return Promise.all(
    wallets.map((w) =>
      w.signTypedData(
        cryptletDomain(consortiumId),
        RESULT_BATCH_TYPES as unknown as Record<string, { name: string; type: string }[]>,
        batch,
      ),
    ),
  );
}

/** The same signature with `s` replaced by `n - s` and `v` flipped: valid for ecrecover, but high-s (EIP-2). */
export function toHighS(signature: string): string {
  const sig = Signature.from(signature);
  const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
  const highS = n - BigInt(sig.s);
  const v = sig.v === 27 ? 28 : 27;
  return sig.r + highS.toString(16).padStart(64, "0") + v.toString(16);
}

/** A result for `cryptletId` answering `requestId`, with `outputHash = keccak256(payload)`. */
export function makeResult(
  cryptletId: Hex32,
  requestId: Hex32,
  codeHash: Hex32,
  payload: string,
  timestamp = 1_700_000_000n,
): CryptletResult {
  return {
    resultId: computeResultId(cryptletId, requestId),
    cryptletId,
    codeHash,
    inputHash: keccak256(toUtf8Bytes(`input:${requestId}`)) as Hex32,
    outputHash: keccak256(payload) as Hex32,
    timestamp,
  };
}

/** Every deployed contract of a test consortium. */
export interface CryptletStack {
  ethers: HardhatEthers;
  admin: Signer;
  others: Signer[];
  signers: Wallet[];
  registry: AnyContract;
  oracle: AnyContract;
  ledger: AnyContract;
  /** An interface holding every custom error of every contract, to decode bubbled-up reverts. */
  errors: Interface;
}

/**
 * Starts an in-process Hardhat chain and deploys registry (with `signerCount` trusted test wallets and
 * threshold `threshold`), oracle and ledger.
 */
export async function deployStack(signerCount = 3, threshold = 2): Promise<CryptletStack> {
  const { ethers } = await network.create();
  const [admin, ...others] = await ethers.getSigners();
  if (!admin) throw new Error("no Hardhat accounts");
  const signers = testWallets(signerCount);
  const registry = await deploy(ethers, "CryptletRegistry", [
    CONSORTIUM_ID,
    await admin.getAddress(),
    signers.map((w) => w.address),
    threshold,
  ]);
  const oracle = await deploy(ethers, "CryptletOracle", [await registry.getAddress(), 2_000_000]);
  const ledger = await deploy(ethers, "ResultLedger", [await registry.getAddress()]);
  const errors = await allErrors(ethers);
  return { ethers, admin, others, signers, registry, oracle, ledger, errors };
}

/** An Interface with every custom error of every compiled contract. */
export async function allErrors(ethers: HardhatEthers): Promise<Interface> {
  const names = [
    "CryptletRegistry",
    "CryptletOracle",
    "ResultLedger",
    "CryptletPriceFeed",
    "CryptletConsumer",
    "PriceFeedConsumer",
    "RevertingConsumer",
    "CryptletLockbox",
    "CryptletWrappedToken",
  ];
  const fragments = new Map<string, string>();
  for (const name of names) {
    const factory = await ethers.getContractFactory(name).catch(() => undefined);
    if (!factory) continue;
    factory.interface.forEachError((e) => fragments.set(e.format("full"), e.format("full")));
  }
  return new Interface([...fragments.values()]);
}

/** The revert data carried by an ethers error, or undefined. */
export function revertData(error: unknown): string | undefined {
  let e = error as { data?: unknown; error?: unknown; info?: { error?: { data?: unknown } } } | undefined;
  for (let depth = 0; e && depth < 5; depth += 1) {
    if (typeof e.data === "string" && e.data.startsWith("0x")) return e.data;
    if (typeof e.info?.error?.data === "string") return e.info.error.data;
    e = e.error as typeof e;
  }
  return undefined;
}

/**
 * Awaits `action`, expects it to revert with custom error `name` (decoded with `errors`) and, when given, with
 * exactly `args`. Returns the decoded arguments.
 */
export async function expectCustomError(
  action: Promise<unknown>,
  errors: Interface,
  name: string,
  args?: readonly unknown[],
): Promise<readonly unknown[]> {
  let caught: unknown;
  try {
    await action;
  } catch (e) {
    caught = e;
  }
  if (caught === undefined) throw new Error(`expected revert ${name}, but the call succeeded`);
  const data = revertData(caught);
  if (!data) throw new Error(`expected revert ${name}, got an error without revert data: ${String(caught)}`);
  const parsed = errors.parseError(data);
  if (!parsed) throw new Error(`expected revert ${name}, got unknown revert data ${data}`);
  expect(parsed.name).toBe(name);
  if (args) expect([...parsed.args]).toEqual([...args]);
  return [...parsed.args];
}
