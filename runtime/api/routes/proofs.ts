/**
 * `POST /v1/verify` (verify a proof bundle against the consortium's settings) and `GET /.well-known/jwks.json`
 * (the attestation keys, RFC 7517 §5). The JWK Set is built from the key providers and cached for
 * {@link JWKS_CACHE_MS}, so verification does not call Key Vault per request.
 *
 * @module
 */
import { Router } from "express";
import type { Provider } from "ethers";
import type { JSONWebKeySet } from "jose";

import { buildJwks } from "../../attestation/token.ts";
import { verifyBundle } from "../../attestation/verifyBundle.ts";
import { createReexecutor } from "../../reexecution/reexecute.ts";
import { packagesFromStore } from "../../reexecution/packageSources.ts";
import type { ApiDeps } from "../deps.ts";
import { OnChainUnavailableError, RerunUnavailableError } from "../errors.ts";

/** How long the attestation JWK Set is cached, ms. */
export const JWKS_CACHE_MS = 5 * 60_000;

/** The body of `POST /v1/verify`. */
export interface VerifyRequestBody {
  bundle: Record<string, unknown>;
  requestId?: string;
  /** ISO 8601 date-time. */
  verifyAt?: string;
  /** Re-execute the Cryptlet on the bundle's evidence (package from the store, this runtime's sandbox). */
  rerun?: boolean;
  /**
   * Check the bundle's anchors on this runtime's chains (`verifyBundle`'s `anchors` check,
   * runtime/chains/anchorCheck.ts): each anchor on a configured chain must be in the block it names, succeeded,
   * confirmed `confirmations` times, with this result's (or batch's) event and the contract's views agreeing.
   */
  onChain?: boolean;
  /** Confirmations each checked anchor needs (with `onChain`), 1–100000 (the block of the write counts). Default 1. */
  confirmations?: number;
}

/**
 * The providers `verifyBundle` checks anchors with: the API's chains by decimal chain id, each with its JSON-RPC
 * client's request deadline. Chains without a provider or a chain id (light API processes) are left out.
 */
function anchorProviders(deps: Pick<ApiDeps, "chains">): Record<string, Provider> {
  const providers: Record<string, Provider> = {};
  for (const chain of deps.chains?.values() ?? []) {
    const provider = chain.writer.rpc.provider;
    if (provider !== undefined && chain.config !== undefined) providers[String(chain.config.chainId)] = provider;
  }
  return providers;
}

/** A cached JWK Set of the attestation keys. */
export function attestationJwks(deps: Pick<ApiDeps, "attestationKeys">): () => Promise<JSONWebKeySet> {
  let cached: { at: number; jwks: Promise<JSONWebKeySet> } | undefined;
  return () => {
    if (!cached || Date.now() - cached.at > JWKS_CACHE_MS) {
      const jwks = buildJwks(deps.attestationKeys);
      cached = { at: Date.now(), jwks };
      jwks.catch(() => {
        cached = undefined;
      });
    }
    return cached.jwks;
  };
}

/** The proof routes. */
export function proofRoutes(deps: ApiDeps, jwks: () => Promise<JSONWebKeySet>): Router {
  const router = Router();
  router.get("/.well-known/jwks.json", async (_req, res) => {
    res.set("Cache-Control", `public, max-age=${JWKS_CACHE_MS / 1000}`).json(await jwks());
  });
  router.post("/v1/verify", async (req, res) => {
    const body = req.body as VerifyRequestBody;
    const v = deps.verification;
    if (body.rerun === true && deps.sandbox === undefined) {
      throw new RerunUnavailableError();
    }
    const chains = body.onChain === true ? anchorProviders(deps) : undefined;
    if (chains !== undefined && Object.keys(chains).length === 0) throw new OnChainUnavailableError();
    const reexecutor =
      body.rerun === true && deps.sandbox !== undefined
        ? createReexecutor({ packages: packagesFromStore(deps.packages), sandbox: deps.sandbox })
        : undefined;
    const report = await verifyBundle(body.bundle, {
      trustedSigners: v.trustedSigners,
      threshold: v.threshold,
      ...(v.consortiumId === undefined ? {} : { consortiumId: v.consortiumId }),
      ...(v.approvedCodeHashes === undefined ? {} : { approvedCodeHashes: v.approvedCodeHashes }),
      ...(v.attestationIssuer === undefined ? {} : { attestationIssuer: v.attestationIssuer }),
      ...(body.requestId === undefined ? {} : { requestId: body.requestId }),
      ...(body.verifyAt === undefined ? {} : { now: new Date(body.verifyAt) }),
      jwks: await jwks(),
      ...(reexecutor === undefined ? {} : { reexecutor }),
      ...(chains === undefined ? {} : { chains }),
      ...(chains === undefined || body.confirmations === undefined ? {} : { confirmations: body.confirmations }),
    });
    res.json(report);
  });
  return router;
}
