// Byte helpers: hex, concatenation, big-endian integers, comparison. No cryptography here.

export type Bytes = Uint8Array;

export function hex(b: Bytes): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

export function unhex(s: string): Bytes {
  if (s.length % 2) throw new Error("odd hex length");
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) {
    const v = parseInt(s.slice(2 * i, 2 * i + 2), 16);
    if (Number.isNaN(v)) throw new Error("bad hex");
    out[i] = v;
  }
  return out;
}

export function concat(...parts: Bytes[]): Bytes {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export const utf8 = (s: string): Bytes => new TextEncoder().encode(s);
export const fromUtf8 = (b: Bytes): string => new TextDecoder("utf-8", { fatal: true }).decode(b);

export function u16be(n: number): Bytes {
  return new Uint8Array([(n >>> 8) & 0xff, n & 0xff]);
}

export function u32be(n: number): Bytes {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0);
  return b;
}

export function u64be(n: number): Bytes {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
}

export function readU32(b: Bytes, off: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(off);
}

/** Equality in time independent of where the inputs differ (not of their lengths). */
export function ctEqual(a: Bytes, b: Bytes): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

export function equal(a: Bytes, b: Bytes): boolean {
  return ctEqual(a, b);
}

/** A fresh cmid (SPEC.md 7.3): the server's time `serverNowMs` in milliseconds, 12 hex digits,
 * then 80 random bits, 20 hex digits (a UUIDv7's layout, as text); 32 random hex digits when the
 * server's time is not known (null). Later ones sort after it: the server keys its cmid index by
 * cmid first, so one commit's messages share its last pages. The server's clock, never this
 * device's: a device's own clock, to the millisecond, would tell which accounts share it. */
export function newCmid(serverNowMs: number | null): string {
  if (serverNowMs === null) return hex(randomBytes(16));
  const ms = Math.round(serverNowMs) % 2 ** 48;
  return ms.toString(16).padStart(12, "0") + hex(randomBytes(10));
}

export function randomBytes(n: number): Bytes {
  const b = new Uint8Array(n);
  crypto.getRandomValues(b);
  return b;
}

export function ascii(s: string): Bytes {
  return utf8(s);
}

/** `context || 0x00 || ...parts`: the shape of every signed payload of SPEC.md and E2E.md. */
export function ctx(context: string, ...parts: Bytes[]): Bytes {
  return concat(utf8(context), new Uint8Array([0]), ...parts);
}
