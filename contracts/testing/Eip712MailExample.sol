// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

/**
 * @title Eip712MailExample
 * @notice Test fixture: EIP-712's own "Ether Mail" example (the specification's Example.sol, CC0) hashed the way
 * `CryptletProofs` hashes Cryptlet results, so the specification's test vector checks our hashing approach.
 */
contract Eip712MailExample {
    struct Person {
        string name;
        address wallet;
    }

    struct Mail {
        Person from;
        Person to;
        string contents;
    }

    bytes32 private constant DOMAIN_TYPEHASH = keccak256(
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    );
    bytes32 private constant PERSON_TYPEHASH = keccak256("Person(string name,address wallet)");
    bytes32 private constant MAIL_TYPEHASH = keccak256(
        "Mail(Person from,Person to,string contents)Person(string name,address wallet)"
    );

    /// @notice The domain separator of `{name, version, chainId, verifyingContract}`.
    function domainSeparator(
        string calldata name,
        string calldata version,
        uint256 chainId,
        address verifyingContract
    ) public pure returns (bytes32) {
        return
            keccak256(
                abi.encode(
                    DOMAIN_TYPEHASH,
                    keccak256(bytes(name)),
                    keccak256(bytes(version)),
                    chainId,
                    verifyingContract
                )
            );
    }

    /// @notice `hashStruct(mail)`.
    function hashMail(Mail calldata mail) public pure returns (bytes32) {
        return
            keccak256(
                abi.encode(MAIL_TYPEHASH, _hashPerson(mail.from), _hashPerson(mail.to), keccak256(bytes(mail.contents)))
            );
    }

    /// @notice The signer of `mail` under `separator`, or reverts (OpenZeppelin `ECDSA`).
    function recoverSigner(
        bytes32 separator,
        Mail calldata mail,
        bytes calldata signature
    ) external pure returns (address) {
        return ECDSA.recover(MessageHashUtils.toTypedDataHash(separator, hashMail(mail)), signature);
    }

    function _hashPerson(Person calldata person) private pure returns (bytes32) {
        return keccak256(abi.encode(PERSON_TYPEHASH, keccak256(bytes(person.name)), person.wallet));
    }
}
