// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

import {CryptletProofs} from "../CryptletProofs.sol";
import {ICryptletRegistry} from "../interfaces/ICryptletRegistry.sol";
import {CrossChainOutputs} from "./CrossChainOutputs.sol";

/**
 * @title CryptletWrappedToken
 * @notice The destination-chain half of a Cryptlet cross-chain transfer (docs/crosschain.md): an ERC-20 whose
 * supply is minted only for locks of one `CryptletLockbox` on one source chain, on verified results of kind
 * `KIND_MINT`, and burned by holders to be paid out on the source chain (`burn`, then the lockbox's `release`).
 *
 * A lock is minted at most once, and never after its deadline (`block.timestamp > deadline`): after the deadline
 * `isMinted(lockId)` can no longer change, so a result that reads it as false at a block after the deadline proves
 * "no mint happened and none can happen", which is what the lockbox's `refund` requires. Mint and refund of one
 * lock therefore never both happen.
 *
 * Results are accepted only for the Cryptlet `cryptletId`, with `keccak256(payload) == result.outputHash` and the
 * registry's proof (approved code hash, threshold of distinct trusted signers), each `resultId` once. Anyone may
 * submit them; the tokens go to the recipient the lock named. There is no owner.
 */
contract CryptletWrappedToken is ERC20 {
    /// @notice Output kind of a mint result, accepted by `mint`.
    uint8 public constant KIND_MINT = CrossChainOutputs.KIND_MINT;
    /// @notice Output kind of a release result (accepted by `CryptletLockbox.release`, never here).
    uint8 public constant KIND_RELEASE = CrossChainOutputs.KIND_RELEASE;
    /// @notice Output kind of a refund result (accepted by `CryptletLockbox.refund`, never here).
    uint8 public constant KIND_REFUND = CrossChainOutputs.KIND_REFUND;

    /// @notice The result is for another Cryptlet than this token's.
    error CryptletWrappedWrongCryptlet(bytes32 expected, bytes32 actual);
    /// @notice A result with this `resultId` was accepted already.
    error CryptletWrappedResultAlreadyRecorded(bytes32 resultId);
    /// @notice `keccak256(payload)` differs from the signed `outputHash`.
    error CryptletWrappedOutputHashMismatch(bytes32 outputHash, bytes32 payloadHash);
    /// @notice The payload is `length` bytes where a mint output needs `expectedLength`.
    error CryptletWrappedMalformedOutput(uint256 expectedLength, uint256 length);
    /// @notice The output is of kind `actual` where `expected` is needed.
    error CryptletWrappedWrongKind(uint8 expected, uint256 actual);
    /// @notice The output names another route (source chain, lockbox, destination chain, token) than this token's.
    error CryptletWrappedWrongRoute(uint256 sourceChainId, address lockbox, uint256 destinationChainId, address token);
    /// @notice The lock `lockId` was minted already.
    error CryptletWrappedAlreadyMinted(bytes32 lockId);
    /// @notice The lock's `deadline` has passed (block time `nowTime`): it can only be refunded on the source chain.
    error CryptletWrappedDeadlinePassed(bytes32 lockId, uint64 deadline, uint256 nowTime);
    /// @notice `amount` zero was given to `burn`.
    error CryptletWrappedZeroAmount();
    /// @notice The zero address was given as the recipient of a burn.
    error CryptletWrappedZeroRecipient();
    /// @notice `burn` names source chain `actual`; this token's source chain is `expected`.
    error CryptletWrappedWrongSourceChain(uint256 expected, uint256 actual);

    /// @notice The lock `lockId` was minted: `amount` tokens to `recipient`, on the result `resultId`.
    event Minted(bytes32 indexed lockId, address indexed recipient, uint256 amount, bytes32 resultId);
    /**
     * @notice `burner` burned `amount` tokens, to be paid out to `recipient` on `sourceChainId` by the lockbox
     * `lockbox` (its `release`, once per `burnId`).
     */
    event Burned(
        bytes32 indexed burnId,
        address indexed burner,
        address indexed recipient,
        uint256 amount,
        uint256 sourceChainId,
        address lockbox
    );

    /// @notice The registry that verifies proofs.
    ICryptletRegistry public immutable registry;
    /// @notice The only Cryptlet whose results this token accepts.
    bytes32 public immutable cryptletId;
    /// @notice The chain of the lockbox whose locks this token mints.
    uint256 public immutable sourceChainId;
    /// @notice The `CryptletLockbox` whose locks this token mints.
    address public immutable lockbox;

    /// @notice How many burns were made; the next burn's nonce.
    uint256 public burnCount;

    uint8 private immutable _decimals;
    mapping(bytes32 lockId => bytes32 resultId) private _mints;
    mapping(bytes32 resultId => bool) private _recorded;

    /**
     * @param name_ The ERC-20 name.
     * @param symbol_ The ERC-20 symbol.
     * @param decimals_ The decimals of the locked token (amounts are carried unscaled).
     * @param registry_ The consortium's registry.
     * @param cryptletId_ The Cryptlet whose results this token accepts.
     * @param sourceChainId_ The chain id of the lockbox.
     * @param lockbox_ The `CryptletLockbox` on `sourceChainId_`.
     */
    constructor(
        string memory name_,
        string memory symbol_,
        uint8 decimals_,
        ICryptletRegistry registry_,
        bytes32 cryptletId_,
        uint256 sourceChainId_,
        address lockbox_
    ) ERC20(name_, symbol_) {
        _decimals = decimals_;
        registry = registry_;
        cryptletId = cryptletId_;
        sourceChainId = sourceChainId_;
        lockbox = lockbox_;
    }

    /**
     * @notice Mints a lock: a verified result of kind `KIND_MINT` (`CrossChainOutputs.MintOutput`) for this token's
     * route, a lock not minted yet, at a block no later than the lock's deadline. Mints `amount` to the output's
     * `recipient`.
     */
    function mint(
        CryptletProofs.CryptletResult calldata result,
        bytes calldata payload,
        bytes[] calldata signatures
    ) external {
        if (result.cryptletId != cryptletId) revert CryptletWrappedWrongCryptlet(cryptletId, result.cryptletId);
        if (_recorded[result.resultId]) revert CryptletWrappedResultAlreadyRecorded(result.resultId);
        bytes32 payloadHash = keccak256(payload);
        if (payloadHash != result.outputHash) revert CryptletWrappedOutputHashMismatch(result.outputHash, payloadHash);
        if (payload.length != CrossChainOutputs.MINT_OUTPUT_LENGTH) {
            revert CryptletWrappedMalformedOutput(CrossChainOutputs.MINT_OUTPUT_LENGTH, payload.length);
        }
        uint256 kind = CrossChainOutputs.kindOf(payload);
        if (kind != KIND_MINT) revert CryptletWrappedWrongKind(KIND_MINT, kind);
        CrossChainOutputs.MintOutput memory out = abi.decode(payload, (CrossChainOutputs.MintOutput));
        if (
            out.sourceChainId != sourceChainId ||
            out.lockbox != lockbox ||
            out.destinationChainId != block.chainid ||
            out.token != address(this)
        ) revert CryptletWrappedWrongRoute(out.sourceChainId, out.lockbox, out.destinationChainId, out.token);
        if (_mints[out.lockId] != bytes32(0)) revert CryptletWrappedAlreadyMinted(out.lockId);
        if (block.timestamp > out.deadline) {
            revert CryptletWrappedDeadlinePassed(out.lockId, out.deadline, block.timestamp);
        }
        registry.verifyResultProof(result, signatures);

        _recorded[result.resultId] = true;
        _mints[out.lockId] = result.resultId;
        emit Minted(out.lockId, out.recipient, out.amount, result.resultId);
        _mint(out.recipient, out.amount);
    }

    /**
     * @notice Burns `amount` of the caller's tokens and emits `Burned`, to be paid out to `recipient` on the source
     * chain by the lockbox's `release`. `sourceChainId_` must be this token's source chain.
     * @dev `burnId = keccak256(abi.encode(block.chainid, address(this), nonce))`, with `nonce` the value of
     * `burnCount` before the burn (0, 1, 2, ...). Reverts with `ERC20InsufficientBalance` beyond the balance.
     * @return burnId The new burn's id.
     */
    function burn(uint256 amount, uint256 sourceChainId_, address recipient) external returns (bytes32 burnId) {
        if (amount == 0) revert CryptletWrappedZeroAmount();
        if (recipient == address(0)) revert CryptletWrappedZeroRecipient();
        if (sourceChainId_ != sourceChainId) revert CryptletWrappedWrongSourceChain(sourceChainId, sourceChainId_);
        uint256 nonce = burnCount;
        burnCount = nonce + 1;
        burnId = burnIdOf(nonce);
        _burn(msg.sender, amount);
        emit Burned(burnId, msg.sender, recipient, amount, sourceChainId, lockbox);
    }

    /**
     * @notice Whether the lock `lockId` was minted. Read at a block whose timestamp is after the lock's deadline,
     * false means that it never will be (what a refund on the source chain is attested from).
     */
    function isMinted(bytes32 lockId) external view returns (bool) {
        return _mints[lockId] != bytes32(0);
    }

    /// @notice The result that minted the lock `lockId`, or zero.
    function mintResultOf(bytes32 lockId) external view returns (bytes32) {
        return _mints[lockId];
    }

    /// @notice Whether the result `resultId` was accepted by `mint` (for idempotent writers).
    function isRecorded(bytes32 resultId) external view returns (bool) {
        return _recorded[resultId];
    }

    /// @notice The id of the burn with `nonce`: `keccak256(abi.encode(block.chainid, address(this), nonce))`.
    function burnIdOf(uint256 nonce) public view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), nonce));
    }

    /// @notice The decimals of the locked token.
    function decimals() public view override returns (uint8) {
        return _decimals;
    }
}
