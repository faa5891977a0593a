/**
 * The deployment files (issue 15 item 3), checked without a cluster or a Docker daemon (none runs here):
 * - every Kubernetes manifest in deploy/kubernetes/ validates against the Kubernetes API schemas
 *   (`kubernetes-models`, generated from the Kubernetes OpenAPI document);
 * - they agree with the runtime: the ConfigMap's configuration loads with `parseRuntimeConfig` (with the Secret's
 *   variables as the environment), each role's probes hit the port and paths that role serves, the grace period
 *   exceeds the shutdown deadline, every pod runs as non-root with resource requests, the disruption budgets and
 *   the autoscaler select existing Deployments, and the autoscaler's metric is one the API exports;
 * - compose.yaml runs each role with the configuration and a Redis with AOF; the Dockerfile is multi-stage, on
 *   Node 24, without dev dependencies, as a non-root user.
 */
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";

import { parseAllDocuments, parse as parseYaml } from "yaml";
import { Deployment } from "kubernetes-models/apps/v1";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ConfigMap, Secret, Service } from "kubernetes-models/v1";

import { createApiMetrics } from "../../runtime/api/metrics.ts";
import { DEFAULT_RESILIENCE, parseRuntimeConfig } from "../../runtime/config.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..");
const DIR = path.join(ROOT, "deploy", "kubernetes");

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  [key: string]: any;
}

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "apps/v1/Deployment": Deployment as never,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler as never,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget as never,
  "v1/ConfigMap": ConfigMap as never,
  "v1/Secret": Secret as never,
  "v1/Service": Service as never,
};

const manifests: { file: string; doc: Manifest }[] = readdirSync(DIR)
  .filter((f) => f.endsWith(".yaml"))
  .sort()
  .flatMap((file) =>
    parseAllDocuments(readFileSync(path.join(DIR, file), "utf8")).map((d) => {
      if (d.errors.length > 0) throw new Error(`${file}: ${d.errors[0]!.message}`);
      return { file, doc: d.toJS() as Manifest };
    }),
  );
const ofKind = (kind: string) => manifests.map((m) => m.doc).filter((d) => d.kind === kind);
const deployment = (role: string) => ofKind("Deployment").find((d) => d.metadata.name === `cryptlet-${role}`)!;

describe("Kubernetes manifests (deploy/kubernetes)", () => {
  test.each(manifests.map((m) => [`${m.file} ${m.doc.kind}/${m.doc.metadata.name}`, m.doc] as const))(
    "%s validates against the Kubernetes schema",
    (_name, doc) => {
      const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
      expect(Model).toBeDefined();
      expect(() => new Model!(doc as never).validate()).not.toThrow();
    },
  );

  test("a schema error is caught (the validation can fail)", () => {
    const broken = structuredClone(deployment("worker"));
    broken.spec.template.spec.containers[0].ports[0].containerPort = "9464";
    expect(() => new Deployment(broken as never).validate()).toThrow(/containerPort must be integer/);
  });

  test("there is a Deployment per role, each running `cryptlet serve <role>` from the one image", () => {
    const roles = ofKind("Deployment").map((d) => d.spec.template.spec.containers[0].args);
    expect(roles).toEqual(expect.arrayContaining([["api"], ["worker"], ["triggers"]]));
    expect(new Set(ofKind("Deployment").map((d) => d.spec.template.spec.containers[0].image)).size).toBe(1);
    const dockerfile = readFileSync(path.join(ROOT, "Dockerfile"), "utf8");
    expect(dockerfile).toMatch(/^ENTRYPOINT \["node", "runtime\/cli\/main\.ts", "serve"\]$/m);
  });

  test("the ConfigMap's configuration loads, with the Secret's variables as the environment", () => {
    const config = JSON.parse(ofKind("ConfigMap")[0]!.data["cryptlet.config.json"]) as unknown;
    const fromFile = JSON.parse(readFileSync(path.join(ROOT, "deploy", "cryptlet.config.json"), "utf8")) as unknown;
    expect(config).toEqual(fromFile);
    const secret = ofKind("Secret")[0]!.stringData as Record<string, string>;
    const saved = { ...process.env };
    try {
      Object.assign(process.env, secret, { CRYPTLET_RPC_URLS_CONSORTIUM: "https://rpc.example/v3/key" });
      const runtime = parseRuntimeConfig(config, "configmap", "/etc/cryptlet");
      expect(runtime.role).toBe("production");
      expect(runtime.chains[0]!.rpcUrls).toEqual(["https://rpc.example/v3/key"]);
      expect(runtime.api?.auth).toBeDefined(); // production: an OpenID Connect issuer, not the local one
      expect(runtime.api?.localIssuer).toBeUndefined();
      expect(runtime.redisDurability.epochFile).toBe("/var/lib/cryptlet/redis-epoch.json");
      // Every secret the runtime reads from the environment is in the Secret.
      expect(Object.keys(secret).sort()).toEqual(
        [
          "AZURE_CLIENT_ID",
          "AZURE_CLIENT_SECRET",
          "AZURE_TENANT_ID",
          "CRYPTLET_RPC_URLS_CONSORTIUM",
          "REDIS_URL",
        ].sort(),
      );
    } finally {
      process.env = saved;
    }
  });

  test("probes hit what each role serves; grace period, non-root, requests, writable state", () => {
    const config = parseRuntimeConfig(JSON.parse(ofKind("ConfigMap")[0]!.data["cryptlet.config.json"]) as unknown);
    const served = {
      api: { port: config.api!.port, live: "/health", ready: "/ready" },
      worker: { port: 9464, live: "/healthz", ready: "/readyz" },
      triggers: { port: 9464, live: "/healthz", ready: "/readyz" },
    };
    for (const [role, expected] of Object.entries(served)) {
      const pod = deployment(role).spec.template.spec;
      const container = pod.containers[0];
      const env = Object.fromEntries(
        (container.env as { name: string; value: string }[]).map((e) => [e.name, e.value]),
      ) as Record<string, string>;
      const port = container.ports[0];
      if (role !== "api") expect(Number(env.CRYPTLET_HEALTH_PORT)).toBe(expected.port);
      expect(port.containerPort).toBe(expected.port);
      for (const probe of ["startupProbe", "livenessProbe"]) {
        expect(container[probe].httpGet).toEqual({ path: expected.live, port: port.name });
      }
      expect(container.readinessProbe.httpGet).toEqual({ path: expected.ready, port: port.name });
      expect(env.CRYPTLET_CONFIG).toBe("/etc/cryptlet/cryptlet.config.json");
      expect(container.volumeMounts).toEqual(
        expect.arrayContaining([
          { name: "config", mountPath: "/etc/cryptlet", readOnly: true },
          { name: "state", mountPath: path.dirname(config.redisDurability.epochFile) },
        ]),
      );
      expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(DEFAULT_RESILIENCE.shutdownTimeoutMs);
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
      expect(container.securityContext).toMatchObject({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
      });
      expect(container.resources.requests).toEqual({ cpu: expect.any(String), memory: expect.any(String) });
      expect(container.envFrom).toEqual([{ secretRef: { name: "cryptlet-secrets" } }]);
    }
  });

  test("disruption budgets and the autoscaler select the Deployments; the metric is one the API exports", async () => {
    const podLabels = ofKind("Deployment").map((d) => d.spec.template.metadata.labels as Record<string, string>);
    for (const pdb of ofKind("PodDisruptionBudget")) {
      const wanted = pdb.spec.selector.matchLabels as Record<string, string>;
      const matches = podLabels.filter((labels) => Object.entries(wanted).every(([k, v]) => labels[k] === v));
      expect({ pdb: pdb.metadata.name, matches: matches.length }).toEqual({ pdb: pdb.metadata.name, matches: 1 });
    }
    const service = ofKind("Service")[0]!;
    expect(podLabels).toContainEqual(expect.objectContaining(service.spec.selector));

    const hpa = ofKind("HorizontalPodAutoscaler")[0]!;
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: "apps/v1", kind: "Deployment", name: "cryptlet-worker" });
    const metric = hpa.spec.metrics[0].external.metric;
    // The API's registry exports it with those labels and values (scraped from a live registry over queues that
    // answer 7 waiting execute jobs).
    const queues = new Map([["execute", { getJobCounts: () => Promise.resolve({ waiting: 7 }) }]]);
    const { registry } = createApiMetrics(queues as never);
    const scraped = await registry.getSingleMetric(metric.name)!.get();
    const series = scraped.values.find((v) =>
      Object.entries(metric.selector.matchLabels as Record<string, string>).every(([k, val]) => v.labels[k] === val),
    );
    expect(series?.value).toBe(7);
  });
});

describe("compose.yaml and the Dockerfile", () => {
  const compose = parseYaml(readFileSync(path.join(ROOT, "compose.yaml"), "utf8"), { merge: true }) as {
    services: Record<string, Record<string, unknown> & { command?: string[]; environment?: Record<string, string> }>;
  };

  test("each role runs from the image with the configuration; Redis keeps an append-only file", () => {
    for (const role of ["api", "worker", "triggers"]) {
      const service = compose.services[role]!;
      expect(service.command).toEqual([role]);
      expect(service.image).toBe("cryptlet-runtime:local");
      expect(service.environment?.CRYPTLET_CONFIG).toBe("/etc/cryptlet/cryptlet.config.json");
      expect(service.volumes).toContain("./deploy/cryptlet.config.json:/etc/cryptlet/cryptlet.config.json:ro");
      expect(service.environment?.REDIS_URL).toBe("redis://redis:6379");
    }
    expect(compose.services.redis!.command).toEqual([
      "redis-server",
      "--appendonly",
      "yes",
      "--appendfsync",
      "everysec",
    ]);
  });

  test("the Dockerfile: two stages, Node 24, dev dependencies pruned, a non-root user", () => {
    const dockerfile = readFileSync(path.join(ROOT, "Dockerfile"), "utf8");
    const from = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    expect(from).toEqual(["node:24-bookworm", "node:24-bookworm-slim"]);
    expect(dockerfile).toMatch(/^RUN npm prune --omit=dev/m);
    const runtimeStage = dockerfile.slice(dockerfile.lastIndexOf("\nFROM "));
    expect(runtimeStage).toMatch(/^USER node$/m);
    expect(runtimeStage).not.toMatch(/^RUN npm install/m);
  });
});
