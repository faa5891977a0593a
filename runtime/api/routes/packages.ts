/**
 * `POST /v1/packages` (deploy), `GET /v1/packages`, `GET /v1/packages/{name}`,
 * `GET /v1/packages/{name}/versions/{version}`.
 *
 * @module
 */
import { Router } from "express";

import { sha256Hex } from "../../packages/digest.ts";
import type { StoredPackage } from "../../packages/PackageStore.ts";
import type { ApiDeps } from "../deps.ts";

/** The JSON body of `POST /v1/packages` (validated by the OpenAPI document before it gets here). */
export interface DeployRequestBody {
  manifest: Record<string, unknown>;
  /** Files by relative POSIX path, base64 (RFC 4648 §4). */
  files: Record<string, string>;
  /** The publisher's compact JWS. */
  signature: string;
}

/** The public view of a stored package: file sizes and digests, not contents. */
export function packageDetail(pkg: StoredPackage) {
  return {
    name: pkg.manifest.name,
    version: pkg.manifest.version,
    cryptletId: pkg.cryptletId,
    codeHash: pkg.codeHash,
    manifest: pkg.manifest as unknown as Record<string, unknown>,
    files: Object.fromEntries(
      Object.entries(pkg.files).map(([path, bytes]) => [path, { bytes: bytes.byteLength, sha256: sha256Hex(bytes) }]),
    ),
    publisherKid: pkg.publisherKid,
    deployedAt: new Date(pkg.deployedAt).toISOString(),
    signature: pkg.signature,
  };
}

/** The package routes. */
export function packageRoutes(deps: ApiDeps): Router {
  const router = Router();
  router.post("/v1/packages", async (req, res) => {
    const body = req.body as DeployRequestBody;
    const files = Object.fromEntries(
      Object.entries(body.files).map(([path, b64]) => [path, new Uint8Array(Buffer.from(b64, "base64"))]),
    );
    const result = await deps.packages.deploy({ manifest: body.manifest, files }, body.signature);
    deps.logger?.info(
      { name: result.name, version: result.version, codeHash: result.codeHash, created: result.created },
      "package deployed",
    );
    res.status(result.created ? 201 : 200).json(result);
  });
  router.get("/v1/packages", async (_req, res) => {
    res.json({ packages: await deps.packages.list() });
  });
  router.get("/v1/packages/:name", async (req, res) => {
    res.json(packageDetail(await deps.packages.get(req.params.name)));
  });
  router.get("/v1/packages/:name/versions/:version", async (req, res) => {
    res.json(packageDetail(await deps.packages.get(req.params.name, req.params.version)));
  });
  return router;
}
