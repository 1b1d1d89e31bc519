"""The receive fast path (``chatd/transport/server._Connection.data_received``) against plain
websockets: any byte stream of client frames, split at any points, yields the same messages,
control frames, bytes written back (pongs, close frames, EOF), final state and close codes."""

from __future__ import annotations

import itertools
import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.connection import Connection
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from chatd.transport.server import _DATA, Inbox, _at_boundary, _Connection


class _Transport:
    def __init__(self) -> None:
        self.out: list[bytes | str] = []

    def write(self, data: bytes) -> None:
        self.out.append(bytes(data))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.out.append("EOF")


class _Session:
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def receive_nowait(self, data: bytes | str) -> None:
        self.log.append(("msg", data))


class _Probe(_Connection):
    """A ``_Connection`` with no socket and no loop: what it does is logged."""

    def __init__(self, max_size: int | None, fast: bool) -> None:  # no super().__init__
        self.protocol = ServerProtocol(state=State.OPEN, max_size=max_size)
        self.transport = _Transport()  # type: ignore[assignment]
        self.log: list[Any] = []
        self.inbox = Inbox(self, _Session(self.log))  # type: ignore[arg-type]
        self.inbox._busy = False
        self.close_deadline = None
        self.close_timeout = None
        self.debug = False
        self._fast = fast and _at_boundary(self.protocol)

    def process_event(self, event: Any) -> None:
        if type(event) is Frame and event.opcode not in _DATA:
            self.log.append(("ctrl", event.opcode, bytes(event.data)))
            return
        super().process_event(event)

    def result(self) -> tuple[Any, ...]:
        p = self.protocol
        return (
            self.log,
            self.transport.out,  # type: ignore[attr-defined]
            p.state,
            p.close_sent and p.close_sent.code,
            p.close_rcvd and p.close_rcvd.code,
            type(p.parser_exc),
        )


class _Plain(_Probe):
    """websockets' own ``data_received`` (the process_event above still routes data frames to
    the Inbox, as the server does)."""

    def data_received(self, data: bytes) -> None:
        Connection.data_received(self, data)


def _frame(opcode: int, payload: bytes, fin: bool, rsv: int, masked: bool, wide: int) -> bytes:
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    n = len(payload)
    mbit = 0x80 if masked else 0
    if wide == 2 or n >= 65536:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    elif wide == 1 or n >= 126:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | n])
    if not masked:
        return head + payload
    key = b"\x9a\x01\xfe\x37"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


# Sizes spread over 0-300 (st.binary alone seldom goes past the 64- and 200-byte limits) and
# the 125/126 boundary of the length encodings.
_payload = st.one_of(
    st.binary(max_size=8),
    st.builds(
        lambda n, b: (b * (n // len(b) + 1))[:n],
        st.one_of(st.integers(0, 300), st.sampled_from([63, 64, 65, 125, 126, 127, 199, 200, 201])),
        st.binary(min_size=1, max_size=8),
    ),
)
_common = st.tuples(
    st.just(Opcode.BINARY.value),
    _payload,
    st.just(True),
    st.just(0),
    st.just(True),
    st.sampled_from([0, 0, 0, 1, 2]),
)
_odd = st.tuples(
    st.sampled_from([0, 1, 2, 3, 8, 9, 10, 11]),
    st.one_of(_payload, st.just(b"\x03\xe8bye"), st.just(b"\x03\xf0")),
    st.booleans(),
    st.sampled_from([0, 0, 0, 1, 4]),
    st.sampled_from([True, True, True, False]),
    st.sampled_from([0, 0, 1, 2]),
)
# A binary frame with one thing changed: what the fast path must leave to websockets.
_off = st.builds(
    lambda f, what: (
        (f[0], f[1], False, *f[3:])
        if what == "fin"
        else (f[0], f[1], f[2], 4, *f[4:])
        if what == "rsv"
        else (*f[:4], False, f[5])
        if what == "unmasked"
        else (1, *f[1:])
        if what == "text"
        else (0, *f[1:])
    ),
    _common,
    st.sampled_from(["fin", "rsv", "unmasked", "text", "cont"]),
)
_frames = st.lists(st.one_of(_common, _off, _odd), max_size=12)


@settings(max_examples=1000, deadline=None)
@given(
    frames=_frames,
    max_size=st.sampled_from([None, 64, 200, 1 << 20]),
    cut=st.integers(min_value=0, max_value=8),
    splits=st.lists(st.integers(min_value=0, max_value=1 << 16), max_size=8),
    fast=st.booleans(),
)
def test_fast_path_is_websockets(
    frames: list[tuple[int, bytes, bool, int, bool, int]],
    max_size: int | None,
    cut: int,
    splits: list[int],
    fast: bool,
) -> None:
    stream = b"".join(_frame(*f) for f in frames)
    stream = stream[: len(stream) - cut] if cut and len(stream) > cut else stream
    points = sorted({s % (len(stream) + 1) for s in splits} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(points) if b > a]
    fast_conn, plain = _Probe(max_size, fast), _Plain(max_size, fast)
    for chunk in chunks:
        for conn in (fast_conn, plain):
            if not conn.protocol.reader.eof:
                conn.data_received(chunk)
    assert fast_conn.result() == plain.result()


def test_fast_path_takes_complete_binary_frames() -> None:
    """The common case really goes the fast way: websockets' parser is not stepped."""
    conn = _Probe(1 << 20, fast=True)
    assert conn._fast
    parser = conn.protocol.parser
    data = _frame(2, b"hello", True, 0, True, 0) + _frame(2, b"x" * 300, True, 0, True, 0)
    conn.protocol.parser = None  # type: ignore[assignment]  # would fail if used
    conn.data_received(data)
    conn.protocol.parser = parser
    assert conn.log == [("msg", b"hello"), ("msg", b"x" * 300)]
    assert conn._fast
