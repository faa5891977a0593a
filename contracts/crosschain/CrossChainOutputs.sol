// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title CrossChainOutputs
 * @notice The outputs of cross-chain results (docs/crosschain.md, "Output encodings"), defined once for
 * `CryptletLockbox` and `CryptletWrappedToken`: the output kinds, the payload of each kind and its length, and how
 * a payload's kind is read.
 * @dev A payload is `abi.encode` of one of the structs below: a tuple of static types, so its length is fixed per
 * kind and its first word is the kind. After the kind and the id, every struct names the route in the same order:
 * source chain, lockbox, destination chain, wrapped token. The contracts check a payload's hash, length and kind,
 * each with its own custom errors, before they decode it.
 */
library CrossChainOutputs {
    /**
     * @notice Output of a result of kind `KIND_MINT`: the lock `lockId` of `lockbox` on `sourceChainId` locked
     * `amount` for `recipient` on `destinationChainId`, to be minted by `token` until `deadline` (Unix seconds).
     * The payload is `abi.encode(MintOutput)`: 9 static words, 288 bytes.
     */
    struct MintOutput {
        uint8 kind;
        bytes32 lockId;
        uint256 sourceChainId;
        address lockbox;
        uint256 destinationChainId;
        address token;
        address recipient;
        uint256 amount;
        uint64 deadline;
    }

    /**
     * @notice Output of a result of kind `KIND_RELEASE`: the burn `burnId` of `amount` wrapped tokens on
     * `destinationChainId` by the peer `token`, to be paid out to `recipient` on `sourceChainId` by `lockbox`.
     * The payload is `abi.encode(ReleaseOutput)`: 8 static words, 256 bytes.
     */
    struct ReleaseOutput {
        uint8 kind;
        bytes32 burnId;
        uint256 sourceChainId;
        address lockbox;
        uint256 destinationChainId;
        address token;
        address recipient;
        uint256 amount;
    }

    /**
     * @notice Output of a result of kind `KIND_REFUND`: the peer `token` on `destinationChainId`, read at a block
     * whose timestamp is `observedAt` (after `deadline`), had not minted the lock `lockId`; so none can happen and
     * the lock's `amount` goes back to its `sender`. The other fields repeat the lock as stored.
     * The payload is `abi.encode(RefundOutput)`: 10 static words, 320 bytes.
     */
    struct RefundOutput {
        uint8 kind;
        bytes32 lockId;
        uint256 sourceChainId;
        address lockbox;
        uint256 destinationChainId;
        address token;
        address sender;
        uint256 amount;
        uint64 deadline;
        uint64 observedAt;
    }

    /// @notice Output kind of a mint result (`MintOutput`), accepted by `CryptletWrappedToken.mint`.
    uint8 internal constant KIND_MINT = 1;
    /// @notice Output kind of a release result (`ReleaseOutput`, a burn on the destination chain), accepted by
    /// `CryptletLockbox.release`.
    uint8 internal constant KIND_RELEASE = 2;
    /// @notice Output kind of a refund result (`RefundOutput`, "no mint happened and none can happen"), accepted by
    /// `CryptletLockbox.refund`.
    uint8 internal constant KIND_REFUND = 3;

    /// @notice The length of a `KIND_MINT` payload, `abi.encode(MintOutput)`, in bytes.
    uint256 internal constant MINT_OUTPUT_LENGTH = 9 * 32;
    /// @notice The length of a `KIND_RELEASE` payload, `abi.encode(ReleaseOutput)`, in bytes.
    uint256 internal constant RELEASE_OUTPUT_LENGTH = 8 * 32;
    /// @notice The length of a `KIND_REFUND` payload, `abi.encode(RefundOutput)`, in bytes.
    uint256 internal constant REFUND_OUTPUT_LENGTH = 10 * 32;

    /**
     * @notice The kind of `payload`: its first word, read as a whole `uint256`, so that a word above 255 is no
     * kind rather than one truncated to eight bits.
     * @dev `payload` must be at least 32 bytes long (callers check its length first); a shorter one reverts
     * without a named error.
     */
    function kindOf(bytes calldata payload) internal pure returns (uint256) {
        return uint256(bytes32(payload[:32]));
    }
}
