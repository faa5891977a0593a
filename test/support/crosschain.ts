/**
 * Test support for the cross-chain contracts (docs/crosschain.md): deploys `CryptletLockbox` and
 * `CryptletWrappedToken` on one Hardhat chain (so the source and the destination chain id are the same number, and
 * the two are told apart by contract), encodes their outputs and signs them as results of the bridge Cryptlet, as the
 * runtime would. Used by test/contracts/crosschain.test.ts and test/contracts/crosschainProperties.test.ts.
 */
import { AbiCoder, MaxUint256, id, keccak256, type Signer, type TransactionReceipt, type Wallet } from "ethers";

import type { CryptletResult, Hex32 } from "../../runtime/attestation/eip712.ts";
import { parseChainsConfig, type ChainConfig } from "../../runtime/chains/config.ts";
import {
  cryptletIdOf,
  deploy,
  deployStack,
  makeResult,
  signResult,
  type AnyContract,
  type CryptletStack,
  type HardhatEthers,
} from "./contracts.ts";

/** The bridge Cryptlet whose results both contracts accept. */
export const BRIDGE = cryptletIdOf("@cryptlet/bridge");
/** The bridge Cryptlet's code hash, approved in the registry by {@link deployBridge}. */
export const BRIDGE_CODE = id("bridge-code-v1") as Hex32;
/** Output kind of a mint result (`CrossChainOutputs.KIND_MINT`). */
export const KIND_MINT = 1n;
/** Output kind of a release result (`CrossChainOutputs.KIND_RELEASE`). */
export const KIND_RELEASE = 2n;
/** Output kind of a refund result (`CrossChainOutputs.KIND_REFUND`). */
export const KIND_REFUND = 3n;

const abi = AbiCoder.defaultAbiCoder();

/**
 * The ABI type of a mint output (`CrossChainOutputs.MintOutput`, 288 bytes), as docs/crosschain.md lists it. Its
 * fields are all static, so `abi.encode` of one such tuple is the encoding of its fields one after the other.
 */
const MINT_OUTPUT =
  "tuple(uint8 kind, bytes32 lockId, uint256 sourceChainId, address lockbox, uint256 destinationChainId, address token, address recipient, uint256 amount, uint64 deadline)";
/** The ABI type of a release output (`CrossChainOutputs.ReleaseOutput`, 256 bytes). */
const RELEASE_OUTPUT =
  "tuple(uint8 kind, bytes32 burnId, uint256 sourceChainId, address lockbox, uint256 destinationChainId, address token, address recipient, uint256 amount)";
/** The ABI type of a refund output (`CrossChainOutputs.RefundOutput`, 320 bytes). */
const REFUND_OUTPUT =
  "tuple(uint8 kind, bytes32 lockId, uint256 sourceChainId, address lockbox, uint256 destinationChainId, address token, address sender, uint256 amount, uint64 deadline, uint64 observedAt)";

/** The route every output names: the source chain and lockbox, the destination chain and wrapped token. */
export interface Route {
  sourceChainId: bigint;
  lockbox: string;
  destinationChainId: bigint;
  token: string;
}

/** The fields of a mint output (`CrossChainOutputs.MintOutput`). */
export interface MintFields extends Route {
  kind: bigint;
  lockId: string;
  recipient: string;
  amount: bigint;
  deadline: bigint;
}

/** The fields of a release output (`CrossChainOutputs.ReleaseOutput`). */
export interface ReleaseFields extends Route {
  kind: bigint;
  burnId: string;
  recipient: string;
  amount: bigint;
}

/** The fields of a refund output (`CrossChainOutputs.RefundOutput`). */
export interface RefundFields extends Route {
  kind: bigint;
  lockId: string;
  sender: string;
  amount: bigint;
  deadline: bigint;
  observedAt: bigint;
}

/** The payload of a mint result: `abi.encode(MintOutput)`, the fields taken by name. */
export const mintPayload = (f: MintFields) => abi.encode([MINT_OUTPUT], [f]);
/** The payload of a release result: `abi.encode(ReleaseOutput)`, the fields taken by name. */
export const releasePayload = (f: ReleaseFields) => abi.encode([RELEASE_OUTPUT], [f]);
/** The payload of a refund result: `abi.encode(RefundOutput)`, the fields taken by name. */
export const refundPayload = (f: RefundFields) => abi.encode([REFUND_OUTPUT], [f]);

/**
 * The id of the lock (of a lockbox) or burn (of a wrapped token) with `nonce`, as the contracts compute it:
 * `keccak256(abi.encode(chainId, contract, nonce))`.
 */
export const transferIdOf = (chainId: bigint, contract: string, nonce: bigint) =>
  keccak256(abi.encode(["uint256", "address", "uint256"], [chainId, contract, nonce]));

/** A result as a relayer submits it. */
export interface Signed {
  result: CryptletResult;
  payload: string;
  signatures: string[];
}

/** Options of a signature: another code hash, other wallets, another Cryptlet. */
export interface SignOptions {
  code?: Hex32;
  wallets?: readonly Wallet[];
  cryptletId?: Hex32;
}

/**
 * Signs `payload` as the result that answers `requestId`: of the bridge Cryptlet with its approved code hash, by
 * the first two of the stack's trusted wallets (the threshold), unless `options` says otherwise.
 */
export async function signOutput(
  s: CryptletStack,
  requestId: Hex32,
  payload: string,
  options: SignOptions = {},
): Promise<Signed> {
  const result = makeResult(options.cryptletId ?? BRIDGE, requestId, options.code ?? BRIDGE_CODE, payload);
  const signatures = await signResult(options.wallets ?? s.signers.slice(0, 2), result);
  return { result, payload, signatures };
}

/** `contract` with transactions sent by `signer`. */
export const as = (contract: AnyContract, signer: Signer) => contract.connect(signer) as AnyContract;

/** The one event `name` that `contract` emitted in `receipt` (expects exactly one). */
export function eventOf(contract: AnyContract, receipt: TransactionReceipt, name: string) {
  const found = receipt.logs
    .filter((log) => log.address === contract.target)
    .map((log) => contract.interface.parseLog(log))
    .filter((parsed) => parsed?.name === name);
  expect(found).toHaveLength(1);
  return found[0]!;
}

/** The latest block of the chain. */
export async function latestBlock(ethers: HardhatEthers) {
  return (await ethers.provider.getBlock("latest"))!;
}

/** The next block (including the pending block that calls and gas estimates run in) gets timestamp `t`. */
export async function setNextTime(ethers: HardhatEthers, t: bigint): Promise<void> {
  await ethers.provider.send("evm_setNextBlockTimestamp", [Number(t)]);
}

/** Mines an empty block at timestamp `t`. */
export async function mineAt(ethers: HardhatEthers, t: bigint): Promise<void> {
  await setNextTime(ethers, t);
  await ethers.provider.send("evm_mine", []);
}

/** A test consortium with a lockbox for a test ERC-20 and its wrapped token as the peer on this chain. */
export interface Bridge {
  s: CryptletStack;
  /** The `TestERC20` the lockbox holds. */
  token: AnyContract;
  lockbox: AnyContract;
  wrapped: AnyContract;
  chainId: bigint;
  /** This chain, the lockbox, this chain again and the wrapped token: the route of every output. */
  route: Route;
}

/**
 * Deploys a test consortium (3 trusted wallets, threshold 2) that approves the bridge Cryptlet's code, a test
 * ERC-20, a `CryptletLockbox` for it (owned by the stack's admin) and a `CryptletWrappedToken` (18 decimals) set as
 * the lockbox's peer on this chain. Each of the first `holders` of the stack's other accounts gets `amount` tokens
 * and approves the lockbox for all of them.
 */
export async function deployBridge(holders: number, amount: bigint): Promise<Bridge> {
  const s = await deployStack(3, 2);
  await (await s.registry.approveCodeHash(BRIDGE, BRIDGE_CODE)).wait();
  const chainId = (await s.ethers.provider.getNetwork()).chainId;
  const token = await deploy(s.ethers, "TestERC20", ["Test Token", "TST"]);
  const lockbox = await deploy(s.ethers, "CryptletLockbox", [
    await token.getAddress(),
    await s.registry.getAddress(),
    BRIDGE,
    await s.admin.getAddress(),
  ]);
  const lockboxAddress = await lockbox.getAddress();
  const wrapped = await deploy(s.ethers, "CryptletWrappedToken", [
    "Wrapped Test Token",
    "wTST",
    18,
    await s.registry.getAddress(),
    BRIDGE,
    chainId,
    lockboxAddress,
  ]);
  const wrappedAddress = await wrapped.getAddress();
  await (await lockbox.setPeer(chainId, wrappedAddress)).wait();
  for (const holder of s.others.slice(0, holders)) {
    await (await token.mint(await holder.getAddress(), amount)).wait();
    await (await as(token, holder).approve(lockboxAddress, MaxUint256)).wait();
  }
  const route = { sourceChainId: chainId, lockbox: lockboxAddress, destinationChainId: chainId, token: wrappedAddress };
  return { s, token, lockbox, wrapped, chainId, route };
}

/**
 * A chain of the runtime's configuration (parsed by the real parser) with only what the cross-chain tests read:
 * name, chain id, one RPC URL and the `contracts.crosschain` entries; its signer is never used.
 */
export function crosschainChainConfig(
  name: string,
  chainId: number,
  rpcUrl: string,
  crosschain: Record<string, { lockbox?: string; wrappedTokens?: string[] }> = {},
): ChainConfig {
  return parseChainsConfig({
    chains: [
      {
        name,
        chainId,
        rpcUrl,
        signer: { type: "local", jwkPath: "/nonexistent/unused.jwk" },
        contracts: { crosschain },
      },
    ],
  }).chains[0]!;
}
