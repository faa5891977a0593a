// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/**
 * @title TestERC20
 * @notice Test double: an ERC-20 anyone can mint, with an optional fee on transfer (burned from the amount sent)
 * to test that the lockbox refuses fee-on-transfer tokens.
 */
contract TestERC20 is ERC20 {
    /// @notice The fee taken from each transfer between two accounts, in basis points (0: none).
    uint256 public feeBps;

    /// @notice The fee changed to `feeBps`.
    event FeeSet(uint256 feeBps);

    constructor(string memory name_, string memory symbol_) ERC20(name_, symbol_) {}

    /// @notice Mints `amount` to `to`.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Sets the fee on transfer to `feeBps_` basis points.
    function setFeeBps(uint256 feeBps_) external {
        feeBps = feeBps_;
        emit FeeSet(feeBps_);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (feeBps == 0 || from == address(0) || to == address(0)) {
            super._update(from, to, value);
            return;
        }
        uint256 fee = (value * feeBps) / 10_000;
        super._update(from, address(0), fee);
        super._update(from, to, value - fee);
    }
}
