/**
 * Test helper: starts the Key Vault emulator and points `DefaultAzureCredential` at it the way Azure App Service
 * does (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`), so tests run the real `@azure/keyvault-keys` and `@azure/identity`
 * code unchanged. Only the client options differ from production: the emulator's self-signed CA is passed as
 * `tlsOptions.ca` (a documented SDK option), and `disableChallengeResourceVerification` accepts a loopback host.
 *
 * @example
 * ```ts
 * import { startTestVault } from "../support/keyvault.ts";
 * import { AzureKeyVaultProvider } from "../../runtime/keys/AzureKeyVaultProvider.ts";
 *
 * const vault = await startTestVault();
 * const provider = new AzureKeyVaultProvider({ vaultUrl: vault.vaultUrl, keyName: "k", clientOptions: vault.clientOptions });
 * await vault.close();
 * ```
 */
import { randomBytes, randomUUID } from "node:crypto";
import { request } from "node:https";
import { startKeyVaultEmulator } from "../../runtime/keys/emulator/startKeyVaultEmulator.ts";
import type { KeyVaultEmulator, KeyVaultEmulatorOptions } from "../../runtime/keys/emulator/startKeyVaultEmulator.ts";

/** Environment variables that would steer `DefaultAzureCredential` elsewhere; cleared while a test vault runs. */
const CREDENTIAL_ENV = [
  "AZURE_CLIENT_ID",
  "AZURE_TENANT_ID",
  "AZURE_CLIENT_SECRET",
  "AZURE_CLIENT_CERTIFICATE_PATH",
  "AZURE_USERNAME",
  "AZURE_FEDERATED_TOKEN_FILE",
  "AZURE_TOKEN_CREDENTIALS",
  "MSI_ENDPOINT",
  "MSI_SECRET",
  "IDENTITY_SERVER_THUMBPRINT",
  "IDENTITY_ENDPOINT",
  "IDENTITY_HEADER",
  "IMDS_ENDPOINT",
];

/**
 * One tenant and token secret for every emulator in this process: MSAL caches managed-identity tokens process-wide,
 * so a token fetched from one emulator is later offered to another (as one Entra tenant's token works for all its
 * vaults).
 */
const PROCESS_TENANT = { tenantId: randomUUID(), tokenSecret: randomBytes(32) };

/** Client options for `KeyClient`/`CryptographyClient` that trust the emulator. */
export interface TestVaultClientOptions {
  tlsOptions: { ca: string };
  disableChallengeResourceVerification: true;
  retryOptions?: { maxRetries?: number; retryDelayInMs?: number; maxRetryDelayInMs?: number };
}

/** A running emulator plus what tests need to reach it. */
export interface TestVault extends KeyVaultEmulator {
  /** Options to pass to the SDK clients (or the provider's `clientOptions`). */
  clientOptions: TestVaultClientOptions;
  /** Stops the emulator and restores the environment. */
  close(): Promise<void>;
}

/**
 * Starts an emulator and sets `IDENTITY_ENDPOINT`/`IDENTITY_HEADER` for `DefaultAzureCredential` (create credentials
 * after this call: the managed-identity source is chosen when the credential is constructed).
 */
export async function startTestVault(options: KeyVaultEmulatorOptions = {}): Promise<TestVault> {
  const emulator = await startKeyVaultEmulator({ ...PROCESS_TENANT, ...options });
  const saved = new Map(CREDENTIAL_ENV.map((name) => [name, process.env[name]]));
  for (const name of CREDENTIAL_ENV) delete process.env[name];
  process.env.IDENTITY_ENDPOINT = emulator.identityEndpoint;
  process.env.IDENTITY_HEADER = emulator.identityHeader;
  return {
    ...emulator,
    clientOptions: {
      tlsOptions: { ca: emulator.ca },
      disableChallengeResourceVerification: true,
      retryOptions: { retryDelayInMs: 10, maxRetryDelayInMs: 50 },
    },
    async close() {
      await emulator.close();
      for (const [name, value] of saved) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    },
  };
}

/** A raw HTTP answer from the emulator. */
export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

/**
 * Sends one raw HTTPS request to the emulator (for protocol tests that the SDK would hide).
 * @param path - path and query, e.g. `/keys/k?api-version=2025-07-01`.
 */
export function rawRequest(
  vault: Pick<KeyVaultEmulator, "vaultUrl" | "ca">,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; hostHeader?: string } = {},
): Promise<RawResponse> {
  const url = new URL(path, vault.vaultUrl);
  const text = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        ca: vault.ca,
        servername: "localhost",
        headers: {
          ...(options.token === undefined ? {} : { Authorization: `Bearer ${options.token}` }),
          ...(text === undefined
            ? {}
            : { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) }),
          ...(options.hostHeader === undefined ? {} : { Host: options.hostHeader }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const raw = Buffer.concat(chunks).toString("utf8");
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: raw === "" ? null : (JSON.parse(raw) as unknown),
          });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(text);
  });
}

/** Fetches an access token from the emulator's managed-identity endpoint, as MSAL's App Service source does. */
export async function fetchToken(
  vault: Pick<KeyVaultEmulator, "identityEndpoint" | "identityHeader">,
  resource = "https://vault.azure.net",
  identityHeader = vault.identityHeader,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const url = new URL(vault.identityEndpoint);
  url.searchParams.set("api-version", "2019-08-01");
  url.searchParams.set("resource", resource);
  const res = await fetch(url, { headers: { "X-IDENTITY-HEADER": identityHeader } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}
