/**
 * Oracle requests: a `CryptletRequested` log of a chain's `CryptletOracle` becomes a {@link CryptletEvent} for the
 * Cryptlet it names, answered through the oracle's `fulfill` (the pipeline adds the oracle target).
 *
 * @module
 */
import { getAddress, isHexString, toUtf8String } from "ethers";

import { computeResultId, type Hex32 } from "../attestation/eip712.ts";
import { chainLogEventId } from "../attestation/ids.ts";
import { parseOracleRequest } from "../chains/targets.ts";
import { isCryptletError } from "../errors.ts";
import type { PackageStore } from "../packages/PackageStore.ts";
import type { CryptletEvent } from "../queue/topology.ts";
import type { RpcLog } from "./decodeLog.ts";
import {
  TriggerCryptletUnknownError,
  TriggerOracleNotDeclaredError,
  TriggerOracleRequestInvalidError,
  type OracleRequestLocation,
} from "./errors.ts";

/**
 * The Cryptlet's input from a request's `params` bytes: the parsed JSON when they are UTF-8 JSON text, else
 * the bytes as 0x hex.
 */
export function oracleInputOf(params: string): unknown {
  if (!isHexString(params)) return params;
  try {
    const text = toUtf8String(params); // throws on invalid UTF-8
    return JSON.parse(text) as unknown;
  } catch {
    return params;
  }
}

/**
 * Builds the event of an oracle request log.
 * - `eventId` = `chainLogEventId` of the log; `requestId` = the oracle's request id (so `resultId` is the one the
 *   oracle expects);
 * - `cryptlet` = the package `PackageStore.resolve(cryptletId)` finds, pinned to that version;
 * - `source` = `oracle` with the chain, oracle address, consumer, callback gas limit and the log's position;
 * - `input` = {@link oracleInputOf} the request's params; `time` = the block's timestamp (s).
 *
 * @param timestamp - the block's timestamp, Unix seconds.
 * @throws TriggerOracleRequestInvalidError (`ERR_TRIGGER_ORACLE_REQUEST_INVALID`) for a log that is not a
 *   well-formed `CryptletRequested`; TriggerCryptletUnknownError (`ERR_TRIGGER_CRYPTLET_UNKNOWN`) when no package
 *   has the `cryptletId`; TriggerOracleNotDeclaredError (`ERR_TRIGGER_ORACLE_NOT_DECLARED`) when the package
 *   declares no `oracle` trigger for this chain. Other package-store errors pass through (retried by the listener).
 *
 * @example
 * ```ts
 * import { oracleEventOf } from "./runtime/triggers/oracleRequest.ts";
 * const event = await oracleEventOf(log, { chain: "consortium", chainId: 31337, packages: store, timestamp: 1704412800 });
 * await pipeline.submit(event);
 * ```
 */
export async function oracleEventOf(
  log: RpcLog,
  options: { chain: string; chainId: number; packages: PackageStore; timestamp: number },
): Promise<CryptletEvent> {
  const blockNumber = Number(BigInt(log.blockNumber));
  const logIndex = Number(BigInt(log.logIndex));
  const request = parseOracleRequest(log);
  if (!request) {
    throw new TriggerOracleRequestInvalidError("not a CryptletRequested log", {
      chain: options.chain,
      blockNumber,
      txHash: log.transactionHash,
      logIndex,
    });
  }
  const location: OracleRequestLocation = {
    chain: options.chain,
    requestId: request.requestId,
    cryptletId: request.cryptletId,
    blockNumber,
    txHash: log.transactionHash,
    logIndex,
  };
  if (computeResultId(request.cryptletId, request.requestId).toLowerCase() !== request.resultId.toLowerCase()) {
    throw new TriggerOracleRequestInvalidError("resultId is not keccak256(abi.encode(cryptletId, requestId))", {
      ...location,
      resultId: request.resultId,
    });
  }
  let pkg;
  try {
    pkg = await options.packages.resolve(request.cryptletId);
  } catch (error) {
    if (isCryptletError(error, "ERR_PACKAGE_NOT_FOUND")) throw new TriggerCryptletUnknownError(location, error);
    throw error;
  }
  if (!pkg.manifest.triggers.some((t) => t.type === "oracle" && t.chain === options.chain)) {
    throw new TriggerOracleNotDeclaredError(location, pkg.manifest.name);
  }
  return {
    eventId: chainLogEventId({
      chainId: options.chainId,
      blockHash: log.blockHash,
      txHash: log.transactionHash,
      logIndex,
    }),
    requestId: request.requestId as Hex32,
    cryptlet: { name: pkg.manifest.name, version: pkg.manifest.version },
    source: {
      type: "oracle",
      chain: options.chain,
      chainId: options.chainId,
      oracle: getAddress(log.address),
      requestId: request.requestId,
      consumer: request.consumer,
      callbackGasLimit: request.callbackGasLimit,
      blockNumber,
      blockHash: log.blockHash,
      txHash: log.transactionHash,
      logIndex,
    },
    input: oracleInputOf(request.params),
    time: options.timestamp,
  };
}
