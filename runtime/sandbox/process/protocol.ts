/**
 * The messages between the sandbox host (parent) and a sandbox process (child), over Node's IPC channel
 * (`child_process.fork`, JSON serialisation). The parent never receives anything from a Cryptlet directly: the
 * child's engine has already bounded outputs, logs and errors (docs/sandbox.md), and the parent re-checks sizes.
 * @module
 */
import type { CryptletErrorJSON } from "../../errors.ts";
import type { JsonValue } from "../../sdk/index.ts";
import type { HostCallRecord, LoadOptions, RunContextData, RunResult, SandboxEngineName } from "../SandboxEngine.ts";

/** Parent → child: load (probe) a bundle, or run it once. */
export type ToChild =
  | {
      type: "load";
      id: number;
      /** sha256 of engine, options and bundle: the child keeps loaded Cryptlets under it. */
      key: string;
      engine: SandboxEngineName;
      options: LoadOptions;
      bundle: string;
    }
  | {
      type: "run";
      id: number;
      key: string;
      engine: SandboxEngineName;
      options: LoadOptions;
      /** Sent only when the child has not loaded `key` yet. */
      bundle?: string;
      input: JsonValue;
      context: RunContextData;
      /** Recorded fetches to answer from (re-execution), {@link RunOptions.replay}. */
      replay?: readonly HostCallRecord[];
    };

/** Child → parent. */
export type FromChild =
  | { type: "ready"; pid: number }
  | { type: "loaded"; id: number; ok: true }
  | { type: "result"; id: number; ok: true; result: RunResult }
  | { type: "result" | "loaded"; id: number; ok: false; error: CryptletErrorJSON }
  /** The child does not hold `key` (it was restarted or evicted it): send the bundle again. */
  | { type: "need-bundle"; id: number };

/** A {@link ToChild} message as the pool's callers give it: without its id and bundle (the pool adds both). */
export type ChildRequest = ToChild extends infer T ? (T extends ToChild ? Omit<T, "id" | "bundle"> : never) : never;
