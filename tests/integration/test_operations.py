"""What operators see: /healthz, /readyz, /metrics on the same port; config precedence on the CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from chatclient import Client
from conftest import RunningServer


async def _get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = (await reader.read()).decode()
    writer.close()
    head, _, body = data.partition("\r\n\r\n")
    return int(head.split()[1]), body


async def test_health_ready_and_metrics_endpoints(server: RunningServer) -> None:
    port = server.app.port
    assert port is not None
    assert await _get(port, "/healthz") == (200, "ok\n")
    assert (await _get(port, "/readyz"))[0] == 200
    assert (await _get(port, "/nope"))[0] == 404
    async with Client(server.url) as a, Client(server.url) as b:
        await a.register("alice", "Alice")
        await b.register("bob", "Bob")
        conv = await a.direct(b.account)
        for i in range(3):
            await a.send_text(conv, f"m{i}")
        status, metrics = await _get(port, "/metrics")
        assert status == 200
        assert 'chatd_connections{state="authenticated"} 2.0' in metrics
        assert "chatd_messages_stored_total 3.0" in metrics
        assert 'chatd_frames_in_total{type="Send"} 3.0' in metrics
        assert "chatd_store_commit_seconds_count" in metrics
        assert "chatd_deliveries_total" in metrics


def test_check_config_shows_precedence_flags_over_env_over_file(tmp_path: object) -> None:
    cfg = f"{tmp_path}/c.toml"
    with open(cfg, "w") as f:
        f.write('[server]\nport = 1111\nname = "from-file"\n[store]\ndb = "file.db"\n')
    out = subprocess.run(
        [sys.executable, "-m", "chatd", "check-config", "--config", cfg, "--port", "3333"],
        env={"CHATD_SERVER__PORT": "2222", "CHATD_SERVER__NAME": "from-env", "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    effective = json.loads(out.stdout)
    assert effective["server"]["port"] == 3333
    assert effective["server"]["name"] == "from-env"
    assert effective["store"]["db"] == "file.db"
    bad = subprocess.run(
        [sys.executable, "-m", "chatd", "check-config"],
        env={"CHATD_SERVER__PORTT": "1", "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert "server.portt" in bad.stderr
