import { readFileSync } from "node:fs";
import path from "node:path";

import {
  TypedDataEncoder,
  Wallet,
  ZeroHash,
  id,
  keccak256,
  recoverAddress,
  solidityPackedKeccak256,
  toUtf8Bytes,
} from "ethers";

import {
  CRYPTLET_RESULT_TYPE,
  RESULT_BATCH_TYPE,
  cryptletResultDigest,
  domainSeparator,
  resultBatchDigest,
  type Hex32,
} from "../../runtime/attestation/eip712.ts";
import {
  CONSORTIUM_ID,
  cryptletIdOf,
  deploy,
  deployStack,
  makeResult,
  signResult,
  type AnyContract,
  type CryptletStack,
} from "../support/contracts.ts";

const root = path.resolve(import.meta.dirname, "..", "..");
const vectors = JSON.parse(
  readFileSync(path.join(root, "test", "vectors", "eip712", "eip712_mail_vectors.json"), "utf8"),
) as {
  canonical: {
    typedData: {
      types: Record<string, { name: string; type: string }[]>;
      domain: { name: string; version: string; chainId: number; verifyingContract: string };
      message: { from: { name: string; wallet: string }; to: { name: string; wallet: string }; contents: string };
    };
    expected: Record<string, string> & { signature: { rsv_65_bytes: string } };
  };
  legacy_httpOrigin_variant: {
    domain: Record<string, string | number>;
    expected: { domainSeparator: string; digest_signHash: string; signature: { v: number; r: string; s: string } };
  };
};

describe("EIP-712: the specification's Mail vector", () => {
  const { typedData, expected } = vectors.canonical;
  const { EIP712Domain: _domain, ...types } = typedData.types;
  let stack: CryptletStack;
  let mailExample: AnyContract;

  beforeAll(async () => {
    stack = await deployStack(1, 1);
    mailExample = await deploy(stack.ethers, "Eip712MailExample");
  });

  test("TypeScript reproduces encodeType, type hash, struct hashes, domain separator and digest", () => {
    const encoder = TypedDataEncoder.from(types);
    expect(encoder.encodeType("Mail")).toBe(expected.encodeType_Mail);
    expect(id(encoder.encodeType("Mail"))).toBe(expected.typeHash_Mail);
    expect(encoder.encodeData("Mail", typedData.message)).toBe(expected.encodeData_Mail);
    expect(encoder.hashStruct("Person", typedData.message.from)).toBe(expected.hashStruct_Person_Cow);
    expect(encoder.hashStruct("Mail", typedData.message)).toBe(expected.hashStruct_Mail);
    expect(TypedDataEncoder.hashDomain(typedData.domain)).toBe(expected.domainSeparator);
    expect(TypedDataEncoder.hash(typedData.domain, types, typedData.message)).toBe(expected.digest_signHash);
  });

  test("the key keccak256('cow') signs the vector's signature, and it recovers to the vector's address", async () => {
    const wallet = new Wallet(keccak256(toUtf8Bytes("cow")));
    expect(wallet.privateKey).toBe(expected.signer_privateKey_keccak256_of_ascii_cow);
    expect(wallet.address.toLowerCase()).toBe(expected.signer_address);
    const signature = await wallet.signTypedData(typedData.domain, types, typedData.message);
    expect(signature).toBe(expected.signature.rsv_65_bytes);
    expect(recoverAddress(expected.digest_signHash!, signature).toLowerCase()).toBe(expected.signer_address);
  });

  test("Solidity hashes the same way and recovers the same signer", async () => {
    const d = typedData.domain;
    const separator = await mailExample.domainSeparator(d.name, d.version, d.chainId, d.verifyingContract);
    expect(separator).toBe(expected.domainSeparator);
    expect(await mailExample.hashMail(typedData.message)).toBe(expected.hashStruct_Mail);
    const signer = await mailExample.recoverSigner(separator, typedData.message, expected.signature.rsv_65_bytes);
    expect(signer.toLowerCase()).toBe(expected.signer_address);
  });

  test("the legacy httpOrigin variant does not verify as the canonical domain", async () => {
    const legacy = vectors.legacy_httpOrigin_variant;
    const legacyDomainTypes = {
      EIP712Domain: [
        { name: "name", type: "string" },
        { name: "version", type: "string" },
        { name: "chainId", type: "uint256" },
        { name: "httpOrigin", type: "string" },
        { name: "verifyingContract", type: "address" },
      ],
    };
    // The legacy vector itself is consistent...
    const legacySeparator = TypedDataEncoder.from(legacyDomainTypes).hashStruct("EIP712Domain", legacy.domain);
    expect(legacySeparator).toBe(legacy.expected.domainSeparator);
    expect(
      solidityPackedKeccak256(["bytes2", "bytes32", "bytes32"], ["0x1901", legacySeparator, expected.hashStruct_Mail]),
    ).toBe(legacy.expected.digest_signHash);
    const { r, s, v } = legacy.expected.signature;
    const legacySignature = r + s.slice(2) + v.toString(16);
    expect(recoverAddress(legacy.expected.digest_signHash, legacySignature).toLowerCase()).toBe(
      expected.signer_address,
    );
    // ...but under the canonical domain the legacy signature recovers to somebody else.
    expect(legacy.expected.domainSeparator).not.toBe(expected.domainSeparator);
    expect(recoverAddress(expected.digest_signHash!, legacySignature).toLowerCase()).not.toBe(expected.signer_address);
    const d = typedData.domain;
    const separator = await mailExample.domainSeparator(d.name, d.version, d.chainId, d.verifyingContract);
    const onChain = await mailExample.recoverSigner(separator, typedData.message, legacySignature);
    expect(onChain.toLowerCase()).not.toBe(expected.signer_address);
  });
});

describe("EIP-712: Cryptlet proofs in TypeScript and Solidity agree", () => {
  let stack: CryptletStack;
  beforeAll(async () => {
    stack = await deployStack(3, 2);
  });

  test("the Solidity type strings are byte-for-byte the TypeScript ones", () => {
    const source = readFileSync(path.join(root, "contracts", "CryptletProofs.sol"), "utf8");
    expect(CRYPTLET_RESULT_TYPE).toBe(
      "CryptletResult(bytes32 resultId,bytes32 cryptletId,bytes32 codeHash,bytes32 inputHash,bytes32 outputHash,uint64 timestamp)",
    );
    expect(RESULT_BATCH_TYPE).toBe("ResultBatch(bytes32 root,uint32 count,uint64 timestamp)");
    expect(source).toContain(`"${CRYPTLET_RESULT_TYPE}"`);
    expect(source).toContain(`"${RESULT_BATCH_TYPE}"`);
    expect(source).toContain(`"EIP712Domain(string name,string version,bytes32 salt)"`);
  });

  test("domain separator: consortium salt, no chainId", async () => {
    expect(await stack.registry.consortiumId()).toBe(CONSORTIUM_ID);
    expect(await stack.registry.domainSeparator()).toBe(domainSeparator(CONSORTIUM_ID));
    expect(domainSeparator(id("another-consortium") as Hex32)).not.toBe(domainSeparator(CONSORTIUM_ID));
  });

  test("the digest the registry verifies equals cryptletResultDigest", async () => {
    const cryptletId = cryptletIdOf("@test/digest");
    const codeHash = id("code-v1") as Hex32;
    await (await stack.registry.approveCodeHash(cryptletId, codeHash)).wait();
    const result = makeResult(cryptletId, id("request-1") as Hex32, codeHash, "0x1234");
    const signatures = await signResult(stack.signers.slice(0, 2), result);
    const digest = await stack.registry.verifyResultProof(result, signatures);
    expect(digest).toBe(cryptletResultDigest(CONSORTIUM_ID, result));
  });

  test("the batch digest the registry verifies equals resultBatchDigest", async () => {
    const batch = { root: id("some-root") as Hex32, count: 7, timestamp: 1_700_000_123n };
    const digest = resultBatchDigest(CONSORTIUM_ID, batch);
    const signatures = await Promise.all(
      stack.signers.slice(0, 2).map(async (w) => w.signingKey.sign(digest).serialized),
    );
    expect(await stack.registry.verifyBatchProof(batch, signatures)).toBe(digest);
    expect(digest).not.toBe(ZeroHash);
  });
});
