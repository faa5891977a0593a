/**
 * Rotating a result-signing key end to end, without restarting the worker (docs/operations.md, "Rotating a signer
 * key"): runs flow continuously through a worker process (built from its configuration file, as in production)
 * while a new version of `result-signer-1` is created in the Key Vault emulator (the real Azure SDK over HTTPS),
 * then `CryptletRegistry.rotateSigner(old, new)` lands on the hardhat chain. Checked against the chain itself:
 * every run recorded exactly once, and the signer of every recorded signature recovered with ethers from the
 * transaction's calldata and the registry's own domain separator.
 */
import type { ChildProcess } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";

import { DefaultAzureCredential } from "@azure/identity";
import { KeyClient } from "@azure/keyvault-keys";
import { TypedDataEncoder, computeAddress, concat, getAddress, keccak256, recoverAddress, type Log } from "ethers";

import { httpEventId } from "../../runtime/attestation/ids.ts";
import { interfaceOf } from "../../runtime/chains/contracts.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";
import { startPipelineStack, type PipelineStack } from "../support/pipelineStack.ts";
import { startWorker, stopWorker } from "../support/workerProcess.ts";

const RESULT_TYPES = {
  CryptletResult: [
    { name: "resultId", type: "bytes32" },
    { name: "cryptletId", type: "bytes32" },
    { name: "codeHash", type: "bytes32" },
    { name: "inputHash", type: "bytes32" },
    { name: "outputHash", type: "bytes32" },
    { name: "timestamp", type: "uint64" },
  ],
};
const CHECK_MS = 500;

const until = async (what: string, condition: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

describe("rotating a result-signing key while runs flow (no restart)", () => {
  let stack: PipelineStack;
  let worker: ChildProcess | undefined;

  beforeAll(async () => {
    stack = await startPipelineStack({
      chains: [{ name: "alpha", chainId: 74_001 }],
      targets: [{ chain: "alpha", mode: "record" }],
      workers: false,
    });
  }, 120_000);

  afterAll(async () => {
    if (worker && worker.exitCode === null) worker.kill("SIGKILL");
    await stack?.close();
  });

  test("runs before the rotation are signed by the old key, after it by the new one; none fails or is lost", async () => {
    const configFile = await stack.writeConfig();
    const config = JSON.parse(await readFile(configFile, "utf8")) as { keys: { keyVault: Record<string, unknown> } };
    config.keys.keyVault.signerCheckIntervalMs = CHECK_MS;
    await writeFile(configFile, JSON.stringify(config));
    worker = await startWorker(configFile, path.join(path.dirname(configFile), "ca.pem"));

    const chain = stack.chains[0]!;
    const keys = new KeyClient(stack.vault.vaultUrl, new DefaultAzureCredential(), stack.vault.clientOptions);
    const oldAddress = stack.resultSignerAddresses[0]!;
    const otherAddress = stack.resultSignerAddresses[1]!;

    // Submit a run every 150 ms until told to stop.
    const minutes = await loadMinuteInputs();
    const submitted: { runId: string; at: number }[] = [];
    let stop = false;
    const loop = (async () => {
      for (let i = 0; !stop; i += 1) {
        const { minute, input } = minutes[i % minutes.length]!;
        const run = await stack.pipeline.submit({
          eventId: httpEventId(`${stack.prefix}-rotation-${i}`),
          cryptlet: { name: stack.pkg.manifest.name },
          source: { type: "http", idempotencyKey: `rotation-${i}` },
          input,
          time: minute + 59 + i,
        });
        submitted.push({ runId: run.runId, at: Date.now() });
        await new Promise((r) => setTimeout(r, 150));
      }
    })();
    const completed = async (runIds: string[]) =>
      (await Promise.all(runIds.map((id) => stack.ctx.results.getReceipt(id)))).filter(Boolean).length;

    try {
      // 1. Runs complete with the old key.
      await until("5 runs before the rotation", async () => (await completed(submitted.map((s) => s.runId))) >= 5);

      // 2. A new key version in Key Vault; its address computed here from the vault's public key.
      const rotated = await keys.rotateKey("result-signer-1");
      const jwk = rotated.key!;
      const newAddress = computeAddress(concat([Uint8Array.of(4), Uint8Array.from(jwk.x!), Uint8Array.from(jwk.y!)]));
      expect(newAddress).not.toBe(oldAddress);
      const rotatedAt = Date.now();

      // 3. The window: the new version exists, the registry does not know it. Once several of the worker's checks
      // have seen the new version, runs submitted from then on still complete (with the old key) before rotateSigner.
      await new Promise((r) => setTimeout(r, 4 * CHECK_MS));
      const lateAt = Date.now();
      const windowRuns = () => submitted.filter((s) => s.at > lateAt).map((s) => s.runId);
      await until("3 runs submitted in the window completed", async () => (await completed(windowRuns())) >= 3, 60_000);
      const completedInWindow = (
        await Promise.all(windowRuns().map(async (id) => ((await stack.ctx.results.getReceipt(id)) ? id : undefined)))
      ).filter((id): id is string => id !== undefined);
      expect(rotatedAt).toBeLessThan(lateAt);

      // 4. The registry learns the new signer. Mining is paused until record transactions signed with the old key
      // wait in the mempool; rotateSigner (higher priority fee) is mined first in the same block, so those revert
      // on-chain (the tail of the window: old signatures that reach the chain after the rotation).
      const rpc = chain.node.provider;
      const registry = chain.registry;
      const pendingRecords = async () => {
        const block = (await rpc.send("eth_getBlockByNumber", ["pending", true])) as { transactions: { to: string }[] };
        return block.transactions.filter((t) => getAddress(t.to) === getAddress(chain.contracts.ledger)).length;
      };
      await rpc.send("evm_setAutomine", [false]);
      let rotationBlock: number;
      try {
        await until("3 record transactions waiting in the mempool", async () => (await pendingRecords()) >= 3, 60_000);
        const tx = await registry.getFunction("rotateSigner")(oldAddress, newAddress, {
          gasLimit: 500_000,
          maxFeePerGas: 400_000_000_000n,
          maxPriorityFeePerGas: 300_000_000_000n,
        });
        await rpc.send("evm_mine", []);
        const rotation = await tx.wait();
        rotationBlock = rotation!.blockNumber as number;
      } finally {
        await rpc.send("evm_setAutomine", [true]);
      }
      const rotatedOnChainAt = Date.now();
      // Independently from the chain: record transactions mined in the rotation's block after it, and reverted.
      const rotationTxs = (
        (await rpc.send("eth_getBlockByNumber", [`0x${rotationBlock.toString(16)}`, false])) as {
          transactions: string[];
        }
      ).transactions;
      const reverted: string[] = [];
      for (const hash of rotationTxs) {
        const receipt = await rpc.getTransactionReceipt(hash);
        if (receipt!.to && getAddress(receipt!.to) === getAddress(chain.contracts.ledger) && receipt!.status === 0)
          reverted.push(hash);
      }
      expect(reverted.length).toBeGreaterThanOrEqual(1);

      // 5. Runs after it complete, with the new key (picked up without a restart).
      const afterRuns = () => submitted.filter((s) => s.at > rotatedOnChainAt).map((s) => s.runId);
      await until("5 runs after rotateSigner", async () => (await completed(afterRuns())) >= 5);
      stop = true;
      await loop;

      // Every submitted run completes.
      for (const { runId } of submitted) {
        const outcome = await stack.pipeline.waitForRun(runId, 120_000);
        expect(outcome.status).toBe("complete");
        if (outcome.status === "complete") expect(outcome.receipt.status).toBe("confirmed");
      }
      expect(await stack.pipeline.deadLetters()).toEqual([]);
      expect(worker.exitCode).toBeNull(); // the same worker process throughout

      // The chain: each run recorded exactly once; the signers recovered from each record transaction's calldata.
      const ledgerAbi = interfaceOf("ResultLedger");
      const logs: Log[] = await chain.node.provider.getLogs({
        address: chain.contracts.ledger,
        topics: [ledgerAbi.getEvent("ResultRecorded")!.topicHash],
        fromBlock: 0,
      });
      const perResult = new Map<string, number>();
      for (const log of logs) perResult.set(log.topics[1]!, (perResult.get(log.topics[1]!) ?? 0) + 1);
      expect(perResult.size).toBe(submitted.length);
      for (const { runId } of submitted) expect(perResult.get(runId)).toBe(1);

      const domainSeparator = (await registry.getFunction("domainSeparator")()) as string;
      const signersOf = new Map<string, { block: number; signers: string[] }>();
      for (const log of logs) {
        const sent = await chain.node.provider.getTransaction(log.transactionHash);
        const call = ledgerAbi.decodeFunctionData("record", sent!.data);
        const r = call[0] as unknown[];
        const result = {
          resultId: r[0],
          cryptletId: r[1],
          codeHash: r[2],
          inputHash: r[3],
          outputHash: r[4],
          timestamp: r[5],
        };
        const digest = keccak256(
          concat(["0x1901", domainSeparator, TypedDataEncoder.hashStruct("CryptletResult", RESULT_TYPES, result)]),
        );
        const signers = (call[2] as string[]).map((s) => getAddress(recoverAddress(digest, s)));
        signersOf.set(log.topics[1]!, { block: log.blockNumber, signers });
      }
      const before = [...signersOf.values()].filter((s) => s.block < rotationBlock);
      const after = [...signersOf.values()].filter((s) => s.block > rotationBlock);
      for (const s of before) expect(s.signers.sort()).toEqual([oldAddress, otherAddress].sort());
      for (const s of after) expect(s.signers.sort()).toEqual([newAddress, otherAddress].sort());
      // The window's runs were recorded before rotateSigner, by the old key; later runs by the new one.
      for (const runId of completedInWindow) {
        expect(signersOf.get(runId)!.block).toBeLessThan(rotationBlock);
        expect(signersOf.get(runId)!.signers).toContain(oldAddress);
      }
      expect(before.length).toBeGreaterThanOrEqual(8);
      expect(after.length).toBeGreaterThanOrEqual(5);
      for (const runId of afterRuns()) expect(signersOf.get(runId)!.signers).toContain(newAddress);

      // The results whose record transaction reverted in the rotation's block were signed again and recorded once
      // afterwards, by the new key.
      const revertedResults = new Set<string>();
      for (const hash of reverted) {
        const sent = await rpc.getTransaction(hash);
        revertedResults.add((ledgerAbi.decodeFunctionData("record", sent!.data)[0] as string[])[0]!);
      }
      for (const resultId of revertedResults) {
        expect(signersOf.get(resultId)!.block).toBeGreaterThan(rotationBlock);
        expect(signersOf.get(resultId)!.signers).toContain(newAddress);
        expect((await stack.ctx.results.getAttested(resultId))!.resigned).toBeGreaterThanOrEqual(1);
      }

      // The proof bundles carry the signatures that were written (re-signed ones included).
      for (const { runId } of submitted) {
        const attested = await stack.ctx.results.getAttested(runId);
        const onChain = signersOf.get(runId)!.signers;
        expect(attested!.bundle.signatures.map((s) => getAddress(s.signer)).sort()).toEqual([...onChain].sort());
      }
    } finally {
      stop = true;
      await loop.catch(() => undefined);
    }
    expect(await stopWorker(worker)).toBe(0);
  }, 300_000);
});
