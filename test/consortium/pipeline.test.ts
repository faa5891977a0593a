/**
 * The pipeline in consortium mode (issue 12): three member runtimes, each with its own Key Vault emulator, Redis
 * prefix, package store, pipeline and workers and API server, talking over real HTTP with peer-authenticated
 * requests; two hardhat chains whose registries list the three members' signers with threshold 2.
 */
import { jest } from "@jest/globals";
import { Contract, getAddress } from "ethers";
import { exportJWK, generateKeyPair, type JWK } from "jose";

import { structToBundleResult } from "../../runtime/attestation/bundle.ts";
import { computeResultId, type CryptletResult, type Hex32 } from "../../runtime/attestation/eip712.ts";
import { cryptletIdOf, httpEventId } from "../../runtime/attestation/ids.ts";
import { signCryptletResult } from "../../runtime/attestation/signing.ts";
import { verifyBundle } from "../../runtime/attestation/verifyBundle.ts";
import { interfaceOf } from "../../runtime/chains/contracts.ts";
import { readRegistryTrust, verifyOptionsOf } from "../../runtime/chains/registryTrust.ts";
import type { Party } from "../../runtime/packages/manifest.ts";
import { open } from "../../runtime/sealing/open.ts";
import { leaderOrder } from "../../runtime/consortium/cosigner.ts";
import { Pipeline, type DeadLetter } from "../../runtime/queue/pipeline.ts";
import { QUEUES, type CryptletEvent } from "../../runtime/queue/topology.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";
import {
  CONSORTIUM_TEST_ID,
  protocolWiring,
  startConsortiumStack,
  type ConsortiumStack,
} from "../support/consortiumStack.ts";
import { startWorker, stopWorker } from "../support/workerProcess.ts";

jest.setTimeout(240_000);

describe("consortium pipeline: 2 of 3 members (real HTTP, own Key Vaults, hardhat chains)", () => {
  let stack: ConsortiumStack;
  let minutes: Awaited<ReturnType<typeof loadMinuteInputs>>;

  beforeAll(async () => {
    minutes = await loadMinuteInputs();
    stack = await startConsortiumStack({
      members: 3,
      threshold: 2,
      chains: [
        { name: "consortium", chainId: 73_001 },
        { name: "public", chainId: 73_002 },
      ],
      targets: [
        { chain: "consortium", mode: "record" },
        { chain: "public", mode: "record" },
      ],
      wiring: protocolWiring(),
      answerTimeoutMs: 5000,
      failoverMs: 0,
      retry: { attempts: 3, backoff: { type: "exponential", delay: 200 } },
    });
  }, 240_000);

  afterAll(async () => {
    await stack?.close();
  });

  function httpEvent(minuteIndex: number): CryptletEvent {
    const { minute, input } = minutes[minuteIndex]!;
    const key = `consortium-${minuteIndex}-${stack.members[0]!.prefix}`;
    return {
      eventId: httpEventId(key),
      cryptlet: { name: stack.pkg.manifest.name },
      source: { type: "http", idempotencyKey: key },
      input,
      time: minute + 59,
    };
  }

  async function recordedOn(resultId: string): Promise<boolean[]> {
    return Promise.all(stack.chains.map(async (c) => Boolean(await c.ledger.getFunction("isRecorded")(resultId))));
  }

  async function recordEvents(resultId: string): Promise<number[]> {
    return Promise.all(
      stack.chains.map(async (c) => (await c.ledger.queryFilter(c.ledger.filters.ResultRecorded!(resultId))).length),
    );
  }

  test("2 of 3 with one member down: written on both chains, the receipt lists who signed and who did not answer", async () => {
    await stack.stop("member-3");
    try {
      const leader = stack.member("member-1");
      const { runId, resultId } = await leader.pipeline.submit(httpEvent(610));
      const outcome = await leader.pipeline.waitForRun(runId, 120_000);
      expect(outcome.status).toBe("complete");
      if (outcome.status !== "complete") return;
      const receipt = outcome.receipt;
      expect(receipt.status).toBe("confirmed");
      expect(receipt.cosigning?.leader).toBe("member-1");
      expect(receipt.cosigning?.signedBy).toEqual(["member-1", "member-2"]);
      expect(receipt.cosigning?.unanswered.map((u) => u.member)).toEqual(["member-3"]);
      expect(receipt.cosigning?.dissented).toEqual([]);
      // The result's timestamp is the event's time, which every member reproduces.
      expect(receipt.bundle.result.timestamp).toBe(String(minutes[610]!.minute + 59));
      const signers = receipt.bundle.signatures.map((s) => s.signer);
      expect(signers).toEqual([stack.member("member-1").signer, stack.member("member-2").signer]);
      expect(await recordedOn(resultId)).toEqual([true, true]);
      for (const chain of stack.chains) {
        expect(await chain.ledger.getFunction("outputHashOf")(resultId)).toBe(receipt.bundle.result.outputHash);
      }
      // An outsider, from each chain's registry alone, sees which members signed: the registry names each signer's
      // member, and the signatures recover to member-1's and member-2's own Key Vault keys.
      for (const chain of stack.chains) {
        const trust = await readRegistryTrust(chain.node.provider, chain.contracts.registry, {
          cryptletIds: [receipt.bundle.result.cryptletId],
        });
        expect(trust.signerMembers).toEqual(Object.fromEntries(stack.members.map((m) => [getAddress(m.signer), m.id])));
        const report = await verifyBundle(receipt.bundle, verifyOptionsOf(trust, receipt.bundle.result.cryptletId));
        const check = report.checks.find((c) => c.name === "signatures");
        expect(check?.verdict).toBe("pass");
        expect(check?.signers?.map((x) => x.member)).toEqual(["member-1", "member-2"]);
        expect(check?.reason).toContain(`member-1 ${getAddress(stack.member("member-1").signer)}`);
      }
    } finally {
      await stack.start("member-3");
    }
  });

  test("3 down to 1: nothing written, dead letter with ERR_COSIGN_THRESHOLD_NOT_MET; replayed when members return, the run completes", async () => {
    await stack.stop("member-2");
    await stack.stop("member-3");
    const leader = stack.member("member-1");
    const { runId, resultId } = await leader.pipeline.submit(httpEvent(611));
    let failed;
    try {
      failed = await leader.pipeline.waitForRun(runId, 120_000);
    } finally {
      await stack.start("member-2");
      await stack.start("member-3");
    }
    // The members came back only after the run was dead-lettered: it stays failed until replayed.
    expect(failed.status).toBe("failed");
    if (failed.status !== "failed") return;
    expect(failed.error.code).toBe("ERR_COSIGN_THRESHOLD_NOT_MET");
    expect(failed.error.stage).toBe("attest");
    const letters = (await leader.pipeline.deadLetters()).filter(
      (d) => (d.data as { resultId?: string }).resultId === resultId,
    );
    expect(letters).toHaveLength(1);
    const letter = letters[0]!;
    expect(letter.error.code).toBe("ERR_COSIGN_THRESHOLD_NOT_MET");
    expect(letter.attemptsMade).toBe(3); // retried with backoff before dead-lettering
    const unanswered = letter.error.details?.unanswered as { member: string }[];
    // In the order their calls failed, which varies: compared as a set.
    expect(unanswered.map((u) => u.member).sort()).toEqual(["member-2", "member-3"]);
    expect(await recordedOn(resultId)).toEqual([false, false]);

    const dlqId = (await leader.pipeline.queue("dead-letter").getJobs(["waiting"])).find(
      (j) => (j.data as { data?: { resultId?: string } }).data?.resultId === resultId,
    )!.id!;
    await leader.pipeline.replay(dlqId);
    const resumed = await leader.pipeline.waitForRun(runId, 120_000);
    expect(resumed.status).toBe("complete");
    if (resumed.status !== "complete") return;
    expect(resumed.receipt.status).toBe("confirmed");
    expect(resumed.receipt.cosigning?.signedBy.length).toBeGreaterThanOrEqual(2);
    expect(await recordedOn(resultId)).toEqual([true, true]);
    expect(await recordEvents(resultId)).toEqual([1, 1]);
  });

  test("an event every member sees, all leading at once: exactly one write per chain, the others find it recorded", async () => {
    const { minute, input } = minutes[612]!;
    const slotTime = minute + 59;
    const event: CryptletEvent = {
      eventId: httpEventId(`slot-${slotTime}-${stack.members[0]!.prefix}`),
      cryptlet: { name: stack.pkg.manifest.name },
      source: { type: "schedule", slotTime },
      input,
      time: slotTime,
    };
    // failoverMs is 0 in this stack: every member leads at once (the race is forced, not avoided).
    const runs = await Promise.all(stack.members.map((m) => m.pipeline.submit(event)));
    const resultId = runs[0]!.resultId;
    expect(new Set(runs.map((r) => r.resultId)).size).toBe(1);
    const outcomes = await Promise.all(stack.members.map((m) => m.pipeline.waitForRun(resultId, 180_000)));
    for (const o of outcomes) expect(o.status).toBe("complete");
    expect(await recordEvents(resultId)).toEqual([1, 1]);
    // Per chain: exactly one member's writer confirmed a transaction; every other target ended already recorded.
    for (const chain of stack.chains) {
      const confirmed = outcomes.filter(
        (o) => o.status === "complete" && o.receipt.targets.find((t) => t.chain === chain.name)?.status === "confirmed",
      );
      expect(confirmed).toHaveLength(1);
    }
  });

  test("fail-over: the first member in the result's order is down, the second leads after its delay, the third finds it recorded and does not lead", async () => {
    const { minute, input } = minutes[614]!;
    const slotTime = minute + 59;
    const event: CryptletEvent = {
      eventId: httpEventId(`failover-${slotTime}-${stack.members[0]!.prefix}`),
      cryptlet: { name: stack.pkg.manifest.name },
      source: { type: "schedule", slotTime },
      input,
      time: slotTime,
    };
    const resultId = computeResultId(cryptletIdOf(stack.pkg.manifest.name), event.eventId);
    const order = leaderOrder(resultId, stack.settings("member-1").members).map((m) => m.id);
    const failoverMs = 3000;
    for (const m of stack.members)
      m.ctx.consortium = { ...m.ctx.consortium!, settings: { ...stack.settings(m.id), failoverMs } };
    await stack.stop(order[0]!);
    try {
      const second = stack.member(order[1]!);
      const third = stack.member(order[2]!);
      const submitted = Date.now();
      await Promise.all([second.pipeline.submit(event), third.pipeline.submit(event)]);
      const [a, b] = await Promise.all([
        second.pipeline.waitForRun(resultId, 120_000),
        third.pipeline.waitForRun(resultId, 120_000),
      ]);
      expect(a.status).toBe("complete");
      expect(b.status).toBe("complete");
      if (a.status !== "complete" || b.status !== "complete") return;
      expect(a.receipt.cosigning?.leader).toBe(order[1]);
      expect(a.receipt.cosigning?.skipped).toBeUndefined();
      expect(a.receipt.cosigning?.signedBy).toEqual([order[1], order[2]]);
      expect(a.receipt.targets.map((t) => t.status)).toEqual(["confirmed", "confirmed"]);
      // The second member waited one fail-over delay before leading.
      expect(a.receipt.completedAt - submitted).toBeGreaterThanOrEqual(failoverMs);
      expect(b.receipt.cosigning?.skipped).toBe("already-recorded");
      expect(b.receipt.targets.map((t) => t.status)).toEqual(["already-recorded", "already-recorded"]);
      expect(await recordEvents(resultId)).toEqual([1, 1]);
    } finally {
      for (const m of stack.members) m.ctx.consortium = { ...m.ctx.consortium!, settings: stack.settings(m.id) };
      await stack.start(order[0]!);
    }
  });

  test("a code hash revoked on one chain: every peer dissents (listed with its code), nothing is written; re-approved and replayed, the run completes", async () => {
    const chain = stack.chains[0]!;
    const cryptletId = cryptletIdOf(stack.pkg.manifest.name);
    await (await chain.registry.getFunction("revokeCodeHash")(cryptletId, stack.pkg.codeHash)).wait();
    const leader = stack.member("member-3");
    let resultId: string;
    try {
      const submitted = await leader.pipeline.submit(httpEvent(615));
      resultId = submitted.resultId;
      const failed = await leader.pipeline.waitForRun(submitted.runId, 120_000);
      expect(failed.status).toBe("failed");
      if (failed.status !== "failed") return;
      expect(failed.error.code).toBe("ERR_COSIGN_THRESHOLD_NOT_MET");
      const letter = (await leader.pipeline.deadLetters()).find(
        (d) => (d.data as { resultId?: string }).resultId === resultId,
      )!;
      const dissented = letter.error.details?.dissented as { member: string; code: string }[];
      expect([...dissented].sort((a, b) => a.member.localeCompare(b.member))).toEqual([
        expect.objectContaining({ member: "member-1", code: "ERR_COSIGN_CODE_NOT_APPROVED" }),
        expect.objectContaining({ member: "member-2", code: "ERR_COSIGN_CODE_NOT_APPROVED" }),
      ]);
      expect(await recordedOn(resultId)).toEqual([false, false]);
    } finally {
      await (await chain.registry.getFunction("approveCodeHash")(cryptletId, stack.pkg.codeHash)).wait();
    }
    const dlqId = (await leader.pipeline.queue("dead-letter").getJobs(["waiting"])).find(
      (j) => (j.data as { data?: { resultId?: string } }).data?.resultId === resultId,
    )!.id!;
    await leader.pipeline.replay(dlqId);
    const resumed = await leader.pipeline.waitForRun(resultId, 120_000);
    expect(resumed.status).toBe("complete");
    expect(await recordEvents(resultId)).toEqual([1, 1]);
  });

  test("a member's worker process started from its configuration file (consortium section) leads and co-signs", async () => {
    await stack.stop("member-1");
    const member = stack.member("member-1");
    const { configFile, caFile } = await stack.writeMemberConfig("member-1");
    const submitter = new Pipeline(member.ctx);
    const worker = await startWorker(configFile, caFile, { LOG_LEVEL: "error" });
    try {
      const { runId, resultId } = await submitter.submit(httpEvent(613));
      const outcome = await submitter.waitForRun(runId, 120_000);
      expect(outcome.status).toBe("complete");
      if (outcome.status !== "complete") return;
      expect(outcome.receipt.cosigning?.leader).toBe("member-1");
      expect(outcome.receipt.cosigning?.signedBy).toEqual(expect.arrayContaining(["member-1"]));
      expect(outcome.receipt.cosigning?.signedBy.length).toBeGreaterThanOrEqual(2);
      expect(await recordEvents(resultId)).toEqual([1, 1]);
    } finally {
      expect(await stopWorker(worker)).toBe(0);
      await submitter.close();
      await stack.start("member-1");
    }
  });

  test("the registries accept a result only with 2 distinct members' Key Vault signatures", async () => {
    const cryptletId = cryptletIdOf(stack.pkg.manifest.name);
    const result: CryptletResult = {
      resultId: computeResultId(cryptletId, httpEventId(`direct-${stack.members[0]!.prefix}`)),
      cryptletId,
      codeHash: stack.pkg.codeHash,
      inputHash: `0x${"11".repeat(32)}` as Hex32,
      outputHash: `0x${"22".repeat(32)}` as Hex32,
      timestamp: 1_700_000_000n,
    };
    const [s1] = await signCryptletResult(CONSORTIUM_TEST_ID, result, [stack.member("member-1").resultSigner]);
    const [s2] = await signCryptletResult(CONSORTIUM_TEST_ID, result, [stack.member("member-2").resultSigner]);
    const struct = { ...structToBundleResult(result), timestamp: result.timestamp };
    for (const chain of stack.chains) {
      const registry = new Contract(chain.contracts.registry, interfaceOf("CryptletRegistry"), chain.node.provider);
      const verify = registry.getFunction("verifyResultProof");
      await expect(verify.staticCall(struct, [s1!.signature])).rejects.toThrow(/CryptletProofThresholdNotMet|revert/);
      await expect(verify.staticCall(struct, [s1!.signature, s1!.signature])).rejects.toThrow(
        /CryptletProofDuplicateSigner|revert/,
      );
      await expect(verify.staticCall(struct, [s1!.signature, s2!.signature])).resolves.toBeDefined();
      expect((await registry.getFunction("threshold")()) as bigint).toBe(2n);
      expect(((await registry.getFunction("signers")()) as string[]).length).toBe(3);
    }
  });

  test("an anchor target is refused by a member (batches are not co-signed): dead-lettered with its code, nothing written", async () => {
    const variant = await stack.deployVariant("@cryptlet/price-median-anchored", [
      { chain: "consortium", mode: "anchor" },
    ]);
    const leader = stack.member("member-1");
    const event = { ...httpEvent(631), cryptlet: { name: variant.manifest.name } };
    const { runId } = await leader.pipeline.submit(event);
    const deadline = Date.now() + 60_000;
    let entry: DeadLetter | undefined;
    while (entry === undefined && Date.now() < deadline) {
      const jobs = await leader.pipeline.queue<DeadLetter>(QUEUES.deadLetter).getJobs(["waiting", "delayed"]);
      entry = jobs.map((j) => j.data).find((d) => (d.data as CryptletEvent).eventId === event.eventId);
      if (entry === undefined) await new Promise((r) => setTimeout(r, 200));
    }
    expect(entry?.error).toMatchObject({ code: "ERR_COSIGN_ANCHOR_UNSUPPORTED", retryable: false });
    expect(entry?.error.message).toContain('anchor target on chain "consortium"');
    expect(await leader.ctx.results.getRun(runId)).toBeFalsy(); // no run recorded, nothing to write
  });

  test("leader order is deterministic per result and differs between results", () => {
    const members = stack.settings("member-1").members;
    const a = leaderOrder(`0x${"01".repeat(32)}`, members).map((m) => m.id);
    expect(leaderOrder(`0x${"01".repeat(32)}`, [...members].reverse()).map((m) => m.id)).toEqual(a);
    const firsts = new Set(
      Array.from({ length: 16 }, (_, i) => leaderOrder(`0x${i.toString(16).padStart(64, "0")}`, members)[0]!.id),
    );
    expect(firsts.size).toBeGreaterThan(1);
  });
});

describe("consortium pipeline: a sealed result co-signed (the JWE's content key disclosed to peers in memory only)", () => {
  let stack: ConsortiumStack;
  let minutes: Awaited<ReturnType<typeof loadMinuteInputs>>;
  let partyKey: JWK;

  beforeAll(async () => {
    minutes = await loadMinuteInputs();
    partyKey = await exportJWK(
      (await generateKeyPair("ECDH-ES+A256KW", { crv: "P-256", extractable: true })).privateKey,
    );
    const { d: _d, ...partyPublic } = partyKey;
    stack = await startConsortiumStack({
      members: 3,
      threshold: 2,
      chains: [{ name: "consortium", chainId: 73_011 }],
      targets: [{ chain: "consortium", mode: "record" }],
      wiring: protocolWiring(),
      answerTimeoutMs: 5000,
      failoverMs: 0,
      retry: { attempts: 3, backoff: { type: "exponential", delay: 200 } },
      sealedFor: [{ name: "buyer", jwk: partyPublic as Party["jwk"] }],
    });
  }, 240_000);

  afterAll(async () => {
    await stack?.close();
  });

  test("2 members sign the sealed result; the chain holds the JWE, which the party opens; no content key in the leader's Redis", async () => {
    const leader = stack.member("member-2");
    const { minute, input } = minutes[620]!;
    const key = `sealed-620-${leader.prefix}`;
    const { runId, resultId } = await leader.pipeline.submit({
      eventId: httpEventId(key),
      cryptlet: { name: stack.pkg.manifest.name },
      source: { type: "http", idempotencyKey: key },
      input,
      time: minute + 59,
    });
    const outcome = await leader.pipeline.waitForRun(runId, 120_000);
    expect(outcome.status).toBe("complete");
    if (outcome.status !== "complete") return;
    expect(outcome.receipt.status).toBe("confirmed");
    expect(outcome.receipt.cosigning?.leader).toBe("member-2");
    expect(outcome.receipt.cosigning?.signedBy.length).toBeGreaterThanOrEqual(2);
    expect(outcome.receipt.cosigning?.dissented).toEqual([]);
    const chain = stack.chains[0]!;
    const [log] = await chain.ledger.queryFilter(chain.ledger.filters.ResultRecorded!(resultId));
    const payload = (log as unknown as { args: { payload: string } }).args.payload;
    const jwe = JSON.parse(Buffer.from(payload.slice(2), "hex").toString("utf8")) as unknown;
    const plaintext = JSON.parse(new TextDecoder().decode(await open(jwe, partyKey))) as unknown;
    expect(plaintext).toBeDefined();
    // The content key never reached Redis: scan the leader's keys for it is impossible (it is random), so check that
    // no stored value carries a `contentKey` field.
    let cursor = "0";
    do {
      const [next, found] = await stack.redis.scan(cursor, "MATCH", `*${leader.prefix}*`, "COUNT", 1000);
      cursor = next;
      for (const k of found) {
        const type = await stack.redis.type(k);
        const text =
          type === "string"
            ? await stack.redis.get(k)
            : type === "hash"
              ? JSON.stringify(await stack.redis.hgetall(k))
              : "";
        expect(text ?? "").not.toContain("contentKey");
      }
    } while (cursor !== "0");
  });
});
