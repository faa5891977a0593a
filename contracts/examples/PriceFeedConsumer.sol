// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";

/**
 * @title PriceFeedConsumer
 * @notice Reads any `AggregatorV3Interface` feed (a Chainlink feed or a `CryptletPriceFeed`) the way Chainlink's
 * documentation recommends: `latestRoundData`, then reject a non-positive answer, an incomplete round and a stale
 * update (older than `maxStaleness` seconds).
 */
contract PriceFeedConsumer {
    /// @notice The feed answered zero or a negative price.
    error PriceFeedConsumerInvalidAnswer(int256 answer);
    /// @notice The round was not answered in itself (`answeredInRound < roundId`).
    error PriceFeedConsumerIncompleteRound(uint80 roundId, uint80 answeredInRound);
    /// @notice The latest update is older than `maxStaleness` (seconds).
    error PriceFeedConsumerStalePrice(uint256 updatedAt, uint256 blockTimestamp, uint256 maxStaleness);

    /// @notice The feed read.
    AggregatorV3Interface public immutable feed;
    /// @notice The oldest acceptable update, in seconds.
    uint256 public immutable maxStaleness;

    constructor(AggregatorV3Interface feed_, uint256 maxStaleness_) {
        feed = feed_;
        maxStaleness = maxStaleness_;
    }

    /**
     * @notice The latest price and its decimals.
     * @dev Reverts with `PriceFeedConsumerInvalidAnswer`, `PriceFeedConsumerIncompleteRound` or
     * `PriceFeedConsumerStalePrice`; a feed without data reverts with the feed's own error.
     */
    function latestPrice() external view returns (int256 answer, uint8 decimals) {
        (uint80 roundId, int256 price, , uint256 updatedAt, uint80 answeredInRound) = feed.latestRoundData();
        if (price <= 0) revert PriceFeedConsumerInvalidAnswer(price);
        if (answeredInRound < roundId) revert PriceFeedConsumerIncompleteRound(roundId, answeredInRound);
        if (block.timestamp - updatedAt > maxStaleness) {
            revert PriceFeedConsumerStalePrice(updatedAt, block.timestamp, maxStaleness);
        }
        return (price, feed.decimals());
    }
}
