/**
 * Retention (issue 13 item 4) on the real pipeline (Redis, BullMQ, two hardhat nodes, the Key Vault emulator):
 * every key a run writes carries a TTL or is in the documented list of bounded keys (docs/pipeline.md
 * "Retention"); after a short retention the results, receipts, lane and anchor records are gone from Redis, the
 * receipt is served from the bundle archive, and finished jobs are removed by BullMQ.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { httpEventId } from "../../runtime/attestation/ids.ts";
import { DirectoryBundleArchive } from "../../runtime/archive/DirectoryBundleArchive.ts";
import type { CompositeReceipt } from "../../runtime/queue/results.ts";
import { QUEUES, jobIds, type CryptletEvent } from "../../runtime/queue/topology.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";
import { startPipelineStack, type PipelineStack } from "../support/pipelineStack.ts";

const RETENTION_SECONDS = 4;

/**
 * Keys without a TTL, each bounded otherwise (the same list as docs/pipeline.md "Retention"); `P` is the prefix.
 */
function boundedKeys(p: string): [RegExp, string][] {
  const q = p.replace(/[{}]/g, "\\$&");
  const queue = "(events|execute|attest|writes|runs|batches|dead-letter)";
  return [
    [
      new RegExp(
        `^${q}:${queue}:(meta|id|events|wait|paused|active|delayed|prioritized|waiting-children|completed|failed|marker|pc|stalled)$`,
      ),
      "BullMQ queue structures: jobs in flight (≤ the backlog bound), finished jobs (job retention), events stream (MAXLEN)",
    ],
    [
      new RegExp(
        `^${q}:${queue}:(event|execute|attest|write|run|batch|dlq)-[^:]+(:dependencies|:processed|:failed|:unsuccessful|:logs)?$`,
      ),
      "BullMQ jobs: removed by the job retention (age = retention, at most 100,000 per queue)",
    ],
    [new RegExp(`^${q}:\\{backlog\\}:(runs|cryptlet:0x[0-9a-f]{64})$`), "the backlog sets: at most the bounds"],
    [new RegExp(`^${q}:lane:\\{[^}]+\\}:(next|pending)$`), "one per lane; nonces not yet confirmed"],
    [
      new RegExp(`^${q}:\\{anchor:[^}]+\\}:(seq|pending|results|open|proof|digest|anchored)$`),
      "anchor state: queued results, open batches, proofs of batches not yet retired",
    ],
    [
      new RegExp(`^${q}:\\{anchor:[^}]+\\}:batch:\\d+(:ids|:results)?$`),
      "open batches; an anchored batch's ids until retired",
    ],
    [new RegExp(`^\\{${q}-packages\\}:`), "deployed packages (changed by deploys only)"],
    [
      new RegExp(`^${q}:\\{batch:0x[0-9a-f]{64}\\}:(generation|pending|entries|joined)$`),
      "micro-batch queues: one open generation per package; runs in flight (at most the backlog bound)",
    ],
  ];
}

/** Runs with their own jobs (a record and an anchor target), and micro-batched runs (anchor targets only). */
const VARIANTS = [
  { name: "a job per stage and result", microBatch: false },
  { name: "micro-batches", microBatch: true },
];

describe.each(VARIANTS)(
  "retention: keys expire, receipts stay in the bundle archive (real pipeline, $name)",
  ({ microBatch }) => {
    let stack: PipelineStack;
    let archiveDir: string;
    let minutes: Awaited<ReturnType<typeof loadMinuteInputs>>;

    beforeAll(async () => {
      minutes = await loadMinuteInputs();
      archiveDir = await mkdtemp(path.join(os.tmpdir(), "cryptlet-archive-"));
      stack = await startPipelineStack({
        chains: [
          { name: "consortium", chainId: 75_001 },
          { name: "public", chainId: 75_002 },
        ],
        targets: [
          { chain: "consortium", mode: microBatch ? "anchor" : "record" },
          { chain: "public", mode: "anchor" },
        ],
        ...(microBatch ? { microBatch: { windowMs: 10 } } : {}),
        retentionSeconds: RETENTION_SECONDS,
        archiveDirectory: archiveDir,
      });
    }, 180_000);

    afterAll(async () => {
      await stack?.close();
      await rm(archiveDir, { recursive: true, force: true });
    });

    const event = (minuteIndex: number, key: string): CryptletEvent => {
      const { minute, input } = minutes[minuteIndex]!;
      return {
        eventId: httpEventId(`${stack.prefix}-${key}`),
        cryptlet: { name: stack.pkg.manifest.name },
        source: { type: "http", idempotencyKey: key },
        input,
        time: minute + 59,
      };
    };

    async function keysWithTtl(): Promise<Map<string, number>> {
      const found = new Map<string, number>();
      let cursor = "0";
      do {
        const [next, keys] = await stack.redis.scan(cursor, "MATCH", `*${stack.prefix}*`, "COUNT", 1000);
        cursor = next;
        for (const key of keys) found.set(key, await stack.redis.pttl(key));
      } while (cursor !== "0");
      return found;
    }

    const resultKeys = (resultId: string) =>
      ["run", "attested", "writes", "receipt"].map(
        (part) => `${stack.prefix}:result:{${resultId.toLowerCase()}}:${part}`,
      );

    test("every key written has a TTL or is a documented bounded key; after the retention only the archive has the receipt", async () => {
      const runs: Awaited<ReturnType<typeof stack.pipeline.submit>>[] = [];
      for (const [i, key] of ["a", "b"].entries()) runs.push(await stack.pipeline.submit(event(600 + i, key)));
      const receipts: CompositeReceipt[] = [];
      for (const run of runs) {
        const outcome = await stack.pipeline.waitForRun(run.runId, 120_000);
        expect(outcome.status).toBe("complete");
        if (outcome.status === "complete") receipts.push(outcome.receipt);
      }
      expect(receipts.map((r) => r.status)).toEqual(["confirmed", "confirmed"]);

      const ttls = await keysWithTtl();
      const bounded = boundedKeys(stack.prefix);
      const unexplained = [...ttls].filter(([key, ttl]) => ttl === -1 && !bounded.some(([re]) => re.test(key)));
      expect(unexplained).toEqual([]);
      for (const run of runs) {
        for (const key of resultKeys(run.resultId)) {
          expect(ttls.get(key)).toBeGreaterThan(0);
          expect(ttls.get(key)).toBeLessThanOrEqual(RETENTION_SECONDS * 1000);
        }
      }
      const laneKeys = [...ttls.keys()].filter((k) => /:lane:\{[^}]+\}:(tx|idem):/.test(k));
      expect(laneKeys.length).toBeGreaterThanOrEqual(2);
      for (const key of laneKeys) expect(ttls.get(key)).toBeGreaterThan(0);

      // The archive got every receipt before Redis did.
      const archive = new DirectoryBundleArchive(archiveDir);
      for (const receipt of receipts) {
        expect(JSON.parse(await readFile(archive.fileOf(receipt.resultId), "utf8"))).toEqual(receipt);
      }

      // After the retention: Redis no longer holds results, receipts, lane or anchor records of these runs...
      await new Promise((resolve) => setTimeout(resolve, (RETENTION_SECONDS + 2) * 1000));
      for (const run of runs) {
        for (const key of resultKeys(run.resultId)) expect(await stack.redis.exists(key)).toBe(0);
        expect(await stack.redis.hexists(`${stack.prefix}:{anchor:public}:proof`, run.resultId.toLowerCase())).toBe(0);
        expect(await stack.redis.hexists(`${stack.prefix}:{anchor:public}:digest`, run.resultId.toLowerCase())).toBe(0);
      }
      const lanesLeft = [...(await keysWithTtl()).keys()].filter((k) => /:lane:\{[^}]+\}:(tx|idem):/.test(k));
      expect(lanesLeft).toEqual([]);
      // ...and the receipt is still served, from the archive.
      for (const receipt of receipts) expect(await stack.ctx.results.getReceipt(receipt.runId)).toEqual(receipt);

      // The next finished run makes BullMQ remove the jobs older than the retention.
      const batchJobs = microBatch
        ? (await stack.pipeline.queue(QUEUES.batches).getJobs(["completed"])).map((j) => j.id!)
        : [];
      if (microBatch) expect(batchJobs.length).toBeGreaterThan(0);
      const third = await stack.pipeline.submit(event(610, "c"));
      expect((await stack.pipeline.waitForRun(third.runId, 120_000)).status).toBe("complete");
      // (BullMQ removes them when it finishes the next job of each queue: the run can be complete a moment before
      // its own `runs` job is, so the check polls, within a deadline.)
      const oldJobs = async () => {
        const left: string[] = [];
        for (const id of batchJobs)
          if (await stack.pipeline.queue(QUEUES.batches).getJob(id)) left.push(`batches ${id}`);
        for (const run of runs) {
          if (await stack.pipeline.queue("runs").getJob(jobIds.run(run.resultId))) left.push(`runs ${run.resultId}`);
          if (await stack.pipeline.queue("execute").getJob(jobIds.execute(run.resultId)))
            left.push(`execute ${run.resultId}`);
          if (await stack.pipeline.queue("writes").getJob(jobIds.write("consortium", "record", run.resultId))) {
            left.push(`writes ${run.resultId}`);
          }
        }
        return left;
      };
      let left = await oldJobs();
      for (const deadline = Date.now() + 15_000; left.length > 0 && Date.now() < deadline; left = await oldJobs()) {
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      expect(left).toEqual([]);
    }, 300_000);
  },
);
