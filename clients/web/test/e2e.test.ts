import assert from "node:assert/strict";
import { test } from "node:test";
import { hex, unhex, utf8 } from "../src/bytes.js";
import * as C from "../src/crypto.js";
import { botApprovalPayload, deviceApprovalPayload, loginPayload } from "../src/e2e/auth.js";
import * as DL from "../src/e2e/devicelist.js";
import * as M from "../src/e2e/membership.js";
import * as P from "../src/e2e/payload.js";
import * as R from "../src/e2e/ratchet.js";
import * as S from "../src/e2e/safety.js";
import * as SK from "../src/e2e/senderkeys.js";
import * as T from "../src/e2e/transcript.js";
import * as X from "../src/e2e/x3dh.js";
import { load } from "./util.js";

test("auth.json: login and device-approval payloads and their Ed25519 signatures", async () => {
  const v = load("auth.json");
  for (const c of v.login_payload) {
    const key = await C.ed25519FromSeed(unhex(c.seed));
    assert.equal(hex(key.publicKey), c.public_key);
    const p = loginPayload(c.inputs.server, unhex(c.inputs.nonce), unhex(c.inputs.device_key));
    assert.equal(hex(p), c.payload, c.name);
    assert.equal(hex(await C.sign(key, p)), c.signature, c.name);
  }
  for (const c of v.bot_approval_payload ?? []) {
    const key = await C.ed25519FromSeed(unhex(c.seed));
    const p = botApprovalPayload(c.inputs.server, c.inputs.handle, unhex(c.inputs.device_key));
    assert.equal(hex(p), c.payload, c.name);
    assert.equal(hex(await C.sign(key, p)), c.signature, c.name);
  }
  for (const c of v.device_approval_payload) {
    const key = await C.ed25519FromSeed(unhex(c.seed));
    const p = deviceApprovalPayload(c.inputs.server, c.inputs.account, unhex(c.inputs.device_key));
    assert.equal(hex(p), c.payload, c.name);
    assert.equal(hex(await C.sign(key, p)), c.signature, c.name);
  }
});

const pinned = load("e2e/mlkem_pinned.json");

test("mlkem_pinned.json: decapsulation of the pinned ciphertext", () => {
  assert.equal(hex(C.mlkemDecapsulate(unhex(pinned.seed), unhex(pinned.ciphertext))), pinned.shared_secret);
});

const opt = (h: string | null | undefined) => (h === null || h === undefined || h === "None" ? null : unhex(h));

test("x3dh.json: both sides of every agreement", async () => {
  for (const c of load("e2e/x3dh.json").cases) {
    const i = c.inputs;
    const alice = await X.newIdentity(await C.ed25519FromSeed(unhex(i.alice_signing_seed)), await C.x25519FromRaw(unhex(i.alice_identity_private)));
    const bobId = await X.newIdentity(await C.ed25519FromSeed(unhex(i.bob_signing_seed)), await C.x25519FromRaw(unhex(i.bob_identity_private)));
    const spk = await X.newSignedPrekey(bobId, i.bob_signed_prekey_kid, await C.x25519FromRaw(unhex(i.bob_signed_prekey_private)));
    const pq = i.bob_pq_seed ? await X.newPqPrekey(bobId, i.bob_pq_kid, unhex(i.bob_pq_seed)) : null;
    const otk = i.bob_one_time_private ? { kid: i.bob_one_time_kid, pair: await C.x25519FromRaw(unhex(i.bob_one_time_private)), sig: new Uint8Array(0) } : null;
    const b = c.bundle;
    assert.equal(hex(bobId.signing.publicKey), b.signing_key, c.name);
    assert.equal(hex(bobId.ik.publicKey), b.identity_key, c.name);
    assert.equal(hex(bobId.identity_sig), b.identity_sig, c.name);
    assert.equal(hex(spk.sig), b.signed_prekey.sig, c.name);
    if (pq) assert.equal(hex(pq.sig), b.pq_prekey.sig, c.name);
    const bundle: X.Bundle = {
      signing_key: unhex(b.signing_key), identity_key: unhex(b.identity_key), identity_sig: unhex(b.identity_sig),
      signed_prekey: { kid: b.signed_prekey.kid, key: unhex(b.signed_prekey.key), sig: unhex(b.signed_prekey.sig) },
      pq_prekey: b.pq_prekey ? { kid: b.pq_prekey.kid, key: unhex(b.pq_prekey.key), sig: unhex(b.pq_prekey.sig) } : null,
      one_time: b.one_time ? { kid: b.one_time.kid, key: unhex(b.one_time.key) } : null,
    };
    const ag = await X.initiate(alice, bundle, {
      ephemeral: await C.x25519FromRaw(unhex(i.alice_ephemeral_private)),
      encapsulate: () => ({ ciphertext: opt(i.pq_ciphertext)!, secret: unhex(c.kem_shared_secret) }),
    });
    assert.equal(hex(ag.sk), c.shared_secret, c.name);
    assert.equal(hex(ag.ad), c.associated_data, c.name);
    assert.equal(hex(X.encodeHeader(ag.header)), c.header, c.name);
    const state: X.PreKeyState = { identity: bobId, spk, prevSpk: null, pq, prevPq: null, oneTime: otk ? [otk] : [], nextKid: 100 };
    const [h, rest] = X.decodeHeader(unhex(c.header));
    assert.equal(rest.length, 0);
    assert.equal(h.kind, c.kind);
    const resp = await X.respond(state, h);
    assert.equal(hex(resp.sk), c.shared_secret, c.name);
    assert.equal(hex(resp.ad), c.associated_data, c.name);
    assert.equal(resp.prekeys.oneTime.length, 0);
  }
});

test("ratchet.json: a Double Ratchet run, out of order, with replays refused", async () => {
  const v = load("e2e/ratchet.json");
  const sk = unhex(v.shared_secret);
  const ad = unhex(v.associated_data);
  const bobSpk = await C.x25519FromRaw(unhex(v.bob_signed_prekey_private));
  assert.equal(hex(bobSpk.publicKey), v.bob_signed_prekey_public);
  const st: Record<string, R.RatchetState> = {
    alice: await R.initInitiator(sk, bobSpk.publicKey, ad, await C.x25519FromRaw(unhex(v.alice_ratchet_private_0))),
    bob: R.initResponder(sk, bobSpk, ad),
  };
  for (const s of v.steps) {
    if (s.op === "encrypt") {
      const [m, next] = await R.encrypt(st[s.party]!, unhex(s.plaintext));
      assert.equal(hex(m), s.message, s.name);
      st[s.party] = next;
    } else {
      const dh = await C.x25519FromRaw(unhex(s.dh_private));
      if (s.error) {
        await assert.rejects(R.decrypt(st[s.party]!, unhex(s.message), dh), (e: unknown) => e instanceof C.DecryptError && (e.constructor.name === s.error || (s.error === "DecryptError" && !(e instanceof C.ReplayError))), `${s.name} ${s.error}`);
      } else {
        const [pt, next] = await R.decrypt(st[s.party]!, unhex(s.message), dh);
        assert.equal(hex(pt), s.plaintext, s.name);
        st[s.party] = next;
      }
    }
  }
});

test("sender_keys.json: distribution, messages, and receive order with a replay", async () => {
  const v = load("e2e/sender_keys.json");
  const signing = await C.ed25519FromSeed(unhex(v.signing_seed));
  assert.equal(hex(signing.publicKey), v.signing_key);
  let key: SK.SenderKey = { conv: v.conv, keyId: v.key_id, chainKey: unhex(v.chain_key), iteration: 0, signing };
  const dist = P.encodeToDevice({ t: "sender_key", ...SK.distribution(key) });
  assert.equal(hex(dist), v.distribution);
  const bodies: Record<number, Uint8Array> = {};
  for (const m of v.messages) {
    const [msg, next] = await SK.encrypt(key, unhex(m.plaintext), v.sender_account, v.sender_device);
    assert.equal(hex(msg), m.message, `iteration ${m.iteration}`);
    bodies[m.iteration] = msg;
    key = next;
  }
  const d = P.decodeToDevice(dist) as unknown as SK.Distribution;
  let r = await SK.receiver(d, v.sender_account, v.sender_device);
  for (const step of v.receive_order) {
    if (step.error) {
      await assert.rejects(SK.decrypt(r, bodies[step.iteration]!), C.ReplayError);
    } else {
      const [pt, next] = await SK.decrypt(r, bodies[step.iteration]!);
      assert.equal(hex(pt), step.plaintext);
      r = next;
    }
  }
});

test("padding.json: buckets, pad/unpad, refused paddings, payloads", () => {
  const v = load("e2e/padding.json");
  assert.deepEqual(P.BUCKETS, v.buckets);
  for (const c of v.valid) {
    assert.equal(hex(P.pad(unhex(c.data))), c.padded);
    assert.equal(hex(P.unpad(unhex(c.padded))), c.data);
  }
  for (const [name, h] of Object.entries(v.invalid)) assert.throws(() => P.unpad(unhex(h as string)), Error, name);
  for (const c of v.payloads) {
    const p: P.Payload = { kind: c.kind, body: unhex(c.body), ts: c.ts ?? undefined, reply_to: c.reply_to ?? undefined };
    assert.equal(hex(P.encodePayload(p)), c.padded, c.name);
    const back = P.decodePayload(unhex(c.padded));
    assert.equal(back.kind, c.kind);
    assert.equal(hex(back.body), c.body);
  }
});

test("device_list.json: canonical body, signed payload and signature; verification", async () => {
  const v = load("e2e/device_list.json");
  const master = await C.ed25519FromSeed(unhex(v.master_seed));
  assert.equal(hex(master.publicKey), v.master_key);
  const list: DL.DeviceList = {
    account: v.list.account, version: v.list.version, master_key: unhex(v.list.master_key),
    devices: v.list.devices.map((d: Record<string, unknown>) => ({ device: d.device, signing_key: unhex(d.signing_key as string), identity_key: unhex(d.identity_key as string), pq: d.pq === true })),
  };
  const [body, sig] = await DL.signDeviceList(list, master);
  assert.equal(hex(body), v.body);
  assert.equal(hex(DL.signedPayload(body)), v.signed_payload);
  assert.equal(hex(sig), v.sig);
  const got = await DL.verifyDeviceList(body, sig, master.publicKey, 1, v.list.account);
  assert.equal(got.devices.length, v.list.devices.length);
  await assert.rejects(DL.verifyDeviceList(body, sig, master.publicKey, v.list.version), C.UntrustedKeyError);
  const other = await C.ed25519Generate();
  await assert.rejects(DL.verifyDeviceList(body, sig, other.publicKey), C.UntrustedKeyError);
});

test("device_change.json and master_key_transfer.json: to-device contents", async () => {
  const dc = load("e2e/device_change.json");
  for (const name of ["approve", "remove"]) {
    const c = dc[name];
    const m = P.encodeToDevice({ ...c.change, device_key: unhex(c.change.device_key) });
    assert.equal(hex(m).slice(0, c.msgpack.length), c.msgpack, name);
    assert.equal(hex(m), c.padded, name);
  }
  const mk = load("e2e/master_key_transfer.json");
  const m = P.encodeToDevice({ t: "master_key", account: mk.account, seed: unhex(mk.seed) });
  assert.equal(hex(m), mk.padded);
  assert.equal(hex((await C.ed25519FromSeed(unhex(mk.seed))).publicKey), mk.master_key);
});

test("safety_number.json: libsignal's vector and a chatd account pair", async () => {
  const v = load("e2e/safety_number.json");
  const l = v.libsignal;
  const a = unhex(l.alice_identity), b = unhex(l.bob_identity);
  assert.equal(await S.safetyNumber(a, utf8(l.alice_stable_id), b, utf8(l.bob_stable_id), l.iterations), l.displayable);
  const sa = await S.scannable(a, utf8(l.alice_stable_id), b, utf8(l.bob_stable_id));
  assert.equal(hex(sa), l.alice_scannable_v1);
  assert.ok(S.compareScanned(sa, unhex(l.bob_scannable_v1)));
  const c = v.chatd_accounts;
  assert.equal(await S.accountSafetyNumber(c.alice_account, unhex(c.alice_master_key), c.bob_account, unhex(c.bob_master_key)), c.safety_number);
});

test("membership.json: the log replays; refused entries are refused", async () => {
  const v = load("e2e/membership.json");
  const keys: Record<string, Uint8Array> = {};
  for (const [k, s] of Object.entries(v.signing_keys)) keys[k] = unhex((s as { public: string }).public);
  let state: M.ChainState | null = null;
  const states: M.ChainState[] = [];
  for (const e of v.log) {
    const body = unhex(e.body), sig = unhex(e.sig);
    assert.equal(hex(M.signedPayload(body)), e.signed_payload);
    const entry = M.decodeEntry(body);
    await M.verifySignature(body, sig, keys[e.signer]!);
    const signer = await C.ed25519FromSeed(unhex(v.signing_keys[e.signer].seed));
    const [b2, s2] = await M.signEntry(entry, signer);
    assert.equal(hex(b2), e.body);
    assert.equal(hex(s2), e.sig);
    assert.equal(hex(await M.entryHash(body, sig)), e.hash);
    state = await M.apply(state, entry, body, sig, e.seq);
    assert.deepEqual(state.members.map((m) => [m.account, m.role, m.access]), e.members_after);
    states.push(state);
  }
  for (const r of v.refused_after_genesis) {
    const body = unhex(r.body), sig = unhex(r.sig);
    await M.verifySignature(body, sig, keys[r.signer]!);
    await assert.rejects(M.apply(states[r.after - 1]!, M.decodeEntry(body), body, sig, 99), M.MembershipError, r.name);
  }
  const g = v.direct.genesis;
  const direct = await M.apply(null, M.decodeEntry(unhex(g.body)), unhex(g.body), unhex(g.sig), 1);
  assert.equal(hex(direct.head), g.hash);
  const third = v.direct.refused_third_member;
  await assert.rejects(M.apply(direct, M.decodeEntry(unhex(third.body)), unhex(third.body), unhex(third.sig), 2), M.MembershipError);
});

test("transcript.json: a payload's transcript, and what a receiver finds", async () => {
  const v = load("e2e/transcript.json");
  const p = P.decodePayload(unhex(v.payload.padded));
  const t = v.payload.transcript;
  assert.equal(p.tr!.n, t.n);
  assert.equal(hex(p.tr!.prev!), t.prev);
  assert.deepEqual(p.tr!.seen, t.seen);
  assert.equal(hex(P.encodePayload(p)), v.payload.padded);
  assert.equal(hex(await T.messageHash(unhex(v.payload.prev_of))), t.prev);
  let view = T.emptyView();
  for (const s of v.steps) {
    const tr = { ...s.transcript, prev: s.transcript.prev ? unhex(s.transcript.prev) : undefined };
    const [next, found] = await T.observe(view, { me: v.receiver_device, account: s.account, device: s.device, seq: s.seq, body: unhex(s.body), t: tr });
    assert.deepEqual(found.map((f) => ({ problem: f.problem, account: f.account, device: f.device, ...(f.count ? { count: f.count } : {}) })), s.found);
    view = next;
  }
});
