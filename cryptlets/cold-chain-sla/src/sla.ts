/**
 * The cold-chain SLA rule: does a window of freezer-room readings meet the frozen-goods temperature agreement, and
 * which excursions happened? No sandbox or Node API: the tests run this module in Node and the sandbox runs the same
 * code from the bundle. Temperatures are compared in integer hundredths of a degree, so the verdict never depends
 * on floating-point rounding.
 *
 * The rule (defaults in brackets, each overridable per input within bounds):
 * 1. Readings before `commissionedAt` (the room's hand-over: pull-down from ambient) are **excluded**; without it,
 *    every reading is evaluated.
 * 2. A reading is **in range** when the room temperature is ≤ `limitC` [−18 °C, the frozen-food limit of Codex
 *    CXC 1-1969 / EU Directive 89/108/EEC].
 * 3. An **excursion** is a maximal run of consecutive evaluated readings above `limitC`. It starts at its first
 *    reading and ends at the first in-range reading after it (or, if the window ends first, at the window's last
 *    reading, `ongoing: true`). `durationMinutes` = end − start; `maxTempC` is its highest reading; `doorOpen` is
 *    true when the door contact was open on any of its readings.
 * 4. An excursion is a **breach** when it lasts more than `graceMinutes` [15], or exceeds `hardLimitC` [−12 °C] at any
 *    reading (an ongoing excursion is judged on its duration so far). Short door-open rises during loading stay
 *    named but tolerated.
 * 5. A **gap** is more than `maxGapMinutes` [10] between consecutive evaluated readings (a logger outage): the
 *    temperature in between is unknown, so a gap is a breach too.
 * 6. The window is **compliant** when it has evaluated readings and no breach.
 *
 * @example
 * ```ts
 * import { evaluateColdChain } from "./cryptlets/cold-chain-sla/src/sla.ts";
 * const report = evaluateColdChain({ deviceId: "135_1570", readings: [
 *   { at: 1689066120, roomC: -35.2, door: false }, { at: 1689066180, roomC: -35.3, door: false }] });
 * report.compliant; // true
 * ```
 * @module
 */

/** One sensor reading. */
export interface Reading {
  /** Time of the reading, Unix seconds (UTC). */
  at: number;
  /** Cooled-room temperature, °C (at most 2 decimals are used). */
  roomC: number;
  /** Door contact: true = open. */
  door: boolean;
}

/** The rule's parameters (see the module documentation). */
export interface SlaRule {
  /** Upper limit for frozen goods, °C. Default −18. */
  limitC: number;
  /** Any reading above this makes the excursion a breach, °C. Default −12. */
  hardLimitC: number;
  /** Longest tolerated excursion, minutes. Default 15. */
  graceMinutes: number;
  /** Longest tolerated interval between readings, minutes. Default 10. */
  maxGapMinutes: number;
}

/** The Cryptlet input: one window of readings of one device. */
export interface ColdChainInput {
  /** Device (cold room) id, 1..64 characters. */
  deviceId: string;
  /** 1..1440 readings, strictly increasing `at`. */
  readings: Reading[];
  /** Hand-over time, Unix seconds: earlier readings are excluded. Default: none excluded. */
  commissionedAt?: number;
  /** Overrides of the default rule. */
  rule?: Partial<SlaRule>;
}

/** A named excursion above the limit. */
export interface Excursion {
  /** ISO 8601 UTC start (first reading above the limit). */
  start: string;
  /** ISO 8601 UTC end (first reading back in range, or the last reading when ongoing). */
  end: string;
  durationMinutes: number;
  maxTempC: number;
  doorOpen: boolean;
  ongoing: boolean;
  breach: boolean;
  /** Why it is a breach: `duration`, `hard-limit`; empty when tolerated. */
  reasons: ("duration" | "hard-limit")[];
}

/** A logger outage longer than `maxGapMinutes`. */
export interface Gap {
  from: string;
  to: string;
  minutes: number;
}

/** The Cryptlet output: the compliance report (sealed for the parties). */
export interface ColdChainReport {
  deviceId: string;
  /** `compliant`, `non-compliant`, or `not-in-service` (every reading before `commissionedAt`; not compliant). */
  status: "compliant" | "non-compliant" | "not-in-service";
  rule: SlaRule;
  window: { from: string; to: string; readings: number; evaluated: number; excluded: number };
  compliant: boolean;
  excursions: Excursion[];
  gaps: Gap[];
  /** Over the evaluated readings; null when none. */
  minTempC: number | null;
  maxTempC: number | null;
  /** Evaluated readings with the door contact open (a count of readings). */
  doorOpenReadings: number;
}

/** Error codes of {@link ColdChainError}. */
export type ColdChainErrorCode = "INVALID_INPUT";

/** A malformed input; the sandbox reports it as a Cryptlet that threw, with the code first in the message. */
export class ColdChainError extends Error {
  readonly code: ColdChainErrorCode;
  constructor(code: ColdChainErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = "ColdChainError";
    this.code = code;
  }
}

/** The default rule. */
export const DEFAULT_RULE: Readonly<SlaRule> = { limitC: -18, hardLimitC: -12, graceMinutes: 15, maxGapMinutes: 10 };

const MAX_READINGS = 1440;

function fail(message: string): never {
  throw new ColdChainError("INVALID_INPUT", message);
}

function numberIn(value: unknown, min: number, max: number, name: string, integer = false): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
    fail(`${name} must be a number from ${min} to ${max}`);
  }
  if (integer && !Number.isSafeInteger(value)) fail(`${name} must be an integer`);
  return value;
}

const centi = (celsius: number): number => Math.round(celsius * 100);
const pad = (n: number, width = 2): string => String(n).padStart(width, "0");

/**
 * Unix seconds as ISO 8601 UTC (`2023-07-11T09:02:00Z`), proleptic Gregorian calendar. Computed here because the
 * sandbox has no `Date` (it would be a source of non-determinism); days-to-civil conversion in integers.
 */
export function isoUtc(at: number): string {
  const days = Math.floor(at / 86400);
  const secondOfDay = at - days * 86400;
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const dayOfEra = z - era * 146097;
  const yearOfEra = Math.floor(
    (dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36524) - Math.floor(dayOfEra / 146096)) / 365,
  );
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const mp = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0);
  const hh = Math.floor(secondOfDay / 3600);
  const mm = Math.floor((secondOfDay % 3600) / 60);
  const ss = secondOfDay % 60;
  return `${pad(year, 4)}-${pad(month)}-${pad(day)}T${pad(hh)}:${pad(mm)}:${pad(ss)}Z`;
}
const iso = isoUtc;

/**
 * Evaluates one window of readings.
 * @throws {@link ColdChainError} `INVALID_INPUT` for a malformed input (names the field), readings not strictly
 *   increasing in time, or a rule outside its bounds.
 */
export function evaluateColdChain(input: ColdChainInput): ColdChainReport {
  if (typeof input !== "object" || input === null) fail("input must be an object");
  if (typeof input.deviceId !== "string" || input.deviceId.length < 1 || input.deviceId.length > 64) {
    fail("deviceId must be 1 to 64 characters");
  }
  if (!Array.isArray(input.readings) || input.readings.length < 1 || input.readings.length > MAX_READINGS) {
    fail(`readings must be an array of 1 to ${MAX_READINGS}`);
  }
  const given = input.rule ?? {};
  if (typeof given !== "object" || given === null) fail("rule must be an object");
  const rule: SlaRule = {
    limitC: numberIn(given.limitC ?? DEFAULT_RULE.limitC, -80, 10, "rule.limitC"),
    hardLimitC: numberIn(given.hardLimitC ?? DEFAULT_RULE.hardLimitC, -80, 30, "rule.hardLimitC"),
    graceMinutes: numberIn(given.graceMinutes ?? DEFAULT_RULE.graceMinutes, 0, 1440, "rule.graceMinutes", true),
    maxGapMinutes: numberIn(given.maxGapMinutes ?? DEFAULT_RULE.maxGapMinutes, 1, 1440, "rule.maxGapMinutes", true),
  };
  if (rule.hardLimitC < rule.limitC) fail("rule.hardLimitC must be at least rule.limitC");
  const commissionedAt =
    input.commissionedAt === undefined ? undefined : numberIn(input.commissionedAt, 0, 2 ** 32, "commissionedAt", true);

  const readings = input.readings.map((r, i) => {
    if (typeof r !== "object" || r === null) fail(`readings[${i}] must be an object`);
    const at = numberIn(r.at, 0, 2 ** 32, `readings[${i}].at`, true);
    const roomC = numberIn(r.roomC, -100, 100, `readings[${i}].roomC`);
    if (typeof r.door !== "boolean") fail(`readings[${i}].door must be a boolean`);
    return { at, temp: centi(roomC), door: r.door };
  });
  for (let i = 1; i < readings.length; i++) {
    if ((readings[i] as { at: number }).at <= (readings[i - 1] as { at: number }).at) {
      fail(`readings[${i}].at must be later than readings[${i - 1}].at`);
    }
  }

  const evaluated = readings.filter((r) => commissionedAt === undefined || r.at >= commissionedAt);
  const limit = centi(rule.limitC);
  const hard = centi(rule.hardLimitC);
  const excursions: Excursion[] = [];
  const gaps: Gap[] = [];
  let open: { start: number; max: number; door: boolean } | undefined;
  const close = (end: number, ongoing: boolean): void => {
    if (!open) return;
    const durationMinutes = (end - open.start) / 60;
    const reasons: Excursion["reasons"] = [];
    if (durationMinutes > rule.graceMinutes) reasons.push("duration");
    if (open.max > hard) reasons.push("hard-limit");
    excursions.push({
      start: iso(open.start),
      end: iso(end),
      durationMinutes,
      maxTempC: open.max / 100,
      doorOpen: open.door,
      ongoing,
      breach: reasons.length > 0,
      reasons,
    });
    open = undefined;
  };
  evaluated.forEach((r, i) => {
    const previous = evaluated[i - 1];
    if (previous && r.at - previous.at > rule.maxGapMinutes * 60) {
      gaps.push({ from: iso(previous.at), to: iso(r.at), minutes: (r.at - previous.at) / 60 });
    }
    if (r.temp > limit) {
      if (open) {
        open.max = Math.max(open.max, r.temp);
        open.door ||= r.door;
      } else {
        open = { start: r.at, max: r.temp, door: r.door };
      }
    } else {
      close(r.at, false);
    }
  });
  const last = evaluated.at(-1);
  if (last) close(last.at, true);

  const temps = evaluated.map((r) => r.temp);
  const compliant = evaluated.length > 0 && gaps.length === 0 && excursions.every((e) => !e.breach);
  const first = readings[0] as { at: number };
  const final = readings.at(-1) as { at: number };
  return {
    deviceId: input.deviceId,
    status: evaluated.length === 0 ? "not-in-service" : compliant ? "compliant" : "non-compliant",
    rule,
    window: {
      from: iso(first.at),
      to: iso(final.at),
      readings: readings.length,
      evaluated: evaluated.length,
      excluded: readings.length - evaluated.length,
    },
    compliant,
    excursions,
    gaps,
    minTempC: temps.length ? Math.min(...temps) / 100 : null,
    maxTempC: temps.length ? Math.max(...temps) / 100 : null,
    doorOpenReadings: evaluated.filter((r) => r.door).length,
  };
}
