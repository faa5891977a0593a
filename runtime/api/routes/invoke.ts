/**
 * `POST /v1/cryptlets/{name}/invoke`: the HTTP trigger. The body is the Cryptlet's input; the `Idempotency-Key`
 * header (draft-ietf-httpapi-idempotency-key-header) names the event: `eventId = httpEventId(key)` and
 * `runId = resultId = computeResultId(cryptletId, eventId)`. A UUID is generated when the header is absent.
 *
 * The API keeps one invocation record per run in Redis (`<prefix>:api:invoke:{runId}`, 7 days): the key, the
 * sha256 of the canonical JSON (RFC 8785) of the body, the pinned version and the event time. A retry with the
 * same key and body answers the same run (`replayed: true`) and re-submits the same event (a no-op for the
 * pipeline, whose job ids derive from the event); the same key with another body answers 422.
 *
 * @module
 */
import { createHash, randomUUID } from "node:crypto";

import { Router } from "express";

import { computeResultId } from "../../attestation/eip712.ts";
import { canonicalJson } from "../../attestation/hashing.ts";
import { httpEventId } from "../../attestation/ids.ts";
import type { CryptletEvent } from "../../queue/topology.ts";
import type { ApiDeps } from "../deps.ts";
import { HttpTriggerDisabledError, IdempotencyKeyReusedError } from "../errors.ts";
import type { ApiMetrics } from "../metrics.ts";

/** How long invocation records are kept, seconds (the pipeline keeps completed jobs 7 days too). */
export const INVOCATION_TTL_SECONDS = 7 * 24 * 3600;

/** The API's record of an HTTP invocation. */
export interface InvocationRecord {
  runId: string;
  eventId: string;
  idempotencyKey: string;
  cryptlet: { name: string; version: string };
  /** sha256 (hex) of the canonical JSON of the body. */
  bodyHash: string;
  /** The event time, Unix seconds. */
  time: number;
  /** When the API accepted it, Unix ms. */
  submittedAt: number;
}

/** The Redis key of a run's invocation record. */
export const invocationKey = (prefix: string, runId: string) => `${prefix}:api:invoke:{${runId.toLowerCase()}}`;

/** The invoke route. */
export function invokeRoutes(deps: ApiDeps, metrics: ApiMetrics): Router {
  const router = Router();
  router.post("/v1/cryptlets/:name/invoke", async (req, res) => {
    const name = req.params.name;
    const version = typeof req.query.version === "string" ? req.query.version : undefined;
    const idempotencyKey = req.get("Idempotency-Key") ?? randomUUID();
    const pkg = await deps.packages.get(name, version);
    if (!pkg.manifest.triggers.some((t) => t.type === "http")) {
      throw new HttpTriggerDisabledError(pkg.manifest.name, pkg.manifest.version);
    }
    const eventId = httpEventId(idempotencyKey);
    const runId = computeResultId(pkg.cryptletId, eventId);
    // The body is parsed JSON no deeper than limits.jsonDepth (≤ MAX_CANONICAL_JSON_DEPTH), so this cannot throw.
    const bodyHash = createHash("sha256").update(canonicalJson(req.body)).digest("hex");
    const fresh: InvocationRecord = {
      runId,
      eventId,
      idempotencyKey,
      cryptlet: { name: pkg.manifest.name, version: pkg.manifest.version },
      bodyHash,
      time: Math.floor(Date.now() / 1000),
      submittedAt: Date.now(),
    };
    const key = invocationKey(deps.prefix, runId);
    const created = (await deps.redis.set(key, JSON.stringify(fresh), "EX", INVOCATION_TTL_SECONDS, "NX")) === "OK";
    let record = fresh;
    if (!created) {
      const stored = await deps.redis.get(key);
      if (stored !== null) record = JSON.parse(stored) as InvocationRecord;
      if (record.bodyHash !== bodyHash) throw new IdempotencyKeyReusedError(runId);
    }
    const event: CryptletEvent = {
      eventId,
      cryptlet: record.cryptlet,
      source: { type: "http", idempotencyKey },
      input: req.body,
      time: record.time,
    };
    try {
      await deps.pipeline.submit(event);
    } catch (error) {
      if (created) await deps.redis.del(key); // let a retry submit again
      throw error;
    }
    metrics.invocations.inc({ cryptlet: pkg.manifest.name, outcome: created ? "accepted" : "replayed" });
    res
      .status(202)
      .location(`/v1/runs/${runId}`)
      .set("Idempotency-Key", idempotencyKey)
      .json({ runId, resultId: runId, eventId, idempotencyKey, status: "accepted", replayed: !created });
  });
  return router;
}
