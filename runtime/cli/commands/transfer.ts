/**
 * `cryptlet transfer <id>`: the transfer receipt of a cross-chain lock or burn (runtime/crosschain/transferReceipt.ts,
 * docs/crosschain.md): its legs on both chains read from the chains, the runs that wrote them from the result store,
 * and the checks that the two agree.
 *
 * @module
 */
import { ChainRpc } from "../../chains/rpc.ts";
import type { RuntimeConfig } from "../../config.ts";
import { transferReceiptOf, type TransferReceipt } from "../../crosschain/transferReceipt.ts";
import { ResultStore } from "../../queue/results.ts";
import { openRedis, redisEndpointOf } from "../../queue/redisClient.ts";

/**
 * The transfer receipt of `id` (a `lockId` or `burnId`, 0x + 64 hex digits) of package `cryptlet`, read with the
 * configured chains' JSON-RPC endpoints (the configuration's RPC deadline) and the configured Redis.
 * @throws CrosschainEventInvalidError (`ERR_CROSSCHAIN_EVENT_INVALID`) for an id no configured contract knows;
 *   CrosschainRouteUnknownError (`ERR_CROSSCHAIN_ROUTE_UNKNOWN`) when no chain lists the package's contracts;
 *   `ERR_CHAIN_RPC_UNAVAILABLE` when a chain does not answer.
 */
export async function transferReceipt(id: string, cryptlet: string, config: RuntimeConfig): Promise<TransferReceipt> {
  const redis = openRedis(redisEndpointOf(config), { maxRetriesPerRequest: 2, lazyConnect: true });
  try {
    await redis.connect();
    const chains = new Map(
      config.chains.map((chain) => [
        chain.name,
        { config: chain, writer: { rpc: new ChainRpc(chain, { requestTimeoutMs: config.resilience.rpcTimeoutMs }) } },
      ]),
    );
    return await transferReceiptOf({ ctx: { chains, results: new ResultStore(redis, config.prefix) } }, cryptlet, id);
  } finally {
    redis.disconnect();
  }
}

/** The receipt as lines for a terminal. */
export function formatTransferReceipt(receipt: TransferReceipt): string {
  return [
    `${receipt.kind} ${receipt.id} (${receipt.cryptlet}): ${receipt.status}, amount ${receipt.amount} from ${receipt.from} to ${receipt.to}`,
    ...receipt.legs.map(
      (leg) => `  ${leg.step.padEnd(8)} ${leg.chain} (chain ${leg.chainId}) block ${leg.blockNumber} tx ${leg.txHash}`,
    ),
    ...receipt.runs.map((run) => `  run ${run.mode.padEnd(8)} ${run.runId} ${run.status}`),
    ...receipt.checks.map((check) => `  ${check.ok ? "ok  " : "FAIL"} ${check.description}`),
  ].join("\n");
}
