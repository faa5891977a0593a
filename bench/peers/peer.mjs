/**
 * The peer side of `npm run bench:peers`, run by scripts/bench/peers.ts under the system Node 20 (the toolkit's
 * ganache is safest there): the Chainlink Functions toolkit's local testnet (@chainlink/functions-toolkit 0.3.2,
 * patched by ./patch-toolkit.mjs), a `FunctionsClient` consumer (./PeerFunctionsConsumer.sol, compiled here by the
 * main install's solc for the `shanghai` EVM, which ganache 7 runs) asking a trivial inline source, SEQUENTIAL
 * requests one after another, then CONCURRENT requests sent at once. Latency: from the start of the request's
 * transaction to the consumer's `Answered` event, seen through a WebSocket subscription. Prints one JSON line on
 * stdout; logs go to stderr.
 *
 * Environment: PEER_SEQUENTIAL (default 100), PEER_CONCURRENT (200), PEER_POLL_MS (100: the testnet's request
 * listener polls the chain every `pollingInterval` ms, 4000 by ethers 5's default), PEER_TIMEOUT_MS (300000: the
 * longest wait for the concurrent phase), MAIN_NODE_MODULES (the main install's node_modules, for solc and
 * @chainlink/contracts). `deno` must be on PATH.
 */
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout } from "node:timers";

const require = createRequire(import.meta.url);
const { startLocalFunctionsTestnet, SubscriptionManager } = require("@chainlink/functions-toolkit");
const { ethers } = require("ethers");

const SEQUENTIAL = Number(process.env.PEER_SEQUENTIAL ?? 100);
const CONCURRENT = Number(process.env.PEER_CONCURRENT ?? 200);
const POLL_MS = Number(process.env.PEER_POLL_MS ?? 100);
const TIMEOUT_MS = Number(process.env.PEER_TIMEOUT_MS ?? 300_000);
const MAIN = process.env.MAIN_NODE_MODULES ?? path.join(import.meta.dirname, "..", "..", "node_modules");
const SOURCE = "return Functions.encodeUint256(1);";
const CALLBACK_GAS = 100_000;
const log = (...args) => console.error("[peer]", ...args);

/** Compiles the consumer with the main install's solc (no download), EVM `shanghai`. */
function compileConsumer() {
  const solc = require(path.join(MAIN, "solc"));
  const input = {
    language: "Solidity",
    sources: {
      "PeerFunctionsConsumer.sol": {
        content: readFileSync(path.join(import.meta.dirname, "PeerFunctionsConsumer.sol"), "utf8"),
      },
    },
    settings: {
      evmVersion: "shanghai",
      optimizer: { enabled: true, runs: 200 },
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
    },
  };
  const findImports = (file) => {
    try {
      return { contents: readFileSync(path.join(MAIN, file), "utf8") };
    } catch {
      return { error: `not found: ${file}` };
    }
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors ?? []).filter((e) => e.severity === "error");
  if (errors.length > 0) throw new Error(errors.map((e) => e.formattedMessage).join("\n"));
  const c = output.contracts["PeerFunctionsConsumer.sol"].PeerFunctionsConsumer;
  return { abi: c.abi, bytecode: "0x" + c.evm.bytecode.object };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

const port = await freePort();
const { abi, bytecode } = compileConsumer();
const testnet = await startLocalFunctionsTestnet(undefined, { logging: { quiet: true } }, port);
// The testnet's `OracleRequest` listener polls through the admin wallet's provider (ethers 5: 4000 ms by default).
testnet.functionsMockCoordinatorContract.provider.pollingInterval = POLL_MS;

// How many times the testnet's listener was told of a request (ethers 5 polling; > 1 per request would mean repeats).
let oracleRequestEvents = 0;
testnet.functionsMockCoordinatorContract.on("OracleRequest", () => (oracleRequestEvents += 1));

// The testnet runs in this process: while its simulations run, the JSON-RPC answers can take longer than ethers'
// 120 s default timeout, so the requests wait as long as the concurrent phase may last.
const http = new ethers.providers.StaticJsonRpcProvider({ url: `http://localhost:${port}`, timeout: TIMEOUT_MS });
const ws = new ethers.providers.WebSocketProvider(`ws://localhost:${port}`);
const admin = new ethers.Wallet(testnet.adminWallet.privateKey, http);
// The requests come from another ganache account, so that they never compete with the reports for the admin's nonce.
const accounts = testnet.server.provider.getInitialAccounts();
const requesterKey = Object.values(accounts)[1].secretKey;
const requester = new ethers.Wallet(requesterKey, http);

const consumer = await new ethers.ContractFactory(abi, bytecode, requester).deploy(
  testnet.functionsRouterContract.address,
);
await consumer.deployed();
const subscriptions = new SubscriptionManager({
  signer: admin,
  linkTokenAddress: testnet.linkTokenContract.address,
  functionsRouterAddress: testnet.functionsRouterContract.address,
});
await subscriptions.initialize();
const subscriptionId = await subscriptions.createSubscription();
await subscriptions.addConsumer({ subscriptionId, consumerAddress: consumer.address });
await subscriptions.fundSubscription({ subscriptionId, juelsAmount: ethers.utils.parseEther("100000").toString() });
const donId = ethers.utils.formatBytes32String(testnet.donId);
log(`testnet on port ${port}, consumer ${consumer.address}, subscription ${subscriptionId}, polling ${POLL_MS} ms`);

// Fulfilments, as the consumer's `Answered` events arrive over the WebSocket.
const answered = new Map();
const waiters = new Map();
const watched = new ethers.Contract(consumer.address, abi, ws);
watched.on("Answered", (requestId, response, err) => {
  const at = performance.now();
  const answer = { at, ok: err === "0x" && response !== "0x" };
  answered.set(requestId, answer);
  waiters.get(requestId)?.(answer);
});
const fulfilment = (requestId) =>
  answered.has(requestId)
    ? Promise.resolve(answered.get(requestId))
    : new Promise((resolve) => waiters.set(requestId, resolve));

const gasPrice = await http.getGasPrice();
let nonce = await requester.getTransactionCount("pending");
const sentTopic = consumer.interface.getEventTopic("RequestSent");

/** Sends one request; resolves with its id and the time its transaction started (performance.now(), ms). */
async function request() {
  const overrides = { nonce: nonce++, gasLimit: 1_000_000, gasPrice };
  const t0 = performance.now();
  const tx = await consumer.ask(SOURCE, subscriptionId, CALLBACK_GAS, donId, overrides);
  const receipt = await tx.wait(1);
  const log = receipt.logs.find((l) => l.topics[0] === sentTopic);
  if (!log) throw new Error(`request ${tx.hash} emitted no RequestSent`);
  return { requestId: log.topics[1], t0 };
}

const withTimeout = (promise, ms) =>
  Promise.race([promise, new Promise((resolve) => setTimeout(() => resolve(undefined), ms))]);

// Warm-up: one request (Deno's first start, the listener's first poll).
{
  const { requestId } = await request();
  await withTimeout(fulfilment(requestId), 60_000);
}

const loadBefore = os.loadavg()[0];
const sequentialMs = [];
let sequentialErrors = 0;
const seqStart = performance.now();
for (let i = 0; i < SEQUENTIAL; i++) {
  const { requestId, t0 } = await request();
  const answer = await withTimeout(fulfilment(requestId), 60_000);
  if (!answer) {
    sequentialErrors += 1;
    continue;
  }
  if (!answer.ok) sequentialErrors += 1;
  sequentialMs.push(answer.at - t0);
}
const seqWall = performance.now() - seqStart;
sequentialMs.sort((a, b) => a - b);
log(`sequential: ${SEQUENTIAL} in ${(seqWall / 1000).toFixed(1)} s, p50 ${percentile(sequentialMs, 50).toFixed(0)} ms`);

const concStart = performance.now();
let sendErrors = 0;
const sent = (
  await Promise.all(
    Array.from({ length: CONCURRENT }, () =>
      request().catch((error) => {
        sendErrors += 1;
        log(`a request failed: ${error.message.slice(0, 200)}`);
        return undefined;
      }),
    ),
  )
).filter((s) => s);
const deadline = concStart + TIMEOUT_MS;
const answers = await Promise.all(
  sent.map(({ requestId, t0 }) =>
    withTimeout(fulfilment(requestId), Math.max(0, deadline - performance.now())).then((a) => ({ a, t0 })),
  ),
);
const done = answers.filter(({ a }) => a);
const concurrentEnd = Math.max(...done.map(({ a }) => a.at));
const concurrentMs = done.map(({ a, t0 }) => a.at - t0).sort((a, b) => a - b);
// Not all answered before the deadline: the throughput is what was answered within it.
const concurrentWall = done.length === CONCURRENT ? concurrentEnd - concStart : TIMEOUT_MS;
const loadAfter = os.loadavg()[0];

const result = {
  peer: "@chainlink/functions-toolkit 0.3.2 localFunctionsTestnet (patched)",
  node: process.versions.node,
  pollingIntervalMs: POLL_MS,
  source: SOURCE,
  sequential: {
    requests: SEQUENTIAL,
    fulfilled: sequentialMs.length,
    errors: sequentialErrors,
    p50Ms: percentile(sequentialMs, 50),
    p99Ms: percentile(sequentialMs, 99),
    perSecond: (sequentialMs.length / seqWall) * 1000,
  },
  concurrent: {
    requests: CONCURRENT,
    fulfilled: done.length,
    errors: done.filter(({ a }) => !a.ok).length,
    sendErrors,
    p50Ms: percentile(concurrentMs, 50),
    p99Ms: percentile(concurrentMs, 99),
    wallMs: concurrentWall,
    perSecond: (done.length / concurrentWall) * 1000,
  },
  oracleRequestEvents,
  loadBefore,
  loadAfter,
};
log(`concurrent: ${done.length}/${CONCURRENT} in ${(concurrentWall / 1000).toFixed(1)} s`);
console.log(JSON.stringify(result));
watched.removeAllListeners();
await ws.destroy();
await testnet.close();
process.exit(0);
