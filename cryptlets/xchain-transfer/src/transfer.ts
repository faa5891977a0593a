/**
 * The cross-chain transfer attestation (docs/crosschain.md), free of any import and of any sandbox or Node API, so
 * that it runs the same in Node (tests) and in isolated-vm (the built bundle).
 *
 * One event in, one output out, chosen by where the event came from:
 *
 * | `ctx.event.source.type` | input                                                 | output (variant, kind) |
 * | ----------------------- | ----------------------------------------------------- | ---------------------- |
 * | `"chain-log"`           | a decoded `Locked` log of a lockbox                   | `MINT` (0, 1)          |
 * | `"chain-log"`           | a decoded `Burned` log of a wrapped token             | `RELEASE` (1, 2)       |
 * | `"chain-state"`         | a lock and a read of its destination chain at a block | `REFUND` (2, 3)        |
 *
 * The output is `{ variant, value }`: `variant` indexes the manifest's `output.abiOneOf` (MINT, RELEASE, REFUND
 * tuples, in that order) and `value` holds the tuple's components by name. uint256 values are decimal strings,
 * `kind` a number, uint64 values numbers (decimal strings above 2^53 − 1, where a number would lose digits),
 * addresses lower-case 0x hex (ethers' ABI encoder accepts them), bytes32 lower-case 0x hex. Input addresses are
 * `0x` and 40 hex digits in any case: no EIP-55 checksum is checked (they come from ethers' log decoding and the
 * runtime's own deadline watcher), but the zero address is refused.
 *
 * Everything else is refused with an {@link XChainTransferError} whose message names the field or the condition:
 * a MINT or RELEASE only ever comes from a chain log, a REFUND only from a chain-state read, and a REFUND only when
 * that read shows the lock unminted at a block after its deadline.
 *
 * @module
 */

// ---- constants ----

/** Output kind of a mint (`CrossChainOutputs.KIND_MINT`): the payload's first word. */
export const KIND_MINT = 1;
/** Output kind of a release (`CrossChainOutputs.KIND_RELEASE`). */
export const KIND_RELEASE = 2;
/** Output kind of a refund (`CrossChainOutputs.KIND_REFUND`). */
export const KIND_REFUND = 3;

/** Index of the MINT tuple in the manifest's `output.abiOneOf`. */
export const VARIANT_MINT = 0;
/** Index of the RELEASE tuple in the manifest's `output.abiOneOf`. */
export const VARIANT_RELEASE = 1;
/** Index of the REFUND tuple in the manifest's `output.abiOneOf`. */
export const VARIANT_REFUND = 2;

/** Canonical signature of `CryptletLockbox.Locked` (as `decodeLog` reports it in `input.signature`). */
export const LOCKED_SIGNATURE = "Locked(bytes32,address,address,uint256,uint256,uint64,address)";
/** Canonical signature of `CryptletWrappedToken.Burned`. */
export const BURNED_SIGNATURE = "Burned(bytes32,address,address,uint256,uint256,address)";

// ---- shapes ----

/** Where a chain-log event came from (`ctx.event.source`): one log of one block. */
export interface ChainLogSource {
  type: "chain-log";
  /** EIP-155 id of the chain the log is on. */
  chainId: number;
  /** The emitting contract. */
  address: string;
  blockNumber: number;
  blockHash: string;
  txHash: string;
  logIndex: number;
}

/** Where a chain-state event came from (`ctx.event.source`): the runtime's read of one chain at one block. */
export interface ChainStateSource {
  type: "chain-state";
  /** EIP-155 id of the chain that was read. */
  chainId: number;
  blockNumber: number;
  blockHash: string;
  /** The block's timestamp, Unix seconds. */
  timestamp: number;
}

/** The event a run is given (`ctx.event`); only `source` is used. */
export interface TransferEvent {
  eventId?: string;
  requestId?: string;
  /** A {@link ChainLogSource}, a {@link ChainStateSource}, or another trigger's source (refused). */
  source: ChainLogSource | ChainStateSource | { type: string };
  /** The event's time, Unix seconds. */
  time?: number;
}

/** An integer as the inputs may give it: a safe-integer number or a decimal string (no sign, no leading zeros). */
export type IntegerInput = number | string;

/**
 * The input of a chain-log event (`ChainLogInput` of runtime/triggers/decodeLog.ts): a decoded `Locked` or
 * `Burned` log. `args` by name, integers as decimal strings, addresses as ethers gives them (checksummed; any case
 * is accepted).
 */
export interface LogInput {
  event: "Locked" | "Burned";
  signature: string;
  args: Record<string, unknown>;
  address: string;
  blockNumber: number;
  blockHash: string;
  txHash: string;
  logIndex: number;
  timestamp?: number;
}

/** A lock as the deadline watcher read it from the source chain's lockbox. */
export interface RefundLock {
  lockId: string;
  sourceChainId: IntegerInput;
  lockbox: string;
  destinationChainId: IntegerInput;
  /** The lockbox's peer on the destination chain (the wrapped token that was read). */
  token: string;
  sender: string;
  /** Token units, unscaled. */
  amount: IntegerInput;
  /** Unix seconds, destination-chain time. */
  deadline: IntegerInput;
}

/** The read of the destination chain: `isMinted(lockId)` of the wrapped token at one block. */
export interface RefundObservation {
  chainId: IntegerInput;
  blockNumber: IntegerInput;
  blockHash: string;
  /** The block's timestamp, Unix seconds: the REFUND's `observedAt`. */
  timestamp: IntegerInput;
  isMinted: boolean;
}

/** The input of a chain-state (refund) event. */
export interface RefundInput {
  kind: "refund";
  lock: RefundLock;
  observation: RefundObservation;
}

/** The input of any event this Cryptlet accepts. */
export type TransferInput = LogInput | RefundInput;

/** A uint64 in the output: a number, or a decimal string above `Number.MAX_SAFE_INTEGER`. */
export type Uint64Output = number | string;

/** The components of `CrossChainOutputs.MintOutput`, by name. */
export interface MintValue {
  kind: typeof KIND_MINT;
  lockId: string;
  sourceChainId: string;
  lockbox: string;
  destinationChainId: string;
  token: string;
  recipient: string;
  amount: string;
  deadline: Uint64Output;
}

/** The components of `CrossChainOutputs.ReleaseOutput`, by name. */
export interface ReleaseValue {
  kind: typeof KIND_RELEASE;
  burnId: string;
  sourceChainId: string;
  lockbox: string;
  destinationChainId: string;
  token: string;
  recipient: string;
  amount: string;
}

/** The components of `CrossChainOutputs.RefundOutput`, by name. */
export interface RefundValue {
  kind: typeof KIND_REFUND;
  lockId: string;
  sourceChainId: string;
  lockbox: string;
  destinationChainId: string;
  token: string;
  sender: string;
  amount: string;
  deadline: Uint64Output;
  observedAt: Uint64Output;
}

/** The run's output: `value` is ABI-encoded as `output.abiOneOf[variant]` of the manifest. */
export type TransferOutput =
  | { variant: typeof VARIANT_MINT; value: MintValue }
  | { variant: typeof VARIANT_RELEASE; value: ReleaseValue }
  | { variant: typeof VARIANT_REFUND; value: RefundValue };

/**
 * Error codes of {@link XChainTransferError}:
 * - `UNSUPPORTED_EVENT`: a source type other than `chain-log`/`chain-state`, or a log other than `Locked`/`Burned`;
 * - `INVALID_INPUT`: a missing or malformed field, or an input that disagrees with `ctx.event.source`;
 * - `NOT_REFUNDABLE`: a well-formed refund observation that does not prove the lock can no longer be minted.
 */
export type XChainTransferErrorCode = "UNSUPPORTED_EVENT" | "INVALID_INPUT" | "NOT_REFUNDABLE";

/** A refused event. The sandbox reports it as a Cryptlet that threw, keeping `code` in the message. */
export class XChainTransferError extends Error {
  readonly code: XChainTransferErrorCode;
  constructor(code: XChainTransferErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = "XChainTransferError";
    this.code = code;
  }
}

// ---- the three attestations ----

/**
 * Attests one cross-chain event: a MINT for a `Locked` log, a RELEASE for a `Burned` log, a REFUND for a
 * chain-state read of a lock's destination chain.
 *
 * @param input - the run's input: a decoded log ({@link LogInput}) or a refund observation ({@link RefundInput}).
 * @param event - `ctx.event` ({@link TransferEvent}); its `source` decides which output may be produced.
 * @returns the output `{ variant, value }` (see {@link TransferOutput}).
 * @throws {@link XChainTransferError} `UNSUPPORTED_EVENT` for any other source type or event name;
 *   `INVALID_INPUT` naming the first missing, malformed or inconsistent field; `NOT_REFUNDABLE` naming the
 *   condition a refund observation fails.
 */
export function attestTransfer(input: unknown, event: unknown): TransferOutput {
  const ev = objectAt(event, "ctx.event");
  const source = objectAt(ev.source, "ctx.event.source");
  if (source.type === "chain-log") {
    const log = objectAt(input, "input");
    if (log.event === "Locked") return attestMint(log, source);
    if (log.event === "Burned") return attestRelease(log, source);
    throw new XChainTransferError(
      "UNSUPPORTED_EVENT",
      `input.event must be "Locked" or "Burned" for a chain-log source, got ${show(log.event)}`,
    );
  }
  if (source.type === "chain-state") return attestRefund(input, source);
  throw new XChainTransferError(
    "UNSUPPORTED_EVENT",
    `ctx.event.source.type must be "chain-log" (a Locked or Burned log) or "chain-state" (a refund observation), got ${show(source.type)}`,
  );
}

/**
 * MINT from a `Locked` log of a lockbox: the lock's id, the source chain (the log's) and lockbox (the emitter),
 * the destination chain, the peer `token`, recipient, amount and deadline (all from the event's arguments).
 *
 * @param input - the decoded log; `input.event` must be `"Locked"` with {@link LOCKED_SIGNATURE}.
 * @param source - `ctx.event.source`, which must be a {@link ChainLogSource} of that same log.
 * @returns `{ variant: 0, value: MintValue }`.
 * @throws {@link XChainTransferError} `UNSUPPORTED_EVENT` for another source type or event; `INVALID_INPUT` for
 *   a malformed field (non-hex id, bad or zero address, amount 0, ...) or a log that differs from `source`.
 */
export function attestMint(input: unknown, source: unknown): TransferOutput {
  const { log, src } = checkLog(input, source, "Locked", LOCKED_SIGNATURE);
  const args = objectAt(log.args, "input.args");
  return {
    variant: VARIANT_MINT,
    value: {
      kind: KIND_MINT,
      lockId: bytes32(args.lockId, "input.args.lockId"),
      sourceChainId: src.chainId,
      lockbox: src.address,
      destinationChainId: chainId(args.destinationChainId, "input.args.destinationChainId"),
      token: address(args.token, "input.args.token"),
      recipient: address(args.recipient, "input.args.recipient"),
      amount: amount(args.amount, "input.args.amount"),
      deadline: uint64Out(uint(args.deadline, "input.args.deadline", 64)),
    },
  };
}

/**
 * RELEASE from a `Burned` log of a wrapped token: the burn's id, the source chain and lockbox (the event's
 * arguments), the destination chain (the log's) and token (the emitter), recipient and amount.
 *
 * @param input - the decoded log; `input.event` must be `"Burned"` with {@link BURNED_SIGNATURE}.
 * @param source - `ctx.event.source`, which must be a {@link ChainLogSource} of that same log.
 * @returns `{ variant: 1, value: ReleaseValue }`.
 * @throws {@link XChainTransferError} as {@link attestMint}.
 */
export function attestRelease(input: unknown, source: unknown): TransferOutput {
  const { log, src } = checkLog(input, source, "Burned", BURNED_SIGNATURE);
  const args = objectAt(log.args, "input.args");
  return {
    variant: VARIANT_RELEASE,
    value: {
      kind: KIND_RELEASE,
      burnId: bytes32(args.burnId, "input.args.burnId"),
      sourceChainId: chainId(args.sourceChainId, "input.args.sourceChainId"),
      lockbox: address(args.lockbox, "input.args.lockbox"),
      destinationChainId: src.chainId,
      token: src.address,
      recipient: address(args.recipient, "input.args.recipient"),
      amount: amount(args.amount, "input.args.amount"),
    },
  };
}

/**
 * REFUND from the deadline watcher's read of a lock's destination chain: produced only if the read is of the
 * lock's destination chain at exactly the block `source` names (number, hash and timestamp), shows
 * `isMinted(lockId) == false`, and that block's timestamp is after the lock's deadline (after which the wrapped
 * token never mints the lock, so the read is final). `observedAt` is that timestamp.
 *
 * @param input - a {@link RefundInput}; every integer may be a number or a decimal string.
 * @param source - `ctx.event.source`, which must be a {@link ChainStateSource}.
 * @returns `{ variant: 2, value: RefundValue }`.
 * @throws {@link XChainTransferError} `UNSUPPORTED_EVENT` for another source type; `INVALID_INPUT` for a malformed
 *   field or an observation of another chain or block than `source`'s or the lock's destination;
 *   `NOT_REFUNDABLE` when the observation says the lock was minted or was made at or before the deadline.
 */
export function attestRefund(input: unknown, source: unknown): TransferOutput {
  const srcObject = objectAt(source, "ctx.event.source");
  if (srcObject.type !== "chain-state") {
    throw new XChainTransferError(
      "UNSUPPORTED_EVENT",
      `a REFUND needs a "chain-state" source (a read of the destination chain), got ctx.event.source.type ${show(srcObject.type)}`,
    );
  }
  const src = {
    chainId: chainId(srcObject.chainId, "ctx.event.source.chainId"),
    blockNumber: uint(srcObject.blockNumber, "ctx.event.source.blockNumber", 64),
    blockHash: bytes32(srcObject.blockHash, "ctx.event.source.blockHash"),
    timestamp: uint(srcObject.timestamp, "ctx.event.source.timestamp", 64),
  };
  const refund = objectAt(input, "input");
  if (refund.kind !== "refund") {
    throw new XChainTransferError(
      "INVALID_INPUT",
      `input.kind must be "refund" for a chain-state source, got ${show(refund.kind)}`,
    );
  }
  const lockIn = objectAt(refund.lock, "input.lock");
  const lock = {
    lockId: bytes32(lockIn.lockId, "input.lock.lockId"),
    sourceChainId: chainId(lockIn.sourceChainId, "input.lock.sourceChainId"),
    lockbox: address(lockIn.lockbox, "input.lock.lockbox"),
    destinationChainId: chainId(lockIn.destinationChainId, "input.lock.destinationChainId"),
    token: address(lockIn.token, "input.lock.token"),
    sender: address(lockIn.sender, "input.lock.sender"),
    amount: amount(lockIn.amount, "input.lock.amount"),
    deadline: uint(lockIn.deadline, "input.lock.deadline", 64),
  };
  const obsIn = objectAt(refund.observation, "input.observation");
  const obs = {
    chainId: chainId(obsIn.chainId, "input.observation.chainId"),
    blockNumber: uint(obsIn.blockNumber, "input.observation.blockNumber", 64),
    blockHash: bytes32(obsIn.blockHash, "input.observation.blockHash"),
    timestamp: uint(obsIn.timestamp, "input.observation.timestamp", 64),
    isMinted: obsIn.isMinted,
  };
  if (typeof obs.isMinted !== "boolean") {
    throw new XChainTransferError(
      "INVALID_INPUT",
      `input.observation.isMinted must be true or false, got ${show(obs.isMinted)}`,
    );
  }

  // The read is the one the source names: the chain and the block (number, hash, time) the runtime read.
  if (obs.chainId !== src.chainId) {
    throw mismatch("input.observation.chainId", obs.chainId, "ctx.event.source.chainId", src.chainId);
  }
  if (obs.blockNumber !== src.blockNumber) {
    throw mismatch("input.observation.blockNumber", obs.blockNumber, "ctx.event.source.blockNumber", src.blockNumber);
  }
  if (obs.blockHash !== src.blockHash) {
    throw mismatch("input.observation.blockHash", obs.blockHash, "ctx.event.source.blockHash", src.blockHash);
  }
  if (obs.timestamp !== src.timestamp) {
    throw mismatch("input.observation.timestamp", obs.timestamp, "ctx.event.source.timestamp", src.timestamp);
  }
  // ... of the lock's destination chain ...
  if (obs.chainId !== lock.destinationChainId) {
    throw mismatch(
      "input.observation.chainId",
      obs.chainId,
      "input.lock.destinationChainId",
      lock.destinationChainId,
      " (the read is not of the lock's destination chain)",
    );
  }
  // ... shows no mint ...
  if (obs.isMinted) {
    throw new XChainTransferError(
      "NOT_REFUNDABLE",
      `input.observation.isMinted is true: lock ${lock.lockId} was minted on chain ${obs.chainId} by block ${obs.blockNumber}, so it is not refundable`,
    );
  }
  // ... at a block after the deadline, after which no mint can happen.
  if (obs.timestamp <= lock.deadline) {
    throw new XChainTransferError(
      "NOT_REFUNDABLE",
      `input.observation.timestamp ${obs.timestamp} is not after input.lock.deadline ${lock.deadline}: lock ${lock.lockId} may still be minted`,
    );
  }
  return {
    variant: VARIANT_REFUND,
    value: {
      kind: KIND_REFUND,
      lockId: lock.lockId,
      sourceChainId: lock.sourceChainId,
      lockbox: lock.lockbox,
      destinationChainId: lock.destinationChainId,
      token: lock.token,
      sender: lock.sender,
      amount: lock.amount,
      deadline: uint64Out(lock.deadline),
      observedAt: uint64Out(obs.timestamp),
    },
  };
}

// ---- the chain-log checks shared by MINT and RELEASE ----

/**
 * Checks that `source` is a chain-log source, `input` the decoded log `name` with `signature`, and that the log's
 * own position (emitter, block, transaction, index) is the source's.
 */
function checkLog(
  input: unknown,
  source: unknown,
  name: "Locked" | "Burned",
  signature: string,
): { log: Record<string, unknown>; src: { chainId: string; address: string } } {
  const output = name === "Locked" ? "MINT" : "RELEASE";
  const srcObject = objectAt(source, "ctx.event.source");
  if (srcObject.type !== "chain-log") {
    throw new XChainTransferError(
      "UNSUPPORTED_EVENT",
      `a ${output} needs a "chain-log" source (a ${name} log), got ctx.event.source.type ${show(srcObject.type)}`,
    );
  }
  const log = objectAt(input, "input");
  if (log.event !== name) {
    throw new XChainTransferError("UNSUPPORTED_EVENT", `input.event must be "${name}", got ${show(log.event)}`);
  }
  if (log.signature !== signature) {
    throw new XChainTransferError(
      "INVALID_INPUT",
      `input.signature must be "${signature}", got ${show(log.signature)}`,
    );
  }
  const src = {
    chainId: chainId(srcObject.chainId, "ctx.event.source.chainId"),
    address: address(srcObject.address, "ctx.event.source.address"),
    blockNumber: uint(srcObject.blockNumber, "ctx.event.source.blockNumber", 64),
    blockHash: bytes32(srcObject.blockHash, "ctx.event.source.blockHash"),
    txHash: bytes32(srcObject.txHash, "ctx.event.source.txHash"),
    logIndex: uint(srcObject.logIndex, "ctx.event.source.logIndex", 64),
  };
  const at = {
    address: address(log.address, "input.address"),
    blockNumber: uint(log.blockNumber, "input.blockNumber", 64),
    blockHash: bytes32(log.blockHash, "input.blockHash"),
    txHash: bytes32(log.txHash, "input.txHash"),
    logIndex: uint(log.logIndex, "input.logIndex", 64),
  };
  for (const key of ["address", "blockNumber", "blockHash", "txHash", "logIndex"] as const) {
    if (at[key] !== src[key]) throw mismatch(`input.${key}`, at[key], `ctx.event.source.${key}`, src[key]);
  }
  return { log, src };
}

// ---- field parsers ----

const UINT256_MAX = (1n << 256n) - 1n;
const DECIMAL = /^(0|[1-9][0-9]*)$/;
const HEX32 = /^0x[0-9a-fA-F]{64}$/;
const HEX20 = /^0x[0-9a-fA-F]{40}$/;

/** A short, bounded rendering of a value for an error message. */
function show(value: unknown): string {
  if (value === undefined) return "undefined (missing)";
  let text: string;
  try {
    text = typeof value === "bigint" ? `${value}` : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return text.length > 100 ? `${text.slice(0, 97)}...` : text;
}

function mismatch(field: string, value: unknown, other: string, expected: unknown, why = ""): XChainTransferError {
  return new XChainTransferError(
    "INVALID_INPUT",
    `${field} ${show(value)} differs from ${other} ${show(expected)}${why}`,
  );
}

/** `value` as a plain object (not null, not an array), else INVALID_INPUT naming `field`. */
function objectAt(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new XChainTransferError("INVALID_INPUT", `${field} must be an object, got ${show(value)}`);
  }
  return value as Record<string, unknown>;
}

/**
 * An unsigned integer of at most `bits` bits: a safe-integer number ≥ 0 or a decimal string without sign, exponent
 * or leading zeros.
 * @throws {@link XChainTransferError} `INVALID_INPUT` naming `field` otherwise.
 */
function uint(value: unknown, field: string, bits: 64 | 256): bigint {
  let n: bigint;
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new XChainTransferError(
        "INVALID_INPUT",
        `${field} must be a non-negative integer (a safe-integer number or a decimal string), got ${show(value)}`,
      );
    }
    n = BigInt(value);
  } else if (typeof value === "string" && value.length <= 78 && DECIMAL.test(value)) {
    n = BigInt(value);
  } else {
    throw new XChainTransferError(
      "INVALID_INPUT",
      `${field} must be a non-negative integer (a decimal string or a safe-integer number), got ${show(value)}`,
    );
  }
  const max = bits === 256 ? UINT256_MAX : (1n << 64n) - 1n;
  if (n > max) throw new XChainTransferError("INVALID_INPUT", `${field} ${n} does not fit in uint${bits}`);
  return n;
}

/** A token amount: a uint256 greater than zero, as a decimal string. */
function amount(value: unknown, field: string): string {
  const n = uint(value, field, 256);
  if (n === 0n) throw new XChainTransferError("INVALID_INPUT", `${field} must be greater than 0`);
  return n.toString(10);
}

/** A chain id: a uint256 greater than zero, as a decimal string. */
function chainId(value: unknown, field: string): string {
  const n = uint(value, field, 256);
  if (n === 0n) throw new XChainTransferError("INVALID_INPUT", `${field} must be a chain id greater than 0`);
  return n.toString(10);
}

/** A uint64 for the output: a number when exact, else a decimal string. */
function uint64Out(n: bigint): Uint64Output {
  return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString(10);
}

/** A bytes32: `0x` and 64 hex digits, returned in lower case. */
function bytes32(value: unknown, field: string): string {
  if (typeof value !== "string" || !HEX32.test(value)) {
    throw new XChainTransferError("INVALID_INPUT", `${field} must be 0x and 64 hex digits, got ${show(value)}`);
  }
  return value.toLowerCase();
}

/** An address: `0x` and 40 hex digits in any case (no EIP-55 check), not the zero address. Returned lower case. */
function address(value: unknown, field: string): string {
  if (typeof value !== "string" || !HEX20.test(value)) {
    throw new XChainTransferError(
      "INVALID_INPUT",
      `${field} must be an address (0x and 40 hex digits), got ${show(value)}`,
    );
  }
  if (/^0x0{40}$/.test(value)) throw new XChainTransferError("INVALID_INPUT", `${field} must not be the zero address`);
  return value.toLowerCase();
}
