"""What operators see: /healthz, /readyz, /status, /metrics on the same port; config precedence
on the CLI; the node id on every log line; draining that a load balancer can see."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chatclient import Client, KeyStore, Message
from conftest import RunningServer, make_settings, run_server
from testkit import Raw, ServerProcess, free_port, http_get

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
        # Each write's time: queued -> commit started, queued -> acked and written (the three
        # sends and whatever the registrations and the conversation wrote).
        samples = dict(line.rsplit(" ", 1) for line in metrics.splitlines() if line[:1] != "#")
        waits = float(samples["chatd_store_wait_seconds_count"])
        assert waits >= 3
        assert float(samples["chatd_store_done_seconds_count"]) == waits
        done = float(samples["chatd_store_done_seconds_sum"])
        assert done > float(samples["chatd_store_wait_seconds_sum"])
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
        assert doc["store"] == {  # no file path (issue 14.9: /status names none)
            "backend": "sqlite",
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


async def _refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    return False


async def test_sigterm_keeps_serving_with_readyz_503_for_the_grace_then_closes(
    tmp_path: Path,
) -> None:
    """``[server] drain_grace``: from SIGTERM the node answers ``/readyz`` 503 (so a load
    balancer's checks take it out) while it still accepts and serves; only after the grace does
    the listener close and clients get 1001; then it exits 0."""
    grace = 3.0
    srv = ServerProcess(tmp_path / "n.db", env={"CHATD_SERVER__DRAIN_GRACE": str(grace)})
    await srv.start()
    try:
        await srv.wait_ready()
        async with (
            Client(srv.url, encrypt=False, reconnect=False) as alice,
            Client(srv.url, encrypt=False, reconnect=False) as bob,
        ):
            await alice.register("alice", "Alice")
            await bob.register("bob", "Bob")
            conv = await alice.direct(bob.account)
            assert srv.proc is not None
            sent_at = time.monotonic()  # before the signal: the grace cannot start earlier
            srv.proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                while await srv.http_get("/readyz") != (503, "not ready: draining\n"):
                    await asyncio.sleep(0.02)
            status = json.loads((await srv.http_get("/status"))[1])
            assert (status["state"], status["draining"]) == ("draining", True)
            assert "chatd_draining 1.0" in (await srv.http_get("/metrics"))[1]
            assert await srv.http_get("/healthz") == (200, "ok\n")  # alive: do not restart it
            # Still serving: a message is stored, acked and delivered; a new client gets in.
            ack = await alice.send_text(conv, "during the grace")
            async with asyncio.timeout(10):
                async for ev in bob.events():
                    if isinstance(ev, Message) and ev.seq == ack.seq:
                        break
            late = await Raw.open(srv.url)
            assert time.monotonic() - sent_at < grace, "the machine was too slow to check"
            # Then the listener closes and every client is told to go elsewhere.
            assert await late.until_closed(timeout=grace + 10) == 1001
            closed_at = time.monotonic()
            assert closed_at - sent_at >= grace
            assert await _refused(srv.port)
            assert await asyncio.to_thread(srv.proc.wait, 30) == 0
    finally:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.kill9()


async def test_a_second_sigterm_ends_the_grace_at_once(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "n.db", env={"CHATD_SERVER__DRAIN_GRACE": "600"})
    await srv.start()
    try:
        await srv.wait_ready()
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            while (await srv.http_get("/readyz"))[0] != 503:
                await asyncio.sleep(0.02)
        srv.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(srv.proc.wait, 30) == 0
    finally:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.kill9()


def _check_config(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatd", "check-config", *args],
        env={"PATH": "/usr/bin", **env},
        capture_output=True,
        text=True,
    )


def test_passwords_come_from_files_or_the_environment_never_argv(tmp_path: Path) -> None:
    """``CHATD_STORE__PASSWORD_FILE`` / ``password_file`` (any key: ``KEY_file``) as Docker and
    systemd hand secrets over; the password joins the URL only to connect and is shown as
    ``***``."""
    pg_pw, redis_pw = "pg:pw/with@odd chars", "redis-pw-7"
    (tmp_path / "pg").write_text(pg_pw + "\n")
    (tmp_path / "redis").write_text(redis_pw + "\n")
    cfg = tmp_path / "node.toml"
    cfg.write_text(
        '[store]\ndb = "postgresql://chatd@db.internal:5432/chatd"\n'
        f'password_file = "{tmp_path / "pg"}"\n'
        '[broker]\nurl = "redis://redis.internal:6379/0"\n'
    )
    out = _check_config(
        {"CHATD_BROKER__PASSWORD_FILE": str(tmp_path / "redis")}, "--config", str(cfg)
    )
    assert out.returncode == 0, out.stderr
    assert pg_pw not in out.stdout and redis_pw not in out.stdout
    effective = json.loads(out.stdout)
    assert effective["store"]["db"] == "postgresql://chatd:***@db.internal:5432/chatd"
    assert effective["store"]["password"] == "***"
    assert effective["broker"]["url"] == "redis://:***@redis.internal:6379/0"
    assert effective["broker"]["password"] == "***"
    # What the node connects with: the password percent-encoded into the URL.
    from chatd.settings import load_settings

    s = load_settings(cfg, environ={"CHATD_BROKER__PASSWORD": redis_pw})
    assert s.store.db == "postgresql://chatd:pg%3Apw%2Fwith%40odd%20chars@db.internal:5432/chatd"
    assert s.broker.url == f"redis://:{redis_pw}@redis.internal:6379/0"
    socket_dsn = "postgresql://chatd@/chatd?host=/run/postgresql"  # a Unix socket: no host
    s = load_settings(None, environ={"CHATD_STORE__DB": socket_dsn, "CHATD_STORE__PASSWORD": "p"})
    assert s.store.db == "postgresql://chatd:p@/chatd?host=/run/postgresql"

    # Mistakes are named, not guessed at.
    missing = _check_config({"CHATD_STORE__PASSWORD_FILE": str(tmp_path / "nope")})
    assert missing.returncode == 2 and "store.password_file: cannot read" in missing.stderr
    twice = _check_config(
        {"CHATD_BROKER__URL": "redis://:a@h:6379/0", "CHATD_BROKER__PASSWORD": "b"}
    )
    assert twice.returncode == 2 and "carries a password and a password is also set" in twice.stderr
    sqlite = _check_config({"CHATD_STORE__PASSWORD": "x"})
    assert sqlite.returncode == 2 and "only for a postgresql:// db" in sqlite.stderr


def test_warnings_and_uncaught_exceptions_are_json_lines_too() -> None:
    """With JSON logs every stderr line is JSON: a library's warning, an exception that escapes
    a thread, one ignored in ``__del__`` and one that ends the program."""
    code = """
import threading, warnings
from chatd import logs
logs.configure("INFO", "json", node="n-9")
warnings.warn("this API is going away", UserWarning)
t = threading.Thread(target=lambda: 1 / 0, name="worker"); t.start(); t.join()
class Leaky:
    def __del__(self):
        raise ValueError("in __del__")
Leaky()
raise SystemError("the end")
"""
    out = subprocess.run(
        [sys.executable, "-W", "always", "-c", code], capture_output=True, text=True
    )
    assert out.returncode == 1
    lines = [json.loads(line) for line in out.stderr.splitlines()]
    assert all(line["node"] == "n-9" for line in lines)
    warning, thread, unraisable, fatal = lines
    assert (warning["logger"], warning["level"]) == ("py.warnings", "warning")
    assert warning["event"] == "this API is going away" and warning["category"] == "UserWarning"
    assert (thread["thread_name"], "ZeroDivisionError" in thread["exc"]) == ("worker", True)
    assert "ValueError: in __del__" in unraisable["exc"]
    assert fatal["level"] == "critical" and "SystemError: the end" in fatal["exc"]


def test_a_node_with_redis_logs_only_json_lines(tmp_path: Path) -> None:
    from redisd import RedisServer

    redis = RedisServer(tmp_path)
    redis.start()
    port = free_port()
    try:
        with subprocess.Popen(
            [
                sys.executable, "-m", "chatd", "serve", "--port", str(port),
                "--db", str(tmp_path / "n.db"), "--broker", redis.url,
            ],
            env={**os.environ, "CHATD_LOG__FORMAT": "json", "PYTHONWARNINGS": "always"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:  # fmt: skip
            try:
                asyncio.run(ServerProcess(tmp_path / "n.db", port).wait_ready())
                proc.terminate()
                _, err = proc.communicate(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
        events = [json.loads(line)["event"] for line in err.splitlines()]
        assert "serving" in events and events[-1] == "stopped"
    finally:
        redis.kill()


async def test_backup_copies_a_live_sqlite_store_that_serves_again_when_restored(
    tmp_path: Path,
) -> None:
    """``chatd backup`` while a client keeps sending: every message acked before the backup
    started is in the copy, the copy is one consistent moment (a gapless prefix), and a server
    started on the copy (the restore) serves the same accounts and history and goes on."""
    db = tmp_path / "live.db"
    srv = ServerProcess(db)
    await srv.start()
    copy = tmp_path / "backup.db"
    keys = KeyStore.memory()
    try:
        async with Client(srv.url, keys, encrypt=False) as alice:
            await alice.register("alice", "Alice")
            conv = (await alice.create("group", "notes")).conv
            acked: list[tuple[float, int]] = []
            stop = asyncio.Event()

            async def send() -> None:
                i = 0
                while not stop.is_set():
                    ack = await alice.send_text(conv, f"note {i}")
                    acked.append((time.monotonic(), ack.seq))
                    i += 1

            async with asyncio.TaskGroup() as tg:
                tg.create_task(send())
                while len(acked) < 200:
                    await asyncio.sleep(0.01)
                began = time.monotonic()
                out = await asyncio.to_thread(
                    subprocess.run,
                    [sys.executable, "-m", "chatd", "backup", "--db", str(db), str(copy)],
                    capture_output=True,
                    text=True,
                )
                ended = time.monotonic()
                n = len(acked)
                while len(acked) < n + 50:  # the server kept acking after it
                    await asyncio.sleep(0.01)
                stop.set()
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith(f"backed up {db} to {copy}: ")
        again = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "chatd", "backup", "--db", str(db), str(copy)],
            capture_output=True,
            text=True,
        )
        assert again.returncode == 1 and "never overwrites" in again.stderr
    finally:
        srv.terminate()

    restored = ServerProcess(copy, log=tmp_path / "restored.log")
    await restored.start()
    try:
        async with Client(restored.url, keys, encrypt=False) as alice:
            last = (await alice.conversation(conv)).last_seq
            seqs: list[int] = []
            while len(seqs) < last:
                page = await alice.fetch(conv, after=len(seqs), limit=500)
                assert page.messages
                seqs += [m.seq for m in page.messages]
            assert seqs == list(range(1, last + 1))  # one consistent moment: no gap
            before = [seq for t, seq in acked if t < began]
            during = [seq for t, seq in acked if t <= ended]
            assert max(before) <= last <= max(during)
            ack = await alice.send_text(conv, "after the restore")
            assert ack.seq == last + 1
    finally:
        restored.terminate()


PROMETHEUS = Path(__file__).resolve().parents[2] / "config" / "prometheus"
GRAFANA = Path(__file__).resolve().parents[2] / "config" / "grafana" / "chatd.json"


def test_the_alert_rules_are_valid_and_fire_when_they_should() -> None:
    """``promtool check rules`` and the rules' own unit tests (config/prometheus/alerts_test.yml:
    Redis down pages, a draining node does not, dropped envelopes, error rates, ...)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (.ci/run: apt-get install prometheus)")
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        out = subprocess.run([promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr


async def test_every_metric_the_alerts_and_the_dashboard_use_exists(tmp_path: Path) -> None:
    from chatproto.errors import ErrorCode
    from redisd import RedisServer

    used = set()
    for text in ((PROMETHEUS / "alerts.yml").read_text(), GRAFANA.read_text()):
        used |= set(re.findall(r"\bchatd_[a-z_]+\b", text))
    dashboard = json.loads(GRAFANA.read_text())
    assert [p["title"] for p in dashboard["panels"] if p["type"] != "row"]
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        settings = make_settings(tmp_path, broker={"url": redis.url, "heartbeat_interval": 0.05})
        async with run_server(settings) as server:
            port = server.app.port
            assert port is not None
            async with asyncio.timeout(10):
                while "chatd_broker_lag_last_seconds" not in (await http_get(port, "/metrics"))[1]:
                    await asyncio.sleep(0.05)
            _, text = await http_get(port, "/metrics")
    finally:
        redis.kill()
    exposed = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            exposed.add(name)
            if kind == "histogram":
                exposed |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif line and not line.startswith("#"):
            exposed.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    assert used - exposed == set()
    assert {"UNAVAILABLE", "INTERNAL"} <= {c.name for c in ErrorCode}  # alerts.yml's codes
