"""chatload record -> replay of a real SDK session (end-to-end encrypted messages, key set-up, a
forced reconnect) at 1x, 10x and 100x and scaled 50 times, every count checked; and every bad
input or unreachable target answered by the real ``chatload`` command in one line, exit code 2."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from chatclient import Client, KeyStore, Message
from chatload.record import recording_proxy
from chatload.replay import Trace, replay
from rich.console import Console
from testkit import ServerProcess, free_port

LIMITS = {"CHATD_LIMITS__FRAMES_PER_SECOND": "100000", "CHATD_LIMITS__FRAME_BURST": "100000"}
CHATLOAD = [sys.executable, "-m", "chatload"]


async def _until(cond: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def record_session(upstream: str, trace: Path) -> int:
    """Three SDK users through the recording proxy: a group and a direct chat, six encrypted
    messages, bob's connection dropped and re-established (the SDK reconnects and syncs). Returns
    how many messages of others the three SDK clients received."""
    async with recording_proxy("127.0.0.1", 0, upstream, trace) as (_rec, port):
        url = f"ws://127.0.0.1:{port}/ws"
        clients = []
        for handle in ("alice", "bob", "carol"):
            c = Client(url, KeyStore.memory())
            await c.__aenter__()
            await c.register(handle, handle.title())
            clients.append(c)
        alice, bob, carol = clients
        group = (await alice.create("group", "g", [bob.account, carol.account])).conv
        direct = await alice.direct(await alice.lookup("bob"))
        for i in range(3):
            await alice.send_text(group, f"hello {i}")
        await bob.send_text(direct, "hi alice")
        await asyncio.sleep(0.3)
        await bob.drop_connection()  # a network failure: bob's SDK reconnects by itself
        await _until(lambda: not bob.connected)
        await carol.send_text(group, "while bob is away")
        await _until(lambda: bob.connected)
        await asyncio.sleep(0.3)
        await bob.send_text(group, "bob is back")
        got: list[Message] = []

        def received() -> int:
            for c in clients:
                got.extend(
                    e
                    for e in c.events_nowait()
                    if isinstance(e, Message) and not e.own and e.sender and e.text
                )
            return len(got)

        await _until(lambda: received() >= 11)
        await asyncio.sleep(0.5)
        for c in clients:
            await c.__aexit__(None, None, None)
        await asyncio.sleep(0.3)
        return received()


@pytest.fixture
async def chatd(tmp_path: Path) -> Any:
    server = ServerProcess(tmp_path / "chatd.db", env=LIMITS)
    await server.start()
    try:
        yield server
    finally:
        server.terminate()


async def test_sdk_session_replays_exactly_at_every_speed_and_scale(
    tmp_path: Path, chatd: ServerProcess
) -> None:
    trace_path = tmp_path / "trace.jsonl"
    received = await record_session(chatd.url, trace_path)
    # 3 x 2 in the group, 1 direct, 2 + 2 in the group (bob got carol's on his reconnect)
    assert received == 11
    text = trace_path.read_text()
    assert "hello" not in text and "alice" not in text  # no plaintext, no handles
    trace = Trace.load(trace_path)
    assert trace.by_type["send"] == 6
    assert len(trace.connections) == 4 and sum(tc.reconnect for tc in trace.connections) == 1
    key_types = ("to_device", "upload_keys", "claim_keys", "get_device_list", "put_device_list")
    assert all(trace.by_type.get(t, 0) > 0 for t in key_types)

    for speed, scale in ((1, 1), (10, 1), (100, 1), (10, 50), (100, 50)):
        # a busy machine can lag acks by seconds: closes wait for them (not the default 5 s)
        r = await replay(
            trace_path, chatd.url, speed, Console(quiet=True), True, scale, 0.05, close_wait_s=60
        )
        m, rp = r["summary"], r["replay"]
        where = f"x{speed} scale {scale}"
        assert m["sent"] == m["acked"] == 6 * scale, where
        assert m["unacked"] == m["failed"] == 0, where
        assert m["delivered"] == m["expected_deliveries"], where
        assert m["lost"] == m["duplicates"] == m["dup_acks"] == m["unexpected_deliveries"] == 0
        assert m["errors"] == {}, where  # nothing self-inflicted (no placeholder lookups)
        assert m["reconnects"] == scale, where  # bob's, replayed as a real reconnect
        assert rp["logins"] == 4 * scale and rp["failed_logins"] == 0, where
        assert rp["login_ms"]["count"] == 4 * scale, where  # recorded open -> welcome
        # the recorded behaviour (who was online when), at every speed: a connection closes
        # at its recorded close once the sends recorded before it are acked
        assert m["delivered"] == 11 * scale, where
        # every client frame is replayed (key set-up included) but create_conv: provisioned
        want = {t: n * scale for t, n in rp["trace_frames_by_type_without_auth"].items()}
        assert want.pop("create_conv") == 2 * scale
        assert rp["replayed_frames_by_type"] == want, where
        assert rp["not_replayed_by_type"] == {"create_conv": 2 * scale}, where
        assert r["frames_sent"]["send"] == 6 * scale
        # per-second rows (the last, partial second included) add up to the summary
        rows = r["intervals"]
        assert sum(x["sent"] for x in rows) == m["sent"], where
        assert sum(x["acks"] for x in rows) == m["acked"], where
        assert sum(x["delivers"] for x in rows) == m["delivered"], where
        assert m["connections_held"] >= 2 * scale and m["acked_per_s"] > 0, where
        # connections follow the trace: never all 4 recorded connections at once
        assert m["connections_held"] <= 3 * scale, where


# --------------------------------------------------------------------------- the command


def chatload(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CHATLOAD, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


def one_line_error(p: subprocess.CompletedProcess[str], *parts: str) -> None:
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    err = p.stderr.strip()
    assert "Traceback" not in p.stderr and len(err.splitlines()) == 1, err
    for part in parts:
        assert part in err, (part, err)


def test_bad_inputs_and_targets_are_one_line_and_exit_2(tmp_path: Path) -> None:
    dead = f"ws://127.0.0.1:{free_port()}/ws"
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(os.urandom(3000))
    foo = tmp_path / "foo.jsonl"
    foo.write_text('{"foo":1}\n')
    half = tmp_path / "half.jsonl"
    half.write_text('{"ts":0.1,"c":1,"d":"c","size":9,"t":"list_convs"}\n{"ts":0.2,"c":1,"d"\n')
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    one_line_error(chatload("replay", str(garbage), "--target", dead), f"{garbage}:1:")
    one_line_error(
        chatload("replay", str(foo), "--target", dead), f"{foo}:1:", "not a chatload trace line"
    )
    # a bad line that is not the last: the file and line, not a traceback
    one_line_error(chatload("replay", str(half), "--target", dead), f"{half}:2:", "not a JSON")
    one_line_error(
        chatload("replay", str(tmp_path / "missing.jsonl"), "--target", dead),
        "missing.jsonl",
        "cannot read",
    )
    one_line_error(chatload("replay", str(empty), "--target", dead), "no client frames")
    typed = tmp_path / "typed.jsonl"
    typed.write_text('{"ts":0.1,"c":1,"d":"c","size":9,"t":"send","conv":1,"body":"big"}\n')
    one_line_error(chatload("replay", str(typed), "--target", dead), f"{typed}:1:", "'body'")
    good = tmp_path / "good.jsonl"
    good.write_text('{"ts":0.1,"c":1,"d":"c","size":9,"t":"list_convs"}\n')
    one_line_error(chatload("replay", str(good), "--target", dead), dead, "cannot connect")
    one_line_error(chatload("replay", str(good), "--target", "nonsense"), "nonsense")
    one_line_error(chatload("replay", str(good), "--target", dead, "--scale", "0"), "--scale")
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("name = 3 = 4\n")
    one_line_error(chatload("run", str(bad_toml)), f"{bad_toml}:", "line 1")
    one_line_error(chatload("run", str(tmp_path / "none.toml")), "none.toml", "cannot read")
    tiny = Path(__file__).resolve().parents[2] / "loadtest/scenarios/tiny.toml"
    one_line_error(chatload("run", str(tiny), "--target", dead), dead, "cannot connect")
    one_line_error(chatload("idle", "--connections", "3", "--target", dead), dead)
    with socket.socket() as taken:  # the proxy's port is in use
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        addr = f"127.0.0.1:{taken.getsockname()[1]}"
        p = chatload("record", "--listen", addr, "--out", str(tmp_path / "t.jsonl"))
        one_line_error(p, addr, "record")


async def test_cut_off_last_line_is_replayed_up_to_the_cut(
    tmp_path: Path, chatd: ServerProcess
) -> None:
    trace = tmp_path / "trace.jsonl"
    lines = [
        {"ts": 0.0, "c": 1, "d": "o", "t": "open"},
        {"ts": 0.0, "c": 3, "d": "o", "t": "open"},  # a connection that never sent a frame
        {"ts": 0.01, "c": 3, "d": "x", "t": "close"},
        {"ts": 0.01, "c": 1, "d": "c", "size": 170, "t": "register"},
        {"ts": 0.02, "c": 1, "d": "s", "t": "welcome", "account": 1, "device": 1},
        {"ts": 0.03, "c": 2, "d": "c", "size": 170, "t": "register"},
        {"ts": 0.04, "c": 2, "d": "s", "t": "welcome", "account": 2, "device": 2},
        {"ts": 0.05, "c": 1, "d": "s", "t": "conv", "conv": 7, "kind": "direct", "members": [1, 2]},
        {
            "ts": 0.1,
            "c": 1,
            "d": "c",
            "size": 60,
            "t": "send",
            "conv": 7,
            "kind": "text",
            "body": 40,
        },
        {
            "ts": 0.2,
            "c": 2,
            "d": "c",
            "size": 60,
            "t": "send",
            "conv": 7,
            "kind": "text",
            "body": 40,
        },
    ]
    text = "".join(json.dumps(x) + "\n" for x in lines)
    trace.write_text(text + '{"ts":0.3,"c":1,"d":"c","si')  # the recorder was killed mid-line
    out = tmp_path / "r.json"
    p = await asyncio.to_thread(
        chatload, "replay", str(trace), "--target", chatd.url, "--json", str(out), "--quiet"
    )
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    (warning,) = p.stderr.strip().splitlines()
    assert f"{trace}:11:" in warning and "cut off" in warning and "lines 1-10" in warning
    s = json.loads(out.read_text())["summary"]
    assert s["sent"] == s["acked"] == 2 and s["delivered"] == s["expected_deliveries"] == 2
    assert s["error_count"] == 0


async def test_proxy_refuses_clients_when_upstream_is_down(tmp_path: Path) -> None:
    """`chatload record` with nothing behind it: each client is refused (HTTP 502) with one log
    line, and `chat register` through it gives up after its --connect-timeout."""
    port = free_port()
    proxy = subprocess.Popen(
        [
            *CHATLOAD,
            "record",
            "--listen",
            f"127.0.0.1:{port}",
            "--upstream",
            f"ws://127.0.0.1:{free_port()}/ws",
            "--out",
            str(tmp_path / "t.jsonl"),
            "--seconds",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:  # until the proxy listens
            try:
                _r, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                break
            except OSError:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        chat = [sys.executable, "-m", "chatclient.cli"]
        t = time.monotonic()  # what starting `chat` costs on this (maybe busy) machine
        await asyncio.to_thread(subprocess.run, [*chat, "--help"], capture_output=True)
        startup = time.monotonic() - t
        t = time.monotonic()
        p = await asyncio.to_thread(
            subprocess.run,
            [
                *chat,
                "--server",
                f"ws://127.0.0.1:{port}/ws",
                "--key",
                str(tmp_path / "alice.key"),
                "--connect-timeout",
                "2",
                "register",
                "alice",
                "Alice",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        took = time.monotonic() - t
    finally:
        proxy.terminate()
        _out, err = proxy.communicate(timeout=20)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "cannot reach the server" in p.stdout
    assert "Traceback" not in p.stdout + p.stderr and "ExceptionGroup" not in p.stderr
    assert took < startup + 2 + 4, (took, startup)  # its 2 s timeout, not the old 10 s hang
    refused = [ln for ln in err.splitlines() if ln.strip()]
    assert refused, err
    assert "Traceback" not in err
    assert all("refused a client: upstream" in ln for ln in refused), err


def test_the_example_chat_trace_loads() -> None:
    """loadtest/scenarios/chat-session.jsonl, recorded by record-chat-session.sh from five real
    `chat` clients: what the README's worked example replays."""
    t = Trace.load(Path(__file__).resolve().parents[2] / "loadtest/scenarios/chat-session.jsonl")
    assert t.warnings == []
    assert len(t.accounts) == 5 and len(t.connections) == 12
    assert sum(tc.reconnect for tc in t.connections) == 7  # 5 register -> session, 2 /drop
    assert t.by_type["send"] == 31 and t.by_type["register"] == 5
    assert {"to_device", "upload_keys", "claim_keys", "put_device_list"} <= set(t.by_type)
    assert sorted(c["kind"] for c in t.convs.values()) == ["direct", "direct", "group"]
