"""The test run's watchdog (``tests/procguard.py``) ends every server the run started once the run
ends, even when the run was killed by name (``pkill -f <checkout>`` also signals the watchdog,
whose command line names the same interpreter)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import procguard


def _alive(proc: subprocess.Popen[bytes]) -> bool:
    return proc.poll() is None


def _ignoring(pid: int, signals: tuple[signal.Signals, ...], seconds: float) -> bool:
    """Whether ``pid`` ignores all of ``signals`` within ``seconds`` (``SigIgn`` in
    ``/proc/PID/status``): the watchdog sets that up as it starts, before it waits."""
    want = sum(1 << (s - 1) for s in signals)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigIgn:") and int(line.split()[1], 16) & want == want:
                    return True
        time.sleep(0.02)
    return False


def _wait_gone(proc: subprocess.Popen[bytes], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(proc):
            return True
        time.sleep(0.05)
    return False


def test_a_server_is_ended_when_the_run_ends_even_after_the_watchdog_was_sent_sigterm() -> None:
    name, value = "CHATD_TEST_GUARD_CHECK", uuid.uuid4().hex  # not this run's own marker
    watchdog = subprocess.Popen(
        [sys.executable, "-c", procguard._WATCHDOG, name, value],
        stdin=subprocess.PIPE,
        start_new_session=True,
    )
    server = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env={**os.environ, name: value},
    )
    try:
        # Once it has started, it ignores what ``pkill`` sends first.
        ignores = _ignoring(watchdog.pid, (signal.SIGTERM, signal.SIGINT), 10)
        assert ignores, "the watchdog can be ended by SIGTERM or SIGINT"
        watchdog.send_signal(signal.SIGTERM)  # what ``pkill -f`` sends first
        watchdog.send_signal(signal.SIGINT)
        assert not _wait_gone(watchdog, 0.5), "the watchdog died of a polite signal"
        assert watchdog.stdin is not None
        watchdog.stdin.close()  # the run ends: its end of the pipe is closed
        assert _wait_gone(server, 5), "the marked server outlived the run"
        assert _wait_gone(watchdog, 5)
    finally:
        for proc in (server, watchdog):
            if _alive(proc):
                proc.kill()
            proc.wait(5)
