/**
 * Starts the API on a TCP port: `startApiServer(deps, {host, port})` → the bound URL and a graceful `close()`.
 *
 * The server bounds how long a client may take to send a request (a client that declares a large
 * `Content-Length` and sends a few bytes holds a socket only that long): the request line and headers within
 * `headersTimeoutMs`, the whole request (headers and body) within `requestTimeoutMs`, both counted from the
 * request's first byte and checked every `CONNECTIONS_CHECKING_INTERVAL_MS` (Node's `headersTimeout`,
 * `requestTimeout`, `connectionsCheckingInterval`). A request over either limit is answered `408` with an
 * RFC 9457 problem document (`ERR_API_REQUEST_TIMEOUT`) and its connection closed; headers over Node's
 * `maxHeaderSize` get `431` and unparseable HTTP `400`, also as problem documents.
 *
 * @module
 */
import { createServer, maxHeaderSize, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";

import { createApiApp, type ApiApp } from "./app.ts";
import type { ApiDeps } from "./deps.ts";
import { ApiError, ERR_API_BAD_REQUEST, HeadersTooLargeError, RequestTimeoutError } from "./errors.ts";
import { PROBLEM_MEDIA_TYPE, problemOf } from "./problem.ts";

/** Default time for a request's line and headers to arrive, ms. */
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;
/** Default time for a whole request (headers and body) to arrive, ms. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** How often Node checks the two limits, ms: a slow request is answered at most this long after its limit. */
export const CONNECTIONS_CHECKING_INTERVAL_MS = 1000;

/** A running API server. */
export interface ApiServer extends ApiApp {
  server: Server;
  /** e.g. `http://127.0.0.1:8080` (the bound port when `port` was 0). */
  url: string;
  /** Stops accepting connections, closes idle keep-alive ones, waits for in-flight requests. */
  close(): Promise<void>;
}

/** Options of {@link startApiServer}. Durations in ms. */
export interface ApiServerOptions {
  /** Interface to bind. Default `127.0.0.1`. */
  host?: string;
  /** Port; 0 for any free port. Default 8080. */
  port?: number;
  /** Time for the request line and headers to arrive, from the request's first byte, ms. Default 10000. */
  headersTimeoutMs?: number;
  /**
   * Time for the whole request (headers and body) to arrive, from its first byte, ms. Default 30000. At least
   * `headersTimeoutMs`.
   */
  requestTimeoutMs?: number;
}

/** Writes a problem document straight to a socket whose request Node refused before express saw it. */
function answerRawProblem(socket: Socket, status: number, reason: string, error: ApiError): void {
  const body = JSON.stringify(problemOf(status, error));
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\n` +
      `Content-Type: ${PROBLEM_MEDIA_TYPE}\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      "Connection: close\r\n\r\n" +
      body,
  );
}

/**
 * Node's `clientError` (RFC 9110 status, problem document, connection closed): request timeouts (408), headers
 * too large (431), anything else it cannot parse (400). Nothing is written when a response has started.
 */
function onClientError(requestTimeoutMs: number, headersTimeoutMs: number) {
  return (error: Error & { code?: string }, socket: Socket): void => {
    const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (!socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    // Node's own code `ERR_HTTP_REQUEST_TIMEOUT` (not one of ours: the error registry only admits declared codes).
    if (error.code?.endsWith("_HTTP_REQUEST_TIMEOUT")) {
      // Node does not say which limit expired: a request still in its headers hit the headers limit.
      const timeoutMs = inFlight === undefined ? headersTimeoutMs : requestTimeoutMs;
      answerRawProblem(socket, 408, "Request Timeout", new RequestTimeoutError(timeoutMs));
    } else if (error.code === "HPE_HEADER_OVERFLOW") {
      answerRawProblem(socket, 431, "Request Header Fields Too Large", new HeadersTooLargeError(maxHeaderSize));
    } else {
      answerRawProblem(socket, 400, "Bad Request", new ApiError(400, ERR_API_BAD_REQUEST, "malformed HTTP request"));
    }
    socket.destroySoon();
  };
}

/**
 * Creates the app and listens.
 * @param deps - see {@link ApiDeps}; `publicUrl` defaults to the bound URL.
 * @param options - see {@link ApiServerOptions}.
 * @throws the `listen` error (e.g. `EADDRINUSE`); RangeError when `requestTimeoutMs < headersTimeoutMs`.
 *
 * @example
 * ```ts
 * import { startApiServer } from "./runtime/api/server.ts";
 * const api = await startApiServer(deps, { port: 0 });
 * console.log(`API at ${api.url}`);
 * await api.close();
 * ```
 */
export async function startApiServer(deps: ApiDeps, options: ApiServerOptions = {}): Promise<ApiServer> {
  const host = options.host ?? "127.0.0.1";
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const headersTimeoutMs = Math.min(options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS, requestTimeoutMs);
  if (options.headersTimeoutMs !== undefined && options.headersTimeoutMs > requestTimeoutMs) {
    throw new RangeError("requestTimeoutMs must be at least headersTimeoutMs");
  }
  const server = createServer({
    requestTimeout: requestTimeoutMs,
    headersTimeout: headersTimeoutMs,
    connectionsCheckingInterval: CONNECTIONS_CHECKING_INTERVAL_MS,
  });
  server.on("clientError", onClientError(requestTimeoutMs, headersTimeoutMs));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 8080, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  let api: ApiApp;
  try {
    api = createApiApp({ ...deps, publicUrl: deps.publicUrl ?? url });
  } catch (error) {
    server.close();
    throw error;
  }
  server.on("request", api.app);
  return {
    ...api,
    server,
    url,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeIdleConnections();
      }),
  };
}
