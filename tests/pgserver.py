"""A throwaway PostgreSQL for tests: initdb + pg_ctl on a free port and a temp dir (never the
system's server), run as an unprivileged user when the tests run as root. ``pause()`` stops it as
in a crash (``-m immediate``) and ``resume()`` starts it again on the same data and port."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile

import asyncpg

from chatd.store.migrate import migrate_postgres

PG_USER = "nobody"
"""initdb refuses to run as root: as root, the server runs as this unprivileged user."""


def pg_bindir() -> str | None:
    """A directory holding both ``initdb`` and ``pg_ctl``: PATH, /usr/local/bin, then Debian's
    /usr/lib/postgresql/<version>/bin (newest first)."""
    found = shutil.which("initdb")
    candidates = [os.path.dirname(found)] if found else []
    candidates.append("/usr/local/bin")
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0,
        reverse=True,
    )
    for d in candidates:
        if os.access(os.path.join(d, "initdb"), os.X_OK) and os.access(
            os.path.join(d, "pg_ctl"), os.X_OK
        ):
            return d
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temp dir, on a free port on 127.0.0.1 (never the system's)."""

    def __init__(self, bindir: str, *, durable: bool = False, password: str = "") -> None:
        self.bindir = bindir
        self.durable = durable
        """``synchronous_commit=on``: a commit reported to a client survives ``pause()`` (the
        server's crash). Off by default: faster, for tests that never crash it."""
        self.dir = tempfile.mkdtemp(prefix="chatd-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam(PG_USER)
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", PG_USER, "--"]
        self.password = password
        """With a password, TCP connections must authenticate (scram-sha-256); DSNs carry it."""
        self._databases = itertools.count(1)
        self._template = False

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self._as_user, os.path.join(self.bindir, args[0]), *args[1:]],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
            cwd=self.dir,
        )

    def start(self) -> None:
        auth = ["--auth=trust"]
        if self.password:
            pwfile = os.path.join(self.dir, "pwfile")
            with open(pwfile, "w") as f:
                f.write(self.password + "\n")
            if self._as_user:
                user = pwd.getpwnam(PG_USER)
                os.chown(pwfile, user.pw_uid, user.pw_gid)
            auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        self._run("initdb", "-D", self.data, "-U", "postgres", *auth, "-E", "UTF8")
        for _ in range(4):  # ``free_port`` named a port free a moment ago: another may take it
            try:
                self.resume()
                return
            except subprocess.CalledProcessError:
                if "already in use" not in self._log():
                    raise
                self.port = free_port()
        self.resume()

    def _log(self) -> str:
        try:
            with open(os.path.join(self.dir, "log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def resume(self) -> None:
        """Start the server (again) on its data and port."""
        # fsync=off keeps data through a crash of the server process (the kernel has it),
        # not through a crash of the machine, which no test does.
        commit = "on" if self.durable else "off"
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
            f" -c synchronous_commit={commit} -c full_page_writes=off -c max_connections=200"
        )
        self._run("pg_ctl", "-D", self.data, "-o", options, "-l", f"{self.dir}/log", "-w", "start")

    def pause(self) -> None:
        """Stop as in a crash: every connection is cut, nothing is checkpointed."""
        self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def dsn(self, database: str = "postgres") -> str:
        auth = f"postgres:{self.password}" if self.password else "postgres"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    async def create_database(self) -> str:
        """A fresh, migrated database (a copy of the template); its DSN."""
        if not self._template:
            await self._make_template()
            self._template = True
        name = f"chatd_{os.getpid()}_{next(self._databases)}"
        admin = await asyncpg.connect(self.dsn())
        try:
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE chatd_template')
        finally:
            await admin.close()
        return self.dsn(name)

    async def drop_database(self, dsn: str) -> None:
        admin = await asyncpg.connect(self.dsn())
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
        finally:
            await admin.close()

    async def _make_template(self) -> None:
        """The migrated database every test's database is copied from (made on first use)."""
        admin = await asyncpg.connect(self.dsn())
        try:
            await admin.execute("CREATE DATABASE chatd_template")
        finally:
            await admin.close()
        conn = await asyncpg.connect(self.dsn("chatd_template"))
        try:
            await migrate_postgres(conn)
        finally:
            await conn.close()
