/**
 * `@cryptlet/cold-chain-sla` on the real freezer telemetry (cryptlets/cold-chain-sla/data): the commissioning
 * readings near 0 °C are excluded (or, without a hand-over time, a named breach), the −35 °C operation is
 * compliant, a synthetic door-open rise is named (tolerated when short, a breach when long), and the sealed report
 * opens with each party's demo key and not with a fourth key.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";

import { exportJWK, generateKeyPair, type JWK } from "jose";

import { isCryptletError } from "../../runtime/errors.ts";
import { buildPackage } from "../../runtime/packages/build.ts";
import { parseManifest, type SealedOutput } from "../../runtime/packages/manifest.ts";
import { IsolatedVmEngine } from "../../runtime/sandbox/index.ts";
import type { JsonValue } from "../../runtime/sdk/index.ts";
import { open } from "../../runtime/sealing/open.ts";
import { recipientsOf, seal } from "../../runtime/sealing/seal.ts";
import {
  commissionedAtOf,
  DEVICE_ID,
  loadReadings,
  windowsOf,
} from "../../cryptlets/cold-chain-sla/data/loadReadings.ts";
import {
  ColdChainError,
  evaluateColdChain,
  type ColdChainReport,
  type Reading,
} from "../../cryptlets/cold-chain-sla/src/sla.ts";

const DIR = path.resolve(import.meta.dirname, "..", "..", "cryptlets", "cold-chain-sla");
const PARTIES = ["manufacturer", "carrier", "retailer"] as const;

let readings: Reading[];
let commissionedAt: number;

beforeAll(async () => {
  readings = await loadReadings();
  commissionedAt = commissionedAtOf(readings) as number;
});

test("the sample: 148 readings, 5 windows of 30, hand-over at the first reading ≤ −18 °C", () => {
  expect(readings).toHaveLength(148);
  expect(windowsOf(readings, 30).map((w) => w.length)).toEqual([30, 30, 30, 30, 28]);
  expect(new Date(commissionedAt * 1000).toISOString()).toBe("2023-07-11T09:01:00.000Z");
});

test("with the hand-over time: commissioning windows are not in service, operation windows compliant", () => {
  const reports = windowsOf(readings, 30).map((w) =>
    evaluateColdChain({ deviceId: DEVICE_ID, readings: w, commissionedAt }),
  );
  expect(reports.map((r) => r.status)).toEqual([
    "not-in-service",
    "not-in-service",
    "not-in-service",
    "compliant",
    "compliant",
  ]);
  expect(reports.map((r) => r.compliant)).toEqual([false, false, false, true, true]);
  // Window 4 straddles the hand-over: 8 commissioning readings excluded, 22 at about −35 °C evaluated.
  expect(reports[3]?.window).toMatchObject({ readings: 30, evaluated: 22, excluded: 8 });
  expect(reports[4]?.excursions).toEqual([]);
  expect(reports[4]?.maxTempC).toBeLessThanOrEqual(-35);
  expect(reports[4]?.minTempC).toBeGreaterThanOrEqual(-35.5);
});

test("without a hand-over time the commissioning at 0 °C is a named breach with the door open", () => {
  const window = windowsOf(readings, 30)[1] as Reading[]; // 16:32 onward, door open
  const report = evaluateColdChain({ deviceId: DEVICE_ID, readings: window });
  expect(report.status).toBe("non-compliant");
  expect(report.excursions).toEqual([
    expect.objectContaining({
      start: "2022-10-20T16:32:00Z",
      maxTempC: 0,
      doorOpen: true,
      ongoing: true,
      breach: true,
      reasons: ["duration", "hard-limit"],
    }),
  ]);
  expect(report.excursions[0]).toMatchObject({ end: "2022-10-20T20:40:00Z", durationMinutes: 248 });
  // The logger was silent for 15 minutes, then from 17:09 to 20:32: gaps beyond 10 minutes are breaches.
  expect(report.gaps).toEqual([
    { from: "2022-10-20T16:52:00Z", to: "2022-10-20T17:07:00Z", minutes: 15 },
    { from: "2022-10-20T17:09:00Z", to: "2022-10-20T20:32:00Z", minutes: 203 },
  ]);
});

test("a synthetic door-open excursion in the −35 °C data is named: 5 minutes tolerated, 20 minutes a breach", () => {
  const operation = readings.filter((r) => r.at >= commissionedAt).slice(0, 30);
  const warm = (from: number, minutes: number): Reading[] =>
    operation.map((r, i) =>
      i >= from && i < from + minutes ? { ...r, roomC: -16.5 + (i - from) * 0.1, door: true } : r,
    );

  const short = evaluateColdChain({ deviceId: DEVICE_ID, readings: warm(10, 5) });
  expect(short.compliant).toBe(true);
  expect(short.excursions).toEqual([
    {
      start: new Date((operation[10] as Reading).at * 1000).toISOString().replace(".000Z", "Z"),
      end: new Date((operation[15] as Reading).at * 1000).toISOString().replace(".000Z", "Z"),
      durationMinutes: 5,
      maxTempC: -16.1,
      doorOpen: true,
      ongoing: false,
      breach: false,
      reasons: [],
    },
  ]);
  // 5 synthetic door-open readings plus the real one at 09:21 (the door opened without a rise above −35 °C).
  expect(short.doorOpenReadings).toBe(6);

  const long = evaluateColdChain({ deviceId: DEVICE_ID, readings: warm(5, 20) });
  expect(long.compliant).toBe(false);
  expect(long.excursions[0]).toMatchObject({
    durationMinutes: 20,
    doorOpen: true,
    breach: true,
    reasons: ["duration"],
  });

  const hot = operation.map((r, i) => (i === 12 ? { ...r, roomC: -10 } : r));
  expect(evaluateColdChain({ deviceId: DEVICE_ID, readings: hot }).excursions[0]).toMatchObject({
    durationMinutes: 1,
    maxTempC: -10,
    doorOpen: false,
    reasons: ["hard-limit"],
  });
});

test("malformed input is refused with INVALID_INPUT naming the field", () => {
  const r = readings[0] as Reading;
  const codeOf = (input: unknown): string | undefined => {
    try {
      evaluateColdChain(input as never);
      return undefined;
    } catch (e) {
      expect(e).toBeInstanceOf(ColdChainError);
      return (e as ColdChainError).code;
    }
  };
  expect(codeOf({ deviceId: "d", readings: [] })).toBe("INVALID_INPUT");
  expect(codeOf({ deviceId: "", readings: [r] })).toBe("INVALID_INPUT");
  expect(codeOf({ deviceId: "d", readings: [r, r] })).toBe("INVALID_INPUT");
  expect(codeOf({ deviceId: "d", readings: [{ ...r, roomC: "cold" }] })).toBe("INVALID_INPUT");
  expect(codeOf({ deviceId: "d", readings: [r], rule: { limitC: -18, hardLimitC: -20 } })).toBe("INVALID_INPUT");
  expect(() => evaluateColdChain({ deviceId: "d", readings: [{ ...r, door: 1 as never }] })).toThrow(
    /readings\[0\]\.door/,
  );
});

describe("the package, sealed", () => {
  test("manifest: sealed for three parties (P-256, X25519, RSA-2048); record on consortium, anchor on public", async () => {
    const built = await buildPackage(DIR, { outDir: false });
    const manifest = parseManifest(built.manifest);
    const output = manifest.output as SealedOutput;
    expect(output.sealed).toBe(true);
    expect(output.parties.map((p) => [p.name, p.jwk.kty, p.jwk.crv ?? `${p.jwk.n?.length}`])).toEqual([
      ["manufacturer", "EC", "P-256"],
      ["carrier", "OKP", "X25519"],
      ["retailer", "RSA", "342"], // base64url of a 2048-bit modulus
    ]);
    expect(manifest.targets).toEqual([
      { chain: "consortium", mode: "record" },
      { chain: "public", mode: "anchor" },
    ]);
  });

  test("the report from the sandbox, sealed, opens with each party's demo key and not with a fourth", async () => {
    const built = await buildPackage(DIR, { outDir: false });
    const parties = (parseManifest(built.manifest).output as SealedOutput).parties;
    const cryptlet = await new IsolatedVmEngine().load(built.bundle, {
      limits: built.manifest.limits as { memoryMb: number; timeoutMs: number; maxOutputBytes: number },
    });
    let report: ColdChainReport;
    try {
      const input = { deviceId: DEVICE_ID, readings: windowsOf(readings, 30)[4] as Reading[], commissionedAt };
      const run = await cryptlet.run(input as unknown as JsonValue, {
        event: { kind: "http" },
        requestId: "0x01",
        resultId: "0x02",
        now: commissionedAt + 3600,
      });
      report = run.output as unknown as ColdChainReport;
      expect(report).toEqual(evaluateColdChain(input));
      expect(run.logs).toEqual([]);
    } finally {
      cryptlet.dispose();
    }
    const jwe = await seal(JSON.stringify(report), parties);
    expect(recipientsOf(jwe)).toEqual(parties.map((p) => p.jwk.kid));
    for (const name of PARTIES) {
      const key = JSON.parse(await readFile(path.join(DIR, "keys", `${name}.private.jwk.json`), "utf8")) as JWK;
      expect(JSON.parse(new TextDecoder().decode(await open(jwe, key)))).toEqual(report);
    }
    const stranger = await exportJWK((await generateKeyPair("ECDH-ES+A256KW", { extractable: true })).privateKey);
    const refused = await open(jwe, stranger).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isCryptletError(refused, "ERR_NOT_A_RECIPIENT")).toBe(true);
  });
});
