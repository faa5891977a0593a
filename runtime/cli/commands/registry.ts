/**
 * `cryptlet registry rotate-signer <old> <new>`: step 2 of a result signer's rotation (docs/operations.md,
 * "Rotating a signer key"): `CryptletRegistry.rotateSigner(old, new)` on every configured chain that has a registry.
 *
 * Every chain is read first, and nothing is sent unless every chain allows the rotation: on each registry `old` must
 * be a trusted signer and `new` must not be one (a chain where the rotation already landed, `new` trusted and `old`
 * not, is reported `done` and left alone, so a command cut short is simply run again). Then either:
 * - without `--key`: it prints each registry's transaction (`to`, `data`) for the holder of `SIGNER_MANAGER_ROLE`
 *   (in a consortium, usually its governance multisig) to submit; or
 * - with `--key <file>` (a local secp256k1 JWK: development and test chains; refused under `NODE_ENV=production`):
 *   it checks that the key's address holds the role on every registry, sends the transactions one chain at a
 *   time, waits for each chain's `confirmations`, and reads the registry again: `isSigner(new)` and not
 *   `isSigner(old)`.
 *
 * Every JSON-RPC request has the `timeoutMs` deadline; a confirmation wait has `confirmTimeoutMs`.
 *
 * @module
 */
import { Contract, getAddress, Interface, isAddress, id } from "ethers";

import type { RuntimeConfig } from "../../config.ts";
import { KeyVaultSigner } from "../../keys/KeyVaultSigner.ts";
import { LocalKeyProvider } from "../../keys/LocalKeyProvider.ts";
import { CliUsageError, RotateSignerRefusedError } from "../errors.ts";
import { rpcProvider } from "./verify.ts";

/** The registry's functions this command uses (contracts/CryptletRegistry.sol). */
const REGISTRY_ABI = [
  "function rotateSigner(address oldSigner, address newSigner)",
  "function isSigner(address signer) view returns (bool)",
  "function hasRole(bytes32 role, address account) view returns (bool)",
] as const;
const REGISTRY = new Interface(REGISTRY_ABI);
/** `CryptletRegistry.SIGNER_MANAGER_ROLE`. */
export const SIGNER_MANAGER_ROLE = id("SIGNER_MANAGER_ROLE");

/** Whether `registry` trusts each of `addresses` now (`isSigner`). */
async function trusts(registry: Contract, ...addresses: string[]): Promise<boolean[]> {
  return Promise.all(addresses.map(async (address) => (await registry.getFunction("isSigner")(address)) as boolean));
}

/** One chain's part of a rotation. */
export interface RotationStep {
  chain: string;
  chainId: number;
  registry: string;
  /**
   * `pending`: the transaction to send (without `--key`); `sent`: sent, confirmed and read back; `done`: the
   * registry already trusted `new` and not `old`, nothing sent.
   */
  status: "pending" | "sent" | "done";
  /** The transaction: the registry and the calldata of `rotateSigner(old, new)`. */
  to: string;
  data: string;
  /** With `--key`: the transaction hash and its block. */
  txHash?: string;
  blockNumber?: number;
}

/** Options of {@link rotateSigner}. */
export interface RotateSignerOptions {
  /** Only these chains (by name); default every chain with a registry. */
  chains?: string[];
  /** A local secp256k1 JWK file holding `SIGNER_MANAGER_ROLE`: send the transactions with it. */
  keyFile?: string;
  /** Deadline of each JSON-RPC request, ms. Default 10000. */
  timeoutMs?: number;
  /** Deadline of each transaction's confirmations, ms. Default 120000. */
  confirmTimeoutMs?: number;
}

/**
 * Rotates a trusted result signer in every configured registry (see the module documentation).
 * @param oldSigner - the address the registries trust now (the key's previous version, `keys rotate` prints it).
 * @param newSigner - the address of the new version.
 * @returns one step per chain, in the configuration's order.
 * @throws CliUsageError (`ERR_CLI_USAGE`, exit 2) for an address that is not one, the same address twice, an
 *   unknown chain name, or no chain with a registry; RotateSignerRefusedError (`ERR_CLI_ROTATE_REFUSED`, exit 1)
 *   when a chain's registry does not trust `old`, already trusts `new` but still `old`, or (with `--key`) the key
 *   lacks `SIGNER_MANAGER_ROLE` there, in which case nothing was sent anywhere; the key provider's errors
 *   (`ERR_LOCAL_KEY_IN_PRODUCTION`); ethers' errors for an RPC failure or a reverted transaction.
 */
export async function rotateSigner(
  config: RuntimeConfig,
  oldSigner: string,
  newSigner: string,
  options: RotateSignerOptions = {},
): Promise<RotationStep[]> {
  for (const [name, value] of [
    ["old", oldSigner],
    ["new", newSigner],
  ] as const) {
    if (!isAddress(value)) throw new CliUsageError(`<${name}> is not an address: ${value}`, name);
  }
  const from = getAddress(oldSigner);
  const to = getAddress(newSigner);
  if (from === to) throw new CliUsageError("<old> and <new> are the same address", "new");
  for (const name of options.chains ?? []) {
    if (!config.chains.some((c) => c.name === name)) throw new CliUsageError(`no chain named ${name}`, "chain");
  }
  const chains = config.chains.filter(
    (c) => c.contracts.registry !== undefined && (options.chains === undefined || options.chains.includes(c.name)),
  );
  if (chains.length === 0) throw new CliUsageError("no configured chain has a registry (contracts.registry)", "chain");

  const timeoutMs = options.timeoutMs ?? 10_000;
  const data = REGISTRY.encodeFunctionData("rotateSigner", [from, to]);
  const providers = chains.map((chain) => rpcProvider(chain.rpcUrls[0] ?? "", chain.chainId, timeoutMs));
  const signer = options.keyFile === undefined ? undefined : new LocalKeyProvider({ keyFile: options.keyFile });
  try {
    const sender = signer === undefined ? undefined : await new KeyVaultSigner(signer).getAddress();
    // Read every chain before anything is sent.
    const steps: RotationStep[] = [];
    for (const [i, chain] of chains.entries()) {
      const registry = new Contract(chain.contracts.registry!, REGISTRY, providers[i]);
      const [trustsOld, trustsNew] = await trusts(registry, from, to);
      const step = {
        chain: chain.name,
        chainId: chain.chainId,
        registry: chain.contracts.registry!,
        to: chain.contracts.registry!,
        data,
      };
      if (trustsNew && !trustsOld) {
        steps.push({ ...step, status: "done" });
        continue;
      }
      if (!trustsOld || trustsNew) {
        throw new RotateSignerRefusedError(
          chain.name,
          !trustsOld ? `its registry does not trust ${from}` : `its registry already trusts ${to} (and still ${from})`,
        );
      }
      if (sender !== undefined && !((await registry.getFunction("hasRole")(SIGNER_MANAGER_ROLE, sender)) as boolean)) {
        throw new RotateSignerRefusedError(chain.name, `${sender} (--key) does not hold SIGNER_MANAGER_ROLE there`);
      }
      steps.push({ ...step, status: "pending" });
    }
    if (signer === undefined) return steps;

    for (const [i, chain] of chains.entries()) {
      const step = steps[i]!;
      if (step.status === "done") continue;
      const wallet = new KeyVaultSigner(signer, providers[i]);
      const sent = await wallet.sendTransaction({ to: step.to, data });
      const receipt = await sent.wait(chain.confirmations, options.confirmTimeoutMs ?? 120_000);
      if (!receipt || receipt.status !== 1) {
        throw new RotateSignerRefusedError(chain.name, `its transaction ${sent.hash} did not succeed`);
      }
      // Read back from the chain: the rotation is what the registry now says, not what was sent.
      const [trustsOld, trustsNew] = await trusts(new Contract(step.registry, REGISTRY, providers[i]), from, to);
      if (trustsOld || !trustsNew) {
        throw new RotateSignerRefusedError(
          chain.name,
          `after ${sent.hash} its registry ${trustsOld ? `still trusts ${from}` : `does not trust ${to}`}`,
        );
      }
      steps[i] = { ...step, status: "sent", txHash: sent.hash, blockNumber: receipt.blockNumber };
    }
    return steps;
  } finally {
    for (const provider of providers) provider.destroy();
  }
}
