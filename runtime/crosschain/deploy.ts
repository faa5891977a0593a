/**
 * Deploys one cross-chain route (docs/crosschain.md): a `CryptletLockbox` for an ERC-20 on the source chain and
 * its `CryptletWrappedToken` on the destination chain, each trusting the Cryptlet's results through its chain's
 * registry, and the lockbox's peer set (once). Used by the local stack (`npm start`) and the tests; a deployment
 * does the same with its own token and owner.
 *
 * @module
 */
import { Contract, ContractFactory, type ContractTransactionResponse, type Signer } from "ethers";

import { artifactOf, interfaceOf, type CryptletContractName } from "../chains/contracts.ts";

/** A deployed route: the addresses (checksummed) and chain ids. */
export interface DeployedRoute {
  sourceChainId: number;
  /** The locked ERC-20 on the source chain. */
  token: string;
  lockbox: string;
  destinationChainId: number;
  wrappedToken: string;
}

async function deploy(deployer: Signer, name: CryptletContractName, args: unknown[]): Promise<string> {
  const { abi, bytecode } = artifactOf(name);
  const contract = await new ContractFactory(abi, bytecode, deployer).deploy(...args);
  await contract.waitForDeployment();
  return contract.getAddress();
}

/**
 * Deploys a route.
 * @param source - the source chain's deployer (becomes the lockbox's owner), its chain id and registry.
 * @param destination - the destination chain's deployer, chain id and registry.
 * @param options.cryptletId - the cross-chain Cryptlet both contracts trust (keccak256 of its package name).
 * @param options.token - an existing ERC-20 on the source chain; absent: a new `TestERC20` ("Test Token", "TST",
 *   18 decimals) is deployed (a development token anyone can mint).
 * @param options.name, options.symbol - of the wrapped token (default "Wrapped <symbol>", "w<symbol>").
 * @returns the addresses; the lockbox's peer on the destination chain is the wrapped token.
 * @throws whatever the deployment transactions throw (ethers errors: the chains are reached directly).
 */
export async function deployCrosschainRoute(
  source: { deployer: Signer; chainId: number; registry: string },
  destination: { deployer: Signer; chainId: number; registry: string },
  options: { cryptletId: string; token?: string; name?: string; symbol?: string; decimals?: number },
): Promise<DeployedRoute> {
  const token = options.token ?? (await deploy(source.deployer, "TestERC20", ["Test Token", "TST"]));
  const symbol = options.symbol ?? "TST";
  const lockbox = await deploy(source.deployer, "CryptletLockbox", [
    token,
    source.registry,
    options.cryptletId,
    await source.deployer.getAddress(),
  ]);
  const wrappedToken = await deploy(destination.deployer, "CryptletWrappedToken", [
    options.name ?? `Wrapped ${symbol}`,
    `w${symbol}`,
    options.decimals ?? 18,
    destination.registry,
    options.cryptletId,
    source.chainId,
    lockbox,
  ]);
  const owned = new Contract(lockbox, interfaceOf("CryptletLockbox"), source.deployer);
  await ((await owned.getFunction("setPeer")(destination.chainId, wrappedToken)) as ContractTransactionResponse).wait();
  return { sourceChainId: source.chainId, token, lockbox, destinationChainId: destination.chainId, wrappedToken };
}
