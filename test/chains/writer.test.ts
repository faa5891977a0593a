import { createHash } from "node:crypto";

import { Contract, Wallet, id, keccak256, toUtf8Bytes } from "ethers";
import { Redis } from "ioredis";

import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import { parseChainsConfig, type ChainConfig } from "../../runtime/chains/config.ts";
import { deployCryptletContracts, interfaceOf } from "../../runtime/chains/contracts.ts";
import { Lane } from "../../runtime/chains/lane.ts";
import type { ChainRpc } from "../../runtime/chains/rpc.ts";
import { ChainWriter, RESERVATION_STALE_MS, type WriteRequest } from "../../runtime/chains/writer.ts";
import { isCryptletError } from "../../runtime/errors.ts";
import { CONSORTIUM_ID, makeResult, signResult, testWallets } from "../support/contracts.ts";
import { startFlakyProxy, startHardhatNode, type HardhatNode } from "../support/hardhatNode.ts";
import { startTcpProxy } from "../support/tcpProxy.ts";

const CHAIN_ID = 71_001;
const CRYPTLET = keccak256(toUtf8Bytes("@test/writer")) as Hex32;
const CODE = id("writer-code") as Hex32;
const ledgerInterface = () => interfaceOf("ResultLedger");

describe("ChainWriter against a hardhat node over JSON-RPC", () => {
  let node: HardhatNode;
  let redis: Redis;
  let ledger: Contract;
  const resultSigners = testWallets(2);
  const prefix = `test-writer-${process.pid}-${Date.now()}`;
  let sequence = 0;

  beforeAll(async () => {
    node = await startHardhatNode(CHAIN_ID);
    redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
    const addresses = await deployCryptletContracts(node.funder, {
      consortiumId: CONSORTIUM_ID,
      signers: resultSigners.map((w) => w.address),
      threshold: 2,
    });
    const registry = new Contract(addresses.registry, interfaceOf("CryptletRegistry"), node.funder);
    await (await registry.getFunction("approveCodeHash")(CRYPTLET, CODE)).wait();
    ledger = new Contract(addresses.ledger, ledgerInterface(), node.provider);
  }, 90_000);

  afterAll(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
    await node.stop();
  });

  function chainConfig(overrides: Partial<ChainConfig> = {}, url = node.url): ChainConfig {
    const [chain] = parseChainsConfig({
      chains: [
        {
          name: "testchain",
          chainId: CHAIN_ID,
          rpcUrl: url,
          confirmations: 1,
          pollIntervalMs: 20,
          fees: { maxFeePerGasGwei: "100", maxPriorityFeePerGasGwei: "2", replaceAfterMs: 400 },
          signer: { type: "local", jwkPath: "unused.jwk" },
          contracts: { ledger: ledger.target as string },
        },
      ],
    }).chains;
    return { ...chain!, ...overrides };
  }

  async function newSigner(): Promise<Wallet> {
    const wallet = Wallet.createRandom();
    await node.fund(wallet.address);
    return new Wallet(wallet.privateKey);
  }

  /** A `record` write of a fresh signed result. */
  async function recordWrite(label = `r${sequence++}`): Promise<WriteRequest & { resultId: string }> {
    const payload = keccak256(toUtf8Bytes(label));
    const result = makeResult(CRYPTLET, id(`${prefix}-${label}`) as Hex32, CODE, payload);
    const signatures = await signResult(resultSigners, result);
    return {
      idempotencyKey: `record:testchain:${result.resultId}`,
      to: ledger.target as string,
      data: ledgerInterface().encodeFunctionData("record", [result, payload, signatures]),
      contract: "ResultLedger",
      method: "record",
      isRecorded: () => ledger.getFunction("isRecorded")(result.resultId) as Promise<boolean>,
      resultId: result.resultId,
    };
  }

  function writer(signer: Wallet, chain = chainConfig(), rpc?: ChainRpc): ChainWriter {
    return new ChainWriter({ chain, signer, redis, prefix, ...(rpc ? { rpc } : {}) });
  }

  async function recordedEvents(resultId: string): Promise<number> {
    const logs = await node.provider.getLogs({
      address: ledger.target as string,
      topics: [ledgerInterface().getEvent("ResultRecorded")!.topicHash, resultId],
      fromBlock: 0,
    });
    return logs.length;
  }

  test("config: bad input is reported with paths", () => {
    let caught: unknown;
    try {
      parseChainsConfig({
        chains: [
          {
            name: "a",
            chainId: 1,
            rpcUrl: "http://x",
            signer: { type: "local", jwkPath: "k" },
            fees: { maxFeePerGasGwei: "abc" },
          },
          {
            name: "a",
            chainId: 1,
            rpcUrl: "http://y",
            signer: { type: "local", jwkPath: "k" },
            contracts: { ledger: "0x1234" },
          },
        ],
      });
    } catch (e) {
      caught = e;
    }
    expect(isCryptletError(caught, "ERR_CHAIN_CONFIG_INVALID")).toBe(true);
    const errors = (caught as { details: { errors: { path: string }[] } }).details.errors.map((e) => e.path);
    expect(errors).toEqual(expect.arrayContaining(["chains[0].fees.maxFeePerGasGwei", "chains[1].contracts.ledger"]));
    try {
      parseChainsConfig({
        chains: [
          { name: "a", chainId: 1, rpcUrl: "http://x", signer: { type: "local", jwkPath: "k" } },
          { name: "a", chainId: 1, rpcUrl: "http://y", signer: { type: "local", jwkPath: "k" } },
        ],
      });
    } catch (e) {
      caught = e;
    }
    const duplicates = (caught as { details: { errors: { path: string }[] } }).details.errors.map((e) => e.path);
    expect(duplicates).toEqual(["chains[1].name", "chains[1].chainId"]);
  });

  test("writes once, waits for confirmations, and a retry of the same write sends nothing new", async () => {
    const w = writer(await newSigner(), chainConfig({ confirmations: 3 }));
    await w.start();
    const request = await recordWrite();
    const mining = setInterval(() => void node.rpc("evm_mine").catch(() => undefined), 100);
    try {
      const receipt = await w.write(request);
      expect(receipt.status).toBe("confirmed");
      expect(receipt.confirmations).toBeGreaterThanOrEqual(3);
      expect(receipt.nonce).toBe(0);
      const chainReceipt = await node.provider.getTransactionReceipt(receipt.txHash!);
      expect(chainReceipt!.blockHash).toBe(receipt.blockHash);
      expect(chainReceipt!.gasUsed.toString()).toBe(receipt.gasUsed);
      const again = await w.write(request);
      expect(again.txHash).toBe(receipt.txHash);
      expect(await recordedEvents(request.resultId)).toBe(1);
      expect(await node.provider.getTransactionCount(await w.address())).toBe(1);
    } finally {
      clearInterval(mining);
    }
  });

  test("with a wsUrl, the confirmation wait wakes at the block instead of the next 5 s poll; without one it polls", async () => {
    const interval = 5000;
    const base = chainConfig({ pollIntervalMs: interval });
    const fees = { ...base.fees, replaceAfterMs: 60_000 };
    /** Milliseconds from the block that includes the write to the write's return. */
    const afterBlock = async (chain: ChainConfig): Promise<number> => {
      const w = writer(await newSigner(), chain);
      await w.start();
      await node.rpc("evm_setAutomine", [false]);
      try {
        const request = await recordWrite();
        const writing = w.write(request);
        const address = await w.address();
        while (Number(BigInt((await node.rpc("eth_getTransactionCount", [address, "pending"])) as string)) === 0) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        await new Promise((resolve) => setTimeout(resolve, 200)); // the writer is in its wait by now
        const mined = performance.now();
        await node.rpc("evm_mine");
        expect((await writing).status).toBe("confirmed");
        return Math.round(performance.now() - mined);
      } finally {
        await node.rpc("evm_setAutomine", [true]);
      }
    };
    const woken = await afterBlock({ ...base, fees, wsUrl: node.url.replace(/^http/, "ws") });
    const polled = await afterBlock({ ...base, fees });
    console.log(`writer: block to confirmed write ${woken} ms with wsUrl, ${polled} ms polling every ${interval} ms`);
    expect(woken).toBeLessThan(interval / 2);
    expect(polled).toBeGreaterThan(interval / 2);
  }, 60_000);

  test("several lanes wait on one block subscription per writer, closed when no lane waits any more", async () => {
    const proxy = await startTcpProxy(Number(new URL(node.url).port));
    const relayers = [await newSigner(), await newSigner(), await newSigner()];
    const base = chainConfig({ pollIntervalMs: 5000 });
    const chain = { ...base, fees: { ...base.fees, replaceAfterMs: 60_000 }, wsUrl: `ws://127.0.0.1:${proxy.port}` };
    const multi = new ChainWriter({ chain, signer: relayers, redis, prefix });
    await node.rpc("evm_setAutomine", [false]);
    try {
      const writes = await Promise.all(Array.from({ length: 9 }, () => recordWrite()));
      const writing = Promise.all(writes.map((w) => multi.write(w)));
      const pending = async () => {
        const counts = await Promise.all(
          relayers.map(async (r) =>
            Number(BigInt((await node.rpc("eth_getTransactionCount", [r.address, "pending"])) as string)),
          ),
        );
        return counts.reduce((a, b) => a + b, 0);
      };
      while ((await pending()) < writes.length) await new Promise((resolve) => setTimeout(resolve, 20));
      await new Promise((resolve) => setTimeout(resolve, 300)); // every write is in its wait by now
      const mined = performance.now();
      await node.rpc("evm_mine");
      const receipts = await writing;
      const afterBlock = performance.now() - mined;
      expect(receipts.map((r) => r.status)).toEqual(writes.map(() => "confirmed"));
      expect(new Set(receipts.map((r) => r.from)).size).toBeGreaterThan(1); // more than one lane waited
      expect(afterBlock).toBeLessThan(2500);
      // Woken by the block, not by the 5 s poll, over one WebSocket for all the lanes.
      expect(proxy.connections).toBe(1);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(proxy.open).toBe(0); // closed with the last wait
    } finally {
      await node.rpc("evm_setAutomine", [true]);
      await proxy.close();
    }
  }, 30_000);

  test("two writers sharing a lane (two processes) assign distinct nonces; every result lands once", async () => {
    const signer = await newSigner();
    const [a, b] = [writer(signer), writer(signer)];
    const requests = await Promise.all(Array.from({ length: 20 }, () => recordWrite()));
    const receipts = await Promise.all(requests.map((r, i) => (i % 2 === 0 ? a : b).write(r)));
    expect(receipts.every((r) => r.status === "confirmed")).toBe(true);
    expect(new Set(receipts.map((r) => r.nonce)).size).toBe(20);
    expect(receipts.map((r) => r.nonce).sort((x, y) => x! - y!)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    for (const r of requests) expect(await recordedEvents(r.resultId)).toBe(1);
  });

  test("several relayer keys: writes spread over the lanes by key, each lands once, a retry with other lanes resumes its own", async () => {
    const relayers = [await newSigner(), await newSigner(), await newSigner()];
    const multi = new ChainWriter({ chain: chainConfig(), signer: relayers, redis, prefix });
    expect(multi.laneCount).toBe(3);
    expect(await multi.addresses()).toEqual(relayers.map((r) => r.address));
    const writes = await Promise.all(Array.from({ length: 24 }, () => recordWrite()));
    const receipts = await Promise.all(writes.map((w) => multi.write(w)));

    // The lane of each write, computed here from the key as the docs state it (SHA-256, first 4 bytes, mod 3).
    const expectedFrom = writes.map(
      (w) => relayers[createHash("sha256").update(w.idempotencyKey).digest().readUInt32BE(0) % 3]!.address,
    );
    expect(receipts.map((r) => r.status)).toEqual(writes.map(() => "confirmed"));
    expect(receipts.map((r) => r.from)).toEqual(expectedFrom);
    expect(new Set(expectedFrom).size).toBe(3);
    for (const w of writes) expect(await recordedEvents(w.resultId)).toBe(1);
    // Each relayer's nonce on the chain is the number of writes its lane carried: nothing else was sent.
    const nonces = async () => Promise.all(relayers.map((r) => node.provider.getTransactionCount(r.address)));
    const carried = relayers.map((r) => expectedFrom.filter((a) => a === r.address).length);
    expect(await nonces()).toEqual(carried);

    // Retried by a writer with other lanes (one relayer removed, the rest reordered): a write whose lane is still
    // configured resumes its own transaction there, whatever lane its key would pick now; the others find their
    // result on-chain. No transaction is sent.
    const reordered = new ChainWriter({ chain: chainConfig(), signer: [relayers[2]!, relayers[0]!], redis, prefix });
    const retried = await Promise.all(writes.map((w) => reordered.write(w)));
    retried.forEach((r, i) => {
      if (receipts[i]!.from === relayers[1]!.address) expect(r.status).toBe("already-recorded");
      else expect([r.status, r.txHash, r.nonce]).toEqual(["confirmed", receipts[i]!.txHash, receipts[i]!.nonce]);
    });
    expect(await nonces()).toEqual(carried);
  });

  test("a result already on-chain is not written again (isRecorded, and the contract's own error)", async () => {
    const signer = await newSigner();
    const request = await recordWrite();
    await writer(signer).write(request);
    const sameResultOtherKey = { ...request, idempotencyKey: `${request.idempotencyKey}:other` };
    expect((await writer(signer).write(sameResultOtherKey)).status).toBe("already-recorded");
    const lying = {
      ...sameResultOtherKey,
      idempotencyKey: `${request.idempotencyKey}:lying`,
      isRecorded: async () => false,
    };
    expect((await writer(signer).write(lying)).status).toBe("already-recorded");
    expect(await node.provider.getTransactionCount(signer.address)).toBe(1);
    expect(await recordedEvents(request.resultId)).toBe(1);
  });

  test("a revert is decoded into ERR_CHAIN_REVERTED with the custom error, and is not retryable", async () => {
    const payload = keccak256(toUtf8Bytes("revert-case"));
    const result = makeResult(CRYPTLET, id(`${prefix}-revert`) as Hex32, CODE, payload);
    const signatures = await signResult(resultSigners, result);
    const cases: [string, unknown[], string][] = [
      ["mismatch", [result, "0x1234", signatures], "ResultLedgerOutputHashMismatch"],
      ["one-signature", [result, payload, signatures.slice(0, 1)], "CryptletProofThresholdNotMet"],
    ];
    for (const [label, args, expected] of cases) {
      let caught: unknown;
      try {
        await writer(await newSigner()).write({
          idempotencyKey: `revert:${label}:${result.resultId}`,
          to: ledger.target as string,
          data: ledgerInterface().encodeFunctionData("record", args),
          contract: "ResultLedger",
          method: "record",
          isRecorded: async () => false,
        });
      } catch (e) {
        caught = e;
      }
      expect(isCryptletError(caught, "ERR_CHAIN_REVERTED")).toBe(true);
      expect((caught as { retryable: boolean }).retryable).toBe(false);
      expect((caught as { details: { error: string } }).details.error).toBe(expected);
    }
    expect(await ledger.getFunction("isRecorded")(result.resultId)).toBe(false);
  });

  test("a transaction that reverts when mined (state changed after the estimate) is decoded, and 'already recorded' is a success", async () => {
    const signer = await newSigner();
    const request = await recordWrite();
    // Someone else records the same result between our estimate and our transaction: ours reverts on-chain
    // with ResultLedgerAlreadyRecorded, which the writer reports as already recorded.
    let recordedElsewhere = false;
    const racing = {
      ...request,
      isRecorded: async () => {
        if (!recordedElsewhere) {
          recordedElsewhere = true;
          return false;
        }
        return ledger.getFunction("isRecorded")(request.resultId) as Promise<boolean>;
      },
    };
    const w = writer(signer);
    const originalEstimate = w.rpc.send.bind(w.rpc);
    w.rpc.send = (async (method: string, params: unknown[], attempts?: number) => {
      const answer = await originalEstimate(method, params, attempts);
      if (method === "eth_estimateGas")
        await writer(await newSigner()).write({ ...request, idempotencyKey: `${request.idempotencyKey}:other` });
      return answer;
    }) as typeof w.rpc.send;
    const receipt = await w.write(racing);
    expect(receipt.status).toBe("already-recorded");
    expect(await recordedEvents(request.resultId)).toBe(1);
    expect(await node.provider.getTransactionCount(signer.address)).toBe(1); // our reverted transaction was mined
  });

  test("a revert caused by an earlier transaction of the same block is decoded by replaying on the block's state", async () => {
    // Two writers record the same result; both estimates pass, both transactions are mined in one block. The
    // second reverts with ResultLedgerAlreadyRecorded, but replayed on the state before the block it succeeds:
    // only the block's own state shows why. isRecorded answers false, so only the decoded reason can tell.
    const request = await recordWrite();
    const blind = { ...request, isRecorded: async () => false };
    const [a, b] = [writer(await newSigner()), writer(await newSigner())];
    await node.rpc("evm_setAutomine", [false]);
    let outcomes: PromiseSettledResult<Awaited<ReturnType<ChainWriter["write"]>>>[];
    try {
      const writes = [
        a.write({ ...blind, idempotencyKey: `${request.idempotencyKey}:a` }),
        b.write({ ...blind, idempotencyKey: `${request.idempotencyKey}:b` }),
      ];
      for (let i = 0; ; i++) {
        const pending = await node.rpc<{ transactions: string[] }>("eth_getBlockByNumber", ["pending", false]);
        if (pending.transactions.length === 2) break;
        if (i > 200) throw new Error("the two transactions never reached the mempool");
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      await node.rpc("evm_mine");
      await node.rpc("evm_setAutomine", [true]);
      outcomes = await Promise.allSettled(writes);
    } finally {
      await node.rpc("evm_setAutomine", [true]);
    }
    expect(outcomes.map((o) => (o.status === "fulfilled" ? o.value.status : String(o.reason))).sort()).toEqual([
      "already-recorded",
      "confirmed",
    ]);
    expect(await recordedEvents(request.resultId)).toBe(1);
  });

  test("a stuck transaction is replaced with bumped fees; exactly one of them is mined", async () => {
    const signer = await newSigner();
    const w = writer(signer, chainConfig({ fees: { ...chainConfig().fees, replaceAfterMs: 200 } }));
    await node.rpc("evm_setAutomine", [false]);
    const request = await recordWrite();
    try {
      const pending = w.write(request);
      await new Promise((resolve) => setTimeout(resolve, 900));
      await node.rpc("evm_mine");
      const receipt = await pending;
      expect(receipt.status).toBe("confirmed");
      expect(receipt.replacements).toBeGreaterThanOrEqual(1);
      const mined = await node.provider.getTransaction(receipt.txHash!);
      expect(mined!.maxFeePerGas! > 0n).toBe(true);
      const lane = new Lane(redis, prefix, CHAIN_ID, signer.address);
      const tx = await lane.get(receipt.nonce!);
      expect(tx!.hashes.length).toBe(receipt.replacements! + 1);
      expect(tx!.hashes).toContain(receipt.txHash);
      expect(await recordedEvents(request.resultId)).toBe(1);
    } finally {
      await node.rpc("evm_setAutomine", [true]);
    }
  });

  test("a nonce gap (a lost transaction) is filled with a self-transfer, then the write lands", async () => {
    const signer = await newSigner();
    const w = writer(signer);
    await w.write(await recordWrite()); // nonce 0
    // Simulate a lost nonce: the lane believes nonce 1 was used, the chain never saw it.
    const lane = await w.lane();
    await lane.withLock((token) => lane.raiseNextNonce(token, 2));
    const request = await recordWrite();
    const receipt = await w.write(request);
    expect(receipt.status).toBe("confirmed");
    expect(receipt.nonce).toBe(2);
    const filler = await lane.get(1);
    expect(filler?.key).toBe("filler:1");
    const fillerTx = await node.provider.getTransaction(filler!.hashes[0]!);
    expect(fillerTx!.to).toBe(signer.address);
    expect(fillerTx!.value).toBe(0n);
    expect(await node.provider.getTransactionCount(signer.address)).toBe(3);
  });

  test("a nonce taken by a transaction outside the lane moves the write to a new nonce", async () => {
    const signer = await newSigner();
    const w = writer(signer, chainConfig({ fees: { ...chainConfig().fees, replaceAfterMs: 60_000 } }));
    await node.rpc("evm_setAutomine", [false]);
    try {
      const request = await recordWrite();
      const pending = w.write(request);
      const lane = await w.lane();
      while ((await lane.nonceOf(request.idempotencyKey)) === undefined) await new Promise((r) => setTimeout(r, 20));
      // Someone else with the same key replaces nonce 0 with a higher-fee self-transfer.
      const outside = await signer.connect(node.provider).signTransaction({
        to: signer.address,
        nonce: 0,
        gasLimit: 21_000n,
        maxFeePerGas: 90_000_000_000n,
        maxPriorityFeePerGas: 2_000_000_000n,
        chainId: CHAIN_ID,
        type: 2,
      });
      await node.rpc("eth_sendRawTransaction", [outside]);
      await node.rpc("evm_mine");
      await node.rpc("evm_setAutomine", [true]);
      const receipt = await pending;
      expect(receipt.status).toBe("confirmed");
      expect(receipt.nonce).toBe(1);
      expect(await recordedEvents(request.resultId)).toBe(1);
    } finally {
      await node.rpc("evm_setAutomine", [true]);
    }
  });

  test("a write mined in a block that a reorg removes is re-broadcast and confirmed on the new chain", async () => {
    const signer = await newSigner();
    const w = writer(signer, chainConfig({ confirmations: 3 }));
    const snapshot = await node.rpc<string>("evm_snapshot");
    const request = await recordWrite();
    const pending = w.write(request);
    const lane = await w.lane();
    let firstHash: string | undefined;
    while (!firstHash) {
      const nonce = await lane.nonceOf(request.idempotencyKey);
      const tx = nonce === undefined ? undefined : await lane.get(nonce);
      if (tx && (await node.provider.getTransactionReceipt(tx.hashes[0]!))) firstHash = tx.hashes[0];
      else await new Promise((r) => setTimeout(r, 20));
    }
    const minedIn = (await node.provider.getTransactionReceipt(firstHash))!.blockHash;
    // Reorg: drop the block with our transaction and build a longer chain without it.
    expect(await node.rpc("evm_revert", [snapshot])).toBe(true);
    await node.rpc("hardhat_mine", ["0x2"]);
    const mining = setInterval(() => void node.rpc("evm_mine").catch(() => undefined), 100);
    try {
      const receipt = await pending;
      expect(receipt.status).toBe("confirmed");
      expect(receipt.blockHash).not.toBe(minedIn);
      expect(await recordedEvents(request.resultId)).toBe(1);
      expect(await ledger.getFunction("isRecorded")(request.resultId)).toBe(true);
    } finally {
      clearInterval(mining);
    }
  });

  test("through a JSON-RPC proxy that fails 10% of calls and drops 20% of transactions: every write exactly once", async () => {
    const proxy = await startFlakyProxy(node.url, { failRate: 0.1, dropRate: 0.2, seed: 7 });
    try {
      const signer = await newSigner();
      const chain = chainConfig({ fees: { ...chainConfig().fees, replaceAfterMs: 500 } }, proxy.url);
      const [a, b] = [writer(signer, chain), writer(signer, chain)];
      const requests = await Promise.all(Array.from({ length: 30 }, () => recordWrite()));
      const receipts = await Promise.all(requests.map((r, i) => (i % 2 ? a : b).write(r, { timeoutMs: 60_000 })));
      expect(receipts.every((r) => r.status === "confirmed")).toBe(true);
      for (const r of requests) expect(await recordedEvents(r.resultId)).toBe(1);
      expect(proxy.stats.failed).toBeGreaterThan(0);
      expect(proxy.stats.dropped).toBeGreaterThan(0);
      a.rpc.destroy();
      b.rpc.destroy();
    } finally {
      await proxy.close();
    }
  });

  /** A relayer key whose signatures take `delayMs` each (a Key Vault call over HTTPS), and that counts them. */
  class SlowWallet extends Wallet {
    signatures = 0;
    inFlight = 0;
    maxInFlight = 0;
    readonly delayMs: () => number;
    constructor(wallet: Wallet, delayMs: () => number) {
      super(wallet.privateKey);
      this.delayMs = delayMs;
    }
    override async signTransaction(tx: Parameters<Wallet["signTransaction"]>[0]): Promise<string> {
      this.signatures += 1;
      this.inFlight += 1;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      try {
        await new Promise((resolve) => setTimeout(resolve, this.delayMs()));
        return await super.signTransaction(tx);
      } finally {
        this.inFlight -= 1;
      }
    }
  }

  test("writes of one lane sign at once (the signature is outside the lane lock) and are broadcast in nonce order", async () => {
    // Signatures of 100-300 ms in random order: nonces are reserved in order, signed concurrently, and each
    // transaction is sent once every lower nonce is (a hardhat node that automines refuses a higher one).
    const signer = new SlowWallet(await newSigner(), () => 100 + Math.floor(Math.random() * 200));
    const w = writer(signer);
    const requests = await Promise.all(Array.from({ length: 12 }, () => recordWrite()));
    const started = performance.now();
    const receipts = await Promise.all(requests.map((r) => w.write(r)));
    const elapsed = performance.now() - started;
    expect(receipts.map((r) => r.status)).toEqual(requests.map(() => "confirmed"));
    expect(receipts.map((r) => r.nonce).sort((a, b) => a! - b!)).toEqual(requests.map((_, i) => i));
    for (const r of requests) expect(await recordedEvents(r.resultId)).toBe(1);
    expect(await node.provider.getTransactionCount(signer.address)).toBe(12);
    expect(signer.signatures).toBe(12); // one signature per write: nothing signed twice
    // One at a time under the lock these would take at least 12 × 100 ms; concurrently, about one signature.
    expect(signer.maxInFlight).toBeGreaterThan(1);
    expect(elapsed).toBeLessThan(1200);
  });

  test("a reserved nonce whose writer died before signing is signed by the write's retry", async () => {
    const signer = await newSigner();
    const w = writer(signer);
    const request = await recordWrite();
    const lane = await w.lane();
    // The crash: the nonce reserved for the write, then nothing (no signature, no broadcast).
    await lane.withLock((token) =>
      lane.reserve(token, { nonce: 0, key: request.idempotencyKey, gasLimit: 500_000n, reservedAt: Date.now() }),
    );
    expect((await lane.get(0))?.state).toBe("reserved");
    const receipt = await w.write(request); // the retry
    expect([receipt.status, receipt.nonce]).toEqual(["confirmed", 0]);
    expect(await recordedEvents(request.resultId)).toBe(1);
    expect(await node.provider.getTransactionCount(signer.address)).toBe(1);
  });

  test("a stale reservation below a new write is given to a gap filler; the abandoned write, retried, takes a new nonce", async () => {
    const signer = await newSigner();
    const w = writer(signer);
    const abandoned = await recordWrite();
    const lane = await w.lane();
    await lane.withLock((token) =>
      lane.reserve(token, {
        nonce: 0,
        key: abandoned.idempotencyKey,
        gasLimit: 500_000n,
        reservedAt: Date.now() - 2 * RESERVATION_STALE_MS,
      }),
    );
    const later = await recordWrite();
    const receipt = await w.write(later);
    expect([receipt.status, receipt.nonce]).toEqual(["confirmed", 1]);
    const filler = await lane.get(0);
    expect([filler?.key, filler?.state]).toEqual(["filler:0", "filler"]);
    const fillerTx = await node.provider.getTransaction(filler!.hashes[0]!);
    expect([fillerTx!.to, fillerTx!.value, fillerTx!.nonce]).toEqual([signer.address, 0n, 0]);
    expect(await lane.nonceOf(abandoned.idempotencyKey)).toBeUndefined(); // its key was freed

    const retried = await w.write(abandoned);
    expect([retried.status, retried.nonce]).toEqual(["confirmed", 2]);
    expect(await recordedEvents(abandoned.resultId)).toBe(1);
    expect(await node.provider.getTransactionCount(signer.address)).toBe(3);
  });

  test("a fresh reservation below a new write is not taken over: the new write waits for it and both land in order", async () => {
    const signer = await newSigner();
    const w = writer(signer);
    const slow = await recordWrite();
    const lane = await w.lane();
    await lane.withLock((token) =>
      lane.reserve(token, { nonce: 0, key: slow.idempotencyKey, gasLimit: 500_000n, reservedAt: Date.now() }),
    );
    const later = w.write(await recordWrite());
    await new Promise((resolve) => setTimeout(resolve, 1500)); // its broadcast met "nonce too high" meanwhile
    expect((await lane.get(0))?.state).toBe("reserved"); // not filled: its signer may still come
    expect(await node.provider.getTransactionCount(signer.address)).toBe(0);
    const first = await w.write(slow); // the reservation's own write signs it; both are sent in order
    expect([first.status, first.nonce]).toEqual(["confirmed", 0]);
    expect([(await later).status, (await later).nonce]).toEqual(["confirmed", 1]);
    expect(await node.provider.getTransactionCount(signer.address)).toBe(2);
  });
});
