"""``chatload replay TRACE --target URL [--speed X] [--scale N [--jitter S]]``: reproduce a recorded
session, or N copies of it.

1. Read the trace (``Trace.load``: every bad line is a ``TraceError`` naming the file and line; a
   cut-off last line is dropped with a warning): its connections (open, frames, close), the
   account and device each one logged in as (``welcome``), and its conversations (kind and
   member accounts from ``conv`` answers, else the accounts that used them).
2. Provision, for each of the N clones: one fresh account per trace account (real Ed25519 keys;
   an account with several recorded devices gets as many, linked with ``link_device``), one
   conversation per trace conversation with the mapped members (direct / group / channel as
   recorded; a channel's other senders are made admins). Clones share nothing: accounts,
   devices and conversations are disjoint, so clone k replays the session of its own users.
3. Replay each trace connection as a connection of its device: it opens (logs in) at its
   recorded open, sends its client frames at their trace times / speed (+ the clone's jitter)
   with ids remapped, and closes at its recorded close, once its sends are acked. A device's
   next connection after a close is a **reconnect** on the same client state (counted): it logs
   in, syncs every conversation from its cursors (the trace's own ``sync`` frames where it made
   them, else one added per conversation: ``catch_up_syncs``) and resends what was unacked.
   Replayed: sends (same kind, same body size, at least the 28-byte measurement header),
   typing, receipts (at the cursor), sync (from the cursor), fetch, list/get conversation,
   presence, lookups (the handle of the account the recorded lookup found), the key set-up of
   end-to-end encryption (``upload_keys`` with as many one-time prekeys, ``claim_keys``,
   ``get_device_list``, ``put_device_list`` and ``to_device`` with bodies of the recorded sizes,
   ``fetch_to_device``/``ack_to_device`` from the device's own queue), ``get_payment_key``,
   ``list_answers`` (the login's answers to invitations: the clone's own), ``rename``. What cannot be replayed is counted by type with the reason
   (``not_replayed``).

Accounting (exact, whatever the speed and scale). Every client object counts what it receives;
a delivery is expected when the message was acked, was sent by another client, is in a
conversation of the client's account, and its seq is at most the client's *horizon* in that
conversation: the highest seq it received or was synced to, or the highest seq acked before its
last connection began to close (the server fanned those out while it was online, and a close
reads every frame sent before the server's close frame). Messages sent while a device was
offline are expected because its reconnect syncs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatproto import codec
from chatproto import frames as F
from chatproto.kinds import client_may_send
from chatproto.limits import MAX_ONE_TIME_PER_UPLOAD
from rich.console import Console

from .hist import Latency
from .procstat import raise_nofile, self_cpu_seconds
from .proto import Client, Fast, Stats, gather_limited, with_id
from .provision import MAX_CREATE_MEMBERS
from .report import Aggregator, Live
from .scenario import BODY_HEADER, Scenario, SizeDist

AUTH = frozenset({"register", "login", "link_device"})
PROVISIONED = "conversations and their members are provisioned before the replay"
NOT_REPLAYED: dict[str, str] = {
    "create_conv": PROVISIONED,
    "invite": PROVISIONED,
    "remove": PROVISIONED,
    "leave": PROVISIONED,
    "set_role": PROVISIONED,
    "pay": "payments are signed intents over amounts the trace does not keep",
    "red_packet": "payments are signed intents over amounts the trace does not keep",
    "claim": "payments are signed intents over amounts the trace does not keep",
    "request_payment": "payments are signed intents over amounts the trace does not keep",
    "decline_request": "payments are signed intents over amounts the trace does not keep",
    "cancel_request": "payments are signed intents over amounts the trace does not keep",
    "set_bot_profile": "bot set-up is not recorded",
    "set_bot_access": "bot set-up is not recorded",
    "?": "not a chatd.v1 frame",
}
CLOSE_ACK_WAIT_S = 5.0
"""A connection closes at its recorded close once the sends recorded before it are acked,
waiting at most this (``--close-wait``)."""
PQ_KEY = 1184  # ML-KEM-768 public key bytes


class TraceError(Exception):
    """A trace that cannot be replayed; the message names the file (and line)."""


@dataclass
class TraceConn:
    """One recorded connection: its device, when it opened and closed, its client frames."""

    cid: int
    open_ts: float
    close_ts: float | None = None
    account: int = 0
    device: int = 0
    frames: list[dict[str, Any]] = field(default_factory=list)
    slot: tuple[int, int] = (0, 0)  # (account, device) key of the device it is
    lane: int = 0  # which concurrent connection of that device (0 unless they overlap)
    reconnect: bool = False  # an earlier connection of the same lane closed before it

    @property
    def synced(self) -> set[int]:
        return {int(ln["conv"]) for ln in self.frames if ln["t"] == "sync" and "conv" in ln}


@dataclass
class Trace:
    path: Path
    frames: list[dict[str, Any]]  # client frames, in time order
    conns: dict[int, TraceConn]
    convs: dict[int, dict[str, Any]]  # trace conv -> {"kind", "members": set, "senders": list}
    accounts: set[int]  # every trace account the replay needs
    devices: dict[tuple[int, int], int]  # (account, device) -> lanes (concurrent connections)
    answers: dict[tuple[int, int], tuple[str, int]]  # (conn, request id) -> ("account"|"error", n)
    span_s: float
    t_first: float
    by_type: dict[str, int] = field(default_factory=dict)
    send_ts: list[float] = field(default_factory=list)  # every send's time, ascending
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise TraceError(f"{path}: cannot read the trace: {e.strerror or e}") from None
        raw = data.split(b"\n")
        cut = not data.endswith(b"\n") and bool(raw[-1].strip())
        lines: list[dict[str, Any]] = []
        warnings: list[str] = []
        for n, b in enumerate(raw, 1):
            if not b.strip():
                continue
            try:
                ln = json.loads(b)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                if cut and n == len(raw):
                    warnings.append(
                        f"{path}:{n}: the last line is cut off ({_why(e)}): replaying lines 1-{n - 1}"
                    )
                    break
                raise TraceError(f"{path}:{n}: not a JSON line ({_why(e)})") from None
            _check_line(path, n, ln)
            lines.append(ln)
        lines.sort(key=lambda x: x["ts"])
        conns: dict[int, TraceConn] = {}
        convs: dict[int, dict[str, Any]] = {}
        answers: dict[tuple[int, int], tuple[str, int]] = {}
        frames: list[dict[str, Any]] = []
        by_type: dict[str, int] = {}

        def conn(ln: dict[str, Any]) -> TraceConn:
            c = int(ln["c"])
            if c not in conns:
                conns[c] = TraceConn(c, float(ln["ts"]))
            return conns[c]

        def conv(n: int) -> dict[str, Any]:
            return convs.setdefault(n, {"kind": None, "members": set(), "senders": []})

        for ln in lines:
            d, t = ln["d"], ln["t"]
            tc = conn(ln)
            if d == "x":
                tc.close_ts = float(ln["ts"])
            elif d == "s" and t == "welcome" and _int(ln.get("account")):
                tc.account = int(ln["account"])
                tc.device = int(ln["device"]) if _int(ln.get("device")) else 0
            elif d == "s" and t == "conv" and _int(ln.get("conv")):
                c = conv(int(ln["conv"]))
                c["kind"] = ln.get("kind") or c["kind"]
                c["members"].update(int(a) for a in ln.get("members") or [] if _int(a))
            elif d == "s" and t in ("account", "error") and _int(ln.get("re")):
                value = ln.get("account") if t == "account" else ln.get("code")
                answers[(tc.cid, int(ln["re"]))] = (t, int(value or 0))
            elif d == "c":
                frames.append(ln)
                tc.frames.append(ln)
                by_type[t] = by_type.get(t, 0) + 1
        if not frames:
            raise TraceError(f"{path}: no client frames: not a chatload trace (chatload record)")
        sends = [ln for ln in frames if ln["t"] == "send"]
        for i, ln in enumerate(sends):
            ln["_n"] = i  # the send's place in the trace, for closes that wait for it
        for tc in conns.values():
            if not tc.account:  # never logged in: an account of its own
                tc.account = -tc.cid
            tc.slot = (tc.account, tc.device)
        accounts = {tc.account for tc in conns.values() if tc.frames}
        for ln in frames:
            tc = conns[int(ln["c"])]
            if _int(ln.get("conv")) and ln["t"] != "create_conv":
                c = conv(int(ln["conv"]))
                c["members"].add(tc.account)
                if ln["t"] == "send" and tc.account not in c["senders"]:
                    c["senders"].append(tc.account)
            keyed = ("claim_keys", "get_device_list", "invite", "remove", "set_role")
            if ln["t"] in keyed and _int(ln.get("account")):
                accounts.add(int(ln["account"]))
            for a in ln.get("accounts") or []:
                if _int(a):
                    accounts.add(int(a))
        for c in convs.values():
            accounts |= c["members"]
        for kind, n in answers.values():
            if kind == "account" and n:
                accounts.add(n)
        # lanes: a device's connections one after another share one client (a reconnect);
        # overlapping ones are concurrent connections of that device
        devices: dict[tuple[int, int], int] = {}
        free: dict[tuple[int, int], list[tuple[float, int]]] = {}
        for tc in sorted(conns.values(), key=lambda x: x.open_ts):
            if not tc.frames:  # opened and closed without a frame: nothing to replay
                continue
            lanes = free.setdefault(tc.slot, [])
            reuse = [i for i, (until, _lane) in enumerate(lanes) if until <= tc.open_ts]
            if reuse:
                _until, tc.lane = lanes.pop(reuse[0])
                tc.reconnect = True
            else:
                tc.lane = devices.get(tc.slot, 0)
                devices[tc.slot] = tc.lane + 1
            lanes.append((tc.close_ts if tc.close_ts is not None else float("inf"), tc.lane))
        t_first = min(tc.open_ts for tc in conns.values())
        span = max(float(ln["ts"]) for ln in frames) - t_first
        return cls(
            path,
            frames,
            conns,
            convs,
            accounts,
            devices,
            answers,
            span,
            t_first,
            by_type,
            [float(ln["ts"]) for ln in sends],
            warnings,
        )

    @property
    def connections(self) -> list[TraceConn]:
        """The recorded connections that sent frames (the ones replayed)."""
        return [tc for tc in self.conns.values() if tc.frames]


def _why(e: Exception) -> str:
    if isinstance(e, json.JSONDecodeError):
        return f"{e.msg} at column {e.colno}"
    return "not UTF-8 text"


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _check_line(path: Path, n: int, ln: Any) -> None:
    if (
        not isinstance(ln, dict)
        or not isinstance(ln.get("ts"), int | float)
        or not isinstance(ln.get("c"), int)
        or ln.get("d") not in ("c", "s", "o", "x")
        or not isinstance(ln.get("t"), str)
    ):
        text = json.dumps(ln)
        raise TraceError(
            f"{path}:{n}: not a chatload trace line (it needs ts, c, d and t, as"
            f" `chatload record` writes): {text[:60]}{'...' if len(text) > 60 else ''}"
        )
    for k in _INT_FIELDS:
        v = ln.get(k)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            raise TraceError(f"{path}:{n}: {k!r} must be a whole number >= 0, not {v!r}")
    for k in ("members", "accounts"):
        v = ln.get(k)
        if v is not None and not (isinstance(v, list) and all(isinstance(x, int) for x in v)):
            raise TraceError(f"{path}:{n}: {k!r} must be a list of account ids, not {v!r}")


_INT_FIELDS = (
    "size", "id", "conv", "body", "limit", "after", "account", "device", "one_time", "pq",
    "version", "re", "code",
)  # fmt: skip


# --------------------------------------------------------------------------- provisioning


@dataclass
class Clone:
    """One copy of the recorded population: its accounts, devices and conversations."""

    k: int
    offset_ns: int  # its jitter
    accounts: dict[int, Client] = field(default_factory=dict)  # trace account -> first device
    handles: dict[int, str] = field(default_factory=dict)
    devices: dict[tuple[int, int], tuple[int, bytes]] = field(default_factory=dict)
    convs: dict[int, int] = field(default_factory=dict)  # trace conv -> conv
    lanes: dict[tuple[tuple[int, int], int], Client] = field(default_factory=dict)
    list_versions: dict[int, int] = field(default_factory=dict)
    issued: dict[int, tuple[Client, str] | None] = field(default_factory=dict)  # send n -> cmid
    acked_upto: int = 0  # sends 0..acked_upto-1 of the trace are acked (or were not replayed)

    def acked_before(self, n: int) -> bool:
        """Whether the trace's first n sends are acked (None: not replayed, counts as done)."""
        while self.acked_upto < n:
            if self.acked_upto not in self.issued:
                return False  # not sent yet
            got = self.issued[self.acked_upto]
            if got is not None and got[1] in got[0].unacked:
                return False
            self.acked_upto += 1
        return True

    def account(self, trace_account: int) -> int | None:
        c = self.accounts.get(trace_account)
        return c.account if c is not None else None

    def device(self, trace_device: int) -> int | None:
        for (_a, d), (dev, _seed) in self.devices.items():
            if d == trace_device and d:
                return dev
        return None


async def _provision(
    trace: Trace, target: str, scale: int, jitter_s: float, stats: Stats, tag: str
) -> list[Clone]:
    rng = random.Random(int.from_bytes(tag.encode(), "little"))
    clones = [Clone(k, int(rng.uniform(0, jitter_s) * 1e9) if k else 0) for k in range(scale)]
    accounts = sorted(trace.accounts)
    setup = Stats()

    async def register(cl: Clone, i: int, acc: int) -> None:
        c = Client(0, target, setup)
        handle = f"r{tag}_{cl.k}_{i}"
        await c.open(register_handle=handle)
        cl.accounts[acc], cl.handles[acc] = c, handle

    await gather_limited([register(cl, i, a) for cl in clones for i, a in enumerate(accounts)], 200)
    # devices: the registering one is the account's first recorded device; link the others
    by_account: dict[int, list[tuple[int, int]]] = {}
    for slot in sorted(trace.devices):
        by_account.setdefault(slot[0], []).append(slot)

    async def link(cl: Clone, slot: tuple[int, int]) -> None:
        first = cl.accounts[slot[0]]
        c = Client(0, target, setup, account=first.account)
        await c.open(link=(cl.handles[slot[0]], first.device, first.key))
        await c.close()
        cl.devices[slot] = (c.device, c.key.seed)

    links = []
    for cl in clones:
        for acc, slots in by_account.items():
            first = cl.accounts[acc]
            cl.devices[slots[0]] = (first.device, first.key.seed)
            links += [link(cl, s) for s in slots[1:]]
    await gather_limited(links, 200)

    async def conversations(cl: Clone) -> None:
        amap = {a: c.account for a, c in cl.accounts.items()}
        for tconv, info in sorted(trace.convs.items()):
            members = sorted(m for m in info["members"] if m in amap)
            if not members:
                continue
            kind = info["kind"] or ("direct" if len(members) == 2 else "group")
            if kind == "direct" and len(members) != 2:
                kind = "group"
            senders = [s for s in info["senders"] if s in amap]
            owner = senders[0] if senders else members[0]
            others = [amap[m] for m in members if m != owner]
            oc = cl.accounts[owner]
            r = await oc.request(
                with_id(
                    F.CreateConv,
                    kind=kind,
                    title="" if kind == "direct" else "replay",
                    members=others[:1] if kind == "direct" else others[:MAX_CREATE_MEMBERS],
                )
            )
            if not isinstance(r, F.Conv):
                raise RuntimeError(f"create_conv failed: {r!r}")
            conv = r.info.conv
            cl.convs[tconv] = conv
            if kind != "direct":
                extra = [
                    oc.request_nowait(with_id(F.Invite, conv=conv, account=a))
                    for a in others[MAX_CREATE_MEMBERS:]
                ]
                if kind == "channel":
                    extra += [
                        oc.request_nowait(
                            with_id(F.SetRole, conv=conv, account=amap[s], role="admin")
                        )
                        for s in senders
                        if s != owner
                    ]
                await asyncio.gather(*extra)

    await gather_limited([conversations(cl) for cl in clones], 50)
    await gather_limited([c.close() for cl in clones for c in cl.accounts.values()], 200)
    # one client per (device, lane): the connections of a lane are one client reconnecting
    idx = 0
    for cl in clones:
        for slot, lanes in sorted(trace.devices.items()):
            dev, seed = cl.devices[slot]
            convs = [
                cl.convs[t]
                for t, i in sorted(trace.convs.items())
                if slot[0] in i["members"] and t in cl.convs
            ]
            for lane in range(lanes):
                idx += 1
                cl.lanes[(slot, lane)] = Client(
                    idx, target, stats, seed=seed, device=dev, convs=convs
                )
    return clones


# --------------------------------------------------------------------------- replay


@dataclass
class Counts:
    replayed: dict[str, int] = field(default_factory=dict)
    not_replayed: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    catch_up_syncs: int = 0
    logins: int = 0
    failed_logins: int = 0
    login_retries: int = 0
    login_errors: dict[str, int] = field(default_factory=dict)

    def skip(self, t: str, why: str) -> None:
        self.not_replayed[t] = self.not_replayed.get(t, 0) + 1
        self.reasons[t] = why

    def did(self, t: str) -> None:
        self.replayed[t] = self.replayed.get(t, 0) + 1


class Player:
    """Plays every trace connection of every clone, each on its own task."""

    def __init__(
        self,
        trace: Trace,
        clones: list[Clone],
        stats: Stats,
        speed: float,
        t0: int,
        tag: str,
        close_wait_s: float = CLOSE_ACK_WAIT_S,
    ) -> None:
        self.trace, self.clones, self.stats, self.speed, self.t0 = trace, clones, stats, speed, t0
        self.tag = tag
        self.close_wait_s = close_wait_s
        self.counts = Counts()
        self.msg_id = 0
        self.closing_at: dict[int, int] = {}  # client idx -> when its last connection closed
        self.last_close: dict[int, int] = {}  # client idx -> when a connection of it closed
        self.ever: set[int] = set()  # clients that logged in at least once
        self.last_conn: dict[int, int] = {}  # client idx -> its last trace connection id
        self.tids: dict[int, int] = {}  # client idx -> highest to-device tid seen
        self.kids: dict[int, int] = {}  # device -> next one-time prekey id
        self.identity: dict[int, tuple[bytes, bytes]] = {}
        self.login_lat = Latency()  # recorded open -> welcome (a connection's frames wait)

    def due(self, cl: Clone, ts: float) -> int:
        return self.t0 + cl.offset_ns + int((ts - self.trace.t_first) / self.speed * 1e9)

    async def until(self, due_ns: int) -> None:
        delay = (due_ns - time.time_ns()) / 1e9
        if delay > 0.001:
            await asyncio.sleep(delay)

    async def run(self) -> None:
        tasks = []
        lanes: dict[tuple[int, tuple[int, int], int], list[TraceConn]] = {}
        for tc in sorted(self.trace.connections, key=lambda x: x.open_ts):
            for cl in self.clones:
                lanes.setdefault((cl.k, tc.slot, tc.lane), []).append(tc)
        for (k, slot, lane), seq in lanes.items():
            cl = self.clones[k]
            c = cl.lanes[(slot, lane)]
            c.on_frame = self.on_frame
            self.last_conn[c.idx] = seq[-1].cid
            tasks.append(self.play_lane(cl, c, seq))
        await asyncio.gather(*tasks)

    def on_frame(self, c: Client, f: Fast, data: bytes) -> None:
        if f.t in ("to_device_event", "to_device_batch"):
            fr = codec.decode_server(data)
            tids = [fr.tid] if isinstance(fr, F.ToDeviceEvent) else []
            if isinstance(fr, F.ToDeviceBatch):
                tids = [e.tid for e in fr.events]
            if tids:
                self.tids[c.idx] = max(self.tids.get(c.idx, 0), *tids)

    async def play_lane(self, cl: Clone, c: Client, conns: list[TraceConn]) -> None:
        for tc in conns:
            await self.until(self.due(cl, tc.open_ts))
            if not await self.login(cl, c, tc):
                self.counts.failed_logins += 1
                if tc.cid == self.last_conn[c.idx] and c.idx in self.last_close:
                    # offline since its previous close: expect nothing after that
                    self.closing_at[c.idx] = self.last_close[c.idx]
                for ln in tc.frames:
                    if ln["t"] not in AUTH:
                        self.counts.skip(ln["t"], "its connection could not log in")
                    if "_n" in ln:
                        cl.issued[ln["_n"]] = None
                continue
            self.counts.logins += 1
            if c.idx in self.ever:
                self.stats.reconnects += 1
            self.ever.add(c.idx)
            synced = {cl.convs.get(t) for t in tc.synced}
            for conv in c.convs:
                if conv not in synced:
                    _quiet(c.sync(conv))
                    self.counts.catch_up_syncs += 1
            for cmid, (conv, body, _intended) in list(c.unacked.items()):
                c._write_send(conv, cmid, body)
            for ln in tc.frames:
                await self.until(self.due(cl, float(ln["ts"])))
                self.play(cl, c, tc, ln)
            if tc.close_ts is not None:
                await self.until(self.due(cl, tc.close_ts))
                await self.close(cl, c, tc.close_ts, final=tc.cid == self.last_conn[c.idx])

    async def login(self, cl: Clone, c: Client, tc: TraceConn) -> bool:
        """Log in; a refused or failed attempt is retried with backoff, as a real client
        reconnects, until the connection's recorded close (or 30 s)."""
        end = self.due(cl, tc.close_ts) if tc.close_ts is not None else time.time_ns() + 30e9
        pause = 0.1
        while True:
            try:
                await c.open()
                self.login_lat.record_ns(time.time_ns() - self.due(cl, tc.open_ts))
                return True
            except Exception as e:
                why = type(e).__name__
                self.counts.login_errors[why] = self.counts.login_errors.get(why, 0) + 1
                with contextlib.suppress(Exception):
                    await c.close()
            if time.time_ns() + pause * 1e9 >= end:
                return False
            self.counts.login_retries += 1
            await asyncio.sleep(pause * random.uniform(0.5, 1.5))
            pause = min(pause * 2, 2.0)

    async def close(self, cl: Clone, c: Client, ts: float, final: bool) -> None:
        """Close at the recorded close, once the sends the trace made before it are acked: the
        connection then received what it received in the recording, however late the logins
        of a fast replay made those sends (at most ``close_wait_s`` later)."""
        before = bisect_right(self.trace.send_ts, ts)
        deadline = time.monotonic() + self.close_wait_s
        pause = 0.002  # growing: many connections may be waiting when acks lag
        while time.monotonic() < deadline and (
            not cl.acked_before(before) or (c.unacked and c.connected)
        ):
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 0.05)
        self.last_close[c.idx] = time.time_ns()
        if final:
            self.closing_at[c.idx] = self.last_close[c.idx]
        await c.close()

    def play(self, cl: Clone, c: Client, tc: TraceConn, ln: dict[str, Any]) -> None:
        t = ln["t"]
        if t in AUTH:
            return  # the connection's own login
        if t in NOT_REPLAYED:
            self.counts.skip(t, NOT_REPLAYED[t])
            return
        conv = cl.convs.get(int(ln["conv"])) if _int(ln.get("conv")) else None
        needs_conv = (
            "send", "typing", "sync", "fetch", "receipt", "get_conv", "rename", "get_member_log",
        )  # fmt: skip
        if t in needs_conv and conv is None:
            self.counts.skip(t, "its conversation is not known to the trace")
            if "_n" in ln:
                cl.issued[ln["_n"]] = None
            return
        assert conv is not None or t not in needs_conv
        if t == "send":
            assert conv is not None
            kind = str(ln.get("kind", "text"))
            c.kind = kind if client_may_send(kind) else "text"
            self.msg_id += 1
            size = max(BODY_HEADER, int(ln.get("body", 0)))
            cmid = c.send_message(conv, self.due(cl, float(ln["ts"])), self.msg_id, size)
            cl.issued[ln["_n"]] = (c, cmid)
            self.counts.did(t)
            return
        if t == "typing":
            assert conv is not None
            frame = F.Typing(conv=conv, on=bool(ln.get("on", True)))
            c.count_sent(frame)
            c.write(codec.encode(frame))
            self.counts.did(t)
            return
        if t == "sync":
            assert conv is not None
            if conv in c.syncing:
                self.counts.skip(t, "a sync of that conversation was still in progress")
                return
            _quiet(c.sync(conv))
            self.counts.did(t)
            return
        make = self.maker(cl, c, tc, ln, conv)
        if isinstance(make, str):
            self.counts.skip(t, make)
            return
        _quiet(c.request_nowait(make))
        self.counts.did(t)

    def maker(
        self, cl: Clone, c: Client, tc: TraceConn, ln: dict[str, Any], conv: int | None
    ) -> Any:
        """A frame maker for ``Client.request_nowait``, or why the frame is not replayed."""
        t = ln["t"]
        rng = random.Random(self.msg_id)
        if t == "list_convs":
            return with_id(F.ListConvs)
        if t == "get_payment_key":
            return with_id(F.GetPaymentKey)
        if t == "list_answers":  # the SDK's login step 11: the clone's answers (none, or its own)
            return with_id(F.ListAnswers)
        if t == "get_conv":
            return with_id(F.GetConv, conv=conv)
        if t == "get_member_log":  # the clone's conversations are unsigned: an empty page
            return with_id(F.GetMemberLog, conv=conv)
        if t == "rename":
            return with_id(F.Rename, conv=conv, title="replayed")
        if t == "get_member_log":  # epochs count the same in the replayed conversation
            limit = int(ln.get("limit", 100))
            return with_id(F.GetMemberLog, conv=conv, after=int(ln.get("after", 0)), limit=limit)
        if t == "fetch":
            limit = int(ln.get("limit", 100))
            if ln.get("before"):
                before = max(2, c.cursor.get(conv or 0, 0) + 1)
                return with_id(F.Fetch, conv=conv, before=before, limit=limit)
            return with_id(F.Fetch, conv=conv, limit=limit)
        if t == "receipt":
            rtype = str(ln.get("type", "read"))
            return with_id(F.Receipt, conv=conv, type=rtype, seq=c.cursor.get(conv or 0, 0))
        if t == "get_presence":
            accs = [cl.account(a) for a in ln.get("accounts") or []]
            return with_id(F.GetPresence, accounts=[a for a in accs if a])
        if t == "lookup":
            kind, n = self.trace.answers.get((tc.cid, int(ln.get("id", 0))), ("", 0))
            if kind == "error":
                return with_id(F.Lookup, handle=f"nx{self.tag}")  # it failed in the trace too
            handle = cl.handles.get(n) or cl.handles[min(cl.handles)]
            return with_id(F.Lookup, handle=handle)
        if t in ("claim_keys", "get_device_list"):
            acc = cl.account(int(ln.get("account", 0)))
            if acc is None:
                return "the trace does not say which account"
            cls = F.ClaimKeys if t == "claim_keys" else F.GetDeviceList
            return with_id(cls, account=acc)
        if t == "upload_keys":
            ident, sig = self.identity.setdefault(c.device, (rng.randbytes(32), rng.randbytes(64)))
            kid = self.kids.get(c.device, 1)
            n = min(int(ln.get("one_time", 0)), MAX_ONE_TIME_PER_UPLOAD)
            self.kids[c.device] = kid + n
            pq = int(ln.get("pq", 0))
            return with_id(
                F.UploadKeys,
                identity_key=ident,
                identity_sig=sig,
                signed_prekey=F.SignedPrekey(kid=kid, key=rng.randbytes(32), sig=rng.randbytes(64))
                if ln.get("signed")
                else None,
                pq_prekey=F.SignedPrekey(kid=kid, key=rng.randbytes(pq), sig=rng.randbytes(64))
                if pq
                else None,
                one_time=[F.OneTimePrekey(kid=kid + i, key=rng.randbytes(32)) for i in range(n)],
            )
        if t == "put_device_list":
            if "version" not in ln:
                return "the trace predates device-list versions (record it again)"
            version = self.clone_version(cl, c.account)
            return with_id(
                F.PutDeviceList,
                body=rng.randbytes(int(ln.get("body", 64))),
                sig=rng.randbytes(64),
                master_key=rng.randbytes(32),
                version=version,
            )
        if t == "to_device":
            target = cl.device(int(ln.get("device", 0)))
            if target is None:
                return "its target device never connected in the trace (or the trace predates device ids)"
            return with_id(F.ToDevice, device=target, body=rng.randbytes(int(ln.get("body", 1))))
        if t == "fetch_to_device":
            limit = int(ln.get("limit", 100))
            return with_id(F.FetchToDevice, after=self.tids.get(c.idx, 0), limit=limit)
        if t == "ack_to_device":
            return with_id(F.AckToDevice, up_to=self.tids.get(c.idx, 0))
        if t in ("balance", "wallet_history", "get_bot_profile"):
            return "payments and bots are not replayed"
        return "chatload replay does not know this frame"

    def clone_version(self, cl: Clone, account: int) -> int:
        v = cl.list_versions.get(account, 0) + 1
        cl.list_versions[account] = v
        return v

    def clients(self) -> list[Client]:
        return [c for cl in self.clones for c in cl.lanes.values()]

    def expected(self, now_ns: int) -> int:
        """Expected deliveries (see the module docstring); clients still online count as
        closing now."""
        by_conv: dict[int, list[tuple[int, int, int]]] = {}
        for conv, seq, t, sender, _mid in self.stats.ack_log or []:
            by_conv.setdefault(conv, []).append((seq, t, sender))
        index: dict[int, tuple[list[int], list[int], list[int], dict[int, list[int]]]] = {}
        for conv, acks in by_conv.items():
            times = [t for _s, t, _x in acks]  # ack_log is in arrival order
            best, prefix = 0, []
            for s, _t, _x in acks:
                best = max(best, s)
                prefix.append(best)
            seqs = sorted(s for s, _t, _x in acks)
            own: dict[int, list[int]] = {}
            for s, _t, x in acks:
                own.setdefault(x, []).append(s)
            for v in own.values():
                v.sort()
            index[conv] = (times, prefix, seqs, own)
        total = 0
        for c in self.clients():
            if c.idx not in self.ever:
                continue
            closing = self.closing_at.get(c.idx, now_ns)
            for conv in c.convs:
                if conv not in index:
                    continue
                times, prefix, seqs, own = index[conv]
                k = bisect_right(times, closing)
                h = max(c.horizon(conv), prefix[k - 1] if k else 0)
                total += bisect_right(seqs, h) - bisect_right(own.get(c.idx, []), h)
        return total


def _quiet(fut: asyncio.Future[Any]) -> None:
    fut.add_done_callback(lambda f: f.cancelled() or f.exception())


async def replay(
    trace_path: Path,
    target: str,
    speed: float,
    console: Console,
    quiet: bool = False,
    scale: int = 1,
    jitter_s: float = 0.0,
    trace: Trace | None = None,
    server_pid: int | None = None,
    close_wait_s: float = CLOSE_ACK_WAIT_S,
) -> dict[str, Any]:
    from .run import ServerProbe, result_dict

    if trace is None:
        trace = Trace.load(trace_path)
    raise_nofile(65536)
    tag = os.urandom(3).hex()
    stats = Stats(int.from_bytes(os.urandom(4), "little"))
    stats.ack_log = []
    stats.deliver_log = {}
    t_setup = time.monotonic()
    clones = await _provision(trace, target, scale, jitter_s, stats, tag)
    n_clients = sum(len(cl.lanes) for cl in clones)
    if not quiet:
        console.print(
            f"replay provisioning: {scale} x ({len(trace.accounts)} accounts,"
            f" {sum(trace.devices.values())} devices/lanes, {len(clones[0].convs)} conversations)"
            f" in {time.monotonic() - t_setup:.1f} s",
            highlight=False,
        )
    t0 = time.time_ns() + 300_000_000
    stats.steady_from_ns = t0
    player = Player(trace, clones, stats, speed, t0, tag, close_wait_s)
    agg = Aggregator(1)
    span = trace.span_s / speed + jitter_s

    def interval(k: int, cpu: float, seconds: float | None = None) -> dict[str, Any] | None:
        snap = stats.snapshot()
        snap.update(k=k, worker=0, cpu_s=cpu, acked_by_conv=stats.acked_by_conv)
        snap["unacked"] = sum(len(c.unacked) for c in player.clients())
        if seconds is not None:
            snap["seconds"] = seconds
        return agg.add(snap)

    k = 0
    cpu0, wall0 = self_cpu_seconds(), time.monotonic()
    probe = ServerProbe(server_pid) if server_pid else None
    cpu_at: dict[int, float] = {}
    rss_at: dict[int, int] = {}

    def sample(k: int) -> None:
        """The server's CPU seconds and RSS at the end of interval k (from /proc)."""
        if probe is None:
            return
        with contextlib.suppress(OSError):
            cpu_at[k], rss_at[k] = probe.cpu(), probe.rss()
            if k - 1 in cpu_at:
                agg.server_samples[k] = {
                    "server_cpu_pct": round(100 * (cpu_at[k] - cpu_at[k - 1]), 1),
                    "server_rss_mb": round(rss_at[k] / 2**20, 1),
                }

    async def report() -> None:
        nonlocal k, cpu0, wall0
        while True:
            await asyncio.sleep(max(0.0, (t0 + (k + 1) * 1_000_000_000 - time.time_ns()) / 1e9))
            k += 1
            sample(k)
            cpu1, wall1 = self_cpu_seconds(), time.monotonic()
            row = interval(k, (cpu1 - cpu0) / max(1e-3, wall1 - wall0))
            cpu0, wall0 = cpu1, wall1
            if row is not None:
                live.update(row)

    title = f"chatload replay {trace.path.name} x{speed:g} scale {scale} -> {target}"
    with Live(console, title, quiet) as live:
        await asyncio.sleep(max(0.0, (t0 - time.time_ns()) / 1e9))
        sample(0)
        reporter = asyncio.create_task(report())
        await player.run()
        played_k = k + 1  # the interval in which the last frame went out
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            unacked = sum(len(c.unacked) for c in player.clients())
            delivered = stats.cum.get("delivers", 0) + stats.delivers
            if unacked == 0 and delivered >= player.expected(time.time_ns()):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # answers to the last requests
        end_ns = time.time_ns()
        for c in player.clients():
            if c.connected and c.idx not in player.closing_at:
                player.closing_at[c.idx] = end_ns
        await gather_limited([c.close() for c in player.clients()], 200)
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        wall1 = time.monotonic()
        seconds = min(1.0, max(0.001, (time.time_ns() - (t0 + k * 1_000_000_000)) / 1e9))
        sample(k + 1)
        row = interval(k + 1, (self_cpu_seconds() - cpu0) / max(1e-3, wall1 - wall0), seconds)
        if row is not None:
            live.update(row)
    expected = player.expected(end_ns)
    final = {
        "cum": stats.cum,
        "cum_errors": {str(k): v for k, v in stats.cum_errors.items()},
        "frames_sent": stats.frames_sent,
        "acked_by_conv": stats.acked_by_conv,
        "unacked": sum(len(c.unacked) for c in player.clients()),
        "ack_total": stats.ack_t.encode(),
        "del_total": stats.del_t.encode(),
    }
    scen = Scenario(
        name=f"replay:{trace.path.name}",
        kind="messaging",
        accounts=len(trace.accounts) * scale,
        targets=(target,),
        duration=max(1.0, span),
        ramp_up=0.0,
        churn_per_s=0.0,
        seed=0,
        message_kind="text",
        message_size=SizeDist(),
    )
    frames_sent = dict(stats.frames_sent)
    logins = frames_sent.pop("login", 0)
    frames_sent["sync"] = frames_sent.get("sync", 0) - player.counts.catch_up_syncs
    frames_sent = {t: n for t, n in frames_sent.items() if n}
    trace_types = {k: v for k, v in trace.by_type.items() if k not in AUTH}
    res = result_dict(
        scen,
        {},
        {
            "accounts": len(trace.accounts) * scale,
            "conversations": sum(len(cl.convs) for cl in clones),
            "clients": n_clients,
        },
        agg,
        [final],
        cpu_at,
        rss_at,
        (target,),
        probe,
        {"workers": 1},
        steady_last=played_k,
    )
    s = res["summary"]
    # deliveries of messages whose ack never came (their connection closed first): the server
    # may have committed them, nothing expected them; counted apart
    acked_ids = {mid for *_x, mid in stats.ack_log}
    of_unacked = sum(n for mid, n in (stats.deliver_log or {}).items() if mid not in acked_ids)
    s["expected_deliveries"] = expected
    s["delivered_of_unacked"] = of_unacked
    s["lost"] = max(0, expected - (s["delivered"] - of_unacked))
    s["unexpected_deliveries"] = max(0, s["delivered"] - of_unacked - expected)
    trace_errors: dict[str, int] = {}
    for kind, code in trace.answers.values():
        if kind == "error":
            from .proto import error_name

            name = error_name(code)
            trace_errors[name] = trace_errors.get(name, 0) + scale
    res["mode"] = "replay"
    res["replay"] = {
        "trace": str(trace.path),
        "speed": speed,
        "scale": scale,
        "jitter_s": jitter_s,
        "trace_span_s": round(trace.span_s, 3),
        "trace_connections": len(trace.connections),
        "trace_reconnects": sum(1 for tc in trace.connections if tc.reconnect),
        "trace_frames_by_type": trace.by_type,
        "trace_frames_by_type_without_auth": trace_types,
        "replayed_frames_by_type": frames_sent,
        "logins": logins,
        "failed_logins": player.counts.failed_logins,
        "login_retries": player.counts.login_retries,
        "login_ms": player.login_lat.summary(),
        "login_errors": player.counts.login_errors,
        "catch_up_syncs": player.counts.catch_up_syncs,
        "not_replayed_by_type": player.counts.not_replayed,
        "not_replayed_why": player.counts.reasons,
        "trace_errors": trace_errors,
        "warnings": trace.warnings,
    }
    return res
