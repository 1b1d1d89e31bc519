"""SDK behaviour a user notices outside the happy path."""

from __future__ import annotations

import time

import pytest
from chatclient import Client, ConnectionLost
from testkit import free_port


async def test_connecting_to_a_server_that_is_not_there_raises_connection_lost_in_time() -> None:
    started = time.monotonic()
    with pytest.raises(ConnectionLost):
        async with Client(f"ws://127.0.0.1:{free_port()}/ws", request_timeout=0.5):
            pass
    assert time.monotonic() - started < 3
