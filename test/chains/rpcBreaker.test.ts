/**
 * The JSON-RPC circuit breaker (issue 13 item 1) against a real `hardhat node` behind the chaos run's fault proxy:
 * answers from the node (errors included) never open it; requests that fail on every attempt do, after which
 * requests are refused without reaching the proxy, with `ERR_CHAIN_RPC_UNAVAILABLE` (the writer's handling is
 * unchanged) caused by `ERR_DEPENDENCY_CIRCUIT_OPEN` (the job queue delays such a job without spending an attempt).
 * The outage is visible (readiness list, gauge, one log line on open and one on close) and ends by itself: the
 * breaker's own trial request closes it once the node answers again, with no caller.
 */
import { Registry } from "prom-client";

import { parseChainsConfig, type ChainConfig } from "../../runtime/chains/config.ts";
import { ChainRpc, rpcDependencyName } from "../../runtime/chains/rpc.ts";
import { startHttpFaultProxy, type FaultProxy } from "../../runtime/devstack/chaos/faultProxy.ts";
import { isCryptletError } from "../../runtime/errors.ts";
import {
  circuitOpenRetryAfterMs,
  dependencyStates,
  registerDependencyMetrics,
} from "../../runtime/resilience/dependency.ts";
import { startHardhatNode, type HardhatNode } from "../support/hardhatNode.ts";

const CHAIN_ID = 74_123;

function chainConfig(rpcUrl: string): ChainConfig {
  return parseChainsConfig({
    chains: [
      {
        name: "consortium",
        chainId: CHAIN_ID,
        rpcUrl,
        signer: { type: "local", jwkPath: "unused.jwk.json" },
        contracts: { ledger: "0x5FbDB2315678afecb367f032d93F642f64180aa3" },
      },
    ],
  }).chains[0]!;
}

/** A logger that keeps its lines. */
function memoryLogger() {
  const lines: { level: string; obj: object; msg?: string }[] = [];
  return {
    lines,
    info: (obj: object, msg?: string) => lines.push({ level: "info", obj, ...(msg === undefined ? {} : { msg }) }),
    warn: (obj: object, msg?: string) => lines.push({ level: "warn", obj, ...(msg === undefined ? {} : { msg }) }),
  };
}

async function failureOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error("the request succeeded");
    },
    (error: unknown) => error,
  );
}

async function gaugeValue(name: string): Promise<number | undefined> {
  const registry = new Registry();
  registerDependencyMetrics(registry);
  const metric = await registry.getSingleMetric("cryptlet_dependency_circuit_state")!.get();
  return metric.values.find((v) => v.labels.dependency === name)?.value;
}

describe("JSON-RPC circuit breaker (real hardhat node, fault proxy)", () => {
  let node: HardhatNode;
  let proxy: FaultProxy;
  const rpcs: ChainRpc[] = [];

  beforeAll(async () => {
    node = await startHardhatNode(CHAIN_ID);
    proxy = await startHttpFaultProxy(node.url, { upstreamTimeoutMs: 5000 });
  }, 120_000);

  afterAll(async () => {
    for (const rpc of rpcs) rpc.destroy();
    await proxy?.close();
    await node?.stop();
  });

  test("opens after failed requests, refuses without sending, shows the outage, and closes by itself", async () => {
    const url = `http://127.0.0.1:${proxy.port}`;
    const config = chainConfig(url);
    const logger = memoryLogger();
    const rpc = new ChainRpc(config, { requestTimeoutMs: 500, breaker: { threshold: 2, halfOpenMs: 1000 }, logger });
    rpcs.push(rpc);
    const name = rpcDependencyName(config);
    expect(name).toMatch(/^chain-rpc:consortium\/74123#[0-9a-f]{8}$/);
    expect(name).not.toContain(String(proxy.port)); // no URL in readiness, metrics or logs

    // The node answers: the chain id it was started with (not the configuration's).
    expect(BigInt(await rpc.send<string>("eth_chainId", []))).toBe(BigInt(await node.rpc<string>("eth_chainId")));
    // Errors the node answers are answers: they never count towards the breaker.
    for (let i = 0; i < 5; i += 1) {
      const error = await failureOf(rpc.send("eth_noSuchMethod", []));
      expect(isCryptletError(error)).toBe(false);
    }
    expect(rpc.circuitState).toBe("closed");

    proxy.setMode("refuse");
    for (let i = 0; i < 2; i += 1) {
      const error = await failureOf(rpc.send("eth_blockNumber", []));
      expect(isCryptletError(error, "ERR_CHAIN_RPC_UNAVAILABLE")).toBe(true);
      expect(circuitOpenRetryAfterMs(error)).toBeUndefined(); // sent, and failed on every attempt
    }
    expect(rpc.circuitState).toBe("open");
    expect(dependencyStates().find((s) => s.name === name)).toMatchObject({ state: "open" });
    expect(await gaugeValue(name)).toBe(1);

    // Refused at once, without reaching the proxy.
    const seen = proxy.stats.received + proxy.stats.refused;
    const started = Date.now();
    const refused = await failureOf(rpc.send("eth_sendRawTransaction", ["0x00"]));
    expect(Date.now() - started).toBeLessThan(200);
    expect(proxy.stats.received + proxy.stats.refused).toBe(seen);
    expect(isCryptletError(refused, "ERR_CHAIN_RPC_UNAVAILABLE")).toBe(true); // what the writer handles
    expect(isCryptletError((refused as Error).cause, "ERR_DEPENDENCY_CIRCUIT_OPEN")).toBe(true);
    expect(circuitOpenRetryAfterMs(refused)).toBe(1000); // what the job queue delays by
    expect(JSON.stringify(refused)).not.toContain(String(proxy.port));

    // Trial requests fail while the proxy refuses (2.5 s: two of them): still one log line, still open.
    const refusedBefore = proxy.stats.refused;
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(proxy.stats.refused).toBeGreaterThan(refusedBefore); // the trials did reach it
    expect(rpc.circuitState).not.toBe("closed");
    expect(logger.lines.map((l) => `${l.level} ${l.msg}`)).toEqual(["warn dependency unavailable: circuit open"]);
    expect(logger.lines[0]!.obj).toMatchObject({ dependency: name, state: "open", cause: "ERR_CHAIN_RPC_UNAVAILABLE" });

    // The node is reachable again: the breaker's own trial closes it, with no caller.
    proxy.setMode("pass");
    const deadline = Date.now() + 10_000;
    while (rpc.circuitState !== "closed" && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(rpc.circuitState).toBe("closed");
    expect(await gaugeValue(name)).toBe(0);
    expect(logger.lines.map((l) => `${l.level} ${l.msg}`)).toEqual([
      "warn dependency unavailable: circuit open",
      "info dependency available: circuit closed",
    ]);
    expect(BigInt(await rpc.send<string>("eth_blockNumber", []))).toBe(
      BigInt(await node.rpc<string>("eth_blockNumber")),
    );
  }, 60_000);

  test("a client without a breaker sends every request", async () => {
    const rpc = new ChainRpc(chainConfig(`http://127.0.0.1:${proxy.port}/no-breaker`), {
      requestTimeoutMs: 500,
      breaker: false,
    });
    rpcs.push(rpc);
    proxy.setMode("refuse");
    try {
      // Six in a row: a default breaker (threshold 5) would refuse the sixth without sending it.
      for (let i = 0; i < 6; i += 1) {
        const before = proxy.stats.refused;
        const error = await failureOf(rpc.send("eth_blockNumber", [], 2));
        expect(isCryptletError(error, "ERR_CHAIN_RPC_UNAVAILABLE")).toBe(true);
        expect(circuitOpenRetryAfterMs(error)).toBeUndefined(); // never refused locally
        // Sent: the proxy reset it. (Attempts are not counted one for one: a reset can reach a pooled socket.)
        expect(proxy.stats.refused).toBeGreaterThan(before);
      }
      expect(rpc.circuitState).toBe("closed");
    } finally {
      proxy.setMode("pass");
    }
  }, 60_000);
});
