/**
 * The long-running roles of a runtime process (`cryptlet serve <api|worker|triggers|all>`, docs/operations.md
 * "Running the roles"): each role from the one configuration file, in its own process or several in one.
 *
 * - `api`: the HTTP API (runtime/api) with the configuration's `api` section: its address, and either an OpenID
 *   Connect issuer's tokens (`api.auth`) or, in development only, the runtime's own local issuer
 *   (`api.localIssuer`). A consortium member's API also serves `POST /v1/consortium/proposals`. `POST /v1/verify`
 *   checks bundles against the trusted signers and threshold read from the first chain's registry at start.
 * - `worker`: the pipeline's stages (runtime/queue/pipeline.ts).
 * - `triggers`: chain logs, oracle requests and schedules (runtime/triggers/TriggerService.ts). Several trigger
 *   processes may run: each chain-log subscription is scanned by one at a time (a lease in Redis, taken over when
 *   its holder dies), and BullMQ's job schedulers deliver each schedule slot once.
 *
 * Worker and trigger processes serve `/healthz` (liveness) and `/readyz` (Redis, every chain, the Key Vault and
 * every circuit breaker: runtime/resilience/readiness.ts) on the configuration's `health` address when one is set;
 * the API serves the same on its own port.
 *
 * @module
 */
import path from "node:path";

import { apiDepsOf, type VerificationSettings } from "../api/deps.ts";
import { LocalIssuer } from "../api/localIssuer.ts";
import { startApiServer, type ApiServer } from "../api/server.ts";
import { closePipelineContext, createPipelineContext } from "../bootstrap.ts";
import { readRegistryTrust } from "../chains/registryTrust.ts";
import type { RuntimeConfig } from "../config.ts";
import { consortiumApiOf } from "../consortium/member.ts";
import { CryptletError, ERR_RUNTIME_CONFIG_INVALID } from "../errors.ts";
import type { PipelineContext, PipelineLogger } from "../queue/context.ts";
import { Pipeline, type WorkerOptions } from "../queue/pipeline.ts";
import { startHealthServer, type HealthServer } from "../resilience/health.ts";
import { dependencyChecks } from "../resilience/readiness.ts";
import { TriggerService } from "../triggers/TriggerService.ts";

/** A role a process can take. */
export type ServeRole = "api" | "worker" | "triggers";

/** Every role, in start order (`cryptlet serve all`). */
export const SERVE_ROLES: readonly ServeRole[] = ["worker", "triggers", "api"];

/** Options of {@link startRoles}. */
export interface StartRolesOptions {
  config: RuntimeConfig;
  /** The configuration file's path (relative paths in it, e.g. `api.localIssuer.keyFile`, are relative to it). */
  configFile: string;
  roles: readonly ServeRole[];
  logger?: PipelineLogger;
  /** The worker's options (stages, lock duration, stalled-job interval). */
  worker?: WorkerOptions;
}

/** The roles started by {@link startRoles}. */
export interface RunningRoles {
  roles: readonly ServeRole[];
  ctx: PipelineContext;
  pipeline: Pipeline;
  /** The API server (role `api`): its bound URL and port. */
  api?: ApiServer;
  /** The health endpoint (roles `worker`, `triggers`, when the configuration's `health` is set). */
  health?: HealthServer;
  triggers?: TriggerService;
  /**
   * Stops every role: the API stops accepting requests, the triggers finish their scan (checkpoints kept), the
   * worker stops taking jobs and waits for those it holds; then connections close. No deadline of its own: the
   * caller bounds it (`resilience.shutdownTimeoutMs`).
   */
  stop(): Promise<void>;
}

/**
 * What `POST /v1/verify` checks bundles against: the trusted signers, threshold and consortium id of the first
 * configured chain that has a registry, read at start. Approved code hashes are not fixed at start (they change
 * with every deployment): the `codeHash` check is skipped there; `cryptlet verify --rpc` reads them at the write's
 * block.
 * @throws CryptletError `ERR_RUNTIME_CONFIG_INVALID` when no chain has `contracts.registry`;
 *   `ERR_REGISTRY_TRUST_UNAVAILABLE` when the registry cannot be read.
 */
export async function verificationFromRegistry(ctx: PipelineContext): Promise<VerificationSettings> {
  for (const chain of ctx.chains.values()) {
    const registry = chain.config.contracts.registry;
    if (!registry) continue;
    const trust = await readRegistryTrust(chain.writer.rpc.provider, registry);
    return { trustedSigners: trust.signers, threshold: trust.threshold, consortiumId: trust.consortiumId };
  }
  throw new CryptletError(
    ERR_RUNTIME_CONFIG_INVALID,
    "the api role needs a chain with contracts.registry: POST /v1/verify reads the trusted signers and threshold from it",
    { details: { errors: [{ path: "/chains", message: "no chain has contracts.registry" }] } },
  );
}

/**
 * Starts `options.roles` in this process on one pipeline context.
 * @throws CryptletError `ERR_RUNTIME_CONFIG_INVALID` for an `api` role without `api.auth` or `api.localIssuer`
 *   (or with `api.localIssuer` in a `production` role); whatever {@link createPipelineContext} throws
 *   (`ERR_REDIS_NOT_DURABLE`, `ERR_REDIS_DATA_LOST`, `ERR_CHAIN_RPC_UNAVAILABLE`…); the listen error of a port in
 *   use. Nothing is left open when it throws.
 */
export async function startRoles(options: StartRolesOptions): Promise<RunningRoles> {
  const { config, roles, logger } = options;
  if (roles.includes("api")) checkApiConfig(config);
  const ctx = await createPipelineContext(config, logger);
  const pipeline = new Pipeline(ctx);
  let api: ApiServer | undefined;
  let health: HealthServer | undefined;
  let triggers: TriggerService | undefined;
  const stop = async (): Promise<void> => {
    await api?.close();
    await triggers?.stop();
    await pipeline.close();
    await health?.close();
    await closePipelineContext(ctx);
  };
  try {
    if (roles.includes("worker")) pipeline.startWorkers(options.worker ?? {});
    if (roles.includes("triggers")) {
      triggers = new TriggerService({
        pipeline,
        ...(config.triggers.pollIntervalMs === undefined ? {} : { pollIntervalMs: config.triggers.pollIntervalMs }),
        schedulesEnabled: config.triggers.schedules,
        ...(logger ? { logger } : {}),
      });
      await triggers.start();
    }
    if ((roles.includes("worker") || roles.includes("triggers")) && config.health) {
      health = await startHealthServer({
        port: config.health.port,
        host: config.health.host,
        ready: () =>
          dependencyChecks({
            redis: ctx.redis,
            chains: ctx.chains,
            ...(roles.includes("worker") ? { keyVault: ctx.attestationKey } : {}),
          }),
      });
    }
    if (roles.includes("api")) {
      const apiConfig = config.api!;
      const issuer = apiConfig.localIssuer
        ? await LocalIssuer.create({
            keyFile: path.resolve(path.dirname(options.configFile), apiConfig.localIssuer.keyFile),
          })
        : undefined;
      const deps = apiDepsOf(ctx, pipeline, {
        auth: issuer ? issuer.authOptions() : apiConfig.auth!,
        ...(issuer ? { localIssuer: issuer } : {}),
        ...(apiConfig.publicUrl === undefined ? {} : { publicUrl: apiConfig.publicUrl }),
        ...(config.consortium ? { consortium: consortiumApiOf(ctx, config.consortium) } : {}),
        verification: await verificationFromRegistry(ctx),
      });
      api = await startApiServer(deps, { port: apiConfig.port, host: apiConfig.host });
    }
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
  return {
    roles,
    ctx,
    pipeline,
    ...(api ? { api } : {}),
    ...(health ? { health } : {}),
    ...(triggers ? { triggers } : {}),
    stop,
  };
}

/** The `api` section an `api` role needs. */
function checkApiConfig(config: RuntimeConfig): void {
  const fail = (message: string) =>
    new CryptletError(ERR_RUNTIME_CONFIG_INVALID, `invalid configuration for the api role: ${message}`, {
      details: { errors: [{ path: "/api", message }] },
    });
  const api = config.api;
  if (!api || (!api.auth && !api.localIssuer)) {
    throw fail("set api.auth (an OpenID Connect issuer: issuer, audience) or, in development, api.localIssuer");
  }
  if (api.auth && api.localIssuer) throw fail("api.auth and api.localIssuer are two token issuers: give one");
  if (api.localIssuer && config.role === "production") {
    throw fail("api.localIssuer is the development issuer; a production role needs api.auth");
  }
}
