import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { isCryptletError } from "../../runtime/errors.ts";
import { buildPackage } from "../../runtime/packages/build.ts";
import { assembleBuiltPackage } from "../../runtime/packages/builtPackage.ts";
import type { BuiltPackage } from "../../runtime/packages/builtPackage.ts";
import { cryptletIdOf as cryptletId } from "../../runtime/attestation/ids.ts";
import { PackageStore } from "../../runtime/packages/PackageStore.ts";
import { signPackage } from "../../runtime/packages/signature.ts";
import { PRICE_MEDIAN_DIR, manifestOf, publisherKey } from "./helpers.ts";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

function demo(version: string, bundle = `var cryptlet = { v: "${version}" };\n`, name = "@test/demo"): BuiltPackage {
  return assembleBuiltPackage(manifestOf({ name, version }), { "bundle.js": bytes(bundle) });
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (e) {
    expect(isCryptletError(e)).toBe(true);
    return (e as { code: string }).code;
  }
  throw new Error("expected a CryptletError");
}

describe("PackageStore (Redis)", () => {
  let redis: Redis;
  let other: Redis;
  let prefix: string;
  let store: PackageStore;
  let publisher: Awaited<ReturnType<typeof publisherKey>>;
  const sign = (built: BuiltPackage): Promise<string> => signPackage(built, publisher.privateKey, "pub-1");

  beforeAll(async () => {
    redis = new Redis(REDIS_URL, { lazyConnect: true });
    other = new Redis(REDIS_URL, { lazyConnect: true });
    await Promise.all([redis.connect(), other.connect()]);
    publisher = await publisherKey("pub-1");
  });

  beforeEach(() => {
    prefix = `{test-packages-${randomUUID()}}:`;
    store = new PackageStore({ redis, prefix, trustedPublisherKeys: [publisher.publicJwk] });
  });

  afterEach(async () => {
    const keys = await redis.keys(`${prefix.replace(/[{}]/g, "\\$&")}*`);
    if (keys.length > 0) await redis.del(...keys);
  });

  afterAll(async () => {
    await Promise.all([redis.quit(), other.quit()]);
  });

  it("deploys the built price-median package and reads it back by name, version, codeHash and cryptletId", async () => {
    const built = await buildPackage(PRICE_MEDIAN_DIR, { outDir: false });
    const signature = await sign(built);
    const result = await store.deploy(built, signature);
    expect(result).toEqual({
      created: true,
      name: "@cryptlet/price-median",
      version: "1.0.0",
      codeHash: built.codeHash,
      cryptletId: cryptletId("@cryptlet/price-median"),
    });
    for (const stored of [
      await store.get("@cryptlet/price-median", "1.0.0"),
      await store.get("@cryptlet/price-median"),
      await store.getByCodeHash(built.codeHash),
      await store.getByCodeHash(built.codeHash.toUpperCase().replace("0X", "0x")),
      await store.resolve(built.cryptletId),
    ]) {
      expect(stored.codeHash).toBe(built.codeHash);
      expect(stored.bundle).toBe(built.bundle);
      expect(stored.manifest).toEqual(built.manifest);
      expect(stored.signature).toBe(signature);
      expect(stored.publisherKid).toBe("pub-1");
      expect(stored.deployedAt).toBeGreaterThan(Date.now() - 60_000);
    }
    // Every key lives under the prefix (and thus in one cluster slot through its hash tag).
    const keys = await redis.keys(`${prefix.replace(/[{}]/g, "\\$&")}*`);
    expect(keys.sort()).toEqual(
      [
        `${prefix}code:${built.codeHash}`,
        `${prefix}id:${built.cryptletId}`,
        `${prefix}names`,
        `${prefix}version:@cryptlet/price-median@1.0.0`,
        `${prefix}versions:@cryptlet/price-median`,
      ].sort(),
    );
  });

  it("is idempotent for the same bytes and refuses other bytes under the same version", async () => {
    const v1 = demo("1.0.0");
    expect((await store.deploy(v1, await sign(v1))).created).toBe(true);
    expect((await store.deploy(v1, await sign(v1))).created).toBe(false);
    const changed = demo("1.0.0", "var cryptlet = { changed: true };\n");
    expect(await codeOf(store.deploy(changed, await sign(changed)))).toBe("ERR_PACKAGE_VERSION_EXISTS");
    expect((await store.get("@test/demo", "1.0.0")).codeHash).toBe(v1.codeHash);
  });

  it("lets exactly one of many concurrent deploys of one version win, over separate connections", async () => {
    const variants = Array.from({ length: 8 }, (_, i) => demo("2.0.0", `var cryptlet = { variant: ${i} };\n`));
    const signatures = await Promise.all(variants.map(sign));
    const stores = [store, new PackageStore({ redis: other, prefix, trustedPublisherKeys: [publisher.publicJwk] })];
    const outcomes = await Promise.allSettled(
      variants.map((variant, i) => (stores[i % 2] as PackageStore).deploy(variant, signatures[i] as string)),
    );
    const winners = outcomes.filter((o) => o.status === "fulfilled");
    const losers = outcomes.filter((o): o is PromiseRejectedResult => o.status === "rejected");
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(7);
    for (const loser of losers) expect(isCryptletError(loser.reason, "ERR_PACKAGE_VERSION_EXISTS")).toBe(true);
    const stored = await store.get("@test/demo", "2.0.0");
    const winner = (winners[0] as PromiseFulfilledResult<{ codeHash: string }>).value;
    expect(stored.codeHash).toBe(winner.codeHash);
    // Losers left nothing behind under their codeHash.
    for (const variant of variants.filter((v) => v.codeHash !== winner.codeHash)) {
      expect(await codeOf(store.getByCodeHash(variant.codeHash))).toBe("ERR_PACKAGE_NOT_FOUND");
    }
  });

  it("concurrent deploys of the same bytes all succeed, exactly one creates", async () => {
    const v = demo("3.0.0");
    const signature = await sign(v);
    const results = await Promise.all(Array.from({ length: 6 }, () => store.deploy(v, signature)));
    expect(results.filter((r) => r.created)).toHaveLength(1);
  });

  it("get without a version returns the highest release by semver precedence; list summarises", async () => {
    for (const version of ["1.2.0", "1.10.0", "1.9.9", "2.0.0-rc.1"]) {
      const built = demo(version);
      await store.deploy(built, await sign(built));
    }
    const other = demo("0.1.0-beta.1", undefined, "@test/beta-only");
    await store.deploy(other, await sign(other));
    expect((await store.get("@test/demo")).manifest.version).toBe("1.10.0");
    expect((await store.resolve(cryptletId("@test/demo"))).manifest.version).toBe("1.10.0");
    expect((await store.get("@test/beta-only")).manifest.version).toBe("0.1.0-beta.1");
    expect(await store.list()).toEqual([
      {
        name: "@test/beta-only",
        cryptletId: cryptletId("@test/beta-only"),
        versions: ["0.1.0-beta.1"],
        latest: "0.1.0-beta.1",
      },
      {
        name: "@test/demo",
        cryptletId: cryptletId("@test/demo"),
        versions: ["1.2.0", "1.9.9", "1.10.0", "2.0.0-rc.1"],
        latest: "1.10.0",
      },
    ]);
  });

  it("refuses bad signatures, bad manifests, bad files and oversized packages, storing nothing", async () => {
    const v = demo("1.0.0");
    const stranger = await publisherKey("stranger");
    const foreign = await signPackage(v, stranger.privateKey, "stranger");
    expect(await codeOf(store.deploy(v, foreign))).toBe("ERR_PUBLISHER_SIGNATURE_INVALID");
    const signedOther = await sign(demo("1.0.0", "var cryptlet = 1;\n"));
    expect(await codeOf(store.deploy(v, signedOther))).toBe("ERR_PUBLISHER_SIGNATURE_INVALID");
    // A deploy request carrying a made-up codeHash: the store recomputes it.
    const lying = { manifest: v.manifest, files: { "bundle.js": bytes("var cryptlet = 2;\n") }, codeHash: v.codeHash };
    expect(await codeOf(store.deploy(lying, await sign(v)))).toBe("ERR_PUBLISHER_SIGNATURE_INVALID");
    expect(
      await codeOf(store.deploy({ manifest: { ...v.manifest, engine: "v8" }, files: v.files }, await sign(v))),
    ).toBe("ERR_MANIFEST_INVALID");
    expect(await codeOf(store.deploy({ manifest: v.manifest, files: { "../x.js": bytes("") } }, await sign(v)))).toBe(
      "ERR_PACKAGE_INVALID",
    );
    const small = new PackageStore({ redis, prefix, trustedPublisherKeys: [publisher.publicJwk], maxPackageBytes: 10 });
    expect(await codeOf(small.deploy(v, await sign(v)))).toBe("ERR_PACKAGE_INVALID");
    expect(await store.list()).toEqual([]);
  });

  it("answers ERR_PACKAGE_NOT_FOUND for unknown names, versions, hashes and ids", async () => {
    const v = demo("1.0.0");
    await store.deploy(v, await sign(v));
    expect(await codeOf(store.get("@test/none"))).toBe("ERR_PACKAGE_NOT_FOUND");
    expect(await codeOf(store.get("@test/demo", "1.0.1"))).toBe("ERR_PACKAGE_NOT_FOUND");
    expect(await codeOf(store.getByCodeHash(`0x${"00".repeat(32)}`))).toBe("ERR_PACKAGE_NOT_FOUND");
    expect(await codeOf(store.getByCodeHash("not-a-hash"))).toBe("ERR_PACKAGE_NOT_FOUND");
    expect(await codeOf(store.resolve(cryptletId("@test/none")))).toBe("ERR_PACKAGE_NOT_FOUND");
  });

  it("detects stored bytes that no longer match their codeHash", async () => {
    const v = demo("1.0.0");
    await store.deploy(v, await sign(v));
    await redis.hset(`${prefix}code:${v.codeHash}`, "file:bundle.js", "var cryptlet = 'swapped';\n");
    expect(await codeOf(store.get("@test/demo"))).toBe("ERR_PACKAGE_INVALID");
  });

  it("keeps verified bytes by codeHash: later swaps in Redis do not reach this process; lookups still read Redis", async () => {
    const v = demo("1.0.0");
    await store.deploy(v, await sign(v));
    const first = await store.getByCodeHash(v.codeHash);
    await redis.hset(`${prefix}code:${v.codeHash}`, "file:bundle.js", "var cryptlet = 'swapped';\n");
    // This process checked the bytes once; it keeps running exactly those (compared with the package as built).
    const again = await store.get("@test/demo");
    expect(Buffer.from(again.files["bundle.js"]!).toString()).toBe(Buffer.from(v.files["bundle.js"]!).toString());
    expect(again.codeHash).toBe(first.codeHash);
    // A process without the cache reads Redis and finds the swap.
    const uncached = new PackageStore({ redis, prefix, trustedPublisherKeys: [publisher.publicJwk], cacheBytes: 0 });
    expect(await codeOf(uncached.get("@test/demo"))).toBe("ERR_PACKAGE_INVALID");
    // The way to the codeHash is still read from Redis on every call: a package gone from Redis is gone here too.
    await redis.del(`${prefix}code:${v.codeHash}`);
    expect(await codeOf(store.getByCodeHash(v.codeHash))).toBe("ERR_PACKAGE_NOT_FOUND");
  });
});
