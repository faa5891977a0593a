/**
 * The cross-chain deadline watcher (runtime/crosschain/deadlineWatcher.ts, docs/crosschain.md "REFUND") against two
 * real `hardhat node`s (a source chain with the lockboxes, a destination chain with the wrapped tokens) and the
 * shared Redis (this file's own key prefix). The pipeline is a stand-in for `submit` only (it records the refund
 * events); `ctx.chains` holds real `ChainRpc`s to the nodes, the destination's through a TCP proxy that the outage
 * test cuts. Every check compares with what the chains themselves answer.
 */
import { jest } from "@jest/globals";
import { Contract, MaxUint256, Wallet, id } from "ethers";

import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import { computeResultId } from "../../runtime/attestation/eip712.ts";
import type { ChainConfig } from "../../runtime/chains/config.ts";
import { deployCryptletContracts, interfaceOf } from "../../runtime/chains/contracts.ts";
import { ChainRpc } from "../../runtime/chains/rpc.ts";
import type { ChainWriter } from "../../runtime/chains/writer.ts";
import { DeadlineWatcher, deadlineCursorKey, type DeadlineReport } from "../../runtime/crosschain/deadlineWatcher.ts";
import { deployCrosschainRoute, type DeployedRoute } from "../../runtime/crosschain/deploy.ts";
import { CROSSCHAIN_VIEWS, LOCK_STATUS, lockIdOf, refundEventIdOf } from "../../runtime/crosschain/events.ts";
import { crosschainTargetOf, type RefundInput } from "../../runtime/crosschain/routes.ts";
import type { PipelineChain, PipelineContext } from "../../runtime/queue/context.ts";
import { BacklogFullError } from "../../runtime/queue/errors.ts";
import type { Pipeline, SubmittedRun } from "../../runtime/queue/pipeline.ts";
import { openRedis, scanKeys, type RedisClient } from "../../runtime/queue/redisClient.ts";
import type { CryptletEvent } from "../../runtime/queue/topology.ts";
import { CONSORTIUM_ID, makeResult, signResult, testWallets } from "../support/contracts.ts";
import {
  BRIDGE,
  BRIDGE_CODE,
  KIND_MINT,
  KIND_REFUND,
  mintPayload,
  refundPayload,
  crosschainChainConfig,
} from "../support/crosschain.ts";
import {
  latestBlockOf as latest,
  mineBlockAt as mineAt,
  mineBlocks as mine,
  sendAndWait as send,
  startHardhatNode,
  type HardhatNode,
} from "../support/hardhatNode.ts";
import { REDIS_URL } from "../support/pipelineStack.ts";
import { startSilentServer, startTcpProxy, type TcpProxy } from "../support/tcpProxy.ts";

/** The package whose locks are watched (the contracts trust its Cryptlet id, `BRIDGE`). */
const PKG = "@cryptlet/bridge";
/** Another package, whose route stays on the source chain (for the isolation check of the outage test). */
const OTHER = "@cryptlet/bridge-local";
const SOURCE_ID = 73_311;
const DESTINATION_ID = 73_312;
/** The crosschain trigger's confirmations in every test but the last ones. */
const CONFIRMATIONS = 2;
const AMOUNT = 1_000n;

interface Block {
  number: string;
  hash: string;
  timestamp: string;
}

describe("cross-chain deadline watcher (two hardhat nodes, real Redis)", () => {
  let source: HardhatNode;
  let destination: HardhatNode;
  let proxy: TcpProxy;
  let redis: RedisClient;
  let sourceRpc: ChainRpc;
  let destinationRpc: ChainRpc;
  let registries: { source: string; destination: string };
  const prefix = `t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}-xdw`;
  const wallets = testWallets(3);
  const recipient = Wallet.createRandom().address;

  beforeAll(async () => {
    [source, destination] = await Promise.all([startHardhatNode(SOURCE_ID), startHardhatNode(DESTINATION_ID)]);
    proxy = await startTcpProxy(Number(new URL(destination.url).port));
    redis = openRedis({ url: REDIS_URL });
    const deployRegistry = async (node: HardhatNode) => {
      const { registry } = await deployCryptletContracts(node.funder, {
        consortiumId: CONSORTIUM_ID,
        signers: wallets.map((w) => w.address),
        threshold: 2,
      });
      const governed = new Contract(registry, interfaceOf("CryptletRegistry"), node.funder);
      await send(governed, "approveCodeHash", BRIDGE, BRIDGE_CODE);
      return registry;
    };
    registries = { source: await deployRegistry(source), destination: await deployRegistry(destination) };
    sourceRpc = new ChainRpc(crosschainChainConfig("source", SOURCE_ID, source.url));
    destinationRpc = new ChainRpc(
      crosschainChainConfig("destination", DESTINATION_ID, `http://127.0.0.1:${proxy.port}`),
      {
        requestTimeoutMs: 2000,
        breaker: { threshold: 5, halfOpenMs: 100 },
      },
    );
  }, 180_000);

  afterAll(async () => {
    sourceRpc?.destroy();
    destinationRpc?.destroy();
    await proxy?.close();
    await Promise.all([source?.stop(), destination?.stop()]);
    if (redis) {
      for await (const keys of scanKeys(redis, `${prefix}:*`)) await Promise.all(keys.map((k) => redis.del(k)));
      await redis.quit();
    }
  });

  // ---------------------------------------------------------------- helpers

  /** A deadline `seconds` after the later of both chains' latest block times. */
  const deadlineIn = async (seconds: number) =>
    Math.max((await latest(source)).timestamp, (await latest(destination)).timestamp) + seconds;

  /** A route of PKG: a lockbox on the source chain, its wrapped token on the destination. */
  const newRoute = () =>
    deployCrosschainRoute(
      { deployer: source.funder, chainId: SOURCE_ID, registry: registries.source },
      { deployer: destination.funder, chainId: DESTINATION_ID, registry: registries.destination },
      { cryptletId: BRIDGE },
    );

  const approved = new Set<string>();
  /** Locks AMOUNT toward the route's destination with `deadline`; returns the lock id (from the lockbox's nonce). */
  async function lock(route: DeployedRoute, deadline: number, destinationChainId = route.destinationChainId) {
    const token = new Contract(route.token, interfaceOf("TestERC20"), source.funder);
    const lockbox = new Contract(route.lockbox, interfaceOf("CryptletLockbox"), source.funder);
    await send(token, "mint", source.funder.address, AMOUNT);
    if (!approved.has(route.lockbox)) {
      await send(token, "approve", route.lockbox, MaxUint256);
      approved.add(route.lockbox);
    }
    const nonce = (await lockbox.getFunction("lockCount")()) as bigint;
    await send(lockbox, "lock", AMOUNT, destinationChainId, recipient, deadline);
    return lockIdOf(route.sourceChainId, route.lockbox, nonce);
  }

  /** Mints `lockId` on the destination now (before its deadline), with a result signed by 2 of the 3 wallets. */
  async function mintNow(route: DeployedRoute, lockId: string, deadline: number) {
    const payload = mintPayload({
      kind: KIND_MINT,
      lockId,
      sourceChainId: BigInt(route.sourceChainId),
      lockbox: route.lockbox,
      destinationChainId: BigInt(route.destinationChainId),
      token: route.wrappedToken,
      recipient,
      amount: AMOUNT,
      deadline: BigInt(deadline),
    });
    const result = makeResult(BRIDGE, id(`mint:${lockId}`) as Hex32, BRIDGE_CODE, payload);
    const wrapped = new Contract(route.wrappedToken, interfaceOf("CryptletWrappedToken"), destination.funder);
    await send(wrapped, "mint", result, payload, await signResult(wallets.slice(0, 2), result));
  }

  /** The lock as the source chain stores it (latest block). */
  async function lockOnChain(route: DeployedRoute, lockId: string) {
    const lockbox = new Contract(route.lockbox, CROSSCHAIN_VIEWS, source.provider);
    return (await lockbox.getFunction("lockOf")(lockId)) as {
      sender: string;
      deadline: bigint;
      status: bigint;
      amount: bigint;
      destinationChainId: bigint;
    };
  }

  /** `isMinted(lockId)` on the destination at block `blockNumber`, read directly from the node. */
  async function isMintedAt(route: DeployedRoute, lockId: string, blockNumber: number) {
    const wrapped = new Contract(route.wrappedToken, CROSSCHAIN_VIEWS, destination.provider);
    return (await wrapped.getFunction("isMinted")(lockId, { blockTag: blockNumber })) as boolean;
  }

  const blockOf = (blockNumber: number) =>
    destination.rpc<Block>("eth_getBlockByNumber", [`0x${blockNumber.toString(16)}`, false]);

  interface Harness {
    watcher: DeadlineWatcher;
    submitted: CryptletEvent[];
    ctx: PipelineContext;
    /** Replace the stand-in's submit (e.g. to refuse with a full backlog). */
    setSubmit(fn: (event: CryptletEvent) => Promise<SubmittedRun>): void;
    cursor(route: DeployedRoute, pkg?: string): Promise<string | null>;
    scan(): Promise<DeadlineReport>;
  }

  /**
   * A watcher of PKG (and `extra` packages) over the source chain (lockboxes) and the destination chain (wrapped
   * tokens), with a pipeline stand-in that records submitted events.
   */
  function harness(
    routes: {
      source: Record<string, { lockbox?: string; wrappedTokens?: string[] }>;
      destination: Record<string, { lockbox?: string; wrappedTokens?: string[] }>;
    },
    options: {
      confirmations?: number;
      maxLocksPerPass?: number;
      packages?: string[];
      pollIntervalMs?: number;
      /** The watcher reads this as every cursor (a watcher that read before another advanced it). */
      staleCursor?: string;
      /** The destination chain's RPC client in place of the one through the proxy. */
      destinationRpc?: ChainRpc;
    } = {},
  ): Harness {
    const chain = (config: ChainConfig, rpc: ChainRpc): PipelineChain => ({
      config,
      writer: { rpc } as unknown as ChainWriter,
    });
    const chains = new Map<string, PipelineChain>([
      ["source", chain(crosschainChainConfig("source", SOURCE_ID, source.url, routes.source), sourceRpc)],
      [
        "destination",
        chain(
          crosschainChainConfig("destination", DESTINATION_ID, `http://127.0.0.1:${proxy.port}`, routes.destination),
          options.destinationRpc ?? destinationRpc,
        ),
      ],
    ]);
    const submitted: CryptletEvent[] = [];
    let submit = (event: CryptletEvent): Promise<SubmittedRun> => {
      submitted.push(event);
      const resultId = computeResultId(BRIDGE, event.eventId);
      return Promise.resolve({ runId: resultId, resultId });
    };
    const client =
      options.staleCursor === undefined
        ? redis
        : (new Proxy(redis, {
            get(target, property) {
              if (property === "get") return () => Promise.resolve(options.staleCursor);
              const value = Reflect.get(target, property, target) as unknown;
              return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
            },
          }) as RedisClient);
    const ctx = { redis: client, prefix, chains } as unknown as PipelineContext;
    const pipeline = { ctx, submit: (event: CryptletEvent) => submit(event) } as unknown as Pipeline;
    const watcher = new DeadlineWatcher({
      pipeline,
      ...(options.maxLocksPerPass ? { maxLocksPerPass: options.maxLocksPerPass } : {}),
      ...(options.pollIntervalMs ? { pollIntervalMs: options.pollIntervalMs } : {}),
    });
    watcher.setPackages(
      (options.packages ?? [PKG]).map((name) => ({ name, confirmations: options.confirmations ?? CONFIRMATIONS })),
    );
    return {
      watcher,
      submitted,
      ctx,
      setSubmit(fn) {
        submit = async (event) => {
          const run = await fn(event);
          submitted.push(event);
          return run;
        };
      },
      cursor: (route, pkg = PKG) => redis.get(deadlineCursorKey(prefix, pkg, "source", route.lockbox)),
      scan: () => watcher.scanOnce(),
    };
  }

  /** The harness of one PKG route. */
  const harnessOf = (route: DeployedRoute, options: Parameters<typeof harness>[1] = {}) =>
    harness(
      {
        source: { [PKG]: { lockbox: route.lockbox } },
        destination: { [PKG]: { wrappedTokens: [route.wrappedToken] } },
      },
      options,
    );

  /** Mines the destination past `deadline` and `CONFIRMATIONS` blocks on top; returns the first block after it. */
  async function passDeadline(deadline: number) {
    const after = await mineAt(destination, Math.max(deadline + 1, (await latest(destination)).timestamp + 1));
    await mine(destination, CONFIRMATIONS);
    return after;
  }

  // ---------------------------------------------------------------- tests

  test("a lock before its deadline stays pending and nothing is submitted", async () => {
    const route = await newRoute();
    const deadline = await deadlineIn(3_600);
    const lockId = await lock(route, deadline);
    await mine(source, CONFIRMATIONS);
    await mine(destination, CONFIRMATIONS + 1);
    const h = harnessOf(route);

    const report = await h.scan();
    expect(report).toEqual({ refunds: [], minted: [], refunded: [], pending: [lockId], failed: {} });
    expect(h.submitted).toEqual([]);
    expect(await h.cursor(route)).toBeNull();
    // the chain agrees: its confirmed block is before the deadline, and the lock is Locked
    const head = (await latest(destination)).number;
    expect(Number(BigInt((await blockOf(head - CONFIRMATIONS)).timestamp))).toBeLessThanOrEqual(deadline);
    expect((await lockOnChain(route, lockId)).status).toBe(BigInt(LOCK_STATUS.Locked));
  });

  test("a lock not visible at the source's confirmed head is not read yet", async () => {
    const route = await newRoute();
    await lock(route, await deadlineIn(10));
    const h = harnessOf(route);
    // the lock's block is the head: CONFIRMATIONS blocks are missing on top of it
    expect(await h.scan()).toEqual({ refunds: [], minted: [], refunded: [], pending: [], failed: {} });
  });

  test("after the deadline without a mint: exactly one refund event, observed at a confirmed block after the deadline", async () => {
    const route = await newRoute();
    const deadline = await deadlineIn(100);
    const lockId = await lock(route, deadline);
    await mine(source, CONFIRMATIONS);
    const observedNumber = await passDeadline(deadline);
    const h = harnessOf(route);
    const rpcSpy = jest.spyOn(destinationRpc, "send");
    let report: DeadlineReport;
    let calls: (typeof rpcSpy.mock.calls)[number][];
    try {
      report = await h.scan();
    } finally {
      calls = [...rpcSpy.mock.calls];
      rpcSpy.mockRestore();
    }
    expect(report).toEqual({ refunds: [lockId], minted: [], refunded: [], pending: [], failed: {} });
    expect(h.submitted).toHaveLength(1);
    const event = h.submitted[0]!;

    // the observation is the destination's block, as the node itself reports it, after the deadline
    const block = await blockOf(observedNumber);
    const timestamp = Number(BigInt(block.timestamp));
    expect(timestamp).toBeGreaterThan(deadline);
    expect((await latest(destination)).number - observedNumber).toBe(CONFIRMATIONS);
    expect(event.eventId).toBe(refundEventIdOf(lockId));
    expect(event.cryptlet).toEqual({ name: PKG });
    expect(event.time).toBe(timestamp);
    expect(event.source).toEqual({
      type: "chain-state",
      chainId: DESTINATION_ID,
      blockNumber: observedNumber,
      blockHash: block.hash,
      timestamp,
    });
    const onChain = await lockOnChain(route, lockId);
    const input = event.input as RefundInput;
    expect(input).toEqual({
      kind: "refund",
      lock: {
        lockId,
        sourceChainId: String(SOURCE_ID),
        lockbox: route.lockbox,
        destinationChainId: String(DESTINATION_ID),
        token: route.wrappedToken,
        sender: onChain.sender,
        amount: onChain.amount.toString(),
        deadline: Number(onChain.deadline),
      },
      observation: {
        chainId: DESTINATION_ID,
        blockNumber: observedNumber,
        blockHash: block.hash,
        timestamp,
        isMinted: false,
      },
    } satisfies RefundInput);
    expect(onChain.sender).toBe(source.funder.address);
    expect(await isMintedAt(route, lockId, observedNumber)).toBe(false);
    // isMinted was read at the observed block (not "latest", not the head)
    const isMintedCalls = calls.filter(
      ([method, params]) =>
        method === "eth_call" &&
        (params[0] as { data: string }).data === CROSSCHAIN_VIEWS.encodeFunctionData("isMinted", [lockId]),
    );
    expect(isMintedCalls).toHaveLength(1);
    expect(isMintedCalls[0]![1][1]).toBe(`0x${observedNumber.toString(16)}`);
    // the refund routes to the lockbox on the source chain
    const configs = [...h.ctx.chains.values()].map((c) => c.config);
    expect(crosschainTargetOf(event, PKG, configs)).toEqual({
      chain: "source",
      mode: "refund",
      address: route.lockbox,
    });

    // scanning again submits nothing: the cursor is past the lock
    expect(await h.cursor(route)).toBe("1");
    expect((await h.scan()).refunds).toEqual([]);
    // a watcher that read before the cursor moved (cursor back to 0) submits the same event id, never another
    await redis.del(deadlineCursorKey(prefix, PKG, "source", route.lockbox));
    expect((await h.scan()).refunds).toEqual([lockId]);
    expect(new Set(h.submitted.map((e) => e.eventId))).toEqual(new Set([refundEventIdOf(lockId)]));
    expect(await h.cursor(route)).toBe("1");

    // the observation is one the lockbox accepts: relay the REFUND output it attests (source time past the deadline)
    const payload = refundPayload({
      kind: KIND_REFUND,
      lockId,
      sourceChainId: BigInt(input.lock.sourceChainId),
      lockbox: input.lock.lockbox,
      destinationChainId: BigInt(input.lock.destinationChainId),
      token: input.lock.token,
      sender: input.lock.sender,
      amount: BigInt(input.lock.amount),
      deadline: BigInt(input.lock.deadline),
      observedAt: BigInt(input.observation.timestamp),
    });
    const result = makeResult(BRIDGE, event.eventId, BRIDGE_CODE, payload);
    await source.rpc("evm_setNextBlockTimestamp", [Math.max(timestamp, (await latest(source)).timestamp) + 1]);
    const lockbox = new Contract(route.lockbox, interfaceOf("CryptletLockbox"), source.funder);
    await send(lockbox, "refund", result, payload, await signResult(wallets.slice(0, 2), result));
    await mine(source, CONFIRMATIONS);
    expect((await lockOnChain(route, lockId)).status).toBe(BigInt(LOCK_STATUS.Refunded));
    // once refunded on the source chain, the lock is done as such, with no further event
    await redis.del(deadlineCursorKey(prefix, PKG, "source", route.lockbox));
    const count = h.submitted.length;
    expect(await h.scan()).toEqual({ refunds: [], minted: [], refunded: [lockId], pending: [], failed: {} });
    expect(h.submitted).toHaveLength(count);
  });

  test("a lock minted before its deadline is done as minted; no refund, before or after the deadline", async () => {
    const route = await newRoute();
    const deadline = await deadlineIn(100);
    const lockId = await lock(route, deadline);
    await mine(source, CONFIRMATIONS);
    await mintNow(route, lockId, deadline);
    await mine(destination, CONFIRMATIONS);
    const h = harnessOf(route);
    expect(await h.scan()).toEqual({ refunds: [], minted: [], refunded: [], pending: [lockId], failed: {} });

    const observedNumber = await passDeadline(deadline);
    expect(await h.scan()).toEqual({ refunds: [], minted: [lockId], refunded: [], pending: [], failed: {} });
    expect(h.submitted).toEqual([]);
    expect(await h.cursor(route)).toBe("1");
    expect(await isMintedAt(route, lockId, observedNumber)).toBe(true);
    expect(Number(BigInt((await blockOf(observedNumber)).timestamp))).toBeGreaterThan(deadline);
  });

  test("confirmations: a destination block after the deadline that is not deep enough, or at the deadline, keeps the lock pending", async () => {
    const route = await newRoute();
    const deadline = await deadlineIn(100);
    const lockId = await lock(route, deadline);
    await mine(source, CONFIRMATIONS);
    const h = harnessOf(route);
    const pending = { refunds: [], minted: [], refunded: [], pending: [lockId], failed: {} };

    const atDeadline = await mineAt(destination, deadline); // timestamp == deadline: a mint is still allowed here
    const after = await mineAt(destination, deadline + 1); // the first block after the deadline, at the head
    expect(await h.scan()).toEqual(pending); // confirmed block: atDeadline - 1
    await mine(destination, 1);
    expect((await latest(destination)).number - CONFIRMATIONS).toBe(atDeadline);
    expect(Number(BigInt((await blockOf(atDeadline)).timestamp))).toBe(deadline);
    expect(await h.scan()).toEqual(pending); // confirmed block at the deadline exactly: not after it
    expect(h.submitted).toEqual([]);
    await mine(destination, 1);
    expect((await latest(destination)).number - CONFIRMATIONS).toBe(after);
    expect(await h.scan()).toEqual({ refunds: [lockId], minted: [], refunded: [], pending: [], failed: {} });
    expect(h.submitted.map((e) => (e.source as { blockNumber: number }).blockNumber)).toEqual([after]);
    expect(await isMintedAt(route, lockId, after)).toBe(false);
  });

  test("destination unreachable: pending with the failure recorded, other packages go on; refunded once it is back", async () => {
    const route = await newRoute();
    // OTHER's route stays on the source chain (lockbox and wrapped token there): its locks do not need the destination
    const local = await deployCrosschainRoute(
      { deployer: source.funder, chainId: SOURCE_ID, registry: registries.source },
      { deployer: source.funder, chainId: SOURCE_ID, registry: registries.source },
      { cryptletId: BRIDGE },
    );
    const deadline = await deadlineIn(100);
    const lockId = await lock(route, deadline);
    const localLockId = await lock(local, deadline);
    await passDeadline(deadline);
    await mineAt(source, Math.max(deadline + 1, (await latest(source)).timestamp + 1));
    await mine(source, CONFIRMATIONS);
    const h = harness(
      {
        source: {
          [PKG]: { lockbox: route.lockbox },
          [OTHER]: { lockbox: local.lockbox, wrappedTokens: [local.wrappedToken] },
        },
        destination: { [PKG]: { wrappedTokens: [route.wrappedToken] } },
      },
      { packages: [PKG, OTHER] },
    );

    await proxy.cut();
    let report: DeadlineReport;
    try {
      report = await h.scan();
    } finally {
      await proxy.restore();
    }
    expect(report).toEqual({
      refunds: [localLockId],
      minted: [],
      refunded: [],
      pending: [lockId],
      failed: { [lockId]: "ERR_CHAIN_RPC_UNAVAILABLE" },
    });
    expect(h.submitted.map((e) => e.eventId)).toEqual([refundEventIdOf(localLockId)]);
    expect(await h.cursor(route)).toBeNull();
    expect(await h.cursor(local, OTHER)).toBe("1");

    // back: the next pass refunds it (the breaker's half-open delay is 100 ms here)
    await new Promise((resolve) => setTimeout(resolve, 150));
    const back = await h.scan();
    expect(back).toEqual({ refunds: [lockId], minted: [], refunded: [], pending: [], failed: {} });
    const event = h.submitted.at(-1)!;
    const { blockNumber, blockHash, timestamp } = event.source as {
      blockNumber: number;
      blockHash: string;
      timestamp: number;
    };
    expect((await blockOf(blockNumber)).hash).toBe(blockHash);
    expect(timestamp).toBeGreaterThan(deadline);
    expect(await isMintedAt(route, lockId, blockNumber)).toBe(false);
    expect(await h.cursor(route)).toBe("1");
  });

  test("the cursor advances past done locks and stops at the first pending one", async () => {
    const route = await newRoute();
    const soon = await deadlineIn(100);
    const later = soon + 1_000;
    const l0 = await lock(route, soon); // no mint: refund
    const l1 = await lock(route, soon); // minted: done
    const l2 = await lock(route, later); // pending until `later`
    const l3 = await lock(route, soon); // no mint: refund, though after a pending lock
    await mine(source, CONFIRMATIONS);
    await mintNow(route, l1, soon);
    await passDeadline(soon);
    const h = harnessOf(route);

    expect(await h.scan()).toEqual({ refunds: [l0, l3], minted: [l1], refunded: [], pending: [l2], failed: {} });
    expect(await h.cursor(route)).toBe("2"); // past l0 and l1, at l2
    // l2 still pending: the cursor stays; l3 is read again and its event is the same one
    expect(await h.scan()).toEqual({ refunds: [l3], minted: [], refunded: [], pending: [l2], failed: {} });
    expect(await h.cursor(route)).toBe("2");
    expect(new Set(h.submitted.map((e) => e.eventId))).toEqual(new Set([refundEventIdOf(l0), refundEventIdOf(l3)]));

    await passDeadline(later);
    expect(await h.scan()).toEqual({ refunds: [l2, l3], minted: [], refunded: [], pending: [], failed: {} });
    expect(await h.cursor(route)).toBe("4");
    expect(await h.scan()).toEqual({ refunds: [], minted: [], refunded: [], pending: [], failed: {} });
    // a slower watcher (it read the cursor at 1, and judges at a deeper destination block where l2 is still
    // pending) proposes 2: the stored cursor stays at 4 (lua/advanceCursor-1.lua)
    await mine(source, 3);
    const slower = harnessOf(route, { confirmations: CONFIRMATIONS + 3, staleCursor: "1" });
    expect(await slower.scan()).toEqual({ refunds: [l3], minted: [l1], refunded: [], pending: [l2], failed: {} });
    expect(slower.submitted.map((e) => e.eventId)).toEqual([refundEventIdOf(l3)]);
    expect(await h.cursor(route)).toBe("4");
  });

  test("maxLocksPerPass: windows roll on past a pending lock; the cursor moves only from its own window", async () => {
    const route = await newRoute();
    const soon = await deadlineIn(100);
    const l0 = await lock(route, soon + 100_000); // pending for long
    const l1 = await lock(route, soon);
    const l2 = await lock(route, soon);
    const l3 = await lock(route, soon);
    await mine(source, CONFIRMATIONS);
    await passDeadline(soon);
    const h = harnessOf(route, { maxLocksPerPass: 2 });

    expect(await h.scan()).toEqual({ refunds: [l1], minted: [], refunded: [], pending: [l0], failed: {} });
    expect(await h.scan()).toEqual({ refunds: [l2, l3], minted: [], refunded: [], pending: [], failed: {} });
    expect(await h.scan()).toEqual({ refunds: [l1], minted: [], refunded: [], pending: [l0], failed: {} });
    expect(await h.cursor(route)).toBeNull();
    expect(new Set(h.submitted.map((e) => e.eventId))).toEqual(new Set([l1, l2, l3].map(refundEventIdOf)));
  });

  test("a route that is not configured is a failure of that lock only", async () => {
    const route = await newRoute();
    const lockbox = new Contract(route.lockbox, interfaceOf("CryptletLockbox"), source.funder);
    await send(lockbox, "setPeer", 99_999, Wallet.createRandom().address); // a chain the runtime does not know
    const deadline = await deadlineIn(100);
    const unknownChain = await lock(route, deadline, 99_999);
    const due = await lock(route, deadline);
    await mine(source, CONFIRMATIONS);
    await passDeadline(deadline);

    const h = harnessOf(route);
    expect(await h.scan()).toEqual({
      refunds: [due],
      minted: [],
      refunded: [],
      pending: [unknownChain],
      failed: { [unknownChain]: "ERR_CROSSCHAIN_ROUTE_UNKNOWN" },
    });
    expect(await h.cursor(route)).toBeNull();

    // the peer token is not among the destination's configured wrapped tokens: nothing is refunded toward it
    const stranger = harness({ source: { [PKG]: { lockbox: route.lockbox } }, destination: {} });
    await redis.del(deadlineCursorKey(prefix, PKG, "source", route.lockbox));
    expect(await stranger.scan()).toEqual({
      refunds: [],
      minted: [],
      refunded: [],
      pending: [unknownChain, due],
      failed: { [unknownChain]: "ERR_CROSSCHAIN_ROUTE_UNKNOWN", [due]: "ERR_CROSSCHAIN_ROUTE_UNKNOWN" },
    });
    expect(stranger.submitted).toEqual([]);
  });

  test("a full backlog leaves the lock pending for the next pass", async () => {
    const route = await newRoute();
    const deadline = await deadlineIn(100);
    const lockId = await lock(route, deadline);
    await mine(source, CONFIRMATIONS);
    await passDeadline(deadline);
    const h = harnessOf(route);
    let refuse = true;
    h.setSubmit((event) => {
      if (refuse) return Promise.reject(new BacklogFullError("cryptlet", 10, 10, 1, PKG));
      const resultId = computeResultId(BRIDGE, event.eventId);
      return Promise.resolve({ runId: resultId, resultId });
    });
    expect(await h.scan()).toEqual({
      refunds: [],
      minted: [],
      refunded: [],
      pending: [lockId],
      failed: { [lockId]: "ERR_BACKLOG_FULL" },
    });
    expect(await h.cursor(route)).toBeNull();
    refuse = false;
    expect(await h.scan()).toEqual({ refunds: [lockId], minted: [], refunded: [], pending: [], failed: {} });
    expect(h.submitted.map((e) => e.eventId)).toEqual([refundEventIdOf(lockId)]);
  });

  test("destination timing out (an endpoint that never answers): pending with the failure recorded", async () => {
    const route = await newRoute();
    const deadline = await deadlineIn(100);
    const lockId = await lock(route, deadline);
    await mine(source, CONFIRMATIONS);
    await passDeadline(deadline);
    const silent = await startSilentServer();
    const hung = new ChainRpc(crosschainChainConfig("destination", DESTINATION_ID, `http://127.0.0.1:${silent.port}`), {
      requestTimeoutMs: 200,
      breaker: false,
    });
    try {
      const h = harnessOf(route, { destinationRpc: hung });
      const started = Date.now();
      expect(await h.scan()).toEqual({
        refunds: [],
        minted: [],
        refunded: [],
        pending: [lockId],
        failed: { [lockId]: "ERR_CHAIN_RPC_UNAVAILABLE" },
      });
      expect(Date.now() - started).toBeLessThan(10_000); // the request deadlines, not a hang
      expect(h.submitted).toEqual([]);
      expect(await h.cursor(route)).toBeNull();
    } finally {
      hung.destroy();
      await silent.close();
    }
    // through the working client, the lock is refunded
    const h = harnessOf(route);
    expect((await h.scan()).refunds).toEqual([lockId]);
  });

  test("a destination reorg under the isMinted read: no refund from that read, one from the next pass", async () => {
    const route = await newRoute();
    const deadline = await deadlineIn(100);
    const lockId = await lock(route, deadline);
    await mine(source, CONFIRMATIONS);
    const snapshot = await destination.rpc<string>("evm_snapshot");
    const observed = await passDeadline(deadline);
    const replaced = (await blockOf(observed)).hash;
    const h = harnessOf(route);
    const original = destinationRpc.send.bind(destinationRpc);
    const isMinted = CROSSCHAIN_VIEWS.encodeFunctionData("isMinted", [lockId]);
    let reorged = false;
    const rpcSpy = jest.spyOn(destinationRpc, "send").mockImplementation(async (method, params, attempts) => {
      const answer = await original(method, params, attempts);
      if (!reorged && method === "eth_call" && (params[0] as { data: string }).data === isMinted) {
        // the observed block is replaced (another branch, other timestamps) right after the read
        reorged = true;
        await destination.rpc("evm_revert", [snapshot]);
        await passDeadline(deadline + 5);
      }
      return answer as never;
    });
    let report: DeadlineReport;
    try {
      report = await h.scan();
    } finally {
      rpcSpy.mockRestore();
    }
    expect(reorged).toBe(true);
    expect(report).toEqual({
      refunds: [],
      minted: [],
      refunded: [],
      pending: [lockId],
      failed: { [lockId]: "ERR_TRIGGER_CHAIN_INCONSISTENT" },
    });
    expect(h.submitted).toEqual([]);
    expect((await blockOf(observed)).hash).not.toBe(replaced);

    expect((await h.scan()).refunds).toEqual([lockId]);
    const source_ = h.submitted[0]!.source as { blockNumber: number; blockHash: string };
    expect(source_.blockHash).toBe((await blockOf(source_.blockNumber)).hash);
    expect(source_.blockHash).not.toBe(replaced);
  });

  test("start and stop: the loop submits a due refund and stops after its pass", async () => {
    const route = await newRoute();
    const deadline = await deadlineIn(100);
    const lockId = await lock(route, deadline);
    await mine(source, CONFIRMATIONS);
    await passDeadline(deadline);
    const h = harnessOf(route, { pollIntervalMs: 20 });
    h.watcher.start();
    try {
      const until = Date.now() + 20_000;
      while (h.submitted.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    } finally {
      await h.watcher.stop();
    }
    expect(h.submitted.map((e) => e.eventId)).toEqual([refundEventIdOf(lockId)]);
    expect(await h.cursor(route)).toBe("1");
  });
});
