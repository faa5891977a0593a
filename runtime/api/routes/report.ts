/**
 * `GET /v1/runs/{runId}/report`: the proof audit report of a completed run, one self-contained HTML page
 * (runtime/report/auditReport.ts). The run's bundle is verified with the API's verification settings (the trust
 * the API is given, as for `POST /v1/verify`) and the attestation keys' JWK Set; the page is sent with a
 * `Content-Security-Policy` that allows no script and no external resource.
 *
 * @module
 */
import { Router } from "express";
import type { JSONWebKeySet } from "jose";

import { verifyBundle } from "../../attestation/verifyBundle.ts";
import { AUDIT_REPORT_CSP, renderAuditReport } from "../../report/auditReport.ts";
import type { ApiDeps } from "../deps.ts";
import { NotFoundError } from "../errors.ts";

/** Explorer base URLs by chain name, from the configured chains that have one (`explorerUrl`). */
export function explorersOf(chains: ApiDeps["chains"]): Record<string, string> {
  const explorers: Record<string, string> = {};
  for (const [name, chain] of chains ?? []) {
    if (chain.config?.explorerUrl) explorers[name] = chain.config.explorerUrl;
  }
  return explorers;
}

/** The report route. */
export function reportRoutes(deps: ApiDeps, jwks: () => Promise<JSONWebKeySet>): Router {
  const router = Router();
  router.get("/v1/runs/:runId/report", async (req, res) => {
    const runId = req.params.runId.toLowerCase();
    const [receipt, run] = await Promise.all([deps.results.getReceipt(runId), deps.results.getRun(runId)]);
    if (!receipt) {
      throw new NotFoundError(run ? `report of run ${runId}: the run has no receipt yet` : `run ${runId}`);
    }
    const verifyAt = typeof req.query.verifyAt === "string" ? new Date(req.query.verifyAt) : undefined;
    const v = deps.verification;
    const report = await verifyBundle(receipt.bundle, {
      trustedSigners: v.trustedSigners,
      threshold: v.threshold,
      ...(v.consortiumId === undefined ? {} : { consortiumId: v.consortiumId }),
      ...(v.approvedCodeHashes === undefined ? {} : { approvedCodeHashes: v.approvedCodeHashes }),
      ...(v.attestationIssuer === undefined ? {} : { attestationIssuer: v.attestationIssuer }),
      ...(verifyAt === undefined ? {} : { now: verifyAt }),
      jwks: await jwks(),
    });
    const chainNames = Object.fromEntries(
      [...(deps.chains ?? [])].flatMap(([name, c]) => (c.config ? [[String(c.config.chainId), name]] : [])),
    );
    const html = renderAuditReport({
      bundle: receipt.bundle,
      receipt,
      ...(run
        ? {
            event: {
              eventId: run.eventId,
              requestId: run.requestId,
              acceptedAt: run.acceptedAt,
              ...(run.event ? { type: run.event.type, time: run.event.time } : {}),
            },
          }
        : {}),
      verifications: [
        {
          label: `API verification settings: ${v.trustedSigners.length} trusted signer(s), threshold ${v.threshold}${verifyAt ? `, at ${verifyAt.toISOString()}` : ""}`,
          report,
        },
      ],
      trust: [
        {
          source: "given",
          origin: "API verification settings",
          signers: v.trustedSigners,
          threshold: v.threshold,
        },
      ],
      options: { explorers: explorersOf(deps.chains), chainNames },
    });
    res
      .status(200)
      .set("Content-Security-Policy", AUDIT_REPORT_CSP)
      .set("X-Content-Type-Options", "nosniff")
      .set("Referrer-Policy", "no-referrer")
      .type("text/html; charset=utf-8")
      .send(html);
  });
  return router;
}
