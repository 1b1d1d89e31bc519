"""The store contract for a bot's owner (issue 14.5, SPEC.md 6.1), on every backend: the owner
given at creation is kept with the account and read back wherever the account is."""

from __future__ import annotations

import os

from chatd.store.base import Store


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
