/**
 * Upgrading a Cryptlet while runs are in flight (docs/operations.md, "Upgrading a Cryptlet while runs are in
 * flight"): version 1 of `price-median` is deployed, runs are submitted (some already accepted and waiting for
 * `execute`, some still in the events queue), version 2 (different code: its `observedAt` is one second later, so
 * a different code hash) is deployed, then more runs. Checked against the chain: each run's `ResultRecorded`
 * carries the code hash of the version it was submitted under, and its payload is what that version's code
 * computes (recomputed here with the Cryptlet's own median function).
 */
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { AbiCoder, type Log } from "ethers";
import { exportJWK, generateKeyPair } from "jose";

import { httpEventId } from "../../runtime/attestation/ids.ts";
import { interfaceOf } from "../../runtime/chains/contracts.ts";
import { buildPackage } from "../../runtime/packages/build.ts";
import { PackageStore } from "../../runtime/packages/PackageStore.ts";
import { signPackage } from "../../runtime/packages/signature.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";
import { aggregatePrices, type PriceMedianInput } from "../../cryptlets/price-median/src/median.ts";
import { startPipelineStack, type PipelineStack } from "../support/pipelineStack.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..");

const until = async (what: string, condition: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

describe("deploying version 2 of a Cryptlet while runs of version 1 are queued and in flight", () => {
  let stack: PipelineStack;
  let dir: string | undefined;

  beforeAll(async () => {
    stack = await startPipelineStack({
      chains: [{ name: "alpha", chainId: 74_101 }],
      targets: [{ chain: "alpha", mode: "record" }],
      workers: false,
    });
  }, 120_000);

  afterAll(async () => {
    await stack?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("runs submitted before the upgrade finish on version 1's code hash, later ones on version 2's", async () => {
    const name = stack.pkg.manifest.name;
    const v1 = stack.pkg;
    const minutes = await loadMinuteInputs();
    const inputs = new Map<string, { input: PriceMedianInput; time: number }>();
    let n = 0;
    const submit = async (group: string) => {
      const { minute, input } = minutes[n % minutes.length]!;
      n += 1;
      const time = minute + 59;
      const run = await stack.pipeline.submit({
        eventId: httpEventId(`${stack.prefix}-upgrade-${group}-${n}`),
        cryptlet: { name },
        source: { type: "http", idempotencyKey: `upgrade-${n}` },
        input,
        time,
      });
      inputs.set(run.runId, { input: input as PriceMedianInput, time });
      return run.runId;
    };

    // Group A: accepted (bound to a package) by an events-only worker, then left waiting for `execute`.
    const accepting = stack.newPipeline();
    accepting.startWorkers({ stages: ["events"] });
    const groupA: string[] = [];
    for (let i = 0; i < 4; i += 1) groupA.push(await submit("a"));
    await until("group A accepted", async () =>
      (await Promise.all(groupA.map((id) => stack.ctx.results.getRun(id)))).every(Boolean),
    );
    await accepting.close();
    // Group B: still in the events queue (no worker takes events now).
    const groupB: string[] = [];
    for (let i = 0; i < 4; i += 1) groupB.push(await submit("b"));
    expect((await Promise.all(groupB.map((id) => stack.ctx.results.getRun(id)))).every((r) => r === undefined)).toBe(
      true,
    );

    // Version 2: other code (observedAt one second later), deployed to the package store and approved on-chain.
    dir = await mkdtemp(path.join(os.tmpdir(), "cryptlet-upgrade-"));
    await cp(path.join(ROOT, "cryptlets", "price-median"), dir, {
      recursive: true,
      filter: (src) => !src.includes(`${path.sep}data`) && !src.includes(`${path.sep}dist`),
    });
    const manifestFile = path.join(dir, "cryptlet.json");
    const manifest = JSON.parse(await readFile(manifestFile, "utf8")) as Record<string, unknown>;
    await writeFile(manifestFile, JSON.stringify({ ...manifest, version: "2.0.0", targets: v1.manifest.targets }));
    const indexFile = path.join(dir, "src", "index.ts");
    const code = await readFile(indexFile, "utf8");
    const changed = code.replace(
      "return result.output;",
      "return { ...result.output, observedAt: result.output.observedAt + 1 };",
    );
    expect(changed).not.toBe(code);
    await writeFile(indexFile, changed);
    const v2 = await buildPackage(dir);
    expect(v2.codeHash).not.toBe(v1.codeHash);
    const publisher = await generateKeyPair("ES256", { extractable: true });
    const publisherJwk = { ...(await exportJWK(publisher.publicKey)), kid: "upgrade-publisher" };
    const store = new PackageStore({
      redis: stack.redis,
      trustedPublisherKeys: [publisherJwk],
      prefix: `{${stack.prefix}-packages}:`,
    });
    await store.deploy(v2, await signPackage(v2, publisher.privateKey, "upgrade-publisher"));
    const chain = stack.chains[0]!;
    await (await chain.registry.getFunction("approveCodeHash")(v2.cryptletId, v2.codeHash)).wait();
    expect((await stack.ctx.packages.get(name)).codeHash).toBe(v2.codeHash);

    // Every stage now; then group C, after the upgrade.
    stack.pipeline.startWorkers({ lockDurationMs: 5000, stalledIntervalMs: 2000 });
    const groupC: string[] = [];
    for (let i = 0; i < 4; i += 1) groupC.push(await submit("c"));

    for (const runId of [...groupA, ...groupB, ...groupC]) {
      const outcome = await stack.pipeline.waitForRun(runId, 120_000);
      expect(outcome.status).toBe("complete");
    }
    expect(await stack.pipeline.deadLetters()).toEqual([]);

    // The chain: one ResultRecorded per run, its code hash and its payload.
    const ledgerAbi = interfaceOf("ResultLedger");
    const logs: Log[] = await chain.node.provider.getLogs({
      address: chain.contracts.ledger,
      topics: [ledgerAbi.getEvent("ResultRecorded")!.topicHash],
      fromBlock: 0,
    });
    const recorded = new Map<string, { codeHash: string; observedAt: bigint }[]>();
    for (const log of logs) {
      const event = ledgerAbi.parseLog(log)!;
      const [output] = AbiCoder.defaultAbiCoder().decode(
        ["tuple(int256 answer, uint8 decimals, uint64 observedAt)"],
        event.args.payload as string,
      );
      const entry = {
        codeHash: (event.args.codeHash as string).toLowerCase(),
        observedAt: output.observedAt as bigint,
      };
      recorded.set(event.args.resultId as string, [...(recorded.get(event.args.resultId as string) ?? []), entry]);
    }
    expect(recorded.size).toBe(12);
    const expectVersion = (runId: string, codeHash: string, shift: number) => {
      const entries = recorded.get(runId)!;
      expect(entries).toHaveLength(1);
      expect(entries[0]!.codeHash).toBe(codeHash.toLowerCase());
      const { input, time } = inputs.get(runId)!;
      expect(entries[0]!.observedAt).toBe(BigInt(aggregatePrices(input, time).output.observedAt + shift));
    };
    for (const runId of [...groupA, ...groupB]) expectVersion(runId, v1.codeHash, 0);
    for (const runId of groupC) expectVersion(runId, v2.codeHash, 1);

    // The proof bundles say the same.
    for (const runId of [...groupA, ...groupB, ...groupC]) {
      const attested = await stack.ctx.results.getAttested(runId);
      const expected = groupC.includes(runId) ? v2 : v1;
      expect(attested!.bundle.result.codeHash.toLowerCase()).toBe(expected.codeHash.toLowerCase());
      expect(attested!.bundle.manifest.version).toBe(expected.manifest.version);
    }
  }, 300_000);
});
