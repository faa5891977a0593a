/**
 * Node-side loader of the shipped freezer telemetry (not part of the Cryptlet bundle): turns the CSV into
 * {@link Reading}s and windows of readings (the HTTP trigger's posts).
 *
 * @example
 * ```ts
 * import { loadReadings, windowsOf, DEVICE_ID } from "./cryptlets/cold-chain-sla/data/loadReadings.ts";
 * const readings = await loadReadings();       // 148
 * const posts = windowsOf(readings, 30);       // 5 windows: 30, 30, 30, 30, 28 readings
 * ```
 * @module
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";

import type { Reading } from "../src/sla.ts";

/** The device of the sample (the source's installation id). */
export const DEVICE_ID = "freezer-135-1570";
/** The shipped file. */
export const READINGS_FILE = "135_1570_sample.csv";

/**
 * Reads the sample: `timestamp` (local time without zone in the source; taken as UTC), `sGekoeldeRuimte` (cooled-room
 * temperature, °C), `sDeurcontact` (door contact, 1.00 = open).
 * @throws Error naming the line when a row is malformed.
 */
export async function loadReadings(file = join(import.meta.dirname, READINGS_FILE)): Promise<Reading[]> {
  const [header = "", ...lines] = (await readFile(file, "utf8")).trim().split(/\r?\n/);
  const columns = header.split(",");
  const atCol = columns.indexOf("timestamp");
  const tempCol = columns.indexOf("sGekoeldeRuimte");
  const doorCol = columns.indexOf("sDeurcontact");
  if (atCol < 0 || tempCol < 0 || doorCol < 0) throw new Error(`${file}: unexpected header`);
  return lines.map((line, i) => {
    const cells = line.split(",");
    const at = Date.parse(`${(cells[atCol] ?? "").replace(" ", "T")}Z`) / 1000;
    const roomC = Number(cells[tempCol]);
    const door = cells[doorCol];
    if (
      !Number.isSafeInteger(at) ||
      cells[tempCol] === "" ||
      !Number.isFinite(roomC) ||
      (door !== "0.00" && door !== "1.00")
    ) {
      throw new Error(`${file}: line ${i + 2} is malformed`);
    }
    return { at, roomC, door: door === "1.00" };
  });
}

/** Splits readings into consecutive windows of `size` (the last may be shorter). */
export function windowsOf<T>(readings: readonly T[], size = 30): T[][] {
  const windows: T[][] = [];
  for (let i = 0; i < readings.length; i += size) windows.push(readings.slice(i, i + size));
  return windows;
}

/**
 * The hand-over time derived from the data: the first reading at or below `limitC` (the end of the pull-down).
 * @returns Unix seconds, or undefined when the room never got cold enough.
 */
export function commissionedAtOf(readings: readonly Reading[], limitC = -18): number | undefined {
  return readings.find((r) => r.roomC <= limitC)?.at;
}
