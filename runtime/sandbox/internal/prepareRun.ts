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

function toJson(field: string, value: unknown): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (cause) {
    throw new SandboxOptionsInvalidError(field, `must be JSON-serialisable (${(cause as Error).message})`);
  }
  if (json === undefined) throw new SandboxOptionsInvalidError(field, "must be a JSON value");
  return json;
}

/**
 * Validates and encodes a run's input and context.
 * @throws SandboxOptionsInvalidError naming `input` or the context field.
 */
export function prepareRun(input: JsonValue, context: RunContextData, limits: SandboxLimits): PreparedRun {
  checkRunContext(context);
  const setup: PreludeSetup = { seed: mathRandomSeed(context.resultId), maxOutputBytes: limits.maxOutputBytes };
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
