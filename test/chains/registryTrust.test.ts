import { id } from "ethers";

import { readRegistryTrust, verifyOptionsOf } from "../../runtime/chains/registryTrust.ts";
import { isCryptletError } from "../../runtime/errors.ts";
import { CONSORTIUM_ID, cryptletIdOf, deployStack, testWallets, type CryptletStack } from "../support/contracts.ts";

const CRYPTLET = cryptletIdOf("@test/trust");
const CODE_V1 = id("code-v1");
const CODE_V2 = id("code-v2");

describe("trust material read from a CryptletRegistry", () => {
  let s: CryptletStack;
  beforeAll(async () => {
    s = await deployStack(3, 2);
  });

  test("signers, their members, threshold and approvals as the registry holds them, at the block asked for", async () => {
    await (await s.registry.setSignerMember(s.signers[0]!.address, "globex")).wait();
    const before = await readRegistryTrust(s.admin, await s.registry.getAddress(), { cryptletIds: [CRYPTLET] });
    // Compared with what the test deployed, not with what the reader computes.
    expect(before.signers).toEqual(s.signers.map((w) => w.address).sort());
    expect(before.threshold).toBe(2);
    expect(before.consortiumId).toBe(CONSORTIUM_ID.toLowerCase());
    expect(before.approvedCodeHashes[CRYPTLET.toLowerCase()]).toEqual([]);
    expect(before.signerMembers).toEqual({ [s.signers[0]!.address]: "globex" });

    await (await s.registry.approveCodeHash(CRYPTLET, CODE_V1)).wait();
    await (await s.registry.approveCodeHash(CRYPTLET, CODE_V2)).wait();
    const [extra] = testWallets(4).slice(3);
    await (await s.registry.rotateSigner(s.signers[0]!.address, extra!.address)).wait();
    await (await s.registry.setThreshold(3)).wait();
    await (await s.registry.setSignerMember(s.signers[1]!.address, "acme")).wait();
    const after = await readRegistryTrust(s.admin, await s.registry.getAddress(), { cryptletIds: [CRYPTLET] });
    expect(after.signers).toEqual([s.signers[1]!.address, s.signers[2]!.address, extra!.address].sort());
    expect(after.threshold).toBe(3);
    expect(after.approvedCodeHashes[CRYPTLET.toLowerCase()]).toEqual([CODE_V1, CODE_V2].sort());
    expect(after.blockNumber).toBeGreaterThan(before.blockNumber);
    // The rotated key keeps its member; names are read at the same block as the signers.
    expect(after.signerMembers).toEqual({ [extra!.address]: "globex", [s.signers[1]!.address]: "acme" });

    // The state at the earlier block is still what it was then.
    const then = await readRegistryTrust(s.admin, await s.registry.getAddress(), {
      cryptletIds: [CRYPTLET],
      blockTag: before.blockNumber,
    });
    expect(then).toEqual(before);

    expect(verifyOptionsOf(after, CRYPTLET)).toEqual({
      trustedSigners: after.signers,
      threshold: 3,
      consortiumId: CONSORTIUM_ID.toLowerCase(),
      approvedCodeHashes: [CODE_V1, CODE_V2].sort(),
      signerMembers: after.signerMembers,
    });
    expect(() => verifyOptionsOf(after, cryptletIdOf("@test/other"))).toThrow(/approvals of/);
  });

  test("an address without a registry is a typed error, not an empty trust set", async () => {
    const error = await readRegistryTrust(s.admin, s.signers[0]!.address).catch((e: unknown) => e);
    expect(isCryptletError(error, "ERR_REGISTRY_TRUST_UNAVAILABLE")).toBe(true);
  });
});
