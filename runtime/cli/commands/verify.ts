/**
 * `cryptlet verify <bundle.json>`: verifies a proof bundle offline (`verifyBundle`, docs/proof-bundle.md) against
 * trust settings from `--trust <file>` (a JSON {@link TrustFile}) or from the runtime configuration (its result
 * signers' addresses, consortium id, attestation key and issuer). Accepts a bare bundle or a composite receipt
 * (its `bundle`). Exit code 1 when a check fails.
 *
 * @module
 */
import type { JSONWebKeySet } from "jose";

import { buildJwks } from "../../attestation/token.ts";
import { verifyBundle, type VerificationReport, type VerifyBundleOptions } from "../../attestation/verifyBundle.ts";
import type { RuntimeConfig } from "../../config.ts";
import { CliInputError } from "../errors.ts";
import { bundleOf, readJsonFile } from "../io.ts";

/** The trust file: {@link VerifyBundleOptions} as JSON (`now` as an ISO 8601 string). */
export interface TrustFile {
  trustedSigners: string[];
  threshold?: number;
  consortiumId?: string;
  approvedCodeHashes?: string[];
  jwks?: JSONWebKeySet;
  attestationIssuer?: string;
  /** ISO 8601 time to verify the token's validity at (default now). */
  now?: string;
  clockToleranceSeconds?: number;
}

/**
 * Reads a trust file.
 * @throws {@link CliInputError} `ERR_CLI_INPUT` when `trustedSigners` is missing.
 */
export async function readTrustFile(file: string): Promise<VerifyBundleOptions> {
  const raw = (await readJsonFile(file)) as Partial<TrustFile> | null;
  if (typeof raw !== "object" || raw === null || !Array.isArray(raw.trustedSigners)) {
    throw new CliInputError(file, "unexpected-shape", `${file}: trustedSigners (an array of addresses) is required`);
  }
  const { now, ...rest } = raw as TrustFile;
  return { ...rest, ...(now === undefined ? {} : { now: new Date(now) }) };
}

/** Trust settings from the runtime configuration (asks each key provider for its public key). */
export async function trustFromConfig(config: RuntimeConfig): Promise<VerifyBundleOptions> {
  // Loaded here: the key adapters pull in the Azure SDK, which a verification with --trust does not need.
  const { keyProviderOf } = await import("../../bootstrap.ts");
  const { KeyVaultSigner } = await import("../../keys/KeyVaultSigner.ts");
  const trustedSigners = await Promise.all(
    config.keys.resultSigners.map((ref) => new KeyVaultSigner(keyProviderOf(ref, config)).getAddress()),
  );
  return {
    trustedSigners,
    threshold: 1,
    consortiumId: config.consortiumId,
    jwks: await buildJwks([keyProviderOf(config.keys.attestation, config)]),
    attestationIssuer: config.issuer,
  };
}

/**
 * Verifies the bundle in `file`.
 * @param overrides - e.g. `threshold`, `approvedCodeHashes` from the command line.
 */
export async function verifyBundleFile(
  file: string,
  trust: VerifyBundleOptions,
  overrides: Partial<VerifyBundleOptions> = {},
): Promise<VerificationReport> {
  const bundle = bundleOf(await readJsonFile(file));
  return verifyBundle(bundle, { ...trust, ...overrides });
}
