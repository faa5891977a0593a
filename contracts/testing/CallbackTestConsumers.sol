// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {CryptletConsumer} from "../CryptletConsumer.sol";
import {ICryptletOracle} from "../interfaces/ICryptletOracle.sol";

/// @title RevertingConsumer
/// @notice Test double: a consumer whose callback always reverts with a custom error.
contract RevertingConsumer is CryptletConsumer {
    /// @notice Raised by every callback.
    error RevertingConsumerRefused(bytes32 requestId);

    constructor(ICryptletOracle oracle) CryptletConsumer(oracle) {}

    /// @notice Sends a request.
    function ask(bytes32 cryptletId, uint32 callbackGasLimit) external returns (bytes32) {
        return _requestCryptlet(cryptletId, "", callbackGasLimit);
    }

    function _onCryptletResult(bytes32 requestId, bytes calldata) internal pure override {
        revert RevertingConsumerRefused(requestId);
    }
}

/// @title GasBurningConsumer
/// @notice Test double: a consumer whose callback burns all the gas it is given.
contract GasBurningConsumer is CryptletConsumer {
    /// @notice Written in the loop so that the callback cannot be optimised away.
    uint256 public counter;

    constructor(ICryptletOracle oracle) CryptletConsumer(oracle) {}

    /// @notice Sends a request.
    function ask(bytes32 cryptletId, uint32 callbackGasLimit) external returns (bytes32) {
        return _requestCryptlet(cryptletId, "", callbackGasLimit);
    }

    function _onCryptletResult(bytes32, bytes calldata) internal override {
        while (true) {
            ++counter;
        }
    }
}
