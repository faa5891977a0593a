// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {CryptletProofs} from "../CryptletProofs.sol";

/**
 * @title ICryptletOracle
 * @notice Request/fulfil oracle for Cryptlets: a consumer asks, the runtime answers with a signed result.
 */
interface ICryptletOracle {
    /// @notice Life cycle of a request. `None` means no such request.
    enum RequestStatus {
        None,
        Pending,
        Fulfilled,
        FulfilledCallbackFailed
    }

    /// @notice The Cryptlet has no approved code hash in the registry, so nobody could answer.
    error CryptletOracleUnknownCryptlet(bytes32 cryptletId);
    /// @notice `callbackGasLimit` is above `maxGasLimit`.
    error CryptletOracleCallbackGasLimitTooHigh(uint32 callbackGasLimit, uint32 maxGasLimit);
    /// @notice No request has this `resultId`.
    error CryptletOracleUnknownRequest(bytes32 resultId);
    /// @notice The request was fulfilled already (one result per request, ever).
    error CryptletOracleAlreadyFulfilled(bytes32 resultId);
    /// @notice `resultId` is not `keccak256(abi.encode(cryptletId, requestId))` for the request it names: the
    /// result is for another Cryptlet than the one requested.
    error CryptletOracleResultMismatch(bytes32 resultId, bytes32 cryptletId, bytes32 requestId);
    /// @notice `keccak256(payload)` differs from the signed `outputHash`.
    error CryptletOracleOutputHashMismatch(bytes32 outputHash, bytes32 payloadHash);
    /// @notice The transaction carries too little gas to give the callback its full `callbackGasLimit`.
    error CryptletOracleInsufficientGas(uint256 gasLeft, uint256 gasRequired);

    /**
     * @notice A consumer asked for a Cryptlet result. The runtime listens for this event.
     * @param requestId Unique id of the request: keccak256(abi.encode(chainid, oracle, nonce)).
     * @param cryptletId The Cryptlet asked for: keccak256 of its package name.
     * @param consumer The contract (or account) that asked, and that receives the callback.
     * @param resultId The id the result must carry: keccak256(abi.encode(cryptletId, requestId)).
     * @param callbackGasLimit Gas given to `onCryptletResult` (0: no callback).
     * @param params The consumer's input for the Cryptlet, opaque to the oracle.
     */
    event CryptletRequested(
        bytes32 indexed requestId,
        bytes32 indexed cryptletId,
        address indexed consumer,
        bytes32 resultId,
        uint32 callbackGasLimit,
        bytes params
    );

    /// @notice The request's result was verified and recorded; `payload` is what the consumer receives.
    event CryptletFulfilled(
        bytes32 indexed requestId,
        bytes32 indexed resultId,
        bytes32 outputHash,
        address indexed fulfiller,
        bytes payload
    );

    /// @notice The consumer's callback reverted or ran out of gas; the fulfilment stands.
    /// @param reason The first bytes (at most 256) of the revert data.
    event CryptletCallbackFailed(bytes32 indexed requestId, address indexed consumer, bytes reason);

    /**
     * @notice Asks for a result of `cryptletId` with input `params`; the caller is the consumer.
     * @param cryptletId keccak256 of the Cryptlet package name; it must have an approved code hash.
     * @param params Input for the Cryptlet (ABI or JSON bytes, as the Cryptlet documents).
     * @param callbackGasLimit Gas for `onCryptletResult` (0: no callback), at most `maxGasLimit()`.
     * @return requestId The new request's id.
     */
    function request(
        bytes32 cryptletId,
        bytes calldata params,
        uint32 callbackGasLimit
    ) external returns (bytes32 requestId);

    /**
     * @notice Delivers a signed result for a pending request, then calls the consumer back.
     * @dev Checks, in order: the request exists and is pending; `result.resultId` belongs to the request;
     * `keccak256(payload) == result.outputHash`; the registry's proof check (approved code hash, M distinct
     * trusted signatures). Anyone may relay a fulfilment: the signatures are the authorisation.
     */
    function fulfill(
        CryptletProofs.CryptletResult calldata result,
        bytes calldata payload,
        bytes[] calldata signatures
    ) external;

    /// @notice The status of the request whose result id is `resultId`.
    function requestStatus(bytes32 resultId) external view returns (RequestStatus);

    /// @notice Whether a result was recorded for `resultId` (for idempotent writers).
    function isRecorded(bytes32 resultId) external view returns (bool);
}

/**
 * @title ICryptletConsumer
 * @notice What the oracle calls back.
 */
interface ICryptletConsumer {
    /// @notice Receives the result of request `requestId`; `payload` is the bytes whose hash was signed.
    function onCryptletResult(bytes32 requestId, bytes calldata payload) external;
}
