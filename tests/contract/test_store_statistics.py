"""What health and metrics learn from a store, asked through the interface on every backend:
``/status`` names the backend and the writes waiting for the next group commit."""

from __future__ import annotations

import asyncio

from chatd.store import Store
from chatd.store.base import NewMessage

from .conftest import MakeAccount, StoreBackend


async def test_statistics_name_the_backend_and_count_queued_writes(
    store: Store, backend: StoreBackend, make_account: MakeAccount
) -> None:
    alice, phone = await make_account("alice")
    conv = (await store.create_conversation("group", "g", alice.id, [], 1)).conv.id
    idle = store.statistics()
    assert idle.backend == {"sqlite": "sqlite", "postgres": "postgresql"}[backend.name]
    assert idle.queued_writes == 0

    sends = [
        store.append(NewMessage(conv, alice.id, phone.id, f"c{i}", "text", b"x", 2))
        for i in range(3)
    ]
    assert store.statistics().queued_writes == 3  # queued, the writer has not run yet
    await asyncio.gather(*sends)
    assert store.statistics().queued_writes == 0
