/**
 * A chain's plain ingest, the reference the writer benchmarks compare with.
 *
 * @module
 */
import { Transaction, Wallet } from "ethers";

import type { HardhatNode } from "../../test/support/hardhatNode.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The node's plain ingest: `count` zero-value transfers from one funded key, signed beforehand (consecutive
 * nonces), broadcast with `inFlight` JSON-RPC calls at a time, until the last one has a receipt.
 * @returns transactions per second.
 * @throws Error when not every transfer was mined.
 */
export async function plainIngest(node: HardhatNode, count = 600, inFlight = 32): Promise<number> {
  const sender = Wallet.createRandom();
  await node.fund(sender.address);
  const to = Wallet.createRandom().address;
  const fee = { maxFeePerGas: 100_000_000_000n, maxPriorityFeePerGas: 1_000_000_000n };
  const raws = await Promise.all(
    Array.from({ length: count }, (_, nonce) =>
      sender.signTransaction({ chainId: node.chainId, type: 2, to, value: 1n, gasLimit: 21_000n, nonce, ...fee }),
    ),
  );
  const started = performance.now();
  let next = 0;
  const hashes: string[] = [];
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < raws.length) {
        const raw = raws[next++]!;
        hashes.push(await node.rpc<string>("eth_sendRawTransaction", [raw]));
      }
    }),
  );
  // Nonces are consecutive: the last one mined means every one was.
  const last = Transaction.from(raws.at(-1)!).hash!;
  while (!(await node.provider.getTransactionReceipt(last))) await sleep(5);
  const seconds = (performance.now() - started) / 1000;
  if (hashes.length !== count || (await node.provider.getTransactionCount(sender.address)) !== count) {
    throw new Error("plain ingest: not every transfer was mined");
  }
  return count / seconds;
}
