import assert from "node:assert/strict";
import { test } from "node:test";
import { hex, unhex } from "../src/bytes.js";
import * as A from "../src/attachment.js";
import { ProtocolError } from "../src/codec.js";
import * as C from "../src/crypto.js";
import { decodeContent } from "../src/kinds.js";
import { formatAmount, parseAmount } from "../src/money.js";
import * as PAY from "../src/payments.js";
import { fromJson, load } from "./util.js";

const v = load("payments.json");

test("payments.json: amounts parse and format; refused amounts are refused", () => {
  for (const a of v.amounts) {
    assert.equal(parseAmount(a.text, a.currency), a.minor, a.text);
    assert.equal(formatAmount(a.minor, a.currency), a.formatted);
  }
  for (const a of v.refused_amounts) assert.throws(() => parseAmount(a.text, a.currency), (e: unknown) => e instanceof ProtocolError && e.code === a.code, `${a.text} ${a.currency}`);
});

test("payments.json: intent payloads, hashes and signatures; memo hashes", async () => {
  for (const i of v.intents) {
    const intent = fromJson(i.intent) as PAY.TransferIntent & PAY.RedPacketIntent;
    const p = i.type === "transfer" ? PAY.transferPayload(i.server, intent) : PAY.redPacketPayload(i.server, intent);
    assert.equal(hex(p), i.payload, i.name);
    assert.equal(hex(await C.sha256(p)), i.intent_hash, i.name);
    assert.equal(hex(await C.sign(await C.ed25519FromSeed(unhex(i.seed)), p)), i.signature, i.name);
  }
  for (const m of v.memo_hashes) assert.equal(hex(await PAY.memoHash(m.transfer_id, m.memo, unhex(m.nonce))), m.memo_hash, m.name);
});

test("payments.json: receipts verify under the server key; a changed one does not", async () => {
  const serverKey = unhex(v.server_key);
  assert.equal(hex((await C.ed25519FromSeed(unhex(v.server_seed))).publicKey), v.server_key);
  const payer = unhex(v.intents[0].public_key);
  for (const r of v.receipts) {
    const receipt = decodeContent("payment.receipt", unhex(r.body));
    assert.equal(hex(PAY.receiptPayload(r.server, receipt)), r.payload, r.name);
    await PAY.verifyReceipt(r.server, serverKey, receipt, receipt.conv as number, payer);
    await assert.rejects(PAY.verifyReceipt(r.server, serverKey, { ...receipt, amount: (receipt.amount as number) + 1 }, receipt.conv as number, payer), C.SignatureError);
    await assert.rejects(PAY.verifyReceipt("elsewhere", serverKey, receipt, receipt.conv as number, payer), C.SignatureError);
  }
});

test("attachment.json: file key, nonces, Padmé, and every case's ciphertext and digest", async () => {
  const a = load("e2e/attachment.json");
  const key = unhex(a.key);
  assert.equal(hex(await A.fileKey(key)), a.file_key);
  assert.equal(hex(A.nonce(0, false)), a.nonces["0_not_final"]);
  assert.equal(hex(A.nonce(1, true)), a.nonces["1_final"]);
  for (const [L, p] of Object.entries(a.padme)) assert.equal(A.padme(Number(L)), p, `padme(${L})`);
  for (const c of a.cases) {
    const data = new Uint8Array(c.size);
    for (let i = 0; i < c.size; i++) data[i] = (i * 31 + 7) % 256;
    const { blob, digest, ciphertextSize } = await A.encrypt(key, data);
    assert.equal(ciphertextSize, c.ciphertext_size);
    assert.equal(blob.length, c.padded_size);
    assert.equal(hex(digest), c.digest, `size ${c.size}`);
    if (c.ciphertext) assert.equal(hex(blob.subarray(0, ciphertextSize)), c.ciphertext);
    if (c.first_chunk_sha256) assert.equal(hex(await C.sha256(blob.subarray(0, Math.min(65552, ciphertextSize)))), c.first_chunk_sha256);
    assert.deepEqual(await A.decrypt(key, blob, c.size, digest), data);
  }
});
