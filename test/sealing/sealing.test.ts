import { generateKeyPairSync } from "node:crypto";

import { exportJWK, generateKeyPair, type GeneralJWE, type JWK } from "jose";

import { isCryptletError } from "../../runtime/errors.ts";
import { open } from "../../runtime/sealing/open.ts";
import { partyKid, recipientsOf, seal, type SealingParty } from "../../runtime/sealing/seal.ts";

interface PartyKeys {
  party: SealingParty;
  privateJwk: JWK;
}

async function makeParty(name: string, alg: string, opts: Record<string, unknown>): Promise<PartyKeys> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { ...opts, extractable: true });
  return { party: { name, jwk: await exportJWK(publicKey) }, privateJwk: await exportJWK(privateKey) };
}

let p256: PartyKeys;
let x25519: PartyKeys;
let rsa: PartyKeys;
let outsider: PartyKeys;
beforeAll(async () => {
  p256 = await makeParty("Contoso (P-256)", "ECDH-ES+A256KW", { crv: "P-256" });
  x25519 = await makeParty("Fabrikam (X25519)", "ECDH-ES+A256KW", { crv: "X25519" });
  rsa = await makeParty("Northwind (RSA-2048)", "RSA-OAEP-256", { modulusLength: 2048 });
  outsider = await makeParty("Outsider", "ECDH-ES+A256KW", { crv: "P-256" });
});

const secret = JSON.stringify({ answer: "227124622660", note: "TOP-SECRET-PLAINTEXT-MARKER" });

async function expectCode(p: Promise<unknown>, code: string): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    expect(isCryptletError(e, code)).toBe(true);
    return e;
  }
  throw new Error(`expected ${code}`);
}

describe("seal", () => {
  let jwe: GeneralJWE;
  beforeAll(async () => {
    jwe = await seal(secret, [p256.party, x25519.party, rsa.party]);
  });

  it("writes General JSON with A256GCM and one recipient per party (alg by key type, kid = thumbprint)", async () => {
    expect(JSON.parse(Buffer.from(jwe.protected!, "base64url").toString())).toEqual({ enc: "A256GCM" });
    expect(jwe.recipients.map((r) => r.header?.alg)).toEqual(["ECDH-ES+A256KW", "ECDH-ES+A256KW", "RSA-OAEP-256"]);
    expect(recipientsOf(jwe)).toEqual([
      await partyKid(p256.party),
      await partyKid(x25519.party),
      await partyKid(rsa.party),
    ]);
    expect(recipientsOf(JSON.stringify(jwe))).toHaveLength(3);
    expect(jwe.recipients[0]!.header!.epk).toMatchObject({ kty: "EC", crv: "P-256" });
    expect(jwe.recipients[1]!.header!.epk).toMatchObject({ kty: "OKP", crv: "X25519" });
    expect(JSON.stringify(jwe)).not.toContain("TOP-SECRET");
  });

  it("opens for each party, from the object or its JSON text", async () => {
    for (const keys of [p256, x25519, rsa]) {
      expect(new TextDecoder().decode(await open(jwe, keys.privateJwk))).toBe(secret);
    }
    expect(new TextDecoder().decode(await open(JSON.stringify(jwe), rsa.privateJwk))).toBe(secret);
  });

  it("uses the party JWK's own kid when it has one, and seals bytes as given", async () => {
    const bytes = new Uint8Array([0, 1, 2, 255]);
    const sealed = await seal(bytes, [{ ...p256.party, jwk: { ...p256.party.jwk, kid: "contoso-2024" } }]);
    expect(recipientsOf(sealed)).toEqual(["contoso-2024"]);
    expect(await open(sealed, p256.privateJwk)).toEqual(bytes);
  });

  it("refuses a key that is not a recipient with ERR_NOT_A_RECIPIENT and no detail", async () => {
    const e = await expectCode(open(jwe, outsider.privateJwk), "ERR_NOT_A_RECIPIENT");
    expect(JSON.stringify((e as { toJSON(): unknown }).toJSON())).not.toContain("TOP-SECRET");
    expect((e as { details?: unknown }).details).toBeUndefined();
  });

  it("refuses tampered ciphertext, tag or protected header with ERR_NOT_A_RECIPIENT", async () => {
    const flip = (s: string): string => (s[0] === "A" ? "B" : "A") + s.slice(1);
    await expectCode(open({ ...jwe, ciphertext: flip(jwe.ciphertext) }, p256.privateJwk), "ERR_NOT_A_RECIPIENT");
    await expectCode(open({ ...jwe, tag: flip(jwe.tag!) }, x25519.privateJwk), "ERR_NOT_A_RECIPIENT");
    const otherProtected = Buffer.from(JSON.stringify({ enc: "A256GCM", zip: undefined, x: 1 })).toString("base64url");
    await expectCode(open({ ...jwe, protected: otherProtected }, rsa.privateJwk), "ERR_NOT_A_RECIPIENT");
  });

  it("refuses malformed JWEs with ERR_JWE_INVALID", async () => {
    await expectCode(open("{not json", p256.privateJwk), "ERR_JWE_INVALID");
    await expectCode(open({ ...jwe, recipients: [] }, p256.privateJwk), "ERR_JWE_INVALID");
    await expectCode(open({ recipients: jwe.recipients }, p256.privateJwk), "ERR_JWE_INVALID");
    await expectCode(open(null, p256.privateJwk), "ERR_JWE_INVALID");
    expect(() => recipientsOf({})).toThrow(expect.objectContaining({ code: "ERR_JWE_INVALID" }));
  });

  it("restricts algorithms when asked", async () => {
    await expectCode(open(jwe, rsa.privateJwk, { keyManagementAlgorithms: ["ECDH-ES+A256KW"] }), "ERR_NOT_A_RECIPIENT");
    await expect(open(jwe, rsa.privateJwk, { contentEncryptionAlgorithms: ["A256GCM"] })).resolves.toBeDefined();
  });
});

describe("seal: party validation", () => {
  it.each([
    ["no parties", async () => []],
    ["a private key", async () => [{ name: "leaky", jwk: p256.privateJwk }]],
    [
      "RSA-1024",
      async () => [
        {
          name: "weak",
          jwk: generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({ format: "jwk" }) as JWK,
        },
      ],
    ],
    ["P-384", async () => [(await makeParty("p384", "ECDH-ES+A256KW", { crv: "P-384" })).party]],
    [
      "Ed25519",
      async () => [
        { name: "ed", jwk: { kty: "OKP", crv: "Ed25519", x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" } },
      ],
    ],
    ["duplicate kids", async () => [p256.party, { ...p256.party, name: "again" }]],
  ])("refuses %s with ERR_SEALING_PARTY_INVALID", async (_label, parties) => {
    await expectCode(seal("x", await parties()), "ERR_SEALING_PARTY_INVALID");
  });
});
