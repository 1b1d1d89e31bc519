// Transcript consistency (E2E.md 16).
import { type Bytes, concat, ctEqual, utf8 } from "../bytes.js";
import * as C from "../crypto.js";
import type { Transcript } from "./payload.js";

export interface Peer { device: number; account: number; n: number; hash: Bytes; seq: number }
export interface View { peers: Peer[]; sent: { n: number; hash: Bytes } }
export interface Finding { problem: string; account: number; device: number; count?: number }

export const emptyView = (): View => ({ peers: [], sent: { n: 0, hash: new Uint8Array(0) } });

export async function messageHash(body: Bytes): Promise<Bytes> {
  return (await C.sha256(concat(utf8("chatd-e2e-transcript-v1"), new Uint8Array([0]), body))).slice(0, 16);
}

export function outgoing(v: View, epoch = 0, head: Bytes = new Uint8Array(0)): Transcript {
  const seen = v.peers.slice(-32).map((p) => [p.account, p.device, p.n] as [number, number, number]).sort((a, b) => a[1] - b[1]);
  return { n: v.sent.n + 1, prev: v.sent.hash, seen, epoch, head: head.slice(0, 16) };
}

export async function sent(v: View, body: Bytes): Promise<View> {
  return { ...v, sent: { n: v.sent.n + 1, hash: await messageHash(body) } };
}

export async function observe(
  v: View,
  o: { me: number; account: number; device: number; seq: number; body: Bytes; t: Transcript; joined?: number; epoch?: number; head?: Bytes },
): Promise<[View, Finding[]]> {
  const found: Finding[] = [];
  const joined = o.joined ?? 0;
  const peers = new Map(v.peers.map((p) => [p.device, p]));
  const last = peers.get(o.device);
  const t = o.t;
  const prev = t.prev ?? new Uint8Array(0);
  if (last && last.seq >= joined) {
    if (t.n <= last.n) found.push({ problem: "reordered", account: o.account, device: o.device });
    else if (t.n > last.n + 1) found.push({ problem: "missing", account: o.account, device: o.device, count: t.n - last.n - 1 });
    else if (!ctEqual(prev, last.hash)) found.push({ problem: "forked_chain", account: o.account, device: o.device });
  }
  for (const [account, device, n] of t.seen ?? []) {
    if (device === o.device) continue;
    if (device === o.me) {
      if (n > v.sent.n) found.push({ problem: "own", account, device: o.me, count: n });
      continue;
    }
    const mine = peers.get(device);
    if (mine && mine.seq >= joined && n > mine.n) found.push({ problem: "unseen", account, device, count: n - mine.n });
  }
  const head = o.head ?? new Uint8Array(0);
  if (t.epoch && o.epoch && t.epoch === o.epoch && head.length && t.head?.length && !ctEqual(t.head, head.slice(0, 16))) found.push({ problem: "membership_fork", account: o.account, device: o.device });
  if (!last || t.n > last.n) peers.set(o.device, { device: o.device, account: o.account, n: t.n, hash: await messageHash(o.body), seq: o.seq });
  return [{ ...v, peers: [...peers.values()].sort((a, b) => a.seq - b.seq || a.device - b.device) }, found];
}
