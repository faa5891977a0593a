/** RFC 7520 §5.4 and §5.13 (the recipients jose supports) decrypt through our `open`. */
import { readFileSync } from "node:fs";

import type { JWK } from "jose";

import { open } from "../../runtime/sealing/open.ts";
import { recipientsOf } from "../../runtime/sealing/seal.ts";

interface Example {
  input: { plaintext: string; key: JWK | JWK[] };
  output: { json: Record<string, unknown> };
}
const load = (name: string): Example =>
  JSON.parse(readFileSync(new URL(`../vectors/rfc7520/${name}`, import.meta.url), "utf8")) as Example;

describe("RFC 7520 JWE examples", () => {
  it("§5.4 ECDH-ES+A128KW with A128GCM (P-384) opens to the example plaintext", async () => {
    const ex = load("5_4.json");
    const plaintext = await open(ex.output.json, ex.input.key as JWK);
    expect(new TextDecoder().decode(plaintext)).toBe(ex.input.plaintext);
  });

  it("§5.13 three recipients: the ECDH-ES+A256KW (P-384) and A256GCMKW recipients open it; RSA1_5 is refused", async () => {
    const ex = load("5_13.json");
    const [rsa, ec, oct] = ex.input.key as JWK[];
    expect(recipientsOf(ex.output.json)).toEqual([rsa!.kid, ec!.kid, oct!.kid]);
    for (const key of [ec!, oct!]) {
      expect(new TextDecoder().decode(await open(ex.output.json, key))).toBe(ex.input.plaintext);
    }
    // RSA1_5 (RSAES-PKCS1-v1_5) is not implemented by jose 6 (Bleichenbacher-prone): the RSA party cannot open it.
    await expect(open(ex.output.json, rsa!)).rejects.toMatchObject({ code: "ERR_NOT_A_RECIPIENT" });
  });

  it("§5.4 tampered: a wrong key of the right curve is not a recipient", async () => {
    const ex = load("5_4.json");
    const key = { ...(ex.input.key as JWK) };
    const d = Buffer.from(key.d!, "base64url");
    d[d.length - 1]! ^= 1;
    await expect(open(ex.output.json, { ...key, d: d.toString("base64url") })).rejects.toMatchObject({
      code: "ERR_NOT_A_RECIPIENT",
    });
  });
});
