/**
 * Which runtime configuration file a command uses: `--config <file>`, else `CRYPTLET_CONFIG`, else
 * `./cryptlet.config.json` (the same file the workers and the API read; see README "Configuration").
 *
 * @module
 */
import { existsSync } from "node:fs";

import { loadRuntimeConfig, type RuntimeConfig } from "../config.ts";
import { CliUsageError } from "./errors.ts";

/** The default configuration file name. */
export const DEFAULT_CONFIG_FILE = "cryptlet.config.json";

/** The configuration file a command reads: `file`, else `CRYPTLET_CONFIG`, else `./cryptlet.config.json`. */
export function configFileFor(file: string | undefined): string {
  return file ?? process.env.CRYPTLET_CONFIG ?? DEFAULT_CONFIG_FILE;
}

/**
 * Loads the runtime configuration for a command.
 * @throws {@link CliUsageError} (`ERR_CLI_USAGE`, exit 2) when no file is given and none is found; the loader's
 *   `ERR_RUNTIME_CONFIG_INVALID` for a bad file.
 */
export function configFor(file: string | undefined): RuntimeConfig {
  const chosen = configFileFor(file);
  if (file === undefined && !existsSync(chosen)) {
    throw new CliUsageError(
      `no configuration: pass --config <file> or set CRYPTLET_CONFIG (looked for ${chosen})`,
      "--config",
    );
  }
  return loadRuntimeConfig(chosen);
}
