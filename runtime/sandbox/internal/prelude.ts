/**
 * The prelude: JavaScript evaluated in every fresh sandbox context before the bundle, identical on both engines
 * (that is what makes their behaviour identical). Evaluating it yields a function `(setupJson) => run`, where
 * `setupJson` is {@link PreludeSetup} as JSON and `run(inputJson, ctxJson)` returns a promise of the envelope
 * (a JSON string, see internal/envelope.ts).
 *
 * What it does, before any Cryptlet code runs:
 * - captures the built-ins it needs (so a Cryptlet that patches `JSON`, `Object` or prototypes cannot change the
 *   prelude's behaviour), and takes the host's fetch bridge out of the global object;
 * - removes `Date`, `Intl`, `WeakRef`, `FinalizationRegistry`, `SharedArrayBuffer`, `Atomics`, `WebAssembly`
 *   (clocks, GC-observable and host-dependent behaviour);
 * - replaces `Math.random` with sfc32 seeded from the `resultId` (see prng.ts), the locale-dependent string
 *   and number methods with locale-independent ones (`localeCompare` compares UTF-16 code units), and
 *   `BigInt.asUintN`/`asIntN` with specification-exact versions (QuickJS 0.32 gets `asUintN(64, -1n)` wrong);
 * - defines `console.log/info/warn/error/debug` as `ctx.log`.
 *
 * After `run`: serialises the output itself (one read of each property; rejects functions, symbols, BigInt,
 * `undefined` (except as an omitted object property), non-finite numbers, cycles, non-plain objects, nesting
 * deeper than 64, and stops as soon as the text exceeds `maxOutputBytes` characters), and describes any throw.
 */

/** The setup the host passes to the prelude. */
export interface PreludeSetup {
  /** sfc32 state words from prng.ts `mathRandomSeed`. */
  seed: [number, number, number, number];
  /** The output limit in UTF-8 bytes (the prelude stops at this many UTF-16 units; the host checks bytes). */
  maxOutputBytes: number;
}

/** Maximum log lines kept per run. */
export const MAX_LOG_LINES = 100;
/** Maximum characters per log line (longer lines are cut and end with `…`). */
export const MAX_LOG_LINE_CHARS = 1024;
/** Maximum nesting of the output JSON. */
export const MAX_OUTPUT_DEPTH = 64;
/** Maximum characters of a `fetch` URL. */
export const MAX_FETCH_URL_CHARS = 8192;
/** Maximum characters of all `fetch` header names and values together. */
export const MAX_FETCH_HEADER_CHARS = 16384;
/** Maximum number of `fetch` headers. */
export const MAX_FETCH_HEADERS = 64;
/** Maximum `fetch` request body (POST), in UTF-8 bytes. */
export const MAX_REQUEST_BODY_BYTES = 65536;
/** Maximum characters of a `fetch` method. */
export const MAX_FETCH_METHOD_CHARS = 16;

/** The prelude's source; the global name of the host fetch bridge it consumes is `__cryptletHostFetch`. */
export const PRELUDE_SOURCE = String.raw`(function cryptletPrelude(setupJson) {
  "use strict";
  var g = globalThis;
  var O = Object;
  var apply = Reflect.apply;
  var parse = JSON.parse;
  var stringify = JSON.stringify;
  var keys = O.keys;
  var getProto = O.getPrototypeOf;
  var freeze = O.freeze;
  var defineProperty = O.defineProperty;
  var isArray = Array.isArray;
  var ObjectProto = O.prototype;
  var StringCtor = String;
  var strSlice = String.prototype.slice;
  var strToUpper = String.prototype.toUpperCase;
  var strToLower = String.prototype.toLowerCase;
  var numToString = Number.prototype.toString;
  var bigToString = typeof BigInt === "function" ? BigInt.prototype.toString : undefined;
  var symToString = Symbol.prototype.toString;
  var promiseThen = Promise.prototype.then;
  var ErrorCtor = Error;
  var TypeErrorCtor = TypeError;
  var hostFetch = g.__cryptletHostFetch;
  delete g.__cryptletHostFetch;
  var setup = parse(setupJson);
  var maxOutput = setup.maxOutputBytes;

  function cut(s, n) { return s.length > n ? apply(strSlice, s, [0, n]) + "\u2026" : s; }
  function push(arr, v) { defineProperty(arr, arr.length, { value: v, writable: true, enumerable: true, configurable: true }); }
  function hide(obj, name, value) { defineProperty(obj, name, { value: value, writable: true, enumerable: false, configurable: true }); }

  // Clocks, GC-observable and host-dependent globals.
  var removed = ["Date", "Intl", "WeakRef", "FinalizationRegistry", "SharedArrayBuffer", "Atomics", "WebAssembly",
    "performance", "setTimeout", "setInterval", "setImmediate", "queueMicrotask", "process", "require", "global"];
  for (var i = 0; i < removed.length; i++) {
    var name = removed[i];
    if (name in g) { delete g[name]; if (name in g) defineProperty(g, name, { value: undefined }); }
  }

  // Math.random: sfc32 seeded from the resultId (prng.ts).
  var a = setup.seed[0] | 0, b = setup.seed[1] | 0, c = setup.seed[2] | 0, d = setup.seed[3] | 0;
  function next() {
    var t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  }
  for (var w = 0; w < 12; w++) next();
  hide(Math, "random", function random() { return next(); });

  // Locale-independent replacements (engines ship different locale data, or none).
  hide(String.prototype, "localeCompare", function localeCompare(that) {
    var s = StringCtor(this), t = StringCtor(that);
    return s < t ? -1 : s > t ? 1 : 0;
  });
  hide(String.prototype, "toLocaleUpperCase", function toLocaleUpperCase() { return apply(strToUpper, this, []); });
  hide(String.prototype, "toLocaleLowerCase", function toLocaleLowerCase() { return apply(strToLower, this, []); });
  hide(Number.prototype, "toLocaleString", function toLocaleString() { return apply(numToString, this, []); });
  if (bigToString) hide(BigInt.prototype, "toLocaleString", function toLocaleString() { return apply(bigToString, this, []); });

  // BigInt.asUintN / asIntN by their specification (QuickJS 0.32's asUintN(64, -1n) answers -1n).
  if (typeof BigInt === "function") {
    var B = BigInt;
    var floor = Math.floor;
    var RangeErrorCtor = RangeError;
    var toIndex = function (bits) {
      var n = +bits;
      if (n !== n) n = 0;
      n = n < 0 ? -floor(-n) : floor(n);
      if (n < 0 || n > 9007199254740991) throw new RangeErrorCtor("Invalid value: not (convertible to) a safe integer");
      return n;
    };
    hide(B, "asUintN", function asUintN(bits, bigint) {
      var n = toIndex(bits);
      var x = B(bigint);
      if (n === 0) return B(0);
      var modulus = B(1) << B(n);
      var r = x % modulus;
      return r < B(0) ? r + modulus : r;
    });
    hide(B, "asIntN", function asIntN(bits, bigint) {
      var n = toIndex(bits);
      var x = B(bigint);
      if (n === 0) return B(0);
      var modulus = B(1) << B(n);
      var r = x % modulus;
      if (r < B(0)) r += modulus;
      return r >= modulus >> B(1) ? r - modulus : r;
    });
  }

  // Logs.
  var logs = [];
  var logsDropped = 0;
  function formatArg(v) {
    var t = typeof v;
    if (t === "string") return v;
    if (t === "number" || t === "boolean" || v === undefined || v === null) return StringCtor(v);
    if (t === "bigint") return apply(bigToString, v, []) + "n";
    if (t === "symbol") return apply(symToString, v, []);
    if (t === "function") return "[function]";
    try {
      if (v instanceof ErrorCtor) return StringCtor(v.name) + ": " + StringCtor(v.message);
      var json = stringify(v);
      return typeof json === "string" ? json : "[object]";
    } catch (e) {
      return "[object]";
    }
  }
  function log() {
    if (logs.length >= ${MAX_LOG_LINES}) { logsDropped++; return; }
    var line = "";
    for (var i = 0; i < arguments.length && line.length <= ${MAX_LOG_LINE_CHARS}; i++) {
      line += (i > 0 ? " " : "") + formatArg(arguments[i]);
    }
    push(logs, cut(line, ${MAX_LOG_LINE_CHARS}));
  }
  var consoleObject = {};
  var levels = ["log", "info", "warn", "error", "debug"];
  for (var l = 0; l < levels.length; l++) hide(consoleObject, levels[l], log);
  hide(g, "console", consoleObject);

  // fetch, when granted: the host performs it (internal/hostFetch.ts).
  function makeResponse(json) {
    var r = parse(json);
    var body = r.body;
    var headers = freeze(r.contentType === null ? {} : { "content-type": r.contentType });
    return freeze({
      url: r.url,
      status: r.status,
      ok: r.status >= 200 && r.status < 300,
      headers: headers,
      text: async function text() { return body; },
      json: async function json() { return parse(body); },
    });
  }
  function fetch(url, init) {
    var request = '{"url":' + stringify(StringCtor(url));
    if (init !== undefined && init !== null) {
      if (init.method !== undefined) request += ',"method":' + stringify(StringCtor(init.method));
      if (init.body !== undefined && init.body !== null) request += ',"body":' + stringify(StringCtor(init.body));
      var h = init.headers;
      if (h !== undefined && h !== null) {
        var names = keys(h);
        request += ',"headers":{';
        for (var i = 0; i < names.length; i++) {
          request += (i > 0 ? "," : "") + stringify(StringCtor(names[i])) + ":" + stringify(StringCtor(h[names[i]]));
        }
        request += "}";
      }
    }
    request += "}";
    return apply(promiseThen, hostFetch(request), [makeResponse]);
  }

  // Output serialisation.
  var FAIL = {};
  var failure;
  function fail(code, path, reason) { failure = { code: code, path: path, reason: reason }; throw FAIL; }
  function serialize(value) {
    var ancestors = [];
    var out = "";
    function emit(s) {
      out += s;
      if (out.length > maxOutput) fail("ERR_OUTPUT_TOO_LARGE", "$", "more than " + maxOutput + " characters");
    }
    function walk(v, path, depth) {
      var t = typeof v;
      if (t === "string") return emit(stringify(v));
      if (t === "number") {
        if (v !== v || v === Infinity || v === -Infinity) fail("ERR_OUTPUT_NOT_SERIALIZABLE", path, "non-finite number");
        return emit(stringify(v));
      }
      if (t === "boolean") return emit(v ? "true" : "false");
      if (t === "bigint") fail("ERR_OUTPUT_NOT_SERIALIZABLE", path, "BigInt (convert it to a decimal string)");
      if (t === "undefined") fail("ERR_OUTPUT_NOT_SERIALIZABLE", path, "undefined");
      if (t === "function") fail("ERR_OUTPUT_NOT_SERIALIZABLE", path, "function");
      if (t === "symbol") fail("ERR_OUTPUT_NOT_SERIALIZABLE", path, "symbol");
      if (v === null) return emit("null");
      if (depth >= ${MAX_OUTPUT_DEPTH}) fail("ERR_OUTPUT_NOT_SERIALIZABLE", path, "nested deeper than ${MAX_OUTPUT_DEPTH} levels");
      for (var i = 0; i < ancestors.length; i++) {
        if (ancestors[i] === v) fail("ERR_OUTPUT_NOT_SERIALIZABLE", path, "cyclic reference");
      }
      push(ancestors, v);
      if (isArray(v)) {
        emit("[");
        var n = v.length;
        for (var j = 0; j < n; j++) {
          if (j > 0) emit(",");
          walk(v[j], path + "[" + j + "]", depth + 1);
        }
        emit("]");
      } else {
        var proto = getProto(v);
        if (proto !== ObjectProto && proto !== null) {
          fail("ERR_OUTPUT_NOT_SERIALIZABLE", path, "not a plain object or array (class instance, Map, Set, typed array...)");
        }
        emit("{");
        var names = keys(v);
        var first = true;
        for (var k = 0; k < names.length; k++) {
          var key = names[k];
          var pv = v[key];
          if (pv === undefined) continue;
          emit((first ? "" : ",") + stringify(key) + ":");
          first = false;
          walk(pv, cut(path + "." + key, 200), depth + 1);
        }
        emit("}");
      }
      ancestors.length = ancestors.length - 1;
    }
    walk(value, "$", 0);
    return out;
  }

  function describe(e) {
    try {
      if (e === null) return { kind: "null", name: "null", message: "null" };
      var t = typeof e;
      if (t === "object" || t === "function") {
        var name, message, stack;
        try { name = e.name; message = e.message; stack = e.stack; } catch (inner) { message = undefined; }
        if (typeof message === "string") {
          var described = { kind: "error", name: typeof name === "string" ? cut(name, 100) : "Error", message: cut(message, 1024) };
          if (typeof stack === "string") described.stack = cut(stack, 4096);
          return described;
        }
        var text;
        try { text = stringify(e); } catch (inner) { text = undefined; }
        return { kind: t, name: t, message: typeof text === "string" ? cut(text, 1024) : "[" + t + "]" };
      }
      if (t === "symbol") return { kind: t, name: t, message: cut(apply(symToString, e, []), 1024) };
      if (t === "bigint") return { kind: t, name: t, message: cut(apply(bigToString, e, []) + "n", 1024) };
      if (t === "string") return { kind: t, name: t, message: cut(e, 1024) };
      return { kind: t, name: t, message: StringCtor(e) };
    } catch (outer) {
      return { kind: "unknown", name: "unknown", message: "the thrown value could not be described" };
    }
  }

  function strings(arr) {
    var s = "[";
    for (var i = 0; i < arr.length; i++) s += (i > 0 ? "," : "") + stringify(arr[i]);
    return s + "]";
  }
  function finish(body) {
    return "{" + body + ',"logs":' + strings(logs) + ',"logsDropped":' + logsDropped + "}";
  }
  function thrownJson(d) {
    return '{"kind":' + stringify(d.kind) + ',"name":' + stringify(d.name) + ',"message":' + stringify(d.message) +
      (d.stack === undefined ? "" : ',"stack":' + stringify(d.stack)) + "}";
  }

  return async function run(inputJson, ctxJson) {
    try {
      var exported = g.cryptlet;
      var definition = exported === undefined || exported === null ? undefined : exported["default"];
      var runFunction = definition === undefined || definition === null ? undefined : definition.run;
      if (typeof runFunction !== "function") {
        return finish('"ok":false,"code":"ERR_BUNDLE_INVALID","reason":"cryptlet.default.run is not a function"');
      }
      var input = parse(inputJson);
      var data = parse(ctxJson);
      var ctx = { event: data.event, requestId: data.requestId, resultId: data.resultId, now: data.now, log: log };
      if (hostFetch !== undefined) ctx.fetch = fetch;
      freeze(ctx);
      var value = await apply(runFunction, definition, [input, ctx]);
      var json = serialize(value);
      return finish('"ok":true,"output":' + stringify(json));
    } catch (e) {
      if (e === FAIL) {
        return finish('"ok":false,"code":' + stringify(failure.code) + ',"path":' + stringify(failure.path) +
          ',"reason":' + stringify(failure.reason));
      }
      return finish('"ok":false,"thrown":' + thrownJson(describe(e)));
    }
  };
})`;
