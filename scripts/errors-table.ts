/**
 * Writes docs/errors.md: every stable `ERR_*` code of the runtime, the module that owns it, what it means and
 * whether the job queue retries it, from the error code registry (`runtime/errorCatalog.ts` loads every module's
 * `defineErrorCode` declarations), formatted with the repository's prettier settings.
 *
 * `node scripts/errors-table.ts` rewrites the file; test/errors/registry.test.ts fails when it is out of date.
 */
import { writeFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

import * as prettier from "prettier";

import { allErrorCodes } from "../runtime/errorCatalog.ts";

const ROOT = path.resolve(import.meta.dirname, "..");

/** Where the document is written. */
export const ERRORS_DOC = path.join(ROOT, "docs", "errors.md");

/**
 * The content of docs/errors.md for the codes declared now, formatted as `prettier --write` would.
 * @returns the Markdown text.
 */
export async function renderErrorsDoc(): Promise<string> {
  const codes = allErrorCodes();
  const table = codes
    .map((c) => `| \`${c.code}\` | ${c.module} | ${c.retry} | ${c.meaning.replace(/\|/g, "\\|")} |`)
    .join("\n");
  const markdown = `# Error codes

Every error the runtime raises on purpose is a \`CryptletError\` (\`runtime/errors.ts\`) with a stable \`ERR_*\`
code, a short message, secret-free details and \`retryable\`: the verdict the job queue acts on (retry with
backoff, or fail at once into the dead-letter queue). Test them with \`isCryptletError(e, code)\`. The HTTP API
maps codes to RFC 9457 problems (\`runtime/api/problem.ts\`).

Each code is declared once, by the module that owns it, with \`defineErrorCode\` (\`runtime/errorCodes.ts\`) in
that module's \`errors.ts\`; error classes take their code from the declaration. This table is generated from the
declarations by \`node scripts/errors-table.ts\`; a test fails when a code used in \`runtime/\` is not declared or
when this table is out of date. "depends": the error takes \`retryable\` from the situation (e.g. a network
failure versus a refusal); see its meaning and its class's TSDoc.

${codes.length} codes:

| code | module (runtime/…) | retried | meaning |
| --- | --- | --- | --- |
${table}
`;
  const options = (await prettier.resolveConfig(ERRORS_DOC)) ?? {};
  return prettier.format(markdown, { ...options, filepath: ERRORS_DOC });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  writeFileSync(ERRORS_DOC, await renderErrorsDoc());
  console.log(`${allErrorCodes().length} codes written to ${path.relative(ROOT, ERRORS_DOC)}`);
}
