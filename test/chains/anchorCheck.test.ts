/**
 * `checkAnchor` (runtime/chains/anchorCheck.ts) for the cross-chain write modes (docs/crosschain.md,
 * docs/proof-bundle.md "Anchors on-chain"), against a real Hardhat chain holding a `CryptletLockbox` and its peer
 * `CryptletWrappedToken` (test/support/crosschain.ts). The test plays the runtime: it locks, mints, burns, releases
 * and refunds with results signed by the registry's trusted wallets, and builds (schema-valid) proof bundles with
 * one anchor each:
 *
 * - true `mint`, `release` and `refund` anchors pass, and the ok line says what held;
 * - a bundle of another result on a true write fails ("carry another resultId");
 * - an anchor naming a transaction that is not the write (the lock's, another mode's) fails and names the event
 *   that is missing and the ones the contract did emit;
 * - a contract whose views disagree with the event (`isRecorded`, `mintResultOf`, `releaseResultOf`, `lockOf`;
 *   shown through a provider that answers one view falsely) fails and names the view;
 * - the proofs those modes require are the per-result signatures (`proofsOf`).
 *
 * The other modes' on-chain checks are tested through `cryptlet verify` (test/cli/verify.test.ts).
 */
import { Interface, ZeroAddress, ZeroHash, id, type Provider, type Signer, type TransactionReceipt } from "ethers";

import { buildProofBundle, type BundleAnchor, type ProofBundle } from "../../runtime/attestation/bundle.ts";
import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import { proofsOf } from "../../runtime/attestation/verifyBundle.ts";
import { ANCHOR_VIEWS_ABI, checkAnchor } from "../../runtime/chains/anchorCheck.ts";
import { CONSORTIUM_ID, type AnyContract } from "../support/contracts.ts";
import {
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

type Mode = "mint" | "release" | "refund";

let bridge: Bridge;
let provider: Provider;
/** Each cross-chain write: the signed result, the transaction, the written contract. */
const writes = {} as Record<Mode, { signed: Signed; receipt: TransactionReceipt; contract: string }>;
/** The lock that was minted. */
let lockReceipt: TransactionReceipt;

const wait = async (tx: Promise<{ wait(): Promise<unknown> }>) => (await (await tx).wait()) as TransactionReceipt;

beforeAll(async () => {
  bridge = await deployBridge(1, 1_000n);
  const { s, lockbox, wrapped, chainId, route } = bridge;
  provider = s.ethers.provider as unknown as Provider;
  const [alice, bob, carol] = s.others as [Signer, Signer, Signer];
  const [bobAddress, carolAddress] = await Promise.all([bob.getAddress(), carol.getAddress()]);
  const deadline = BigInt((await latestBlock(s.ethers)).timestamp) + 3_600n;
  let requests = 0;
  const sign = (payload: string) => signOutput(s, id(`anchor-check-request-${(requests += 1)}`) as Hex32, payload);
  const submit = (contract: AnyContract, method: Mode, signed: Signed) =>
    wait(contract[method](signed.result, signed.payload, signed.signatures));

  // Lock 300 for Bob and mint them.
  lockReceipt = await wait(as(lockbox, alice).lock(300n, chainId, bobAddress, deadline));
  const locked = eventOf(lockbox, lockReceipt, "Locked").args;
  const mint = await sign(
    mintPayload({ ...route, kind: KIND_MINT, lockId: locked.lockId, recipient: bobAddress, amount: 300n, deadline }),
  );
  writes.mint = { signed: mint, receipt: await submit(wrapped, "mint", mint), contract: route.token };

  // Bob burns 100 for Carol; release them.
  const burned = eventOf(wrapped, await wait(as(wrapped, bob).burn(100n, chainId, carolAddress)), "Burned").args;
  const release = await sign(
    releasePayload({ ...route, kind: KIND_RELEASE, burnId: burned.burnId, recipient: carolAddress, amount: 100n }),
  );
  writes.release = { signed: release, receipt: await submit(lockbox, "release", release), contract: route.lockbox };

  // Lock 200 more, never minted: after the deadline it is refunded to Alice.
  const second = eventOf(lockbox, await wait(as(lockbox, alice).lock(200n, chainId, bobAddress, deadline)), "Locked");
  await mineAt(s.ethers, deadline + 1n);
  const observedAt = BigInt((await latestBlock(s.ethers)).timestamp);
  const refund = await sign(
    refundPayload({
      ...route,
      kind: KIND_REFUND,
      lockId: second.args.lockId,
      sender: await alice.getAddress(),
      amount: 200n,
      deadline,
      observedAt,
    }),
  );
  writes.refund = { signed: refund, receipt: await submit(lockbox, "refund", refund), contract: route.lockbox };
});

/** The anchor of a `mode` write in `receipt` to `contract`. */
const anchorOf = (mode: Mode, receipt: TransactionReceipt, contract: string): BundleAnchor => ({
  chainId: String(bridge.chainId),
  contract,
  txHash: receipt.hash as Hex32,
  blockNumber: String(receipt.blockNumber),
  blockHash: receipt.blockHash as Hex32,
  gasUsed: receipt.gasUsed.toString(),
  mode,
});

/** A schema-valid bundle of `signed` with `anchors` (the attestation token is a placeholder: not checked here). */
function bundleOf(signed: Signed, anchors: BundleAnchor[], batch?: boolean): ProofBundle {
  const signatures = signed.signatures.map((signature, i) => ({ signer: bridge.s.signers[i]!.address, signature }));
  // With `batch`, a batch stands where the per-result signatures were (its fields are shapes only: only which
  // proofs are present matters to `proofsOf`).
  const placeholderBatch = {
    root: id("root") as Hex32,
    count: 2,
    timestamp: 1n,
    proof: [id("sibling") as Hex32],
    signatures,
  };
  return buildProofBundle({
    consortiumId: CONSORTIUM_ID,
    manifest: { cryptletId: signed.result.cryptletId, name: "@cryptlet/bridge", version: "1.0.0" },
    result: signed.result,
    signatures: batch ? [] : signatures,
    ...(batch ? { batch: placeholderBatch } : {}),
    attestation: "header.claims.signature",
    payload: { public: { abiType: "bytes", data: signed.payload } },
    anchors,
  });
}

/** The bundle of the `mode` write with its true anchor. */
const trueBundle = (mode: Mode) => {
  const w = writes[mode];
  return bundleOf(w.signed, [anchorOf(mode, w.receipt, w.contract)]);
};

/** A stored lock with status `Locked` (1), as `lockOf` returns it. */
const LOCKED = [ZeroAddress, 0n, 1n, ZeroAddress, 0n, 0n] as const;
const VIEWS = new Interface(ANCHOR_VIEWS_ABI);

/**
 * The Hardhat chain, except that the contracts' view `name` answers `answer`: a chain whose state disagrees with
 * the write's event (what an honest contract never shows, so only a stand-in provider can).
 */
function viewsSaying(name: string, answer: unknown): Provider {
  const selector = VIEWS.getFunction(name)!.selector;
  return new Proxy(provider, {
    get(target, key) {
      const value = Reflect.get(target, key, target) as unknown;
      // The provider's own methods run on the provider (it has private members), `call` on the stand-in.
      if (key !== "call")
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      return async (tx: { data?: string }) =>
        tx.data?.startsWith(selector)
          ? VIEWS.encodeFunctionResult(name, [answer])
          : (target.call as (t: unknown) => Promise<string>).call(target, tx);
    },
  });
}

const where = (mode: Mode) => `anchor ${mode} on chain ${bridge.chainId}`;

describe("checkAnchor: cross-chain write modes against a Hardhat chain", () => {
  test("a true mint anchor holds: Minted with the resultId, isRecorded, mintResultOf(lockId)", async () => {
    const bundle = trueBundle("mint");
    const lockId = eventOf(bridge.lockbox, lockReceipt, "Locked").args.lockId as string;
    const outcome = await checkAnchor(provider, bundle, bundle.anchors[0]!);
    expect(outcome).toMatchObject({ ok: true });
    expect(outcome.confirmations).toBeGreaterThanOrEqual(1);
    expect(outcome.reason).toContain(`${where("mint")}: tx ${writes.mint.receipt.hash}`);
    expect(outcome.reason).toContain(
      `emitted Minted of lock ${lockId} (300 to ${await bridge.s.others[1]!.getAddress()}) with the bundle's resultId; isRecorded, and mintResultOf(lockId) is the resultId`,
    );
  });

  test("a true release anchor holds: Released with the resultId, isRecorded, releaseResultOf(burnId)", async () => {
    const bundle = trueBundle("release");
    const outcome = await checkAnchor(provider, bundle, bundle.anchors[0]!);
    expect(outcome).toMatchObject({ ok: true });
    expect(outcome.reason).toMatch(
      /emitted Released of burn 0x[0-9a-f]{64} \(100 to 0x[0-9a-fA-F]{40}, from chain \d+\) with the bundle's resultId; isRecorded, and releaseResultOf\(burnId\) is the resultId$/,
    );
  });

  test("a true refund anchor holds: Refunded with the resultId, isRecorded, lockOf(lockId) Refunded", async () => {
    const bundle = trueBundle("refund");
    const outcome = await checkAnchor(provider, bundle, bundle.anchors[0]!);
    expect(outcome).toMatchObject({ ok: true });
    expect(outcome.reason).toMatch(
      /emitted Refunded of lock 0x[0-9a-f]{64} \(200 to 0x[0-9a-fA-F]{40}\) with the bundle's resultId; isRecorded, and lockOf\(lockId\) is Refunded$/,
    );
  });

  test.each(["mint", "release", "refund"] as const)(
    "a %s anchor of another result's bundle fails: the event carries another resultId",
    async (mode) => {
      const other = mode === "mint" ? writes.release : writes.mint;
      const w = writes[mode];
      const anchor = anchorOf(mode, w.receipt, w.contract);
      const outcome = await checkAnchor(provider, bundleOf(other.signed, [anchor]), anchor);
      const event = { mint: "Minted", release: "Released", refund: "Refunded" }[mode];
      expect(outcome).toEqual({
        ok: false,
        confirmations: expect.any(Number) as number,
        reason: `${where(mode)}: the ${event} event(s) of ${w.contract} in tx ${w.receipt.hash} carry another resultId, not ${other.signed.result.resultId}`,
      });
    },
  );

  test("a mint anchor naming the lock's transaction fails: no Minted event of the wrapped token", async () => {
    const anchor = anchorOf("mint", lockReceipt, writes.mint.contract);
    const outcome = await checkAnchor(provider, bundleOf(writes.mint.signed, [anchor]), anchor);
    expect(outcome.ok).toBe(false);
    expect(outcome.reason).toBe(
      `${where("mint")}: tx ${lockReceipt.hash} has no Minted event of ${writes.mint.contract}`,
    );
  });

  test("an anchor naming a transaction of another mode fails and says what the contract emitted there", async () => {
    // A release anchor on the lockbox whose transaction is the refund.
    const release = anchorOf("release", writes.refund.receipt, writes.refund.contract);
    const asRelease = await checkAnchor(provider, bundleOf(writes.release.signed, [release]), release);
    expect(asRelease.ok).toBe(false);
    expect(asRelease.reason).toBe(
      `${where("release")}: tx ${writes.refund.receipt.hash} has no Released event of ${writes.refund.contract} (it emitted Refunded)`,
    );
    // A refund anchor on the lockbox whose transaction is the release.
    const refund = anchorOf("refund", writes.release.receipt, writes.release.contract);
    const asRefund = await checkAnchor(provider, bundleOf(writes.refund.signed, [refund]), refund);
    expect(asRefund.reason).toBe(
      `${where("refund")}: tx ${writes.release.receipt.hash} has no Refunded event of ${writes.release.contract} (it emitted Released)`,
    );
    // A mint anchor whose contract is the lockbox (the refund's): no Minted there.
    const mint = anchorOf("mint", writes.refund.receipt, writes.refund.contract);
    const asMint = await checkAnchor(provider, bundleOf(writes.mint.signed, [mint]), mint);
    expect(asMint.reason).toBe(
      `${where("mint")}: tx ${writes.refund.receipt.hash} has no Minted event of ${writes.refund.contract} (it emitted Refunded)`,
    );
  });

  test("an anchor whose transaction is not on the chain, or in another block, fails", async () => {
    const w = writes.mint;
    const missing = { ...anchorOf("mint", w.receipt, w.contract), txHash: id("no such tx") as Hex32 };
    expect((await checkAnchor(provider, trueBundle("mint"), missing)).reason).toBe(
      `${where("mint")}: transaction ${missing.txHash} is not on the chain`,
    );
    const moved = { ...anchorOf("mint", w.receipt, w.contract), blockNumber: String(w.receipt.blockNumber + 1) };
    expect((await checkAnchor(provider, trueBundle("mint"), moved)).reason).toBe(
      `${where("mint")}: transaction ${w.receipt.hash} is in block ${w.receipt.blockNumber}, not ${w.receipt.blockNumber + 1}`,
    );
  });

  test.each([
    ["mint", "isRecorded", false, "CryptletWrappedToken.isRecorded is false"],
    [
      "mint",
      "mintResultOf",
      ZeroHash,
      `CryptletWrappedToken.mintResultOf(LOCK) is ${ZeroHash}, not the bundle's resultId`,
    ],
    ["release", "isRecorded", false, "CryptletLockbox.isRecorded is false"],
    [
      "release",
      "releaseResultOf",
      ZeroHash,
      `CryptletLockbox.releaseResultOf(BURN) is ${ZeroHash}, not the bundle's resultId`,
    ],
    ["refund", "lockOf", LOCKED, "CryptletLockbox.lockOf(LOCK).status is 1, not 2 (Refunded)"],
  ] as const)(
    "a %s anchor fails when the contract's %s disagrees with the event",
    async (mode, view, answer, reason) => {
      const bundle = trueBundle(mode);
      const outcome = await checkAnchor(viewsSaying(view, answer), bundle, bundle.anchors[0]!);
      const subject = eventOf(
        mode === "mint" ? bridge.wrapped : bridge.lockbox,
        writes[mode].receipt,
        { mint: "Minted", release: "Released", refund: "Refunded" }[mode],
      ).args[0] as string;
      expect(outcome).toMatchObject({
        ok: false,
        reason: `${where(mode)}: ${reason.replace("LOCK", subject).replace("BURN", subject)}`,
      });
    },
  );

  test.each(["mint", "release", "refund"] as const)(
    "a %s write requires the per-result signatures, a batch does not stand in for them",
    (mode) => {
      const w = writes[mode];
      const bundle = bundleOf(w.signed, [anchorOf(mode, w.receipt, w.contract)], true);
      expect(proofsOf(bundle).missing).toEqual(["signatures"]);
      expect(proofsOf(bundle).required).toContainEqual({
        proof: "signatures",
        why: `the ${mode} write on chain ${bridge.chainId}`,
      });
      // Known from a receipt's targets alone, too.
      const bare = bundleOf(w.signed, [], true);
      expect(proofsOf(bare, { writeModes: [mode] }).missing).toEqual(["signatures"]);
    },
  );
});
