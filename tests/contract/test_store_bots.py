"""The store contract for bots (SPEC.md section 16), on every backend: profiles, who may add a
bot, each bot member's access, and the per-message ``to`` and ``withheld`` sets decided at commit
under the same ordering as access changes."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from chatproto import kinds

from chatd.errors import Conflict, Forbidden, Invalid, NotFound
from chatd.store import Store
from chatd.store.base import AccountRow, DeviceRow, NewMessage, StoredMessage
from chatd.store.migrate import migrations
from chatd.store.sqlite import SQLiteStore

from .conftest import MakeAccount, StoreBackend, Stores

NOW = 1_700_000_000_000


def msg(
    conv: int, sender: DeviceRow, cmid: str, to: tuple[int, ...] = (), body: bytes = b"ct"
) -> NewMessage:
    return NewMessage(conv, sender.account, sender.id, cmid, "e2e", body, NOW, to)


def event(m: StoredMessage) -> kinds.SystemEvent:
    content = kinds.decode_content(m.kind, m.body)
    assert isinstance(content, kinds.SystemEvent)
    return content


async def everything(store: Store, conv: int) -> list[StoredMessage]:
    return await store.messages(conv, 0, None, 10_000)


Party = tuple[AccountRow, DeviceRow]


async def cast(make_account: MakeAccount) -> tuple[Party, Party, Party, Party]:
    """alice (owner to be), bob (member), a bot and a second bot."""
    alice = await make_account("alice")
    bob = await make_account("bob")
    bot = await make_account("shop_bot", type="bot")
    other = await make_account("taxi_bot", type="bot")
    return alice, bob, bot, other


# ------------------------------------------------------------------ profiles


async def test_a_bot_stores_its_profile_and_anyone_reads_it(
    store: Store, make_account: MakeAccount
) -> None:
    bot, _ = await make_account("shop_bot", type="bot")
    assert await store.bot_profile(bot.id) is not None
    never = await store.bot_profile(bot.id)
    assert never is not None
    assert (never.body, never.updated_at) == (b"", 0)
    await store.set_bot_profile(bot.id, b"\x81first", NOW)
    await store.set_bot_profile(bot.id, b"\x81second", NOW + 5)
    got = await store.bot_profile(bot.id)
    assert got is not None
    assert (got.account, got.body, got.updated_at) == (bot.id, b"\x81second", NOW + 5)


async def test_a_user_has_no_bot_profile_and_cannot_set_one(
    store: Store, make_account: MakeAccount
) -> None:
    alice, _ = await make_account("alice")
    with pytest.raises(Forbidden):
        await store.set_bot_profile(alice.id, b"\x80", NOW)
    assert await store.bot_profile(alice.id) is None
    assert await store.bot_profile(98765) is None


# ------------------------------------------------------------------ joining


async def test_a_bot_in_a_group_starts_addressed_and_in_a_direct_conversation_all(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, ad), (bob, _), (bot, bd), _ = await cast(make_account)
    group = (await store.create_conversation("group", "g", alice.id, [bob.id, bot.id], NOW)).conv
    direct = (await store.create_conversation("direct", "", alice.id, [bot.id], NOW)).conv
    seen = await store.conversation(group.id, alice.id, ad.id)
    assert {m.account: m.access for m in seen.members} == {
        alice.id: "",
        bob.id: "",
        bot.id: "addressed",
    }
    assert seen.access == ""  # the caller (alice) is no bot
    assert (await store.conversation(group.id, bot.id, bd.id)).access == "addressed"
    assert (await store.conversation(direct.id, bot.id, bd.id)).access == "all"
    listed = {c.id: c.access for c in await store.conversations_of(bot.id, bd.id)}
    assert listed == {group.id: "addressed", direct.id: "all"}
    member = await store.membership(group.id, bot.id)
    assert member is not None
    assert (member.kind, member.role, member.bot, member.access) == (
        "group",
        "member",
        True,
        "addressed",
    )
    user = await store.membership(group.id, bob.id)
    assert user is not None
    assert (user.bot, user.access) == (False, "all")
    assert await store.membership(direct.id, bob.id) is None


async def test_only_an_owner_or_admin_adds_a_bot_and_its_joined_message_says_its_access(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, _), (bob, _), (bot, _), _ = await cast(make_account)
    conv = (await store.create_conversation("group", "g", alice.id, [bob.id], NOW)).conv.id
    with pytest.raises(Forbidden):
        await store.invite(conv, bob.id, bot.id, NOW)
    await store.set_role(conv, alice.id, bob.id, "admin", NOW)
    change = await store.invite(conv, bob.id, bot.id, NOW)
    assert change.added == (bot.id,)
    joined = event(change.message)
    assert (joined.event, joined.account, joined.access) == ("joined", bot.id, "addressed")
    carol, _ = await make_account("carol")
    user_joined = event((await store.invite(conv, alice.id, carol.id, NOW)).message)
    assert user_joined.access == ""  # only a bot's joined message carries an access


# ------------------------------------------------------------------ to and withheld


async def test_messages_keep_their_to_and_are_withheld_from_addressed_bots_not_named(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, ad), (bob, bd), (bot, botd), (other, _) = await cast(make_account)
    conv = (
        await store.create_conversation("group", "g", alice.id, [bob.id, bot.id, other.id], NOW)
    ).conv.id
    plain = await store.append(msg(conv, ad, "c1"))
    addressed = await store.append(msg(conv, bd, "c2", to=(bot.id,)))
    both = await store.append(msg(conv, ad, "c3", to=(bot.id, other.id)))
    own = await store.append(msg(conv, botd, "c4"))
    assert plain.message.withheld == tuple(sorted((bot.id, other.id)))
    assert (addressed.message.to, addressed.message.withheld) == ((bot.id,), (other.id,))
    assert both.message.withheld == ()
    assert own.message.withheld == (other.id,)  # never from its own sender
    stored = {m.cmid: m for m in await everything(store, conv)}
    assert stored["c1"].to == ()
    assert stored["c1"].withheld == tuple(sorted((bot.id, other.id)))
    assert (stored["c2"].to, stored["c2"].withheld) == ((bot.id,), (other.id,))
    assert (stored["c3"].to, stored["c3"].withheld) == ((bot.id, other.id), ())
    assert stored["c4"].withheld == (other.id,)
    assert all(m.withheld == () for m in await everything(store, conv) if m.kind == "system")


async def test_nothing_is_withheld_where_no_bot_is_addressed_only(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, ad), (bob, _), (bot, _), _ = await cast(make_account)
    users = (await store.create_conversation("group", "g", alice.id, [bob.id], NOW)).conv.id
    direct = (await store.create_conversation("direct", "", alice.id, [bot.id], NOW)).conv.id
    assert (await store.append(msg(users, ad, "a", to=(bob.id,)))).message.withheld == ()
    assert (await store.append(msg(direct, ad, "b"))).message.withheld == ()


async def test_a_resend_with_another_to_is_a_conflict_and_the_same_one_repeats_the_first(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, ad), _, (bot, _), (other, _) = await cast(make_account)
    conv = (await store.create_conversation("group", "g", alice.id, [bot.id, other.id], NOW)).conv
    first = await store.append(msg(conv.id, ad, "c", to=(bot.id,)))
    again = await store.append(msg(conv.id, ad, "c", to=(bot.id,)))
    assert again.duplicate
    assert again.message == first.message
    with pytest.raises(Conflict):
        await store.append(msg(conv.id, ad, "c", to=(other.id,)))
    with pytest.raises(Conflict):
        await store.append(msg(conv.id, ad, "c"))


# ------------------------------------------------------------------ access


async def test_set_bot_access_refusals(store: Store, make_account: MakeAccount) -> None:
    (alice, _), (bob, _), (bot, _), (other, _) = await cast(make_account)
    conv = (await store.create_conversation("group", "g", alice.id, [bob.id, bot.id], NOW)).conv.id
    direct = (await store.create_conversation("direct", "", alice.id, [bot.id], NOW)).conv.id
    with pytest.raises(Forbidden):
        await store.set_bot_access(conv, bob.id, bot.id, "all", NOW)
    with pytest.raises(Invalid):
        await store.set_bot_access(direct, alice.id, bot.id, "addressed", NOW)
    with pytest.raises(Invalid):
        await store.set_bot_access(conv, alice.id, bob.id, "all", NOW)
    with pytest.raises(NotFound):
        await store.set_bot_access(conv, alice.id, other.id, "all", NOW)
    with pytest.raises(NotFound):
        await store.set_bot_access(conv, other.id, bot.id, "all", NOW)
    assert (await store.membership(conv, bot.id)).access == "addressed"  # type: ignore[union-attr]


async def test_an_access_change_is_a_system_message_and_applies_from_the_next_message_on(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, ad), _, (bot, _), _ = await cast(make_account)
    conv = (await store.create_conversation("group", "g", alice.id, [bot.id], NOW)).conv.id
    before = await store.append(msg(conv, ad, "before"))
    assert await store.set_bot_access(conv, alice.id, bot.id, "addressed", NOW) is None
    change = await store.set_bot_access(conv, alice.id, bot.id, "all", NOW)
    assert change is not None
    changed = event(change.message)
    assert (changed.event, changed.actor, changed.account, changed.access) == (
        "bot_access",
        alice.id,
        bot.id,
        "all",
    )
    assert change.message.seq == before.message.seq + 1
    after = await store.append(msg(conv, ad, "after"))
    assert after.message.withheld == ()
    assert (await store.membership(conv, bot.id)).access == "all"  # type: ignore[union-attr]
    stored = {m.cmid: m for m in await everything(store, conv)}
    assert stored["before"].withheld == (bot.id,)  # decided at commit, never revised
    await store.set_bot_access(conv, alice.id, bot.id, "addressed", NOW)
    assert (await store.append(msg(conv, ad, "again"))).message.withheld == (bot.id,)


async def test_an_append_queued_right_after_an_access_change_sees_it(
    store: Store, make_account: MakeAccount
) -> None:
    """Within one group commit too (SQLite's cache of addressed bots is dropped by the change)."""
    (alice, ad), _, (bot, _), _ = await cast(make_account)
    conv = (await store.create_conversation("group", "g", alice.id, [bot.id], NOW)).conv.id
    await store.append(msg(conv, ad, "warm"))  # the cache holds the bot as addressed
    for access, expected in (("all", ()), ("addressed", (bot.id,))):
        change = asyncio.ensure_future(store.set_bot_access(conv, alice.id, bot.id, access, NOW))
        await asyncio.sleep(0)  # the change is queued first
        appended = await store.append(msg(conv, ad, f"after-{access}"))
        assert (await change) is not None
        assert appended.message.withheld == expected


async def test_a_removed_bot_is_withheld_nothing_and_comes_back_addressed(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, ad), _, (bot, _), _ = await cast(make_account)
    conv = (await store.create_conversation("group", "g", alice.id, [bot.id], NOW)).conv.id
    await store.set_bot_access(conv, alice.id, bot.id, "all", NOW)
    await store.remove(conv, alice.id, bot.id, NOW)
    assert (await store.append(msg(conv, ad, "gone"))).message.withheld == ()
    await store.invite(conv, alice.id, bot.id, NOW)
    assert (await store.membership(conv, bot.id)).access == "addressed"  # type: ignore[union-attr]
    assert (await store.append(msg(conv, ad, "back"))).message.withheld == (bot.id,)


async def test_access_and_withheld_survive_a_restart(stores: Stores, backend: StoreBackend) -> None:
    store = await stores.open()
    alice, ad = await store.create_account("alice", "A", "user", bytes(31) + b"\x01", "d", NOW)
    bot, _ = await store.create_account("shop_bot", "S", "bot", bytes(31) + b"\x02", "d", NOW)
    conv = (await store.create_conversation("group", "g", alice.id, [bot.id], NOW)).conv.id
    first = await store.append(msg(conv, ad, "one"))
    await stores.close(store)
    store = await stores.open()
    assert (await store.membership(conv, bot.id)).access == "addressed"  # type: ignore[union-attr]
    second = await store.append(msg(conv, ad, "two", to=(bot.id,)))
    third = await store.append(msg(conv, ad, "three"))
    assert [m.withheld for m in (first.message, second.message, third.message)] == [
        (bot.id,),
        (),
        (bot.id,),
    ]
    assert [m.to for m in await everything(store, conv) if m.cmid] == [(), (bot.id,), ()]


async def test_sqlite_members_from_before_version_4_keep_access_all(tmp_path: Path) -> None:
    """Bots added before bots had an access received everything; they still do."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE schema_migrations"
        " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    for version, name, sql in migrations("sqlite"):
        if version < 4:
            db.executescript(sql)
            db.execute("INSERT INTO schema_migrations VALUES (?, ?, 'then')", (version, name))
    db.execute("INSERT INTO accounts VALUES (1, 'alice', 'A', 'user', 1, 0)")
    db.execute("INSERT INTO accounts VALUES (2, 'old_bot', 'B', 'bot', 1, 0)")
    db.execute("INSERT INTO conversations (id, kind, title, created_at) VALUES (7, 'group', '', 1)")
    db.execute("INSERT INTO members VALUES (7, 1, 'owner', 1), (7, 2, 'member', 1)")
    db.commit()
    db.close()
    store = SQLiteStore(str(path))
    await store.open()
    writer = asyncio.create_task(store.run())
    try:
        member = await store.membership(7, 2)
        assert member is not None
        assert (member.bot, member.access) == (True, "all")
    finally:
        await store.aclose()
        await writer
