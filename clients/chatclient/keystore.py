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

Secrets are encrypted at rest: the login seed and every namespaced value (sessions, sender keys,
the master seed, decrypted history) are AES-256-GCM under a random data key, bound to where they
are stored (namespace and key); so are outbox entries (bound to their cmid). With a passphrase
(``passphrase=`` or the ``CHAT_KEY_PASSPHRASE`` environment variable) the data key is wrapped
under a key derived from it with scrypt, so the file alone opens nothing; without one the data
key is stored beside the data (the file is then only as safe as its 0600 mode) and
``set_passphrase`` protects it later. Commits are ``synchronous=FULL`` (committed ratchet state
never rolls back after a power loss: a rolled-back chain would reuse keys and nonces), deleted
rows are overwritten (``secure_delete``), and the WAL is checkpointed after deletions so dropped
keys do not linger there.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

import msgspec
from chatproto.e2e import primitives as P
from chatproto.e2e.primitives import SigningKey
from chatproto.errors import ChatProtoError

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


class KeyStoreLocked(ChatClientError):
    """The key store is protected by a passphrase that was not given, or not this one."""


PASSPHRASE_ENV = "CHAT_KEY_PASSPHRASE"
"""The environment variable a passphrase is read from when ``open`` is given none."""
_AAD = b"chatd-keystore-v1"
_WRAP_AAD = b"chatd-keystore-data-key-v1"


class _Kdf(msgspec.Struct, array_like=True):
    """How the data key is wrapped: scrypt parameters and salt (meta ``kdf``)."""

    salt: bytes
    n: int = 2**15
    r: int = 8
    p: int = 1

    def key(self, passphrase: str) -> bytes:
        return P.scrypt(passphrase.encode(), self.salt, n=self.n, r=self.r, p=self.p)


def _seal(key: bytes, data: bytes, aad: bytes) -> bytes:
    nonce = P.random_bytes(P.GCM_NONCE_BYTES)
    return nonce + P.aes_gcm_encrypt(key, nonce, data, aad)


def _unseal(key: bytes, blob: bytes, aad: bytes) -> bytes:
    try:
        return P.aes_gcm_decrypt(key, blob[: P.GCM_NONCE_BYTES], blob[P.GCM_NONCE_BYTES :], aad)
    except ChatProtoError:
        raise KeyStoreLocked("the key store does not open with this key (corrupt?)") from None


def _label(ns: str, key: str) -> bytes:
    return _AAD + b"\x00" + ns.encode() + b"\x00" + key.encode()


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
        passphrase: str | None = None,
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
        self._passphrase = passphrase
        self._atomic = False
        self._deleted = False
        self._data_key: bytes | None = None
        """The key secrets are sealed with on disk (None: not opened or created yet)."""

    @classmethod
    def open(cls, path: str | Path, passphrase: str | None = None) -> KeyStore:
        """Load ``path``, or start a new store there with a fresh key (written on first
        ``save``, which login does). ``passphrase`` (default: ``$CHAT_KEY_PASSPHRASE``) protects
        a new store, and must be given to open a protected one (``KeyStoreLocked``)."""
        p = Path(path)
        if passphrase is None:
            passphrase = os.environ.get(PASSPHRASE_ENV) or None
        store = cls(path=p, passphrase=passphrase)
        if p.exists():
            store._connect()
            try:
                store._load()
            except BaseException:
                store.close_unsaved()
                raise
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
        """Store ``value`` and, once the store has a file, commit it before returning (inside
        ``atomic``: with the block)."""
        self._kv[(ns, key)] = value
        if self._db is not None:
            with self._commit() as db:
                db.execute(
                    "INSERT OR REPLACE INTO kv VALUES (?,?,?)",
                    (ns, key, self._sealed(ns, key, value)),
                )

    def delete(self, ns: str, key: str) -> None:
        self._kv.pop((ns, key), None)
        if self._db is not None:
            with self._commit() as db:
                db.execute("DELETE FROM kv WHERE ns=? AND key=?", (ns, key))
            self._deleted = True
            if not self._atomic:
                self._checkpoint()

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """The ``put``s and ``delete``s inside commit together, or none of them if the process
        dies: state that must move together (a ratchet step and the plaintext it opened, a
        session and the sender key it carried) is never half written. The block computes
        nothing that can fail and never awaits (other tasks' writes would join it)."""
        if self._db is None or self._atomic:
            yield
            return
        self._atomic = True
        try:
            with self._db:
                yield
        finally:
            self._atomic = False
        if self._deleted:
            self._checkpoint()

    @contextlib.contextmanager
    def _commit(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        assert db is not None
        if self._atomic:
            yield db
        else:
            with db:
                yield db

    def _checkpoint(self) -> None:
        """A deleted key (an old session, a replaced sender key, a moved master seed) must not
        stay readable in the write-ahead log."""
        self._deleted = False
        if self._db is not None:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _sealed(self, ns: str, key: str, value: bytes) -> bytes:
        assert self._data_key is not None
        return _seal(self._data_key, value, _label(ns, key))

    # ------------------------------------------------------------------ at rest

    @property
    def protected(self) -> bool:
        """Whether the file's secrets open only with a passphrase."""
        return self._passphrase is not None

    def set_passphrase(self, passphrase: str | None) -> None:
        """Protect the store with ``passphrase`` (None: remove the protection): the data key is
        wrapped again; the secrets themselves stay as they are."""
        self._passphrase = passphrase
        if self._db is not None:
            with self._db:
                self._write_data_key(self._db)
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _write_data_key(self, db: sqlite3.Connection) -> None:
        """Store the data key: wrapped under the passphrase's scrypt key, or plain."""
        assert self._data_key is not None
        if self._passphrase is None:
            rows = [("data_key", self._data_key)]
            db.execute("DELETE FROM meta WHERE key='kdf'")
        else:
            kdf = _Kdf(salt=P.random_bytes(16))
            wrapped = _seal(kdf.key(self._passphrase), self._data_key, _WRAP_AAD)
            rows = [("kdf", msgspec.msgpack.encode(kdf)), ("data_key", wrapped)]
        db.executemany("INSERT OR REPLACE INTO meta VALUES (?,?)", rows)

    def _unlock(self, meta: dict[str, bytes]) -> bool:
        """Open the data key from ``meta``; False for a store written before encryption at
        rest (its values are plaintext: ``_load`` seals them)."""
        raw = meta.get("data_key")
        if raw is None:
            return False
        if "kdf" not in meta:
            self._data_key = bytes(raw)
            if self._passphrase is not None:  # protect it from now on
                assert self._db is not None
                with self._db:
                    self._write_data_key(self._db)
            return True
        if self._passphrase is None:
            raise KeyStoreLocked(
                f"{self.path} is protected by a passphrase: pass it (passphrase=, or"
                f" ${PASSPHRASE_ENV})"
            )
        kdf = msgspec.msgpack.decode(bytes(meta["kdf"]), type=_Kdf)
        try:
            self._data_key = _unseal(kdf.key(self._passphrase), bytes(raw), _WRAP_AAD)
        except KeyStoreLocked:
            raise KeyStoreLocked(f"wrong passphrase for {self.path}") from None
        return True

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
        before returning once the store has a file (``_quick``)."""
        self._outbox[cmid] = entry
        if self._db is not None:
            with self._quick() as db:
                db.execute(_OUTBOX_PUT, (cmid, self._sealed("outbox", cmid, entry)))

    def outbox_delete(self, cmid: str) -> None:
        """The message was acknowledged, or refused for good."""
        if self._outbox.pop(cmid, None) is not None and self._db is not None:
            with self._quick() as db:
                db.execute("DELETE FROM outbox WHERE cmid=?", (cmid,))

    def save_cursors(self, cursors: Mapping[int, int]) -> None:
        """Commit these conversations' read positions now (one transaction, ``_quick``),
        without the rest of ``save``: a client calls it as it hands messages to the application,
        so a process killed afterwards does not show them again. A no-op in memory or closed."""
        if self._db is not None and cursors:
            with self._quick() as db:
                db.executemany(
                    "INSERT OR REPLACE INTO cursors VALUES (?,?)", sorted(cursors.items())
                )

    @contextlib.contextmanager
    def _quick(self) -> Iterator[sqlite3.Connection]:
        """A transaction committed without waiting for the disk (``synchronous=NORMAL``): in WAL
        mode it survives a killed process, not a power cut. Only for the outbox and read
        positions, written for every message (a wait for the disk each time cost ~1.5 ms per
        commit here, 7x slower sends); the end-to-end state stays ``FULL``, and its next commit
        syncs these too (the WAL is written in order)."""
        db = self._db
        assert db is not None
        db.execute("PRAGMA synchronous=NORMAL")
        try:
            with db:
                yield db
        finally:
            db.execute("PRAGMA synchronous=FULL")

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
                    ("seed", self._sealed("meta", "seed", self.seed)),
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
                [(ns, k, self._sealed(ns, k, v)) for (ns, k), v in self._kv.items()],
            )
            db.executemany(
                _OUTBOX_PUT, [(c, self._sealed("outbox", c, e)) for c, e in self._outbox.items()]
            )

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Write what is pending and release the file (a client closes the store it was given)."""
        if self._db is not None and self._data_key is not None:
            self.save()
        self.close_unsaved()

    def close_unsaved(self) -> None:
        """Release the file without writing (a store that did not open)."""
        if self._db is not None:
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
        self._data_key = P.random_bytes(32)
        assert self._db is not None
        with self._db:
            self._write_data_key(self._db)

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
        db.execute("PRAGMA synchronous=FULL")  # a committed ratchet step survives power loss
        db.execute("PRAGMA secure_delete=ON")  # replaced and deleted secrets are overwritten
        for statement in _SCHEMA:
            db.execute(statement)
        db.isolation_level = "DEFERRED"  # ``with db:`` blocks are transactions
        self._db = db

    def _load(self) -> None:
        db = self._db
        assert db is not None
        meta = dict(db.execute("SELECT key, value FROM meta"))
        sealed = self._unlock(meta)
        if not sealed:
            self._data_key = P.random_bytes(32)
        data_key = self._data_key
        assert data_key is not None
        if "seed" in meta:
            raw = bytes(meta["seed"])
            self.seed = _unseal(data_key, raw, _label("meta", "seed")) if sealed else raw
            self.account = int(meta.get("account", b"0"))
            self.device = int(meta.get("device", b"0"))
            self.handle = bytes(meta.get("handle", b"")).decode()
        self.cursors = {int(c): int(s) for c, s in db.execute("SELECT conv, seq FROM cursors")}
        # Outbox entries are written sealed only (the table came after encryption at rest).
        assert self._data_key is not None
        self._outbox = {
            c: _unseal(self._data_key, bytes(e), _label("outbox", c))
            for c, e in db.execute("SELECT cmid, entry FROM outbox ORDER BY n")
        }
        rows = db.execute("SELECT ns, key, value FROM kv").fetchall()
        if sealed:
            assert self._data_key is not None
            self._kv = {
                (ns, k): _unseal(self._data_key, bytes(v), _label(ns, k)) for ns, k, v in rows
            }
            return
        # A store written before encryption at rest: seal everything now, then rewrite the file
        # so no plaintext secret stays in its free pages or its WAL.
        self._kv = {(ns, k): bytes(v) for ns, k, v in rows}
        with db:
            self._write_data_key(db)
        self.save()
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
