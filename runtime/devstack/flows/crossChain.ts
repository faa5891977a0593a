/**
 * Flow: `@cryptlet/xchain-transfer` moves a token from the consortium chain to the public chain and back, and
 * refunds a lock whose destination was down past its deadline (docs/crosschain.md).
 *
 * 1. A sender locks 100 TST in the consortium chain's `CryptletLockbox` for a recipient on the public chain; the
 *    trigger sees `Locked` after its confirmations, the Cryptlet attests a MINT, and the pipeline mints 100 wTST
 *    on the public chain's `CryptletWrappedToken`.
 * 2. The recipient burns 40 wTST back to the sender; `Burned` becomes a RELEASE on the consortium chain.
 * 3. The public chain's node is frozen (SIGSTOP) and the sender locks 25 TST with a short deadline. The mint cannot
 *    be written; once the node runs again after the deadline, the mint is refused (superseded), the deadline watcher
 *    reads `isMinted == false` at a public block after the deadline, and the lock is refunded.
 *
 * Every balance is read from the chains and compared with the amounts moved; the invariant "wTST supply on the
 * public chain ≤ TST locked toward it" is checked after each step.
 * @module
 */
import {
  Contract,
  Wallet,
  formatUnits,
  parseUnits,
  type ContractTransactionResponse,
  type TransactionReceipt,
} from "ethers";

import { computeResultId, type Hex32 } from "../../attestation/eip712.ts";
import { chainLogEventId, cryptletIdOf } from "../../attestation/ids.ts";
import { interfaceOf } from "../../chains/contracts.ts";
import { BURNED_EVENT, LOCKED_EVENT, LOCK_STATUS, refundEventIdOf } from "../../crosschain/events.ts";
import { transferReceiptOf, type TransferReceipt } from "../../crosschain/transferReceipt.ts";
import type { CompositeReceipt } from "../../queue/results.ts";
import type { LocalStack } from "../stack.ts";
import type { FlowProgress, FlowReport } from "./types.ts";

const NAME = "@cryptlet/xchain-transfer";
const RUN_TIMEOUT_MS = 120_000;
const tst = (amount: string) => parseUnits(amount, 18);
const show = (amount: bigint) => formatUnits(amount, 18).replace(/\.0$/, "");

/** Runs the round trip and the refund. */
export async function crossChainFlow(
  stack: LocalStack,
  { deadlineSeconds = 8, onProgress }: { deadlineSeconds?: number; onProgress?: FlowProgress } = {},
): Promise<FlowReport> {
  const entry = stack.crosschain.find((c) => c.cryptlet === NAME);
  if (!entry)
    return {
      name: "cross-chain transfer",
      receipts: [],
      checks: [{ description: `${NAME} is not deployed`, ok: false }],
    };
  const { route } = entry;
  const source = stack.chains.find((c) => c.chain.chainId === route.sourceChainId)!;
  const destination = stack.chains.find((c) => c.chain.chainId === route.destinationChainId)!;
  const cryptletId = cryptletIdOf(NAME);

  const sender = Wallet.createRandom().connect(source.chain.provider);
  const recipient = Wallet.createRandom().connect(destination.chain.provider);
  await source.chain.fund(sender.address, "10");
  await destination.chain.fund(recipient.address, "10");
  const token = new Contract(route.token, interfaceOf("TestERC20"), source.chain.funder);
  const lockbox = new Contract(route.lockbox, interfaceOf("CryptletLockbox"), sender);
  const wrapped = new Contract(route.wrappedToken, interfaceOf("CryptletWrappedToken"), recipient);
  await (await token.getFunction("mint")(sender.address, tst("1000"))).wait();
  await (await token.connect(sender).getFunction("approve")(route.lockbox, tst("1000"))).wait();

  const receipts: CompositeReceipt[] = [];
  const checks: FlowReport["checks"] = [];
  const balances = async () => ({
    sender: (await token.getFunction("balanceOf")(sender.address)) as bigint,
    recipient: (await wrapped.getFunction("balanceOf")(recipient.address)) as bigint,
    locked: (await lockbox.getFunction("lockedFor")(route.destinationChainId)) as bigint,
    supply: (await wrapped.getFunction("totalSupply")()) as bigint,
  });
  const invariant = async (step: string) => {
    const b = await balances();
    checks.push({
      description: `after ${step}: wTST supply on ${destination.name} ${show(b.supply)} ≤ TST locked toward it on ${source.name} ${show(b.locked)}`,
      ok: b.supply <= b.locked,
    });
    return b;
  };
  const runOf = async (runId: string, what: string): Promise<CompositeReceipt | undefined> => {
    const outcome = await stack.pipeline.waitForRun(runId, RUN_TIMEOUT_MS).catch(() => undefined);
    if (outcome?.status === "complete") {
      receipts.push(outcome.receipt);
      return outcome.receipt;
    }
    checks.push({ description: `${what}: run ${runId.slice(0, 10)}… did not complete`, ok: false });
    return undefined;
  };
  /** The pipeline's event id of a chain-log event: the log of `address` with `topic` in `receipt`. */
  const eventIdOf = (chainId: number, receipt: TransactionReceipt, address: string, topic: string): Hex32 => {
    const log = receipt.logs.find((l) => l.address === address && l.topics[0] === topic)!;
    return chainLogEventId({ chainId, blockHash: log.blockHash, txHash: log.transactionHash, logIndex: log.index });
  };
  const transfer = async (id: string): Promise<TransferReceipt | undefined> => {
    try {
      return await transferReceiptOf(stack.pipeline, NAME, id);
    } catch (error) {
      checks.push({ description: `transfer receipt of ${id.slice(0, 10)}…: ${String(error)}`, ok: false });
      return undefined;
    }
  };
  const legsOf = (t: TransferReceipt) =>
    t.legs.map((l) => `${l.step} on ${l.chain} (tx ${l.txHash.slice(0, 10)}…)`).join(", ");
  const start = await balances();

  // 1. Lock on the consortium chain → mint on the public chain.
  // Deadlines are in destination-chain time, and the lockbox wants them after its own block time: a local chain's
  // clock runs ahead of the wall clock (each block gets a later second than the one before).
  const chainNow = async () =>
    Math.max(await latestTimestamp(source.chain.provider), await latestTimestamp(destination.chain.provider));
  const farDeadline = (await chainNow()) + 3600;
  const lockTx = await mined(
    lockbox.getFunction("lock")(tst("100"), route.destinationChainId, recipient.address, farDeadline),
  );
  const lockId = lockbox.interface.parseLog(lockTx.logs.find((l) => l.topics[0] === LOCKED_EVENT.topicHash)!)!.args
    .lockId as string;
  const mintRun = await runOf(
    computeResultId(cryptletId, eventIdOf(route.sourceChainId, lockTx, route.lockbox, LOCKED_EVENT.topicHash)),
    "mint of the 100 TST lock",
  );
  onProgress?.(1, 3);
  const afterMint = await invariant("the lock and its mint");
  checks.push({
    description: `lock 100 TST on ${source.name} → mint on ${destination.name}: sender ${show(start.sender)} → ${show(afterMint.sender)} TST, recipient ${show(start.recipient)} → ${show(afterMint.recipient)} wTST`,
    ok: mintRun !== undefined && afterMint.sender === start.sender - tst("100") && afterMint.recipient === tst("100"),
  });
  const minted = await transfer(lockId);
  if (minted) {
    checks.push({
      description: `transfer ${lockId.slice(0, 10)}… ${minted.status}: ${legsOf(minted)}; ${minted.checks.filter((c) => c.ok).length}/${minted.checks.length} receipt checks hold`,
      ok: minted.status === "minted" && minted.checks.every((c) => c.ok),
    });
  }

  // 2. Burn on the public chain → release on the consortium chain.
  const burnTx = await mined(wrapped.getFunction("burn")(tst("40"), route.sourceChainId, sender.address));
  const burnId = wrapped.interface.parseLog(burnTx.logs.find((l) => l.topics[0] === BURNED_EVENT.topicHash)!)!.args
    .burnId as string;
  const releaseRun = await runOf(
    computeResultId(
      cryptletId,
      eventIdOf(route.destinationChainId, burnTx, route.wrappedToken, BURNED_EVENT.topicHash),
    ),
    "release of the 40 wTST burn",
  );
  onProgress?.(2, 3);
  const afterRelease = await invariant("the burn and its release");
  checks.push({
    description: `burn 40 wTST on ${destination.name} → release on ${source.name}: recipient ${show(afterMint.recipient)} → ${show(afterRelease.recipient)} wTST, sender ${show(afterMint.sender)} → ${show(afterRelease.sender)} TST`,
    ok:
      releaseRun !== undefined &&
      afterRelease.recipient === afterMint.recipient - tst("40") &&
      afterRelease.sender === afterMint.sender + tst("40"),
  });
  const released = await transfer(burnId);
  if (released) {
    checks.push({
      description: `transfer ${burnId.slice(0, 10)}… ${released.status}: ${legsOf(released)}`,
      ok: released.status === "released" && released.checks.every((c) => c.ok),
    });
  }

  // 3. The destination is down past the deadline → refund.
  const deadline = (await chainNow()) + deadlineSeconds;
  process.kill(destination.chain.pid, "SIGSTOP");
  let refundLockId: string;
  let refundLockTx: TransactionReceipt;
  try {
    refundLockTx = await mined(
      lockbox.getFunction("lock")(tst("25"), route.destinationChainId, recipient.address, deadline),
    );
    refundLockId = lockbox.interface.parseLog(refundLockTx.logs.find((l) => l.topics[0] === LOCKED_EVENT.topicHash)!)!
      .args.lockId as string;
    // The destination stays down until the wall clock is past the deadline: a Hardhat block is never older than
    // the wall clock, so its first block after it resumes is past the deadline too.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, deadline * 1000 - Date.now()) + 2000));
  } finally {
    process.kill(destination.chain.pid, "SIGCONT");
  }
  const lateMint = await runOf(
    computeResultId(cryptletId, eventIdOf(route.sourceChainId, refundLockTx, route.lockbox, LOCKED_EVENT.topicHash)),
    "mint of the 25 TST lock (after its deadline)",
  );
  const refundRun = await runOf(
    computeResultId(cryptletId, refundEventIdOf(refundLockId)),
    "refund of the 25 TST lock",
  );
  onProgress?.(3, 3);
  const afterRefund = await invariant("the refund");
  const lock = (await lockbox.getFunction("lockOf")(refundLockId)) as { status: bigint };
  const isMinted = (await wrapped.getFunction("isMinted")(refundLockId)) as boolean;
  const mintTarget = lateMint?.targets.find((t) => t.mode === "mint");
  checks.push({
    description: `lock 25 TST with ${destination.name} stopped past the deadline → refund on ${source.name}: sender ${show(afterRelease.sender)} → ${show(afterRefund.sender)} TST, recipient still ${show(afterRefund.recipient)} wTST, isMinted false, lock Refunded, late mint ${mintTarget?.status ?? "missing"}`,
    ok:
      refundRun !== undefined &&
      afterRefund.sender === afterRelease.sender &&
      afterRefund.recipient === afterRelease.recipient &&
      !isMinted &&
      Number(lock.status) === LOCK_STATUS.Refunded &&
      mintTarget?.status === "superseded",
  });
  const refunded = await transfer(refundLockId);
  if (refunded) {
    checks.push({
      description: `transfer ${refundLockId.slice(0, 10)}… ${refunded.status}: ${legsOf(refunded)}`,
      ok: refunded.status === "refunded" && refunded.checks.every((c) => c.ok),
    });
  }
  checks.push({
    description: `balances: sender ${show(afterRefund.sender)} TST on ${source.name} (1000 − 100 + 40), recipient ${show(afterRefund.recipient)} wTST on ${destination.name} (100 − 40); lockbox holds ${show(afterRefund.locked)} TST for ${destination.name} = wTST supply ${show(afterRefund.supply)}`,
    ok:
      afterRefund.sender === tst("940") &&
      afterRefund.recipient === tst("60") &&
      afterRefund.locked === afterRefund.supply,
  });
  return {
    name: `xchain-transfer (${source.name} → ${destination.name} and back; a refund with ${destination.name} stopped)`,
    receipts,
    checks,
  };
}

/** Waits for a sent transaction's receipt. */
async function mined(sent: Promise<ContractTransactionResponse>): Promise<TransactionReceipt> {
  return (await (await sent).wait())!;
}

async function latestTimestamp(provider: { getBlock(tag: string): Promise<{ timestamp: number } | null> }) {
  return (await provider.getBlock("latest"))!.timestamp;
}
