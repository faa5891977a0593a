/**
 * Checking a refund observation against the chains (docs/crosschain.md "The refund event", docs/consortium.md "What
 * a follower checks"): the deadline watcher's claim that a lock was not minted on its destination chain at a block
 * after its deadline (runtime/crosschain/deadlineWatcher.ts) is re-read from the chains themselves, so that a
 * consortium member co-signs a REFUND only for a lock that exists and was really not minted by then.
 *
 * {@link checkRefundObservation} never throws: it answers `ok`, or why not, with a verdict that tells "the
 * observation is false" (`not-on-chain`: the chains say otherwise, or the input is not what the watcher makes) from
 * "it cannot be checked now" (`unverifiable`: no client for a chain, an RPC failure or timeout, a node behind the
 * observed block). Reasons name the input's fields and the chain's block, never the lock's values.
 *
 * @module
 */
import { isAddress } from "ethers";

import { redactSecrets } from "../redact.ts";
import { CROSSCHAIN_VIEWS, LOCK_STATUS } from "./events.ts";
import type { RefundInput } from "./routes.ts";

/** A JSON-RPC client of one chain: an ethers `JsonRpcProvider`, the runtime's `ChainRpc`, or anything with `send`. */
export interface JsonRpcClient {
  send(method: string, params: unknown[]): Promise<unknown>;
}

/** The chains a check may read: EIP-155 chain id → a JSON-RPC client of that chain. */
export type ChainClients = ReadonlyMap<number, JsonRpcClient>;

/** The outcome of a check against the chains. */
export type ChainCheck =
  | { ok: true }
  | {
      ok: false;
      /** `not-on-chain`: the chains contradict the claim; `unverifiable`: it could not be checked now. */
      verdict: "not-on-chain" | "unverifiable";
      /** Which rule failed, naming the input's fields and the chain's blocks (no values of the input). */
      reason: string;
    };

/** Options of a check against the chains. */
export interface ChainCheckOptions {
  /** Deadline of each JSON-RPC call, ms. Default {@link DEFAULT_CHAIN_CHECK_TIMEOUT_MS}. */
  timeoutMs?: number;
}

/** Default deadline of one JSON-RPC call of a chain check: 10000 ms. */
export const DEFAULT_CHAIN_CHECK_TIMEOUT_MS = 10_000;

/** A failed rule, thrown inside a check and returned as its {@link ChainCheck} (also by runtime/consortium/eventCheck.ts). */
export class ChainCheckRefusal extends Error {
  readonly verdict: "not-on-chain" | "unverifiable";
  constructor(verdict: "not-on-chain" | "unverifiable", reason: string) {
    super(reason);
    this.verdict = verdict;
  }
}

const notOnChain = (reason: string): ChainCheckRefusal => new ChainCheckRefusal("not-on-chain", reason);
const unverifiable = (reason: string): ChainCheckRefusal => new ChainCheckRefusal("unverifiable", reason);

const BYTES32 = /^0x[0-9a-fA-F]{64}$/;
const DECIMAL = /^(0|[1-9][0-9]*)$/;
const hex = (n: number): string => `0x${n.toString(16)}`;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/** An error as a secret-free line (URLs and credentials redacted). */
export function describeChainError(error: unknown): string {
  const e = error as { code?: unknown; shortMessage?: unknown; message?: unknown };
  const text = typeof e.shortMessage === "string" ? e.shortMessage : String(e.message ?? error);
  return redactSecrets(typeof e.code === "string" ? `${e.code}: ${text}` : text);
}

/** Exactly these members, or the shape is not the watcher's. */
function members(value: unknown, path: string, keys: readonly string[]): Record<string, unknown> {
  if (!isObject(value)) throw notOnChain(`${path} is not an object: not a refund observation of the deadline watcher`);
  for (const k of Object.keys(value)) if (!keys.includes(k)) throw notOnChain(`${path}.${k} is not a member of it`);
  for (const k of keys) if (!(k in value)) throw notOnChain(`${path}.${k} is missing`);
  return value;
}

/** The observation as the deadline watcher makes it: every member, of the watcher's type. */
function parse(input: unknown, source: unknown): { input: RefundInput; source: Record<string, unknown> } {
  const i = members(input, "input", ["kind", "lock", "observation"]);
  if (i.kind !== "refund") throw notOnChain('input.kind is not "refund"');
  const lock = members(i.lock, "input.lock", [
    "lockId",
    "sourceChainId",
    "lockbox",
    "destinationChainId",
    "token",
    "sender",
    "amount",
    "deadline",
  ]);
  if (typeof lock.lockId !== "string" || !BYTES32.test(lock.lockId))
    throw notOnChain("input.lock.lockId is not bytes32");
  for (const k of ["sourceChainId", "destinationChainId", "amount"] as const) {
    if (typeof lock[k] !== "string" || !DECIMAL.test(lock[k]))
      throw notOnChain(`input.lock.${k} is not a decimal string`);
  }
  for (const k of ["lockbox", "token", "sender"] as const) {
    if (typeof lock[k] !== "string" || !isAddress(lock[k])) throw notOnChain(`input.lock.${k} is not an address`);
  }
  if (!isCount(lock.deadline)) throw notOnChain("input.lock.deadline is not Unix seconds");
  const obs = members(i.observation, "input.observation", [
    "chainId",
    "blockNumber",
    "blockHash",
    "timestamp",
    "isMinted",
  ]);
  const src = members(source, "event.source", ["type", "chainId", "blockNumber", "blockHash", "timestamp"]);
  if (src.type !== "chain-state") throw notOnChain('event.source.type is not "chain-state"');
  for (const [path, o] of [
    ["input.observation", obs],
    ["event.source", src],
  ] as const) {
    for (const k of ["chainId", "blockNumber", "timestamp"] as const) {
      if (!isCount(o[k])) throw notOnChain(`${path}.${k} is not a non-negative integer`);
    }
    if (typeof o.blockHash !== "string" || !BYTES32.test(o.blockHash))
      throw notOnChain(`${path}.blockHash is not bytes32`);
  }
  if (obs.isMinted !== false) throw notOnChain("input.observation.isMinted is not false: nothing to refund");
  for (const k of ["chainId", "blockNumber", "blockHash", "timestamp"] as const) {
    const a = obs[k];
    const b = src[k];
    if (k === "blockHash" ? (a as string).toLowerCase() !== (b as string).toLowerCase() : a !== b) {
      throw notOnChain(`input.observation.${k} is not event.source.${k}`);
    }
  }
  if (BigInt(lock.destinationChainId as string) !== BigInt(src.chainId as number)) {
    throw notOnChain("event.source.chainId is not input.lock.destinationChainId: the read was not of the destination");
  }
  return { input: input as RefundInput, source: src };
}

/**
 * Reads the chains for a check, each call with the deadline; any failure to get an answer is `unverifiable`, and a
 * client that does not answer its chain's id is not used. Shared with runtime/consortium/eventCheck.ts.
 */
export class ChainReader {
  readonly #chains: ChainClients | undefined;
  readonly #timeoutMs: number;
  readonly #checked = new Set<number>();

  constructor(chains: ChainClients | undefined, timeoutMs: number) {
    this.#chains = chains;
    this.#timeoutMs = timeoutMs;
  }

  async #send(client: JsonRpcClient, chainId: number, method: string, params: unknown[]): Promise<unknown> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.#timeoutMs} ms`)), this.#timeoutMs);
    });
    try {
      return await Promise.race([client.send(method, params), deadline]);
    } catch (error) {
      throw unverifiable(`${method} on chain ${chainId} failed: ${describeChainError(error)}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** One call on chain `chainId`, whose client must answer that chain id (checked once). */
  async call(chainId: number, method: string, params: unknown[]): Promise<unknown> {
    const client = this.#chains?.get(chainId);
    if (client === undefined) {
      throw unverifiable(`this member has no JSON-RPC client of chain ${chainId} to check the event`);
    }
    if (!this.#checked.has(chainId)) {
      const answered = await this.#send(client, chainId, "eth_chainId", []);
      if (typeof answered !== "string" || BigInt(answered) !== BigInt(chainId)) {
        throw unverifiable(`this member's client of chain ${chainId} answers chain id ${String(answered)}`);
      }
      this.#checked.add(chainId);
    }
    return this.#send(client, chainId, method, params);
  }

  /** Throws `unverifiable` when this member's node of `chainId` has not reached block `n` yet (it lags behind). */
  async notBehind(chainId: number, n: number): Promise<void> {
    const answered = await this.call(chainId, "eth_blockNumber", []);
    const head = typeof answered === "string" ? Number(BigInt(answered)) : Number.NaN;
    if (!(head >= n)) {
      throw unverifiable(`this member's node of chain ${chainId} is at block ${head}, below block ${n}: not yet`);
    }
  }

  /** `eth_call` of a view of {@link CROSSCHAIN_VIEWS}, decoded; a contract that answers nothing decodable is `not-on-chain`. */
  async view(chainId: number, to: string, view: string, args: unknown[], blockTag: string, what: string) {
    const raw = await this.call(chainId, "eth_call", [
      { to, data: CROSSCHAIN_VIEWS.encodeFunctionData(view, args) },
      blockTag,
    ]);
    try {
      return CROSSCHAIN_VIEWS.decodeFunctionResult(view, raw as string);
    } catch {
      throw notOnChain(`${what} answers no ${view} on chain ${chainId} (no such contract at that address)`);
    }
  }

  /** The block `n` of chain `chainId`; absent: `unverifiable` when the node is behind it, else `not-on-chain`. */
  async block(chainId: number, n: number): Promise<{ hash: string; timestamp: number }> {
    const block = await this.call(chainId, "eth_getBlockByNumber", [hex(n), false]);
    if (block === null) {
      await this.notBehind(chainId, n);
      throw notOnChain(`chain ${chainId} has no block ${n}`);
    }
    const b = block as { hash?: unknown; timestamp?: unknown };
    if (typeof b.hash !== "string" || typeof b.timestamp !== "string") {
      throw unverifiable(`the node of chain ${chainId} answered a malformed block ${n}`);
    }
    return { hash: b.hash, timestamp: Number(BigInt(b.timestamp)) };
  }
}

/**
 * Checks a refund observation (a `chain-state` event with a {@link RefundInput}) against the chains:
 * - the input and source have exactly the watcher's members and types; the observation is the source's block
 *   (`chainId`, `blockNumber`, `blockHash`, `timestamp`) on the lock's destination chain, with `isMinted: false`;
 * - destination chain (`source.chainId`): block `source.blockNumber` has hash `source.blockHash` and timestamp
 *   `source.timestamp`, which is after `lock.deadline`; `isMinted(lockId)` of `lock.token` at that block (`eth_call`
 *   with the block number) is false, and the block is still the one at that height after the read;
 * - source chain (`lock.sourceChainId`): `lockOf(lockId)` of `lock.lockbox` at the latest block exists (status not
 *   `None`) with the lock's `sender`, `amount`, `deadline` and `destinationChainId`, and the lockbox's
 *   `peerOf(destinationChainId)` is `lock.token`.
 *
 * A refunded lock passes (the lockbox refuses a second refund itself); the recipient is not in the observation.
 *
 * @param input - the event's input (any shape; checked here).
 * @param source - the event's `source` (any shape; checked here).
 * @param chains - EIP-155 chain id → JSON-RPC client; a chain without one makes the check `unverifiable`.
 * @param options.timeoutMs - deadline of each call (default 10000 ms).
 * @returns `{ok: true}`, or `{ok: false, verdict, reason}`. Never throws.
 *
 * @example
 * ```ts
 * import { checkRefundObservation } from "./runtime/crosschain/refundCheck.ts";
 * const check = await checkRefundObservation(evidence.input, evidence.event.source, new Map([[31337, provider]]));
 * if (!check.ok) console.log(check.verdict, check.reason);
 * ```
 */
export async function checkRefundObservation(
  input: unknown,
  source: unknown,
  chains: ChainClients | undefined,
  options: ChainCheckOptions = {},
): Promise<ChainCheck> {
  try {
    const parsed = parse(input, source);
    const { lock } = parsed.input;
    const src = parsed.source as { chainId: number; blockNumber: number; blockHash: string; timestamp: number };
    const reader = new ChainReader(chains, options.timeoutMs ?? DEFAULT_CHAIN_CHECK_TIMEOUT_MS);
    const destination = src.chainId;
    const at = `block ${src.blockNumber} of chain ${destination}`;

    // The destination block: canonical, with the claimed time, after the deadline.
    const block = await reader.block(destination, src.blockNumber);
    if (block.hash.toLowerCase() !== src.blockHash.toLowerCase()) {
      throw notOnChain(`${at} is ${block.hash}: event.source.blockHash is not canonical (another block, or reorged)`);
    }
    if (block.timestamp !== src.timestamp) {
      throw notOnChain(`event.source.timestamp is not the timestamp of ${at}`);
    }
    if (block.timestamp <= lock.deadline) {
      throw notOnChain(`${at} is not after input.lock.deadline: a mint was still possible`);
    }
    const [minted] = await reader.view(
      destination,
      lock.token,
      "isMinted",
      [lock.lockId],
      hex(src.blockNumber),
      "input.lock.token",
    );
    if (minted !== false) throw notOnChain(`input.lock.lockId was minted by input.lock.token as of ${at}`);
    const again = await reader.block(destination, src.blockNumber);
    if (again.hash.toLowerCase() !== src.blockHash.toLowerCase()) {
      throw unverifiable(`${at} changed during the read of isMinted (a reorganisation): check again`);
    }

    // The lock on the source chain: it exists, with the observation's fields, toward a destination whose peer is the token.
    const origin = Number(lock.sourceChainId);
    if (!Number.isSafeInteger(origin)) throw notOnChain("input.lock.sourceChainId is not a chain id");
    const [stored] = (await reader.view(
      origin,
      lock.lockbox,
      "lockOf",
      [lock.lockId],
      "latest",
      "input.lock.lockbox",
    )) as unknown as [{ sender: string; deadline: bigint; status: bigint; amount: bigint; destinationChainId: bigint }];
    if (Number(stored.status) === LOCK_STATUS.None) {
      throw notOnChain(`input.lock.lockbox holds no lock input.lock.lockId on chain ${origin}`);
    }
    const differs: string[] = [];
    if (stored.sender.toLowerCase() !== lock.sender.toLowerCase()) differs.push("input.lock.sender");
    if (stored.amount !== BigInt(lock.amount)) differs.push("input.lock.amount");
    if (stored.deadline !== BigInt(lock.deadline)) differs.push("input.lock.deadline");
    if (stored.destinationChainId !== BigInt(lock.destinationChainId)) differs.push("input.lock.destinationChainId");
    if (differs.length > 0) {
      throw notOnChain(
        `${differs.join(", ")} differ${differs.length === 1 ? "s" : ""} from lockOf(lockId) on chain ${origin}`,
      );
    }
    const [peer] = (await reader.view(
      origin,
      lock.lockbox,
      "peerOf",
      [lock.destinationChainId],
      "latest",
      "input.lock.lockbox",
    )) as unknown as [string];
    if (peer.toLowerCase() !== lock.token.toLowerCase()) {
      throw notOnChain(`input.lock.token is not the lockbox's peerOf(destinationChainId) on chain ${origin}`);
    }
    return { ok: true };
  } catch (error) {
    if (error instanceof ChainCheckRefusal) return { ok: false, verdict: error.verdict, reason: error.message };
    return { ok: false, verdict: "unverifiable", reason: `the refund check failed: ${describeChainError(error)}` };
  }
}
