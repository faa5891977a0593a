/**
 * Proof-layer throughput: sealing 1 KiB for 3 parties (P-256, X25519, RSA-2048), opening as one party of each
 * kind, verifyBundle on a sealed bundle, EIP-712 sign+recover with a local secp256k1 key, a Merkle batch of 256
 * results, and attestation tokens: one per result, and one batch token for 256 results.
 * Run: `npm run bench:proofs` (about 20 s). Writes the "proofs" section of docs/benchmarks.md.
 */
import { randomBytes } from "node:crypto";
import { loadavg } from "node:os";

import { Wallet, keccak256, toUtf8Bytes } from "ethers";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import { Bench } from "tinybench";

import { cryptletResultDigest, type CryptletResult, type Hex32 } from "../../runtime/attestation/eip712.ts";
import { buildMerkleBatch } from "../../runtime/attestation/merkle.ts";
import { recoverDigestSigner, signCryptletResult } from "../../runtime/attestation/signing.ts";
import { buildJwks, createAttestationToken, createBatchAttestationToken } from "../../runtime/attestation/token.ts";
import { verifyBundle } from "../../runtime/attestation/verifyBundle.ts";
import { open } from "../../runtime/sealing/open.ts";
import { seal, type SealingParty } from "../../runtime/sealing/seal.ts";
import { generateLocalP256 } from "../../test/attestation/localKeys.ts";
import { CODE_HASH, CONSORTIUM_ID, makeBundle } from "../../test/verify/bundleFixture.ts";
import { writeBenchSection } from "./report.ts";

const parties: SealingParty[] = [];
const privateKeys: { label: string; jwk: JWK }[] = [];
for (const [label, alg, opts] of [
  ["P-256", "ECDH-ES+A256KW", { crv: "P-256" }],
  ["X25519", "ECDH-ES+A256KW", { crv: "X25519" }],
  ["RSA-2048", "RSA-OAEP-256", { modulusLength: 2048 }],
] as const) {
  const kp = await generateKeyPair(alg, { ...opts, extractable: true });
  parties.push({ name: label, jwk: await exportJWK(kp.publicKey) });
  privateKeys.push({ label, jwk: await exportJWK(kp.privateKey) });
}
const payload = randomBytes(1024);
const jwe = await seal(payload, parties);

const wallets = [Wallet.createRandom(), Wallet.createRandom()];
const attestation = generateLocalP256("attestation").provider;
const { bundle } = await makeBundle({ signers: wallets, attestation, parties }, { sealed: true });
const verifyOptions = {
  trustedSigners: wallets.map((w) => w.address),
  threshold: 2,
  consortiumId: CONSORTIUM_ID,
  approvedCodeHashes: [CODE_HASH],
  jwks: await buildJwks([attestation]),
  now: new Date("2024-01-05T00:05:00Z"),
};
if (!(await verifyBundle(bundle, verifyOptions)).ok) throw new Error("benchmark bundle does not verify");

const signer = wallets[0]!;
const h = (s: string): Hex32 => keccak256(toUtf8Bytes(s)) as Hex32;
let n = 0;
const nextResult = (): CryptletResult => ({
  resultId: h(`r${n++}`),
  cryptletId: h("c"),
  codeHash: h("code"),
  inputHash: h("in"),
  outputHash: h("out"),
  timestamp: 1704412802n,
});

const tokenClaims = {
  issuer: "bench-runtime",
  consortiumId: CONSORTIUM_ID,
  runtime: { version: "0.1.0", buildHash: h("build") },
  sandbox: {
    engine: "isolated-vm",
    engineVersion: "7.0.1+v8.13.6.233.17-node.53",
    limits: { memoryBytes: 67108864, wallTimeMs: 1000, outputBytes: 65536 },
  },
};

// Batches of 256 distinct results, made before timing (only buildMerkleBatch and the batch token are timed).
const batches = Array.from({ length: 8 }, () => Array.from({ length: 256 }, nextResult));
let batchIndex = 0;

const loadBefore = loadavg()[0]!;
const bench = new Bench({ time: 2500, warmupTime: 300 });
bench.add("seal 1 KiB for 3 parties (P-256, X25519, RSA-2048)", async () => {
  await seal(payload, parties);
});
for (const { label, jwk } of privateKeys) {
  bench.add(`open as the ${label} party`, async () => {
    await open(jwe, jwk);
  });
}
bench.add("verifyBundle (sealed, 2-of-3 signatures, attestation, recipients)", async () => {
  await verifyBundle(bundle, verifyOptions);
});
bench.add("EIP-712 sign + recover (local secp256k1 Wallet)", async () => {
  const result = nextResult();
  const [sig] = await signCryptletResult(CONSORTIUM_ID, result, [signer]);
  recoverDigestSigner(cryptletResultDigest(CONSORTIUM_ID, result), sig!.signature);
});
bench.add("Merkle batch of 256 results (struct hashes, tree, every proof)", () => {
  buildMerkleBatch(batches[batchIndex++ % batches.length]!);
});
bench.add("attestation token, one per result (local P-256 key)", async () => {
  const r = nextResult();
  await createAttestationToken(attestation, { ...tokenClaims, ...r, evidenceHash: r.inputHash });
});
bench.add("batch attestation token for 256 results (local P-256 key; tree, every proof)", async () => {
  const results = batches[batchIndex++ % batches.length]!.map((r) => ({ ...r, evidenceHash: r.inputHash }));
  await createBatchAttestationToken(attestation, { ...tokenClaims, results });
});
await bench.run();

const rows = bench.tasks.map((t) => {
  const r = t.result as
    | {
        throughput?: { mean: number };
        latency?: { mean: number; p99?: number };
        totalTime?: number;
        samples?: number[];
      }
    | undefined;
  const perSec = r?.throughput?.mean ?? 0;
  const mean = r?.latency?.mean ?? 0;
  const p99 = r?.latency?.p99 ?? 0;
  return `| ${t.name} | ${perSec.toFixed(0)} | ${mean.toFixed(2)} | ${p99.toFixed(2)} |`;
});
/** Issue 14's proof-layer targets, met or missed, from this run's rows. */
function targets(): string[] {
  const of = (prefix: string) => {
    const r = bench.tasks.find((t) => t.name.startsWith(prefix))?.result as
      { throughput?: { mean: number }; latency?: { mean: number } } | undefined;
    return { perSec: r?.throughput?.mean ?? 0, meanMs: r?.latency?.mean ?? Infinity };
  };
  const seal = of("seal 1 KiB");
  const verify = of("verifyBundle");
  const merkle = of("Merkle batch of 256");
  const verdict = (met: boolean) => (met ? "**met**" : "**missed**");
  return [
    `- Sealed results for 3 parties ≥ 500/s: ${verdict(seal.perSec >= 500)}, ${seal.perSec.toFixed(0)}/s.`,
    `- verifyBundle ≥ 1,000/s: ${verdict(verify.perSec >= 1000)}, ${verify.perSec.toFixed(0)}/s.`,
    `- Merkle batch of 256 ≤ 10 ms: ${verdict(merkle.meanMs <= 10)}, ${merkle.meanMs.toFixed(2)} ms mean.`,
  ];
}

/** Per-result cost of a token alone and under a batch token of 256, from this run's rows. */
function tokenLine(): string {
  const mean = (prefix: string) =>
    (bench.tasks.find((t) => t.name.startsWith(prefix))?.result as { latency?: { mean: number } } | undefined)?.latency
      ?.mean ?? NaN;
  const single = mean("attestation token, one per result");
  const batch = mean("batch attestation token for 256");
  return (
    `Attestation per result: ${single.toFixed(3)} ms with a token each, ${(batch / 256).toFixed(3)} ms under a batch ` +
    `token of 256 (${(single / (batch / 256)).toFixed(1)}× less; with Key Vault each token is also one HTTPS signature, ` +
    "which the batch makes one per 256 results)."
  );
}

const markdown = [
  "One process, sequential calls, tinybench (2.5 s per task). Sealing includes a fresh ECDH ephemeral key per EC",
  "recipient and one RSA-OAEP-256 encryption; opening as the RSA party is dominated by the RSA private-key operation.",
  "",
  "verifyBundle checks two signatures by trusted signers: each is recovered (`ecrecover`) by libsecp256k1 through",
  "the `secp256k1` package's prebuilt N-API binding (runtime/attestation/secp256k1.ts) and, once the signer's key is",
  "known, compared with it (no address derivation). The attestation key set is imported once per JWKS object. The",
  "sign+recover row is one signature by an ethers Wallet (its own JavaScript secp256k1), `signCryptletResult`'s",
  "check that it is the signer's own, and one recovery with address derivation, as a verifier seeing the key for",
  "the first time does. EIP-712 struct hashes, digests and Merkle nodes are keccak-256 by hash-wasm's WebAssembly",
  "Keccak (runtime/attestation/keccak.ts) over bytes. The Merkle row hashes 256 results, their leaves and the tree",
  "(1,279 keccak-f permutations for 256 results) and reads every proof, in the layout of OpenZeppelin's",
  "StandardMerkleTree. The token rows sign",
  "through a local P-256 key (no Key Vault round trip): a token per result, and one batch token over 256 results",
  '(docs/proof-bundle.md, "Batch attestation token": its Merkle tree and every result\'s proof included).',
  `Load average (1 min) ${loadBefore.toFixed(1)} when the run started and ${loadavg()[0]!.toFixed(1)} when it ended, on this`,
  "machine's cores (other work shares them; figures vary).",
  "",
  "| operation | per second | mean ms | p99 ms |",
  "| --- | ---: | ---: | ---: |",
  ...rows,
  "",
  tokenLine(),
  "",
  "Targets (issue 14), read off the rows above by the script:",
  "",
  ...targets(),
].join("\n");
console.log(markdown);
writeBenchSection(
  "proofs",
  "Proofs: sealing, opening, bundle verification, EIP-712 signing, Merkle batches",
  "npm run bench:proofs",
  markdown,
);
