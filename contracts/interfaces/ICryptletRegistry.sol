// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {CryptletProofs} from "../CryptletProofs.sol";

/**
 * @title ICryptletRegistry
 * @notice Consortium governance of Cryptlets: which code measurements (`codeHash`) are approved per Cryptlet,
 * which signer addresses are trusted, and how many of them (threshold M) must sign a result.
 */
interface ICryptletRegistry {
    // ---- proof verification errors (raised by the verify functions, bubbled up by oracle, ledger and feed) ----

    /// @notice The `codeHash` is not approved for the Cryptlet.
    error CryptletProofCodeHashNotApproved(bytes32 cryptletId, bytes32 codeHash);
    /// @notice Signature number `index` is not a valid 65-byte ECDSA signature.
    error CryptletProofMalformedSignature(uint256 index);
    /// @notice Signature number `index` has an `s` value in the upper half of the curve order (EIP-2).
    error CryptletProofHighS(uint256 index, bytes32 s);
    /// @notice Signature number `index` recovers to `signer`, which is not a trusted signer.
    error CryptletProofUntrustedSigner(uint256 index, address signer);
    /// @notice Signature number `index` recovers to `signer`, who already signed (each signer counts once).
    error CryptletProofDuplicateSigner(uint256 index, address signer);
    /// @notice Fewer distinct trusted signatures (`provided`) than the threshold.
    error CryptletProofThresholdNotMet(uint256 provided, uint256 threshold);

    // ---- governance errors ----

    /// @notice The zero address was given where a signer is required.
    error CryptletRegistryZeroAddress();
    /// @notice An empty or over-long (more than 2048 bytes) attestation keys URI, or a zero hash.
    error CryptletRegistryInvalidAttestationKeys();
    /// @notice `codeHash` zero was given.
    error CryptletRegistryZeroCodeHash(bytes32 cryptletId);
    /// @notice The `codeHash` is already approved for the Cryptlet.
    error CryptletRegistryCodeHashAlreadyApproved(bytes32 cryptletId, bytes32 codeHash);
    /// @notice The `codeHash` is not approved for the Cryptlet, so it cannot be revoked.
    error CryptletRegistryCodeHashNotApproved(bytes32 cryptletId, bytes32 codeHash);
    /// @notice The address is already a trusted signer.
    error CryptletRegistrySignerAlreadyTrusted(address signer);
    /// @notice The address is not a trusted signer.
    error CryptletRegistrySignerNotTrusted(address signer);
    /// @notice A threshold must satisfy 1 ≤ threshold ≤ signerCount.
    error CryptletRegistryInvalidThreshold(uint256 threshold, uint256 signerCount);

    // ---- events ----

    /// @notice `codeHash` was approved for `cryptletId` by `account`.
    event CodeHashApproved(bytes32 indexed cryptletId, bytes32 indexed codeHash, address indexed account);
    /// @notice `codeHash` was revoked for `cryptletId` by `account`.
    event CodeHashRevoked(bytes32 indexed cryptletId, bytes32 indexed codeHash, address indexed account);
    /// @notice `signer` became a trusted signer.
    event SignerAdded(address indexed signer, address indexed account);
    /// @notice `signer` is no longer a trusted signer.
    event SignerRemoved(address indexed signer, address indexed account);
    /// @notice The signature threshold changed from `previousThreshold` to `newThreshold`.
    event ThresholdChanged(uint256 previousThreshold, uint256 newThreshold, address indexed account);

    // ---- views ----

    /// @notice The consortium id: the EIP-712 domain `salt`.
    function consortiumId() external view returns (bytes32);

    /// @notice The EIP-712 domain separator of the consortium (see `CryptletProofs.domainSeparator`).
    function domainSeparator() external view returns (bytes32);

    /// @notice Whether `codeHash` is currently approved for `cryptletId`.
    function isApproved(bytes32 cryptletId, bytes32 codeHash) external view returns (bool);

    /// @notice How many code hashes are currently approved for `cryptletId` (0: the Cryptlet is unknown).
    function approvedCount(bytes32 cryptletId) external view returns (uint256);

    /**
     * @notice Every code hash currently approved for `cryptletId`, in no particular order (an empty array: the
     * Cryptlet is unknown). Verifiers read it, with `signers` and `threshold`, at the block of a write.
     */
    function approvedCodeHashes(bytes32 cryptletId) external view returns (bytes32[] memory);

    /// @notice Whether `signer` is a trusted signer.
    function isSigner(address signer) external view returns (bool);

    /// @notice Every trusted signer address (N of them), in no particular order.
    function signers() external view returns (address[] memory);

    /// @notice The number of trusted signers N.
    function signerCount() external view returns (uint256);

    /// @notice The number of distinct trusted signatures M that a proof needs.
    function threshold() external view returns (uint256);

    /**
     * @notice Checks a single result's proof: `codeHash` approved for `cryptletId`, and at least `threshold()`
     * distinct trusted signers over the result's EIP-712 digest. Reverts with a `CryptletProof*` error otherwise.
     * @dev Signatures are 65-byte `r ‖ s ‖ v` with `v` 27 or 28 and low `s` (OpenZeppelin `ECDSA`), in any order.
     * Every signature given must be valid and trusted.
     * @return digest The EIP-712 digest that was signed.
     */
    function verifyResultProof(
        CryptletProofs.CryptletResult calldata result,
        bytes[] calldata signatures
    ) external view returns (bytes32 digest);

    /**
     * @notice Checks a batch's proof: at least `threshold()` distinct trusted signers over the batch's EIP-712
     * digest. Approval of each result's `codeHash` is checked when a result is verified against the batch.
     * @return digest The EIP-712 digest that was signed.
     */
    function verifyBatchProof(
        CryptletProofs.ResultBatch calldata batch,
        bytes[] calldata signatures
    ) external view returns (bytes32 digest);
}
