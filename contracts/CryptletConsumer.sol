// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ICryptletOracle, ICryptletConsumer} from "./interfaces/ICryptletOracle.sol";

/**
 * @title CryptletConsumer
 * @notice Base for contracts that ask a `CryptletOracle` for results. It accepts callbacks only from its
 * oracle; implement `_onCryptletResult`.
 *
 * IMPORTANT: the callback runs under the gas limit given at request time; a revert or out-of-gas in
 * `_onCryptletResult` is recorded by the oracle (`CryptletCallbackFailed`) and not retried.
 */
abstract contract CryptletConsumer is ICryptletConsumer {
    /// @notice `caller` is not this consumer's oracle.
    error CryptletConsumerUnauthorizedCaller(address caller, address oracle);

    /// @notice The oracle this consumer trusts.
    ICryptletOracle public immutable cryptletOracle;

    constructor(ICryptletOracle oracle) {
        cryptletOracle = oracle;
    }

    /// @inheritdoc ICryptletConsumer
    function onCryptletResult(bytes32 requestId, bytes calldata payload) external {
        if (msg.sender != address(cryptletOracle)) {
            revert CryptletConsumerUnauthorizedCaller(msg.sender, address(cryptletOracle));
        }
        _onCryptletResult(requestId, payload);
    }

    /// @notice Asks the oracle for a result of `cryptletId`; returns the request id.
    function _requestCryptlet(
        bytes32 cryptletId,
        bytes memory params,
        uint32 callbackGasLimit
    ) internal virtual returns (bytes32) {
        return cryptletOracle.request(cryptletId, params, callbackGasLimit);
    }

    /// @notice Handles a verified result. `payload` is exactly the bytes whose keccak256 was signed.
    function _onCryptletResult(bytes32 requestId, bytes calldata payload) internal virtual;
}
