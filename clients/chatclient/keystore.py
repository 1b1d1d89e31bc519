"""Everything a device must remember, in one SQLite file (mode 0600) that one process holds.

The login key, who the device is, how far it has read each conversation, and — through the
namespaced ``get``/``put`` store — the end-to-end encryption state (sessions, sender keys,
pinned keys). ``put`` commits at once: crypto state must be on disk before the message it
decrypted is shown. Cursors are kept in memory and written by ``save``, and by ``save_cursors``
as the application is handed messages. The outbox holds every message the client has not had
acknowledged yet, in the order it was sent, committed before it is written to the network, so a
message typed while offline, or on a client killed before the ack, is sent by the next client
started on this store. A second process opening the same file is refused, so two clients cannot
overwrite each other's state.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from chatproto.e2e.primitives import SigningKey

from chatclient.errors import ChatClientError

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS cursors (conv INTEGER PRIMARY KEY, seq INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS kv (ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
    " PRIMARY KEY (ns, key)) WITHOUT ROWID",
    # n: the order messages were sent in (kept when an entry is updated: ON CONFLICT DO UPDATE)
    "CREATE TABLE IF NOT EXISTS outbox (n INTEGER PRIMARY KEY AUTOINCREMENT,"
    " cmid TEXT NOT NULL UNIQUE, entry BLOB NOT NULL)",
)


_OUTBOX_PUT = (
    "INSERT INTO outbox (cmid, entry) VALUES (?,?)"
    " ON CONFLICT (cmid) DO UPDATE SET entry=excluded.entry"
)


class KeyStoreInUse(ChatClientError):
    """Another process holds this key store."""


class KeyStore:
    """A device's persistent state. ``open`` a file, or ``memory()`` for a throwaway device."""

    def __init__(
        self,
        path: Path | None = None,
        seed: bytes = b"",
        account: int = 0,
        device: int = 0,
        handle: str = "",
        cursors: dict[int, int] | None = None,
    ) -> None:
        self.path = path
        self.seed = seed or SigningKey.generate().seed
        self.account = account
        self.device = device
        self.handle = handle
        self.cursors: dict[int, int] = dict(cursors or {})
        self._kv: dict[tuple[str, str], bytes] = {}
        self._outbox: dict[str, bytes] = {}
        """cmid -> the client's record of an unacknowledged message, in the order sent."""
        self._db: sqlite3.Connection | None = None
        # A file object, not a bare fd: if the store is dropped without close(), the garbage
        # collector closes it and the lock goes with it.
        self._lock: BinaryIO | None = None

    @classmethod
    def open(cls, path: str | Path) -> KeyStore:
        """Load ``path``, or start a new store there with a fresh key (written on first
        ``save``, which login does)."""
        p = Path(path)
        store = cls(path=p)
        if p.exists():
            store._connect()
            store._load()
        return store

    @classmethod
    def memory(cls) -> KeyStore:
        """A store that lives only in memory (tests, throwaway bots)."""
        return cls(path=None)

    @property
    def key(self) -> SigningKey:
        return SigningKey(self.seed)

    @property
    def registered(self) -> bool:
        return self.device != 0

    # ------------------------------------------------------------------ namespaced state

    def get(self, ns: str, key: str) -> bytes | None:
        return self._kv.get((ns, key))

    def put(self, ns: str, key: str, value: bytes) -> None:
        """Store ``value`` and, once the store has a file, commit it before returning."""
        self._kv[(ns, key)] = value
        if self._db is not None:
            with self._db:
                self._db.execute("INSERT OR REPLACE INTO kv VALUES (?,?,?)", (ns, key, value))

    def delete(self, ns: str, key: str) -> None:
        self._kv.pop((ns, key), None)
        if self._db is not None:
            with self._db:
                self._db.execute("DELETE FROM kv WHERE ns=? AND key=?", (ns, key))

    def items(self, ns: str) -> Iterator[tuple[str, bytes]]:
        for (space, key), value in list(self._kv.items()):
            if space == ns:
                yield key, value

    # ------------------------------------------------------------------ outbox and cursors

    def outbox(self) -> list[tuple[str, bytes]]:
        """Every message not acknowledged yet: (cmid, the client's record), oldest first."""
        return list(self._outbox.items())

    def outbox_put(self, cmid: str, entry: bytes) -> None:
        """Add a message (at the end) or update its record (keeping its place); committed
        before returning once the store has a file."""
        self._outbox[cmid] = entry
        if self._db is not None:
            with self._db:
                self._db.execute(_OUTBOX_PUT, (cmid, entry))

    def outbox_delete(self, cmid: str) -> None:
        """The message was acknowledged, or refused for good."""
        if self._outbox.pop(cmid, None) is not None and self._db is not None:
            with self._db:
                self._db.execute("DELETE FROM outbox WHERE cmid=?", (cmid,))

    def save_cursors(self, cursors: Mapping[int, int]) -> None:
        """Commit these conversations' read positions now (one transaction), without the rest
        of ``save``: a client calls it as it hands messages to the application, so a process
        killed afterwards does not show them again. A no-op in memory or once closed."""
        if self._db is not None and cursors:
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO cursors VALUES (?,?)", sorted(cursors.items())
                )

    # ------------------------------------------------------------------ persistence

    def save(self) -> None:
        """Write identity, cursors and any state not yet on disk (a no-op in memory)."""
        if self.path is None:
            return
        if self._db is None:
            self._create()
        db = self._db
        assert db is not None
        with db:
            db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?,?)",
                [
                    ("seed", self.seed),
                    ("account", str(self.account).encode()),
                    ("device", str(self.device).encode()),
                    ("handle", self.handle.encode()),
                ],
            )
            db.executemany(
                "INSERT OR REPLACE INTO cursors VALUES (?,?)", sorted(self.cursors.items())
            )
            db.executemany(
                "INSERT OR REPLACE INTO kv VALUES (?,?,?)",
                [(ns, k, v) for (ns, k), v in self._kv.items()],
            )
            db.executemany(_OUTBOX_PUT, list(self._outbox.items()))

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Write what is pending and release the file (a client closes the store it was given)."""
        if self._db is not None:
            self.save()
            self._db.close()
            self._db = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _create(self) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self._connect()

    def _connect(self) -> None:
        assert self.path is not None
        lock = open(self.path, "rb")  # noqa: SIM115 - held for the store's lifetime
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise KeyStoreInUse(f"{self.path} is in use by another client") from None
        os.fchmod(lock.fileno(), 0o600)
        self._lock = lock
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA:
            db.execute(statement)
        db.isolation_level = "DEFERRED"  # ``with db:`` blocks are transactions
        self._db = db

    def _load(self) -> None:
        db = self._db
        assert db is not None
        meta = dict(db.execute("SELECT key, value FROM meta"))
        if "seed" in meta:
            self.seed = bytes(meta["seed"])
            self.account = int(meta.get("account", b"0"))
            self.device = int(meta.get("device", b"0"))
            self.handle = bytes(meta.get("handle", b"")).decode()
        self.cursors = {int(c): int(s) for c, s in db.execute("SELECT conv, seq FROM cursors")}
        self._kv = {(ns, k): bytes(v) for ns, k, v in db.execute("SELECT ns, key, value FROM kv")}
        self._outbox = {
            c: bytes(e) for c, e in db.execute("SELECT cmid, entry FROM outbox ORDER BY n")
        }
