import { AbiCoder, id, keccak256 } from "ethers";

import { computeResultId, type Hex32 } from "../../runtime/attestation/eip712.ts";
import {
  cryptletIdOf,
  deploy,
  deployStack,
  expectCustomError,
  makeResult,
  signResult,
  type AnyContract,
  type CryptletStack,
} from "../support/contracts.ts";

const CRYPTLET = cryptletIdOf("@test/oracle");
const CODE = id("oracle-code-v1") as Hex32;
const abi = AbiCoder.defaultAbiCoder();

describe("CryptletOracle", () => {
  let s: CryptletStack;
  let consumer: AnyContract;

  beforeEach(async () => {
    s = await deployStack(3, 2);
    await (await s.registry.approveCodeHash(CRYPTLET, CODE)).wait();
    consumer = await deploy(s.ethers, "ExampleOracleConsumer", [await s.oracle.getAddress(), CRYPTLET]);
  });

  /** Sends `consumer.ask(params)` and returns the decoded CryptletRequested event. */
  async function ask(params = "0x1234") {
    const receipt = await (await consumer.ask(params)).wait();
    const oracleAddress = (await s.oracle.getAddress()).toLowerCase();
    const log = receipt.logs.find((l: { address: string }) => l.address.toLowerCase() === oracleAddress);
    const parsed = s.oracle.interface.parseLog(log);
    expect(parsed?.name).toBe("CryptletRequested");
    return parsed!.args;
  }

  test("request emits everything a listener needs and returns a unique requestId", async () => {
    const first = await ask("0xbeef");
    const second = await ask("0xbeef");
    const { chainId } = await s.ethers.provider.getNetwork();
    expect(first.requestId).not.toBe(second.requestId);
    expect(first.requestId).toBe(
      keccak256(abi.encode(["uint256", "address", "uint56"], [chainId, await s.oracle.getAddress(), 1n])),
    );
    expect(first.cryptletId).toBe(CRYPTLET);
    expect(first.consumer).toBe(await consumer.getAddress());
    expect(first.resultId).toBe(computeResultId(CRYPTLET, first.requestId));
    expect(first.callbackGasLimit).toBe(200_000n);
    expect(first.params).toBe("0xbeef");
    expect(await consumer.lastRequestId()).toBe(second.requestId);
    expect(await s.oracle.requestStatus(first.resultId)).toBe(1n); // Pending
    expect(await s.oracle.isRecorded(first.resultId)).toBe(false);
  });

  test("request rejects an unknown Cryptlet and a callback gas limit above the maximum", async () => {
    const unknown = cryptletIdOf("@test/unknown");
    await expectCustomError(s.oracle.request(unknown, "0x", 0), s.errors, "CryptletOracleUnknownCryptlet", [unknown]);
    await expectCustomError(
      s.oracle.request(CRYPTLET, "0x", 2_000_001),
      s.errors,
      "CryptletOracleCallbackGasLimitTooHigh",
      [2_000_001n, 2_000_000n],
    );
  });

  test("fulfil verifies, records once, and calls the consumer back with the payload", async () => {
    const req = await ask();
    const payload = abi.encode(["int256", "uint8", "uint64"], [123_456_789n, 8, 1_704_412_800n]);
    const result = makeResult(CRYPTLET, req.requestId, CODE, payload);
    const signatures = await signResult(s.signers.slice(0, 2), result);
    const fulfiller = await s.others[1]!.getAddress();
    const receipt = await (
      await (s.oracle.connect(s.others[1]!) as typeof s.oracle).fulfill(result, payload, signatures)
    ).wait();
    const events = receipt.logs
      .map((l: never) => s.oracle.interface.parseLog(l))
      .filter(Boolean)
      .map((e: { name: string }) => e.name);
    expect(events).toEqual(["CryptletFulfilled"]);
    const fulfilled = s.oracle.interface.parseLog(receipt.logs[0]);
    expect([...fulfilled!.args]).toEqual([req.requestId, result.resultId, result.outputHash, fulfiller, payload]);
    expect(await consumer.lastPayload()).toBe(payload);
    expect(await consumer.payloads(req.requestId)).toBe(payload);
    expect(await s.oracle.requestStatus(result.resultId)).toBe(2n); // Fulfilled
    expect(await s.oracle.isRecorded(result.resultId)).toBe(true);

    // A replayed fulfil is rejected.
    await expectCustomError(s.oracle.fulfill(result, payload, signatures), s.errors, "CryptletOracleAlreadyFulfilled", [
      result.resultId,
    ]);
  });

  test("fulfil rejects an unknown request, a result for another Cryptlet, a payload that does not match", async () => {
    const req = await ask();
    const payload = "0x01";
    const stray = makeResult(CRYPTLET, id("no-such-request") as Hex32, CODE, payload);
    await expectCustomError(
      s.oracle.fulfill(stray, payload, await signResult(s.signers, stray)),
      s.errors,
      "CryptletOracleUnknownRequest",
      [stray.resultId],
    );

    // Right resultId, but claims to be another Cryptlet (approved too): resultId does not belong to it.
    const other = cryptletIdOf("@test/other");
    await (await s.registry.approveCodeHash(other, CODE)).wait();
    const good = makeResult(CRYPTLET, req.requestId, CODE, payload);
    const forged = { ...good, cryptletId: other };
    await expectCustomError(
      s.oracle.fulfill(forged, payload, await signResult(s.signers, forged)),
      s.errors,
      "CryptletOracleResultMismatch",
      [good.resultId, other, req.requestId],
    );

    const signatures = await signResult(s.signers, good);
    await expectCustomError(s.oracle.fulfill(good, "0x02", signatures), s.errors, "CryptletOracleOutputHashMismatch", [
      good.outputHash,
      keccak256("0x02"),
    ]);
    // The proof is checked through the registry: below threshold, unapproved code.
    await expectCustomError(
      s.oracle.fulfill(good, payload, signatures.slice(0, 1)),
      s.errors,
      "CryptletProofThresholdNotMet",
      [1n, 2n],
    );
    const unapproved = { ...good, codeHash: id("unapproved") as Hex32 };
    await expectCustomError(
      s.oracle.fulfill(unapproved, payload, await signResult(s.signers, unapproved)),
      s.errors,
      "CryptletProofCodeHashNotApproved",
    );
    expect(await s.oracle.requestStatus(good.resultId)).toBe(1n); // still Pending
  });

  test("a reverting callback is recorded and does not revert the fulfilment", async () => {
    const reverting = await deploy(s.ethers, "RevertingConsumer", [await s.oracle.getAddress()]);
    const receiptAsk = await (await reverting.ask(CRYPTLET, 100_000)).wait();
    const req = s.oracle.interface.parseLog(receiptAsk.logs[0])!.args;
    const result = makeResult(CRYPTLET, req.requestId, CODE, "0xaa");
    const receipt = await (await s.oracle.fulfill(result, "0xaa", await signResult(s.signers, result))).wait();
    const failed = receipt.logs
      .map((l: never) => s.oracle.interface.parseLog(l))
      .find((e: { name: string } | null) => e?.name === "CryptletCallbackFailed");
    expect(failed.args.requestId).toBe(req.requestId);
    expect(failed.args.consumer).toBe(await reverting.getAddress());
    const reason = reverting.interface.parseError(failed.args.reason);
    expect(reason?.name).toBe("RevertingConsumerRefused");
    expect(reason?.args[0]).toBe(req.requestId);
    expect(await s.oracle.requestStatus(result.resultId)).toBe(3n); // FulfilledCallbackFailed
    expect(await s.oracle.isRecorded(result.resultId)).toBe(true);
  });

  test("an out-of-gas callback is recorded; the consumer got exactly its gas limit", async () => {
    const burner = await deploy(s.ethers, "GasBurningConsumer", [await s.oracle.getAddress()]);
    const receiptAsk = await (await burner.ask(CRYPTLET, 300_000)).wait();
    const req = s.oracle.interface.parseLog(receiptAsk.logs[0])!.args;
    const result = makeResult(CRYPTLET, req.requestId, CODE, "0xbb");
    const signatures = await signResult(s.signers, result);

    // Too little gas for the promised callback: the whole fulfilment reverts (a relayer cannot starve it).
    await expectCustomError(
      s.oracle.fulfill(result, "0xbb", signatures, { gasLimit: 250_000 }),
      s.errors,
      "CryptletOracleInsufficientGas",
    );

    const receipt = await (await s.oracle.fulfill(result, "0xbb", signatures, { gasLimit: 1_000_000 })).wait();
    const names = receipt.logs.map((l: never) => s.oracle.interface.parseLog(l)?.name);
    expect(names).toEqual(["CryptletFulfilled", "CryptletCallbackFailed"]);
    expect(receipt.gasUsed).toBeGreaterThan(300_000n);
    expect(await s.oracle.requestStatus(result.resultId)).toBe(3n);
  });

  test("a request without callback gas, or from an account, is fulfilled without a callback", async () => {
    const receiptAsk = await (await s.oracle.request(CRYPTLET, "0x", 100_000)).wait(); // from the admin account
    const req = s.oracle.interface.parseLog(receiptAsk.logs[0])!.args;
    expect(req.consumer).toBe(await s.admin.getAddress());
    const result = makeResult(CRYPTLET, req.requestId, CODE, "0xcc");
    const receipt = await (await s.oracle.fulfill(result, "0xcc", await signResult(s.signers, result))).wait();
    expect(receipt.logs.map((l: never) => s.oracle.interface.parseLog(l)?.name)).toEqual(["CryptletFulfilled"]);
    expect(await s.oracle.requestStatus(result.resultId)).toBe(2n);
  });

  test("the consumer accepts callbacks only from its oracle", async () => {
    const outsider = await s.others[0]!.getAddress();
    await expectCustomError(
      (consumer.connect(s.others[0]!) as typeof consumer).onCryptletResult(id("x"), "0x"),
      s.errors,
      "CryptletConsumerUnauthorizedCaller",
      [outsider, await s.oracle.getAddress()],
    );
  });
});
