// Plaintexts inside end-to-end ciphertexts, padded to buckets (E2E.md 8).
import { type Bytes, concat } from "../bytes.js";
import { ErrorCode, ProtocolError, canonicalMap, checkMap, rawDecode, rawEncode } from "../codec.js";
import { clientMaySend } from "../kinds.js";
import { ABSENT, type Field, STRUCTS } from "../schema.js";

export const MAX_PADDED = 65536 - 89;
export const MAX_TO_DEVICE_PADDED = 32768;
export const BUCKETS = [64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, MAX_PADDED];

export function bucket(len: number, max = MAX_PADDED): number {
  for (const b of BUCKETS) {
    if (b > max) break;
    if (len + 1 <= b) return b;
  }
  throw new ProtocolError(`plaintext of ${len} bytes is too large to pad`, ErrorCode.INVALID);
}

export function pad(data: Bytes, max = MAX_PADDED): Bytes {
  const out = new Uint8Array(bucket(data.length, max));
  out.set(data);
  out[data.length] = 0x80;
  return out;
}

export function unpad(p: Bytes): Bytes {
  const bad = (m: string) => new ProtocolError(m, ErrorCode.BAD_FIELD);
  if (!BUCKETS.includes(p.length)) throw bad("padded plaintext is not a bucket size");
  let end = p.length;
  while (end > 0 && p[end - 1] === 0) end--;
  if (end === 0 || p[end - 1] !== 0x80) throw bad("bad padding");
  const data = p.slice(0, end - 1);
  if (bucket(data.length) !== p.length) throw bad("padding longer than needed");
  return data;
}

STRUCTS["Transcript"] = [["n", "int:1..9007199254740991"], ["prev", "bin:0..16", ""], ["seen", "[any]:32", []], ["epoch", "u32", 0], ["head", "bin:0..16", ""]];
const PAYLOAD: readonly Field[] = [
  ["kind", "str:1..32"], ["body", "bin:0..65536"], ["ts", "int:0..9007199254740991?", ABSENT],
  ["reply_to", "int:1..9007199254740991?", ABSENT], ["tr", "{Transcript}?", ABSENT], ["fk", "bin:32?", ABSENT],
];

export interface Transcript { n: number; prev?: Bytes; seen?: [number, number, number][]; epoch?: number; head?: Bytes }
/** `fk`: the message's franking key (E2E.md 17), what a report of it reveals. */
export interface Payload { kind: string; body: Bytes; ts?: number; reply_to?: number; tr?: Transcript; fk?: Bytes }

export function encodePayload(p: Payload): Bytes {
  if (!clientMaySend(p.kind, true) || p.kind === "e2e") throw new ProtocolError(`kind ${p.kind} cannot be end-to-end content`, ErrorCode.INVALID);
  return pad(rawEncode(canonicalMap(p as unknown as Record<string, unknown>, PAYLOAD)));
}

export function decodePayload(padded: Bytes): Payload {
  const m = checkMap(rawDecode(unpad(padded)), PAYLOAD, "payload") as unknown as Payload;
  if (!clientMaySend(m.kind, true) || m.kind === "e2e") throw new ProtocolError(`kind ${m.kind} cannot be end-to-end content`, ErrorCode.BAD_FIELD);
  return m;
}

const TO_DEVICE: Record<string, readonly Field[]> = {
  sender_key: [["conv", "id"], ["key_id", "u32"], ["iteration", "u32"], ["chain_key", "bin:0..1000"], ["signing_key", "bin:0..1000"]],
  master_key: [["account", "id"], ["seed", "bin:32"]],
  device_change: [["account", "id"], ["op", "approve|remove"], ["device_key", "bin:32"], ["device", "seq"]],
};

export type ToDevice = { t: string; [k: string]: unknown };

export function encodeToDevice(c: ToDevice): Bytes {
  const fields = TO_DEVICE[c.t];
  if (!fields) throw new ProtocolError(`unknown to-device content ${c.t}`, ErrorCode.INVALID);
  const m: Record<string, unknown> = { t: c.t };
  for (const [name] of fields) m[name] = c[name] ?? (name === "device" ? 0 : undefined);
  return pad(rawEncode(m), MAX_TO_DEVICE_PADDED);
}

export function decodeToDevice(padded: Bytes): ToDevice {
  const data = unpad(padded);
  if (padded.length > MAX_TO_DEVICE_PADDED) throw new ProtocolError("to-device plaintext too large", ErrorCode.BAD_FIELD);
  const raw = rawDecode(data) as Record<string, unknown>;
  const t = raw && typeof raw === "object" ? raw["t"] : undefined;
  const fields = typeof t === "string" ? TO_DEVICE[t] : undefined;
  if (!fields) throw new ProtocolError("unknown to-device content", ErrorCode.BAD_FIELD);
  return { t: t as string, ...checkMap(raw, fields, t as string) };
}

export { concat };
