// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

import {CryptletProofs} from "../CryptletProofs.sol";
import {ICryptletRegistry} from "../interfaces/ICryptletRegistry.sol";
import {CrossChainOutputs} from "./CrossChainOutputs.sol";

/**
 * @title CryptletLockbox
 * @notice The source-chain half of a Cryptlet cross-chain transfer of one ERC-20 (docs/crosschain.md). `lock` takes
 * tokens in and starts a transfer to a destination chain, where a `CryptletWrappedToken` (this lockbox's peer on
 * that chain) mints them on a verified result; `release` pays tokens out for a verified burn of wrapped tokens;
 * `refund` returns a lock to its sender on a verified result that no mint happened for it and none can happen any
 * more (the destination chain was read at a block after the lock's deadline, after which the peer never mints).
 *
 * Accounting: `lockedFor(destinationChainId)` is what backs the wrapped supply on that chain: it grows by each
 * lock toward the chain and shrinks by each refund and each release of a burn on the chain; no release or refund
 * may take it below zero. So a destination chain, or a runtime that lies about it, can never take out more than
 * was locked toward that chain, and a refunded lock's amount no longer backs anything there.
 *
 * Results are accepted only for the Cryptlet `cryptletId`, with `keccak256(payload) == result.outputHash` and the
 * registry's proof (approved code hash, threshold of distinct trusted signatures), each `resultId` once. Anyone
 * may submit them: the signatures are the authorisation; tokens go to the recipient or sender the result names.
 *
 * The owner only adds peers (one `CryptletWrappedToken` per destination chain, set once, never changed): it cannot
 * move locked tokens or re-point an existing peer. Tokens that charge a fee on transfer are refused by `lock`.
 */
contract CryptletLockbox is Ownable, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice The state of a lock on this chain. A mint happens on the destination chain, so a minted lock stays
    /// `Locked` here; `Refunded` is final.
    enum LockStatus {
        None,
        Locked,
        Refunded
    }

    /// @notice A lock as stored: who locked, the deadline for its mint (Unix seconds, destination-chain time),
    /// its status, the recipient on the destination chain, the amount and the destination chain id.
    struct Lock {
        address sender;
        uint64 deadline;
        LockStatus status;
        address recipient;
        uint256 amount;
        uint256 destinationChainId;
    }

    /// @notice Output kind of a mint result (accepted by `CryptletWrappedToken.mint`, never here).
    uint8 public constant KIND_MINT = CrossChainOutputs.KIND_MINT;
    /// @notice Output kind of a release result (a burn on the destination chain), accepted by `release`.
    uint8 public constant KIND_RELEASE = CrossChainOutputs.KIND_RELEASE;
    /// @notice Output kind of a refund result ("no mint happened and none can happen"), accepted by `refund`.
    uint8 public constant KIND_REFUND = CrossChainOutputs.KIND_REFUND;

    /// @notice `amount` zero was given to `lock`.
    error CryptletLockboxZeroAmount();
    /// @notice The zero address was given as the recipient of a lock.
    error CryptletLockboxZeroRecipient();
    /// @notice The lock's `deadline` is not after the current block time `nowTime`.
    error CryptletLockboxDeadlineInPast(uint64 deadline, uint256 nowTime);
    /// @notice No peer is set for `destinationChainId`, so nothing could be minted there.
    error CryptletLockboxUnknownDestination(uint256 destinationChainId);
    /// @notice The lockbox received `received` tokens where `expected` were sent (a fee-on-transfer token).
    error CryptletLockboxTransferAmountMismatch(uint256 expected, uint256 received);
    /// @notice The zero address or chain id zero was given as a peer.
    error CryptletLockboxInvalidPeer(uint256 chainId, address token);
    /// @notice The peer of `chainId` is set already (to `peer`); peers are never changed.
    error CryptletLockboxPeerAlreadySet(uint256 chainId, address peer);
    /// @notice The result is for another Cryptlet than this lockbox's.
    error CryptletLockboxWrongCryptlet(bytes32 expected, bytes32 actual);
    /// @notice A result with this `resultId` was accepted already.
    error CryptletLockboxResultAlreadyRecorded(bytes32 resultId);
    /// @notice `keccak256(payload)` differs from the signed `outputHash`.
    error CryptletLockboxOutputHashMismatch(bytes32 outputHash, bytes32 payloadHash);
    /// @notice The payload is `length` bytes where its kind needs `expectedLength`.
    error CryptletLockboxMalformedOutput(uint256 expectedLength, uint256 length);
    /// @notice The output is of kind `actual` where `expected` is needed.
    error CryptletLockboxWrongKind(uint8 expected, uint256 actual);
    /// @notice The output names another source chain or lockbox than this one.
    error CryptletLockboxWrongSource(uint256 sourceChainId, address lockbox);
    /// @notice The output names a contract `token` on `destinationChainId` that is not this lockbox's peer there.
    error CryptletLockboxUnknownPeer(uint256 destinationChainId, address token);
    /// @notice The burn `burnId` was released already.
    error CryptletLockboxAlreadyReleased(bytes32 burnId);
    /// @notice Paying out `amount` would take `lockedFor(destinationChainId)` (now `available`) below zero.
    error CryptletLockboxInsufficientLocked(uint256 destinationChainId, uint256 amount, uint256 available);
    /// @notice No lock `lockId` exists in this lockbox.
    error CryptletLockboxUnknownLock(bytes32 lockId);
    /// @notice The lock `lockId` was refunded already.
    error CryptletLockboxAlreadyRefunded(bytes32 lockId);
    /// @notice The output's destination chain, sender, amount or deadline differ from the stored lock `lockId`.
    error CryptletLockboxLockMismatch(bytes32 lockId);
    /// @notice The lock's `deadline` has not passed on this chain (block time `nowTime`).
    error CryptletLockboxDeadlineNotPassed(bytes32 lockId, uint64 deadline, uint256 nowTime);
    /// @notice The destination chain was read at `observedAt`, not after the lock's `deadline`: a mint was still
    /// possible after that read.
    error CryptletLockboxObservationNotAfterDeadline(bytes32 lockId, uint64 deadline, uint64 observedAt);

    /**
     * @notice `sender` locked `amount` tokens for `recipient` on `destinationChainId`; a mint there is possible
     * until `deadline` (Unix seconds, destination-chain block time), a refund here only after it. `token` is the
     * peer that mints, `peerOf(destinationChainId)` (set once, never changed), so the event alone carries every
     * field of the mint output.
     */
    event Locked(
        bytes32 indexed lockId,
        address indexed sender,
        address indexed recipient,
        uint256 amount,
        uint256 destinationChainId,
        uint64 deadline,
        address token
    );
    /// @notice The burn `burnId` on `destinationChainId` was paid out: `amount` tokens to `recipient`, on the
    /// result `resultId`.
    event Released(
        bytes32 indexed burnId,
        address indexed recipient,
        uint256 amount,
        uint256 destinationChainId,
        bytes32 resultId
    );
    /// @notice The lock `lockId` was returned to its `sender` (`amount` tokens) on the result `resultId`.
    event Refunded(bytes32 indexed lockId, address indexed sender, uint256 amount, bytes32 resultId);
    /// @notice `token` became this lockbox's peer (its `CryptletWrappedToken`) on `chainId`.
    event PeerSet(uint256 indexed chainId, address indexed token);

    /// @notice The ERC-20 this lockbox holds.
    IERC20 public immutable token;
    /// @notice The registry that verifies proofs.
    ICryptletRegistry public immutable registry;
    /// @notice The only Cryptlet whose results this lockbox accepts.
    bytes32 public immutable cryptletId;

    /// @notice How many locks were made; the next lock's nonce.
    uint256 public lockCount;
    /// @notice The sum of `lockedFor` over every destination chain: the tokens this lockbox owes.
    uint256 public totalLocked;

    mapping(bytes32 lockId => Lock) private _locks;
    mapping(uint256 chainId => address) private _peers;
    mapping(uint256 chainId => uint256) private _lockedFor;
    mapping(bytes32 burnId => bytes32 resultId) private _releases;
    mapping(bytes32 resultId => bool) private _recorded;

    /**
     * @param token_ The ERC-20 to lock (no fee on transfer, no rebasing).
     * @param registry_ The consortium's registry.
     * @param cryptletId_ The Cryptlet whose results this lockbox accepts.
     * @param owner_ Who may add peers (`setPeer`).
     */
    constructor(IERC20 token_, ICryptletRegistry registry_, bytes32 cryptletId_, address owner_) Ownable(owner_) {
        token = token_;
        registry = registry_;
        cryptletId = cryptletId_;
    }

    /**
     * @notice Sets the peer (`CryptletWrappedToken`) of this lockbox on `chainId`, once: it cannot be changed or
     * removed afterwards. Only the owner.
     */
    function setPeer(uint256 chainId, address peer) external onlyOwner {
        if (chainId == 0 || peer == address(0)) revert CryptletLockboxInvalidPeer(chainId, peer);
        address existing = _peers[chainId];
        if (existing != address(0)) revert CryptletLockboxPeerAlreadySet(chainId, existing);
        _peers[chainId] = peer;
        emit PeerSet(chainId, peer);
    }

    /**
     * @notice Locks `amount` tokens of the caller (approved to this lockbox beforehand) for `recipient` on
     * `destinationChainId`, and emits `Locked` (with the peer that mints, `peerOf(destinationChainId)`).
     * @dev `lockId = keccak256(abi.encode(block.chainid, address(this), nonce))`, with `nonce` the value of
     * `lockCount` before the lock (0, 1, 2, ...): unique across chains and lockboxes, and known before the
     * transaction (`lockIdOf(lockCount())`). The peer mints until `deadline` (destination-chain time).
     * @return lockId The new lock's id.
     */
    function lock(
        uint256 amount,
        uint256 destinationChainId,
        address recipient,
        uint64 deadline
    ) external nonReentrant returns (bytes32 lockId) {
        if (amount == 0) revert CryptletLockboxZeroAmount();
        if (recipient == address(0)) revert CryptletLockboxZeroRecipient();
        if (deadline <= block.timestamp) revert CryptletLockboxDeadlineInPast(deadline, block.timestamp);
        address peer = _peers[destinationChainId];
        if (peer == address(0)) revert CryptletLockboxUnknownDestination(destinationChainId);

        uint256 balanceBefore = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - balanceBefore;
        if (received != amount) revert CryptletLockboxTransferAmountMismatch(amount, received);

        uint256 nonce = lockCount;
        lockCount = nonce + 1;
        lockId = lockIdOf(nonce);
        _locks[lockId] = Lock({
            sender: msg.sender,
            deadline: deadline,
            status: LockStatus.Locked,
            recipient: recipient,
            amount: amount,
            destinationChainId: destinationChainId
        });
        _lockedFor[destinationChainId] += amount;
        totalLocked += amount;
        emit Locked(lockId, msg.sender, recipient, amount, destinationChainId, deadline, peer);
    }

    /**
     * @notice Pays out a burn on a destination chain: a verified result of kind `KIND_RELEASE`
     * (`CrossChainOutputs.ReleaseOutput`) for this chain and lockbox, from this lockbox's peer on that chain, each
     * `burnId` once and never more than `lockedFor(destinationChainId)`. Transfers `amount` tokens to the output's
     * `recipient`.
     */
    function release(
        CryptletProofs.CryptletResult calldata result,
        bytes calldata payload,
        bytes[] calldata signatures
    ) external nonReentrant {
        _checkResult(result, payload, KIND_RELEASE, CrossChainOutputs.RELEASE_OUTPUT_LENGTH);
        CrossChainOutputs.ReleaseOutput memory out = abi.decode(payload, (CrossChainOutputs.ReleaseOutput));
        _checkRoute(out.sourceChainId, out.lockbox, out.destinationChainId, out.token);
        if (_releases[out.burnId] != bytes32(0)) revert CryptletLockboxAlreadyReleased(out.burnId);
        uint256 available = _lockedFor[out.destinationChainId];
        if (out.amount > available) {
            revert CryptletLockboxInsufficientLocked(out.destinationChainId, out.amount, available);
        }
        registry.verifyResultProof(result, signatures);

        _recorded[result.resultId] = true;
        _releases[out.burnId] = result.resultId;
        _lockedFor[out.destinationChainId] = available - out.amount;
        totalLocked -= out.amount;
        emit Released(out.burnId, out.recipient, out.amount, out.destinationChainId, result.resultId);
        token.safeTransfer(out.recipient, out.amount);
    }

    /**
     * @notice Returns a lock to its sender: a verified result of kind `KIND_REFUND`
     * (`CrossChainOutputs.RefundOutput`) for a lock of this lockbox that is not refunded, naming the lock as stored
     * and this lockbox's peer on its destination chain, read there at `observedAt` after the deadline; and only once
     * the deadline has passed on this chain. Transfers the lock's amount to its sender; the lock becomes `Refunded`.
     */
    function refund(
        CryptletProofs.CryptletResult calldata result,
        bytes calldata payload,
        bytes[] calldata signatures
    ) external nonReentrant {
        _checkResult(result, payload, KIND_REFUND, CrossChainOutputs.REFUND_OUTPUT_LENGTH);
        CrossChainOutputs.RefundOutput memory out = abi.decode(payload, (CrossChainOutputs.RefundOutput));
        _checkRoute(out.sourceChainId, out.lockbox, out.destinationChainId, out.token);
        Lock storage stored = _locks[out.lockId];
        if (stored.status == LockStatus.None) revert CryptletLockboxUnknownLock(out.lockId);
        if (stored.status == LockStatus.Refunded) revert CryptletLockboxAlreadyRefunded(out.lockId);
        uint256 amount = stored.amount;
        uint64 deadline = stored.deadline;
        address sender = stored.sender;
        uint256 destinationChainId = stored.destinationChainId;
        if (
            out.destinationChainId != destinationChainId ||
            out.sender != sender ||
            out.amount != amount ||
            out.deadline != deadline
        ) revert CryptletLockboxLockMismatch(out.lockId);
        if (block.timestamp <= deadline) {
            revert CryptletLockboxDeadlineNotPassed(out.lockId, deadline, block.timestamp);
        }
        if (out.observedAt <= deadline) {
            revert CryptletLockboxObservationNotAfterDeadline(out.lockId, deadline, out.observedAt);
        }
        uint256 available = _lockedFor[destinationChainId];
        if (amount > available) revert CryptletLockboxInsufficientLocked(destinationChainId, amount, available);
        registry.verifyResultProof(result, signatures);

        _recorded[result.resultId] = true;
        stored.status = LockStatus.Refunded;
        _lockedFor[destinationChainId] = available - amount;
        totalLocked -= amount;
        emit Refunded(out.lockId, sender, amount, result.resultId);
        token.safeTransfer(sender, amount);
    }

    /// @notice The id of the lock with `nonce`: `keccak256(abi.encode(block.chainid, address(this), nonce))`.
    function lockIdOf(uint256 nonce) public view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), nonce));
    }

    /// @notice The lock `lockId` (all zero, status `None`, if there is none).
    function lockOf(bytes32 lockId) external view returns (Lock memory) {
        return _locks[lockId];
    }

    /// @notice This lockbox's peer (`CryptletWrappedToken`) on `chainId`, or the zero address.
    function peerOf(uint256 chainId) external view returns (address) {
        return _peers[chainId];
    }

    /// @notice The tokens that back the wrapped supply on `destinationChainId`: locked toward it, less refunds and
    /// releases of burns there.
    function lockedFor(uint256 destinationChainId) external view returns (uint256) {
        return _lockedFor[destinationChainId];
    }

    /// @notice Whether the burn `burnId` was released.
    function isReleased(bytes32 burnId) external view returns (bool) {
        return _releases[burnId] != bytes32(0);
    }

    /// @notice The result that released the burn `burnId`, or zero.
    function releaseResultOf(bytes32 burnId) external view returns (bytes32) {
        return _releases[burnId];
    }

    /// @notice Whether the result `resultId` was accepted by `release` or `refund` (for idempotent writers).
    function isRecorded(bytes32 resultId) external view returns (bool) {
        return _recorded[resultId];
    }

    /// @dev The checks every result goes through before its output is decoded: this lockbox's Cryptlet, a
    /// `resultId` not accepted yet, the payload that was signed, its length and kind.
    function _checkResult(
        CryptletProofs.CryptletResult calldata result,
        bytes calldata payload,
        uint8 kind,
        uint256 length
    ) private view {
        if (result.cryptletId != cryptletId) revert CryptletLockboxWrongCryptlet(cryptletId, result.cryptletId);
        if (_recorded[result.resultId]) revert CryptletLockboxResultAlreadyRecorded(result.resultId);
        bytes32 payloadHash = keccak256(payload);
        if (payloadHash != result.outputHash) revert CryptletLockboxOutputHashMismatch(result.outputHash, payloadHash);
        if (payload.length != length) revert CryptletLockboxMalformedOutput(length, payload.length);
        uint256 actualKind = CrossChainOutputs.kindOf(payload);
        if (actualKind != kind) revert CryptletLockboxWrongKind(kind, actualKind);
    }

    /// @dev The output is for this chain and lockbox, and from this lockbox's peer on its destination chain.
    function _checkRoute(
        uint256 sourceChainId,
        address lockbox,
        uint256 destinationChainId,
        address peer
    ) private view {
        if (sourceChainId != block.chainid || lockbox != address(this)) {
            revert CryptletLockboxWrongSource(sourceChainId, lockbox);
        }
        address expected = _peers[destinationChainId];
        if (expected == address(0) || peer != expected) revert CryptletLockboxUnknownPeer(destinationChainId, peer);
    }
}
