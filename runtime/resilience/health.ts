/**
 * The health endpoint of a worker process (which has no API): `GET /health` (liveness, always 200), `GET /ready`
 * (503 while a dependency's circuit breaker is open or half-open, else 200; body `{status, dependencies}` with
 * {@link dependencyStates}) and `GET /metrics` (Prometheus text format 0.0.4: prom-client's process metrics and
 * `cryptlet_dependency_circuit_state`). Started by `runtime/queue/worker.ts` when `CRYPTLET_HEALTH_PORT` is set.
 *
 * @module
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

import { Registry, collectDefaultMetrics } from "prom-client";

import { dependencyStates, registerDependencyMetrics } from "./dependency.ts";

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
export async function startHealthServer(options: { port: number; host?: string }): Promise<HealthServer> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  registerDependencyMetrics(registry);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET") {
      res.writeHead(405, { allow: "GET" }).end();
    } else if (path === "/health") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ status: "ok" }));
    } else if (path === "/ready") {
      const dependencies = dependencyStates();
      const ready = dependencies.every((d) => d.state === "closed");
      res
        .writeHead(ready ? 200 : 503, { "content-type": "application/json" })
        .end(JSON.stringify({ status: ready ? "ready" : "not-ready", dependencies }));
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
