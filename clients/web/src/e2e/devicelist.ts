// An account's signed device list (E2E.md 3).
import { type Bytes, ctEqual, ctx } from "../bytes.js";
import { rawDecode, rawEncode } from "../codec.js";
import * as C from "../crypto.js";

export interface DeviceEntry { device: number; signing_key: Bytes; identity_key: Bytes; pq?: boolean }
export interface DeviceList { account: number; version: number; master_key: Bytes; devices: DeviceEntry[] }

export function encodeDeviceList(l: DeviceList): Bytes {
  const devices = [...l.devices].sort((a, b) => a.device - b.device);
  if (new Set(devices.map((d) => d.device)).size !== devices.length) throw new C.CryptoError("duplicate device id in device list");
  return rawEncode({
    account: l.account,
    version: l.version,
    master_key: l.master_key,
    devices: devices.map((d) => (d.pq ? { device: d.device, signing_key: d.signing_key, identity_key: d.identity_key, pq: true } : { device: d.device, signing_key: d.signing_key, identity_key: d.identity_key })),
  });
}

export const signedPayload = (body: Bytes) => ctx("chatd-e2e-device-list-v1", body);

export async function signDeviceList(l: DeviceList, master: C.SigningKey): Promise<[Bytes, Bytes]> {
  if (!ctEqual(master.publicKey, l.master_key)) throw new C.CryptoError("master key does not match the list's master key");
  const body = encodeDeviceList(l);
  return [body, await C.sign(master, signedPayload(body))];
}

const KEYS = ["account", "version", "master_key", "devices"];
const DKEYS = ["device", "signing_key", "identity_key", "pq"];

export async function verifyDeviceList(body: Bytes, sig: Bytes, pinned: Bytes | null, lastVersion = 0, account?: number): Promise<DeviceList> {
  const fail = (m: string) => new C.UntrustedKeyError(m);
  if (body.length > 65536) throw fail("device list too large");
  let raw: Record<string, unknown>;
  try {
    raw = rawDecode(body) as Record<string, unknown>;
  } catch {
    throw fail("malformed device list");
  }
  if (!raw || typeof raw !== "object" || Object.keys(raw).some((k) => !KEYS.includes(k))) throw fail("malformed device list");
  const devices = raw["devices"];
  if (!Array.isArray(devices) || devices.length > 100) throw fail("malformed device list");
  for (const d of devices) if (!d || typeof d !== "object" || Object.keys(d).some((k) => !DKEYS.includes(k))) throw fail("malformed device list");
  const l = raw as unknown as DeviceList;
  const n = (v: unknown) => typeof v === "number" && Number.isInteger(v) && v >= 1;
  if (!n(l.account) || !n(l.version) || l.version > 0xffffffff || !(l.master_key instanceof Uint8Array) || l.master_key.length !== 32) throw fail("malformed device list");
  for (const d of l.devices) if (!n(d.device) || !(d.signing_key instanceof Uint8Array) || d.signing_key.length !== 32 || !(d.identity_key instanceof Uint8Array) || d.identity_key.length !== 32 || (d.pq !== undefined && typeof d.pq !== "boolean")) throw fail("malformed device list");
  let canonical: Bytes;
  try {
    canonical = encodeDeviceList(l);
  } catch (e) {
    throw fail((e as Error).message);
  }
  if (!ctEqual(canonical, body)) throw fail("device list body is not canonical");
  if (!(await C.verify(l.master_key, sig, signedPayload(body)))) throw fail("device list signature does not verify");
  if (pinned && !ctEqual(pinned, l.master_key)) throw fail("device list master key differs from the pinned one");
  if (account !== undefined && l.account !== account) throw fail("device list of another account");
  if (l.version <= lastVersion) throw fail("device list version is not newer than the last seen");
  return { ...l, devices: l.devices.map((d) => ({ ...d, pq: d.pq === true })) };
}
