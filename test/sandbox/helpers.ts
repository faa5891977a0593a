/**
 * Test helpers for the sandbox suites: bundle a Cryptlet module's source with the same esbuild options as
 * runtime/packages/build.ts (classic script, `format: "iife"`, `globalName: "cryptlet"`, `platform: "neutral"`,
 * `target: "es2022"`), and a local HTTP server on 127.0.0.1 for the fetch cases.
 */
import * as esbuild from "esbuild";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";

const SDK = path.resolve(import.meta.dirname, "..", "..", "runtime", "sdk", "index.ts");

/** Bundles a TypeScript module (which may import `cryptlet-runtime/sdk`) into a sandbox script. */
export async function bundleCryptlet(source: string): Promise<string> {
  const result = await esbuild.build({
    stdin: { contents: source, loader: "ts", resolveDir: path.dirname(SDK), sourcefile: "cryptlet.ts" },
    bundle: true,
    write: false,
    format: "iife",
    globalName: "cryptlet",
    platform: "neutral",
    target: "es2022",
    charset: "utf8",
    legalComments: "none",
    logLevel: "silent",
    alias: { "cryptlet-runtime/sdk": SDK },
  });
  const file = result.outputFiles[0];
  if (file === undefined) throw new Error("esbuild produced no output");
  return file.text;
}

/** The fetch test server's routes (all under `/api/` are allowed by the suites, `/private/` is not). */
export interface TestServer {
  origin: string;
  close(): Promise<void>;
}

/** Body of `/api/huge` and `/api/huge-declared`: 2 MiB. */
export const HUGE_BYTES = 2 * 1024 * 1024;

/** Starts the fetch test server on 127.0.0.1 with an ephemeral port. */
export async function startTestServer(): Promise<TestServer> {
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    // One connection per request: a response the host stops reading (too large, timed out) must not leave a
    // half-read socket in undici's pool for the next test's request.
    res.setHeader("connection", "close");
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    switch (url.pathname) {
      case "/api/price":
        return json(200, { pair: "ETH/USD", price: "2269.76", source: "test" });
      case "/api/echo": {
        const chunks: Buffer[] = [];
        req.on("data", (chunk: Buffer) => chunks.push(chunk));
        req.on("end", () => json(200, { method: req.method, body: Buffer.concat(chunks).toString("utf8") }));
        return;
      }
      case "/api/redirect-ok":
        res.writeHead(302, { location: "/api/price" });
        return void res.end();
      case "/api/redirect-private":
        res.writeHead(302, { location: "/private/secret" });
        return void res.end();
      case "/api/redirect-loop":
        res.writeHead(302, { location: "/api/redirect-loop" });
        return void res.end();
      case "/private/secret":
        return json(200, { secret: "must never be fetched" });
      case "/api/slow": {
        const timer = setTimeout(() => json(200, { slow: true }), 5000);
        res.on("close", () => clearTimeout(timer));
        return;
      }
      case "/api/huge": {
        res.writeHead(200, { "content-type": "text/plain" }); // chunked, no content-length
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        for (let sent = 0; sent < HUGE_BYTES; sent += chunk.length) res.write(chunk);
        return void res.end();
      }
      case "/api/huge-declared":
        res.writeHead(200, { "content-type": "text/plain", "content-length": String(HUGE_BYTES) });
        return void res.end(Buffer.alloc(HUGE_BYTES, 0x62));
      default:
        return json(404, { error: "not found" });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
