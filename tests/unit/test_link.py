"""The server's own WebSocket frame header is byte for byte websockets' framing."""

import pytest
from websockets.frames import Frame, Opcode

from chatd.transport.link import frame_header


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 300, 65535, 65536, 262144])
def test_frame_header_matches_websockets_serialize(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    expected = Frame(Opcode.BINARY, payload).serialize(mask=False, extensions=[])
    assert frame_header(size) + payload == expected
