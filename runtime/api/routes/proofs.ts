/**
 * `POST /v1/verify` (verify a proof bundle against the consortium's settings) and `GET /.well-known/jwks.json`
 * (the attestation keys, RFC 7517 §5). The JWK Set is built from the key providers and cached for
 * {@link JWKS_CACHE_MS}, so verification does not call Key Vault per request.
 *
 * @module
 */
import { Router } from "express";
import type { JSONWebKeySet } from "jose";

import { buildJwks } from "../../attestation/token.ts";
import { verifyBundle } from "../../attestation/verifyBundle.ts";
import { createReexecutor } from "../../reexecution/reexecute.ts";
import { packagesFromStore } from "../../reexecution/packageSources.ts";
import type { ApiDeps } from "../deps.ts";
import { RerunUnavailableError } from "../errors.ts";

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
    });
    res.json(report);
  });
  return router;
}
