/**
 * Where the pipeline seals and opens a sealed Cryptlet's input (runtime/sealing/inputEnvelope.ts): sealed at
 * {@link Pipeline.submit}, before the event enters Redis, and opened only by the execute stage. The event's
 * routing metadata (`eventId`, `requestId`, `source`, `time`: ids, chain coordinates, the event time) stays in
 * clear: the run record, the proof bundle's `inputHash` and the chains carry it anyway. See docs/sealing.md.
 *
 * @module
 */
import { cryptletIdOf } from "../attestation/ids.ts";
import { isCryptletError } from "../errors.ts";
import { ERR_PACKAGE_NOT_FOUND } from "../packages/errors.ts";
import type { StoredPackage } from "../packages/PackageStore.ts";
import { SealedInputKeyMissingError } from "../sealing/errors.ts";
import { openSealedInput, sealInput } from "../sealing/inputEnvelope.ts";
import type { PipelineContext } from "./context.ts";
import type { CryptletEvent, ExecuteJob } from "./topology.ts";

const isSealed = (pkg: Pick<StoredPackage, "manifest">) => "sealed" in pkg.manifest.output;

async function seal(event: CryptletEvent, ctx: PipelineContext): Promise<string> {
  if (!ctx.inputKey) throw new SealedInputKeyMissingError(event.cryptlet.name);
  return sealInput(
    event.input,
    { cryptletId: cryptletIdOf(event.cryptlet.name), eventId: event.eventId },
    ctx.inputKey,
  );
}

/**
 * The event as the `events` queue stores it: the package version resolved now (so that the stage that accepts it
 * runs the version whose sealing was decided here), and for a sealed Cryptlet the input replaced by
 * `sealedInput`.
 * @throws the package store's `ERR_PACKAGE_NOT_FOUND` (an event for an unknown Cryptlet is refused at once);
 *   `ERR_SEALED_INPUT_KEY_MISSING`; the key provider's errors.
 */
export async function sealEventInput(event: CryptletEvent, ctx: PipelineContext): Promise<CryptletEvent> {
  if (event.sealedInput !== undefined) return event;
  let pkg: StoredPackage;
  try {
    pkg = await ctx.packages.get(event.cryptlet.name, event.cryptlet.version);
  } catch (error) {
    // An event for a package not deployed (yet) is accepted as before: the events stage dead-letters it with
    // ERR_PACKAGE_NOT_FOUND, replayable once the package is deployed (and sealed then by `executeInputOf`). A
    // trigger must not stall on it, and no event is dropped.
    if (isCryptletError(error, ERR_PACKAGE_NOT_FOUND.code)) return event;
    throw error;
  }
  const pinned = { ...event, cryptlet: { name: event.cryptlet.name, version: pkg.manifest.version } };
  if (!isSealed(pkg)) return pinned;
  return { ...pinned, input: undefined, sealedInput: await seal(pinned, ctx) };
}

/**
 * The input fields of the execute job: `{input}` for a public Cryptlet, `{sealedInput}` for a sealed one (sealed
 * here when an event reached the queue without it, e.g. submitted by an older runtime version).
 */
export async function executeInputOf(
  event: CryptletEvent,
  pkg: Pick<StoredPackage, "manifest">,
  ctx: PipelineContext,
): Promise<Pick<ExecuteJob, "input" | "sealedInput">> {
  if (event.sealedInput !== undefined) return { sealedInput: event.sealedInput };
  if (!isSealed(pkg)) return { input: event.input };
  return { sealedInput: await seal(event, ctx) };
}

/**
 * The execute stage's view of its job: the normalised event and the Cryptlet's input (`null` when absent),
 * decrypted when sealed.
 * Call it only in the execute stage; never log or store what it returns for a sealed Cryptlet.
 * @throws `ERR_SEALED_INPUT_KEY_MISSING`, `ERR_SEALED_INPUT_INVALID`, the key provider's errors.
 */
export async function openRunInput(
  data: ExecuteJob,
  ctx: PipelineContext,
): Promise<{ event: ExecuteJob["event"]; input: unknown }> {
  if (data.sealedInput === undefined) return { event: data.event, input: data.input ?? null };
  if (!ctx.inputKey) throw new SealedInputKeyMissingError(data.cryptletId);
  const input = await openSealedInput(
    data.sealedInput,
    { cryptletId: data.cryptletId, eventId: data.eventId },
    ctx.inputKey,
  );
  return { event: data.event, input: input ?? null };
}
