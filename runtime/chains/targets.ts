/**
 * Write modes: pure builders that turn an attested result into a {@link WriteRequest} for the
 * {@link ChainWriter}, one per mode, each with its idempotency key, its calldata (ABI-encoded with the compiled
 * contracts' ABIs) and an `isRecorded` bound to the target contract's own view.
 *
 * | mode     | contract call                                            | idempotency key               | `isRecorded`                          |
 * | -------- | -------------------------------------------------------- | ----------------------------- | ------------------------------------- |
 * | `oracle` | `CryptletOracle.fulfill(result, payload, signatures)`    | `oracle:<chain>:<resultId>`   | `CryptletOracle.isRecorded(resultId)`    |
 * | `record` | `ResultLedger.record(result, payload, signatures)`       | `record:<chain>:<resultId>`   | `ResultLedger.isRecorded(resultId)`      |
 * | `feed`   | `CryptletPriceFeed.submit(result, payload, signatures)`  | `feed:<chain>:<resultId>`     | `CryptletPriceFeed.isRecorded(resultId)` |
 * | `anchor` | `ResultLedger.anchor(batch, signatures)` (one per batch) | `anchor:<chain>:<root>`       | `ResultLedger.isAnchored(root)`          |
 * | `mint`   | `CryptletWrappedToken.mint(result, payload, signatures)` | `mint:<chain>:<resultId>`     | `CryptletWrappedToken.isRecorded(resultId)` |
 * | `release`| `CryptletLockbox.release(result, payload, signatures)`   | `release:<chain>:<resultId>`  | `CryptletLockbox.isRecorded(resultId)`   |
 * | `refund` | `CryptletLockbox.refund(result, payload, signatures)`    | `refund:<chain>:<resultId>`   | `CryptletLockbox.isRecorded(resultId)`   |
 *
 * The three cross-chain modes (docs/crosschain.md) always name their contract: the run's target is routed from its
 * event (runtime/crosschain/routes.ts), never taken from a chain's defaults.
 *
 * `anchor` batches many results into one transaction; {@link AnchorBatcher} (./anchor.ts) builds its requests
 * with {@link anchorWriteRequest}.
 *
 * Reads go through the writer's {@link ChainRpc} (`eth_call` at `latest`, with its endpoint failover), so a
 * builder does no I/O itself: only the returned `isRecorded` does, when the writer calls it.
 *
 * @module
 */
import { getAddress, isAddress, isHexString, keccak256, type Interface } from "ethers";

import type { CryptletResult, Hex32, ResultBatch } from "../attestation/eip712.ts";
import type { ResultSignature } from "../attestation/signing.ts";
import { CryptletError } from "../errors.ts";
import type { ChainConfig } from "./config.ts";
import { interfaceOf, type CryptletContractName } from "./contracts.ts";
import { ERR_CHAIN_TARGET_UNCONFIGURED, ERR_CHAIN_WRITE_INVALID } from "./errors.ts";
import { nodeErrorOf, type ChainRpc } from "./rpc.ts";
import type { WriteRequest } from "./writer.ts";

/** How a result is written to a chain. */
export type WriteMode = "oracle" | "record" | "feed" | "anchor" | "mint" | "release" | "refund";

/** The write modes, in documentation order. */
export const WRITE_MODES: readonly WriteMode[] = ["oracle", "record", "feed", "anchor", "mint", "release", "refund"];

/** Where a result goes: a chain (by its configured name), a mode and the contract's address. */
export interface WriteTarget {
  /** The chain's configured `name` (used in idempotency keys). */
  chain: string;
  mode: WriteMode;
  /** The target contract (oracle, ledger, price feed, lockbox or wrapped token), any case; checksummed in the request. */
  address: string;
}

/** A signed result ready to be written. */
export interface AttestedResult {
  /** The `CryptletResult` EIP-712 struct that was signed. */
  result: CryptletResult;
  /** The exact bytes written on-chain as 0x hex (ABI output, or the UTF-8 JWE JSON of a sealed result). */
  payload: string;
  /** Signatures over `result` (65-byte `r‖s‖v` hex, or {@link ResultSignature} entries), M of N. */
  signatures: readonly (string | ResultSignature)[];
}

/** Reads contract state: the writer's {@link ChainRpc} (only `send` is used). */
export type ChainReader = Pick<ChainRpc, "send">;

/**
 * The target is missing or malformed (`details.field` names it: `address`, `payload`, `signatures`,
 * `result.<field>`, `callbackGasLimit`, `mode`). Not retryable.
 */
export class ChainWriteInvalidError extends CryptletError {
  constructor(field: string, problem: string, details: Record<string, unknown> = {}) {
    super(ERR_CHAIN_WRITE_INVALID, `invalid chain write: ${field} ${problem}`, { details: { field, ...details } });
  }
}

/** The chain has no contract configured for the mode (`details.chain`, `details.mode`, `details.feed`). */
export class ChainTargetUnconfiguredError extends CryptletError {
  constructor(chain: string, mode: WriteMode, feed?: string) {
    super(ERR_CHAIN_TARGET_UNCONFIGURED, `chain ${chain} has no ${missingContractOf(mode, feed)}`, {
      details: { chain, mode, ...(feed === undefined ? {} : { feed }) },
    });
  }
}

function missingContractOf(mode: WriteMode, feed?: string): string {
  switch (mode) {
    case "feed":
      return `price feed for ${feed ?? "(no package name)"} configured`;
    case "oracle":
      return "oracle contract configured";
    case "record":
    case "anchor":
      return "ledger contract configured";
    default:
      return `default contract for ${mode} writes (a cross-chain write names its lockbox or wrapped token)`;
  }
}

/**
 * The target of `mode` on a configured chain: the oracle, the ledger (`record` and `anchor`) or the price feed of
 * package `feed` from `chain.contracts`.
 * @throws ChainTargetUnconfiguredError (`ERR_CHAIN_TARGET_UNCONFIGURED`) when the chain has no such contract.
 *
 * @example
 * ```ts
 * import { loadChainsConfig } from "./runtime/chains/config.ts";
 * import { targetOf } from "./runtime/chains/targets.ts";
 * const [chain] = loadChainsConfig("chains.json").chains;
 * const target = targetOf(chain!, "record");
 * ```
 */
export function targetOf(chain: ChainConfig, mode: WriteMode, feed?: string): WriteTarget {
  if (mode === "mint" || mode === "release" || mode === "refund")
    throw new ChainTargetUnconfiguredError(chain.name, mode);
  const address =
    mode === "oracle"
      ? chain.contracts.oracle
      : mode === "feed"
        ? feed === undefined
          ? undefined
          : chain.contracts.feeds?.[feed]
        : chain.contracts.ledger;
  if (address === undefined) throw new ChainTargetUnconfiguredError(chain.name, mode, feed);
  return { chain: chain.name, mode, address };
}

/** The idempotency key of a write: `<mode>:<chain>:<resultId>` (`anchor:<chain>:<root>` for an anchor). */
export function idempotencyKeyOf(mode: WriteMode, chain: string, id: string): string {
  return `${mode}:${chain}:${id.toLowerCase()}`;
}

const CONTRACT_OF: Record<WriteMode, CryptletContractName> = {
  oracle: "CryptletOracle",
  record: "ResultLedger",
  feed: "CryptletPriceFeed",
  anchor: "ResultLedger",
  mint: "CryptletWrappedToken",
  release: "CryptletLockbox",
  refund: "CryptletLockbox",
};
const METHOD_OF: Record<WriteMode, string> = {
  oracle: "fulfill",
  record: "record",
  feed: "submit",
  anchor: "anchor",
  mint: "mint",
  release: "release",
  refund: "refund",
};

const interfaces = new Map<CryptletContractName, Interface>();
function iface(name: CryptletContractName): Interface {
  let value = interfaces.get(name);
  if (!value) {
    value = interfaceOf(name);
    interfaces.set(name, value);
  }
  return value;
}

/** Gas the oracle keeps for itself around a callback (`CryptletOracle.CALLBACK_GAS_OVERHEAD`), in gas units. */
export const CALLBACK_GAS_OVERHEAD = 40_000n;

/**
 * The extra gas an oracle fulfilment needs on top of the node's estimate for a callback limit: the oracle
 * reverts with `CryptletOracleInsufficientGas` unless `gasleft() ≥ limit · 64 / 63 + CALLBACK_GAS_OVERHEAD` when it
 * reaches the callback (EIP-150 forwards at most 63/64 of the gas left). Adding exactly that to the estimate
 * makes the check pass even on a node whose `eth_estimateGas` returns the gas *used* (a callback that uses less
 * than its limit) rather than the least gas limit that succeeds. Unused gas is not charged.
 * @param callbackGasLimit - from the request's `CryptletRequested` event, in gas units (uint32).
 */
export function oracleExtraGas(callbackGasLimit: number | bigint): bigint {
  const limit = BigInt(callbackGasLimit);
  if (limit === 0n) return 0n;
  return (limit * 64n + 62n) / 63n + CALLBACK_GAS_OVERHEAD;
}

const UINT64_MAX = 2n ** 64n - 1n;

/**
 * Checks the shape of a `CryptletResult` (bytes32 fields, uint64 bigint timestamp).
 * @throws ChainWriteInvalidError (`ERR_CHAIN_WRITE_INVALID`, `details.field` = `result.<field>`).
 */
export function assertCryptletResult(result: CryptletResult): void {
  if (typeof result !== "object" || result === null) throw new ChainWriteInvalidError("result", "is not an object");
  for (const field of ["resultId", "cryptletId", "codeHash", "inputHash", "outputHash"] as const) {
    if (!isHexString(result[field], 32))
      throw new ChainWriteInvalidError(`result.${field}`, "must be 0x + 64 hex digits");
  }
  if (typeof result.timestamp !== "bigint" || result.timestamp < 0n || result.timestamp > UINT64_MAX) {
    throw new ChainWriteInvalidError("result.timestamp", "must be a uint64 bigint (Unix seconds)");
  }
}

function checkAddress(address: string): string {
  if (typeof address !== "string" || !isAddress(address)) {
    throw new ChainWriteInvalidError("address", "must be a 20-byte 0x address with a valid EIP-55 checksum");
  }
  return getAddress(address);
}

/** The 65-byte signature hex strings of `signatures`. */
export function signatureBytes(signatures: readonly (string | ResultSignature)[]): string[] {
  if (!Array.isArray(signatures) || signatures.length === 0) {
    throw new ChainWriteInvalidError("signatures", "must hold at least one signature");
  }
  return signatures.map((entry, index) => {
    const hex = typeof entry === "string" ? entry : entry?.signature;
    if (!isHexString(hex, 65)) {
      throw new ChainWriteInvalidError("signatures", `[${index}] is not a 65-byte r‖s‖v hex signature`, { index });
    }
    return hex;
  });
}

/** An `isRecorded` that asks `contract.<view>(id)` with `eth_call` at the latest block. */
function viewFlag(reader: ChainReader, name: CryptletContractName, to: string, view: string, id: string) {
  const contract = iface(name);
  const data = contract.encodeFunctionData(view, [id]);
  return async (): Promise<boolean> => {
    const raw = await reader.send<string>("eth_call", [{ to, data }, "latest"]);
    return Boolean(contract.decodeFunctionResult(view, raw)[0]);
  };
}

/** Options of {@link writeRequestOf}. */
export interface WriteRequestOptions {
  /** Reads the target contract (the writer's `rpc`). */
  reader: ChainReader;
  /**
   * `oracle` mode only: the request's callback gas limit from its `CryptletRequested` event, in gas units
   * (0 = no callback). Required for `oracle`.
   */
  callbackGasLimit?: number | bigint;
  /**
   * How many times the result's signatures were replaced (a signer rotation, runtime/queue/processors/write.ts):
   * from 1 on, the idempotency key is `<mode>:<chain>:<resultId>#<attempt>`, because a transaction of the earlier
   * signatures may have been mined and reverted under the plain key (which then stays failed). Default 0.
   */
  attempt?: number;
}

/**
 * Builds the {@link WriteRequest} of one result for an `oracle`, `record`, `feed`, `mint`, `release` or `refund`
 * target.
 *
 * - `oracle`: `CryptletOracle.fulfill(result, payload, signatures)`, `extraGas` = {@link oracleExtraGas}.
 * - `record`: `ResultLedger.record(result, payload, signatures)`.
 * - `feed`: `CryptletPriceFeed.submit(result, payload, signatures)` (payload `abi.encode(int256, uint8, uint64)`).
 * - `mint`, `release`, `refund`: `CryptletWrappedToken.mint`, `CryptletLockbox.release`, `CryptletLockbox.refund`
 *   `(result, payload, signatures)` (payloads as docs/crosschain.md "Output encodings").
 *
 * Checks offline what the contract would refuse with a less helpful revert: the field shapes, and
 * `keccak256(payload) = result.outputHash`.
 * @throws ChainWriteInvalidError (`ERR_CHAIN_WRITE_INVALID`) for a malformed input, an `anchor` target (use
 * {@link anchorWriteRequest}), or an `oracle` target without `callbackGasLimit`.
 *
 * @example
 * ```ts
 * import { ChainWriter } from "./runtime/chains/writer.ts";
 * import { targetOf, writeRequestOf } from "./runtime/chains/targets.ts";
 * const request = writeRequestOf(targetOf(writer.chain, "record"), { result, payload, signatures }, {
 *   reader: writer.rpc,
 * });
 * const receipt = await writer.write(request); // status "confirmed" or "already-recorded"
 * ```
 */
export function writeRequestOf(
  target: WriteTarget,
  attested: AttestedResult,
  options: WriteRequestOptions,
): WriteRequest {
  if (target.mode === "anchor") {
    throw new ChainWriteInvalidError("mode", "anchor writes a batch: use anchorWriteRequest (or the AnchorBatcher)");
  }
  if (!(target.mode in CONTRACT_OF))
    throw new ChainWriteInvalidError("mode", `is not one of ${WRITE_MODES.join(", ")}`);
  const to = checkAddress(target.address);
  const { result, payload } = attested;
  assertCryptletResult(result);
  if (typeof payload !== "string" || !isHexString(payload)) {
    throw new ChainWriteInvalidError("payload", "must be 0x hex of whole bytes");
  }
  const payloadHash = keccak256(payload);
  if (payloadHash !== result.outputHash.toLowerCase()) {
    throw new ChainWriteInvalidError("payload", "does not hash to result.outputHash", {
      outputHash: result.outputHash,
      payloadHash,
    });
  }
  const signatures = signatureBytes(attested.signatures);
  let extraGas: bigint | undefined;
  if (target.mode === "oracle") {
    const limit = options.callbackGasLimit;
    if (limit === undefined || BigInt(limit) < 0n || BigInt(limit) > 0xffffffffn) {
      throw new ChainWriteInvalidError(
        "callbackGasLimit",
        "is required for oracle writes (uint32, from CryptletRequested)",
      );
    }
    extraGas = oracleExtraGas(limit);
  }
  const name = CONTRACT_OF[target.mode];
  const method = METHOD_OF[target.mode];
  const data = iface(name).encodeFunctionData(method, [{ ...result }, payload, signatures]);
  return {
    idempotencyKey: options.attempt
      ? `${idempotencyKeyOf(target.mode, target.chain, result.resultId)}#${options.attempt}`
      : idempotencyKeyOf(target.mode, target.chain, result.resultId),
    to,
    data,
    contract: name,
    method,
    ...(extraGas === undefined
      ? {}
      : { extraGas, estimateGas: fulfilEstimator(options.reader, to, data, BigInt(options.callbackGasLimit!)) }),
    isRecorded: viewFlag(options.reader, name, to, "isRecorded", result.resultId),
  };
}

/** A message of a node that refuses to estimate because an inner call runs out of gas at any limit (Hardhat). */
/** EIP-7825's per-transaction gas cap, in gas units. */
const TX_GAS_CAP = 16_777_216n;

const INNER_OUT_OF_GAS = /internal call runs out of gas|gasEstimationMode/i;

/**
 * `eth_estimateGas` for a fulfilment, with a fallback for nodes (Hardhat's default `gasEstimationMode`) that
 * refuse to estimate when the consumer's callback runs out of gas at every limit (a callback that burns all it is
 * given is legal: the oracle records the failure). The fallback bisects with `eth_call` for the least gas limit
 * at which the fulfilment succeeds (between the oracle's own floor and the latest block's gas limit or EIP-7825's
 * 2^24 cap, to 1 %),
 * which is what geth-style nodes return anyway.
 */
function fulfilEstimator(reader: ChainReader, to: string, data: string, callbackGasLimit: bigint) {
  return async (from: string): Promise<bigint> => {
    try {
      return BigInt(await reader.send<string>("eth_estimateGas", [{ from, to, data }]));
    } catch (error) {
      if (!INNER_OUT_OF_GAS.test(nodeErrorOf(error).message)) throw error;
    }
    const block = await reader.send<{ gasLimit: string }>("eth_getBlockByNumber", ["latest", false]);
    // EIP-7825 caps a transaction's gas at 2^24 on chains that adopted it (Osaka).
    let high = BigInt(block.gasLimit) < TX_GAS_CAP ? BigInt(block.gasLimit) : TX_GAS_CAP;
    const succeeds = async (gas: bigint): Promise<boolean> => {
      try {
        await reader.send("eth_call", [{ from, to, data, gas: `0x${gas.toString(16)}` }, "latest"]);
        return true;
      } catch (error) {
        if (gas === high) throw error; // fails with all the gas there is: a real revert, decoded by the writer
        return false;
      }
    };
    await succeeds(high);
    let low = oracleExtraGas(callbackGasLimit) + 21_000n;
    while (high - low > high / 100n) {
      const middle = (low + high) / 2n;
      if (await succeeds(middle)) high = middle;
      else low = middle;
    }
    return high;
  };
}

/**
 * Builds the {@link WriteRequest} that anchors a signed Merkle batch: `ResultLedger.anchor(batch, signatures)`,
 * idempotency key `anchor:<chain>:<root>` (plus `#<attempt>` for a retry after an on-chain revert, see
 * ./anchor.ts), `isRecorded` = `ResultLedger.isAnchored(root)`.
 * @throws ChainWriteInvalidError for a malformed batch or signatures.
 *
 * @example
 * ```ts
 * import { signResultBatch } from "./runtime/attestation/signing.ts";
 * import { anchorWriteRequest, targetOf } from "./runtime/chains/targets.ts";
 * const signed = await signResultBatch(consortiumId, results, signers, BigInt(Math.floor(Date.now() / 1000)));
 * await writer.write(anchorWriteRequest(targetOf(writer.chain, "anchor"), signed.batch, signed.signatures, {
 *   reader: writer.rpc,
 * }));
 * ```
 */
export function anchorWriteRequest(
  target: WriteTarget,
  batch: ResultBatch,
  signatures: readonly (string | ResultSignature)[],
  options: { reader: ChainReader; attempt?: number },
): WriteRequest {
  const to = checkAddress(target.address);
  if (!isHexString(batch.root, 32) || /^0x0{64}$/.test(batch.root)) {
    throw new ChainWriteInvalidError("batch.root", "must be a non-zero bytes32");
  }
  if (!Number.isInteger(batch.count) || batch.count < 1 || batch.count > 0xffffffff) {
    throw new ChainWriteInvalidError("batch.count", "must be a uint32 ≥ 1");
  }
  if (typeof batch.timestamp !== "bigint" || batch.timestamp < 0n || batch.timestamp > UINT64_MAX) {
    throw new ChainWriteInvalidError("batch.timestamp", "must be a uint64 bigint (Unix seconds)");
  }
  const attempt = options.attempt ?? 0;
  const key = idempotencyKeyOf("anchor", target.chain, batch.root);
  return {
    idempotencyKey: attempt === 0 ? key : `${key}#${attempt}`,
    to,
    data: iface("ResultLedger").encodeFunctionData("anchor", [
      { root: batch.root, count: batch.count, timestamp: batch.timestamp },
      signatureBytes(signatures),
    ]),
    contract: "ResultLedger",
    method: "anchor",
    isRecorded: viewFlag(options.reader, "ResultLedger", to, "isAnchored", batch.root),
  };
}

/** An oracle request as announced by `CryptletOracle`'s `CryptletRequested` event. */
export interface OracleRequest {
  requestId: Hex32;
  cryptletId: Hex32;
  /** The consumer contract (checksummed) that receives the callback. */
  consumer: string;
  resultId: Hex32;
  /** Gas for the consumer's callback, in gas units (0: no callback). */
  callbackGasLimit: number;
  /** The consumer's input for the Cryptlet (0x hex). */
  params: string;
}

/**
 * Decodes a `CryptletRequested` log of `CryptletOracle` (e.g. from `eth_getLogs`), or returns `undefined` for any
 * other log.
 *
 * @example
 * ```ts
 * import { parseOracleRequest } from "./runtime/chains/targets.ts";
 * const requests = logs.map(parseOracleRequest).filter((r) => r !== undefined);
 * ```
 */
export function parseOracleRequest(log: { topics: readonly string[]; data: string }): OracleRequest | undefined {
  let parsed;
  try {
    parsed = iface("CryptletOracle").parseLog({ topics: [...log.topics], data: log.data });
  } catch {
    return undefined;
  }
  if (!parsed || parsed.name !== "CryptletRequested") return undefined;
  return {
    requestId: parsed.args.getValue("requestId") as Hex32,
    cryptletId: parsed.args.getValue("cryptletId") as Hex32,
    consumer: getAddress(parsed.args.getValue("consumer") as string),
    resultId: parsed.args.getValue("resultId") as Hex32,
    callbackGasLimit: Number(parsed.args.getValue("callbackGasLimit")),
    params: parsed.args.getValue("params") as string,
  };
}
