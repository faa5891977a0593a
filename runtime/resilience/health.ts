/**
 * The health endpoint of a worker or trigger process (which has no API): `GET /healthz` (liveness, always 200),
 * `GET /readyz` (200 when every readiness check passes, else 503; body `{status, checks, dependencies}`) and
 * `GET /metrics` (Prometheus text format 0.0.4: prom-client's process metrics and
 * `cryptlet_dependency_circuit_state`); `/health` and `/ready` are the same. The readiness checks are the caller's
 * (`cryptlet serve`: Redis, every chain, the Key Vault: runtime/resilience/readiness.ts) plus every circuit
 * breaker of the process ({@link dependencyStates}). Started by `cryptlet serve` (the configuration's `health`) and
 * by `runtime/queue/worker.ts` when `CRYPTLET_HEALTH_PORT` is set.
 *
 * @module
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

import { Registry, collectDefaultMetrics } from "prom-client";

import { dependencyStates, registerDependencyMetrics } from "./dependency.ts";
import { breakerChecks, type ReadinessCheck } from "./readiness.ts";

/** A running health endpoint. */
export interface HealthServer {
  /** The bound port (the chosen one when `port` was 0). */
  port: number;
  close(): Promise<void>;
}

/**
 * Starts the health endpoint.
 * @param options - `port` (0: any free port) and `host` (default `127.0.0.1`; `0.0.0.0` for a container's probe).
 * @throws the `listen` error (e.g. `EADDRINUSE`).
 *
 * @example
 * ```ts
 * import { startHealthServer } from "./runtime/resilience/health.ts";
 * const health = await startHealthServer({ port: 9464, host: "0.0.0.0" });
 * ```
 */
export async function startHealthServer(options: {
  port: number;
  host?: string;
  /** The readiness checks (never throwing); default: the circuit breakers' states only. */
  ready?: () => Promise<ReadinessCheck[]>;
}): Promise<HealthServer> {
  const ready = options.ready ?? (() => Promise.resolve(breakerChecks()));
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  registerDependencyMetrics(registry);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET") {
      res.writeHead(405, { allow: "GET" }).end();
    } else if (path === "/health" || path === "/healthz") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ status: "ok" }));
    } else if (path === "/ready" || path === "/readyz") {
      ready().then(
        (checks) => {
          const ok = checks.every((c) => c.ok);
          res
            .writeHead(ok ? 200 : 503, { "content-type": "application/json" })
            .end(JSON.stringify({ status: ok ? "ready" : "not-ready", checks, dependencies: dependencyStates() }));
        },
        () => res.writeHead(500).end(),
      );
    } else if (path === "/metrics") {
      registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host ?? "127.0.0.1", () => resolve());
  });
  server.unref();
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
