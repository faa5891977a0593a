import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { Contract, Wallet } from "ethers";

import { cryptletResultDigest } from "../../runtime/attestation/eip712.ts";
import { interfaceOf } from "../../runtime/chains/contracts.ts";
import type { CompositeReceipt } from "../../runtime/queue/results.ts";
import { coldChainFlow } from "../../runtime/devstack/flows/coldChain.ts";
import { oracleFlow } from "../../runtime/devstack/flows/oracle.ts";
import { priceMedianFlow } from "../../runtime/devstack/flows/priceMedian.ts";
import { uniswapPriceFlow } from "../../runtime/devstack/flows/uniswapPrice.ts";
import { startLocalStack, type LocalStack } from "../../runtime/devstack/stack.ts";
import { crossChainFlow } from "../../runtime/devstack/flows/crossChain.ts";
import { LOCKED_EVENT } from "../../runtime/crosschain/events.ts";
import { formatSummary, summarize } from "../../runtime/devstack/summary.ts";
import { cli, ROOT } from "../cli/cliProcess.ts";

describe("npm start's local stack on a slice of the real data", () => {
  let stack: LocalStack | undefined;
  let stateDir: string;

  beforeAll(async () => {
    stateDir = await mkdtemp(path.join(os.tmpdir(), "cryptlet-devstack-"));
  });

  afterAll(async () => {
    await stack?.stop();
    await rm(stateDir, { recursive: true, force: true });
  });

  test("starts, runs every flow on a slice of the real data, verifies every proof; a second start works too", async () => {
    const prefix = `t-devstack-${process.pid}`;
    stack = await startLocalStack({ prefix, stateDir, preferredPorts: false });
    expect(stack.packages.map((p) => p.manifest.name)).toEqual(
      expect.arrayContaining(["@cryptlet/price-median", "@cryptlet/uniswap-price", "@cryptlet/cold-chain-sla"]),
    );
    const token = await stack.api!.issuer.mint({ roles: ["operator", "auditor"] });
    const reports = [
      await priceMedianFlow(stack, { minutes: 3, startMinute: 100 }),
      await uniswapPriceFlow(stack, { minutes: 3, startMinute: 300 }),
      await oracleFlow(stack),
      await coldChainFlow(stack, { url: stack.api!.server.url, token }),
      await crossChainFlow(stack, { deadlineSeconds: 4 }),
    ];
    const summary = await summarize(stack, reports);
    expect(summary.checks.filter((c) => !c.ok)).toEqual([]);
    expect(summary.failedVerification).toEqual([]);
    // The cross-chain flow: a mint, a release, a late mint (superseded) and a refund.
    expect(summary.results).toBe(3 + 3 + 1 + 5 + 4);
    expect(summary.verified).toBe(summary.results);
    expect(summary.reexecuted).toBe(summary.results);
    expect(summary.perTarget.every((t) => t.failed === 0)).toBe(true);
    expect(summary.perTarget.map((t) => `${t.chain}/${t.mode}`)).toEqual([
      "consortium/feed",
      "consortium/oracle",
      "consortium/record",
      "consortium/refund",
      "consortium/release",
      "public/anchor",
      "public/feed",
      "public/mint",
    ]);
    expect(summary.perTarget.find((t) => t.mode === "mint")).toMatchObject({ confirmed: 1, superseded: 1 });
    expect(summary.shortfalls).toEqual([]);
    expect(summary.deadLetters).toBe(0);
    // The trust came from the registries: 2-of-2 as deployed, on both chains.
    expect(summary.trust.map((t) => `${t.chain} ${t.threshold}-of-${t.signers}`)).toEqual([
      "consortium 2-of-2",
      "public 2-of-2",
    ]);
    expect(formatSummary(summary, stack, 1, [])).toContain(
      `${summary.results} of ${summary.results} proof bundles verified`,
    );
    expect(formatSummary(summary, stack, 1, [])).toContain(
      `${summary.results} of ${summary.results} re-executed on their evidence`,
    );

    // An outsider with only the bundle files, the chains' RPC URLs, the published JWKS, the package folders and
    // (for the sealed reports) one party's key: every bundle VALID, re-executed, anchors checked on-chain.
    // The attestation keys come from where the registries point (their hash checked), not from the API.
    const outsider = [
      "--rpc",
      stack.chains.map((c) => c.chain.url).join(","),
      "--rerun",
      "--package",
      path.join(stateDir, "packages"),
      "--party-key",
      path.join(ROOT, "cryptlets", "cold-chain-sla", "keys", "carrier.private.jwk.json"),
    ];
    // (Every bundle was re-executed by the summary above; here one per flow through the command line.)
    const files = reports.map((r) => path.join(stateDir, "bundles", `${r.receipts[0]!.runId}.json`));
    for (const file of files) {
      const run = await cli("verify", file, ...outsider);
      expect({ file, code: run.code, stderr: run.stderr }).toEqual({ file, code: 0, stderr: "" });
      expect(run.stdout).toMatch(/^VALID/);
      expect(run.stdout).toMatch(/pass +reexecution +re-ran @cryptlet\//);
      expect(run.stdout).toMatch(/pass +anchors /);
      expect(run.stdout).toMatch(
        /attestation JWKS: published by the registry: file:.*attestation-jwks\.json \(SHA-256 checked\)/,
      );
      expect(run.stdout).toMatch(/pass +attestation +ES256 token by /);
      // Who signed, from the registries' names of their signers (one operator's two keys in this stack).
      expect(run.stdout).toMatch(
        /pass +(signatures|batchSignatures) +2 distinct trusted (result|batch) signer\(s\) \(cryptlet-local\/result-signer-\d 0x[0-9a-fA-F]{40}, cryptlet-local\/result-signer-\d 0x/,
      );
    }
    // A published JWKS that is not the one whose hash the registries hold: no verdict (exit 2), saying why.
    const jwksFile = path.join(stateDir, "attestation-jwks.json");
    const published = await readFile(jwksFile, "utf8");
    await writeFile(jwksFile, published.replace('"keys"', '"keys" '));
    const swapped = await cli("verify", files[0]!, ...outsider);
    expect(swapped.code).toBe(2);
    expect(swapped.stderr + swapped.stdout).toMatch(
      /hashes to 0x[0-9a-f]{64}, not the 0x[0-9a-f]{64} the registry publishes/,
    );
    await writeFile(jwksFile, published);
    // Tampered variants, each INVALID with its reason: the evidence changed, the sealed evidence's ciphertext
    // changed, the code changed (a package folder whose bundle differs, so no package has the codeHash).
    const publicReceipt = JSON.parse(
      await readFile(path.join(stateDir, "bundles", `${reports[0]!.receipts[0]!.runId}.json`), "utf8"),
    ) as CompositeReceipt;
    const changedEvidence = structuredClone(publicReceipt);
    (changedEvidence.bundle.evidence!.public!.context as { now: number }).now += 1;
    const sealedReceipt = JSON.parse(
      await readFile(path.join(stateDir, "bundles", `${reports[3]!.receipts[0]!.runId}.json`), "utf8"),
    ) as CompositeReceipt;
    const changedCiphertext = structuredClone(sealedReceipt);
    const ct = changedCiphertext.bundle.evidence!.sealed!.jwe.ciphertext;
    changedCiphertext.bundle.evidence!.sealed!.jwe.ciphertext = (ct[0] === "A" ? "B" : "A") + ct.slice(1);
    for (const [name, doc, reason] of [
      [
        "changed evidence",
        changedEvidence,
        /fail +evidence +keccak256\(JCS\(evidence\)\) .* is not the token's evidenceHash/,
      ],
      [
        "changed sealed evidence",
        changedCiphertext,
        /fail +evidence +keccak256\(JCS\(evidence\)\) .* is not the token's evidenceHash/,
      ],
    ] as const) {
      const file = path.join(stateDir, `tampered-${name.replaceAll(" ", "-")}.json`);
      await writeFile(file, JSON.stringify(doc));
      const run = await cli("verify", file, ...outsider);
      expect({ name, code: run.code }).toEqual({ name, code: 1 });
      expect(run.stdout).toMatch(/^INVALID/);
      expect(run.stdout).toMatch(reason);
    }
    const otherCode = path.join(stateDir, "other-code");
    const pricePackage = (await readdir(path.join(stateDir, "packages"))).find((d) => d.includes("price-median"))!;
    const { cp } = await import("node:fs/promises");
    await cp(path.join(stateDir, "packages", pricePackage), otherCode, { recursive: true });
    const bundleJs = path.join(otherCode, "bundle.js");
    await writeFile(bundleJs, (await readFile(bundleJs, "utf8")).replace("return", "return /* changed */"));
    const changedCode = await cli(
      "verify",
      path.join(stateDir, "bundles", `${reports[0]!.receipts[0]!.runId}.json`),
      ...outsider.map((a) => (a === path.join(stateDir, "packages") ? otherCode : a)),
    );
    expect(changedCode.code).toBe(1);
    expect(changedCode.stdout).toMatch(
      /fail +reexecution +no package with codeHash 0x[0-9a-f]{64} in 1 package folder/,
    );
    // One bundle file per run.
    expect((await readdir(path.join(stateDir, "bundles"))).sort()).toEqual(
      reports.flatMap((r) => r.receipts.map((x) => `${x.runId}.json`)).sort(),
    );

    // The cross-chain transfers through the command line: every lock and burn has a receipt whose checks hold.
    const { route } = stack.crosschain[0]!;
    const source = stack.chains.find((c) => c.chain.chainId === route.sourceChainId)!;
    const lockIds = (
      await source.chain.provider.getLogs({ address: route.lockbox, topics: [LOCKED_EVENT.topicHash], fromBlock: 0 })
    ).map((log) => log.topics[1]!);
    expect(lockIds).toHaveLength(2);
    const statuses = [];
    for (const lockId of lockIds) {
      const run = await cli("transfer", lockId, "--config", stack.configFile, "--json");
      expect({ lockId, code: run.code, stderr: run.stderr }).toEqual({ lockId, code: 0, stderr: "" });
      const receipt = JSON.parse(run.stdout) as { status: string; legs: { step: string }[]; checks: { ok: boolean }[] };
      expect(receipt.checks.every((c) => c.ok)).toBe(true);
      statuses.push(`${receipt.status}: ${receipt.legs.map((l) => l.step).join(", ")}`);
    }
    expect(statuses).toEqual(["minted: lock, mint", "refunded: lock, refund"]);
    const unknown = await cli("transfer", `0x${"00".repeat(32)}`, "--config", stack.configFile);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/ERR_CROSSCHAIN_EVENT_INVALID/);

    // A forged signature: the second signature replaced by an untrusted key's over the same digest.
    const victim = JSON.parse(JSON.stringify(reports[0]!.receipts[0]!)) as CompositeReceipt;
    const r = victim.bundle.result;
    const digest = cryptletResultDigest(stack.config.consortiumId, { ...r, timestamp: BigInt(r.timestamp) });
    const forger = Wallet.createRandom();
    victim.bundle.signatures[1] = { signer: forger.address, signature: forger.signingKey.sign(digest).serialized };
    const forged = await summarize(stack, [{ name: "forged", receipts: [victim], checks: [] }]);
    expect(forged.verified).toBe(0);
    expect(forged.failedVerification[0]).toMatch(/signatures/);
    expect(forged.shortfalls.join("\n")).toMatch(/1 of 1 proof bundle\(s\) did not verify/);

    // The trust is the chain's: revoke price-median's code hash on the public chain and its bundles fail there.
    const pkg = stack.packages.find((p) => p.manifest.name === "@cryptlet/price-median")!;
    const pub = stack.chains.find((c) => c.name === "public")!;
    const registry = new Contract(pub.contracts.registry, interfaceOf("CryptletRegistry"), pub.chain.funder);
    await (await registry.getFunction("revokeCodeHash")(pkg.cryptletId, pkg.codeHash)).wait();
    const revoked = await summarize(stack, [reports[0]!]);
    expect(revoked.verified).toBe(0);
    expect(revoked.failedVerification[0]).toMatch(/public: codeHash/);

    // A failed check is a shortfall.
    const failing = await summarize(stack, [{ name: "x", receipts: [], checks: [{ description: "d", ok: false }] }]);
    expect(failing.shortfalls).toEqual(["no run produced a result", "check failed: x: d"]);
    await stack.stop();

    // Second start: same state directory (persisted Key Vault keys), fresh chains, clean Redis prefix.
    stack = await startLocalStack({ prefix, stateDir, preferredPorts: false });
    const again = await priceMedianFlow(stack, { minutes: 2, startMinute: 200 });
    expect((await summarize(stack, [again])).verified).toBe(2);
  }, 400_000);
});
