// To-device messages (E2E.md 6): NORMAL = 0x01 || ratchet message; PREKEY = 0x02 || X3DH header || ratchet message.
import { type Bytes, concat, ctEqual } from "../bytes.js";
import * as C from "../crypto.js";
import * as R from "./ratchet.js";
import * as X from "./x3dh.js";

export interface Session {
  ratchet: R.RatchetState;
  kind: "pqxdh" | "x3dh";
  remoteSigningKey: Bytes;
  remoteIdentityKey: Bytes;
  baseKey: Bytes;
  headerHash: Bytes;
  pendingHeader: Bytes | null;
}

export async function startSession(id: X.Identity, b: X.Bundle, opts: Parameters<typeof X.initiate>[2] & { ratchet?: C.XKeyPair } = {}): Promise<Session> {
  const ag = await X.initiate(id, b, opts);
  const header = X.encodeHeader(ag.header);
  return {
    ratchet: await R.initInitiator(ag.sk, ag.remoteSpk, ag.ad, opts.ratchet),
    kind: ag.header.kind,
    remoteSigningKey: b.signing_key,
    remoteIdentityKey: b.identity_key,
    baseKey: ag.header.ephemeral_key,
    headerHash: await C.sha256(header),
    pendingHeader: header,
  };
}

export async function encrypt(s: Session, plaintext: Bytes): Promise<[Bytes, Session]> {
  const [body, ratchet] = await R.encrypt(s.ratchet, plaintext);
  const next = { ...s, ratchet };
  if (s.pendingHeader) return [concat(new Uint8Array([2]), s.pendingHeader, body), next];
  return [concat(new Uint8Array([1]), body), next];
}

export const matches = (s: Session, signingKey: Bytes, identityKey: Bytes) =>
  ctEqual(s.remoteSigningKey, signingKey) && ctEqual(s.remoteIdentityKey, identityKey);

export interface Decrypted { plaintext: Bytes; session: Session; prekeys: X.PreKeyState }

export async function decrypt(
  session: Session | null,
  prekeys: X.PreKeyState,
  message: Bytes,
  o: { expectedSigningKey?: Bytes; expectedIdentityKey?: Bytes; previous?: Session[]; seenBaseKeys?: Bytes[]; requirePq?: boolean; ratchet?: C.XKeyPair } = {},
): Promise<Decrypted> {
  const type = message[0];
  if (type === 1) {
    if (!session) throw new C.DecryptError("NORMAL message without a session");
    const [pt, ratchet] = await R.decrypt(session.ratchet, message.subarray(1), o.ratchet);
    return { plaintext: pt, session: { ...session, ratchet, pendingHeader: null }, prekeys };
  }
  if (type !== 2) throw new C.DecryptError("unknown to-device message type");
  const [h, body] = X.decodeHeader(message.subarray(1));
  const headerHash = await C.sha256(message.subarray(1, message.length - body.length));
  if (o.expectedSigningKey && !ctEqual(h.signing_key, o.expectedSigningKey)) throw new C.UntrustedKeyError("PREKEY message from an unexpected signing key");
  if (o.expectedIdentityKey && !ctEqual(h.identity_key, o.expectedIdentityKey)) throw new C.UntrustedKeyError("PREKEY message from an unexpected identity key");
  for (const known of [session, ...(o.previous ?? [])]) {
    if (known && ctEqual(known.baseKey, h.ephemeral_key)) {
      if (!ctEqual(known.headerHash, headerHash)) throw new C.DecryptError("PREKEY message does not match its session");
      const [pt, ratchet] = await R.decrypt(known.ratchet, body, o.ratchet);
      return { plaintext: pt, session: { ...known, ratchet }, prekeys };
    }
  }
  if ((o.seenBaseKeys ?? []).some((k) => ctEqual(k, h.ephemeral_key))) throw new C.ReplayError("PREKEY message of a session started before (a replay)");
  const resp = await X.respond(prekeys, h, o.requirePq);
  const st = R.initResponder(resp.sk, resp.spk.pair, resp.ad);
  const [pt, ratchet] = await R.decrypt(st, body, o.ratchet);
  return {
    plaintext: pt,
    session: { ratchet, kind: h.kind, remoteSigningKey: h.signing_key, remoteIdentityKey: h.identity_key, baseKey: h.ephemeral_key, headerHash, pendingHeader: null },
    prekeys: resp.prekeys,
  };
}
