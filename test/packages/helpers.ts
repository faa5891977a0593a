/** Test helpers: temporary package folders and publisher keys. */
import { cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative, sep } from "node:path";
import { exportJWK, generateKeyPair } from "jose";
import type { CryptoKey, JWK } from "jose";

/** Absolute path of the price-median example package. */
export const PRICE_MEDIAN_DIR = join(import.meta.dirname, "..", "..", "cryptlets", "price-median");

const created: string[] = [];

/** A fresh temporary folder (removed by {@link cleanupTempDirs}); `nested` adds path segments to vary its length. */
export async function tempDir(nested: string[] = []): Promise<string> {
  const base = await mkdtemp(join(tmpdir(), "cryptlet-pkg-"));
  created.push(base);
  const dir = join(base, ...nested);
  await mkdir(dir, { recursive: true });
  return dir;
}

/** Removes every folder made by {@link tempDir}. */
export async function cleanupTempDirs(): Promise<void> {
  await Promise.all(created.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
}

/** Writes a package folder from `{relative path: content}` (objects are written as JSON). */
export async function writePackage(files: Record<string, string | object>, nested: string[] = []): Promise<string> {
  const dir = await tempDir(nested);
  for (const [path, content] of Object.entries(files)) {
    const target = join(dir, path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, typeof content === "string" ? content : JSON.stringify(content, null, 2));
  }
  return dir;
}

/** Copies the price-median package (without dist/) into a new temp folder under `nested`. */
export async function copyPriceMedian(nested: string[]): Promise<string> {
  const dir = await tempDir(nested);
  await cp(PRICE_MEDIAN_DIR, dir, {
    recursive: true,
    filter: (src) => relative(PRICE_MEDIAN_DIR, src).split(sep)[0] !== "dist",
  });
  return dir;
}

/** A minimal valid manifest; `overrides` are merged at the top level. */
export function manifestOf(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: "@test/demo",
    version: "1.0.0",
    entry: "src/index.ts",
    output: { abi: "tuple(int256 answer, uint8 decimals, uint64 observedAt)" },
    ...overrides,
  };
}

/** A publisher key pair: the private key and the public JWK with its kid. */
export async function publisherKey(kid: string): Promise<{ privateKey: CryptoKey; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  return { privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" } };
}
