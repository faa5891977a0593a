/**
 * A local EVM chain for development: a `hardhat node` process (Hardhat's EDR simulator served as JSON-RPC on
 * 127.0.0.1), with a chosen chain id and port. The local stack (`npm start`) runs two of them; tests run more.
 *
 * @module
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomInt } from "node:crypto";
import { readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";

import { JsonRpcProvider, Wallet, parseEther } from "ethers";

import { CryptletError } from "../errors.ts";
import { ERR_LOCAL_CHAIN_START } from "./errors.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..");

/**
 * Hardhat's first default account. Its private key is PUBLIC (Hardhat's well-known test mnemonic): it exists only
 * on local chains and funds the local stack's deployer and relayer.
 */
const HARDHAT_ACCOUNT_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/** How long a node may take to exit after SIGTERM before it is SIGKILLed, ms. */
const STOP_TIMEOUT_MS = 10_000;

/** A running local chain. */
export interface LocalChain {
  /** JSON-RPC URL, e.g. `http://127.0.0.1:8545`. */
  url: string;
  chainId: number;
  /** The node's process id (e.g. to freeze it with SIGSTOP in the chaos run). */
  pid: number;
  provider: JsonRpcProvider;
  /** A funded account of the node (Hardhat's first default account), connected to `provider`. */
  funder: Wallet;
  /** Sends a raw JSON-RPC request (e.g. `evm_mine`). */
  rpc<T = unknown>(method: string, params?: unknown[]): Promise<T>;
  /** Sets `address`'s balance to `ether` ETH (`hardhat_setBalance`). */
  fund(address: string, ether?: string): Promise<void>;
  /** Stops the node (SIGTERM, SIGKILL after 10 s) and waits for it to exit. */
  stop(): Promise<void>;
}

/** The lowest port handed out by {@link freePort}. */
const FREE_PORT_FLOOR = 20_000;

/** Ports {@link freePort} handed out in this process: never handed out twice. */
const handedOut = new Set<number>();

/** The first port of the kernel's ephemeral range (Linux `ip_local_port_range`; 32768 where it cannot be read). */
function ephemeralFloor(): number {
  try {
    const first = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isSafeInteger(first) && first > 0 ? first : 32_768;
  } catch {
    return 32_768;
  }
}

/** Listens on 127.0.0.1:`port` (0: any) and closes again; the port, or undefined when it is taken. */
function tryListen(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(undefined));
    server.listen(port, "127.0.0.1", () => {
      const bound = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(bound));
    });
  });
}

/**
 * A free TCP port on 127.0.0.1, for a server started a moment later. It is picked at random below the kernel's
 * ephemeral range (from 20000): a port from that range (what `listen(0)` gives) can be taken meanwhile as the
 * local port of any outgoing connection, and a test's servers then failed with EADDRINUSE. Falls back to
 * `listen(0)` when no port below the range is free after 200 tries.
 */
export async function freePort(): Promise<number> {
  const ceiling = ephemeralFloor();
  for (let attempt = 0; ceiling - FREE_PORT_FLOOR > 1000 && attempt < 200; attempt++) {
    const port = FREE_PORT_FLOOR + randomInt(ceiling - FREE_PORT_FLOOR);
    if (handedOut.has(port) || (await tryListen(port)) === undefined) continue;
    handedOut.add(port);
    return port;
  }
  const port = await tryListen(0);
  if (port === undefined) throw new Error("no free TCP port on 127.0.0.1");
  handedOut.add(port);
  return port;
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export async function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/**
 * Starts `hardhat node --chain-id <chainId>` on 127.0.0.1 and waits until it serves JSON-RPC.
 * @param options.port - TCP port; default: a free one (another, up to 3 times, when the node finds it taken:
 *   `EADDRINUSE`).
 * @param options.startTimeoutMs - how long to wait for the node, in ms (default 60000).
 * @throws CryptletError `ERR_LOCAL_CHAIN_START` with the node's output when it does not start.
 */
export async function startLocalChain(
  chainId: number,
  options: { port?: number; startTimeoutMs?: number } = {},
): Promise<LocalChain> {
  // A port chosen here may be taken by another process before the node binds it: then another, at most 3 times.
  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await freePort());
    try {
      return await launchLocalChain(chainId, port, options.startTimeoutMs ?? 60_000);
    } catch (error) {
      const output = String((error as CryptletError).details?.output ?? "");
      if (options.port !== undefined || attempt >= 3 || !output.includes("EADDRINUSE")) throw error;
    }
  }
}

/** Starts the node on `port` (see {@link startLocalChain}). */
async function launchLocalChain(chainId: number, port: number, startTimeoutMs: number): Promise<LocalChain> {
  const bin = path.join(ROOT, "node_modules", ".bin");
  const child: ChildProcess = spawn(
    path.join(bin, "hardhat"),
    ["node", "--hostname", "127.0.0.1", "--port", String(port), "--chain-id", String(chainId)],
    {
      cwd: ROOT,
      env: { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ""}`, NODE_OPTIONS: "" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let output = "";
  await new Promise<void>((resolve, reject) => {
    const fail = (why: string) =>
      reject(
        new CryptletError(ERR_LOCAL_CHAIN_START, `hardhat node (chain ${chainId}, port ${port}) ${why}`, {
          details: { chainId, port, output: output.slice(-2000) },
        }),
      );
    const timer = setTimeout(() => fail("did not start in time"), startTimeoutMs);
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("Started HTTP")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.once("exit", (code) => {
      clearTimeout(timer);
      fail(`exited with code ${code}`);
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
    pid: child.pid!,
    provider,
    funder,
    rpc,
    async fund(address, ether = "100") {
      await rpc("hardhat_setBalance", [address, "0x" + parseEther(ether).toString(16)]);
    },
    async stop() {
      provider.destroy();
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      // A node that ignores SIGTERM (or is stopped, SIGSTOP) is killed after a deadline.
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}
