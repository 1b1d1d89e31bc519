// PQXDH / X3DH key agreement (E2E.md 4).
import { type Bytes, concat, ctEqual, ctx, readU32, u32be, utf8 } from "../bytes.js";
import * as C from "../crypto.js";

const INFO_PQXDH = utf8("chatd-e2e-pqxdh-v1 CURVE25519 SHA-256 ML-KEM-768");
const INFO_X3DH = utf8("chatd-e2e-x3dh-v1 CURVE25519 SHA-256");
const F = new Uint8Array(32).fill(0xff);

export const identityPayload = (signingKey: Bytes, ik: Bytes) => ctx("chatd-e2e-identity-v1", signingKey, ik);
export const spkPayload = (kid: number, key: Bytes) => ctx("chatd-e2e-signed-prekey-v1", u32be(kid), key);
export const pqPayload = (kid: number, key: Bytes) => ctx("chatd-e2e-pq-prekey-v1", u32be(kid), key);

export interface SignedPrekey { kid: number; key: Bytes; sig: Bytes }
export interface OneTimePrekey { kid: number; key: Bytes }
export interface Bundle {
  signing_key: Bytes;
  identity_key: Bytes;
  identity_sig: Bytes;
  signed_prekey: SignedPrekey;
  pq_prekey?: SignedPrekey | null;
  one_time?: OneTimePrekey | null;
}

export interface Identity {
  signing: C.SigningKey;
  ik: C.XKeyPair;
  identity_sig: Bytes;
}
export interface XPrekey { kid: number; pair: C.XKeyPair; sig: Bytes }
export interface PQPrekey { kid: number; seed: Bytes; public: Bytes; sig: Bytes }
export interface PreKeyState {
  identity: Identity;
  spk: XPrekey;
  prevSpk: XPrekey | null;
  pq: PQPrekey | null;
  prevPq: PQPrekey | null;
  oneTime: XPrekey[];
  nextKid: number;
}

export async function newIdentity(signing: C.SigningKey, ik?: C.XKeyPair): Promise<Identity> {
  const pair = ik ?? (await C.x25519Generate());
  return { signing, ik: pair, identity_sig: await C.sign(signing, identityPayload(signing.publicKey, pair.publicKey)) };
}

export async function newSignedPrekey(id: Identity, kid: number, pair?: C.XKeyPair): Promise<XPrekey> {
  const p = pair ?? (await C.x25519Generate());
  return { kid, pair: p, sig: await C.sign(id.signing, spkPayload(kid, p.publicKey)) };
}

export async function newPqPrekey(id: Identity, kid: number, seed?: Bytes): Promise<PQPrekey> {
  const s = seed ?? C.randomSeed(64);
  const pub = C.mlkemPublic(s);
  return { kid, seed: s, public: pub, sig: await C.sign(id.signing, pqPayload(kid, pub)) };
}

/** A device's key-agreement state: SPK kid 1, PQ prekey kid 2, one-time prekeys from kid 3. */
export async function newDevice(signing: C.SigningKey, oneTime = 100): Promise<PreKeyState> {
  const identity = await newIdentity(signing);
  let state: PreKeyState = {
    identity,
    spk: await newSignedPrekey(identity, 1),
    prevSpk: null,
    pq: await newPqPrekey(identity, 2),
    prevPq: null,
    oneTime: [],
    nextKid: 3,
  };
  [state] = await addOneTime(state, oneTime);
  return state;
}

export async function addOneTime(s: PreKeyState, count: number): Promise<[PreKeyState, OneTimePrekey[]]> {
  const added: XPrekey[] = [];
  let kid = s.nextKid;
  for (let i = 0; i < count; i++) added.push({ kid: kid++, pair: await C.x25519Generate(), sig: new Uint8Array(0) });
  return [{ ...s, oneTime: [...s.oneTime, ...added], nextKid: kid }, added.map((k) => ({ kid: k.kid, key: k.pair.publicKey }))];
}

export async function verifyIdentity(signingKey: Bytes, ik: Bytes, sig: Bytes): Promise<void> {
  try {
    C.checkX25519Public(ik);
  } catch (e) {
    throw new C.UntrustedKeyError(`identity key does not verify: ${(e as Error).message}`);
  }
  if (!(await C.verify(signingKey, sig, identityPayload(signingKey, ik)))) throw new C.UntrustedKeyError("identity key does not verify");
}

export async function verifyBundle(b: Bundle, expectedSigningKey?: Bytes): Promise<void> {
  if (expectedSigningKey && !ctEqual(b.signing_key, expectedSigningKey)) throw new C.UntrustedKeyError("bundle signing key is not the device's expected key");
  await verifyIdentity(b.signing_key, b.identity_key, b.identity_sig);
  try {
    C.checkX25519Public(b.signed_prekey.key);
    if (b.one_time) C.checkX25519Public(b.one_time.key);
  } catch (e) {
    throw new C.UntrustedKeyError(`bundle does not verify: ${(e as Error).message}`);
  }
  if (!(await C.verify(b.signing_key, b.signed_prekey.sig, spkPayload(b.signed_prekey.kid, b.signed_prekey.key)))) throw new C.UntrustedKeyError("bundle does not verify: signed prekey");
  if (b.pq_prekey) {
    if (b.pq_prekey.key.length !== C.MLKEM_PUBLIC_BYTES) throw new C.UntrustedKeyError("an ML-KEM-768 public key is 1184 bytes");
    if (!(await C.verify(b.signing_key, b.pq_prekey.sig, pqPayload(b.pq_prekey.kid, b.pq_prekey.key)))) throw new C.UntrustedKeyError("bundle does not verify: PQ prekey");
  }
}

export interface Header {
  kind: "pqxdh" | "x3dh";
  signing_key: Bytes;
  identity_key: Bytes;
  identity_sig: Bytes;
  ephemeral_key: Bytes;
  spk_id: number;
  otk_id: number | null;
  pq_id: number | null;
  pq_ciphertext: Bytes | null;
}

export interface Agreement { sk: Bytes; header: Header; ad: Bytes; remoteSpk: Bytes }

async function kdf(dhs: Bytes[], kem: Bytes | null): Promise<Bytes> {
  return C.hkdf(concat(F, ...dhs, kem ?? new Uint8Array(0)), new Uint8Array(32), kem ? INFO_PQXDH : INFO_X3DH, 32);
}

export const associatedData = (aSign: Bytes, aIk: Bytes, bSign: Bytes, bIk: Bytes) => concat(aSign, aIk, bSign, bIk);

export async function initiate(
  id: Identity,
  b: Bundle,
  opts: { expectedSigningKey?: Bytes; requirePq?: boolean; ephemeral?: C.XKeyPair; encapsulate?: (pk: Bytes) => { ciphertext: Bytes; secret: Bytes } } = {},
): Promise<Agreement> {
  await verifyBundle(b, opts.expectedSigningKey);
  const usePq = !!b.pq_prekey;
  if (opts.requirePq && !usePq) throw new C.UntrustedKeyError("PQXDH required but the bundle has no PQ prekey");
  const ek = opts.ephemeral ?? (await C.x25519Generate());
  const spk = b.signed_prekey.key;
  const dhs = [await C.x25519(id.ik.privateKey, spk), await C.x25519(ek.privateKey, b.identity_key), await C.x25519(ek.privateKey, spk)];
  if (b.one_time) dhs.push(await C.x25519(ek.privateKey, b.one_time.key));
  let kem: { ciphertext: Bytes; secret: Bytes } | null = null;
  if (usePq) kem = (opts.encapsulate ?? C.mlkemEncapsulate)(b.pq_prekey!.key);
  const header: Header = {
    kind: usePq ? "pqxdh" : "x3dh",
    signing_key: id.signing.publicKey,
    identity_key: id.ik.publicKey,
    identity_sig: id.identity_sig,
    ephemeral_key: ek.publicKey,
    spk_id: b.signed_prekey.kid,
    otk_id: b.one_time ? b.one_time.kid : null,
    pq_id: usePq ? b.pq_prekey!.kid : null,
    pq_ciphertext: kem ? kem.ciphertext : null,
  };
  return {
    sk: await kdf(dhs, kem ? kem.secret : null),
    header,
    ad: associatedData(id.signing.publicKey, id.ik.publicKey, b.signing_key, b.identity_key),
    remoteSpk: spk,
  };
}

export interface Response { sk: Bytes; ad: Bytes; spk: XPrekey; prekeys: PreKeyState }

export async function respond(s: PreKeyState, h: Header, requirePq = false): Promise<Response> {
  await verifyIdentity(h.signing_key, h.identity_key, h.identity_sig);
  if (requirePq && h.kind !== "pqxdh") throw new C.UntrustedKeyError("PQXDH required");
  const spk = [s.spk, s.prevSpk].find((k) => k && k.kid === h.spk_id);
  if (!spk) throw new C.DecryptError("unknown signed prekey id");
  let dhs: Bytes[];
  try {
    dhs = [
      await C.x25519(spk.pair.privateKey, h.identity_key),
      await C.x25519(s.identity.ik.privateKey, h.ephemeral_key),
      await C.x25519(spk.pair.privateKey, h.ephemeral_key),
    ];
  } catch (e) {
    throw new C.DecryptError(`bad ephemeral key: ${(e as Error).message}`);
  }
  let oneTime = s.oneTime;
  if (h.otk_id !== null) {
    const otk = oneTime.find((k) => k.kid === h.otk_id);
    if (!otk) throw new C.DecryptError("unknown or already used one-time prekey");
    dhs.push(await C.x25519(otk.pair.privateKey, h.ephemeral_key));
    oneTime = oneTime.filter((k) => k.kid !== h.otk_id);
  }
  let kem: Bytes | null = null;
  if (h.kind === "pqxdh") {
    const pq = [s.pq, s.prevPq].find((k) => k && k.kid === h.pq_id);
    if (!pq || !h.pq_ciphertext) throw new C.DecryptError("unknown PQ prekey id");
    kem = C.mlkemDecapsulate(pq.seed, h.pq_ciphertext);
  }
  return {
    sk: await kdf(dhs, kem),
    ad: associatedData(h.signing_key, h.identity_key, s.identity.signing.publicKey, s.identity.ik.publicKey),
    spk,
    prekeys: { ...s, oneTime },
  };
}

export function encodeHeader(h: Header): Bytes {
  const flags = (h.otk_id !== null ? 1 : 0) | (h.kind === "pqxdh" ? 2 : 0);
  const parts = [new Uint8Array([1, flags]), h.signing_key, h.identity_key, h.identity_sig, h.ephemeral_key, u32be(h.spk_id)];
  if (h.otk_id !== null) parts.push(u32be(h.otk_id));
  if (h.kind === "pqxdh") parts.push(u32be(h.pq_id!), h.pq_ciphertext!);
  return concat(...parts);
}

export function decodeHeader(d: Bytes): [Header, Bytes] {
  if (d.length < 166) throw new C.DecryptError("truncated X3DH header");
  const flags = d[1]!;
  if (d[0] !== 1 || flags & ~3) throw new C.DecryptError("unknown X3DH header version or flags");
  let pos = 166;
  let otk: number | null = null;
  if (flags & 1) {
    if (d.length < pos + 4) throw new C.DecryptError("truncated X3DH header");
    otk = readU32(d, pos);
    pos += 4;
  }
  let pqId: number | null = null;
  let ct: Bytes | null = null;
  if (flags & 2) {
    if (d.length < pos + 4 + C.MLKEM_CT_BYTES) throw new C.DecryptError("truncated X3DH header");
    pqId = readU32(d, pos);
    ct = d.slice(pos + 4, pos + 4 + C.MLKEM_CT_BYTES);
    pos += 4 + C.MLKEM_CT_BYTES;
  }
  const h: Header = {
    kind: flags & 2 ? "pqxdh" : "x3dh",
    signing_key: d.slice(2, 34),
    identity_key: d.slice(34, 66),
    identity_sig: d.slice(66, 130),
    ephemeral_key: d.slice(130, 162),
    spk_id: readU32(d, 162),
    otk_id: otk,
    pq_id: pqId,
    pq_ciphertext: ct,
  };
  return [h, d.slice(pos)];
}
