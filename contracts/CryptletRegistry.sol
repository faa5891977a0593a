// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";

import {CryptletProofs} from "./CryptletProofs.sol";
import {ICryptletRegistry} from "./interfaces/ICryptletRegistry.sol";

/**
 * @title CryptletRegistry
 * @notice Consortium governance and the proof check that every Cryptlet contract relies on.
 *
 * Roles (OpenZeppelin `AccessControl`):
 * - `DEFAULT_ADMIN_ROLE`: grants and revokes the other roles (the consortium's governance, e.g. a multisig).
 * - `APPROVER_ROLE`: approves and revokes code measurements (`codeHash`) per Cryptlet. Several versions of a
 *   Cryptlet may be approved at once; each is revocable on its own.
 * - `SIGNER_MANAGER_ROLE`: adds, removes and rotates trusted signer addresses (the runtime's Key Vault keys) and
 *   sets the threshold M, with 1 ≤ M ≤ N always.
 *
 * IMPORTANT: revoking a code hash or a signer affects every later verification, including `ResultLedger.verify`
 * of results that were anchored earlier.
 */
contract CryptletRegistry is ICryptletRegistry, AccessControl {
    using EnumerableSet for EnumerableSet.AddressSet;
    using EnumerableSet for EnumerableSet.Bytes32Set;

    /// @notice Role that approves and revokes code hashes.
    bytes32 public constant APPROVER_ROLE = keccak256("APPROVER_ROLE");
    /// @notice Role that manages trusted signers and the threshold.
    bytes32 public constant SIGNER_MANAGER_ROLE = keccak256("SIGNER_MANAGER_ROLE");

    bytes32 private immutable _consortiumId;
    bytes32 private immutable _domainSeparator;

    // Enumerable, so that a verifier can read the whole trust set from the chain (`signers`, `approvedCodeHashes`);
    // `contains` costs one storage read, as a plain mapping does.
    mapping(bytes32 cryptletId => EnumerableSet.Bytes32Set) private _approved;
    EnumerableSet.AddressSet private _trusted;
    // Packed in one slot: read together on every verification.
    uint128 private _signerCount;
    uint128 private _threshold;
    // Where the runtime's attestation keys (a JWKS) are published, and the SHA-256 of the published bytes.
    string private _attestationKeysUri;
    bytes32 private _attestationKeysSha256;
    // The consortium member that holds each trusted signer's key (its member id), so that a verifier can say who
    // signed a proof, not only which key. Empty: not named. Cleared when the signer is removed.
    mapping(address signer => string) private _signerMember;

    /// @notice The attestation keys were (re)published: a JWKS (RFC 7517) at `uri`, whose bytes hash to `sha256`.
    event AttestationKeysPublished(string uri, bytes32 sha256);

    /// @notice The trusted signer `signer` was named as the key of consortium member `memberId` by `account`.
    event SignerMemberSet(address indexed signer, string memberId, address indexed account);

    /// @notice A member id must be 1 to 64 bytes; `length` was given.
    error CryptletRegistryInvalidMemberId(uint256 length);

    /**
     * @param consortiumId_ The consortium id, used as the EIP-712 domain `salt`.
     * @param admin The holder of `DEFAULT_ADMIN_ROLE`, `APPROVER_ROLE` and `SIGNER_MANAGER_ROLE` at deployment.
     * @param initialSigners The initial trusted signers (distinct, non-zero).
     * @param threshold_ The initial threshold, 1 ≤ threshold_ ≤ signers.length.
     */
    constructor(bytes32 consortiumId_, address admin, address[] memory initialSigners, uint256 threshold_) {
        if (admin == address(0)) revert CryptletRegistryZeroAddress();
        _consortiumId = consortiumId_;
        _domainSeparator = CryptletProofs.domainSeparator(consortiumId_);
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(APPROVER_ROLE, admin);
        _grantRole(SIGNER_MANAGER_ROLE, admin);
        for (uint256 i = 0; i < initialSigners.length; ++i) {
            _addSigner(initialSigners[i], admin);
        }
        _setThreshold(threshold_, admin);
    }

    // ------------------------------------------------------------------ governance

    /// @notice Approves `codeHash` for `cryptletId`. Only `APPROVER_ROLE`.
    /// @dev Reverts with `CryptletRegistryCodeHashAlreadyApproved` if it is approved already.
    function approveCodeHash(bytes32 cryptletId, bytes32 codeHash) external virtual onlyRole(APPROVER_ROLE) {
        if (codeHash == bytes32(0)) revert CryptletRegistryZeroCodeHash(cryptletId);
        if (!_approved[cryptletId].add(codeHash)) revert CryptletRegistryCodeHashAlreadyApproved(cryptletId, codeHash);
        emit CodeHashApproved(cryptletId, codeHash, _msgSender());
    }

    /// @notice Revokes `codeHash` for `cryptletId`. Only `APPROVER_ROLE`.
    /// @dev Reverts with `CryptletRegistryCodeHashNotApproved` if it is not approved.
    function revokeCodeHash(bytes32 cryptletId, bytes32 codeHash) external virtual onlyRole(APPROVER_ROLE) {
        if (!_approved[cryptletId].remove(codeHash)) revert CryptletRegistryCodeHashNotApproved(cryptletId, codeHash);
        emit CodeHashRevoked(cryptletId, codeHash, _msgSender());
    }

    /// @notice Adds a trusted signer. Only `SIGNER_MANAGER_ROLE`. The threshold is unchanged.
    function addSigner(address signer) external virtual onlyRole(SIGNER_MANAGER_ROLE) {
        _addSigner(signer, _msgSender());
    }

    /// @notice Removes a trusted signer. Only `SIGNER_MANAGER_ROLE`.
    /// @dev Reverts with `CryptletRegistryInvalidThreshold` if fewer signers than the threshold would remain:
    /// lower the threshold first.
    function removeSigner(address signer) external virtual onlyRole(SIGNER_MANAGER_ROLE) {
        _removeSigner(signer, _msgSender());
        if (_signerCount < _threshold) revert CryptletRegistryInvalidThreshold(_threshold, _signerCount);
    }

    /// @notice Replaces `oldSigner` with `newSigner` in one transaction, e.g. after a Key Vault key version
    /// rotation. Only `SIGNER_MANAGER_ROLE`. The threshold is unchanged.
    /// @dev The member that held `oldSigner` (if named) now holds `newSigner`: a rotation keeps the member.
    function rotateSigner(address oldSigner, address newSigner) external virtual onlyRole(SIGNER_MANAGER_ROLE) {
        string memory memberId = _signerMember[oldSigner];
        _removeSigner(oldSigner, _msgSender());
        _addSigner(newSigner, _msgSender());
        if (bytes(memberId).length != 0) _setSignerMember(newSigner, memberId, _msgSender());
    }

    /**
     * @notice Names the consortium member whose Key Vault holds the trusted signer `signer` (its member id, as in
     * the members' configuration, e.g. `acme`), so that a verifier reading the chain can say which members signed
     * a proof. Only `SIGNER_MANAGER_ROLE`. Proof verification does not depend on it.
     * @dev Reverts with `CryptletRegistrySignerNotTrusted` if `signer` is not trusted, and with
     * `CryptletRegistryInvalidMemberId` unless `memberId` is 1 to 64 bytes.
     */
    function setSignerMember(address signer, string calldata memberId) external virtual onlyRole(SIGNER_MANAGER_ROLE) {
        if (!_trusted.contains(signer)) revert CryptletRegistrySignerNotTrusted(signer);
        _setSignerMember(signer, memberId, _msgSender());
    }

    /// @notice Sets the threshold M. Only `SIGNER_MANAGER_ROLE`. Requires 1 ≤ M ≤ signerCount().
    function setThreshold(uint256 newThreshold) external virtual onlyRole(SIGNER_MANAGER_ROLE) {
        _setThreshold(newThreshold, _msgSender());
    }

    /**
     * @notice Publishes where the attestation keys of the consortium's runtimes are (a JWKS, RFC 7517 §5: the
     * document the runtime serves at `/.well-known/jwks.json`, copied to any static location: `https://…`,
     * `ipfs://…`, `file://…` for a local stack) and the SHA-256 of its exact bytes, so that a verifier needs neither
     * the operator's API nor a configuration: it fetches the document and checks the hash. Republish on every
     * attestation key rotation (the JWKS then lists both versions). Only `DEFAULT_ADMIN_ROLE`.
     * @param uri Where the JWKS is published (1 to 2048 bytes).
     * @param sha256_ SHA-256 of the published bytes.
     */
    function publishAttestationKeys(
        string calldata uri,
        bytes32 sha256_
    ) external virtual onlyRole(DEFAULT_ADMIN_ROLE) {
        if (bytes(uri).length == 0 || bytes(uri).length > 2048 || sha256_ == bytes32(0)) {
            revert CryptletRegistryInvalidAttestationKeys();
        }
        _attestationKeysUri = uri;
        _attestationKeysSha256 = sha256_;
        emit AttestationKeysPublished(uri, sha256_);
    }

    // ------------------------------------------------------------------ views

    /// @notice The member id that holds the trusted signer `signer` (`setSignerMember`); empty when not named.
    function signerMember(address signer) external view returns (string memory) {
        return _signerMember[signer];
    }

    /// @notice Where the attestation keys are published and the SHA-256 of their bytes (empty and zero: never).
    function attestationKeys() external view returns (string memory uri, bytes32 sha256_) {
        return (_attestationKeysUri, _attestationKeysSha256);
    }

    /// @inheritdoc ICryptletRegistry
    function consortiumId() external view returns (bytes32) {
        return _consortiumId;
    }

    /// @inheritdoc ICryptletRegistry
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparator;
    }

    /// @inheritdoc ICryptletRegistry
    function isApproved(bytes32 cryptletId, bytes32 codeHash) external view returns (bool) {
        return _approved[cryptletId].contains(codeHash);
    }

    /// @inheritdoc ICryptletRegistry
    function approvedCount(bytes32 cryptletId) external view returns (uint256) {
        return _approved[cryptletId].length();
    }

    /// @inheritdoc ICryptletRegistry
    function approvedCodeHashes(bytes32 cryptletId) external view returns (bytes32[] memory) {
        return _approved[cryptletId].values();
    }

    /// @inheritdoc ICryptletRegistry
    function isSigner(address signer) external view returns (bool) {
        return _trusted.contains(signer);
    }

    /// @inheritdoc ICryptletRegistry
    function signers() external view returns (address[] memory) {
        return _trusted.values();
    }

    /// @inheritdoc ICryptletRegistry
    function signerCount() external view returns (uint256) {
        return _signerCount;
    }

    /// @inheritdoc ICryptletRegistry
    function threshold() external view returns (uint256) {
        return _threshold;
    }

    /// @inheritdoc ICryptletRegistry
    function verifyResultProof(
        CryptletProofs.CryptletResult calldata result,
        bytes[] calldata signatures
    ) external view virtual returns (bytes32 digest) {
        if (!_approved[result.cryptletId].contains(result.codeHash)) {
            revert CryptletProofCodeHashNotApproved(result.cryptletId, result.codeHash);
        }
        digest = CryptletProofs.toTypedDataHash(_domainSeparator, CryptletProofs.hashResult(result));
        _checkSignatures(digest, signatures);
    }

    /// @inheritdoc ICryptletRegistry
    function verifyBatchProof(
        CryptletProofs.ResultBatch calldata batch,
        bytes[] calldata signatures
    ) external view virtual returns (bytes32 digest) {
        digest = CryptletProofs.toTypedDataHash(_domainSeparator, CryptletProofs.hashBatch(batch));
        _checkSignatures(digest, signatures);
    }

    // ------------------------------------------------------------------ internals

    /// @dev Every signature must recover (low-s, 65 bytes) to a distinct trusted signer, and there must be at
    /// least `_threshold` of them. Order does not matter; duplicates are found by comparing with earlier ones
    /// (O(n²), fine for the handful of signers a consortium has).
    function _checkSignatures(bytes32 digest, bytes[] calldata signatures) internal view virtual {
        uint256 count = signatures.length;
        uint256 required = _threshold;
        if (count < required) revert CryptletProofThresholdNotMet(count, required);
        address[] memory seen = new address[](count);
        for (uint256 i = 0; i < count; ++i) {
            (address signer, ECDSA.RecoverError err, bytes32 arg) = ECDSA.tryRecoverCalldata(digest, signatures[i]);
            if (err == ECDSA.RecoverError.InvalidSignatureS) revert CryptletProofHighS(i, arg);
            if (err != ECDSA.RecoverError.NoError) revert CryptletProofMalformedSignature(i);
            if (!_trusted.contains(signer)) revert CryptletProofUntrustedSigner(i, signer);
            for (uint256 j = 0; j < i; ++j) {
                if (seen[j] == signer) revert CryptletProofDuplicateSigner(i, signer);
            }
            seen[i] = signer;
        }
    }

    function _addSigner(address signer, address account) internal virtual {
        if (signer == address(0)) revert CryptletRegistryZeroAddress();
        if (!_trusted.add(signer)) revert CryptletRegistrySignerAlreadyTrusted(signer);
        ++_signerCount;
        emit SignerAdded(signer, account);
    }

    function _removeSigner(address signer, address account) internal virtual {
        if (!_trusted.remove(signer)) revert CryptletRegistrySignerNotTrusted(signer);
        --_signerCount;
        delete _signerMember[signer];
        emit SignerRemoved(signer, account);
    }

    function _setSignerMember(address signer, string memory memberId, address account) internal virtual {
        if (bytes(memberId).length == 0 || bytes(memberId).length > 64) {
            revert CryptletRegistryInvalidMemberId(bytes(memberId).length);
        }
        _signerMember[signer] = memberId;
        emit SignerMemberSet(signer, memberId, account);
    }

    function _setThreshold(uint256 newThreshold, address account) internal virtual {
        if (newThreshold == 0 || newThreshold > _signerCount) {
            revert CryptletRegistryInvalidThreshold(newThreshold, _signerCount);
        }
        uint256 previous = _threshold;
        _threshold = uint128(newThreshold);
        emit ThresholdChanged(previous, newThreshold, account);
    }
}
