#!/usr/bin/env node
/**
 * The `cryptlet` command (package.json `bin`; `npm run cryptlet -- <command>`). Commands: `init`, `build`,
 * `deploy`, `invoke`, `status`, `transfer`, `verify`, `report`, `decrypt`, `keys create|list|rotate`, `trust export`, `chains`.
 * Every command takes `--json` (one JSON document on standard output) and the ones that reach the runtime take `--config <file>`
 * (default `CRYPTLET_CONFIG` or `./cryptlet.config.json`). Progress goes to standard error.
 *
 * Exit codes: 0 success; 1 failure (the error's code is printed; a verification that does not pass, a key that
 * cannot decrypt); 2 usage (unknown command or option, missing argument, bad option value).
 *
 * Reference: docs/cli.md.
 *
 * @example
 * ```sh
 * cryptlet init cryptlets/my-first && cryptlet build cryptlets/my-first --json
 * cryptlet decrypt bundle.json --key cryptlets/cold-chain-sla/keys/carrier.private.jwk.json
 * ```
 * @module
 */
import { writeFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";

import { Command, CommanderError, InvalidArgumentError, Option } from "commander";

import { KEY_KINDS } from "./commands/keyKinds.ts";
import { CliUsageError } from "./errors.ts";
import { EXIT, processOutput, progress, readJsonFile, reportError, toJson, type CliOutput } from "./io.ts";

interface GlobalOptions {
  json?: boolean;
  config?: string;
}

/** The runtime configuration, loaded lazily (the config module pulls in the chain schema). */
async function loadConfig(file: string | undefined) {
  return (await import("./config.ts")).configFor(file);
}

function isoTime(value: string): Date {
  const time = new Date(value);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(value) || Number.isNaN(time.getTime())) {
    throw new InvalidArgumentError("must be an ISO 8601 time, e.g. 2024-01-05T10:00:00Z");
  }
  return time;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError("must be a positive integer");
  return n;
}

/**
 * Builds the program. Each action sets `state.exitCode`; errors propagate to {@link runCli}. Command modules are
 * imported when their command runs, so `cryptlet --help` or `cryptlet decrypt` do not load the pipeline.
 * @param state - the exit code to set and where results go.
 */
export function buildProgram(state: { exitCode: number; output: CliOutput }): Command {
  const program = new Command()
    .name("cryptlet")
    .description("Write, build, deploy, invoke and verify Cryptlets. Reference: docs/cli.md in the repository.")
    .version("0.1.0")
    .option("--json", "machine output: one JSON document on standard output")
    .option(
      "-c, --config <file>",
      "runtime configuration (default: $CRYPTLET_CONFIG, else ./cryptlet.config.json; `npm start` writes .cryptlet/cryptlet.config.json)",
    )
    .addHelpText(
      "after",
      `
Examples (\`npm start -- --serve\` runs a local stack and writes .cryptlet/cryptlet.config.json):
  cryptlet build cryptlets/price-median
  cryptlet invoke @cryptlet/price-median --input input.json --wait 60000 --config .cryptlet/cryptlet.config.json
  cryptlet status <runId> --config .cryptlet/cryptlet.config.json --json > receipt.json
  cryptlet verify receipt.json --config .cryptlet/cryptlet.config.json
  cryptlet decrypt receipt.json --key cryptlets/cold-chain-sla/keys/carrier.private.jwk.json
  cryptlet report <runId> --html report.html --config .cryptlet/cryptlet.config.json
`,
    )
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (text) => process.stdout.write(text),
      writeErr: (text) => process.stderr.write(text),
    });
  const globals = (): GlobalOptions => program.opts<GlobalOptions>();
  const out = (): CliOutput => ({ ...state.output, json: Boolean(globals().json) });
  const print = (value: unknown, human: string): void => {
    const o = out();
    o.out(o.json ? toJson(value) : human);
  };

  program
    .command("init")
    .description("scaffold a Cryptlet package: cryptlet.json, src/index.ts and a Jest test")
    .argument("<dir>", "new folder (must not exist or be empty)")
    .option("--name <name>", "package name (default: the folder name)")
    .option("--chain <name>", "chain of the scaffold's record target", "consortium")
    .action(async (dir: string, o: { name?: string; chain: string }) => {
      const result = await (
        await import("./commands/init.ts")
      ).initCryptlet(dir, { ...(o.name ? { name: o.name } : {}), chain: o.chain });
      print(result, `created ${result.name} in ${dir}: ${result.files.join(", ")}\nnext: cryptlet build ${dir}`);
    });

  program
    .command("build")
    .description("build a package reproducibly into <dir>/dist and print its codeHash")
    .argument("<dir>", "package folder (holds cryptlet.json)")
    .option("-o, --out <dir>", "output folder, relative to the package folder", "dist")
    .action(async (dir: string, o: { out: string }) => {
      const r = await (await import("./commands/build.ts")).buildCryptlet(dir, o.out);
      print(
        r,
        `${r.name}@${r.version}\n  codeHash   ${r.codeHash}\n  cryptletId ${r.cryptletId}\n  bundle     ${r.bundleBytes} bytes in ${r.outDir}`,
      );
    });

  program
    .command("deploy")
    .description("build, sign as publisher and deploy a package to the package store (Redis of --config)")
    .argument("<dir>", "package folder")
    .requiredOption(
      "--publisher-key <file>",
      "publisher's private P-256 JWK (see `cryptlet keys create --kind publisher`)",
    )
    .option("--kid <kid>", "the publisher key's id (default: the JWK's kid)")
    .action(async (dir: string, o: { publisherKey: string; kid?: string }) => {
      const config = await loadConfig(globals().config);
      const r = await (
        await import("./commands/deploy.ts")
      ).deployCryptlet(dir, config, {
        publisherKeyFile: o.publisherKey,
        ...(o.kid ? { kid: o.kid } : {}),
      });
      print(
        r,
        `${r.created ? "deployed" : "already deployed"} ${r.name}@${r.version}\n  codeHash ${r.codeHash}\n  signed by ${r.kid}`,
      );
    });

  program
    .command("invoke")
    .description("submit an HTTP-trigger event for a deployed Cryptlet (Pipeline.submit through --config)")
    .argument("<name>", "package name, e.g. @cryptlet/cold-chain-sla")
    .requiredOption("-i, --input <file>", "the Cryptlet's input (a JSON file)")
    .option("--idempotency-key <key>", "one run per key (default: a new UUID)")
    .option("--version <version>", "pin a deployed version")
    .addOption(
      new Option("--wait <ms>", "wait this long for the run's receipt (workers must run)").argParser(positiveInt),
    )
    .action(async (name: string, o: { input: string; idempotencyKey?: string; version?: string; wait?: number }) => {
      if (o.idempotencyKey !== undefined && (o.idempotencyKey.length < 1 || o.idempotencyKey.length > 200)) {
        throw new CliUsageError("--idempotency-key must be 1 to 200 characters", "--idempotency-key");
      }
      const config = await loadConfig(globals().config);
      const input = await readJsonFile(o.input);
      const r = await (
        await import("./commands/invoke.ts")
      ).invokeCryptlet(name, config, {
        input,
        ...(o.idempotencyKey ? { idempotencyKey: o.idempotencyKey } : {}),
        ...(o.version ? { version: o.version } : {}),
        ...(o.wait ? { waitMs: o.wait } : {}),
      });
      if (r.outcome?.status === "failed") state.exitCode = EXIT.failure;
      const summary =
        r.outcome === undefined
          ? "accepted"
          : r.outcome.status === "complete"
            ? r.outcome.receipt.summary
            : `failed: ${r.outcome.error.code}`;
      print(
        r,
        `run ${r.runId}\n  ${r.cryptlet.name}@${r.cryptlet.version} idempotency key ${r.idempotencyKey}\n  ${summary}`,
      );
    });

  program
    .command("status")
    .description("a run's status and composite receipt")
    .argument("<runId>", "run id (= resultId, 0x…)")
    .action(async (runId: string) => {
      const r = await (await import("./commands/status.ts")).runStatus(runId, await loadConfig(globals().config));
      if (r.status === "failed") state.exitCode = EXIT.failure;
      const human =
        r.status === "complete"
          ? `complete (${r.receipt.status}), gas ${r.receipt.gasUsed}\n${r.receipt.summary}`
          : r.status === "failed"
            ? `failed: ${r.run.error?.code} ${r.run.error?.message ?? ""}`
            : `pending: ${r.run.cryptlet ?? ""} accepted`;
      print(r, human);
    });

  program
    .command("transfer")
    .description("the receipt of a cross-chain transfer: both legs on both chains, the runs that wrote them, checks")
    .argument("<id>", "a lockId or burnId (0x…)")
    .option("--cryptlet <name>", "the cross-chain package", "@cryptlet/xchain-transfer")
    .action(async (id: string, options: { cryptlet: string }) => {
      const { transferReceipt, formatTransferReceipt } = await import("./commands/transfer.ts");
      const r = await transferReceipt(id, options.cryptlet, await loadConfig(globals().config));
      if (!r.checks.every((c) => c.ok)) state.exitCode = EXIT.failure;
      print(r, formatTransferReceipt(r));
    });

  program
    .command("verify")
    .description(
      "verify a proof bundle (or composite receipt) against the registries of the configured chains, or a trust file; exit 1 when a check fails, 2 without trust",
    )
    .argument("<bundle>", "bundle or receipt JSON file (`cryptlet status <runId> --json` output works too)")
    .option(
      "--trust <file>",
      "trust settings JSON instead of the chains: trustedSigners and threshold (required), consortiumId, approvedCodeHashes, jwks, attestationIssuer, now",
    )
    .option(
      "--chain <name...>",
      "configured chains to read (default: the receipt's targets, else the anchored chains, else all)",
    )
    .option("--latest", "read the registries at the latest block, not at the block of the write")
    .addOption(
      new Option(
        "--threshold <m>",
        "distinct trusted signatures required; with --config it may only raise the registry's M",
      ).argParser(positiveInt),
    )
    .option("--code-hash <hash...>", "approved code hashes (with --config: narrows the registry's approved set)")
    .addOption(
      new Option("--rpc-timeout <ms>", "deadline of each JSON-RPC request and of each chain's read")
        .argParser(positiveInt)
        .default(10_000),
    )
    .option(
      "--rpc <url,...>",
      "JSON-RPC endpoints instead of a configuration: trust from the registry each anchor's contract names",
      (value: string, previous: string[] = []) => [...previous, ...value.split(",").filter(Boolean)],
    )
    .option("--jwks <file|url>", "the attestation JWKS (e.g. https://<api>/.well-known/jwks.json)")
    .option("--registry <address>", "with --rpc: the registry every anchor's contract must name")
    .addOption(
      new Option("--confirmations <n>", "confirmations each anchor's transaction needs")
        .argParser(positiveInt)
        .default(1),
    )
    .addOption(
      new Option(
        "--at <time>",
        "ISO 8601 time at which the attestation token must be valid (an archived bundle: e.g. its result's time)",
      ).argParser(isoTime),
    )
    .option(
      "--rerun",
      "re-execute the Cryptlet on the bundle's evidence in a sandbox and require the same inputHash and outputHash",
    )
    .option("--package <dir...>", "with --rerun: built package folders (or folders of them) to find the codeHash in")
    .option(
      "--party-key <file...>",
      "a party's private JWK: opens a sealed result's evidence (checked, and re-executed with --rerun) and plaintext",
    )
    .addHelpText(
      "after",
      `
Trust comes from the chains of --config (default $CRYPTLET_CONFIG, else ./cryptlet.config.json): each registry's
signers, threshold M, consortium id and approved code hashes, read at the block of the write. Without --trust and
without a configuration, or when a chain cannot be read, nothing is verified (exit 2).

Examples:
  cryptlet status <runId> --config .cryptlet/cryptlet.config.json --json > receipt.json
  cryptlet verify receipt.json --config .cryptlet/cryptlet.config.json
  cryptlet verify .cryptlet/bundles/<runId>.json --config .cryptlet/cryptlet.config.json --chain consortium
  cryptlet verify bundle.json --trust trust.json   # e.g. the "trust" object of test/vectors/proof-bundle/vectors.json
  cryptlet verify bundle.json --rpc https://rpc.example.org --jwks https://api.example.org/.well-known/jwks.json
  cryptlet verify .cryptlet/bundles/<runId>.json --rpc http://127.0.0.1:8545,http://127.0.0.1:8546 \
    --jwks http://127.0.0.1:8080/.well-known/jwks.json --rerun --package .cryptlet/packages
`,
    )
    .action(
      async (
        file: string,
        o: {
          trust?: string;
          chain?: string[];
          latest?: boolean;
          threshold?: number;
          codeHash?: string[];
          rpcTimeout: number;
          rpc?: string[];
          jwks?: string;
          registry?: string;
          confirmations: number;
          at?: Date;
          rerun?: boolean;
          package?: string[];
          partyKey?: string[];
        },
      ) => {
        const verify = await import("./commands/verify.ts");
        let outcome: Awaited<ReturnType<typeof verify.verifyCommand>>;
        try {
          outcome = await verify.verifyCommand(file, {
            ...(o.trust === undefined ? {} : { trust: o.trust }),
            ...(globals().config === undefined ? {} : { config: globals().config }),
            ...(o.chain === undefined ? {} : { chains: o.chain }),
            ...(o.latest ? { latest: true } : {}),
            ...(o.threshold === undefined ? {} : { threshold: o.threshold }),
            ...(o.codeHash === undefined ? {} : { codeHashes: o.codeHash }),
            rpcTimeoutMs: o.rpcTimeout,
            ...(o.rpc === undefined ? {} : { rpc: o.rpc }),
            ...(o.jwks === undefined ? {} : { jwks: o.jwks }),
            ...(o.registry === undefined ? {} : { registry: o.registry }),
            confirmations: o.confirmations,
            ...(o.at === undefined ? {} : { at: o.at }),
            ...(o.rerun ? { rerun: true } : {}),
            ...(o.package === undefined ? {} : { packages: o.package }),
            ...(o.partyKey === undefined ? {} : { partyKeys: o.partyKey }),
          });
        } catch (error) {
          // No trust read, no verdict: a chain that cannot be read is exit 2, never a fallback to other trust.
          if (!verify.isTrustUnavailable(error)) throw error;
          reportError(out(), error);
          state.exitCode = EXIT.usage;
          return;
        }
        if (!outcome.ok) state.exitCode = EXIT.failure;
        print(outcome, verify.describeOutcome(outcome));
      },
    );

  const trust = program.command("trust").description("public trust material for verifiers");
  trust
    .command("export")
    .description(
      "write a public trust file (signers, threshold, approved code hashes, consortium id, attestation JWKS) read from a registry, for `verify --trust`",
    )
    .requiredOption("--out <file>", "the trust file to write")
    .option("--chain <name>", "with --config: the configured chain whose registry to read")
    .option("--rpc <url>", "a JSON-RPC endpoint instead of a configuration")
    .option("--registry <address>", "with --rpc: the registry")
    .option("--contract <address>", "with --rpc: a ledger, oracle or feed whose registry() to read")
    .option("--cryptlet <name-or-id...>", "the Cryptlets whose approvals to export (default: all approved ever)")
    .option("--jwks <file|url>", "the attestation JWKS (default with --config: the configuration's attestation key)")
    .addOption(new Option("--block <n>", "the block to read at (default latest)").argParser(positiveInt))
    .addOption(
      new Option("--rpc-timeout <ms>", "deadline of each JSON-RPC request").argParser(positiveInt).default(10_000),
    )
    .action(
      async (o: {
        out: string;
        chain?: string;
        rpc?: string;
        registry?: string;
        contract?: string;
        cryptlet?: string[];
        jwks?: string;
        block?: number;
        rpcTimeout: number;
      }) => {
        const { trustExport, describeExport } = await import("./commands/trust.ts");
        const { isTrustUnavailable } = await import("./commands/verify.ts");
        try {
          const exported = await trustExport({
            out: o.out,
            ...(o.rpc === undefined ? { config: await loadConfig(globals().config) } : { rpc: o.rpc }),
            ...(o.chain === undefined ? {} : { chain: o.chain }),
            ...(o.registry === undefined ? {} : { registry: o.registry }),
            ...(o.contract === undefined ? {} : { contract: o.contract }),
            ...(o.cryptlet === undefined ? {} : { cryptlets: o.cryptlet }),
            ...(o.jwks === undefined ? {} : { jwks: o.jwks }),
            ...(o.block === undefined ? {} : { block: o.block }),
            rpcTimeoutMs: o.rpcTimeout,
          });
          print(exported, describeExport(exported, o.out));
        } catch (error) {
          if (!isTrustUnavailable(error)) throw error;
          reportError(out(), error);
          state.exitCode = EXIT.usage;
        }
      },
    );

  program
    .command("decrypt")
    .description("open a sealed result with a party's private key")
    .argument("<bundle>", "proof bundle, composite receipt or JWE (JSON file)")
    .requiredOption("-k, --key <file>", "the party's private JWK")
    .option("-o, --out <file>", "write the plaintext to a file instead of standard output")
    .action(async (file: string, o: { key: string; out?: string }) => {
      const plaintext = await (await import("./commands/decrypt.ts")).decryptFile(file, o.key);
      const text = new TextDecoder().decode(plaintext);
      if (o.out) {
        await writeFile(o.out, plaintext, { mode: 0o600 });
        print({ ok: true, out: o.out, bytes: plaintext.byteLength }, `wrote ${plaintext.byteLength} bytes to ${o.out}`);
        return;
      }
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON: printed as text
      }
      print({ ok: true, plaintext: parsed }, typeof parsed === "string" ? text : toJson(parsed));
    });

  program
    .command("report")
    .description(
      "write a run's proof audit report: one self-contained HTML page (checks, signers, chains, attestation); exit 1 when a check fails, 2 without trust",
    )
    .argument("<run>", "run id (0x…, looked up with --config) or a bundle / receipt JSON file")
    .requiredOption("--html <file>", "where to write the page")
    .option("--trust <file>", "trust settings JSON instead of the chains' registries (as for `cryptlet verify`)")
    .option("--chain <name...>", "configured chains to read trust from (default: the run's)")
    .option("--explorer <chain=url...>", "explorer base URL by chain name or id (default: each chain's explorerUrl)")
    .option("--rerun", "re-execute the Cryptlet on the bundle's evidence (as `cryptlet verify --rerun`)")
    .option("--package <dir...>", "with --rerun: built package folders (or folders of them)")
    .option("--party-key <file...>", "a party's private JWK, to open a sealed result's evidence and plaintext")
    .addOption(
      new Option("--rpc-timeout <ms>", "deadline of each JSON-RPC request and of each chain's read")
        .argParser(positiveInt)
        .default(10_000),
    )
    .action(
      async (
        target: string,
        o: {
          html: string;
          trust?: string;
          chain?: string[];
          explorer?: string[];
          rpcTimeout: number;
          rerun?: boolean;
          package?: string[];
          partyKey?: string[];
        },
      ) => {
        const [{ reportCommand }, verify] = await Promise.all([
          import("./commands/report.ts"),
          import("./commands/verify.ts"),
        ]);
        let r: Awaited<ReturnType<typeof reportCommand>>;
        try {
          r = await reportCommand(target, {
            html: o.html,
            ...(globals().config === undefined ? {} : { config: globals().config }),
            ...(o.trust === undefined ? {} : { trust: o.trust }),
            ...(o.chain === undefined ? {} : { chains: o.chain }),
            ...(o.explorer === undefined ? {} : { explorers: o.explorer }),
            rpcTimeoutMs: o.rpcTimeout,
            ...(o.rerun ? { rerun: true } : {}),
            ...(o.package === undefined ? {} : { packages: o.package }),
            ...(o.partyKey === undefined ? {} : { partyKeys: o.partyKey }),
          });
        } catch (error) {
          if (!verify.isTrustUnavailable(error)) throw error;
          reportError(out(), error);
          state.exitCode = EXIT.usage;
          return;
        }
        if (!r.ok) state.exitCode = EXIT.failure;
        print(
          r,
          `${r.ok ? "VALID" : "INVALID"}: wrote ${r.html} (${r.bytes} bytes)${r.failed.map((f) => `\n  fail ${f}`).join("")}`,
        );
      },
    );

  const keys = program.command("keys").description("local key files and the configuration's keys");
  keys
    .command("create")
    .description("write a new private JWK file (mode 0600) and print its public half")
    .argument("<file>", "where to write the private JWK")
    .addOption(new Option("--kind <kind>", "what the key is for").choices(KEY_KINDS).makeOptionMandatory())
    .option("--kid <kid>", "key id (publisher and party keys)")
    .action(async (file: string, o: { kind: string; kid?: string }) => {
      const r = await (await import("./commands/keys.ts")).createKeyFile(file, o.kind, o.kid);
      print(
        r,
        `wrote ${file} (private, mode 0600)${r.address ? `\n  address ${r.address}` : ""}\n  public JWK ${toJson(r.jwk, 0)}`,
      );
    });
  keys
    .command("list")
    .description("every key the configuration names: role, provider, key id, version, address")
    .action(async () => {
      const list = await (await import("./commands/keys.ts")).listKeys(await loadConfig(globals().config));
      print(
        list,
        list.map((k) => `${(k.role ?? "").padEnd(18)} ${k.provider} ${k.keyId} ${k.address ?? ""}`).join("\n"),
      );
    });
  keys
    .command("rotate")
    .description("new version of a configured key (local file replaced, or Key Vault rotate)")
    .argument("<role>", "attestation | result-signer:<index> | chain:<name>")
    .action(async (role: string) => {
      const r = await (await import("./commands/keys.ts")).rotateKey(await loadConfig(globals().config), role);
      const hint = role.startsWith("result-signer")
        ? `\n  next: cryptlet registry rotate-signer ${r.before.address} ${r.after.address} (every chain's registry)`
        : "";
      print(
        r,
        `${role}: ${r.before.version} -> ${r.after.version}${r.after.address ? ` (${r.after.address})` : ""}${hint}`,
      );
    });

  const registry = program.command("registry").description("the configured chains' CryptletRegistry contracts");
  registry
    .command("rotate-signer")
    .description(
      "rotateSigner(old, new) on every configured registry: checked on every chain first; printed for the role holder, or sent with --key",
    )
    .argument("<old>", "the address the registries trust now (keys rotate prints it)")
    .argument("<new>", "the new key version's address")
    .option("--chain <name...>", "only these configured chains (default: every chain with a registry)")
    .option("--key <file>", "a local secp256k1 JWK holding SIGNER_MANAGER_ROLE: send the transactions (development)")
    .action(async (oldSigner: string, newSigner: string, o: { chain?: string[]; key?: string }) => {
      const steps = await (
        await import("./commands/registry.ts")
      ).rotateSigner(await loadConfig(globals().config), oldSigner, newSigner, {
        ...(o.chain ? { chains: o.chain } : {}),
        ...(o.key ? { keyFile: o.key } : {}),
      });
      print(
        steps,
        steps
          .map((s) =>
            s.status === "pending"
              ? `${s.chain.padEnd(12)} send to ${s.to} data ${s.data}`
              : s.status === "sent"
                ? `${s.chain.padEnd(12)} rotated in tx ${s.txHash} (block ${s.blockNumber})`
                : `${s.chain.padEnd(12)} already rotated`,
          )
          .join("\n"),
      );
    });

  program
    .command("chains")
    .description("configured chains: head block, writer address and balance")
    .action(async () => {
      const o = out();
      const bar = progress(o, "probing chains");
      bar.step(0, 1);
      const list = await (await import("./commands/chains.ts")).describeChains(await loadConfig(globals().config));
      bar.step(1, 1);
      bar.end();
      if (list.some((c) => !c.ok)) state.exitCode = EXIT.failure;
      print(
        list,
        list
          .map((c) =>
            c.ok
              ? `${c.name.padEnd(12)} chain ${c.chainId} block ${c.headBlock} ` +
                (c.lanes ?? []).map((l) => `writer ${l.signer} ${l.balanceEth} ETH`).join(", ")
              : `${c.name.padEnd(12)} chain ${c.chainId} ${c.error?.code}: ${c.error?.message}`,
          )
          .join("\n"),
      );
    });

  program
    .command("serve")
    .description("run one or more roles of the runtime as a long-running process: api, worker, triggers, or all")
    .argument("<role>", "all, or a comma-separated list of api, worker, triggers")
    .option("--stages <list>", "the worker's stages (comma-separated; default all)")
    .addHelpText(
      "after",
      `
Reads the configuration (--config, $CRYPTLET_CONFIG, ./cryptlet.config.json); logs JSON on stderr; prints one JSON
line {"ready": true, ...} on stdout when up; SIGTERM/SIGINT drain within resilience.shutdownTimeoutMs.
Exit codes: 0 stopped on a signal, 1 could not start or the shutdown deadline passed, 2 usage. See docs/operations.md.
`,
    )
    .action(async (role: string, options: { stages?: string }) => {
      const { serveCommand } = await import("./commands/serve.ts");
      const code = await serveCommand(role, {
        ...(globals().config === undefined ? {} : { config: globals().config }),
        ...(options.stages === undefined ? {} : { stages: options.stages }),
      });
      state.exitCode = code;
      // Anything a library left open must not keep a stopped process alive past its stop.
      setTimeout(() => process.exit(code), 2000).unref();
    });

  program
    .command("start")
    .description("run the local stack on real data and print a summary (what `npm start` runs)")
    .option("--serve", "keep the stack running after the summary")
    .option("--minutes <n>", "minutes of price data for price-median")
    .option("--swap-minutes <n>", "minutes of Uniswap swaps to replay")
    .action(async (options: { serve?: boolean; minutes?: string; swapMinutes?: string }) => {
      const { spawnSync } = await import("node:child_process");
      const { fileURLToPath } = await import("node:url");
      const main = fileURLToPath(new URL("../devstack/main.ts", import.meta.url));
      const args = [
        ...(options.serve ? ["--serve"] : []),
        ...(options.minutes ? ["--minutes", options.minutes] : []),
        ...(options.swapMinutes ? ["--swap-minutes", options.swapMinutes] : []),
      ];
      const result = spawnSync(process.execPath, [main, ...args], { stdio: "inherit" });
      state.exitCode = result.status === 0 ? EXIT.ok : EXIT.failure;
    });

  return program;
}

/**
 * Runs the command line and returns the exit code (does not call `process.exit`).
 * @param argv - arguments after the program name, e.g. `["build", "cryptlets/price-median", "--json"]`.
 */
export async function runCli(
  argv: readonly string[],
  output: CliOutput = processOutput(argv.includes("--json")),
): Promise<number> {
  const state = { exitCode: EXIT.ok as number, output };
  const program = buildProgram(state);
  try {
    await program.parseAsync([...argv], { from: "user" });
    return state.exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (
        error.code === "commander.helpDisplayed" ||
        error.code === "commander.version" ||
        error.code === "commander.help"
      ) {
        return EXIT.ok;
      }
      return EXIT.usage;
    }
    return reportError({ ...output, json: argv.includes("--json") }, error);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href || process.argv[1]?.endsWith("/cryptlet")) {
  process.exitCode = await runCli(process.argv.slice(2));
}
