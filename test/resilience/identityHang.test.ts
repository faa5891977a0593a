/**
 * The identity endpoint's deadline: a managed-identity endpoint (App Service style, `IDENTITY_ENDPOINT`) that
 * accepts TCP connections but never answers. The real `DefaultAzureCredential` waits for it forever; wrapped in
 * `GuardedCredential`, a token request ends with ERR_DEPENDENCY_TIMEOUT within its deadline and the breaker then
 * refuses at once.
 */
import { createServer, type Server, type Socket } from "node:net";

import { DefaultAzureCredential } from "@azure/identity";

import { isCryptletError } from "../../runtime/errors.ts";
import { GuardedCredential } from "../../runtime/keys/guardedCredential.ts";

const SCOPE = "https://vault.azure.net/.default";
const CLEARED = [
  "AZURE_CLIENT_ID",
  "AZURE_TENANT_ID",
  "AZURE_CLIENT_SECRET",
  "AZURE_FEDERATED_TOKEN_FILE",
  "MSI_ENDPOINT",
];

describe("an identity endpoint that accepts connections but never answers", () => {
  let server: Server;
  const sockets = new Set<Socket>();
  const saved = new Map<string, string | undefined>();

  beforeAll(async () => {
    server = createServer((socket) => {
      sockets.add(socket); // read nothing, answer nothing
      socket.on("error", () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    for (const name of [...CLEARED, "IDENTITY_ENDPOINT", "IDENTITY_HEADER"]) saved.set(name, process.env[name]);
    for (const name of CLEARED) delete process.env[name];
    process.env.IDENTITY_ENDPOINT = `http://127.0.0.1:${port}/msi/token`;
    process.env.IDENTITY_HEADER = "hanging-test";
  });

  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });

  test("without a deadline the token request is still pending after 3 s", async () => {
    const bare = new DefaultAzureCredential();
    const outcome = await Promise.race([
      bare.getToken(SCOPE).then(
        () => "answered",
        () => "failed",
      ),
      new Promise<string>((resolve) => setTimeout(() => resolve("pending"), 3000)),
    ]);
    expect(outcome).toBe("pending");
  });

  test("GuardedCredential ends it with ERR_DEPENDENCY_TIMEOUT within the deadline, then the breaker refuses at once", async () => {
    const policy = {
      timeoutMs: 500,
      attempts: 2,
      backoffInitialMs: 50,
      backoffMaxMs: 100,
      breakerThreshold: 2,
      breakerHalfOpenMs: 60_000,
    };
    const credential = new GuardedCredential(new DefaultAzureCredential(), { name: "identity:hang-test", policy });
    const started = performance.now();
    const error = await credential.getToken(SCOPE).then(
      () => undefined,
      (e: unknown) => e,
    );
    const elapsed = performance.now() - started;
    expect(isCryptletError(error, "ERR_DEPENDENCY_TIMEOUT")).toBe(true);
    expect(elapsed).toBeGreaterThanOrEqual(policy.attempts * policy.timeoutMs - 50);
    expect(elapsed).toBeLessThan(policy.attempts * policy.timeoutMs + policy.backoffMaxMs + 1500);

    const again = performance.now();
    const refused = await credential.getToken(SCOPE).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isCryptletError(refused, "ERR_DEPENDENCY_CIRCUIT_OPEN")).toBe(true);
    expect(performance.now() - again).toBeLessThan(200);
    expect(credential.guard.state).toBe("open");
  });
});
