/**
 * Distributed tracing (OpenTelemetry): one trace per run, from the process that submits its event (the API or a
 * trigger) through every stage's job to the last confirmation, across processes. Off by default; on when the
 * configuration's `telemetry.otlpEndpoint` or the standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, exported by
 * OTLP over HTTP (JSON).
 *
 * The trace crosses processes inside BullMQ's jobs: BullMQ's telemetry interface (implemented by `bullmq-otel`)
 * opens a span when a job is added and when it is processed, and carries the W3C trace context (`traceparent`)
 * in the job, so a worker's span is the child of the span that added the job, and the jobs a stage adds (the
 * run's flow, the writes) are children of that stage's span.
 *
 * @module
 */
import { context, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { BullMQOtel } from "bullmq-otel";

/** The `telemetry` section of the configuration. */
export interface TelemetryConfig {
  /**
   * The OTLP/HTTP traces endpoint, e.g. `http://otel-collector:4318/v1/traces`. Default: the environment's
   * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; tracing is off when neither is set.
   */
  otlpEndpoint?: string;
}

/** Tracing started in this process. */
export interface Tracing {
  /** Where spans go. */
  endpoint: string;
  /** Exports the spans still buffered and stops (call before the process exits; bounded by `timeoutMs`). */
  shutdown(timeoutMs?: number): Promise<void>;
}

let telemetry: BullMQOtel | undefined;

/**
 * BullMQ's telemetry for this process's queues, workers and flow producers: `undefined` (no spans, no trace
 * context in jobs) until {@link startTracing} started tracing.
 */
export function bullmqTelemetry(): BullMQOtel | undefined {
  return telemetry;
}

/**
 * Starts tracing for this process when an endpoint is configured: the W3C trace-context propagator, an
 * AsyncLocalStorage context manager, a tracer provider whose resource names the service (`serviceName`) and this
 * process (`service.instance.id`: host and pid), and a batch exporter to the endpoint.
 * @param serviceName - e.g. `cryptlet-worker`.
 * @returns the running tracing, or `undefined` when no endpoint is configured (tracing stays off).
 * @throws TypeError when the endpoint is not an http(s) URL.
 */
export function startTracing(config: TelemetryConfig | undefined, serviceName: string): Tracing | undefined {
  const endpoint = config?.otlpEndpoint ?? process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (!endpoint) return undefined;
  if (!/^https?:\/\//.test(endpoint)) throw new TypeError(`telemetry.otlpEndpoint must be an http(s) URL`);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  const provider = new TracerProvider({
    resource: resourceFromAttributes({
      "service.name": serviceName,
      "service.instance.id": `${process.env.HOSTNAME ?? "local"}:${process.pid}`,
      "process.pid": process.pid,
    }),
    spanProcessors: [
      new BatchSpanProcessor({
        exporter: new OTLPTraceExporter({ url: endpoint, timeoutMillis: 5000 }),
        scheduledDelayMillis: 1000,
      }),
    ],
  });
  trace.setGlobalTracerProvider(provider);
  telemetry = new BullMQOtel({ tracerName: "cryptlet-runtime" });
  return {
    endpoint,
    async shutdown(timeoutMs = 5000) {
      await Promise.race([
        provider.shutdown(),
        new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref()),
      ]).catch(() => undefined);
    },
  };
}
