// Message franking (E2E.md 17, SPEC.md 18.7): the sender commits to what it encrypts, so a
// recipient's report of it can be checked by the server, which reads nothing unreported.
// The server's tag is here too, for the vectors (protocol/vectors/franking.json) only.
import { type Bytes, concat, ctEqual, ctx, randomBytes, u64be } from "../bytes.js";
import { rawEncode } from "../codec.js";
import { CryptoError, hmacSha256 } from "../crypto.js";

/** A franked message whose key does not open the commitment delivered with it: never shown as
 * its sender's words (E2E.md 17). */
export class BadCommitment extends CryptoError {}

export const KEY_BYTES = 32;

/** What a franked message commits to: msgpack `{"kind": str, "body": bin}`, in this order. */
export function franked(kind: string, body: Bytes): Bytes {
  return rawEncode({ kind, body });
}

/** A fresh franking key: one per message, never reused. */
export function newKey(): Bytes {
  return randomBytes(KEY_BYTES);
}

/** The commitment `fc` the sender puts in `send`, beside the ciphertext holding `fk`. */
export function commit(fk: Bytes, plaintext: Bytes): Promise<Bytes> {
  if (fk.length !== KEY_BYTES) throw new RangeError(`a franking key is ${KEY_BYTES} bytes`);
  return hmacSha256(fk, ctx("chatd.franking.commit.v1", plaintext));
}

/** Whether (`plaintext`, `fk`) opens `fc`: a receiver's check before it trusts a report to hold. */
export async function opens(fc: Bytes, fk: Bytes, plaintext: Bytes): Promise<boolean> {
  if (fk.length !== KEY_BYTES || fc.length !== 32) return false;
  return ctEqual(await commit(fk, plaintext), fc);
}

/** The server's tag binding `fc` to sender, conversation, seq and time (the server's secret). */
export function tag(secret: Bytes, fc: Bytes, sender: number, conv: number, seq: number, ts: number): Promise<Bytes> {
  return hmacSha256(secret, ctx("chatd.franking.tag.v1", concat(fc, u64be(sender), u64be(conv), u64be(seq), u64be(ts))));
}
