/**
 * On-chain checks of a proof bundle's anchors (docs/proof-bundle.md, "Anchors on-chain"): for one `anchors[]`
 * entry, that its transaction is on the chain in the block it names, succeeded and has enough confirmations, that
 * the written contract emitted this result's event (or this batch's) with the bundle's hashes, and that the
 * contract's views agree today (`ResultLedger.isRecorded`/`outputHashOf`, `isAnchored`/`anchorOf` and `verify`
 * with the Merkle proof, `CryptletOracle.requestStatus`, `CryptletPriceFeed.roundOf`; for the cross-chain writes
 * (docs/crosschain.md) `isRecorded` and `CryptletWrappedToken.mintResultOf`, `CryptletLockbox.releaseResultOf` and
 * `lockOf`).
 *
 * The ABIs are human-readable fragments of the contracts' events and views, so this module needs no build output.
 * `verifyBundle` runs these checks when given providers (`options.chains`); offline it never touches a chain.
 *
 * @module
 */
import { Contract, Interface, getAddress, isHexString, type BlockTag, type Log, type Provider } from "ethers";

import type { BundleAnchor, ProofBundle } from "../attestation/bundle.ts";

/**
 * The events the Cryptlet contracts emit for a write (ResultLedger, CryptletOracle, CryptletPriceFeed, and the
 * cross-chain CryptletWrappedToken and CryptletLockbox).
 */
export const ANCHOR_EVENTS_ABI = [
  "event ResultRecorded(bytes32 indexed resultId, bytes32 indexed cryptletId, bytes32 codeHash, bytes32 inputHash, bytes32 outputHash, uint64 timestamp, bytes payload)",
  "event BatchAnchored(bytes32 indexed root, uint32 count, uint64 timestamp)",
  "event CryptletFulfilled(bytes32 indexed requestId, bytes32 indexed resultId, bytes32 outputHash, address indexed fulfiller, bytes payload)",
  "event CryptletResultApplied(bytes32 indexed resultId, uint80 indexed roundId)",
  "event Minted(bytes32 indexed lockId, address indexed recipient, uint256 amount, bytes32 resultId)",
  "event Released(bytes32 indexed burnId, address indexed recipient, uint256 amount, uint256 destinationChainId, bytes32 resultId)",
  "event Refunded(bytes32 indexed lockId, address indexed sender, uint256 amount, bytes32 resultId)",
] as const;

/** The views {@link checkAnchor} reads (each contract has the ones of its mode, and `registry()`). */
export const ANCHOR_VIEWS_ABI = [
  "function registry() view returns (address)",
  "function isRecorded(bytes32 resultId) view returns (bool)",
  "function outputHashOf(bytes32 resultId) view returns (bytes32)",
  "function isAnchored(bytes32 root) view returns (bool)",
  "function anchorOf(bytes32 root) view returns (tuple(uint32 count, uint64 timestamp, uint64 anchoredAt))",
  "function verify(tuple(bytes32 resultId, bytes32 cryptletId, bytes32 codeHash, bytes32 inputHash, bytes32 outputHash, uint64 timestamp) result, bytes32[] proof, bytes32 root) view returns (bool)",
  "function requestStatus(bytes32 resultId) view returns (uint8)",
  "function roundOf(bytes32 resultId) view returns (uint80)",
  "function mintResultOf(bytes32 lockId) view returns (bytes32)",
  "function releaseResultOf(bytes32 burnId) view returns (bytes32)",
  "function lockOf(bytes32 lockId) view returns (tuple(address sender, uint64 deadline, uint8 status, address recipient, uint256 amount, uint256 destinationChainId))",
] as const;

const EVENTS = new Interface(ANCHOR_EVENTS_ABI);

/** `CryptletOracle.RequestStatus.Fulfilled` and `FulfilledCallbackFailed`. */
const ORACLE_FULFILLED = new Set([2n, 3n]);

/** `CryptletLockbox.LockStatus.Refunded`. */
const LOCK_REFUNDED = 2n;

/** Options of {@link checkAnchor}. */
export interface AnchorCheckOptions {
  /** Confirmations the write needs (the block of the write counts as one). Default 1. */
  confirmations?: number;
}

/** The outcome of {@link checkAnchor}: `ok`, and one line saying what held or the first thing that did not. */
export interface AnchorCheckResult {
  ok: boolean;
  reason: string;
  /** Confirmations of the write at the time of the check (when the transaction was found). */
  confirmations?: number;
}

const eq = (a: unknown, b: unknown): boolean => String(a).toLowerCase() === String(b).toLowerCase();

/**
 * Reads the registry a Cryptlet contract (ResultLedger, CryptletOracle, CryptletPriceFeed, CryptletLockbox,
 * CryptletWrappedToken) checks proofs against: its immutable `registry()`.
 * @param provider - a provider of the contract's chain.
 * @param contract - the written contract's address (a bundle anchor's `contract`).
 * @param blockTag - the block to read at (default latest; the value is immutable).
 * @returns the registry's EIP-55 address.
 */
export async function registryOfContract(provider: Provider, contract: string, blockTag?: BlockTag): Promise<string> {
  const c = new Contract(contract, ANCHOR_VIEWS_ABI, provider);
  const registry = (await c.getFunction("registry")(blockTag === undefined ? {} : { blockTag })) as string;
  return getAddress(registry);
}

/**
 * Checks one anchor of `bundle` against its chain. Never throws for a bad anchor (a failing RPC call is a
 * failed check with its reason).
 * @param provider - a provider of the anchor's chain (its chain id is the caller's business).
 * @param bundle - a schema-valid bundle (the anchor's result, batch and hashes come from it).
 * @param anchor - one of `bundle.anchors`.
 */
export async function checkAnchor(
  provider: Provider,
  bundle: ProofBundle,
  anchor: BundleAnchor,
  options: AnchorCheckOptions = {},
): Promise<AnchorCheckResult> {
  const required = options.confirmations ?? 1;
  const where = `anchor ${anchor.mode} on chain ${anchor.chainId}`;
  const bad = (why: string, confirmations?: number): AnchorCheckResult => ({
    ok: false,
    reason: `${where}: ${why}`,
    ...(confirmations === undefined ? {} : { confirmations }),
  });
  try {
    if (!isHexString(anchor.txHash, 32)) return bad(`${anchor.txHash} is not a transaction hash`);
    const receipt = await provider.getTransactionReceipt(anchor.txHash);
    if (receipt === null) return bad(`transaction ${anchor.txHash} is not on the chain`);
    if (String(receipt.blockNumber) !== anchor.blockNumber) {
      return bad(`transaction ${anchor.txHash} is in block ${receipt.blockNumber}, not ${anchor.blockNumber}`);
    }
    if (!eq(receipt.blockHash, anchor.blockHash)) {
      return bad(`block ${receipt.blockNumber} has hash ${receipt.blockHash}, not ${anchor.blockHash}`);
    }
    if (receipt.status !== 1) return bad(`transaction ${anchor.txHash} reverted (status ${receipt.status})`);
    const head = await provider.getBlockNumber();
    const confirmations = head - receipt.blockNumber + 1;
    if (confirmations < required) {
      return bad(`${confirmations} confirmation(s), ${required} required`, confirmations);
    }
    const logs = receipt.logs.filter((l) => eq(l.address, anchor.contract));
    const parsed = logs.map((l: Log) => {
      try {
        return EVENTS.parseLog({ topics: [...l.topics], data: l.data });
      } catch {
        return null;
      }
    });
    const event = (name: string) => parsed.filter((p) => p?.name === name);
    const contract = new Contract(anchor.contract, ANCHOR_VIEWS_ABI, provider);
    const view = (name: string, ...args: unknown[]) => contract.getFunction(name)(...args) as Promise<unknown>;
    const r = bundle.result;
    const ok = (what: string): AnchorCheckResult => ({
      ok: true,
      reason: `${where}: tx ${anchor.txHash} in block ${anchor.blockNumber} (${confirmations} confirmation(s)) ${what}`,
      confirmations,
    });
    /** The names of the known events `anchor.contract` emitted in the transaction (to say what a tx did). */
    const emitted = () => [...new Set(parsed.map((p) => p?.name).filter((n) => n !== undefined))];
    const notFound = (name: string, field: string, value: string) => {
      if (event(name).length > 0) {
        return bad(
          `the ${name} event(s) of ${anchor.contract} in tx ${anchor.txHash} carry another ${field}, not ${value}`,
          confirmations,
        );
      }
      const others = emitted();
      return bad(
        `tx ${anchor.txHash} has no ${name} event of ${anchor.contract}` +
          (others.length > 0 ? ` (it emitted ${others.join(", ")})` : ""),
        confirmations,
      );
    };

    switch (anchor.mode) {
      case "record": {
        const mine = event("ResultRecorded").find((e) => eq(e?.args.resultId, r.resultId));
        if (!mine) return notFound("ResultRecorded", "resultId", r.resultId);
        const fields = ["cryptletId", "codeHash", "inputHash", "outputHash"] as const;
        const differ: string[] = fields.filter((f) => !eq(mine.args[f], r[f]));
        if (String(mine.args.timestamp) !== r.timestamp) differ.push("timestamp");
        if (differ.length > 0)
          return bad(`ResultRecorded differs from the bundle in ${differ.join(", ")}`, confirmations);
        if ((await view("isRecorded", r.resultId)) !== true)
          return bad("ResultLedger.isRecorded is false", confirmations);
        const stored = await view("outputHashOf", r.resultId);
        if (!eq(stored, r.outputHash)) return bad(`ResultLedger.outputHashOf is ${String(stored)}`, confirmations);
        return ok("emitted ResultRecorded with the bundle's hashes; isRecorded and outputHashOf agree");
      }
      case "anchor": {
        const batch = bundle.batch;
        if (!batch) return bad("the bundle has no batch (root, Merkle proof) for an anchor-mode write", confirmations);
        const mine = event("BatchAnchored").find((e) => eq(e?.args.root, batch.root));
        if (!mine) return notFound("BatchAnchored", "root", batch.root);
        if (Number(mine.args.count) !== batch.count || String(mine.args.timestamp) !== batch.timestamp) {
          return bad("BatchAnchored differs from the bundle's batch in count or timestamp", confirmations);
        }
        if ((await view("isAnchored", batch.root)) !== true)
          return bad("ResultLedger.isAnchored is false", confirmations);
        const struct = { ...r, timestamp: BigInt(r.timestamp) };
        const atWrite = { blockTag: receipt.blockNumber };
        if ((await view("verify", struct, batch.proof, batch.root, atWrite)) !== true) {
          return bad(
            `ResultLedger.verify(result, proof, root) is false at block ${receipt.blockNumber} (proof or code hash approval)`,
            confirmations,
          );
        }
        return ok(
          "emitted BatchAnchored with the bundle's root; isAnchored, and verify(result, proof, root) at the write's block",
        );
      }
      case "fulfill": {
        const mine = event("CryptletFulfilled").find((e) => eq(e?.args.resultId, r.resultId));
        if (!mine) return notFound("CryptletFulfilled", "resultId", r.resultId);
        if (!eq(mine.args.outputHash, r.outputHash))
          return bad("CryptletFulfilled carries another outputHash", confirmations);
        if (bundle.requestId !== undefined && !eq(mine.args.requestId, bundle.requestId)) {
          return bad("CryptletFulfilled carries another requestId", confirmations);
        }
        const status = BigInt(String(await view("requestStatus", r.resultId)));
        if (!ORACLE_FULFILLED.has(status))
          return bad(`CryptletOracle.requestStatus is ${status}, not fulfilled`, confirmations);
        return ok(`emitted CryptletFulfilled with the bundle's outputHash; requestStatus ${status} (fulfilled)`);
      }
      case "submit": {
        const mine = event("CryptletResultApplied").find((e) => eq(e?.args.resultId, r.resultId));
        if (!mine) return notFound("CryptletResultApplied", "resultId", r.resultId);
        const round = BigInt(String(await view("roundOf", r.resultId)));
        if (round === 0n || round !== BigInt(String(mine.args.roundId))) {
          return bad(
            `CryptletPriceFeed.roundOf is ${round}, the event says ${String(mine.args.roundId)}`,
            confirmations,
          );
        }
        return ok(`emitted CryptletResultApplied as round ${round}; roundOf agrees`);
      }
      case "mint": {
        const mine = event("Minted").find((e) => eq(e?.args.resultId, r.resultId));
        if (!mine) return notFound("Minted", "resultId", r.resultId);
        const lockId = String(mine.args.lockId);
        if ((await view("isRecorded", r.resultId)) !== true)
          return bad("CryptletWrappedToken.isRecorded is false", confirmations);
        const minter = await view("mintResultOf", lockId);
        if (!eq(minter, r.resultId)) {
          return bad(
            `CryptletWrappedToken.mintResultOf(${lockId}) is ${String(minter)}, not the bundle's resultId`,
            confirmations,
          );
        }
        return ok(
          `emitted Minted of lock ${lockId} (${String(mine.args.amount)} to ${String(mine.args.recipient)}) with the bundle's resultId; isRecorded, and mintResultOf(lockId) is the resultId`,
        );
      }
      case "release": {
        const mine = event("Released").find((e) => eq(e?.args.resultId, r.resultId));
        if (!mine) return notFound("Released", "resultId", r.resultId);
        const burnId = String(mine.args.burnId);
        if ((await view("isRecorded", r.resultId)) !== true)
          return bad("CryptletLockbox.isRecorded is false", confirmations);
        const releaser = await view("releaseResultOf", burnId);
        if (!eq(releaser, r.resultId)) {
          return bad(
            `CryptletLockbox.releaseResultOf(${burnId}) is ${String(releaser)}, not the bundle's resultId`,
            confirmations,
          );
        }
        return ok(
          `emitted Released of burn ${burnId} (${String(mine.args.amount)} to ${String(mine.args.recipient)}, from chain ${String(mine.args.destinationChainId)}) with the bundle's resultId; isRecorded, and releaseResultOf(burnId) is the resultId`,
        );
      }
      case "refund": {
        const mine = event("Refunded").find((e) => eq(e?.args.resultId, r.resultId));
        if (!mine) return notFound("Refunded", "resultId", r.resultId);
        const lockId = String(mine.args.lockId);
        if ((await view("isRecorded", r.resultId)) !== true)
          return bad("CryptletLockbox.isRecorded is false", confirmations);
        const lock = (await view("lockOf", lockId)) as { status: bigint };
        if (BigInt(lock.status) !== LOCK_REFUNDED) {
          return bad(
            `CryptletLockbox.lockOf(${lockId}).status is ${lock.status}, not ${LOCK_REFUNDED} (Refunded)`,
            confirmations,
          );
        }
        return ok(
          `emitted Refunded of lock ${lockId} (${String(mine.args.amount)} to ${String(mine.args.sender)}) with the bundle's resultId; isRecorded, and lockOf(lockId) is Refunded`,
        );
      }
      default:
        return bad(`unknown mode ${String((anchor as { mode: unknown }).mode)}`);
    }
  } catch (error) {
    const { shortMessage, message } = (error ?? {}) as { shortMessage?: unknown; message?: unknown };
    const text =
      typeof shortMessage === "string" ? shortMessage : typeof message === "string" ? message : String(error);
    return bad(`a JSON-RPC call failed: ${text}`);
  }
}
