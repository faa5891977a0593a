// Node defines a default `Error.prepareStackTrace`; Jest's VM context does not, and Hardhat's Solidity stack
// traces require one (HHE100 otherwise). Install V8's default format.
if (Error.prepareStackTrace === undefined) {
  Error.prepareStackTrace = (error, stack) =>
    [`${error.name}: ${error.message}`, ...stack.map((frame) => `    at ${String(frame)}`)].join("\n");
}
