/**
 * The chaos run's counting, on a real `hardhat node`: a result recorded once and then sent again (the second
 * transaction reverts but is mined), a result accepted and never written, and a relayer transaction that is not
 * a write. The counter must see the loss, the duplicate send and the nonce, from the chain alone.
 */
import { Contract, Wallet, hexlify, randomBytes, type TransactionResponse } from "ethers";

import type { Hex32 } from "../../runtime/attestation/eip712.ts";
import { deployCryptletContracts, interfaceOf, type DeployedContracts } from "../../runtime/chains/contracts.ts";
import { ChainScanner, judgeChain } from "../../runtime/devstack/chaos/chainCount.ts";
import { startLocalChain, type LocalChain } from "../../runtime/devstack/localChain.ts";
import { CONSORTIUM_ID, cryptletIdOf, makeResult, signResult, testWallets } from "../support/contracts.ts";

describe("chaos run: counting from the chain", () => {
  let chain: LocalChain;
  let contracts: DeployedContracts;
  let relayer: Wallet;
  let firstBlock: number;
  const signers = testWallets(3);
  const cryptletId = cryptletIdOf("@chaos/count-test") as Hex32;
  const codeHash = hexlify(randomBytes(32)) as Hex32;

  beforeAll(async () => {
    chain = await startLocalChain(78_001);
    contracts = await deployCryptletContracts(chain.funder, {
      consortiumId: CONSORTIUM_ID,
      signers: signers.map((s) => s.address),
      threshold: 2,
    });
    const registry = new Contract(contracts.registry, interfaceOf("CryptletRegistry"), chain.funder);
    await (await registry.getFunction("approveCodeHash")(cryptletId, codeHash)).wait();
    relayer = new Wallet(Wallet.createRandom().privateKey, chain.provider);
    await chain.fund(relayer.address);
    firstBlock = (await chain.provider.getBlockNumber()) + 1;
  }, 120_000);

  afterAll(async () => {
    await chain?.stop();
  });

  test("sees a lost result, a duplicate send, other relayer transactions and the nonce", async () => {
    const ledger = new Contract(contracts.ledger, interfaceOf("ResultLedger"), relayer);
    const payload = "0x" + "00".repeat(31) + "2a";
    const written = makeResult(cryptletId, hexlify(randomBytes(32)) as Hex32, codeHash, payload);
    const neverWritten = makeResult(cryptletId, hexlify(randomBytes(32)) as Hex32, codeHash, payload);
    const signatures = await signResult(signers.slice(0, 2), written);
    const send = (): Promise<TransactionResponse> =>
      ledger.getFunction("record")(written, payload, signatures, { gasLimit: 1_000_000 });
    await (await send()).wait();
    // The duplicate: mined and reverted by the ledger (ResultLedgerAlreadyRecorded); `hardhat node` answers the
    // send with the revert, and the scan below finds the transaction in its block.
    await expect(send().then((tx) => tx.wait())).rejects.toThrow(/ResultLedgerAlreadyRecorded/);
    await (await relayer.sendTransaction({ to: chain.funder.address, value: 1n })).wait();

    const scanner = new ChainScanner({
      chain: "test",
      rpcUrl: chain.url,
      ledger: contracts.ledger,
      relayer: relayer.address,
      fromBlock: firstBlock,
    });
    await scanner.scan();
    // A second scan reads only new blocks: nothing is counted twice.
    const count = await scanner.scan();
    const verdict = judgeChain(count, [written.resultId, neverWritten.resultId]);
    expect(verdict).toMatchObject({
      accepted: 2,
      recorded: 1,
      lost: [neverWritten.resultId.toLowerCase()],
      writtenTwice: [],
      sentTwice: [written.resultId.toLowerCase()],
      writeTxs: 2,
      revertedWriteTxs: 1,
      unexpected: 0,
      relayerTxs: 3,
      otherRelayerTxs: 1,
      nonceLatest: 3,
      noncePending: 3,
      nonceMismatch: false,
      stuck: false,
    });

    // Once everything is written exactly once, the verdict is clean.
    const clean = judgeChain(count, [written.resultId]);
    expect(clean.lost).toEqual([]);
    expect(clean.recorded).toBe(1);
  }, 120_000);
});
