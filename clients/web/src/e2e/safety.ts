// Safety numbers (E2E.md 9): libsignal's NumericFingerprintGenerator, 5200 iterations.
import { type Bytes, concat, ctEqual, utf8 } from "../bytes.js";
import * as C from "../crypto.js";

export async function fingerprintHash(key: Bytes, stableId: Bytes, iterations = 5200): Promise<Bytes> {
  let h = await C.sha512(concat(new Uint8Array([0, 0]), key, stableId, key));
  for (let i = 1; i < iterations; i++) h = await C.sha512(concat(h, key));
  return h;
}

export function digits(fp: Bytes): string {
  let s = "";
  for (let i = 0; i < 30; i += 5) {
    let v = 0;
    for (let j = 0; j < 5; j++) v = v * 256 + fp[i + j]!;
    s += String(v % 100000).padStart(5, "0");
  }
  return s;
}

export async function safetyNumber(localKey: Bytes, localId: Bytes, remoteKey: Bytes, remoteId: Bytes, iterations = 5200): Promise<string> {
  const a = digits(await fingerprintHash(localKey, localId, iterations));
  const b = digits(await fingerprintHash(remoteKey, remoteId, iterations));
  return a < b ? a + b : b + a;
}

export async function scannable(localKey: Bytes, localId: Bytes, remoteKey: Bytes, remoteId: Bytes, version = 1, iterations = 5200): Promise<Bytes> {
  const logical = (c: Bytes) => concat(new Uint8Array([0x0a, c.length]), c);
  const l = logical((await fingerprintHash(localKey, localId, iterations)).slice(0, 32));
  const r = logical((await fingerprintHash(remoteKey, remoteId, iterations)).slice(0, 32));
  return concat(new Uint8Array([0x08, version, 0x12, l.length]), l, new Uint8Array([0x1a, r.length]), r);
}

export function compareScanned(own: Bytes, scanned: Bytes): boolean {
  if (own.length !== 74 || scanned.length !== 74) return false;
  for (const i of [0, 1, 2, 3, 4, 5, 38, 39, 40, 41]) if (own[i] !== scanned[i]) return false;
  return ctEqual(own.subarray(6, 38), scanned.subarray(42, 74)) && ctEqual(own.subarray(42, 74), scanned.subarray(6, 38));
}

export function accountSafetyNumber(localAccount: number, localMaster: Bytes, remoteAccount: number, remoteMaster: Bytes): Promise<string> {
  return safetyNumber(localMaster, utf8(String(localAccount)), remoteMaster, utf8(String(remoteAccount)));
}
