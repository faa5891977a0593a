/**
 * RPC URLs of the chains configuration: HTTP(S) only. WebSocket endpoints (ws://, wss://) are refused there when
 * the file is loaded, with the offending field's path, in the chains file and in the runtime configuration alike
 * (a chain's WebSocket endpoint is its `wsUrl`, for block subscriptions). And the latency settings.
 */
import { RPC_URL_MESSAGE, WS_URL_MESSAGE, parseChainsConfig } from "../../runtime/chains/config.ts";
import { parseRuntimeConfig } from "../../runtime/config.ts";
import { isCryptletError } from "../../runtime/errors.ts";

const signer = { type: "local", jwkPath: "relayer.jwk.json" };

function chain(rpc: Record<string, unknown>): Record<string, unknown> {
  return { name: "consortium", chainId: 31337, signer, ...rpc };
}

function problemsOf(fn: () => unknown): { code: string; errors: { path: string; message: string }[] } {
  try {
    fn();
  } catch (error) {
    if (!isCryptletError(error)) throw error;
    return { code: error.code, errors: error.details?.errors as { path: string; message: string }[] };
  }
  throw new Error("expected a configuration error");
}

describe("chains configuration: RPC URLs", () => {
  it("accepts http:// and https:// endpoints", () => {
    const config = parseChainsConfig({
      chains: [chain({ rpcUrls: ["http://127.0.0.1:8545", "https://rpc.example/v3/key"] })],
    });
    expect(config.chains[0]!.rpcUrls).toEqual(["http://127.0.0.1:8545", "https://rpc.example/v3/key"]);
  });

  it.each(["ws://127.0.0.1:8545", "wss://rpc.example/ws"])("refuses %s in rpcUrl, naming the field", (url) => {
    const { code, errors } = problemsOf(() => parseChainsConfig({ chains: [chain({ rpcUrl: url })] }));
    expect(code).toBe("ERR_CHAIN_CONFIG_INVALID");
    expect(errors).toEqual([{ path: "chains[0].rpcUrl", message: RPC_URL_MESSAGE }]);
    expect(RPC_URL_MESSAGE).toMatch(/http:\/\/ or https:\/\/.*WebSocket endpoint .* is given as wsUrl/);
  });

  it("refuses a WebSocket endpoint among rpcUrls, naming its index", () => {
    const { errors } = problemsOf(() =>
      parseChainsConfig({ chains: [chain({ rpcUrls: ["http://127.0.0.1:8545", "wss://rpc.example/ws"] })] }),
    );
    expect(errors).toEqual([{ path: "chains[0].rpcUrls[1]", message: RPC_URL_MESSAGE }]);
  });

  it("refuses them in the runtime configuration's chains too", () => {
    const { code, errors } = problemsOf(() =>
      parseRuntimeConfig({
        consortiumId: `0x${"11".repeat(32)}`,
        keys: { resultSigners: [signer], attestation: signer },
        chains: [chain({ rpcUrl: "ws://127.0.0.1:8545" })],
      }),
    );
    expect(code).toBe("ERR_CHAIN_CONFIG_INVALID");
    expect(errors).toEqual([{ path: "chains[0].rpcUrl", message: RPC_URL_MESSAGE }]);
  });
});

describe("chains configuration: explorerUrl (audit report links)", () => {
  it("keeps an http(s) explorer base URL; a chain without one has none", () => {
    const config = parseChainsConfig({
      chains: [
        chain({ rpcUrl: "http://127.0.0.1:8545", explorerUrl: "https://sepolia.etherscan.io" }),
        { ...chain({ rpcUrl: "http://127.0.0.1:8546" }), name: "local", chainId: 31338 },
      ],
    });
    expect(config.chains.map((c) => c.explorerUrl)).toEqual(["https://sepolia.etherscan.io", undefined]);
  });

  it.each(["javascript:alert(1)", "ftp://explorer.example", "https://explorer.example/a b"])(
    "refuses %s, naming the field",
    (explorerUrl) => {
      const { code, errors } = problemsOf(() =>
        parseChainsConfig({ chains: [chain({ rpcUrl: "http://127.0.0.1:8545", explorerUrl })] }),
      );
      expect(code).toBe("ERR_CHAIN_CONFIG_INVALID");
      expect(errors.map((e) => e.path)).toEqual(["chains[0].explorerUrl"]);
    },
  );
});

describe("chains configuration: laneSigners (several relayer keys)", () => {
  it("defaults to none; keeps the further relayer keys in order; resolves local key paths in the runtime file", () => {
    expect(parseChainsConfig({ chains: [chain({ rpcUrl: "http://127.0.0.1:8545" })] }).chains[0]!.laneSigners).toEqual(
      [],
    );
    const lanes = [
      { type: "local", jwkPath: "lane-1.jwk.json" },
      { type: "azure-key-vault", vaultUrl: "https://vault.example", keyName: "relayer-2" },
    ];
    const parsed = parseChainsConfig({ chains: [chain({ rpcUrl: "http://127.0.0.1:8545", laneSigners: lanes })] });
    expect(parsed.chains[0]!.laneSigners).toEqual(lanes);
    const runtime = parseRuntimeConfig(
      {
        consortiumId: `0x${"11".repeat(32)}`,
        keys: { resultSigners: [signer], attestation: signer },
        chains: [chain({ rpcUrl: "http://127.0.0.1:8545", laneSigners: [lanes[0]] })],
      },
      "runtime config",
      "/etc/cryptlet",
    );
    expect(runtime.chains[0]!.laneSigners).toEqual([{ type: "local", jwkPath: "/etc/cryptlet/lane-1.jwk.json" }]);
  });

  it("refuses a malformed lane signer, naming its index", () => {
    const { code, errors } = problemsOf(() =>
      parseChainsConfig({
        chains: [chain({ rpcUrl: "http://127.0.0.1:8545", laneSigners: [signer, { type: "local" }] })],
      }),
    );
    expect(code).toBe("ERR_CHAIN_CONFIG_INVALID");
    // Each alternative of the signer schema says what it missed, all under the lane signer's index.
    expect(errors.map((e) => e.path)).toContain("chains[0].laneSigners[1].jwkPath");
    expect(errors.every((e) => e.path.startsWith("chains[0].laneSigners[1]."))).toBe(true);
  });
});

describe("chains configuration: latency settings (docs/chains.md)", () => {
  const rpc = { rpcUrl: "http://127.0.0.1:8545" };
  const runtime = (chains: Record<string, unknown>[], extra: Record<string, unknown> = {}) =>
    parseRuntimeConfig({
      consortiumId: `0x${"11".repeat(32)}`,
      keys: { resultSigners: [signer], attestation: signer },
      chains,
      ...extra,
    });

  it("defaults: receipts polled every 250 ms, anchor checks from 250 ms, no block subscription", () => {
    const [parsed] = parseChainsConfig({ chains: [chain(rpc)] }).chains;
    expect(parsed!.pollIntervalMs).toBe(250);
    expect(parsed!.anchor).toEqual({ maxBatchSize: 256, maxBatchDelayMs: 1000, pollIntervalMs: 250 });
    expect(parsed!.wsUrl).toBeUndefined();
  });

  it("keeps the values given, in the chains file and in the runtime configuration", () => {
    const given = chain({
      ...rpc,
      wsUrl: "wss://rpc.example/ws/v3/key",
      pollIntervalMs: 2000,
      anchor: { pollIntervalMs: 1500 },
    });
    for (const parsed of [parseChainsConfig({ chains: [given] }).chains[0]!, runtime([given]).chains[0]!]) {
      expect(parsed.wsUrl).toBe("wss://rpc.example/ws/v3/key");
      expect(parsed.pollIntervalMs).toBe(2000);
      expect(parsed.anchor.pollIntervalMs).toBe(1500);
    }
  });

  it.each([
    [{ wsUrl: "http://127.0.0.1:8545" }, "chains[0].wsUrl", WS_URL_MESSAGE],
    [{ wsUrl: "ws://" }, "chains[0].wsUrl", "is not a URL (<invalid url>)"],
    [{ pollIntervalMs: 5 }, "chains[0].pollIntervalMs", "must be >= 10"],
    [{ pollIntervalMs: 250.5 }, "chains[0].pollIntervalMs", "must be integer"],
    [{ anchor: { pollIntervalMs: 0 } }, "chains[0].anchor.pollIntervalMs", "must be >= 10"],
    [{ anchor: { pollIntervalMs: 60_001 } }, "chains[0].anchor.pollIntervalMs", "must be <= 60000"],
  ])("refuses %j, naming the field", (extra, path, message) => {
    const { code, errors } = problemsOf(() => parseChainsConfig({ chains: [chain({ ...rpc, ...extra })] }));
    expect(code).toBe("ERR_CHAIN_CONFIG_INVALID");
    expect(errors).toEqual([{ path, message }]);
    expect(problemsOf(() => runtime([chain({ ...rpc, ...extra })])).errors).toEqual([{ path, message }]);
  });

  it.each([0, -1, 2.5, "250", 3_600_001])("refuses triggers.pollIntervalMs %j, naming the field", (value) => {
    const { code, errors } = problemsOf(() => runtime([chain(rpc)], { triggers: { pollIntervalMs: value } }));
    expect(code).toBe("ERR_RUNTIME_CONFIG_INVALID");
    expect(errors.map((e) => e.path)).toEqual(["triggers.pollIntervalMs"]);
  });

  it("keeps triggers.pollIntervalMs; absent, the listener's default (1000 ms) applies", () => {
    expect(runtime([chain(rpc)], { triggers: { pollIntervalMs: 3000 } }).triggers.pollIntervalMs).toBe(3000);
    expect(runtime([chain(rpc)]).triggers.pollIntervalMs).toBeUndefined();
  });
});

describe("runtime configuration: microBatch (docs/pipeline.md, Micro-batches)", () => {
  const base = {
    consortiumId: `0x${"11".repeat(32)}`,
    keys: { resultSigners: [signer], attestation: signer },
    chains: [chain({ rpcUrl: "http://127.0.0.1:8545" })],
  };

  it("is off unless set; keeps the values given", () => {
    expect(parseRuntimeConfig(base).microBatch).toBeUndefined();
    expect(parseRuntimeConfig({ ...base, microBatch: {} }).microBatch).toEqual({});
    expect(parseRuntimeConfig({ ...base, microBatch: { maxResults: 256, windowMs: 0 } }).microBatch).toEqual({
      maxResults: 256,
      windowMs: 0,
    });
  });

  it.each([
    [{ maxResults: 257 }, "microBatch.maxResults"],
    [{ maxResults: 0 }, "microBatch.maxResults"],
    [{ windowMs: -1 }, "microBatch.windowMs"],
    [{ windowMs: 10_001 }, "microBatch.windowMs"],
    [{ maxResult: 10 }, "microBatch.maxResult"],
  ])("refuses %j, naming %s", (microBatch, path) => {
    const { errors } = problemsOf(() => parseRuntimeConfig({ ...base, microBatch }));
    expect(errors.map((e) => e.path)).toEqual([path]);
  });
});
