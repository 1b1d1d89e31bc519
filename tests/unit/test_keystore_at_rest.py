"""The key store's secrets at rest (issue 12 point 6): what someone who copies the file (and its
WAL) reads, what a passphrase protects, and what survives a restart or an upgrade."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from chatclient.keystore import PASSPHRASE_ENV, KeyStore, KeyStoreLocked

MARKER = b"MARKER-at-rest-c0ffee"


def on_disk(path: Path) -> bytes:
    """Every byte of the store's files (database, WAL, shared memory)."""
    return b"".join(p.read_bytes() for p in sorted(path.parent.glob(path.name + "*")))


def new_store(path: Path, passphrase: str | None) -> bytes:
    with KeyStore.open(path, passphrase) as ks:
        ks.account, ks.device = 7, 9
        ks.save()
        ks.put("e2e.session", "7:9", MARKER + b" ratchet state")
        ks.put("e2e.device", "master", MARKER + b" master seed")
        assert MARKER not in on_disk(path) and ks.seed not in on_disk(path)
        return ks.seed


def test_with_a_passphrase_the_file_alone_opens_nothing(tmp_path: Path) -> None:
    path = tmp_path / "dev.key"
    seed = new_store(path, "correct horse")
    assert MARKER not in on_disk(path) and seed not in on_disk(path)
    with pytest.raises(KeyStoreLocked, match="passphrase"):
        KeyStore.open(path)
    with pytest.raises(KeyStoreLocked, match="wrong passphrase"):
        KeyStore.open(path, "battery staple")
    with KeyStore.open(path, "correct horse") as ks:  # a failed open left the file usable
        assert ks.protected and ks.seed == seed and (ks.account, ks.device) == (7, 9)
        assert ks.get("e2e.session", "7:9") == MARKER + b" ratchet state"


def test_the_passphrase_can_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "dev.key"
    monkeypatch.setenv(PASSPHRASE_ENV, "from the env")
    seed = new_store(path, None)
    with KeyStore.open(path) as ks:
        assert ks.protected and ks.seed == seed
    monkeypatch.delenv(PASSPHRASE_ENV)
    with pytest.raises(KeyStoreLocked):
        KeyStore.open(path)


def test_without_a_passphrase_values_are_still_sealed_and_one_can_be_set_later(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dev.key"
    seed = new_store(path, None)
    with KeyStore.open(path) as ks:
        assert not ks.protected and ks.seed == seed
        ks.set_passphrase("later")
    with pytest.raises(KeyStoreLocked):
        KeyStore.open(path)
    with KeyStore.open(path, "later") as ks:
        assert ks.get("e2e.device", "master") == MARKER + b" master seed"
        ks.set_passphrase(None)
    with KeyStore.open(path) as ks:
        assert ks.seed == seed


def test_a_sealed_value_moved_to_another_key_does_not_open(tmp_path: Path) -> None:
    """Values are bound to their (namespace, key): whoever edits the file cannot pass one
    state off as another (e.g. one device's session as another's)."""
    path = tmp_path / "dev.key"
    new_store(path, None)
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE kv SET key='7:10' WHERE ns='e2e.session' AND key='7:9'")
    con.close()
    with pytest.raises(KeyStoreLocked):
        KeyStore.open(path)


def test_a_store_from_before_encryption_is_sealed_on_open_and_its_plaintext_purged(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.key"
    con = sqlite3.connect(path)
    with con:
        con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
        con.execute("CREATE TABLE cursors (conv INTEGER PRIMARY KEY, seq INTEGER NOT NULL)")
        con.execute(
            "CREATE TABLE kv (ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
            " PRIMARY KEY (ns, key)) WITHOUT ROWID"
        )
        seed = bytes(range(32))
        con.executemany(
            "INSERT INTO meta VALUES (?,?)",
            [("seed", seed), ("account", b"7"), ("device", b"9"), ("handle", b"alice")],
        )
        con.execute("INSERT INTO kv VALUES ('e2e.session', '7:9', ?)", (MARKER,))
    con.close()
    assert MARKER in path.read_bytes()
    with KeyStore.open(path, "new passphrase") as ks:
        assert ks.seed == seed and ks.get("e2e.session", "7:9") == MARKER
    assert MARKER not in on_disk(path) and seed not in on_disk(path)
    with KeyStore.open(path, "new passphrase") as ks:
        assert ks.get("e2e.session", "7:9") == MARKER


def test_commits_are_full_sync_and_deletions_leave_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "dev.key"
    with KeyStore.open(path) as ks:
        ks.save()
        db = ks._db
        assert db is not None
        assert db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        assert db.execute("PRAGMA secure_delete").fetchone() == (1,)
        for i in range(50):
            ks.put("e2e.session", f"1:{i}", bytes(4000))
        wal = path.with_name(path.name + "-wal")
        assert wal.stat().st_size > 0
        ks.delete("e2e.session", "1:0")
        assert wal.stat().st_size == 0  # checkpointed and truncated: no old page lingers


def test_atomic_writes_reach_the_file_together(tmp_path: Path) -> None:
    path = tmp_path / "dev.key"

    def on_file() -> set[str]:
        con = sqlite3.connect(path)
        try:
            return {k for (k,) in con.execute("SELECT key FROM kv WHERE ns='e2e.in'")}
        finally:
            con.close()

    with KeyStore.open(path) as ks:
        ks.save()
        with ks.atomic():
            ks.put("e2e.in", "1:2:3:4", b"ratchet step")
            assert on_file() == set()  # not committed alone: a crash here loses both
            ks.put("e2e.in", "plain", b"what it opened")
        assert on_file() == {"1:2:3:4", "plain"}
