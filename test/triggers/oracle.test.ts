import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { hexlify, id, toUtf8Bytes, type Contract, type ContractTransactionResponse } from "ethers";
import { exportJWK, generateKeyPair } from "jose";

import { computeResultId, type Hex32 } from "../../runtime/attestation/eip712.ts";
import { buildPackage } from "../../runtime/packages/build.ts";
import type { BuiltPackage } from "../../runtime/packages/builtPackage.ts";
import { PackageStore } from "../../runtime/packages/PackageStore.ts";
import { signPackage } from "../../runtime/packages/signature.ts";
import { Pipeline } from "../../runtime/queue/pipeline.ts";
import { oracleInputOf } from "../../runtime/triggers/oracleRequest.ts";
import { TriggerService } from "../../runtime/triggers/TriggerService.ts";
import { startPipelineStack, type PipelineStack } from "../support/pipelineStack.ts";
import { deployArtifact } from "./helpers.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..");

/** price-median with an `oracle` trigger on `chain`, answering through the oracle. */
async function buildOraclePriceMedian(chain: string, overrides: Record<string, unknown> = {}): Promise<BuiltPackage> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "cryptlet-oracle-"));
  try {
    await cp(path.join(ROOT, "cryptlets", "price-median"), dir, {
      recursive: true,
      filter: (src) => !src.includes(`${path.sep}data`) && !src.includes(`${path.sep}dist`),
    });
    const manifest = JSON.parse(await readFile(path.join(dir, "cryptlet.json"), "utf8")) as Record<string, unknown>;
    manifest.triggers = [{ type: "oracle", chain, confirmations: 1 }];
    manifest.targets = [{ chain, mode: "oracle" }];
    Object.assign(manifest, overrides);
    await writeFile(path.join(dir, "cryptlet.json"), JSON.stringify(manifest));
    return await buildPackage(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe("oracle requests through the trigger service (real Redis, hardhat node, Key Vault emulator)", () => {
  let stack: PipelineStack;
  let pipeline: Pipeline;
  let triggers: TriggerService;
  let pkg: BuiltPackage;
  let undeclared: BuiltPackage;

  beforeAll(async () => {
    stack = await startPipelineStack({
      chains: [{ name: "consortium", chainId: 73_011 }],
      targets: [{ chain: "consortium", mode: "oracle" }],
      workers: false,
    });
    // A package store of this test's own with a package that declares the oracle trigger.
    pkg = await buildOraclePriceMedian("consortium");
    const publisher = await generateKeyPair("ES256", { extractable: true });
    const packages = new PackageStore({
      redis: stack.redis,
      trustedPublisherKeys: [{ ...(await exportJWK(publisher.publicKey)), kid: "oracle-test" }],
      prefix: `{${stack.prefix}-oracle-packages}:`,
    });
    await packages.deploy(pkg, await signPackage(pkg, publisher.privateKey, "oracle-test"));
    await (await stack.chains[0]!.registry.getFunction("approveCodeHash")(pkg.cryptletId, pkg.codeHash)).wait();
    // …and one that does not declare it.
    undeclared = await buildOraclePriceMedian("consortium", { name: "@test/no-oracle", triggers: [{ type: "http" }] });
    await packages.deploy(undeclared, await signPackage(undeclared, publisher.privateKey, "oracle-test"));
    await (
      await stack.chains[0]!.registry.getFunction("approveCodeHash")(undeclared.cryptletId, undeclared.codeHash)
    ).wait();
    pipeline = new Pipeline({ ...stack.ctx, packages });
    pipeline.startWorkers({ lockDurationMs: 5000, stalledIntervalMs: 2000 });
    triggers = new TriggerService({
      pipeline,
      pollIntervalMs: 100,
      refreshIntervalMs: 60_000,
      schedulesEnabled: false,
    });
    await triggers.refresh();
    await triggers.listener.scanOnce(); // pins the checkpoint before any request
    await triggers.start();
  }, 120_000);

  afterAll(async () => {
    await triggers?.stop();
    await pipeline?.close();
    await stack?.close();
  });

  const node = () => stack.chains[0]!.node;
  const send = async (contract: Contract, method: string, ...args: unknown[]) => {
    const tx = (await contract.getFunction(method)(...args)) as ContractTransactionResponse;
    return (await tx.wait())!;
  };

  test("request params: UTF-8 JSON is parsed, anything else stays hex", () => {
    expect(oracleInputOf(hexlify(toUtf8Bytes('{"a":[1,"2"]}')))).toEqual({ a: [1, "2"] });
    expect(oracleInputOf("0xff00")).toBe("0xff00");
    expect(oracleInputOf(hexlify(toUtf8Bytes("not json")))).toBe(hexlify(toUtf8Bytes("not json")));
    expect(oracleInputOf("0x")).toBe("0x");
  });

  test("a consumer's request is fulfilled end to end; unknown or undeclared Cryptlets are recorded and skipped; a reorg of the written request is recorded", async () => {
    expect(triggers.listener.subscriptions.map((s) => [s.id, s.kind, s.confirmations])).toEqual([
      ["oracle:consortium", "oracle", 1],
    ]);
    const oracle = stack.chains[0]!.contracts.oracle;

    // A request for a Cryptlet the registry knows but no package store has.
    const unknownId = id(`${stack.prefix}/unknown`) as Hex32;
    await (await stack.chains[0]!.registry.getFunction("approveCodeHash")(unknownId, id("some code"))).wait();
    const stranger = await deployArtifact(
      node().funder,
      "examples/ExampleOracleConsumer.sol",
      "ExampleOracleConsumer",
      [oracle, unknownId],
    );
    await send(stranger, "ask", toUtf8Bytes("{}"));
    const uninvited = await deployArtifact(
      node().funder,
      "examples/ExampleOracleConsumer.sol",
      "ExampleOracleConsumer",
      [oracle, undeclared.cryptletId],
    );
    await send(uninvited, "ask", toUtf8Bytes("{}"));

    const snapshot = await node().rpc<string>("evm_snapshot");
    const consumer = await deployArtifact(
      node().funder,
      "examples/ExampleOracleConsumer.sol",
      "ExampleOracleConsumer",
      [oracle, pkg.cryptletId],
    );
    const input = {
      observations: [
        { source: "a", price: "2269.76", observedAt: 1704412800 },
        { source: "b", price: "2270.10", observedAt: 1704412810 },
        { source: "c", price: "2269.90", observedAt: 1704412805 },
      ],
      decimals: 8,
    };
    await send(consumer, "ask", toUtf8Bytes(JSON.stringify(input)));
    const requestId = (await consumer.getFunction("lastRequestId")()) as Hex32;
    await node().rpc("evm_mine"); // one confirmation
    const runId = computeResultId(pkg.cryptletId, requestId);
    const outcome = await pipeline.waitForRun(runId, 60_000);
    expect(outcome.status).toBe("complete");
    if (outcome.status !== "complete") return;
    expect(outcome.receipt.targets.map((t) => [t.chain, t.mode, t.status])).toEqual([
      ["consortium", "oracle", "confirmed"],
    ]);
    const attested = await stack.ctx.results.getAttested(runId);
    expect(await consumer.getFunction("lastPayload")()).toBe(attested!.payload);
    const run = await stack.ctx.results.getRun(runId);
    expect(run!.requestId).toBe(requestId);

    const problems = await triggers.problems();
    const unknown = problems.find((p) => p.code === "ERR_TRIGGER_CRYPTLET_UNKNOWN");
    expect(unknown?.details).toMatchObject({ chain: "consortium", cryptletId: unknownId });
    expect(
      await stack.ctx.results.getRun(computeResultId(unknownId, unknown!.details.requestId as Hex32)),
    ).toBeUndefined();

    // The chain drops the request's block after the result was written: the reorg is recorded, not cancelled.
    await node().rpc("evm_revert", [snapshot]);
    await node().rpc("evm_mine");
    await node().rpc("evm_mine");
    let record;
    const deadline = Date.now() + 15_000;
    while (!record && Date.now() < deadline) {
      record = (await triggers.listener.store.reorgs()).find((r) => r.runId === runId);
      if (!record) await new Promise((r) => setTimeout(r, 100));
    }
    expect(record).toMatchObject({
      subscription: "oracle:consortium",
      action: "recorded",
      reason: "written",
      cryptlet: pkg.manifest.name,
    });
  });
});
