"""The SDK's key store: one private file, one process, state that survives a restart."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from chatclient.keystore import KeyStore, KeyStoreInUse


def test_a_new_store_writes_nothing_until_saved_then_only_its_owner_can_read_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dev.key"
    ks = KeyStore.open(path)
    assert not path.exists()
    ks.account, ks.device, ks.handle = 7, 9, "alice"
    ks.cursors[3] = 41
    ks.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    seed = ks.seed
    ks.close()
    with KeyStore.open(path) as again:
        assert (again.seed, again.account, again.device, again.handle) == (seed, 7, 9, "alice")
        assert again.cursors == {3: 41}


def test_namespaced_state_is_committed_by_put_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "dev.key"
    with KeyStore.open(path) as ks:
        ks.save()
        ks.put("session", "12", b"\x01state")
        ks.put("session", "13", b"\x02")
        ks.delete("session", "13")
    with KeyStore.open(path) as ks:
        assert ks.get("session", "12") == b"\x01state"
        assert ks.get("session", "13") is None
        assert dict(ks.items("session")) == {"12": b"\x01state"}


def test_a_second_client_on_the_same_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dev.key"
    with KeyStore.open(path) as first:
        first.save()
        with pytest.raises(KeyStoreInUse):
            KeyStore.open(path)
    with KeyStore.open(path) as later:  # released on close
        assert later.seed == first.seed


def test_memory_store_keeps_state_without_a_file() -> None:
    ks = KeyStore.memory()
    ks.put("x", "y", b"z")
    ks.save()
    assert ks.get("x", "y") == b"z"
    assert ks.path is None
