/**
 * `npm run bench`: every benchmark in turn (sandbox, keys, proofs, anchor batcher, chain writer, pipeline, scale-out, consortium co-signing,
 * gas table); each writes its own section of docs/benchmarks.md (and the gas table docs/gas.md) with the machine
 * and the command.
 * A benchmark, not a test: it asserts nothing and takes several minutes. `npm run bench:peers` (the peers beside the
 * runtime) is not part of it: it installs its own packages (bench/peers) on its first run.
 */
import { spawnSync } from "node:child_process";

const steps = [
  "bench:sandbox",
  "bench:keys",
  "bench:proofs",
  "bench:anchor",
  "bench:writer",
  "bench:pipeline",
  "bench:scaleout",
  "bench:consortium",
  "gas",
];
for (const step of steps) {
  console.log(`\n=== npm run ${step} ===`);
  const result = spawnSync("npm", ["run", "--silent", step], { stdio: "inherit" });
  if (result.status !== 0) {
    console.error(`npm run ${step} failed with exit code ${result.status}`);
    process.exit(result.status ?? 1);
  }
}
// The sections are generated text: format them as the repository's lint expects.
spawnSync("npx", ["prettier", "--write", "docs/benchmarks.md", "docs/gas.md"], { stdio: "inherit" });
