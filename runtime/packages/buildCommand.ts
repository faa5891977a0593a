/**
 * The build command: `npm run build:cryptlet -- <package folder> [--out <dir>]` (or
 * `node runtime/packages/buildCommand.ts ...`). Builds the package reproducibly (see `build.ts`), writes
 * `cryptlet.json` and `bundle.js` to the output folder, and prints one JSON line:
 * `{name, version, cryptletId, codeHash, bundleBytes, outDir}`. Exit code 0 on success; 1 with the error's JSON
 * (`errorToJSON`, secrets redacted) on standard error otherwise.
 *
 * @example
 * ```sh
 * npm run build:cryptlet -- cryptlets/price-median
 * # {"name":"@cryptlet/price-median","version":"1.0.0","cryptletId":"0x4c39…","codeHash":"0x…","bundleBytes":6485,"outDir":"…/dist"}
 * ```
 */
import { resolve } from "node:path";
import { Command } from "commander";
import { errorToJSON } from "../errors.ts";
import { buildPackage } from "./build.ts";

const program = new Command()
  .name("build-cryptlet")
  .description("Build a Cryptlet package into one sandbox script and print its codeHash")
  .argument("<dir>", "package folder (holds cryptlet.json and src/)")
  .option("-o, --out <dir>", "output folder, relative to the package folder or absolute", "dist")
  .action(async (dir: string, options: { out: string }) => {
    try {
      const built = await buildPackage(dir, { outDir: options.out });
      const line = {
        name: built.manifest.name,
        version: built.manifest.version,
        cryptletId: built.cryptletId,
        codeHash: built.codeHash,
        bundleBytes: built.files["bundle.js"]?.byteLength ?? 0,
        outDir: resolve(dir, options.out),
      };
      process.stdout.write(`${JSON.stringify(line)}\n`);
    } catch (error) {
      const json = errorToJSON(error);
      process.stderr.write(`${JSON.stringify(json)}\n`);
      process.exitCode = 1;
    }
  });

await program.parseAsync(process.argv);
