// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

/**
 * @title CryptletProofs
 * @notice EIP-712 typed data of Cryptlet proofs: the domain, the `CryptletResult` and `ResultBatch` structs and
 * their hashes, and the Merkle leaf of a batched result.
 * @dev The domain is `EIP712Domain(string name,string version,bytes32 salt)` with name "CryptletRuntime",
 * version "1" and `salt = consortiumId`. IMPORTANT: it deliberately has no `chainId` and no `verifyingContract`,
 * so one signature is accepted by every contract of the consortium on every chain; replay inside a contract is
 * prevented by the "once per resultId / per batch root" rule of each contract. The type strings must stay
 * byte-for-byte equal to `runtime/attestation/eip712.ts` (a test compares them).
 */
library CryptletProofs {
    /// @notice A Cryptlet result as signed. All ids and hashes are 32 bytes; `timestamp` is in Unix seconds.
    struct CryptletResult {
        bytes32 resultId;
        bytes32 cryptletId;
        bytes32 codeHash;
        bytes32 inputHash;
        bytes32 outputHash;
        uint64 timestamp;
    }

    /// @notice A Merkle batch of results as signed: the root over the results' struct hashes, the number of
    /// results, and the time the batch was sealed (Unix seconds).
    struct ResultBatch {
        bytes32 root;
        uint32 count;
        uint64 timestamp;
    }

    /// @notice keccak256("EIP712Domain(string name,string version,bytes32 salt)")
    bytes32 internal constant DOMAIN_TYPEHASH = keccak256("EIP712Domain(string name,string version,bytes32 salt)");
    /// @notice keccak256 of the domain name "CryptletRuntime".
    bytes32 internal constant NAME_HASH = keccak256("CryptletRuntime");
    /// @notice keccak256 of the domain version "1".
    bytes32 internal constant VERSION_HASH = keccak256("1");
    /// @notice The `CryptletResult` type hash.
    bytes32 internal constant CRYPTLET_RESULT_TYPEHASH = keccak256(
        "CryptletResult(bytes32 resultId,bytes32 cryptletId,bytes32 codeHash,bytes32 inputHash,bytes32 outputHash,uint64 timestamp)"
    );
    /// @notice The `ResultBatch` type hash.
    bytes32 internal constant RESULT_BATCH_TYPEHASH = keccak256(
        "ResultBatch(bytes32 root,uint32 count,uint64 timestamp)"
    );

    /// @notice The EIP-712 domain separator of a consortium.
    function domainSeparator(bytes32 consortiumId) internal pure returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, consortiumId));
    }

    /// @notice `hashStruct(result)`; also the value under the Merkle leaf of a batched result.
    function hashResult(CryptletResult calldata result) internal pure returns (bytes32) {
        return
            keccak256(
                abi.encode(
                    CRYPTLET_RESULT_TYPEHASH,
                    result.resultId,
                    result.cryptletId,
                    result.codeHash,
                    result.inputHash,
                    result.outputHash,
                    result.timestamp
                )
            );
    }

    /// @notice `hashStruct(batch)`.
    function hashBatch(ResultBatch calldata batch) internal pure returns (bytes32) {
        return keccak256(abi.encode(RESULT_BATCH_TYPEHASH, batch.root, batch.count, batch.timestamp));
    }

    /// @notice The EIP-712 digest `keccak256("\x19\x01" ‖ domainSeparator ‖ structHash)`.
    function toTypedDataHash(bytes32 separator, bytes32 structHash) internal pure returns (bytes32) {
        return MessageHashUtils.toTypedDataHash(separator, structHash);
    }

    /// @notice The Merkle leaf of a result in a batch: OpenZeppelin StandardMerkleTree encoding of the single
    /// value `[structHash]` with type `bytes32`, i.e. `keccak256(bytes.concat(keccak256(abi.encode(structHash))))`
    /// (the double hash keeps leaves apart from inner nodes).
    function resultLeaf(bytes32 structHash) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(structHash))));
    }

    /// @notice `resultId = keccak256(abi.encode(cryptletId, requestId))`: one result per request, ever.
    function resultIdOf(bytes32 cryptletId, bytes32 requestId) internal pure returns (bytes32) {
        return keccak256(abi.encode(cryptletId, requestId));
    }
}
