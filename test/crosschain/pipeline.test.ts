/**
 * Cross-chain transfers end to end through the real pipeline, under faults (docs/crosschain.md): the local stack
 * (runtime/devstack/stack.ts: two `hardhat node`s, consortium 31337 → public 31338, a block a second, the Key Vault
 * emulator, `@cryptlet/xchain-transfer` deployed with its lockbox and wrapped token), the triggers (chain logs and
 * the deadline watcher) in this process and the pipeline's workers in one worker process (test/support/
 * workerProcess.ts) that the tests SIGKILL and restart.
 *
 * 1. a worker killed while a mint (and later a release) is being written: exactly one `Minted` (`Released`) and
 *    one transaction after the restart;
 * 2. a reorg of the source chain removes a lock before its confirmations: no run, no mint;
 * 3. the destination frozen (SIGSTOP) past the lock's deadline: refunded once, never minted, the late mint
 *    `superseded` (no dead letter);
 * 4. a replayed mint: the event again (same run), the mint transaction's calldata again (reverts);
 * 5. a minted lock past its deadline: the deadline watcher submits no refund;
 * 6. a burn of more than the balance: reverts, no `Burned`, no release run;
 * 7. random sequences of locks, burns, outages and worker restarts (fast-check), drained at the end.
 *
 * Every check reads the chains (balances, `isMinted`, `lockOf`, `Minted`/`Refunded`/`Released` logs, supply,
 * `lockedFor`), and after each case the invariants hold: wTST supply ≤ `lockedFor(31338)`, no lock both minted and
 * refunded, each lock minted and refunded at most once. Short deadlines are set after the two chains' clocks are
 * brought together (`alignClocks`: a local chain's clock runs ahead of the wall clock, the busier source's further).
 * The property test's seed is printed; `XCHAIN_SEED=<seed>` reproduces a run (`XCHAIN_RUNS` sets the number of
 * runs). Redis: this file's own prefix, deleted at the end. Takes about 2 minutes.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import fc from "fast-check";
import {
  Contract,
  Wallet,
  formatUnits,
  keccak256,
  parseUnits,
  type ContractTransactionResponse,
  type Log,
  type TransactionReceipt,
} from "ethers";
import { Redis } from "ioredis";

import { computeResultId, type Hex32 } from "../../runtime/attestation/eip712.ts";
import { chainLogEventId, cryptletIdOf } from "../../runtime/attestation/ids.ts";
import { interfaceOf } from "../../runtime/chains/contracts.ts";
import type { DeployedRoute } from "../../runtime/crosschain/deploy.ts";
import {
  BURNED_EVENT,
  CROSSCHAIN_VIEWS,
  LOCKED_EVENT,
  LOCK_STATUS,
  refundEventIdOf,
} from "../../runtime/crosschain/events.ts";
import { startLocalStack, type LocalStack, type StackChain } from "../../runtime/devstack/stack.ts";
import { scanKeys } from "../../runtime/queue/redisClient.ts";
import type { CompositeReceipt, RunRecord } from "../../runtime/queue/results.ts";
import { QUEUES, jobIds, type CryptletEvent } from "../../runtime/queue/topology.ts";
import { decodeLog, type RpcLog } from "../../runtime/triggers/decodeLog.ts";
import { TriggerService } from "../../runtime/triggers/TriggerService.ts";
import { revertData } from "../support/contracts.ts";
import { startWorker, workerOutput } from "../support/workerProcess.ts";

const NAME = "@cryptlet/xchain-transfer";
const CRYPTLET_ID = cryptletIdOf(NAME);
const RUN_TIMEOUT_MS = 90_000;
const tst = (amount: number | string) => parseUnits(String(amount), 18);
const show = (amount: bigint) => formatUnits(amount, 18).replace(/\.0$/, "");
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const lower = (s: string) => s.toLowerCase();

const LOCKBOX = interfaceOf("CryptletLockbox");
const WRAPPED = interfaceOf("CryptletWrappedToken");
const MINTED_TOPIC = CROSSCHAIN_VIEWS.getEvent("Minted")!.topicHash;
const REFUNDED_TOPIC = CROSSCHAIN_VIEWS.getEvent("Refunded")!.topicHash;
const RELEASED_TOPIC = CROSSCHAIN_VIEWS.getEvent("Released")!.topicHash;

/** The running stack and what the tests use of it. */
interface Fixture {
  stack: LocalStack;
  route: DeployedRoute;
  source: StackChain;
  destination: StackChain;
  /** The TST `TestERC20` (anyone can mint), sent by the source chain's funder. */
  token: Contract;
  lockbox: Contract;
  wrapped: Contract;
  triggers: TriggerService;
  caFile: string;
}

let fx: Fixture;
/** The worker process (replaced on each restart). */
let worker: ChildProcess | undefined;
const workers: ChildProcess[] = [];
/** Every lock this file made (for the invariants). */
const locks = new Set<string>();
/** The chains' SIGSTOPped state, so that afterAll always resumes them. */
const stopped = new Set<number>();

// ---------------------------------------------------------------------------------------------------------------
// Helpers: accounts, transfers, chain reads, invariants, the worker process.

/** Waits for a sent transaction's receipt. */
async function mined(sent: Promise<ContractTransactionResponse>): Promise<TransactionReceipt> {
  return (await (await sent).wait())!;
}

/** Polls `check` until it returns a value (not `undefined`) or `ms` pass; throws naming `what`. */
async function waitFor<T>(what: string, check: () => Promise<T | undefined>, ms = 60_000, every = 200): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(every);
  }
}

/** The later of the two chains' latest block times: the clock deadlines are computed from (see crossChain.ts). */
async function chainNow(): Promise<number> {
  const [a, b] = await Promise.all(
    [fx.source, fx.destination].map(async (c) => (await c.chain.provider.getBlock("latest"))!.timestamp),
  );
  return Math.max(a!, b!);
}

/** Seconds by which this file moved the destination's clock forward (`evm_increaseTime`), in total. */
let destinationOffset = 0;

/**
 * Brings the two chains' clocks together. A local chain's clock runs ahead of the wall clock by a second for each
 * extra (automined) block in a second, the source (with far more transactions) further than the destination, and
 * never goes back. A deadline must be after the source's time (the lockbox's check) and is judged in the
 * destination's: with the destination 15 s behind, a "6 s" deadline is 21 s away. So the chain behind gets
 * `evm_increaseTime` (a clock may only move forward) and a block, for the new time to apply.
 */
async function alignClocks(): Promise<void> {
  const time = async (c: StackChain) => (await c.chain.provider.getBlock("latest"))!.timestamp;
  const [s, d] = [await time(fx.source), await time(fx.destination)];
  if (s === d) return;
  const behind = s > d ? fx.destination : fx.source;
  await behind.chain.rpc("evm_increaseTime", [Math.abs(s - d)]);
  await behind.chain.rpc("evm_mine");
  if (behind === fx.destination) destinationOffset += s - d;
}

/** A sender on the source chain with ETH, `amount` TST minted to it and the lockbox approved for all of it. */
async function newSender(amount: bigint): Promise<Wallet> {
  const sender = new Wallet(Wallet.createRandom().privateKey, fx.source.chain.provider);
  await fx.source.chain.fund(sender.address, "10");
  await mined(fx.token.getFunction("mint")(sender.address, amount));
  await mined(
    (fx.token.connect(sender) as Contract).getFunction("approve")(fx.route.lockbox, parseUnits("1000000", 18)),
  );
  return sender;
}

/** A recipient on the destination chain with ETH (to burn). */
async function newRecipient(): Promise<Wallet> {
  const recipient = new Wallet(Wallet.createRandom().privateKey, fx.destination.chain.provider);
  await fx.destination.chain.fund(recipient.address, "10");
  return recipient;
}

/** A lock as made by {@link lockTokens}. */
interface Lock {
  lockId: string;
  /** The pipeline's event id of the `Locked` log, and the mint run's id. */
  eventId: Hex32;
  runId: Hex32;
  amount: bigint;
  deadline: number;
  receipt: TransactionReceipt;
  log: Log;
}

/** Locks `amount` TST of `sender` for `recipient` on the destination chain until `deadline`. */
async function lockTokens(sender: Wallet, amount: bigint, recipient: string, deadline: number): Promise<Lock> {
  const receipt = await mined(
    (fx.lockbox.connect(sender) as Contract).getFunction("lock")(
      amount,
      fx.route.destinationChainId,
      recipient,
      deadline,
    ),
  );
  const log = receipt.logs.find((l) => l.address === fx.route.lockbox && l.topics[0] === LOCKED_EVENT.topicHash)!;
  const eventId = chainLogEventId({
    chainId: fx.route.sourceChainId,
    blockHash: log.blockHash,
    txHash: log.transactionHash,
    logIndex: log.index,
  });
  const lockId = lower(log.topics[1]!);
  locks.add(lockId);
  return { lockId, eventId, runId: computeResultId(CRYPTLET_ID, eventId), amount, deadline, receipt, log };
}

/** A burn as made by {@link burnTokens}. */
interface Burn {
  burnId: string;
  eventId: Hex32;
  runId: Hex32;
  amount: bigint;
  receipt: TransactionReceipt;
}

/** Burns `amount` wTST of `holder` back to `recipient` on the source chain. */
async function burnTokens(holder: Wallet, amount: bigint, recipient: string): Promise<Burn> {
  const receipt = await mined(
    (fx.wrapped.connect(holder) as Contract).getFunction("burn")(amount, fx.route.sourceChainId, recipient),
  );
  const log = receipt.logs.find((l) => l.address === fx.route.wrappedToken && l.topics[0] === BURNED_EVENT.topicHash)!;
  const eventId = chainLogEventId({
    chainId: fx.route.destinationChainId,
    blockHash: log.blockHash,
    txHash: log.transactionHash,
    logIndex: log.index,
  });
  return { burnId: lower(log.topics[1]!), eventId, runId: computeResultId(CRYPTLET_ID, eventId), amount, receipt };
}

/** The refund run's id of a lock (one per lock: the deadline watcher's event id). */
const refundRunIdOf = (lockId: string) => computeResultId(CRYPTLET_ID, refundEventIdOf(lockId));

/** Logs of `topic` with `id` as first indexed argument (every log when `id` is omitted), from block 0. */
async function logsOf(chain: StackChain, address: string, topic: string, id?: string): Promise<Log[]> {
  return chain.chain.provider.getLogs({
    address,
    topics: id === undefined ? [topic] : [topic, id],
    fromBlock: 0,
    toBlock: "latest",
  });
}
const mintedLogs = (lockId?: string) => logsOf(fx.destination, fx.route.wrappedToken, MINTED_TOPIC, lockId);
const refundedLogs = (lockId?: string) => logsOf(fx.source, fx.route.lockbox, REFUNDED_TOPIC, lockId);
const releasedLogs = (burnId?: string) => logsOf(fx.source, fx.route.lockbox, RELEASED_TOPIC, burnId);

/** The amount of a `Minted`/`Refunded`/`Released` log (the first word of its data). */
const amountOf = (log: Log) => BigInt(log.data.slice(0, 66));

async function isMinted(lockId: string): Promise<boolean> {
  return (await fx.wrapped.getFunction("isMinted")(lockId)) as boolean;
}
async function lockStatus(lockId: string): Promise<number> {
  return Number(((await fx.lockbox.getFunction("lockOf")(lockId)) as { status: bigint }).status);
}
async function tstOf(address: string): Promise<bigint> {
  return (await fx.token.getFunction("balanceOf")(address)) as bigint;
}
async function wtstOf(address: string): Promise<bigint> {
  return (await fx.wrapped.getFunction("balanceOf")(address)) as bigint;
}
async function supply(): Promise<bigint> {
  return (await fx.wrapped.getFunction("totalSupply")()) as bigint;
}
async function lockedFor(): Promise<bigint> {
  return (await fx.lockbox.getFunction("lockedFor")(fx.route.destinationChainId)) as bigint;
}

/**
 * The invariants, read from the chains, each chain at one block (so that its reads agree with each other): the
 * source's block is taken first, then the destination's, the order in which "wTST supply on the destination ≤ TST
 * locked toward it on the source" holds in real time across the two chains (a lock's amount enters `lockedFor`
 * before it can be minted; a burn leaves the supply before it is released). Each lock minted at most once and
 * refunded at most once, never both (by the logs and by `isMinted`/`lockOf`), and `isMinted`/`lockOf` agree with
 * the logs.
 */
async function checkInvariants(where: string): Promise<void> {
  const sourceBlock = await fx.source.chain.provider.getBlockNumber();
  const destinationBlock = await fx.destination.chain.provider.getBlockNumber();
  const atSource = { blockTag: sourceBlock };
  const atDestination = { blockTag: destinationBlock };
  const locked = (await fx.lockbox.getFunction("lockedFor")(fx.route.destinationChainId, atSource)) as bigint;
  const wtstSupply = (await fx.wrapped.getFunction("totalSupply")(atDestination)) as bigint;
  expect({ where, supplyAtMostLocked: wtstSupply <= locked, supply: show(wtstSupply), locked: show(locked) }).toEqual({
    where,
    supplyAtMostLocked: true,
    supply: show(wtstSupply),
    locked: show(locked),
  });
  const count = (logs: Log[]) => {
    const n = new Map<string, number>();
    for (const log of logs) n.set(lower(log.topics[1]!), (n.get(lower(log.topics[1]!)) ?? 0) + 1);
    return n;
  };
  const minted = count(
    await fx.destination.chain.provider.getLogs({
      address: fx.route.wrappedToken,
      topics: [MINTED_TOPIC],
      fromBlock: 0,
      toBlock: destinationBlock,
    }),
  );
  const refunded = count(
    await fx.source.chain.provider.getLogs({
      address: fx.route.lockbox,
      topics: [REFUNDED_TOPIC],
      fromBlock: 0,
      toBlock: sourceBlock,
    }),
  );
  const twice = [...minted, ...refunded].filter(([, n]) => n > 1).map(([id]) => id);
  const both = [...minted.keys()].filter((id) => refunded.has(id));
  expect({ where, mintedOrRefundedTwice: twice, mintedAndRefunded: both }).toEqual({
    where,
    mintedOrRefundedTwice: [],
    mintedAndRefunded: [],
  });
  const disagree: string[] = [];
  for (const lockId of locks) {
    const [m, lock] = await Promise.all([
      fx.wrapped.getFunction("isMinted")(lockId, atDestination) as Promise<boolean>,
      fx.lockbox.getFunction("lockOf")(lockId, atSource) as Promise<{ status: bigint }>,
    ]);
    const status = Number(lock.status);
    if (m && status === LOCK_STATUS.Refunded) disagree.push(`${lockId}: isMinted and Refunded`);
    if (m !== minted.has(lockId)) disagree.push(`${lockId}: isMinted ${m}, ${minted.get(lockId) ?? 0} Minted logs`);
    if ((status === LOCK_STATUS.Refunded) !== refunded.has(lockId)) {
      disagree.push(`${lockId}: status ${status}, ${refunded.get(lockId) ?? 0} Refunded logs`);
    }
  }
  expect({ where, disagree }).toEqual({ where, disagree: [] });
}

/** The mined transactions to `to` with `selector` whose calldata contains `needle` (an id), from `fromBlock` on. */
async function transactionsTo(
  chain: StackChain,
  to: string,
  selector: string,
  needle: string,
  fromBlock: number,
): Promise<string[]> {
  const head = await chain.chain.provider.getBlockNumber();
  const found: string[] = [];
  for (let n = fromBlock; n <= head; n++) {
    const block = await chain.chain.rpc<{ transactions: { hash: string; to: string | null; input: string }[] }>(
      "eth_getBlockByNumber",
      [`0x${n.toString(16)}`, true],
    );
    for (const tx of block.transactions) {
      if (tx.to !== null && lower(tx.to) === lower(to) && tx.input.startsWith(selector)) {
        if (tx.input.includes(lower(needle).slice(2))) found.push(tx.hash);
      }
    }
  }
  return found;
}
const MINT_SELECTOR = WRAPPED.getFunction("mint")!.selector;
const RELEASE_SELECTOR = LOCKBOX.getFunction("release")!.selector;

/**
 * For a failure's message: each lock's deadline and the mint transactions sent for it, with their blocks'
 * timestamps and status, and the timestamp of the block before (the state a mined revert is replayed on).
 */
async function mintHistory(made: readonly Lock[]): Promise<string> {
  const provider = fx.destination.chain.provider;
  const lines: string[] = [];
  for (const lock of made) {
    lines.push(`lock ${lock.lockId} (${show(lock.amount)} TST), deadline ${lock.deadline}`);
    const from = Math.max(0, (await provider.getBlockNumber()) - 200);
    for (const hash of await transactionsTo(fx.destination, fx.route.wrappedToken, MINT_SELECTOR, lock.lockId, from)) {
      const receipt = (await provider.getTransactionReceipt(hash))!;
      const block = (await provider.getBlock(receipt.blockNumber))!;
      const before = (await provider.getBlock(receipt.blockNumber - 1))!;
      lines.push(
        `  mint tx ${hash}: block ${receipt.blockNumber} at ${block.timestamp} (block before at ${before.timestamp}), status ${receipt.status}`,
      );
    }
  }
  return lines.join("\n");
}

/** A run's outcome; a run that does not finish in time fails naming it, with the worker's last output. */
async function completed(runId: string, what: string, ms = RUN_TIMEOUT_MS): Promise<CompositeReceipt> {
  let outcome;
  try {
    outcome = await fx.stack.pipeline.waitForRun(runId, ms);
  } catch (error) {
    throw new Error(`${what} (run ${runId}): ${String(error)}\nworker output:\n${workerOutput(worker!)}`, {
      cause: error,
    });
  }
  if (outcome.status !== "complete") throw new Error(`${what} (run ${runId}) failed: ${JSON.stringify(outcome)}`);
  return outcome.receipt;
}

/** Dead letters of `runIds` (by the job data's `resultId`). */
async function deadLettersOf(...runIds: string[]): Promise<unknown[]> {
  const ids = new Set(runIds.map(lower));
  return (await fx.stack.pipeline.deadLetters(1000)).filter((d) =>
    ids.has(lower(String((d.data as { resultId?: string }).resultId ?? ""))),
  );
}

/** Starts the worker process. */
async function startTheWorker(): Promise<void> {
  worker = await startWorker(fx.stack.configFile, fx.caFile);
  workers.push(worker);
}

/** SIGKILLs the worker process and waits for it to be gone. */
async function killTheWorker(): Promise<void> {
  const child = worker!;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

/**
 * Kills the worker as soon as the `mode` write of run `runId` on `chain` is active (its transaction being sent or
 * awaited), or, if that is missed, once it is done; returns the job's state seen.
 */
async function killDuringWrite(runId: string, chain: string, mode: string): Promise<string> {
  const queue = fx.stack.pipeline.queue(QUEUES.writes);
  const jobId = jobIds.write(chain, mode, runId);
  const state = await waitFor(
    `the ${mode} write of ${runId}`,
    async () => {
      const job = await queue.getJob(jobId);
      const s = job ? await job.getState() : undefined;
      return s === "active" || s === "completed" ? s : undefined;
    },
    RUN_TIMEOUT_MS,
    2,
  );
  await killTheWorker();
  return state;
}

/**
 * Kills the worker in the window between a write's transaction being mined and its outcome being recorded: once the
 * `mode` write of run `runId` is active and `onChain` says its event is on the chain. When the write completes
 * before that is seen, kills it anyway; returns which happened.
 */
async function killAfterTransaction(
  runId: string,
  chain: string,
  mode: string,
  onChain: () => Promise<boolean>,
): Promise<string> {
  const queue = fx.stack.pipeline.queue(QUEUES.writes);
  const jobId = jobIds.write(chain, mode, runId);
  const seen = await waitFor(
    `the ${mode} transaction of ${runId}`,
    async () => {
      const job = await queue.getJob(jobId);
      const state = job ? await job.getState() : undefined;
      if (state === "completed") return "the write completed first";
      return state === "active" && (await onChain()) ? "its transaction mined, the write job still active" : undefined;
    },
    RUN_TIMEOUT_MS,
    1,
  );
  await killTheWorker();
  return seen;
}

/** Freezes a chain's node (SIGSTOP) for the duration of `during`; resumes it (SIGCONT) whatever happens. */
async function withChainStopped<T>(chain: StackChain, during: () => Promise<T>): Promise<T> {
  const pid = chain.chain.pid;
  process.kill(pid, "SIGSTOP");
  stopped.add(pid);
  try {
    return await during();
  } finally {
    process.kill(pid, "SIGCONT");
    stopped.delete(pid);
  }
}

/** The destination's confirmed block (head − 2, the crosschain trigger's confirmations) and its timestamp. */
async function destinationConfirmedTime(): Promise<number> {
  const provider = fx.destination.chain.provider;
  const head = await provider.getBlockNumber();
  return (await provider.getBlock(head - 2))!.timestamp;
}

/** Run records with a `mode` target accepted at or after `since` (Unix ms), from this file's Redis prefix. */
async function runsSince(since: number, mode: string): Promise<RunRecord[]> {
  const found: RunRecord[] = [];
  for await (const keys of scanKeys(fx.stack.redis, `${fx.stack.config.prefix}:result:*:run`)) {
    for (const key of keys) {
      const value = await fx.stack.redis.get(key);
      if (value === null) continue;
      const run = JSON.parse(value) as RunRecord;
      if (run.acceptedAt >= since && run.targets.some((t) => t.mode === mode)) found.push(run);
    }
  }
  return found;
}

/**
 * Sends a transaction that reverts, with a fixed gas limit (no estimate), and returns its mined receipt. A Hardhat
 * node mines it and answers the send with the revert: the hash is that of the signed transaction.
 */
async function sendReverting(wallet: Wallet, to: string, data: string): Promise<TransactionReceipt> {
  const signed = await wallet.signTransaction(await wallet.populateTransaction({ to, data, gasLimit: 2_000_000 }));
  const hash = keccak256(signed);
  await wallet.provider!.broadcastTransaction(signed).catch(() => undefined);
  return (await wallet.provider!.waitForTransaction(hash, 1, 30_000))!;
}

// ---------------------------------------------------------------------------------------------------------------

describe("cross-chain transfers through the pipeline, under faults (local stack, worker process)", () => {
  let stateDir: string;
  const prefix = `t-xchain-${process.pid}-${Date.now().toString(36)}`;
  const started = performance.now();
  const timings: string[] = [];
  let caseStart = 0;

  beforeAll(async () => {
    stateDir = await mkdtemp(path.join(os.tmpdir(), "cryptlet-xchain-pipeline-"));
    const stack = await startLocalStack({ prefix, stateDir, preferredPorts: false, api: false, workers: false });
    const entry = stack.crosschain.find((c) => c.cryptlet === NAME)!;
    const source = stack.chains.find((c) => c.chain.chainId === entry.route.sourceChainId)!;
    const destination = stack.chains.find((c) => c.chain.chainId === entry.route.destinationChainId)!;
    const triggers = new TriggerService({
      pipeline: stack.pipeline,
      schedulesEnabled: false,
      ...(stack.config.triggers.pollIntervalMs === undefined
        ? {}
        : { pollIntervalMs: stack.config.triggers.pollIntervalMs }),
    });
    await triggers.start();
    fx = {
      stack,
      route: entry.route,
      source,
      destination,
      token: new Contract(entry.route.token, interfaceOf("TestERC20"), source.chain.funder),
      lockbox: new Contract(entry.route.lockbox, LOCKBOX, source.chain.provider),
      wrapped: new Contract(entry.route.wrappedToken, WRAPPED, destination.chain.provider),
      triggers,
      caFile: path.join(stateDir, "keyvault-ca.pem"),
    };
    await startTheWorker();
    timings.push(`stack, triggers and worker up: ${Math.round((performance.now() - started) / 1000)} s`);
  }, 300_000);

  beforeEach(() => {
    caseStart = performance.now();
  });

  afterEach(() => {
    const name = expect.getState().currentTestName ?? "?";
    timings.push(`${name.replace(/^.*?\)\s*/, "")}: ${Math.round((performance.now() - caseStart) / 1000)} s`);
  });

  afterAll(async () => {
    for (const pid of stopped) process.kill(pid, "SIGCONT");
    for (const child of workers) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await fx?.triggers.stop();
    await fx?.stack.stop();
    const redis = new Redis(fx?.stack.config.redisUrl ?? "redis://127.0.0.1:6379");
    for (const pattern of [`${prefix}:*`, `{${prefix}-packages}:*`]) {
      for await (const keys of scanKeys(redis, pattern)) await redis.del(...keys);
    }
    redis.disconnect();
    await rm(stateDir, { recursive: true, force: true });
    console.log(`cross-chain pipeline tests, seconds per part:\n${timings.join("\n")}`);
  }, 120_000);

  test("1. a worker killed between the legs of a mint, and of a release: exactly one Minted, one Released", async () => {
    const sender = await newSender(tst(100));
    const recipient = await newRecipient();
    const fromBlock = await fx.destination.chain.provider.getBlockNumber();
    const lock = await lockTokens(sender, tst(40), recipient.address, (await chainNow()) + 3600);

    const mintKilledAt = await killDuringWrite(lock.runId, fx.destination.name, "mint");
    const mintedAtKill = (await mintedLogs(lock.lockId)).length;
    await startTheWorker();
    const receipt = await completed(lock.runId, "the mint after the restart");
    console.log(
      `case 1: worker killed with the mint write ${mintKilledAt} (${mintedAtKill} Minted on-chain then); after the restart: ${receipt.summary}`,
    );
    expect(receipt.targets).toEqual([
      expect.objectContaining({
        chain: fx.destination.name,
        mode: "mint",
        status: expect.stringMatching(/^(confirmed|already-recorded)$/),
      }),
    ]);
    const minted = await mintedLogs(lock.lockId);
    expect(minted).toHaveLength(1);
    expect(amountOf(minted[0]!)).toBe(tst(40));
    expect(await wtstOf(recipient.address)).toBe(tst(40));
    expect(await isMinted(lock.lockId)).toBe(true);
    // The writer's idempotency: one mint transaction for the lock, the one that emitted Minted.
    const mintTxs = await transactionsTo(fx.destination, fx.route.wrappedToken, MINT_SELECTOR, lock.lockId, fromBlock);
    expect(mintTxs).toEqual([minted[0]!.transactionHash]);
    await checkInvariants("case 1, after the mint");

    // The way back: burn 15 wTST to the sender, kill the worker while the release is written.
    const releaseFrom = await fx.source.chain.provider.getBlockNumber();
    const senderBefore = await tstOf(sender.address);
    const burn = await burnTokens(recipient, tst(15), sender.address);
    const releaseKilledAt = await killAfterTransaction(
      burn.runId,
      fx.source.name,
      "release",
      async () => (await releasedLogs(burn.burnId)).length > 0,
    );
    const releasedAtKill = (await releasedLogs(burn.burnId)).length;
    await startTheWorker();
    const released = await completed(burn.runId, "the release after the restart");
    console.log(
      `case 1: worker killed with the release write: ${releaseKilledAt} (${releasedAtKill} Released on-chain then); after the restart: ${released.summary}`,
    );
    const releasedLogsOfBurn = await releasedLogs(burn.burnId);
    expect(releasedLogsOfBurn).toHaveLength(1);
    expect(amountOf(releasedLogsOfBurn[0]!)).toBe(tst(15));
    const releaseTxs = await transactionsTo(fx.source, fx.route.lockbox, RELEASE_SELECTOR, burn.burnId, releaseFrom);
    expect(releaseTxs).toEqual([releasedLogsOfBurn[0]!.transactionHash]);
    expect(await tstOf(sender.address)).toBe(senderBefore + tst(15));
    expect(await wtstOf(recipient.address)).toBe(tst(25));
    expect(await deadLettersOf(lock.runId, burn.runId)).toEqual([]);
    await checkInvariants("case 1, after the release");
  }, 240_000);

  test("2. a reorg on the source chain removes a lock before its confirmations: no run, no mint", async () => {
    const src = fx.source.chain;
    const sender = await newSender(tst(100));
    const recipient = await newRecipient();
    const far = (await chainNow()) + 3600;
    const lockedSub = `chain-log:${NAME}:${fx.source.name}:${lower(fx.route.lockbox)}:${LOCKED_EVENT.topicHash}`;
    const before = {
      supply: await supply(),
      locked: await lockedFor(),
      lockCount: (await fx.lockbox.getFunction("lockCount")()) as bigint,
      sender: await tstOf(sender.address),
    };
    let lock: Lock;
    /** What the trigger had done when the lock was at the head, unconfirmed (checked after the chain's state). */
    let beforeRevert: { scannedTo: number; run: RunRecord | undefined; lockBlock: number };
    await src.rpc("evm_setIntervalMining", [0]);
    try {
      const snapshot = await src.rpc<string>("evm_snapshot");
      lock = await lockTokens(sender, tst(7), recipient.address, far);
      const n = lock.receipt.blockNumber;
      expect(await src.provider.getBlockNumber()).toBe(n);
      // The trigger polls every 250 ms (and on each new head): it scans up to n − 2 and no further, the lock's
      // block has 0 confirmations and no new block comes.
      await waitFor("the trigger's scan up to the lock's block − 2", async () =>
        (await fx.triggers.listener.checkpoint(lockedSub))!.blockNumber >= n - 2 ? true : undefined,
      );
      await sleep(1500);
      beforeRevert = {
        scannedTo: (await fx.triggers.listener.checkpoint(lockedSub))!.blockNumber,
        run: await fx.stack.ctx.results.getRun(lock.runId),
        lockBlock: n,
      };

      expect(await src.rpc("evm_revert", [snapshot])).toBe(true);
      expect(await src.provider.getBlockNumber()).toBe(n - 1);
      expect(await src.rpc("eth_getTransactionReceipt", [lock.receipt.hash])).toBeNull();
      for (let i = 0; i < 4; i++) await src.rpc("evm_mine");
      // Hardhat does not re-mine the reverted transaction: block n is another, empty block.
      const replaced = (await src.provider.getBlock(n))!;
      expect(replaced.hash).not.toBe(lock.receipt.blockHash);
      expect(replaced.transactions).toEqual([]);
      await waitFor("the trigger's scan past the new blocks", async () =>
        (await fx.triggers.listener.checkpoint(lockedSub))!.blockNumber >= n + 1 ? true : undefined,
      );
      await sleep(1500);
    } finally {
      await src.rpc("evm_setIntervalMining", [1000]);
    }
    expect(await mintedLogs(lock.lockId)).toEqual([]);
    expect(await isMinted(lock.lockId)).toBe(false);
    expect(await supply()).toBe(before.supply);
    expect(await lockedFor()).toBe(before.locked);
    expect((await fx.lockbox.getFunction("lockCount")()) as bigint).toBe(before.lockCount);
    expect(await tstOf(sender.address)).toBe(before.sender);
    // The trigger saw the lock's block at the head and scanned only up to 2 blocks below it: no run, before the
    // revert or after it.
    expect(await fx.stack.ctx.results.getRun(lock.runId)).toBeUndefined();
    expect(beforeRevert!).toEqual({
      scannedTo: beforeRevert!.lockBlock - 2,
      run: undefined,
      lockBlock: lock.receipt.blockNumber,
    });
    await checkInvariants("case 2, after the reorg");

    // The chain goes on: the next lock takes the same nonce (so the same lockId) with another amount, and is
    // minted once, for its own amount.
    const again = await lockTokens(sender, tst(9), recipient.address, far);
    expect(again.lockId).toBe(lock.lockId);
    expect(again.eventId).not.toBe(lock.eventId);
    await completed(again.runId, "the mint of the lock after the reorg");
    const minted = await mintedLogs(again.lockId);
    expect(minted).toHaveLength(1);
    expect(amountOf(minted[0]!)).toBe(tst(9));
    expect(await wtstOf(recipient.address)).toBe(tst(9));
    expect(await fx.stack.ctx.results.getRun(lock.runId)).toBeUndefined();
    await checkInvariants("case 2, after the lock that followed");
  }, 120_000);

  test("3. the destination unreachable past the deadline: refunded once, never minted, the late mint superseded", async () => {
    const sender = await newSender(tst(100));
    const recipient = await newRecipient();
    const before = await tstOf(sender.address);
    await alignClocks();
    const deadline = (await chainNow()) + 6;
    const lock = await withChainStopped(fx.destination, async () => {
      const made = await lockTokens(sender, tst(25), recipient.address, deadline);
      // Until the destination's clock (the wall clock and the offset this file gave it) is past the deadline: its
      // first block after SIGCONT is past it too (a Hardhat block is never older than its clock).
      await sleep(Math.max(0, (deadline - destinationOffset) * 1000 - Date.now()) + 2000);
      return made;
    });
    const resumed = Date.now();
    const late = await completed(lock.runId, "the late mint");
    const lateMs = Date.now() - resumed;
    const refundRunId = refundRunIdOf(lock.lockId);
    const refund = await completed(refundRunId, "the refund");
    console.log(
      `case 3: ${lateMs} ms after SIGCONT: ${late.summary}\n${Date.now() - resumed} ms after SIGCONT: ${refund.summary}`,
    );
    expect(late.targets).toEqual([
      expect.objectContaining({ chain: fx.destination.name, mode: "mint", status: "superseded" }),
    ]);
    expect(late.status).toBe("confirmed");
    expect(refund.targets).toEqual([
      expect.objectContaining({ chain: fx.source.name, mode: "refund", status: "confirmed" }),
    ]);
    const refunded = await refundedLogs(lock.lockId);
    expect(refunded).toHaveLength(1);
    expect(amountOf(refunded[0]!)).toBe(tst(25));
    expect(await lockStatus(lock.lockId)).toBe(LOCK_STATUS.Refunded);
    expect(await tstOf(sender.address)).toBe(before);
    expect(await isMinted(lock.lockId)).toBe(false);
    expect(await mintedLogs(lock.lockId)).toEqual([]);
    expect(await wtstOf(recipient.address)).toBe(0n);
    expect(await deadLettersOf(lock.runId, refundRunId)).toEqual([]);
    await checkInvariants("case 3, after the refund");
  }, 180_000);

  test("4. a replayed mint: the same event is the same run, the same calldata reverts", async () => {
    const sender = await newSender(tst(100));
    const recipient = await newRecipient();
    const lock = await lockTokens(sender, tst(12), recipient.address, (await chainNow()) + 3600);
    await completed(lock.runId, "the mint");
    expect(await mintedLogs(lock.lockId)).toHaveLength(1);

    // The Locked log as the trigger submits it, again.
    const [rpcLog] = await fx.source.chain.rpc<RpcLog[]>("eth_getLogs", [
      {
        address: fx.route.lockbox,
        topics: [LOCKED_EVENT.topicHash, lock.lockId],
        fromBlock: `0x${lock.receipt.blockNumber.toString(16)}`,
        toBlock: `0x${lock.receipt.blockNumber.toString(16)}`,
      },
    ]);
    const time = (await fx.source.chain.provider.getBlock(lock.receipt.blockNumber))!.timestamp;
    const event: CryptletEvent = {
      eventId: lock.eventId,
      cryptlet: { name: NAME },
      source: {
        type: "chain-log",
        chainId: fx.route.sourceChainId,
        address: fx.route.lockbox,
        blockNumber: lock.receipt.blockNumber,
        blockHash: lock.receipt.blockHash,
        txHash: lock.receipt.hash,
        logIndex: lock.log.index,
      },
      input: decodeLog(LOCKED_EVENT, rpcLog!, time),
      time,
    };
    const resubmitted = await fx.stack.pipeline.submit(event);
    expect(resubmitted.runId).toBe(lock.runId);
    await completed(resubmitted.runId, "the resubmitted mint");
    await sleep(3000);
    expect(await mintedLogs(lock.lockId)).toHaveLength(1);

    // The mint transaction's exact calldata, from another funded account.
    const supplyBefore = await supply();
    const mintTx = (await fx.destination.chain.provider.getTransaction(
      (await mintedLogs(lock.lockId))[0]!.transactionHash,
    ))!;
    const replayer = await newRecipient();
    let data: string | undefined;
    try {
      await replayer.call({ to: mintTx.to!, data: mintTx.data });
    } catch (error) {
      data = revertData(error);
    }
    expect(data).toBeDefined();
    const decoded = WRAPPED.parseError(data!)!;
    expect(decoded.name).toBe("CryptletWrappedResultAlreadyRecorded");
    expect(lower(decoded.args[0] as string)).toBe(lower(lock.runId));
    const replayed = await sendReverting(replayer, mintTx.to!, mintTx.data);
    expect(replayed.status).toBe(0);
    expect(replayed.logs).toEqual([]);
    expect(await supply()).toBe(supplyBefore);
    expect(await wtstOf(recipient.address)).toBe(tst(12));
    expect(await mintedLogs(lock.lockId)).toHaveLength(1);
    await checkInvariants("case 4, after the replays");
  }, 120_000);

  test("5. a minted lock past its deadline: the deadline watcher submits no refund", async () => {
    const sender = await newSender(tst(100));
    const recipient = await newRecipient();
    await alignClocks();
    const deadline = (await chainNow()) + 12;
    const lock = await lockTokens(sender, tst(5), recipient.address, deadline);
    const lockedAt = Date.now();
    const receipt = await completed(lock.runId, "the mint");
    const mintMs = Date.now() - lockedAt;
    const mintBlock = (await fx.destination.chain.provider.getBlock(receipt.targets[0]!.receipt!.blockNumber!))!;
    expect(mintBlock.timestamp).toBeLessThanOrEqual(deadline);
    expect(await isMinted(lock.lockId)).toBe(true);
    await waitFor(
      "a confirmed destination block after the deadline",
      async () => ((await destinationConfirmedTime()) > deadline ? true : undefined),
      60_000,
      250,
    );
    console.log(
      `case 5: minted ${mintMs} ms after the lock, at ${deadline - mintBlock.timestamp} s before the deadline; a confirmed destination block after it ${Date.now() - lockedAt} ms after the lock`,
    );
    const report = await fx.triggers.deadlines.scanOnce();
    // Many passes of the watcher's own loop (every 250 ms), and the time a refund would take to be written.
    await sleep(4000);
    expect(await refundedLogs(lock.lockId)).toEqual([]);
    expect(await lockStatus(lock.lockId)).toBe(LOCK_STATUS.Locked);
    expect(await isMinted(lock.lockId)).toBe(true);
    expect(await fx.stack.ctx.results.getRun(refundRunIdOf(lock.lockId))).toBeUndefined();
    expect(report.minted).toContain(lock.lockId);
    expect(report.refunds).not.toContain(lock.lockId);
    await checkInvariants("case 5, after the deadline");
  }, 120_000);

  test("6. a burn of more than was minted reverts, emits no Burned, and starts no release", async () => {
    const sender = await newSender(tst(100));
    const recipient = await newRecipient();
    const lock = await lockTokens(sender, tst(10), recipient.address, (await chainNow()) + 3600);
    await completed(lock.runId, "the mint");
    const since = Date.now();
    const before = {
      sender: await tstOf(sender.address),
      recipient: await wtstOf(recipient.address),
      supply: await supply(),
      locked: await lockedFor(),
      burnCount: (await fx.wrapped.getFunction("burnCount")()) as bigint,
      burned: (await logsOf(fx.destination, fx.route.wrappedToken, BURNED_EVENT.topicHash)).length,
    };
    expect(before.recipient).toBe(tst(10));
    const data = WRAPPED.encodeFunctionData("burn", [tst(11), fx.route.sourceChainId, sender.address]);
    let revert: string | undefined;
    try {
      await recipient.call({ to: fx.route.wrappedToken, data });
    } catch (error) {
      revert = revertData(error);
    }
    const decoded = WRAPPED.parseError(revert!)!;
    expect(decoded.name).toBe("ERC20InsufficientBalance");
    expect(decoded.args.map(String)).toEqual([recipient.address, String(tst(10)), String(tst(11))]);
    const mined = await sendReverting(recipient, fx.route.wrappedToken, data);
    expect(mined.status).toBe(0);
    expect(mined.logs).toEqual([]);
    // Past the trigger's confirmations, and a few of its passes.
    const at = mined.blockNumber;
    await waitFor("3 destination blocks", async () =>
      (await fx.destination.chain.provider.getBlockNumber()) >= at + 3 ? true : undefined,
    );
    await sleep(1500);
    expect(await runsSince(since, "release")).toEqual([]);
    expect(
      await fx.stack.ctx.results.getRun(
        computeResultId(
          CRYPTLET_ID,
          chainLogEventId({
            chainId: fx.route.destinationChainId,
            blockHash: mined.blockHash,
            txHash: mined.hash,
            logIndex: 0,
          }),
        ),
      ),
    ).toBeUndefined();
    expect({
      sender: await tstOf(sender.address),
      recipient: await wtstOf(recipient.address),
      supply: await supply(),
      locked: await lockedFor(),
      burnCount: (await fx.wrapped.getFunction("burnCount")()) as bigint,
      burned: (await logsOf(fx.destination, fx.route.wrappedToken, BURNED_EVENT.topicHash)).length,
    }).toEqual(before);
    await checkInvariants("case 6, after the burn");
  }, 120_000);

  test("8. a mint sent before its deadline and mined after it: superseded, not dead-lettered; the lock is refunded", async () => {
    const sender = await newSender(tst(100));
    const recipient = await newRecipient();
    const dest = fx.destination.chain;
    const src = fx.source.chain;
    await alignClocks();
    const deadline = (await chainNow()) + 20;
    // The destination mines only on demand: the mint transaction waits in the mempool until the deadline passed.
    await dest.rpc("evm_setIntervalMining", [0]);
    await dest.rpc("evm_setAutomine", [false]);
    let lock: Lock;
    try {
      lock = await lockTokens(sender, tst(3), recipient.address, deadline);
      await waitFor(
        "the mint transaction in the mempool",
        async () => {
          const block = await dest.rpc<{ transactions: string[] }>("eth_getBlockByNumber", ["pending", false]);
          return block.transactions.length > 0 ? block.transactions : undefined;
        },
        60_000,
        20,
      );
      await dest.rpc("evm_setNextBlockTimestamp", [deadline + 1]); // mined 1 s after the deadline: it reverts
      await dest.rpc("evm_mine");
      const sourceTime = (await src.provider.getBlock("latest"))!.timestamp;
      await src.rpc("evm_setNextBlockTimestamp", [Math.max(deadline + 1, sourceTime + 1)]);
      await src.rpc("evm_mine");
    } finally {
      await dest.rpc("evm_setAutomine", [true]);
      await dest.rpc("evm_setIntervalMining", [1000]);
    }
    // The mined revert replays as a success at the block before (its reason reads unknown()); the write is
    // judged from the chain instead: not minted, and past the deadline.
    const late = await completed(lock.runId, "the late mint");
    expect(late.targets).toEqual([
      expect.objectContaining({ chain: fx.destination.name, mode: "mint", status: "superseded" }),
    ]);
    const refundRunId = refundRunIdOf(lock.lockId);
    await completed(refundRunId, "the refund");
    expect(await refundedLogs(lock.lockId)).toHaveLength(1);
    expect(await mintedLogs(lock.lockId)).toEqual([]);
    expect(await deadLettersOf(lock.runId, refundRunId)).toEqual([]);
    await checkInvariants("case 8, after the refund");
  }, 180_000);

  test("9. the destination's clock ahead of the source's at the refund: the refund is retried until the source catches up", async () => {
    const sender = await newSender(tst(100));
    const recipient = await newRecipient();
    const before = await tstOf(sender.address);
    const dest = fx.destination.chain;
    await alignClocks();
    const deadline = (await chainNow()) + 20;
    const lock = await withChainStopped(fx.destination, async () =>
      lockTokens(sender, tst(4), recipient.address, deadline),
    );
    // The destination jumps past the deadline; the source stays about 20 s before it.
    await dest.rpc("evm_increaseTime", [25]);
    destinationOffset += 25;
    await dest.rpc("evm_mine");
    await completed(lock.runId, "the late mint");
    const refundRunId = refundRunIdOf(lock.lockId);
    const refund = await completed(refundRunId, "the refund", 120_000);
    expect(refund.targets).toEqual([
      expect.objectContaining({ chain: fx.source.name, mode: "refund", status: "confirmed" }),
    ]);
    const refunded = await refundedLogs(lock.lockId);
    expect(refunded).toHaveLength(1);
    // Refunded only once the source chain's own clock was past the deadline (the lockbox's check).
    const block = await fx.source.chain.provider.getBlock(refunded[0]!.blockNumber);
    expect(block!.timestamp).toBeGreaterThan(deadline);
    expect(await tstOf(sender.address)).toBe(before);
    expect(await deadLettersOf(lock.runId, refundRunId)).toEqual([]);
    await checkInvariants("case 9, after the refund");
  }, 240_000);

  test("7. property: random locks, burns, destination outages and worker restarts end with every transfer settled once", async () => {
    const seed = Number(process.env.XCHAIN_SEED ?? Date.now() % 2 ** 31);
    const runs = Number(process.env.XCHAIN_RUNS ?? 3);
    console.log(`case 7: seed ${seed} (XCHAIN_SEED=${seed} reproduces these runs), ${runs} runs of up to 5 steps`);
    type Step =
      | { kind: "lock"; amount: number; long: boolean }
      | { kind: "burn"; percent: number }
      | { kind: "outage"; seconds: number }
      | { kind: "restart" };
    const lockArb: fc.Arbitrary<Step> = fc.record({
      kind: fc.constant("lock" as const),
      amount: fc.integer({ min: 1, max: 50 }),
      long: fc.boolean(),
    });
    // Locks and burns more often than faults; every sequence starts with a lock, so that every run moves tokens.
    const stepArb: fc.Arbitrary<Step> = fc.oneof(
      { arbitrary: lockArb, weight: 3 },
      {
        arbitrary: fc.record({ kind: fc.constant("burn" as const), percent: fc.integer({ min: 1, max: 100 }) }),
        weight: 2,
      },
      {
        arbitrary: fc.record({ kind: fc.constant("outage" as const), seconds: fc.integer({ min: 2, max: 6 }) }),
        weight: 2,
      },
      { arbitrary: fc.constant({ kind: "restart" as const }), weight: 2 },
    );
    const stepsArb = fc
      .tuple(lockArb, fc.array(stepArb, { maxLength: 4, size: "max" }))
      .map(([first, rest]) => [first, ...rest]);
    const INITIAL = tst(1000);
    const SHORT_SECONDS = 8;
    let run = 0;

    await fc.assert(
      fc.asyncProperty(stepsArb, async (steps) => {
        run += 1;
        const t0 = performance.now();
        const sender = await newSender(INITIAL);
        const recipient = await newRecipient();
        const lockboxStart = await tstOf(fx.route.lockbox);
        const supplyStart = await supply();
        const made: Lock[] = [];
        const burns: Burn[] = [];
        const trace: string[] = [];
        for (const step of steps) {
          if (step.kind === "lock") {
            if (!step.long) await alignClocks();
            const deadline = (await chainNow()) + (step.long ? 3600 : SHORT_SECONDS);
            made.push(await lockTokens(sender, tst(step.amount), recipient.address, deadline));
            trace.push(`lock ${step.amount} TST (${step.long ? "long" : `${SHORT_SECONDS} s`} deadline)`);
          } else if (step.kind === "burn") {
            // A burn of what the recipient holds: wait a little for a mint that is on its way.
            const pending = made.filter((l) => l.deadline > Date.now() / 1000 + 2);
            let balance = await wtstOf(recipient.address);
            if (balance === 0n && pending.length > 0) {
              balance = await waitFor(
                "a mint for the burn",
                async () => {
                  const b = await wtstOf(recipient.address);
                  return b > 0n ? b : undefined;
                },
                10_000,
              ).catch(() => 0n);
            }
            if (balance === 0n) {
              trace.push(`burn ${step.percent}%: nothing to burn`);
            } else {
              const amount = (balance * BigInt(step.percent)) / 100n || 1n;
              burns.push(await burnTokens(recipient, amount, sender.address));
              trace.push(`burn ${show(amount)} wTST (${step.percent}% of ${show(balance)})`);
            }
          } else if (step.kind === "outage") {
            await withChainStopped(fx.destination, () => sleep(step.seconds * 1000));
            trace.push(`destination stopped ${step.seconds} s`);
          } else {
            await killTheWorker();
            await startTheWorker();
            trace.push("worker SIGKILLed and restarted");
          }
          await checkInvariants(`run ${run}, after ${trace.at(-1)}`);
        }

        // Drain: every lock minted or refunded, every burn released, as the chains say.
        await waitFor(
          `run ${run}: every lock minted or refunded and every burn released (${trace.join("; ")})`,
          async () => {
            for (const lock of made) {
              if (!(await isMinted(lock.lockId)) && (await lockStatus(lock.lockId)) !== LOCK_STATUS.Refunded) {
                return undefined;
              }
            }
            for (const burn of burns) if ((await releasedLogs(burn.burnId)).length === 0) return undefined;
            return true;
          },
          90_000,
          500,
        );
        await sleep(1000); // a write that would land twice would do so now
        let mintedTotal = 0n;
        const ends: string[] = [];
        for (const lock of made) {
          const minted = await mintedLogs(lock.lockId);
          const refunded = await refundedLogs(lock.lockId);
          expect({ lock: lock.lockId, ends: minted.length + refunded.length }).toEqual({ lock: lock.lockId, ends: 1 });
          for (const log of [...minted, ...refunded]) expect(amountOf(log)).toBe(lock.amount);
          if (minted.length === 1) mintedTotal += lock.amount;
          ends.push(minted.length === 1 ? "minted" : "refunded");
        }
        let burnedTotal = 0n;
        for (const burn of burns) {
          const released = await releasedLogs(burn.burnId);
          expect({ burn: burn.burnId, released: released.length }).toEqual({ burn: burn.burnId, released: 1 });
          expect(amountOf(released[0]!)).toBe(burn.amount);
          burnedTotal += burn.amount;
        }
        // Token conservation: what the sender lacks is in the lockbox (this run's share), and the recipient holds
        // what was minted less what was burned.
        const senderNow = await tstOf(sender.address);
        const lockboxDelta = (await tstOf(fx.route.lockbox)) - lockboxStart;
        expect({ run, conserved: show(senderNow + lockboxDelta) }).toEqual({ run, conserved: show(INITIAL) });
        expect(await wtstOf(recipient.address)).toBe(mintedTotal - burnedTotal);
        expect(await supply()).toBe(supplyStart + mintedTotal - burnedTotal);
        const runIds = [...made.flatMap((l) => [l.runId, refundRunIdOf(l.lockId)]), ...burns.map((b) => b.runId)];
        const dead = await deadLettersOf(...runIds);
        if (dead.length > 0) {
          throw new Error(
            `run ${run} (${trace.join("; ")}): dead letters ${JSON.stringify(dead)}\n${await mintHistory(made)}\nworker output:\n${workerOutput(worker!)}`,
          );
        }
        await checkInvariants(`run ${run}, drained`);
        console.log(
          `case 7, run ${run} (${Math.round((performance.now() - t0) / 1000)} s): ${trace.join("; ")} → locks ${ends.join(", ") || "none"}; ${burns.length} burn(s) released`,
        );
      }),
      { seed, numRuns: runs, endOnFailure: true },
    );
  }, 240_000);
});
