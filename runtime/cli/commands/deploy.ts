/**
 * `cryptlet deploy <dir>`: builds a package, signs it as its publisher (ES256 JWS over the `codeHash`, see
 * docs/packages.md) and deploys it into the package store in Redis named by the runtime configuration. The store
 * checks the signature against the configuration's `packages.trustedPublishers`.
 *
 * @module
 */

import type { Hex32 } from "../../attestation/eip712.ts";
import { packagePrefixOf } from "../../bootstrap.ts";
import type { RuntimeConfig } from "../../config.ts";
import { buildPackage } from "../../packages/build.ts";
import { PackageStore } from "../../packages/PackageStore.ts";
import { signPackage } from "../../packages/signature.ts";
import { openRedis, redisEndpointOf } from "../../queue/redisClient.ts";
import { CliUsageError } from "../errors.ts";
import { readPrivateJwk } from "../io.ts";

/** Options of {@link deployCryptlet}. */
export interface DeployOptions {
  /** File holding the publisher's private EC P-256 JWK. */
  publisherKeyFile: string;
  /** Key id the trusted publisher key is known by; default: the JWK's `kid`. */
  kid?: string;
}

/** What {@link deployCryptlet} reports. */
export interface DeployReport {
  /** `false` when the same bytes were already deployed (idempotent). */
  created: boolean;
  name: string;
  version: string;
  codeHash: Hex32;
  cryptletId: Hex32;
  kid: string;
}

/**
 * Builds, signs and deploys `dir`.
 * @throws {@link CliUsageError} without a `kid`; the builder's errors; the store's `ERR_PUBLISHER_SIGNATURE_INVALID`,
 *   `ERR_PACKAGE_VERSION_EXISTS`.
 *
 * @example
 * ```ts
 * import { loadRuntimeConfig } from "./runtime/config.ts";
 * import { deployCryptlet } from "./runtime/cli/commands/deploy.ts";
 * await deployCryptlet("cryptlets/uniswap-price", loadRuntimeConfig("cryptlet.config.json"), {
 *   publisherKeyFile: ".cryptlet/publisher.private.jwk.json",
 * });
 * ```
 */
export async function deployCryptlet(
  dir: string,
  config: RuntimeConfig,
  options: DeployOptions,
): Promise<DeployReport> {
  const key = await readPrivateJwk(options.publisherKeyFile);
  const kid = options.kid ?? key.kid;
  if (!kid) throw new CliUsageError("the publisher key has no kid: pass --kid", "--kid");
  const built = await buildPackage(dir);
  const signature = await signPackage(built, key, kid);
  const redis = openRedis(redisEndpointOf(config), { maxRetriesPerRequest: 2, lazyConnect: true });
  try {
    await redis.connect();
    const store = new PackageStore({
      redis,
      trustedPublisherKeys: config.packages.trustedPublishers,
      prefix: packagePrefixOf(config.prefix),
    });
    const result = await store.deploy(built, signature);
    return { ...result, kid };
  } finally {
    redis.disconnect();
  }
}
