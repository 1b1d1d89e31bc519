// A conversation's signed membership log (E2E.md 15).
import { type Bytes, concat, ctEqual, ctx, u32be } from "../bytes.js";
import { canonicalMap, checkMap, rawDecode, rawEncode } from "../codec.js";
import * as C from "../crypto.js";
import { type Field, STRUCTS } from "../schema.js";

export class MembershipError extends C.UntrustedKeyError {}

STRUCTS["Seat"] = [["account", "id"], ["role", "owner|admin|member"], ["access", "|addressed|all", ""]];
const ENTRY: readonly Field[] = [
  ["group", "bin:16"], ["epoch", "int:1..4294967295"], ["prev", "bin:32"], ["actor", "id"], ["device", "id"],
  ["op", "create|add|remove|leave|role|access"], ["kind", "|direct|group|channel", ""], ["members", "[{Seat}]:257", []],
  ["account", "seq", 0], ["role", "|admin|member", ""], ["access", "|addressed|all", ""], ["ts", "seq", 0],
];
const ENTRY_KEYS = ENTRY.map((f) => f[0]);

export interface Seat { account: number; role: string; access?: string }
export interface Entry {
  group: Bytes; epoch: number; prev: Bytes; actor: number; device: number; op: string;
  kind?: string; members?: Seat[]; account?: number; role?: string; access?: string; ts?: number;
}
export interface MemberState { account: number; role: string; access: string; joined: number; since: number }
export interface ChainState { group: Bytes; kind: string; epoch: number; head: Bytes; seq: number; members: MemberState[]; past: [number, number, number][] }

export function encodeEntry(e: Entry): Bytes {
  const members = [...(e.members ?? [])].sort((a, b) => a.account - b.account);
  if (new Set(members.map((m) => m.account)).size !== members.length) throw new MembershipError("an account appears twice in the entry's members");
  const m = canonicalMap({ ...e, members: members.map((s) => canonicalMap(s as unknown as Record<string, unknown>, STRUCTS["Seat"]!)) } as unknown as Record<string, unknown>, ENTRY);
  return rawEncode(m);
}

export const signedPayload = (body: Bytes) => ctx("chatd-e2e-membership-v1", body);

export async function signEntry(e: Entry, key: C.SigningKey): Promise<[Bytes, Bytes]> {
  const body = encodeEntry(e);
  return [body, await C.sign(key, signedPayload(body))];
}

export function entryHash(body: Bytes, sig: Bytes): Promise<Bytes> {
  return C.sha256(concat(ctx("chatd-e2e-membership-hash-v1", u32be(body.length)), body, sig));
}

export function decodeEntry(body: Bytes): Entry {
  if (body.length > 16384) throw new MembershipError("membership entry too large");
  let e: Entry;
  try {
    const raw = rawDecode(body) as Record<string, unknown>;
    if (!raw || typeof raw !== "object" || Object.keys(raw).some((k) => !ENTRY_KEYS.includes(k))) throw new Error("unknown key");
    e = checkMap(raw, ENTRY, "entry") as unknown as Entry;
  } catch (err) {
    throw new MembershipError(`malformed membership entry: ${(err as Error).message}`);
  }
  if (!ctEqual(encodeEntry(e), body)) throw new MembershipError("membership entry is not canonical");
  return e;
}

export async function verifySignature(body: Bytes, sig: Bytes, key: Bytes): Promise<void> {
  if (!(await C.verify(key, sig, signedPayload(body)))) throw new MembershipError("membership entry signature does not verify");
}

const MANAGERS = ["owner", "admin"];

export function heir(members: MemberState[]): number | null {
  const admins = members.filter((m) => m.role === "admin");
  const pool = admins.length ? admins : members;
  if (!pool.length) return null;
  return [...pool].sort((a, b) => a.joined - b.joined || a.account - b.account)[0]!.account;
}

/** The state after `e` (its signature checked by the caller), or MembershipError. */
export async function apply(state: ChainState | null, e: Entry, body: Bytes, sig: Bytes, seq: number): Promise<ChainState> {
  const fail = (m: string) => new MembershipError(m);
  const kind = e.kind ?? "", account = e.account ?? 0, role = e.role ?? "", access = e.access ?? "";
  const seats = e.members ?? [];
  if (!state) {
    if (e.op !== "create" || e.epoch !== 1 || !e.prev.every((x) => x === 0)) throw fail("a membership log starts with a create entry at epoch 1");
    if (!kind || account || role || access) throw fail("malformed create entry");
    if (!seats.some((s) => s.account === e.actor)) throw fail("the creator is not among the members it created");
    if (kind === "direct") {
      if (seats.length !== 2 || seats.some((s) => s.role !== "member")) throw fail("a direct conversation has exactly two members, both 'member'");
      if (seats.some((s) => !["", "all"].includes(s.access ?? ""))) throw fail("a bot in a direct conversation has access 'all'");
    } else {
      const owners = seats.filter((s) => s.role === "owner").map((s) => s.account);
      if (owners.length !== 1 || owners[0] !== e.actor) throw fail("a group or channel has exactly one owner: its creator");
    }
    return {
      group: e.group, kind, epoch: 1, head: await entryHash(body, sig), seq,
      members: seats.map((s) => ({ account: s.account, role: s.role, access: s.access ?? "", joined: 1, since: seq })).sort((a, b) => a.account - b.account),
      past: [],
    };
  }
  if (!ctEqual(e.group, state.group)) throw fail("membership entry of another conversation");
  if (e.epoch !== state.epoch + 1 || !ctEqual(e.prev, state.head)) throw fail(`membership entry ${e.epoch} does not follow entry ${state.epoch}`);
  if (e.op === "create" || kind || seats.length) throw fail("a conversation is created once");
  if (state.kind === "direct") throw fail("a direct conversation's members are fixed at creation");
  const members = new Map(state.members.map((m) => [m.account, m]));
  const past = [...state.past];
  const actor = members.get(e.actor);
  if (!actor) throw fail(`account ${e.actor} is not a member: it cannot change the members`);
  const target = account ? members.get(account) : undefined;
  switch (e.op) {
    case "add":
      if (!MANAGERS.includes(actor.role)) throw fail("only the owner or an admin adds members");
      if (!account || target) throw fail("add names an account that is not a member");
      if (role || !["", "addressed"].includes(access)) throw fail("a new member joins as 'member' (a bot with access 'addressed')");
      members.set(account, { account, role: "member", access, joined: e.epoch, since: seq });
      break;
    case "remove":
      if (!target || account === e.actor || role || access) throw fail("remove names another member");
      if (!MANAGERS.includes(actor.role)) throw fail("only the owner or an admin removes members");
      if (target.role === "owner") throw fail("the owner cannot be removed");
      if (target.role === "admin" && actor.role !== "owner") throw fail("only the owner removes an admin");
      members.delete(account);
      past.push([account, target.since, seq]);
      break;
    case "leave": {
      if (account || role || access) throw fail("malformed leave entry");
      members.delete(e.actor);
      past.push([e.actor, actor.since, seq]);
      if (actor.role === "owner") {
        const h = heir([...members.values()]);
        if (h !== null) members.set(h, { ...members.get(h)!, role: "owner" });
      }
      break;
    }
    case "role":
      if (actor.role !== "owner") throw fail("only the owner changes roles");
      if (!target || target.role === "owner" || !["admin", "member"].includes(role)) throw fail("role names a member other than the owner and a role");
      if (access) throw fail("malformed role entry");
      members.set(account, { ...target, role });
      break;
    case "access":
      if (!MANAGERS.includes(actor.role)) throw fail("only the owner or an admin changes a bot's access");
      if (!target || !target.access || !["addressed", "all"].includes(access)) throw fail("access names a bot member and an access");
      if (access === target.access || role) throw fail("malformed access entry");
      members.set(account, { ...target, access });
      break;
    default:
      throw fail(`unknown op ${e.op}`);
  }
  return {
    ...state, epoch: e.epoch, head: await entryHash(body, sig), seq,
    members: [...members.values()].sort((a, b) => a.account - b.account), past,
  };
}

export function memberAt(s: ChainState, account: number, seq: number): boolean {
  const m = s.members.find((x) => x.account === account);
  if (m && m.since <= seq) return true;
  return s.past.some(([a, start, end]) => a === account && start <= seq && seq < end);
}

/** The entry that changes `state` by `op`, checked by `apply` first (never sign what others refuse). */
export async function nextEntry(state: ChainState, actor: number, device: number, op: string, o: { account?: number; role?: string; access?: string; ts?: number } = {}): Promise<Entry> {
  const e: Entry = { group: state.group, epoch: state.epoch + 1, prev: state.head, actor, device, op, account: o.account ?? 0, role: o.role ?? "", access: o.access ?? "", ts: o.ts ?? 0 };
  await apply(state, e, new Uint8Array(0), new Uint8Array(0), state.seq);
  return e;
}
