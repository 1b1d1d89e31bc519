"""The key store's outbox and read positions (the SDK's durable sends, issue 15.1)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from chatclient import KeyStore


def test_the_outbox_keeps_the_order_sent_through_updates_and_reopening_and_is_sealed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.key"
    ks = KeyStore.open(path, passphrase="correct horse")
    ks.account, ks.device = 1, 1
    ks.save()
    for cmid in ("c1", "c2", "c3"):
        ks.outbox_put(cmid, f"secret text {cmid}".encode())
    ks.outbox_put("c1", b"secret text c1, sealed")  # encrypted later: keeps its place
    ks.outbox_delete("c2")
    ks.save_cursors({7: 41})
    ks.close()
    raw = b"".join(f.read_bytes() for f in tmp_path.iterdir())  # the file, any WAL
    assert b"secret text" not in raw
    with contextlib.closing(sqlite3.connect(path)) as db:  # "with connect()" would not close
        assert [c for (c,) in db.execute("SELECT cmid FROM outbox ORDER BY n")] == ["c1", "c3"]
    again = KeyStore.open(path, passphrase="correct horse")
    assert again.outbox() == [("c1", b"secret text c1, sealed"), ("c3", b"secret text c3")]
    assert again.cursors == {7: 41}
    again.close()


def test_an_outbox_written_before_the_file_exists_is_saved_with_it(tmp_path: Path) -> None:
    ks = KeyStore.open(tmp_path / "b.key")
    ks.outbox_put("c1", b"typed before registering")
    ks.account, ks.device = 1, 1
    ks.save()
    ks.close()
    with KeyStore.open(tmp_path / "b.key") as again:
        assert again.outbox() == [("c1", b"typed before registering")]


def test_a_memory_store_keeps_its_outbox_in_memory() -> None:
    ks = KeyStore.memory()
    ks.outbox_put("c1", b"x")
    ks.save_cursors({1: 2})  # nothing to write to
    assert ks.outbox() == [("c1", b"x")]
    ks.outbox_delete("c1")
    assert ks.outbox() == []
