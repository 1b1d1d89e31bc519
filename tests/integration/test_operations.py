"""What operators see: /healthz, /readyz, /status, /metrics on the same port; config precedence
on the CLI; the node id on every log line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from chatclient import Client
from conftest import RunningServer
from testkit import free_port, http_get

from chatd import __version__


async def test_health_ready_and_metrics_endpoints(server: RunningServer) -> None:
    port = server.app.port
    assert port is not None
    assert await http_get(port, "/healthz") == (200, "ok\n")
    assert await http_get(port, "/readyz") == (200, "ready\n")
    assert (await http_get(port, "/nope"))[0] == 404
    async with Client(server.url) as a, Client(server.url) as b:
        await a.register("alice", "Alice")
        await b.register("bob", "Bob")
        conv = await a.direct(b.account)
        for i in range(3):
            await a.send_text(conv, f"m{i}")
        status, metrics = await http_get(port, "/metrics")
        assert status == 200
        assert 'chatd_connections{state="authenticated"} 2.0' in metrics
        assert "chatd_messages_stored_total 3.0" in metrics
        assert 'chatd_frames_in_total{type="Send"} 3.0' in metrics
        assert "chatd_store_commit_seconds_count" in metrics
        assert "chatd_deliveries_total" in metrics
        assert f'chatd_node_info{{node="node-1",version="{__version__}"}} 1.0' in metrics
        assert "chatd_broker_up 1.0" in metrics
        assert "chatd_broker_lag_seconds" not in metrics  # in-process: nothing to measure
        status, body = await http_get(port, "/status")
        assert status == 200
        doc = json.loads(body)
        assert doc["node"] == "node-1" and doc["version"] == __version__
        assert doc["ready"] is True and doc["problems"] == [] and doc["draining"] is False
        assert doc["connections"] == {"open": 2, "authenticated": 2}
        assert doc["broker"]["kind"] == "memory" and doc["broker"]["healthy"] is True
        assert doc["store"] == {
            "backend": "sqlite",
            "db": server.app.settings.store.db,
            "reachable": True,
            "queued_writes": 0,
        }


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


def test_every_log_line_carries_the_node_id(tmp_path: Path) -> None:
    """``chatd serve --node-id``: each JSON log line names the node (lines of several nodes can
    be merged); SIGTERM drains and exits 0."""
    port = free_port()
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chatd",
            "serve",
            "--port",
            str(port),
            "--db",
            str(tmp_path / "n.db"),
            "--node-id",
            "edge-3",
        ],
        env={**os.environ, "CHATD_LOG__FORMAT": "json", "CHATD_LOG__LEVEL": "DEBUG"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stderr is not None
        try:
            lines = []
            for line in proc.stderr:  # up to "serving"
                lines.append(json.loads(line))
                if lines[-1]["event"] == "serving":
                    break
            doc = json.loads(asyncio.run(http_get(port, "/status"))[1])
            assert doc["node"] == "edge-3"
            proc.terminate()
            lines += [json.loads(line) for line in proc.stderr.read().splitlines()]
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert lines[-1]["event"] == "stopped"
    assert all(line["node"] == "edge-3" for line in lines)
