/**
 * Starts the API on a TCP port: `startApiServer(deps, {host, port})` → the bound URL and a graceful `close()`.
 *
 * @module
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";

import { createApiApp, type ApiApp } from "./app.ts";
import type { ApiDeps } from "./deps.ts";

/** A running API server. */
export interface ApiServer extends ApiApp {
  server: Server;
  /** e.g. `http://127.0.0.1:8080` (the bound port when `port` was 0). */
  url: string;
  /** Stops accepting connections, closes idle keep-alive ones, waits for in-flight requests. */
  close(): Promise<void>;
}

/**
 * Creates the app and listens.
 * @param deps - see {@link ApiDeps}.
 * @param options - `host` (default `127.0.0.1`), `port` (default 8080; 0 for any free port), `requestTimeoutMs`
 *   (default 30000: a request whose body has not arrived by then is answered 408 by Node).
 * @throws the `listen` error (e.g. `EADDRINUSE`).
 *
 * @example
 * ```ts
 * import { startApiServer } from "./runtime/api/server.ts";
 * const api = await startApiServer(deps, { port: 0 });
 * console.log(`API at ${api.url}`);
 * await api.close();
 * ```
 */
export async function startApiServer(
  deps: ApiDeps,
  options: { host?: string; port?: number; requestTimeoutMs?: number } = {},
): Promise<ApiServer> {
  const api = createApiApp(deps);
  const host = options.host ?? "127.0.0.1";
  const server = await new Promise<Server>((resolve, reject) => {
    const s = api.app.listen(options.port ?? 8080, host, (error?: Error) => (error ? reject(error) : resolve(s)));
    s.once("error", reject);
  });
  server.requestTimeout = options.requestTimeoutMs ?? 30_000;
  const { port } = server.address() as AddressInfo;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  return {
    ...api,
    server,
    url,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeIdleConnections();
      }),
  };
}
