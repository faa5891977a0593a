/**
 * Test support: a `redis-server` process of the test's own, on a free port (or a given one, which must be free), with
 * its data directory in a temporary folder, that a test may kill and restart (the shared Redis on 6379 never is).
 */
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

import { Redis } from "ioredis";

/** A running redis-server of a test. */
export interface TestRedisServer {
  port: number;
  url: string;
  /** Its `--dir` (the AOF is under `appendonlydir/`). */
  dir: string;
  /** SIGKILLs it and waits for the exit. */
  kill(): Promise<void>;
  /** Starts it again on the same port and dir with `args` (default: the same arguments). */
  restart(args?: string[]): Promise<void>;
  /** Kills it and removes its dir. */
  close(): Promise<void>;
}

async function waitUp(url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    // Every probe has a deadline: a port held by something that accepts and never answers must not hang the test.
    const probe = new Redis(url, {
      lazyConnect: true,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
      connectTimeout: 1000,
      commandTimeout: 1000,
    });
    probe.on("error", () => undefined);
    try {
      await probe.connect();
      await probe.ping();
      probe.disconnect();
      return;
    } catch {
      probe.disconnect();
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`redis-server at ${url} did not start`);
}

/** A TCP port free on 127.0.0.1 now (the OS's choice). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Whether something accepts connections on 127.0.0.1:`port`. */
async function inUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/**
 * Starts `redis-server --port <port> --dir <tmp> --save ''` plus `args` (e.g. `["--appendonly", "yes"]`).
 * @param port - a port to use, which must be free (another process there would be taken for this server: refused);
 *   0 (default) picks a free one.
 */
export async function startRedisServer(requested = 0, args: string[] = []): Promise<TestRedisServer> {
  const port = requested === 0 ? await freePort() : requested;
  if (await inUse(port)) throw new Error(`port ${port} is already in use: a test's redis-server needs its own`);
  const dir = mkdtempSync(path.join(os.tmpdir(), `redis-${port}-`));
  const url = `redis://127.0.0.1:${port}`;
  let current = args;
  let child: ChildProcess | undefined;
  const start = async (extra: string[]) => {
    current = extra;
    child = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", ...extra],
      {
        stdio: "ignore",
      },
    );
    await waitUp(url);
  };
  const kill = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      running.once("exit", () => resolve());
      running.kill("SIGKILL");
    });
  };
  await start(args);
  return {
    port,
    url,
    dir,
    kill,
    restart: (next) => start(next ?? current),
    async close() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
