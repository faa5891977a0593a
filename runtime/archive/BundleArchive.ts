/**
 * The bundle archive port: where a run's composite receipt (its proof bundle with every chain's anchor, and each
 * target's outcome) is kept beyond Redis. Redis keeps results for the retention window only
 * (`retentionSeconds`, docs/pipeline.md "Retention"); the result store writes every receipt to the archive before
 * it writes it to Redis, and reads the archive when Redis no longer has it, so `GET /v1/runs/{runId}` and
 * `GET /v1/results/{resultId}/bundle` keep answering after the Redis copy expired.
 *
 * Adapters: {@link DirectoryBundleArchive} (a directory: local disk, or a mounted network or object-store file
 * system). An object-store adapter (S3-compatible `PutObject`/`GetObject` on the key
 * `<resultId>.json`) implements the same two methods; none ships yet.
 *
 * The archive holds what the receipt holds: hashes, signatures, the attestation token, transaction receipts and
 * the on-chain payload (for a sealed Cryptlet, the JWE ciphertext). Never a plaintext input or sealed output.
 *
 * @module
 */
import type { CompositeReceipt } from "../queue/results.ts";

/** Where composite receipts are archived. Implementations must make `put` durable before it resolves. */
export interface BundleArchive {
  /**
   * Stores (or replaces: a receipt is rewritten when a target's outcome changes) the receipt of a run, keyed by
   * its `resultId`. Resolves once the receipt is durably stored.
   * @throws the adapter's I/O error (the caller's job is retried).
   */
  put(receipt: CompositeReceipt): Promise<void>;
  /**
   * The archived receipt of a result (by run id or result id: they are the same), or `undefined`.
   * @throws the adapter's I/O error other than "not found".
   */
  get(resultId: string): Promise<CompositeReceipt | undefined>;
}
