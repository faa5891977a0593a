// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.19;

import {FunctionsClient} from "@chainlink/contracts/src/v0.8/functions/v1_0_0/FunctionsClient.sol";
import {FunctionsRequest} from "@chainlink/contracts/src/v0.8/functions/v1_0_0/libraries/FunctionsRequest.sol";

/**
 * @title PeerFunctionsConsumer
 * @notice The `FunctionsClient` consumer of `npm run bench:peers`: sends inline JavaScript to the local Functions
 * testnet and emits every answer (any number of requests in flight, unlike the toolkit's single-request example).
 */
contract PeerFunctionsConsumer is FunctionsClient {
    using FunctionsRequest for FunctionsRequest.Request;

    /// @notice A request was answered (one of `response` and `err` is empty).
    event Answered(bytes32 indexed requestId, bytes response, bytes err);

    constructor(address router) FunctionsClient(router) {}

    /// @notice Sends `source` as an inline JavaScript request; returns the request id.
    function ask(
        string calldata source,
        uint64 subscriptionId,
        uint32 callbackGasLimit,
        bytes32 donId
    ) external returns (bytes32 requestId) {
        FunctionsRequest.Request memory req;
        req.initializeRequestForInlineJavaScript(source);
        requestId = _sendRequest(req.encodeCBOR(), subscriptionId, callbackGasLimit, donId);
    }

    function fulfillRequest(bytes32 requestId, bytes memory response, bytes memory err) internal override {
        emit Answered(requestId, response, err);
    }
}
