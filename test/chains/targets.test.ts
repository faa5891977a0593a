import { readFileSync } from "node:fs";
import path from "node:path";

import { AbiCoder, Contract, ContractFactory, Wallet, id, keccak256, toUtf8Bytes, type InterfaceAbi } from "ethers";
import { Redis } from "ioredis";

import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import { signCryptletResult } from "../../runtime/attestation/signing.ts";
import { parseChainsConfig, type ChainConfig } from "../../runtime/chains/config.ts";
import { deployCryptletContracts, interfaceOf, type DeployedContracts } from "../../runtime/chains/contracts.ts";
import {
  CALLBACK_GAS_OVERHEAD,
  anchorWriteRequest,
  oracleExtraGas,
  parseOracleRequest,
  targetOf,
  writeRequestOf,
  type AttestedResult,
} from "../../runtime/chains/targets.ts";
import { ChainWriter } from "../../runtime/chains/writer.ts";
import { isCryptletError } from "../../runtime/errors.ts";
import { CONSORTIUM_ID, cryptletIdOf, makeResult, testWallets } from "../support/contracts.ts";
import { startHardhatNode, type HardhatNode } from "../support/hardhatNode.ts";

const CHAIN_ID = 71_011;
const CODE = id("targets-code") as Hex32;
const ORACLE_CRYPTLET = cryptletIdOf("@test/oracle-target");
const RECORD_CRYPTLET = cryptletIdOf("@test/record-target");
const FEED_NAME = "@test/price-median";
const FEED_CRYPTLET = cryptletIdOf(FEED_NAME);
const ROOT = path.resolve(import.meta.dirname, "..", "..");

function testingArtifact(name: string): { abi: InterfaceAbi; bytecode: string } {
  const file = path.join(ROOT, "artifacts/contracts/testing/CallbackTestConsumers.sol", `${name}.json`);
  return JSON.parse(readFileSync(file, "utf8")) as { abi: InterfaceAbi; bytecode: string };
}

describe("write modes (targets) through the ChainWriter on a hardhat node", () => {
  let node: HardhatNode;
  let redis: Redis;
  let addresses: DeployedContracts;
  let chain: ChainConfig;
  let writer: ChainWriter;
  const signers = testWallets(2);
  const prefix = `test-targets-${process.pid}-${Date.now()}`;

  beforeAll(async () => {
    node = await startHardhatNode(CHAIN_ID);
    redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
    addresses = await deployCryptletContracts(node.funder, {
      consortiumId: CONSORTIUM_ID,
      signers: signers.map((w) => w.address),
      threshold: 2,
      feeds: { [FEED_NAME]: { cryptletId: FEED_CRYPTLET, decimals: 8, description: "ETH / USD" } },
    });
    const registry = new Contract(addresses.registry, interfaceOf("CryptletRegistry"), node.funder);
    for (const cryptlet of [ORACLE_CRYPTLET, RECORD_CRYPTLET, FEED_CRYPTLET]) {
      await (await registry.getFunction("approveCodeHash")(cryptlet, CODE)).wait();
    }
    [chain] = parseChainsConfig({
      chains: [
        {
          name: "alpha",
          chainId: CHAIN_ID,
          rpcUrl: node.url,
          pollIntervalMs: 20,
          signer: { type: "local", jwkPath: "unused.jwk" },
          contracts: { oracle: addresses.oracle, ledger: addresses.ledger, feeds: addresses.feeds },
        },
      ],
    }).chains as [ChainConfig];
    const relayer = Wallet.createRandom();
    await node.fund(relayer.address);
    writer = new ChainWriter({ chain, signer: new Wallet(relayer.privateKey), redis, prefix });
    await writer.start();
  }, 90_000);

  afterAll(async () => {
    writer?.rpc.destroy();
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
    await node?.stop();
  });

  async function attest(cryptletId: Hex32, requestId: Hex32, payload: string): Promise<AttestedResult> {
    const result = makeResult(cryptletId, requestId, CODE, payload);
    const signatures = await signCryptletResult(CONSORTIUM_ID, result, signers);
    return { result, payload, signatures };
  }

  /** Deploys `consumer`, asks the oracle through it, and returns the decoded CryptletRequested event. */
  async function oracleRequest(consumer: Contract, ask: () => Promise<{ wait(): Promise<unknown> }>) {
    const tx = (await ask()) as { wait(): Promise<{ logs: { topics: string[]; data: string }[] }> };
    const receipt = await tx.wait();
    const request = receipt.logs.map(parseOracleRequest).find((r) => r !== undefined);
    expect(request).toBeDefined();
    expect(request!.consumer).toBe(await consumer.getAddress());
    return request!;
  }

  test("oracle: fulfil lands once, the consumer gets its callback, a second write is already-recorded", async () => {
    const { abi, bytecode } = (await import("../../runtime/chains/contracts.ts")).artifactOf("ExampleOracleConsumer");
    const deployed = await new ContractFactory(abi, bytecode, node.funder).deploy(addresses.oracle, ORACLE_CRYPTLET);
    await deployed.waitForDeployment();
    const consumer = new Contract(await deployed.getAddress(), abi, node.funder);
    const request = await oracleRequest(consumer, () => consumer.getFunction("ask")("0x1234"));
    expect(request.callbackGasLimit).toBe(200_000);

    const payload = AbiCoder.defaultAbiCoder().encode(["uint256"], [42n]);
    const attested = await attest(request.cryptletId, request.requestId, payload);
    expect(attested.result.resultId).toBe(request.resultId);
    const write = writeRequestOf(targetOf(chain, "oracle"), attested, {
      reader: writer.rpc,
      callbackGasLimit: request.callbackGasLimit,
    });
    expect(write.idempotencyKey).toBe(`oracle:alpha:${request.resultId}`);
    expect(write.extraGas).toBe(oracleExtraGas(200_000));
    expect(await write.isRecorded()).toBe(false);

    const receipt = await writer.write(write);
    expect(receipt.status).toBe("confirmed");
    expect(await write.isRecorded()).toBe(true);
    expect(await consumer.getFunction("lastPayload")()).toBe(payload);
    const oracle = new Contract(addresses.oracle, interfaceOf("CryptletOracle"), node.provider);
    expect(await oracle.getFunction("requestStatus")(request.resultId)).toBe(2n); // Fulfilled, callback succeeded

    expect((await writer.write(write)).txHash).toBe(receipt.txHash); // a retry resumes the same transaction
    const again = writeRequestOf(targetOf(chain, "oracle"), attested, { reader: writer.rpc, callbackGasLimit: 0 });
    expect((await writer.write({ ...again, idempotencyKey: `${again.idempotencyKey}:second` })).status).toBe(
      "already-recorded",
    );
  });

  test("oracle: a callback that burns all its gas still gets its full limit (no CryptletOracleInsufficientGas)", async () => {
    const { abi, bytecode } = testingArtifact("GasBurningConsumer");
    const deployed = await new ContractFactory(abi, bytecode, node.funder).deploy(addresses.oracle);
    await deployed.waitForDeployment();
    const consumer = new Contract(await deployed.getAddress(), abi, node.funder);
    const limit = 300_000;
    const request = await oracleRequest(consumer, () => consumer.getFunction("ask")(ORACLE_CRYPTLET, limit));
    const attested = await attest(ORACLE_CRYPTLET, request.requestId, "0x");
    const write = writeRequestOf(targetOf(chain, "oracle"), attested, {
      reader: writer.rpc,
      callbackGasLimit: request.callbackGasLimit,
    });
    const receipt = await writer.write(write);
    expect(receipt.status).toBe("confirmed");
    const tx = await node.provider.getTransaction(receipt.txHash!);
    // The transaction carried enough for the oracle's check, and the callback consumed its whole limit.
    expect(tx!.gasLimit).toBeGreaterThan((BigInt(limit) * 64n) / 63n + CALLBACK_GAS_OVERHEAD);
    expect(BigInt(receipt.gasUsed!)).toBeGreaterThan(BigInt(limit));
    const oracle = new Contract(addresses.oracle, interfaceOf("CryptletOracle"), node.provider);
    expect(await oracle.getFunction("requestStatus")(request.resultId)).toBe(3n); // FulfilledCallbackFailed
    expect(await write.isRecorded()).toBe(true);
  });

  test("record: lands once on the ledger; a second write is already-recorded", async () => {
    const payload = keccak256(toUtf8Bytes("record-payload"));
    const attested = await attest(RECORD_CRYPTLET, id(`${prefix}-record`) as Hex32, payload);
    const write = writeRequestOf(targetOf(chain, "record"), attested, { reader: writer.rpc });
    expect(write.idempotencyKey).toBe(`record:alpha:${attested.result.resultId}`);
    const receipt = await writer.write(write);
    expect(receipt.status).toBe("confirmed");
    const ledger = new Contract(addresses.ledger, interfaceOf("ResultLedger"), node.provider);
    expect(await ledger.getFunction("isRecorded")(attested.result.resultId)).toBe(true);
    expect(await ledger.getFunction("outputHashOf")(attested.result.resultId)).toBe(attested.result.outputHash);
    const second = { ...write, idempotencyKey: `${write.idempotencyKey}:again` };
    expect((await writer.write(second)).status).toBe("already-recorded");
  });

  test("feed: the submitted answer is the feed's latest round; a second write is already-recorded", async () => {
    const observedAt = 1_700_000_123n;
    const payload = AbiCoder.defaultAbiCoder().encode(["int256", "uint8", "uint64"], [312_345_000_000n, 8, observedAt]);
    const attested = await attest(FEED_CRYPTLET, id(`${prefix}-feed`) as Hex32, payload);
    const write = writeRequestOf(targetOf(chain, "feed", FEED_NAME), attested, { reader: writer.rpc });
    expect(write.idempotencyKey).toBe(`feed:alpha:${attested.result.resultId}`);
    expect((await writer.write(write)).status).toBe("confirmed");
    const feed = new Contract(addresses.feeds[FEED_NAME]!, interfaceOf("CryptletPriceFeed"), node.provider);
    const [roundId, answer, startedAt, , answeredInRound] = (await feed.getFunction("latestRoundData")()) as bigint[];
    expect(roundId).toBe(1n);
    expect(answer).toBe(312_345_000_000n);
    expect(startedAt).toBe(observedAt);
    expect(answeredInRound).toBe(1n);
    expect(await feed.getFunction("isRecorded")(attested.result.resultId)).toBe(true);
    const second = { ...write, idempotencyKey: `${write.idempotencyKey}:again` };
    expect((await writer.write(second)).status).toBe("already-recorded");
  });

  test("anchor: request shape and isAnchored binding", async () => {
    const target = targetOf(chain, "anchor");
    const batch = { root: id("not-anchored") as Hex32, count: 3, timestamp: 1_700_000_000n };
    const sigs = [`0x${"11".repeat(65)}`];
    const write = anchorWriteRequest(target, batch, sigs, { reader: writer.rpc });
    expect(write.idempotencyKey).toBe(`anchor:alpha:${batch.root}`);
    expect(anchorWriteRequest(target, batch, sigs, { reader: writer.rpc, attempt: 2 }).idempotencyKey).toBe(
      `anchor:alpha:${batch.root}#2`,
    );
    const decoded = interfaceOf("ResultLedger").decodeFunctionData("anchor", write.data);
    expect(decoded[0].root).toBe(batch.root);
    expect(await write.isRecorded()).toBe(false);
  });

  test("bad input is refused with ERR_CHAIN_WRITE_INVALID naming the field; missing contracts are named", async () => {
    const payload = keccak256(toUtf8Bytes("bad"));
    const attested = await attest(RECORD_CRYPTLET, id("bad") as Hex32, payload);
    const record = targetOf(chain, "record");
    const cases: [string, () => unknown][] = [
      ["payload", () => writeRequestOf(record, { ...attested, payload: "0x1234" }, { reader: writer.rpc })],
      ["payload", () => writeRequestOf(record, { ...attested, payload: "zz" }, { reader: writer.rpc })],
      ["signatures", () => writeRequestOf(record, { ...attested, signatures: [] }, { reader: writer.rpc })],
      ["signatures", () => writeRequestOf(record, { ...attested, signatures: ["0x12"] }, { reader: writer.rpc })],
      ["address", () => writeRequestOf({ ...record, address: "0x1234" }, attested, { reader: writer.rpc })],
      [
        "result.codeHash",
        () =>
          writeRequestOf(
            record,
            { ...attested, result: { ...attested.result, codeHash: "0x12" } },
            { reader: writer.rpc },
          ),
      ],
      [
        "result.timestamp",
        () =>
          writeRequestOf(
            record,
            { ...attested, result: { ...attested.result, timestamp: -1n } },
            { reader: writer.rpc },
          ),
      ],
      ["callbackGasLimit", () => writeRequestOf(targetOf(chain, "oracle"), attested, { reader: writer.rpc })],
      ["mode", () => writeRequestOf(targetOf(chain, "anchor"), attested, { reader: writer.rpc })],
    ];
    for (const [field, action] of cases) {
      let caught: unknown;
      try {
        action();
      } catch (e) {
        caught = e;
      }
      expect(isCryptletError(caught, "ERR_CHAIN_WRITE_INVALID")).toBe(true);
      expect((caught as { details: { field: string } }).details.field).toBe(field);
    }
    let caught: unknown;
    try {
      targetOf(chain, "feed", "@test/unknown-feed");
    } catch (e) {
      caught = e;
    }
    expect(isCryptletError(caught, "ERR_CHAIN_TARGET_UNCONFIGURED")).toBe(true);
    expect((caught as { details: { feed: string } }).details.feed).toBe("@test/unknown-feed");
  });
});
