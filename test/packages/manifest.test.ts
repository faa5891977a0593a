import { generateKeyPairSync } from "node:crypto";
import { isCryptletError } from "../../runtime/errors.ts";
import { parseManifest } from "../../runtime/packages/manifest.ts";
import type { ManifestProblem } from "../../runtime/packages/errors.ts";
import { installedEngineVersion } from "../../runtime/sandbox/engineVersion.ts";
import { checkFetchAllowEntry, isFetchAllowed } from "../../runtime/sandbox/fetchAllow.ts";
import { manifestOf } from "./helpers.ts";

/** The problems of an invalid manifest (fails the test when it is valid). */
function problemsOf(json: unknown): ManifestProblem[] {
  try {
    parseManifest(json);
  } catch (e) {
    expect(isCryptletError(e, "ERR_MANIFEST_INVALID")).toBe(true);
    return (e as { details: { errors: ManifestProblem[] } }).details.errors;
  }
  throw new Error("expected ERR_MANIFEST_INVALID");
}

function publicJwk(type: "ec" | "x25519" | "rsa", bits = 2048): Record<string, unknown> {
  const pair =
    type === "ec"
      ? generateKeyPairSync("ec", { namedCurve: "P-256" })
      : type === "x25519"
        ? generateKeyPairSync("x25519")
        : generateKeyPairSync("rsa", { modulusLength: bits });
  return pair.publicKey.export({ format: "jwk" }) as Record<string, unknown>;
}

describe("parseManifest", () => {
  it("applies every default", () => {
    const m = parseManifest(manifestOf());
    expect(m).toEqual({
      name: "@test/demo",
      version: "1.0.0",
      description: "",
      entry: "src/index.ts",
      engine: "isolated-vm",
      engineVersion: installedEngineVersion("isolated-vm").version,
      limits: { memoryMb: 64, timeoutMs: 1000, maxOutputBytes: 65536 },
      capabilities: {},
      triggers: [],
      output: { abi: "tuple(int256 answer, uint8 decimals, uint64 observedAt)" },
      targets: [],
    });
  });

  it("applies nested defaults of fetch and triggers and is idempotent", () => {
    const m = parseManifest(
      manifestOf({
        capabilities: { fetch: { allow: ["https://api.example.com/v1/"] } },
        triggers: [
          { type: "oracle", chain: "consortium" },
          {
            type: "chain-log",
            chain: "public",
            address: "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640",
            event:
              "Swap(address indexed sender, address indexed recipient, int256 amount0, int256 amount1, uint160 sqrtPriceX96, uint128 liquidity, int24 tick)",
          },
          { type: "http" },
          { type: "schedule", cron: "*/5 * * * *" },
        ],
        targets: [{ chain: "public", mode: "feed", address: "0x8ad599c3A0ff1De082011EFDDc58f1908eb6e6D8" }],
      }),
    );
    expect(m.capabilities.fetch).toEqual({
      allow: ["https://api.example.com/v1/"],
      methods: ["GET"],
      timeoutMs: 2000,
      maxResponseBytes: 1048576,
      maxRequests: 8,
      maxRedirects: 5,
    });
    expect(m.triggers[0]).toEqual({ type: "oracle", chain: "consortium", confirmations: 12 });
    expect(m.triggers[1]).toMatchObject({ type: "chain-log", confirmations: 12 });
    expect(parseManifest(m)).toEqual(m);
    expect(parseManifest(JSON.stringify(m))).toEqual(m);
  });

  it("pins the engine version: the installed one of the manifest's engine by default, a given one kept as is", () => {
    const ivm = installedEngineVersion("isolated-vm").version;
    const quickjs = installedEngineVersion("quickjs").version;
    expect(ivm).toMatch(/^\d+\.\d+\.\d+\+v8\.\d+\.\d+\.\d+/);
    expect(quickjs).toMatch(/^\d+\.\d+\.\d+\+quickjs\./);
    expect(parseManifest(manifestOf({ engine: "quickjs" })).engineVersion).toBe(quickjs);
    // A pin of another version is valid here (the runtime refuses to run it, not to parse it).
    const pinned = "7.0.0+v8.13.6.233.10-node.27";
    const m = parseManifest(manifestOf({ engineVersion: pinned }));
    expect(m.engineVersion).toBe(pinned);
    expect(parseManifest(m)).toEqual(m);
  });

  it.each([
    [{ engineVersion: "7.0.1" }, "must be an engine version"],
    [{ engineVersion: "v7.0.1+v8.13" }, "must be an engine version"],
    [
      { engineVersion: "7.0.1+quickjs.2025-09-13" },
      'must be an isolated-vm engine version "<isolated-vm version>+v8.<V8 version>"',
    ],
    [{ engine: "quickjs", engineVersion: "7.0.1+v8.13.6" }, "must be a quickjs engine version"],
    [{ engineVersion: "7.0.1+v8" }, "must be an isolated-vm engine version"],
  ])("refuses the engine version of %j", (overrides, message) => {
    const problem = problemsOf(manifestOf(overrides)).find((p) => p.path === "engineVersion");
    expect(problem?.message).toContain(message);
  });

  it("does not modify its argument", () => {
    const input = manifestOf();
    const before = JSON.stringify(input);
    parseManifest(input);
    expect(JSON.stringify(input)).toBe(before);
  });

  it.each([
    [{ limits: { memoryMb: 1024 } }, "limits.memoryMb", "must be at most 512"],
    [{ limits: { memoryMb: 4 } }, "limits.memoryMb", "must be at least 8"],
    [{ limits: { timeoutMs: 30001 } }, "limits.timeoutMs", "must be at most 30000"],
    [{ limits: { maxOutputBytes: 1048577 } }, "limits.maxOutputBytes", "must be at most 1048576"],
    [{ limits: { memoryMb: 64.5 } }, "limits.memoryMb", "must be integer"],
    [{ limits: { cpu: 1 } }, "limits.cpu", "is not a known field"],
    [{ engine: "v8" }, "engine", 'must be one of "isolated-vm", "quickjs"'],
  ])("reports %j at its path", (overrides, path, message) => {
    expect(problemsOf(manifestOf(overrides))).toContainEqual({ path, message });
  });

  it("reports every problem at once, with precise paths", () => {
    const problems = problemsOf({
      name: "Not A Name",
      version: "v1.0",
      entry: "src/../secret.ts",
      extra: true,
      limits: { memoryMb: 1024 },
      capabilities: { fetch: { allow: ["https://API.example.com"], maxRequests: 0 } },
      triggers: [
        { type: "nope" },
        { type: "schedule", cron: "61 * * * *" },
        { type: "chain-log", chain: "Main Net" },
        { type: "schedule", cron: "* * * * * *" },
      ],
      output: { abi: "tuple(int257 x)" },
      targets: [{ chain: "public", mode: "push", address: "0x88E6a0c2ddd26feeb64f039a2c41296fcb3f5640" }],
    });
    const paths = problems.map((p) => p.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        "name",
        "version",
        "entry",
        "extra",
        "limits.memoryMb",
        "capabilities.fetch.allow[0]",
        "capabilities.fetch.maxRequests",
        "triggers[0].type",
        "triggers[1].cron",
        "triggers[2].chain",
        "triggers[2].address",
        "triggers[2].event",
        "triggers[3].cron",
        "output.abi",
        "targets[0].mode",
        "targets[0].address",
      ]),
    );
    expect(problems).toContainEqual({
      path: "capabilities.fetch.allow[0]",
      message: 'must be in normalised form "https://api.example.com/"',
    });
    expect(problems).toContainEqual({ path: "triggers[2].address", message: "is required" });
  });

  it.each([
    ["a semver with a v prefix", { version: "v1.0.0" }, "version"],
    ["a loose semver", { version: "1.0" }, "version"],
    ["an entry outside src/", { entry: "lib/index.ts" }, "entry"],
    ["an entry with ..", { entry: "src/a/../../x.ts" }, "entry"],
    ["an upper-case name", { name: "@Acme/x" }, "name"],
    ["a name with a space", { name: "a b" }, "name"],
    ["a missing output", { output: undefined }, "output"],
    ["an output with both abi and sealed", { output: { abi: "uint256", sealed: true, parties: [] } }, "output.abi"],
    ["an empty fetch allow-list", { capabilities: { fetch: { allow: [] } } }, "capabilities.fetch.allow"],
    [
      "an ftp fetch entry",
      { capabilities: { fetch: { allow: ["ftp://example.com/"] } } },
      "capabilities.fetch.allow[0]",
    ],
    [
      "credentials in a fetch entry",
      { capabilities: { fetch: { allow: ["https://u:p@example.com/"] } } },
      "capabilities.fetch.allow[0]",
    ],
    [
      "a query in a fetch entry",
      { capabilities: { fetch: { allow: ["https://example.com/?a=1"] } } },
      "capabilities.fetch.allow[0]",
    ],
    [
      "a bad event signature",
      {
        triggers: [
          {
            type: "chain-log",
            chain: "a",
            address: "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640",
            event: "Swap(uint999 x)",
          },
        ],
      },
      "triggers[0].event",
    ],
    ["an impossible cron date", { triggers: [{ type: "schedule", cron: "0 0 31 2 *" }] }, "triggers[0].cron"],
    [
      "too many confirmations",
      { triggers: [{ type: "oracle", chain: "a", confirmations: 10001 }] },
      "triggers[0].confirmations",
    ],
    ["a trigger without type", { triggers: [{ chain: "a" }] }, "triggers[0].type"],
  ])("refuses %s", (_label, overrides, path) => {
    const problems = problemsOf(manifestOf(overrides));
    expect(problems.map((p) => p.path)).toContain(path);
  });

  it("refuses text that is not JSON, and non-objects", () => {
    expect(problemsOf("{")).toEqual([{ path: "", message: "is not valid JSON" }]);
    expect(problemsOf(42).map((p) => p.path)).toEqual([""]);
  });

  it("ABI output types are parsed by ethers", () => {
    expect(parseManifest(manifestOf({ output: { abi: "uint256" } })).output).toEqual({ abi: "uint256" });
    expect(parseManifest(manifestOf({ output: { abi: "tuple(address a, bytes32[] b)" } })).output).toBeDefined();
    expect(problemsOf(manifestOf({ output: { abi: "tuple(uint256" } }))[0]?.path).toBe("output.abi");
  });

  describe("sealed output", () => {
    it("accepts EC P-256, X25519 and RSA-2048 public JWKs", () => {
      const m = parseManifest(
        manifestOf({
          output: {
            sealed: true,
            parties: [
              { name: "buyer", jwk: publicJwk("ec") },
              { name: "seller", jwk: publicJwk("x25519") },
              { name: "auditor", jwk: { ...publicJwk("rsa"), alg: "RSA-OAEP-256", use: "enc", kid: "a1" } },
            ],
          },
        }),
      );
      expect("sealed" in m.output && m.output.parties.map((p) => p.jwk.kty)).toEqual(["EC", "OKP", "RSA"]);
    });

    it("refuses private key members with their path", () => {
      const pair = generateKeyPairSync("ec", { namedCurve: "P-256" });
      const privateJwk = pair.privateKey.export({ format: "jwk" });
      const problems = problemsOf(manifestOf({ output: { sealed: true, parties: [{ name: "a", jwk: privateJwk }] } }));
      expect(problems).toEqual([
        {
          path: "output.parties[0].jwk.d",
          message: "is a private key member; a party's JWK must be its public key only",
        },
      ]);
      const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" });
      const rsaPaths = problemsOf(manifestOf({ output: { sealed: true, parties: [{ name: "a", jwk: rsa }] } })).map(
        (p) => p.path,
      );
      expect(rsaPaths).toEqual(
        expect.arrayContaining(["output.parties[0].jwk.d", "output.parties[0].jwk.p", "output.parties[0].jwk.q"]),
      );
    });

    it("refuses RSA keys under 2048 bits, other curves, bad points, duplicate names and no parties", () => {
      const small = problemsOf(
        manifestOf({ output: { sealed: true, parties: [{ name: "a", jwk: publicJwk("rsa", 1024) }] } }),
      );
      expect(small).toEqual([
        { path: "output.parties[0].jwk.n", message: "must be an RSA modulus of at least 2048 bits (got 1024)" },
      ]);

      const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" }).publicKey.export({ format: "jwk" });
      expect(
        problemsOf(manifestOf({ output: { sealed: true, parties: [{ name: "a", jwk: p384 }] } })).map((p) => p.path),
      ).toContain("output.parties[0].jwk.crv");

      const ec = publicJwk("ec");
      const offCurve = { ...ec, y: ec.x };
      expect(problemsOf(manifestOf({ output: { sealed: true, parties: [{ name: "a", jwk: offCurve }] } }))).toEqual([
        { path: "output.parties[0].jwk", message: "is not a valid public key (RFC 7517 JWK)" },
      ]);

      const dup = problemsOf(
        manifestOf({
          output: {
            sealed: true,
            parties: [
              { name: "a", jwk: ec },
              { name: "a", jwk: publicJwk("x25519") },
            ],
          },
        }),
      );
      expect(dup.map((p) => p.path)).toEqual(["output.parties[1].name"]);

      expect(problemsOf(manifestOf({ output: { sealed: true, parties: [] } }))).toEqual([
        { path: "output.parties", message: "must have at least 1 items" },
      ]);
      expect(problemsOf(manifestOf({ output: { sealed: false, parties: [{ name: "a", jwk: ec }] } }))).toContainEqual({
        path: "output.sealed",
        message: "must be true",
      });
    });
  });
});

describe("fetch allow-list (origin + path prefix)", () => {
  const allow = ["https://api.example.com/v1/", "http://127.0.0.1:8545/rpc"];

  it("validates entries", () => {
    expect(checkFetchAllowEntry("https://api.example.com/v1/")).toBeUndefined();
    expect(checkFetchAllowEntry("https://api.example.com:443/")).toBe(
      'must be in normalised form "https://api.example.com/"',
    );
    expect(checkFetchAllowEntry("not a url")).toMatch(/absolute URL/);
    expect(checkFetchAllowEntry("https://example.com/#x")).toBeDefined();
  });

  it.each([
    ["https://api.example.com/v1/prices?pair=ETH-USD", true],
    ["https://API.example.com:443/v1/prices", true],
    ["https://api.example.com/v1/", true],
    ["https://api.example.com/v1", false],
    ["https://api.example.com/v10/prices", false],
    ["https://api.example.com/v1/../admin", false],
    ["https://api.example.com/v1/%2e%2e/admin", false],
    ["https://api.example.com.evil.test/v1/", false],
    ["http://api.example.com/v1/prices", false],
    ["https://user:pw@api.example.com/v1/prices", false],
    ["http://127.0.0.1:8545/rpc", true],
    ["http://127.0.0.1:8545/rpc/x", false],
    ["http://127.0.0.1:8546/rpc", false],
    ["file:///etc/passwd", false],
    ["garbage", false],
  ])("%s → %s", (url, allowed) => {
    expect(isFetchAllowed(url, allow)).toBe(allowed);
  });
});
