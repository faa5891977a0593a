/**
 * The `cryptlet` command with a runtime configuration (real Redis, local key files made by `keys create`): deploy
 * into the package store (idempotent, an untrusted publisher refused), keys list and rotate, status of an unknown
 * run, chains with an unreachable endpoint.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { Redis } from "ioredis";

import { buildPackage } from "../../runtime/packages/build.ts";
import { cli, json, ROOT, type CliRun as Run } from "./cliProcess.ts";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const COLD_CHAIN = path.join(ROOT, "cryptlets", "cold-chain-sla");

let tmp: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "cryptlet-cli-config-"));
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("with a configuration (real Redis, local keys)", () => {
  let config: string;
  let prefix: string;
  let redis: Redis;

  let laneAddress = "";
  beforeAll(async () => {
    prefix = `cli${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
    redis = new Redis(REDIS_URL);
    const keysDir = path.join(tmp, "keys");
    await mkdir(keysDir);
    const created = await Promise.all(
      [
        ["signer-1.jwk.json", "signer"],
        ["attestation.jwk.json", "attestation"],
        ["writer.jwk.json", "signer"],
        ["publisher.jwk.json", "publisher"],
        ["writer-lane-1.jwk.json", "signer"],
      ].map(([file, kind]) =>
        cli(
          "keys",
          "create",
          path.join(keysDir, file as string),
          "--kind",
          kind as string,
          "--kid",
          "publisher-cli",
          "--json",
        ),
      ),
    );
    expect(created.map((r) => r.code)).toEqual([0, 0, 0, 0, 0]);
    laneAddress = json(created[4] as Run).address as string;
    expect(json(created[0] as Run).address).toMatch(/^0x[0-9a-fA-F]{40}$/);
    expect(json(created[3] as Run).jwk).not.toHaveProperty("d");
    config = path.join(tmp, "cryptlet.config.json");
    await writeFile(
      config,
      JSON.stringify({
        redisUrl: REDIS_URL,
        prefix,
        consortiumId: `0x${"11".repeat(32)}`,
        keys: {
          resultSigners: [{ type: "local", jwkPath: "keys/signer-1.jwk.json" }],
          attestation: { type: "local", jwkPath: "keys/attestation.jwk.json" },
        },
        chains: [
          {
            name: "consortium",
            chainId: 31337,
            rpcUrl: "http://127.0.0.1:9",
            signer: { type: "local", jwkPath: "keys/writer.jwk.json" },
            laneSigners: [{ type: "local", jwkPath: "keys/writer-lane-1.jwk.json" }],
            contracts: {},
          },
        ],
        packages: { trustedPublishers: [json(created[3] as Run).jwk] },
      }),
    );
  });

  afterAll(async () => {
    let cursor = "0";
    do {
      const [next, found] = await redis.scan(cursor, "MATCH", `*${prefix}*`, "COUNT", 1000);
      cursor = next;
      if (found.length > 0) await redis.del(...found);
    } while (cursor !== "0");
    await redis.quit();
  });

  test("deploy signs and stores the package (idempotent); the store has it under its codeHash", async () => {
    const publisherKey = path.join(tmp, "keys", "publisher.jwk.json");
    const first = await cli("deploy", COLD_CHAIN, "--config", config, "--publisher-key", publisherKey, "--json");
    expect(first.code).toBe(0);
    const built = await buildPackage(COLD_CHAIN, { outDir: false });
    expect(json(first)).toMatchObject({
      created: true,
      name: "@cryptlet/cold-chain-sla",
      codeHash: built.codeHash,
      kid: "publisher-cli",
    });
    const second = await cli("deploy", COLD_CHAIN, "--config", config, "--publisher-key", publisherKey, "--json");
    expect(json(second).created).toBe(false);
    expect(await redis.keys(`{${prefix}-packages}:*`)).not.toHaveLength(0);

    // A key the configuration does not trust is refused.
    const other = path.join(tmp, "other-publisher.jwk.json");
    expect((await cli("keys", "create", other, "--kind", "publisher", "--kid", "publisher-cli")).code).toBe(0);
    const refused = await cli("deploy", COLD_CHAIN, "--config", config, "--publisher-key", other, "--json");
    expect(refused.code).toBe(1);
    expect(json(refused).error.code).toBe("ERR_PUBLISHER_SIGNATURE_INVALID");
  });

  test("keys list and rotate (local); status of an unknown run; chains reports an unreachable chain", async () => {
    const list = await cli("keys", "list", "--config", config, "--json");
    expect(list.code).toBe(0);
    const roles = json(list) as { role: string; address?: string }[];
    expect(roles.map((k) => k.role)).toEqual([
      "result-signer:0",
      "attestation",
      "chain:consortium",
      "chain:consortium:lane:1",
    ]);
    // The lane's key is the file created for it (its address printed by `keys create`).
    expect(roles[3]?.address).toBe(laneAddress);
    const rotated = await cli("keys", "rotate", "result-signer:0", "--config", config, "--json");
    expect(rotated.code).toBe(0);
    const { before, after } = json(rotated);
    expect(before.address).toBe(roles[0]?.address);
    expect(after.address).not.toBe(before.address);
    expect((await cli("keys", "rotate", "nobody", "--config", config)).code).toBe(2);

    const status = await cli("status", `0x${"ab".repeat(32)}`, "--config", config, "--json");
    expect(status.code).toBe(1);
    expect(json(status).error.code).toBe("ERR_RUN_NOT_FOUND");

    const chains = await cli("chains", "--config", config, "--json");
    expect(chains.code).toBe(1);
    expect(json(chains)[0]).toMatchObject({
      name: "consortium",
      ok: false,
      error: { code: "ERR_CHAIN_RPC_UNAVAILABLE" },
    });
  });
});
