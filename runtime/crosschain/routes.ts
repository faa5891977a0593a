/**
 * Where cross-chain events come from and where their results go (docs/crosschain.md), from the chain
 * configuration's `contracts.crosschain["<package name>"]` entries (docs/chains.md):
 *
 * - {@link crosschainSubscriptionsOf}: a package with a `crosschain` trigger listens to `Locked` of every lockbox
 *   and `Burned` of every wrapped token configured for it, on every chain;
 * - {@link crosschainTargetOf}: a `crosschain` target becomes a concrete write: a `Locked` log's mint goes to the
 *   wrapped token the log names, on the chain of its `destinationChainId`; a `Burned` log's release and a deadline
 *   observation's refund go to the lockbox on the source chain. Every contract must be configured for the package:
 *   the relayer never calls a contract an event merely names.
 *
 * @module
 */
import { getAddress, isAddress } from "ethers";

import type { ChainConfig } from "../chains/config.ts";
import type { WriteMode } from "../chains/targets.ts";
import type { Manifest } from "../packages/manifest.ts";
import type { CryptletEvent } from "../queue/topology.ts";
import type { ChainLogSubscription } from "../triggers/subscriptions.ts";
import { CrosschainEventInvalidError, CrosschainRouteUnknownError } from "./errors.ts";
import { BURNED_EVENT, LOCKED_EVENT } from "./events.ts";

/** A lock as the deadline watcher reads it, in a refund observation's input. Integers as decimal strings. */
export interface LockInput {
  lockId: string;
  sourceChainId: string;
  /** EIP-55 checksummed. */
  lockbox: string;
  destinationChainId: string;
  /** The peer wrapped token on the destination chain, EIP-55 checksummed. */
  token: string;
  sender: string;
  /** Token units (the locked token's smallest unit), decimal string. */
  amount: string;
  /** Unix seconds, destination-chain time. */
  deadline: number;
}

/**
 * The input of a refund observation (event source `chain-state` on the destination chain): the lock, and what the
 * watcher read at one block of the destination chain after the lock's deadline.
 */
export interface RefundInput {
  kind: "refund";
  lock: LockInput;
  observation: {
    chainId: number;
    blockNumber: number;
    blockHash: string;
    /** The block's timestamp, Unix seconds: the REFUND output's `observedAt`. */
    timestamp: number;
    /** `CryptletWrappedToken.isMinted(lockId)` at `blockNumber`. */
    isMinted: boolean;
  };
}

/** A concrete cross-chain write: the chain (by configured name), the mode and the contract. */
export interface CrosschainWriteTarget {
  chain: string;
  mode: Extract<WriteMode, "mint" | "release" | "refund">;
  /** EIP-55 checksummed. */
  address: string;
}

/** Does the manifest declare a `crosschain` trigger? Returns its confirmations, or `undefined`. */
export function crosschainConfirmationsOf(manifest: Pick<Manifest, "triggers">): number | undefined {
  const trigger = manifest.triggers.find((t) => t.type === "crosschain");
  return trigger?.type === "crosschain" ? trigger.confirmations : undefined;
}

/**
 * The chain-log subscriptions of the packages' `crosschain` triggers: `Locked` of each configured lockbox and
 * `Burned` of each configured wrapped token, with the trigger's confirmations. Ids follow the chain-log form
 * (`chain-log:<package>:<chain>:<address>:<topic0>`), so checkpoints are stable across restarts.
 * @param packages - the deployed packages (latest versions).
 * @param chains - the configured chains.
 */
export function crosschainSubscriptionsOf(
  packages: readonly { manifest: Pick<Manifest, "name" | "triggers"> }[],
  chains: Iterable<ChainConfig>,
): ChainLogSubscription[] {
  const subscriptions: ChainLogSubscription[] = [];
  const chainList = [...chains];
  for (const { manifest } of packages) {
    const confirmations = crosschainConfirmationsOf(manifest);
    if (confirmations === undefined) continue;
    for (const chain of chainList) {
      const contracts = chain.contracts.crosschain?.[manifest.name];
      if (!contracts) continue;
      const watch = (address: string, event: typeof LOCKED_EVENT): ChainLogSubscription => ({
        kind: "chain-log",
        id: `chain-log:${manifest.name}:${chain.name}:${address.toLowerCase()}:${event.topicHash}`,
        chain: chain.name,
        address,
        event: event.format("full"),
        confirmations,
        cryptlet: { name: manifest.name },
      });
      if (contracts.lockbox) subscriptions.push(watch(contracts.lockbox, LOCKED_EVENT));
      for (const token of contracts.wrappedTokens ?? []) subscriptions.push(watch(token, BURNED_EVENT));
    }
  }
  return subscriptions;
}

const sameAddress = (a: string | undefined, b: string): boolean =>
  a !== undefined && a.toLowerCase() === b.toLowerCase();

/** A decimal or 0x string, or a safe integer, as a bigint; `undefined` when it is none. */
function integerOf(value: unknown): bigint | undefined {
  if (typeof value === "number" && Number.isSafeInteger(value)) return BigInt(value);
  if (typeof value === "string" && /^(?:0x[0-9a-fA-F]+|[0-9]+)$/.test(value)) return BigInt(value);
  return undefined;
}

function addressField(value: unknown, field: string): string {
  if (typeof value !== "string" || !isAddress(value)) throw new CrosschainEventInvalidError(field, "is not an address");
  return getAddress(value.toLowerCase());
}

/**
 * The concrete write of a `crosschain` target for `event` (see the module comment).
 * @param cryptlet - the package name (the `contracts.crosschain` key).
 * @param chains - the configured chains.
 * @throws CrosschainEventInvalidError (`ERR_CROSSCHAIN_EVENT_INVALID`) for an event that is not a `Locked` or
 *   `Burned` log nor a refund observation; CrosschainRouteUnknownError (`ERR_CROSSCHAIN_ROUTE_UNKNOWN`) when a chain
 *   or contract on the route is not configured for the package.
 */
export function crosschainTargetOf(
  event: Pick<CryptletEvent, "source" | "input">,
  cryptlet: string,
  chains: Iterable<ChainConfig>,
): CrosschainWriteTarget {
  const chainList = [...chains];
  const byId = (chainId: bigint, role: string): ChainConfig => {
    const chain = chainList.find((c) => BigInt(c.chainId) === chainId);
    if (!chain) {
      throw new CrosschainRouteUnknownError(cryptlet, `no configured chain has chain id ${chainId} (the ${role})`, {
        chainId: chainId.toString(),
        role,
      });
    }
    return chain;
  };
  const configured = (chain: ChainConfig, role: "lockbox" | "wrapped token", address: string): void => {
    const entry = chain.contracts.crosschain?.[cryptlet];
    const known =
      role === "lockbox"
        ? sameAddress(entry?.lockbox, address)
        : (entry?.wrappedTokens ?? []).some((t) => sameAddress(t, address));
    if (!known) {
      throw new CrosschainRouteUnknownError(
        cryptlet,
        `${address} is not a configured ${role} on chain "${chain.name}" (contracts.crosschain)`,
        { chain: chain.name, contract: address, role },
      );
    }
  };
  const { source } = event;
  const input = event.input as Record<string, unknown> | undefined;
  if (typeof input !== "object" || input === null) throw new CrosschainEventInvalidError("input", "is not an object");

  if (source.type === "chain-log") {
    const args = input.args as Record<string, unknown> | undefined;
    if (typeof args !== "object" || args === null) throw new CrosschainEventInvalidError("input.args", "is missing");
    const emitter = addressField(source.address, "source.address");
    const here = byId(BigInt(source.chainId), "chain of the log");
    if (input.event === LOCKED_EVENT.name) {
      configured(here, "lockbox", emitter);
      const destinationChainId = integerOf(args.destinationChainId);
      if (destinationChainId === undefined) {
        throw new CrosschainEventInvalidError("input.args.destinationChainId", "is not an integer");
      }
      const destination = byId(destinationChainId, "destination chain of the lock");
      const token = addressField(args.token, "input.args.token");
      configured(destination, "wrapped token", token);
      return { chain: destination.name, mode: "mint", address: token };
    }
    if (input.event === BURNED_EVENT.name) {
      configured(here, "wrapped token", emitter);
      const sourceChainId = integerOf(args.sourceChainId);
      if (sourceChainId === undefined) {
        throw new CrosschainEventInvalidError("input.args.sourceChainId", "is not an integer");
      }
      const origin = byId(sourceChainId, "source chain of the burn");
      const lockbox = addressField(args.lockbox, "input.args.lockbox");
      configured(origin, "lockbox", lockbox);
      return { chain: origin.name, mode: "release", address: lockbox };
    }
    throw new CrosschainEventInvalidError("input.event", `is ${JSON.stringify(input.event)}, not Locked or Burned`);
  }
  if (source.type === "chain-state" && input.kind === "refund") {
    const lock = input.lock as Record<string, unknown> | undefined;
    if (typeof lock !== "object" || lock === null) throw new CrosschainEventInvalidError("input.lock", "is missing");
    const sourceChainId = integerOf(lock.sourceChainId);
    if (sourceChainId === undefined)
      throw new CrosschainEventInvalidError("input.lock.sourceChainId", "is not an integer");
    const origin = byId(sourceChainId, "source chain of the lock");
    const lockbox = addressField(lock.lockbox, "input.lock.lockbox");
    configured(origin, "lockbox", lockbox);
    return { chain: origin.name, mode: "refund", address: lockbox };
  }
  throw new CrosschainEventInvalidError(
    "source.type",
    `is ${source.type}: a crosschain target takes Locked or Burned logs and refund observations only`,
  );
}
