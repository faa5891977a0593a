/**
 * The chain writer alone: `record` writes per second through {@link ChainWriter} with its relayer key in the Key
 * Vault emulator (a signature over HTTPS per transaction, as in production), on a `hardhat node` (automine, 1
 * confirmation) over JSON-RPC and the local Redis, beside the same node's plain ingest. Every write of a row is
 * started at once; a row ends when the last is confirmed. Rows: 1 and 4 relayer keys (lanes), with the vault on this
 * machine and one network round trip away (a delaying TCP proxy in front of the emulator). Also the Key Vault
 * signature's own latency, and how long each write held its lane's lock. Checks the chain: one `ResultRecorded`
 * per write and one transaction per write from the relayer keys.
 * Writes docs/benchmarks.md section "writer".
 *
 * Run: `npm run bench:writer` (about a minute).
 */
import { loadavg } from "node:os";

import { DefaultAzureCredential } from "@azure/identity";
import { KeyClient } from "@azure/keyvault-keys";
import { Contract, Wallet, id, keccak256, toUtf8Bytes } from "ethers";
import { Redis } from "ioredis";

import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import { parseChainsConfig } from "../../runtime/chains/config.ts";
import { deployCryptletContracts, interfaceOf } from "../../runtime/chains/contracts.ts";
import { Lane } from "../../runtime/chains/lane.ts";
import { ChainWriter, type WriteRequest } from "../../runtime/chains/writer.ts";
import { AzureKeyVaultProvider } from "../../runtime/keys/AzureKeyVaultProvider.ts";
import { KeyVaultSigner } from "../../runtime/keys/KeyVaultSigner.ts";
import { startHardhatNode } from "../../test/support/hardhatNode.ts";
import { startTestVault } from "../../test/support/keyvault.ts";
import { startTcpProxy } from "../../test/support/tcpProxy.ts";
import { makeResult, signResult } from "../../test/support/contracts.ts";
import { plainIngest } from "./ingest.ts";
import { writeBenchSection } from "./report.ts";

const WRITES = Number(process.env.BENCH_WRITER_WRITES ?? 400);
/** The Key Vault's added round trip in the "remote" rows, milliseconds (a TCP proxy delays each direction by half). */
const REMOTE_RTT_MS = Number(process.env.BENCH_WRITER_RTT_MS ?? 20);
const CHAIN_ID = 71_201;
const CONSORTIUM_ID = id("bench-writer-consortium") as Hex32;
const CRYPTLET = keccak256(toUtf8Bytes("@bench/writer")) as Hex32;
const CODE = id("bench-writer-code") as Hex32;

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

const resultSigners = [0, 1].map((i) => new Wallet(id(`cryptlet-bench-writer-signer-${i}`)));
const node = await startHardhatNode(CHAIN_ID);
const vault = await startTestVault();
const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
const prefix = `bench-writer-${process.pid}-${Date.now()}`;
const load: { start: number[]; end?: number[] } = { start: loadavg() };

/** Lock holds (ms) of every lane, measured around `Lane.withLock`'s callback. */
const holds: number[] = [];
const withLock = Lane.prototype.withLock;
Lane.prototype.withLock = function <T>(this: Lane, fn: (token: string) => Promise<T>, options?: object) {
  return withLock.call(
    this,
    async (token: string) => {
      const started = performance.now();
      try {
        return await fn(token);
      } finally {
        holds.push(performance.now() - started);
      }
    },
    options,
  ) as Promise<T>;
};

try {
  const addresses = await deployCryptletContracts(node.funder, {
    consortiumId: CONSORTIUM_ID,
    signers: resultSigners.map((w) => w.address),
    threshold: 2,
  });
  const registry = new Contract(addresses.registry, interfaceOf("CryptletRegistry"), node.funder);
  await (await registry.getFunction("approveCodeHash")(CRYPTLET, CODE)).wait();
  const ledger = new Contract(addresses.ledger, interfaceOf("ResultLedger"), node.provider);

  const credential = new DefaultAzureCredential();
  const keys = new KeyClient(vault.vaultUrl, credential, vault.clientOptions);
  const keyNames = ["writer-0", "writer-1", "writer-2", "writer-3"];
  await Promise.all(keyNames.map((name) => keys.createEcKey(name, { curve: "P-256K" })));
  const signersAt = (vaultUrl: string) =>
    keyNames.map(
      (keyName) =>
        new KeyVaultSigner(
          new AzureKeyVaultProvider({ vaultUrl, keyName, credential, clientOptions: vault.clientOptions }),
        ),
    );
  const signers = signersAt(vault.vaultUrl);
  // The same vault one network round trip away: a TCP proxy in front of the emulator (TLS passes through it).
  const remote = new URL(vault.vaultUrl);
  const proxy = await startTcpProxy(Number(remote.port), { delayMs: REMOTE_RTT_MS });
  remote.port = String(proxy.port);
  const remoteSigners = signersAt(remote.toString());
  for (const signer of signers) await node.fund(await signer.getAddress());

  // The Key Vault signature alone (one transaction's signature over HTTPS), sequential.
  const signLatency = async (signer: KeyVaultSigner): Promise<number[]> => {
    const latencies: number[] = [];
    for (let i = 0; i < 50; i++) {
      const started = performance.now();
      await signer.signTransaction({ chainId: CHAIN_ID, to: ledger.target as string, nonce: i, gasLimit: 21_000n });
      latencies.push(performance.now() - started);
    }
    return latencies.sort((a, b) => a - b);
  };
  const signLatencies = await signLatency(signers[0]!);
  const remoteSignLatencies = await signLatency(remoteSigners[0]!);

  const ingest = await plainIngest(node);
  console.log(JSON.stringify({ plainTransfersPerSecond: ingest }));

  let sequence = 0;
  async function recordWrite(): Promise<WriteRequest & { resultId: string }> {
    const label = `${prefix}-${sequence++}`;
    const payload = keccak256(toUtf8Bytes(label));
    const result = makeResult(CRYPTLET, id(label) as Hex32, CODE, payload);
    const signatures = await signResult(resultSigners, result, CONSORTIUM_ID);
    return {
      idempotencyKey: `record:bench:${result.resultId}`,
      to: ledger.target as string,
      data: interfaceOf("ResultLedger").encodeFunctionData("record", [result, payload, signatures]),
      contract: "ResultLedger",
      method: "record",
      isRecorded: () => ledger.getFunction("isRecorded")(result.resultId) as Promise<boolean>,
      resultId: result.resultId,
    };
  }

  interface Row {
    vault: string;
    lanes: number;
    writes: number;
    perSecond: number;
    p50: number;
    p99: number;
    holdP50: number;
    holdP99: number;
  }
  const rows: Row[] = [];
  const settings = [
    { vault: "local", signers, lanes: 1 },
    { vault: "local", signers, lanes: 4 },
    { vault: `+${REMOTE_RTT_MS} ms`, signers: remoteSigners, lanes: 1 },
    { vault: `+${REMOTE_RTT_MS} ms`, signers: remoteSigners, lanes: 4 },
  ];
  for (const [index, { vault: where, signers: relayers, lanes }] of settings.entries()) {
    const [chain] = parseChainsConfig({
      chains: [
        {
          name: "bench",
          chainId: CHAIN_ID,
          rpcUrl: node.url,
          confirmations: 1,
          pollIntervalMs: 20,
          signer: { type: "local", jwkPath: "unused.jwk" },
          contracts: { ledger: ledger.target as string },
        },
      ],
    }).chains;
    const writer = new ChainWriter({
      chain: chain!,
      signer: relayers.slice(0, lanes),
      redis,
      prefix: `${prefix}-${index}`,
    });
    await writer.start();
    const requests = await Promise.all(Array.from({ length: WRITES }, () => recordWrite()));
    const before = await Promise.all(
      relayers.slice(0, lanes).map(async (s) => node.provider.getTransactionCount(await s.getAddress())),
    );
    holds.length = 0;
    const latencies: number[] = [];
    const started = performance.now();
    await Promise.all(
      requests.map(async (request) => {
        const t0 = performance.now();
        const receipt = await writer.write(request);
        if (receipt.status !== "confirmed") throw new Error(`write ${request.idempotencyKey}: ${receipt.status}`);
        latencies.push(performance.now() - t0);
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    // The chain itself: one record per write, one transaction per write from the relayer keys.
    const after = await Promise.all(
      relayers.slice(0, lanes).map(async (s) => node.provider.getTransactionCount(await s.getAddress())),
    );
    const sent = after.reduce((sum, n, i) => sum + n - before[i]!, 0);
    if (sent !== WRITES) throw new Error(`${lanes} lane(s): ${sent} transactions for ${WRITES} writes`);
    for (const request of requests.slice(0, 20)) {
      if (!(await request.isRecorded())) throw new Error(`result ${request.resultId} is not recorded`);
    }
    latencies.sort((a, b) => a - b);
    const sortedHolds = [...holds].sort((a, b) => a - b);
    const row = {
      vault: where,
      lanes,
      writes: WRITES,
      perSecond: WRITES / seconds,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      holdP50: percentile(sortedHolds, 50),
      holdP99: percentile(sortedHolds, 99),
    };
    console.log(JSON.stringify(row));
    rows.push(row);
  }
  load.end = loadavg();
  await proxy.close();

  const ms = (v: number) => `${v.toFixed(1)} ms`;
  const markdown = `
Machine load (1 / 5 / 15-minute load average): ${load.start.map((v) => v.toFixed(2)).join(" / ")} at the start,
${load.end!.map((v) => v.toFixed(2)).join(" / ")} at the end.

\`record\` writes through \`ChainWriter\` alone (no sandbox, no queues): each write is a \`ResultLedger.record\`
with two EIP-712 result signatures made beforehand; its transaction is signed by a relayer key in the Key Vault
emulator over HTTPS (as in production) and sent to a \`hardhat node\` (automine, 1 confirmation, JSON-RPC). All ${WRITES}
writes of a row start at once; throughput = writes / time to the last confirmation. The bench checks on the chain
one transaction per write from the relayer keys. Lock hold = the time a write's step held its lane's lock
(\`Lane.withLock\`).

Plain ingest, the reference: the same node mined **${ingest.toFixed(0)} plain transfers/s** (600 transfers signed
beforehand, 32 JSON-RPC calls in flight). A Key Vault transaction signature took ${ms(percentile(signLatencies, 50))}
at p50 and ${ms(percentile(signLatencies, 99))} at p99 from the emulator on this machine ("local"), and
${ms(percentile(remoteSignLatencies, 50))} / ${ms(percentile(remoteSignLatencies, 99))} through a TCP proxy that adds
${REMOTE_RTT_MS} ms to each round trip ("+${REMOTE_RTT_MS} ms": a vault across a network; 50 sequential each).

| Key Vault | relayer keys (lanes) | writes | writes/s | of plain ingest | latency p50 / p99 | lock hold p50 / p99 |
| --------- | -------------------: | -----: | -------: | --------------: | ----------------- | ------------------- |
${rows
  .map(
    (r) =>
      `| ${r.vault} | ${r.lanes} | ${r.writes} | ${r.perSecond.toFixed(1)} | ${((100 * r.perSecond) / ingest).toFixed(1)} % | ${ms(r.p50)} / ${ms(r.p99)} | ${ms(r.holdP50)} / ${ms(r.holdP99)} |`,
  )
  .join("\n")}
`;
  writeBenchSection("writer", "Chain writer: record writes per second", "npm run bench:writer", markdown);
} finally {
  await redis.quit();
  await vault.close();
  await node.stop();
}
