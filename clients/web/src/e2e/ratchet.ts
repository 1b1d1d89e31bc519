// The Double Ratchet (E2E.md 5). States are plain values; every function returns a new one and
// leaves its input untouched, so a failed decryption changes nothing.
import { type Bytes, concat, ctEqual, readU32, u32be, utf8 } from "../bytes.js";
import * as C from "../crypto.js";

const INFO_RK = utf8("chatd-e2e-ratchet-root-v1");
const INFO_MSG = utf8("chatd-e2e-ratchet-message-v1");
export const MAX_SKIP = 1000;
export const MAX_SKIPPED_KEYS = 2000;
const HEADER_BYTES = 41;

export interface Skipped {
  dh: Bytes;
  n: number;
  mk: Bytes;
}

export interface RatchetState {
  ad: Bytes;
  rk: Bytes;
  dhs: C.XKeyPair;
  dhr: Bytes | null;
  cks: Bytes | null;
  ckr: Bytes | null;
  ns: number;
  nr: number;
  pn: number;
  skipped: Skipped[];
}

async function kdfRk(rk: Bytes, dhOut: Bytes): Promise<[Bytes, Bytes]> {
  const out = await C.hkdf(dhOut, rk, INFO_RK, 64);
  return [out.slice(0, 32), out.slice(32)];
}

/** [next chain key, message key] */
export async function kdfCk(ck: Bytes): Promise<[Bytes, Bytes]> {
  const [next, mk] = await C.hmacSha256Many(ck, [new Uint8Array([2]), new Uint8Array([1])]);
  return [next!, mk!];
}

async function cipher(mk: Bytes, info: Bytes): Promise<[Bytes, Bytes]> {
  const out = await C.hkdf(mk, new Uint8Array(32), info, 44);
  return [out.slice(0, 32), out.slice(32)];
}

export async function initInitiator(sk: Bytes, remote: Bytes, ad: Bytes, dh?: C.XKeyPair): Promise<RatchetState> {
  const dhs = dh ?? (await C.x25519Generate());
  const [rk, cks] = await kdfRk(sk, await C.x25519(dhs.privateKey, remote));
  return { ad, rk, dhs, dhr: remote, cks, ckr: null, ns: 0, nr: 0, pn: 0, skipped: [] };
}

export function initResponder(sk: Bytes, spk: C.XKeyPair, ad: Bytes): RatchetState {
  return { ad, rk: sk, dhs: spk, dhr: null, cks: null, ckr: null, ns: 0, nr: 0, pn: 0, skipped: [] };
}

export async function encrypt(s: RatchetState, plaintext: Bytes): Promise<[Bytes, RatchetState]> {
  if (!s.cks) throw new C.CryptoError("no sending chain yet: the responder must receive a message first");
  if (s.ns >= 0xffffffff) throw new C.CryptoError("sending chain exhausted");
  const [cks, mk] = await kdfCk(s.cks);
  const header = concat(new Uint8Array([1]), s.dhs.publicKey, u32be(s.pn), u32be(s.ns));
  const [key, nonce] = await cipher(mk, INFO_MSG);
  const ct = await C.aesGcmEncrypt(key, nonce, plaintext, concat(s.ad, header));
  return [concat(header, ct), { ...s, cks, ns: s.ns + 1 }];
}

async function skip(s: RatchetState, until: number): Promise<RatchetState> {
  if (!s.ckr || until <= s.nr) return s;
  if (until - s.nr > MAX_SKIP) throw new C.DecryptError(`more than ${MAX_SKIP} skipped messages`);
  let ckr = s.ckr;
  const added: Skipped[] = [];
  for (let n = s.nr; n < until; n++) {
    const [next, mk] = await kdfCk(ckr);
    ckr = next;
    added.push({ dh: s.dhr!, n, mk });
  }
  return { ...s, ckr, nr: until, skipped: [...s.skipped, ...added].slice(-MAX_SKIPPED_KEYS) };
}

export async function decrypt(s: RatchetState, message: Bytes, dh?: C.XKeyPair): Promise<[Bytes, RatchetState]> {
  if (message.length < HEADER_BYTES) throw new C.DecryptError("truncated ratchet header");
  if (message[0] !== 1) throw new C.DecryptError("unknown ratchet message version");
  const hdh = message.slice(1, 33);
  const pn = readU32(message, 33);
  const n = readU32(message, 37);
  const aad = concat(s.ad, message.subarray(0, HEADER_BYTES));
  const ct = message.subarray(HEADER_BYTES);
  for (let i = 0; i < s.skipped.length; i++) {
    const sk = s.skipped[i]!;
    if (sk.n === n && ctEqual(sk.dh, hdh)) {
      const [key, nonce] = await cipher(sk.mk, INFO_MSG);
      const pt = await C.aesGcmDecrypt(key, nonce, ct, aad);
      return [pt, { ...s, skipped: s.skipped.filter((_, j) => j !== i) }];
    }
  }
  let t = s;
  try {
    if (!t.dhr || !ctEqual(hdh, t.dhr)) {
      t = await skip(t, pn);
      const [rk1, ckr] = await kdfRk(t.rk, await C.x25519(t.dhs.privateKey, hdh));
      const dhs = dh ?? (await C.x25519Generate());
      const [rk, cks] = await kdfRk(rk1, await C.x25519(dhs.privateKey, hdh));
      t = { ...t, pn: t.ns, ns: 0, nr: 0, dhr: hdh, rk, ckr, dhs, cks };
    } else if (n < t.nr) {
      throw new C.ReplayError("message key already used (or dropped)");
    }
    t = await skip(t, n);
  } catch (e) {
    if (e instanceof C.DecryptError) throw e;
    throw new C.DecryptError(`bad ratchet key: ${(e as Error).message}`);
  }
  const [ckr, mk] = await kdfCk(t.ckr!);
  const [key, nonce] = await cipher(mk, INFO_MSG);
  const pt = await C.aesGcmDecrypt(key, nonce, ct, aad);
  return [pt, { ...t, ckr, nr: n + 1 }];
}
