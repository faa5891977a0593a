import { Contract, Wallet, id, keccak256, toUtf8Bytes } from "ethers";
import { Redis } from "ioredis";

import { bundleResultToStruct, type BundleResult } from "../../runtime/attestation/bundle.ts";
import { resultBatchDigest, type CryptletResult, type Hex32 } from "../../runtime/attestation/eip712.ts";
import { verifyMerkleProof } from "../../runtime/attestation/merkle.ts";
import { evaluateSignatures, signResultBatch } from "../../runtime/attestation/signing.ts";
import { AnchorBatcher, type AnchorRecord } from "../../runtime/chains/anchor.ts";
import { parseChainsConfig, type ChainConfig } from "../../runtime/chains/config.ts";
import { deployCryptletContracts, interfaceOf, type DeployedContracts } from "../../runtime/chains/contracts.ts";
import { anchorWriteRequest, targetOf } from "../../runtime/chains/targets.ts";
import { ChainWriter } from "../../runtime/chains/writer.ts";
import { isCryptletError } from "../../runtime/errors.ts";
import { CONSORTIUM_ID, cryptletIdOf, makeResult, testWallets } from "../support/contracts.ts";
import { startHardhatNode, type HardhatNode } from "../support/hardhatNode.ts";

const CHAIN_ID = 71_021;
const CODE = id("anchor-code") as Hex32;
const CRYPTLET = cryptletIdOf("@test/anchor");

describe("AnchorBatcher on a hardhat node and Redis", () => {
  let node: HardhatNode;
  let redis: Redis;
  let addresses: DeployedContracts;
  let ledger: Contract;
  const signers = testWallets(2);
  const runId = `${process.pid}-${Date.now()}`;
  const prefixes: string[] = [];
  const writers: ChainWriter[] = [];
  let counter = 0;

  beforeAll(async () => {
    node = await startHardhatNode(CHAIN_ID);
    redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
    addresses = await deployCryptletContracts(node.funder, {
      consortiumId: CONSORTIUM_ID,
      signers: signers.map((w) => w.address),
      threshold: 2,
    });
    const registry = new Contract(addresses.registry, interfaceOf("CryptletRegistry"), node.funder);
    await (await registry.getFunction("approveCodeHash")(CRYPTLET, CODE)).wait();
    ledger = new Contract(addresses.ledger, interfaceOf("ResultLedger"), node.provider);
  }, 90_000);

  afterAll(async () => {
    for (const w of writers) w.rpc.destroy();
    for (const prefix of prefixes) {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
    }
    await redis.quit();
    await node?.stop();
  });

  function chainConfig(anchor: Partial<ChainConfig["anchor"]>): ChainConfig {
    const [chain] = parseChainsConfig({
      chains: [
        {
          name: "beta",
          chainId: CHAIN_ID,
          rpcUrl: node.url,
          pollIntervalMs: 20,
          signer: { type: "local", jwkPath: "unused.jwk" },
          contracts: { ledger: addresses.ledger },
          anchor,
        },
      ],
    }).chains;
    return chain!;
  }

  function newPrefix(): string {
    const prefix = `test-anchor-${runId}-${prefixes.length}`;
    prefixes.push(prefix);
    return prefix;
  }

  async function newRelayer(): Promise<Wallet> {
    const wallet = Wallet.createRandom();
    await node.fund(wallet.address);
    return new Wallet(wallet.privateKey);
  }

  function batcher(
    prefix: string,
    chain: ChainConfig,
    relayer: Wallet,
    resultSigners: readonly Wallet[] = signers,
  ): AnchorBatcher {
    const writer = new ChainWriter({ chain, signer: relayer, redis, prefix });
    writers.push(writer);
    return new AnchorBatcher({ writer, redis, prefix, consortiumId: CONSORTIUM_ID, signers: resultSigners });
  }

  function results(count: number): CryptletResult[] {
    return Array.from({ length: count }, () => {
      const n = counter++;
      return makeResult(CRYPTLET, id(`${runId}-request-${n}`) as Hex32, CODE, keccak256(toUtf8Bytes(`out-${n}`)));
    });
  }

  /** BatchAnchored events per root on the ledger. */
  async function anchoredRoots(): Promise<Map<string, number>> {
    const logs = await node.provider.getLogs({
      address: addresses.ledger,
      topics: [interfaceOf("ResultLedger").getEvent("BatchAnchored")!.topicHash],
      fromBlock: 0,
    });
    const counts = new Map<string, number>();
    for (const log of logs) counts.set(log.topics[1]!, (counts.get(log.topics[1]!) ?? 0) + 1);
    return counts;
  }

  /** Checks every record: on-chain `verify` (chunked), offline proof, batch signatures, receipt fields. */
  async function checkRecords(list: CryptletResult[], records: AnchorRecord[]): Promise<void> {
    for (let i = 0; i < list.length; i += 100) {
      const chunk = list.slice(i, i + 100);
      const verdicts = await Promise.all(
        chunk.map((r, j) =>
          ledger.getFunction("verify")({ ...r }, records[i + j]!.batch.proof, records[i + j]!.batch.root),
        ),
      );
      expect(verdicts.every((v) => v === true)).toBe(true);
    }
    const byRoot = new Map<string, AnchorRecord>();
    for (const [i, record] of records.entries()) {
      expect(record.resultId.toLowerCase()).toBe(list[i]!.resultId.toLowerCase());
      expect(verifyMerkleProof(record.batch.root, list[i]!, record.batch.proof)).toBe(true);
      byRoot.set(record.batch.root, record);
    }
    for (const record of byRoot.values()) {
      const digest = resultBatchDigest(CONSORTIUM_ID, {
        root: record.batch.root,
        count: record.batch.count,
        timestamp: BigInt(record.batch.timestamp),
      });
      const evaluation = evaluateSignatures(
        digest,
        record.batch.signatures,
        signers.map((s) => s.address),
        2,
      );
      expect(evaluation.met).toBe(true);
      const receipt = await node.provider.getTransactionReceipt(record.anchor.txHash);
      expect(receipt!.blockHash).toBe(record.anchor.blockHash);
      expect(receipt!.blockNumber.toString()).toBe(record.anchor.blockNumber);
      expect(receipt!.gasUsed.toString()).toBe(record.anchor.gasUsed);
      expect(record.anchor).toMatchObject({ chainId: String(CHAIN_ID), contract: addresses.ledger, mode: "anchor" });
      const onChain = (await ledger.getFunction("anchorOf")(record.batch.root)) as { count: bigint; timestamp: bigint };
      expect(onChain.count).toBe(BigInt(record.batch.count));
      expect(onChain.timestamp.toString()).toBe(record.batch.timestamp);
    }
  }

  async function recordsOf(b: AnchorBatcher, list: CryptletResult[]): Promise<AnchorRecord[]> {
    const records = await Promise.all(list.map((r) => b.anchorOf(r.resultId)));
    expect(records.every((r) => r !== undefined)).toBe(true);
    return records as AnchorRecord[];
  }

  test("1,000 results at 256 per batch: 4 anchors (256, 256, 256, 232), every proof verifies on-chain, none in two batches", async () => {
    const b = batcher(newPrefix(), chainConfig({ maxBatchSize: 256, maxBatchDelayMs: 60_000 }), await newRelayer());
    const list = results(1000);
    expect(new Set(await b.enqueueMany(list))).toEqual(new Set(["queued"]));
    expect(await b.enqueueMany(list.slice(0, 10))).toEqual(Array(10).fill("duplicate"));
    expect(await b.statusOf(list[0]!.resultId)).toBe("pending");

    const before = await anchoredRoots();
    const bySize = await b.flush(); // only full batches are due
    expect(bySize.map((o) => o.status)).toEqual(["anchored", "anchored", "anchored"]);
    const statuses = await Promise.all(list.map((r) => b.statusOf(r.resultId)));
    expect(statuses.filter((s) => s === "pending")).toHaveLength(232);
    expect(statuses.filter((s) => s === "anchored")).toHaveLength(768);
    expect(await b.enqueue(list[0]!)).toBe("duplicate"); // anchored already: never batched again
    const rest = await b.flush({ force: true });
    expect(rest.map((o) => o.status)).toEqual(["anchored"]);
    const counts = [...bySize, ...rest].map((o) => (o.status === "anchored" ? o.count : 0));
    expect(counts).toEqual([256, 256, 256, 232]);

    const after = await anchoredRoots();
    expect(after.size - before.size).toBe(4);
    for (const o of [...bySize, ...rest]) if (o.status === "anchored") expect(after.get(o.root)).toBe(1);

    const records = await recordsOf(b, list);
    const perBatch = new Map<number, number>();
    for (const r of records) perBatch.set(r.seq, (perBatch.get(r.seq) ?? 0) + 1);
    expect([...perBatch.values()].sort()).toEqual([232, 256, 256, 256]);
    await checkRecords(list, records);
    expect(await b.statusOf(list[0]!.resultId)).toBe("anchored");
    expect(await b.flush({ force: true })).toEqual([]);
  });

  test("time-based close: a partial batch closes maxBatchDelayMs after its oldest result; run() + waitForAnchor", async () => {
    const b = batcher(newPrefix(), chainConfig({ maxBatchSize: 256, maxBatchDelayMs: 400 }), await newRelayer());
    const first = results(5);
    await b.enqueueMany(first);
    expect(await b.flush()).toEqual([]);
    expect(await b.nextDueInMs()).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 450));
    expect(await b.nextDueInMs()).toBe(0);
    const outcomes = await b.flush();
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]).toMatchObject({ status: "anchored", count: 5 });
    await checkRecords(first, await recordsOf(b, first));

    const controller = new AbortController();
    const worker = b.run(controller.signal, { idleMs: 50 });
    const second = results(3);
    const started = Date.now();
    await b.enqueueMany(second);
    const records = await Promise.all(second.map((r) => b.waitForAnchor(r.resultId, 10_000)));
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    expect(new Set(records.map((r) => r.batch.root)).size).toBe(1);
    controller.abort();
    await worker;
    await checkRecords(second, records);

    let caught: unknown;
    try {
      await b.waitForAnchor(id("never-enqueued"), 100);
    } catch (e) {
      caught = e;
    }
    expect(isCryptletError(caught, "ERR_ANCHOR_TIMEOUT")).toBe(true);
    expect((caught as { details: { status: string } }).details.status).toBe("unknown");
  });

  test("crash after close, and crash after the anchor transaction was sent: the next flush anywhere lands each batch once", async () => {
    const prefix = newPrefix();
    const chain = chainConfig({ maxBatchSize: 50, maxBatchDelayMs: 60_000 });
    const relayer = await newRelayer();
    const crashed = batcher(prefix, chain, relayer);
    const list = results(120);
    await crashed.enqueueMany(list);
    const seqs = await crashed.close({ force: true }); // closed, then the process "dies"
    expect(seqs).toHaveLength(3);
    expect(await crashed.statusOf(list[0]!.resultId)).toBe("batched");

    // Simulate a process that died right after its anchor transaction for batch 1 was confirmed, before storing
    // the records: the same signed batch written under the same idempotency key by the same relayer lane.
    const base = `${prefix}:{anchor:beta}:batch:${seqs[0]}`;
    const batch1 = (await redis.lrange(`${base}:results`, 0, -1)).map((json) =>
      bundleResultToStruct(JSON.parse(json) as BundleResult),
    );
    expect(batch1).toHaveLength(50);
    const closedAt = Number(await redis.hget(base, "closedAt"));
    const signed = await signResultBatch(CONSORTIUM_ID, batch1, signers, BigInt(Math.floor(closedAt / 1000)));
    const writer = new ChainWriter({ chain, signer: relayer, redis, prefix });
    writers.push(writer);
    const sent = await writer.write(
      anchorWriteRequest(targetOf(chain, "anchor"), signed.batch, signed.signatures, { reader: writer.rpc }),
    );
    expect(sent.status).toBe("confirmed");

    // A fresh process with the same relayer, and one with another relayer, flush concurrently.
    const [a, b] = [batcher(prefix, chain, relayer), batcher(prefix, chain, await newRelayer())];
    const outcomes = [...(await Promise.all([a.flush(), b.flush()])).flat()];
    const anchored = outcomes.filter((o) => o.status === "anchored");
    expect(anchored.map((o) => o.seq).sort()).toEqual(seqs);
    const first = anchored.find((o) => o.seq === seqs[0])!;
    expect(first.status === "anchored" && first.anchor.txHash).toBe(sent.txHash); // resumed, not re-sent

    const roots = await anchoredRoots();
    for (const o of anchored) if (o.status === "anchored") expect(roots.get(o.root)).toBe(1);
    expect(roots.get(signed.batch.root)).toBe(1);
    await checkRecords(list, await recordsOf(a, list));
    expect(await crashed.flush({ force: true })).toEqual([]);
  });

  test("two batchers flushing concurrently: one anchor per batch, each result in one batch", async () => {
    const prefix = newPrefix();
    const chain = chainConfig({ maxBatchSize: 100, maxBatchDelayMs: 60_000 });
    const [a, b] = [batcher(prefix, chain, await newRelayer()), batcher(prefix, chain, await newRelayer())];
    const list = results(600);
    await Promise.all([a.enqueueMany(list.slice(0, 300)), b.enqueueMany(list.slice(300))]);
    const [fromA, fromB] = await Promise.all([a.flush({ force: true }), b.flush({ force: true })]);
    const anchored = [...fromA, ...fromB].filter((o) => o.status === "anchored");
    expect(anchored).toHaveLength(6);
    expect(new Set(anchored.map((o) => o.seq)).size).toBe(6);
    const roots = await anchoredRoots();
    for (const o of anchored) if (o.status === "anchored") expect(roots.get(o.root)).toBe(1);
    const records = await recordsOf(a, list);
    expect(new Set(records.map((r) => r.seq)).size).toBe(6);
    await checkRecords(list, records);
  });

  test("a reverting batch (signatures below threshold) fails with a typed error and stays retryable", async () => {
    const prefix = newPrefix();
    const chain = chainConfig({ maxBatchSize: 256, maxBatchDelayMs: 60_000 });
    const weak = batcher(prefix, chain, await newRelayer(), signers.slice(0, 1));
    const list = results(20);
    await weak.enqueueMany(list);
    const [failed] = await weak.flush({ force: true });
    expect(failed!.status).toBe("failed");
    const error = failed!.status === "failed" ? failed!.error : undefined;
    expect(isCryptletError(error, "ERR_ANCHOR_BATCH_FAILED")).toBe(true);
    expect(error!.details).toMatchObject({ reason: "ERR_CHAIN_REVERTED", revert: "CryptletProofThresholdNotMet" });
    expect(isCryptletError(error!.cause, "ERR_CHAIN_REVERTED")).toBe(true);
    expect(await weak.statusOf(list[0]!.resultId)).toBe("batched");
    // Backoff: a plain flush leaves it alone; the batch is still open.
    expect(await weak.flush()).toEqual([{ seq: failed!.seq, status: "skipped", reason: "backoff" }]);

    const fixed = batcher(prefix, chain, await newRelayer());
    const [retried] = await fixed.flush({ force: true });
    expect(retried).toMatchObject({ seq: failed!.seq, status: "anchored", count: 20 });
    await checkRecords(list, await recordsOf(fixed, list));
  });

  test("bad input: malformed results, conflicting results with one id, and no signers are refused with codes", async () => {
    const b = batcher(newPrefix(), chainConfig({ maxBatchSize: 10, maxBatchDelayMs: 1000 }), await newRelayer());
    const [result] = results(1);
    await b.enqueue(result!);
    const cases: [string, () => Promise<unknown>][] = [
      ["ERR_CHAIN_WRITE_INVALID", () => b.enqueue({ ...result!, outputHash: "0x1234" })],
      ["ERR_ANCHOR_RESULT_CONFLICT", () => b.enqueue({ ...result!, outputHash: id("other") as Hex32 })],
      [
        "ERR_ANCHOR_CONFIG_INVALID",
        async () => new AnchorBatcher({ writer: writers[0]!, redis, consortiumId: CONSORTIUM_ID, signers: [] }),
      ],
    ];
    for (const [code, action] of cases) {
      let caught: unknown;
      try {
        await action();
      } catch (e) {
        caught = e;
      }
      expect(isCryptletError(caught, code)).toBe(true);
    }
  });
});
