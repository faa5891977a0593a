/**
 * The red team's findings on the sandbox boundary (issue 10), as regression tests on both engines:
 *
 * - **Only bounded data crosses** (docs/sandbox.md, "What crosses the boundary"): fetch URLs, headers and bodies
 *   are refused inside the sandbox before anything is copied out; `fetch` floods are refused there too; response
 *   bodies are bounded compressed and decompressed (compression bombs, with `Connection: close`, never crash the
 *   process); slow responses end at the fetch timeout or the run's deadline; thrown messages, logs and outputs
 *   are cut inside the sandbox.
 * - **Error codes a Cryptlet cannot forge**: the host decides the code from what it observed; getters, Proxies and
 *   `Symbol.toPrimitive` on what the Cryptlet throws cannot turn its failure into a retryable engine failure with a
 *   cause of its choosing, or hang `load()`; an allocation failure or a stack overflow counts only when the engine
 *   raised it; deep JSON and deep source cannot abort QuickJS's WebAssembly; an invalid header is the Cryptlet's
 *   mistake, not a network failure; no error carries the host's stack or paths. A Cryptlet's own failure is never
 *   retryable.
 *
 * Every case checks the typed error and its retry verdict, that the run stopped within its deadline plus
 * {@link GRACE_MS}, that the error's JSON carries nothing of the host, and that the next run of the same loaded
 * Cryptlet and a fresh Cryptlet on the same engine are correct.
 */
import { ControlTicker } from "../support/controlTicker.ts";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import zlib from "node:zlib";

import type { CryptletError } from "../../runtime/errors.ts";
import { isCryptletError } from "../../runtime/errors.ts";
import {
  IsolatedVmEngine,
  QuickJsEngine,
  type FetchCapability,
  type LoadOptions,
  type RunContextData,
  type RunResult,
  type SandboxedCryptlet,
  type SandboxEngine,
} from "../../runtime/sandbox/index.ts";
import type { JsonValue } from "../../runtime/sdk/index.ts";
import { BROTLI_1GIB, GZIP_GZIP_1GIB } from "./fixtures/bombs.ts";
import { bundleCryptlet } from "./helpers.ts";

/** Margin over a deadline for a run to be reported stopped: a shared, loaded 2-core machine; QuickJS runs here. */
const GRACE_MS = 3000;
const ROOT = path.resolve(import.meta.dirname, "..", "..");
const CONTEXT: RunContextData = {
  event: { kind: "http" },
  requestId: "0x" + "11".repeat(32),
  resultId: "0x" + "22".repeat(32),
  now: 1704412800,
};
const ENGINES: [string, () => SandboxEngine][] = [
  ["isolated-vm", () => new IsolatedVmEngine()],
  ["quickjs", () => new QuickJsEngine()],
];

// ---------------------------------------------------------------------------------------------------------------
// A local server that behaves like a hostile API: compression bombs sent whatever the client asked for, a body
// trickled one byte a second, and a count of the requests that reached it.

const PRICE_JSON = JSON.stringify({ pair: "ETH/USD", price: "2269.76" });

interface HostileServer {
  origin: string;
  /** Requests received, by path. */
  hits: Map<string, number>;
  /** The headers of the last request to `/api/headers`. */
  lastHeaders: IncomingHttpHeaders | undefined;
  close(): Promise<void>;
}

async function startHostileServer(): Promise<HostileServer> {
  // One layer of gzip: 10 KiB that inflate to 10 MiB (deflate cannot expand more than ~1,032 times).
  const gzip10MiB = zlib.gzipSync(Buffer.alloc(10 * 1024 * 1024), { level: 9 });
  const gzipPrice = zlib.gzipSync(PRICE_JSON);
  const state: HostileServer = {
    origin: "",
    hits: new Map(),
    lastHeaders: undefined,
    close: async () => undefined,
  };
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    state.hits.set(url.pathname, (state.hits.get(url.pathname) ?? 0) + 1);
    res.setHeader("connection", "close");
    const encoded = (encoding: string, body: Buffer): void => {
      res.writeHead(200, { "content-type": "text/plain", "content-encoding": encoding });
      res.end(body);
    };
    switch (url.pathname) {
      case "/api/price":
        res.writeHead(200, { "content-type": "application/json" });
        return void res.end(PRICE_JSON);
      case "/api/headers":
        state.lastHeaders = req.headers;
        res.writeHead(200, { "content-type": "application/json" });
        return void res.end(JSON.stringify({ ok: true }));
      case "/api/gzip-price":
        res.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip" });
        return void res.end(gzipPrice);
      case "/api/bomb/gzip":
        return encoded("gzip", gzip10MiB);
      case "/api/bomb/gzip-gzip":
        return encoded("gzip, gzip", GZIP_GZIP_1GIB);
      case "/api/bomb/br":
        return encoded("br", BROTLI_1GIB);
      case "/api/compress":
        return encoded("compress", Buffer.from("not a coding the host decodes"));
      case "/api/trickle": {
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("x");
        const timer = setInterval(() => res.write("x"), 1000);
        res.on("close", () => clearInterval(timer));
        return;
      }
      default:
        res.writeHead(404, { "content-type": "application/json" });
        return void res.end("{}");
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}

let server: HostileServer;
const uncaught: unknown[] = [];
const onUncaught = (error: unknown): void => {
  uncaught.push(error);
};

/** The timing control (test/support/controlTicker.ts): deadlines are judged against the machine's load. */
let control: ControlTicker;

beforeAll(async () => {
  control = new ControlTicker();
  server = await startHostileServer();
  process.on("uncaughtException", onUncaught);
});

afterAll(async () => {
  process.off("uncaughtException", onUncaught);
  await server.close();
  await control.close();
});

// ---------------------------------------------------------------------------------------------------------------
// Running a hostile Cryptlet and checking what came back.

/** A Cryptlet module: `run` answers `"clean"` to `{__next: true}` (the next-run check), else runs `body`. */
function moduleOf(body: string, topLevel = ""): string {
  return `import { defineCryptlet } from "cryptlet-runtime/sdk";
export default defineCryptlet<any, any>({
  async run(input: any, ctx: any) {
    if (input !== null && typeof input === "object" && input.__next === true) return "clean";
    ${body}
  },
});
${topLevel}
`;
}

const bundles = new Map<string, Promise<string>>();
function bundleOf(body: string, topLevel = ""): Promise<string> {
  const source = moduleOf(body, topLevel);
  let bundle = bundles.get(source);
  if (bundle === undefined) {
    bundle = bundleCryptlet(source);
    bundles.set(source, bundle);
  }
  return bundle;
}

/** fetch granted to the server's `/api/`, with the fetch limits given. */
function fetchGrant(overrides: Partial<FetchCapability> = {}): LoadOptions["capabilities"] {
  return { fetch: { allow: [`${server.origin}/api/`], methods: ["GET", "POST"], timeoutMs: 1500, ...overrides } };
}

interface Attempt {
  cryptlet: SandboxedCryptlet | undefined;
  result: RunResult | undefined;
  error: unknown;
  elapsed: number;
  /** How long this process was kept from running meanwhile (machine load: `WindowReading.starvedMs`), ms. */
  lateMs: number;
}

/** Loads `bundle` (its top-level code runs there) and, when that succeeds, runs it once on `input`. */
async function attempt(
  engine: SandboxEngine,
  bundle: string,
  options: LoadOptions,
  input: JsonValue,
): Promise<Attempt> {
  let started = 0;
  let elapsed = 0;
  let cryptlet: SandboxedCryptlet | undefined;
  let result: RunResult | undefined;
  const seen = await control.during(async () => {
    started = performance.now();
    try {
      cryptlet = await engine.load(bundle, options);
      result = await cryptlet.run(input, CONTEXT);
    } finally {
      elapsed = performance.now() - started;
    }
  });
  return { cryptlet, result, error: seen.error, elapsed, lateMs: seen.control.starvedMs };
}

/**
 * The error's JSON (what crosses processes, fills dead letters and API problems) holds nothing of the host: no
 * path of this checkout or of node_modules, no file URL, no host stack frame (isolated-vm used to append its own
 * frames, `at #evaluateBundle (file:///…)`), and no stack frames at all outside `details.stack`, which is the
 * Cryptlet's own stack inside the sandbox (its frames name `cryptlet.js`, `cryptlet-prelude.js`, native code).
 */
function expectNothingOfTheHost(error: CryptletError): void {
  const json = error.toJSON();
  const text = JSON.stringify(json);
  for (const leak of [ROOT, "/work/", "node_modules", "file://", "node:internal", "<isolated-vm boundary>"]) {
    expect({ leak, found: text.includes(leak) }).toEqual({ leak, found: false });
  }
  const { stack, ...rest } = (json.details ?? {}) as Record<string, unknown>;
  expect(JSON.stringify(rest)).not.toMatch(/\sat\s.*\(|\n\s+at /);
  expect(json.cause ?? "").not.toMatch(/\n\s+at /);
  if (typeof stack === "string") {
    for (const frame of stack.split("\n").filter((line) => /^\s*at /.test(line))) {
      expect({ frame, hostPath: frame.includes("/") }).toEqual({ frame, hostPath: false });
    }
  }
}

/**
 * The run failed with `code`, not retryable (unless the failure is the network's: a fetch timeout), within
 * `deadlineMs` plus the grace plus the time this process was kept from running meanwhile (a starved machine delays
 * the engine's deadline checks and its uninterruptible work by as much), and carries nothing of the host.
 */
function expectFailure(
  a: Attempt,
  code: string,
  deadlineMs: number,
  details: Record<string, unknown> = {},
  retryable = false,
): CryptletError {
  const received = isCryptletError(a.error)
    ? { code: a.error.code, retryable: a.error.retryable, details: a.error.details }
    : { notAnError: a.error, output: a.result?.output };
  expect(received).toMatchObject({ code, retryable, details });
  expect(a.elapsed).toBeLessThan(deadlineMs + GRACE_MS + a.lateMs);
  const error = a.error as CryptletError;
  expectNothingOfTheHost(error);
  return error;
}

const LEGIT = moduleOf(`
  const sorted = [...input.xs].sort((a: number, b: number) => a - b);
  const text = JSON.stringify({ median: sorted[1], sum: input.xs.reduce((s: number, x: number) => s + x, 0) });
  return JSON.parse(text);`);

/** The same loaded Cryptlet runs cleanly again, and a fresh Cryptlet on the same engine gives the right answer. */
async function expectNextRunsCorrect(engine: SandboxEngine, a: Attempt): Promise<void> {
  try {
    if (a.cryptlet !== undefined) expect((await a.cryptlet.run({ __next: true }, CONTEXT)).output).toBe("clean");
    const fresh = await engine.load(await bundleCryptlet(LEGIT));
    try {
      expect((await fresh.run({ xs: [3, 1, 2] }, CONTEXT)).output).toEqual({ median: 2, sum: 6 });
    } finally {
      fresh.dispose();
    }
  } finally {
    a.cryptlet?.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------------------

describe.each(ENGINES)("engine %s", (engineName, makeEngine) => {
  describe("only bounded data crosses the boundary", () => {
    test.each([
      {
        name: "a 200,000,000-character URL (refused in the sandbox before it crosses)",
        body: 'const url = input.base + "/api/long?" + "a".repeat(200_000_000); try { await ctx.fetch(url); } catch { /* caught */ } return "ignored";',
        limits: { memoryMb: 512 },
        path: "/api/long",
        reason: "URL longer than 8192 characters",
      },
      {
        name: "20,000 characters of headers",
        body: 'return (await ctx.fetch(input.base + "/api/h1", { headers: { "x-big": "h".repeat(20_000) } })).status;',
        path: "/api/h1",
        reason: "headers longer than 16384 characters in total",
      },
      {
        name: "65 headers",
        body: 'const h: any = {}; for (let i = 0; i < 65; i++) h["x-h" + i] = "1"; return (await ctx.fetch(input.base + "/api/h2", { headers: h })).status;',
        path: "/api/h2",
        reason: "more than 64 headers",
      },
      {
        name: "a 70,000-character POST body",
        body: 'return (await ctx.fetch(input.base + "/api/b1", { method: "POST", body: "b".repeat(70_000) })).status;',
        path: "/api/b1",
        reason: "request body larger than 65536 bytes",
      },
      {
        name: "a 30,000-character POST body of 90,000 UTF-8 bytes (refused on the host, by bytes)",
        body: 'return (await ctx.fetch(input.base + "/api/b2", { method: "POST", body: "€".repeat(30_000) })).status;',
        path: "/api/b2",
        reason: "request body larger than 65536 bytes",
      },
    ])("oversized fetch request: $name -> ERR_FETCH_REQUEST_INVALID", async ({ body, limits, path, reason }) => {
      const engine = makeEngine();
      const a = await attempt(
        engine,
        await bundleOf(body),
        { limits: { timeoutMs: 5000, ...limits }, capabilities: fetchGrant() },
        { base: server.origin },
      );
      expectFailure(a, "ERR_FETCH_REQUEST_INVALID", 5000, { reason });
      expect(server.hits.get(path)).toBeUndefined();
      await expectNextRunsCorrect(engine, a);
    });

    test("100,000 unawaited fetch calls: refused in the sandbox beyond maxRequests, no host work queued", async () => {
      const engine = makeEngine();
      const a = await attempt(
        engine,
        await bundleOf(`
          for (let i = 0; i < 100_000; i++) ctx.fetch(input.base + "/api/flood").catch(() => undefined);
          return "flooded";`),
        { limits: { timeoutMs: 2000 }, capabilities: fetchGrant({ maxRequests: 8 }) },
        { base: server.origin },
      );
      expectFailure(a, "ERR_CAPABILITY_DENIED", 2000, { reason: "more than 8 fetch calls in one run" });
      expect(server.hits.get("/api/flood") ?? 0).toBeLessThanOrEqual(8);
      await expectNextRunsCorrect(engine, a);
    });

    test.each([
      { path: "/api/bomb/gzip", what: "10 KiB of gzip inflating to 10 MiB" },
      { path: "/api/bomb/gzip-gzip", what: "1.8 KiB of gzip, gzip inflating to 1 GiB" },
      { path: "/api/bomb/br", what: "841 bytes of brotli inflating to 1 GiB" },
    ])(
      "compression bomb ($what) with Connection: close, 20 runs: each ERR_FETCH_FAILED response-too-large, the process survives",
      async ({ path }) => {
        const engine = makeEngine();
        const cryptlet = await engine.load(
          await bundleOf("return (await (await ctx.fetch(input.url)).text()).length;"),
          { limits: { timeoutMs: 5000 }, capabilities: fetchGrant({ maxResponseBytes: 1024 * 1024 }) },
        );
        const before = uncaught.length;
        for (let i = 0; i < 20; i++) {
          const started = performance.now();
          const { error, control: seen } = await control.during(() =>
            cryptlet.run({ url: server.origin + path }, CONTEXT),
          );
          expectFailure(
            { cryptlet, result: undefined, error, elapsed: performance.now() - started, lateMs: seen.starvedMs },
            "ERR_FETCH_FAILED",
            1500,
            {
              reason: "response-too-large",
              maxResponseBytes: 1024 * 1024,
            },
          );
        }
        // Let any late socket or decoder error surface before counting.
        await new Promise((resolve) => setTimeout(resolve, 200));
        expect(uncaught.slice(before)).toEqual([]);
        await expectNextRunsCorrect(engine, { cryptlet, result: undefined, error: undefined, elapsed: 0, lateMs: 0 });
      },
    );

    test("a compressed response within the limit is decoded by the host (identity asked for) and recorded decoded", async () => {
      const engine = makeEngine();
      const cryptlet = await engine.load(
        await bundleOf(`
          const price = await (await ctx.fetch(input.base + "/api/gzip-price")).json();
          await ctx.fetch(input.base + "/api/headers", { headers: { "x-api-key": "k1" } });
          return price;`),
        { limits: { timeoutMs: 5000 }, capabilities: fetchGrant() },
      );
      try {
        const result = await cryptlet.run({ base: server.origin }, CONTEXT);
        expect(result.output).toEqual(JSON.parse(PRICE_JSON));
        expect(result.hostCalls[0]).toMatchObject({ status: 200, bytes: Buffer.byteLength(PRICE_JSON) });
        expect(server.lastHeaders).toMatchObject({ "accept-encoding": "identity", "x-api-key": "k1" });
      } finally {
        cryptlet.dispose();
      }
    });

    test("a content encoding the host does not decode: ERR_FETCH_FAILED invalid-response", async () => {
      const engine = makeEngine();
      const a = await attempt(
        engine,
        await bundleOf('return (await ctx.fetch(input.base + "/api/compress")).status;'),
        { limits: { timeoutMs: 5000 }, capabilities: fetchGrant() },
        { base: server.origin },
      );
      expectFailure(a, "ERR_FETCH_FAILED", 1500, { reason: "invalid-response" });
      await expectNextRunsCorrect(engine, a);
    });

    test("a body trickled one byte a second ends at the fetch timeout", async () => {
      const engine = makeEngine();
      const a = await attempt(
        engine,
        await bundleOf('return (await (await ctx.fetch(input.base + "/api/trickle")).text()).length;'),
        { limits: { timeoutMs: 10_000 }, capabilities: fetchGrant({ timeoutMs: 1500 }) },
        { base: server.origin },
      );
      // The server's slowness, not the Cryptlet's doing: the one retryable failure here.
      expectFailure(a, "ERR_FETCH_FAILED", 1500, { reason: "timeout" }, true);
      await expectNextRunsCorrect(engine, a);
    });

    test("a body trickled one byte a second ends at the run's deadline", async () => {
      const engine = makeEngine();
      const a = await attempt(
        engine,
        await bundleOf('return (await (await ctx.fetch(input.base + "/api/trickle")).text()).length;'),
        { limits: { timeoutMs: 400 }, capabilities: fetchGrant({ timeoutMs: 10_000 }) },
        { base: server.origin },
      );
      expectFailure(a, "ERR_SANDBOX_TIMEOUT", 400);
      await expectNextRunsCorrect(engine, a);
    });

    test.each([
      {
        phase: "run",
        body: 'throw new Error("m".repeat(10_000_000), { cause: "c".repeat(10_000_000) });',
        topLevel: "",
      },
      {
        phase: "load",
        body: "return 1;",
        topLevel: 'throw new Error("m".repeat(10_000_000), { cause: "c".repeat(10_000_000) });',
      },
      { phase: "load", body: "return 1;", topLevel: 'throw "s".repeat(10_000_000);' },
    ])(
      "a 10,000,000-character thrown message or cause ($phase) is cut in the sandbox",
      async ({ phase, body, topLevel }) => {
        const engine = makeEngine();
        const a = await attempt(engine, await bundleOf(body, topLevel), { limits: { timeoutMs: 5000 } }, null);
        const error = expectFailure(a, "ERR_CRYPTLET_THREW", 5000, { phase });
        const details = error.details as { message: string; stack?: string };
        expect(details.message.length).toBeLessThanOrEqual(1025);
        expect((details.stack ?? "").length).toBeLessThanOrEqual(4097);
        expect(JSON.stringify(error.toJSON()).length).toBeLessThan(8 * 1024);
        await expectNextRunsCorrect(engine, a);
      },
    );

    test("100,000 log calls of a megabyte each: 100 lines of 1,024 characters cross, the rest is counted", async () => {
      const engine = makeEngine();
      const a = await attempt(
        engine,
        await bundleOf(`
          let deep: any = []; for (let i = 0; i < 100_000; i++) deep = [deep];
          console.log(deep);
          const big = "l".repeat(1_000_000);
          for (let i = 0; i < 100_000; i++) ctx.log(big, big);
          return "logged";`),
        { limits: { timeoutMs: 5000 } },
        null,
      );
      expect(a.error).toBeUndefined();
      expect(a.elapsed).toBeLessThan(5000 + GRACE_MS + a.lateMs);
      const result = a.result as RunResult;
      expect(result.logs).toHaveLength(100);
      for (const line of result.logs) expect(line.length).toBeLessThanOrEqual(1025);
      expect(result.logs[0]).toBe("[".repeat(9) + "\u2026" + "]".repeat(9));
      expect(result.logsDropped).toBe(100_000 + 1 - 100);
      await expectNextRunsCorrect(engine, a);
    });

    test("a huge eval source: refused or out of memory, never past the deadline", async () => {
      // isolated-vm refuses to compile a string longer than memoryMb/8 Mi characters (EvalError); QuickJS parses it
      // on the host's thread until its memory limit stops it. Either way the Cryptlet's own, non-retryable failure.
      const engine = makeEngine();
      const a = await attempt(
        engine,
        await bundleOf('return (0, eval)("1+".repeat(8_000_000) + "1");'),
        { limits: { timeoutMs: 2000 } },
        null,
      );
      expectFailure(a, engineName === "isolated-vm" ? "ERR_CRYPTLET_THREW" : "ERR_SANDBOX_MEMORY_LIMIT", 2000);
      await expectNextRunsCorrect(engine, a);
    });
  });

  describe("error codes a Cryptlet cannot forge", () => {
    const PRETENDERS: { name: string; code: string }[] = [
      {
        name: "Object.prototype.stack getter that throws a chosen error",
        code: 'Object.defineProperty(Object.prototype, "stack", { get() { throw new Error("attacker-chosen cause"); } }); throw { x: 1 };',
      },
      {
        name: "Object.prototype.stack getter that throws a Proxy",
        code: 'Object.defineProperty(Object.prototype, "stack", { get() { throw new Proxy({}, { get() { throw new Error("attacker-chosen cause"); } }); } }); throw new Error("mine");',
      },
      {
        name: "Error.prototype name and message getters",
        code: 'for (const k of ["name", "message"]) Object.defineProperty(Error.prototype, k, { get() { throw new Error("attacker-chosen cause"); } }); throw Object.create(Error.prototype);',
      },
      {
        name: "Symbol.toPrimitive, toString and toJSON that throw",
        code: 'const boom = () => { throw new Error("attacker-chosen cause"); }; throw { [Symbol.toPrimitive]: boom, toString: boom, toJSON: boom };',
      },
      {
        name: "a Proxy thrown as the error",
        code: 'throw new Proxy(new Error("x"), { get() { throw new Error("attacker-chosen cause"); }, getPrototypeOf() { throw new Error("attacker-chosen cause"); } });',
      },
      { name: "a promise thrown (QuickJS freed its handle twice)", code: "throw Promise.resolve(1);" },
    ];

    test.each(
      PRETENDERS.flatMap((p) => [
        { ...p, phase: "run" },
        { ...p, phase: "load" },
      ]),
    )("$name ($phase): ERR_CRYPTLET_THREW, not retryable, no chosen cause", async ({ code, phase }) => {
      const engine = makeEngine();
      const bundle = phase === "run" ? await bundleOf(code) : await bundleOf("return 1;", code);
      const a = await attempt(engine, bundle, { limits: { timeoutMs: 1000 } }, null);
      const error = expectFailure(a, "ERR_CRYPTLET_THREW", 1000, { phase });
      expect(error.cause).toBeUndefined();
      expect(JSON.stringify(error.toJSON())).not.toContain("attacker-chosen");
      await expectNextRunsCorrect(engine, a);
    });

    test("a top-level throw of a Proxy whose get loops does not hang load()", async () => {
      const engine = makeEngine();
      const a = await attempt(
        engine,
        await bundleOf("return 1;", "throw new Proxy({}, { get() { for (;;) {} } });"),
        { limits: { timeoutMs: 500 } },
        null,
      );
      expectFailure(a, "ERR_CRYPTLET_THREW", 500, { phase: "load", kind: "object" });
      await expectNextRunsCorrect(engine, a);
    });

    test("a top-level throw of a Proxy whose every trap loops ends at the deadline", async () => {
      const engine = makeEngine();
      const a = await attempt(
        engine,
        await bundleOf(
          "return 1;",
          "const loop = () => { for (;;) {} }; throw new Proxy({}, { get: loop, ownKeys: loop, getOwnPropertyDescriptor: loop, getPrototypeOf: loop, has: loop });",
        ),
        { limits: { timeoutMs: 500 } },
        null,
      );
      expectFailure(a, "ERR_SANDBOX_TIMEOUT", 500);
      await expectNextRunsCorrect(engine, a);
    });

    test.each([
      {
        name: "new RangeError('Array buffer allocation failed')",
        code: 'throw new RangeError("Array buffer allocation failed");',
      },
      { name: "RangeError('Invalid string length') without new", code: 'throw RangeError("Invalid string length");' },
      {
        name: "a RangeError subclass saying the stack overflowed",
        code: 'throw new (class extends RangeError {})("Maximum call stack size exceeded");',
      },
      {
        name: "Reflect.construct(Error, ..., RangeError)",
        code: 'throw Reflect.construct(Error, ["Array buffer allocation failed"], RangeError);',
      },
      {
        name: "a plain object on RangeError.prototype",
        code: 'throw Object.setPrototypeOf({ message: "Array buffer allocation failed" }, RangeError.prototype);',
      },
      {
        name: "QuickJS's InternalError('out of memory')",
        code: 'const IE = (globalThis as any).InternalError ?? RangeError; throw new IE("out of memory");',
      },
      {
        name: "an engine error relabelled with its own name",
        code: 'try { null!.x; } catch (e: any) { e.name = "RangeError"; e.message = "Maximum call stack size exceeded"; throw e; }',
      },
    ])("a forged allocation failure or stack overflow: $name -> ERR_CRYPTLET_THREW", async ({ code }) => {
      const engine = makeEngine();
      const a = await attempt(engine, await bundleOf(code), { limits: { timeoutMs: 1000 } }, null);
      expectFailure(a, "ERR_CRYPTLET_THREW", 1000, { phase: "run" });
      await expectNextRunsCorrect(engine, a);
    });

    test("a forged stack overflow at top level -> ERR_CRYPTLET_THREW; a real one -> ERR_SANDBOX_STACK_OVERFLOW", async () => {
      const engine = makeEngine();
      const forged = await attempt(
        engine,
        await bundleOf("return 1;", 'throw new RangeError("Maximum call stack size exceeded");'),
        { limits: { timeoutMs: 1000 } },
        null,
      );
      expectFailure(forged, "ERR_CRYPTLET_THREW", 1000, { phase: "load" });
      const real = await attempt(
        engine,
        await bundleOf("return 1;", "const f = (n: number): number => f(n + 1) + 1; f(0);"),
        { limits: { timeoutMs: 1000 } },
        null,
      );
      expectFailure(real, "ERR_SANDBOX_STACK_OVERFLOW", 1000, { phase: "load" });
      await expectNextRunsCorrect(engine, real);
    });

    test("deep JSON as input (100,000 and 2,000 nested arrays): ERR_SANDBOX_OPTIONS_INVALID before the run", async () => {
      const engine = makeEngine();
      let deep: JsonValue = [];
      for (let i = 0; i < 100_000; i++) deep = [deep];
      // 2,000 levels: within what the host's JSON.stringify handles (100,000 is refused there already), refused by
      // the depth bound (1,000) before QuickJS would parse it on the host's stack.
      let lessDeep: JsonValue = [];
      for (let i = 0; i < 2_000; i++) lessDeep = [lessDeep];
      for (const input of [deep, { nested: lessDeep }]) {
        const a = await attempt(engine, await bundleOf("return 1;"), { limits: { timeoutMs: 1000 } }, input);
        expectFailure(a, "ERR_SANDBOX_OPTIONS_INVALID", 1000, { field: "input" });
        await expectNextRunsCorrect(engine, a);
      }
    });

    test("deep JSON as output (100,000 nested arrays): ERR_OUTPUT_NOT_SERIALIZABLE", async () => {
      const engine = makeEngine();
      const a = await attempt(
        engine,
        await bundleOf("let x: any = []; for (let i = 0; i < 100_000; i++) x = [x]; return x;"),
        { limits: { timeoutMs: 2000 } },
        null,
      );
      expectFailure(a, "ERR_OUTPUT_NOT_SERIALIZABLE", 2000, { reason: "nested deeper than 64 levels" });
      await expectNextRunsCorrect(engine, a);
    });

    test("deep source (100,000 nested brackets in eval): ERR_SANDBOX_STACK_OVERFLOW, the engine stays usable", async () => {
      const engine = makeEngine();
      const a = await attempt(
        engine,
        await bundleOf('return (0, eval)("[".repeat(100_000) + "]".repeat(100_000)).length;'),
        { limits: { timeoutMs: 2000 } },
        null,
      );
      expectFailure(a, "ERR_SANDBOX_STACK_OVERFLOW", 2000);
      await expectNextRunsCorrect(engine, a);
    });

    test("deep JSON parsed by the Cryptlet: a QuickJS host-stack overflow is a typed, non-retryable stack overflow", async () => {
      // V8 parses 100,000 levels; QuickJS recurses on the host's stack inside WebAssembly and used to abort the
      // module as a retryable engine failure.
      const engine = makeEngine();
      const a = await attempt(
        engine,
        await bundleOf('return JSON.parse("[".repeat(100_000) + "]".repeat(100_000)).length;'),
        { limits: { timeoutMs: 2000 } },
        null,
      );
      if (engineName === "isolated-vm") expect(a.result?.output).toBe(1);
      else expectFailure(a, "ERR_SANDBOX_STACK_OVERFLOW", 2000);
      await expectNextRunsCorrect(engine, a);
    });

    test.each([
      {
        name: "a header value with CR LF",
        headers: '{ "x-a": "1\\r\\nx-injected: 1" }',
        reason: /header x-a has a character/,
      },
      {
        name: "a header value with a character above U+00FF",
        headers: '{ "x-a": "€" }',
        reason: /header x-a has a character/,
      },
      { name: "a header name that is not a token", headers: '{ "bad name": "1" }', reason: /is not an HTTP token/ },
      {
        name: "a header the host sets (host)",
        headers: '{ host: "evil.example" }',
        reason: /header host is set by the host/,
      },
      {
        name: "a header the host sets (accept-encoding)",
        headers: '{ "Accept-Encoding": "gzip" }',
        reason: /is set by the host/,
      },
      { name: "a proxy- header", headers: '{ "proxy-authorization": "x" }', reason: /is set by the host/ },
    ])(
      "an invalid fetch header ($name, rejection caught): ERR_FETCH_REQUEST_INVALID, nothing sent",
      async ({ headers, reason }) => {
        const engine = makeEngine();
        const a = await attempt(
          engine,
          await bundleOf(
            `try { await ctx.fetch(input.base + "/api/invalid-header", { headers: ${headers} }); } catch { /* caught */ } return "ignored";`,
          ),
          { limits: { timeoutMs: 5000 }, capabilities: fetchGrant() },
          { base: server.origin },
        );
        const error = expectFailure(a, "ERR_FETCH_REQUEST_INVALID", 5000);
        expect((error.details as { reason: string }).reason).toMatch(reason);
        expect(server.hits.get("/api/invalid-header")).toBeUndefined();
        await expectNextRunsCorrect(engine, a);
      },
    );
  });
});
