/**
 * The environment overrides of the runtime configuration (twelve-factor, docs/operations.md "Running the roles"):
 * a chain's JSON-RPC URLs (`CRYPTLET_RPC_URLS_<NAME>`, often holding an API key), the API's and the health
 * endpoint's addresses. Each is checked as the file's value would be.
 */
import { parseRuntimeConfig, rpcUrlsEnvName, wsUrlEnvName } from "../../runtime/config.ts";
import { isCryptletError } from "../../runtime/errors.ts";

const signer = { type: "local", jwkPath: "relayer.jwk.json" };
const document = (extra: Record<string, unknown> = {}) => ({
  consortiumId: `0x${"11".repeat(32)}`,
  keys: { resultSigners: [signer], attestation: signer },
  chains: [
    { name: "consortium", chainId: 31337, signer, rpcUrl: "http://127.0.0.1:8545" },
    { name: "public-mainnet", chainId: 1, signer, rpcUrls: ["http://127.0.0.1:8546"] },
  ],
  ...extra,
});

const ENV = [
  "CRYPTLET_RPC_URLS_CONSORTIUM",
  "CRYPTLET_RPC_URLS_PUBLIC_MAINNET",
  "CRYPTLET_API_PORT",
  "CRYPTLET_API_HOST",
  "CRYPTLET_HEALTH_PORT",
  "CRYPTLET_HEALTH_HOST",
  "CRYPTLET_REDIS_CLUSTER_NODES",
  "CRYPTLET_WS_URL_PUBLIC_MAINNET",
  "CRYPTLET_WS_URL_CONSORTIUM",
];

describe("runtime configuration: environment overrides", () => {
  afterEach(() => {
    for (const name of ENV) delete process.env[name];
  });

  it("names the RPC variable after the chain", () => {
    expect(rpcUrlsEnvName("consortium")).toBe("CRYPTLET_RPC_URLS_CONSORTIUM");
    expect(rpcUrlsEnvName("public-mainnet")).toBe("CRYPTLET_RPC_URLS_PUBLIC_MAINNET");
  });

  it("takes a chain's RPC URLs from the environment, the others from the file", () => {
    process.env.CRYPTLET_RPC_URLS_PUBLIC_MAINNET = "https://rpc.example/v3/secret-key, https://backup.example/rpc";
    const config = parseRuntimeConfig(document());
    expect(config.chains.map((c) => c.rpcUrls)).toEqual([
      ["http://127.0.0.1:8545"],
      ["https://rpc.example/v3/secret-key", "https://backup.example/rpc"],
    ]);
  });

  it("checks them as the file's: a WebSocket URL is refused, naming the chain's field", () => {
    process.env.CRYPTLET_RPC_URLS_CONSORTIUM = "wss://rpc.example/ws";
    try {
      parseRuntimeConfig(document());
      throw new Error("accepted");
    } catch (error) {
      expect(isCryptletError(error, "ERR_CHAIN_CONFIG_INVALID")).toBe(true);
      expect((error as { details: { errors: { path: string }[] } }).details.errors[0]!.path).toBe(
        "chains[0].rpcUrls[0]",
      );
    }
  });

  it("takes a chain's WebSocket endpoint (wsUrl) from the environment, checked like the file's", () => {
    expect(wsUrlEnvName("public-mainnet")).toBe("CRYPTLET_WS_URL_PUBLIC_MAINNET");
    process.env.CRYPTLET_WS_URL_PUBLIC_MAINNET = "wss://rpc.example/ws/v3/secret-key";
    expect(parseRuntimeConfig(document()).chains.map((c) => c.wsUrl)).toEqual([
      undefined,
      "wss://rpc.example/ws/v3/secret-key",
    ]);
    process.env.CRYPTLET_WS_URL_CONSORTIUM = "https://rpc.example/not-a-socket";
    try {
      parseRuntimeConfig(document());
      throw new Error("accepted");
    } catch (error) {
      expect(isCryptletError(error, "ERR_CHAIN_CONFIG_INVALID")).toBe(true);
      expect((error as { details: { errors: { path: string }[] } }).details.errors[0]!.path).toBe("chains[0].wsUrl");
    }
  });

  it("sets the API's and the health endpoint's addresses; a bad port is refused by name", () => {
    const file = parseRuntimeConfig(document({ api: { port: 8080, localIssuer: { keyFile: "k.json" } } }));
    expect(file.api).toMatchObject({ host: "127.0.0.1", port: 8080 });
    expect(file.health).toBeUndefined();
    expect(file.triggers).toEqual({ schedules: true });

    process.env.CRYPTLET_API_PORT = "9090";
    process.env.CRYPTLET_API_HOST = "0.0.0.0";
    process.env.CRYPTLET_HEALTH_PORT = "9464";
    const env = parseRuntimeConfig(document({ api: { port: 8080, localIssuer: { keyFile: "k.json" } } }));
    expect(env.api).toMatchObject({ host: "0.0.0.0", port: 9090 });
    expect(env.health).toEqual({ host: "127.0.0.1", port: 9464 });

    process.env.CRYPTLET_HEALTH_PORT = "http";
    expect(() => parseRuntimeConfig(document())).toThrow(
      /CRYPTLET_HEALTH_PORT must be a port \(0 to 65535\), got "http"/,
    );
  });

  it("takes a Redis Cluster's seed nodes from the file or CRYPTLET_REDIS_CLUSTER_NODES; a bad node is refused by name", () => {
    expect(parseRuntimeConfig(document()).redisCluster).toBeUndefined();
    const file = parseRuntimeConfig(document({ redisCluster: { nodes: ["redis://10.0.0.1:7000"] } }));
    expect(file.redisCluster).toEqual({ nodes: ["redis://10.0.0.1:7000"] });
    expect(() => parseRuntimeConfig(document({ redisCluster: { nodes: ["10.0.0.1:7000"] } }))).toThrow(
      /redisCluster\/nodes\/0|redisCluster.nodes\[0\]/,
    );

    process.env.CRYPTLET_REDIS_CLUSTER_NODES = "redis://a.example:7000, rediss://user:secret@b.example:7001";
    expect(parseRuntimeConfig(document()).redisCluster).toEqual({
      nodes: ["redis://a.example:7000", "rediss://user:secret@b.example:7001"],
    });
    process.env.CRYPTLET_REDIS_CLUSTER_NODES = "redis://a.example:7000,rediss://user:secret@b.example";
    let message = "";
    try {
      parseRuntimeConfig(document());
    } catch (error) {
      expect(isCryptletError(error, "ERR_RUNTIME_CONFIG_INVALID")).toBe(true);
      message = (error as Error).message;
    }
    expect(message).toMatch(/CRYPTLET_REDIS_CLUSTER_NODES: .*b\.example.* is not a redis:\/\/host:port/);
    expect(message).not.toContain("secret"); // the credential is redacted
  });

  it("refuses bad values in the new sections, naming the field", () => {
    expect(() => parseRuntimeConfig(document({ api: { port: 1, token: "x" } }))).toThrow(
      "invalid runtime configuration (runtime config): api.token: is not a known field",
    );
    expect(() => parseRuntimeConfig(document({ triggers: { schedules: "yes" } }))).toThrow(
      "invalid runtime configuration (runtime config): triggers.schedules: must be boolean",
    );
  });
});
