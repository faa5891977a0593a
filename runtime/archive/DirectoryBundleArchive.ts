/**
 * {@link BundleArchive} adapter: one JSON file per result in a directory the operator names
 * (`archive.directory` in `cryptlet.config.json`).
 *
 * Layout: `<directory>/<first two hex digits of the resultId>/<resultId>.json` (lowercase `0x…` hex), the
 * composite receipt as JSON (UTF-8). The two-digit fan-out keeps each folder at 1/256 of the results. A write goes
 * to a temporary file in the same folder, is flushed (`fsync`) and renamed over the target (atomic on POSIX file
 * systems), so a reader never sees half a receipt and a crash leaves the previous version or the new one.
 *
 * @module
 */
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import path from "node:path";
import { randomUUID } from "node:crypto";

import type { CompositeReceipt } from "../queue/results.ts";
import type { BundleArchive } from "./BundleArchive.ts";

const RESULT_ID = /^0x[0-9a-f]{64}$/;

/**
 * Archives receipts as files in a directory.
 *
 * @example
 * ```ts
 * import { DirectoryBundleArchive } from "./runtime/archive/DirectoryBundleArchive.ts";
 * import { ResultStore } from "./runtime/queue/results.ts";
 * const archive = new DirectoryBundleArchive("/var/lib/cryptlet/bundles");
 * const results = new ResultStore(redis, "cryptlet", { retentionSeconds: 7 * 24 * 3600, archive });
 * ```
 */
export class DirectoryBundleArchive implements BundleArchive {
  /** The archive's root directory (absolute). */
  readonly directory: string;

  /** @param directory - created on first write if missing. */
  constructor(directory: string) {
    this.directory = path.resolve(directory);
  }

  /**
   * The file of a result.
   * @throws RangeError when `resultId` is not 32 bytes of 0x hex (no path can escape the directory).
   */
  fileOf(resultId: string): string {
    const id = resultId.toLowerCase();
    if (!RESULT_ID.test(id)) throw new RangeError("resultId must be 0x followed by 64 hex digits");
    return path.join(this.directory, id.slice(2, 4), `${id}.json`);
  }

  /** Writes the receipt atomically (temporary file, `fsync`, rename). */
  async put(receipt: CompositeReceipt): Promise<void> {
    const file = this.fileOf(receipt.resultId);
    await mkdir(path.dirname(file), { recursive: true });
    const temporary = `${file}.${randomUUID()}.tmp`;
    try {
      const handle = await open(temporary, "w", 0o640);
      try {
        await handle.writeFile(JSON.stringify(receipt), "utf8");
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temporary, file);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
  }

  /** Reads the archived receipt; `undefined` when there is none (or the id is not a result id). */
  async get(resultId: string): Promise<CompositeReceipt | undefined> {
    if (!RESULT_ID.test(resultId.toLowerCase())) return undefined;
    try {
      return JSON.parse(await readFile(this.fileOf(resultId), "utf8")) as CompositeReceipt;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
  }
}
