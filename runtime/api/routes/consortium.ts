/**
 * Consortium: `POST /v1/consortium/proposals`, where a leading member proposes a result to co-sign
 * (docs/consortium.md). The request was authenticated as a peer member by the OpenAPI validator's `peer` handler
 * (runtime/consortium/peerAuth.ts, the sender kept on the request); the body is evaluated by
 * runtime/consortium/follower.ts and the answer (agree or dissent) returned as is. Mounted only when the runtime is a
 * consortium member.
 *
 * @module
 */
import { Router, type Request } from "express";

import { evaluateProposal } from "../../consortium/follower.ts";
import { PeerUnauthenticatedError } from "../../consortium/errors.ts";
import type { AuthenticatedPeer } from "../../consortium/peerAuth.ts";
import { bodySha256 } from "../../consortium/peerAuth.ts";
import { rawBodySha256 } from "../body.ts";
import type { ApiDeps, ConsortiumApi } from "../deps.ts";

const PEER = Symbol("peer");

/** The member a request was authenticated as, by {@link peerCheck}. */
export function peerOf(req: Request): AuthenticatedPeer | undefined {
  return (req as { [PEER]?: AuthenticatedPeer })[PEER];
}

/**
 * The `peer` security check: the bearer token against the sender's JWKS, this member as audience, the `jti` unused,
 * and `bodySha256` against the body bytes as read.
 * @throws PeerUnauthenticatedError (`ERR_PEER_UNAUTHENTICATED`, 401 or 503).
 */
export function peerCheck(consortium: ConsortiumApi): (req: Request) => Promise<void> {
  return async (req) => {
    const digest = rawBodySha256(req) ?? bodySha256(new Uint8Array(0));
    (req as { [PEER]?: AuthenticatedPeer })[PEER] = await consortium.authenticator.authenticate(
      req.get("authorization"),
      digest,
    );
  };
}

/** The consortium routes (an empty router when the runtime is not a consortium member). */
export function consortiumRoutes(deps: ApiDeps): Router {
  const router = Router();
  const consortium = deps.consortium;
  if (!consortium) return router;
  router.post("/v1/consortium/proposals", async (req, res) => {
    const peer = peerOf(req);
    if (!peer) throw new PeerUnauthenticatedError("missing");
    res.json(await evaluateProposal(req.body, consortium.follower, peer.member.id));
  });
  return router;
}
