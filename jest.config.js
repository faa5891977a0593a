/**
 * Jest 30 runs the TypeScript ESM sources through SWC (type stripping only; `npm run typecheck` checks types).
 * Node must run with `--experimental-vm-modules` (set by the npm scripts).
 * @type {import('jest').Config}
 */
export default {
  testEnvironment: "node",
  extensionsToTreatAsEsm: [".ts"],
  transform: {
    "^.+\\.ts$": [
      "@swc/jest",
      {
        jsc: { parser: { syntax: "typescript" }, target: "es2023", experimental: { keepImportAttributes: true } },
        module: { type: "es6" },
      },
    ],
  },
  testMatch: ["<rootDir>/test/**/*.test.ts"],
  setupFiles: ["<rootDir>/test/setup.ts"],
  testTimeout: 60_000,
  maxWorkers: 2,
};
