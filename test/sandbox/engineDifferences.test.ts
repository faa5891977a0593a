/**
 * One engine per result: the probe corpus (scripts/engine-differences.ts) runs the same expressions on isolated-vm
 * and QuickJS, and docs/sandbox.md ("Engine differences") must be exactly what the installed engines answer: which
 * probes differ, each engine's answer, and the engine versions. Regenerate the section with
 * `node scripts/engine-differences.ts` after an engine upgrade (and review what changed: it may change results).
 */
import { readFileSync } from "node:fs";

import {
  ENGINE_PROBES,
  SANDBOX_DOC,
  differingProbes,
  documentedEngineDifferences,
  formattedEngineDifferences,
  runEngineProbes,
  type ProbeAnswers,
} from "../../scripts/engine-differences.ts";

let answers: ProbeAnswers;
beforeAll(async () => {
  answers = await runEngineProbes();
});

/** The probe ids in the first column of the documented table. */
function documentedDiffering(section: string): string[] {
  return [...section.matchAll(/^\| `([a-z0-9-]+)` +\|/gm)].map((m) => m[1] as string);
}

describe("engine differences", () => {
  it("every probe has an answer on both engines", () => {
    expect(ENGINE_PROBES.length).toBeGreaterThanOrEqual(30);
    expect(new Set(ENGINE_PROBES.map((p) => p.id)).size).toBe(ENGINE_PROBES.length);
    for (const engine of ["isolated-vm", "quickjs"] as const) {
      expect(Object.keys(answers[engine]).sort()).toEqual(ENGINE_PROBES.map((p) => p.id).sort());
    }
  });

  it("the engines really differ where the red team found it, and agree where authors are told to go", () => {
    const differing = differingProbes(answers);
    expect(differing).toEqual(expect.arrayContaining(["scale-pow", "pow-negative", "math-pow-fraction"]));
    expect(differing).not.toEqual(expect.arrayContaining(["scale-divide"]));
    expect(answers["isolated-vm"]["scale-divide"]).toBe("12.34567");
    expect(answers.quickjs["scale-divide"]).toBe("12.34567");
  });

  it("docs/sandbox.md lists exactly the probes that differ, with each engine's answer and version", async () => {
    const documented = documentedEngineDifferences(readFileSync(SANDBOX_DOC, "utf8"));
    // First the list of differing probes (the readable failure), then the whole section (answers, versions).
    expect(documentedDiffering(documented)).toEqual(differingProbes(answers));
    expect(documented).toBe(await formattedEngineDifferences(answers));
  });
});
