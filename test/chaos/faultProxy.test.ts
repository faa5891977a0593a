/**
 * The chaos run's fault proxies against real loopback servers: each mode does what it says, and `pass` after a
 * fault forwards again.
 */
import http from "node:http";
import net from "node:net";

import { startHttpFaultProxy, startTcpFaultProxy, type FaultProxy } from "../../runtime/devstack/chaos/faultProxy.ts";

describe("HTTP fault proxy", () => {
  let server: http.Server;
  let proxy: FaultProxy;
  const received: string[] = [];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        received.push(`${req.url} ${body}`);
        res.writeHead(200, { "content-type": "application/json" }).end('{"jsonrpc":"2.0","id":1,"result":"0x1"}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    proxy = await startHttpFaultProxy(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`);
  });

  afterAll(async () => {
    await proxy.close();
    await new Promise((resolve) => server.close(resolve));
  });

  const call = (method: string, path = "/") =>
    fetch(`http://127.0.0.1:${proxy.port}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params: [] }),
      signal: AbortSignal.timeout(1_500),
    });

  test("pass forwards the request (path included) and the answer", async () => {
    const res = await call("eth_chainId", "/msi/token?x=1");
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ result: "0x1" });
    expect(received.at(-1)).toMatch(/^\/msi\/token\?x=1 .*eth_chainId/);
  });

  test("refuse resets the connection", async () => {
    proxy.setMode("refuse");
    await expect(call("eth_chainId")).rejects.toThrow();
    expect(proxy.stats.refused).toBeGreaterThan(0);
    proxy.setMode("pass");
    expect((await call("eth_chainId")).status).toBe(200);
  });

  test("black-hole never answers", async () => {
    const before = received.length;
    proxy.setMode("black-hole");
    await expect(call("eth_chainId")).rejects.toMatchObject({ name: "TimeoutError" });
    expect(received.length).toBe(before);
    expect(proxy.stats.blackHoled).toBeGreaterThan(0);
    proxy.setMode("pass");
    expect((await call("eth_chainId")).status).toBe(200);
  });

  test("502-after-forward delivers a transaction and answers 502; other requests pass", async () => {
    proxy.setMode("502-after-forward");
    const sent = await call("eth_sendRawTransaction");
    expect(sent.status).toBe(502);
    expect(received.at(-1)).toContain("eth_sendRawTransaction");
    expect(proxy.stats.answered502).toBe(1);
    expect((await call("eth_getTransactionCount")).status).toBe(200);
    proxy.setMode("pass");
  });
});

describe("TCP fault proxy", () => {
  let server: net.Server;
  let proxy: FaultProxy;

  beforeAll(async () => {
    server = net.createServer((socket) => socket.on("data", (c: Buffer) => socket.write(c)));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    proxy = await startTcpFaultProxy((server.address() as net.AddressInfo).port);
  });

  afterAll(async () => {
    await proxy.close();
    await new Promise((resolve) => server.close(resolve));
  });

  /** Connects, writes `text` and resolves with the echo, `"reset"` or `"timeout"`. */
  const echo = (text: string) =>
    new Promise<string>((resolve) => {
      const socket = net.connect(proxy.port, "127.0.0.1");
      const timer = setTimeout(() => (socket.destroy(), resolve("timeout")), 1_000);
      socket.on("connect", () => socket.write(text));
      socket.on("data", (c: Buffer) => (clearTimeout(timer), socket.destroy(), resolve(c.toString())));
      socket.on("error", () => (clearTimeout(timer), resolve("reset")));
    });

  test("pass, refuse, black-hole, pass again", async () => {
    expect(await echo("one")).toBe("one");
    proxy.setMode("refuse");
    expect(await echo("two")).toBe("reset");
    proxy.setMode("black-hole");
    expect(await echo("three")).toBe("timeout");
    proxy.setMode("pass");
    expect(await echo("four")).toBe("four");
    expect(proxy.stats).toMatchObject({ refused: 1, blackHoled: 1 });
    expect(() => proxy.setMode("502-after-forward")).toThrow(TypeError);
  });
});
