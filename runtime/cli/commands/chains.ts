/**
 * `cryptlet chains`: every configured chain with its head block, each relayer key's (lane's) address and balance,
 * and whether the endpoint answers with the configured chain id.
 *
 * @module
 */
import { FetchRequest, formatEther, JsonRpcProvider, Network } from "ethers";

import { keyProviderOf } from "../../bootstrap.ts";
import type { RuntimeConfig } from "../../config.ts";
import { ERR_CHAIN_ID_MISMATCH, ERR_CHAIN_RPC_UNAVAILABLE } from "../../chains/errors.ts";
import { redactSecrets, redactUrl } from "../../errors.ts";
import { KeyVaultSigner } from "../../keys/KeyVaultSigner.ts";

/** One chain's state. */
export interface ChainReport {
  name: string;
  chainId: number;
  /** The first RPC URL (the one probed) with credentials removed. */
  rpcUrl: string;
  ok: boolean;
  headBlock?: number;
  signer?: string;
  /** Writer balance, wei (decimal string) and ether. */
  balanceWei?: string;
  balanceEth?: string;
  /** Every relayer key (lane): `signer` first, then `laneSigners`, each with its balance (wei and ether). */
  lanes?: { signer: string; balanceWei: string; balanceEth: string }[];
  contracts: RuntimeConfig["chains"][number]["contracts"];
  /** Why `ok` is false (code and message). */
  error?: { code: string; message: string };
}

/**
 * Probes every chain (in parallel, `timeoutMs` each).
 *
 * @example
 * ```ts
 * import { loadRuntimeConfig } from "./runtime/config.ts";
 * import { describeChains } from "./runtime/cli/commands/chains.ts";
 * for (const c of await describeChains(loadRuntimeConfig("cryptlet.config.json"))) console.log(c.name, c.headBlock);
 * ```
 */
export async function describeChains(config: RuntimeConfig, timeoutMs = 5000): Promise<ChainReport[]> {
  return Promise.all(
    config.chains.map(async (chain): Promise<ChainReport> => {
      const base = {
        name: chain.name,
        chainId: chain.chainId,
        rpcUrl: redactUrl(chain.rpcUrls[0] ?? ""),
        contracts: chain.contracts,
      };
      // Each request has the deadline too (the balance read comes after the race below).
      const request = new FetchRequest(chain.rpcUrls[0] ?? "");
      request.timeout = timeoutMs;
      const provider = new JsonRpcProvider(request, Network.from(chain.chainId), { staticNetwork: true });
      try {
        const timeout = new Promise<never>((_, reject) =>
          setTimeout(
            () =>
              reject(
                Object.assign(new Error(`no answer in ${timeoutMs} ms`), { code: ERR_CHAIN_RPC_UNAVAILABLE.code }),
              ),
            timeoutMs,
          ).unref(),
        );
        const [remoteChainId, headBlock, signers] = await Promise.race([
          Promise.all([
            provider.send("eth_chainId", []) as Promise<string>,
            provider.getBlockNumber(),
            Promise.all(
              [chain.signer, ...chain.laneSigners].map((ref) =>
                new KeyVaultSigner(keyProviderOf(ref, config)).getAddress(),
              ),
            ),
          ]),
          timeout,
        ]);
        const lanes = await Promise.all(
          signers.map(async (signer) => {
            const balance = await provider.getBalance(signer);
            return { signer, balanceWei: balance.toString(), balanceEth: formatEther(balance) };
          }),
        );
        const matches = Number(remoteChainId) === chain.chainId;
        return {
          ...base,
          ok: matches,
          headBlock,
          signer: lanes[0]!.signer,
          balanceWei: lanes[0]!.balanceWei,
          balanceEth: lanes[0]!.balanceEth,
          lanes,
          ...(matches
            ? {}
            : {
                error: {
                  code: ERR_CHAIN_ID_MISMATCH.code,
                  message: `endpoint answers chain id ${Number(remoteChainId)}`,
                },
              }),
        };
      } catch (error) {
        const e = error as { code?: unknown; shortMessage?: unknown; message?: unknown };
        return {
          ...base,
          ok: false,
          error: {
            code: typeof e.code === "string" && e.code.startsWith("ERR_") ? e.code : ERR_CHAIN_RPC_UNAVAILABLE.code,
            message: redactSecrets(String(e.shortMessage ?? e.message ?? error)),
          },
        };
      } finally {
        provider.destroy();
      }
    }),
  );
}
