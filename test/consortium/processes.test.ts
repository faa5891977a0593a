/**
 * Issue 12's consortium as three member **processes** (`cryptlet serve api,worker`, each from its own configuration
 * file): its own Key Vault emulator and keys, its own Redis prefix, its own package store, its own API port for
 * peers; nothing shared but the two hardhat chains (whose registries trust the three members' signers, threshold 2).
 * An event invoked through member-1's API is co-signed over real HTTP and written once on both chains with two
 * distinct members' Key Vault signatures; a member SIGKILLed midway leaves 2 of 3, and the next result is
 * co-signed by the other two. Who signed is read as an outsider would: signatures recovered, names from the
 * registries.
 */
import { getAddress } from "ethers";

import { verifyBundle } from "../../runtime/attestation/verifyBundle.ts";
import { readRegistryTrust, verifyOptionsOf } from "../../runtime/chains/registryTrust.ts";
import { Pipeline } from "../../runtime/queue/pipeline.ts";
import type { CompositeReceipt } from "../../runtime/queue/results.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";
import {
  invokeThroughMember,
  protocolWiring,
  startConsortiumStack,
  startMemberProcesses,
  type ConsortiumStack,
  type MemberProcess,
} from "../support/consortiumStack.ts";
import { stopServed } from "../support/serveProcess.ts";

describe("consortium: three member processes (cryptlet serve api,worker), 2 of 3", () => {
  let stack: ConsortiumStack;
  let minutes: Awaited<ReturnType<typeof loadMinuteInputs>>;
  let processes = new Map<string, MemberProcess>();

  beforeAll(async () => {
    minutes = await loadMinuteInputs();
    stack = await startConsortiumStack({
      members: 3,
      threshold: 2,
      chains: [
        { name: "consortium", chainId: 73_201 },
        { name: "public", chainId: 73_202 },
      ],
      targets: [
        { chain: "consortium", mode: "record" },
        { chain: "public", mode: "record" },
      ],
      wiring: protocolWiring(),
      answerTimeoutMs: 10_000,
      failoverMs: 0,
    });
    processes = await startMemberProcesses(stack);
  }, 300_000);

  afterAll(async () => {
    for (const { served } of processes.values()) await stopServed(served, "SIGKILL");
    await stack?.close();
  });

  /** Invokes price-median through `memberId`'s API with minute `index`; the run id. */
  const invoke = (memberId: string, index: number): Promise<string> =>
    invokeThroughMember(
      stack,
      processes.get(memberId)!,
      minutes[index]!.input,
      `${stack.members[0]!.prefix}-processes-${index}`,
    );

  /** Waits for the run's receipt in `memberId`'s Redis (written by its worker process). */
  async function receiptOf(memberId: string, runId: string): Promise<CompositeReceipt> {
    const reader = new Pipeline(stack.member(memberId).ctx);
    try {
      const outcome = await reader.waitForRun(runId, 180_000);
      expect(outcome.status).toBe("complete");
      if (outcome.status !== "complete") throw new Error(`run ${runId} ${outcome.status}`);
      return outcome.receipt;
    } finally {
      await reader.close();
    }
  }

  /** Which members signed, as an outsider reads it from each chain: signatures recovered, registry names. */
  async function signersOnChain(receipt: CompositeReceipt): Promise<string[][]> {
    return Promise.all(
      stack.chains.map(async (chain) => {
        const trust = await readRegistryTrust(chain.node.provider, chain.contracts.registry, {
          cryptletIds: [receipt.bundle.result.cryptletId],
        });
        const report = await verifyBundle(receipt.bundle, verifyOptionsOf(trust, receipt.bundle.result.cryptletId));
        expect(report.checks.find((c) => c.name === "signatures")?.verdict).toBe("pass");
        return report.checks.find((c) => c.name === "signatures")!.signers!.map((s) => s.member ?? s.address);
      }),
    );
  }

  async function writesOf(resultId: string): Promise<number[]> {
    return Promise.all(
      stack.chains.map(async (c) => (await c.ledger.queryFilter(c.ledger.filters.ResultRecorded!(resultId))).length),
    );
  }

  test("an event through member-1's API: co-signed by two member processes, written once on each chain", async () => {
    const runId = await invoke("member-1", 620);
    const receipt = await receiptOf("member-1", runId);
    expect(receipt.status).toBe("confirmed");
    expect(receipt.cosigning?.leader).toBe("member-1");
    expect(receipt.cosigning?.signedBy).toHaveLength(2);
    expect(receipt.cosigning?.signedBy[0]).toBe("member-1");
    // Two distinct members' own Key Vault keys, as each registry names them.
    const onChain = await signersOnChain(receipt);
    expect(onChain[0]).toEqual(receipt.cosigning?.signedBy);
    expect(onChain[1]).toEqual(receipt.cosigning?.signedBy);
    expect(new Set(receipt.bundle.signatures.map((s) => getAddress(s.signer))).size).toBe(2);
    expect(await writesOf(receipt.bundle.result.resultId)).toEqual([1, 1]);
  }, 240_000);

  test("member-2's process killed midway: the next result is co-signed by member-1 and member-3", async () => {
    const killed = await stopServed(processes.get("member-2")!.served, "SIGKILL");
    expect(killed.code).toBeNull(); // killed by the signal
    const runId = await invoke("member-1", 621);
    const receipt = await receiptOf("member-1", runId);
    expect(receipt.status).toBe("confirmed");
    expect(receipt.cosigning?.signedBy).toEqual(["member-1", "member-3"]);
    expect(receipt.cosigning?.unanswered.map((u) => u.member)).toEqual(["member-2"]);
    expect(await signersOnChain(receipt)).toEqual([
      ["member-1", "member-3"],
      ["member-1", "member-3"],
    ]);
    expect(await writesOf(receipt.bundle.result.resultId)).toEqual([1, 1]);
  }, 240_000);
});
