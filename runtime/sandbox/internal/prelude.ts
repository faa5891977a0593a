/**
 * The prelude: JavaScript evaluated in every fresh sandbox context before the bundle, identical on both engines
 * (that is what makes their behaviour identical). Evaluating it yields a function `(setupJson) => run`, where
 * `setupJson` is {@link PreludeSetup} as JSON and `run(inputJson, ctxJson)` returns a promise of the envelope
 * (a JSON string, see internal/envelope.ts). The promise never rejects: every failure, whatever the Cryptlet
 * threw, is described inside the sandbox and crosses as bounded JSON text.
 *
 * What it does, before any Cryptlet code runs:
 * - captures the built-ins it needs (so a Cryptlet that patches `JSON`, `Object` or prototypes cannot change the
 *   prelude's behaviour), and takes the host's fetch bridge out of the global object;
 * - removes `Date`, `Intl`, `WeakRef`, `FinalizationRegistry`, `SharedArrayBuffer`, `Atomics`, `WebAssembly`
 *   (clocks, GC-observable and host-dependent behaviour);
 * - replaces `Math.random` with sfc32 seeded from the `resultId` (see prng.ts), the locale-dependent string
 *   and number methods with locale-independent ones (`localeCompare` compares UTF-16 code units), and
 *   `BigInt.asUintN`/`asIntN` with specification-exact versions (QuickJS 0.32 gets `asUintN(64, -1n)` wrong);
 * - wraps the error constructors (`Error`, `RangeError`, ...) in transparent proxies that remember every error
 *   the Cryptlet constructs, so that an allocation failure or stack overflow counts only when the engine raised it
 *   (a Cryptlet that throws `new RangeError("Array buffer allocation failed")` threw, it did not hit the limit);
 *   fixes `Error.prepareStackTrace` (V8) so that reading a stack runs no Cryptlet code;
 * - defines `console.log/info/warn/error/debug` as `ctx.log`, and `ctx.fetch` (when granted), which refuses
 *   oversized requests and calls beyond `maxRequests` inside the sandbox, before anything is copied out;
 * - defines the non-writable global {@link THROWN_GLOBAL}, through which the bundle's loader
 *   ({@link bundleLoaderSource}) describes a top-level throw inside the sandbox.
 *
 * After `run`: serialises the output itself (one read of each property; rejects functions, symbols, BigInt,
 * `undefined` (except as an omitted object property), non-finite numbers, cycles, non-plain objects, nesting
 * deeper than 64, and stops as soon as the text exceeds `maxOutputBytes` characters), and describes any throw
 * without running Cryptlet code: only own data properties are read (a thrown Proxy's traps still run, under the
 * run's deadline), and every string is cut before it leaves (name 100, message 1,024, stack 4,096 characters).
 */

/** The setup the host passes to the prelude. */
export interface PreludeSetup {
  /** sfc32 state words from prng.ts `mathRandomSeed`. */
  seed: [number, number, number, number];
  /** The output limit in UTF-8 bytes (the prelude stops at this many UTF-16 units; the host checks bytes). */
  maxOutputBytes: number;
  /**
   * `ctx.fetch` calls allowed in the run (the capability's `maxRequests`; the host also counts redirect hops).
   * Calls beyond it are refused inside the sandbox, without any host work. @defaultValue 64
   */
  maxRequests?: number;
}

/** Maximum log lines kept per run. */
export const MAX_LOG_LINES = 100;
/** Maximum characters per log line (longer lines are cut and end with `…`). */
export const MAX_LOG_LINE_CHARS = 1024;
/** Maximum nesting of the output JSON. */
export const MAX_OUTPUT_DEPTH = 64;
/** Maximum characters of a thrown value's `name` that cross the boundary. */
export const MAX_THROWN_NAME_CHARS = 100;
/** Maximum characters of a thrown value's message (or description) that cross the boundary. */
export const MAX_THROWN_MESSAGE_CHARS = 1024;
/** Maximum characters of a thrown error's stack that cross the boundary. */
export const MAX_THROWN_STACK_CHARS = 4096;
/** Maximum characters of a `fetch` URL (refused in the sandbox beyond it). */
export const MAX_FETCH_URL_CHARS = 8192;
/** Maximum characters of all `fetch` header names and values together. */
export const MAX_FETCH_HEADER_CHARS = 16384;
/** Maximum number of `fetch` headers. */
export const MAX_FETCH_HEADERS = 64;
/** Maximum `fetch` request body (POST), in UTF-8 bytes; the sandbox refuses more than this many UTF-16 units. */
export const MAX_REQUEST_BODY_BYTES = 65536;
/** Maximum characters of a `fetch` method. */
export const MAX_FETCH_METHOD_CHARS = 16;
/** `ctx.fetch` calls allowed when the setup does not say (the upper bound of `maxRequests`). */
export const DEFAULT_MAX_FETCH_CALLS = 64;

/**
 * The global the bundle's loader calls with a top-level throw: a non-writable, non-configurable function that
 * describes any value inside the sandbox and returns {@link THROWN_MARKER} followed by the description's JSON.
 */
export const THROWN_GLOBAL = "__cryptletThrown";
/**
 * The start of the string the loader throws instead of the Cryptlet's own top-level throw (no NUL: QuickJS copies
 * strings out as C strings). Not a secret: everything the bundle throws passes through the loader first.
 */
export const THROWN_MARKER = "cryptlet-thrown:";

/**
 * Appended to a bundle to tell whether it is strict code: `with` is a syntax error in strict code only, and the
 * bundle compiles on its own (checked first), so the appended statement changes nothing else.
 */
export const STRICTNESS_PROBE_SUFFIX = "\n;with({}){}";

/**
 * The script each engine evaluates instead of the bundle: the bundle inside `try`, its top-level throw handed to
 * {@link THROWN_GLOBAL} inside the sandbox, so that only a bounded string leaves it (engines otherwise read a thrown
 * object's `message` and `stack` themselves, running its getters or Proxy traps with no deadline: a Proxy whose
 * `get` loops hung isolated-vm's `load()`). Top-level `var` declarations stay global; a bundle with a `"use strict"`
 * directive keeps it (`strict`, found with {@link STRICTNESS_PROBE_SUFFIX}). The loader is on the bundle's first
 * line, whose columns shift by {@link bundleLoaderPrefix}'s length. A bundle starting with `#!` gets `//` instead.
 * @param bundle - the bundle's source, which must compile on its own.
 * @param strict - whether the bundle is strict code.
 */
export function bundleLoaderSource(bundle: string, strict: boolean): string {
  const body = bundle.startsWith("#!") ? `//${bundle.slice(2)}` : bundle;
  return `${bundleLoaderPrefix(strict)}${body}\n}catch(e){throw ${THROWN_GLOBAL}(e)}`;
}

/** What {@link bundleLoaderSource} puts before the bundle on its first line. */
export function bundleLoaderPrefix(strict: boolean): string {
  return strict ? '"use strict";try{' : "try{";
}

/**
 * The script both engines evaluate after the bundle at load: whether `cryptlet.default.run` is a function, read on
 * the global object (`this`), a throw described like a top-level throw.
 */
export const PROBE_SOURCE = `try{typeof this.cryptlet?.default?.run==="function"}catch(e){throw ${THROWN_GLOBAL}(e)}`;

/** The envelope the prelude answers when even describing the failure failed (out of memory in the prelude). */
export const UNDESCRIBED_ENVELOPE = '{"ok":false,"undescribed":true,"logs":[],"logsDropped":0}';

/** The prelude's source; the global name of the host fetch bridge it consumes is `__cryptletHostFetch`. */
export const PRELUDE_SOURCE = String.raw`(function cryptletPrelude(setupJson) {
  "use strict";
  var g = globalThis;
  var O = Object;
  var apply = Reflect.apply;
  var construct = Reflect.construct;
  var parse = JSON.parse;
  var stringify = JSON.stringify;
  var keys = O.keys;
  var getProto = O.getPrototypeOf;
  var setProto = O.setPrototypeOf;
  var getOwnDesc = O.getOwnPropertyDescriptor;
  var create = O.create;
  var freeze = O.freeze;
  var defineProperty = O.defineProperty;
  var hasOwn = O.prototype.hasOwnProperty;
  var isArray = Array.isArray;
  var ObjectProto = O.prototype;
  var StringCtor = String;
  var strSlice = String.prototype.slice;
  var strIndexOf = String.prototype.indexOf;
  var strToUpper = String.prototype.toUpperCase;
  var strToLower = String.prototype.toLowerCase;
  var numToString = Number.prototype.toString;
  var bigToString = typeof BigInt === "function" ? BigInt.prototype.toString : undefined;
  var symToString = Symbol.prototype.toString;
  var PromiseCtor = Promise;
  var promiseThen = Promise.prototype.then;
  var promiseReject = Promise.reject;
  var ErrorCtor = Error;
  var TypeErrorCtor = TypeError;
  var isError = typeof Error.isError === "function" ? Error.isError : undefined;
  var captureStack = typeof Error.captureStackTrace === "function" ? Error.captureStackTrace : undefined;
  var WeakSetCtor = WeakSet;
  var weakAdd = WeakSet.prototype.add;
  var weakHas = WeakSet.prototype.has;
  var hostFetch = g.__cryptletHostFetch;
  delete g.__cryptletHostFetch;
  var setup = parse(setupJson);
  var maxOutput = setup.maxOutputBytes;
  var maxFetchCalls = typeof setup.maxRequests === "number" ? setup.maxRequests : ${DEFAULT_MAX_FETCH_CALLS};

  function cut(s, n) { return s.length > n ? apply(strSlice, s, [0, n]) + "\u2026" : s; }
  function push(arr, v) { defineProperty(arr, arr.length, { value: v, writable: true, enumerable: true, configurable: true }); }
  function hide(obj, name, value) { defineProperty(obj, name, { value: value, writable: true, enumerable: false, configurable: true }); }
  function own(obj, name) {
    // The value of an own data property, without running a getter (undefined otherwise).
    var d = getOwnDesc(obj, name);
    return d !== undefined && apply(hasOwn, d, ["value"]) ? d.value : undefined;
  }

  // Clocks, GC-observable and host-dependent globals.
  var removed = ["Date", "Intl", "WeakRef", "FinalizationRegistry", "SharedArrayBuffer", "Atomics", "WebAssembly",
    "performance", "setTimeout", "setInterval", "setImmediate", "queueMicrotask", "process", "require", "global"];
  for (var i = 0; i < removed.length; i++) {
    var name = removed[i];
    if (name in g) { delete g[name]; if (name in g) defineProperty(g, name, { value: undefined }); }
  }

  // Errors the Cryptlet constructs are remembered, so that only an engine's own error can say "out of memory" or
  // "stack overflow". Each constructor becomes a transparent Proxy (same name, prototype, statics and
  // Function.prototype.toString); its prototype's constructor points to the Proxy.
  var made = new WeakSetCtor();
  var nativeErrors = create(null);
  var errorNames = ["Error", "EvalError", "RangeError", "ReferenceError", "SyntaxError", "TypeError", "URIError",
    "AggregateError", "InternalError", "SuppressedError"];
  function brand(e) {
    apply(weakAdd, made, [e]);
    return e;
  }
  var errorTraps = create(null);
  function dropPreludeFrames(e) {
    // QuickJS has no Error.captureStackTrace: the trap's own frames (the native construct and the trap) are cut
    // from the stack's first lines instead.
    var stack = own(e, "stack");
    if (typeof stack !== "string") return;
    var start = 0;
    var cutAt = 0;
    for (;;) {
      var end = apply(strIndexOf, stack, ["\n", start]);
      if (end < 0) break;
      var line = apply(strSlice, stack, [start, end]);
      var ours = apply(strIndexOf, line, ["cryptlet-prelude.js"]) >= 0;
      if (!ours && apply(strIndexOf, line, ["(native)"]) < 0) break;
      start = end + 1;
      if (ours) cutAt = start;
    }
    if (cutAt > 0) hide(e, "stack", apply(strSlice, stack, [cutAt]));
  }
  var errorTraps = create(null);
  errorTraps.construct = function construct_(target, args, newTarget) {
    var e = construct(target, args, newTarget);
    if (captureStack !== undefined) apply(captureStack, ErrorCtor, [e, construct_]);
    else dropPreludeFrames(e);
    return brand(e);
  };
  errorTraps.apply = function apply_(target, thisArg, args) {
    var e = apply(target, thisArg, args);
    if (captureStack !== undefined) apply(captureStack, ErrorCtor, [e, apply_]);
    else dropPreludeFrames(e);
    return brand(e);
  };
  var errorProxies = create(null);
  var nativeCtors = create(null);
  for (var n = 0; n < errorNames.length; n++) {
    var ctorName = errorNames[n];
    var Native = g[ctorName];
    if (typeof Native !== "function") continue;
    nativeCtors[ctorName] = Native;
    nativeErrors[ctorName] = Native.prototype;
    var wrapped = new Proxy(Native, errorTraps);
    errorProxies[ctorName] = wrapped;
    hide(Native.prototype, "constructor", wrapped);
    hide(g, ctorName, wrapped);
  }
  // Object.getPrototypeOf(RangeError) === Error, as before (a Proxy answers with its target's prototype).
  for (var m = 0; m < errorNames.length; m++) {
    var subCtor = nativeCtors[errorNames[m]];
    if (subCtor !== undefined && subCtor !== ErrorCtor && getProto(subCtor) === ErrorCtor) setProto(subCtor, errorProxies.Error);
  }
  if (captureStack !== undefined) {
    // V8 formats a stack with Error.prepareStackTrace when it is read: fixed here, reading one runs no Cryptlet code.
    defineProperty(ErrorCtor, "prepareStackTrace", { value: undefined, writable: false, enumerable: false, configurable: false });
  }
  var probeError = new ErrorCtor("x");
  var stackDesc = getOwnDesc(probeError, "stack");
  var nativeStackGet = stackDesc !== undefined && typeof stackDesc.get === "function" ? stackDesc.get : undefined;

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

  // Descriptions of values that cross the boundary: bounded, and without running Cryptlet code for ordinary objects
  // (own data properties only: no getters, toJSON or toString; a Proxy's traps still run, under the deadline).
  var STOP = {};
  function render(value, max) {
    var out = "";
    function emit(s) {
      out += s;
      if (out.length > max) throw STOP;
    }
    function walk(v, depth) {
      var t = typeof v;
      if (v === null) return emit("null");
      if (t === "string") return emit(stringify(v.length > max ? apply(strSlice, v, [0, max]) : v));
      if (t === "number") return emit(v === v && v !== Infinity && v !== -Infinity ? stringify(v) : "null");
      if (t === "boolean") return emit(v ? "true" : "false");
      if (t === "bigint") return emit(stringify(apply(bigToString, v, []) + "n"));
      if (t !== "object") return emit("null");
      if (depth >= 8) return emit(isArray(v) ? "[\u2026]" : "{\u2026}");
      if (isArray(v)) {
        var length = own(v, "length");
        emit("[");
        for (var j = 0; j < length; j++) {
          if (j > 0) emit(",");
          walk(own(v, j), depth + 1);
        }
        return emit("]");
      }
      var names = keys(v);
      var first = true;
      emit("{");
      for (var k = 0; k < names.length; k++) {
        var pv = own(v, names[k]);
        var pt = typeof pv;
        if (pv === undefined || pt === "function" || pt === "symbol") continue;
        emit((first ? "" : ",") + stringify(names[k]) + ":");
        first = false;
        walk(pv, depth + 1);
      }
      emit("}");
    }
    try {
      walk(value, 0);
      return out;
    } catch (e) {
      if (e === STOP) return cut(out, max);
      return out === "" ? "[object]" : cut(out, max);
    }
  }
  function nativeName(proto) {
    for (var k = 0; k < errorNames.length; k++) if (nativeErrors[errorNames[k]] === proto) return errorNames[k];
    return undefined;
  }
  function errorName(e) {
    // An own name, else the nearest native error prototype's, else the nearest prototype's own name.
    var name = own(e, "name");
    if (typeof name === "string") return name;
    var p = e;
    for (var depth = 0; depth < 16; depth++) {
      p = getProto(p);
      if (p === null) break;
      var known = nativeName(p);
      if (known !== undefined) return known;
      name = own(p, "name");
      if (typeof name === "string") return name;
    }
    return "Error";
  }
  function errorMessage(e) {
    var message = own(e, "message");
    return typeof message === "string" ? message : "";
  }
  function errorStack(e) {
    var stack = own(e, "stack");
    if (typeof stack === "string") return stack;
    var d = getOwnDesc(e, "stack");
    // V8's own stack getter (the same function on every error) formats the stack; a Cryptlet's getter is not called.
    if (d !== undefined && nativeStackGet !== undefined && d.get === nativeStackGet) {
      stack = apply(nativeStackGet, e, []);
      if (typeof stack === "string") return stack;
    }
    return undefined;
  }
  function isRealError(v) {
    if (isError !== undefined) return isError(v);
    return v instanceof ErrorCtor;
  }

  // Logs: bounded inside the sandbox (100 lines of 1,024 characters), before they cross.
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
      if (isRealError(v)) return errorName(v) + ": " + errorMessage(v);
      return render(v, ${MAX_LOG_LINE_CHARS} + 1);
    } catch (e) {
      return "[object]";
    }
  }
  function log() {
    if (logs.length >= ${MAX_LOG_LINES}) { logsDropped++; return; }
    var line = "";
    for (var i = 0; i < arguments.length && line.length <= ${MAX_LOG_LINE_CHARS}; i++) {
      line += (i > 0 ? " " : "") + cut(formatArg(arguments[i]), ${MAX_LOG_LINE_CHARS});
    }
    push(logs, cut(line, ${MAX_LOG_LINE_CHARS}));
  }
  var consoleObject = {};
  var levels = ["log", "info", "warn", "error", "debug"];
  for (var l = 0; l < levels.length; l++) hide(consoleObject, levels[l], log);
  hide(g, "console", consoleObject);

  // fetch, when granted: the host performs it (internal/hostFetch.ts). What crosses is bounded here: at most
  // maxRequests calls, each with a URL, headers and body within the limits; anything else is refused without host
  // work and fails the run (envelope "refused") even if the Cryptlet catches the rejection.
  var fetchCalls = 0;
  var overLimit;
  var refused;
  var finished = false;
  function rejected(message) {
    return apply(promiseReject, PromiseCtor, [new TypeErrorCtor(message)]);
  }
  function refuse(code, reason) {
    if (refused === undefined) refused = { code: code, reason: reason };
    return rejected("fetch refused: " + reason);
  }
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
    if (finished) return rejected("fetch after the run finished");
    fetchCalls++;
    if (fetchCalls > maxFetchCalls) {
      // One rejected promise for every call over the limit: a flood costs the sandbox no new error or promise.
      if (overLimit === undefined) overLimit = refuse("ERR_CAPABILITY_DENIED", "more than " + maxFetchCalls + " fetch calls in one run");
      return overLimit;
    }
    var u = StringCtor(url);
    if (u.length > ${MAX_FETCH_URL_CHARS}) return refuse("ERR_FETCH_REQUEST_INVALID", "URL longer than ${MAX_FETCH_URL_CHARS} characters");
    var request = '{"url":' + stringify(u);
    if (init !== undefined && init !== null) {
      var method = init.method;
      if (method !== undefined) {
        var mt = StringCtor(method);
        if (mt.length > ${MAX_FETCH_METHOD_CHARS}) return refuse("ERR_FETCH_REQUEST_INVALID", "method longer than ${MAX_FETCH_METHOD_CHARS} characters");
        request += ',"method":' + stringify(mt);
      }
      var body = init.body;
      if (body !== undefined && body !== null) {
        var bt = StringCtor(body);
        if (bt.length > ${MAX_REQUEST_BODY_BYTES}) return refuse("ERR_FETCH_REQUEST_INVALID", "request body larger than ${MAX_REQUEST_BODY_BYTES} bytes");
        request += ',"body":' + stringify(bt);
      }
      var h = init.headers;
      if (h !== undefined && h !== null) {
        var names = keys(h);
        if (names.length > ${MAX_FETCH_HEADERS}) return refuse("ERR_FETCH_REQUEST_INVALID", "more than ${MAX_FETCH_HEADERS} headers");
        var headerChars = 0;
        request += ',"headers":{';
        for (var i = 0; i < names.length; i++) {
          var hn = StringCtor(names[i]);
          var hv = StringCtor(h[names[i]]);
          headerChars += hn.length + hv.length;
          if (headerChars > ${MAX_FETCH_HEADER_CHARS}) return refuse("ERR_FETCH_REQUEST_INVALID", "headers longer than ${MAX_FETCH_HEADER_CHARS} characters in total");
          request += (i > 0 ? "," : "") + stringify(hn) + ":" + stringify(hv);
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
  function fail(code, path, reason) {
    failure = create(null);
    failure.code = code;
    failure.path = path;
    failure.reason = reason;
    throw FAIL;
  }
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

  // Thrown values: described here, as bounded JSON text; "engine" says the engine raised the error (an error the
  // Cryptlet constructed, or any non-error value, is the Cryptlet's own throw whatever its name and message say).
  function thrownJson(kind, name, message, stack, engine) {
    return '{"kind":' + stringify(kind) + ',"name":' + stringify(cut(name, ${MAX_THROWN_NAME_CHARS})) +
      ',"message":' + stringify(cut(message, ${MAX_THROWN_MESSAGE_CHARS})) +
      (stack === undefined ? "" : ',"stack":' + stringify(cut(stack, ${MAX_THROWN_STACK_CHARS}))) +
      ',"engine":' + (engine ? "true" : "false") + "}";
  }
  function describe(e) {
    try {
      if (e === null) return thrownJson("null", "null", "null", undefined, false);
      var t = typeof e;
      if (t === "string") return thrownJson(t, t, cut(e, ${MAX_THROWN_MESSAGE_CHARS}), undefined, false);
      if (t === "number" || t === "boolean" || t === "undefined") return thrownJson(t, t, StringCtor(e), undefined, false);
      if (t === "bigint") return thrownJson(t, t, apply(bigToString, e, []) + "n", undefined, false);
      if (t === "symbol") return thrownJson(t, t, apply(symToString, e, []), undefined, false);
      if (t === "function") return thrownJson(t, t, "[function]", undefined, false);
      if (isRealError(e)) {
        var proto = getProto(e);
        var engine = !apply(weakHas, made, [e]) && nativeName(proto) !== undefined && getOwnDesc(e, "name") === undefined;
        return thrownJson("error", errorName(e), errorMessage(e), errorStack(e), engine);
      }
      return thrownJson(t, t, render(e, ${MAX_THROWN_MESSAGE_CHARS}), undefined, false);
    } catch (outer) {
      return '{"kind":"unknown","name":"unknown","message":"the thrown value could not be described","engine":false}';
    }
  }
  // The loader's hook (bundleLoaderSource): a top-level throw leaves the sandbox as this bounded string.
  defineProperty(g, "${THROWN_GLOBAL}", {
    value: function describeThrown(e) { return ${JSON.stringify(THROWN_MARKER)} + describe(e); },
    writable: false,
    enumerable: false,
    configurable: false,
  });

  function strings(arr) {
    var s = "[";
    for (var i = 0; i < arr.length; i++) s += (i > 0 ? "," : "") + stringify(arr[i]);
    return s + "]";
  }
  function finish(body) {
    var refusal = refused === undefined ? "" :
      ',"refused":{"code":' + stringify(refused.code) + ',"reason":' + stringify(refused.reason) + "}";
    return "{" + body + refusal + ',"logs":' + strings(logs) + ',"logsDropped":' + logsDropped + "}";
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
      finished = true;
      var json = serialize(value);
      return finish('"ok":true,"output":' + stringify(json));
    } catch (e) {
      finished = true;
      try {
        if (e === FAIL) {
          return finish('"ok":false,"code":' + stringify(failure.code) + ',"path":' + stringify(failure.path) +
            ',"reason":' + stringify(failure.reason));
        }
        return finish('"ok":false,"thrown":' + describe(e));
      } catch (inner) {
        // Only running out of memory (or stack) in the prelude itself gets here: answer without allocating.
        return '${UNDESCRIBED_ENVELOPE}';
      }
    }
  };
})`;
