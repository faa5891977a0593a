/**
 * `@cryptlet/cold-chain-sla`: decides whether a window of freezer cold-room readings meets the frozen-goods SLA
 * (≤ −18 °C after commissioning) and names every excursion (start, end, duration, maximum, door). The JSON report is
 * sealed (JWE) for the manufacturer, the carrier and the retailer; the consortium chain records the result, the
 * public chain anchors only its hash.
 *
 * Input: {@link ColdChainInput}; output: {@link ColdChainReport}. The rule lives in `./sla.ts`.
 *
 * @example
 * ```ts
 * // as the sandbox calls it (ctx from the host)
 * const report = await cryptlet.default.run({ deviceId: "135_1570",
 *   readings: [{ at: 1689066120, roomC: -35.2, door: false }] }, ctx);
 * // { deviceId: "135_1570", compliant: true, excursions: [], ... }
 * ```
 */
import { defineCryptlet } from "cryptlet-runtime/sdk";
import { evaluateColdChain } from "./sla.ts";
import type { ColdChainInput, ColdChainReport } from "./sla.ts";

export default defineCryptlet<ColdChainInput, ColdChainReport>({
  run(input) {
    // No ctx.log: logs are stored in the clear, and this Cryptlet's output is sealed.
    return evaluateColdChain(input);
  },
});
