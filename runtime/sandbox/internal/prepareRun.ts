/**
 * What both engines do before and around a run: validate and encode the input and context, seed the PRNG,
 * serialise runs of one loaded Cryptlet.
 */
import type { JsonValue } from "../../sdk/index.ts";
import { SandboxOptionsInvalidError } from "../errors.ts";
import { mathRandomSeed } from "../prng.ts";
import { checkRunContext, type RunContextData, type SandboxLimits } from "../SandboxEngine.ts";
import type { PreludeSetup } from "./prelude.ts";

/** The three JSON texts handed to the prelude. */
export interface PreparedRun {
  setupJson: string;
  inputJson: string;
  ctxJson: string;
}

/**
 * Deepest nesting of arrays and objects accepted in a run's input and event. QuickJS parses JSON recursively on
 * the host's own stack (a 100,000-deep array overflowed it); 1,000 levels parse on both engines.
 */
export const MAX_INPUT_DEPTH = 1000;

/** The nesting depth of a JSON text (arrays and objects), counted without parsing it. */
export function jsonDepth(json: string): number {
  let depth = 0;
  let deepest = 0;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c === 0x22) {
      // A string: skip to its closing quote (escapes included).
      for (i++; i < json.length && json.charCodeAt(i) !== 0x22; i++) if (json.charCodeAt(i) === 0x5c) i++;
    } else if (c === 0x5b || c === 0x7b) {
      depth++;
      if (depth > deepest) deepest = depth;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return deepest;
}

function toJson(field: string, value: unknown): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (cause) {
    throw new SandboxOptionsInvalidError(field, `must be JSON-serialisable (${(cause as Error).message})`);
  }
  if (json === undefined) throw new SandboxOptionsInvalidError(field, "must be a JSON value");
  if (jsonDepth(json) > MAX_INPUT_DEPTH) {
    throw new SandboxOptionsInvalidError(field, `must not be nested deeper than ${MAX_INPUT_DEPTH} levels`);
  }
  return json;
}

/**
 * Validates and encodes a run's input and context.
 * @param maxRequests - the fetch capability's `maxRequests`, when granted: the prelude refuses `ctx.fetch` calls
 *   beyond it without host work.
 * @throws SandboxOptionsInvalidError naming `input` or the context field.
 */
export function prepareRun(
  input: JsonValue,
  context: RunContextData,
  limits: SandboxLimits,
  maxRequests?: number,
): PreparedRun {
  checkRunContext(context);
  const setup: PreludeSetup = { seed: mathRandomSeed(context.resultId), maxOutputBytes: limits.maxOutputBytes };
  if (maxRequests !== undefined) setup.maxRequests = maxRequests;
  return {
    setupJson: JSON.stringify(setup),
    inputJson: toJson("input", input),
    ctxJson: toJson("context.event", {
      event: context.event,
      requestId: context.requestId,
      resultId: context.resultId,
      now: context.now,
    }),
  };
}

/** Runs tasks one after another (a loaded Cryptlet runs one event at a time). */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();

  /** Schedules `task` after every task scheduled before it, whatever their outcome. */
  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(task, task);
    this.#tail = result.catch(() => undefined);
    return result;
  }
}
