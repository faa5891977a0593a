/**
 * Writes one benchmark's section into docs/benchmarks.md, between the markers `<!-- bench:NAME -->` and
 * `<!-- /bench:NAME -->` (appended when absent), stamps it with the machine and the command that measured it, and
 * formats the file with Prettier (as `npm run lint` checks it).
 */
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";

const FILE = path.resolve(import.meta.dirname, "..", "..", "docs", "benchmarks.md");

/** One line describing this machine: CPU model, cores, memory, OS, Node version. */
export function machineDescription(): string {
  const cpus = os.cpus();
  const model = cpus[0]?.model.trim() ?? "unknown CPU";
  const memGiB = (os.totalmem() / 2 ** 30).toFixed(0);
  return `${model}, ${cpus.length} cores, ${memGiB} GiB RAM, ${os.type()} ${os.release()}, Node ${process.versions.node}`;
}

/**
 * Replaces (or appends) the section `name` of docs/benchmarks.md.
 * @param name - section key, e.g. `sandbox`.
 * @param title - the section heading.
 * @param command - the command that produced the figures, e.g. `npm run bench:sandbox`.
 * @param markdown - the body (tables, notes).
 */
export function writeBenchSection(name: string, title: string, command: string, markdown: string): void {
  const start = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const stamp = new Date().toISOString().slice(0, 16).replace("T", " ");
  const section = [
    start,
    `## ${title}`,
    "",
    `Measured ${stamp} UTC with \`${command}\` on ${machineDescription()}.`,
    "",
    markdown.trim(),
    end,
  ].join("\n");
  let doc = existsSync(FILE)
    ? readFileSync(FILE, "utf8")
    : "# Benchmarks\n\nFigures measured by `npm run bench` (each section names its own command and machine).\n";
  const from = doc.indexOf(start);
  const to = doc.indexOf(end);
  if (from >= 0 && to > from) doc = doc.slice(0, from) + section + doc.slice(to + end.length);
  else doc = `${doc.trimEnd()}\n\n${section}\n`;
  writeFileSync(FILE, doc);
  // Generated text, formatted as the repository's lint expects, whichever benchmark wrote it.
  const prettier = path.resolve(import.meta.dirname, "..", "..", "node_modules", "prettier", "bin", "prettier.cjs");
  spawnSync(process.execPath, [prettier, "--write", FILE], { stdio: "ignore" });
}
