/**
 * Cross-chain transfers with integrity (docs/crosschain.md): `CryptletLockbox` on the source chain and
 * `CryptletWrappedToken` on the destination chain. Both run on one Hardhat chain here (so the source and the
 * destination chain id are the same number, and the two are told apart by contract), and the test plays the
 * runtime's role: it reads the source's `Locked` and the destination's `Burned` events and `isMinted`, and signs
 * the results with the registry's trusted test wallets (threshold 2 of 3).
 */
import {
  Wallet,
  ZeroAddress,
  concat,
  dataSlice,
  id,
  keccak256,
  toBeHex,
  zeroPadValue,
  type Signer,
  type TransactionReceipt,
} from "ethers";

import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import { cryptletIdOf, expectCustomError, type AnyContract, type CryptletStack } from "../support/contracts.ts";
import {
  BRIDGE,
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
  setNextTime,
  signOutput,
  transferIdOf,
  type MintFields,
  type RefundFields,
  type ReleaseFields,
  type Route,
  type SignOptions,
  type Signed,
} from "../support/crosschain.ts";

const UNAPPROVED_CODE = id("bridge-code-unapproved") as Hex32;
const HOUR = 3_600n;

/** The fields of an output that a test names: the route and the kind are optional (this test's by default). */
type Named<T extends Route & { kind: bigint }> = Omit<T, keyof Route | "kind"> & Partial<Route & { kind: bigint }>;

/** A method that accepts a result: the wrapped token's `mint`, the lockbox's `release` and `refund`. */
type Accepting = "mint" | "release" | "refund";

describe("Cross-chain transfers: CryptletLockbox and CryptletWrappedToken", () => {
  let s: CryptletStack;
  let token: AnyContract;
  let lockbox: AnyContract;
  let wrapped: AnyContract;
  let chainId: bigint;
  let route: Route;
  let alice: Signer;
  let bob: Signer;
  let carol: Signer;
  let aliceAddress: string;
  let bobAddress: string;
  let carolAddress: string;
  let requests = 0;
  /** Destination chains other than this one that a test locked toward (their peers are placeholders). */
  let otherDestinations: bigint[] = [];

  beforeEach(async () => {
    // Alice holds 1,000 tokens, all approved to the lockbox.
    ({ s, token, lockbox, wrapped, chainId, route } = await deployBridge(1, 1_000n));
    otherDestinations = [];
    [alice, bob, carol] = s.others as [Signer, Signer, Signer];
    [aliceAddress, bobAddress, carolAddress] = (await Promise.all([alice, bob, carol].map((a) => a.getAddress()))) as [
      string,
      string,
      string,
    ];
  });

  // ---- time ----

  async function latestTime(): Promise<bigint> {
    return BigInt((await latestBlock(s.ethers)).timestamp);
  }

  // ---- the runtime's role ----

  async function sign(payload: string, options: SignOptions = {}): Promise<Signed> {
    requests += 1;
    return signOutput(s, id(`bridge-request-${requests}`) as Hex32, payload, options);
  }

  /** A mint output with `fields`, on this test's route and of kind `KIND_MINT` unless `fields` names others. */
  const mintOutput = (fields: Named<MintFields>): MintFields => ({ ...route, kind: KIND_MINT, ...fields });
  /** A release output with `fields`, on this test's route and of kind `KIND_RELEASE` unless `fields` names others. */
  const releaseOutput = (fields: Named<ReleaseFields>): ReleaseFields => ({ ...route, kind: KIND_RELEASE, ...fields });
  /** A refund output with `fields`, on this test's route and of kind `KIND_REFUND` unless `fields` names others. */
  const refundOutput = (fields: Named<RefundFields>): RefundFields => ({ ...route, kind: KIND_REFUND, ...fields });

  /** Mint: what the runtime attests from a `Locked` event of the source chain. */
  async function attestMint(lockReceipt: TransactionReceipt, options: SignOptions = {}): Promise<Signed> {
    // The event alone carries every field of the output, the peer `token` included.
    const args = eventOf(lockbox, lockReceipt, "Locked").args;
    const { lockId, recipient, amount, destinationChainId, deadline, token } = args;
    return sign(mintPayload(mintOutput({ lockId, destinationChainId, token, recipient, amount, deadline })), options);
  }

  /** Release: what the runtime attests from a `Burned` event of the destination chain. */
  async function attestBurn(burnReceipt: TransactionReceipt): Promise<Signed> {
    const { burnId, recipient, amount, sourceChainId, lockbox: named } = eventOf(wrapped, burnReceipt, "Burned").args;
    return sign(releasePayload(releaseOutput({ sourceChainId, lockbox: named, burnId, recipient, amount })));
  }

  /**
   * Refund: "no mint happened and none can happen", attested only from the destination chain's state at a block
   * after the lock's deadline (the latest block here) where `isMinted(lockId)` is false.
   */
  async function attestNoMint(lockId: string): Promise<Signed> {
    const lock = await lockbox.lockOf(lockId);
    const block = await latestBlock(s.ethers);
    if (BigInt(block.timestamp) <= lock.deadline) throw new Error(`lock ${lockId}: not after the deadline`);
    if (await wrapped.isMinted(lockId, { blockTag: block.number })) throw new Error(`lock ${lockId} was minted`);
    return sign(
      refundPayload(
        refundOutput({
          lockId,
          destinationChainId: lock.destinationChainId,
          sender: lock.sender,
          amount: lock.amount,
          deadline: lock.deadline,
          observedAt: BigInt(block.timestamp),
        }),
      ),
    );
  }

  // ---- the parties' actions ----

  async function lock(amount: bigint, recipient: string, deadline: bigint) {
    const receipt = (await (
      await as(lockbox, alice).lock(amount, chainId, recipient, deadline)
    ).wait()) as TransactionReceipt;
    return { receipt, lockId: eventOf(lockbox, receipt, "Locked").args.lockId as string };
  }

  async function burn(holder: Signer, amount: bigint, recipient: string) {
    const receipt = (await (await as(wrapped, holder).burn(amount, chainId, recipient)).wait()) as TransactionReceipt;
    return { receipt, burnId: eventOf(wrapped, receipt, "Burned").args.burnId as string };
  }

  const submit = async (contract: AnyContract, method: Accepting, signed: Signed) =>
    (await (await contract[method](signed.result, signed.payload, signed.signatures)).wait()) as TransactionReceipt;

  /** Expects `signed`, submitted to `method` (of the wrapped token or the lockbox), to revert with `error(...args)`. */
  const expectRefused = (method: Accepting, signed: Signed, error: string, args: readonly unknown[]) =>
    expectCustomError(
      (method === "mint" ? wrapped : lockbox)[method](signed.result, signed.payload, signed.signatures),
      s.errors,
      error,
      args,
    );

  // ---- the invariant ----

  /**
   * The invariant, at the latest block: supply on the destination ≤ locked on the source for it; the lockbox owes
   * the sum over every destination (this one and `otherDestinations`) and holds exactly that. With `expected`,
   * the supply and the amount locked for this destination are the numbers the test chose.
   */
  async function expectBacked(expected?: { supply: bigint; locked: bigint }): Promise<void> {
    const supply = (await wrapped.totalSupply()) as bigint;
    const locked = (await lockbox.lockedFor(chainId)) as bigint;
    expect(supply).toBeLessThanOrEqual(locked);
    let owed = locked;
    for (const other of otherDestinations) owed += (await lockbox.lockedFor(other)) as bigint;
    expect(await lockbox.totalLocked()).toBe(owed);
    expect(await token.balanceOf(route.lockbox)).toBe(owed);
    if (expected) expect({ supply, locked }).toEqual(expected);
  }

  const balances = async (contract: AnyContract, ...accounts: string[]) =>
    Promise.all(accounts.map((a) => contract.balanceOf(a) as Promise<bigint>));

  // ---- tests ----

  test("happy path: lock → mint → burn → release, with balances and backing checked after each step", async () => {
    await expectBacked({ supply: 0n, locked: 0n });
    const deadline = (await latestTime()) + HOUR;

    // Lock 300 of Alice's 1,000 for Bob.
    expect(await lockbox.lockIdOf(0)).toBe(transferIdOf(chainId, route.lockbox, 0n));
    const locked = await lock(300n, bobAddress, deadline);
    expect(locked.lockId).toBe(await lockbox.lockIdOf(0));
    expect([...eventOf(lockbox, locked.receipt, "Locked").args]).toEqual([
      locked.lockId,
      aliceAddress,
      bobAddress,
      300n,
      chainId,
      deadline,
      route.token,
    ]);
    // The event names the peer that mints, so a MINT output needs nothing but the event.
    expect(eventOf(lockbox, locked.receipt, "Locked").args.token).toBe(await lockbox.peerOf(chainId));
    expect([...(await lockbox.lockOf(locked.lockId))]).toEqual([aliceAddress, deadline, 1n, bobAddress, 300n, chainId]);
    expect(await lockbox.lockCount()).toBe(1n);
    expect(await balances(token, aliceAddress, route.lockbox)).toEqual([700n, 300n]);
    await expectBacked({ supply: 0n, locked: 300n });

    // Mint 300 wTST to Bob (relayed by Carol: anyone may submit).
    expect(await wrapped.isMinted(locked.lockId)).toBe(false);
    const mint = await attestMint(locked.receipt);
    const minted = await submit(as(wrapped, carol), "mint", mint);
    expect([...eventOf(wrapped, minted, "Minted").args]).toEqual([
      locked.lockId,
      bobAddress,
      300n,
      mint.result.resultId,
    ]);
    expect(await wrapped.isMinted(locked.lockId)).toBe(true);
    expect(await wrapped.mintResultOf(locked.lockId)).toBe(mint.result.resultId);
    expect(await wrapped.isRecorded(mint.result.resultId)).toBe(true);
    expect(await balances(wrapped, bobAddress)).toEqual([300n]);
    await expectBacked({ supply: 300n, locked: 300n });

    // Bob burns 120 for Carol on the source chain.
    const burned = await burn(bob, 120n, carolAddress);
    expect(burned.burnId).toBe(transferIdOf(chainId, route.token, 0n));
    expect([...eventOf(wrapped, burned.receipt, "Burned").args]).toEqual([
      burned.burnId,
      bobAddress,
      carolAddress,
      120n,
      chainId,
      route.lockbox,
    ]);
    expect(await balances(wrapped, bobAddress)).toEqual([180n]);
    await expectBacked({ supply: 180n, locked: 300n });

    // Release 120 TST to Carol.
    const release = await attestBurn(burned.receipt);
    const released = await submit(lockbox, "release", release);
    expect([...eventOf(lockbox, released, "Released").args]).toEqual([
      burned.burnId,
      carolAddress,
      120n,
      chainId,
      release.result.resultId,
    ]);
    expect(await lockbox.isReleased(burned.burnId)).toBe(true);
    expect(await lockbox.releaseResultOf(burned.burnId)).toBe(release.result.resultId);
    expect(await lockbox.isRecorded(release.result.resultId)).toBe(true);
    expect(await balances(token, aliceAddress, carolAddress, route.lockbox)).toEqual([700n, 120n, 180n]);
    await expectBacked({ supply: 180n, locked: 180n });

    // Bob burns the other 180 back to Alice; all is home again.
    const back = await burn(bob, 180n, aliceAddress);
    await expectBacked({ supply: 0n, locked: 180n });
    await submit(lockbox, "release", await attestBurn(back.receipt));
    expect(await balances(token, aliceAddress, carolAddress, route.lockbox)).toEqual([880n, 120n, 0n]);
    expect(await balances(wrapped, bobAddress)).toEqual([0n]);
    await expectBacked({ supply: 0n, locked: 0n });
    // The lock itself stays Locked on the source chain: a mint is not visible there, and it can never be refunded.
    expect((await lockbox.lockOf(locked.lockId)).status).toBe(1n);
    await mineAt(s.ethers, deadline + 1n);
    await expect(attestNoMint(locked.lockId)).rejects.toThrow("was minted");
  });

  test("a replayed mint result is refused, and so is a second result for a minted lock", async () => {
    const locked = await lock(250n, bobAddress, (await latestTime()) + HOUR);
    const mint = await attestMint(locked.receipt);
    await submit(wrapped, "mint", mint);
    await expectBacked({ supply: 250n, locked: 250n });

    await expectRefused("mint", mint, "CryptletWrappedResultAlreadyRecorded", [mint.result.resultId]);
    const again = await attestMint(locked.receipt);
    await expectRefused("mint", again, "CryptletWrappedAlreadyMinted", [locked.lockId]);
    expect(await balances(wrapped, bobAddress)).toEqual([250n]);
    await expectBacked({ supply: 250n, locked: 250n });
  });

  test("a mint is possible up to the deadline and refused after it", async () => {
    const deadline = (await latestTime()) + HOUR;
    const first = await lock(100n, bobAddress, deadline);
    const second = await lock(50n, carolAddress, deadline);
    const mintFirst = await attestMint(first.receipt);
    const mintSecond = await attestMint(second.receipt);
    await expectBacked({ supply: 0n, locked: 150n });

    await setNextTime(s.ethers, deadline);
    await submit(wrapped, "mint", mintFirst);
    await expectBacked({ supply: 100n, locked: 150n });

    await setNextTime(s.ethers, deadline + 1n);
    await expectRefused("mint", mintSecond, "CryptletWrappedDeadlinePassed", [second.lockId, deadline, deadline + 1n]);
    expect(await wrapped.isMinted(second.lockId)).toBe(false);
    expect(await balances(wrapped, bobAddress, carolAddress)).toEqual([100n, 0n]);
    await expectBacked({ supply: 100n, locked: 150n });
  });

  test("a mint for an unapproved code hash, an untrusted or missing signer, or another Cryptlet is refused", async () => {
    const locked = await lock(100n, bobAddress, (await latestTime()) + HOUR);
    const unapproved = await attestMint(locked.receipt, { code: UNAPPROVED_CODE });
    await expectRefused("mint", unapproved, "CryptletProofCodeHashNotApproved", [BRIDGE, UNAPPROVED_CODE]);
    const outsider = new Wallet(id("crosschain-outsider"));
    const untrusted = await attestMint(locked.receipt, { wallets: [s.signers[0]!, outsider] });
    await expectRefused("mint", untrusted, "CryptletProofUntrustedSigner", [1n, outsider.address]);
    const alone = await attestMint(locked.receipt, { wallets: [s.signers[2]!] });
    await expectRefused("mint", alone, "CryptletProofThresholdNotMet", [1n, 2n]);
    const other = cryptletIdOf("@cryptlet/other");
    const otherCryptlet = await attestMint(locked.receipt, { cryptletId: other });
    await expectRefused("mint", otherCryptlet, "CryptletWrappedWrongCryptlet", [BRIDGE, other]);
    expect(await wrapped.isMinted(locked.lockId)).toBe(false);
    await expectBacked({ supply: 0n, locked: 100n });
  });

  test("a mint output for another route, of another kind or not the signed one is refused", async () => {
    const deadline = (await latestTime()) + HOUR;
    const locked = await lock(100n, bobAddress, deadline);
    const fields = mintOutput({ lockId: locked.lockId, recipient: bobAddress, amount: 100n, deadline });
    const elsewhere = "0x00000000000000000000000000000000000000e1";
    for (const wrong of [
      { sourceChainId: chainId + 1n },
      { lockbox: elsewhere },
      { destinationChainId: chainId + 1n },
      { token: elsewhere },
    ]) {
      const r = { ...fields, ...wrong };
      const signed = await sign(mintPayload(r));
      await expectRefused("mint", signed, "CryptletWrappedWrongRoute", [
        r.sourceChainId,
        r.lockbox,
        r.destinationChainId,
        r.token,
      ]);
    }
    const wrongKind = await sign(mintPayload({ ...fields, kind: KIND_REFUND }));
    await expectRefused("mint", wrongKind, "CryptletWrappedWrongKind", [KIND_MINT, KIND_REFUND]);
    const release = await sign(
      releasePayload(releaseOutput({ burnId: locked.lockId, recipient: bobAddress, amount: 100n })),
    );
    await expectRefused("mint", release, "CryptletWrappedMalformedOutput", [288n, 256n]);
    const ok = await sign(mintPayload(fields));
    const more = mintPayload({ ...fields, amount: 1_000n });
    await expectCustomError(
      wrapped.mint(ok.result, more, ok.signatures),
      s.errors,
      "CryptletWrappedOutputHashMismatch",
      [ok.result.outputHash, keccak256(more)],
    );
    await expectBacked({ supply: 0n, locked: 100n });
    await submit(wrapped, "mint", ok);
    await expectBacked({ supply: 100n, locked: 100n });
  });

  test("a refund before the deadline is refused; after it the lock goes back to its sender, and a late mint is refused", async () => {
    const deadline = (await latestTime()) + HOUR;
    const locked = await lock(200n, bobAddress, deadline);
    // A mint result made in time, whose relaying is late.
    const lateMint = await attestMint(locked.receipt);
    await expectBacked({ supply: 0n, locked: 200n });

    // Before the deadline the runtime does not attest "no mint"; a (lying) attestation is refused on-chain.
    await expect(attestNoMint(locked.lockId)).rejects.toThrow("not after the deadline");
    const stored = await lockbox.lockOf(locked.lockId);
    const refundFields = refundOutput({
      lockId: locked.lockId,
      sender: aliceAddress,
      amount: 200n,
      deadline,
      observedAt: deadline + 1n,
    });
    expect([stored.sender, stored.amount, stored.deadline]).toEqual([aliceAddress, 200n, deadline]);
    const early = await sign(refundPayload(refundFields));
    await setNextTime(s.ethers, deadline);
    await expectRefused("refund", early, "CryptletLockboxDeadlineNotPassed", [locked.lockId, deadline, deadline]);
    // An observation of the destination at the deadline is too early: a mint was still possible in that block.
    await mineAt(s.ethers, deadline + 1n);
    const stale = await sign(refundPayload({ ...refundFields, observedAt: deadline }));
    await expectRefused("refund", stale, "CryptletLockboxObservationNotAfterDeadline", [
      locked.lockId,
      deadline,
      deadline,
    ]);
    await expectBacked({ supply: 0n, locked: 200n });

    // After the deadline, with the destination read at a later block: refunded to Alice.
    const refund = await attestNoMint(locked.lockId);
    const refunded = await submit(as(lockbox, carol), "refund", refund);
    expect([...eventOf(lockbox, refunded, "Refunded").args]).toEqual([
      locked.lockId,
      aliceAddress,
      200n,
      refund.result.resultId,
    ]);
    expect((await lockbox.lockOf(locked.lockId)).status).toBe(2n);
    expect(await lockbox.isRecorded(refund.result.resultId)).toBe(true);
    expect(await balances(token, aliceAddress, route.lockbox)).toEqual([1_000n, 0n]);
    await expectBacked({ supply: 0n, locked: 0n });

    // The late mint can never land: the lock ended in a refund.
    const now = (await latestTime()) + 1n;
    await setNextTime(s.ethers, now);
    await expectRefused("mint", lateMint, "CryptletWrappedDeadlinePassed", [locked.lockId, deadline, now]);
    await expectBacked({ supply: 0n, locked: 0n });
  });

  test("a refund after a mint: the runtime does not attest it, and a forged one below the threshold is refused", async () => {
    const deadline = (await latestTime()) + HOUR;
    const locked = await lock(200n, bobAddress, deadline);
    await submit(wrapped, "mint", await attestMint(locked.receipt));
    await expectBacked({ supply: 200n, locked: 200n });
    await mineAt(s.ethers, deadline + 10n);

    // The destination's state after the deadline says "minted": no "no mint" result exists.
    await expect(attestNoMint(locked.lockId)).rejects.toThrow("was minted");
    // A compromised signer alone (below the threshold), or with an outsider key, cannot forge one.
    const forged = refundPayload(
      refundOutput({ lockId: locked.lockId, sender: aliceAddress, amount: 200n, deadline, observedAt: deadline + 10n }),
    );
    const alone = await sign(forged, { wallets: [s.signers[0]!] });
    await expectRefused("refund", alone, "CryptletProofThresholdNotMet", [1n, 2n]);
    const outsider = new Wallet(id("crosschain-outsider"));
    const withOutsider = await sign(forged, { wallets: [s.signers[0]!, outsider] });
    await expectRefused("refund", withOutsider, "CryptletProofUntrustedSigner", [1n, outsider.address]);
    const unapproved = await sign(forged, { code: UNAPPROVED_CODE });
    await expectRefused("refund", unapproved, "CryptletProofCodeHashNotApproved", [BRIDGE, UNAPPROVED_CODE]);
    expect((await lockbox.lockOf(locked.lockId)).status).toBe(1n);
    expect(await balances(token, aliceAddress, route.lockbox)).toEqual([800n, 200n]);
    await expectBacked({ supply: 200n, locked: 200n });
  });

  test("a double refund is refused", async () => {
    const deadline = (await latestTime()) + HOUR;
    const locked = await lock(200n, bobAddress, deadline);
    await mineAt(s.ethers, deadline + 1n);
    const refund = await attestNoMint(locked.lockId);
    await submit(lockbox, "refund", refund);
    await expectBacked({ supply: 0n, locked: 0n });

    await expectRefused("refund", refund, "CryptletLockboxResultAlreadyRecorded", [refund.result.resultId]);
    // A second, true, attestation of the same lock.
    const again = await attestNoMint(locked.lockId);
    await expectRefused("refund", again, "CryptletLockboxAlreadyRefunded", [locked.lockId]);
    expect(await balances(token, aliceAddress)).toEqual([1_000n]);
    await expectBacked({ supply: 0n, locked: 0n });
  });

  test("refund outputs that do not match the stored lock, its peer or this lockbox are refused", async () => {
    const deadline = (await latestTime()) + HOUR;
    const locked = await lock(200n, bobAddress, deadline);
    await mineAt(s.ethers, deadline + 1n);
    const fields = refundOutput({
      lockId: locked.lockId,
      sender: aliceAddress,
      amount: 200n,
      deadline,
      observedAt: deadline + 1n,
    });
    const unknown = id("no-such-lock");
    const cases: [Partial<RefundFields>, string, unknown[]][] = [
      [{ lockId: unknown }, "CryptletLockboxUnknownLock", [unknown]],
      [{ amount: 201n }, "CryptletLockboxLockMismatch", [locked.lockId]],
      [{ sender: carolAddress }, "CryptletLockboxLockMismatch", [locked.lockId]],
      [{ deadline: deadline + 1n }, "CryptletLockboxLockMismatch", [locked.lockId]],
      [{ token: carolAddress }, "CryptletLockboxUnknownPeer", [chainId, carolAddress]],
      [{ destinationChainId: 5n }, "CryptletLockboxUnknownPeer", [5n, route.token]],
      [{ lockbox: carolAddress }, "CryptletLockboxWrongSource", [chainId, carolAddress]],
      [{ kind: KIND_RELEASE }, "CryptletLockboxWrongKind", [KIND_REFUND, KIND_RELEASE]],
    ];
    for (const [change, error, args] of cases) {
      const signed = await sign(refundPayload({ ...fields, ...change }));
      await expectRefused("refund", signed, error, args);
    }
    const mint = await sign(
      mintPayload(mintOutput({ lockId: locked.lockId, recipient: bobAddress, amount: 200n, deadline })),
    );
    await expectRefused("refund", mint, "CryptletLockboxMalformedOutput", [320n, 288n]);
    // The signed result is for one output, the payload another: refused by its hash.
    const signed = await sign(refundPayload(fields));
    const tampered = refundPayload({ ...fields, sender: carolAddress });
    await expectCustomError(
      lockbox.refund(signed.result, tampered, signed.signatures),
      s.errors,
      "CryptletLockboxOutputHashMismatch",
      [signed.result.outputHash, keccak256(tampered)],
    );
    await expectBacked({ supply: 0n, locked: 200n });
  });

  test("a release for more than is locked is refused, also against a refunded lock's amount", async () => {
    const deadline = (await latestTime()) + HOUR;
    // 300 locked and minted; 200 locked and never minted (refunded below); 100 locked toward another chain.
    const minted = await lock(300n, bobAddress, deadline);
    await expectBacked({ supply: 0n, locked: 300n });
    await submit(wrapped, "mint", await attestMint(minted.receipt));
    await expectBacked({ supply: 300n, locked: 300n });
    const unminted = await lock(200n, bobAddress, deadline);
    await expectBacked({ supply: 300n, locked: 500n });
    const otherChain = 777n;
    otherDestinations.push(otherChain);
    await (await lockbox.setPeer(otherChain, carolAddress)).wait();
    const toOther = (await (
      await as(lockbox, alice).lock(100n, otherChain, bobAddress, deadline)
    ).wait()) as TransactionReceipt;
    // The event names the other chain's peer, not this one's.
    expect(eventOf(lockbox, toOther, "Locked").args.token).toBe(await lockbox.peerOf(otherChain));
    expect(eventOf(lockbox, toOther, "Locked").args.token).toBe(carolAddress);
    expect(await lockbox.lockedFor(otherChain)).toBe(100n);
    expect(await lockbox.totalLocked()).toBe(600n);
    await expectBacked({ supply: 300n, locked: 500n });

    await mineAt(s.ethers, deadline + 1n);
    await submit(lockbox, "refund", await attestNoMint(unminted.lockId));
    expect(await balances(token, aliceAddress, route.lockbox)).toEqual([600n, 400n]);
    await expectBacked({ supply: 300n, locked: 300n });

    // A compromised runtime (threshold signatures) claims a burn of 301 on this destination: the lockbox holds
    // 400, but only 300 back this destination's supply.
    const fake = (amount: bigint, n: number) =>
      sign(releasePayload(releaseOutput({ burnId: id(`fabricated-burn-${n}`), recipient: carolAddress, amount })));
    const tooMuch = await fake(301n, 1);
    await expectRefused("release", tooMuch, "CryptletLockboxInsufficientLocked", [chainId, 301n, 300n]);
    await expectBacked({ supply: 300n, locked: 300n });
    // Bob burns his 300 and is released; the refunded lock's 200 backs nothing, so no release can take it.
    const burned = await burn(bob, 300n, bobAddress);
    await expectBacked({ supply: 0n, locked: 300n });
    await submit(lockbox, "release", await attestBurn(burned.receipt));
    await expectBacked({ supply: 0n, locked: 0n });
    const refundedAmount = await fake(200n, 2);
    await expectRefused("release", refundedAmount, "CryptletLockboxInsufficientLocked", [chainId, 200n, 0n]);
    expect(await balances(token, aliceAddress, bobAddress, carolAddress, route.lockbox)).toEqual([
      600n,
      300n,
      0n,
      100n,
    ]);
    expect(await lockbox.lockedFor(otherChain)).toBe(100n);
    await expectBacked({ supply: 0n, locked: 0n });
  });

  test("a burn is released once, and only from this lockbox's peer for this lockbox", async () => {
    const locked = await lock(300n, bobAddress, (await latestTime()) + HOUR);
    await submit(wrapped, "mint", await attestMint(locked.receipt));
    const burned = await burn(bob, 100n, carolAddress);
    const release = await attestBurn(burned.receipt);
    await submit(lockbox, "release", release);
    await expectBacked({ supply: 200n, locked: 200n });

    await expectRefused("release", release, "CryptletLockboxResultAlreadyRecorded", [release.result.resultId]);
    const again = await attestBurn(burned.receipt);
    await expectRefused("release", again, "CryptletLockboxAlreadyReleased", [burned.burnId]);
    const fields = releaseOutput({ burnId: id("another-burn"), recipient: carolAddress, amount: 10n });
    const cases: [Partial<ReleaseFields>, string, unknown[]][] = [
      [{ token: bobAddress }, "CryptletLockboxUnknownPeer", [chainId, bobAddress]],
      [{ destinationChainId: 5n }, "CryptletLockboxUnknownPeer", [5n, route.token]],
      [{ lockbox: bobAddress }, "CryptletLockboxWrongSource", [chainId, bobAddress]],
      [{ sourceChainId: 5n }, "CryptletLockboxWrongSource", [5n, route.lockbox]],
      [{ kind: KIND_MINT }, "CryptletLockboxWrongKind", [KIND_RELEASE, KIND_MINT]],
    ];
    for (const [change, error, args] of cases) {
      const signed = await sign(releasePayload({ ...fields, ...change }));
      await expectRefused("release", signed, error, args);
    }
    const other = cryptletIdOf("@cryptlet/other");
    const otherCryptlet = await sign(releasePayload(fields), { cryptletId: other });
    await expectRefused("release", otherCryptlet, "CryptletLockboxWrongCryptlet", [BRIDGE, other]);
    const alone = await sign(releasePayload(fields), { wallets: [s.signers[1]!] });
    await expectRefused("release", alone, "CryptletProofThresholdNotMet", [1n, 2n]);
    // The signed result is for one output, the payload another: refused by its hash.
    const signedRelease = await sign(releasePayload(fields));
    const tampered = releasePayload({ ...fields, amount: 11n });
    await expectCustomError(
      lockbox.release(signedRelease.result, tampered, signedRelease.signatures),
      s.errors,
      "CryptletLockboxOutputHashMismatch",
      [signedRelease.result.outputHash, keccak256(tampered)],
    );
    // The kind is the whole first word: 2 + 256 is not the release kind (read as 8 bits it would be).
    const wideKind = concat([zeroPadValue(toBeHex(KIND_RELEASE + 256n), 32), dataSlice(releasePayload(fields), 32)]);
    await expectRefused("release", await sign(wideKind), "CryptletLockboxWrongKind", [
      KIND_RELEASE,
      KIND_RELEASE + 256n,
    ]);
    expect(await balances(token, carolAddress)).toEqual([100n]);
    await expectBacked({ supply: 200n, locked: 200n });
  });

  test("a burn for more than the caller holds is refused, as are burns to nowhere", async () => {
    const locked = await lock(300n, bobAddress, (await latestTime()) + HOUR);
    await submit(wrapped, "mint", await attestMint(locked.receipt));
    await expectCustomError(as(wrapped, bob).burn(301n, chainId, carolAddress), s.errors, "ERC20InsufficientBalance", [
      bobAddress,
      300n,
      301n,
    ]);
    await expectCustomError(as(wrapped, carol).burn(1n, chainId, carolAddress), s.errors, "ERC20InsufficientBalance", [
      carolAddress,
      0n,
      1n,
    ]);
    await expectCustomError(as(wrapped, bob).burn(10n, 5n, carolAddress), s.errors, "CryptletWrappedWrongSourceChain", [
      chainId,
      5n,
    ]);
    await expectCustomError(
      as(wrapped, bob).burn(10n, chainId, ZeroAddress),
      s.errors,
      "CryptletWrappedZeroRecipient",
      [],
    );
    await expectCustomError(
      as(wrapped, bob).burn(0n, chainId, carolAddress),
      s.errors,
      "CryptletWrappedZeroAmount",
      [],
    );
    expect(await wrapped.burnCount()).toBe(0n);
    expect(await balances(wrapped, bobAddress)).toEqual([300n]);
    await expectBacked({ supply: 300n, locked: 300n });
  });

  test("lock refuses bad arguments, unknown destinations and fee-on-transfer tokens; peers are set once, by the owner", async () => {
    const now = await latestTime();
    const deadline = now + HOUR;
    const lockAs = as(lockbox, alice);
    await expectCustomError(lockAs.lock(0n, chainId, bobAddress, deadline), s.errors, "CryptletLockboxZeroAmount", []);
    await expectCustomError(
      lockAs.lock(1n, chainId, ZeroAddress, deadline),
      s.errors,
      "CryptletLockboxZeroRecipient",
      [],
    );
    await setNextTime(s.ethers, now + 10n);
    await expectCustomError(
      lockAs.lock(1n, chainId, bobAddress, now + 10n),
      s.errors,
      "CryptletLockboxDeadlineInPast",
      [now + 10n, now + 10n],
    );
    await expectCustomError(lockAs.lock(1n, 5n, bobAddress, deadline), s.errors, "CryptletLockboxUnknownDestination", [
      5n,
    ]);
    await (await token.setFeeBps(100n)).wait();
    await expectCustomError(
      lockAs.lock(100n, chainId, bobAddress, deadline),
      s.errors,
      "CryptletLockboxTransferAmountMismatch",
      [100n, 99n],
    );
    await (await token.setFeeBps(0n)).wait();
    expect(await lockbox.lockCount()).toBe(0n);
    await expectBacked({ supply: 0n, locked: 0n });

    expect(await lockbox.peerOf(chainId)).toBe(route.token);
    await expectCustomError(lockbox.setPeer(chainId, carolAddress), s.errors, "CryptletLockboxPeerAlreadySet", [
      chainId,
      route.token,
    ]);
    await expectCustomError(lockbox.setPeer(0n, carolAddress), s.errors, "CryptletLockboxInvalidPeer", [
      0n,
      carolAddress,
    ]);
    await expectCustomError(lockbox.setPeer(9n, ZeroAddress), s.errors, "CryptletLockboxInvalidPeer", [
      9n,
      ZeroAddress,
    ]);
    await expectCustomError(as(lockbox, alice).setPeer(9n, carolAddress), s.errors, "OwnableUnauthorizedAccount", [
      aliceAddress,
    ]);
    const receipt = (await (await lockbox.setPeer(9n, carolAddress)).wait()) as TransactionReceipt;
    expect([...eventOf(lockbox, receipt, "PeerSet").args]).toEqual([9n, carolAddress]);
    expect(await lockbox.peerOf(9n)).toBe(carolAddress);
  });

  test("both contracts name the same output kinds", async () => {
    for (const contract of [lockbox, wrapped]) {
      expect([await contract.KIND_MINT(), await contract.KIND_RELEASE(), await contract.KIND_REFUND()]).toEqual([
        KIND_MINT,
        KIND_RELEASE,
        KIND_REFUND,
      ]);
    }
    expect([await wrapped.sourceChainId(), await wrapped.lockbox(), await wrapped.decimals()]).toEqual([
      chainId,
      route.lockbox,
      18n,
    ]);
    expect([await lockbox.token(), await lockbox.cryptletId(), await wrapped.cryptletId()]).toEqual([
      await token.getAddress(),
      BRIDGE,
      BRIDGE,
    ]);
  });
});
