/**
 * Flow: an oracle request from a Solidity consumer. `ExampleOracleConsumer` on the consortium chain asks
 * `@cryptlet/price-median` (params: one minute of the real Uniswap prices, as UTF-8 JSON); the trigger service
 * sees `CryptletRequested`, the pipeline runs the Cryptlet and fulfils the request through `CryptletOracle`,
 * which calls the consumer back. Checks that the consumer holds exactly the attested payload, and that its answer
 * is the median computed from the data files (reference.ts).
 * @module
 */
import { AbiCoder, Contract, ContractFactory, toUtf8Bytes } from "ethers";

import { loadMinuteInputs } from "../../../cryptlets/price-median/data/loadObservations.ts";
import { computeResultId, type Hex32 } from "../../attestation/eip712.ts";
import { cryptletIdOf } from "../../attestation/ids.ts";
import { artifactOf, interfaceOf } from "../../chains/contracts.ts";
import { checkConsumerRead } from "../checks.ts";
import { referencePriceMedians } from "../reference.ts";
import type { LocalStack } from "../stack.ts";
import type { FlowReport } from "./types.ts";

const NAME = "@cryptlet/price-median";

/** Asks once through the consumer contract and waits for the callback. */
export async function oracleFlow(stack: LocalStack, { minute = 720 } = {}): Promise<FlowReport> {
  const consortium = stack.chains.find((c) => c.name === "consortium")!;
  const { abi, bytecode } = artifactOf("ExampleOracleConsumer");
  const deployed = await new ContractFactory(abi, bytecode, consortium.chain.funder).deploy(
    consortium.contracts.oracle,
    cryptletIdOf(NAME),
  );
  await deployed.waitForDeployment();
  const consumer = new Contract(await deployed.getAddress(), abi, consortium.chain.funder);
  const { input } = (await loadMinuteInputs())[minute]!;
  const receiptAsk = await (await consumer.getFunction("ask")(toUtf8Bytes(JSON.stringify(input)))).wait();
  const oracle = interfaceOf("CryptletOracle");
  const requested = receiptAsk!.logs
    .map((log: { topics: readonly string[]; data: string }) => oracle.parseLog(log))
    .find((parsed: { name: string } | null) => parsed?.name === "CryptletRequested");
  const requestId = requested!.args.requestId as Hex32;
  const resultId = computeResultId(cryptletIdOf(NAME), requestId);
  const outcome = await stack.pipeline.waitForRun(resultId, 120_000);
  const receipts = outcome.status === "complete" ? [outcome.receipt] : [];
  const checks: FlowReport["checks"] = [
    {
      description: `request ${requestId.slice(0, 10)}… fulfilled through CryptletOracle`,
      ok: outcome.status === "complete" && outcome.receipt.status === "confirmed",
    },
  ];
  if (outcome.status === "complete") {
    const payload = (await consumer.getFunction("payloads")(requestId)) as string;
    const expected = outcome.receipt.bundle.payload.public?.data;
    const [decoded] = AbiCoder.defaultAbiCoder().decode(
      ["tuple(int256 answer, uint8 decimals, uint64 observedAt)"],
      payload,
    );
    const observedAt = input.observations[0]!.observedAt;
    const read = checkConsumerRead(
      "the consumer's callback received the price of the requested minute",
      decoded.answer as bigint,
      referencePriceMedians().get(observedAt),
    );
    checks.push({
      description: `${read.description} (the median of the two pools' prices, from the data files)${payload === expected ? "" : "; the consumer's payload differs from the attested payload"}`,
      ok: read.ok && payload === expected,
    });
  }
  return { name: "oracle request from ExampleOracleConsumer (consortium chain)", receipts, checks };
}
