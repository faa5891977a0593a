/**
 * Readiness checks shared by the API's `GET /ready` and the health endpoint of worker and trigger processes
 * (runtime/resilience/health.ts): each dependency is asked something cheap with a deadline, and every circuit
 * breaker of the process must be closed. A check's error is a code or a redacted message, never a URL with
 * credentials.
 *
 * @module
 */
import { redactSecrets } from "../redact.ts";
import { dependencyStates } from "./dependency.ts";

/** Deadline of each readiness probe, ms. */
export const READINESS_TIMEOUT_MS = 2000;

/** One readiness check's outcome. */
export interface ReadinessCheck {
  /** What was checked: `redis`, `chain:<name>`, `key-vault`, `dependency:<breaker name>`. */
  name: string;
  ok: boolean;
  /** How long the probe took, ms (0 for a breaker's state). */
  latencyMs: number;
  /** Why it failed: the error's code, or its redacted message. */
  error?: string;
}

/**
 * Runs `check` with the {@link READINESS_TIMEOUT_MS} deadline.
 * @returns the outcome; never throws.
 */
export async function probe(name: string, check: () => Promise<unknown>): Promise<ReadinessCheck> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${READINESS_TIMEOUT_MS} ms`)),
          READINESS_TIMEOUT_MS,
        );
      }),
    ]);
    return { name, ok: true, latencyMs: Math.round(performance.now() - started) };
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const message = typeof code === "string" ? code : error instanceof Error ? redactSecrets(error.message) : "failed";
    return { name, ok: false, latencyMs: Math.round(performance.now() - started), error: message };
  } finally {
    clearTimeout(timer);
  }
}

/** One check per circuit breaker of this process: ok while it is closed. */
export function breakerChecks(): ReadinessCheck[] {
  return dependencyStates().map((d) => ({
    name: `dependency:${d.name}`,
    ok: d.state === "closed",
    latencyMs: 0,
    ...(d.state === "closed" ? {} : { error: `circuit ${d.state}` }),
  }));
}

/** What {@link dependencyChecks} probes. */
export interface ReadinessTargets {
  redis?: { ping(): Promise<unknown> };
  /** Chains by name: `eth_blockNumber` through the chain's JSON-RPC client. */
  chains?: ReadonlyMap<string, { writer: { rpc: { send(method: string, params: unknown[]): Promise<unknown> } } }>;
  /** A Key Vault key whose public part is read (the provider may serve it from its cache for up to 60 s). */
  keyVault?: { getPublicKey(): Promise<unknown> };
}

/**
 * Probes Redis (`PING`), every chain (`eth_blockNumber`) and the Key Vault (a key's public part) at once, then adds
 * {@link breakerChecks}. Ready when every check is ok.
 */
export async function dependencyChecks(targets: ReadinessTargets): Promise<ReadinessCheck[]> {
  const { redis, chains, keyVault } = targets;
  const probes = await Promise.all([
    ...(redis ? [probe("redis", () => redis.ping())] : []),
    ...[...(chains ?? new Map()).entries()].map(([name, chain]) =>
      probe(`chain:${name}`, () => chain.writer.rpc.send("eth_blockNumber", [])),
    ),
    ...(keyVault ? [probe("key-vault", () => keyVault.getPublicKey())] : []),
  ]);
  return [...probes, ...breakerChecks()];
}
