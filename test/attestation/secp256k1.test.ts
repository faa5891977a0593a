import fc from "fast-check";
import { Signature, SigningKey, Wallet, getBytes, hexlify, recoverAddress } from "ethers";

import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import {
  forgetPublicKeys,
  recoversToKnownKey,
  rememberPublicKey,
  type SignatureParts,
} from "../../runtime/attestation/secp256k1.ts";
import { evaluateSignatures, recoverDigestSigner } from "../../runtime/attestation/signing.ts";

// The independent reference: ethers' `recoverAddress` (its own bundled copy of an older @noble/curves, its own
// keccak and EIP-55 checksum).
const reference = (digest: string, signature: string): string | "unrecoverable" => {
  try {
    return recoverAddress(digest, signature);
  } catch {
    return "unrecoverable";
  }
};
const ours = (digest: string, signature: string): string => {
  try {
    return recoverDigestSigner(digest as Hex32, signature);
  } catch (e) {
    return (e as { details?: { reason?: string } }).details?.reason ?? String(e);
  }
};
const partsOf = (signature: string): SignatureParts => {
  const sig = Signature.from(signature);
  return { r: BigInt(sig.r), s: BigInt(sig.s), recovery: sig.yParity };
};
const flipV = (signature: string): string => signature.slice(0, 130) + (signature.endsWith("1b") ? "1c" : "1b");

const keys = Array.from({ length: 4 }, () => new SigningKey(hexlify(Wallet.createRandom().privateKey)));
const addressOf = (key: SigningKey) => new Wallet(key).address;
const digest = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => hexlify(b));
const keyIndex = fc.integer({ min: 0, max: keys.length - 1 });

afterEach(() => forgetPublicKeys());

describe("secp256k1 recovery with @noble/curves 1.9", () => {
  test("recoverDigestSigner equals ethers' recoverAddress, for the signature and with v flipped", () => {
    fc.assert(
      fc.property(digest, keyIndex, (d, k) => {
        const signature = keys[k]!.sign(d).serialized;
        expect(ours(d, signature)).toBe(addressOf(keys[k]!));
        expect(ours(d, signature)).toBe(reference(d, signature));
        expect(ours(d, flipV(signature))).toBe(reference(d, flipV(signature)));
      }),
      { numRuns: 40 },
    );
  });

  test("an r that is no curve point's x is unrecoverable, as for ethers", () => {
    // x = 5 has no y on secp256k1 (5³ + 7 = 132 is not a square mod p); x = 1 has one.
    const d = hexlify(new Uint8Array(32).fill(7));
    const sig = (r: number) => `0x${r.toString(16).padStart(64, "0")}${"01".padStart(64, "0")}1b`;
    expect(reference(d, sig(5))).toBe("unrecoverable");
    expect(ours(d, sig(5))).toBe("unrecoverable");
    expect(ours(d, sig(1))).toBe(reference(d, sig(1)));
  });

  test("the check against a remembered key agrees with recovery (ethers) on genuine and altered signatures", () => {
    keys.forEach((key) => rememberPublicKey(key.publicKey));
    fc.assert(
      fc.property(digest, digest, keyIndex, keyIndex, fc.boolean(), (d, other, signerIndex, claimIndex, flip) => {
        let signature = keys[signerIndex]!.sign(d).serialized;
        if (flip) signature = flipV(signature);
        const claimed = addressOf(keys[claimIndex]!);
        for (const message of [d, other]) {
          const expected = reference(message, signature) === claimed;
          expect(recoversToKnownKey(getBytes(message), partsOf(signature), claimed)).toBe(expected);
        }
      }),
      { numRuns: 60 },
    );
    expect(recoversToKnownKey(new Uint8Array(32), partsOf(keys[0]!.sign(new Uint8Array(32)).serialized), "0x0")).toBe(
      undefined,
    );
  });

  test("evaluateSignatures gives the same verdicts when the keys are unknown, being learnt, and known", () => {
    const d = hexlify(new Uint8Array(32).fill(9)) as Hex32;
    const [a, b, c] = keys.map(addressOf);
    const signatures = [
      { signer: a!, signature: keys[0]!.sign(d).serialized },
      { signer: b!, signature: flipV(keys[1]!.sign(d).serialized) }, // recovers to someone else
      { signer: c!, signature: keys[2]!.sign(d).serialized }, // not trusted
      { signer: a!, signature: keys[0]!.sign(d).serialized }, // duplicate
      { signer: b!, signature: keys[1]!.sign(d).serialized },
      { signer: a!, signature: keys[1]!.sign(d).serialized }, // b's signature claimed by a
    ];
    const runs = Array.from({ length: 4 }, () => evaluateSignatures(d, signatures, [a!, b!], 2));
    expect(runs[0]!.valid).toEqual([a, b]);
    expect(runs[0]!.rejected.map((r) => [r.index, r.reason])).toEqual([
      [1, "wrong-signer"],
      [2, "untrusted"],
      [3, "duplicate"],
      [5, "wrong-signer"],
    ]);
    expect(runs[0]!.rejected[0]!.signer).toBe(reference(d, signatures[1]!.signature));
    for (const run of runs.slice(1)) expect(run).toEqual(runs[0]);
  });
});
