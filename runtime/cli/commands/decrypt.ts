/**
 * `cryptlet decrypt <bundle.json> --key party.private.jwk.json`: opens a sealed result as one of its parties
 * (`runtime/sealing/open.ts`, JWE General JSON). Accepts a proof bundle (`payload.sealed.jwe`), a composite receipt
 * (`bundle.payload.sealed.jwe`) or a JWE file. The plaintext goes to standard output only, never to logs.
 *
 * @module
 */
import { open } from "../../sealing/open.ts";
import { CliInputError } from "../errors.ts";
import { bundleOf, readJsonFile, readPrivateJwk } from "../io.ts";

/** Finds the JWE in a bundle, a receipt or a bare JWE. @throws {@link CliInputError} when there is none. */
export function sealedJweOf(value: unknown, file: string): unknown {
  const bundle = bundleOf(value) as { payload?: { sealed?: { jwe?: unknown }; public?: unknown } } | null;
  if (typeof bundle === "object" && bundle !== null) {
    if (bundle.payload?.sealed?.jwe !== undefined) return bundle.payload.sealed.jwe;
    if (bundle.payload?.public !== undefined) {
      throw new CliInputError(file, "unexpected-shape", `${file} holds a public result: there is nothing to decrypt`);
    }
    if ("recipients" in bundle && "ciphertext" in bundle) return bundle;
  }
  throw new CliInputError(file, "unexpected-shape", `${file} is neither a proof bundle, a receipt nor a JWE`);
}

/**
 * Decrypts the sealed payload in `file` with the private JWK in `keyFile`.
 * @returns the plaintext bytes (the Cryptlet's JSON output for a sealed Cryptlet).
 * @throws {@link CliInputError}; `ERR_NOT_A_RECIPIENT` when the key is not one of the parties' (or the ciphertext
 *   was altered); `ERR_JWE_INVALID` for a malformed JWE.
 *
 * @example
 * ```ts
 * import { decryptFile } from "./runtime/cli/commands/decrypt.ts";
 * const text = new TextDecoder().decode(await decryptFile("bundle.json", "keys/carrier.private.jwk.json"));
 * ```
 */
export async function decryptFile(file: string, keyFile: string): Promise<Uint8Array> {
  const jwe = sealedJweOf(await readJsonFile(file), file);
  return open(jwe, await readPrivateJwk(keyFile));
}
