/**
 * Property-based test of the cross-chain contracts (docs/crosschain.md), with fast-check's model-based commands:
 * `CryptletLockbox` and `CryptletWrappedToken` on one Hardhat chain, as in test/contracts/crosschain.test.ts, and
 * the test playing an honest runtime (it attests a MINT only for an existing lock whose deadline has not passed at
 * the latest block, a REFUND only when `isMinted(lockId)` is false at a block whose timestamp is after the deadline,
 * a RELEASE only for a real `Burned` event, once) that signs with the registry's trusted wallets (2 of 3).
 *
 * Random interleavings of: locks by several users (random amount, deadline in the next 20 minutes, sometimes
 * already due or beyond the balance); mints of a random lock, relayed at once or after a relayer delay, or queued
 * while the destination is down ("outage") and relayed later, perhaps too late; honest refunds; refunds forged
 * below the threshold or with an outside key; burns of part of a holder's balance (sometimes more than it);
 * releases of burns; replays of accepted results (as they are, or re-signed as new results); time advances (random,
 * or to just before, at or just after a lock's deadline). Mints and refunds sometimes happen at the edge of their
 * lock's deadline (the transaction one second before, at or after it). Every block's timestamp is set by the test,
 * so the TypeScript model predicts each action's outcome exactly: success, or the custom error with its arguments.
 * Any divergence fails.
 *
 * After every step, read from the chain: wrapped supply ≤ `lockedFor(destination)` (and equal to the model's); the
 * lockbox's balance = `totalLocked()` = `lockedFor` = locked − refunded − released (the model's); no lock both
 * minted and refunded (state and events); a lock seen unminted at a block after its deadline is never minted
 * later; each burn released at most once and for its amount, total released ≤ total burned; every user's balance
 * on both sides, every lock's and burn's status, and every accepted result's `isRecorded`, as the model says. At
 * the end of each run the honest runtime settles everything (late relays, refunds, burns, releases): nothing is
 * owed, no supply is left, and the users hold all their tokens again.
 *
 * The seed is printed; `CROSSCHAIN_SEED=<seed> CROSSCHAIN_PATH=<path> CROSSCHAIN_REPLAY=<replayPath>` replays a
 * failure's shrunk counterexample (all three are in fast-check's report); `CROSSCHAIN_RUNS` sets the number of runs
 * (default {@link RUNS}). A failure's message ends with the run's resolved actions ("trace of this run").
 */
import fc from "fast-check";
import { Wallet, id, type Signer, type TransactionReceipt } from "ethers";

import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import { revertData } from "../support/contracts.ts";
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
  setNextTime,
  signOutput,
  transferIdOf,
  type Bridge,
  type Signed,
} from "../support/crosschain.ts";

const RUNS = Number(process.env.CROSSCHAIN_RUNS ?? 40);
const MAX_COMMANDS = 50;
const SEED = Number(process.env.CROSSCHAIN_SEED ?? Math.floor(Math.random() * 2 ** 31));

/** Users A..D, each starting with this many tokens on the source chain. */
const USERS = 4;
const NAMES = ["A", "B", "C", "D", "R"];
const INITIAL = 5_000n;

// ---- the model ----

interface LockM {
  lockId: string;
  sender: number;
  recipient: number;
  amount: bigint;
  deadline: bigint;
  minted: boolean;
  refunded: boolean;
}

interface BurnM {
  burnId: string;
  burner: number;
  recipient: number;
  amount: bigint;
  /** The honest runtime attested its release (it does so once). */
  attested: boolean;
  released: boolean;
}

interface AcceptedM {
  kind: "mint" | "release" | "refund";
  /** lockId or burnId. */
  subject: string;
  signed: Signed;
}

/** What must hold, as the test expects it; users by index (0..USERS-1). */
interface Model {
  /** Timestamp of the latest block. */
  now: bigint;
  token: bigint[];
  wrapped: bigint[];
  locks: LockM[];
  burns: BurnM[];
  accepted: AcceptedM[];
  /** Mint results signed during an outage of the destination, not relayed yet. */
  queued: { lock: number; signed: Signed }[];
  /** Commands left during which the destination is down (mints are queued, not relayed). */
  outage: number;
}

/** What backs the wrapped supply: locked, not refunded, minus released. */
const owed = (m: Model) =>
  m.locks.reduce((sum, l) => (l.refunded ? sum : sum + l.amount), 0n) -
  m.burns.reduce((sum, b) => (b.released ? sum + b.amount : sum), 0n);
const supplyOf = (m: Model) => m.wrapped.reduce((a, b) => a + b, 0n);

/** A revert as expected or observed: the custom error's name and arguments. */
type Outcome = { ok: true } | { error: string; args: unknown[] };
const OK: Outcome = { ok: true };
const fail = (error: string, ...args: unknown[]): Outcome => ({ error, args });

// ---- the chain ----

/** Deployed once; every run starts from the same snapshot. */
interface Fixture extends Bridge {
  /** Users A..D, then a relayer R that holds nothing. */
  accounts: Signer[];
  addresses: string[];
  outsider: Wallet;
  snapshot: string;
}

/** One run: the fixture and what the test learned from the chain itself. */
interface Real {
  fx: Fixture;
  startBlock: number;
  /** Locks read as not minted at a block after their deadline: they must never be minted. */
  sealed: Set<string>;
  /** The actions of this run, resolved (which lock, which amounts, which outcome), for failure reports. */
  trace: string[];
}

let requests = 0;
/** Outcomes seen over all runs, by action and result, to show what the runs exercised. */
const seen = new Map<string, number>();
/** "settle " while the honest runtime settles a run (counted apart from the generated commands). */
let phase = "";
const count = (key: string) => seen.set(phase + key, (seen.get(phase + key) ?? 0) + 1);

/** Sends a transaction (in a block at the time set before) and reports success or the decoded custom error. */
async function attempt(
  fx: Fixture,
  send: () => Promise<{ wait(): Promise<TransactionReceipt | null> }>,
): Promise<{ outcome: Outcome; receipt?: TransactionReceipt }> {
  try {
    const receipt = (await (await send()).wait()) as TransactionReceipt;
    return { outcome: OK, receipt };
  } catch (e) {
    const data = revertData(e);
    const parsed = data ? fx.s.errors.parseError(data) : null;
    if (!parsed) return { outcome: fail(`(undecoded) ${String(e).slice(0, 300)}`) };
    return { outcome: fail(parsed.name, ...parsed.args) };
  }
}

async function sign(fx: Fixture, payload: string, wallets?: readonly Wallet[]) {
  requests += 1;
  return signOutput(fx.s, id(`bridge-property-request-${requests}`) as Hex32, payload, { wallets });
}

/** The payload of a refund of `lock` (as stored), read on the destination at `observedAt`. */
function refundOf(
  fx: Fixture,
  lock: { lockId: string; sender: string; amount: bigint; deadline: bigint },
  observedAt: bigint,
) {
  return refundPayload({ ...fx.route, kind: KIND_REFUND, ...lock, observedAt });
}

const submit = (fx: Fixture, kind: AcceptedM["kind"], relayer: Signer, signed: Signed) => {
  const contract = kind === "mint" ? fx.wrapped : fx.lockbox;
  return attempt(fx, () => as(contract, relayer)[kind](signed.result, signed.payload, signed.signatures));
};

const short = (hex: string) => hex.slice(0, 10);

// ---- the invariants, read from the chain ----

async function checkInvariants(m: Model, r: Real): Promise<void> {
  const { fx } = r;
  const { lockbox, wrapped, token, chainId } = fx;
  const block = await latestBlock(fx.s.ethers);
  const now = BigInt(block.timestamp);
  expect(now).toBe(m.now);

  const [supply, lockedFor, totalLocked, held, lockCount, burnCount] = (await Promise.all([
    wrapped.totalSupply(),
    lockbox.lockedFor(chainId),
    lockbox.totalLocked(),
    token.balanceOf(fx.route.lockbox),
    lockbox.lockCount(),
    wrapped.burnCount(),
  ])) as bigint[];
  // Supply on the destination never exceeds what backs it on the source.
  expect(supply).toBeLessThanOrEqual(lockedFor!);
  // The lockbox holds exactly what it owes (one destination): locked, not refunded, minus released.
  expect({ held, totalLocked, lockedFor }).toEqual({ held: owed(m), totalLocked: owed(m), lockedFor: owed(m) });
  expect(supply).toBe(supplyOf(m));
  expect([lockCount, burnCount]).toEqual([BigInt(m.locks.length), BigInt(m.burns.length)]);

  // Each lock: never both minted and refunded; once seen unminted after its deadline, never minted.
  const locks = await Promise.all(
    m.locks.map(async (l) => {
      const [minted, stored] = await Promise.all([wrapped.isMinted(l.lockId), lockbox.lockOf(l.lockId)]);
      return { minted: minted as boolean, refunded: stored.status === 2n, status: stored.status as bigint };
    }),
  );
  m.locks.forEach((l, i) => {
    const chain = locks[i]!;
    expect(chain.minted && chain.refunded).toBe(false);
    if (r.sealed.has(l.lockId))
      expect({ lock: l.lockId, minted: chain.minted }).toEqual({ lock: l.lockId, minted: false });
    if (now > l.deadline && !chain.minted) r.sealed.add(l.lockId);
    expect({ lock: i, minted: chain.minted, status: chain.status }).toEqual({
      lock: i,
      minted: l.minted,
      status: l.refunded ? 2n : 1n,
    });
  });

  // Events since the run started: each lock minted at most once, refunded at most once, never both; each burn
  // released at most once and for its amount; total released ≤ total burned.
  const [minted, refunded, burned, released] = await Promise.all([
    wrapped.queryFilter("Minted", r.startBlock),
    lockbox.queryFilter("Refunded", r.startBlock),
    wrapped.queryFilter("Burned", r.startBlock),
    lockbox.queryFilter("Released", r.startBlock),
  ]);
  const args = (events: unknown[]) => events.map((e) => (e as { args: { [k: string]: unknown } }).args);
  const mintedIds = args(minted).map((a) => a.lockId as string);
  const refundedIds = args(refunded).map((a) => a.lockId as string);
  expect(new Set(mintedIds).size).toBe(mintedIds.length);
  expect(new Set(refundedIds).size).toBe(refundedIds.length);
  expect(mintedIds.filter((lockId) => refundedIds.includes(lockId))).toEqual([]);
  const burnAmounts = new Map(args(burned).map((a) => [a.burnId as string, a.amount as bigint]));
  const releasedIds = args(released).map((a) => a.burnId as string);
  expect(new Set(releasedIds).size).toBe(releasedIds.length);
  let totalReleased = 0n;
  for (const a of args(released)) {
    expect(a.amount).toBe(burnAmounts.get(a.burnId as string));
    totalReleased += a.amount as bigint;
  }
  const totalBurned = [...burnAmounts.values()].reduce((x, y) => x + y, 0n);
  expect(totalReleased).toBeLessThanOrEqual(totalBurned);

  // Each burn's status, each accepted result recorded, each user's balances on both sides.
  const [releasedNow, recorded, tokenBalances, wrappedBalances] = await Promise.all([
    Promise.all(m.burns.map((b) => lockbox.isReleased(b.burnId) as Promise<boolean>)),
    Promise.all(
      m.accepted.map(
        (a) => (a.kind === "mint" ? wrapped : lockbox).isRecorded(a.signed.result.resultId) as Promise<boolean>,
      ),
    ),
    Promise.all(fx.addresses.slice(0, USERS).map((a) => token.balanceOf(a) as Promise<bigint>)),
    Promise.all(fx.addresses.slice(0, USERS).map((a) => wrapped.balanceOf(a) as Promise<bigint>)),
  ]);
  expect(releasedNow).toEqual(m.burns.map((b) => b.released));
  expect(recorded).toEqual(m.accepted.map(() => true));
  expect({ token: tokenBalances, wrapped: wrappedBalances }).toEqual({ token: m.token, wrapped: m.wrapped });
}

// ---- the actions: each predicts its outcome from the model, acts on the chain, compares, updates the model ----

/** Expects `actual` to be `expected`, naming the action in the failure. */
function expectOutcome(what: string, actual: Outcome, expected: Outcome): void {
  expect({ action: what, outcome: actual }).toEqual({ action: what, outcome: expected });
  count(`${what.split("(")[0]} ${"ok" in actual ? "ok" : (actual as { error: string }).error}`);
}

async function lock(m: Model, r: Real, p: { user: number; to: number; amount: bigint; within: number }) {
  const { fx } = r;
  const at = m.now + 1n;
  const deadline = m.now + BigInt(p.within);
  const sender = fx.addresses[p.user]!;
  const expected =
    deadline <= at
      ? fail("CryptletLockboxDeadlineInPast", deadline, at)
      : m.token[p.user]! < p.amount
        ? fail("ERC20InsufficientBalance", sender, m.token[p.user], p.amount)
        : OK;
  const what = `lock(${NAMES[p.user]}→${NAMES[p.to]}, ${p.amount}, deadline ${deadline}) at ${at}`;
  r.trace.push(what);
  await setNextTime(fx.s.ethers, at);
  const { outcome, receipt } = await attempt(fx, () =>
    as(fx.lockbox, fx.accounts[p.user]!).lock(p.amount, fx.chainId, fx.addresses[p.to], deadline),
  );
  expectOutcome(what, outcome, expected);
  if (!receipt) return;
  const lockId = transferIdOf(fx.chainId, fx.route.lockbox, BigInt(m.locks.length));
  expect([...eventOf(fx.lockbox, receipt, "Locked").args]).toEqual([
    lockId,
    sender,
    fx.addresses[p.to],
    p.amount,
    fx.chainId,
    deadline,
    await fx.lockbox.peerOf(fx.chainId),
  ]);
  m.now = at;
  m.token[p.user]! -= p.amount;
  m.locks.push({ lockId, sender: p.user, recipient: p.to, amount: p.amount, deadline, minted: false, refunded: false });
  r.trace.push(`  → lock #${m.locks.length - 1} ${short(lockId)}`);
}

/**
 * The honest runtime on a lock: attests a MINT from the source chain only while the deadline has not passed (at the
 * latest block). The relayer then submits it, after `delay` seconds (a block is mined meanwhile), or queues it while
 * the destination is down.
 */
async function mint(m: Model, r: Real, p: { pick: number; relayer: number; delay: number; edge: Edge }) {
  const { fx } = r;
  const index = p.pick % m.locks.length;
  const l = m.locks[index]!;
  await approach(m, r, index, p.edge);
  const [stored, block] = await Promise.all([fx.lockbox.lockOf(l.lockId), latestBlock(fx.s.ethers)]);
  const attests = stored.status !== 0n && BigInt(block.timestamp) <= stored.deadline;
  expect({ lock: index, attests }).toEqual({ lock: index, attests: m.now <= l.deadline });
  if (!attests) {
    r.trace.push(`mint(lock #${index}): not attested, deadline ${l.deadline} passed at ${m.now}`);
    count("mint not attested");
    return;
  }
  const { recipient, amount, deadline } = stored;
  const signed = await sign(
    fx,
    mintPayload({ ...fx.route, kind: KIND_MINT, lockId: l.lockId, recipient, amount, deadline }),
  );
  if (m.outage > 0) {
    m.queued.push({ lock: index, signed });
    r.trace.push(`mint(lock #${index}): attested at ${m.now}, queued (destination down)`);
    count("mint queued");
    return;
  }
  if (p.delay > 0) await advanceTo(m, r, m.now + BigInt(p.delay), "relayer delay");
  await relayMint(m, r, index, signed, p.relayer, "mint");
}

async function relayMint(m: Model, r: Real, index: number, signed: Signed, relayer: number, label: string) {
  const { fx } = r;
  const l = m.locks[index]!;
  const at = m.now + 1n;
  const expected = l.minted
    ? fail("CryptletWrappedAlreadyMinted", l.lockId)
    : at > l.deadline
      ? fail("CryptletWrappedDeadlinePassed", l.lockId, l.deadline, at)
      : OK;
  const what = `${label}(lock #${index}, deadline ${l.deadline}) via ${NAMES[relayer]} at ${at}`;
  r.trace.push(what);
  await setNextTime(fx.s.ethers, at);
  const { outcome } = await submit(fx, "mint", fx.accounts[relayer]!, signed);
  expectOutcome(what, outcome, expected);
  if (!("ok" in outcome)) return;
  m.now = at;
  l.minted = true;
  m.wrapped[l.recipient]! += l.amount;
  m.accepted.push({ kind: "mint", subject: l.lockId, signed });
}

async function relayQueued(m: Model, r: Real, p: { pick: number; relayer: number }) {
  const [queued] = m.queued.splice(p.pick % m.queued.length, 1);
  await relayMint(m, r, queued!.lock, queued!.signed, p.relayer, "relayQueuedMint");
}

/**
 * The honest runtime on a lock: attests a REFUND only if `isMinted` is false at the latest block of the
 * destination and that block's timestamp is after the deadline (observedAt).
 */
async function refund(m: Model, r: Real, p: { pick: number; relayer: number; edge?: Edge }) {
  const { fx } = r;
  const index = p.pick % m.locks.length;
  const l = m.locks[index]!;
  await approach(m, r, index, p.edge);
  const block = await latestBlock(fx.s.ethers);
  const [stored, minted] = await Promise.all([
    fx.lockbox.lockOf(l.lockId),
    fx.wrapped.isMinted(l.lockId, { blockTag: block.number }),
  ]);
  const observedAt = BigInt(block.timestamp);
  const attests = stored.status !== 0n && observedAt > stored.deadline && !minted;
  expect({ lock: index, attests }).toEqual({ lock: index, attests: m.now > l.deadline && !l.minted });
  if (!attests) {
    r.trace.push(`refund(lock #${index}): not attested at ${m.now} (deadline ${l.deadline}, minted ${l.minted})`);
    count(`refund not attested (${l.minted ? "minted" : "deadline not passed"})`);
    return;
  }
  const payload = refundOf(
    fx,
    { lockId: l.lockId, sender: stored.sender, amount: stored.amount, deadline: stored.deadline },
    observedAt,
  );
  const signed = await sign(fx, payload);
  const at = m.now + 1n;
  const available = owed(m);
  const expected = l.refunded
    ? fail("CryptletLockboxAlreadyRefunded", l.lockId)
    : l.amount > available
      ? fail("CryptletLockboxInsufficientLocked", fx.chainId, l.amount, available)
      : OK;
  const what = `refund(lock #${index}, deadline ${l.deadline}, observedAt ${observedAt}) via ${NAMES[p.relayer]} at ${at}`;
  r.trace.push(what);
  await setNextTime(fx.s.ethers, at);
  const { outcome } = await submit(fx, "refund", fx.accounts[p.relayer]!, signed);
  expectOutcome(what, outcome, expected);
  if (!("ok" in outcome)) return;
  m.now = at;
  l.refunded = true;
  m.token[l.sender]! += l.amount;
  m.accepted.push({ kind: "refund", subject: l.lockId, signed });
}

/** A refund not attested by the runtime: signed by one trusted signer alone, or with a key outside the registry. */
async function forgedRefund(m: Model, r: Real, p: { pick: number; outsider: boolean; relayer: number; edge: Edge }) {
  const { fx } = r;
  const index = p.pick % m.locks.length;
  const l = m.locks[index]!;
  await approach(m, r, index, p.edge);
  const wallets = p.outsider ? [fx.s.signers[0]!, fx.outsider] : [fx.s.signers[2]!];
  const observedAt = m.now;
  const lockFields = { lockId: l.lockId, sender: fx.addresses[l.sender]!, amount: l.amount, deadline: l.deadline };
  const signed = await sign(fx, refundOf(fx, lockFields, observedAt), wallets);
  const at = m.now + 1n;
  const available = owed(m);
  const expected = l.refunded
    ? fail("CryptletLockboxAlreadyRefunded", l.lockId)
    : at <= l.deadline
      ? fail("CryptletLockboxDeadlineNotPassed", l.lockId, l.deadline, at)
      : observedAt <= l.deadline
        ? fail("CryptletLockboxObservationNotAfterDeadline", l.lockId, l.deadline, observedAt)
        : l.amount > available
          ? fail("CryptletLockboxInsufficientLocked", fx.chainId, l.amount, available)
          : p.outsider
            ? fail("CryptletProofUntrustedSigner", 1n, fx.outsider.address)
            : fail("CryptletProofThresholdNotMet", 1n, 2n);
  const what = `forgedRefund(lock #${index}, ${p.outsider ? "with outsider" : "lone signer"}, minted ${l.minted}) at ${at}`;
  r.trace.push(what);
  await setNextTime(fx.s.ethers, at);
  const { outcome } = await submit(fx, "refund", fx.accounts[p.relayer]!, signed);
  expectOutcome(what, outcome, expected);
}

async function burn(m: Model, r: Real, p: { holder: number; percent: number; to: number; over: boolean }) {
  const { fx } = r;
  const balance = m.wrapped[p.holder]!;
  let amount = p.over ? balance + 1n : (balance * BigInt(p.percent)) / 100n;
  if (amount === 0n) amount = 1n;
  const holder = fx.addresses[p.holder]!;
  const at = m.now + 1n;
  const expected = amount > balance ? fail("ERC20InsufficientBalance", holder, balance, amount) : OK;
  const what = `burn(${NAMES[p.holder]} ${amount} of ${balance} → ${NAMES[p.to]}) at ${at}`;
  r.trace.push(what);
  await setNextTime(fx.s.ethers, at);
  const { outcome, receipt } = await attempt(fx, () =>
    as(fx.wrapped, fx.accounts[p.holder]!).burn(amount, fx.chainId, fx.addresses[p.to]),
  );
  expectOutcome(what, outcome, expected);
  if (!receipt) return;
  const burnId = transferIdOf(fx.chainId, fx.route.token, BigInt(m.burns.length));
  expect([...eventOf(fx.wrapped, receipt, "Burned").args]).toEqual([
    burnId,
    holder,
    fx.addresses[p.to],
    amount,
    fx.chainId,
    fx.route.lockbox,
  ]);
  m.now = at;
  m.wrapped[p.holder]! -= amount;
  m.burns.push({ burnId, burner: p.holder, recipient: p.to, amount, attested: false, released: false });
  r.trace.push(`  → burn #${m.burns.length - 1} ${short(burnId)}`);
}

/** The honest runtime on a burn: attests a RELEASE from the `Burned` event on the chain, once per burn. */
async function release(m: Model, r: Real, p: { pick: number; relayer: number }) {
  const { fx } = r;
  const open = m.burns.flatMap((b, i) => (b.attested ? [] : [i]));
  const index = open[p.pick % open.length]!;
  const b = m.burns[index]!;
  const events = (await fx.wrapped.queryFilter("Burned", r.startBlock))
    .map((event) => (event as unknown as { args: { [k: string]: unknown } }).args)
    .filter((args) => args.burnId === b.burnId);
  expect(events).toHaveLength(1);
  const e = events[0]!;
  const payload = releasePayload({
    kind: KIND_RELEASE,
    burnId: e.burnId as string,
    sourceChainId: e.sourceChainId as bigint,
    lockbox: e.lockbox as string,
    destinationChainId: fx.chainId,
    token: fx.route.token,
    recipient: e.recipient as string,
    amount: e.amount as bigint,
  });
  const signed = await sign(fx, payload);
  b.attested = true;
  const at = m.now + 1n;
  const available = owed(m);
  const expected = b.released
    ? fail("CryptletLockboxAlreadyReleased", b.burnId)
    : b.amount > available
      ? fail("CryptletLockboxInsufficientLocked", fx.chainId, b.amount, available)
      : OK;
  const what = `release(burn #${index}, ${b.amount} → ${NAMES[b.recipient]}) via ${NAMES[p.relayer]} at ${at}`;
  r.trace.push(what);
  await setNextTime(fx.s.ethers, at);
  const { outcome } = await submit(fx, "release", fx.accounts[p.relayer]!, signed);
  expectOutcome(what, outcome, expected);
  if (!("ok" in outcome)) return;
  m.now = at;
  b.released = true;
  m.token[b.recipient]! += b.amount;
  m.accepted.push({ kind: "release", subject: b.burnId, signed });
}

/**
 * A previously accepted result again: as it is (refused as already recorded), or re-signed with a new result id
 * (refused as already minted, released or refunded).
 */
async function replay(m: Model, r: Real, p: { pick: number; fresh: boolean; relayer: number }) {
  const { fx } = r;
  const index = p.pick % m.accepted.length;
  const a = m.accepted[index]!;
  const signed = p.fresh ? await sign(fx, a.signed.payload) : a.signed;
  const expected = !p.fresh
    ? fail(
        a.kind === "mint" ? "CryptletWrappedResultAlreadyRecorded" : "CryptletLockboxResultAlreadyRecorded",
        a.signed.result.resultId,
      )
    : a.kind === "mint"
      ? fail("CryptletWrappedAlreadyMinted", a.subject)
      : a.kind === "release"
        ? fail("CryptletLockboxAlreadyReleased", a.subject)
        : fail("CryptletLockboxAlreadyRefunded", a.subject);
  const at = m.now + 1n;
  const what = `replay(${a.kind} ${short(a.subject)}, ${p.fresh ? "re-signed" : "same result"}) at ${at}`;
  r.trace.push(what);
  await setNextTime(fx.s.ethers, at);
  const { outcome } = await submit(fx, a.kind, fx.accounts[p.relayer]!, signed);
  expectOutcome(what, outcome, expected);
}

async function advanceTo(m: Model, r: Real, t: bigint, label: string) {
  r.trace.push(`${label}: time ${m.now} → ${t}`);
  await mineAt(r.fx.s.ethers, t);
  m.now = t;
}

/**
 * An action "at the edge" of a lock's deadline: time moves so that the action's transaction lands at
 * `deadline + edge` (unless that moment has passed already); null: the action happens now.
 */
type Edge = number | null | undefined;
async function approach(m: Model, r: Real, index: number, edge: Edge) {
  if (edge === null || edge === undefined) return;
  const target = m.locks[index]!.deadline + BigInt(edge) - 1n;
  if (target > m.now)
    await advanceTo(m, r, target, `approach lock #${index}'s deadline, transaction at ${edge >= 0 ? "+" : ""}${edge}`);
}

/** After every command: the outage lasts a number of commands. */
function tick(m: Model) {
  if (m.outage > 0) m.outage -= 1;
}

// ---- the commands ----

type Cmd = fc.AsyncCommand<Model, Real>;

function command(label: string, check: (m: Readonly<Model>) => boolean, act: (m: Model, r: Real) => Promise<void>) {
  const cmd: Cmd = {
    check,
    run: async (m, r) => {
      try {
        await act(m, r);
        tick(m);
        await checkInvariants(m, r);
      } catch (e) {
        const error = e instanceof Error ? e : new Error(String(e));
        if (!error.message.includes("\ntrace of this run:"))
          error.message += `\ntrace of this run:\n  ${r.trace.join("\n  ")}`;
        throw error;
      }
    },
    toString: () => label,
  };
  return cmd;
}

const user = fc.integer({ min: 0, max: USERS - 1 });
const relayer = fc.integer({ min: 0, max: USERS });
const pick = fc.nat({ max: 1_000 });
/** Mostly null (act now), sometimes at the edge of the lock's deadline: just before, at, just after. */
const edge = fc.option(fc.integer({ min: -1, max: 1 }), { freq: 3, nil: null });
/** For honest refunds: the first transaction they can make lands at deadline + 2 (observed at deadline + 1). */
const refundEdge = fc.option(fc.integer({ min: 0, max: 2 }), { freq: 3, nil: null });
const hasLocks = (m: Readonly<Model>) => m.locks.length > 0;

const commandArb: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .record({
        user,
        to: user,
        amount: fc.bigInt({ min: 1n, max: 2_000n }),
        within: fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 2, max: 1_200 }) }, fc.constant(1)),
      })
      .map((p) =>
        command(
          `lock(${JSON.stringify({ ...p, amount: String(p.amount) })})`,
          () => true,
          (m, r) => lock(m, r, p),
        ),
      ),
  },
  {
    weight: 6,
    arbitrary: fc
      .record({
        pick,
        relayer,
        delay: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, fc.integer({ min: 1, max: 120 })),
        edge,
      })
      .map((p) => command(`mint(${JSON.stringify(p)})`, hasLocks, (m, r) => mint(m, r, p))),
  },
  {
    weight: 6,
    arbitrary: fc.record({ pick, relayer }).map((p) =>
      command(
        `relayQueuedMint(${JSON.stringify(p)})`,
        (m) => m.queued.length > 0 && m.outage === 0,
        (m, r) => relayQueued(m, r, p),
      ),
    ),
  },
  {
    weight: 2,
    arbitrary: fc.integer({ min: 1, max: 8 }).map((steps) =>
      command(
        `outage(${steps})`,
        () => true,
        async (m, r) => {
          r.trace.push(`outage: destination down for ${steps} commands`);
          m.outage = steps + 1; // tick() takes one off for this command
        },
      ),
    ),
  },
  {
    weight: 4,
    arbitrary: fc
      .record({ pick, relayer, edge: refundEdge })
      .map((p) => command(`refund(${JSON.stringify(p)})`, hasLocks, (m, r) => refund(m, r, p))),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({ pick, outsider: fc.boolean(), relayer, edge })
      .map((p) => command(`forgedRefund(${JSON.stringify(p)})`, hasLocks, (m, r) => forgedRefund(m, r, p))),
  },
  {
    weight: 4,
    arbitrary: fc
      .record({
        holder: pick,
        percent: fc.integer({ min: 1, max: 100 }),
        to: user,
        over: fc.oneof({ weight: 7, arbitrary: fc.constant(false) }, fc.constant(true)),
      })
      .map((p) =>
        command(
          `burn(${JSON.stringify(p)})`,
          () => true,
          // A holder of wrapped tokens if there is one (then sometimes beyond the balance), else anyone (refused).
          (m, r) => {
            const holders = m.wrapped.flatMap((balance, u) => (balance > 0n ? [u] : []));
            const holder = holders.length > 0 ? holders[p.holder % holders.length]! : p.holder % USERS;
            return burn(m, r, { ...p, holder });
          },
        ),
      ),
  },
  {
    weight: 4,
    arbitrary: fc.record({ pick, relayer }).map((p) =>
      command(
        `release(${JSON.stringify(p)})`,
        (m) => m.burns.some((b) => !b.attested),
        (m, r) => release(m, r, p),
      ),
    ),
  },
  {
    weight: 3,
    arbitrary: fc.record({ pick, fresh: fc.boolean(), relayer }).map((p) =>
      command(
        `replay(${JSON.stringify(p)})`,
        (m) => m.accepted.length > 0,
        (m, r) => replay(m, r, p),
      ),
    ),
  },
  {
    weight: 3,
    arbitrary: fc.integer({ min: 1, max: 600 }).map((seconds) =>
      command(
        `advanceTime(${seconds})`,
        () => true,
        (m, r) => advanceTo(m, r, m.now + BigInt(seconds), "advance"),
      ),
    ),
  },
  {
    weight: 3,
    arbitrary: fc.record({ pick, offset: fc.integer({ min: -1, max: 1 }) }).map((p) => {
      const target = (m: Readonly<Model>) => m.locks[p.pick % m.locks.length]!.deadline + BigInt(p.offset);
      return command(
        `advanceToDeadline(${JSON.stringify(p)})`,
        (m) => hasLocks(m) && target(m) > m.now,
        (m, r) =>
          advanceTo(
            m,
            r,
            target(m),
            `advance to lock #${p.pick % m.locks.length}'s deadline ${p.offset >= 0 ? "+" : ""}${p.offset}`,
          ),
      );
    }),
  },
);

/**
 * The honest runtime settles everything after a run: queued mints are relayed (refused if late), time passes every
 * deadline, unminted locks are refunded, holders burn all they hold and every burn is released. Then nothing is
 * owed, nothing is minted, and every user's tokens are back on the source chain.
 */
async function settle(m: Model, r: Real): Promise<void> {
  const step = async (label: string, act: () => Promise<void>) => command(label, () => true, act).run(m, r);
  r.trace.push("--- settle ---");
  phase = "settle ";
  m.outage = 0;
  while (m.queued.length > 0) await step("relayQueuedMint", () => relayQueued(m, r, { pick: 0, relayer: USERS }));
  const last = m.locks.reduce((t, l) => (l.deadline > t ? l.deadline : t), 0n);
  if (last + 1n > m.now) await step("advance", () => advanceTo(m, r, last + 1n, "past every deadline"));
  for (let i = 0; i < m.locks.length; i += 1) {
    if (!m.locks[i]!.minted && !m.locks[i]!.refunded)
      await step("refund", () => refund(m, r, { pick: i, relayer: USERS }));
  }
  for (let u = 0; u < USERS; u += 1) {
    if (m.wrapped[u]! > 0n) await step("burn", () => burn(m, r, { holder: u, percent: 100, to: u, over: false }));
  }
  while (m.burns.some((b) => !b.attested)) await step("release", () => release(m, r, { pick: 0, relayer: USERS }));
  expect(owed(m)).toBe(0n);
  expect(supplyOf(m)).toBe(0n);
  const { fx } = r;
  expect([
    await fx.lockbox.totalLocked(),
    await fx.token.balanceOf(fx.route.lockbox),
    await fx.wrapped.totalSupply(),
  ]).toEqual([0n, 0n, 0n]);
  const balances = await Promise.all(fx.addresses.slice(0, USERS).map((a) => fx.token.balanceOf(a) as Promise<bigint>));
  expect(balances.reduce((a, b) => a + b, 0n)).toBe(INITIAL * BigInt(USERS));
  phase = "";
}

describe("Cross-chain transfers: properties of CryptletLockbox and CryptletWrappedToken", () => {
  let fx: Fixture;

  beforeAll(async () => {
    const bridge = await deployBridge(USERS, INITIAL);
    const accounts = bridge.s.others.slice(0, USERS + 1);
    const addresses = await Promise.all(accounts.map((a) => a.getAddress()));
    const snapshot = (await bridge.s.ethers.provider.send("evm_snapshot", [])) as string;
    fx = { ...bridge, accounts, addresses, outsider: new Wallet(id("crosschain-property-outsider")), snapshot };
  });

  test(`${RUNS} random interleavings of lock, mint, refund, burn, release, replay, time and outage`, async () => {
    console.log(
      `cross-chain properties: seed ${SEED} (CROSSCHAIN_SEED=${SEED} reproduces this run), ${RUNS} runs of up to ${MAX_COMMANDS} commands`,
    );
    let current: { model: Model; real: Real } | undefined;
    /** Every run starts from the deployment: the snapshot, taken again after each revert (a revert consumes it). */
    const setup = async () => {
      const provider = fx.s.ethers.provider;
      expect(await provider.send("evm_revert", [fx.snapshot])).toBe(true);
      fx.snapshot = (await provider.send("evm_snapshot", [])) as string;
      const block = await latestBlock(fx.s.ethers);
      const model: Model = {
        now: BigInt(block.timestamp),
        token: Array.from({ length: USERS }, () => INITIAL),
        wrapped: Array.from({ length: USERS }, () => 0n),
        locks: [],
        burns: [],
        accepted: [],
        queued: [],
        outage: 0,
      };
      phase = "";
      const real: Real = { fx, startBlock: block.number + 1, sealed: new Set(), trace: [] };
      await checkInvariants(model, real);
      current = { model, real };
      return current;
    };
    const started = performance.now();
    await fc.assert(
      fc.asyncProperty(
        fc.commands([commandArb], {
          maxCommands: MAX_COMMANDS,
          size: "max",
          ...(process.env.CROSSCHAIN_REPLAY ? { replayPath: process.env.CROSSCHAIN_REPLAY } : {}),
        }),
        async (cmds) => {
          await fc.asyncModelRun(setup, cmds);
          await settle(current!.model, current!.real);
        },
      ),
      {
        seed: SEED,
        numRuns: RUNS,
        ...(process.env.CROSSCHAIN_PATH ? { path: process.env.CROSSCHAIN_PATH } : {}),
      },
    );
    const outcomes = [...seen].sort().map(([k, n]) => `${k}: ${n}`);
    console.log(
      `cross-chain properties: ${RUNS} runs in ${Math.round(performance.now() - started)} ms; outcomes:\n${outcomes.join("\n")}`,
    );
    // The runs reached the interesting paths, not only the refusals.
    for (const key of ["lock ok", "mint ok", "refund ok", "burn ok", "release ok"]) {
      expect({ key, seen: (seen.get(key) ?? 0) > 0 }).toEqual({ key, seen: true });
    }
  }, 300_000);
});
