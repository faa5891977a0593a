// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {CryptletProofs} from "./CryptletProofs.sol";
import {ICryptletRegistry} from "./interfaces/ICryptletRegistry.sol";

/**
 * @title ResultLedger
 * @notice Public record of Cryptlet results. `record` keeps one result (its payload in an event, its
 * `outputHash` in storage, once per `resultId`); `anchor` keeps the Merkle root of a batch of results under one
 * signature and one transaction; `verify` lets any contract check a batched result against an anchored root.
 * Anyone may submit: the signatures are the authorisation.
 */
contract ResultLedger {
    /// @notice An anchored batch: how many results it holds, the signed batch time and the block time it was
    /// anchored at (both Unix seconds).
    struct Anchor {
        uint32 count;
        uint64 timestamp;
        uint64 anchoredAt;
    }

    /// @notice A result with this `resultId` is recorded already.
    error ResultLedgerAlreadyRecorded(bytes32 resultId);
    /// @notice `keccak256(payload)` differs from the signed `outputHash`.
    error ResultLedgerOutputHashMismatch(bytes32 outputHash, bytes32 payloadHash);
    /// @notice A batch with this root is anchored already.
    error ResultLedgerAlreadyAnchored(bytes32 root);
    /// @notice A batch must hold at least one result and have a non-zero root.
    error ResultLedgerEmptyBatch(bytes32 root, uint32 count);

    /// @notice A result was recorded. `payload` is the output as written (ABI bytes or sealed JWE JSON).
    event ResultRecorded(
        bytes32 indexed resultId,
        bytes32 indexed cryptletId,
        bytes32 codeHash,
        bytes32 inputHash,
        bytes32 outputHash,
        uint64 timestamp,
        bytes payload
    );
    /// @notice A batch root was anchored.
    event BatchAnchored(bytes32 indexed root, uint32 count, uint64 timestamp);

    /// @notice The registry that verifies proofs.
    ICryptletRegistry public immutable registry;

    mapping(bytes32 resultId => bytes32 outputHash) private _outputHashes;
    mapping(bytes32 root => Anchor) private _anchors;

    constructor(ICryptletRegistry registry_) {
        registry = registry_;
    }

    /**
     * @notice Records one result: checks `keccak256(payload) == result.outputHash` and the registry's proof
     * (approved code hash, M distinct trusted signatures), stores the output hash and emits the payload.
     * @dev Reverts with `ResultLedgerAlreadyRecorded` on a second record of the same `resultId`.
     */
    function record(
        CryptletProofs.CryptletResult calldata result,
        bytes calldata payload,
        bytes[] calldata signatures
    ) external virtual {
        if (_outputHashes[result.resultId] != bytes32(0)) revert ResultLedgerAlreadyRecorded(result.resultId);
        bytes32 payloadHash = keccak256(payload);
        if (payloadHash != result.outputHash) revert ResultLedgerOutputHashMismatch(result.outputHash, payloadHash);
        registry.verifyResultProof(result, signatures);
        _outputHashes[result.resultId] = payloadHash;
        emit ResultRecorded(
            result.resultId,
            result.cryptletId,
            result.codeHash,
            result.inputHash,
            payloadHash,
            result.timestamp,
            payload
        );
    }

    /**
     * @notice Anchors a Merkle batch after checking M distinct trusted signatures over it.
     * @dev Each result's code hash approval is checked later, by `verify`. Reverts with
     * `ResultLedgerAlreadyAnchored` on a second anchor of the same root.
     */
    function anchor(CryptletProofs.ResultBatch calldata batch, bytes[] calldata signatures) external virtual {
        if (batch.root == bytes32(0) || batch.count == 0) revert ResultLedgerEmptyBatch(batch.root, batch.count);
        if (_anchors[batch.root].anchoredAt != 0) revert ResultLedgerAlreadyAnchored(batch.root);
        registry.verifyBatchProof(batch, signatures);
        _anchors[batch.root] = Anchor({
            count: batch.count,
            timestamp: batch.timestamp,
            anchoredAt: uint64(block.timestamp)
        });
        emit BatchAnchored(batch.root, batch.count, batch.timestamp);
    }

    /**
     * @notice Whether `result` belongs to the anchored batch `root` (by its Merkle `proof`) and its code hash is
     * still approved. Never reverts on a bad proof: returns false.
     * @param proof Sibling hashes from the leaf to the root (OpenZeppelin StandardMerkleTree, sorted pairs).
     */
    function verify(
        CryptletProofs.CryptletResult calldata result,
        bytes32[] calldata proof,
        bytes32 root
    ) external view virtual returns (bool) {
        if (_anchors[root].anchoredAt == 0) return false;
        if (!registry.isApproved(result.cryptletId, result.codeHash)) return false;
        return MerkleProof.verifyCalldata(proof, root, CryptletProofs.resultLeaf(CryptletProofs.hashResult(result)));
    }

    /// @notice Whether a result with `resultId` was recorded with `record` (for idempotent writers).
    function isRecorded(bytes32 resultId) external view returns (bool) {
        return _outputHashes[resultId] != bytes32(0);
    }

    /// @notice The recorded output hash of `resultId`, or zero.
    function outputHashOf(bytes32 resultId) external view returns (bytes32) {
        return _outputHashes[resultId];
    }

    /// @notice Whether the batch `root` was anchored (for idempotent writers).
    function isAnchored(bytes32 root) external view returns (bool) {
        return _anchors[root].anchoredAt != 0;
    }

    /// @notice The anchored batch `root` (all zero if it was not anchored).
    function anchorOf(bytes32 root) external view returns (Anchor memory) {
        return _anchors[root];
    }
}
