/**
 * classifyError (runtime/errors.ts) on raw errors: what the pipeline retries and what it fails at once.
 */
import { ReplyError } from "ioredis";

import { classifyError, CryptletError } from "../../runtime/errors.ts";

describe("classifyError", () => {
  test.each([
    "Too many Cluster redirections. Last error: ReplyError: MOVED 6102 127.0.0.1:36603",
    "CLUSTERDOWN The cluster is down",
    "TRYAGAIN Multiple keys request during rehashing of slot",
    "READONLY You can't write against a read only replica.",
    "MOVED 6102 127.0.0.1:36603",
    "LOADING Redis is loading the dataset in memory",
    "Connection is closed.",
  ])("a Redis Cluster in transition is retried: %s", (message) => {
    expect(classifyError(new ReplyError(message))).toBe("retry");
  });

  test.each([
    "WRONGTYPE Operation against a key holding the wrong kind of value",
    "ERR unknown command 'FOO'",
    "NOSCRIPT No matching script",
  ])("other Redis errors fail: %s", (message) => {
    expect(classifyError(new ReplyError(message))).toBe("fail");
  });

  test("codes, statuses and CryptletErrors", () => {
    expect(classifyError(Object.assign(new Error("reset"), { code: "ECONNRESET" }))).toBe("retry");
    expect(classifyError(Object.assign(new Error("busy"), { statusCode: 503 }))).toBe("retry");
    expect(classifyError(Object.assign(new Error("bad"), { statusCode: 400 }))).toBe("fail");
    expect(classifyError(new CryptletError("ERR_X", "x", { retryable: true }))).toBe("retry");
    expect(classifyError(new TypeError("x is undefined"))).toBe("fail");
  });
});
