/**
 * The runtime's HTTP API as an express 5 application (docs/api.md). Middleware order:
 *
 * 1. metrics (every request counted and timed), per-IP rate limit;
 * 2. JSON body parsers with size and nesting limits (larger for `POST /v1/packages`), content codings decoded,
 *    a missing or empty body refused where the operation requires one (./body.ts);
 * 3. the OpenAPI 3.1 validator (docs/openapi.yaml): route matching, bearer authentication and role check from
 *    each operation's `security` roles, then request validation (bodies, params, query, headers);
 * 4. per-subject rate limit;
 * 5. the routes; the BullMQ dashboard at `/admin/queues` (admin), the local issuer at `/local-issuer` (dev);
 * 6. the problem handler (RFC 9457).
 *
 * @module
 */
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { createBullBoard } from "@bull-board/api";
import { ExpressAdapter } from "@bull-board/express";
import express, { type Express, type Request, type RequestHandler } from "express";

import { MAX_CANONICAL_JSON_DEPTH } from "../attestation/hashing.ts";
import { ipKeyGenerator, rateLimit } from "express-rate-limit";

import { QUEUES } from "../queue/topology.ts";
import { BearerAuthenticator, type Principal } from "./auth.ts";
import { jsonBody, requireBody } from "./body.ts";
import type { ApiDeps } from "./deps.ts";
import { NotFoundError, RateLimitedError } from "./errors.ts";
import { createApiMetrics, type ApiMetrics } from "./metrics.ts";
import { loadOpenApiDocument, openApiValidator } from "./openapi.ts";
import { problemHandler, sendProblem } from "./problem.ts";
import { consortiumRoutes, peerCheck } from "./routes/consortium.ts";
import { invokeRoutes } from "./routes/invoke.ts";
import { operationsRoutes } from "./routes/operations.ts";
import { packageRoutes } from "./routes/packages.ts";
import { attestationJwks, proofRoutes } from "./routes/proofs.ts";
import { reportRoutes } from "./routes/report.ts";
import { runRoutes } from "./routes/runs.ts";

/** Where the BullMQ dashboard is served. */
export const DASHBOARD_PATH = "/admin/queues";
/** Where the local issuer (dev stack) is served. */
export const LOCAL_ISSUER_PATH = "/local-issuer";

/** Default limits (see {@link ApiDeps.limits}). */
export const DEFAULT_LIMITS = {
  jsonBytes: 1024 * 1024,
  deployBytes: 8 * 1024 * 1024,
  proposalBytes: 16 * 1024 * 1024,
  jsonDepth: 128,
  rateWindowMs: 60_000,
  perSubject: 600,
  perIp: 1200,
} as const;

/** The app and what tests and the server need from it. */
export interface ApiApp {
  app: Express;
  metrics: ApiMetrics;
  authenticator: BearerAuthenticator;
}

/** The caller of an authenticated request. */
export function principalOf(req: Request): Principal | undefined {
  return (req as { principal?: Principal }).principal;
}

function limiter(windowMs: number, limit: number, key: (req: Request) => string | undefined): RequestHandler {
  return rateLimit({
    windowMs,
    limit,
    standardHeaders: "draft-8",
    legacyHeaders: false,
    skip: (req) => key(req) === undefined,
    keyGenerator: (req) => key(req) as string,
    handler: (req, res) => {
      const reset = (req as { rateLimit?: { resetTime?: Date } }).rateLimit?.resetTime;
      const seconds = reset
        ? Math.max(1, Math.ceil((reset.getTime() - Date.now()) / 1000))
        : Math.ceil(windowMs / 1000);
      sendProblem(req, res, 429, new RateLimitedError(seconds));
    },
  });
}

/**
 * Builds the API application. Nothing listens yet (see `startApiServer`).
 *
 * @param deps - stores, pipeline, Redis, chains, attestation keys, verification settings, auth, limits.
 * @returns the express app, its metrics registry and the authenticator.
 *
 * @example
 * ```ts
 * import { createApiApp } from "./runtime/api/app.ts";
 * import { apiDepsOf } from "./runtime/api/deps.ts";
 * import { LocalIssuer } from "./runtime/api/localIssuer.ts";
 *
 * const issuer = await LocalIssuer.create();
 * const { app } = createApiApp(
 *   apiDepsOf(ctx, pipeline, {
 *     auth: issuer.authOptions(),
 *     localIssuer: issuer,
 *     verification: { trustedSigners, threshold: 2 },
 *   }),
 * );
 * app.listen(8080);
 * ```
 */
export function createApiApp(deps: ApiDeps): ApiApp {
  const limits = { ...DEFAULT_LIMITS, ...deps.limits };
  if (!Number.isInteger(limits.jsonDepth) || limits.jsonDepth < 1 || limits.jsonDepth > MAX_CANONICAL_JSON_DEPTH) {
    throw new RangeError(`limits.jsonDepth must be an integer from 1 to ${MAX_CANONICAL_JSON_DEPTH}`);
  }
  const authenticator = deps.auth instanceof BearerAuthenticator ? deps.auth : new BearerAuthenticator(deps.auth);
  const queues = new Map(Object.values(QUEUES).map((name) => [name, deps.pipeline.queue(name)] as const));
  const metrics = createApiMetrics(queues);
  const jwks = attestationJwks(deps);

  const app = express();
  app.disable("x-powered-by");
  app.set("query parser", "simple");
  app.use(metrics.middleware);
  app.use(limiter(limits.rateWindowMs, limits.perIp, (req) => ipKeyGenerator(req.ip ?? "unknown")));
  app.use("/v1/packages", jsonBody({ limitBytes: limits.deployBytes, maxDepth: limits.jsonDepth }));
  app.use("/v1/consortium", jsonBody({ limitBytes: limits.proposalBytes, maxDepth: limits.jsonDepth, sha256: true }));
  app.use(jsonBody({ limitBytes: limits.jsonBytes, maxDepth: limits.jsonDepth }));
  app.use(requireBody(loadOpenApiDocument()));

  const authenticate = async (req: Request, roles: readonly string[]): Promise<void> => {
    const principal = await authenticator.authenticate(req.get("authorization"));
    (req as { principal?: Principal }).principal = principal;
    authenticator.authorize(principal, roles);
  };

  if (deps.localIssuer) {
    const publicUrl = deps.publicUrl?.replace(/\/$/, "");
    app.use(LOCAL_ISSUER_PATH, deps.localIssuer.router(publicUrl && `${publicUrl}${LOCAL_ISSUER_PATH}`));
  }
  if (deps.dashboard !== false) {
    const board = new ExpressAdapter();
    board.setBasePath(DASHBOARD_PATH);
    createBullBoard({ queues: [...queues.values()].map((q) => new BullMQAdapter(q)), serverAdapter: board });
    app.use(
      DASHBOARD_PATH,
      (req, _res, next) => {
        authenticate(req, ["admin"]).then(() => next(), next);
      },
      board.getRouter() as RequestHandler,
    );
  }

  app.use(
    openApiValidator({
      bearer: authenticate,
      ...(deps.consortium ? { peer: peerCheck(deps.consortium) } : {}),
      validateResponses: deps.validateResponses ?? false,
      ignorePaths: new RegExp(`^(${DASHBOARD_PATH}|${LOCAL_ISSUER_PATH})(/|$)`),
    }),
  );
  app.use(
    limiter(limits.rateWindowMs, limits.perSubject, (req) => {
      const principal = principalOf(req);
      return principal ? `${principal.issuer}|${principal.subject}` : undefined;
    }),
  );

  app.use(operationsRoutes(deps, metrics));
  app.use(packageRoutes(deps));
  app.use(invokeRoutes(deps, metrics));
  app.use(runRoutes(deps));
  app.use(reportRoutes(deps, jwks));
  app.use(proofRoutes(deps, jwks));
  app.use(consortiumRoutes(deps));
  app.use((req, _res, next) => {
    next(new NotFoundError(`route ${req.method} ${req.path}`));
  });
  app.use(problemHandler(deps.logger));
  return { app, metrics, authenticator };
}
