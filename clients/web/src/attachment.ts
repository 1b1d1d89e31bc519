// Attachments (E2E.md 14): age's STREAM over 64 KiB chunks, Padmé-padded blobs.
import { type Bytes, concat, ctEqual, utf8 } from "./bytes.js";
import * as C from "./crypto.js";

export const CHUNK = 65536;

export const fileKey = (key: Bytes) => C.hkdf(key, new Uint8Array(32), utf8("chatd-e2e-attachment-v1"), 32);

export function nonce(i: number, last: boolean): Bytes {
  const n = new Uint8Array(12);
  let x = BigInt(i);
  for (let j = 10; j >= 0; j--) {
    n[j] = Number(x & 0xffn);
    x >>= 8n;
  }
  n[11] = last ? 1 : 0;
  return n;
}

export function padme(L: number): number {
  if (L < 2) return L;
  const E = Math.floor(Math.log2(L));
  const S = Math.floor(Math.log2(E)) + 1;
  const mask = 2 ** (E - S) - 1;
  return Math.ceil(L / (mask + 1)) * (mask + 1);
}

export const paddedSize = (ciphertextSize: number) => Math.max(4096, padme(ciphertextSize));
const AAD = utf8("chatd-e2e-attachment-chunk-v1");

export async function encrypt(key: Bytes, data: Bytes): Promise<{ blob: Bytes; digest: Bytes; ciphertextSize: number }> {
  const fk = await fileKey(key);
  const n = Math.max(1, Math.ceil(data.length / CHUNK));
  const parts: Bytes[] = [];
  for (let i = 0; i < n; i++) parts.push(await C.aesGcmEncrypt(fk, nonce(i, i === n - 1), data.subarray(i * CHUNK, (i + 1) * CHUNK), AAD));
  const ct = concat(...parts);
  const blob = new Uint8Array(paddedSize(ct.length));
  blob.set(ct);
  return { blob, digest: await C.sha256(blob), ciphertextSize: ct.length };
}

export async function decrypt(key: Bytes, blob: Bytes, size: number, digest: Bytes): Promise<Bytes> {
  const n = Math.max(1, Math.ceil(size / CHUNK));
  const ctSize = size + 16 * n;
  if (blob.length !== paddedSize(ctSize)) throw new C.DecryptError("blob length does not match its size");
  if (!ctEqual(await C.sha256(blob), digest)) throw new C.DecryptError("blob digest does not match");
  const fk = await fileKey(key);
  const parts: Bytes[] = [];
  for (let i = 0; i < n; i++) parts.push(await C.aesGcmDecrypt(fk, nonce(i, i === n - 1), blob.subarray(i * (CHUNK + 16), Math.min((i + 1) * (CHUNK + 16), ctSize)), AAD));
  return concat(...parts);
}
