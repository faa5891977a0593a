/**
 * Block subscriptions (a chain's `wsUrl`, runtime/chains/heads.ts): with a poll interval of 5 s, the chain-log
 * listener picks a log up as its block is announced over `eth_subscribe("newHeads")`, in well under half the
 * interval; with the socket cut it still progresses by polling, and the subscription comes back with the endpoint.
 * The WebSocket goes through a TCP proxy in front of a real `hardhat node` (which serves WebSocket on its HTTP port),
 * so the test can kill it from outside.
 */
import type { Contract, ContractTransactionResponse } from "ethers";

import { HeadSubscription } from "../../runtime/chains/heads.ts";
import { ChainLogListener } from "../../runtime/triggers/ChainLogListener.ts";
import { startPipelineStack, type PipelineStack } from "../support/pipelineStack.ts";
import { startSilentServer, startTcpProxy, type TcpProxy } from "../support/tcpProxy.ts";
import { deployArtifact, eventJobs } from "./helpers.ts";

const PING = "Ping(address indexed sender, uint256 indexed seq, int256 value, string note)";
const INTERVAL_MS = 5000;

async function until(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("block subscriptions wake the chain-log listener (hardhat node over WebSocket)", () => {
  let stack: PipelineStack;
  let proxy: TcpProxy;
  let listener: ChainLogListener | undefined;

  beforeAll(async () => {
    stack = await startPipelineStack({
      chains: [{ name: "consortium", chainId: 73_021 }],
      targets: [{ chain: "consortium", mode: "record" }],
      workers: false,
      chainSettings: async (node) => {
        proxy = await startTcpProxy(Number(new URL(node.url).port));
        return { wsUrl: `ws://127.0.0.1:${proxy.port}` };
      },
    });
  }, 120_000);

  afterAll(async () => {
    await listener?.stop();
    await proxy?.close();
    await stack?.close();
  });

  const node = () => stack.chains[0]!.node;
  let contract: Contract;
  let seq = 0n;

  /** Emits one log; returns the milliseconds until the listener submitted its event. */
  async function latencyOfOneLog(timeoutMs: number): Promise<number> {
    const address = await contract.getAddress();
    const before = (await eventJobs(stack.pipeline)).length;
    seq += 1n;
    const began = performance.now();
    const tx = (await contract.getFunction("ping")(seq, 0n, "")) as ContractTransactionResponse;
    await until(async () => (await eventJobs(stack.pipeline)).length > before, timeoutMs, `the event of ping ${seq}`);
    const took = Math.round(performance.now() - began);
    await tx.wait();
    const jobs = (await eventJobs(stack.pipeline)).filter(
      (j) => j.event.source.type === "chain-log" && j.event.source.address.toLowerCase() === address.toLowerCase(),
    );
    expect(jobs).toHaveLength(Number(seq));
    return took;
  }

  test("a log is picked up at its block, well before the 5 s poll interval; cut, polling goes on; restored, wakes again", async () => {
    contract = await deployArtifact(node().funder, "testing/LogEmitter.sol", "LogEmitter");
    listener = new ChainLogListener({
      pipeline: stack.pipeline,
      subscriptions: [
        {
          kind: "chain-log",
          id: `${stack.prefix}-heads`,
          chain: "consortium",
          address: await contract.getAddress(),
          event: PING,
          confirmations: 0,
          cryptlet: { name: stack.pkg.manifest.name },
        },
      ],
      pollIntervalMs: INTERVAL_MS,
      heads: { connectTimeoutMs: 1000, minBackoffMs: 100, maxBackoffMs: 400 },
    });
    listener.start();
    const heads = listener.headSubscriptions.get("consortium")!;
    await until(
      async () => heads.subscribed && (await listener!.checkpoint(`${stack.prefix}-heads`)) !== undefined,
      10_000,
      "the subscription and the first pass",
    );

    // Subscribed: each log is seen at its block. Each emission follows the pass that saw the previous one, so
    // a listener that only polled would take about the whole interval every time.
    const woken: number[] = [];
    for (let i = 0; i < 3; i += 1) woken.push(await latencyOfOneLog(3 * INTERVAL_MS));
    console.log(`subscribed: log-to-event latency ${woken.join(", ")} ms (poll interval ${INTERVAL_MS} ms)`);
    for (const took of woken) expect(took).toBeLessThan(INTERVAL_MS / 2);

    // Cut: the socket dies, the subscription is retried with backoff, and logs still arrive by polling.
    const attempts = heads.attempts;
    await proxy.cut();
    await until(() => !heads.subscribed, 5000, "the subscription to drop");
    const polled = await latencyOfOneLog(3 * INTERVAL_MS);
    console.log(`cut: log-to-event latency ${polled} ms by polling`);
    expect(polled).toBeLessThan(INTERVAL_MS + 2000);
    expect(heads.attempts).toBeGreaterThan(attempts + 1);

    // Restored: the subscription reopens and wakes the listener again.
    await proxy.restore();
    await until(() => heads.subscribed, 5000, "the subscription to reopen");
    const again = await latencyOfOneLog(3 * INTERVAL_MS);
    console.log(`restored: log-to-event latency ${again} ms`);
    expect(again).toBeLessThan(INTERVAL_MS / 2);

    await listener.stop();
    expect(heads.subscribed).toBe(false);
    listener = undefined;
  }, 90_000);
});

describe("HeadSubscription: every attempt has a deadline", () => {
  test("an endpoint that accepts and never answers is given up after connectTimeoutMs and retried", async () => {
    const silent = await startSilentServer();
    const heads = new HeadSubscription({
      url: `ws://127.0.0.1:${silent.port}`,
      chain: "hung",
      connectTimeoutMs: 200,
      minBackoffMs: 50,
      maxBackoffMs: 100,
    });
    try {
      heads.start();
      const began = Date.now();
      await until(() => heads.attempts >= 3, 5000, "three attempts");
      // 3 attempts: 2 deadlines and 2 backoffs (50 + 100 ms) at least.
      expect(Date.now() - began).toBeGreaterThanOrEqual(2 * 200 + 150);
      expect(heads.subscribed).toBe(false);
      expect(await heads.next(50)).toBe(false);
    } finally {
      heads.stop();
      await silent.close();
    }
  });

  test("a closed port (nothing listening) is retried with backoff, never thrown", async () => {
    const silent = await startSilentServer();
    const port = silent.port;
    await silent.close();
    const heads = new HeadSubscription({ url: `ws://127.0.0.1:${port}`, chain: "closed", minBackoffMs: 50 });
    heads.start();
    await until(() => heads.attempts >= 3, 5000, "three attempts");
    heads.stop();
    const attempts = heads.attempts;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(heads.attempts).toBe(attempts); // stopped: no more attempts
  });
});
