/**
 * `cryptlet keys create|list|rotate`: local JWK key files for development, and the keys of a runtime
 * configuration (local files or Azure Key Vault).
 *
 * - `create <file> --kind <kind>` writes a new private JWK (mode 0600) and prints its public half:
 *   `signer` (secp256k1: result signers, chain writers; also prints the Ethereum address), `attestation` (P-256),
 *   `publisher` (P-256 with a `kid`: signs packages), `party-p256`, `party-x25519`, `party-rsa` (sealing recipients:
 *   the public JWK goes into a manifest's `output.parties`).
 * - `list` shows every key the configuration names (role, provider, key id and version, address).
 * - `rotate <role>` makes a new version: a local file is replaced by a new key of the same kind; a Key Vault key gets
 *   a new version (Key Vault `rotate`, REST API `POST /keys/{name}/rotate`). Roles: `attestation`,
 *   `result-signer:<index>`, `chain:<name>`, `chain:<name>:lane:<n>` (the n-th of `laneSigners`). IMPORTANT: a new result-signer address must be swapped into every
 *   chain's registry (`CryptletRegistry.rotateSigner(old, new)`) before results signed with it verify on-chain.
 *
 * @module
 */
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { writeFile, chmod } from "node:fs/promises";

import { DefaultAzureCredential } from "@azure/identity";
import { KeyClient } from "@azure/keyvault-keys";
import { computeAddress, hexlify, decodeBase64 } from "ethers";
import type { JWK } from "jose";

import { keyProviderOf } from "../../bootstrap.ts";
import type { KeyRef, RuntimeConfig } from "../../config.ts";
import { generateLocalKeyFile } from "../../keys/LocalKeyProvider.ts";
import { CliUsageError } from "../errors.ts";
import { readJsonFile } from "../io.ts";
import { KEY_KINDS } from "./keyKinds.ts";

export { KEY_KINDS, type KeyKind } from "./keyKinds.ts";

/** A key as `keys create`/`list`/`rotate` report it (public material only). */
export interface KeyReport {
  role?: string;
  provider?: "local" | "azure-key-vault";
  file?: string;
  keyId?: string;
  version?: string;
  /** Ethereum address of a secp256k1 key. */
  address?: string;
  jwk: JWK;
}

function b64urlToHex(value: string): string {
  return hexlify(
    decodeBase64(
      value
        .replace(/-/g, "+")
        .replace(/_/g, "/")
        .padEnd(Math.ceil(value.length / 4) * 4, "="),
    ),
  );
}

/** The Ethereum address of a secp256k1 public JWK (undefined for other keys). */
export function addressOfJwk(jwk: JWK): string | undefined {
  if (jwk.kty !== "EC" || jwk.crv !== "secp256k1" || !jwk.x || !jwk.y) return undefined;
  return computeAddress(`0x04${b64urlToHex(jwk.x).slice(2)}${b64urlToHex(jwk.y).slice(2)}`);
}

function publicOf(jwk: JWK): JWK {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...rest } = jwk;
  return rest;
}

/**
 * Writes a new private key file of `kind` (replacing `file`), mode 0600.
 * @param kid - key id for `publisher` and `party-*` keys; default `<kind>-<date>`.
 * @throws {@link CliUsageError} for an unknown kind.
 *
 * @example
 * ```ts
 * import { createKeyFile } from "./runtime/cli/commands/keys.ts";
 * const { address } = await createKeyFile(".cryptlet/signer-1.jwk.json", "signer");
 * ```
 */
export async function createKeyFile(file: string, kind: string, kid?: string): Promise<KeyReport> {
  if (!(KEY_KINDS as readonly string[]).includes(kind)) {
    throw new CliUsageError(`--kind must be one of ${KEY_KINDS.join(", ")}`, "--kind");
  }
  if (kind === "signer" || kind === "attestation") {
    const jwk = (await generateLocalKeyFile(file, { curve: kind === "signer" ? "secp256k1" : "P-256" })) as JWK;
    const address = addressOfJwk(jwk);
    return { file, jwk, ...(address ? { address } : {}) };
  }
  let privateKey: KeyObject;
  if (kind === "publisher" || kind === "party-p256")
    privateKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
  else if (kind === "party-x25519") privateKey = generateKeyPairSync("x25519").privateKey;
  else privateKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
  const jwk = {
    ...(privateKey.export({ format: "jwk" }) as JWK),
    kid: kid ?? `${kind}-${new Date().toISOString().slice(0, 10)}`,
    ...(kind.startsWith("party") ? { use: "enc" } : {}),
  };
  await writeFile(file, `${JSON.stringify(jwk, null, 2)}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  return { file, jwk: publicOf(jwk) };
}

/** Every key a configuration names, with its role. */
export function configuredKeys(config: RuntimeConfig): { role: string; ref: KeyRef }[] {
  return [
    ...config.keys.resultSigners.map((ref, i) => ({ role: `result-signer:${i}`, ref })),
    { role: "attestation", ref: config.keys.attestation },
    ...config.chains.flatMap((c) => [
      { role: `chain:${c.name}`, ref: c.signer },
      ...c.laneSigners.map((ref, i) => ({ role: `chain:${c.name}:lane:${i + 1}`, ref })),
    ]),
  ];
}

/** Describes every configured key (asks each provider for its current public key). */
export async function listKeys(config: RuntimeConfig): Promise<KeyReport[]> {
  return Promise.all(
    configuredKeys(config).map(async ({ role, ref }) => {
      const info = await keyProviderOf(ref, config).getPublicKey();
      const address = addressOfJwk(info.jwk);
      return {
        role,
        provider: ref.type,
        ...(ref.type === "local" ? { file: ref.jwkPath } : {}),
        keyId: info.keyId,
        version: info.version,
        ...(address ? { address } : {}),
        jwk: info.jwk,
      };
    }),
  );
}

/**
 * Rotates the key of `role` (see the module documentation).
 * @returns the key before and after.
 * @throws {@link CliUsageError} for an unknown role; a key pinned to a version (`keyVersion`) is refused too, since
 *   a rotation would not change what the runtime signs with.
 */
export async function rotateKey(config: RuntimeConfig, role: string): Promise<{ before: KeyReport; after: KeyReport }> {
  const entry = configuredKeys(config).find((k) => k.role === role);
  if (!entry) {
    throw new CliUsageError(
      `no key with role ${role}; roles: ${configuredKeys(config)
        .map((k) => k.role)
        .join(", ")}`,
      "role",
    );
  }
  const describe = async (): Promise<KeyReport> => {
    const info = await keyProviderOf(entry.ref, config).getPublicKey();
    const address = addressOfJwk(info.jwk);
    return {
      role,
      provider: entry.ref.type,
      keyId: info.keyId,
      version: info.version,
      ...(address ? { address } : {}),
      jwk: info.jwk,
    };
  };
  const before = await describe();
  const ref = entry.ref;
  if (ref.type === "local") {
    const current = (await readJsonFile(ref.jwkPath)) as JWK;
    if (current.kty === "RSA") await generateLocalKeyFile(ref.jwkPath, { rsaModulusLength: 2048 });
    else await generateLocalKeyFile(ref.jwkPath, { curve: current.crv === "secp256k1" ? "secp256k1" : "P-256" });
  } else {
    if (ref.keyVersion)
      throw new CliUsageError(`${role} is pinned to version ${ref.keyVersion}: unpin it to rotate`, "role");
    const client = new KeyClient(ref.vaultUrl, new DefaultAzureCredential(), {
      disableChallengeResourceVerification: config.keys.keyVault.disableChallengeResourceVerification,
    });
    await client.rotateKey(ref.keyName);
  }
  return { before, after: await describe() };
}
