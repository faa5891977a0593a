// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title LogEmitter
 * @notice Test double for the chain-log trigger: emits `Ping` logs on demand, one or many per transaction.
 */
contract LogEmitter {
    /// @notice A log for the trigger to pick up: `seq` numbers it, `value` may be negative, `note` is free text.
    event Ping(address indexed sender, uint256 indexed seq, int256 value, string note);

    /// @notice Emits one `Ping`.
    function ping(uint256 seq, int256 value, string calldata note) external {
        emit Ping(msg.sender, seq, value, note);
    }

    /// @notice Emits `count` `Ping`s numbered from `fromSeq`, with `value = -seq`.
    function pingMany(uint256 fromSeq, uint256 count) external {
        for (uint256 i = 0; i < count; i++) {
            emit Ping(msg.sender, fromSeq + i, -int256(fromSeq + i), "many");
        }
    }
}
