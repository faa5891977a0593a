/**
 * What the triggers listen to: chain-log subscriptions (a contract's event on a chain, for one Cryptlet),
 * oracle subscriptions (every `CryptletRequested` of a chain's `CryptletOracle`) and schedules, derived from the
 * deployed packages' manifests or given explicitly.
 *
 * Subscription ids are stable across restarts and versions (they name the Redis checkpoint keys):
 * - chain log: `chain-log:<package name>:<chain>:<address, lower case>:<topic0>`
 * - oracle: `oracle:<chain>`
 * - schedule: `schedule:<package name>:<cron>`
 *
 * @module
 */
import { EventFragment, getAddress, isAddress } from "ethers";

import type { Manifest } from "../packages/manifest.ts";
import { TriggerChainUnknownError, TriggerSubscriptionInvalidError } from "./errors.ts";

/** Fields every log subscription has. */
interface LogSubscriptionBase {
  /** Stable id: names the checkpoint in Redis (see the module comment for the derived forms). */
  id: string;
  /** Chain name in the runtime's chain configuration. */
  chain: string;
  /** The emitting contract (any case; checksummed when compiled). */
  address: string;
  /** Blocks mined on top of a log's block before it is acted on (0 = as soon as it is in the head block). */
  confirmations: number;
  /**
   * Where a subscription without a checkpoint starts (block number, inclusive): a backfill. Default: the first
   * block after the confirmed head at the first scan (only new logs).
   */
  fromBlock?: number;
}

/** A contract's event on a chain, for one Cryptlet (a manifest's `chain-log` trigger, or explicit). */
export interface ChainLogSubscription extends LogSubscriptionBase {
  kind: "chain-log";
  /** The Cryptlet each log runs (latest deployed version unless `version` is given). */
  cryptlet: { name: string; version?: string };
  /**
   * Solidity event signature, e.g. `Swap(address indexed sender, address indexed recipient, int256 amount0, …)`
   * or the bare `Swap(address,address,int256,int256,uint160,uint128,int24)`. With no `indexed` markers, the first
   * `topics.length - 1` parameters of each log are taken as indexed (Solidity puts no such rule on contracts:
   * write the markers when a contract indexes other parameters).
   */
  event: string;
  /**
   * `"transaction"`: the matching logs of one transaction become one event whose input is
   * {@link GroupedLogsInput}; absent: one event per log.
   */
  group?: "transaction";
}

/** The input of a grouped chain-log event: the matching logs of one transaction, in log order. */
export interface GroupedLogsInput {
  /** Each log decoded as for a single-log event (`ChainLogInput`). */
  logs: unknown[];
  blockNumber: number;
  txHash: string;
  /** The block's timestamp, Unix seconds. */
  timestamp: number;
}

/** Every `CryptletRequested` log of a chain's `CryptletOracle`, routed by the request's `cryptletId`. */
export interface OracleSubscription extends LogSubscriptionBase {
  kind: "oracle";
}

/** A log subscription. */
export type LogSubscription = ChainLogSubscription | OracleSubscription;

/** A schedule: a Cryptlet run per cron slot (or every `every` ms). */
export interface ScheduleSpec {
  /** Stable id: the BullMQ job scheduler id. */
  id: string;
  cryptlet: { name: string };
  /** Cron pattern (five fields, or six with seconds first), evaluated in UTC. */
  cron?: string;
  /** Alternatively a fixed interval in milliseconds (slots at multiples of it). */
  every?: number;
}

/** A subscription made ready to scan: checksummed address and the topic to filter on. */
export interface CompiledSubscription {
  subscription: LogSubscription;
  /** EIP-55 checksummed address. */
  address: string;
  /** `topics[0]` filter: the event's selector (keccak256 of its canonical signature). */
  topic0: string;
  /** The parsed event (chain-log subscriptions only). */
  fragment?: EventFragment;
}

/**
 * The `CryptletRequested` event of `CryptletOracle` (contracts/interfaces/ICryptletOracle.sol), as its ABI
 * fragment: computed from the signature, not read from the build output, so importing this module needs no
 * compiled contracts. A test checks it against the compiled ABI.
 */
export const ORACLE_REQUEST_EVENT = EventFragment.from(
  "event CryptletRequested(bytes32 indexed requestId, bytes32 indexed cryptletId, address indexed consumer, bytes32 resultId, uint32 callbackGasLimit, bytes params)",
);

/** `topics[0]` of `CryptletRequested`: keccak256 of its canonical signature. */
export const ORACLE_REQUEST_TOPIC = ORACLE_REQUEST_EVENT.topicHash;

/**
 * Parses a Solidity event signature (`event ` prefix optional).
 * @throws TriggerSubscriptionInvalidError (`ERR_TRIGGER_SUBSCRIPTION_INVALID`, field `event`).
 */
export function parseEventSignature(id: string, signature: string): EventFragment {
  try {
    return EventFragment.from(signature.trim().startsWith("event ") ? signature.trim() : `event ${signature.trim()}`);
  } catch (error) {
    throw new TriggerSubscriptionInvalidError(id, "event", "is not a Solidity event signature", error);
  }
}

/**
 * Validates a subscription against the configured chains and compiles it.
 * @param chains - the configured chain names.
 * @throws TriggerChainUnknownError (`ERR_TRIGGER_CHAIN_UNKNOWN`); TriggerSubscriptionInvalidError
 *   (`ERR_TRIGGER_SUBSCRIPTION_INVALID`) for a bad address, event, confirmations or fromBlock.
 */
export function compileSubscription(subscription: LogSubscription, chains: ReadonlySet<string>): CompiledSubscription {
  const { id } = subscription;
  if (!chains.has(subscription.chain)) throw new TriggerChainUnknownError(id, subscription.chain);
  if (!isAddress(subscription.address)) {
    throw new TriggerSubscriptionInvalidError(id, "address", "is not a 20-byte 0x address");
  }
  if (!Number.isSafeInteger(subscription.confirmations) || subscription.confirmations < 0) {
    throw new TriggerSubscriptionInvalidError(id, "confirmations", "must be a non-negative integer");
  }
  if (
    subscription.fromBlock !== undefined &&
    (!Number.isSafeInteger(subscription.fromBlock) || subscription.fromBlock < 0)
  ) {
    throw new TriggerSubscriptionInvalidError(id, "fromBlock", "must be a non-negative block number");
  }
  const address = getAddress(subscription.address.toLowerCase());
  if (subscription.kind === "oracle") return { subscription, address, topic0: ORACLE_REQUEST_TOPIC };
  const fragment = parseEventSignature(id, subscription.event);
  if (fragment.anonymous)
    throw new TriggerSubscriptionInvalidError(id, "event", "is anonymous (it has no topic to filter on)");
  return { subscription, address, topic0: fragment.topicHash, fragment };
}

/** A deployed package as the derivation needs it. */
export interface PackageTriggers {
  manifest: Pick<Manifest, "name" | "triggers">;
}

/** What {@link subscriptionsOf} derives. */
export interface DerivedTriggers {
  logs: LogSubscription[];
  schedules: ScheduleSpec[];
}

/**
 * Derives the subscriptions and schedules of the deployed packages (their latest versions):
 * - one `chain-log` subscription per chain-log trigger;
 * - one `oracle` subscription per chain that some package declares an `oracle` trigger for and whose
 *   configuration names an oracle contract, with the **largest** declared confirmations of that chain (so each
 *   request waits at least as long as its Cryptlet asked);
 * - one schedule per schedule trigger.
 * HTTP triggers need no subscription (the API serves them).
 *
 * @param oracles - oracle contract address per chain name (from the chain configuration).
 *
 * @example
 * ```ts
 * import { subscriptionsOf } from "./runtime/triggers/subscriptions.ts";
 * const packages = await Promise.all((await store.list()).map((p) => store.get(p.name)));
 * const { logs, schedules } = subscriptionsOf(packages, new Map([["consortium", "0x…"]]));
 * ```
 */
export function subscriptionsOf(
  packages: readonly PackageTriggers[],
  oracles: ReadonlyMap<string, string>,
): DerivedTriggers {
  const logs: LogSubscription[] = [];
  const schedules: ScheduleSpec[] = [];
  const oracleDepth = new Map<string, number>();
  for (const { manifest } of packages) {
    for (const trigger of manifest.triggers) {
      if (trigger.type === "chain-log") {
        const topic0 = parseEventSignature(manifest.name, trigger.event).topicHash;
        logs.push({
          kind: "chain-log",
          id: `chain-log:${manifest.name}:${trigger.chain}:${trigger.address.toLowerCase()}:${topic0}`,
          chain: trigger.chain,
          address: trigger.address,
          event: trigger.event,
          confirmations: trigger.confirmations,
          cryptlet: { name: manifest.name },
          ...(trigger.group ? { group: trigger.group } : {}),
        });
      } else if (trigger.type === "oracle") {
        oracleDepth.set(trigger.chain, Math.max(oracleDepth.get(trigger.chain) ?? 0, trigger.confirmations));
      } else if (trigger.type === "schedule") {
        schedules.push({
          id: `schedule:${manifest.name}:${trigger.cron}`,
          cryptlet: { name: manifest.name },
          cron: trigger.cron,
        });
      }
    }
  }
  for (const [chain, confirmations] of oracleDepth) {
    const address = oracles.get(chain);
    if (address !== undefined) logs.push({ kind: "oracle", id: `oracle:${chain}`, chain, address, confirmations });
  }
  return { logs, schedules };
}
