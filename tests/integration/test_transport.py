"""The WebSocket layer: subprotocol, Origin allow-list, keepalive, large resyncs."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from chatclient import Client, KeyStore, Message
from chatproto import frames as F
from conftest import RunningServer, make_settings, run_server
from testkit import Raw
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin, Subprotocol


async def test_handshake_without_the_subprotocol_is_refused(server: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as info:
        await connect(server.url)
    assert info.value.response.status_code == 400


async def test_browser_origins_outside_the_allow_list_are_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, server={"origins": "https://chat.example"})
    async with run_server(settings) as srv:
        proto = [Subprotocol("chatd.v1")]
        with pytest.raises(InvalidStatus) as info:
            await connect(srv.url, subprotocols=proto, origin=Origin("https://evil.example"))
        assert info.value.response.status_code == 403
        ok = await connect(srv.url, subprotocols=proto, origin=Origin("https://chat.example"))
        await ok.close()
        no_origin = await connect(srv.url, subprotocols=proto)  # not a browser: allowed
        await no_origin.close()


async def test_a_peer_that_stops_answering_pings_is_closed(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, limits={"ping_interval": 0.2, "ping_timeout": 0.3})
    async with run_server(settings) as srv:
        r = await Raw.open(srv.url, ping_interval=None)
        await r.register("sleepy")
        r.ws.transport.pause_reading()  # it can no longer see (or answer) the server's pings
        await asyncio.sleep(1.5)
        r.ws.transport.resume_reading()
        assert await r.until_closed(timeout=5) in (1011, 1006)


async def test_resync_after_a_long_absence_pages_through_everything_in_order(
    tmp_path: Path,
) -> None:
    settings = make_settings(
        tmp_path, limits={"frames_per_second": 100_000, "frame_burst": 100_000}
    )
    async with run_server(settings) as srv:
        await _long_absence(srv, tmp_path)


async def _long_absence(server: RunningServer, tmp_path: Path) -> None:
    keyfile = tmp_path / "bob.key"
    sender = await Raw.open(server.url)
    await sender.register("alice")
    async with Client(server.url, KeyStore.open(keyfile)) as b:
        await b.register("bob", "Bob")
    conv = (
        await sender.request(
            F.CreateConv(id=sender.next_id(), kind="direct", members=[b.account]), F.Conv
        )
    ).info.conv
    n = 1_300  # more than two sync pages of 500
    for i in range(n):
        await sender.send_frame(
            F.Send(id=sender.next_id(), conv=conv, cmid=f"m{i}", kind="text", body=str(i).encode())
        )
    for _ in range(n):
        await sender.expect(F.Ack, timeout=20)
    async with Client(server.url, KeyStore.open(keyfile)) as b:
        got: list[Message] = []
        async for ev in b.events():
            if isinstance(ev, Message) and ev.kind == "text":
                got.append(ev)
                if len(got) == n:
                    break
        assert [m.seq for m in got] == list(range(2, n + 2))
        assert [m.body for m in got] == [str(i).encode() for i in range(n)]
    await sender.close()


async def test_a_closed_connection_is_freed_at_once_not_left_to_the_cyclic_gc(
    server: RunningServer,
) -> None:
    """Every way a connection ends (a client that closes, one whose TCP connection drops
    mid-session, one that never logs in, a TCP probe that sends nothing, a request that is no
    WebSocket handshake) frees the server's objects for it by reference counting, at once. Left in reference cycles, a long-lived connection's objects (its
    buffers, session, link) would wait for a full collection of the cyclic GC, which walks
    every object of every open connection while the event loop stands still (loadtest/bench_gc.py:
    ~75 ms at 1,000 connections before this was fixed)."""
    import gc
    import weakref

    from websockets.server import ServerProtocol

    from chatd.transport.server import _Connection

    def server_side() -> list[weakref.ref[object]]:
        alive = [o for o in gc.get_objects() if issubclass(type(o), _Connection | ServerProtocol)]
        return [weakref.ref(o) for o in alive]

    gc.collect()
    # Another test's, still alive (held here so that no id is reused): not this test's.
    earlier = {id(o): o for r in server_side() if (o := r()) is not None}
    clean, dropped = Client(server.url), Client(server.url)
    await clean.__aenter__()
    await dropped.__aenter__()
    await clean.register("clean", "Clean")
    await dropped.register("dropped", "Dropped")
    anonymous = await Raw.open(server.url)  # never logs in
    port = server.app.port
    _, probe = await asyncio.open_connection("127.0.0.1", port)  # a balancer's TCP check
    reader, not_ws = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.sleep(0.1)
    refs = [r for r in server_side() if id(r()) not in earlier]
    try:
        assert len(refs) == 10  # five connections and their websockets protocols
        gc.disable()  # from here only reference counting frees anything
        await clean.__aexit__(None, None, None)
        await dropped.drop_connection()
        await dropped.__aexit__(None, None, None)
        await anonymous.close()
        probe.close()
        not_ws.write(b"GET /ws HTTP/1.1\r\nHost: chatd\r\n\r\n")  # no Upgrade: refused
        assert (await reader.read()).startswith(b"HTTP/1.1 426")
        deadline = asyncio.get_running_loop().time() + 5
        while left := sorted(type(o).__name__ for r in refs if (o := r()) is not None):
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"still alive, in reference cycles: {left}")
            del left
            await asyncio.sleep(0.05)
    finally:
        gc.enable()
        for c in (clean, dropped):
            await c.__aexit__(None, None, None)
        await anonymous.close()
        for writer in (probe, not_ws):
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
