/**
 * The real example Cryptlet in the sandbox: builds cryptlets/price-median with the package builder, runs the
 * bundle on both engines over real Uniswap V3 USDC/WETH per-minute prices of 2024-01-05 (two pools, see
 * cryptlets/price-median/data/README.md), and compares every answer with the same logic run in plain Node.
 */
import path from "node:path";
import { buildPackage } from "../../runtime/packages/build.ts";
import { IsolatedVmEngine, QuickJsEngine, type SandboxEngine } from "../../runtime/sandbox/index.ts";
import type { JsonValue } from "../../runtime/sdk/index.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";
import { aggregatePrices, type PriceMedianInput } from "../../cryptlets/price-median/src/median.ts";

const DIR = path.resolve(import.meta.dirname, "..", "..", "cryptlets", "price-median");

let bundle: string;
let limits: { memoryMb: number; timeoutMs: number; maxOutputBytes: number };
let minutes: { minute: number; input: PriceMedianInput }[];

beforeAll(async () => {
  const built = await buildPackage(DIR, { outDir: false });
  bundle = built.bundle;
  limits = built.manifest.limits as typeof limits;
  // Every 10th minute of the day keeps the suite fast; each carries both pools' observations.
  minutes = (await loadMinuteInputs()).filter((_, i) => i % 10 === 0);
});

describe.each<[string, () => SandboxEngine]>([
  ["isolated-vm", () => new IsolatedVmEngine()],
  ["quickjs", () => new QuickJsEngine()],
])("price-median on %s", (_name, makeEngine) => {
  test("answers every sampled minute exactly as plain Node does", async () => {
    expect(minutes.length).toBe(144);
    const cryptlet = await makeEngine().load(bundle, { limits });
    try {
      for (const { minute, input } of minutes) {
        const now = minute + 30;
        const result = await cryptlet.run(input as unknown as JsonValue, {
          event: { kind: "schedule", minute },
          requestId: "0x" + minute.toString(16).padStart(64, "0"),
          resultId: "0x" + (minute + 1).toString(16).padStart(64, "0"),
          now,
        });
        expect(result.output).toEqual(aggregatePrices(input, now).output);
        expect(result.logs).toHaveLength(1);
      }
    } finally {
      cryptlet.dispose();
    }
  });

  test("an input with no observations fails with the Cryptlet's own error, typed", async () => {
    const cryptlet = await makeEngine().load(bundle, { limits });
    try {
      await expect(
        cryptlet.run({ observations: [] }, { event: {}, requestId: "0x01", resultId: "0x02", now: 1704412800 }),
      ).rejects.toMatchObject({ code: "ERR_CRYPTLET_THREW", details: { phase: "run" } });
    } finally {
      cryptlet.dispose();
    }
  });
});
