/**
 * Regenerates test/vectors/proof-bundle/vectors.json (and keys.json on first run) from real signatures, tokens
 * and JWEs. Run: `node test/vectors/proof-bundle/generate.ts` (Node 24, repository root). The keys are TEST KEYS,
 * published on purpose; never use them for anything else.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";

import { Signature, Wallet, keccak256, toUtf8Bytes } from "ethers";
import { exportJWK, generateKeyPair, type JWK } from "jose";

import type { ProofBundle } from "../../../runtime/attestation/bundle.ts";
import { buildJwks } from "../../../runtime/attestation/token.ts";
import { verifyBundle, type VerifyBundleOptions } from "../../../runtime/attestation/verifyBundle.ts";
import { localP256Provider } from "../../attestation/localKeys.ts";
import { CODE_HASH, CONSORTIUM_ID, makeBundle, publicJwk, type FixtureKeys } from "../../verify/bundleFixture.ts";

const dir = new URL("./", import.meta.url);
const keysFile = new URL("keys.json", dir);

interface VectorKeys {
  signers: string[];
  untrustedSigner: string;
  attestation: JWK;
  rotatedAttestation: JWK;
  parties: { name: string; jwk: JWK }[];
  outsider: { name: string; jwk: JWK };
}

async function party(name: string, alg: string, opts: Record<string, unknown>): Promise<{ name: string; jwk: JWK }> {
  const { privateKey } = await generateKeyPair(alg, { ...opts, extractable: true });
  return { name, jwk: await exportJWK(privateKey) };
}

async function loadKeys(): Promise<VectorKeys> {
  if (existsSync(keysFile)) return JSON.parse(readFileSync(keysFile, "utf8")) as VectorKeys;
  const att = async (): Promise<JWK> => exportJWK((await generateKeyPair("ES256", { extractable: true })).privateKey);
  const keys: VectorKeys = {
    signers: [0, 1, 2].map(() => Wallet.createRandom().privateKey),
    untrustedSigner: Wallet.createRandom().privateKey,
    attestation: await att(),
    rotatedAttestation: await att(),
    parties: [
      await party("Contoso Bank (P-256)", "ECDH-ES+A256KW", { crv: "P-256" }),
      await party("Fabrikam Trading (X25519)", "ECDH-ES+A256KW", { crv: "X25519" }),
      await party("Northwind Clearing (RSA-2048)", "RSA-OAEP-256", { modulusLength: 2048 }),
    ],
    outsider: await party("Outsider (P-256)", "ECDH-ES+A256KW", { crv: "P-256" }),
  };
  writeFileSync(
    keysFile,
    `${JSON.stringify({ _comment: "TEST KEYS ONLY, published on purpose.", ...keys }, null, 2)}\n`,
  );
  return keys;
}

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const clone = <T>(v: T): T => structuredClone(v);
function flipHexByte(hex: string, at: number): string {
  const i = 2 + at * 2;
  const byte = (Number.parseInt(hex.slice(i, i + 2), 16) ^ 0x01).toString(16).padStart(2, "0");
  return hex.slice(0, i) + byte + hex.slice(i + 2);
}
function highS(signature: string): string {
  const sig = Signature.from(signature);
  const s = N - BigInt(sig.s);
  const v = sig.v === 27 ? 28 : 27;
  return `${sig.r}${s.toString(16).padStart(64, "0")}${v.toString(16)}`;
}

const keys = await loadKeys();
const attestation = localP256Provider("attestation", keys.attestation);
const rotated = localP256Provider("attestation", keys.rotatedAttestation);
const trustedSigners = keys.signers.map((k) => new Wallet(k).address);
const fixtureKeys: FixtureKeys = {
  signers: keys.signers.slice(0, 2).map((k) => new Wallet(k)),
  attestation,
  parties: keys.parties.map((p) => ({ name: p.name, jwk: publicJwk(p.jwk) })),
};
const jwks = await buildJwks([attestation]);
const now = "2024-01-05T00:10:00Z";
const trust = { trustedSigners, threshold: 2, consortiumId: CONSORTIUM_ID, approvedCodeHashes: [CODE_HASH], jwks, now };
const options = (over: Partial<typeof trust> = {}): VerifyBundleOptions => {
  const t = { ...trust, ...over };
  return { ...t, now: new Date(t.now) };
};

interface Case {
  name: string;
  description: string;
  bundle: unknown;
  optionOverrides?: { now?: string };
}
const cases: Case[] = [];

const publicOne = (await makeBundle(fixtureKeys)).bundle;
cases.push({
  name: "valid-public",
  description: "A public result signed by 2 of 3 trusted signers.",
  bundle: publicOne,
});

const sealedBatched = (await makeBundle(fixtureKeys, { sealed: true, batchSize: 4 })).bundle;
cases.push({
  name: "valid-sealed-batched",
  description: "A sealed result (3 parties: P-256, X25519, RSA-2048) in a Merkle batch of 4, batch signed by 2 of 3.",
  bundle: sealedBatched,
});

const tamperedPayload = clone(publicOne) as ProofBundle;
if (tamperedPayload.payload.public)
  tamperedPayload.payload.public.data = flipHexByte(tamperedPayload.payload.public.data, 31) as `0x${string}`;
cases.push({ name: "tampered-payload", description: "One bit of the ABI payload flipped.", bundle: tamperedPayload });

const tamperedSig = clone(publicOne);
tamperedSig.signatures[0]!.signature = flipHexByte(tamperedSig.signatures[0]!.signature, 5);
cases.push({
  name: "tampered-signature",
  description: "One bit of r of the first signature flipped.",
  bundle: tamperedSig,
});

const highSBundle = clone(publicOne);
highSBundle.signatures[0]!.signature = highS(highSBundle.signatures[0]!.signature);
cases.push({
  name: "high-s-signature",
  description:
    "The first signature replaced by its high-s twin (s' = n - s, v flipped): valid ECDSA, rejected by EIP-2.",
  bundle: highSBundle,
});

const duplicate = clone(publicOne);
duplicate.signatures = [duplicate.signatures[0]!, duplicate.signatures[0]!];
cases.push({
  name: "duplicate-signer",
  description: "The same signature twice: counts once, below the threshold of 2.",
  bundle: duplicate,
});

const untrusted = (
  await makeBundle({ ...fixtureKeys, signers: [new Wallet(keys.signers[0]!), new Wallet(keys.untrustedSigner)] })
).bundle;
cases.push({
  name: "untrusted-signer",
  description: "Signed by one trusted and one untrusted key.",
  bundle: untrusted,
});

const badProof = clone(sealedBatched);
badProof.batch!.proof[0] = keccak256(toUtf8Bytes("not a sibling")) as `0x${string}`;
cases.push({
  name: "tampered-merkle-proof",
  description: "The first sibling hash of the Merkle proof replaced.",
  bundle: badProof,
});

const unapproved = (await makeBundle(fixtureKeys, { codeHash: keccak256(toUtf8Bytes("other build")) as `0x${string}` }))
  .bundle;
cases.push({
  name: "unapproved-code-hash",
  description: "Correctly signed and attested, but for a codeHash not approved.",
  bundle: unapproved,
});

cases.push({
  name: "expired-attestation",
  description: "The valid public bundle verified two days later: the attestation token (24 h) has expired.",
  bundle: publicOne,
  optionOverrides: { now: "2024-01-07T00:10:00Z" },
});

const rotatedBundle = (await makeBundle({ ...fixtureKeys, attestation: rotated })).bundle;
cases.push({
  name: "unknown-attestation-key",
  description: "Attested by a key version that is not in the JWKS (rotated out).",
  bundle: rotatedBundle,
});

const foreignToken = clone(publicOne);
foreignToken.attestation = (await makeBundle(fixtureKeys, { slotTime: 1704412860n })).bundle.attestation;
cases.push({
  name: "attestation-for-another-result",
  description: "A valid token of the same key, but for another resultId.",
  bundle: foreignToken,
});

const notRecipient = clone(sealedBatched);
notRecipient.manifest.parties.push({ name: keys.outsider.name, kid: "outsider-kid" });
cases.push({
  name: "party-not-a-recipient",
  description: "The manifest names a fourth party that is not a JWE recipient.",
  bundle: notRecipient,
});

const wrongRequest = clone(publicOne);
wrongRequest.requestId = keccak256(toUtf8Bytes("another request")) as `0x${string}`;
cases.push({ name: "wrong-request-id", description: "requestId does not give the resultId.", bundle: wrongRequest });

const tamperedEvidence = clone(publicOne);
const evidenceEvent = tamperedEvidence.evidence!.public!.event as { observations: { eth: string }[] };
evidenceEvent.observations[0]!.eth = "2369.7605037562785";
cases.push({
  name: "tampered-evidence",
  description: "One observation in the public evidence's event changed (the token's evidenceHash no longer matches).",
  bundle: tamperedEvidence,
});

const strippedEvidence = clone(publicOne);
delete strippedEvidence.evidence;
cases.push({
  name: "evidence-stripped",
  description: "The evidence removed: still valid offline (evidence is optional), but cannot be re-executed.",
  bundle: strippedEvidence,
});

const schemaBroken = clone(publicOne) as Partial<ProofBundle>;
delete schemaBroken.attestation;
cases.push({ name: "schema-invalid", description: "The attestation member removed.", bundle: schemaBroken });

const out = [];
for (const c of cases) {
  const report = await verifyBundle(c.bundle, options(c.optionOverrides));
  out.push({
    ...c,
    expected: { ok: report.ok, checks: Object.fromEntries(report.checks.map((k) => [k.name, k.verdict])) },
  });
}

const vectors = {
  description:
    "Cryptlet proof bundle (version 1) test vectors: each case gives a bundle, the verifier options (trust, with optionOverrides applied) and the expected verdict of every check. See README.md.",
  trust: { ...trust, jwks },
  cases: out,
};
writeFileSync(new URL("vectors.json", dir), `${JSON.stringify(vectors, null, 2)}\n`);
for (const c of out) console.log(c.name.padEnd(32), c.expected.ok ? "ok  " : "FAIL", JSON.stringify(c.expected.checks));
