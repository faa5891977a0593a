// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";

import {CryptletProofs} from "./CryptletProofs.sol";
import {ICryptletRegistry} from "./interfaces/ICryptletRegistry.sol";

/**
 * @title CryptletPriceFeed
 * @notice A price feed that implements Chainlink's `AggregatorV3Interface`, so contracts written for Chainlink
 * feeds read Cryptlet results unchanged. Answers arrive only as verified results of one Cryptlet.
 *
 * The payload of a result is `abi.encode(int256 answer, uint8 decimals, uint64 observedAt)` (the output ABI type
 * `tuple(int256 answer, uint8 decimals, uint64 observedAt)`, 96 bytes). Round semantics follow Chainlink's OCR
 * aggregators: each accepted answer opens a new round, `roundId` increases by one, `startedAt` is the observation
 * time (`observedAt`), `updatedAt` the block time the answer was written, and `answeredInRound == roundId`.
 * Observations must be strictly newer than the latest round's; an unknown round reverts.
 */
contract CryptletPriceFeed is AggregatorV3Interface {
    struct Round {
        int192 answer;
        uint32 startedAt;
        uint32 updatedAt;
    }

    /// @notice The result is for another Cryptlet than this feed's.
    error CryptletFeedWrongCryptlet(bytes32 expected, bytes32 actual);
    /// @notice `keccak256(payload)` differs from the signed `outputHash`.
    error CryptletFeedOutputHashMismatch(bytes32 outputHash, bytes32 payloadHash);
    /// @notice The payload is not 96 bytes of `(int256, uint8, uint64)`.
    error CryptletFeedMalformedPayload(uint256 length);
    /// @notice The payload's decimals differ from the feed's.
    error CryptletFeedDecimalsMismatch(uint8 expected, uint256 actual);
    /// @notice The answer does not fit in int192.
    error CryptletFeedAnswerOutOfRange(int256 answer);
    /// @notice The observation time is zero or does not fit in uint32.
    error CryptletFeedObservationTimeOutOfRange(uint256 observedAt);
    /// @notice The observation is not newer than the latest round's.
    error CryptletFeedStaleObservation(uint256 observedAt, uint256 latestObservedAt);
    /// @notice A result with this `resultId` was applied already.
    error CryptletFeedAlreadyRecorded(bytes32 resultId);
    /// @notice No round with this id (Chainlink: "No data present").
    error CryptletFeedUnknownRound(uint80 roundId);

    /// @notice Chainlink's `AggregatorInterface` event: a new answer.
    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);
    /// @notice Chainlink's `AggregatorInterface` event: a new round (`startedAt` is the observation time).
    event NewRound(uint256 indexed roundId, address indexed startedBy, uint256 startedAt);
    /// @notice The result `resultId` was applied as round `roundId`.
    event CryptletResultApplied(bytes32 indexed resultId, uint80 indexed roundId);

    /// @notice The registry that verifies proofs.
    ICryptletRegistry public immutable registry;
    /// @notice The only Cryptlet whose results this feed accepts.
    bytes32 public immutable cryptletId;

    uint8 private immutable _decimals;
    uint256 private immutable _version;
    string private _description;

    uint80 private _latestRound;
    mapping(uint80 roundId => Round) private _rounds;
    mapping(bytes32 resultId => uint80 roundId) private _resultRounds;

    /**
     * @param registry_ The consortium's registry.
     * @param cryptletId_ The Cryptlet whose results feed this aggregator.
     * @param decimals_ Decimals of every answer (e.g. 8 for USD prices).
     * @param description_ E.g. "ETH / USD".
     * @param version_ The aggregator version reported by `version()`.
     */
    constructor(
        ICryptletRegistry registry_,
        bytes32 cryptletId_,
        uint8 decimals_,
        string memory description_,
        uint256 version_
    ) {
        registry = registry_;
        cryptletId = cryptletId_;
        _decimals = decimals_;
        _description = description_;
        _version = version_;
    }

    /**
     * @notice Applies a signed price result as a new round.
     * @return roundId The new round's id.
     */
    function submit(
        CryptletProofs.CryptletResult calldata result,
        bytes calldata payload,
        bytes[] calldata signatures
    ) external virtual returns (uint80 roundId) {
        if (result.cryptletId != cryptletId) revert CryptletFeedWrongCryptlet(cryptletId, result.cryptletId);
        if (_resultRounds[result.resultId] != 0) revert CryptletFeedAlreadyRecorded(result.resultId);
        bytes32 payloadHash = keccak256(payload);
        if (payloadHash != result.outputHash) revert CryptletFeedOutputHashMismatch(result.outputHash, payloadHash);
        (int192 answer, uint32 observedAt) = _decode(payload);
        uint80 latest = _latestRound;
        uint32 latestObservedAt = _rounds[latest].startedAt;
        if (observedAt <= latestObservedAt) revert CryptletFeedStaleObservation(observedAt, latestObservedAt);
        registry.verifyResultProof(result, signatures);

        roundId = latest + 1;
        _latestRound = roundId;
        _rounds[roundId] = Round({answer: answer, startedAt: observedAt, updatedAt: uint32(block.timestamp)});
        _resultRounds[result.resultId] = roundId;
        emit NewRound(roundId, msg.sender, observedAt);
        emit AnswerUpdated(answer, roundId, block.timestamp);
        emit CryptletResultApplied(result.resultId, roundId);
    }

    /// @notice Whether the result `resultId` was applied (for idempotent writers).
    function isRecorded(bytes32 resultId) external view returns (bool) {
        return _resultRounds[resultId] != 0;
    }

    /// @notice The round that result `resultId` became (0 if none).
    function roundOf(bytes32 resultId) external view returns (uint80) {
        return _resultRounds[resultId];
    }

    /// @inheritdoc AggregatorV3Interface
    function decimals() external view returns (uint8) {
        return _decimals;
    }

    /// @inheritdoc AggregatorV3Interface
    function description() external view returns (string memory) {
        return _description;
    }

    /// @inheritdoc AggregatorV3Interface
    function version() external view returns (uint256) {
        return _version;
    }

    /// @inheritdoc AggregatorV3Interface
    /// @dev Reverts with `CryptletFeedUnknownRound` for round 0 and rounds not yet answered.
    function getRoundData(
        uint80 roundId
    ) external view returns (uint80, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound) {
        return _roundData(roundId);
    }

    /// @inheritdoc AggregatorV3Interface
    /// @dev Reverts with `CryptletFeedUnknownRound(0)` before the first answer.
    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return _roundData(_latestRound);
    }

    function _roundData(uint80 roundId) private view returns (uint80, int256, uint256, uint256, uint80) {
        if (roundId == 0 || roundId > _latestRound) revert CryptletFeedUnknownRound(roundId);
        Round memory round = _rounds[roundId];
        return (roundId, round.answer, round.startedAt, round.updatedAt, roundId);
    }

    /// @dev Decodes `(int256 answer, uint8 decimals, uint64 observedAt)` with explicit range checks, so a bad
    /// payload gets a named error instead of an empty revert.
    function _decode(bytes calldata payload) private view returns (int192 answer, uint32 observedAt) {
        if (payload.length != 96) revert CryptletFeedMalformedPayload(payload.length);
        (int256 rawAnswer, uint256 rawDecimals, uint256 rawObservedAt) = abi.decode(
            payload,
            (int256, uint256, uint256)
        );
        if (rawDecimals != _decimals) revert CryptletFeedDecimalsMismatch(_decimals, rawDecimals);
        if (rawAnswer > type(int192).max || rawAnswer < type(int192).min)
            revert CryptletFeedAnswerOutOfRange(rawAnswer);
        if (rawObservedAt == 0 || rawObservedAt > type(uint32).max) {
            revert CryptletFeedObservationTimeOutOfRange(rawObservedAt);
        }
        answer = int192(rawAnswer);
        observedAt = uint32(rawObservedAt);
    }
}
