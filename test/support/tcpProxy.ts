/**
 * Test support: a plain TCP proxy to a loopback port that can be cut (every connection destroyed, nothing
 * listening) and opened again on the same port, to kill a WebSocket from outside. Also a server that accepts
 * connections and never answers (a hung endpoint).
 */
import net from "node:net";

/** A TCP proxy to `127.0.0.1:<target>`. */
export interface TcpProxy {
  /** The proxy's own port (kept across {@link TcpProxy.cut} and {@link TcpProxy.restore}). */
  port: number;
  /** Connections accepted so far. */
  connections: number;
  /** Client connections open now. */
  readonly open: number;
  /** Destroys every open connection and stops listening. */
  cut(): Promise<void>;
  /** Listens again on the same port. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Starts a TCP proxy on a free loopback port that forwards to `127.0.0.1:<target>`.
 * @param options.delayMs - a round trip's added latency in milliseconds: each chunk is forwarded `delayMs / 2`
 *   after it arrived, in either direction, in order (a network path to a remote endpoint). Default 0.
 */
export async function startTcpProxy(target: number, options: { delayMs?: number } = {}): Promise<TcpProxy> {
  const oneWay = (options.delayMs ?? 0) / 2;
  const sockets = new Set<net.Socket>();
  const clients = new Set<net.Socket>();
  const proxy: TcpProxy = {
    port: 0,
    connections: 0,
    get open() {
      return clients.size;
    },
    cut: async () => {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    restore: () => new Promise<void>((resolve) => server.listen(proxy.port, "127.0.0.1", resolve)),
    close: () => proxy.cut(),
  };
  const server = net.createServer((client) => {
    proxy.connections += 1;
    clients.add(client);
    client.on("close", () => clients.delete(client));
    const upstream = net.connect(target, "127.0.0.1");
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("error", () => undefined);
      socket.on("close", () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    if (oneWay > 0) {
      client.on("data", (chunk) => setTimeout(() => upstream.write(chunk), oneWay));
      upstream.on("data", (chunk) => setTimeout(() => client.write(chunk), oneWay));
    } else {
      client.pipe(upstream);
      upstream.pipe(client);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  proxy.port = (server.address() as net.AddressInfo).port;
  return proxy;
}

/** A TCP server that accepts connections and never sends a byte. */
export async function startSilentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
