// Message contents (SPEC.md 9 and 15.7): one msgpack map per kind, same rules as frames.
import { ProtocolError, ErrorCode, canonicalMap, checkMap, rawDecode, rawEncode } from "./codec.js";
import { ABSENT, type Field } from "./schema.js";

const MAXID = 9007199254740991;
const ref = `int:1..${MAXID}`;
const big = `int:0..${MAXID}`;
const text = "str:0..16000";
const short = "str:0..256";
const money: Field[] = [["amount", `int:1..${MAXID}`], ["currency", "str:3/^[A-Z]{3}$"], ["memo", short, ""]];

export const BUTTON: readonly Field[] = [["title", "str:1..64"], ["action", short], ["params", "any", {}], ["app", short, ""], ["bot", big, 0]];

export const KINDS: Record<string, readonly Field[]> = {
  text: [["text", text]],
  reaction: [["target", ref], ["emoji", "str:1..16"], ["remove", "bool", false]],
  edit: [["target", ref], ["text", text]],
  delete: [["target", ref]],
  deleted: [["by", `int:1..${MAXID}`], ["at", big]],
  receipt: [["up_to", ref]],
  "payment.transfer": [["transfer_id", short], ...money, ["nonce", "bin:0..32", ""]],
  "payment.request": [["request_id", short], ...money],
  "miniapp.invoke": [["invocation_id", short], ["app", short], ["action", short], ["params", "any", {}]],
  "miniapp.result": [
    ["invocation_id", short], ["title", short, ""], ["text", text, ""], ["image", short, ""],
    ["buttons", "[any]:16", []], ["order", "any?", ABSENT], ["error", short, ""],
  ],
  share: [
    ["title", short], ["text", text, ""], ["link", short, ""], ["image", short, ""], ["bot", big, 0],
    ["app", short, ""], ["action", short, ""], ["params", "any", {}],
  ],
  forward: [["sender", big], ["ts", big, 0], ["kind", "str:1..32"], ["body", "bin:0..60000"], ["conv", big, 0], ["seq", big, 0]],
  attachment: [
    ["blob", "blob"], ["key", "bin:32"], ["digest", "bin:32"], ["size", big], ["media_type", "str:0..127", "application/octet-stream"],
    ["name", "str:0..255", ""], ["thumbnail", "bin:0..32768", ""], ["width", "int:0..65535", 0], ["height", "int:0..65535", 0],
    ["duration_ms", big, 0], ["waveform", "bin:0..256", ""], ["caption", "str:0..4000", ""],
  ],
  system: [
    ["event", "created|joined|left|removed|role|renamed|bot_access|deleted"], ["actor", "int:-9007199254740991..9007199254740991"],
    ["account", "int:-9007199254740991..9007199254740991", 0], ["role", "str:0..1000000", ""], ["title", "str:0..1000000", ""],
    ["access", "str:0..1000000", ""], ["entry", "bin:0..1000000", ""], ["sig", "bin:0..1000000", ""], ["target", big, 0],
  ],
  "payment.receipt": [
    ["type", "transfer|red_packet|claim|refund|request|declined|cancelled|expired"], ["ref", short], ["from", big], ["to", big],
    ["amount", `int:-${MAXID}..${MAXID}`], ["currency", "str:0..8"], ["conv", big], ["request_id", short, ""],
    ["intent_hash", "bin:0..32", ""], ["posted_at", big], ["expires_at", big, 0], ["shares", "int:0..4294967295", 0],
    ["actor", big, 0], ["sig", "bin:64"], ["memo_hash", "bin:0..32", ""], ["intent_expires_at", big, 0], ["split", short, ""],
    ["device", big, 0], ["payer_sig", "bin:0..64", ""],
  ],
};

export type Content = Record<string, unknown>;

/** A client may send these outside `e2e` too; `system`, `payment.receipt` and `deleted` are the server's. */
export function clientMaySend(kind: string, insideE2E: boolean): boolean {
  if (kind === "system" || kind === "payment.receipt" || kind === "deleted" || kind === "withheld") return false;
  if (kind === "attachment") return insideE2E;
  if (kind === "e2e") return !insideE2E;
  return kind in KINDS || (kind.startsWith("x-") && kind.length > 2);
}

export function decodeContent(kind: string, body: Uint8Array): Content {
  const fields = KINDS[kind];
  if (!fields) throw new ProtocolError(`unknown kind ${kind}`, ErrorCode.BAD_FIELD);
  return checkMap(rawDecode(body), fields, kind);
}

export function encodeContent(kind: string, content: Content): Uint8Array {
  const fields = KINDS[kind];
  if (!fields) throw new ProtocolError(`unknown kind ${kind}`, ErrorCode.BAD_FIELD);
  const out = rawEncode(canonicalMap(content, fields));
  if (fields.length > 15 && (out[0]! & 0xf0) === 0x80) {
    // SPEC.md 9: the reference writes a map16 header for a content type of more than 15 fields
    // (payment.receipt), however many are present.
    const wide = new Uint8Array(out.length + 2);
    wide.set([0xde, 0, out[0]! & 0x0f]);
    wide.set(out.subarray(1), 3);
    return wide;
  }
  return out;
}
