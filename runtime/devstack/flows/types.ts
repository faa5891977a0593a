/**
 * What a data flow of the local stack reports: the runs it started (for the summary's verification) and a line
 * saying what it checked against the real data.
 * @module
 */
import type { CompositeReceipt } from "../../queue/results.ts";

/** Outcome of one flow. */
export interface FlowReport {
  name: string;
  /** Composite receipts of the flow's runs. */
  receipts: CompositeReceipt[];
  /** What the flow checked, e.g. "feed answers agree with the source prices within 0.01 %". */
  checks: { description: string; ok: boolean }[];
}

/** Progress of a flow: `total` runs, `done` so far. */
export type FlowProgress = (done: number, total: number) => void;
