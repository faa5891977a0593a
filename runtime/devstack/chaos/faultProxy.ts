/**
 * Fault proxies for the chaos run: a loopback proxy in front of a dependency (a chain's JSON-RPC endpoint, the Key
 * Vault, its managed-identity endpoint) whose behaviour is switched at run time between
 *
 * - `pass`: forward everything;
 * - `refuse`: reset every connection (TCP RST, as a host with nothing listening or a firewall's reject), new and
 *   open ones;
 * - `black-hole`: accept connections and requests and never answer (as a hung server or a dropped route); bytes
 *   already on their way are swallowed, so requests on open keep-alive connections hang too, and requests held
 *   stay unanswered after the black hole ends (their packets are gone): only the client's own deadline frees them;
 * - `502-after-forward` (HTTP proxy only): forward the request, discard the real answer and answer HTTP 502 Bad
 *   Gateway, as a load balancer that loses the upstream answer. For JSON-RPC it applies to requests that carry an
 *   `eth_sendRawTransaction`: the transaction reaches the chain and the sender is told it failed, the classic
 *   duplicate-send case. Other requests pass.
 *
 * The TCP proxy carries TLS unchanged (the Key Vault emulator's HTTPS), so it offers `pass`, `refuse` and
 * `black-hole`; the HTTP proxy (plain HTTP: JSON-RPC, the identity endpoint) offers all four.
 *
 * @module
 */
import http from "node:http";
import net from "node:net";

/** The behaviour of a fault proxy. */
export type FaultMode = "pass" | "refuse" | "black-hole" | "502-after-forward";

/** Counters of what a proxy did, since it started. */
export interface FaultProxyStats {
  /** Connections accepted (TCP) or requests received (HTTP). */
  received: number;
  /** Connections reset (`refuse`). */
  refused: number;
  /** Connections or requests held without an answer (`black-hole`). */
  blackHoled: number;
  /** Requests forwarded and answered 502 (`502-after-forward`). */
  answered502: number;
}

/** A running fault proxy. */
export interface FaultProxy {
  /** Where clients connect: `127.0.0.1:<port>`. */
  port: number;
  /** The current mode. */
  readonly mode: FaultMode;
  stats: FaultProxyStats;
  /** Switches the mode; `refuse` also resets open connections. */
  setMode(mode: FaultMode): void;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

function newStats(): FaultProxyStats {
  return { received: 0, refused: 0, blackHoled: 0, answered502: 0 };
}

async function listen(server: net.Server, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  return (server.address() as net.AddressInfo).port;
}

/**
 * Starts a TCP proxy to `127.0.0.1:targetPort` (any protocol, e.g. TLS). Modes `pass`, `refuse`, `black-hole`.
 * @param options.port - listening port (default: a free one).
 */
export async function startTcpFaultProxy(targetPort: number, options: { port?: number } = {}): Promise<FaultProxy> {
  let mode: FaultMode = "pass";
  const stats = newStats();
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    stats.received += 1;
    if (mode === "refuse") {
      stats.refused += 1;
      client.resetAndDestroy();
      return;
    }
    open.add(client);
    client.on("error", () => undefined);
    client.on("close", () => open.delete(client));
    if (mode === "black-hole") stats.blackHoled += 1;
    // Bytes are forwarded chunk by chunk only while the mode is `pass`; in `black-hole` they are swallowed.
    const upstream = net.connect(targetPort, "127.0.0.1");
    upstream.on("error", () => client.destroy());
    upstream.on("close", () => client.destroy());
    client.on("close", () => upstream.destroy());
    client.on("data", (chunk: Buffer) => {
      if (mode === "pass") upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (mode === "pass") client.write(chunk);
    });
  });
  const port = await listen(server, options.port ?? 0);
  return {
    port,
    get mode() {
      return mode;
    },
    stats,
    setMode(next) {
      if (next === "502-after-forward") throw new TypeError("a TCP proxy cannot answer HTTP 502");
      mode = next;
      if (next === "refuse") for (const socket of open) socket.resetAndDestroy();
      if (next === "black-hole") stats.blackHoled += open.size;
    },
    async close() {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Starts an HTTP/1.1 proxy to `target` (e.g. `http://127.0.0.1:8545`). Modes `pass`, `refuse`, `black-hole`,
 * `502-after-forward` (which answers 502 only to requests whose body contains `eth_sendRawTransaction` when
 * `onlySendRawTransaction` is true, the default).
 * @param options.port - listening port (default: a free one).
 * @param options.upstreamTimeoutMs - deadline of a forwarded request, in ms (default 60000); past it the client
 *   gets 504.
 */
export async function startHttpFaultProxy(
  target: string,
  options: { port?: number; upstreamTimeoutMs?: number; onlySendRawTransaction?: boolean } = {},
): Promise<FaultProxy> {
  let mode: FaultMode = "pass";
  const stats = newStats();
  const open = new Set<net.Socket>();
  const held = new Set<http.ServerResponse>();
  const upstreamTimeoutMs = options.upstreamTimeoutMs ?? 60_000;
  const onlySend = options.onlySendRawTransaction ?? true;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const server = http.createServer((req, res) => {
    stats.received += 1;
    if (mode === "refuse") {
      stats.refused += 1;
      req.socket.resetAndDestroy();
      return;
    }
    if (mode === "black-hole") {
      stats.blackHoled += 1;
      held.add(res);
      res.on("close", () => held.delete(res));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const answer502 = mode === "502-after-forward" && (!onlySend || body.includes("eth_sendRawTransaction"));
      const upstream = http.request(
        new URL(req.url ?? "/", target),
        {
          method: req.method,
          agent,
          headers: { ...req.headers, host: new URL(target).host, "content-length": String(body.length) },
          signal: AbortSignal.timeout(upstreamTimeoutMs),
        },
        (answer) => {
          const parts: Buffer[] = [];
          answer.on("data", (c: Buffer) => parts.push(c));
          answer.on("end", () => {
            if (res.destroyed) return;
            // A black-hole or refusal that began while the request was upstream applies to its answer too.
            if (mode === "refuse") {
              req.socket.resetAndDestroy();
              return;
            }
            if (mode === "black-hole") {
              held.add(res);
              return;
            }
            if (answer502) {
              stats.answered502 += 1;
              res.writeHead(502, { "content-type": "text/plain" }).end("bad gateway");
              return;
            }
            const headers = { ...answer.headers };
            delete headers["transfer-encoding"];
            res.writeHead(answer.statusCode ?? 502, headers).end(Buffer.concat(parts));
          });
          answer.on("error", () => res.destroy());
        },
      );
      upstream.on("error", () => {
        if (!res.headersSent && !res.destroyed) res.writeHead(504, { "content-type": "text/plain" }).end("upstream");
      });
      upstream.end(body);
    });
  });
  server.keepAliveTimeout = 5_000;
  server.on("connection", (socket) => {
    open.add(socket);
    socket.on("close", () => open.delete(socket));
    if (mode === "refuse") {
      stats.refused += 1;
      socket.resetAndDestroy();
    }
  });
  const port = await listen(server, options.port ?? 0);
  return {
    port,
    get mode() {
      return mode;
    },
    stats,
    setMode(next) {
      mode = next;
      if (next === "refuse") for (const socket of open) socket.resetAndDestroy();
      // Requests held by a black hole stay unanswered after it ends (their packets are gone): only a client's own
      // deadline frees them.
    },
    async close() {
      for (const res of held) res.destroy();
      for (const socket of open) socket.destroy();
      agent.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
