/**
 * Batch attestation in one process (docs/proof-bundle.md, "Batch attestation token"; docs/pipeline.md, "attest"):
 * results attested concurrently share one batch token, so one Key Vault signature serves many results instead of
 * one each. Group commit: a result asked for while no token of its group is being signed is signed on the next turn
 * of the event loop with whatever else arrived in that turn; results asked for while a token is being signed wait
 * for it to finish and then go, all together, into the next token. No timer adds latency, and the batch grows with
 * the load (up to {@link DEFAULT_MAX_BATCH_RESULTS}).
 *
 * Results are grouped by what a batch token states for all of them: the issuer, the consortium (`aud`), the
 * runtime, the sandbox (engine, exact version, limits) and the platform. A failed signature fails every result of
 * that token (the attest jobs retry); nothing is kept between tokens, so a crash loses only tokens not yet stored
 * with their bundles, which the retried jobs issue again.
 *
 * @module
 */
import type { KeyProvider } from "../keys/KeyProvider.ts";
import {
  attestationLeafEncoding,
  createBatchAttestationToken,
  type AttestationLeafProof,
  type AttestedResult,
  type CreateBatchAttestationTokenInput,
} from "./token.ts";

/** Most results under one batch token by default. */
export const DEFAULT_MAX_BATCH_RESULTS = 256;

/** What a batch token states of all its results (every field of the batch input but the results). */
export type BatchClaims = Omit<CreateBatchAttestationTokenInput, "results" | "now" | "jti">;

/** One result's batch token and its leaf proof. */
export interface BatchedAttestation {
  /** The batch token (compact JWS). */
  token: string;
  /** The result's leaf values and Merkle proof to the token's root (a bundle's `attestationProof` and `result`). */
  proof: AttestationLeafProof;
  /** How many results the token attests. */
  count: number;
}

interface Waiter {
  result: AttestedResult;
  resolve: (value: BatchedAttestation) => void;
  reject: (error: unknown) => void;
}

interface Group {
  claims: BatchClaims;
  waiting: Waiter[];
  /** A token of this group is being signed, or a flush is scheduled. */
  busy: boolean;
}

/**
 * Coalesces attestation requests into batch tokens signed through one {@link KeyProvider} (P-256).
 *
 * @example
 * ```ts
 * const batcher = new AttestationTokenBatcher(attestationKey);
 * const { token, proof } = await batcher.attest(claims, { resultId, cryptletId, codeHash, inputHash, outputHash, evidenceHash });
 * ```
 */
export class AttestationTokenBatcher {
  readonly #provider: KeyProvider;
  readonly #maxResults: number;
  readonly #groups = new Map<string, Group>();
  #tokens = 0;
  #results = 0;

  /**
   * @param provider - the attestation key (EC P-256).
   * @param options.maxResults - most results per token (default {@link DEFAULT_MAX_BATCH_RESULTS}, at least 1).
   */
  constructor(provider: KeyProvider, options: { maxResults?: number } = {}) {
    this.#provider = provider;
    this.#maxResults = Math.max(1, Math.floor(options.maxResults ?? DEFAULT_MAX_BATCH_RESULTS));
  }

  /** Tokens signed and results attested by this batcher so far. */
  stats(): { tokens: number; results: number } {
    return { tokens: this.#tokens, results: this.#results };
  }

  /**
   * Attests `result` under a batch token with `claims`.
   * @returns the token, the result's proof and the token's result count.
   * @throws what {@link createBatchAttestationToken} throws for the token this result went into (the provider's
   *   `ERR_KEY_*` errors, `ERR_ATTESTATION_SIGNING`), or `ERR_ATTESTATION_INVALID` for a value that is not bytes32
   *   (then only this result fails: it is checked before it joins a batch).
   */
  attest(claims: BatchClaims, result: AttestedResult): Promise<BatchedAttestation> {
    try {
      attestationLeafEncoding(result);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    const key = JSON.stringify([
      claims.issuer,
      claims.consortiumId.toLowerCase(),
      claims.runtime,
      claims.sandbox,
      claims.platform ?? null,
      claims.ttlSeconds ?? null,
    ]);
    let group = this.#groups.get(key);
    if (group === undefined) {
      group = { claims, waiting: [], busy: false };
      this.#groups.set(key, group);
    }
    const promise = new Promise<BatchedAttestation>((resolve, reject) =>
      group.waiting.push({ result, resolve, reject }),
    );
    if (!group.busy) {
      group.busy = true;
      setImmediate(() => void this.#flush(key, group));
    }
    return promise;
  }

  async #flush(key: string, group: Group): Promise<void> {
    const batch = group.waiting.splice(0, this.#maxResults);
    try {
      const signed = await createBatchAttestationToken(this.#provider, {
        ...group.claims,
        results: batch.map((w) => w.result),
      });
      this.#tokens += 1;
      this.#results += batch.length;
      batch.forEach((w, i) =>
        w.resolve({ token: signed.token, proof: { ...w.result, proof: signed.proofs[i]! }, count: batch.length }),
      );
    } catch (error) {
      for (const w of batch) w.reject(error);
    }
    if (group.waiting.length > 0) {
      setImmediate(() => void this.#flush(key, group));
    } else {
      group.busy = false;
      this.#groups.delete(key);
    }
  }
}

const batchers = new WeakMap<KeyProvider, AttestationTokenBatcher>();

/** The process's batcher for `provider` (one per attestation key, made on first use). */
export function attestationBatcherFor(provider: KeyProvider): AttestationTokenBatcher {
  let batcher = batchers.get(provider);
  if (batcher === undefined) {
    batcher = new AttestationTokenBatcher(provider);
    batchers.set(provider, batcher);
  }
  return batcher;
}
