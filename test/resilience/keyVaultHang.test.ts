/**
 * Issue 13's Key Vault hang: a vault that accepts connections (TCP and TLS) but never answers. Through a hanging
 * TLS proxy in front of the Key Vault emulator, with the real Azure SDK, real worker processes, Redis and a
 * `hardhat node` chain:
 * (a) a call ends with ERR_DEPENDENCY_TIMEOUT within its deadline, then the breaker refuses calls at once;
 * (b) events submitted during the hang all finish after the vault returns, once each on the chain;
 * (c) the outage is visible: readiness 503, the `cryptlet_dependency_circuit_state` gauge, one log line on open
 *     and one on close;
 * (d) a worker process receiving SIGTERM during the hang exits within its shutdown deadline.
 */
import type { ChildProcess } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";

import { DefaultAzureCredential } from "@azure/identity";
import { getBytes, id } from "ethers";

import { createApiMetrics } from "../../runtime/api/metrics.ts";
import { httpEventId } from "../../runtime/attestation/ids.ts";
import { interfaceOf } from "../../runtime/chains/contracts.ts";
import { isCryptletError } from "../../runtime/errors.ts";
import { AzureKeyVaultProvider } from "../../runtime/keys/AzureKeyVaultProvider.ts";
import { dependencyStates } from "../../runtime/resilience/dependency.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";
import { request, startLightApi } from "../api/helpers.ts";
import { startHangingTlsProxy, type HangingTlsProxy } from "../support/hangingTlsProxy.ts";
import { startPipelineStack, type PipelineStack } from "../support/pipelineStack.ts";
import { freePort } from "../support/redisServer.ts";
import { startWorker } from "../support/workerProcess.ts";

const OPEN_LINE = "dependency unavailable: circuit open";
const CLOSED_LINE = "dependency available: circuit closed";

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function readyStatus(port: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/ready`, { signal: AbortSignal.timeout(5000) });
  await res.arrayBuffer();
  return res.status;
}

describe("a Key Vault that accepts connections but never answers", () => {
  let stack: PipelineStack;
  let proxy: HangingTlsProxy;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    stack = await startPipelineStack({
      chains: [{ name: "alpha", chainId: 73_111 }],
      targets: [{ chain: "alpha", mode: "record" }],
      workers: false,
    });
    proxy = await startHangingTlsProxy({ port: Number(new URL(stack.vault.vaultUrl).port), ca: stack.vault.ca });
  }, 180_000);

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    await proxy?.close();
    await stack?.close();
  });

  test("(a, c) calls end with ERR_DEPENDENCY_TIMEOUT within the deadline, the breaker opens and closes once each, visibly", async () => {
    const lines: { level: string; msg: string | undefined; obj: object }[] = [];
    const logger = {
      info: (obj: object, msg?: string) => lines.push({ level: "info", msg, obj }),
      warn: (obj: object, msg?: string) => lines.push({ level: "warn", msg, obj }),
    };
    const policy = {
      timeoutMs: 800,
      attempts: 2,
      backoffInitialMs: 50,
      backoffMaxMs: 100,
      breakerThreshold: 4,
      breakerHalfOpenMs: 1000,
    };
    const provider = new AzureKeyVaultProvider({
      vaultUrl: proxy.url,
      keyName: "attestation",
      credential: new DefaultAzureCredential(),
      clientOptions: { ...stack.vault.clientOptions, tlsOptions: { ca: `${stack.vault.ca.trim()}\n${proxy.ca}` } },
      policy,
      logger,
    });
    const name = `key-vault:${proxy.url}`;
    const gauge = async () => {
      const text = await createApiMetrics().registry.metrics();
      const line = text
        .split("\n")
        .find((l) => l.startsWith(`cryptlet_dependency_circuit_state{dependency="${name}"}`));
      return line?.split(" ").at(-1);
    };
    const digest = getBytes(id("hung vault"));
    const api = await startLightApi();
    try {
      await hangThenRelease();
    } finally {
      proxy.release();
      await api.close();
    }
    async function hangThenRelease() {
      await provider.sign(digest, "ES256");
      expect(await gauge()).toBe("0");

      proxy.hang();
      // Worst case of one call: attempts × timeoutMs + backoff (≤ 100 ms); generous margin for a loaded machine.
      const limitMs = policy.attempts * policy.timeoutMs + policy.backoffMaxMs + 1500;
      for (let call = 0; call < 2; call += 1) {
        const started = performance.now();
        const error = await provider.sign(digest, "ES256").then(
          () => undefined,
          (e: unknown) => e,
        );
        const elapsed = performance.now() - started;
        expect(isCryptletError(error, "ERR_DEPENDENCY_TIMEOUT")).toBe(true);
        expect(elapsed).toBeGreaterThanOrEqual(policy.attempts * policy.timeoutMs - 50);
        expect(elapsed).toBeLessThan(limitMs);
      }
      // 4 consecutive timed-out attempts: the breaker is open; calls are refused at once, none is sent.
      const swallowedBefore = proxy.stats.swallowed;
      const started = performance.now();
      const refused = await Promise.all(
        Array.from({ length: 20 }, () =>
          provider.sign(digest, "ES256").then(
            () => undefined,
            (e: unknown) => e,
          ),
        ),
      );
      expect(performance.now() - started).toBeLessThan(500);
      expect(refused.every((e) => isCryptletError(e, "ERR_DEPENDENCY_CIRCUIT_OPEN"))).toBe(true);
      expect(proxy.stats.swallowed).toBe(swallowedBefore);
      expect(provider.guard.state).toBe("open");
      expect(dependencyStates().find((s) => s.name === name)?.state).toBe("open");
      expect(await gauge()).toBe("1");
      // The API process's readiness: 503 with the open breaker named.
      const notReady = await request(api.url, "GET", "/ready");
      expect(notReady.status).toBe(503);
      expect(notReady.body.code).toBe("ERR_API_NOT_READY");
      expect(notReady.body.details.checks).toContainEqual(
        expect.objectContaining({ name: `dependency:${name}`, ok: false, error: "circuit open" }),
      );

      // Trial calls (the guard's probe) fail while the hang lasts; still one log line.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      expect(provider.guard.state).not.toBe("closed");
      proxy.release();
      await until("the breaker to close", () => provider.guard.state === "closed", 15_000);
      await provider.sign(digest, "ES256");
      expect(await gauge()).toBe("0");
      expect((await request(api.url, "GET", "/ready")).status).toBe(200);
      expect(lines.filter((l) => l.msg === OPEN_LINE)).toHaveLength(1);
      expect(lines.filter((l) => l.msg === CLOSED_LINE)).toHaveLength(1);
      expect(lines.filter((l) => l.msg === OPEN_LINE)[0]!.obj).toMatchObject({ dependency: name, state: "open" });
    }
  }, 60_000);

  test("(b, c, d) events submitted during the hang all finish once after it; SIGTERM ends within the deadline", async () => {
    proxy.release(); // in case the previous test failed while the proxy hung
    const shutdownTimeoutMs = 4000;
    const configFile = await stack.writeConfig();
    const dir = path.dirname(configFile);
    const config = JSON.parse(await readFile(configFile, "utf8"), (key, value: unknown) =>
      key === "vaultUrl" ? proxy.url : value,
    ) as Record<string, unknown>;
    config.resilience = {
      keyVault: {
        timeoutMs: 1000,
        attempts: 2,
        backoffInitialMs: 100,
        backoffMaxMs: 300,
        breakerThreshold: 3,
        breakerHalfOpenMs: 1000,
      },
      shutdownTimeoutMs,
    };
    const hungConfig = path.join(dir, "hung.config.json");
    await writeFile(hungConfig, JSON.stringify(config));
    const caFile = path.join(dir, "ca-and-proxy.pem");
    await writeFile(caFile, `${stack.vault.ca.trim()}\n${proxy.ca}`);

    const healthPorts = [await freePort(), await freePort()];
    const logs = ["", ""];
    for (const [i, port] of healthPorts.entries()) {
      const child = await startWorker(hungConfig, caFile, { CRYPTLET_HEALTH_PORT: String(port), LOG_LEVEL: "info" });
      child.stderr!.on("data", (c: Buffer) => (logs[i] += c.toString()));
      children.push(child);
    }
    const [first, second] = children.slice(-2) as [ChildProcess, ChildProcess];

    const minutes = (await loadMinuteInputs()).slice(0, 22);
    const submit = (slice: typeof minutes) =>
      Promise.all(
        slice.map(({ minute, input }) =>
          stack.pipeline.submit({
            eventId: httpEventId(`${stack.prefix}-hang-${minute}`),
            cryptlet: { name: stack.pkg.manifest.name },
            source: { type: "http", idempotencyKey: `hang-${minute}` },
            input,
            time: minute + 59,
          }),
        ),
      );
    // Two runs before the hang: tokens fetched, keys read, a transaction sent.
    const warm = await submit(minutes.slice(0, 2));
    for (const run of warm) expect((await stack.pipeline.waitForRun(run.runId, 60_000)).status).toBe("complete");
    expect(await readyStatus(healthPorts[0]!)).toBe(200);

    proxy.hang();
    const runs = [...warm, ...(await submit(minutes.slice(2)))];
    // Let the workers take the new runs' attest jobs into the hung vault.
    await until(
      "attest jobs in flight",
      async () => (await stack.pipeline.queue("attest").getJobCounts("active")).active! > 0,
      30_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 500));

    // (d) SIGTERM during the hang: the worker exits within its shutdown deadline (plus margin for a busy host).
    const sigterm = performance.now();
    const exited = new Promise<number | null>((resolve) => first.once("exit", (code) => resolve(code)));
    first.kill("SIGTERM");
    const exitCode = await Promise.race([
      exited,
      new Promise<"hung">((resolve) => setTimeout(() => resolve("hung"), shutdownTimeoutMs + 6000)),
    ]);
    expect(exitCode).not.toBe("hung");
    expect(performance.now() - sigterm).toBeLessThan(shutdownTimeoutMs + 6000);

    // (c) The remaining worker reports the outage: readiness 503 while its breaker is open.
    await until(
      "the worker to report the vault unavailable",
      async () => (await readyStatus(healthPorts[1]!)) === 503,
      30_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 2000));
    // Jobs refused by the open breaker wait without spending an attempt: delayed attest jobs that were started
    // but have no failed attempt.
    const delayed = await stack.pipeline.queue("attest").getJobs(["delayed"]);
    expect(delayed.some((job) => job.attemptsMade === 0 && job.attemptsStarted > 0)).toBe(true);
    proxy.release();

    // (b) Every run completes, served by the remaining worker once the vault answers again.
    for (const run of runs) {
      const outcome = await stack.pipeline.waitForRun(run.runId, 120_000);
      expect(outcome.status).toBe("complete");
      if (outcome.status === "complete") expect(outcome.receipt.status).toBe("confirmed");
    }
    const topic = interfaceOf("ResultLedger").getEvent("ResultRecorded")!.topicHash;
    const chain = stack.chains[0]!;
    const recorded = await chain.node.provider.getLogs({
      address: chain.contracts.ledger,
      topics: [topic],
      fromBlock: 0,
    });
    const perResult = new Map<string, number>();
    for (const log of recorded) perResult.set(log.topics[1]!, (perResult.get(log.topics[1]!) ?? 0) + 1);
    expect(recorded).toHaveLength(runs.length);
    for (const run of runs) expect(perResult.get(run.resultId)).toBe(1);
    expect(await stack.pipeline.deadLetters()).toHaveLength(0);

    // (c) The remaining worker is ready again and logged the outage once: one line on open, one on close.
    await until("the worker to be ready", async () => (await readyStatus(healthPorts[1]!)) === 200, 30_000);
    const count = (text: string, msg: string) => text.split("\n").filter((l) => l.includes(`"msg":"${msg}"`)).length;
    expect(count(logs[1]!, OPEN_LINE)).toBe(1);
    expect(count(logs[1]!, CLOSED_LINE)).toBe(1);
    // The stopped worker logged it at most once (it may have been stopped before its breaker opened).
    expect(count(logs[0]!, OPEN_LINE)).toBeLessThanOrEqual(1);
    second.kill("SIGTERM");
    await new Promise((resolve) => second.once("exit", resolve));
  }, 300_000);
});
