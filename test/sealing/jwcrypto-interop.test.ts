/**
 * Interop with an independent JOSE implementation (python3-jwcrypto, Debian package, run with /usr/bin/python3):
 * Python opens our JWE for each party key type and verifies our attestation JWS; we open Python's JWE.
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

import { exportJWK, generateKeyPair, type JWK } from "jose";
import { keccak256, toUtf8Bytes } from "ethers";

import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import { buildJwks, createAttestationToken } from "../../runtime/attestation/token.ts";
import { open } from "../../runtime/sealing/open.ts";
import { partyKid, seal, type SealingParty } from "../../runtime/sealing/seal.ts";
import { generateLocalP256 } from "../attestation/localKeys.ts";

const script = fileURLToPath(new URL("./jwcrypto_interop.py", import.meta.url));

function python<T>(request: unknown): T {
  const out = execFileSync("/usr/bin/python3", [script], {
    input: JSON.stringify(request),
    encoding: "utf8",
    timeout: 20_000,
    stdio: ["pipe", "pipe", "pipe"],
  });
  return JSON.parse(out) as T;
}

interface Keys {
  party: SealingParty;
  privateJwk: JWK;
}
const parties: Keys[] = [];
beforeAll(async () => {
  for (const [name, alg, opts] of [
    ["P-256", "ECDH-ES+A256KW", { crv: "P-256" }],
    ["X25519", "ECDH-ES+A256KW", { crv: "X25519" }],
    ["RSA-2048", "RSA-OAEP-256", { modulusLength: 2048 }],
  ] as const) {
    const { publicKey, privateKey } = await generateKeyPair(alg, { ...opts, extractable: true });
    parties.push({ party: { name, jwk: await exportJWK(publicKey) }, privateJwk: await exportJWK(privateKey) });
  }
});

const plaintext = JSON.stringify({ answer: "227124622660", decimals: 8, observedAt: 1704412800, note: "ünïcødé" });

describe("jwcrypto interop", () => {
  it("jwcrypto opens our JWE with each party's key (P-256, X25519, RSA-2048)", async () => {
    const jwe = await seal(
      plaintext,
      parties.map((p) => p.party),
    );
    const answer = python<{ plaintexts: string[] }>({
      op: "open",
      jwe: JSON.stringify(jwe),
      keys: parties.map((p) => p.privateJwk),
    });
    expect(answer.plaintexts).toEqual([plaintext, plaintext, plaintext]);
  });

  it("we open jwcrypto's General JSON JWE with each party's key", async () => {
    const recipients = await Promise.all(
      parties.map(async (p) => ({
        jwk: p.party.jwk,
        alg: p.party.jwk.kty === "RSA" ? "RSA-OAEP-256" : "ECDH-ES+A256KW",
        kid: await partyKid(p.party),
      })),
    );
    const { jwe } = python<{ jwe: string }>({ op: "seal", plaintext, recipients });
    expect(JSON.parse(jwe)).toHaveProperty("recipients");
    for (const p of parties) expect(new TextDecoder().decode(await open(jwe, p.privateJwk))).toBe(plaintext);
  });

  it("jwcrypto verifies our attestation token (ES256 signed through a key provider)", async () => {
    const provider = generateLocalP256("attestation").provider;
    const h = (s: string): Hex32 => keccak256(toUtf8Bytes(s)) as Hex32;
    const token = await createAttestationToken(provider, {
      issuer: "runtime-test-1",
      cryptletId: h("c"),
      codeHash: h("code"),
      resultId: h("r"),
      consortiumId: h("consortium"),
      inputHash: h("input"),
      outputHash: h("output"),
      evidenceHash: h("evidence"),
      runtime: { version: "0.1.0", buildHash: h("b") },
      sandbox: {
        engine: "isolated-vm",
        engineVersion: "7.0.1+v8.13.6.233.17-node.53",
        limits: { memoryBytes: 1 << 26, wallTimeMs: 1000, outputBytes: 65536 },
      },
    });
    const [jwk] = (await buildJwks([provider])).keys;
    const answer = python<{ header: Record<string, unknown>; claims: Record<string, unknown> }>({
      op: "verify",
      token,
      jwk,
    });
    expect(answer.header).toMatchObject({ alg: "ES256", kid: jwk!.kid });
    expect(answer.claims).toMatchObject({ codeHash: h("code"), resultId: h("r") });
    // A token whose payload was altered fails in jwcrypto too.
    const [head, , sig] = token.split(".");
    const forged = `${head}.${Buffer.from(JSON.stringify({ codeHash: h("evil") })).toString("base64url")}.${sig}`;
    expect(() => python({ op: "verify", token: forged, jwk })).toThrow();
  });
});
