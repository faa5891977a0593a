/**
 * Test support for the triggers: deploys compiled test contracts on a `hardhat node`, and lists the events the
 * pipeline accepted.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";

import { ContractFactory, type Contract, type Signer } from "ethers";

import type { Pipeline } from "../../runtime/queue/pipeline.ts";
import { QUEUES, type CryptletEvent } from "../../runtime/queue/topology.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..");

/**
 * Deploys a contract from its Hardhat artifact (`artifacts/contracts/<file>/<name>.json`, built by
 * `npm run build:contracts`).
 */
export async function deployArtifact(
  signer: Signer,
  file: string,
  name: string,
  args: unknown[] = [],
): Promise<Contract> {
  const artifact = JSON.parse(
    await readFile(path.join(ROOT, "artifacts", "contracts", file, `${name}.json`), "utf8"),
  ) as {
    abi: unknown[];
    bytecode: string;
  };
  const contract = await new ContractFactory(artifact.abi as never, artifact.bytecode, signer).deploy(...args);
  await contract.waitForDeployment();
  return contract as Contract;
}

/** Every job of the `events` queue (any state) with its id. */
export async function eventJobs(pipeline: Pipeline): Promise<{ id: string; event: CryptletEvent }[]> {
  const jobs = await pipeline
    .queue<CryptletEvent>(QUEUES.events)
    .getJobs(["waiting", "delayed", "active", "completed", "failed", "prioritized", "waiting-children"], 0, -1);
  return jobs.map((j) => ({ id: String(j.id), event: j.data }));
}
