"""The store contract for what an account carries besides its handle (SPEC.md 6.1), on every
backend: a bot's owner (issue 14.5) and an operator's suspension. The owner
given at creation is kept with the account and read back wherever the account is."""

from __future__ import annotations

import os

from chatd.store import Store


async def test_a_bot_keeps_its_owner_and_a_user_has_none(store: Store) -> None:
    owner, _ = await store.create_account("owner", "Owner", "user", os.urandom(32), "d", 1)
    bot, device = await store.create_account(
        "shop_bot", "Shop", "bot", os.urandom(32), "d", 1, owner.id
    )
    selfmade, _ = await store.create_account("self_bot", "Self", "bot", os.urandom(32), "d", 1)
    assert (owner.owner, bot.owner, selfmade.owner) == (0, owner.id, 0)
    by_id = await store.account(bot.id)
    by_handle = await store.account_by_handle("shop_bot")
    assert by_id is not None and by_handle is not None
    assert by_id.owner == by_handle.owner == owner.id
    assert device.account == bot.id
    found = await store.account(selfmade.id)
    assert found is not None and found.owner == 0


async def test_a_suspension_is_kept_found_by_time_and_lifted(store: Store) -> None:
    a, _ = await store.create_account("alice", "A", "user", os.urandom(32), "d", 1)
    b, _ = await store.create_account("bob", "B", "user", os.urandom(32), "d", 1)
    assert await store.suspended_after(0) == []
    assert await store.set_suspended(a.id, 1_000)
    assert await store.set_suspended(b.id, 2_000)
    assert not await store.set_suspended(10**9, 3_000)  # no such account
    assert await store.suspended_after(0) == [(a.id, 1_000), (b.id, 2_000)]
    assert await store.suspended_after(1_000) == [(b.id, 2_000)]
    found = await store.account_by_handle("alice")
    assert found is not None and found.suspended == 1_000
    assert await store.set_suspended(a.id, 0)
    assert await store.suspended_after(0) == [(b.id, 2_000)]
    lifted = await store.account(a.id)
    assert lifted is not None and lifted.suspended == 0
