/**
 * Test support: real JSON-RPC chains. Starts `hardhat node` processes (Hardhat's EDR simulator served over
 * HTTP on 127.0.0.1) with a chosen chain id, and a JSON-RPC proxy that fails and drops requests on purpose.
 */
import http from "node:http";
import type net from "node:net";

import { Transaction, type Contract, type ContractTransactionResponse } from "ethers";

import { freePort, startLocalChain, type LocalChain } from "../../runtime/devstack/localChain.ts";

/** A running `hardhat node` (the dev stack's local chain). */
export type HardhatNode = LocalChain;

/** Starts `hardhat node --chain-id <chainId>` on a free loopback port (see runtime/devstack/localChain.ts). */
export const startHardhatNode = (chainId: number): Promise<HardhatNode> => startLocalChain(chainId);

export { freePort };

/** Calls the state-changing `method` of `contract` and waits for its receipt (one confirmation). */
export async function sendAndWait(contract: Contract, method: string, ...args: unknown[]) {
  const tx = (await contract.getFunction(method)(...args)) as ContractTransactionResponse;
  return (await tx.wait())!;
}

/** The latest block of `node`. */
export const latestBlockOf = async (node: HardhatNode) => (await node.provider.getBlock("latest"))!;

/** Mines `blocks` empty blocks on `node` (`evm_mine`). */
export const mineBlocks = async (node: HardhatNode, blocks = 1) => {
  for (let i = 0; i < blocks; i += 1) await node.rpc("evm_mine");
};

/** Mines one block on `node` at exactly `t` (Unix seconds); returns its number. */
export const mineBlockAt = async (node: HardhatNode, t: number) => {
  await node.rpc("evm_setNextBlockTimestamp", [t]);
  await node.rpc("evm_mine");
  return (await latestBlockOf(node)).number;
};

/** A JSON-RPC proxy that misbehaves on purpose. */
export interface FlakyProxy {
  url: string;
  /** Counters of what the proxy did. */
  stats: { forwarded: number; failed: number; dropped: number };
  close(): Promise<void>;
}

/**
 * Starts a proxy in front of `target` that answers `failRate` of requests with HTTP 503 (without forwarding) and
 * silently drops `dropRate` of `eth_sendRawTransaction` calls: it answers with the transaction's hash as a node
 * would, but never forwards it. Randomness comes from a seeded generator, so runs are repeatable.
 */
export async function startFlakyProxy(
  target: string,
  { failRate = 0.1, dropRate = 0.2, seed = 42 } = {},
): Promise<FlakyProxy> {
  let state = seed >>> 0;
  const random = () => {
    // mulberry32
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const stats = { forwarded: 0, failed: 0, dropped: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString();
      if (random() < failRate) {
        stats.failed += 1;
        res.writeHead(503, { "content-type": "text/plain" }).end("service unavailable");
        return;
      }
      const message = JSON.parse(body) as { id: unknown; method: string; params: unknown[] };
      if (message.method === "eth_sendRawTransaction" && random() < dropRate) {
        stats.dropped += 1;
        const hash = Transaction.from(message.params[0] as string).hash;
        res
          .writeHead(200, { "content-type": "application/json" })
          .end(JSON.stringify({ jsonrpc: "2.0", id: message.id, result: hash }));
        return;
      }
      stats.forwarded += 1;
      fetch(target, { method: "POST", headers: { "content-type": "application/json" }, body })
        .then(async (answer) =>
          res.writeHead(answer.status, { "content-type": "application/json" }).end(await answer.text()),
        )
        .catch(() => res.writeHead(502).end());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    stats,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
