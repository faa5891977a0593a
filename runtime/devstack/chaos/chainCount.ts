/**
 * Counting from the chains themselves, not from the runtime's records: for one chain, every block since the
 * deployment is read over JSON-RPC (straight from the node, not through the fault proxy) and
 *
 * - every transaction sent by the relayer is counted, and those calling `ResultLedger.record` are attributed to
 *   the `resultId` they carry (decoded from the calldata): the *write transactions mined* per result, whether they
 *   succeeded or reverted;
 * - every `ResultRecorded` event of the ledger is counted per `resultId` (its first indexed topic): the
 *   *successful writes* per result;
 * - the relayer's nonce is read (`eth_getTransactionCount`, `latest` and `pending`), to compare with the number of
 *   its transactions found in blocks and to see a transaction stuck in the pool.
 *
 * A scanner is incremental: each {@link ChainScanner.scan} reads only the blocks mined since the previous one.
 *
 * @module
 */
import { getAddress, id } from "ethers";

import { interfaceOf } from "../../chains/contracts.ts";

/** What one chain holds about the run. */
export interface ChainCount {
  chain: string;
  /** Last block read. */
  toBlock: number;
  /** `ResultRecorded` events per `resultId` (successful writes). */
  recorded: Map<string, number>;
  /** Relayer transactions mined per `resultId` that call `record` (succeeded or reverted). */
  writeTxs: Map<string, number>;
  /** Every relayer transaction mined since the first block. */
  relayerTxs: number;
  /** Relayer transactions that are not a `record` call. */
  otherRelayerTxs: number;
  /** The relayer's nonce at `latest` and at `pending` when last scanned. */
  nonceLatest: number;
  noncePending: number;
}

const RECORDED_TOPIC = id("ResultRecorded(bytes32,bytes32,bytes32,bytes32,bytes32,uint64,bytes)");

interface RpcBlock {
  number: string;
  transactions: { from: string; to: string | null; input: string }[];
}
interface RpcLog {
  topics: string[];
}

/** What a {@link ChainScanner} reads. */
export interface ScannerOptions {
  chain: string;
  rpcUrl: string;
  ledger: string;
  relayer: string;
  fromBlock: number;
  timeoutMs?: number;
}

/** Reads one chain's blocks and ledger events, incrementally. */
export class ChainScanner {
  readonly count: ChainCount;
  #next: number;
  readonly #relayer: string;
  readonly #ledger: string;
  readonly #ledgerInterface = interfaceOf("ResultLedger");

  /**
   * @param options.rpcUrl - the node itself (not a proxy).
   * @param options.ledger - the `ResultLedger` address.
   * @param options.relayer - the runtime's relayer (chain writer) address.
   * @param options.fromBlock - the first block to read (after the deployment).
   * @param options.timeoutMs - deadline of each JSON-RPC request, in ms (default 30000).
   */
  readonly options: ScannerOptions;

  constructor(options: ScannerOptions) {
    this.options = options;
    this.#next = options.fromBlock;
    this.#relayer = getAddress(options.relayer);
    this.#ledger = getAddress(options.ledger);
    this.count = {
      chain: options.chain,
      toBlock: options.fromBlock - 1,
      recorded: new Map(),
      writeTxs: new Map(),
      relayerTxs: 0,
      otherRelayerTxs: 0,
      nonceLatest: 0,
      noncePending: 0,
    };
  }

  async #rpc<T>(calls: { method: string; params: unknown[] }[]): Promise<T[]> {
    const body = calls.map((c, i) => ({ jsonrpc: "2.0", id: i, ...c }));
    const res = await fetch(this.options.rpcUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(this.options.timeoutMs ?? 30_000),
    });
    const answers = (await res.json()) as { id: number; result?: T; error?: { message: string } }[];
    return answers
      .sort((a, b) => a.id - b.id)
      .map((a) => {
        if (a.error) throw new Error(`JSON-RPC error: ${a.error.message}`);
        return a.result as T;
      });
  }

  /** Reads the blocks mined since the last scan, and the relayer's nonces. Returns {@link count}. */
  async scan(): Promise<ChainCount> {
    const [latestHex] = await this.#rpc<string>([{ method: "eth_blockNumber", params: [] }]);
    const latest = Number(latestHex);
    const hex = (n: number) => "0x" + n.toString(16);
    for (let from = this.#next; from <= latest; from += 100) {
      const to = Math.min(latest, from + 99);
      const blocks = await this.#rpc<RpcBlock>(
        Array.from({ length: to - from + 1 }, (_, i) => ({
          method: "eth_getBlockByNumber",
          params: [hex(from + i), true],
        })),
      );
      for (const block of blocks) {
        for (const tx of block.transactions) {
          if (getAddress(tx.from) !== this.#relayer) continue;
          this.count.relayerTxs += 1;
          const parsed =
            tx.to && getAddress(tx.to) === this.#ledger
              ? this.#ledgerInterface.parseTransaction({ data: tx.input })
              : null;
          if (parsed?.name !== "record") {
            this.count.otherRelayerTxs += 1;
            continue;
          }
          const resultId = String((parsed.args[0] as { resultId: string }).resultId).toLowerCase();
          this.count.writeTxs.set(resultId, (this.count.writeTxs.get(resultId) ?? 0) + 1);
        }
      }
      const [logs] = await this.#rpc<RpcLog[]>([
        {
          method: "eth_getLogs",
          params: [{ address: this.#ledger, topics: [RECORDED_TOPIC], fromBlock: hex(from), toBlock: hex(to) }],
        },
      ]);
      for (const log of logs!) {
        const resultId = log.topics[1]!.toLowerCase();
        this.count.recorded.set(resultId, (this.count.recorded.get(resultId) ?? 0) + 1);
      }
      this.#next = to + 1;
      this.count.toBlock = to;
    }
    const [nonceLatest, noncePending] = await this.#rpc<string>([
      { method: "eth_getTransactionCount", params: [this.#relayer, "latest"] },
      { method: "eth_getTransactionCount", params: [this.#relayer, "pending"] },
    ]);
    this.count.nonceLatest = Number(nonceLatest);
    this.count.noncePending = Number(noncePending);
    return this.count;
  }
}

/** The verdict on one chain for a set of accepted results. */
export interface ChainVerdict {
  chain: string;
  accepted: number;
  /** Accepted results with a successful write on this chain. */
  recorded: number;
  /** Accepted results without one. */
  lost: string[];
  /** Results with more than one successful write (the ledger refuses this; counted anyway). */
  writtenTwice: string[];
  /** Results with more than one write transaction mined (a duplicate send that reached the chain). */
  sentTwice: string[];
  /** Write transactions mined, and how many of them reverted (mined sends minus successful writes). */
  writeTxs: number;
  revertedWriteTxs: number;
  /** Results recorded on-chain that the run never saw accepted. */
  unexpected: number;
  relayerTxs: number;
  otherRelayerTxs: number;
  nonceLatest: number;
  noncePending: number;
  /** The relayer's `latest` nonce differs from the number of its transactions found in blocks. */
  nonceMismatch: boolean;
  /** A relayer transaction is still pending in the pool. */
  stuck: boolean;
}

/** Compares a chain's counts with the accepted results (0x hex `resultId`s). */
export function judgeChain(count: ChainCount, accepted: Iterable<string>): ChainVerdict {
  const ids = new Set([...accepted].map((r) => r.toLowerCase()));
  const lost: string[] = [];
  let recorded = 0;
  for (const resultId of ids) {
    if ((count.recorded.get(resultId) ?? 0) > 0) recorded += 1;
    else lost.push(resultId);
  }
  const writtenTwice = [...count.recorded].filter(([, n]) => n > 1).map(([r]) => r);
  const sentTwice = [...count.writeTxs].filter(([, n]) => n > 1).map(([r]) => r);
  const writeTxs = [...count.writeTxs.values()].reduce((a, b) => a + b, 0);
  const successes = [...count.recorded.values()].reduce((a, b) => a + b, 0);
  return {
    chain: count.chain,
    accepted: ids.size,
    recorded,
    lost,
    writtenTwice,
    sentTwice,
    writeTxs,
    revertedWriteTxs: writeTxs - successes,
    unexpected: [...count.recorded.keys()].filter((r) => !ids.has(r)).length,
    relayerTxs: count.relayerTxs,
    otherRelayerTxs: count.otherRelayerTxs,
    nonceLatest: count.nonceLatest,
    noncePending: count.noncePending,
    nonceMismatch: count.nonceLatest !== count.relayerTxs,
    stuck: count.noncePending !== count.nonceLatest,
  };
}
