/**
 * The follower's side of co-signing (docs/consortium.md, "What a follower checks"): {@link evaluateProposal} turns a
 * leader's {@link CosignProposal} into this member's {@link CosignAnswer}. It signs only a result it reproduced
 * itself, from its own package store, in its own sandbox, against the approvals of the chains' registries, of an
 * event it found on the event's chain itself (chain-log, oracle and refund events: runtime/consortium/eventCheck.ts),
 * with its own result-signing key; any other outcome is a `dissent` with a stable `ERR_COSIGN_*` code
 * (runtime/consortium/errors.ts) and, once its re-execution completed, its own hashes.
 *
 * The evidence and the re-run's plaintext exist only in this call's memory: nothing of them is stored (no Redis),
 * logged, or put into an answer or error (answers carry hashes and rule names only).
 *
 * @module
 */
import { getAddress, keccak256, type ContractRunner } from "ethers";

import { bundleResultToStruct } from "../attestation/bundle.ts";
import { computeResultId, cryptletResultDigest, type CryptletResult, type Hex32 } from "../attestation/eip712.ts";
import { checkRunEvidence, evidenceInputHash } from "../attestation/evidence.ts";
import { sealedOutputBytes } from "../attestation/hashing.ts";
import { recoverDigestSigner, signCryptletResult, type ResultSigner } from "../attestation/signing.ts";
import type { ChainConfig } from "../chains/config.ts";
import { readRegistryTrust, type RegistryTrust } from "../chains/registryTrust.ts";
import type { BuiltPackage } from "../packages/builtPackage.ts";
import { reexecuteRun, type RerunOutcome } from "../reexecution/reexecute.ts";
import type { SandboxPool } from "../sandbox/pool.ts";
import { partyKeyAlgorithm, partyKid } from "../sealing/seal.ts";
import { checkDisclosedJwe } from "./disclosure.ts";
import {
  CosignDissentError,
  ERR_COSIGN_CODE_NOT_APPROVED,
  ERR_COSIGN_CONSORTIUM_MISMATCH,
  ERR_COSIGN_EVENT_NOT_ON_CHAIN,
  ERR_COSIGN_EVENT_UNVERIFIABLE,
  ERR_COSIGN_EVIDENCE_MISMATCH,
  ERR_COSIGN_INPUT_DIFFERS,
  ERR_COSIGN_LEADER_MISMATCH,
  ERR_COSIGN_LEADER_SIGNATURE_INVALID,
  ERR_COSIGN_NOT_A_MEMBER,
  ERR_COSIGN_OUTPUT_DIFFERS,
  ERR_COSIGN_PACKAGE_NOT_FOUND,
  ERR_COSIGN_PROPOSAL_INVALID,
  ERR_COSIGN_REEXECUTION_FAILED,
  ERR_COSIGN_REGISTRY_MISMATCH,
  ERR_COSIGN_REGISTRY_UNAVAILABLE,
  ERR_COSIGN_SEALED_MISMATCH,
  ERR_COSIGN_SIGNING_FAILED,
} from "./errors.ts";
import { checkEventOnChain, eventCheckOptionsOf, type ChainClients } from "./eventCheck.ts";
import type { ConsortiumSettings, CosignAnswer, CosignProposal } from "./protocol.ts";

/** A chain's `CryptletRegistry`, read by the follower at the latest block. */
export interface RegistrySource {
  /** The chain's name (for reasons). */
  chain: string;
  /** An ethers provider of that chain. */
  runner: ContractRunner;
  /** The registry's address. */
  registry: string;
}

/** What {@link evaluateProposal} needs: this member's own settings, stores, sandbox, key and chains. */
export interface FollowerDeps {
  /** This member's consortium settings (`self`, the members with their signers, the threshold M). */
  settings: ConsortiumSettings;
  /** This member's consortium id (the EIP-712 domain salt). */
  consortiumId: Hex32;
  /** This member's package store (`PackageStore`), by measurement: it must recompute the hash from the bytes. */
  packages: { getByCodeHash(codeHash: string): Promise<BuiltPackage> };
  /** This member's sandbox pool. */
  sandbox: SandboxPool;
  /** This member's result-signing key (its own Key Vault), the registered signer of `settings.self`. */
  signer: ResultSigner;
  /** Every chain the consortium writes to: the code hash must be approved, and the trust match, on each. */
  registries: readonly RegistrySource[];
  /** Deadline of reading one registry, ms. Default 10000. */
  registryTimeoutMs?: number;
  /**
   * The chains this member reads events from, by EIP-155 chain id (a `ChainRpc`, an ethers `JsonRpcProvider`, or
   * any `{send(method, params)}` client): a chain-log, oracle or refund event is checked on its chain before the
   * re-run (runtime/consortium/eventCheck.ts). Absent, or without the event's chain: such an event cannot be
   * checked and the member dissents (`ERR_COSIGN_EVENT_UNVERIFIABLE`); HTTP and schedule events need none.
   */
  chains?: ChainClients;
  /** Deadline of each JSON-RPC call of the event check, ms. Default 10000. */
  chainTimeoutMs?: number;
  /**
   * This member's chain configurations (name, chain id, contracts): the contracts a package's triggers listen to,
   * and each chain's oracle, as this member knows them. A chain-log or oracle event of a contract they do not name
   * for the package cannot be checked (`ERR_COSIGN_EVENT_UNVERIFIABLE`). Absent: none.
   */
  chainConfigs?: readonly Pick<ChainConfig, "name" | "chainId" | "contracts">[];
}

const BYTES32 = /^0x[0-9a-fA-F]{64}$/;
const HEX = /^0x([0-9a-fA-F]{2})*$/;
const eq = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

function describe(error: unknown): string {
  const e = error as { code?: unknown; shortMessage?: unknown; message?: unknown };
  const text = typeof e.shortMessage === "string" ? e.shortMessage : String(e.message ?? error);
  return typeof e.code === "string" ? `${e.code}: ${text}` : text;
}

function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** Shape checks of what a proposal must hold before anything is computed from it. */
function checkShape(proposal: unknown): asserts proposal is CosignProposal {
  const fail = (what: string): never => {
    throw new CosignDissentError(ERR_COSIGN_PROPOSAL_INVALID, `proposal ${what}`);
  };
  const p = proposal as Partial<CosignProposal> | null;
  if (typeof p !== "object" || p === null) fail("is not an object");
  const q = p as Partial<CosignProposal>;
  if (q.version !== 1) fail("version is not 1");
  if (typeof q.leader !== "string") fail("has no leader");
  if (typeof q.consortiumId !== "string" || !BYTES32.test(q.consortiumId)) fail("consortiumId is not bytes32");
  if (typeof q.cryptlet?.name !== "string" || typeof q.cryptlet.version !== "string") fail("cryptlet is missing");
  const r = q.result;
  if (typeof r !== "object" || r === null) fail("result is missing");
  for (const name of ["resultId", "cryptletId", "codeHash", "inputHash", "outputHash"] as const) {
    const value = (r as unknown as Record<string, unknown>)[name];
    if (typeof value !== "string" || !BYTES32.test(value)) fail(`result.${name} is not bytes32`);
  }
  if (typeof r?.timestamp !== "string" || !/^(0|[1-9][0-9]{0,19})$/.test(r.timestamp)) {
    fail("result.timestamp is not a decimal uint64");
  }
  if (typeof q.payload !== "string" || !HEX.test(q.payload)) fail("payload is not 0x hex bytes");
  if (q.contentKey !== undefined && typeof q.contentKey !== "string") fail("contentKey is not a string");
  const s = q.leaderSignature;
  if (typeof s?.signer !== "string" || typeof s.signature !== "string") fail("leaderSignature is missing");
}

/** Reads every registry (concurrently, each with a deadline) and checks approval and trust against the settings. */
async function checkRegistries(result: CryptletResult, deps: FollowerDeps): Promise<void> {
  const expectedSigners = deps.settings.members.map((m) => getAddress(m.signer)).sort();
  const timeout = deps.registryTimeoutMs ?? 10_000;
  const trusts = await Promise.all(
    deps.registries.map(async (source) => {
      try {
        return {
          source,
          trust: await withDeadline(
            readRegistryTrust(source.runner, source.registry, { cryptletIds: [result.cryptletId] }),
            timeout,
            `registry of ${source.chain}`,
          ),
        };
      } catch (error) {
        throw new CosignDissentError(
          ERR_COSIGN_REGISTRY_UNAVAILABLE,
          `the registry of chain ${source.chain} could not be read: ${describe(error)}`,
          {},
          error,
        );
      }
    }),
  );
  if (trusts.length === 0) {
    throw new CosignDissentError(ERR_COSIGN_REGISTRY_UNAVAILABLE, "no chain registry is configured to check approval");
  }
  for (const { source, trust } of trusts as { source: RegistrySource; trust: RegistryTrust }[]) {
    const where = `the registry of chain ${source.chain} (block ${trust.blockNumber})`;
    if (!eq(trust.consortiumId, deps.consortiumId)) {
      throw new CosignDissentError(ERR_COSIGN_REGISTRY_MISMATCH, `${where} is for consortium ${trust.consortiumId}`);
    }
    if (trust.threshold !== deps.settings.threshold) {
      throw new CosignDissentError(
        ERR_COSIGN_REGISTRY_MISMATCH,
        `${where} requires ${trust.threshold} signatures, the settings ${deps.settings.threshold}`,
      );
    }
    if (trust.signers.join() !== expectedSigners.join()) {
      throw new CosignDissentError(
        ERR_COSIGN_REGISTRY_MISMATCH,
        `${where} trusts signers ${trust.signers.join(", ")}, the members are ${expectedSigners.join(", ")}`,
      );
    }
    const approved = trust.approvedCodeHashes[result.cryptletId.toLowerCase()] ?? [];
    if (!approved.includes(result.codeHash.toLowerCase())) {
      throw new CosignDissentError(
        ERR_COSIGN_CODE_NOT_APPROVED,
        `codeHash ${result.codeHash} is not approved for ${result.cryptletId} in ${where}`,
      );
    }
  }
}

async function findPackage(proposal: CosignProposal, deps: FollowerDeps): Promise<BuiltPackage> {
  let pkg: BuiltPackage;
  try {
    pkg = await deps.packages.getByCodeHash(proposal.result.codeHash);
  } catch (error) {
    throw new CosignDissentError(
      ERR_COSIGN_PACKAGE_NOT_FOUND,
      `no package with codeHash ${proposal.result.codeHash} in this member's store (${describe(error)})`,
      {},
      error,
    );
  }
  if (!eq(pkg.codeHash, proposal.result.codeHash) || !eq(pkg.cryptletId, proposal.result.cryptletId)) {
    throw new CosignDissentError(
      ERR_COSIGN_PACKAGE_NOT_FOUND,
      `the package found (${pkg.manifest.name}@${pkg.manifest.version}, codeHash ${pkg.codeHash}) is not the result's`,
    );
  }
  return pkg;
}

function checkEvidence(proposal: CosignProposal): void {
  const fail = (reason: string): never => {
    throw new CosignDissentError(ERR_COSIGN_EVIDENCE_MISMATCH, reason);
  };
  try {
    checkRunEvidence(proposal.evidence);
  } catch (error) {
    fail(`the evidence is invalid (${describe(error)})`);
  }
  const { result, evidence } = proposal;
  const commitment = evidenceInputHash(evidence);
  if (!eq(commitment, result.inputHash)) {
    fail(`the evidence commits to ${commitment}, the result's inputHash is ${result.inputHash}`);
  }
  if (!eq(evidence.context.resultId, result.resultId)) fail("the evidence's context names another resultId");
  const derived = computeResultId(result.cryptletId, evidence.context.requestId);
  if (!eq(derived, result.resultId)) {
    fail(`resultId ${result.resultId} is not keccak256(abi.encode(cryptletId, requestId)) = ${derived}`);
  }
  if (result.timestamp !== String(evidence.context.now)) {
    fail(`the result's timestamp ${result.timestamp} is not the event's time (context.now ${evidence.context.now})`);
  }
  // The event as the pipeline normalises it: the context's requestId and time are the event's own.
  const e = evidence.event as Record<string, unknown> | null;
  const source = (typeof e === "object" && e !== null ? e.source : undefined) as Record<string, unknown> | undefined;
  if (
    typeof e?.eventId !== "string" ||
    typeof source !== "object" ||
    source === null ||
    typeof source.type !== "string"
  ) {
    fail("the evidence's event is not a normalised event {eventId, requestId, source, time}");
  }
  if (typeof e?.requestId !== "string" || !eq(e.requestId, evidence.context.requestId)) {
    fail("the evidence's event.requestId is not its context.requestId");
  }
  if (e?.time !== evidence.context.now) fail("the evidence's event.time is not its context.now");
}

/** The evidence's event happened on its chain as the evidence says (runtime/consortium/eventCheck.ts). */
async function checkEvent(proposal: CosignProposal, pkg: BuiltPackage, deps: FollowerDeps): Promise<void> {
  const check = await checkEventOnChain(proposal.evidence.event, proposal.evidence.input, deps.chains, {
    ...eventCheckOptionsOf(pkg.manifest, deps.chainConfigs ?? []),
    timeoutMs: deps.chainTimeoutMs ?? 10_000,
    cryptletId: proposal.result.cryptletId,
  });
  if (check.ok) return;
  throw new CosignDissentError(
    check.code === ERR_COSIGN_EVENT_NOT_ON_CHAIN.code ? ERR_COSIGN_EVENT_NOT_ON_CHAIN : ERR_COSIGN_EVENT_UNVERIFIABLE,
    check.reason,
  );
}

async function checkSealed(proposal: CosignProposal, pkg: BuiltPackage, rerun: RerunOutcome): Promise<void> {
  const output = pkg.manifest.output;
  if (!("sealed" in output)) return;
  const hashes = { inputHash: rerun.inputHash };
  const fail = (reason: string): never => {
    throw new CosignDissentError(ERR_COSIGN_SEALED_MISMATCH, reason, hashes);
  };
  if (proposal.contentKey === undefined) fail("a sealed result's proposal discloses no content key");
  let jwe: unknown;
  try {
    jwe = JSON.parse(Buffer.from(proposal.payload.slice(2), "hex").toString("utf8"));
  } catch {
    fail("the sealed payload is not JSON");
  }
  // The bytes written must be the JWE's canonical JSON (what a verifier recomputes outputHash over).
  if (!eq(`0x${Buffer.from(sealedOutputBytes(jwe as object)).toString("hex")}`, proposal.payload)) {
    fail("the sealed payload is not the canonical JSON of its JWE");
  }
  const recipients = (jwe as { recipients?: { header?: { kid?: unknown; alg?: unknown } }[] }).recipients;
  const expected = await Promise.all(output.parties.map(async (p) => `${partyKeyAlgorithm(p)} ${await partyKid(p)}`));
  const actual = Array.isArray(recipients) ? recipients.map((r) => `${r?.header?.alg} ${r?.header?.kid}`) : [];
  if (actual.join("|") !== expected.join("|")) {
    fail(`the JWE's recipients (${actual.length}) are not the manifest's parties (${expected.length}) in order`);
  }
  const check = checkDisclosedJwe(jwe, proposal.contentKey as string, rerun.outputJson);
  if (!check.ok) fail(`the disclosed JWE does not hold the re-run's output (${check.failure})`);
}

/**
 * Evaluates a leader's proposal and answers it. In order: shape; the leader is another member and the
 * authenticated sender; the consortium id; the leader's signature recovers to its registered signer; the code hash
 * is approved (and the signers and threshold are the settings') in every configured chain's registry at the latest
 * block; the package is in this member's store by `codeHash`; the evidence commits to `inputHash`, names this
 * result, and `timestamp` is its `context.now`, which is its event's time; the event happened on its chain as the
 * evidence says, and the input is what the trigger makes of it (`checkEventOnChain`, runtime/consortium/
 * eventCheck.ts: chain-log, oracle and refund events; an HTTP or schedule event is the leader's account, taken as
 * it is); the re-run in this member's sandbox reproduces `inputHash` and the
 * output (public: the ABI payload and `outputHash`; sealed: the JWE decrypts under the disclosed key to the re-run's
 * output, `outputHash` is its keccak256, its recipients are the manifest's parties). Only then it signs with
 * `deps.signer`.
 *
 * @param proposal - the proposal as received (checked here; any shape).
 * @param deps - this member's settings, stores, sandbox, key and chains.
 * @param sender - the member id the request was authenticated as (runtime/consortium/peerAuth.ts).
 * @returns `agree` with this member's EIP-712 signature, or `dissent` with the code, reason and, when computed, this
 *   member's `inputHash`/`outputHash`. Never throws for a proposal's fault.
 *
 * @example
 * ```ts
 * import { evaluateProposal } from "./runtime/consortium/follower.ts";
 * const answer = await evaluateProposal(req.body, { settings, consortiumId, packages, sandbox, signer, registries }, "acme");
 * ```
 */
export async function evaluateProposal(proposal: unknown, deps: FollowerDeps, sender: string): Promise<CosignAnswer> {
  const self = deps.settings.self;
  try {
    checkShape(proposal);
    const leader = deps.settings.members.find((m) => m.id === proposal.leader);
    if (leader === undefined || leader.id === self) {
      throw new CosignDissentError(ERR_COSIGN_NOT_A_MEMBER, `leader ${proposal.leader} is not another member`);
    }
    if (sender !== proposal.leader) {
      throw new CosignDissentError(
        ERR_COSIGN_LEADER_MISMATCH,
        `the proposal names leader ${proposal.leader} but was sent by ${sender}`,
      );
    }
    if (!eq(proposal.consortiumId, deps.consortiumId)) {
      throw new CosignDissentError(ERR_COSIGN_CONSORTIUM_MISMATCH, `consortium ${proposal.consortiumId} is not ours`);
    }
    const result = bundleResultToStruct(proposal.result);
    let recovered: string;
    try {
      recovered = recoverDigestSigner(
        cryptletResultDigest(deps.consortiumId, result),
        proposal.leaderSignature.signature,
      );
    } catch (error) {
      throw new CosignDissentError(ERR_COSIGN_LEADER_SIGNATURE_INVALID, `leader signature: ${describe(error)}`);
    }
    if (recovered !== getAddress(leader.signer)) {
      throw new CosignDissentError(
        ERR_COSIGN_LEADER_SIGNATURE_INVALID,
        `the leader's signature recovers to ${recovered}, not to ${leader.id}'s signer ${getAddress(leader.signer)}`,
      );
    }
    await checkRegistries(result, deps);
    const pkg = await findPackage(proposal, deps);
    const sealed = "sealed" in pkg.manifest.output;
    if (!sealed && proposal.contentKey !== undefined) {
      throw new CosignDissentError(ERR_COSIGN_PROPOSAL_INVALID, "a content key for a public result");
    }
    checkEvidence(proposal);
    await checkEvent(proposal, pkg, deps);
    let rerun: RerunOutcome;
    try {
      rerun = await reexecuteRun(pkg, proposal.evidence, deps.sandbox);
    } catch (error) {
      throw new CosignDissentError(
        ERR_COSIGN_REEXECUTION_FAILED,
        `the re-run of ${pkg.manifest.name}@${pkg.manifest.version} failed: ${describe(error)}`,
      );
    }
    if (!eq(rerun.inputHash, result.inputHash)) {
      throw new CosignDissentError(
        ERR_COSIGN_INPUT_DIFFERS,
        `the re-run's inputHash ${rerun.inputHash} differs from ${result.inputHash}`,
        { inputHash: rerun.inputHash, ...(rerun.outputHash ? { outputHash: rerun.outputHash } : {}) },
      );
    }
    const proposedHash = keccak256(proposal.payload) as Hex32;
    if (!eq(proposedHash, result.outputHash)) {
      throw new CosignDissentError(
        ERR_COSIGN_OUTPUT_DIFFERS,
        `keccak256(payload) ${proposedHash} is not the result's outputHash ${result.outputHash}`,
        { inputHash: rerun.inputHash, ...(rerun.outputHash ? { outputHash: rerun.outputHash } : {}) },
      );
    }
    if (sealed) {
      await checkSealed(proposal, pkg, rerun);
    } else if (
      rerun.outputHash === undefined ||
      rerun.payload === undefined ||
      !eq(rerun.outputHash, result.outputHash) ||
      !eq(rerun.payload, proposal.payload)
    ) {
      throw new CosignDissentError(
        ERR_COSIGN_OUTPUT_DIFFERS,
        `the re-run's outputHash ${rerun.outputHash ?? "(none)"} differs from ${result.outputHash}`,
        { inputHash: rerun.inputHash, ...(rerun.outputHash ? { outputHash: rerun.outputHash } : {}) },
      );
    }
    let signature;
    try {
      [signature] = await signCryptletResult(deps.consortiumId, result, [deps.signer]);
    } catch (error) {
      throw new CosignDissentError(ERR_COSIGN_SIGNING_FAILED, `this member's key did not sign: ${describe(error)}`);
    }
    if (signature === undefined) throw new CosignDissentError(ERR_COSIGN_SIGNING_FAILED, "no signature");
    return { verdict: "agree", member: self, signature };
  } catch (error) {
    if (!(error instanceof CosignDissentError)) throw error;
    return {
      verdict: "dissent",
      member: self,
      code: error.code,
      reason: error.shortMessage,
      ...(error.inputHash ? { inputHash: error.inputHash } : {}),
      ...(error.outputHash ? { outputHash: error.outputHash } : {}),
    };
  }
}
