// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {CryptletConsumer} from "../CryptletConsumer.sol";
import {ICryptletOracle} from "../interfaces/ICryptletOracle.sol";

/**
 * @title ExampleOracleConsumer
 * @notice An oracle consumer: asks a Cryptlet for a result and keeps the latest payload it received.
 */
contract ExampleOracleConsumer is CryptletConsumer {
    /// @notice The Cryptlet this consumer asks.
    bytes32 public immutable cryptletId;
    /// @notice Gas the oracle gives the callback.
    uint32 public constant CALLBACK_GAS_LIMIT = 200_000;

    /// @notice The id of the latest request.
    bytes32 public lastRequestId;
    /// @notice The payload of the latest result received.
    bytes public lastPayload;
    /// @notice Payload received per request id.
    mapping(bytes32 requestId => bytes payload) public payloads;

    /// @notice A request was sent.
    event ResultRequested(bytes32 indexed requestId, bytes params);
    /// @notice A result was received.
    event ResultReceived(bytes32 indexed requestId, bytes payload);

    constructor(ICryptletOracle oracle, bytes32 cryptletId_) CryptletConsumer(oracle) {
        cryptletId = cryptletId_;
    }

    /// @notice Asks the Cryptlet, with `params` as its input; returns the request id.
    function ask(bytes calldata params) external returns (bytes32 requestId) {
        requestId = _requestCryptlet(cryptletId, params, CALLBACK_GAS_LIMIT);
        lastRequestId = requestId;
        emit ResultRequested(requestId, params);
    }

    function _onCryptletResult(bytes32 requestId, bytes calldata payload) internal override {
        lastPayload = payload;
        payloads[requestId] = payload;
        emit ResultReceived(requestId, payload);
    }
}
