// Signed payment payloads and receipt verification (SPEC.md 15.2, 15.7).
import { type Bytes, concat, ctEqual, ctx, u16be, utf8 } from "./bytes.js";
import { rawEncode } from "./codec.js";
import * as C from "./crypto.js";

export interface TransferIntent {
  transfer_id: string; from: number; to: number; amount: number; currency: string; conv: number;
  memo_hash: Bytes; expires_at: number; request_id?: string;
}
export interface RedPacketIntent {
  packet_id: string; from: number; conv: number; total: number; currency: string; shares: number;
  split: string; memo_hash: Bytes; expires_at: number;
}

export const NO_MEMO = new Uint8Array(32);

export function transferPayload(server: string, i: TransferIntent): Bytes {
  return concat(ctx("chatd-transfer-v2"), rawEncode([server, i.transfer_id, i.from, i.to, i.amount, i.currency, i.conv, i.memo_hash, i.expires_at, i.request_id ?? ""]));
}

export function redPacketPayload(server: string, i: RedPacketIntent): Bytes {
  return concat(ctx("chatd-red-packet-v2"), rawEncode([server, i.packet_id, i.from, i.conv, i.total, i.currency, i.shares, i.split, i.memo_hash, i.expires_at]));
}

export async function memoHash(transferId: string, memo: string, nonce: Bytes): Promise<Bytes> {
  if (!memo) return NO_MEMO;
  const parts = [utf8(transferId), nonce, utf8(memo)];
  return C.sha256(concat(ctx("chatd-memo-v1"), ...parts.flatMap((p) => [u16be(p.length), p])));
}

// biome-ignore lint: receipt content map
export type Receipt = Record<string, any>;

export function receiptPayload(server: string, r: Receipt): Bytes {
  return concat(
    ctx("chatd-receipt-v1"),
    rawEncode([server, r.type, r.ref, r.from, r.to, r.amount, r.currency, r.conv, r.request_id ?? "", r.intent_hash ?? new Uint8Array(0), r.posted_at, r.expires_at ?? 0, r.shares ?? 0, r.actor ?? 0]),
  );
}

/** The payer's intent a transfer / red-packet receipt repeats (null for other types). */
export function receiptIntentPayload(server: string, r: Receipt): Bytes | null {
  if (r.type === "transfer")
    return transferPayload(server, { transfer_id: r.ref, from: r.from, to: r.to, amount: r.amount, currency: r.currency, conv: r.conv, memo_hash: r.memo_hash, expires_at: r.intent_expires_at, request_id: r.request_id ?? "" });
  if (r.type === "red_packet")
    return redPacketPayload(server, { packet_id: r.ref, from: r.from, conv: r.conv, total: r.amount, currency: r.currency, shares: r.shares, split: r.split, memo_hash: r.memo_hash, expires_at: r.intent_expires_at });
  return null;
}

/**
 * SPEC.md 15.7: the server's signature under the pinned payment key, the conversation, and for
 * transfers and red packets the intent hash and the payer's own signature (`payerKey`: the
 * signing key of device `r.device` in the payer's verified device list). Throws SignatureError.
 */
export async function verifyReceipt(server: string, serverKey: Bytes, r: Receipt, conv: number, payerKey?: Bytes): Promise<void> {
  if (r.conv !== conv) throw new C.SignatureError("receipt of another conversation");
  await C.mustVerify(serverKey, r.sig, receiptPayload(server, r), "receipt signature");
  const intent = receiptIntentPayload(server, r);
  if (!intent) return;
  if (r.type === "red_packet" && !["random", "equal"].includes(r.split)) throw new C.SignatureError("a red packet receipt without its split");
  if (!ctEqual(await C.sha256(intent), r.intent_hash)) throw new C.SignatureError("intent hash does not match the receipt");
  if (payerKey) await C.mustVerify(payerKey, r.payer_sig, intent, "payer's signature");
}
