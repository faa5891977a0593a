/**
 * Anchor mode's ceiling: results per second through the {@link AnchorBatcher} alone (enqueue → Lua close → Merkle
 * tree → 2-of-2 EIP-712 batch signatures → `ResultLedger.anchor` through the ChainWriter → per-result proof
 * records), excluding the sandbox and the queues; and gas per result (anchor transaction `gasUsed` / batch size)
 * at 64, 256 and 1,024 results per batch. Runs on a `hardhat node` (automine) over JSON-RPC and the local Redis.
 * Writes docs/benchmarks.md section "anchor".
 *
 * Run: `npm run bench:anchor` (about 30 s).
 */
import { loadavg } from "node:os";

import { Contract, Wallet, id, keccak256, toUtf8Bytes } from "ethers";
import { Redis } from "ioredis";

import { computeResultId, type CryptletResult, type Hex32 } from "../../runtime/attestation/eip712.ts";
import { buildMerkleBatch } from "../../runtime/attestation/merkle.ts";
import { AnchorBatcher } from "../../runtime/chains/anchor.ts";
import { parseChainsConfig } from "../../runtime/chains/config.ts";
import { deployCryptletContracts, interfaceOf } from "../../runtime/chains/contracts.ts";
import { ChainWriter } from "../../runtime/chains/writer.ts";
import { startHardhatNode } from "../../test/support/hardhatNode.ts";
import { writeBenchSection } from "./report.ts";

const RESULTS = Number(process.env.BENCH_ANCHOR_RESULTS ?? 10_000);
const CONSORTIUM_ID = id("bench-consortium") as Hex32;
const CRYPTLET = keccak256(toUtf8Bytes("@bench/anchor")) as Hex32;
const CODE = id("bench-code") as Hex32;

const signers = [0, 1].map((i) => new Wallet(id(`cryptlet-bench-signer-${i}`)));
const node = await startHardhatNode(71_099);
const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
const prefix = `bench-anchor-${process.pid}-${Date.now()}`;
const writers: ChainWriter[] = [];
let n = 0;

function results(count: number): CryptletResult[] {
  return Array.from({ length: count }, () => {
    const i = n++;
    return {
      resultId: computeResultId(CRYPTLET, id(`${prefix}-${i}`) as Hex32),
      cryptletId: CRYPTLET,
      codeHash: CODE,
      inputHash: id(`input-${i}`) as Hex32,
      outputHash: id(`output-${i}`) as Hex32,
      timestamp: 1_700_000_000n + BigInt(i),
    };
  });
}

try {
  const addresses = await deployCryptletContracts(node.funder, {
    consortiumId: CONSORTIUM_ID,
    signers: signers.map((w) => w.address),
    threshold: 2,
  });
  const registry = new Contract(addresses.registry, interfaceOf("CryptletRegistry"), node.funder);
  await (await registry.getFunction("approveCodeHash")(CRYPTLET, CODE)).wait();

  async function batcher(maxBatchSize: number, label: string): Promise<AnchorBatcher> {
    const [chain] = parseChainsConfig({
      chains: [
        {
          name: "bench",
          chainId: 71_099,
          rpcUrl: node.url,
          pollIntervalMs: 10,
          signer: { type: "local", jwkPath: "unused.jwk" },
          contracts: { ledger: addresses.ledger },
          anchor: { maxBatchSize, maxBatchDelayMs: 60_000 },
        },
      ],
    }).chains;
    const relayer = Wallet.createRandom();
    await node.fund(relayer.address, "10000");
    const writer = new ChainWriter({ chain: chain!, signer: new Wallet(relayer.privateKey), redis, prefix });
    writers.push(writer);
    return new AnchorBatcher({
      writer,
      redis,
      prefix: `${prefix}:${label}`,
      consortiumId: CONSORTIUM_ID,
      signers,
    });
  }

  // Throughput: 10,000 results at 256 per batch.
  const throughput = await batcher(256, "throughput");
  await throughput.enqueueMany(results(256)); // warm-up: JIT, connections, first nonce
  await throughput.flush({ force: true });
  const list = results(RESULTS);
  const loadBefore = loadavg()[0]!;
  const started = performance.now();
  await throughput.enqueueMany(list);
  const enqueued = performance.now();
  const outcomes = await throughput.flush({ force: true });
  const finished = performance.now();
  const anchored = outcomes.filter((o) => o.status === "anchored");
  if (anchored.reduce((sum, o) => sum + (o.status === "anchored" ? o.count : 0), 0) !== RESULTS) {
    throw new Error(
      `expected ${RESULTS} anchored results, got outcomes ${JSON.stringify(outcomes.map((o) => o.status))}`,
    );
  }
  const last = await throughput.anchorOf(list[RESULTS - 1]!.resultId);
  if (!last) throw new Error("last result has no anchor record");
  const totalS = (finished - started) / 1000;
  console.log(
    `${RESULTS} results, ${anchored.length} batches: enqueue ${(enqueued - started).toFixed(0)} ms, ` +
      `close+sign+anchor ${(finished - enqueued).toFixed(0)} ms, ${(RESULTS / totalS).toFixed(0)} results/s`,
  );

  // One Merkle batch of 256 (EIP-712 struct hashes, the tree, 256 proofs), after one warm-up batch.
  const sample = results(256);
  buildMerkleBatch(sample);
  const treeStart = performance.now();
  for (let i = 0; i < 5; i += 1) buildMerkleBatch(sample);
  const treeMs = (performance.now() - treeStart) / 5;
  console.log(`buildMerkleBatch(256): ${treeMs.toFixed(0)} ms`);

  // Gas per result by batch size.
  const gas: { size: number; gasUsed: bigint; perResult: number }[] = [];
  for (const size of [64, 256, 1024]) {
    const b = await batcher(size, `gas-${size}`);
    await b.enqueueMany(results(size));
    const [outcome] = await b.flush({ force: true });
    if (outcome?.status !== "anchored") throw new Error(`batch of ${size} not anchored`);
    const gasUsed = BigInt(outcome.anchor.gasUsed);
    gas.push({ size, gasUsed, perResult: Number(gasUsed) / size });
    console.log(`batch ${size}: anchor gasUsed ${gasUsed}, ${(Number(gasUsed) / size).toFixed(1)} gas/result`);
  }

  writeBenchSection(
    "anchor",
    "Anchor mode (AnchorBatcher → ChainWriter → ResultLedger.anchor)",
    "npm run bench:anchor",
    [
      `Hardhat node (automine) over JSON-RPC on loopback, local Redis, 2-of-2 batch signatures with local`,
      `ethers Wallets, 1 relayer, \`concurrency\` 4 batches in flight, 1 confirmation. Excludes the sandbox and the`,
      `queues: this is the ceiling of anchor mode on this machine.`,
      "",
      "| measure | value |",
      "| --- | --- |",
      `| results enqueued and anchored | ${RESULTS} in ${anchored.length} batches of ≤ 256 |`,
      `| enqueue (Lua, pipelined) | ${(enqueued - started).toFixed(0)} ms (${((RESULTS / (enqueued - started)) * 1000).toFixed(0)} results/s) |`,
      `| close + Merkle + sign + anchor + proof records | ${(finished - enqueued).toFixed(0)} ms |`,
      `| **end to end through the batcher** | **${(RESULTS / totalS).toFixed(0)} results/s** (${(totalS * 1000).toFixed(0)} ms) |`,
      "",
      "| results per batch | anchor tx gasUsed | gas per result |",
      "| ---: | ---: | ---: |",
      ...gas.map((g) => `| ${g.size} | ${g.gasUsed} | ${g.perResult.toFixed(1)} |`),
      "",
      `\`buildMerkleBatch\` (runtime/attestation/merkle.ts: EIP-712 struct hashes computed directly, a linear-time`,
      `tree over bytes in OpenZeppelin StandardMerkleTree's layout, every proof) took ${treeMs.toFixed(0)} ms for a batch of 256`,
      `in this run; close + Merkle + sign + anchor + proof records took ${((finished - enqueued) / anchored.length).toFixed(0)} ms per batch on average`,
      "with 4 batches in flight (their chain round trips overlap).",
      `Load average (1 min) ${loadBefore.toFixed(1)} when the run started and ${loadavg()[0]!.toFixed(1)} when it ended, on this`,
      "machine's cores (other work shares them; figures vary).",
      "",
      "Gas per batch is nearly constant (21,000 intrinsic, calldata of two signatures, two `ecrecover`s and one",
      "new storage slot), so gas per result falls with the batch size; the target ≤ 1,500 gas per result at 256",
      "is met with a wide margin.",
    ].join("\n"),
  );
} finally {
  for (const w of writers) w.rpc.destroy();
  const keys = await redis.keys(`${prefix}*`);
  for (let i = 0; i < keys.length; i += 1000) await redis.del(...keys.slice(i, i + 1000));
  await redis.quit();
  await node.stop();
}
