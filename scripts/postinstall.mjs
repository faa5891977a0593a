// Runs after `npm install`. npm may run on the system Node (20 on our CI machine) while the project runs on the
// Node 24 that the `node` devDependency puts into node_modules/.bin. npm then skips optional dependencies whose
// `engines` ask for Node >= 22, among them Hardhat's native simulator (`@nomicfoundation/edr-<platform>`), and
// Hardhat later fails with HHE27. This script installs the missing platform package with npm running on Node 24.
// It does nothing when npm already ran on a recent Node.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

const root = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), "..");

function libcSuffix() {
  if (process.platform !== "linux") return "";
  const report = process.report?.getReport?.();
  const glibc = report?.header?.glibcVersionRuntime;
  return glibc ? "-gnu" : "-musl";
}

function missingPlatformPackage(parent) {
  const manifestPath = path.join(root, "node_modules", parent, "package.json");
  if (!existsSync(manifestPath)) return undefined; // parent not installed: nothing to complete
  const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
  const suffix = `-${process.platform}-${process.arch}`;
  const wanted = Object.entries(manifest.optionalDependencies ?? {}).find(([name]) => {
    const tail = name.slice(name.lastIndexOf("/") + 1);
    return tail.endsWith(suffix) || tail.endsWith(suffix + libcSuffix()) || tail.endsWith(suffix + "-msvc");
  });
  if (!wanted) return undefined;
  const [name, version] = wanted;
  return existsSync(path.join(root, "node_modules", name, "package.json")) ? undefined : `${name}@${version}`;
}

const missing = ["@nomicfoundation/edr"].map(missingPlatformPackage).filter(Boolean);
if (missing.length === 0) process.exit(0);

const node24 = path.join(root, "node_modules", "node", "bin", "node");
const npmCli = process.env.npm_execpath;
if (!existsSync(node24) || !npmCli) {
  console.error(`postinstall: ${missing.join(", ")} missing and no Node 24 to install it with; run npm on Node >= 22.`);
  process.exit(1);
}
console.log(
  `postinstall: installing ${missing.join(", ")} with Node 24 (npm skipped it on Node ${process.versions.node})`,
);
const result = spawnSync(node24, [npmCli, "install", "--no-save", "--ignore-scripts", ...missing], {
  cwd: root,
  stdio: "inherit",
});
process.exit(result.status ?? 1);
