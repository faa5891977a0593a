/**
 * Tracing across processes (issue 15 item 2): two worker processes (`cryptlet serve worker --stages …`) split the
 * pipeline's stages, so one run's jobs cross from one process to the other; both export their spans by OTLP/HTTP to
 * a receiver in this test. The spans of the run, from both processes, share one trace id, rooted where the event
 * was taken. (Tracing is off without an endpoint: every other test runs so.)
 */
import { once } from "node:events";
import { readFile, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";

import { httpEventId } from "../../runtime/attestation/ids.ts";
import { loadMinuteInputs } from "../../cryptlets/price-median/data/loadObservations.ts";
import { startPipelineStack, type PipelineStack } from "../support/pipelineStack.ts";
import { serve, stopServed, type Served } from "../support/serveProcess.ts";

/** One exported span, as the OTLP/JSON request carried it, with its process. */
interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  instance: string;
  service: string;
}

/** OTLP/HTTP JSON (opentelemetry-proto `ExportTraceServiceRequest`) → spans. */
function spansOf(body: unknown): ReceivedSpan[] {
  type KeyValue = { key: string; value: { stringValue?: string; intValue?: number | string } };
  const request = body as {
    resourceSpans?: {
      resource?: { attributes?: KeyValue[] };
      scopeSpans?: { spans?: { traceId: string; spanId: string; parentSpanId?: string; name: string }[] }[];
    }[];
  };
  return (request.resourceSpans ?? []).flatMap((r) => {
    const attribute = (key: string) => r.resource?.attributes?.find((a) => a.key === key)?.value.stringValue ?? "";
    return (r.scopeSpans ?? []).flatMap((s) =>
      (s.spans ?? []).map((span) => ({
        traceId: span.traceId,
        spanId: span.spanId,
        parentSpanId: span.parentSpanId ?? "",
        name: span.name,
        instance: attribute("service.instance.id"),
        service: attribute("service.name"),
      })),
    );
  });
}

describe("tracing: one run's spans share a trace across two worker processes", () => {
  let stack: PipelineStack;
  let receiver: http.Server;
  let endpoint: string;
  const received: ReceivedSpan[] = [];
  const contentTypes = new Set<string>();

  beforeAll(async () => {
    receiver = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        contentTypes.add(String(req.headers["content-type"]));
        if (req.url === "/v1/traces") received.push(...spansOf(JSON.parse(Buffer.concat(chunks).toString("utf8"))));
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      });
    });
    receiver.listen(0, "127.0.0.1");
    await once(receiver, "listening");
    endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/v1/traces`;
    stack = await startPipelineStack({
      chains: [{ name: "consortium", chainId: 74_401 }],
      targets: [{ chain: "consortium", mode: "record" }],
      workers: false,
    });
  }, 180_000);

  afterAll(async () => {
    await stack?.close();
    receiver?.close();
  });

  test("spans from both processes, one trace id for the run", async () => {
    const configFile = await stack.writeConfig();
    const document = JSON.parse(await readFile(configFile, "utf8")) as Record<string, unknown>;
    await writeFile(configFile, JSON.stringify({ ...document, telemetry: { otlpEndpoint: endpoint } }));
    const env = { NODE_EXTRA_CA_CERTS: path.join(path.dirname(configFile), "ca.pem"), LOG_LEVEL: "warn" };
    const workers: Served[] = [
      await serve("worker", configFile, env, ["--stages", "events,execute"]),
      await serve("worker", configFile, env, ["--stages", "attest,writes,runs"]),
    ];
    const instances = workers.map((w) => `local:${w.ready.pid}`);
    try {
      const { minute, input } = (await loadMinuteInputs())[650]!;
      const key = `${stack.prefix}-traced`;
      const { runId } = await stack.pipeline.submit({
        eventId: httpEventId(key),
        cryptlet: { name: stack.pkg.manifest.name },
        source: { type: "http", idempotencyKey: key },
        input,
        time: minute + 59,
      });
      expect((await stack.pipeline.waitForRun(runId, 120_000)).status).toBe("complete");
    } finally {
      for (const w of workers) expect((await stopServed(w)).code).toBe(0); // flushes the spans on the way out
    }
    const ours = received.filter((s) => instances.includes(s.instance));
    const byProcess = instances.map((instance) => ours.filter((s) => s.instance === instance));
    expect(byProcess.map((spans) => spans.length > 0)).toEqual([true, true]);
    expect([...contentTypes]).toEqual(["application/json"]);
    // The run's trace: every job of the run was processed ("process <queue>" spans, one per stage, in both
    // processes) under one trace id; each of its spans but the root has its parent in the trace. (BullMQ's own
    // housekeeping, such as stalled-job checks and closing, makes traces of its own.)
    const processed = ours.filter((s) => s.name.startsWith("process "));
    expect(processed.map((s) => s.name).sort()).toEqual(
      ["process attest", "process events", "process execute", "process runs", "process writes"].sort(),
    );
    const traceIds = [...new Set(processed.map((s) => s.traceId))];
    expect(traceIds).toHaveLength(1);
    const run = ours.filter((s) => s.traceId === traceIds[0]);
    expect(new Set(run.map((s) => s.instance))).toEqual(new Set(instances));
    const ids = new Set(run.map((s) => s.spanId));
    const roots = run.filter((s) => !ids.has(s.parentSpanId));
    expect(roots.map((s) => `${s.name}@${s.instance}`)).toEqual([`process events@${instances[0]}`]);
    expect(new Set(ours.map((s) => s.service))).toEqual(new Set(["cryptlet-worker"]));
  }, 300_000);
});
