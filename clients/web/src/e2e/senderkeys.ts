// Sender keys (E2E.md 7): one encryption per conversation message, for every member device.
import { type Bytes, concat, ctx, readU32, u32be, u64be, utf8 } from "../bytes.js";
import * as C from "../crypto.js";

const INFO = utf8("chatd-e2e-sender-key-message-v1");
export const MAX_SKIP = 2000;
export const MAX_SKIPPED_KEYS = 2000;

export interface SenderKey {
  conv: number;
  keyId: number;
  chainKey: Bytes;
  iteration: number;
  signing: C.SigningKey;
}

export interface Distribution { conv: number; key_id: number; iteration: number; chain_key: Bytes; signing_key: Bytes }

export interface ReceiverState {
  conv: number;
  account: number;
  device: number;
  keyId: number;
  signingKey: Bytes;
  chainKey: Bytes;
  iteration: number;
  first: number;
  skipped: { iteration: number; mk: Bytes }[];
}

export async function newSenderKey(conv: number): Promise<SenderKey> {
  return { conv, keyId: readU32(C.randomSeed(4), 0), chainKey: C.randomSeed(32), iteration: 0, signing: await C.ed25519Generate() };
}

export function distribution(k: SenderKey): Distribution {
  return { conv: k.conv, key_id: k.keyId, iteration: k.iteration, chain_key: k.chainKey, signing_key: k.signing.publicKey };
}

export async function receiver(d: Distribution, account: number, device: number): Promise<ReceiverState> {
  if (d.chain_key.length !== 32 || !(await C.isValidEd25519(d.signing_key))) throw new C.CryptoError("malformed sender key distribution");
  return { conv: d.conv, account, device, keyId: d.key_id, signingKey: d.signing_key, chainKey: d.chain_key, iteration: d.iteration, first: d.iteration, skipped: [] };
}

const binding = (conv: number, a: number, d: number) => concat(u64be(conv), u64be(a), u64be(d));
const TWO = new Uint8Array([2]);
const ONE = new Uint8Array([1]);
const step = async (ck: Bytes): Promise<[Bytes, Bytes]> => {
  const [next, mk] = await C.hmacSha256Many(ck, [TWO, ONE]);
  return [next!, mk!];
};
async function cipher(mk: Bytes): Promise<[Bytes, Bytes]> {
  const out = await C.hkdf(mk, new Uint8Array(32), INFO, 44);
  return [out.slice(0, 32), out.slice(32)];
}

export async function encrypt(k: SenderKey, plaintext: Bytes, account: number, device: number): Promise<[Bytes, SenderKey]> {
  if (k.iteration > 0xffffffff) throw new C.CryptoError("sender key exhausted: rotate");
  const [chain, mk] = await step(k.chainKey);
  const head = concat(new Uint8Array([1]), u32be(k.keyId), u32be(k.iteration));
  const b = binding(k.conv, account, device);
  const [key, nonce] = await cipher(mk);
  const ct = await C.aesGcmEncrypt(key, nonce, plaintext, ctx("chatd-e2e-sender-key-v1", b, head));
  const signed = concat(head, ct);
  const sig = await C.sign(k.signing, ctx("chatd-e2e-sender-key-sig-v1", b, signed));
  return [concat(signed, sig), { ...k, chainKey: chain, iteration: k.iteration + 1 }];
}

export function keyIdOf(m: Bytes): number {
  if (m.length < 9 + 16 + 64) throw new C.DecryptError("truncated sender-key message");
  if (m[0] !== 1) throw new C.DecryptError("unknown sender-key message version");
  return readU32(m, 1);
}

export const iterationOf = (m: Bytes) => (keyIdOf(m), readU32(m, 5));

export async function decrypt(s: ReceiverState, m: Bytes): Promise<[Bytes, ReceiverState]> {
  if (keyIdOf(m) !== s.keyId) throw new C.DecryptError("no sender key with this key id");
  const signed = m.subarray(0, m.length - 64);
  const sig = m.subarray(m.length - 64);
  const b = binding(s.conv, s.account, s.device);
  if (!(await C.verify(s.signingKey, sig, ctx("chatd-e2e-sender-key-sig-v1", b, signed)))) throw new C.DecryptError("sender-key message signature does not verify");
  const iteration = readU32(signed, 5);
  const head = signed.subarray(0, 9);
  const ct = signed.subarray(9);
  const aad = ctx("chatd-e2e-sender-key-v1", b, head);
  if (iteration < s.iteration) {
    const i = s.skipped.findIndex((k) => k.iteration === iteration);
    if (i >= 0) {
      const [key, nonce] = await cipher(s.skipped[i]!.mk);
      const pt = await C.aesGcmDecrypt(key, nonce, ct, aad);
      return [pt, { ...s, skipped: s.skipped.filter((_, j) => j !== i) }];
    }
    if (iteration < s.first) throw new C.DecryptError("message older than the sender key this device received");
    throw new C.ReplayError("sender-key message key already used (or dropped)");
  }
  if (iteration - s.iteration > MAX_SKIP) throw new C.DecryptError(`more than ${MAX_SKIP} skipped sender-key iterations`);
  let chain = s.chainKey;
  const added: { iteration: number; mk: Bytes }[] = [];
  for (let i = s.iteration; i < iteration; i++) {
    const [next, mk] = await step(chain);
    chain = next;
    added.push({ iteration: i, mk });
  }
  const [next, mk] = await step(chain);
  const [key, nonce] = await cipher(mk);
  const pt = await C.aesGcmDecrypt(key, nonce, ct, aad);
  return [pt, { ...s, chainKey: next, iteration: iteration + 1, skipped: [...s.skipped, ...added].slice(-MAX_SKIPPED_KEYS) }];
}
