/**
 * The emulator as its own process (as the dev stack runs it), reached by a separate Node process that uses the SDK
 * with nothing but environment configuration: NODE_EXTRA_CA_CERTS, IDENTITY_ENDPOINT, IDENTITY_HEADER.
 */
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { promisify } from "node:util";

const ROOT = path.resolve(import.meta.dirname, "..", "..");
const CLI = path.join(ROOT, "runtime", "keys", "emulator", "cli.ts");

const CLIENT = `
import { KeyClient, CryptographyClient } from "@azure/keyvault-keys";
import { DefaultAzureCredential } from "@azure/identity";
const credential = new DefaultAzureCredential();
const options = { disableChallengeResourceVerification: true };
const key = await new KeyClient(process.env.VAULT_URL, credential, options).getKey("signer");
const signed = await new CryptographyClient(key.id, credential, options).sign("ES256K", new Uint8Array(32).fill(1));
console.log(JSON.stringify({ version: key.properties.version, crv: key.key.crv, length: signed.result.length }));
`;

it("starts from the command line, ensures keys, persists them, and serves an SDK configured by environment only", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "kv-cli-"));
  const caFile = path.join(dir, "ca.pem");
  const persist = path.join(dir, "vault.json");
  const child = spawn(
    process.execPath,
    [CLI, "--ca-file", caFile, "--persist", persist, "--key", "signer:P-256K", "--key", "attest:P-256"],
    {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  try {
    const [line] = (await once(createInterface({ input: child.stdout }), "line")) as [string];
    const started = JSON.parse(line) as {
      vaultUrl: string;
      identityEndpoint: string;
      identityHeader: string;
      keys: Record<string, { version: string; created: boolean }>;
    };
    expect(started.keys.signer?.created).toBe(true);
    expect(started.keys.attest?.version).toMatch(/^[0-9a-f]{32}$/);
    expect(statSync(persist).mode & 0o777).toBe(0o600);

    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", CLIENT], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        NODE_EXTRA_CA_CERTS: caFile,
        IDENTITY_ENDPOINT: started.identityEndpoint,
        IDENTITY_HEADER: started.identityHeader,
        VAULT_URL: started.vaultUrl,
      },
    });
    expect(JSON.parse(stdout.trim())).toEqual({ version: started.keys.signer?.version, crv: "P-256K", length: 64 });
  } finally {
    child.kill("SIGTERM");
    const [code] = (await once(child, "exit")) as [number | null];
    expect(code).toBe(0);
    rmSync(dir, { recursive: true, force: true });
  }
});
