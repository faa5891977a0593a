/**
 * Runs the Key Vault emulator as its own process (for the dev stack, or by hand):
 *
 * ```sh
 * node runtime/keys/emulator/cli.ts --port 8443 --persist .cryptlet/keyvault.json --ca-file .cryptlet/keyvault-ca.pem \
 *   --key cryptlet-signer:P-256K --key attestation:P-256
 * ```
 *
 * Prints one JSON line on stdout, `{vaultUrl, identityEndpoint, identityHeader, caFile, tenantId, clientId, keys}`,
 * for the parent process; clients then set `IDENTITY_ENDPOINT`, `IDENTITY_HEADER` (for `DefaultAzureCredential`) and
 * either `NODE_EXTRA_CA_CERTS=<caFile>` before they start or the client option `tlsOptions: {ca}`. Stops on SIGINT or
 * SIGTERM. `IDENTITY_HEADER` is a local secret: the JSON line goes to the parent, not to logs.
 *
 * @module
 */
import { writeFileSync } from "node:fs";
import { Command, InvalidArgumentError } from "commander";
import { startKeyVaultEmulator } from "./startKeyVaultEmulator.ts";

type KeySpec = {
  name: string;
  spec: { kty: "EC"; crv: "P-256" | "P-256K" } | { kty: "RSA"; keySize: 2048 | 3072 | 4096 };
};

function parseKey(value: string, previous: KeySpec[]): KeySpec[] {
  const match = /^([0-9a-zA-Z-]{1,127}):(P-256K|P-256|RSA-2048|RSA-3072|RSA-4096)$/.exec(value);
  if (match === null) throw new InvalidArgumentError("expected name:P-256K, name:P-256 or name:RSA-2048|3072|4096");
  const [, name, type] = match as unknown as [string, string, string];
  const spec: KeySpec["spec"] = type.startsWith("RSA")
    ? { kty: "RSA", keySize: Number(type.slice(4)) as 2048 }
    : { kty: "EC", crv: type as "P-256" };
  return [...previous, { name, spec }];
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new InvalidArgumentError("expected a TCP port (0 for any)");
  return port;
}

const program = new Command("keyvault-emulator")
  .description("A local Azure Key Vault (keys) for the real Azure SDK")
  .option("--port <port>", "vault HTTPS port (0: any free port)", parsePort, 0)
  .option("--identity-port <port>", "managed-identity HTTP port (0: any free port)", parsePort, 0)
  .option("--persist <file>", "JSON file keeping keys between runs (mode 0600)")
  .option("--ca-file <file>", "write the TLS certificate (PEM) here, for NODE_EXTRA_CA_CERTS")
  .option(
    "--key <name:type>",
    "ensure a key exists (P-256K, P-256, RSA-2048, RSA-3072, RSA-4096); repeatable",
    parseKey,
    [] as KeySpec[],
  )
  .parse();

const options = program.opts<{
  port: number;
  identityPort: number;
  persist?: string;
  caFile?: string;
  key: KeySpec[];
}>();
const vault = await startKeyVaultEmulator({
  port: options.port,
  identityPort: options.identityPort,
  ...(options.persist === undefined ? {} : { persistPath: options.persist }),
});
if (options.caFile !== undefined) writeFileSync(options.caFile, vault.ca);
const keys = Object.fromEntries(options.key.map(({ name, spec }) => [name, vault.ensureKey(name, spec)]));
process.stdout.write(
  `${JSON.stringify({
    vaultUrl: vault.vaultUrl,
    identityEndpoint: vault.identityEndpoint,
    identityHeader: vault.identityHeader,
    caFile: options.caFile ?? null,
    tenantId: vault.tenantId,
    clientId: vault.clientId,
    keys,
  })}\n`,
);
process.stderr.write(
  `Key Vault emulator listening on ${vault.vaultUrl} (managed identity at ${vault.identityEndpoint})\n`,
);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    void vault.close().then(() => process.exit(0));
  });
}
