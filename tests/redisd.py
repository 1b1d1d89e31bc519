"""A throwaway ``redis-server`` for tests: free port, temp dir, no persistence, SIGKILL-able."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from procguard import die_with_parent
from testkit import free_port

REDIS_SERVER = shutil.which("redis-server")


def require_redis_server() -> str:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (.ci/run installs it with apt-get)")
    return REDIS_SERVER


class RedisServer:
    """One redis-server process; ``kill()`` with SIGKILL and ``start()`` again on the same port."""

    def __init__(self, directory: Path, port: int | None = None, password: str = "") -> None:
        self.binary = require_redis_server()
        self.password = password
        """``requirepass``: clients must AUTH with it (the URL carries it)."""
        self.dir = directory
        self.port = port or free_port()
        self._chosen = port is None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start redis-server and return once IT answers on its port. A port this object chose
        (``free_port``: free a moment ago) is chosen again when redis-server cannot bind it;
        a restart keeps its port, as the clients' URLs do."""
        assert self.proc is None
        for _ in range(4):
            if self._spawn(timeout):
                self._chosen = False
                return
            if not self._chosen:
                break
            self.port = free_port()
        raise RuntimeError(
            f"redis-server exited with {self.proc.returncode if self.proc else None}"
        )

    def _spawn(self, timeout: float) -> bool:
        """True once this process answers ``INFO`` with its own pid; False if it exited (its
        port taken)."""
        proc = self.proc = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.dir),
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--loglevel", "warning",
                *(["--requirepass", self.password] if self.password else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # redis-server hides its environment from the watchdog
        )  # fmt: skip
        auth = f"AUTH {self.password}\r\n".encode() if self.password else b""
        mine = f"process_id:{proc.pid}\r\n".encode()
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                self.proc = None
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(auth + b"INFO server\r\n")
                    answer = b""
                    while mine not in answer and len(answer) < 65536:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        answer += chunk
                    if mine in answer:  # this process, not another one holding the port
                        return True
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start in time")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: no goodbye to connected clients, as in a crash."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None
