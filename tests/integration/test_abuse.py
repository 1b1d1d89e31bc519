"""Bad input gets an error frame with a stable code and the connection survives; floods are
throttled; an oversized frame closes with 1009; a slow consumer is dropped without slowing others."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgspec
import pytest
from chatproto import auth, codec, kinds
from chatproto import frames as F
from chatproto.errors import ErrorCode
from conftest import RunningServer, make_settings, run_server
from testkit import Raw, ServerProcess


async def _pair(url: str) -> tuple[Raw, Raw, int]:
    a = await Raw.open(url)
    b = await Raw.open(url)
    await a.register("alice")
    await b.register("bob")
    conv = (
        await a.request(F.CreateConv(id=a.next_id(), kind="direct", members=[b.account]), F.Conv)
    ).info.conv
    return a, b, conv


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\xc1", ErrorCode.MALFORMED),  # never-used msgpack byte
        (b"\x93\x01\x02\x03", ErrorCode.MALFORMED),  # an array, not a map
        (msgspec.msgpack.encode({"t": "teleport", "id": 5}), ErrorCode.UNKNOWN_FRAME),
        (msgspec.msgpack.encode({"t": "send", "id": 6, "conv": 1}), ErrorCode.BAD_FIELD),
        (msgspec.msgpack.encode({"t": "fetch", "id": 7, "conv": -1}), ErrorCode.BAD_FIELD),
        (
            msgspec.msgpack.encode({"t": "fetch", "id": 8, "conv": 1, "limit": 10**6}),
            ErrorCode.BAD_FIELD,
        ),
        (
            msgspec.msgpack.encode({"t": "lookup", "id": 9, "handle": "Not A Handle"}),
            ErrorCode.BAD_FIELD,
        ),
    ],
)
async def test_malformed_frame_gets_error_code_and_connection_survives(
    server: RunningServer, payload: bytes, code: ErrorCode
) -> None:
    a, b, conv = await _pair(server.url)
    await a.ws.send(payload)
    err = await a.expect(F.Error)
    assert err.code == code
    rid = (
        msgspec.msgpack.decode(payload).get("id", 0) if payload[:1] not in (b"\xc1", b"\x93") else 0
    )
    assert err.re == rid
    ack = await a.request(
        F.Send(id=a.next_id(), conv=conv, cmid="after", kind="text", body=b"x"), F.Ack
    )
    assert ack.seq == 2
    await a.close()
    await b.close()


async def test_text_frames_are_refused_with_malformed(server: RunningServer) -> None:
    a, b, _ = await _pair(server.url)
    await a.ws.send("hello")
    assert (await a.expect(F.Error)).code == ErrorCode.MALFORMED
    await a.close()
    await b.close()


async def test_unregistered_or_server_only_kind_is_refused(server: RunningServer) -> None:
    a, b, conv = await _pair(server.url)
    for kind in ("system", "nonsense"):
        err = await a.request(
            F.Send(id=a.next_id(), conv=conv, cmid=kind, kind=kind, body=b""), F.Error
        )
        assert err.code == ErrorCode.INVALID
    ok = await a.request(
        F.Send(id=a.next_id(), conv=conv, cmid="x", kind="x-poll", body=b""), F.Ack
    )
    assert ok.seq == 2
    await a.close()
    await b.close()


async def test_every_registered_kind_is_routed_the_same_way(server: RunningServer) -> None:
    a, b, conv = await _pair(server.url)
    sendable = sorted(k for k in kinds.KINDS if kinds.client_may_send(k))
    assert len(sendable) == 12  # eleven content kinds and e2e
    for i, kind in enumerate(sendable):
        await a.request(
            F.Send(id=a.next_id(), conv=conv, cmid=f"k{i}", kind=kind, body=b"\x01opaque"), F.Ack
        )
    await b.expect(F.Deliver, conv=conv, seq=1)  # the "created" system message
    got = [await b.expect(F.Deliver, conv=conv) for _ in sendable]
    assert [d.kind for d in got] == sendable
    assert all(d.body == b"\x01opaque" for d in got)  # the server never touches bodies
    await a.close()
    await b.close()


async def test_oversized_frame_closes_with_1009(server: RunningServer) -> None:
    a, b, conv = await _pair(server.url)
    await a.ws.send(b"\x00" * (256 * 1024 + 1))
    assert await a.until_closed() == 1009
    # Everyone else is fine.
    ack = await b.request(
        F.Send(id=b.next_id(), conv=conv, cmid="still", kind="text", body=b"x"), F.Ack
    )
    assert ack.seq == 2
    await b.close()


async def test_non_member_learns_nothing_and_roles_are_enforced(server: RunningServer) -> None:
    a, b, _ = await _pair(server.url)
    c = await Raw.open(server.url)
    await c.register("carol")
    group = (
        await a.request(
            F.CreateConv(id=a.next_id(), kind="group", title="G", members=[b.account]), F.Conv
        )
    ).info.conv
    missing = await c.request(F.GetConv(id=c.next_id(), conv=group), F.Error)
    nowhere = await c.request(F.GetConv(id=c.next_id(), conv=99999), F.Error)
    assert missing.code == nowhere.code == ErrorCode.NOT_FOUND
    assert missing.msg == nowhere.msg
    send = await c.request(
        F.Send(id=c.next_id(), conv=group, cmid="x", kind="text", body=b""), F.Error
    )
    assert send.code == ErrorCode.NOT_FOUND
    fetch = await c.request(F.Fetch(id=c.next_id(), conv=group), F.Error)
    assert fetch.code == ErrorCode.NOT_FOUND
    # bob is a plain member: cannot invite, cannot rename, cannot remove the owner.
    for frame in (
        F.Invite(id=b.next_id(), conv=group, account=c.account),
        F.Rename(id=b.next_id(), conv=group, title="mine"),
        F.Remove(id=b.next_id(), conv=group, account=a.account),
        F.SetRole(id=b.next_id(), conv=group, account=b.account, role="admin"),
    ):
        assert (await b.request(frame, F.Error)).code == ErrorCode.FORBIDDEN
    # A removed member can no longer read.
    await a.request(F.Remove(id=a.next_id(), conv=group, account=b.account), F.Ok)
    assert (
        await b.request(F.Fetch(id=b.next_id(), conv=group), F.Error)
    ).code == ErrorCode.NOT_FOUND
    for r in (a, b, c):
        await r.close()


async def test_flooder_is_throttled_with_rate_limited_while_others_are_served(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, limits={"frames_per_second": 20, "frame_burst": 20})
    async with run_server(settings) as srv:
        flooder, other, conv = await _pair(srv.url)
        for i in range(200):
            await flooder.send_frame(
                F.Send(id=flooder.next_id(), conv=conv, cmid=f"f{i}", kind="text", body=b"x")
            )
        replies = [await flooder.expect(F.Ack | F.Error) for _ in range(200)]  # type: ignore[arg-type]
        limited = [
            r for r in replies if isinstance(r, F.Error) and r.code == ErrorCode.RATE_LIMITED
        ]
        acked = [r for r in replies if isinstance(r, F.Ack)]
        assert len(limited) >= 150
        assert 15 <= len(acked) <= 50
        started = time.monotonic()
        ack = await other.request(
            F.Send(id=other.next_id(), conv=conv, cmid="o", kind="text", body=b"y"), F.Ack
        )
        assert time.monotonic() - started < 1.0
        assert ack.seq == len(acked) + 2
        await flooder.close()
        await other.close()


async def test_a_bot_has_its_own_larger_frame_budget(tmp_path: Path) -> None:
    """A bot answers many users on one connection: 200 sends in a burst pass where a user's
    connection (budget 20) would be refused most of them."""
    settings = make_settings(
        tmp_path,
        limits={
            "frames_per_second": 20,
            "frame_burst": 20,
            "bot_frames_per_second": 400,
            "bot_frame_burst": 400,
        },
    )
    async with run_server(settings) as srv:
        user = await Raw.open(srv.url)
        await user.register("someone")
        # A bot its owner created (SPEC.md 6.1): one that declares itself has a user's budget.
        bot = await Raw.open(srv.url)
        payload = auth.bot_approval_payload(
            srv.app.settings.server.name, "helperbot", bot.key.public_key
        )
        welcome = await bot.request(
            F.Register(
                id=bot.next_id(),
                handle="helperbot",
                name="Helper",
                type="bot",
                device_key=bot.key.public_key,
                device_name="raw",
                sig=bot.login_sig(),
                approver=user.device,
                approval=user.key.sign(payload),
            ),
            F.Welcome,
        )
        bot.account, bot.device = welcome.account, welcome.device
        conv = (
            await bot.request(
                F.CreateConv(id=bot.next_id(), kind="direct", members=[user.account]), F.Conv
            )
        ).info.conv
        for i in range(200):
            await bot.send_frame(
                F.Send(id=bot.next_id(), conv=conv, cmid=f"b{i}", kind="text", body=b"x")
            )
        replies = [await bot.expect(F.Ack | F.Error) for _ in range(200)]  # type: ignore[arg-type]
        assert all(isinstance(r, F.Ack) for r in replies)
        await bot.close()
        await user.close()


async def test_slow_consumer_is_disconnected_without_slowing_anyone_else(tmp_path: Path) -> None:
    # A separate server process, so the fast reader really reads while the server writes.
    srv = ServerProcess(
        tmp_path / "slow.db",
        env={
            "CHATD_LIMITS__MAX_OUTBOUND_BYTES": str(256 * 1024),
            "CHATD_LIMITS__SLOW_CONSUMER_GRACE": "0.5",
            "CHATD_LIMITS__FRAMES_PER_SECOND": "10000",
            "CHATD_LIMITS__FRAME_BURST": "10000",
        },
    )
    await srv.start()
    try:
        sender = await Raw.open(srv.url)
        slow = await Raw.open(srv.url, rcvbuf=64 * 1024, max_size=None)
        fast = await Raw.open(srv.url, max_size=None)
        await sender.register("sender")
        await slow.register("slow")
        await fast.register("fast")
        group = (
            await sender.request(
                F.CreateConv(
                    id=sender.next_id(),
                    kind="group",
                    title="G",
                    members=[slow.account, fast.account],
                ),
                F.Conv,
            )
        ).info.conv
        slow.ws.transport.pause_reading()  # stops reading: the server's buffer for it grows
        body = b"z" * 60_000
        n = 300  # ~18 MB to each recipient: past the kernel's socket buffers and the 256 KiB bound

        async def sends() -> None:
            for i in range(n):
                await sender.send_frame(
                    F.Send(id=sender.next_id(), conv=group, cmid=f"s{i}", kind="text", body=body)
                )
                if i % 20 == 19:
                    await asyncio.sleep(0.02)

        async def acks() -> None:
            for _ in range(n):
                await sender.expect(F.Ack, timeout=30)

        async def fast_reads() -> list[F.Deliver]:
            await fast.expect(F.Deliver, conv=group, seq=1)  # the "created" system message
            return [await fast.expect(F.Deliver, conv=group, timeout=30) for _ in range(n)]

        started = time.monotonic()
        _, _, got = await asyncio.gather(sends(), acks(), fast_reads())
        assert [d.seq for d in got] == list(range(2, n + 2))
        assert time.monotonic() - started < 20
        metrics = await _metrics(f"http://127.0.0.1:{srv.port}")
        assert "chatd_slow_consumer_disconnects_total 1.0" in metrics
        slow.ws.transport.resume_reading()
        # The server aborted it: whatever was buffered arrives, then the socket ends (no 1000).
        assert await slow.until_closed() == 1006
        for r in (sender, fast, slow):
            await r.close()
    finally:
        srv.terminate()


async def _metrics(base: str) -> str:
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = await reader.read()
    writer.close()
    return data.decode()


def test_codec_is_what_the_server_speaks() -> None:
    assert codec.decode_client(codec.encode(F.ListConvs(id=1))) == F.ListConvs(id=1)
