import { createRequire } from "node:module";

import hardhatEthers from "@nomicfoundation/hardhat-ethers";
import { defineConfig } from "hardhat/config";

const require = createRequire(import.meta.url);

/**
 * The Solidity compiler version, pinned; it must equal the version of the npm `solc` package, whose WASM build
 * (`soljson.js`) Hardhat uses so that compilation works offline (no compiler download).
 */
export const SOLC_VERSION = "0.8.30";

export default defineConfig({
  plugins: [hardhatEthers],
  solidity: {
    version: SOLC_VERSION,
    path: require.resolve("solc/soljson.js"),
    settings: {
      evmVersion: "cancun",
      optimizer: { enabled: true, runs: 10_000 },
    },
  },
  paths: {
    sources: "./contracts",
    tests: { solidity: "./contracts/test" },
  },
  networks: {
    /** In-process chain used by tests; chain id as Hardhat's default. */
    hardhatMainnet: { type: "edr-simulated", chainType: "l1" },
    /** A running `hardhat node` (JSON-RPC on 127.0.0.1:8545). */
    localhost: { type: "http", chainType: "l1", url: "http://127.0.0.1:8545" },
  },
});
