"""chatd's server connection swaps two websockets internals for lighter ones to keep idle
connections small (``chatd/transport/server.py``). websockets is pinned; these tests fail on an
upgrade that starts using those internals in a way the stand-ins do not support."""

from __future__ import annotations

import inspect
import re

import websockets.asyncio.connection as ws_connection


def test_websockets_only_appends_removes_and_iterates_its_drain_waiters() -> None:
    source = inspect.getsource(ws_connection)
    uses = set(re.findall(r"self\.drain_waiters(\.\w+|\)|:|\s*=|\s)", source))
    methods = {u for u in uses if u.startswith(".")}
    assert methods <= {".append", ".remove"}, methods
    assert re.search(r"for \w+ in self\.drain_waiters:", source)


def test_the_receive_fast_path_s_assumptions_about_websockets() -> None:
    """``_Connection.data_received`` replays websockets' ``data_received`` around the bytes it
    hands on, tells a frame boundary by the parser's generators, and unmasks with websockets'
    own C ``apply_mask`` (tests/unit/test_fast_receive.py checks the behaviour)."""
    import websockets.frames as ws_frames
    import websockets.protocol as ws_protocol
    import websockets.server as ws_server
    from websockets.speedups import apply_mask

    assert ws_frames.apply_mask is apply_mask  # the C one, as websockets uses
    body = inspect.getsource(ws_connection.Connection.data_received)
    steps = [
        "self.protocol.receive_data(data)",
        "events = self.protocol.events_received()",
        "self.send_data()",
        "self.set_connection_exc(exc)",
        "if self.protocol.close_expected():",
        "self.close_deadline = self.loop.time() + self.close_timeout",
        "for event in events:",
        "self.process_event(event)",
    ]
    at = [body.find(s) for s in steps]
    assert -1 not in at and at == sorted(at), at
    assert (
        inspect.getsource(ws_server.ServerProtocol.parse)
        .rstrip()
        .endswith("yield from super().parse()")
    )
    parse = inspect.getsource(ws_protocol.Protocol.parse)
    assert "if (yield from self.reader.at_eof()):" in parse
    assert "self.max_message_size - self.current_size" in parse
    assert re.search(r"frame = yield from Frame\.parse\(", parse)
    frame_parse = inspect.getsource(ws_frames.Frame.parse)
    for rule in ("raise PayloadTooBig(length, max_size)", 'ProtocolError("incorrect masking")'):
        assert rule in frame_parse
    assert "self.current_size" in inspect.getsource(ws_protocol.Protocol.recv_frame)


def test_protocol_state_is_its_private_state() -> None:
    """``WsLink.flush`` and ``_Connection.data_received`` read ``protocol._state`` (what the
    ``state`` property returns, without a call per delivery)."""
    import websockets.protocol as ws_protocol

    getter = inspect.getsource(ws_protocol.Protocol.state.fget)  # type: ignore[attr-defined]
    assert getter.rstrip().endswith("return self._state")
    setter = inspect.getsource(ws_protocol.Protocol.state.fset)  # type: ignore[attr-defined]
    assert setter.rstrip().endswith("self._state = state")
    assert "self.state = CLOSED" in inspect.getsource(ws_protocol.Protocol)  # via the setter
