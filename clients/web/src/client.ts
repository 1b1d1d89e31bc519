// The client core (SPEC.md 13) and the device's end-to-end state (E2E.md), for the browser:
// login, catch-up with the sync/live boundary, the receive rule, an outbox resent by cmid,
// reconnect with backoff, sender keys over PQXDH sessions, verified device lists and
// membership logs. Everything secret lives in IndexedDB (store.ts) and is written only after
// the operation that produced it succeeded.
import { type Bytes, ctEqual, hex, newCmid, randomBytes, unhex, utf8 } from "./bytes.js";
import { type Frame, ProtocolError, RETRYABLE, decodeServer, encode } from "./codec.js";
import * as C from "./crypto.js";
import { deviceApprovalPayload, loginPayload } from "./e2e/auth.js";
import * as DL from "./e2e/devicelist.js";
import * as FR from "./e2e/franking.js";
import * as M from "./e2e/membership.js";
import * as PW from "./e2e/pairwise.js";
import * as P from "./e2e/payload.js";
import * as S from "./e2e/safety.js";
import * as SK from "./e2e/senderkeys.js";
import * as T from "./e2e/transcript.js";
import * as X from "./e2e/x3dh.js";
import { type Content, decodeContent, encodeContent } from "./kinds.js";
import * as PAY from "./payments.js";
import * as ATT from "./attachment.js";
import type { Store } from "./store.js";

export class ServerError extends Error {
  constructor(readonly code: number, message: string) {
    super(message || `error ${code}`);
  }
}

export interface Identity {
  server: string;
  account: number;
  device: number;
  handle: string;
  name: string;
  signing: C.SigningKey;
}

export interface Msg {
  seq: number;
  ts: number;
  sender: number;
  device: number;
  cmid?: string;
  kind: string; // inner kind for e2e messages
  content: Content | null;
  e2e: boolean;
  replyTo?: number;
  error?: string; // why it could not be read
  pending?: boolean; // own message not yet acked
  raw?: Bytes; // an e2e body this device could not decrypt yet (its key may come later)
  fc?: Bytes; // the commitment relayed with `raw`, checked once it is decrypted
  /** Franked (E2E.md 17), and the delivered commitment opens with what was decrypted: this
   * device kept the opening and can report the message. */
  reportable?: boolean;
}

export interface Conv {
  conv: number;
  kind: string;
  title: string;
  lastSeq: number;
  role: string;
  read: number; // this device's read cursor
  cursor: number; // highest seq applied with no gap below
  members: { account: number; handle: string; role: string; access?: string }[];
  messages: Msg[];
  typing: Set<number>;
  peerRead: number; // highest read cursor of another member
  peerDelivered: number;
}

interface Trust { master: Bytes; version: number; devices: DL.DeviceEntry[]; verified: boolean }
interface Outbound { key: SK.SenderKey; holders: string[]; sent: number; created?: number }
interface Pending { conv: number; cmid: string; kind: string; body: Bytes | null; fc?: Bytes; inner: string; content: Content; replyTo?: number; to?: number[] }

/** What a report of a decrypted message reveals (E2E.md 17): its inner kind and body, and `fk`. */
interface Opening { kind: string; body: Bytes; fk: Bytes }

type Waiter = { resolve: (f: Frame) => void; reject: (e: Error) => void };

const ONE_TIME = 100;
const MISSING_KEY_WAIT_MS = 5_000;

export class Client {
  id: Identity | null = null;
  convs = new Map<number, Conv>();
  handles = new Map<number, string>();
  online = new Set<number>();
  warnings: string[] = [];
  status: "offline" | "connecting" | "online" = "offline";
  paymentKey: Bytes | null = null;
  /** Pending message requests and invitations of this account, by conversation (SPEC.md 18). */
  requests = new Map<number, Frame>();
  /** How many contacts the app asks the server for per page (SPEC.md 11.5). */
  contactsPageSize = 50;
  /** Accounts this account blocked. */
  blocked = new Set<number>();
  /** Invitations this account accepted to a group with a signed log: it joins when an owner or
   * admin adds it (SPEC.md 18.3), by conversation. */
  awaitingAdd = new Map<number, Frame>();
  /** Accounts this device invited who had not joined when last seen, by conversation. */
  invited = new Map<number, Set<number>>();

  private ws: WebSocket | null = null;
  private nextId = 1;
  private waiting = new Map<number, Waiter>();
  private challenge: Promise<Frame> | null = null;
  private prekeys: X.PreKeyState | null = null;
  private chains = new Map<number, Promise<unknown>>();
  private buffers = new Map<number, Map<number, Frame>>();
  private syncing = new Set<number>();
  private toDevice: Promise<unknown> = Promise.resolve();
  private keyWaiters = new Map<string, (() => void)[]>();
  private outbox: Pending[] = [];
  private trusts = new Map<number, Trust>();
  private logs = new Map<number, M.ChainState>();
  private stale = new Set<number>();
  private attempt = 0;
  /** The server's time minus `Date.now()` at the last welcome (ms); null before one: cmids are
   * random then (`newCmid`). */
  private serverClock: number | null = null;
  private closedByUs = false;
  private listeners = new Set<() => void>();
  /** Every frame this connection sent or received, as bytes (tests read it: nothing leaks). */
  wire: { dir: "in" | "out"; bytes: Bytes }[] | null = null;

  constructor(private readonly store: Store, private readonly url: string) {
    // The browser knows when the network goes: drop the socket at once (sends wait in the
    // outbox) and reconnect as soon as it is back, instead of waiting for timeouts.
    globalThis.addEventListener?.("offline", () => this.dropConnection());
    globalThis.addEventListener?.("online", () => {
      if (this.id && !this.ws && !this.closedByUs) {
        this.attempt = 0;
        void this.reconnectNow();
      }
    });
  }

  private reconnecting = false;
  private transmitting = new Set<string>();
  private givenUp = new Set<string>();
  private sendChains = new Map<number, Promise<unknown>>();
  private loaded = false;

  private async reconnectNow(): Promise<void> {
    if (this.reconnecting || this.ws) return;
    this.reconnecting = true;
    try {
      await this.login();
    } catch {
      this.reconnecting = false;
      this.reconnectLater();
      return;
    }
    this.reconnecting = false;
  }

  onChange(f: () => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  private changed(): void {
    for (const f of this.listeners) f();
  }

  // ------------------------------------------------------------------ connection

  private open(): Promise<Frame> {
    this.status = "connecting";
    this.changed();
    const ws = new WebSocket(this.url, "chatd.v1");
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    let gotChallenge: (f: Frame) => void = () => {};
    let failed: (e: Error) => void = () => {};
    this.challenge = new Promise((res, rej) => {
      gotChallenge = res;
      failed = rej;
    });
    ws.onmessage = (ev) => {
      if (!(ev.data instanceof ArrayBuffer)) return;
      const bytes = new Uint8Array(ev.data);
      this.wire?.push({ dir: "in", bytes });
      let f: Frame;
      try {
        f = decodeServer(bytes);
      } catch (e) {
        this.warn(`undecodable frame from the server: ${(e as Error).message}`);
        return;
      }
      if (f.t === "challenge") gotChallenge(f);
      else this.onFrame(f);
    };
    ws.onclose = (ev) => {
      failed(new Error(`connection closed (${ev.code})`));
      if (this.ws !== ws) return; // dropped already (dropConnection)
      this.lost();
      if (!this.closedByUs && !this.reconnecting && this.id && ev.code !== 1008 && ev.code !== 1009) this.reconnectLater();
    };
    return this.challenge;
  }

  private lost(): void {
    for (const w of this.waiting.values()) w.reject(new Error("connection lost"));
    this.waiting.clear();
    this.syncing.clear();
    this.ws = null;
    this.status = "offline";
    this.changed();
  }

  /** The network went away: the socket is given up at once (its close handshake cannot complete
   * offline), sends wait in the outbox, and the `online` event reconnects. */
  private dropConnection(): void {
    const ws = this.ws;
    if (!ws) return;
    this.lost();
    ws.close(1000);
  }

  private reconnectLater(): void {
    const delay = Math.random() * Math.min(30_000, 500 * 2 ** this.attempt++);
    setTimeout(() => void this.reconnectNow(), delay);
  }

  close(): void {
    this.closedByUs = true;
    this.ws?.close(1000);
  }

  private send(frame: Frame): void {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) throw new Error("not connected");
    const bytes = encode(frame);
    this.wire?.push({ dir: "out", bytes });
    this.ws.send(bytes as Uint8Array<ArrayBuffer>);
  }

  /** One request; resolves with its answer frame, rejects with ServerError. */
  call(frame: Omit<Frame, "id">): Promise<Frame> {
    const id = this.nextId++;
    if (this.nextId > 0xffffffff) this.nextId = 1;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      try {
        this.send({ ...frame, id } as unknown as Frame);
      } catch (e) {
        this.waiting.delete(id);
        reject(e);
      }
    });
  }

  private onFrame(f: Frame): void {
    if (typeof f["re"] === "number" && f.t !== "synced") {
      const w = this.waiting.get(f["re"]);
      if (w) {
        this.waiting.delete(f["re"]);
        if (f.t === "error") w.reject(new ServerError(f["code"], f["msg"]));
        else w.resolve(f);
      }
      if (f.t !== "ack") return;
    }
    switch (f.t) {
      case "deliver":
        this.receive(f["conv"], f);
        break;
      case "ack":
        break;
      case "synced":
        this.onSynced(f);
        break;
      case "to_device_event":
        this.queueToDevice([f]);
        break;
      case "receipt_event": {
        const c = this.convs.get(f["conv"]);
        if (c && f["account"] !== this.id?.account) {
          if (f["type"] === "read") c.peerRead = Math.max(c.peerRead, f["seq"]);
          c.peerDelivered = Math.max(c.peerDelivered, f["seq"]);
          this.changed();
        }
        break;
      }
      case "typing_event": {
        const c = this.convs.get(f["conv"]);
        if (c) {
          if (f["on"]) c.typing.add(f["account"]);
          else c.typing.delete(f["account"]);
          this.changed();
        }
        break;
      }
      case "presence":
        if (f["online"]) this.online.add(f["account"]);
        else this.online.delete(f["account"]);
        this.changed();
        break;
      case "device_list_changed":
        this.stale.add(f["account"]);
        break;
      case "resync":
        void this.catchUp();
        break;
      case "request_event":
        this.gotRequest(f["request"]);
        break;
      case "invitation_answered":
        this.answered(f);
        break;
    }
  }

  // ------------------------------------------------------------------ register / login

  async register(handle: string, name: string): Promise<void> {
    const ch = await this.open();
    const signing = await C.ed25519Generate(false);
    const sig = await C.sign(signing, loginPayload(ch["server"], ch["nonce"], signing.publicKey));
    const w = await this.call({ t: "register", handle, name, device_key: signing.publicKey, device_name: "web", sig });
    this.serverClock = w["server_time"] - Date.now();
    this.id = { server: ch["server"], account: w["account"], device: w["device"], handle: w["handle"], name, signing };
    await this.store.put("identity", this.id);
    this.handles.set(this.id.account, this.id.handle);
    // End-to-end keys (E2E.md 4), then the account's master key and first device list (3).
    this.prekeys = await X.newDevice(signing, ONE_TIME);
    await this.store.putMany([["prekeys", this.prekeys], ["spk_at", Date.now()]]);
    await this.uploadKeys(this.prekeys, true, this.prekeys.oneTime.map((k) => ({ kid: k.kid, key: k.pair.publicKey })));
    const master = await C.ed25519Generate(false);
    await this.store.put("master", master);
    await this.publishDeviceList(master);
    this.attempt = 0;
    this.status = "online";
    await this.catchUp();
  }

  /** Log in with the identity kept in IndexedDB; false when there is none. */
  async login(): Promise<boolean> {
    const id = this.id ?? (await this.store.get<Identity>("identity"));
    if (!id) return false;
    this.id = id;
    this.handles.set(id.account, id.handle);
    this.prekeys = (await this.store.get<X.PreKeyState>("prekeys")) ?? null;
    if (!this.loaded) await this.loadLocal();
    this.loaded = true;
    const ch = await this.open();
    if (ch["server"] !== id.server) {
      this.closedByUs = true;
      this.ws?.close(1000);
      throw new Error(`this server calls itself "${ch["server"]}", not "${id.server}": not signing in`);
    }
    const sig = await C.sign(id.signing, loginPayload(ch["server"], ch["nonce"], id.signing.publicKey));
    const w = await this.call({ t: "login", device: id.device, sig });
    this.serverClock = w["server_time"] - Date.now();
    this.attempt = 0;
    this.status = "online";
    this.changed();
    await this.catchUp();
    await this.maintainPrekeys().catch((e) => this.warn(`prekeys: ${(e as Error).message}`));
    return true;
  }

  private async loadLocal(): Promise<void> {
    const convs = (await this.store.get<Conv[]>("convs")) ?? [];
    for (const c of convs) this.convs.set(c.conv, { ...c, typing: new Set() });
    for (const [a, h] of (await this.store.get<[number, string][]>("handles")) ?? []) this.handles.set(a, h);
    this.outbox = (await this.store.get<Pending[]>("outbox")) ?? [];
    this.changed();
  }

  private saveConvs(): Promise<unknown> {
    const list = [...this.convs.values()].map((c) => ({ ...c, typing: undefined }));
    return this.store.putMany([
      ["convs", list],
      ["handles", [...this.handles]],
    ]);
  }

  /** After login: replace the signed prekeys once they are a week old (the previous ones keep
   * opening sessions made from older bundles) and top the one-time prekeys back up (E2E.md 4.6). */
  private async maintainPrekeys(): Promise<void> {
    let s = (await this.store.get<X.PreKeyState>("prekeys"))!;
    const since = (await this.store.get<number>("spk_at")) ?? 0;
    if (Date.now() - since > 7 * 86_400_000) {
      if (since) {
        let kid = s.nextKid;
        const spk = await X.newSignedPrekey(s.identity, kid++);
        const pq = s.pq ? await X.newPqPrekey(s.identity, kid++) : null;
        s = { ...s, prevSpk: s.spk, spk, prevPq: s.pq, pq, nextKid: kid };
        await this.store.put("prekeys", s);
        await this.uploadKeys(s, true, []);
      }
      await this.store.put("spk_at", Date.now());
    }
    const count = await this.uploadKeys(s, false, []);
    if (count >= ONE_TIME / 2) return;
    // Read again after the wait: a message may have used a one-time prekey meanwhile.
    const [next, added] = await X.addOneTime((await this.store.get<X.PreKeyState>("prekeys"))!, ONE_TIME - count);
    await this.store.put("prekeys", next);
    this.prekeys = next;
    await this.uploadKeys(next, false, added);
  }

  private async uploadKeys(s: X.PreKeyState, prekeys: boolean, oneTime: X.OneTimePrekey[]): Promise<number> {
    const f = await this.call({
      t: "upload_keys",
      identity_key: s.identity.ik.publicKey,
      identity_sig: s.identity.identity_sig,
      signed_prekey: prekeys ? { kid: s.spk.kid, key: s.spk.pair.publicKey, sig: s.spk.sig } : undefined,
      pq_prekey: prekeys && s.pq ? { kid: s.pq.kid, key: s.pq.public, sig: s.pq.sig } : undefined,
      one_time: oneTime,
    });
    return f["one_time"];
  }

  private async publishDeviceList(master: C.SigningKey, extra: DL.DeviceEntry[] = []): Promise<void> {
    const id = this.id!;
    const s = this.prekeys!;
    // The newest list the master key signed (ours, or a newer one on the server): its version + 1.
    let pinned = this.trusts.get(id.account) ?? (await this.store.get<Trust>(`trust:${id.account}`));
    if (pinned) {
      try {
        await this.devices(id.account, true);
        pinned = this.trusts.get(id.account) ?? pinned;
      } catch {
        /* a list the master key did not sign: start from ours */
      }
    }
    const version = (pinned?.version ?? 0) + 1;
    const entries = new Map<number, DL.DeviceEntry>((pinned?.devices ?? []).map((d) => [d.device, d]));
    entries.set(id.device, { device: id.device, signing_key: id.signing.publicKey, identity_key: s.identity.ik.publicKey, pq: !!s.pq });
    for (const e of extra) entries.set(e.device, e);
    const list: DL.DeviceList = { account: id.account, version, master_key: master.publicKey, devices: [...entries.values()] };
    const [body, sig] = await DL.signDeviceList(list, master);
    await this.call({ t: "put_device_list", body, sig, master_key: master.publicKey, version });
    const trust: Trust = { master: master.publicKey, version, devices: list.devices, verified: true };
    this.trusts.set(id.account, trust);
    await this.store.put(`trust:${id.account}`, trust);
  }

  // ------------------------------------------------------------------ a second device

  /** On the new browser: make this device's login key (kept until linked) and return it, for
   * the user to approve on a device of the account (E2E.md 3.2). */
  async prepareLink(): Promise<Bytes> {
    let key = await this.store.get<C.SigningKey>("pending_link");
    if (!key) {
      key = await C.ed25519Generate(false);
      await this.store.put("pending_link", key);
    }
    return key.publicKey;
  }

  /** On a device of the account: approve the new device whose login key the user compared.
   * Returns the pairing code the new device needs (handle, approver, approval signature). The
   * device holding the master key lists the new device once it has published keys signed by
   * exactly this login key, and never another key. */
  async approveDevice(deviceKey: Bytes): Promise<string> {
    const id = this.id!;
    if (deviceKey.length !== 32) throw new Error("a device key is 64 hex digits");
    const approval = await C.sign(id.signing, deviceApprovalPayload(id.server, id.account, deviceKey));
    await this.store.put(`approved:${hex(deviceKey)}`, true);
    void this.listApprovedDevice(deviceKey);
    return `${id.handle} ${id.device} ${hex(approval)}`;
  }

  private async listApprovedDevice(deviceKey: Bytes): Promise<void> {
    const master = await this.store.get<C.SigningKey>("master");
    if (!master) return; // the device holding the master key lists it
    for (let i = 0; i < 240; i++) {
      await new Promise((r) => setTimeout(r, 500));
      if (this.status !== "online") continue;
      let got: Frame;
      try {
        got = await this.call({ t: "claim_keys", account: this.id!.account });
      } catch {
        continue;
      }
      const b = (got["bundles"] as Frame[]).find((x) => ctEqual(x["signing_key"], deviceKey));
      if (!b?.["signed_prekey"]) continue;
      await X.verifyBundle(b as unknown as X.Bundle, deviceKey);
      await this.publishDeviceList(master, [{ device: b["device"], signing_key: deviceKey, identity_key: b["identity_key"], pq: !!b["pq_prekey"] }]);
      this.changed();
      return;
    }
  }

  /** On the new browser: link it with the pairing code from the approving device. */
  async link(code: string, name: string): Promise<void> {
    const [handle, approver, approvalHex] = code.trim().split(/\s+/);
    if (!handle || !approver || !approvalHex) throw new Error("a pairing code is: handle, device, approval");
    const signing = await this.store.get<C.SigningKey>("pending_link");
    if (!signing) throw new Error("make this browser's key first");
    const ch = await this.open();
    const sig = await C.sign(signing, loginPayload(ch["server"], ch["nonce"], signing.publicKey));
    const w = await this.call({ t: "link_device", handle, device_key: signing.publicKey, device_name: name, approver: Number(approver), approval: unhex(approvalHex), sig });
    this.id = { server: ch["server"], account: w["account"], device: w["device"], handle: w["handle"], name: handle, signing };
    await this.store.putMany([["identity", this.id], ["pending_link", undefined]]);
    this.handles.set(this.id.account, this.id.handle);
    this.prekeys = await X.newDevice(signing, ONE_TIME);
    await this.store.putMany([["prekeys", this.prekeys], ["spk_at", Date.now()]]);
    await this.uploadKeys(this.prekeys, true, this.prekeys.oneTime.map((k) => ({ kid: k.kid, key: k.pair.publicKey })));
    this.attempt = 0;
    this.status = "online";
    this.loaded = true;
    await this.catchUp();
  }

  // ------------------------------------------------------------------ catch-up and receiving

  private async catchUp(): Promise<void> {
    // SPEC.md 8.4: pages ascending by conversation id, while `more`.
    for (let after = 0; ; ) {
      const got = await this.call({ t: "list_convs", after });
      const page = got["convs"] as Frame[];
      for (const info of page) this.upsertConv(info);
      if (!got["more"] || !page.length) break;
      after = page[page.length - 1]!["conv"];
    }
    await this.saveConvs();
    this.changed();
    await this.drainToDevice();
    await this.loadConsent();
    for (const c of this.convs.values()) {
      void this.refreshMembers(c.conv);
      this.syncConv(c.conv);
    }
    const accounts = [...new Set([...this.convs.values()].flatMap((c) => c.members.map((m) => m.account)))];
    if (accounts.length) {
      const p = await this.call({ t: "get_presence", accounts: accounts.slice(0, 256) });
      for (const x of p["presence"] as Frame[]) if (x["online"]) this.online.add(x["account"]);
    }
    // Unacked sends go out again with their cmids (SPEC.md 7.3: idempotent).
    for (const p of [...this.outbox]) void this.transmit(p);
    this.changed();
  }

  // ------------------------------------------------------------------ consent (SPEC.md 18)

  /** Pending requests and invitations, and the blocked accounts, a page at a time. */
  private async loadConsent(): Promise<void> {
    const requests = new Map<number, Frame>();
    for (let after = 0; ; ) {
      const got = await this.call({ t: "list_requests", after, limit: 50 });
      const page = got["requests"] as Frame[];
      for (const r of page) requests.set(r["conv"], r);
      if (!got["more"] || !page.length) break;
      after = page[page.length - 1]!["conv"];
    }
    this.requests = requests;
    for (const r of requests.values()) this.handles.set(r["sender"], r["handle"]);
    this.blocked = new Set(await this.accounts("blocked"));
    this.invited = new Map(((await this.store.get<[number, number[]][]>("invited")) ?? []).map(([c, a]) => [c, new Set(a)]));
    // A direct request's messages can be read before answering (18.3): learn it like any other.
    for (const r of requests.values()) if (r["kind"] === "direct" && !this.convs.has(r["conv"])) await this.learnConv(r["conv"]);
    this.changed();
    await this.loadAnswers().catch(() => {}); // a server older than list_answers: nothing to read
  }

  /** SPEC.md 18.3: someone we invited answered (pushed, or read at login: `list_answers`). An
   * accept in a conversation with a signed log waits for our signed add: sent now (another
   * device may have sent it). A decline is dismissed once seen: no device is told it again. */
  private answered(f: Frame): void {
    if (f["answer"] === "accept" && !f["joined"]) void this.invite(f["conv"], f["handle"]).catch(() => {});
    else if (this.invited.get(f["conv"])?.delete(f["account"])) void this.saveInvited().then(() => this.changed());
    if (f["answer"] === "decline") void this.call({ t: "dismiss_answer", conv: f["conv"], account: f["account"] }).catch(() => {});
  }

  /** The answers to our invitations that came while no device of ours was connected (SPEC.md 13
   * step 11), handled as if pushed now. */
  private async loadAnswers(): Promise<void> {
    const answers: Frame[] = [];
    for (let after = 0, afterAccount = 0; ; ) {
      const got = await this.call({ t: "list_answers", after, after_account: afterAccount, limit: 50 });
      const page = got["answers"] as Frame[];
      answers.push(...page);
      if (!got["more"] || !page.length) break;
      after = page[page.length - 1]!["conv"];
      afterAccount = page[page.length - 1]!["account"];
    }
    for (const a of answers) this.answered({ ...a, joined: false });
  }

  /** One page of this account's contacts or blocked accounts (SPEC.md 18.1, 11.5): ascending
   * account ids above `after`; `more`: the next page starts after the last one. */
  async contactsPage(which: "contacts" | "blocked", after = 0, limit = 50): Promise<{ accounts: number[]; more: boolean }> {
    const got = await this.call({ t: "list_contacts", which, after, limit });
    return { accounts: got["accounts"], more: got["more"] };
  }

  private async accounts(which: "contacts" | "blocked"): Promise<number[]> {
    const out: number[] = [];
    for (;;) {
      const got = await this.call({ t: "list_contacts", which, after: out[out.length - 1] ?? 0 });
      out.push(...(got["accounts"] as number[]));
      if (!got["more"] || !(got["accounts"] as number[]).length) return out;
    }
  }

  private async learnConv(conv: number): Promise<void> {
    const got = await this.call({ t: "get_conv", conv });
    this.upsertConv(got["info"]);
    await this.saveConvs();
    this.syncConv(conv);
  }

  private gotRequest(r: Frame): void {
    this.requests.set(r["conv"], r);
    this.handles.set(r["sender"], r["handle"]);
    this.changed();
    if (r["kind"] === "direct" && !this.convs.has(r["conv"])) this.serial(r["conv"], () => this.learnConv(r["conv"]));
  }

  /** Whether `conv` is a pending request or invitation of this account (not yet accepted). */
  isRequest(conv: number): boolean {
    return this.requests.has(conv);
  }

  /** Delete message `seq` for everyone (SPEC.md 18.9): our own, or as an owner or admin a member's.
   * The server keeps a tombstone in its place; every member gets a `deleted` system message. */
  async deleteForEveryone(conv: number, seq: number): Promise<void> {
    await this.call({ t: "delete_message", conv, seq });
  }

  /** Accept, delete or block (SPEC.md 18.3). Deleting leaves silently; the sender is not told. */
  async answerRequest(conv: number, answer: "accept" | "delete" | "block"): Promise<void> {
    const r = this.requests.get(conv);
    await this.call({ t: "answer_request", conv, answer });
    this.requests.delete(conv);
    if (answer === "block" && r) this.blocked.add(r["sender"]);
    const c = this.convs.get(conv);
    if (answer !== "accept") {
      this.convs.delete(conv);
      await this.saveConvs();
    } else if (r?.["kind"] === "direct" && c) {
      // From now on the requester sees this account's receipts: tell it what was read.
      if (c.cursor > 0) await this.call({ t: "receipt", conv, type: "read", seq: c.cursor }).catch(() => {});
      c.read = c.cursor;
      await this.askPresence(c.members.map((m) => m.account));
      await this.saveConvs();
    } else if (r && !this.convs.has(conv)) {
      // A group with a signed log: joined when an owner or admin adds this account (its
      // `joined` message then arrives like any other).
      this.awaitingAdd.set(conv, r);
    }
    this.changed();
  }

  async block(account: number): Promise<void> {
    await this.call({ t: "block", account });
    this.blocked.add(account);
    for (const [conv, r] of this.requests) if (r["sender"] === account) this.requests.delete(conv);
    this.online.delete(account);
    this.changed();
  }

  async unblock(account: number): Promise<void> {
    await this.call({ t: "unblock", account });
    this.blocked.delete(account);
    this.changed();
  }

  getPrivacy(): Promise<Frame> {
    return this.call({ t: "get_privacy" });
  }

  setPrivacy(settings: { add_me?: string; presence?: string; last_seen?: string; find_me?: string }): Promise<Frame> {
    return this.call({ t: "set_privacy", ...settings });
  }

  private saveInvited(): Promise<unknown> {
    return this.store.put("invited", [...this.invited].filter(([, a]) => a.size).map(([c, a]) => [c, [...a]]));
  }

  private upsertConv(info: Frame): Conv {
    let c = this.convs.get(info["conv"]);
    if (!c) {
      c = {
        conv: info["conv"], kind: info["kind"], title: info["title"], lastSeq: info["last_seq"], role: info["role"],
        read: info["read"] ?? 0, cursor: 0, members: [], messages: [], typing: new Set(), peerRead: 0, peerDelivered: 0,
      };
      this.convs.set(c.conv, c);
    }
    this.awaitingAdd.delete(c.conv);
    // SPEC.md 7.8: history starts at this account's own join; nothing before it will come.
    if (info["joined"] > 0) this.advanceTo(c, info["joined"] - 1);
    c.title = info["title"];
    c.lastSeq = Math.max(c.lastSeq, info["last_seq"]);
    c.role = info["role"];
    c.read = Math.max(c.read, info["read"] ?? 0);
    const members = info["members"] as Frame[] | undefined;
    if (members?.length) {
      c.members = members.map((m) => ({ account: m["account"], handle: m["handle"], role: m["role"], access: m["access"] }));
      for (const m of members) this.handles.set(m["account"], m["handle"]);
    }
    return c;
  }

  async refreshMembers(conv: number): Promise<void> {
    const got = await this.call({ t: "get_conv", conv });
    const c = this.upsertConv(got["info"]);
    const invited = this.invited.get(conv);
    if (invited && c.members.filter((m) => invited.delete(m.account)).length) await this.saveInvited();
    await this.askPresence(c.members.map((m) => m.account));
    this.changed();
  }

  /** Presence of accounts this device shares a conversation with (SPEC.md 10.3); later
   * changes arrive as `presence` events. */
  private async askPresence(accounts: number[]): Promise<void> {
    const others = accounts.filter((a) => a !== this.id?.account).slice(0, 256);
    if (!others.length) return;
    const p = await this.call({ t: "get_presence", accounts: others }).catch(() => null);
    for (const x of (p?.["presence"] as Frame[] | undefined) ?? []) {
      if (x["online"]) this.online.add(x["account"]);
      else this.online.delete(x["account"]);
    }
  }

  private syncConv(conv: number): void {
    const c = this.convs.get(conv);
    if (!c || this.syncing.has(conv)) return;
    this.syncing.add(conv);
    this.call({ t: "sync", conv, after: c.cursor }).catch(() => this.syncing.delete(conv));
  }

  private onSynced(f: Frame): void {
    const conv = f["conv"];
    this.syncing.delete(conv);
    this.serial(conv, async () => {
      const c = this.convs.get(conv);
      if (c && c.cursor < f["seq"]) await this.fetchGap(conv, f["seq"]);
    });
  }

  /** SPEC.md 13 step 4, the receive rule, one conversation at a time. */
  private receive(conv: number, f: Frame): void {
    if (!this.convs.has(conv)) {
      // A conversation this device just joined: learn it, then take its messages in order.
      this.serial(conv, async () => {
        const got = await this.call({ t: "get_conv", conv });
        const c = this.upsertConv(got["info"]);
        await this.askPresence(c.members.map((m) => m.account));
        await this.saveConvs();
        this.changed();
      });
    }
    this.serial(conv, async () => {
      const c = this.convs.get(conv)!;
      const seq: number = f["seq"];
      c.lastSeq = Math.max(c.lastSeq, seq);
      if (seq <= c.cursor) return;
      let buf = this.buffers.get(conv);
      if (!buf) this.buffers.set(conv, (buf = new Map()));
      buf.set(seq, f);
      await this.drain(c);
      if (buf.size && !this.syncing.has(conv)) await this.fetchGap(conv, Math.min(...buf.keys()) - 1);
    });
  }

  /** Nothing below `seq` + 1 will ever come (SPEC.md 7.8): the cursor moves up to it. */
  private advanceTo(c: Conv, seq: number): void {
    if (seq <= c.cursor) return;
    c.cursor = seq;
    const buf = this.buffers.get(c.conv);
    for (const s of buf?.keys() ?? []) if (s <= seq) buf!.delete(s);
  }

  /** This account's own `joined` message: history starts there (SPEC.md 7.8), as the Python
   * core does it (max(cursor, joined - 1)). */
  private ownJoin(c: Conv, f: Frame): void {
    if (f["kind"] !== "system" || f["sender"] !== 0 || f["seq"] <= c.cursor + 1) return;
    try {
      const ev = decodeContent("system", f["body"]);
      if (ev["event"] === "joined" && ev["account"] === this.id?.account) this.advanceTo(c, f["seq"] - 1);
    } catch {
      /* not a system event this page reads: the receive rule decides */
    }
  }

  private async drain(c: Conv): Promise<void> {
    const buf = this.buffers.get(c.conv);
    if (!buf) return;
    for (const f of [...buf.values()]) this.ownJoin(c, f);
    let dirty = false;
    let written = false; // by a member, not the server
    for (let next = buf.get(c.cursor + 1); next; next = buf.get(c.cursor + 1)) {
      buf.delete(c.cursor + 1);
      await this.apply(c, next);
      c.cursor = next["seq"];
      dirty = true;
      written ||= next["kind"] !== "system";
    }
    if (dirty) {
      await this.saveConvs();
      this.changed();
      // A delivered receipt says a member's message arrived; the server's own messages need
      // none (and a stranger's new direct conversation is not known as a request until just
      // after its `created` message: a receipt for it would reach the requester, SPEC.md 18.2).
      if (written) void this.call({ t: "receipt", conv: c.conv, type: "delivered", seq: c.cursor }).catch(() => {});
    }
  }

  private async fetchGap(conv: number, upTo: number): Promise<void> {
    const c = this.convs.get(conv)!;
    while (c.cursor < upTo) {
      const page = await this.call({ t: "fetch", conv, after: c.cursor, limit: 500 });
      const msgs = page["messages"] as Frame[];
      if (!msgs.length) break;
      let buf = this.buffers.get(conv);
      if (!buf) this.buffers.set(conv, (buf = new Map()));
      for (const m of msgs) if (m["seq"] > c.cursor) buf.set(m["seq"], { ...m, conv });
      const before = c.cursor;
      await this.drain(c);
      if (c.cursor === before) break;
    }
  }

  private serial(conv: number, f: () => Promise<void>): void {
    const prev = this.chains.get(conv) ?? Promise.resolve();
    const next = prev.then(f).catch((e) => this.warn(`conversation ${conv}: ${(e as Error).message}`));
    this.chains.set(conv, next);
  }

  private async apply(c: Conv, f: Frame): Promise<void> {
    const seq: number = f["seq"];
    const own = f["sender"] === this.id!.account && f["device"] === this.id!.device;
    const msg: Msg = { seq, ts: f["ts"], sender: f["sender"], device: f["device"], cmid: f["cmid"], kind: f["kind"], content: null, e2e: false };
    if (own && f["cmid"]) {
      const mine = await this.store.get<Msg>(`plain:${c.conv}:${f["cmid"]}`);
      if (mine) {
        this.addMessage(c, { ...mine, seq, ts: f["ts"], pending: false });
        return;
      }
    }
    try {
      if (f["kind"] === "system") {
        msg.content = decodeContent("system", f["body"]);
        await this.applySystem(c, seq, msg.content);
      } else if (f["kind"] === "e2e") {
        msg.e2e = true;
        // History a sync replays had its keys delivered before (the to-device queue is drained
        // first): only a live message waits for a key that may still be on its way.
        const d = await this.decryptMessage(c.conv, seq, f["sender"], f["device"], f["body"], !this.syncing.has(c.conv), true, f["fc"]);
        msg.kind = d.kind;
        msg.content = d.content;
        msg.replyTo = d.replyTo;
        msg.reportable = d.reportable;
      } else if (f["kind"] === "payment.receipt") {
        msg.content = decodeContent("payment.receipt", f["body"]);
        await this.checkReceipt(c.conv, f, msg.content).catch((e) => (msg.error = `receipt refused: ${(e as Error).message}`));
      } else {
        msg.content = decodeContent(f["kind"], f["body"]);
        msg.error = "not end-to-end encrypted";
      }
    } catch (e) {
      msg.error = (e as Error).message;
      if (msg.e2e && e instanceof C.DecryptError && !(e instanceof C.ReplayError)) {
        msg.raw = f["body"];
        msg.fc = f["fc"];
      }
    }
    this.addMessage(c, msg);
  }

  /** A sender key arrived after messages under it were given up on: read them now. */
  private retryWith(conv: number, sender: number, device: number, keyId: number): void {
    this.serial(conv, async () => {
      const c = this.convs.get(conv);
      if (!c) return;
      let changed = false;
      for (const m of c.messages) {
        if (!m.raw || m.sender !== sender || m.device !== device || SK.keyIdOf(m.raw) !== keyId) continue;
        try {
          const d = await this.decryptMessage(conv, m.seq, sender, device, m.raw, false, false, m.fc);
          Object.assign(m, { kind: d.kind, content: d.content, replyTo: d.replyTo, reportable: d.reportable, error: undefined, raw: undefined, fc: undefined });
          changed = true;
        } catch {
          /* still unreadable */
        }
      }
      if (changed) {
        await this.saveConvs();
        this.changed();
      }
    });
  }

  private addMessage(c: Conv, m: Msg): void {
    const i = c.messages.findIndex((x) => (m.cmid && x.cmid === m.cmid && x.sender === m.sender) || x.seq === m.seq);
    if (i >= 0) c.messages[i] = m;
    else c.messages.push(m);
    c.messages.sort((a, b) => (a.pending ? 1 : 0) - (b.pending ? 1 : 0) || a.seq - b.seq);
    if (c.messages.length > 1000) c.messages.splice(0, c.messages.length - 1000);
  }

  private async applySystem(c: Conv, seq: number, ev: Content): Promise<void> {
    if (ev["event"] === "joined" || ev["event"] === "left" || ev["event"] === "removed" || ev["event"] === "created") void this.refreshMembers(c.conv).catch(() => {});
    if (ev["event"] === "renamed") c.title = ev["title"] as string;
    const entry = ev["entry"] as Bytes;
    if (!entry?.length) return;
    // A signed change (E2E.md 15): apply it now when it follows the verified head.
    const state = this.logs.get(c.conv) ?? (await this.store.get<M.ChainState>(`log:${c.conv}`)) ?? null;
    try {
      const e = M.decodeEntry(entry);
      if (state && e.epoch <= state.epoch) return;
      if ((state ? state.epoch + 1 : 1) !== e.epoch) {
        this.logs.delete(c.conv);
        return;
      }
      const key = await this.deviceKey(e.actor, e.device);
      await M.verifySignature(entry, ev["sig"] as Bytes, key);
      const next = await M.apply(state, e, entry, ev["sig"] as Bytes, seq);
      this.logs.set(c.conv, next);
      await this.store.put(`log:${c.conv}`, next);
      if (e.op === "remove" || e.op === "leave") await this.store.del(`out:${c.conv}`);
      if (e.op === "remove" || e.op === "leave" || e.op === "access") await this.store.del(`out:${c.conv}:addressed`);
    } catch (e) {
      this.warn(`conversation ${c.conv}: membership change at ${seq} refused: ${(e as Error).message}`);
    }
  }

  /** The conversation's membership, verified from its signed log (E2E.md 15.2). */
  async verifiedLog(conv: number): Promise<M.ChainState> {
    let state = this.logs.get(conv) ?? (await this.store.get<M.ChainState>(`log:${conv}`)) ?? null;
    for (;;) {
      const page = await this.call({ t: "get_member_log", conv, after: state?.epoch ?? 0, limit: 500 });
      for (const item of page["entries"] as Frame[]) {
        if (state && item["epoch"] <= state.epoch) continue;
        const e = M.decodeEntry(item["body"]);
        await M.verifySignature(item["body"], item["sig"], await this.deviceKey(e.actor, e.device));
        state = await M.apply(state, e, item["body"], item["sig"], item["seq"]);
      }
      if (!page["more"] || !(page["entries"] as Frame[]).length) break;
    }
    if (!state) throw new C.UntrustedKeyError("this conversation has no signed membership log: its members cannot be verified");
    this.logs.set(conv, state);
    await this.store.put(`log:${conv}`, state);
    return state;
  }

  private async deviceKey(account: number, device: number): Promise<Bytes> {
    let entry = (await this.devices(account)).find((d) => d.device === device);
    if (!entry) entry = (await this.devices(account, true)).find((d) => d.device === device);
    if (!entry) throw new C.UntrustedKeyError(`device ${device} is not on account ${account}'s list`);
    return entry.signing_key;
  }

  /** An account's devices by its signed list; the master key is pinned on first use (E2E.md 3). */
  async devices(account: number, refresh = false): Promise<DL.DeviceEntry[]> {
    const pinned = this.trusts.get(account) ?? (await this.store.get<Trust>(`trust:${account}`));
    if (pinned && !refresh && !this.stale.has(account)) {
      this.trusts.set(account, pinned);
      return pinned.devices;
    }
    const got = await this.call({ t: "get_device_list", account });
    if (!got["version"]) {
      if (pinned) return pinned.devices;
      throw new C.CryptoError(`account ${account} has published no device list`);
    }
    this.stale.delete(account);
    if (pinned) {
      try {
        const same = await DL.verifyDeviceList(got["body"], got["sig"], pinned.master, pinned.version - 1, account);
        if (same.version === pinned.version) return pinned.devices;
      } catch {
        /* verified below against the pinned version */
      }
    }
    const l = await DL.verifyDeviceList(got["body"], got["sig"], pinned?.master ?? null, pinned?.version ?? 0, account);
    const trust: Trust = { master: l.master_key, version: l.version, devices: l.devices, verified: pinned?.verified ?? false };
    this.trusts.set(account, trust);
    await this.store.put(`trust:${account}`, trust);
    return l.devices;
  }

  // ------------------------------------------------------------------ to-device

  private async drainToDevice(): Promise<void> {
    let after = (await this.store.get<number>("tid")) ?? 0;
    for (;;) {
      const b = await this.call({ t: "fetch_to_device", after, limit: 100 });
      const events = b["events"] as Frame[];
      if (events.length) {
        await this.queueToDevice(events);
        after = events[events.length - 1]!["tid"];
      }
      if (!b["more"]) break;
    }
  }

  private queueToDevice(items: Frame[]): Promise<unknown> {
    this.toDevice = this.toDevice.then(async () => {
      let last = (await this.store.get<number>("tid")) ?? 0;
      for (const it of items) {
        if (it["tid"] <= last) continue;
        try {
          await this.receiveToDevice(it);
        } catch (e) {
          this.warn(`to-device item from device ${it["device"]} of account ${it["sender"]} refused: ${(e as Error).message}`);
        }
        last = it["tid"];
        await this.store.put("tid", last);
      }
      await this.call({ t: "ack_to_device", up_to: last }).catch(() => {});
    });
    return this.toDevice;
  }

  private async receiveToDevice(it: Frame): Promise<void> {
    const sender: number = it["sender"];
    const device: number = it["device"];
    const entry = (await this.devices(sender, true)).find((d) => d.device === device);
    if (!entry) throw new C.UntrustedKeyError(`device ${device} is not on account ${sender}'s list`);
    const name = `sess:${sender}:${device}`;
    let session = (await this.store.get<PW.Session>(name)) ?? null;
    if (session && !PW.matches(session, entry.signing_key, entry.identity_key)) session = null;
    const prekeys = (await this.store.get<X.PreKeyState>("prekeys"))!;
    const bases = (await this.store.get<Bytes[]>("bases")) ?? [];
    const d = await PW.decrypt(session, prekeys, it["body"], {
      expectedSigningKey: entry.signing_key,
      expectedIdentityKey: entry.identity_key,
      seenBaseKeys: bases,
      requirePq: !!entry.pq && !!prekeys.pq,
    });
    const writes: [string, unknown][] = [["prekeys", d.prekeys], [name, d.session]];
    if (!bases.some((b) => ctEqual(b, d.session.baseKey))) writes.push(["bases", [...bases, d.session.baseKey].slice(-4000)]);
    let content: P.ToDevice | null = null;
    try {
      content = P.decodeToDevice(d.plaintext);
    } catch {
      /* the ratchet step is kept all the same */
    }
    let waiterKey = "";
    if (content?.t === "sender_key") {
      const r = await SK.receiver(content as unknown as SK.Distribution, sender, device);
      const k = `in:${r.conv}:${sender}:${device}:${r.keyId}`;
      if (!(await this.store.get(k))) writes.push([k, r]); // never replaced: a replay would rewind it
      waiterKey = k;
    }
    await this.store.putMany(writes);
    this.prekeys = d.prekeys;
    if (waiterKey) {
      for (const w of this.keyWaiters.get(waiterKey) ?? []) w();
      this.keyWaiters.delete(waiterKey);
      if (this.givenUp.delete(waiterKey)) {
        const [, conv, a, d, k] = waiterKey.split(":");
        this.retryWith(Number(conv), Number(a), Number(d), Number(k));
      }
    }
  }

  /** Decrypt message `seq` of `conv` (E2E.md 7) and keep its franking opening (17), once it is
   * checked against the commitment `fc` delivered with it. */
  private async decryptMessage(
    conv: number, seq: number, sender: number, device: number, body: Bytes, wait = true, inOrder = true, fc?: Bytes,
  ): Promise<{ kind: string; content: Content | null; replyTo?: number; reportable: boolean }> {
    const keyId = SK.keyIdOf(body);
    const name = `in:${conv}:${sender}:${device}:${keyId}`;
    let state = await this.store.get<SK.ReceiverState>(name);
    if (!state && wait && !this.givenUp.has(name)) {
      // The key may still be on its way as a to-device item (once per key: later messages
      // under a key that never came fail at once, e.g. history from before this device).
      await new Promise<void>((resolve) => {
        const list = this.keyWaiters.get(name) ?? [];
        list.push(resolve);
        this.keyWaiters.set(name, list);
        setTimeout(resolve, MISSING_KEY_WAIT_MS);
      });
      state = await this.store.get<SK.ReceiverState>(name);
    }
    if (!state) {
      this.givenUp.add(name);
      throw new C.DecryptError("no key for this message (it was not shared with this device)");
    }
    if (state.account !== sender) throw new C.DecryptError("sender key of another account");
    // The sender must have been a member, by the signed log, when the message was committed.
    let log = this.logs.get(conv) ?? (await this.store.get<M.ChainState>(`log:${conv}`));
    if (!log || !M.memberAt(log, sender, seq)) log = await this.verifiedLog(conv);
    if (!M.memberAt(log, sender, seq)) throw new C.UntrustedKeyError("sender was not a member by the signed membership log");
    const [plaintext, next] = await SK.decrypt(state, body);
    const p = P.decodePayload(plaintext);
    const view = (await this.store.get<T.View>(`tr:${conv}`)) ?? T.emptyView();
    let view2 = view;
    if (p.tr && inOrder) {
      const [v, found] = await T.observe(view, { me: this.id!.device, account: sender, device, seq, body, t: p.tr, epoch: log.epoch, head: log.head });
      view2 = v;
      for (const f of found) this.warn(`conversation ${conv}: transcript: ${f.problem} (device ${f.device})`);
    }
    const writes: [string, unknown][] = [[name, next], [`tr:${conv}`, view2]];
    // E2E.md 17: a franked message is shown only when its key opens the commitment delivered
    // with it (a report of it then verifies); otherwise its key is used up and nothing is kept.
    const reportable = !!p.fk && !!fc && (await FR.opens(fc, p.fk, FR.franked(p.kind, p.body)));
    if (reportable) writes.push([`open:${conv}:${seq}`, { kind: p.kind, body: p.body, fk: p.fk! } satisfies Opening]);
    await this.store.putMany(writes);
    if (p.fk && !reportable) throw new FR.BadCommitment("its franking commitment does not match its content (it could not be reported): not shown");
    let content: Content | null = null;
    try {
      content = decodeContent(p.kind, p.body);
    } catch {
      content = null;
    }
    return { kind: p.kind, content, replyTo: p.reply_to, reportable };
  }

  // ------------------------------------------------------------------ sending

  /** Send a message of `kind` to `conv` (SPEC.md 13 step 5): kept in the outbox at once, encrypted
   * (E2E.md 7) when connected, and resent with the same cmid and ciphertext until acked. */
  async sendContent(conv: number, kind: string, content: Content, replyTo?: number, to: number[] = []): Promise<void> {
    const c = this.convs.get(conv);
    if (!c) throw new Error("unknown conversation");
    const cmid = newCmid(this.serverClock === null ? null : Date.now() + this.serverClock);
    const p: Pending = { conv, cmid, kind: "e2e", body: null, inner: kind, content, replyTo, to: [...new Set(to)].sort((a, b) => a - b) };
    const mine: Msg = { seq: Number.MAX_SAFE_INTEGER, ts: Date.now(), sender: this.id!.account, device: this.id!.device, cmid, kind, content, e2e: true, replyTo, pending: true };
    this.outbox.push(p);
    await this.store.putMany([["outbox", this.outbox], [`plain:${conv}:${cmid}`, { ...mine, pending: false }]]);
    this.addMessage(c, mine);
    this.changed();
    if (this.status === "online") await this.transmit(p);
  }

  /** A text message, addressed (SPEC.md 16.3) to the members it mentions (`@handle`, and
   * `/command@handle`) and to the author of the message it replies to. */
  sendText(conv: number, text: string, replyTo?: number): Promise<void> {
    const c = this.convs.get(conv);
    const to = new Set<number>();
    for (const [, h] of text.matchAll(/@([a-z0-9][a-z0-9_.]{2,31})/g)) {
      const m = c?.members.find((x) => x.handle === h);
      if (m && m.account !== this.id?.account) to.add(m.account);
    }
    const target = replyTo ? c?.messages.find((x) => x.seq === replyTo) : undefined;
    if (target && target.sender && target.sender !== this.id?.account && c?.kind !== "direct") to.add(target.sender);
    return this.sendContent(conv, "text", { text }, replyTo, c?.kind === "direct" ? [] : [...to].slice(0, 16));
  }

  private fail(p: Pending, why: string): Promise<unknown> {
    this.outbox = this.outbox.filter((x) => x.cmid !== p.cmid);
    const m = this.convs.get(p.conv)?.messages.find((x) => x.cmid === p.cmid);
    if (m) m.error = `not sent: ${why}`;
    this.changed();
    return this.store.put("outbox", this.outbox);
  }

  /** One conversation's sends go out one at a time, in the order they were written: each is
   * encrypted after the previous one (sender-key iterations and transcript numbers follow the
   * seq order the others read them in). */
  private transmit(p: Pending): Promise<void> {
    const prev = this.sendChains.get(p.conv) ?? Promise.resolve();
    const next = prev.then(() => this.transmitOne(p));
    this.sendChains.set(p.conv, next.catch(() => {}));
    return next;
  }

  private async transmitOne(p: Pending): Promise<void> {
    if (this.transmitting.has(p.cmid) || !this.outbox.some((x) => x.cmid === p.cmid)) return;
    this.transmitting.add(p.cmid);
    try {
      if (!p.body) {
        try {
          [p.body, p.fc] = await this.encryptFor(p.conv, p.inner, encodeContent(p.inner, p.content), p.replyTo, p.to ?? []);
        } catch (e) {
          if (this.ws && !(e instanceof ServerError && RETRYABLE.has(e.code))) await this.fail(p, (e as Error).message);
          return; // offline: encrypted after the reconnect
        }
        await this.store.put("outbox", this.outbox); // the ciphertext and commitment, resent as they are
      }
      for (let attempt = 0; ; attempt++) {
        try {
          const ack = await this.call({ t: "send", conv: p.conv, cmid: p.cmid, kind: p.kind, body: p.body, to: p.to ?? [], fc: p.fc });
          this.outbox = this.outbox.filter((x) => x.cmid !== p.cmid);
          await this.store.put("outbox", this.outbox);
          if (p.inner === "attachment") {
            // The message references its blob: the server keeps it while the message lives.
            await this.call({ t: "attach_blob", conv: p.conv, blob: p.content["blob"], seq: ack["seq"] }).catch(() => {});
          }
          this.receive(p.conv, { t: "deliver", conv: p.conv, seq: ack["seq"], ts: ack["ts"], sender: this.id!.account, device: this.id!.device, cmid: p.cmid, kind: p.kind, body: p.body });
          return;
        } catch (e) {
          if (e instanceof ServerError && !RETRYABLE.has(e.code)) {
            await this.fail(p, e.message);
            return;
          }
          if (!this.ws) return; // sent again after the reconnect
          await new Promise((r) => setTimeout(r, Math.min(5000, 200 * 2 ** attempt)));
        }
      }
    } finally {
      this.transmitting.delete(p.cmid);
    }
  }

  /** The ciphertext of a message and its franking commitment (E2E.md 7, 17). */
  private async encryptFor(conv: number, kind: string, body: Bytes, replyTo?: number, to: number[] = []): Promise<[Bytes, Bytes]> {
    const id = this.id!;
    const log = await this.verifiedLog(conv);
    // E2E.md 7.1: a bot whose signed access is "addressed" never gets the main key; a message
    // addressed to such a bot goes under the second, "addressed" key, which every member
    // device gets, those bots included.
    const addressed = new Set(log.members.filter((m) => m.access === "addressed").map((m) => m.account));
    const useAddressed = to.some((a) => addressed.has(a));
    const recipients: [number, DL.DeviceEntry][] = [];
    for (const m of log.members) {
      if (addressed.has(m.account) && !useAddressed) continue;
      let devs: DL.DeviceEntry[];
      try {
        devs = await this.devices(m.account);
      } catch (e) {
        this.warn(`account ${m.account}: ${(e as Error).message}: its devices cannot read this message`);
        continue;
      }
      for (const d of devs) if (!(m.account === id.account && d.device === id.device)) recipients.push([m.account, d]);
    }
    const name = useAddressed ? `out:${conv}:addressed` : `out:${conv}`;
    const want = recipients.map(([a, d]) => `${a}:${d.device}`);
    let out = await this.store.get<Outbound>(name);
    // E2E.md 7: a new key when a holder is no longer a recipient, and after 1000 messages or 7 days.
    if (!out || out.sent >= 1000 || Date.now() - (out.created ?? 0) > 7 * 86_400_000 || !out.holders.every((h) => want.includes(h))) {
      out = { key: await SK.newSenderKey(conv), holders: [], sent: 0, created: Date.now() };
    }
    const missing = recipients.filter(([a, d]) => !out!.holders.includes(`${a}:${d.device}`));
    if (missing.length) {
      const dist = P.encodeToDevice({ t: "sender_key", ...SK.distribution(out.key) });
      for (const [a, d] of missing) if (await this.sendPairwise(a, d, dist)) out.holders.push(`${a}:${d.device}`);
    }
    const view = (await this.store.get<T.View>(`tr:${conv}`)) ?? T.emptyView();
    // Franked (E2E.md 17): a fresh key inside the ciphertext, the commitment beside it.
    const fk = FR.newKey();
    const fc = await FR.commit(fk, FR.franked(kind, body));
    const plaintext = P.encodePayload({ kind, body, ts: Date.now(), reply_to: replyTo, tr: T.outgoing(view, log.epoch, log.head), fk });
    const [ct, key] = await SK.encrypt(out.key, plaintext, id.account, id.device);
    await this.store.putMany([[name, { ...out, key, sent: out.sent + 1 }], [`tr:${conv}`, await T.sent(view, ct)]]);
    return [ct, fc];
  }

  private async sendPairwise(account: number, entry: DL.DeviceEntry, content: Bytes): Promise<boolean> {
    const name = `sess:${account}:${entry.device}`;
    let session = (await this.store.get<PW.Session>(name)) ?? null;
    if (session && !PW.matches(session, entry.signing_key, entry.identity_key)) session = null;
    if (!session) {
      const got = await this.call({ t: "claim_keys", account });
      const b = (got["bundles"] as Frame[]).find((x) => x["device"] === entry.device);
      if (!b?.["signed_prekey"]) return false;
      if (!ctEqual(b["identity_key"], entry.identity_key)) {
        this.warn(`device ${entry.device} of account ${account}: bundle identity key is not the listed one`);
        return false;
      }
      try {
        session = await PW.startSession(this.prekeys!.identity, b as unknown as X.Bundle, { expectedSigningKey: entry.signing_key, requirePq: !!entry.pq });
      } catch (e) {
        this.warn(`device ${entry.device} of account ${account}: ${(e as Error).message}`);
        return false;
      }
    }
    const [message, next] = await PW.encrypt(session, content);
    await this.store.put(name, next);
    await this.call({ t: "to_device", device: entry.device, body: message });
    return true;
  }

  // ------------------------------------------------------------------ attachments (SPEC.md 17, E2E.md 14)

  /** Encrypt `data` here, upload the ciphertext (tus), and send the key and digest end to end. */
  async sendFile(conv: number, data: Bytes, name: string, mediaType: string, extra: Content = {}): Promise<void> {
    const key = randomBytes(32);
    const { blob, digest } = await ATT.encrypt(key, data);
    const tok = await this.call({ t: "upload_token", conv, size: blob.length });
    const auth = { Authorization: `Bearer ${tok["token"]}`, "Tus-Resumable": "1.0.0" };
    const created = await fetch("/media/upload", { method: "POST", headers: { ...auth, "Upload-Length": String(blob.length) } });
    if (created.status !== 201) throw new Error(`upload refused: HTTP ${created.status}`);
    const location = created.headers.get("Location") ?? tok["path"];
    const put = await fetch(location, {
      method: "PATCH",
      headers: { ...auth, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0" },
      body: blob as Uint8Array<ArrayBuffer>,
    });
    if (put.status !== 204) throw new Error(`upload failed: HTTP ${put.status}`);
    await this.call({ t: "attach_blob", conv, blob: tok["blob"] });
    await this.sendContent(conv, "attachment", { blob: tok["blob"], key, digest, size: data.length, media_type: mediaType || "application/octet-stream", name: name.slice(-255), ...extra });
  }

  private files = new Map<string, Promise<string>>();

  /** A blob: URL of an attachment, downloaded, checked (length, digest) and decrypted here. */
  attachmentUrl(att: Content): Promise<string> {
    const blob = att["blob"] as string;
    let url = this.files.get(blob);
    if (!url) {
      url = (async () => {
        const tok = await this.call({ t: "download_token", blob });
        const r = await fetch(tok["path"], { headers: { Authorization: `Bearer ${tok["token"]}` } });
        if (r.status !== 200) throw new Error(`download refused: HTTP ${r.status}`);
        const data = await ATT.decrypt(att["key"] as Bytes, new Uint8Array(await r.arrayBuffer()), att["size"] as number, att["digest"] as Bytes);
        return URL.createObjectURL(new Blob([data as Uint8Array<ArrayBuffer>], { type: att["media_type"] as string }));
      })();
      url.catch(() => this.files.delete(blob));
      this.files.set(blob, url);
    }
    return url;
  }

  /** Forward message `m` of `from` into `to` (SPEC.md 16.6): decrypted here, its inner kind and
   * body encrypted again for the target conversation, with attribution. */
  async forward(from: number, m: Msg, to: number): Promise<void> {
    if (!m.content) throw new Error("nothing to forward");
    if (m.kind === "attachment") await this.call({ t: "attach_blob", conv: to, blob: m.content["blob"] });
    await this.sendContent(to, "forward", { sender: m.sender, ts: m.ts, kind: m.kind, body: encodeContent(m.kind, m.content), conv: from, seq: m.seq });
  }

  /** Report message `seq` of `conv` to the operator (SPEC.md 18.7): its franked plaintext and
   * key go to the server, which checks them against the tag it stored when the message was sent
   * and answers the account that really sent it. */
  async report(conv: number, seq: number, reason = ""): Promise<{ report: number; sender: number }> {
    const o = await this.store.get<Opening>(`open:${conv}:${seq}`);
    if (!o) throw new Error("this message cannot be reported from this device (not decrypted here, or sent without franking)");
    const r = await this.call({ t: "report", conv, seq, plaintext: FR.franked(o.kind, o.body), fk: o.fk, reason: [...reason].slice(0, 256).join("") });
    return { report: r["report"], sender: r["sender"] };
  }

  // ------------------------------------------------------------------ bots (SPEC.md 16)

  private profiles = new Map<number, Promise<Frame>>();

  botProfile(account: number): Promise<Frame> {
    let p = this.profiles.get(account);
    if (!p) {
      p = this.call({ t: "get_bot_profile", account });
      p.catch(() => this.profiles.delete(account));
      this.profiles.set(account, p);
    }
    return p;
  }

  /** Share a card (SPEC.md 16.6): a link, an image reference, or a mini-app card. */
  share(conv: number, card: Content): Promise<void> {
    return this.sendContent(conv, "share", card);
  }

  /** Open a shared mini-app card: its action, invoked in the direct conversation with its bot
   * (made if needed, once the account is known to be a bot). Returns that conversation. */
  async openShare(card: Content): Promise<number> {
    const bot = card["bot"] as number;
    if (!bot || !card["app"] || !card["action"]) throw new Error("this card opens no mini-app");
    await this.botProfile(bot); // NOT_FOUND: not a bot
    this.bots.add(bot);
    const conv = await this.directWith(bot);
    await this.invoke(conv, bot, card["app"] as string, card["action"] as string, (card["params"] as Record<string, unknown>) ?? {});
    return conv;
  }

  /** Invoke a mini-app action (16.5): a `miniapp.invoke` addressed to the bot. */
  invoke(conv: number, bot: number, app: string, action: string, params: Record<string, unknown> = {}): Promise<void> {
    return this.sendContent(conv, "miniapp.invoke", { invocation_id: `i${hex(randomBytes(12))}`, app, action, params }, undefined, [bot]);
  }

  // ------------------------------------------------------------------ conversations

  private bots = new Set<number>();

  async lookup(handle: string): Promise<number> {
    const a = await this.call({ t: "lookup", handle: handle.replace(/^@/, "") });
    this.handles.set(a["account"], a["handle"]);
    if (a["type"] === "bot") this.bots.add(a["account"]);
    return a["account"];
  }

  async createDirect(handle: string): Promise<number> {
    return this.createDirectWith(await this.lookup(handle));
  }

  /** The direct conversation with `account`: the one this device has (not a pending request),
   * or a new one. */
  async directWith(account: number): Promise<number> {
    const c = [...this.convs.values()].find((x) => x.kind === "direct" && !this.requests.has(x.conv) && x.members.some((m) => m.account === account) && account !== this.id?.account);
    return c ? c.conv : this.createDirectWith(account);
  }

  private async createDirectWith(other: number): Promise<number> {
    const id = this.id!;
    const g: M.Entry = {
      group: C.randomSeed(16), epoch: 1, prev: new Uint8Array(32), actor: id.account, device: id.device, op: "create", kind: "direct",
      // A bot in a direct conversation has access "all" (SPEC.md 16.2), signed as such.
      members: [{ account: id.account, role: "member" }, { account: other, role: "member", ...(this.bots.has(other) ? { access: "all" } : {}) }], ts: Date.now(),
    };
    const [body, sig] = await M.signEntry(g, id.signing);
    return this.created(await this.call({ t: "create_conv", kind: "direct", members: [other], entry: { body, sig } }));
  }

  async createGroup(title: string, handles: string[], kind: "group" | "channel" = "group"): Promise<number> {
    const others = [];
    for (const h of handles) others.push(await this.lookup(h));
    try {
      return await this.created(await this.call(await this.createFrame(title, others, kind)));
    } catch (e) {
      // SPEC.md 18.3: a signed create_conv may not name an account that must be invited
      // instead. Create it with this account, then invite everyone: those who let this account
      // add them join, the others get an invitation.
      if (!(e instanceof ServerError && e.code === 24)) throw e;
    }
    const conv = await this.created(await this.call(await this.createFrame(title, [], kind)));
    for (const h of handles) await this.invite(conv, h);
    return conv;
  }

  private async createFrame(title: string, others: number[], kind: string): Promise<Omit<Frame, "id">> {
    const id = this.id!;
    const g: M.Entry = {
      group: C.randomSeed(16), epoch: 1, prev: new Uint8Array(32), actor: id.account, device: id.device, op: "create", kind,
      members: [{ account: id.account, role: "owner" }, ...others.filter((a) => a !== id.account).map((a) => ({ account: a, role: "member" }))], ts: Date.now(),
    };
    const [body, sig] = await M.signEntry(g, id.signing);
    return { t: "create_conv", kind, title, members: others, entry: { body, sig } } as unknown as Omit<Frame, "id">;
  }

  private async created(f: Frame): Promise<number> {
    const c = this.upsertConv(f["info"]);
    await this.askPresence(c.members.map((m) => m.account));
    await this.saveConvs();
    this.changed();
    this.syncConv(c.conv);
    return c.conv;
  }

  /** Add `handle` to `conv`: "added", or "invited" when the account must accept an invitation
   * first (SPEC.md 18.3; the server answers `ok` either way). An invitation to a conversation
   * with a signed log, once accepted, waits for an owner or admin to add the account again. */
  async invite(conv: number, handle: string): Promise<"added" | "invited"> {
    const account = await this.lookup(handle);
    const state = await this.verifiedLog(conv);
    // A bot joins a group with access "addressed" (SPEC.md 16.2), signed as such.
    const e = await M.nextEntry(state, this.id!.account, this.id!.device, "add", { account, access: this.bots.has(account) ? "addressed" : "", ts: Date.now() });
    const [body, sig] = await M.signEntry(e, this.id!.signing);
    await this.call({ t: "invite", conv, account, entry: { body, sig } });
    await this.refreshMembers(conv);
    if (this.convs.get(conv)?.members.some((m) => m.account === account)) return "added";
    const set = this.invited.get(conv) ?? new Set<number>();
    set.add(account);
    this.invited.set(conv, set);
    await this.saveInvited();
    this.changed();
    return "invited";
  }

  /** Mark everything up to the conversation's end as read (SPEC.md 10.1). */
  markRead(conv: number): void {
    const c = this.convs.get(conv);
    if (!c || c.cursor <= c.read || this.status !== "online") return;
    c.read = c.cursor;
    void this.call({ t: "receipt", conv, type: "read", seq: c.cursor }).catch(() => {});
    void this.saveConvs();
    this.changed();
  }

  typing(conv: number, on: boolean): void {
    try {
      this.send({ t: "typing", conv, on });
    } catch {
      /* offline: nothing to say */
    }
  }

  unread(c: Conv): number {
    return c.messages.filter((m) => m.seq > c.read && m.seq <= c.cursor && m.sender !== this.id?.account && !["system", "receipt", "reaction", "edit", "delete"].includes(m.kind)).length;
  }

  // ------------------------------------------------------------------ safety numbers, payments

  async safetyNumber(account: number): Promise<string> {
    const mine = await this.devices(this.id!.account);
    void mine;
    const own = this.trusts.get(this.id!.account)!;
    await this.devices(account);
    const other = this.trusts.get(account)!;
    return S.accountSafetyNumber(this.id!.account, own.master, account, other.master);
  }

  /** libsignal's scannable form (E2E.md 9): what this account's QR code holds, as hex. */
  async scannable(account: number): Promise<string> {
    await this.devices(account);
    const own = this.trusts.get(this.id!.account)!;
    const other = this.trusts.get(account)!;
    return hex(await S.scannable(own.master, utf8(String(this.id!.account)), other.master, utf8(String(account))));
  }

  /** Whether the other side's scanned (or pasted) code matches ours: then mark it verified. */
  async compareScanned(account: number, scannedHex: string): Promise<boolean> {
    const ok = S.compareScanned(unhex(await this.scannable(account)), unhex(scannedHex.trim()));
    if (ok) await this.setVerified(account, true);
    return ok;
  }

  async setVerified(account: number, verified: boolean): Promise<void> {
    const t = this.trusts.get(account) ?? (await this.store.get<Trust>(`trust:${account}`));
    if (!t) return;
    t.verified = verified;
    this.trusts.set(account, t);
    await this.store.put(`trust:${account}`, t);
    this.changed();
  }

  /** How many devices this account's verified list names. */
  listedDevices(): number {
    return this.id ? this.trusts.get(this.id.account)?.devices.length ?? 0 : 0;
  }

  isVerified(account: number): boolean {
    return this.trusts.get(account)?.verified ?? false;
  }

  private async checkReceipt(conv: number, f: Frame, r: Content): Promise<void> {
    if (f["sender"] !== 0 || f["device"] !== 0) throw new C.SignatureError("a receipt not from the server");
    if (!this.paymentKey) {
      const k = await this.call({ t: "get_payment_key" });
      if (k["server"] !== this.id!.server) throw new C.SignatureError("payment key for another server");
      const pinned = await this.store.get<Bytes>("payment_key");
      if (pinned && !ctEqual(pinned, k["key"])) throw new C.SignatureError("the server's payment key changed");
      this.paymentKey = k["key"];
      await this.store.put("payment_key", k["key"]);
    }
    let payerKey: Bytes | undefined;
    if (r["type"] === "transfer" || r["type"] === "red_packet") payerKey = await this.deviceKey(r["from"] as number, r["device"] as number);
    await PAY.verifyReceipt(this.id!.server, this.paymentKey!, r, conv, payerKey);
  }

  /** Pay `to` in `conv` (SPEC.md 15.4): the intent is signed here, with this device's key.
   * `requestId` pays an open request (15.5). The memo travels end to end, bound by its hash. */
  async pay(conv: number, to: number, amount: number, currency: string, memo = "", requestId = ""): Promise<Frame> {
    const id = this.id!;
    const transferId = `w${hex(randomBytes(12))}`;
    const nonce = memo ? randomBytes(16) : new Uint8Array(0);
    const intent: PAY.TransferIntent = {
      transfer_id: transferId, from: id.account, to, amount, currency, conv,
      memo_hash: await PAY.memoHash(transferId, memo, nonce), expires_at: Date.now() + 10 * 60_000, request_id: requestId,
    };
    const sig = await C.sign(id.signing, PAY.transferPayload(id.server, intent));
    const posted = await this.call({ t: "pay", intent, device: id.device, sig });
    if (memo) await this.sendContent(conv, "payment.transfer", { transfer_id: transferId, amount, currency, memo, nonce });
    return posted;
  }

  /** Ask `from` (0: any member) for money in `conv` (SPEC.md 15.5); the why goes end to end. */
  async requestPayment(conv: number, from: number, amount: number, currency: string, memo = ""): Promise<Frame> {
    const requestId = `q${hex(randomBytes(12))}`;
    const posted = await this.call({ t: "request_payment", request_id: requestId, conv, from, amount, currency, expires_at: Date.now() + 86_400_000 });
    await this.sendContent(conv, "payment.request", { request_id: requestId, amount, currency, memo });
    return posted;
  }

  /** A red packet of `total` in `shares` for the members of `conv` (SPEC.md 15.6). */
  async redPacket(conv: number, total: number, currency: string, shares: number, split: "random" | "equal" = "random"): Promise<Frame> {
    const id = this.id!;
    const intent: PAY.RedPacketIntent = {
      packet_id: `p${hex(randomBytes(12))}`, from: id.account, conv, total, currency, shares, split,
      memo_hash: PAY.NO_MEMO, expires_at: Date.now() + 10 * 60_000,
    };
    const sig = await C.sign(id.signing, PAY.redPacketPayload(id.server, intent));
    return this.call({ t: "red_packet", intent, device: id.device, sig });
  }

  claim(packetId: string): Promise<Frame> {
    return this.call({ t: "claim", packet_id: packetId });
  }

  async history(): Promise<Frame[]> {
    return (await this.call({ t: "wallet_history", limit: 50 }))["entries"];
  }

  /** Whether request `ref` of `conv` is still open, from the receipts seen (15.5). */
  requestOpen(conv: number, ref: string): boolean {
    const c = this.convs.get(conv);
    return !c?.messages.some((m) => {
      const r = m.content as Record<string, unknown> | null;
      return m.kind === "payment.receipt" && !m.error && r && ((r["type"] === "transfer" && r["request_id"] === ref) || (["declined", "cancelled", "expired"].includes(r["type"] as string) && r["ref"] === ref));
    });
  }

  async balances(): Promise<{ currency: string; amount: number }[]> {
    return (await this.call({ t: "balance" }))["balances"];
  }

  private warn(s: string): void {
    this.warnings.push(s);
    if (this.warnings.length > 50) this.warnings.shift();
    console.warn(s);
    this.changed();
  }
}

export { ProtocolError, utf8 };
