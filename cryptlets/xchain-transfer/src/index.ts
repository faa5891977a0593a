/**
 * `@cryptlet/xchain-transfer`: attests cross-chain token transfers (docs/crosschain.md). A `Locked` log of a
 * `CryptletLockbox` becomes a MINT for the wrapped token on the destination chain, a `Burned` log of a
 * `CryptletWrappedToken` a RELEASE for the lockbox on the source chain, and the deadline watcher's read of a
 * destination chain showing a lock unminted after its deadline a REFUND.
 *
 * Input: a decoded log (`ChainLogInput` of runtime/triggers/decodeLog.ts) for a `chain-log` source, or
 * `RefundInput` (./transfer.ts) for a `chain-state` source. Output: `{ variant, value }`, `value` ABI-encoded as the
 * manifest's `output.abiOneOf[variant]` (0 MINT, 1 RELEASE, 2 REFUND). The logic lives in `./transfer.ts`, which
 * uses no sandbox or Node API, so the tests run it directly in Node and the sandbox runs the same code.
 *
 * @example
 * ```ts
 * // as the sandbox calls it, for a Locked log (ctx from the host)
 * const output = await cryptlet.default.run(lockedLog, ctx);
 * // { variant: 0, value: { kind: 1, lockId: "0x…", sourceChainId: "1", lockbox: "0x…", destinationChainId: "10",
 * //   token: "0x…", recipient: "0x…", amount: "300", deadline: 1704416400 } }
 * ```
 */
import { defineCryptlet } from "cryptlet-runtime/sdk";
import { attestTransfer } from "./transfer.ts";
import type { TransferEvent, TransferInput, TransferOutput } from "./transfer.ts";

const NAMES = ["MINT", "RELEASE", "REFUND"] as const;

export default defineCryptlet<TransferInput, TransferOutput, TransferEvent>({
  run(input, ctx) {
    const output = attestTransfer(input, ctx.event);
    const value = output.value;
    ctx.log(NAMES[output.variant], {
      id: "lockId" in value ? value.lockId : value.burnId,
      amount: value.amount,
      from: value.sourceChainId,
      to: value.destinationChainId,
    });
    return output;
  },
});
