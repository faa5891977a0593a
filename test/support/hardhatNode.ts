/**
 * Test support: real JSON-RPC chains. Starts `hardhat node` processes (Hardhat's EDR simulator served over
 * HTTP on 127.0.0.1) with a chosen chain id, and a JSON-RPC proxy that fails and drops requests on purpose.
 */
import { spawn, type ChildProcess } from "node:child_process";
import http from "node:http";
import net from "node:net";
import path from "node:path";

import { JsonRpcProvider, Transaction, Wallet, parseEther } from "ethers";

const ROOT = path.resolve(import.meta.dirname, "..", "..");

/** A running `hardhat node`. */
export interface HardhatNode {
  url: string;
  chainId: number;
  provider: JsonRpcProvider;
  /** A funded account of the node (Hardhat's first default account). */
  funder: Wallet;
  /** Sends a JSON-RPC request (e.g. `evm_mine`). */
  rpc<T = unknown>(method: string, params?: unknown[]): Promise<T>;
  /** Gives `address` `ether` ETH. */
  fund(address: string, ether?: string): Promise<void>;
  stop(): Promise<void>;
}

/** Hardhat's first default account (public test key from its default mnemonic). */
const HARDHAT_ACCOUNT_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** Starts `hardhat node --chain-id <chainId>` on a free loopback port and waits until it serves JSON-RPC. */
export async function startHardhatNode(chainId: number): Promise<HardhatNode> {
  const port = await freePort();
  const bin = path.join(ROOT, "node_modules", ".bin");
  const child: ChildProcess = spawn(
    path.join(bin, "hardhat"),
    ["node", "--hostname", "127.0.0.1", "--port", String(port), "--chain-id", String(chainId)],
    { cwd: ROOT, env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}` }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`hardhat node did not start:\n${output}`)), 60_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("Started HTTP")) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`hardhat node exited with ${code}:\n${output}`));
    });
  });
  child.stdout!.removeAllListeners("data");
  child.stdout!.resume();
  child.stderr!.resume();
  const url = `http://127.0.0.1:${port}`;
  const provider = new JsonRpcProvider(url, chainId, { staticNetwork: true, cacheTimeout: -1 });
  const funder = new Wallet(HARDHAT_ACCOUNT_0, provider);
  const rpc = <T>(method: string, params: unknown[] = []) => provider.send(method, params) as Promise<T>;
  return {
    url,
    chainId,
    provider,
    funder,
    rpc,
    async fund(address, ether = "100") {
      await rpc("hardhat_setBalance", [address, "0x" + parseEther(ether).toString(16)]);
    },
    async stop() {
      provider.destroy();
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
    },
  };
}

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
