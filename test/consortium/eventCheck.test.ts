/**
 * The follower's event check (runtime/consortium/eventCheck.ts, runtime/crosschain/refundCheck.ts; docs/consortium.md
 * "What a follower checks") against two real `hardhat node`s: a source chain with a `CryptletLockbox` and the
 * oracle, a destination chain with its `CryptletWrappedToken`, each with a registry that trusts three member keys
 * (threshold 2) and approves the real `@cryptlet/xchain-transfer` package built with esbuild. The events checked are
 * made by the runtime's own triggers: the `ChainLogListener` (the package's `crosschain` subscriptions) for the
 * `Locked` log, the `DeadlineWatcher` for the refund observation, `oracleEventOf` for the oracle request, each with a
 * stand-in pipeline that records what is submitted (shared Redis, this file's own key prefix).
 *
 * - a real `Locked` log's event and input pass; one argument changed (amount, recipient, token), another log index,
 *   a transaction that does not exist, the hash of another block, another time or event id: the event is false
 *   (`ERR_COSIGN_EVENT_NOT_ON_CHAIN`, the reason naming what differed);
 * - no client of the chain, an unreachable node, a node that never answers (the per-call deadline), a node of
 *   another chain, a node behind the event's block: cannot check (`ERR_COSIGN_EVENT_UNVERIFIABLE`);
 * - the watcher's refund observation of an unminted lock after its deadline passes; of a minted lock, with another
 *   timestamp, before the deadline, with another amount or token: false;
 * - an oracle request passes as the trigger makes it, and fails with other params or for another Cryptlet;
 * - through `evaluateProposal`: a leader fabricates a `Locked` input (a lock that never happened, a huge amount) on a
 *   real transaction; it re-executes to the very output the leader proposes, and the wrapped token would mint it
 *   with two signatures, but the honest follower dissents `ERR_COSIGN_EVENT_NOT_ON_CHAIN` and signs nothing.
 */
import { jest } from "@jest/globals";
import net from "node:net";
import path from "node:path";

import { AbiCoder, Contract, EventFragment, MaxUint256, Wallet, getAddress, id, keccak256, toUtf8Bytes } from "ethers";

import { bundleResultToStruct } from "../../runtime/attestation/bundle.ts";
import { computeResultId, type CryptletResult, type Hex32 } from "../../runtime/attestation/eip712.ts";
import { buildRunEvidence, evidenceInputHash, type RunEvidence } from "../../runtime/attestation/evidence.ts";
import { encodeManifestOutput } from "../../runtime/attestation/hashing.ts";
import { chainLogEventId } from "../../runtime/attestation/ids.ts";
import { signCryptletResult } from "../../runtime/attestation/signing.ts";
import type { ChainConfig } from "../../runtime/chains/config.ts";
import { crosschainChainConfig } from "../support/crosschain.ts";
import { deployCryptletContracts, interfaceOf } from "../../runtime/chains/contracts.ts";
import { ChainRpc } from "../../runtime/chains/rpc.ts";
import type { ChainWriter } from "../../runtime/chains/writer.ts";
import {
  checkEventOnChain,
  eventCheckOptionsOf,
  type ChainClients,
  type EventCheckOptions,
  type JsonRpcClient,
} from "../../runtime/consortium/eventCheck.ts";
import {
  CosignDissentError,
  DISSENT_CODES,
  ERR_COSIGN_EVENT_NOT_ON_CHAIN,
  ERR_COSIGN_EVENT_UNVERIFIABLE,
} from "../../runtime/consortium/errors.ts";
import { evaluateProposal, type FollowerDeps } from "../../runtime/consortium/follower.ts";
import type { ConsortiumSettings, CosignProposal } from "../../runtime/consortium/protocol.ts";
import { DeadlineWatcher } from "../../runtime/crosschain/deadlineWatcher.ts";
import { deployCrosschainRoute, type DeployedRoute } from "../../runtime/crosschain/deploy.ts";
import { lockIdOf, refundEventIdOf } from "../../runtime/crosschain/events.ts";
import { checkRefundObservation } from "../../runtime/crosschain/refundCheck.ts";
import { crosschainSubscriptionsOf, type RefundInput } from "../../runtime/crosschain/routes.ts";
import { buildPackage } from "../../runtime/packages/build.ts";
import type { BuiltPackage } from "../../runtime/packages/builtPackage.ts";
import type { PackageStore } from "../../runtime/packages/PackageStore.ts";
import { sandboxOptionsFromManifest } from "../../runtime/packages/sandboxOptions.ts";
import type { PipelineChain, PipelineContext } from "../../runtime/queue/context.ts";
import type { Pipeline, SubmittedRun } from "../../runtime/queue/pipeline.ts";
import { openRedis, scanKeys, type RedisClient } from "../../runtime/queue/redisClient.ts";
import type { CryptletEvent } from "../../runtime/queue/topology.ts";
import { reexecuteRun } from "../../runtime/reexecution/reexecute.ts";
import { SandboxPool } from "../../runtime/sandbox/pool.ts";
import type { JsonValue } from "../../runtime/sdk/index.ts";
import { ChainLogListener } from "../../runtime/triggers/ChainLogListener.ts";
import { decodeLog, type ChainLogInput, type RpcLog } from "../../runtime/triggers/decodeLog.ts";
import { oracleEventOf } from "../../runtime/triggers/oracleRequest.ts";
import {
  latestBlockOf as latest,
  mineBlockAt as mineAt,
  mineBlocks as mine,
  sendAndWait as send,
  startHardhatNode,
  type HardhatNode,
} from "../support/hardhatNode.ts";
import { startSilentServer } from "../support/tcpProxy.ts";

jest.setTimeout(180_000);

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const CONSORTIUM = id("consortium:event-check-test") as Hex32;
const SOURCE_ID = 73_421;
const DESTINATION_ID = 73_422;
const CONFIRMATIONS = 2; // the package's crosschain trigger
const AMOUNT = 1_000n;
const PKG_DIR = path.resolve(import.meta.dirname, "..", "..", "cryptlets", "xchain-transfer");
const NOT_ON_CHAIN = "ERR_COSIGN_EVENT_NOT_ON_CHAIN";
const UNVERIFIABLE = "ERR_COSIGN_EVENT_UNVERIFIABLE";

/** The normalised event (what the evidence holds) and the input of a submitted event. */
interface Evidenced {
  event: { eventId: string; requestId: string; source: Record<string, unknown>; time: number };
  input: Record<string, unknown>;
}

const normalised = (e: CryptletEvent): Evidenced => ({
  event: { eventId: e.eventId, requestId: e.requestId ?? e.eventId, source: { ...e.source }, time: e.time },
  input: structuredClone(e.input) as Record<string, unknown>,
});

const wallets = Array.from({ length: 3 }, (_, i) => new Wallet(id(`event-check-member-${i}`)));
const recipient = Wallet.createRandom().address;
const prefix = `t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}-evc`;

let source: HardhatNode;
let destination: HardhatNode;
let sourceRpc: ChainRpc;
let destinationRpc: ChainRpc;
let chains: ChainClients;
let redis: RedisClient;
let sandbox: SandboxPool;
let pkg: BuiltPackage;
let registries: { source: string; destination: string };
let oracle: string;
/** The route whose `Locked` the listener saw, and that event. */
let route: DeployedRoute;
let locked: Evidenced;
let lockDeadline: number;
/** Both chains' configurations with the first route's contracts for the package. */
let routeConfigs: ChainConfig[];

// ---------------------------------------------------------------- helpers

/** A pipeline stand-in over both chains (with `route`'s contracts configured for the package) recording submissions. */
function standIn(forRoute: DeployedRoute): { pipeline: Pipeline; submitted: CryptletEvent[]; configs: ChainConfig[] } {
  const name = pkg.manifest.name;
  const configs = [
    crosschainChainConfig("source", SOURCE_ID, source.url, { [name]: { lockbox: forRoute.lockbox } }),
    crosschainChainConfig("destination", DESTINATION_ID, destination.url, {
      [name]: { wrappedTokens: [forRoute.wrappedToken] },
    }),
  ];
  const pipelineChains = new Map<string, PipelineChain>([
    ["source", { config: configs[0]!, writer: { rpc: sourceRpc } as unknown as ChainWriter }],
    ["destination", { config: configs[1]!, writer: { rpc: destinationRpc } as unknown as ChainWriter }],
  ]);
  const submitted: CryptletEvent[] = [];
  const ctx = { redis, prefix, chains: pipelineChains } as unknown as PipelineContext;
  const pipeline = {
    ctx,
    submit: (event: CryptletEvent): Promise<SubmittedRun> => {
      submitted.push(event);
      const resultId = computeResultId(pkg.cryptletId, event.requestId ?? event.eventId);
      return Promise.resolve({ runId: resultId, resultId });
    },
  } as unknown as Pipeline;
  return { pipeline, submitted, configs };
}

const newRoute = () =>
  deployCrosschainRoute(
    { deployer: source.funder, chainId: SOURCE_ID, registry: registries.source },
    { deployer: destination.funder, chainId: DESTINATION_ID, registry: registries.destination },
    { cryptletId: pkg.cryptletId },
  );

const approvedFor = new Set<string>();
/** Locks AMOUNT (or `amount`) toward the destination; returns the lock id and the transaction hash. */
async function lock(r: DeployedRoute, deadline: number, amount = AMOUNT) {
  const token = new Contract(r.token, interfaceOf("TestERC20"), source.funder);
  const lockbox = new Contract(r.lockbox, interfaceOf("CryptletLockbox"), source.funder);
  await send(token, "mint", source.funder.address, amount);
  if (!approvedFor.has(r.lockbox)) {
    await send(token, "approve", r.lockbox, MaxUint256);
    approvedFor.add(r.lockbox);
  }
  const nonce = (await lockbox.getFunction("lockCount")()) as bigint;
  const receipt = await send(lockbox, "lock", amount, r.destinationChainId, recipient, deadline);
  return { lockId: lockIdOf(r.sourceChainId, r.lockbox, nonce), txHash: receipt.hash };
}

/** A deadline `seconds` after the later of both chains' latest block times. */
const deadlineIn = async (seconds: number) =>
  Math.max((await latest(source)).timestamp, (await latest(destination)).timestamp) + seconds;

/** The raw receipt, as the node answers `eth_getTransactionReceipt`. */
const receiptOf = (node: HardhatNode, txHash: string) =>
  node.rpc<{ logs: RpcLog[]; blockNumber: string; blockHash: string }>("eth_getTransactionReceipt", [txHash]);

/**
 * The check as the follower makes it: the package's declared events (Locked and Burned, with their names and
 * indexed markers) and the contracts it listens to in `configs` (default: the first route's).
 */
const check = (
  e: Evidenced,
  over: { chains?: ChainClients | undefined; timeoutMs?: number; configs?: ChainConfig[] } & EventCheckOptions = {},
) => {
  const { chains: _chains, configs, ...options } = over;
  return checkEventOnChain(e.event, e.input, "chains" in over ? over.chains : chains, {
    ...eventCheckOptionsOf(pkg.manifest, configs ?? routeConfigs),
    cryptletId: pkg.cryptletId,
    ...options,
  });
};

/** `locked` with the input's args changed (a leader that lies about the log's arguments). */
function withArgs(e: Evidenced, args: Record<string, unknown>): Evidenced {
  const input = structuredClone(e.input) as unknown as ChainLogInput;
  return {
    event: e.event,
    input: { ...input, args: { ...input.args, ...args } } as unknown as Record<string, unknown>,
  };
}

/** `e` at another log position, told consistently (source, event id and the input's own position). */
function movedTo(e: Evidenced, position: { blockHash?: string; txHash?: string; logIndex?: number }): Evidenced {
  const s = { ...e.event.source, ...position } as { blockHash: string; txHash: string; logIndex: number };
  const eventId = chainLogEventId({
    chainId: SOURCE_ID,
    blockHash: s.blockHash,
    txHash: s.txHash,
    logIndex: s.logIndex,
  });
  return {
    event: { ...e.event, eventId, requestId: eventId, source: s as unknown as Record<string, unknown> },
    input: { ...e.input, blockHash: s.blockHash, txHash: s.txHash, logIndex: s.logIndex },
  };
}

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

// ---------------------------------------------------------------- setup

beforeAll(async () => {
  [source, destination] = await Promise.all([startHardhatNode(SOURCE_ID), startHardhatNode(DESTINATION_ID)]);
  redis = openRedis({ url: REDIS_URL });
  sandbox = new SandboxPool(1);
  pkg = await buildPackage(PKG_DIR, { outDir: false });
  const deploy = async (node: HardhatNode) => {
    const contracts = await deployCryptletContracts(node.funder, {
      consortiumId: CONSORTIUM,
      signers: wallets.map((w) => w.address),
      threshold: 2,
    });
    const governed = new Contract(contracts.registry, interfaceOf("CryptletRegistry"), node.funder);
    await send(governed, "approveCodeHash", pkg.cryptletId, pkg.codeHash);
    return contracts;
  };
  const [onSource, onDestination] = [await deploy(source), await deploy(destination)];
  registries = { source: onSource.registry, destination: onDestination.registry };
  oracle = onSource.oracle;
  sourceRpc = new ChainRpc(crosschainChainConfig("source", SOURCE_ID, source.url), { breaker: false });
  destinationRpc = new ChainRpc(crosschainChainConfig("destination", DESTINATION_ID, destination.url), {
    breaker: false,
  });
  chains = new Map<number, JsonRpcClient>([
    [SOURCE_ID, sourceRpc],
    [DESTINATION_ID, destinationRpc],
  ]);

  // The runtime's own trigger makes the Locked event: the package's crosschain subscriptions, scanned by the
  // chain-log listener once the lock has its confirmations.
  route = await newRoute();
  const { pipeline, submitted, configs } = standIn(route);
  routeConfigs = configs;
  const listener = new ChainLogListener({ pipeline, subscriptions: crosschainSubscriptionsOf([pkg], configs) });
  await listener.scanOnce(); // checkpoints at the heads: only new logs from here
  lockDeadline = await deadlineIn(3_600);
  await lock(route, lockDeadline);
  await mine(source, CONFIRMATIONS);
  await listener.scanOnce();
  const event = submitted.find((e) => (e.input as { event?: string }).event === "Locked");
  if (!event) throw new Error(`the listener submitted no Locked event (${submitted.length} events)`);
  locked = normalised(event);
});

afterAll(async () => {
  await sandbox?.dispose();
  sourceRpc?.destroy();
  destinationRpc?.destroy();
  await Promise.all([source?.stop(), destination?.stop()]);
  if (redis) {
    for await (const keys of scanKeys(redis, `${prefix}:*`)) await Promise.all(keys.map((k) => redis.del(k)));
    await redis.quit();
  }
});

// ---------------------------------------------------------------- chain-log

describe("a Locked log (chain-log source)", () => {
  it("passes as the chain-log listener made it, single or grouped", async () => {
    expect(locked.event.source).toEqual(expect.objectContaining({ type: "chain-log", chainId: SOURCE_ID }));
    expect(await check(locked)).toEqual({ ok: true, checked: "chain-log" });
    // The same log as a `group: "transaction"` event: every matching log of the transaction, in order.
    const input = locked.input as unknown as ChainLogInput;
    const grouped: Evidenced = {
      event: locked.event,
      input: { logs: [input], blockNumber: input.blockNumber, txHash: input.txHash, timestamp: input.timestamp },
    };
    expect(await check(grouped)).toEqual({ ok: true, checked: "chain-log" });
    const padded = {
      ...grouped,
      input: { ...grouped.input, logs: [input, { ...input, logIndex: input.logIndex + 1 }] },
    };
    expect(await check(padded)).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("input.logs (2 entries, the chain's 1)"),
    });
    const inflated = {
      ...grouped,
      input: { ...grouped.input, logs: [{ ...input, args: { ...input.args, amount: "1000000" } }] },
    };
    expect(await check(inflated)).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("input.logs[0].args.amount"),
    });
  });

  it.each([
    ["amount", { amount: (AMOUNT * 1000n).toString() }],
    ["recipient", { recipient: Wallet.createRandom().address }],
    ["token", { token: Wallet.createRandom().address }],
    ["lockId", { lockId: id("a lock that never happened") }],
  ])("one argument changed (%s): the event is false, the reason names it", async (name, args) => {
    const answer = await check(withArgs(locked, args));
    expect(answer).toEqual({ ok: false, code: NOT_ON_CHAIN, reason: expect.stringContaining(`input.args.${name} `) });
    // No value of the input is in the reason.
    expect(answer.ok === false && answer.reason).not.toContain(Object.values(args)[0]);
  });

  it("another log index, a transaction that does not exist, the hash of another block: false, naming what differed", async () => {
    const s = locked.event.source as { txHash: string; blockNumber: number; blockHash: string; logIndex: number };
    const receipt = await receiptOf(source, s.txHash);
    const other = receipt.logs.find((l) => Number(BigInt(l.logIndex)) !== s.logIndex)!; // the token's Transfer
    expect(await check(movedTo(locked, { logIndex: Number(BigInt(other.logIndex)) }))).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringMatching(/at index \d+ of transaction .* was not emitted by event\.source\.address/),
    });
    expect(await check(movedTo(locked, { logIndex: 99 }))).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("has no log at event.source.logIndex 99"),
    });
    expect(await check(movedTo(locked, { txHash: id("no such transaction") }))).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("has no transaction event.source.txHash"),
    });
    const previous = (await source.provider.getBlock(s.blockNumber - 1))!;
    expect(await check(movedTo(locked, { blockHash: previous.hash! }))).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("event.source.blockHash differs"),
    });
    // Claimed at another height with that height's hash: the transaction is not in that block.
    const claimed = { ...movedTo(locked, { blockHash: previous.hash! }) };
    claimed.event.source = { ...claimed.event.source, blockNumber: s.blockNumber - 1 };
    expect(await check(claimed)).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("event.source.blockNumber differs"),
    });
  });

  it("another time, event id or request id than the log's: false", async () => {
    expect(await check({ ...locked, event: { ...locked.event, time: locked.event.time + 1 } })).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("event.time is not what this runtime makes"),
    });
    expect(await check({ ...locked, event: { ...locked.event, eventId: id("other") } })).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("event.eventId"),
    });
    expect(await check({ ...locked, event: { ...locked.event, requestId: id("other") } })).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("event.requestId"),
    });
    // The input's own time (the block's timestamp) too.
    expect(await check({ ...locked, input: { ...locked.input, timestamp: 1 } })).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("input.timestamp"),
    });
  });

  it("cannot be checked: no client of the chain, an unreachable node, a silent node (deadline), another chain, a node behind", async () => {
    expect(await check(locked, { chains: undefined })).toEqual({
      ok: false,
      code: UNVERIFIABLE,
      reason: expect.stringContaining(`no JSON-RPC client of chain ${SOURCE_ID}`),
    });
    expect(await check(locked, { chains: new Map([[DESTINATION_ID, destinationRpc]]) })).toEqual({
      ok: false,
      code: UNVERIFIABLE,
      reason: expect.stringContaining(`no JSON-RPC client of chain ${SOURCE_ID}`),
    });

    const down = new ChainRpc(crosschainChainConfig("down", SOURCE_ID, `http://127.0.0.1:${await closedPort()}`), {
      breaker: false,
      requestTimeoutMs: 1000,
    });
    try {
      expect(await check(locked, { chains: new Map([[SOURCE_ID, down]]) })).toEqual({
        ok: false,
        code: UNVERIFIABLE,
        reason: expect.stringContaining(`eth_chainId on chain ${SOURCE_ID} failed`),
      });
    } finally {
      down.destroy();
    }

    const silent = await startSilentServer();
    const hanging = new ChainRpc(crosschainChainConfig("silent", SOURCE_ID, `http://127.0.0.1:${silent.port}`), {
      breaker: false,
      requestTimeoutMs: 60_000,
    });
    try {
      const started = Date.now();
      expect(await check(locked, { chains: new Map([[SOURCE_ID, hanging]]), timeoutMs: 300 })).toEqual({
        ok: false,
        code: UNVERIFIABLE,
        reason: expect.stringContaining("no answer within 300 ms"),
      });
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      hanging.destroy();
      await silent.close();
    }

    // A client configured for the source chain id that reaches the destination's node.
    expect(await check(locked, { chains: new Map([[SOURCE_ID, destination.provider]]) })).toEqual({
      ok: false,
      code: UNVERIFIABLE,
      reason: expect.stringContaining(`answers chain id 0x${DESTINATION_ID.toString(16)}`),
    });

    // A node that has not reached the event's block yet (a stand-in over the real node, at block 1).
    const behind: JsonRpcClient = {
      async send(method, params) {
        if (method === "eth_getTransactionReceipt") return null;
        const answer = await source.provider.send(method, params);
        return method === "eth_blockNumber" ? "0x1" : answer;
      },
    };
    expect(await check(locked, { chains: new Map([[SOURCE_ID, behind]]) })).toEqual({
      ok: false,
      code: UNVERIFIABLE,
      reason: expect.stringMatching(/is at block \d+, below block \d+: not yet/),
    });
  });

  it("a real Locked of a lockbox this member's configuration does not name for the package: cannot check", async () => {
    // Anyone can deploy a lockbox (or any contract emitting a look-alike Locked) and lock on it.
    const unnamed = await newRoute();
    const { pipeline, submitted, configs } = standIn(unnamed);
    const listener = new ChainLogListener({ pipeline, subscriptions: crosschainSubscriptionsOf([pkg], configs) });
    await listener.scanOnce();
    await lock(unnamed, lockDeadline);
    await mine(source, CONFIRMATIONS);
    await listener.scanOnce();
    const real = normalised(submitted.find((e) => (e.input as { event?: string }).event === "Locked")!);
    expect(await check(real, { configs })).toEqual({ ok: true, checked: "chain-log" });
    expect(await check(real)).toEqual({
      ok: false,
      code: UNVERIFIABLE,
      reason: expect.stringContaining(
        "event.source.address is no contract whose logs the package's triggers listen to",
      ),
    });
  });

  it("HTTP and schedule events: nothing on a chain to check; an unknown source or chain-state input: cannot check", async () => {
    const http = { eventId: id("k"), requestId: id("k"), source: { type: "http", idempotencyKey: "k" }, time: 1 };
    expect(await checkEventOnChain(http, { any: "input" }, undefined)).toEqual({ ok: true, checked: "none" });
    const schedule = { ...http, source: { type: "schedule", slotTime: 60 } };
    expect(await checkEventOnChain(schedule, null, undefined)).toEqual({ ok: true, checked: "none" });
    expect(await checkEventOnChain({ ...http, source: { type: "carrier-pigeon" } }, null, chains)).toEqual({
      ok: false,
      code: UNVERIFIABLE,
      reason: expect.stringContaining("cannot be checked"),
    });
    const state = { ...http, source: { type: "chain-state", chainId: DESTINATION_ID, blockNumber: 1 } };
    expect(await checkEventOnChain(state, { kind: "balance" }, chains)).toEqual({
      ok: false,
      code: UNVERIFIABLE,
      reason: expect.stringContaining("other than a refund observation"),
    });
    expect(await checkEventOnChain({ kind: "http" }, null, chains)).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("not a normalised event"),
    });
  });

  it("decodes with the package's declared indexed markers when they are not the leading parameters", async () => {
    // A log of `event Moved(uint256 amount, address indexed to)` (one topic besides the selector, not the first
    // parameter), served by an in-memory JSON-RPC stand-in: decoded with the bare signature, `to` and `amount`
    // would swap places.
    const declared = "event Moved(uint256 amount, address indexed to)";
    const fragment = EventFragment.from(declared);
    const to = Wallet.createRandom().address;
    const coder = AbiCoder.defaultAbiCoder();
    const blockHash = id("block");
    const txHash = id("tx");
    const log: RpcLog = {
      address: "0x00000000000000000000000000000000000000aa",
      topics: [fragment.topicHash, coder.encode(["address"], [to])],
      data: coder.encode(["uint256"], [5n]),
      blockNumber: "0x7",
      blockHash,
      transactionHash: txHash,
      logIndex: "0x0",
    };
    const fake: JsonRpcClient = {
      send(method) {
        const answers: Record<string, unknown> = {
          eth_chainId: "0x1",
          eth_getTransactionReceipt: { transactionHash: txHash, blockHash, blockNumber: "0x7", logs: [log] },
          eth_getBlockByNumber: { hash: blockHash, timestamp: "0x64" },
          eth_blockNumber: "0x9",
        };
        return Promise.resolve(answers[method]);
      },
    };
    const input = decodeLog(fragment, { ...log, address: getAddress(log.address) }, 100);
    expect(input.args).toEqual({ amount: "5", to });
    const eventId = chainLogEventId({ chainId: 1, blockHash, txHash, logIndex: 0 });
    const event = {
      eventId,
      requestId: eventId,
      source: { type: "chain-log", chainId: 1, address: input.address, blockNumber: 7, blockHash, txHash, logIndex: 0 },
      time: 100,
    };
    const fakeChains = new Map([[1, fake]]);
    expect(await checkEventOnChain(event, input, fakeChains, { events: [declared] })).toEqual({
      ok: true,
      checked: "chain-log",
    });
    // Without the declaration the parameters' names are unknown: the named input cannot be checked.
    expect(await checkEventOnChain(event, input, fakeChains)).toEqual({
      ok: false,
      code: UNVERIFIABLE,
      reason: expect.stringContaining("declares no trigger event of input.signature"),
    });
    // A subscription of the bare signature (no names): its first parameter indexed, and so it is decoded.
    const bare = decodeLog(EventFragment.from("event Moved(uint256,address)"), { ...log, address: input.address }, 100);
    expect(await checkEventOnChain(event, bare, fakeChains)).toEqual({ ok: true, checked: "chain-log" });
    // With the declaration, the bare reading (values in other places) is refused: it is not the trigger's.
    expect(await checkEventOnChain(event, bare, fakeChains, { events: [declared] })).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("input.args.0 (not made by the trigger)"),
    });
  });
});

// ---------------------------------------------------------------- oracle

describe("an oracle request (oracle source)", () => {
  it("passes as the trigger makes it; other params, another Cryptlet or consumer are false", async () => {
    const contract = new Contract(oracle, interfaceOf("CryptletOracle"), source.funder);
    const receipt = await send(contract, "request", pkg.cryptletId, toUtf8Bytes('{"pair":"ETH/USD"}'), 100_000);
    const raw = await receiptOf(source, receipt.hash);
    const log = raw.logs.find((l) => l.address.toLowerCase() === oracle.toLowerCase())!;
    const block = (await source.provider.getBlock(receipt.blockNumber))!;
    const packages = {
      resolve: () =>
        Promise.resolve({
          manifest: { name: pkg.manifest.name, version: "1.0.0", triggers: [{ type: "oracle", chain: "source" }] },
        }),
    } as unknown as PackageStore;
    const made = normalised(
      await oracleEventOf(log, { chain: "source", chainId: SOURCE_ID, packages, timestamp: block.timestamp }),
    );
    expect(made.input).toEqual({ pair: "ETH/USD" });
    // The package (here, as if it had an oracle trigger on the source chain) and this member's oracle there.
    const oracles = new Map([[SOURCE_ID, oracle]]);
    const check = (e: Evidenced, options: EventCheckOptions = {}) =>
      checkEventOnChain(e.event, e.input, chains, { cryptletId: pkg.cryptletId, oracles, ...options });
    expect(await check(made)).toEqual({ ok: true, checked: "oracle" });
    // Another oracle contract (a look-alike could emit a real request's id with other params): cannot vouch for it.
    expect(await check(made, { oracles: new Map([[SOURCE_ID, Wallet.createRandom().address]]) })).toEqual({
      ok: false,
      code: UNVERIFIABLE,
      reason: expect.stringContaining("event.source.oracle is not the CryptletOracle of chain"),
    });
    expect(await check(made, { oracles: new Map() })).toEqual(expect.objectContaining({ code: UNVERIFIABLE }));
    expect(await check({ ...made, input: { pair: "BTC/USD" } })).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("input.pair differs from the params"),
    });
    expect(await check(made, { cryptletId: id("another cryptlet") })).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("another Cryptlet"),
    });
    const otherConsumer = { ...made.event, source: { ...made.event.source, consumer: Wallet.createRandom().address } };
    expect(await check({ ...made, event: otherConsumer })).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("event.source.consumer"),
    });
  });
});

// ---------------------------------------------------------------- refund observations

describe("a refund observation (chain-state source, RefundInput)", () => {
  let refund: Evidenced;
  let r: DeployedRoute;
  let mintedLockId: string;
  let deadline: number;
  let lockBlock: number;

  beforeAll(async () => {
    // A route of its own: one lock left unminted, one minted before the deadline; then the deadline passes.
    r = await newRoute();
    deadline = await deadlineIn(120);
    await lock(r, deadline);
    const minted = await lock(r, deadline);
    mintedLockId = minted.lockId;
    lockBlock = (await latest(destination)).number; // a destination block before the deadline
    const abiType = (pkg.manifest.output as { abiOneOf: string[] }).abiOneOf[0]!;
    const payload = AbiCoder.defaultAbiCoder().encode(
      [abiType],
      [
        {
          kind: 1,
          lockId: mintedLockId,
          sourceChainId: SOURCE_ID,
          lockbox: r.lockbox,
          destinationChainId: DESTINATION_ID,
          token: r.wrappedToken,
          recipient,
          amount: AMOUNT,
          deadline,
        },
      ],
    );
    const requestId = id(`mint:${mintedLockId}`) as Hex32;
    const result: CryptletResult = {
      resultId: computeResultId(pkg.cryptletId, requestId),
      cryptletId: pkg.cryptletId,
      codeHash: pkg.codeHash,
      inputHash: id("input") as Hex32,
      outputHash: keccak256(payload) as Hex32,
      timestamp: BigInt(deadline - 60),
    };
    const signatures = await signCryptletResult(CONSORTIUM, result, wallets.slice(0, 2));
    const wrapped = new Contract(r.wrappedToken, interfaceOf("CryptletWrappedToken"), destination.funder);
    await send(
      wrapped,
      "mint",
      result,
      payload,
      signatures.map((s) => s.signature),
    );

    await mineAt(destination, Math.max(deadline + 1, (await latest(destination)).timestamp + 1));
    await mine(destination, CONFIRMATIONS);
    await mine(source, CONFIRMATIONS);
    // The runtime's deadline watcher makes the refund observation.
    const { pipeline, submitted } = standIn(r);
    const watcher = new DeadlineWatcher({ pipeline });
    watcher.setPackages([{ name: pkg.manifest.name, confirmations: CONFIRMATIONS }]);
    const report = await watcher.scanOnce();
    expect(report).toEqual(expect.objectContaining({ minted: [mintedLockId], failed: {} }));
    expect(submitted).toHaveLength(1);
    refund = normalised(submitted[0]!);
  });

  const lockOf = (ev: Evidenced) => (ev.input as unknown as RefundInput).lock;
  /** `refund` with the observation at another block or time, told consistently (source, observation, time). */
  function observedAt(block: { blockNumber?: number; blockHash?: string; timestamp?: number }): Evidenced {
    const input = refund.input as unknown as RefundInput;
    const observation = { ...input.observation, ...block };
    return {
      event: { ...refund.event, source: { ...refund.event.source, ...block }, time: observation.timestamp },
      input: { ...input, observation } as unknown as Record<string, unknown>,
    };
  }
  /** `refund` for another lock (its event id follows). */
  function ofLock(lockChanges: Partial<RefundInput["lock"]>): Evidenced {
    const input = refund.input as unknown as RefundInput;
    const changed = { ...input.lock, ...lockChanges };
    const eventId = refundEventIdOf(changed.lockId);
    return {
      event: { ...refund.event, eventId, requestId: eventId },
      input: { ...input, lock: changed } as unknown as Record<string, unknown>,
    };
  }

  it("of an unminted lock after its deadline: passes, as the watcher made it", async () => {
    expect(refund.event.source).toEqual(expect.objectContaining({ type: "chain-state", chainId: DESTINATION_ID }));
    expect(refund.event.eventId).toBe(refundEventIdOf(lockOf(refund).lockId));
    expect(await check(refund)).toEqual({ ok: true, checked: "refund" });
    expect(await checkRefundObservation(refund.input, refund.event.source, chains)).toEqual({ ok: true });
  });

  it("of a minted lock: false", async () => {
    expect(await check(ofLock({ lockId: mintedLockId }))).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("input.lock.lockId was minted by input.lock.token as of block"),
    });
  });

  it("with another timestamp, at a block before the deadline, at another block's hash: false", async () => {
    const s = refund.event.source as { timestamp: number; blockNumber: number };
    expect(await check(observedAt({ timestamp: s.timestamp + 1 }))).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("event.source.timestamp is not the timestamp of block"),
    });
    const before = (await destination.provider.getBlock(lockBlock))!;
    expect(
      await check(observedAt({ blockNumber: before.number, blockHash: before.hash!, timestamp: before.timestamp })),
    ).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("is not after input.lock.deadline"),
    });
    expect(await check(observedAt({ blockHash: before.hash! }))).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("event.source.blockHash is not canonical"),
    });
  });

  it("with another amount, sender, token or event id than the lockbox's: false", async () => {
    expect(await check(ofLock({ amount: (AMOUNT * 10n).toString() }))).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("input.lock.amount differs from lockOf(lockId)"),
    });
    expect(await check(ofLock({ sender: Wallet.createRandom().address }))).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("input.lock.sender differs"),
    });
    // The first route's wrapped token: a real wrapped token, not this lockbox's peer.
    expect(await check(ofLock({ token: route.wrappedToken }))).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("input.lock.token is not the lockbox's peerOf(destinationChainId)"),
    });
    expect(await check(ofLock({ lockId: id("never locked") }))).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("holds no lock input.lock.lockId"),
    });
    expect(await check({ ...refund, event: { ...refund.event, eventId: id("x"), requestId: id("x") } })).toEqual({
      ok: false,
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("event.eventId"),
    });
  });

  it("with a chain this member cannot read: cannot check", async () => {
    expect(await check(refund, { chains: new Map([[DESTINATION_ID, destinationRpc]]) })).toEqual({
      ok: false,
      code: UNVERIFIABLE,
      reason: expect.stringContaining(`no JSON-RPC client of chain ${SOURCE_ID}`),
    });
    const down = new ChainRpc(crosschainChainConfig("down", DESTINATION_ID, `http://127.0.0.1:${await closedPort()}`), {
      breaker: false,
      requestTimeoutMs: 1000,
    });
    try {
      expect(
        await check(refund, {
          chains: new Map<number, JsonRpcClient>([
            [SOURCE_ID, sourceRpc],
            [DESTINATION_ID, down],
          ]),
        }),
      ).toEqual({
        ok: false,
        code: UNVERIFIABLE,
        reason: expect.stringContaining(`on chain ${DESTINATION_ID} failed`),
      });
    } finally {
      down.destroy();
    }
  });
});

// ---------------------------------------------------------------- through evaluateProposal

describe("a follower's evaluateProposal", () => {
  const [leaderKey, followerKey, thirdKey] = wallets as [Wallet, Wallet, Wallet];
  const settings: ConsortiumSettings = {
    self: "follower",
    members: [
      { id: "leader", url: "http://leader.invalid", jwks: { keys: [] }, signer: leaderKey.address },
      { id: "follower", url: "http://follower.invalid", jwks: { keys: [] }, signer: followerKey.address },
      { id: "third", url: "http://third.invalid", jwks: { keys: [] }, signer: thirdKey.address },
    ],
    threshold: 2,
  };
  const depsOf = (over: Partial<FollowerDeps> = {}): FollowerDeps => ({
    settings,
    consortiumId: CONSORTIUM,
    packages: {
      getByCodeHash: (codeHash: string) =>
        codeHash.toLowerCase() === pkg.codeHash.toLowerCase()
          ? Promise.resolve(pkg)
          : Promise.reject(new Error("no such package")),
    },
    sandbox,
    signer: followerKey,
    registries: [
      { chain: "source", runner: source.provider, registry: registries.source },
      { chain: "destination", runner: destination.provider, registry: registries.destination },
    ],
    chains,
    chainConfigs: routeConfigs,
    ...over,
  });

  /** What a leader does: run the package on the event and input, and propose the result with its signature. */
  async function propose(e: Evidenced): Promise<CosignProposal> {
    const { engine, load } = sandboxOptionsFromManifest(pkg.manifest);
    const context = {
      requestId: e.event.requestId as Hex32,
      resultId: computeResultId(pkg.cryptletId, e.event.requestId as Hex32),
      now: e.event.time,
    };
    const run = await sandbox.run(
      { codeHash: pkg.codeHash, bundle: pkg.bundle, engine, options: load },
      e.input as JsonValue,
      { event: e.event as unknown as JsonValue, ...context },
    );
    const evidence: RunEvidence = buildRunEvidence({
      event: e.event,
      input: e.input,
      context,
      hostCalls: run.hostCalls,
    });
    const output = pkg.manifest.output as { abiOneOf: readonly string[] };
    const payload = encodeManifestOutput(output, run.output).payload as `0x${string}`;
    const result = {
      resultId: context.resultId,
      cryptletId: pkg.cryptletId,
      codeHash: pkg.codeHash,
      inputHash: evidenceInputHash(evidence),
      outputHash: keccak256(payload) as Hex32,
      timestamp: String(context.now),
    };
    const [leaderSignature] = await signCryptletResult(CONSORTIUM, bundleResultToStruct(result), [leaderKey]);
    return {
      version: 1,
      leader: "leader",
      consortiumId: CONSORTIUM,
      cryptlet: { name: pkg.manifest.name, version: pkg.manifest.version },
      result,
      evidence,
      payload,
      leaderSignature: leaderSignature!,
    };
  }

  it("co-signs the MINT of a real Locked log", async () => {
    const answer = await evaluateProposal(await propose(locked), depsOf(), "leader");
    expect(answer).toEqual({
      verdict: "agree",
      member: "follower",
      signature: expect.objectContaining({ signer: followerKey.address }),
    });
  });

  it("dissents on a fabricated Locked input that re-executes to the proposed output (and that the token would mint)", async () => {
    // A lock that never happened, for a million times the amount, to the attacker, on a real lock's transaction.
    const attacker = Wallet.createRandom().address;
    const fabricated = withArgs(locked, {
      lockId: id("never locked"),
      amount: (AMOUNT * 1_000_000n).toString(),
      recipient: attacker,
    });
    const proposal = await propose(fabricated);
    // Re-execution alone accepts it: the same input and output hashes as the leader's.
    const rerun = await reexecuteRun(pkg, proposal.evidence, sandbox);
    expect({ inputHash: rerun.inputHash, outputHash: rerun.outputHash }).toEqual({
      inputHash: proposal.result.inputHash,
      outputHash: proposal.result.outputHash,
    });
    // The honest follower reads the chain and refuses.
    const answer = await evaluateProposal(proposal, depsOf(), "leader");
    expect(answer).toEqual({
      verdict: "dissent",
      member: "follower",
      code: NOT_ON_CHAIN,
      reason: expect.stringContaining("input.args."),
    });
    expect(answer).not.toHaveProperty("signature");
    // Without the check (a member signing what merely re-executes), two signatures would mint unbacked tokens.
    const struct = bundleResultToStruct(proposal.result);
    const signatures = await signCryptletResult(CONSORTIUM, struct, [leaderKey, thirdKey]);
    const wrapped = new Contract(route.wrappedToken, interfaceOf("CryptletWrappedToken"), destination.funder);
    await send(
      wrapped,
      "mint",
      struct,
      proposal.payload,
      signatures.map((s) => s.signature),
    );
    expect((await wrapped.getFunction("balanceOf")(attacker)) as bigint).toBe(AMOUNT * 1_000_000n);
  });

  it("dissents, retryably, when it has no client of the event's chain (a false event is not retried)", async () => {
    const proposal = await propose(locked);
    expect(await evaluateProposal(proposal, depsOf({ chains: undefined }), "leader")).toEqual({
      verdict: "dissent",
      member: "follower",
      code: UNVERIFIABLE,
      reason: expect.stringContaining(`no JSON-RPC client of chain ${SOURCE_ID}`),
    });
    // The codes' verdicts for the job queue, as ERR_COSIGN_REGISTRY_UNAVAILABLE's and ERR_COSIGN_OUTPUT_DIFFERS's.
    expect(new CosignDissentError(ERR_COSIGN_EVENT_UNVERIFIABLE, "r").retryable).toBe(true);
    expect(new CosignDissentError(ERR_COSIGN_EVENT_NOT_ON_CHAIN, "r").retryable).toBe(false);
    expect(DISSENT_CODES).toEqual(
      expect.arrayContaining([ERR_COSIGN_EVENT_NOT_ON_CHAIN, ERR_COSIGN_EVENT_UNVERIFIABLE]),
    );
  });

  it.each([
    ["time", { time: 1 }],
    ["requestId", { requestId: id("another request") }],
  ])("refuses an event whose %s is not the evidence context's, before any chain read", async (field, change) => {
    const proposal = await propose(locked);
    const evidence: RunEvidence = {
      ...proposal.evidence,
      event: { ...(proposal.evidence.event as Record<string, JsonValue>), ...change },
    };
    const lying = { ...proposal, evidence, result: { ...proposal.result, inputHash: evidenceInputHash(evidence) } };
    const [leaderSignature] = await signCryptletResult(CONSORTIUM, bundleResultToStruct(lying.result), [leaderKey]);
    const noChains = depsOf({ chains: undefined }); // it would be unverifiable, were it read
    expect(await evaluateProposal({ ...lying, leaderSignature: leaderSignature! }, noChains, "leader")).toEqual(
      expect.objectContaining({
        verdict: "dissent",
        code: "ERR_COSIGN_EVIDENCE_MISMATCH",
        reason: expect.stringContaining(`event.${field}`),
      }),
    );
  });

  it("also checks the refund observation before it co-signs a REFUND", async () => {
    // A route of its own, one lock left unminted past its deadline, and the watcher's observation of it.
    const r = await newRoute();
    const deadline = await deadlineIn(60);
    await lock(r, deadline);
    await mineAt(destination, Math.max(deadline + 1, (await latest(destination)).timestamp + 1));
    await mine(destination, CONFIRMATIONS);
    await mine(source, CONFIRMATIONS);
    const { pipeline, submitted } = standIn(r);
    const watcher = new DeadlineWatcher({ pipeline });
    watcher.setPackages([{ name: pkg.manifest.name, confirmations: CONFIRMATIONS }]);
    await watcher.scanOnce();
    expect(submitted).toHaveLength(1);
    const observation = normalised(submitted[0]!);
    expect(await evaluateProposal(await propose(observation), depsOf(), "leader")).toEqual(
      expect.objectContaining({ verdict: "agree" }),
    );
    // The same lock claimed with twice its amount: the REFUND re-executes, the lockbox's lockOf says otherwise.
    const input = observation.input as unknown as RefundInput;
    const inflated = {
      ...observation,
      input: { ...input, lock: { ...input.lock, amount: "2000" } },
    } as unknown as Evidenced;
    expect(await evaluateProposal(await propose(inflated), depsOf(), "leader")).toEqual(
      expect.objectContaining({
        verdict: "dissent",
        code: NOT_ON_CHAIN,
        reason: expect.stringContaining("input.lock.amount"),
      }),
    );
  });
});
