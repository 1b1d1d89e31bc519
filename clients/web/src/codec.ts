// Bytes <-> frames (SPEC.md 2-5): one msgpack map per WebSocket message, checked field by field
// against the tables of SPEC.md (schema.ts). @msgpack/msgpack does the msgpack; this module only
// tells floats and ext values apart (SPEC.md 2 refuses them) and checks types and ranges.
import { Decoder, Encoder } from "@msgpack/msgpack";
import { ABSENT, CLIENT, type Default, type Field, KEEP_NIL, NAMED, SERVER, STRUCTS } from "./schema.js";

export const MAX_FRAME_BYTES = 262144;

export const ErrorCode = {
  MALFORMED: 1, UNKNOWN_FRAME: 2, BAD_FIELD: 3, FRAME_TOO_LARGE: 4,
  AUTH_REQUIRED: 10, AUTH_FAILED: 11, HANDLE_TAKEN: 12, ALREADY_AUTHENTICATED: 13, SUSPENDED: 14,
  NOT_FOUND: 20, FORBIDDEN: 21, CONFLICT: 22, INVALID: 23, CONSENT_REQUIRED: 24, REPORT_REFUSED: 25, PUSH_REFUSED: 26,
  RATE_LIMITED: 30, SLOW_CONSUMER: 31,
  UNAVAILABLE: 40, INTERNAL: 50,
  BAD_SIGNATURE: 60, WRONG_DEVICE: 61, NOT_MEMBER: 62, EXPIRED: 63, INSUFFICIENT_FUNDS: 64,
  OVER_LIMIT: 65, UNKNOWN_CURRENCY: 66, INVALID_AMOUNT: 67, CLOSED: 68, PRICE_CHANGED: 69,
  FILE_TOO_LARGE: 70, QUOTA_EXCEEDED: 71, LINK_INVALID: 80,
} as const;
export const RETRYABLE = new Set<number>([30, 40, 50]);

export class ProtocolError extends Error {
  constructor(message: string, readonly code: number) {
    super(message);
  }
}

// biome-ignore lint: frames are plain records checked at run time
export type Frame = { t: string; [k: string]: any };

/** A msgpack float, kept apart from integers so that it can be refused. */
class Float {
  constructor(readonly value: number) {}
}

class StrictDecoder extends Decoder {
  constructor() {
    super({ useBigInt64: true });
    const self = this as unknown as Record<string, unknown>;
    const f32 = self["readF32"] as () => number;
    const f64 = self["readF64"] as () => number;
    self["readF32"] = () => new Float(f32.call(this));
    self["readF64"] = () => new Float(f64.call(this));
    const fatal = new TextDecoder("utf-8", { fatal: true });
    // Invalid UTF-8 is MALFORMED (SPEC.md 5): decode strings strictly.
    self["decodeUtf8String"] = function (this: { bytes: Uint8Array; pos: number; stateIsMapKey(): boolean }, byteLength: number, headerOffset: number) {
      const offset = this.pos + headerOffset;
      if (this.bytes.byteLength < offset + byteLength) throw new RangeError("Insufficient data");
      const s = fatal.decode(this.bytes.subarray(offset, offset + byteLength));
      this.pos += headerOffset + byteLength;
      return s;
    };
  }
}

/** Marks (non-enumerable) a struct's map that the reference writes with a map16 header however
 * few of its fields are present: msgspec sizes the header by the struct's field count, so a
 * struct of more than 15 fields (CreatorReceipt) always starts `de 00 nn` (SPEC.md 2). */
const WIDE = Symbol("wide");

type EncoderInternals = {
  writeU8(v: number): void;
  writeU16(v: number): void;
  encodeString(s: string): void;
  doEncode(v: unknown, depth: number): void;
};

class WideEncoder extends Encoder {
  constructor() {
    super({ ignoreUndefined: true });
    const self = this as unknown as Record<string, unknown>;
    const encodeMap = self["encodeMap"] as (o: Record<string, unknown>, depth: number) => void;
    self["encodeMap"] = function (this: EncoderInternals, object: Record<string, unknown>, depth: number) {
      if (!(WIDE in object)) return encodeMap.call(this, object, depth);
      const keys = Object.keys(object).filter((k) => object[k] !== undefined);
      this.writeU8(0xde);
      this.writeU16(keys.length);
      for (const k of keys) {
        this.encodeString(k);
        this.doEncode(object[k], depth + 1);
      }
    };
  }
}

const encoder = new WideEncoder();

export function rawDecode(data: Uint8Array): unknown {
  try {
    return new StrictDecoder().decode(data);
  } catch (e) {
    throw new ProtocolError(`not one msgpack value: ${(e as Error).message}`, ErrorCode.MALFORMED);
  }
}

export function rawEncode(value: unknown): Uint8Array {
  return encoder.encode(value);
}

// --- types -----------------------------------------------------------------------------------

type Ty =
  | { k: "int"; lo: number; hi: number }
  | { k: "str"; lo: number; hi: number; re?: RegExp }
  | { k: "bin"; lo: number; hi: number }
  | { k: "bool" }
  | { k: "any" }
  | { k: "choice" }
  | { k: "enum"; values: string[] }
  | { k: "arr"; of: Ty; max: number }
  | { k: "struct"; name: string };
type Spec = { ty: Ty; nil: boolean };

const cache = new Map<string, Spec>();

function parse(src: string): Spec {
  const hit = cache.get(src);
  if (hit) return hit;
  let s = src;
  let nil = false;
  if (s.endsWith("?")) {
    nil = true;
    s = s.slice(0, -1);
  }
  const spec = { ty: parseTy(s), nil };
  cache.set(src, spec);
  return spec;
}

function parseTy(s: string): Ty {
  if (s in NAMED) return parseTy(NAMED[s]!);
  if (s === "bool") return { k: "bool" };
  if (s === "any") return { k: "any" };
  if (s === "choice") return { k: "choice" };
  if (s.startsWith("[")) {
    const end = s.indexOf("]");
    return { k: "arr", of: parseTy(s.slice(1, end)), max: Number(s.slice(end + 2)) };
  }
  if (s.startsWith("{")) return { k: "struct", name: s.slice(1, -1) };
  const m = /^(int|str|bin):(-?\d+)(?:\.\.(-?\d+))?(?:\/(.*))?$/.exec(s);
  if (m) {
    const lo = Number(m[2]);
    const hi = m[3] === undefined ? lo : Number(m[3]);
    if (m[1] === "str") return { k: "str", lo, hi, re: m[4] ? new RegExp(m[4], "u") : undefined };
    return { k: m[1] as "int" | "bin", lo, hi };
  }
  return { k: "enum", values: s.split("|") };
}

const bad = (path: string, why: string) => new ProtocolError(`${path}: ${why}`, ErrorCode.BAD_FIELD);

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && Object.getPrototypeOf(v) === Object.prototype;
}

function checkInt(v: unknown, lo: number, hi: number, path: string): number {
  let n: number;
  if (typeof v === "bigint") {
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw bad(path, "integer out of range");
    n = Number(v);
  } else if (typeof v === "number" && Number.isInteger(v)) n = v;
  else throw bad(path, "not an integer");
  if (n < lo || n > hi) throw bad(path, `integer ${n} out of ${lo}..${hi}`);
  return n;
}

function check(v: unknown, ty: Ty, path: string): unknown {
  switch (ty.k) {
    case "int":
      return checkInt(v, ty.lo, ty.hi, path);
    case "bool":
      if (typeof v !== "boolean") throw bad(path, "not a bool");
      return v;
    case "str": {
      if (typeof v !== "string") throw bad(path, "not a str");
      const n = [...v].length;
      if (n < ty.lo || n > ty.hi) throw bad(path, `length ${n} out of ${ty.lo}..${ty.hi}`);
      if (ty.re && !ty.re.test(v)) throw bad(path, "does not match its pattern");
      return v;
    }
    case "bin":
      if (!(v instanceof Uint8Array)) throw bad(path, "not a bin");
      if (v.length < ty.lo || v.length > ty.hi) throw bad(path, `${v.length} bytes, not ${ty.lo}..${ty.hi}`);
      return v.slice();
    case "enum":
      if (typeof v !== "string" || !ty.values.includes(v)) throw bad(path, `not one of ${ty.values.join(", ")}`);
      return v;
    case "choice":
      if (typeof v === "string") return check(v, { k: "str", lo: 0, hi: 64 }, path);
      return checkInt(v, -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, path);
    case "any":
      return plain(v, path);
    case "arr":
      if (!Array.isArray(v)) throw bad(path, "not an array");
      if (v.length > ty.max) throw bad(path, `more than ${ty.max} items`);
      return v.map((x, i) => check(x, ty.of, `${path}[${i}]`));
    case "struct":
      if (!isMap(v)) throw bad(path, "not a map");
      return checkFields(v, STRUCTS[ty.name]!, path);
  }
}

/** A value of unchecked shape (e.g. params maps): no floats, no ext, integers as numbers. */
function plain(v: unknown, path: string): unknown {
  if (v instanceof Float || v instanceof Date) throw bad(path, "float or ext value");
  if (typeof v === "bigint") return checkInt(v, -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, path);
  if (Array.isArray(v)) return v.map((x, i) => plain(x, `${path}[${i}]`));
  if (v instanceof Uint8Array) return v.slice();
  if (isMap(v)) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = plain(x, `${path}.${k}`);
    return o;
  }
  if (v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean") return v;
  throw bad(path, "ext value");
}

function dflt(d: Default): unknown {
  if (d === ABSENT) return undefined;
  if (Array.isArray(d)) return [];
  return d;
}

function checkFields(m: Record<string, unknown>, fields: readonly Field[], path: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, type, d] of fields) {
    const spec = parse(type);
    const v = m[name];
    if (v === undefined || (v === null && (spec.nil || d === ABSENT))) {
      if (v === undefined && d === undefined) throw bad(`${path}.${name}`, "required field missing");
      if (v === null && d === undefined && !spec.nil) throw bad(`${path}.${name}`, "nil for a required field");
      const dv = d === "" && spec.ty.k === "bin" ? new Uint8Array(0) : dflt(d ?? ABSENT);
      if (dv !== undefined) out[name] = dv;
      continue;
    }
    if (v === null) throw bad(`${path}.${name}`, "nil for a non-optional field");
    out[name] = check(v, spec.ty, `${path}.${name}`);
  }
  return out;
}

function decode(data: Uint8Array, tables: Record<string, readonly Field[]>, max: number): Frame {
  if (data.length > max) throw new ProtocolError(`frame of ${data.length} bytes`, ErrorCode.FRAME_TOO_LARGE);
  if (data.length === 0) throw new ProtocolError("empty message", ErrorCode.MALFORMED);
  const raw = rawDecode(data);
  if (!isMap(raw)) throw new ProtocolError("a frame is a msgpack map", ErrorCode.MALFORMED);
  const t = raw["t"];
  if (typeof t !== "string") throw new ProtocolError("frame has no string field 't'", ErrorCode.MALFORMED);
  const fields = Object.hasOwn(tables, t) ? tables[t] : undefined;
  if (!fields) throw new ProtocolError(`unknown frame type ${t.slice(0, 32)}`, ErrorCode.UNKNOWN_FRAME);
  return { t, ...checkFields(raw, fields, t) };
}

/** Decode a frame the server sent (what a client does). */
export function decodeServer(data: Uint8Array, max = MAX_FRAME_BYTES): Frame {
  return decode(data, SERVER, max);
}

/** Decode a frame a client sent (what the server does; conformance tests). */
export function decodeClient(data: Uint8Array, max = MAX_FRAME_BYTES): Frame {
  return decode(data, CLIENT, max);
}

function canonicalFields(m: Record<string, unknown>, fields: readonly Field[], keepNil = false): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, type, d] of fields) {
    const v = m[name];
    if (v === undefined || v === null) {
      if (d === undefined && !parse(type).nil) throw new ProtocolError(`${name}: required field missing`, ErrorCode.BAD_FIELD);
      if (keepNil) out[name] = null;
      continue;
    }
    if (d !== undefined && d !== ABSENT && isDefault(v, d)) continue;
    out[name] = canonicalValue(v, parse(type).ty);
  }
  return out;
}

function isDefault(v: unknown, d: Default): boolean {
  if (v instanceof Uint8Array) return d === "" && v.length === 0;
  if (Array.isArray(d)) return Array.isArray(v) && v.length === 0;
  if (isMap(d)) return isMap(v) && Object.keys(v).length === 0;
  return v === d;
}

function canonicalValue(v: unknown, ty: Ty): unknown {
  if (ty.k === "struct") {
    const fields = STRUCTS[ty.name]!;
    const out = canonicalFields(v as Record<string, unknown>, fields, KEEP_NIL.has(ty.name));
    if (fields.length > 15) Object.defineProperty(out, WIDE, { value: true });
    return out;
  }
  if (ty.k === "arr") return (v as unknown[]).map((x) => canonicalValue(x, ty.of));
  return v;
}

/** A frame in canonical form: `t` first, fields in table order, defaults left out. */
export function canonical(frame: Frame): Frame {
  const fields = CLIENT[frame.t] ?? SERVER[frame.t];
  if (!fields) throw new ProtocolError(`unknown frame type ${frame.t}`, ErrorCode.UNKNOWN_FRAME);
  return { t: frame.t, ...canonicalFields(frame, fields) };
}

/** Encode one frame canonically (SPEC.md 2: `t` first, table order, defaults omitted). */
export function encode(frame: Frame): Uint8Array {
  return rawEncode(canonical(frame));
}

/** Check and canonicalise a map against a field table (message contents use this too). */
export function checkMap(raw: unknown, fields: readonly Field[], path: string): Record<string, unknown> {
  if (!isMap(raw)) throw bad(path, "not a map");
  return checkFields(raw, fields, path);
}

export function canonicalMap(m: Record<string, unknown>, fields: readonly Field[]): Record<string, unknown> {
  return canonicalFields(m, fields);
}
