"""Process measurements from /proc (Linux), CPU pinning and a local ``chatd serve`` to drive.

Shared by ``chatload`` and ``loadtest/bench_core.py``. Only 127.0.0.1 is ever a target.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent.parent
SERVER_NAME = "chatd.local"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) seconds of every thread of ``pid`` (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def proc_cpu_seconds(pid: int) -> float:
    return sum(proc_cpu_split(pid))


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """utime+stime of the event-loop (main) thread and of all other threads (SQLite executors)."""
    out = {"main": 0.0, "other_threads": 0.0}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        key = "main" if int(tid) == pid else "other_threads"
        out[key] += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def proc_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def proc_nofile(pid: int) -> str:
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return " ".join(line.split()[3:5])
    return "?"


def self_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def raise_nofile(want: int) -> int:
    """Raise RLIMIT_NOFILE to ``want`` (or the hard limit); children inherit it."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, hard), max(want, hard)))
        return max(want, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def pin(cpu: int | None) -> None:
    """Pin this process to one core (``os.sched_setaffinity``); None leaves it free."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


async def http_get(port: int, path: str, host: str = HOST) -> bytes:
    r, w = await asyncio.open_connection(host, port)
    w.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    data = await r.read()
    w.close()
    return data


async def scrape_metrics(port: int) -> dict[str, float]:
    """The server's /metrics as {sample name with labels: value} (GET over 127.0.0.1)."""
    data = await http_get(port, "/metrics")
    out: dict[str, float] = {}
    for line in data.split(b"\r\n\r\n", 1)[-1].decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


def chatd_executable() -> str:
    chatd = Path(sys.executable).with_name("chatd")
    if chatd.exists():
        return str(chatd)
    found = shutil.which("chatd")
    if found is None:
        raise SystemExit("chatd console script not found next to python or on PATH")
    return found


class LocalServer:
    """``chatd serve`` started here, optionally pinned with ``taskset -c CPU``, on a free
    127.0.0.1 port with its own SQLite file and the per-connection rate limit raised.

    ``pid`` is the server's own: taskset and the console script exec, they do not fork.
    """

    def __init__(
        self,
        workdir: Path,
        cpu: int | None = 0,
        synchronous: str = "FULL",
        log_level: str = "WARNING",
        db: Path | None = None,
        port: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.db = db or workdir / f"chatd-{self.port}.db"
        self.own_db = db is None
        self.log = workdir / f"chatd-{self.port}.log"
        env = dict(os.environ)
        env.update(
            CHATD_LIMITS__FRAMES_PER_SECOND="1000000",
            CHATD_LIMITS__FRAME_BURST="1000000",
            CHATD_STORE__SYNCHRONOUS=synchronous,
            CHATD_LOG__LEVEL=log_level,
            CHATD_LOG__FORMAT="text",
            CHATD_SERVER__NAME=SERVER_NAME,
            # Load runs put accounts that never met into groups: no invitations to accept.
            CHATD_CONSENT__ADD_ME="everyone",
        )
        # The repo root first on the path: a stale editable install can map ``chatd`` as a
        # namespace package (no __version__), which breaks ``chatd.cli``; the checkout wins.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        cmd = [chatd_executable(), "serve", "--host", HOST, "--port", str(self.port)]
        cmd += ["--db", str(self.db)]
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu), *cmd]
        self.cmd = cmd
        self._logf = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._logf, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.port}/ws"

    async def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"chatd exited with {self.proc.returncode}; see {self.log}")
            try:
                data = await http_get(self.port, "/readyz")
                if b" 200 " in data.split(b"\r\n", 1)[0] + b" ":
                    return
            except OSError:
                pass
            await asyncio.sleep(0.05)
        raise SystemExit(f"chatd did not become ready; see {self.log}")

    def cpu(self) -> float:
        return proc_cpu_seconds(self.pid)

    def cpu_split(self) -> tuple[float, float]:
        return proc_cpu_split(self.pid)

    def threads(self) -> dict[str, float]:
        return thread_cpu_seconds(self.pid)

    def rss(self) -> int:
        return proc_rss_bytes(self.pid)

    def nofile(self) -> str:
        return proc_nofile(self.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._logf.close()
        if self.own_db:
            for suffix in ("", "-wal", "-shm", ".lock"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(str(self.db) + suffix)
