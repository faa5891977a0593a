/**
 * `cryptlet serve` (issue 15 item 1) as real operating-system processes, configured only by the configuration file
 * and the environment: an `api` process and a `worker` process on one Redis, a `hardhat node` chain and the Key
 * Vault emulator. An invocation through the API is written on-chain by the worker (checked on the chain); the
 * worker's `/readyz` follows a frozen chain (SIGSTOP); both processes log JSON only and exit 0 on SIGTERM within
 * the deadline; an unknown role or stage is a usage error (exit 2); an api role without token settings does not
 * start.
 */
import { spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";

import { LocalIssuer } from "../../runtime/api/localIssuer.ts";
import { startPipelineStack, type PipelineStack } from "../support/pipelineStack.ts";
import { serve, stopServed as stop, type Served } from "../support/serveProcess.ts";
import { request } from "../api/helpers.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..");
const CLI = path.join(ROOT, "runtime", "cli", "main.ts");

/** Runs `cryptlet serve …` expecting it to exit by itself; its exit code and standard error. */
function serveExit(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [CLI, "serve", ...args], {
    cwd: ROOT,
    env: { ...process.env, NODE_OPTIONS: "", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.once("exit", (code) => resolve({ code, stderr })));
}

async function readyz(port: number): Promise<{ status: number; body: { checks: { name: string; ok: boolean }[] } }> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: (await res.json()) as { checks: { name: string; ok: boolean }[] } };
}

describe("cryptlet serve: api and worker as separate processes", () => {
  let stack: PipelineStack;
  let configFile: string;
  let env: Record<string, string>;
  const served: Served[] = [];

  beforeAll(async () => {
    stack = await startPipelineStack({
      chains: [{ name: "consortium", chainId: 74_301 }],
      targets: [{ chain: "consortium", mode: "record" }],
      workers: false,
    });
    configFile = await stack.writeConfig();
    const document = JSON.parse(await readFile(configFile, "utf8")) as Record<string, unknown>;
    await writeFile(
      configFile,
      JSON.stringify({
        ...document,
        api: { port: 0, localIssuer: { keyFile: "api-issuer.private.jwk.json" } },
        health: { port: 0 },
        triggers: { schedules: false },
      }),
    );
    env = { NODE_EXTRA_CA_CERTS: path.join(path.dirname(configFile), "ca.pem") };
  }, 180_000);

  afterAll(async () => {
    for (const s of served) if (s.child.exitCode === null) s.child.kill("SIGKILL");
    await stack?.close();
  });

  test("an unknown role or stage is a usage error; an api role without token settings does not start", async () => {
    const bogus = await serveExit(["bogus", "--config", configFile], env);
    expect(bogus.code).toBe(2);
    expect(bogus.stderr).toContain('unknown role "bogus"');
    const stage = await serveExit(["worker", "--stages", "events,bogus", "--config", configFile], env);
    expect(stage.code).toBe(2);
    expect(stage.stderr).toContain(
      'unknown stage "bogus": give one or more of events, execute, attest, writes, runs, batches',
    );

    const document = JSON.parse(await readFile(configFile, "utf8")) as Record<string, unknown>;
    const noAuth = path.join(path.dirname(configFile), "no-auth.config.json");
    await writeFile(noAuth, JSON.stringify({ ...document, api: { port: 0 } }));
    const refused = await serveExit(["api", "--config", noAuth], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("set api.auth (an OpenID Connect issuer: issuer, audience)");
  }, 120_000);

  test("an invocation through the api process is written on-chain by the worker process; readiness; SIGTERM", async () => {
    const worker = await serve("worker", configFile, env);
    served.push(worker);
    const api = await serve("api", configFile, env);
    served.push(api);
    expect(worker.ready.roles).toEqual(["worker"]);
    expect(api.ready.roles).toEqual(["api"]);
    expect(api.ready.api?.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    // The worker is ready: Redis, the chain and the Key Vault answer, every breaker closed.
    const healthPort = worker.ready.health!.port;
    const ready = await readyz(healthPort);
    expect(ready.status).toBe(200);
    expect(ready.body.checks.filter((c) => !c.name.startsWith("dependency:")).map((c) => [c.name, c.ok])).toEqual([
      ["redis", true],
      ["chain:consortium", true],
      ["key-vault", true],
    ]);
    expect((await fetch(`http://127.0.0.1:${healthPort}/healthz`)).status).toBe(200);

    // A token from the API process's local issuer (its key file, created by that process).
    const issuer = await LocalIssuer.create({
      keyFile: path.join(path.dirname(configFile), "api-issuer.private.jwk.json"),
    });
    const token = await issuer.mint({ roles: ["operator"], subject: "serve-test" });
    const { input } = (await loadMinuteInputs())[640]!;
    const invoke = await request(
      api.ready.api!.url,
      "POST",
      `/v1/cryptlets/${encodeURIComponent(stack.pkg.manifest.name)}/invoke`,
      { token, json: input, headers: { "idempotency-key": `${stack.prefix}-serve-1` } },
    );
    expect(invoke.status).toBe(202);
    const accepted = invoke.body as { runId: string; resultId: string };
    const ledger = stack.chains[0]!.ledger;
    const deadline = Date.now() + 120_000;
    while (!(await ledger.getFunction("isRecorded")(accepted.resultId)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(await ledger.getFunction("isRecorded")(accepted.resultId)).toBe(true); // from the chain itself

    // A frozen chain: the worker is not ready, naming the chain; thawed, it is ready again.
    const node = stack.chains[0]!.node;
    process.kill(node.pid, "SIGSTOP");
    try {
      const frozen = await readyz(healthPort);
      expect(frozen.status).toBe(503);
      expect(frozen.body.checks.find((c) => c.name === "chain:consortium")?.ok).toBe(false);
    } finally {
      process.kill(node.pid, "SIGCONT");
    }
    const thawDeadline = Date.now() + 30_000;
    let thawed = await readyz(healthPort);
    while (thawed.status !== 200 && Date.now() < thawDeadline) {
      await new Promise((r) => setTimeout(r, 500));
      thawed = await readyz(healthPort);
    }
    expect(thawed.status).toBe(200);

    // SIGTERM: each drains and exits 0 within its deadline (20000 ms by default).
    for (const s of [api, worker]) {
      const { code, ms } = await stop(s);
      expect({ code, lessThanDeadline: ms < 20_000 }).toEqual({ code: 0, lessThanDeadline: true });
      // Every line on standard error is a JSON log record.
      const lines = s
        .stderr()
        .split("\n")
        .filter((l) => l.trim() !== "");
      expect(lines.length).toBeGreaterThan(0);
      for (const line of lines) expect(() => JSON.parse(line) as unknown).not.toThrow();
      expect(lines.map((l) => (JSON.parse(l) as { msg?: string }).msg)).toEqual(
        expect.arrayContaining(["draining", "stopped"]),
      );
    }
  }, 300_000);
});
