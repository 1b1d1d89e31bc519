"""pytest killed with SIGKILL leaves no server behind (PostgreSQL, redis-server, chatd)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pgserver import pg_bindir
from redisd import require_redis_server

PAYLOAD = Path(__file__).with_name("leftover_payload.py")


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_pytest_killed_with_sigkill_leaves_no_server_running(tmp_path: Path) -> None:
    if pg_bindir() is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found")
    require_redis_server()
    pids_file = tmp_path / "pids"
    inner = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", str(PAYLOAD),
         f"--basetemp={tmp_path / 'inner'}"],
        cwd=Path(__file__).parents[2],
        env={**os.environ, "CHATD_PAYLOAD_PIDS": str(pids_file)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not pids_file.exists():
            assert inner.poll() is None, "the inner pytest ended before starting its servers"
            assert time.monotonic() < deadline, "the inner pytest did not start its servers"
            time.sleep(0.05)
        pids = [int(p) for p in pids_file.read_text().split()]
        assert all(alive(pid) for pid in pids)
    finally:
        inner.send_signal(signal.SIGKILL)
        inner.wait()
    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in pids if alive(pid)] == []
