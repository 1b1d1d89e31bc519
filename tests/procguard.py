"""No server outlives the test run, even when pytest itself is killed with SIGKILL.

Every process a test starts (chatd nodes, redis-server, PostgreSQL through ``pg_ctl``, bots,
``chat`` and ``chatload`` subprocesses) inherits the environment variable :data:`MARKER` with
this run's random value; daemons do too (``pg_ctl`` forks the postmaster away from its parent,
so a parent-death signal alone would not reach it). A watchdog process, in a session of its
own, holds the read end of a pipe whose write end only pytest holds: when pytest ends in any
way (normally, with an error, SIGKILL), the kernel closes the write end, the watchdog reads EOF
and SIGKILLs every process that carries the marker. Some servers overwrite their environment
with their process title (redis-server does), so processes the suite starts directly also get a
parent-death signal (:func:`die_with_parent`). Fixtures still stop their servers
themselves; the watchdog is the net under them, and :func:`leftovers` lets the session fail
when a fixture forgot one.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

MARKER = "CHATD_TEST_RUN"
"""The variable every process started by this test run inherits."""

_WATCHDOG = r"""
import os, signal, sys, time
marker = ("%s=" % sys.argv[1]).encode() + sys.argv[2].encode()
# A kill aimed at the run by name (``pkill -f <checkout>`` matches this interpreter's path too)
# must not take the net away: only the pipe's EOF ends the watchdog, and SIGKILL.
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
sys.stdin.buffer.read()  # returns at EOF: the test run has ended, one way or another
def marked():
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            with open("/proc/%s/environ" % pid, "rb") as f:
                if marker in f.read().split(b"\0"):
                    yield int(pid)
        except OSError:
            pass
for _ in range(3):  # a process may fork while we kill: look again
    pids = list(marked())
    if not pids:
        break
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.2)
"""

_watchdog: subprocess.Popen[bytes] | None = None


def start_watchdog() -> None:
    """Mark this process's environment and start the watchdog (once per test process).

    Under pytest-xdist every worker is a test process of its own: it marks its children with a
    value of its own and has its own watchdog, which ends them when the worker ends in any way
    (the controller's watchdog kills a worker that outlives a killed controller, and the
    worker's watchdog then ends the worker's servers)."""
    global _watchdog
    if _watchdog is not None:
        return
    os.environ[MARKER] = uuid.uuid4().hex
    _watchdog = subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, MARKER, os.environ[MARKER]],
        stdin=subprocess.PIPE,
        start_new_session=True,  # not in pytest's process group: a Ctrl-C there spares it
    )


_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> None:
    """``preexec_fn`` for ``Popen``: the child gets SIGKILL when the process that started it
    dies (Linux's parent-death signal), as a net under the watchdog."""
    parent = os.getppid()
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def stop_watchdog() -> None:
    """The run is over: close the pipe (the watchdog ends what is left, as after a kill) and
    wait for it, so no child process or pipe outlives pytest's own exit."""
    global _watchdog
    if _watchdog is None:
        return
    assert _watchdog.stdin is not None
    _watchdog.stdin.close()
    try:
        _watchdog.wait(10)
    except subprocess.TimeoutExpired:
        _watchdog.kill()
        _watchdog.wait()
    _watchdog = None


def leftovers() -> list[tuple[int, str]]:
    """Live processes (pid, command) started by this run, other than pytest and the watchdog."""
    value = os.environ.get(MARKER)
    if value is None:
        return []
    needle = f"{MARKER}={value}".encode()
    skip = {os.getpid(), _watchdog.pid if _watchdog else -1}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # a zombie: ended, not yet reaped
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found.append((int(entry.name), cmd.strip()[:200]))
    return found


def kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
