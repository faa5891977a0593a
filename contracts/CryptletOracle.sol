// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {CryptletProofs} from "./CryptletProofs.sol";
import {ICryptletOracle, ICryptletConsumer} from "./interfaces/ICryptletOracle.sol";
import {ICryptletRegistry} from "./interfaces/ICryptletRegistry.sol";

/**
 * @title CryptletOracle
 * @notice Request/fulfil oracle: consumers call `request`, the Cryptlet runtime listens for
 * `CryptletRequested`, runs the Cryptlet and calls `fulfill` with the signed result; the oracle verifies the proof
 * through the registry, records the result once, and calls the consumer's `onCryptletResult` with exactly the
 * gas it asked for. A reverting or out-of-gas callback is recorded (`CryptletCallbackFailed`) and does not undo
 * the fulfilment.
 *
 * Storage: one slot per request, `{consumer, callbackGasLimit, status, nonce}`, keyed by `resultId`; fulfilling
 * rewrites that slot (a non-zero to non-zero write) instead of allocating a new one.
 */
contract CryptletOracle is ICryptletOracle {
    struct Request {
        address consumer; // 20 bytes
        uint32 callbackGasLimit; // 4 bytes
        RequestStatus status; // 1 byte
        uint56 nonce; // 7 bytes: requestId = keccak256(abi.encode(chainid, this, nonce))
    }

    /// @notice Gas the oracle keeps for itself around the callback (the CALL itself, events, and the status
    /// write after a failure); a fulfilment needs at least `callbackGasLimit * 64 / 63 + CALLBACK_GAS_OVERHEAD`
    /// left when it reaches the callback.
    uint256 public constant CALLBACK_GAS_OVERHEAD = 40_000;
    /// @notice At most this many bytes of a failed callback's revert data are kept in `CryptletCallbackFailed`.
    uint256 public constant MAX_REASON_BYTES = 256;

    /// @notice The registry that verifies proofs.
    ICryptletRegistry public immutable registry;
    /// @notice The highest `callbackGasLimit` a request may ask for.
    uint32 public immutable maxGasLimit;

    mapping(bytes32 resultId => Request) private _requests;
    uint56 private _nonce;

    /**
     * @param registry_ The consortium's registry.
     * @param maxGasLimit_ The highest callback gas limit a request may ask for (e.g. 2,000,000).
     */
    constructor(ICryptletRegistry registry_, uint32 maxGasLimit_) {
        registry = registry_;
        maxGasLimit = maxGasLimit_;
    }

    /// @inheritdoc ICryptletOracle
    function request(
        bytes32 cryptletId,
        bytes calldata params,
        uint32 callbackGasLimit
    ) external virtual returns (bytes32 requestId) {
        if (registry.approvedCount(cryptletId) == 0) revert CryptletOracleUnknownCryptlet(cryptletId);
        if (callbackGasLimit > maxGasLimit) revert CryptletOracleCallbackGasLimitTooHigh(callbackGasLimit, maxGasLimit);
        uint56 nonce = ++_nonce;
        requestId = _requestId(nonce);
        bytes32 resultId = CryptletProofs.resultIdOf(cryptletId, requestId);
        _requests[resultId] = Request({
            consumer: msg.sender,
            callbackGasLimit: callbackGasLimit,
            status: RequestStatus.Pending,
            nonce: nonce
        });
        emit CryptletRequested(requestId, cryptletId, msg.sender, resultId, callbackGasLimit, params);
    }

    /// @inheritdoc ICryptletOracle
    function fulfill(
        CryptletProofs.CryptletResult calldata result,
        bytes calldata payload,
        bytes[] calldata signatures
    ) external virtual {
        bytes32 resultId = result.resultId;
        Request memory req = _requests[resultId];
        if (req.status == RequestStatus.None) revert CryptletOracleUnknownRequest(resultId);
        if (req.status != RequestStatus.Pending) revert CryptletOracleAlreadyFulfilled(resultId);
        bytes32 requestId = _requestId(req.nonce);
        if (CryptletProofs.resultIdOf(result.cryptletId, requestId) != resultId) {
            revert CryptletOracleResultMismatch(resultId, result.cryptletId, requestId);
        }
        bytes32 payloadHash = keccak256(payload);
        if (payloadHash != result.outputHash) revert CryptletOracleOutputHashMismatch(result.outputHash, payloadHash);
        registry.verifyResultProof(result, signatures);

        _requests[resultId].status = RequestStatus.Fulfilled;
        emit CryptletFulfilled(requestId, resultId, payloadHash, msg.sender, payload);

        if (req.callbackGasLimit == 0 || req.consumer.code.length == 0) return;
        (bool success, bytes memory reason) = _callConsumer(req.consumer, req.callbackGasLimit, requestId, payload);
        if (!success) {
            _requests[resultId].status = RequestStatus.FulfilledCallbackFailed;
            emit CryptletCallbackFailed(requestId, req.consumer, reason);
        }
    }

    /// @inheritdoc ICryptletOracle
    function requestStatus(bytes32 resultId) external view returns (RequestStatus) {
        return _requests[resultId].status;
    }

    /// @inheritdoc ICryptletOracle
    function isRecorded(bytes32 resultId) external view returns (bool) {
        RequestStatus status = _requests[resultId].status;
        return status == RequestStatus.Fulfilled || status == RequestStatus.FulfilledCallbackFailed;
    }

    /// @notice The id of the request with sequence number `nonce` on this oracle and chain.
    function _requestId(uint56 nonce) internal view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), nonce));
    }

    /**
     * @dev Calls `consumer.onCryptletResult(requestId, payload)` with exactly `gasLimit` gas. Because a CALL
     * forwards at most 63/64 of the gas left (EIP-150), a relayer could otherwise starve the callback and make
     * it fail on purpose; so the fulfilment reverts unless enough gas is left. At most `MAX_REASON_BYTES` of
     * revert data are copied, so a consumer cannot make the oracle pay for a huge return buffer.
     */
    function _callConsumer(
        address consumer,
        uint32 gasLimit,
        bytes32 requestId,
        bytes calldata payload
    ) internal returns (bool success, bytes memory reason) {
        uint256 required = (uint256(gasLimit) * 64) / 63 + CALLBACK_GAS_OVERHEAD;
        if (gasleft() < required) revert CryptletOracleInsufficientGas(gasleft(), required);
        bytes memory data = abi.encodeCall(ICryptletConsumer.onCryptletResult, (requestId, payload));
        uint256 maxReason = MAX_REASON_BYTES;
        assembly ("memory-safe") {
            success := call(gasLimit, consumer, 0, add(data, 0x20), mload(data), 0, 0)
            let size := returndatasize()
            if gt(size, maxReason) {
                size := maxReason
            }
            reason := mload(0x40)
            mstore(reason, size)
            returndatacopy(add(reason, 0x20), 0, size)
            mstore(0x40, add(add(reason, 0x20), and(add(size, 0x1f), not(0x1f))))
        }
    }
}
