/**
 * Test support: a TLS-terminating proxy in front of an HTTPS server (the Key Vault emulator) that can be switched
 * to hang: it still accepts TCP connections and completes TLS handshakes (with a certificate of its own), but
 * swallows every byte in both directions, so requests are never answered (a vault behind a stuck load balancer).
 * Requests swallowed during a hang stay unanswered after `release()`: only the client's own deadline frees them.
 */
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { connect, createServer, type TLSSocket } from "node:tls";

import { generate as generateCertificate } from "selfsigned";

/** A running proxy. */
export interface HangingTlsProxy {
  /** `https://127.0.0.1:<port>`. */
  url: string;
  port: number;
  /** PEM of the proxy's self-signed certificate (trust it beside the upstream's). */
  ca: string;
  /** Whether the proxy is hanging now. */
  readonly hanging: boolean;
  /** Connections accepted, and chunks swallowed while hanging. */
  stats: { connections: number; swallowed: number };
  /** From now on, swallow every byte (open connections included). */
  hang(): void;
  /** Forward again (new requests are answered; swallowed ones never are). */
  release(): void;
  close(): Promise<void>;
}

/**
 * Starts the proxy.
 * @param upstream - the HTTPS server's port on 127.0.0.1 and the PEM of its CA (servername `localhost`).
 */
export async function startHangingTlsProxy(upstream: { port: number; ca: string }): Promise<HangingTlsProxy> {
  // A subject of its own: OpenSSL picks the issuer by subject, and the upstream CA says "localhost" too.
  const pems = await generateCertificate([{ name: "commonName", value: "hanging-tls-proxy" }], {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    notAfterDate: new Date(Date.now() + 86_400_000),
    extensions: [
      { name: "basicConstraints", cA: true },
      { name: "keyUsage", digitalSignature: true, keyCertSign: true },
      { name: "extKeyUsage", serverAuth: true },
      {
        name: "subjectAltName",
        altNames: [
          { type: 2, value: "localhost" },
          { type: 7, ip: "127.0.0.1" },
        ],
      },
    ],
  });
  let hanging = false;
  const stats = { connections: 0, swallowed: 0 };
  const open = new Map<string, TLSSocket>();
  const server = createServer({ key: pems.private, cert: pems.cert }, (client) => {
    stats.connections += 1;
    const id = randomUUID();
    open.set(id, client);
    const target = connect({ port: upstream.port, host: "127.0.0.1", ca: upstream.ca, servername: "localhost" });
    open.set(`${id}-up`, target);
    const forward = (to: TLSSocket) => (chunk: Buffer) => {
      if (hanging) stats.swallowed += 1;
      else to.write(chunk);
    };
    client.on("data", forward(target));
    target.on("data", forward(client));
    for (const [socket, other] of [
      [client, target],
      [target, client],
    ] as const) {
      socket.on("error", () => other.destroy());
      socket.on("close", () => {
        other.destroy();
        open.delete(id);
        open.delete(`${id}-up`);
      });
    }
  });
  server.on("tlsClientError", () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    port,
    ca: pems.cert,
    get hanging() {
      return hanging;
    },
    stats,
    hang() {
      hanging = true;
    },
    release() {
      hanging = false;
    },
    async close() {
      for (const socket of open.values()) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
