/**
 * Transfer receipts (runtime/crosschain/transferReceipt.ts): one receipt per cross-chain transfer, read from the
 * chains and compared with the runs' composite receipts. Against a real Hardhat chain holding a `CryptletLockbox`
 * and its peer `CryptletWrappedToken` (test/support/crosschain.ts; one chain, so the source and the destination
 * chain id are the same number and one configured chain lists both contracts). The test plays the runtime: each
 * result answers the event id the pipeline gives its event (the `Locked`/`Burned` log's chain-log id, the refund
 * observation's id), so its result id is the run id `transferReceiptOf` derives; and it plays the result store,
 * whose receipts it builds from the real transactions (a plain object stands in for the Redis-backed store's
 * `getReceipt`, and for nothing else; the chain reads go to the chain).
 *
 * Cases: a minted lock, a pending lock, a refunded lock (its late mint run superseded), a burn released, a burn
 * pending, an unknown id; and checks that fail: a run's receipt naming another transaction, a lock both minted and
 * refunded, a mint of another amount than the lock's (the last two by a runtime with the signers' threshold, which
 * the contracts cannot refuse: docs/crosschain.md "Trust assumptions").
 */
import { id, type Signer, type TransactionReceipt } from "ethers";

import { buildProofBundle, type BundleAnchor } from "../../runtime/attestation/bundle.ts";
import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import { chainLogEventId } from "../../runtime/attestation/ids.ts";
import { parseChainsConfig, type ChainConfig } from "../../runtime/chains/config.ts";
import { ERR_CROSSCHAIN_EVENT_INVALID } from "../../runtime/crosschain/errors.ts";
import { refundEventIdOf } from "../../runtime/crosschain/events.ts";
import {
  transferReceiptOf,
  type TransferReceipt,
  type TransferReceiptSource,
} from "../../runtime/crosschain/transferReceipt.ts";
import { isCryptletError } from "../../runtime/errors.ts";
import type { ChainOutcome, CompositeReceipt } from "../../runtime/queue/results.ts";
import { CONSORTIUM_ID, type AnyContract } from "../support/contracts.ts";
import {
  BRIDGE,
  BRIDGE_CODE,
  KIND_MINT,
  KIND_REFUND,
  KIND_RELEASE,
  as,
  deployBridge,
  eventOf,
  latestBlock,
  mineAt,
  mintPayload,
  refundPayload,
  releasePayload,
  signOutput,
  type Bridge,
  type Signed,
} from "../support/crosschain.ts";

/** The package whose Cryptlet id the contracts trust (`BRIDGE = cryptletIdOf(PKG)`). */
const PKG = "@cryptlet/bridge";
const CHAIN = "local";

type Mode = "mint" | "release" | "refund";

let bridge: Bridge;
let config: ChainConfig;
let alice: string;
let bob: string;
let carol: string;
/** The runs' composite receipts by run id: what `results.getReceipt` answers. */
const receipts = new Map<string, CompositeReceipt>();

/** A lock and its `Locked` log's transaction. */
interface Lock {
  lockId: string;
  tx: TransactionReceipt;
}
/** A write of a result, and its signed result. */
interface Write {
  signed: Signed;
  tx: TransactionReceipt;
}

let minted: { lock: Lock; mint: Write };
let pending: Lock;
let refunded: { lock: Lock; refund: Write; lateMint: Signed };
let released: { burnId: string; burn: TransactionReceipt; release: Write };
let unreleased: { burnId: string; burn: TransactionReceipt };
let both: { lock: Lock; mint: Write; refund: Write };
let overminted: { lock: Lock; mint: Write };

const wait = async (tx: Promise<{ wait(): Promise<unknown> }>) => (await (await tx).wait()) as TransactionReceipt;

/** The pipeline's event id of the one `name` log of `contract` in `tx`. */
function chainLogIdOf(contract: AnyContract, tx: TransactionReceipt, name: string): Hex32 {
  const log = tx.logs.find((l) => l.address === contract.target && contract.interface.parseLog(l)?.name === name)!;
  return chainLogEventId({
    chainId: bridge.chainId,
    blockHash: log.blockHash,
    txHash: log.transactionHash,
    logIndex: log.index,
  });
}

/** The composite receipt of a run that wrote `signed` in `tx` (`mode`), or with `outcome` instead. */
function receiptOf(
  mode: Mode,
  signed: Signed,
  tx?: TransactionReceipt,
  outcome?: Partial<ChainOutcome>,
): CompositeReceipt {
  const contract = mode === "mint" ? bridge.route.token : bridge.route.lockbox;
  const anchor: BundleAnchor | undefined = tx && {
    chainId: String(bridge.chainId),
    contract,
    txHash: tx.hash as Hex32,
    blockNumber: String(tx.blockNumber),
    blockHash: tx.blockHash as Hex32,
    gasUsed: tx.gasUsed.toString(),
    mode,
  };
  const target: ChainOutcome = {
    chain: CHAIN,
    mode,
    status: "confirmed",
    ...(tx
      ? {
          receipt: {
            status: "confirmed",
            chain: CHAIN,
            chainId: Number(bridge.chainId),
            idempotencyKey: `${mode}:${CHAIN}:${signed.result.resultId}`,
            txHash: tx.hash,
            blockNumber: tx.blockNumber,
            blockHash: tx.blockHash,
            gasUsed: tx.gasUsed.toString(),
          },
          anchor,
        }
      : {}),
    updatedAt: Date.now(),
    ...outcome,
  };
  const signatures = signed.signatures.map((signature, i) => ({ signer: bridge.s.signers[i]!.address, signature }));
  return {
    runId: signed.result.resultId,
    resultId: signed.result.resultId,
    cryptlet: { name: PKG, version: "1.0.0", cryptletId: BRIDGE, codeHash: BRIDGE_CODE },
    status: target.status === "failed" ? "failed" : "confirmed",
    targets: [target],
    bundle: buildProofBundle({
      consortiumId: CONSORTIUM_ID,
      manifest: { cryptletId: BRIDGE, name: PKG, version: "1.0.0" },
      result: signed.result,
      signatures,
      attestation: "header.claims.signature",
      payload: { public: { abiType: "bytes", data: signed.payload } },
      anchors: anchor ? [anchor] : [],
    }),
    gasUsed: tx ? tx.gasUsed.toString() : "0",
    summary: `${mode} on ${CHAIN}: ${target.status}`,
    completedAt: Date.now(),
  };
}

const store = (receipt: CompositeReceipt) => receipts.set(receipt.runId, receipt);

/** The pipeline stand-in: the configured chain with an RPC client on the Hardhat chain, and the receipts. */
/** `eth_getLogs` calls made through {@link source}'s RPC, with their block ranges. */
const logCalls: { fromBlock: number; toBlock: number }[] = [];

function source(
  overrides: Map<string, CompositeReceipt> = new Map(),
  chainConfig: ChainConfig = config,
): TransferReceiptSource {
  const provider = bridge.s.ethers.provider;
  const rpc = {
    send: async <T>(method: string, params: unknown[]) => {
      if (method === "eth_getLogs") {
        const [filter] = params as [{ fromBlock: string; toBlock: string }];
        logCalls.push({ fromBlock: Number(filter.fromBlock), toBlock: Number(filter.toBlock) });
      }
      return (await provider.send(method, params)) as T;
    },
  };
  return {
    ctx: {
      chains: new Map([[CHAIN, { config: chainConfig, writer: { rpc } }]]),
      results: { getReceipt: async (runId: string) => overrides.get(runId) ?? receipts.get(runId) },
    },
  };
}

const failed = (t: TransferReceipt) => t.checks.filter((c) => !c.ok).map((c) => c.description);
const descriptions = (t: TransferReceipt) => t.checks.map((c) => c.description);
const legOf = (step: string, tx: TransactionReceipt, contract: string, runId?: string) => ({
  step,
  chain: CHAIN,
  chainId: Number(bridge.chainId),
  contract,
  txHash: tx.hash,
  blockNumber: tx.blockNumber,
  blockHash: tx.blockHash,
  ...(runId === undefined ? {} : { runId }),
});

beforeAll(async () => {
  bridge = await deployBridge(1, 1_000n);
  const { s, lockbox, wrapped, chainId, route } = bridge;
  config = parseChainsConfig({
    chains: [
      {
        name: CHAIN,
        chainId: Number(chainId),
        rpcUrl: "http://127.0.0.1:1",
        signer: { type: "local", jwkPath: "/nonexistent/unused.jwk" },
        contracts: { crosschain: { [PKG]: { lockbox: route.lockbox, wrappedTokens: [route.token] } } },
      },
    ],
  }).chains[0]!;
  const [aliceSigner, bobSigner] = s.others as [Signer, Signer, Signer];
  [alice, bob, carol] = (await Promise.all(s.others.slice(0, 3).map((a) => a.getAddress()))) as [
    string,
    string,
    string,
  ];
  const deadline = BigInt((await latestBlock(s.ethers)).timestamp) + 3_600n;

  const lock = async (amount: bigint, recipient: string): Promise<Lock> => {
    const tx = await wait(as(lockbox, aliceSigner).lock(amount, chainId, recipient, deadline));
    return { lockId: eventOf(lockbox, tx, "Locked").args.lockId as string, tx };
  };
  /** The mint result of `l` (of `amount`, the lock's unless a test overstates it), answering its `Locked` log. */
  const mintResult = (l: Lock, amount: bigint, recipient: string) =>
    signOutput(
      s,
      chainLogIdOf(lockbox, l.tx, "Locked"),
      mintPayload({ ...route, kind: KIND_MINT, lockId: l.lockId, recipient, amount, deadline }),
    );
  const mint = async (l: Lock, amount: bigint, recipient: string): Promise<Write> => {
    const signed = await mintResult(l, amount, recipient);
    return { signed, tx: await wait(wrapped.mint(signed.result, signed.payload, signed.signatures)) };
  };
  /** The refund of `l` (the deadline watcher's observation at the latest block). */
  const refund = async (l: Lock, amount: bigint): Promise<Write> => {
    const observedAt = BigInt((await latestBlock(s.ethers)).timestamp);
    const signed = await signOutput(
      s,
      refundEventIdOf(l.lockId),
      refundPayload({ ...route, kind: KIND_REFUND, lockId: l.lockId, sender: alice, amount, deadline, observedAt }),
    );
    return { signed, tx: await wait(lockbox.refund(signed.result, signed.payload, signed.signatures)) };
  };
  const burn = async (amount: bigint, recipient: string) => {
    const tx = await wait(as(wrapped, bobSigner).burn(amount, chainId, recipient));
    return { burnId: eventOf(wrapped, tx, "Burned").args.burnId as string, burn: tx };
  };

  // Before the deadline: a lock minted; a lock left pending; locks to be refunded; a mint of more than was locked.
  const mintedLock = await lock(300n, bob);
  minted = { lock: mintedLock, mint: await mint(mintedLock, 300n, bob) };
  pending = await lock(50n, bob);
  const refundedLock = await lock(200n, bob);
  const bothLock = await lock(70n, carol);
  const bothMint = await mint(bothLock, 70n, carol);
  const overLock = await lock(10n, carol);
  overminted = { lock: overLock, mint: await mint(overLock, 11n, carol) };

  // Bob burns 100 for Carol (released) and 20 for Alice (not released).
  const b = await burn(100n, carol);
  const signedRelease = await signOutput(
    s,
    chainLogIdOf(wrapped, b.burn, "Burned"),
    releasePayload({ ...route, kind: KIND_RELEASE, burnId: b.burnId, recipient: carol, amount: 100n }),
  );
  released = {
    ...b,
    release: {
      signed: signedRelease,
      tx: await wait(lockbox.release(signedRelease.result, signedRelease.payload, signedRelease.signatures)),
    },
  };
  unreleased = await burn(20n, alice);

  // After the deadline: the unminted lock is refunded (its mint run came too late); the minted one is refunded too,
  // which only a runtime with the threshold of signers can do.
  await mineAt(s.ethers, deadline + 1n);
  refunded = {
    lock: refundedLock,
    refund: await refund(refundedLock, 200n),
    lateMint: await mintResult(refundedLock, 200n, bob),
  };
  both = { lock: bothLock, mint: bothMint, refund: await refund(bothLock, 70n) };

  store(receiptOf("mint", minted.mint.signed, minted.mint.tx));
  store(
    receiptOf("mint", refunded.lateMint, undefined, {
      status: "superseded",
      reason: "the lock's deadline passed (refunded instead)",
    }),
  );
  store(receiptOf("refund", refunded.refund.signed, refunded.refund.tx));
  store(receiptOf("release", released.release.signed, released.release.tx));
  store(receiptOf("mint", both.mint.signed, both.mint.tx));
  store(receiptOf("refund", both.refund.signed, both.refund.tx));
  store(receiptOf("mint", overminted.mint.signed, overminted.mint.tx));
});

describe("transferReceiptOf: one receipt per transfer, read from the chains", () => {
  test("a minted lock: status minted, legs lock then mint with the real transactions, every check holds", async () => {
    const t = await transferReceiptOf(source(), PKG, minted.lock.lockId);
    const runId = minted.mint.signed.result.resultId;
    expect(t).toMatchObject({
      kind: "lock",
      id: minted.lock.lockId,
      cryptlet: PKG,
      status: "minted",
      amount: "300",
      from: alice,
      to: bob,
      runs: [{ runId, mode: "mint", status: "confirmed" }],
    });
    expect(t.deadline).toBeGreaterThan(0);
    expect(t.legs).toEqual([
      legOf("lock", minted.lock.tx, bridge.route.lockbox),
      legOf("mint", minted.mint.tx, bridge.route.token, runId),
    ]);
    expect(failed(t)).toEqual([]);
    expect(descriptions(t)).toEqual(
      expect.arrayContaining([
        `the mint run's transaction ${minted.mint.tx.hash} is the Minted event's (tx ${minted.mint.tx.hash})`,
        "lock's amount 300 equals minted amount 300",
        `isMinted(lockId) true on the wrapped token ${bridge.route.token}`,
        "mintResultOf(lockId) is the Minted event's resultId",
        "exactly one of mint or refund happened (minted)",
      ]),
    );
  });

  test("logs are read back from the latest block to the package's fromBlock, in ranges of logRangeBlocks", async () => {
    const lockBlock = minted.lock.tx.blockNumber;
    const latest = Number(await bridge.s.ethers.provider.send("eth_blockNumber", []));
    // Small ranges: the Locked and Minted events are found by walking back, and no range is over 3 blocks.
    logCalls.length = 0;
    const walked = await transferReceiptOf(source(), PKG, minted.lock.lockId, { logRangeBlocks: 3 });
    expect(walked.status).toBe("minted");
    expect(failed(walked)).toEqual([]);
    expect(logCalls.every((c) => c.toBlock - c.fromBlock + 1 <= 3 && c.toBlock <= latest)).toBe(true);
    expect(Math.min(...logCalls.map((c) => c.fromBlock))).toBeLessThanOrEqual(lockBlock);
    // A fromBlock after the lock's block: its Locked event is outside what may be read, which the checks say.
    const entry = config.contracts.crosschain![PKG]!;
    const late = { ...config, contracts: { crosschain: { [PKG]: { ...entry, fromBlock: lockBlock + 1 } } } };
    logCalls.length = 0;
    const clipped = await transferReceiptOf(source(new Map(), late), PKG, minted.lock.lockId);
    expect(logCalls.every((c) => c.fromBlock >= lockBlock + 1)).toBe(true);
    expect(failed(clipped)).toContain(
      `the Locked event of the lock is on chain "${CHAIN}" (lockbox ${bridge.route.lockbox})`,
    );
    // At the lock's own block, everything holds again.
    const exact = { ...config, contracts: { crosschain: { [PKG]: { ...entry, fromBlock: lockBlock } } } };
    expect(failed(await transferReceiptOf(source(new Map(), exact), PKG, minted.lock.lockId))).toEqual([]);
  });

  test("a pending lock: status pending, the lock leg only, its mint run not found", async () => {
    const t = await transferReceiptOf(source(), PKG, pending.lockId);
    expect(t).toMatchObject({ kind: "lock", status: "pending", amount: "50", from: alice, to: bob });
    expect(t.legs).toEqual([legOf("lock", pending.tx, bridge.route.lockbox)]);
    expect(t.runs).toEqual([
      {
        runId: expect.stringMatching(/^0x[0-9a-f]{64}$/) as string,
        mode: "mint",
        status: "not found",
      },
    ]);
    expect(failed(t)).toEqual([]);
    expect(descriptions(t)).toContain("neither mint nor refund happened yet (pending)");
  });

  test("a refunded lock: status refunded, legs lock then refund, the late mint run superseded", async () => {
    const t = await transferReceiptOf(source(), PKG, refunded.lock.lockId);
    const refundRun = refunded.refund.signed.result.resultId;
    expect(t).toMatchObject({ kind: "lock", status: "refunded", amount: "200", from: alice, to: bob });
    expect(t.legs).toEqual([
      legOf("lock", refunded.lock.tx, bridge.route.lockbox),
      legOf("refund", refunded.refund.tx, bridge.route.lockbox, refundRun),
    ]);
    expect(t.runs).toEqual([
      { runId: refunded.lateMint.result.resultId, mode: "mint", status: "confirmed" },
      { runId: refundRun, mode: "refund", status: "confirmed" },
    ]);
    expect(failed(t)).toEqual([]);
    expect(descriptions(t)).toEqual(
      expect.arrayContaining([
        "lock status Refunded (lockOf)",
        "lock's amount 200 equals refunded amount 200",
        `the refund run's transaction ${refunded.refund.tx.hash} is the Refunded event's (tx ${refunded.refund.tx.hash})`,
        "the mint run wrote nothing (superseded: the lock's deadline passed (refunded instead)), and no Minted event carries its result",
        "exactly one of mint or refund happened (refunded)",
      ]),
    );
  });

  test("a burn released: status released, legs burn then release, every check holds", async () => {
    const t = await transferReceiptOf(source(), PKG, released.burnId);
    const runId = released.release.signed.result.resultId;
    expect(t).toMatchObject({
      kind: "burn",
      id: released.burnId,
      status: "released",
      amount: "100",
      from: bob,
      to: carol,
      runs: [{ runId, mode: "release", status: "confirmed" }],
    });
    expect(t.deadline).toBeUndefined();
    expect(t.legs).toEqual([
      legOf("burn", released.burn, bridge.route.token),
      legOf("release", released.release.tx, bridge.route.lockbox, runId),
    ]);
    expect(failed(t)).toEqual([]);
    expect(descriptions(t)).toEqual(
      expect.arrayContaining([
        "burned amount 100 equals released amount 100",
        `the release run's transaction ${released.release.tx.hash} is the Released event's (tx ${released.release.tx.hash})`,
      ]),
    );
  });

  test("a burn not released: status pending, the burn leg only, its release run not found", async () => {
    const t = await transferReceiptOf(source(), PKG, unreleased.burnId);
    expect(t).toMatchObject({ kind: "burn", status: "pending", amount: "20", from: bob, to: alice });
    expect(t.legs).toEqual([legOf("burn", unreleased.burn, bridge.route.token)]);
    expect(t.runs).toMatchObject([{ mode: "release", status: "not found" }]);
    expect(failed(t)).toEqual([]);
  });

  test("an unknown id, or one that is no id, is ERR_CROSSCHAIN_EVENT_INVALID", async () => {
    for (const unknown of [id("no such lock or burn"), "0x1234"]) {
      const error = await transferReceiptOf(source(), PKG, unknown).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isCryptletError(error, ERR_CROSSCHAIN_EVENT_INVALID.code)).toBe(true);
      expect((error as { details: unknown }).details).toEqual({ field: "id" });
    }
  });

  test("a run's receipt naming another transaction than the chain's event is a failed check", async () => {
    const honest = receipts.get(minted.mint.signed.result.resultId)!;
    const lying = structuredClone(honest);
    const target = lying.targets[0]!;
    target.receipt = { ...target.receipt!, txHash: minted.lock.tx.hash };
    target.anchor = { ...target.anchor!, txHash: minted.lock.tx.hash as Hex32 };
    const t = await transferReceiptOf(source(new Map([[lying.runId, lying]])), PKG, minted.lock.lockId);
    expect(t.status).toBe("minted");
    expect(failed(t)).toEqual([
      `the mint run's transaction ${minted.lock.tx.hash} is the Minted event's (tx ${minted.mint.tx.hash})`,
    ]);
    // The same for a release run.
    const release = structuredClone(receipts.get(released.release.signed.result.resultId)!);
    release.targets[0]!.receipt!.txHash = released.burn.hash;
    const r = await transferReceiptOf(source(new Map([[release.runId, release]])), PKG, released.burnId);
    expect(failed(r)).toEqual([
      `the release run's transaction ${released.burn.hash} is the Released event's (tx ${released.release.tx.hash})`,
    ]);
  });

  test("a minted run whose receipt is missing, or says it failed, disagrees with the chain", async () => {
    const runId = minted.mint.signed.result.resultId;
    const failedRun = receiptOf("mint", minted.mint.signed, undefined, {
      status: "failed",
      error: { code: "ERR_CHAIN_WRITE_REVERTED", message: "reverted" },
    });
    const t = await transferReceiptOf(source(new Map([[runId, failedRun]])), PKG, minted.lock.lockId);
    expect(t.runs).toEqual([{ runId, mode: "mint", status: "failed" }]);
    expect(failed(t)).toEqual([
      "the mint run wrote nothing (failed: ERR_CHAIN_WRITE_REVERTED), and no Minted event carries its result",
    ]);
    const none: TransferReceiptSource = { ctx: { ...source().ctx, results: { getReceipt: async () => undefined } } };
    const u = await transferReceiptOf(none, PKG, minted.lock.lockId);
    expect(u.runs).toEqual([{ runId, mode: "mint", status: "not found" }]);
    expect(failed(u)).toEqual([
      `the mint run ${runId.slice(0, 10)}… has a composite receipt (to compare with the Minted event)`,
    ]);
  });

  test("a lock both minted and refunded fails the exactly-one check, with both legs listed", async () => {
    const t = await transferReceiptOf(source(), PKG, both.lock.lockId);
    expect(t.status).toBe("refunded");
    expect(t.legs.map((l) => [l.step, l.txHash])).toEqual([
      ["lock", both.lock.tx.hash],
      ["mint", both.mint.tx.hash],
      ["refund", both.refund.tx.hash],
    ]);
    expect(failed(t)).toEqual(["exactly one of mint or refund happened: both did"]);
  });

  test("a mint of another amount than the lock's fails the amount check", async () => {
    const t = await transferReceiptOf(source(), PKG, overminted.lock.lockId);
    expect(t).toMatchObject({ status: "minted", amount: "10" });
    expect(failed(t)).toEqual(["lock's amount 10 equals minted amount 11"]);
  });
});
