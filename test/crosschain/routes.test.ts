/**
 * Routing of cross-chain events (runtime/crosschain/routes.ts): the `contracts.crosschain` section of the chain
 * configuration, the subscriptions a `crosschain` trigger derives from it, and where each event's result is
 * written. The event fragments are compared with the compiled contracts' ABIs (an independent source), and the
 * manifest format (`crosschain` trigger and target, `abiOneOf` output) with the package that uses it.
 */
import path from "node:path";

import { getAddress, Interface, Wallet } from "ethers";

import { encodeManifestOutput } from "../../runtime/attestation/hashing.ts";
import { parseChainsConfig, type ChainConfig } from "../../runtime/chains/config.ts";
import { artifactOf } from "../../runtime/chains/contracts.ts";
import { BURNED_EVENT, CROSSCHAIN_VIEWS, LOCKED_EVENT } from "../../runtime/crosschain/events.ts";
import { crosschainSubscriptionsOf, crosschainTargetOf } from "../../runtime/crosschain/routes.ts";
import { isCryptletError } from "../../runtime/errors.ts";
import { parseManifest } from "../../runtime/packages/manifest.ts";
import type { CryptletEvent } from "../../runtime/queue/topology.ts";
import { compileSubscription } from "../../runtime/triggers/subscriptions.ts";

const PKG = "@cryptlet/xchain-transfer";
const address = () => Wallet.createRandom().address;
const LOCKBOX = address();
const TOKEN = address();
const OTHER = address();
const signer = { type: "local", jwkPath: "relayer.jwk.json" };

function chains(extra: Record<string, unknown> = {}): ChainConfig[] {
  return parseChainsConfig({
    chains: [
      {
        name: "consortium",
        chainId: 31337,
        rpcUrl: "http://127.0.0.1:8545",
        signer,
        contracts: { crosschain: { [PKG]: { lockbox: LOCKBOX.toLowerCase() } } },
        ...extra,
      },
      {
        name: "public",
        chainId: 31338,
        rpcUrl: "http://127.0.0.1:8546",
        signer,
        contracts: { crosschain: { [PKG]: { wrappedTokens: [TOKEN] } } },
      },
    ],
  }).chains;
}

const manifest = { name: PKG, triggers: [{ type: "crosschain" as const, confirmations: 2 }] };

function lockedEvent(
  args: Record<string, unknown>,
  emitter = LOCKBOX,
  chainId = 31337,
): Pick<CryptletEvent, "source" | "input"> {
  return {
    source: {
      type: "chain-log",
      chainId,
      address: emitter,
      blockNumber: 5,
      blockHash: `0x${"ab".repeat(32)}`,
      txHash: `0x${"cd".repeat(32)}`,
      logIndex: 0,
    },
    input: {
      event: "Locked",
      address: emitter,
      args: { lockId: `0x${"01".repeat(32)}`, destinationChainId: "31338", token: TOKEN, ...args },
    },
  };
}

function routeError(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (error) {
    if (!isCryptletError(error)) throw error;
    return { code: error.code, message: error.message };
  }
  throw new Error("expected a routing error");
}

describe("chain configuration: contracts.crosschain", () => {
  it("checksums the lockbox and wrapped tokens", () => {
    const [consortium, pub] = chains();
    expect(consortium!.contracts.crosschain).toEqual({ [PKG]: { lockbox: LOCKBOX } });
    expect(pub!.contracts.crosschain).toEqual({ [PKG]: { wrappedTokens: [TOKEN] } });
  });

  it("refuses a malformed address, naming its path", () => {
    try {
      chains({ contracts: { crosschain: { [PKG]: { wrappedTokens: ["0x1234"] } } } });
      throw new Error("accepted");
    } catch (error) {
      expect(isCryptletError(error, "ERR_CHAIN_CONFIG_INVALID")).toBe(true);
      const errors = (error as { details: { errors: { path: string }[] } }).details.errors;
      expect(errors.map((e) => e.path)).toEqual([`chains[0].contracts.crosschain.${PKG}.wrappedTokens[0]`]);
    }
  });
});

describe("the runtime's view of the contracts matches the compiled ABIs", () => {
  it("Locked and Burned have the compiled signatures and topics", () => {
    const lockbox = new Interface(artifactOf("CryptletLockbox").abi);
    const wrapped = new Interface(artifactOf("CryptletWrappedToken").abi);
    expect(lockbox.getEvent("Locked")!.format("full")).toBe(LOCKED_EVENT.format("full"));
    expect(lockbox.getEvent("Locked")!.topicHash).toBe(LOCKED_EVENT.topicHash);
    expect(wrapped.getEvent("Burned")!.format("full")).toBe(BURNED_EVENT.format("full"));
  });

  it("every view and event the runtime reads exists with the same signature", () => {
    const compiled = [artifactOf("CryptletLockbox").abi, artifactOf("CryptletWrappedToken").abi].map(
      (abi) => new Interface(abi),
    );
    CROSSCHAIN_VIEWS.forEachFunction((fn) => {
      expect(compiled.some((c) => c.getFunction(fn.format("sighash"))?.format("full") === fn.format("full"))).toBe(
        true,
      );
    });
    CROSSCHAIN_VIEWS.forEachEvent((event) => {
      expect(compiled.some((c) => c.getEvent(event.format("sighash"))?.topicHash === event.topicHash)).toBe(true);
    });
  });
});

describe("subscriptions of a crosschain trigger", () => {
  it("listens to Locked of each lockbox and Burned of each wrapped token, with the trigger's confirmations", () => {
    const subs = crosschainSubscriptionsOf([{ manifest }], chains());
    expect(subs.map((s) => [s.chain, s.address, s.event.split("(")[0], s.confirmations])).toEqual([
      ["consortium", LOCKBOX, "event Locked", 2],
      ["public", TOKEN, "event Burned", 2],
    ]);
    const names = new Set(["consortium", "public"]);
    for (const sub of subs) expect(compileSubscription(sub, names).topic0).toMatch(/^0x[0-9a-f]{64}$/);
    expect(compileSubscription(subs[0]!, names).topic0).toBe(LOCKED_EVENT.topicHash);
    expect(subs[0]!.id).toBe(`chain-log:${PKG}:consortium:${LOCKBOX.toLowerCase()}:${LOCKED_EVENT.topicHash}`);
  });

  it("derives nothing for a package without the trigger, or without configured contracts", () => {
    expect(crosschainSubscriptionsOf([{ manifest: { name: PKG, triggers: [{ type: "http" }] } }], chains())).toEqual(
      [],
    );
    expect(crosschainSubscriptionsOf([{ manifest: { ...manifest, name: "@other/pkg" } }], chains())).toEqual([]);
  });
});

describe("where a cross-chain result is written", () => {
  it("a Locked log mints on the wrapped token it names, on its destination chain", () => {
    expect(crosschainTargetOf(lockedEvent({}), PKG, chains())).toEqual({
      chain: "public",
      mode: "mint",
      address: TOKEN,
    });
  });

  it("a Burned log releases on the lockbox it names, on its source chain", () => {
    const event: Pick<CryptletEvent, "source" | "input"> = {
      source: { ...(lockedEvent({}).source as object), chainId: 31338, address: TOKEN } as CryptletEvent["source"],
      input: { event: "Burned", address: TOKEN, args: { sourceChainId: "31337", lockbox: LOCKBOX.toLowerCase() } },
    };
    expect(crosschainTargetOf(event, PKG, chains())).toEqual({
      chain: "consortium",
      mode: "release",
      address: LOCKBOX,
    });
  });

  it("a refund observation refunds on the lock's lockbox", () => {
    const event: Pick<CryptletEvent, "source" | "input"> = {
      source: {
        type: "chain-state",
        chainId: 31338,
        blockNumber: 9,
        blockHash: `0x${"ef".repeat(32)}`,
        timestamp: 100,
      },
      input: { kind: "refund", lock: { sourceChainId: "31337", lockbox: LOCKBOX }, observation: {} },
    };
    expect(crosschainTargetOf(event, PKG, chains())).toEqual({ chain: "consortium", mode: "refund", address: LOCKBOX });
  });

  it("refuses contracts the configuration does not list for the package: the relayer calls none an event names", () => {
    expect(routeError(() => crosschainTargetOf(lockedEvent({ token: OTHER }), PKG, chains()))).toEqual({
      code: "ERR_CROSSCHAIN_ROUTE_UNKNOWN",
      message: `${PKG}: ${OTHER} is not a configured wrapped token on chain "public" (contracts.crosschain)`,
    });
    expect(routeError(() => crosschainTargetOf(lockedEvent({}, OTHER), PKG, chains())).message).toContain(
      `${OTHER} is not a configured lockbox on chain "consortium"`,
    );
    expect(routeError(() => crosschainTargetOf(lockedEvent({}), "@other/pkg", chains())).code).toBe(
      "ERR_CROSSCHAIN_ROUTE_UNKNOWN",
    );
    expect(
      routeError(() => crosschainTargetOf(lockedEvent({ destinationChainId: "1" }), PKG, chains())).message,
    ).toContain("no configured chain has chain id 1 (the destination chain of the lock)");
  });

  it("refuses events that are not Locked, Burned or a refund observation", () => {
    expect(
      routeError(() =>
        crosschainTargetOf({ ...lockedEvent({}), input: { event: "Transfer", args: {} } }, PKG, chains()),
      ),
    ).toEqual({
      code: "ERR_CROSSCHAIN_EVENT_INVALID",
      message: 'cross-chain event: input.event is "Transfer", not Locked or Burned',
    });
    const http = { source: { type: "http" as const, idempotencyKey: "k" }, input: { kind: "refund" } };
    expect(routeError(() => crosschainTargetOf(http, PKG, chains())).message).toContain("source.type is http");
    expect(routeError(() => crosschainTargetOf(lockedEvent({ destinationChainId: "x" }), PKG, chains())).message).toBe(
      "cross-chain event: input.args.destinationChainId is not an integer",
    );
  });
});

describe("manifest: the crosschain trigger and target, and abiOneOf outputs", () => {
  const base = {
    name: PKG,
    version: "1.0.0",
    entry: "src/index.ts",
    engineVersion: undefined,
    triggers: [{ type: "crosschain", confirmations: 2 }],
    output: { abiOneOf: ["tuple(uint8 kind, uint256 a)", "tuple(uint8 kind, address b)"] },
    targets: [{ mode: "crosschain" }],
  };
  const parse = (over: Record<string, unknown>) => {
    const { engineVersion: _e, ...rest } = { ...base, ...over };
    return parseManifest(rest);
  };
  const problems = (over: Record<string, unknown>) => {
    try {
      parse(over);
    } catch (error) {
      return (error as { errors: { path: string; message: string }[] }).errors;
    }
    throw new Error("accepted");
  };

  it("accepts them", () => {
    const m = parse({});
    expect(m.triggers).toEqual([{ type: "crosschain", confirmations: 2 }]);
    expect(m.targets).toEqual([{ mode: "crosschain" }]);
    expect(m.output).toEqual(base.output);
  });

  it("defaults confirmations to 12 as other triggers; refuses a crosschain target with a chain, a lone abiOneOf", () => {
    expect(parse({ triggers: [{ type: "crosschain" }] }).triggers).toEqual([{ type: "crosschain", confirmations: 12 }]);
    expect(problems({ triggers: [{ type: "crosschain", confirmations: -1 }] })).toContainEqual({
      path: "triggers[0].confirmations",
      message: "must be at least 0",
    });
    expect(problems({ targets: [{ mode: "crosschain", chain: "public" }] })).toContainEqual(
      expect.objectContaining({ path: "targets[0].chain" }),
    );
    expect(problems({ output: { abiOneOf: ["uint256"] } })).toContainEqual({
      path: "output.abiOneOf",
      message: "must have at least 2 items",
    });
  });

  it("encodes the chosen variant, and names it; refuses a variant out of range", () => {
    const { output } = parse({}) as { output: { abiOneOf: string[] } };
    const encoded = encodeManifestOutput(output, { variant: 1, value: { kind: 2, b: TOKEN } });
    expect(encoded.abiType).toBe("tuple(uint8 kind, address b)");
    expect(encoded.payload).toBe(
      `0x${"2".padStart(64, "0")}${getAddress(TOKEN).slice(2).toLowerCase().padStart(64, "0")}`,
    );
    for (const bad of [{ variant: 2, value: {} }, { value: {} }, { kind: 2, b: TOKEN }, null]) {
      expect(() => encodeManifestOutput(output, bad)).toThrow(
        /the output must be \{"variant": 0\.\.1, "value": \.\.\.\}|does not encode/,
      );
    }
  });

  it("is the format of the xchain-transfer package", async () => {
    const { readFileSync } = await import("node:fs");
    const file = path.join(import.meta.dirname, "..", "..", "cryptlets", "xchain-transfer", "cryptlet.json");
    const raw = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
    const m = parseManifest(raw);
    expect(m.targets).toEqual([{ mode: "crosschain" }]);
    expect(m.triggers[0]).toMatchObject({ type: "crosschain" });
    expect((m.output as { abiOneOf: string[] }).abiOneOf).toHaveLength(3);
  });
});
