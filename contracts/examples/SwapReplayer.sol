// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/**
 * @title SwapReplayer
 * @notice Replays recorded Uniswap V3 `Swap` events on a local or test chain: it emits events with exactly the
 * signature, topics and data of `IUniswapV3PoolEvents.Swap`, from arguments given by an account holding
 * `REPLAYER_ROLE`, so off-chain consumers (a log trigger, a price Cryptlet) see the same logs as from the real pool
 * (only the emitting address differs). Many swaps are replayed per transaction to keep a day of data fast.
 *
 * IMPORTANT: this contract holds no tokens and moves none; its events are copies of history, not trades. Never point
 * a consumer that acts on real funds at a replayer.
 */
contract SwapReplayer is AccessControl {
    /// @notice Role allowed to call {replay}.
    bytes32 public constant REPLAYER_ROLE = keccak256("REPLAYER_ROLE");

    /// @notice Largest number of swaps in one {replay} call.
    uint256 public constant MAX_BATCH = 512;

    /// @notice One recorded swap: the `Swap` event's arguments, in the event's order.
    struct SwapRecord {
        address sender;
        address recipient;
        int256 amount0;
        int256 amount1;
        uint160 sqrtPriceX96;
        uint128 liquidity;
        int24 tick;
    }

    /**
     * @notice Identical to Uniswap V3's `IUniswapV3PoolEvents.Swap` (topic 0
     * `0xc42079f94a6350d7e6235f29174924f928cc2ac818eb64fed8004e115fbcca67`).
     * @param sender The address that initiated the swap call (indexed).
     * @param recipient The address that received the output of the swap (indexed).
     * @param amount0 The delta of the token0 balance of the pool.
     * @param amount1 The delta of the token1 balance of the pool.
     * @param sqrtPriceX96 The sqrt(price) of the pool after the swap, as a Q64.96.
     * @param liquidity The liquidity of the pool after the swap.
     * @param tick The log base 1.0001 of price of the pool after the swap.
     */
    event Swap(
        address indexed sender,
        address indexed recipient,
        int256 amount0,
        int256 amount1,
        uint160 sqrtPriceX96,
        uint128 liquidity,
        int24 tick
    );

    /// @notice Emitted once per {replay} call, after its `Swap` events.
    /// @param operator The caller.
    /// @param count Number of swaps replayed.
    event SwapsReplayed(address indexed operator, uint256 count);

    /// @notice {replay} was called with no swap.
    error SwapReplayerEmptyBatch();
    /// @notice {replay} was called with more than {MAX_BATCH} swaps.
    /// @param count The number of swaps given.
    /// @param max The limit, {MAX_BATCH}.
    error SwapReplayerBatchTooLarge(uint256 count, uint256 max);

    /// @param admin Receives `DEFAULT_ADMIN_ROLE` and `REPLAYER_ROLE`.
    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(REPLAYER_ROLE, admin);
    }

    /**
     * @notice Emits one `Swap` event per record, in order.
     * @dev Reverts with `AccessControlUnauthorizedAccount` without `REPLAYER_ROLE`, `SwapReplayerEmptyBatch` for an
     * empty batch, `SwapReplayerBatchTooLarge` beyond {MAX_BATCH}. About 5,000 gas per swap plus calldata.
     * @param swaps The recorded swaps, oldest first.
     */
    function replay(SwapRecord[] calldata swaps) external virtual onlyRole(REPLAYER_ROLE) {
        uint256 count = swaps.length;
        if (count == 0) revert SwapReplayerEmptyBatch();
        if (count > MAX_BATCH) revert SwapReplayerBatchTooLarge(count, MAX_BATCH);
        for (uint256 i = 0; i < count; ++i) {
            SwapRecord calldata s = swaps[i];
            emit Swap(s.sender, s.recipient, s.amount0, s.amount1, s.sqrtPriceX96, s.liquidity, s.tick);
        }
        emit SwapsReplayed(msg.sender, count);
    }
}
