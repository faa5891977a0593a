/**
 * Sign-a-digest primitives (shared by the emulator and LocalKeyProvider) cross-checked against Node's own
 * hash-then-sign implementations of the same standards (RFC 8017 PKCS#1 v1.5 and PSS, ECDSA P-256 and secp256k1).
 */
import { constants, createHash, generateKeyPairSync, sign, verify } from "node:crypto";
import { signDigest, verifyDigest } from "../../runtime/keys/digestSignature.ts";

const message = Buffer.from("Cryptlet digest signature");
const digest = createHash("sha256").update(message).digest();
const otherDigest = createHash("sha256").update("another message").digest();
const PSS = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 };

describe.each([2048, 3072])("RSA %i", (modulusLength) => {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength });
  const privateJwk = privateKey.export({ format: "jwk" });
  const publicJwk = publicKey.export({ format: "jwk" });

  it("RS256: ours verifies with Node, Node's verifies with ours, a wrong digest fails", () => {
    const ours = signDigest(privateJwk, "RS256", digest);
    expect(ours.length).toBe(modulusLength / 8);
    expect(verify("sha256", message, publicKey, ours)).toBe(true);
    expect(verifyDigest(publicJwk, "RS256", digest, sign("sha256", message, privateKey))).toBe(true);
    expect(verifyDigest(publicJwk, "RS256", otherDigest, ours)).toBe(false);
  });

  it("PS256 (MGF1-SHA-256, 32-byte salt): ours verifies with Node, Node's with ours, a wrong digest fails", () => {
    const ours = signDigest(privateJwk, "PS256", digest);
    expect(verify("sha256", message, { key: publicKey, ...PSS }, ours)).toBe(true);
    expect(verifyDigest(publicJwk, "PS256", digest, sign("sha256", message, { key: privateKey, ...PSS }))).toBe(true);
    expect(verifyDigest(publicJwk, "PS256", otherDigest, ours)).toBe(false);
    expect(Buffer.from(signDigest(privateJwk, "PS256", digest))).not.toEqual(Buffer.from(ours));
  });
});

describe.each([
  ["ES256", "P-256"],
  ["ES256K", "secp256k1"],
] as const)("%s", (alg, namedCurve) => {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve });
  const privateJwk = privateKey.export({ format: "jwk" });
  const publicJwk = publicKey.export({ format: "jwk" });

  it("raw r||s: ours verifies with Node (ieee-p1363), Node's with ours, a wrong digest or key fails", () => {
    const ours = signDigest(privateJwk, alg, digest);
    expect(ours.length).toBe(64);
    expect(verify("sha256", message, { key: publicKey, dsaEncoding: "ieee-p1363" }, ours)).toBe(true);
    expect(
      verifyDigest(publicJwk, alg, digest, sign("sha256", message, { key: privateKey, dsaEncoding: "ieee-p1363" })),
    ).toBe(true);
    expect(verifyDigest(publicJwk, alg, otherDigest, ours)).toBe(false);
    const stranger = generateKeyPairSync("ec", { namedCurve }).publicKey.export({ format: "jwk" });
    expect(verifyDigest(stranger, alg, digest, ours)).toBe(false);
  });

  it("accepts Key Vault's curve name and refuses bad digests and mismatched algorithms", () => {
    const kvName = { ...privateJwk, crv: namedCurve === "secp256k1" ? "P-256K" : "P-256" };
    expect(verifyDigest(publicJwk, alg, digest, signDigest(kvName, alg, digest))).toBe(true);
    expect(() => signDigest(privateJwk, alg, digest.subarray(1))).toThrow(TypeError);
    expect(() => signDigest(privateJwk, alg === "ES256" ? "ES256K" : "ES256", digest)).toThrow(TypeError);
    expect(() => signDigest(privateJwk, "RS256", digest)).toThrow(TypeError);
  });
});
