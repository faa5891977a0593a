/**
 * RPC URLs of the chains configuration: HTTP(S) only. WebSocket endpoints (ws://, wss://) are refused when the
 * file is loaded, with the offending field's path, in the chains file and in the runtime configuration alike.
 */
import { RPC_URL_MESSAGE, parseChainsConfig } from "../../runtime/chains/config.ts";
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
    expect(RPC_URL_MESSAGE).toMatch(/http:\/\/ or https:\/\/.*WebSocket endpoints .* are not supported yet/);
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
