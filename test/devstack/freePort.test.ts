/**
 * `freePort` hands out ports below the kernel's ephemeral range (so no outgoing connection takes one before its
 * server listens), never the same one twice in a process, and each one can be listened on.
 */
import { readFileSync } from "node:fs";
import net from "node:net";

import { freePort } from "../../runtime/devstack/localChain.ts";

test("ports below the ephemeral range, distinct, each free to listen on", async () => {
  const floor = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
  const ports = [];
  for (let i = 0; i < 40; i++) ports.push(await freePort());
  expect(new Set(ports).size).toBe(ports.length);
  for (const port of ports) {
    expect(port).toBeGreaterThanOrEqual(20_000);
    expect(port).toBeLessThan(floor);
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", resolve);
    });
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
