import { isCryptletError } from "../../runtime/errors.ts";
import { parseManifest } from "../../runtime/packages/manifest.ts";
import { sandboxOptionsFromManifest } from "../../runtime/packages/sandboxOptions.ts";
import {
  DEFAULT_FETCH,
  DEFAULT_LIMITS,
  FETCH_BOUNDS,
  installedEngineVersion,
  IsolatedVmEngine,
  MAX_LIMITS,
  MIN_LIMITS,
  resolveLimits,
} from "../../runtime/sandbox/index.ts";
import { bundleCryptlet, startTestServer, type TestServer } from "../sandbox/helpers.ts";
import { manifestOf } from "./helpers.ts";

const CONTEXT = { event: {}, requestId: "0x01", resultId: "0x02", now: 1704412800 };

describe("sandboxOptionsFromManifest", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it("takes the limits and fetch defaults the sandbox itself uses", () => {
    const { engine, load } = sandboxOptionsFromManifest(
      parseManifest(manifestOf({ capabilities: { fetch: { allow: ["https://api.example.com/v1/"] } } })),
    );
    expect(engine).toBe("isolated-vm");
    expect(load.limits).toEqual(DEFAULT_LIMITS);
    expect(load.capabilities?.fetch).toEqual({ allow: ["https://api.example.com/v1/"], ...DEFAULT_FETCH });
  });

  it("copies every option 1:1 and grants nothing the manifest does not", () => {
    const fetch = {
      allow: ["https://api.example.com/v1/", "https://prices.example.org/spot"],
      methods: ["GET", "POST"],
      timeoutMs: 1234,
      maxResponseBytes: 4096,
      maxRequests: 3,
      maxRedirects: 0,
    };
    const limits = { memoryMb: 32, timeoutMs: 250, maxOutputBytes: 1024 };
    const manifest = parseManifest(manifestOf({ engine: "quickjs", limits, capabilities: { fetch } }));
    const options = sandboxOptionsFromManifest(manifest);
    expect(options).toEqual({
      engine: "quickjs",
      engineVersion: installedEngineVersion("quickjs").version,
      load: { limits, capabilities: { fetch } },
    });
    // Copies, not shared references.
    options.load.capabilities?.fetch?.allow.push("https://evil.example/");
    expect(manifest.capabilities.fetch?.allow).toHaveLength(2);
    expect(sandboxOptionsFromManifest(parseManifest(manifestOf())).load.capabilities).toEqual({});
  });

  it("refuses a manifest pinned to another version of its engine, naming both versions (not retryable)", () => {
    const installed = installedEngineVersion("isolated-vm").version;
    const pinned = installed.replace(/^(\d+)\./, (_, major: string) => `${Number(major) + 1}.`);
    expect(pinned).not.toBe(installed);
    const manifest = parseManifest(manifestOf({ engineVersion: pinned }));
    let error: unknown;
    try {
      sandboxOptionsFromManifest(manifest);
    } catch (e) {
      error = e;
    }
    expect(isCryptletError(error, "ERR_SANDBOX_ENGINE_VERSION_MISMATCH")).toBe(true);
    expect(error).toMatchObject({ retryable: false, details: { engine: "isolated-vm", pinned, installed } });
    expect((error as Error).message).toContain(pinned);
    expect((error as Error).message).toContain(installed);
    // Build metadata counts: the same isolated-vm on another V8 is another engine.
    const otherV8 = installed.replace(/\+v8\..*$/, "+v8.1.2.3.4-node.5");
    expect(() => sandboxOptionsFromManifest(parseManifest(manifestOf({ engineVersion: otherV8 })))).toThrow(
      expect.objectContaining({ code: "ERR_SANDBOX_ENGINE_VERSION_MISMATCH" }),
    );
    // The installed version passes and is handed on for the attestation token.
    expect(sandboxOptionsFromManifest(parseManifest(manifestOf({ engineVersion: installed }))).engineVersion).toBe(
      installed,
    );
  });

  it("the sandbox accepts every manifest at the bounds, and the manifest refuses what the sandbox refuses", async () => {
    const engine = new IsolatedVmEngine();
    const bundle = await bundleCryptlet("export default { run: () => 1 };");
    for (const edge of [MIN_LIMITS, MAX_LIMITS]) {
      const fetch = Object.fromEntries(
        Object.entries(FETCH_BOUNDS).map(([name, [min, max]]) => [name, edge === MIN_LIMITS ? min : max]),
      );
      const manifest = parseManifest(
        manifestOf({ limits: { ...edge }, capabilities: { fetch: { allow: ["https://a.example/"], ...fetch } } }),
      );
      const { load } = sandboxOptionsFromManifest(manifest);
      expect(resolveLimits(load.limits)).toEqual(edge);
      // Loading evaluates the bundle under limits.timeoutMs: 1 ms is a valid limit but too short to load in.
      const cryptlet = await engine.load(bundle, { ...load, limits: { ...load.limits, timeoutMs: 1000 } });
      cryptlet.dispose();
    }
    for (const [name, [, max]] of Object.entries(FETCH_BOUNDS)) {
      const over = { allow: ["https://a.example/"], [name]: max + 1 };
      expect(() => parseManifest(manifestOf({ capabilities: { fetch: over } }))).toThrow(
        expect.objectContaining({ code: "ERR_MANIFEST_INVALID" }),
      );
      await expect(engine.load(bundle, { capabilities: { fetch: over } })).rejects.toMatchObject({
        code: "ERR_SANDBOX_OPTIONS_INVALID",
        details: { field: `capabilities.fetch.${name}` },
      });
    }
  });

  it("the sandbox enforces the manifest's prefix rule and counts redirect hops against maxRequests", async () => {
    const manifest = parseManifest(
      manifestOf({ capabilities: { fetch: { allow: [`${server.origin}/api/`], maxRequests: 3 } } }),
    );
    const engine = new IsolatedVmEngine();
    const run = async (body: string): Promise<unknown> => {
      const bundle = await bundleCryptlet(
        `export default { run: async (input: any, ctx: any) => { const base: string = input.base; ${body} } };`,
      );
      const cryptlet = await engine.load(bundle, sandboxOptionsFromManifest(manifest).load);
      try {
        return (await cryptlet.run({ base: server.origin }, CONTEXT)).output;
      } catch (error) {
        return error;
      } finally {
        cryptlet.dispose();
      }
    };
    expect(await run('return (await ctx.fetch(base + "/api/price?pair=ETH")).status;')).toBe(200);
    // `/apix` shares the characters of the prefix but is not under `/api/`; `..` resolves out of it.
    const outside = await run('return (await ctx.fetch(base + "/apix")).status;');
    expect(isCryptletError(outside, "ERR_CAPABILITY_DENIED")).toBe(true);
    const dotDot = await run('return (await ctx.fetch(base + "/api/../private/secret")).status;');
    expect(isCryptletError(dotDot, "ERR_CAPABILITY_DENIED")).toBe(true);
    // A redirect is two HTTP requests: 2 + 1 fit in maxRequests 3, 2 + 2 do not.
    expect(
      await run('await ctx.fetch(base + "/api/redirect-ok"); return (await ctx.fetch(base + "/api/price")).status;'),
    ).toBe(200);
    const fourth = await run(
      'await ctx.fetch(base + "/api/redirect-ok"); return (await ctx.fetch(base + "/api/redirect-ok")).status;',
    );
    expect(isCryptletError(fourth, "ERR_CAPABILITY_DENIED")).toBe(true);
    expect(fourth).toMatchObject({ details: { capability: "fetch", maxRequests: 3 } });
  });
});
