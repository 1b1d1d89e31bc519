// Signed payloads of SPEC.md 6.2.
import { type Bytes, concat, ctx, u16be, u64be, utf8 } from "../bytes.js";

export function loginPayload(server: string, nonce: Bytes, deviceKey: Bytes): Bytes {
  const s = utf8(server);
  return ctx("chatd-login-v1", u16be(s.length), s, u16be(32), nonce, u16be(32), deviceKey);
}

export function deviceApprovalPayload(server: string, account: number, deviceKey: Bytes): Bytes {
  const s = utf8(server);
  return concat(ctx("chatd-device-approval-v1", u16be(s.length), s, u64be(account)), u16be(32), deviceKey);
}

export function botApprovalPayload(server: string, handle: string, deviceKey: Bytes): Bytes {
  const s = utf8(server);
  const h = utf8(handle);
  return ctx("chatd-bot-approval-v1", u16be(s.length), s, u16be(h.length), h, u16be(32), deviceKey);
}
