/**
 * The `consortium` section of the runtime configuration (cryptlet.config.json, docs/consortium.md
 * "Configuration"): its JSON Schema (used by runtime/config.ts) and the cross-field rules a schema cannot say.
 *
 * ```json
 * "consortium": {
 *   "self": "acme",
 *   "members": [
 *     { "id": "acme", "url": "https://cryptlet.acme.example", "jwks": "https://cryptlet.acme.example/.well-known/jwks.json",
 *       "signer": "0x…" },
 *     …
 *   ],
 *   "threshold": 2,
 *   "requestKey": { "type": "azure-key-vault", "vaultUrl": "https://acme.vault.azure.net", "keyName": "peer-requests" },
 *   "answerTimeoutMs": 20000, "failoverMs": 15000
 * }
 * ```
 *
 * @module
 */
import { getAddress } from "ethers";

import { SIGNER_REF_SCHEMA, type SignerRef } from "../chains/config.ts";
import { ConsortiumConfigError } from "./errors.ts";
import type { ConsortiumSettings } from "./protocol.ts";

/** The settings as configured: the protocol's settings and this member's request-signing key (EC P-256). */
export interface ConsortiumConfig extends ConsortiumSettings {
  /** The P-256 key that signs this member's peer requests (runtime/consortium/peerAuth.ts). */
  requestKey: SignerRef;
}

const MEMBER_ID = "^[a-z0-9-]{1,64}$";
const ms = { type: "integer", minimum: 1, maximum: 3_600_000 } as const;

/** JSON Schema (draft 2020-12 subset, ajv strict) of the `consortium` section. */
export const CONSORTIUM_CONFIG_SCHEMA = {
  type: "object",
  additionalProperties: false,
  required: ["self", "members", "threshold", "requestKey"],
  properties: {
    self: { type: "string", pattern: MEMBER_ID },
    members: {
      type: "array",
      minItems: 1,
      maxItems: 64,
      items: {
        type: "object",
        additionalProperties: false,
        required: ["id", "url", "jwks", "signer"],
        properties: {
          id: { type: "string", pattern: MEMBER_ID },
          url: { type: "string", pattern: "^https?://" },
          jwks: {
            oneOf: [
              { type: "string", pattern: "^https?://" },
              {
                type: "object",
                required: ["keys"],
                properties: { keys: { type: "array", minItems: 1, items: { type: "object" } } },
              },
            ],
          },
          signer: { type: "string", pattern: "^0x[0-9a-fA-F]{40}$" },
        },
      },
    },
    threshold: { type: "integer", minimum: 1, maximum: 64 },
    requestKey: SIGNER_REF_SCHEMA,
    answerTimeoutMs: ms,
    failoverMs: ms,
  },
} as const;

/**
 * Checks what the schema cannot: `self` is a member, ids and signers are distinct, `threshold` ≤ the number of
 * members, and more than half of them (two disjoint sets of M members could otherwise sign two different results).
 * @returns the settings with signers checksummed (EIP-55).
 * @throws {@link ConsortiumConfigError} (`ERR_CONSORTIUM_CONFIG_INVALID`).
 */
export function checkConsortiumSettings<T extends ConsortiumSettings>(settings: T): T {
  const ids = new Set<string>();
  const signers = new Set<string>();
  const members = settings.members.map((m) => {
    if (ids.has(m.id)) throw new ConsortiumConfigError(`member id ${m.id} appears twice`);
    ids.add(m.id);
    let signer: string;
    try {
      signer = getAddress(m.signer);
    } catch {
      throw new ConsortiumConfigError(`member ${m.id}: signer is not an address`);
    }
    if (signers.has(signer)) throw new ConsortiumConfigError(`signer ${signer} appears twice`);
    signers.add(signer);
    return { ...m, signer };
  });
  if (!ids.has(settings.self)) throw new ConsortiumConfigError(`self ${settings.self} is not among the members`);
  const n = members.length;
  if (settings.threshold > n) throw new ConsortiumConfigError(`threshold ${settings.threshold} with ${n} members`);
  if (n > 1 && settings.threshold * 2 <= n) {
    throw new ConsortiumConfigError(
      `threshold ${settings.threshold} of ${n} is not a majority: two disjoint quorums could sign different results`,
    );
  }
  return { ...settings, members };
}
