import { createHash } from "node:crypto";
import { ZeroAddress, ZeroHash, id } from "ethers";

import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import {
  cryptletIdOf,
  deployStack,
  expectCustomError,
  makeResult,
  signResult,
  testWallets,
  toHighS,
  type CryptletStack,
} from "../support/contracts.ts";

const CRYPTLET = cryptletIdOf("@test/registry");
const CODE_V1 = id("code-v1") as Hex32;
const CODE_V2 = id("code-v2") as Hex32;

describe("CryptletRegistry governance", () => {
  let s: CryptletStack;
  beforeEach(async () => {
    s = await deployStack(3, 2);
  });

  test("constructor sets signers, threshold and roles, and rejects a bad threshold", async () => {
    expect(await s.registry.signerCount()).toBe(3n);
    expect(await s.registry.threshold()).toBe(2n);
    for (const w of s.signers) expect(await s.registry.isSigner(w.address)).toBe(true);
    expect([...(await s.registry.signers())].sort()).toEqual(s.signers.map((w) => w.address).sort());
    const admin = await s.admin.getAddress();
    for (const role of ["DEFAULT_ADMIN_ROLE", "APPROVER_ROLE", "SIGNER_MANAGER_ROLE"]) {
      expect(await s.registry.hasRole(await s.registry[role](), admin)).toBe(true);
    }
    const factory = await s.ethers.getContractFactory("CryptletRegistry");
    await expectCustomError(
      factory.deploy(ZeroHash, admin, [s.signers[0]!.address], 2),
      s.errors,
      "CryptletRegistryInvalidThreshold",
      [2n, 1n],
    );
    await expectCustomError(factory.deploy(ZeroHash, admin, [], 0), s.errors, "CryptletRegistryInvalidThreshold", [
      0n,
      0n,
    ]);
    await expectCustomError(
      factory.deploy(ZeroHash, admin, [s.signers[0]!.address, s.signers[0]!.address], 1),
      s.errors,
      "CryptletRegistrySignerAlreadyTrusted",
      [s.signers[0]!.address],
    );
    await expectCustomError(factory.deploy(ZeroHash, ZeroAddress, [], 0), s.errors, "CryptletRegistryZeroAddress");
  });

  test("approve several code hashes at once, revoke each on its own, with events", async () => {
    const admin = await s.admin.getAddress();
    const tx = await s.registry.approveCodeHash(CRYPTLET, CODE_V1);
    const receipt = await tx.wait();
    const log = s.registry.interface.parseLog(receipt.logs[0]);
    expect(log?.name).toBe("CodeHashApproved");
    expect([...log!.args]).toEqual([CRYPTLET, CODE_V1, admin]);
    await (await s.registry.approveCodeHash(CRYPTLET, CODE_V2)).wait();
    expect(await s.registry.isApproved(CRYPTLET, CODE_V1)).toBe(true);
    expect(await s.registry.isApproved(CRYPTLET, CODE_V2)).toBe(true);
    expect(await s.registry.approvedCount(CRYPTLET)).toBe(2n);
    expect([...(await s.registry.approvedCodeHashes(CRYPTLET))].sort()).toEqual([CODE_V1, CODE_V2].sort());

    const revoke = await (await s.registry.revokeCodeHash(CRYPTLET, CODE_V1)).wait();
    expect(s.registry.interface.parseLog(revoke.logs[0])?.name).toBe("CodeHashRevoked");
    expect(await s.registry.isApproved(CRYPTLET, CODE_V1)).toBe(false);
    expect(await s.registry.isApproved(CRYPTLET, CODE_V2)).toBe(true);
    expect(await s.registry.approvedCount(CRYPTLET)).toBe(1n);
    expect([...(await s.registry.approvedCodeHashes(CRYPTLET))]).toEqual([CODE_V2]);
    expect([...(await s.registry.approvedCodeHashes(id("unknown")))]).toEqual([]);

    await expectCustomError(
      s.registry.approveCodeHash(CRYPTLET, CODE_V2),
      s.errors,
      "CryptletRegistryCodeHashAlreadyApproved",
      [CRYPTLET, CODE_V2],
    );
    await expectCustomError(
      s.registry.revokeCodeHash(CRYPTLET, CODE_V1),
      s.errors,
      "CryptletRegistryCodeHashNotApproved",
      [CRYPTLET, CODE_V1],
    );
    await expectCustomError(s.registry.approveCodeHash(CRYPTLET, ZeroHash), s.errors, "CryptletRegistryZeroCodeHash", [
      CRYPTLET,
    ]);
  });

  test("only role holders govern", async () => {
    const outsider = s.others[0]!;
    const outsiderAddress = await outsider.getAddress();
    const asOutsider = s.registry.connect(outsider) as typeof s.registry;
    const approver = await s.registry.APPROVER_ROLE();
    const manager = await s.registry.SIGNER_MANAGER_ROLE();
    await expectCustomError(
      asOutsider.approveCodeHash(CRYPTLET, CODE_V1),
      s.errors,
      "AccessControlUnauthorizedAccount",
      [outsiderAddress, approver],
    );
    await expectCustomError(asOutsider.addSigner(outsiderAddress), s.errors, "AccessControlUnauthorizedAccount", [
      outsiderAddress,
      manager,
    ]);
    await expectCustomError(asOutsider.setThreshold(1), s.errors, "AccessControlUnauthorizedAccount", [
      outsiderAddress,
      manager,
    ]);
    // Granting the approver role is enough to approve, not to manage signers.
    await (await s.registry.grantRole(approver, outsiderAddress)).wait();
    await (await asOutsider.approveCodeHash(CRYPTLET, CODE_V1)).wait();
    expect(await s.registry.isApproved(CRYPTLET, CODE_V1)).toBe(true);
    await expectCustomError(
      asOutsider.removeSigner(s.signers[0]!.address),
      s.errors,
      "AccessControlUnauthorizedAccount",
    );
  });

  test("signers: add, remove, rotate, threshold bounds", async () => {
    const [extra, replacement] = testWallets(5).slice(3);
    const added = await (await s.registry.addSigner(extra!.address)).wait();
    expect(s.registry.interface.parseLog(added.logs[0])?.name).toBe("SignerAdded");
    expect(await s.registry.signerCount()).toBe(4n);
    await expectCustomError(s.registry.addSigner(extra!.address), s.errors, "CryptletRegistrySignerAlreadyTrusted", [
      extra!.address,
    ]);
    await expectCustomError(s.registry.addSigner(ZeroAddress), s.errors, "CryptletRegistryZeroAddress");

    const rotated = await (await s.registry.rotateSigner(extra!.address, replacement!.address)).wait();
    expect(rotated.logs.map((l: never) => s.registry.interface.parseLog(l)?.name)).toEqual([
      "SignerRemoved",
      "SignerAdded",
    ]);
    expect(await s.registry.isSigner(extra!.address)).toBe(false);
    expect(await s.registry.isSigner(replacement!.address)).toBe(true);
    expect(await s.registry.signerCount()).toBe(4n);
    expect([...(await s.registry.signers())].sort()).toEqual(
      [...s.signers.map((w) => w.address), replacement!.address].sort(),
    );
    await expectCustomError(s.registry.removeSigner(extra!.address), s.errors, "CryptletRegistrySignerNotTrusted", [
      extra!.address,
    ]);

    const changed = await (await s.registry.setThreshold(4)).wait();
    const log = s.registry.interface.parseLog(changed.logs[0]);
    expect(log?.name).toBe("ThresholdChanged");
    expect([log!.args[0], log!.args[1]]).toEqual([2n, 4n]);
    // Removing a signer would leave 3 < M = 4.
    await expectCustomError(
      s.registry.removeSigner(replacement!.address),
      s.errors,
      "CryptletRegistryInvalidThreshold",
      [4n, 3n],
    );
    await expectCustomError(s.registry.setThreshold(5), s.errors, "CryptletRegistryInvalidThreshold", [5n, 4n]);
    await expectCustomError(s.registry.setThreshold(0), s.errors, "CryptletRegistryInvalidThreshold", [0n, 4n]);
    await (await s.registry.setThreshold(3)).wait();
    await (await s.registry.removeSigner(replacement!.address)).wait();
    expect(await s.registry.signerCount()).toBe(3n);
  });
});

describe("CryptletRegistry attestation keys", () => {
  test("the admin publishes the JWKS's URI and SHA-256; others cannot; empty or zero values revert", async () => {
    const s = await deployStack(3, 2);
    expect([...(await s.registry.attestationKeys())]).toEqual(["", ZeroHash]);
    const jwks = '{"keys":[]}\n';
    const digest = `0x${createHash("sha256").update(jwks).digest("hex")}`;
    const published = await (
      await s.registry.publishAttestationKeys("https://keys.example.org/jwks.json", digest)
    ).wait();
    const event = s.registry.interface.parseLog(published.logs[0]);
    expect(event?.name).toBe("AttestationKeysPublished");
    expect([...event!.args]).toEqual(["https://keys.example.org/jwks.json", digest]);
    expect([...(await s.registry.attestationKeys())]).toEqual(["https://keys.example.org/jwks.json", digest]);
    await expectCustomError(
      s.registry.publishAttestationKeys("", digest),
      s.errors,
      "CryptletRegistryInvalidAttestationKeys",
    );
    await expectCustomError(
      s.registry.publishAttestationKeys("https://x", ZeroHash),
      s.errors,
      "CryptletRegistryInvalidAttestationKeys",
    );
    await expectCustomError(
      s.registry.publishAttestationKeys("x".repeat(2049), digest),
      s.errors,
      "CryptletRegistryInvalidAttestationKeys",
    );
    const outsider = s.others[0]!;
    await expectCustomError(
      (s.registry.connect(outsider) as typeof s.registry).publishAttestationKeys("https://evil", digest),
      s.errors,
      "AccessControlUnauthorizedAccount",
    );
  });
});

describe("CryptletRegistry signer members", () => {
  test("the signer manager names each trusted signer's member; a rotation keeps it, a removal clears it", async () => {
    const s = await deployStack(3, 2);
    const [a, b] = s.signers;
    const admin = await s.admin.getAddress();
    expect(await s.registry.signerMember(a!.address)).toBe("");
    const named = await (await s.registry.setSignerMember(a!.address, "acme")).wait();
    const event = s.registry.interface.parseLog(named.logs[0]);
    expect(event?.name).toBe("SignerMemberSet");
    expect([...event!.args]).toEqual([a!.address, "acme", admin]);
    expect(await s.registry.signerMember(a!.address)).toBe("acme");
    expect(await s.registry.signerMember(b!.address)).toBe("");

    // Bad input: an untrusted signer, an empty or over-long member id; an outsider.
    const stranger = testWallets(6)[5]!;
    await expectCustomError(
      s.registry.setSignerMember(stranger.address, "acme"),
      s.errors,
      "CryptletRegistrySignerNotTrusted",
      [stranger.address],
    );
    await expectCustomError(s.registry.setSignerMember(b!.address, ""), s.errors, "CryptletRegistryInvalidMemberId", [
      0n,
    ]);
    await expectCustomError(
      s.registry.setSignerMember(b!.address, "m".repeat(65)),
      s.errors,
      "CryptletRegistryInvalidMemberId",
      [65n],
    );
    await (await s.registry.setSignerMember(b!.address, "m".repeat(64))).wait();
    const outsider = s.others[0]!;
    await expectCustomError(
      (s.registry.connect(outsider) as typeof s.registry).setSignerMember(a!.address, "evil"),
      s.errors,
      "AccessControlUnauthorizedAccount",
      [await outsider.getAddress(), await s.registry.SIGNER_MANAGER_ROLE()],
    );

    // A key rotation keeps the member; a removal clears the name (a later re-add is unnamed).
    const rotated = await (await s.registry.rotateSigner(a!.address, stranger.address)).wait();
    expect(rotated.logs.map((l: never) => s.registry.interface.parseLog(l)?.name)).toEqual([
      "SignerRemoved",
      "SignerAdded",
      "SignerMemberSet",
    ]);
    expect(await s.registry.signerMember(stranger.address)).toBe("acme");
    expect(await s.registry.signerMember(a!.address)).toBe("");
    await (await s.registry.removeSigner(stranger.address)).wait();
    expect(await s.registry.signerMember(stranger.address)).toBe("");
    await (await s.registry.addSigner(stranger.address)).wait();
    expect(await s.registry.signerMember(stranger.address)).toBe("");
  });
});

describe("CryptletRegistry proof verification (M of N)", () => {
  let s: CryptletStack;
  const result = makeResult(CRYPTLET, id("request") as Hex32, CODE_V1, "0xabcdef");
  beforeAll(async () => {
    s = await deployStack(3, 2);
    await (await s.registry.approveCodeHash(CRYPTLET, CODE_V1)).wait();
  });

  test("M distinct trusted signatures, in any order, verify", async () => {
    const [a, b, c] = await signResult(s.signers, result);
    await expect(s.registry.verifyResultProof(result, [a, b])).resolves.toBeDefined();
    await expect(s.registry.verifyResultProof(result, [c, a])).resolves.toBeDefined();
    await expect(s.registry.verifyResultProof(result, [b, c, a])).resolves.toBeDefined();
  });

  test("fewer than M signatures", async () => {
    const [a] = await signResult(s.signers, result);
    await expectCustomError(s.registry.verifyResultProof(result, [a]), s.errors, "CryptletProofThresholdNotMet", [
      1n,
      2n,
    ]);
    await expectCustomError(s.registry.verifyResultProof(result, []), s.errors, "CryptletProofThresholdNotMet", [
      0n,
      2n,
    ]);
  });

  test("a duplicate signer counts once and is rejected", async () => {
    const [a, b] = await signResult(s.signers, result);
    await expectCustomError(s.registry.verifyResultProof(result, [a, a]), s.errors, "CryptletProofDuplicateSigner", [
      1n,
      s.signers[0]!.address,
    ]);
    await expectCustomError(s.registry.verifyResultProof(result, [b, a, b]), s.errors, "CryptletProofDuplicateSigner", [
      2n,
      s.signers[1]!.address,
    ]);
  });

  test("an untrusted signer is rejected", async () => {
    const [a] = await signResult(s.signers, result);
    const [stranger] = testWallets(7).slice(6);
    const [x] = await signResult([stranger!], result);
    await expectCustomError(s.registry.verifyResultProof(result, [a, x]), s.errors, "CryptletProofUntrustedSigner", [
      1n,
      stranger!.address,
    ]);
  });

  test("a signature over another result recovers to an untrusted address", async () => {
    const [a] = await signResult(s.signers, result);
    const [b] = await signResult(s.signers.slice(1), { ...result, outputHash: id("other") as Hex32 });
    await expectCustomError(s.registry.verifyResultProof(result, [a, b]), s.errors, "CryptletProofUntrustedSigner");
  });

  test("high-s and malformed signatures are rejected", async () => {
    const [a, b] = await signResult(s.signers, result);
    const high = toHighS(b!);
    const [index, decodedS] = await expectCustomError(
      s.registry.verifyResultProof(result, [a, high]),
      s.errors,
      "CryptletProofHighS",
    );
    expect(index).toBe(1n);
    expect(decodedS).toBe("0x" + high.slice(66, 130));
    await expectCustomError(
      s.registry.verifyResultProof(result, [a, b!.slice(0, 130)]),
      s.errors,
      "CryptletProofMalformedSignature",
      [1n],
    );
    const badV = b!.slice(0, 130) + "1d"; // v = 29
    await expectCustomError(
      s.registry.verifyResultProof(result, [a, badV]),
      s.errors,
      "CryptletProofMalformedSignature",
      [1n],
    );
  });

  test("an unapproved code hash is rejected before any signature is checked", async () => {
    const unapproved = { ...result, codeHash: CODE_V2 };
    const signatures = await signResult(s.signers, unapproved);
    await expectCustomError(
      s.registry.verifyResultProof(unapproved, signatures),
      s.errors,
      "CryptletProofCodeHashNotApproved",
      [CRYPTLET, CODE_V2],
    );
  });

  test("a result signed for another consortium does not verify", async () => {
    const signatures = await signResult(s.signers, result, id("other-consortium") as Hex32);
    await expectCustomError(s.registry.verifyResultProof(result, signatures), s.errors, "CryptletProofUntrustedSigner");
  });
});
