"""``chatload replay TRACE --target URL --speed X``: reproduce a recorded session.

1. Read the trace: connections (``c``), the account each one logged in as (``welcome`` lines),
   conversations (any ``conv`` field; kind and member accounts from ``conv`` answer lines, else
   the accounts that used it).
2. Provision: one fresh account per trace account (real Ed25519 keys), and one conversation per
   trace conversation with the mapped members (direct / group / channel as recorded; a channel's
   other senders are made admins).
3. Open one connection per trace connection (the trace's connections of one account log in as
   that account's one device) and hold them for the whole replay, then send each client frame at
   ``ts / speed`` with its ids remapped: sends (same kind, same body size, at least the 28-byte
   measurement header), typing, receipts (at the connection's cursor), syncs (from its cursor),
   fetches, list/get conversation, presence, membership requests. The trace's register / login /
   link_device frames are the connection's own login.

Measurements are those of ``run`` (one in-process worker): ack and delivery latency from the
intended time, per-second intervals, and the number of frames sent per type.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatproto import frames as F
from chatproto.kinds import client_may_send
from rich.console import Console

from .procstat import raise_nofile, self_cpu_seconds
from .proto import Client, Stats, gather_limited, with_id
from .provision import MAX_CREATE_MEMBERS
from .report import Aggregator, Live
from .scenario import BODY_HEADER, Scenario, SizeDist

AUTH = frozenset({"register", "login", "link_device"})


@dataclass
class Trace:
    frames: list[dict[str, Any]]  # client frames, in time order
    conn_account: dict[int, int]  # trace connection -> trace account
    convs: dict[int, dict[str, Any]]  # trace conv -> {"kind", "members": set of trace accounts}
    span_s: float
    by_type: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        lines = [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]
        lines.sort(key=lambda x: x["ts"])
        conn_account: dict[int, int] = {}
        convs: dict[int, dict[str, Any]] = {}
        frames = []
        by_type: dict[str, int] = {}
        for ln in lines:
            if ln.get("d") == "s" and ln["t"] == "welcome" and ln.get("account"):
                conn_account[int(ln["c"])] = int(ln["account"])
            elif ln.get("d") == "s" and ln["t"] == "conv" and ln.get("conv"):
                c = convs.setdefault(
                    int(ln["conv"]), {"kind": None, "members": set(), "senders": []}
                )
                c["kind"] = ln.get("kind") or c["kind"]
                c["members"].update(int(a) for a in ln.get("members", []) if a)
            elif ln.get("d") == "c":
                frames.append(ln)
                by_type[ln["t"]] = by_type.get(ln["t"], 0) + 1
        for ln in frames:  # connections that never logged in: an account of their own
            conn_account.setdefault(int(ln["c"]), -int(ln["c"]))
        for ln in frames:
            if "conv" in ln and ln["t"] != "create_conv":
                c = convs.setdefault(
                    int(ln["conv"]), {"kind": None, "members": set(), "senders": []}
                )
                acc = conn_account[int(ln["c"])]
                c["members"].add(acc)
                if ln["t"] == "send" and acc not in c["senders"]:
                    c["senders"].append(acc)
        span = frames[-1]["ts"] - frames[0]["ts"] if frames else 0.0
        return cls(frames, conn_account, convs, span, by_type)


async def _provision(
    trace: Trace, target: str, console: Console, quiet: bool
) -> tuple[dict[int, Client], dict[int, int], dict[int, int], Stats]:
    """Fresh accounts and conversations; returns (clients by trace connection, account map,
    conv map, stats)."""
    stats = Stats(int.from_bytes(os.urandom(4), "little"))
    tag = os.urandom(3).hex()
    trace_accounts = sorted(set(trace.conn_account.values()))
    reg: dict[int, Client] = {}

    async def register(k: int, acc: int) -> None:
        c = Client(k, target, Stats())
        await c.open(register_handle=f"r{tag}_{k}")
        reg[acc] = c

    await gather_limited([register(k, a) for k, a in enumerate(trace_accounts)], 200)
    amap = {a: c.account for a, c in reg.items()}
    cmap: dict[int, int] = {}
    for tconv, info in trace.convs.items():
        members = [m for m in sorted(info["members"]) if m in reg]
        if not members:
            continue
        kind = info["kind"] or ("direct" if len(members) == 2 else "group")
        if kind == "direct" and len(members) != 2:
            kind = "group"
        senders = info["senders"]
        owner = senders[0] if senders and senders[0] in reg else members[0]
        others = [amap[m] for m in members if m != owner]
        oc = reg[owner]
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
        cmap[tconv] = conv
        if kind != "direct":
            extra = [
                oc.request_nowait(with_id(F.Invite, conv=conv, account=a))
                for a in others[MAX_CREATE_MEMBERS:]
            ]
            if kind == "channel":
                extra += [
                    oc.request_nowait(with_id(F.SetRole, conv=conv, account=amap[s], role="admin"))
                    for s in senders
                    if s != owner and s in amap
                ]
            await asyncio.gather(*extra)
    await gather_limited([c.close() for c in reg.values()], 200)
    clients: dict[int, Client] = {}
    for cid, acc in sorted(trace.conn_account.items()):
        r0 = reg[acc]
        convs = [cmap[t] for t, info in trace.convs.items() if acc in info["members"] and t in cmap]
        clients[cid] = Client(cid, target, stats, seed=r0.key.seed, device=r0.device, convs=convs)
    if not quiet:
        console.print(
            f"replay provisioning: {len(reg)} accounts, {len(cmap)} conversations,"
            f" {len(clients)} connections"
        )
    return clients, amap, cmap, stats


def _frame_maker(
    ln: dict[str, Any],
    c: Client,
    amap: dict[int, int],
    cmap: dict[int, int],
    handles: list[str],
) -> Callable[[int], Any] | None:
    t = ln["t"]
    conv = cmap.get(int(ln["conv"])) if "conv" in ln else None
    accs = [amap.get(a, a) for a in ln.get("accounts", [])]
    if t == "list_convs":
        return lambda rid: F.ListConvs(id=rid)
    if t == "lookup":
        return lambda rid: F.Lookup(id=rid, handle=handles[rid % len(handles)])
    if t == "get_presence":
        return lambda rid: F.GetPresence(id=rid, accounts=accs)
    if t == "create_conv":
        members = [amap.get(a, a) for a in ln.get("members", [])]
        kind = str(ln.get("kind", "group"))
        return lambda rid: F.CreateConv(id=rid, kind=kind, members=members)  # type: ignore[arg-type]
    if conv is None:
        return None
    if t == "get_conv":
        return lambda rid: F.GetConv(id=rid, conv=conv)
    if t == "sync":
        return lambda rid: F.Sync(id=rid, conv=conv, after=c.cursor.get(conv, 0))
    if t == "fetch":
        limit = int(ln.get("limit", 100))
        if ln.get("before"):
            return lambda rid: F.Fetch(
                id=rid, conv=conv, before=c.cursor.get(conv, 0) + 1, limit=limit
            )
        return lambda rid: F.Fetch(id=rid, conv=conv, limit=limit)
    if t == "receipt":
        rtype = str(ln.get("type", "read"))
        return lambda rid: F.Receipt(id=rid, conv=conv, type=rtype, seq=c.cursor.get(conv, 0))  # type: ignore[arg-type]
    account = amap.get(int(ln.get("account", 0)), 0)
    if t == "invite":
        return lambda rid: F.Invite(id=rid, conv=conv, account=account)
    if t == "remove":
        return lambda rid: F.Remove(id=rid, conv=conv, account=account)
    if t == "set_role":
        role = str(ln.get("role", "member"))
        return lambda rid: F.SetRole(id=rid, conv=conv, account=account, role=role)  # type: ignore[arg-type]
    if t == "leave":
        return lambda rid: F.Leave(id=rid, conv=conv)
    if t == "rename":
        return lambda rid: F.Rename(id=rid, conv=conv, title="replayed")
    return None


async def replay(
    trace_path: Path, target: str, speed: float, console: Console, quiet: bool = False
) -> dict[str, Any]:
    from .run import result_dict

    raise_nofile(65536)
    trace = Trace.load(trace_path)
    if not trace.frames:
        raise SystemExit("the trace has no client frames")
    clients, amap, cmap, stats = await _provision(trace, target, console, quiet)
    handles = [c.handle or "nobody" for c in clients.values()]

    async def login(c: Client) -> None:
        await c.open()
        await c.load_cursors()
        handles.append(c.handle)

    await gather_limited([login(c) for c in clients.values()], 200)
    logins = stats.frames_sent.get("login", 0)
    stats.frames_sent.clear()  # setup (login, list_convs) is not part of the replayed traffic
    handles = [h for h in handles if len(h) >= 3] or ["nobody"]
    first_ts = trace.frames[0]["ts"]
    duration = trace.span_s / speed
    t0 = time.time_ns() + 300_000_000
    stats.steady_from_ns = t0
    msg_id = 0
    skipped: dict[str, int] = {}
    agg = Aggregator(1)
    done = asyncio.Event()

    async def drive() -> None:
        nonlocal msg_id
        for ln in trace.frames:
            due = t0 + int((ln["ts"] - first_ts) / speed * 1e9)
            delay = (due - time.time_ns()) / 1e9
            if delay > 0.001:
                await asyncio.sleep(delay)
            c = clients[int(ln["c"])]
            t = ln["t"]
            if t in AUTH:
                continue  # the connection's own login did it
            if t == "send":
                conv = cmap.get(int(ln.get("conv", 0)))
                if conv is None:
                    skipped[t] = skipped.get(t, 0) + 1
                    continue
                kind = str(ln.get("kind", "text"))
                c.kind = kind if client_may_send(kind) else "text"
                msg_id += 1
                c.send_message(conv, due, msg_id, max(BODY_HEADER, int(ln.get("body", 0))))
            elif t == "typing":
                conv = cmap.get(int(ln.get("conv", 0)))
                if conv is None:
                    skipped[t] = skipped.get(t, 0) + 1
                    continue
                from chatproto import codec

                frame = F.Typing(conv=conv, on=bool(ln.get("on", True)))
                c.count_sent(frame)
                c.write(codec.encode(frame))
            else:
                make = _frame_maker(ln, c, amap, cmap, handles)
                if make is None:
                    skipped[t] = skipped.get(t, 0) + 1
                    continue
                fut = c.request_nowait(make)
                fut.add_done_callback(lambda f: f.exception())
        done.set()

    async def report() -> None:
        k = 0
        cpu0 = self_cpu_seconds()
        wall0 = time.monotonic()
        while True:
            k += 1
            await asyncio.sleep(max(0.0, (t0 + k * 1_000_000_000 - time.time_ns()) / 1e9))
            cpu1, wall1 = self_cpu_seconds(), time.monotonic()
            snap = stats.snapshot()
            cpu = (cpu1 - cpu0) / max(1e-3, wall1 - wall0)
            snap.update(k=k, worker=0, cpu_s=cpu, acked_by_conv=stats.acked_by_conv)
            snap["unacked"] = sum(len(c.unacked) for c in clients.values())
            cpu0, wall0 = cpu1, wall1
            row = agg.add(snap)
            if row is not None:
                live.update(row)

    members: dict[int, int] = {}
    for tconv, conv in cmap.items():
        accs = trace.convs[tconv]["members"]
        members[conv] = sum(1 for a in trace.conn_account.values() if a in accs)
    with Live(console, f"chatload replay {trace_path.name} x{speed:g} -> {target}", quiet) as live:
        reporter = asyncio.create_task(report())
        await drive()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            unacked = sum(len(c.unacked) for c in clients.values())
            expected = sum(n * (members.get(cv, 1) - 1) for cv, n in stats.acked_by_conv.items())
            if unacked == 0 and stats.cum.get("delivers", 0) + stats.delivers >= expected:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # answers to the last requests
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
    stats.snapshot()
    final = {
        "cum": stats.cum,
        "cum_errors": {str(k): v for k, v in stats.cum_errors.items()},
        "frames_sent": stats.frames_sent,
        "acked_by_conv": stats.acked_by_conv,
        "unacked": sum(len(c.unacked) for c in clients.values()),
        "ack_total": stats.ack_t.encode(),
        "del_total": stats.del_t.encode(),
    }
    await gather_limited([c.close() for c in clients.values()], 200)
    scen = Scenario(
        name=f"replay:{trace_path.name}",
        kind="messaging",
        accounts=len(amap),
        targets=(target,),
        duration=max(1.0, duration),
        ramp_up=0.0,
        churn_per_s=0.0,
        seed=0,
        message_kind="text",
        message_size=SizeDist(),
    )
    frames_sent = dict(stats.frames_sent)
    trace_types = {k: v for k, v in trace.by_type.items() if k not in AUTH}
    res = result_dict(
        scen,
        members,
        {"accounts": len(amap), "conversations": len(cmap), "connections": len(clients)},
        agg,
        [final],
        {},
        {},
        (target,),
        None,
        {"workers": 1},
    )
    res["mode"] = "replay"
    res["replay"] = {
        "trace": str(trace_path),
        "speed": speed,
        "trace_span_s": round(trace.span_s, 3),
        "trace_frames_by_type": trace.by_type,
        "replayed_frames_by_type": frames_sent,
        "logins": logins,
        "trace_frames_by_type_without_auth": trace_types,
        "skipped_by_type": skipped,
    }
    return res
