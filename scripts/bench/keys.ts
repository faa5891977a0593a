/**
 * Signs per second through the real Azure SDK (`@azure/keyvault-keys` 4.10.2, `DefaultAzureCredential` via the
 * managed-identity endpoint) against the Key Vault emulator over HTTPS, sequentially and with bounded concurrency:
 * ES256K through `KeyVaultSigner.signDigest` (vault sign + EIP-2 low-s + recovery of v) and ES256 through
 * `AzureKeyVaultProvider.sign`; the local JWK provider as a baseline. Writes docs/benchmarks.md section "keys".
 *
 * Run: `npm run bench:keys` (about 30 s).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { DefaultAzureCredential } from "@azure/identity";
import { KeyClient } from "@azure/keyvault-keys";
import { AzureKeyVaultProvider } from "../../runtime/keys/AzureKeyVaultProvider.ts";
import { KeyVaultSigner } from "../../runtime/keys/KeyVaultSigner.ts";
import { LocalKeyProvider, generateLocalKeyFile } from "../../runtime/keys/LocalKeyProvider.ts";
import { startKeyVaultEmulator } from "../../runtime/keys/emulator/startKeyVaultEmulator.ts";
import { writeBenchSection } from "./report.ts";

const DURATION_MS = Number(process.env.BENCH_KEYS_MS ?? 2500);

interface Figure {
  name: string;
  concurrency: number;
  ops: number;
  perSecond: number;
  p50: number;
  p99: number;
}

/** Runs `op` with `concurrency` workers for DURATION_MS; returns throughput and latency percentiles (ms). */
async function measure(name: string, concurrency: number, op: () => Promise<unknown>): Promise<Figure> {
  for (let i = 0; i < Math.min(concurrency, 8); i++) await op(); // warm-up: connections, token, caches
  const latencies: number[] = [];
  const start = performance.now();
  const deadline = start + DURATION_MS;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const t = performance.now();
        await op();
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = performance.now() - start;
  latencies.sort((a, b) => a - b);
  const at = (q: number): number =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN;
  const figure = {
    name,
    concurrency,
    ops: latencies.length,
    perSecond: (latencies.length / elapsed) * 1000,
    p50: at(0.5),
    p99: at(0.99),
  };
  console.log(
    `${name.padEnd(58)} c=${String(concurrency).padStart(2)}  ${figure.perSecond.toFixed(0).padStart(6)}/s  p50 ${figure.p50.toFixed(2)} ms  p99 ${figure.p99.toFixed(2)} ms`,
  );
  return figure;
}

const vault = await startKeyVaultEmulator();
process.env.IDENTITY_ENDPOINT = vault.identityEndpoint;
process.env.IDENTITY_HEADER = vault.identityHeader;
const clientOptions = { tlsOptions: { ca: vault.ca }, disableChallengeResourceVerification: true };
const dir = mkdtempSync(path.join(os.tmpdir(), "bench-keys-"));
const figures: Figure[] = [];
try {
  const client = new KeyClient(vault.vaultUrl, new DefaultAzureCredential(), clientOptions);
  await client.createEcKey("bench-k", { curve: "P-256K" });
  await client.createEcKey("bench-p", { curve: "P-256" });
  const secp = new AzureKeyVaultProvider({ vaultUrl: vault.vaultUrl, keyName: "bench-k", clientOptions });
  const p256 = new AzureKeyVaultProvider({ vaultUrl: vault.vaultUrl, keyName: "bench-p", clientOptions });
  const signer = new KeyVaultSigner(secp);
  await generateLocalKeyFile(path.join(dir, "local.json"), { curve: "secp256k1" });
  const localSigner = new KeyVaultSigner(new LocalKeyProvider({ keyFile: path.join(dir, "local.json") }));
  const digest = (): Uint8Array => new Uint8Array(randomBytes(32));

  for (const concurrency of [1, 8, 32]) {
    figures.push(
      await measure("ES256K via KeyVaultSigner (SDK → emulator, low-s, v from R)", concurrency, () =>
        signer.signDigest(digest()),
      ),
    );
  }
  figures.push(
    await measure("ES256K via AzureKeyVaultProvider.sign (raw r‖s, no signer work)", 1, () =>
      secp.sign(digest(), "ES256K"),
    ),
  );
  for (const concurrency of [1, 8, 32]) {
    figures.push(
      await measure("ES256 via AzureKeyVaultProvider.sign (SDK → emulator)", concurrency, () =>
        p256.sign(digest(), "ES256"),
      ),
    );
  }
  figures.push(
    await measure("ES256K via KeyVaultSigner over LocalKeyProvider (baseline)", 1, () =>
      localSigner.signDigest(digest()),
    ),
  );
} finally {
  await vault.close();
  rmSync(dir, { recursive: true, force: true });
}

const table = [
  "| operation | in flight | signs/s | p50 latency | p99 latency |",
  "| --- | ---: | ---: | ---: | ---: |",
  ...figures.map(
    (f) =>
      `| ${f.name} | ${f.concurrency} | ${f.perSecond.toFixed(0)} | ${f.p50.toFixed(2)} ms | ${f.p99.toFixed(2)} ms |`,
  ),
].join("\n");
writeBenchSection(
  "keys",
  "Keys: signatures through the Azure SDK against the Key Vault emulator",
  "npm run bench:keys",
  `${table}

Each row runs for ${(DURATION_MS / 1000).toFixed(1)} s after a warm-up; the machine's load average during the run was
${os.loadavg()[0]?.toFixed(1)} (other work shares its cores), so repeated runs vary by a factor of two or more. Emulator and client share one Node process
(and this machine's cores with other work), so the figures bound the SDK's client-side cost plus the emulator's
signing; a real vault adds its network round trip (typically 5 to 30 ms inside an Azure region) and enforces its
documented service limits (transactions per vault per 10 s; see "Azure Key Vault service limits"), which is why the runtime signs with bounded concurrency and treats 429 as retryable (\`ERR_KEY_PROVIDER_UNAVAILABLE\`).`,
);
console.log("wrote docs/benchmarks.md section keys");
