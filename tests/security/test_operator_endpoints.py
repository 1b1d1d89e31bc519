"""Issue 14.9, the operator endpoints: ``/status`` and ``/metrics`` answered anyone on the
client port and ``/status`` named the database file. Now neither names a file path, and they
can be moved to an operator address (the client port answers 404) or put behind a token."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import make_settings, run_server
from testkit import Raw

TOKEN = "op-token-7f3a"


async def get(port: int, path: str, token: str | None = None) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    auth = f"Authorization: Bearer {token}\r\n" if token is not None else ""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n".encode())
    data = (await reader.read()).decode()
    writer.close()
    head, _, body = data.partition("\r\n\r\n")
    return int(head.split()[1]), body


async def test_status_and_metrics_name_no_file_path(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with run_server(settings) as server:
        port = server.app.port
        assert port is not None
        for path in ("/status", "/metrics"):
            status, body = await get(port, path)
            assert status == 200
            # Before: /status said "db": "<tmp_path>/chatd.db".
            assert str(tmp_path) not in body and "chatd.db" not in body, path


async def test_operator_endpoints_on_their_own_address(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, server={"operator_host": "127.0.0.1", "operator_port": 0})
    async with run_server(settings) as server:
        port, operator = server.app.port, server.app.operator_port
        assert port is not None and operator is not None and operator != port
        # The client port: no operator endpoints (before: 200 to anyone), health checks stay.
        assert (await get(port, "/status"))[0] == 404
        assert (await get(port, "/metrics"))[0] == 404
        assert (await get(port, "/readyz"))[0] == 200
        # The operator address: everything an operator reads, and no WebSocket.
        assert (await get(operator, "/status"))[0] == 200
        status, body = await get(operator, "/metrics")
        assert status == 200 and "chatd_node_info" in body
        assert (await get(operator, "/ws"))[0] == 404
        c = await Raw.open(server.url)  # clients are served as before
        await c.register("alice")
        await c.close()


async def test_operator_endpoints_behind_a_token(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, server={"operator_token": TOKEN})
    async with run_server(settings) as server:
        port = server.app.port
        assert port is not None
        for path in ("/status", "/metrics"):
            assert (await get(port, path))[0] == 401
            assert (await get(port, path, "wrong"))[0] == 401
            assert (await get(port, path, TOKEN))[0] == 200
        assert (await get(port, "/healthz"))[0] == 200  # liveness needs no token
