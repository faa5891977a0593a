/**
 * Applies the fixes the Chainlink Functions toolkit's local testnet (@chainlink/functions-toolkit 0.3.2, pinned in
 * ./package.json) needs to survive concurrent requests, to the installed files under ./node_modules, by exact
 * string replacement. Idempotent (a file already patched is recognised by its marker and left alone); fails loudly
 * when a pattern is not found, i.e. when another toolkit version is installed.
 *
 * Fixes (the faults issue 14 reports from running the toolkit here with 200 requests in flight):
 *
 * 1. dist/simulateScript/simulateScript.js, `simulation.on('exit', …)` → `simulation.on('close', …)`.
 *    The Deno child's output is parsed when the process exits, but 'exit' can fire before its stdout/stderr pipes
 *    are drained; under load the last line (the JSON result) is then missing and the execution counts as an error.
 *    'close' fires after the pipes are closed.
 * 2. dist/simulateScript/simulateScript.js, temp file `FunctionsScript-${Date.now()}.ts` → the same name plus the
 *    process id and a random UUID. Every request runs 4 simulated node executions at once, and concurrent requests
 *    more; all those started in the same millisecond wrote and then deleted the same file, so one execution ran
 *    (or failed to find) another's script.
 * 3. dist/localFunctionsTestnet.js, `callReport` transactions: the testnet sends one report transaction per
 *    request from its single admin wallet, concurrently, letting ethers read the pending nonce for each; concurrent
 *    reports got the same nonce, were rejected, and the rejection (unhandled in an event listener) ended the
 *    process (seen here unpatched with 20 requests at once: ganache's "transaction can't be replaced, mining has already
 *    started", then exit). The patch sends the reports one after another through a promise chain, with the admin's nonce
 *    counted here from one read of the pending count (sent one at a time but each reading ganache's pending count,
 *    reports still collided while ganache was mining the requests' transactions), and logs a failed report instead
 *    of crashing. After a failed send the count goes on from the larger of its own value and ganache's pending
 *    count: while the simulations starve the testnet's event loop (it runs in the same process, and spawns 4 Deno
 *    processes per request after a synchronous `deno --version` each), a send can time out on the client (ethers'
 *    120 s) and still be mined. The report itself is unchanged.
 *
 * Each patched file's original is kept beside it as FILE.orig, and the patches are applied to it: running the
 * script again leaves the files as they are, and a changed patch replaces the previous one.
 *
 * Usage: node bench/peers/patch-toolkit.mjs (run by scripts/bench/peers.ts after installing ./node_modules).
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

const MARKER = "/* cryptlet bench:peers patch */";
const DIST = path.join(import.meta.dirname, "node_modules", "@chainlink", "functions-toolkit", "dist");
const EXPECTED_VERSION = "0.3.2";

const PATCHES = [
  {
    file: "simulateScript/simulateScript.js",
    edits: [
      {
        what: "read the output on 'close', not 'exit'",
        from: "simulation.on('exit', (code, signal) => {",
        to: `${MARKER} simulation.on('close', (code, signal) => {`,
      },
      {
        what: "a temp file name per execution",
        from: "`FunctionsScript-${Date.now()}.ts`",
        to: "`FunctionsScript-${Date.now()}-${process.pid}-${require('crypto').randomUUID()}.ts`",
      },
    ],
  },
  {
    file: "localFunctionsTestnet.js",
    edits: [
      {
        what: "report transactions sent one at a time",
        from: `    const reportTx = await mockCoordinator
        .connect(admin)
        .callReport(encodedReport, { gasLimit: simulationConfig_1.callReportGasLimit });
    await reportTx.wait(1);
};`,
        to: `    ${MARKER}
    const send = reportQueue.then(async () => {
        reportNonce = reportNonce ?? (await admin.getTransactionCount('pending'));
        return mockCoordinator
            .connect(admin)
            .callReport(encodedReport, { gasLimit: simulationConfig_1.callReportGasLimit, nonce: reportNonce++ });
    });
    reportQueue = send.catch(async () => {
        // A send that timed out may still be mined: the count goes on, past what ganache says is pending.
        reportNonce = Math.max(reportNonce ?? 0, await admin.getTransactionCount('pending').catch(() => 0));
    });
    try {
        const reportTx = await send;
        await reportTx.wait(1);
    }
    catch (error) {
        console.error(\`report for \${requestEventData.requestId} failed: \${error.message}\`);
    }
};
let reportQueue = Promise.resolve();
let reportNonce;`,
      },
    ],
  },
];

const pkg = JSON.parse(readFileSync(path.join(DIST, "..", "package.json"), "utf8"));
if (pkg.version !== EXPECTED_VERSION) {
  throw new Error(`@chainlink/functions-toolkit ${pkg.version} installed, the patches are for ${EXPECTED_VERSION}`);
}
for (const { file, edits } of PATCHES) {
  const full = path.join(DIST, file);
  const current = readFileSync(full, "utf8");
  // The installed file as shipped is kept beside it (FILE.orig), so that a changed patch applies to the original.
  if (!existsSync(`${full}.orig`)) {
    if (current.includes(MARKER)) throw new Error(`patch-toolkit: ${file} is patched but its .orig copy is gone`);
    writeFileSync(`${full}.orig`, current);
  }
  let text = readFileSync(`${full}.orig`, "utf8");
  for (const { what, from, to } of edits) {
    const at = text.indexOf(from);
    if (at < 0 || text.indexOf(from, at + 1) >= 0) {
      throw new Error(`patch-toolkit: "${what}": pattern not found exactly once in ${file} (another toolkit version?)`);
    }
    text = text.slice(0, at) + to + text.slice(at + from.length);
  }
  if (text === current) console.log(`patch-toolkit: ${file} already patched`);
  else {
    writeFileSync(full, text);
    console.log(`patch-toolkit: ${file} patched (${edits.map((e) => e.what).join("; ")})`);
  }
}
