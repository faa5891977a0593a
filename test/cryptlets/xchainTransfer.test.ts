/**
 * `@cryptlet/xchain-transfer` (cryptlets/xchain-transfer): unit tests of `src/transfer.ts` for the three outputs
 * (MINT from a `Locked` log, RELEASE from a `Burned` log, REFUND from a chain-state read) and every refusal, and an
 * independent check against the contracts: on one Hardhat chain (test/support/crosschain.ts) real `Locked` and
 * `Burned` logs, read with `eth_getLogs` and decoded with the runtime's `decodeLog` and the compiled ABI's event
 * fragments, and a real `isMinted` read after a deadline go through the Cryptlet; its outputs, ABI-encoded with the
 * manifest's own `abiOneOf` tuples and signed as the runtime would, are accepted by `mint`, `release` and `refund`.
 * That proves the manifest's tuples are what the contracts decode.
 */
import { readFileSync } from "node:fs";
import path from "node:path";

import { AbiCoder, ParamType, getAddress, id, toQuantity, type Signer, type TransactionReceipt } from "ethers";

import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import { decodeLog, type RpcLog } from "../../runtime/triggers/decodeLog.ts";
import cryptlet from "../../cryptlets/xchain-transfer/src/index.ts";
import {
  BURNED_SIGNATURE,
  LOCKED_SIGNATURE,
  XChainTransferError,
  attestMint,
  attestRefund,
  attestRelease,
  attestTransfer,
  type TransferOutput,
} from "../../cryptlets/xchain-transfer/src/transfer.ts";
import type { AnyContract } from "../support/contracts.ts";
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
} from "../support/crosschain.ts";

const DIR = path.resolve(import.meta.dirname, "..", "..", "cryptlets", "xchain-transfer");
const manifest = JSON.parse(readFileSync(path.join(DIR, "cryptlet.json"), "utf8")) as {
  limits: { maxOutputBytes: number };
  output: { abiOneOf: string[] };
};
const abi = AbiCoder.defaultAbiCoder();

/** The payload the runtime writes for `output`: `value` ABI-encoded as the manifest's `abiOneOf[variant]`. */
const encode = (output: TransferOutput) => abi.encode([manifest.output.abiOneOf[output.variant]!], [output.value]);

// ---- fixtures (checksummed addresses, lower-case ids, as decodeLog gives them; addresses come out lower case) ----

const LOCKBOX = getAddress("0x5fbdb2315678afecb367f032d93f642f64180aa3");
const TOKEN = getAddress("0xe7f1725e7734ce288f8367e1bb143e90bb3f0512");
const ALICE = getAddress("0x70997970c51812dc3a010c7d01b50e0d17dc79c8");
const BOB = getAddress("0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc");
const LOCK_ID = id("lock-0");
const BURN_ID = id("burn-0");
const BLOCK_HASH = id("block-42");
const TX_HASH = id("tx-42");
const SOURCE_CHAIN = 11155111;
const DEST_CHAIN = 84532;
const DEADLINE = 1_704_416_400;

const chainLogSource = (over: Record<string, unknown> = {}) => ({
  type: "chain-log",
  chainId: SOURCE_CHAIN,
  address: LOCKBOX,
  blockNumber: 42,
  blockHash: BLOCK_HASH,
  txHash: TX_HASH,
  logIndex: 3,
  ...over,
});

const eventOn = (source: Record<string, unknown>) => ({
  eventId: id("event"),
  requestId: id("event"),
  source,
  time: DEADLINE - 3_000,
});

const lockedLog = (args: Record<string, unknown> = {}, over: Record<string, unknown> = {}) => ({
  event: "Locked",
  signature: LOCKED_SIGNATURE,
  args: {
    lockId: LOCK_ID,
    sender: ALICE,
    recipient: BOB,
    amount: "300",
    destinationChainId: String(DEST_CHAIN),
    deadline: String(DEADLINE),
    token: TOKEN,
    ...args,
  },
  address: LOCKBOX,
  topics: [],
  data: "0x",
  blockNumber: 42,
  blockHash: BLOCK_HASH,
  txHash: TX_HASH,
  logIndex: 3,
  timestamp: DEADLINE - 3_000,
  ...over,
});

/** A `Burned` log of the wrapped token `TOKEN` on the destination chain. */
const burnedSource = (over: Record<string, unknown> = {}) =>
  chainLogSource({ chainId: DEST_CHAIN, address: TOKEN, ...over });
const burnedLog = (args: Record<string, unknown> = {}, over: Record<string, unknown> = {}) => ({
  event: "Burned",
  signature: BURNED_SIGNATURE,
  args: {
    burnId: BURN_ID,
    burner: BOB,
    recipient: ALICE,
    amount: "120",
    sourceChainId: String(SOURCE_CHAIN),
    lockbox: LOCKBOX,
    ...args,
  },
  address: TOKEN,
  topics: [],
  data: "0x",
  blockNumber: 42,
  blockHash: BLOCK_HASH,
  txHash: TX_HASH,
  logIndex: 3,
  timestamp: DEADLINE - 2_000,
  ...over,
});

const OBSERVED_AT = DEADLINE + 12;
const OBSERVED_HASH = id("block-900");
const chainStateSource = (over: Record<string, unknown> = {}) => ({
  type: "chain-state",
  chainId: DEST_CHAIN,
  blockNumber: 900,
  blockHash: OBSERVED_HASH,
  timestamp: OBSERVED_AT,
  ...over,
});
const refundInput = (lock: Record<string, unknown> = {}, observation: Record<string, unknown> = {}) => ({
  kind: "refund",
  lock: {
    lockId: LOCK_ID,
    sourceChainId: String(SOURCE_CHAIN),
    lockbox: LOCKBOX,
    destinationChainId: String(DEST_CHAIN),
    token: TOKEN,
    sender: ALICE,
    amount: "300",
    deadline: DEADLINE,
    ...lock,
  },
  observation: {
    chainId: DEST_CHAIN,
    blockNumber: 900,
    blockHash: OBSERVED_HASH,
    timestamp: OBSERVED_AT,
    isMinted: false,
    ...observation,
  },
});

const UINT256_MAX = ((1n << 256n) - 1n).toString();
const UINT64_MAX = ((1n << 64n) - 1n).toString();

/** Expects `action` to throw an {@link XChainTransferError} with `code` whose message matches `message`. */
function expectRefused(action: () => unknown, code: XChainTransferError["code"], message: RegExp): void {
  let caught: unknown;
  try {
    action();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(XChainTransferError);
  expect((caught as XChainTransferError).code).toBe(code);
  expect((caught as XChainTransferError).message).toMatch(message);
}

// ---- unit tests ----

describe("xchain-transfer: MINT from a Locked log", () => {
  test("a Locked log gives the MINT output: route from the log, the rest from the event's arguments", () => {
    expect(attestTransfer(lockedLog(), eventOn(chainLogSource()))).toEqual({
      variant: 0,
      value: {
        kind: 1,
        lockId: LOCK_ID,
        sourceChainId: String(SOURCE_CHAIN),
        lockbox: LOCKBOX.toLowerCase(),
        destinationChainId: String(DEST_CHAIN),
        token: TOKEN.toLowerCase(),
        recipient: BOB.toLowerCase(),
        amount: "300",
        deadline: DEADLINE,
      },
    });
  });

  test("addresses in any case (no checksum check) and ids come out lower case; integers may be numbers; a uint64 above 2^53 stays exact", () => {
    const output = attestTransfer(
      lockedLog(
        {
          lockId: LOCK_ID.toUpperCase().replace("0X", "0x"),
          recipient: BOB.toUpperCase().replace("0X", "0x"),
          token: TOKEN.replace("e7f", "E7f"), // mixed case that is not the EIP-55 checksum: accepted
          amount: 300,
          deadline: UINT64_MAX,
        },
        { address: LOCKBOX.toLowerCase() },
      ),
      eventOn(chainLogSource({ address: LOCKBOX.toLowerCase(), chainId: String(SOURCE_CHAIN) })),
    );
    expect(output.value).toMatchObject({
      lockId: LOCK_ID,
      recipient: BOB.toLowerCase(),
      token: TOKEN.toLowerCase(),
      lockbox: LOCKBOX.toLowerCase(),
      amount: "300",
      deadline: UINT64_MAX,
    });
    // The largest amount and deadline still encode as the manifest's MINT tuple.
    const largest = attestTransfer(lockedLog({ amount: UINT256_MAX, deadline: UINT64_MAX }), eventOn(chainLogSource()));
    expect(abi.decode([manifest.output.abiOneOf[0]!], encode(largest))[0].deadline).toBe(BigInt(UINT64_MAX));
  });

  test.each([
    [
      "an HTTP source",
      () => attestTransfer(lockedLog(), eventOn({ type: "http", idempotencyKey: "k" })),
      "UNSUPPORTED_EVENT",
      /ctx\.event\.source\.type must be "chain-log".*got "http"/,
    ],
    [
      "a schedule source",
      () => attestTransfer(lockedLog(), eventOn({ type: "schedule", slotTime: 1 })),
      "UNSUPPORTED_EVENT",
      /ctx\.event\.source\.type .*got "schedule"/,
    ],
    [
      "an oracle source",
      () => attestTransfer(lockedLog(), eventOn({ type: "oracle" })),
      "UNSUPPORTED_EVENT",
      /ctx\.event\.source\.type .*got "oracle"/,
    ],
    [
      "a chain-state source",
      () => attestTransfer(lockedLog(), eventOn(chainStateSource())),
      "INVALID_INPUT",
      /input\.kind must be "refund"/,
    ],
    [
      "attestMint on a chain-state source",
      () => attestMint(lockedLog(), chainStateSource()),
      "UNSUPPORTED_EVENT",
      /a MINT needs a "chain-log" source/,
    ],
    [
      "no source",
      () => attestTransfer(lockedLog(), { eventId: id("e") }),
      "INVALID_INPUT",
      /ctx\.event\.source must be an object/,
    ],
    ["no event", () => attestTransfer(lockedLog(), null), "INVALID_INPUT", /ctx\.event must be an object/],
    [
      "another event name",
      () => attestTransfer(lockedLog({}, { event: "Transfer" }), eventOn(chainLogSource())),
      "UNSUPPORTED_EVENT",
      /input\.event must be "Locked" or "Burned".*"Transfer"/,
    ],
    [
      "the event without `token` (old signature)",
      () =>
        attestTransfer(
          lockedLog({}, { signature: "Locked(bytes32,address,address,uint256,uint256,uint64)" }),
          eventOn(chainLogSource()),
        ),
      "INVALID_INPUT",
      /input\.signature must be "Locked\(bytes32,address,address,uint256,uint256,uint64,address\)"/,
    ],
    [
      "an input that is not an object",
      () => attestTransfer("Locked", eventOn(chainLogSource())),
      "INVALID_INPUT",
      /^INVALID_INPUT: input must be an object/,
    ],
    [
      "no args",
      () => attestTransfer(lockedLog({}, { args: undefined }), eventOn(chainLogSource())),
      "INVALID_INPUT",
      /input\.args must be an object/,
    ],
    [
      "a non-hex lockId",
      () => attestTransfer(lockedLog({ lockId: "lock-0" }), eventOn(chainLogSource())),
      "INVALID_INPUT",
      /input\.args\.lockId must be 0x and 64 hex digits/,
    ],
    [
      "a short lockId",
      () => attestTransfer(lockedLog({ lockId: LOCK_ID.slice(0, 64) }), eventOn(chainLogSource())),
      "INVALID_INPUT",
      /input\.args\.lockId must be 0x and 64 hex digits/,
    ],
    [
      "a bad recipient",
      () => attestTransfer(lockedLog({ recipient: "0x1234" }), eventOn(chainLogSource())),
      "INVALID_INPUT",
      /input\.args\.recipient must be an address/,
    ],
    [
      "the zero recipient",
      () => attestTransfer(lockedLog({ recipient: `0x${"0".repeat(40)}` }), eventOn(chainLogSource())),
      "INVALID_INPUT",
      /input\.args\.recipient must not be the zero address/,
    ],
    [
      "no token",
      () => attestTransfer(lockedLog({ token: undefined }), eventOn(chainLogSource())),
      "INVALID_INPUT",
      /input\.args\.token must be an address .*missing/,
    ],
    [
      "amount 0",
      () => attestTransfer(lockedLog({ amount: "0" }), eventOn(chainLogSource())),
      "INVALID_INPUT",
      /input\.args\.amount must be greater than 0/,
    ],
    [
      "a negative amount",
      () => attestTransfer(lockedLog({ amount: "-5" }), eventOn(chainLogSource())),
      "INVALID_INPUT",
      /input\.args\.amount must be a non-negative integer/,
    ],
    [
      "a negative number amount",
      () => attestTransfer(lockedLog({ amount: -5 }), eventOn(chainLogSource())),
      "INVALID_INPUT",
      /input\.args\.amount must be a non-negative integer/,
    ],
    [
      "a fractional amount",
      () => attestTransfer(lockedLog({ amount: "1.5" }), eventOn(chainLogSource())),
      "INVALID_INPUT",
      /input\.args\.amount must be a non-negative integer/,
    ],
    [
      "a fractional number amount",
      () => attestTransfer(lockedLog({ amount: 1.5 }), eventOn(chainLogSource())),
      "INVALID_INPUT",
      /input\.args\.amount must be a non-negative integer/,
    ],
    [
      "an amount beyond 2^53 as a number",
      () => attestTransfer(lockedLog({ amount: 2 ** 60 }), eventOn(chainLogSource())),
      "INVALID_INPUT",
      /input\.args\.amount must be a non-negative integer/,
    ],
    [
      "an amount in exponent form",
      () => attestTransfer(lockedLog({ amount: "1e3" }), eventOn(chainLogSource())),
      "INVALID_INPUT",
      /input\.args\.amount must be a non-negative integer/,
    ],
    [
      "a hex amount",
      () => attestTransfer(lockedLog({ amount: "0x10" }), eventOn(chainLogSource())),
      "INVALID_INPUT",
      /input\.args\.amount must be a non-negative integer/,
    ],
    [
      "an amount with a leading zero",
      () => attestTransfer(lockedLog({ amount: "0300" }), eventOn(chainLogSource())),
      "INVALID_INPUT",
      /input\.args\.amount must be a non-negative integer/,
    ],
    [
      "an amount beyond uint256",
      () => attestTransfer(lockedLog({ amount: (1n << 256n).toString() }), eventOn(chainLogSource())),
      "INVALID_INPUT",
      /input\.args\.amount \d+ does not fit in uint256/,
    ],
    [
      "a deadline beyond uint64",
      () => attestTransfer(lockedLog({ deadline: (1n << 64n).toString() }), eventOn(chainLogSource())),
      "INVALID_INPUT",
      /input\.args\.deadline \d+ does not fit in uint64/,
    ],
    [
      "destination chain 0",
      () => attestTransfer(lockedLog({ destinationChainId: "0" }), eventOn(chainLogSource())),
      "INVALID_INPUT",
      /input\.args\.destinationChainId must be a chain id greater than 0/,
    ],
    [
      "source chain 0",
      () => attestTransfer(lockedLog(), eventOn(chainLogSource({ chainId: 0 }))),
      "INVALID_INPUT",
      /ctx\.event\.source\.chainId must be a chain id greater than 0/,
    ],
    [
      "a log of another contract than the source's",
      () => attestTransfer(lockedLog({}, { address: TOKEN }), eventOn(chainLogSource())),
      "INVALID_INPUT",
      /input\.address "0xe7f1.*" differs from ctx\.event\.source\.address "0x5Fb/i,
    ],
    [
      "a log of another block than the source's",
      () => attestTransfer(lockedLog({}, { blockHash: id("other") }), eventOn(chainLogSource())),
      "INVALID_INPUT",
      /input\.blockHash .* differs from ctx\.event\.source\.blockHash/,
    ],
    [
      "a log at another index than the source's",
      () => attestTransfer(lockedLog({}, { logIndex: 4 }), eventOn(chainLogSource())),
      "INVALID_INPUT",
      /input\.logIndex 4 differs from ctx\.event\.source\.logIndex 3/,
    ],
    [
      "a source without a transaction hash",
      () => attestTransfer(lockedLog(), eventOn(chainLogSource({ txHash: undefined }))),
      "INVALID_INPUT",
      /ctx\.event\.source\.txHash must be 0x and 64 hex digits/,
    ],
  ] as const)("refuses %s", (_name, action, code, message) => expectRefused(action, code, message));
});

describe("xchain-transfer: RELEASE from a Burned log", () => {
  test("a Burned log gives the RELEASE output: source chain and lockbox from the event, the rest from the log", () => {
    expect(attestTransfer(burnedLog(), eventOn(burnedSource()))).toEqual({
      variant: 1,
      value: {
        kind: 2,
        burnId: BURN_ID,
        sourceChainId: String(SOURCE_CHAIN),
        lockbox: LOCKBOX.toLowerCase(),
        destinationChainId: String(DEST_CHAIN),
        token: TOKEN.toLowerCase(),
        recipient: ALICE.toLowerCase(),
        amount: "120",
      },
    });
  });

  test.each([
    [
      "an HTTP source",
      () => attestTransfer(burnedLog(), eventOn({ type: "http" })),
      "UNSUPPORTED_EVENT",
      /ctx\.event\.source\.type .*got "http"/,
    ],
    [
      "a chain-state source",
      () => attestTransfer(burnedLog(), eventOn(chainStateSource())),
      "INVALID_INPUT",
      /input\.kind must be "refund"/,
    ],
    [
      "attestRelease on a chain-state source",
      () => attestRelease(burnedLog(), chainStateSource()),
      "UNSUPPORTED_EVENT",
      /a RELEASE needs a "chain-log" source/,
    ],
    [
      "attestRelease of a Locked log",
      () => attestRelease(lockedLog(), chainLogSource()),
      "UNSUPPORTED_EVENT",
      /input\.event must be "Burned", got "Locked"/,
    ],
    [
      "another signature",
      () =>
        attestTransfer(
          burnedLog({}, { signature: "Burned(bytes32,address,address,uint256)" }),
          eventOn(burnedSource()),
        ),
      "INVALID_INPUT",
      /input\.signature must be "Burned\(bytes32,address,address,uint256,uint256,address\)"/,
    ],
    [
      "a non-hex burnId",
      () => attestTransfer(burnedLog({ burnId: `0x${"g".repeat(64)}` }), eventOn(burnedSource())),
      "INVALID_INPUT",
      /input\.args\.burnId must be 0x and 64 hex digits/,
    ],
    [
      "a bad lockbox",
      () => attestTransfer(burnedLog({ lockbox: 42 }), eventOn(burnedSource())),
      "INVALID_INPUT",
      /input\.args\.lockbox must be an address/,
    ],
    [
      "a bad recipient",
      () => attestTransfer(burnedLog({ recipient: `${ALICE}00` }), eventOn(burnedSource())),
      "INVALID_INPUT",
      /input\.args\.recipient must be an address/,
    ],
    [
      "source chain 0",
      () => attestTransfer(burnedLog({ sourceChainId: "0" }), eventOn(burnedSource())),
      "INVALID_INPUT",
      /input\.args\.sourceChainId must be a chain id greater than 0/,
    ],
    [
      "amount 0",
      () => attestTransfer(burnedLog({ amount: "0" }), eventOn(burnedSource())),
      "INVALID_INPUT",
      /input\.args\.amount must be greater than 0/,
    ],
    [
      "a missing amount",
      () => attestTransfer(burnedLog({ amount: undefined }), eventOn(burnedSource())),
      "INVALID_INPUT",
      /input\.args\.amount must be a non-negative integer .*missing/,
    ],
    [
      "a log of another token than the source's",
      () => attestTransfer(burnedLog({}, { address: LOCKBOX }), eventOn(burnedSource())),
      "INVALID_INPUT",
      /input\.address .* differs from ctx\.event\.source\.address/,
    ],
  ] as const)("refuses %s", (_name, action, code, message) => expectRefused(action, code, message));
});

describe("xchain-transfer: REFUND from a chain-state read", () => {
  test("an unminted lock read after its deadline gives the REFUND output, observedAt the read block's time", () => {
    expect(attestTransfer(refundInput(), eventOn(chainStateSource()))).toEqual({
      variant: 2,
      value: {
        kind: 3,
        lockId: LOCK_ID,
        sourceChainId: String(SOURCE_CHAIN),
        lockbox: LOCKBOX.toLowerCase(),
        destinationChainId: String(DEST_CHAIN),
        token: TOKEN.toLowerCase(),
        sender: ALICE.toLowerCase(),
        amount: "300",
        deadline: DEADLINE,
        observedAt: OBSERVED_AT,
      },
    });
  });

  test("every integer may be a decimal string; one second after the deadline is enough", () => {
    const output = attestTransfer(
      refundInput(
        { deadline: String(DEADLINE), amount: "300" },
        { chainId: String(DEST_CHAIN), blockNumber: "900", timestamp: String(DEADLINE + 1) },
      ),
      eventOn(chainStateSource({ chainId: String(DEST_CHAIN), blockNumber: "900", timestamp: String(DEADLINE + 1) })),
    );
    expect(output.value).toMatchObject({ deadline: DEADLINE, observedAt: DEADLINE + 1 });
  });

  test.each([
    [
      "a lock that was minted",
      () => attestTransfer(refundInput({}, { isMinted: true }), eventOn(chainStateSource())),
      "NOT_REFUNDABLE",
      /input\.observation\.isMinted is true: lock 0x[0-9a-f]{64} was minted/,
    ],
    [
      "a read at the deadline",
      () =>
        attestTransfer(refundInput({}, { timestamp: DEADLINE }), eventOn(chainStateSource({ timestamp: DEADLINE }))),
      "NOT_REFUNDABLE",
      new RegExp(
        `input\\.observation\\.timestamp ${DEADLINE} is not after input\\.lock\\.deadline ${DEADLINE}: .* may still be minted`,
      ),
    ],
    [
      "a read before the deadline",
      () =>
        attestTransfer(
          refundInput({}, { timestamp: DEADLINE - 60 }),
          eventOn(chainStateSource({ timestamp: DEADLINE - 60 })),
        ),
      "NOT_REFUNDABLE",
      /input\.observation\.timestamp \d+ is not after input\.lock\.deadline/,
    ],
    [
      "a read of another chain than the lock's destination",
      () => attestTransfer(refundInput({ destinationChainId: "10" }), eventOn(chainStateSource())),
      "INVALID_INPUT",
      /input\.observation\.chainId "84532" differs from input\.lock\.destinationChainId "10" \(the read is not of the lock's destination chain\)/,
    ],
    [
      "an observation of another chain than the source's",
      () => attestTransfer(refundInput({}, { chainId: 10 }), eventOn(chainStateSource())),
      "INVALID_INPUT",
      /input\.observation\.chainId "10" differs from ctx\.event\.source\.chainId "84532"/,
    ],
    [
      "an observation of another block number",
      () => attestTransfer(refundInput({}, { blockNumber: 901 }), eventOn(chainStateSource())),
      "INVALID_INPUT",
      /input\.observation\.blockNumber 901 differs from ctx\.event\.source\.blockNumber 900/,
    ],
    [
      "an observation of another block hash",
      () => attestTransfer(refundInput({}, { blockHash: id("fork") }), eventOn(chainStateSource())),
      "INVALID_INPUT",
      /input\.observation\.blockHash .* differs from ctx\.event\.source\.blockHash/,
    ],
    [
      "an observation with another time than the block's",
      () => attestTransfer(refundInput({}, { timestamp: OBSERVED_AT + 1 }), eventOn(chainStateSource())),
      "INVALID_INPUT",
      /input\.observation\.timestamp \d+ differs from ctx\.event\.source\.timestamp/,
    ],
    [
      "isMinted missing",
      () => attestTransfer(refundInput({}, { isMinted: undefined }), eventOn(chainStateSource())),
      "INVALID_INPUT",
      /input\.observation\.isMinted must be true or false/,
    ],
    [
      "isMinted as a string",
      () => attestTransfer(refundInput({}, { isMinted: "false" }), eventOn(chainStateSource())),
      "INVALID_INPUT",
      /input\.observation\.isMinted must be true or false, got "false"/,
    ],
    [
      "a chain-log source",
      () => attestTransfer(refundInput(), eventOn(chainLogSource())),
      "UNSUPPORTED_EVENT",
      /input\.event must be "Locked" or "Burned" for a chain-log source, got undefined/,
    ],
    [
      "attestRefund on a chain-log source",
      () => attestRefund(refundInput(), chainLogSource()),
      "UNSUPPORTED_EVENT",
      /a REFUND needs a "chain-state" source/,
    ],
    [
      "an HTTP source",
      () => attestTransfer(refundInput(), eventOn({ type: "http", idempotencyKey: "k" })),
      "UNSUPPORTED_EVENT",
      /ctx\.event\.source\.type .*got "http"/,
    ],
    [
      "a schedule source",
      () => attestTransfer(refundInput(), eventOn({ type: "schedule", slotTime: 0 })),
      "UNSUPPORTED_EVENT",
      /ctx\.event\.source\.type .*got "schedule"/,
    ],
    [
      "another input kind",
      () => attestTransfer({ ...refundInput(), kind: "mint" }, eventOn(chainStateSource())),
      "INVALID_INPUT",
      /input\.kind must be "refund" for a chain-state source, got "mint"/,
    ],
    [
      "no lock",
      () => attestTransfer({ ...refundInput(), lock: undefined }, eventOn(chainStateSource())),
      "INVALID_INPUT",
      /input\.lock must be an object/,
    ],
    [
      "no observation",
      () => attestTransfer({ ...refundInput(), observation: [] }, eventOn(chainStateSource())),
      "INVALID_INPUT",
      /input\.observation must be an object/,
    ],
    [
      "a non-hex lockId",
      () => attestTransfer(refundInput({ lockId: "0x1234" }), eventOn(chainStateSource())),
      "INVALID_INPUT",
      /input\.lock\.lockId must be 0x and 64 hex digits/,
    ],
    [
      "a bad sender",
      () => attestTransfer(refundInput({ sender: "alice" }), eventOn(chainStateSource())),
      "INVALID_INPUT",
      /input\.lock\.sender must be an address/,
    ],
    [
      "a zero lockbox",
      () => attestTransfer(refundInput({ lockbox: `0x${"0".repeat(40)}` }), eventOn(chainStateSource())),
      "INVALID_INPUT",
      /input\.lock\.lockbox must not be the zero address/,
    ],
    [
      "amount 0",
      () => attestTransfer(refundInput({ amount: 0 }), eventOn(chainStateSource())),
      "INVALID_INPUT",
      /input\.lock\.amount must be greater than 0/,
    ],
    [
      "a non-integer deadline",
      () => attestTransfer(refundInput({ deadline: DEADLINE + 0.5 }), eventOn(chainStateSource())),
      "INVALID_INPUT",
      /input\.lock\.deadline must be a non-negative integer/,
    ],
    [
      "a negative block number",
      () => attestTransfer(refundInput({}, { blockNumber: -1 }), eventOn(chainStateSource())),
      "INVALID_INPUT",
      /input\.observation\.blockNumber must be a non-negative integer/,
    ],
    [
      "a source without a block hash",
      () => attestTransfer(refundInput(), eventOn(chainStateSource({ blockHash: undefined }))),
      "INVALID_INPUT",
      /ctx\.event\.source\.blockHash must be 0x and 64 hex digits/,
    ],
  ] as const)("refuses %s", (_name, action, code, message) => expectRefused(action, code, message));
});

describe("xchain-transfer: outputs, sources and the module", () => {
  test("only a chain-log source gives a MINT or RELEASE, only a chain-state source a REFUND", () => {
    const sources = {
      "chain-log (lockbox)": chainLogSource(),
      "chain-log (token)": burnedSource(),
      "chain-state": chainStateSource(),
      http: { type: "http", idempotencyKey: "k" },
      schedule: { type: "schedule", slotTime: 0 },
      oracle: { type: "oracle", chainId: SOURCE_CHAIN },
      none: { chainId: SOURCE_CHAIN },
    };
    const inputs = { locked: lockedLog(), burned: burnedLog(), refund: refundInput() };
    const produced: string[] = [];
    for (const [sourceName, source] of Object.entries(sources)) {
      for (const [inputName, input] of Object.entries(inputs)) {
        try {
          produced.push(`${sourceName} + ${inputName} → ${attestTransfer(input, eventOn(source)).variant}`);
        } catch (error) {
          expect(error).toBeInstanceOf(XChainTransferError);
        }
      }
    }
    expect(produced).toEqual([
      "chain-log (lockbox) + locked → 0",
      "chain-log (token) + burned → 1",
      "chain-state + refund → 2",
    ]);
  });

  test("each output's value has exactly the components of its abiOneOf tuple, and the largest output fits maxOutputBytes", () => {
    const outputs = [
      attestTransfer(
        lockedLog({ amount: UINT256_MAX, deadline: UINT64_MAX, destinationChainId: UINT256_MAX }),
        eventOn(chainLogSource()),
      ),
      attestTransfer(burnedLog({ amount: UINT256_MAX, sourceChainId: UINT256_MAX }), eventOn(burnedSource())),
      attestTransfer(
        refundInput({ amount: UINT256_MAX, sourceChainId: UINT256_MAX }, { timestamp: UINT64_MAX }),
        eventOn(chainStateSource({ timestamp: UINT64_MAX })),
      ),
    ];
    expect(manifest.output.abiOneOf).toHaveLength(3);
    outputs.forEach((output, variant) => {
      expect(output.variant).toBe(variant);
      const components = ParamType.from(manifest.output.abiOneOf[variant]!).components!.map((c) => c.name);
      expect(Object.keys(output.value).sort()).toEqual([...components].sort());
      expect(output.value.kind).toBe(variant + 1);
      expect(Buffer.byteLength(JSON.stringify(output))).toBeLessThanOrEqual(manifest.limits.maxOutputBytes);
      expect(encode(output).length).toBe(2 + 2 * 32 * components.length); // static tuple: one word per component
    });
  });

  test("transfer.ts imports nothing and uses no Node API (it runs inside isolated-vm)", () => {
    const code = readFileSync(path.join(DIR, "src", "transfer.ts"), "utf8")
      .replace(/\/\*[\s\S]*?\*\//g, "")
      .replace(/\/\/.*$/gm, "");
    expect(code).not.toMatch(/^\s*import\s/m);
    expect(code).not.toMatch(/\b(require|process|Buffer|globalThis|TextEncoder|crypto|Date)\b/);
  });

  test("the Cryptlet's run returns transfer.ts's output and logs one line", async () => {
    const lines: unknown[][] = [];
    const ctx = {
      event: eventOn(chainStateSource()),
      requestId: id("event"),
      resultId: id("result"),
      now: OBSERVED_AT,
      log: (...args: unknown[]) => void lines.push(args),
    };
    const output = await cryptlet.run(refundInput() as never, ctx as never);
    expect(output).toEqual(attestTransfer(refundInput(), ctx.event));
    expect(lines).toEqual([
      ["REFUND", { id: LOCK_ID, amount: "300", from: String(SOURCE_CHAIN), to: String(DEST_CHAIN) }],
    ]);
    expect(() => cryptlet.run(refundInput({}, { isMinted: true }) as never, ctx as never)).toThrow(/NOT_REFUNDABLE/);
    expect(lines).toHaveLength(1);
  });
});

// ---- against the contracts ----

describe("xchain-transfer against CryptletLockbox and CryptletWrappedToken (one Hardhat chain)", () => {
  let b: Bridge;
  let alice: Signer;
  let bob: Signer;
  let carol: Signer;
  let requests = 0;

  beforeAll(async () => {
    b = await deployBridge(1, 1_000n);
    [alice, bob, carol] = b.s.others as [Signer, Signer, Signer];
  });

  /** The one log `contract` emitted in `receipt`, as `eth_getLogs` returns it, decoded as the chain-log trigger does. */
  async function chainLogEvent(contract: AnyContract, receipt: TransactionReceipt, name: "Locked" | "Burned") {
    const address = await contract.getAddress();
    const logs = (await b.s.ethers.provider.send("eth_getLogs", [
      { address, fromBlock: toQuantity(receipt.blockNumber), toBlock: toQuantity(receipt.blockNumber) },
    ])) as RpcLog[];
    const fragment = contract.interface.getEvent(name)!;
    const matching = logs.filter((log) => log.topics[0] === fragment.topicHash);
    expect(matching).toHaveLength(1);
    const log = matching[0]!;
    const block = (await b.s.ethers.provider.getBlock(log.blockHash))!;
    const input = decodeLog(fragment, log, block.timestamp);
    const source = {
      type: "chain-log",
      chainId: Number(b.chainId),
      address: log.address,
      blockNumber: input.blockNumber,
      blockHash: log.blockHash,
      txHash: log.transactionHash,
      logIndex: input.logIndex,
    };
    return { input, event: { eventId: id(`${log.blockHash}-${input.logIndex}`), source, time: block.timestamp } };
  }

  /** Encodes `output` with the manifest's tuple and signs it as a result of the bridge Cryptlet (2 of 3 signers). */
  async function signed(output: TransferOutput) {
    requests += 1;
    return signOutput(b.s, id(`xchain-request-${requests}`) as Hex32, encode(output));
  }

  const submit = async (contract: AnyContract, method: string, s: Awaited<ReturnType<typeof signed>>) =>
    (await (await contract[method](s.result, s.payload, s.signatures)).wait()) as TransactionReceipt;

  test("lock → MINT accepted by mint, burn → RELEASE accepted by release, unminted after the deadline → REFUND accepted by refund", async () => {
    const { s, token, lockbox, wrapped, chainId, route } = b;
    const [aliceAddress, bobAddress, carolAddress] = (await Promise.all(
      [alice, bob, carol].map((a) => a.getAddress()),
    )) as [string, string, string];
    const now = BigInt((await latestBlock(s.ethers)).timestamp);
    const deadline = now + 3_600n;

    // Lock 300 for Bob: the real Locked log through the Cryptlet gives a MINT the wrapped token accepts.
    const lockReceipt = (await (await as(lockbox, alice).lock(300n, chainId, bobAddress, deadline)).wait())!;
    const locked = await chainLogEvent(lockbox, lockReceipt, "Locked");
    expect(locked.input.signature).toBe("Locked(bytes32,address,address,uint256,uint256,uint64,address)");
    const mint = attestTransfer(locked.input, locked.event);
    const lockId = eventOf(lockbox, lockReceipt, "Locked").args.lockId as string;
    expect(mint).toEqual({
      variant: 0,
      value: {
        kind: 1,
        lockId,
        sourceChainId: String(chainId),
        lockbox: route.lockbox.toLowerCase(),
        destinationChainId: String(chainId),
        token: route.token.toLowerCase(),
        recipient: bobAddress.toLowerCase(),
        amount: "300",
        deadline: Number(deadline),
      },
    });
    expect(await wrapped.balanceOf(bobAddress)).toBe(0n);
    const minted = await submit(wrapped, "mint", await signed(mint));
    expect([...eventOf(wrapped, minted, "Minted").args].slice(0, 3)).toEqual([lockId, bobAddress, 300n]);
    expect(await wrapped.balanceOf(bobAddress)).toBe(300n);
    // The same bytes the contract tests' attester encodes from the event.
    expect(encode(mint)).toBe(
      mintPayload({ ...route, kind: KIND_MINT, lockId, recipient: bobAddress, amount: 300n, deadline }),
    );

    // Bob burns 120 for Carol: the Burned log gives a RELEASE the lockbox accepts.
    const burnReceipt = (await (await as(wrapped, bob).burn(120n, chainId, carolAddress)).wait())!;
    const burned = await chainLogEvent(wrapped, burnReceipt, "Burned");
    const release = attestTransfer(burned.input, burned.event);
    const burnId = eventOf(wrapped, burnReceipt, "Burned").args.burnId as string;
    expect(release.variant).toBe(1);
    expect(await token.balanceOf(carolAddress)).toBe(0n);
    await submit(lockbox, "release", await signed(release));
    expect(await token.balanceOf(carolAddress)).toBe(120n);
    expect(await lockbox.isReleased(burnId)).toBe(true);
    expect(encode(release)).toBe(
      releasePayload({ ...route, kind: KIND_RELEASE, burnId, recipient: carolAddress, amount: 120n }),
    );

    // Lock 200 for Bob, never minted. After the deadline the watcher reads isMinted at a block of the destination
    // chain: false, so the Cryptlet attests a REFUND the lockbox accepts; Alice gets her 200 back.
    const unmintedReceipt = (await (await as(lockbox, alice).lock(200n, chainId, bobAddress, deadline)).wait())!;
    const unmintedId = eventOf(lockbox, unmintedReceipt, "Locked").args.lockId as string;
    const watch = async (watched: string) => {
      const block = await latestBlock(s.ethers);
      const stored = await lockbox.lockOf(watched);
      const input = {
        kind: "refund",
        lock: {
          lockId: watched,
          sourceChainId: String(chainId),
          lockbox: route.lockbox,
          destinationChainId: String(stored.destinationChainId),
          token: await lockbox.peerOf(stored.destinationChainId),
          sender: stored.sender,
          amount: String(stored.amount),
          deadline: Number(stored.deadline),
        },
        observation: {
          chainId: Number(chainId),
          blockNumber: block.number,
          blockHash: block.hash!,
          timestamp: block.timestamp,
          isMinted: (await wrapped.isMinted(watched, { blockTag: block.number })) as boolean,
        },
      };
      const source = {
        type: "chain-state",
        chainId: Number(chainId),
        blockNumber: block.number,
        blockHash: block.hash!,
        timestamp: block.timestamp,
      };
      return { input, event: { eventId: id(`refund-${watched}`), source, time: block.timestamp }, block };
    };
    // Before the deadline the Cryptlet refuses: the lock may still be minted.
    const early = await watch(unmintedId);
    expect(() => attestTransfer(early.input, early.event)).toThrow(
      /NOT_REFUNDABLE: .* is not after input\.lock\.deadline/,
    );

    await mineAt(s.ethers, deadline + 1n);
    const late = await watch(unmintedId);
    const refund = attestTransfer(late.input, late.event);
    expect(refund.value).toMatchObject({ kind: 3, lockId: unmintedId, observedAt: late.block.timestamp });
    const aliceBefore = (await token.balanceOf(aliceAddress)) as bigint;
    await submit(lockbox, "refund", await signed(refund));
    expect(await token.balanceOf(aliceAddress)).toBe(aliceBefore + 200n);
    expect((await lockbox.lockOf(unmintedId)).status).toBe(2n);
    expect(encode(refund)).toBe(
      refundPayload({
        ...route,
        kind: KIND_REFUND,
        lockId: unmintedId,
        sender: aliceAddress,
        amount: 200n,
        deadline,
        observedAt: BigInt(late.block.timestamp),
      }),
    );

    // The minted lock, read after its deadline, is not refundable: the Cryptlet refuses.
    const mintedRead = await watch(lockId);
    expect(mintedRead.input.observation.isMinted).toBe(true);
    expect(() => attestTransfer(mintedRead.input, mintedRead.event)).toThrow(
      /NOT_REFUNDABLE: input\.observation\.isMinted is true/,
    );
  });
});
