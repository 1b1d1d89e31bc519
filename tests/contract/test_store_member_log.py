"""The store contract for signed membership logs (SPEC.md 8.5), on every backend: an entry is
written with its change and its system message in one transaction, only on the log's head; a
conversation with a log takes no unsigned change; a log's group id belongs to one conversation.
(The store does not check signatures: the service does, and clients check again.)"""

from __future__ import annotations

import hashlib

import pytest
from chatproto import kinds

from chatd.errors import Conflict, Invalid
from chatd.store import Store
from chatd.store.base import SignedChange, StoredMessage

from .conftest import MakeAccount

NOW = 1_700_000_000_000


def change(
    epoch: int,
    prev: bytes,
    group: bytes = b"g" * 16,
    *,
    roster: tuple[tuple[int, str, str], ...] = (),
    access: str = "",
) -> SignedChange:
    body = b"entry-%d-" % epoch + prev[:4] + group[:4]
    sig = hashlib.sha512(body).digest()
    return SignedChange(
        epoch=epoch,
        prev=prev,
        hash=hashlib.sha256(body + sig).digest(),
        group=group,
        body=body,
        sig=sig,
        roster=roster,
        access=access,
    )


def event(m: StoredMessage) -> kinds.SystemEvent:
    content = kinds.decode_content(m.kind, m.body)
    assert isinstance(content, kinds.SystemEvent)
    return content


async def test_a_signed_group_keeps_its_log_with_the_changes(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, _), (bob, _), (carol, _) = [await make_account(h) for h in ("alice", "bob", "carol")]
    first = change(1, bytes(32), roster=((alice.id, "owner", ""), (bob.id, "member", "")))
    created = await store.create_conversation("group", "g", alice.id, [bob.id], NOW, first)
    conv = created.conv.id
    assert event(created.messages[0]).entry == first.body
    assert event(created.messages[0]).sig == first.sig
    assert await store.log_head(conv) == (1, first.hash, first.group)
    add = change(2, first.hash)
    joined = await store.invite(conv, alice.id, carol.id, NOW, add)
    assert event(joined.message).entry == add.body
    rows = await store.member_log(conv, 0, 10)
    assert [(r.epoch, r.seq, r.body, r.sig) for r in rows] == [
        (1, created.messages[0].seq, first.body, first.sig),
        (2, joined.message.seq, add.body, add.sig),
    ]
    assert [r.epoch for r in await store.member_log(conv, 1, 10)] == [2]
    assert [r.epoch for r in await store.member_log(conv, 0, 1)] == [1]
    # A stale entry (on epoch 1 again) and an unsigned change: refused, nothing written.
    last = (await store.messages(conv, 0, None, 100))[-1].seq
    with pytest.raises(Conflict):
        await store.remove(conv, alice.id, bob.id, NOW, change(2, first.hash))
    with pytest.raises(Invalid):
        await store.remove(conv, alice.id, bob.id, NOW)
    with pytest.raises(Conflict):  # another log's group
        await store.remove(conv, alice.id, bob.id, NOW, change(3, add.hash, b"h" * 16))
    assert (await store.messages(conv, 0, None, 100))[-1].seq == last
    removed = await store.remove(conv, alice.id, bob.id, NOW, change(3, add.hash))
    assert event(removed.message).entry
    left = await store.leave(conv, carol.id, NOW, change(4, change(3, add.hash).hash))
    assert event(left.message).event == "left"
    assert (await store.log_head(conv) or (0,))[0] == 4


async def test_the_create_entry_lists_exactly_the_members_and_group_ids_are_unique(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, _), (bob, _) = [await make_account(h) for h in ("alice", "bob")]
    (bot, _) = await make_account("shop_bot", type="bot")
    wrong = change(1, bytes(32), roster=((alice.id, "owner", ""), (bob.id, "admin", "")))
    with pytest.raises(Invalid):
        await store.create_conversation("group", "", alice.id, [bob.id], NOW, wrong)
    no_access = change(1, bytes(32), roster=((alice.id, "owner", ""), (bot.id, "member", "")))
    with pytest.raises(Invalid):  # a bot's seat carries its initial access
        await store.create_conversation("group", "", alice.id, [bot.id], NOW, no_access)
    good = change(1, bytes(32), roster=((alice.id, "owner", ""), (bot.id, "member", "addressed")))
    await store.create_conversation("group", "", alice.id, [bot.id], NOW, good)
    again = change(1, bytes(32), roster=((alice.id, "owner", ""), (bob.id, "member", "")))
    with pytest.raises(Conflict):  # the same group id as the first conversation's log
        await store.create_conversation("group", "", alice.id, [bob.id], NOW, again)


async def test_unsigned_conversations_keep_working_and_take_no_stray_entry(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, _), (bob, _), (carol, _) = [await make_account(h) for h in ("alice", "bob", "carol")]
    conv = (await store.create_conversation("group", "g", alice.id, [bob.id], NOW)).conv.id
    await store.invite(conv, alice.id, carol.id, NOW)
    assert await store.log_head(conv) is None
    with pytest.raises(Conflict):  # an entry cannot start a log after creation
        await store.remove(conv, alice.id, carol.id, NOW, change(1, bytes(32)))
    assert await store.member_log(conv, 0, 10) == []


async def test_an_existing_direct_conversation_without_a_log_takes_its_first_entry(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, _), (bob, _) = [await make_account(h) for h in ("alice", "bob")]
    old = await store.create_conversation("direct", "", alice.id, [bob.id], NOW)
    conv = old.conv.id
    first = change(1, bytes(32), roster=((alice.id, "member", ""), (bob.id, "member", "")))
    again = await store.create_conversation("direct", "", bob.id, [alice.id], NOW, first)
    assert again.existed and again.conv.id == conv and again.messages == ()
    assert [(r.epoch, r.seq) for r in await store.member_log(conv, 0, 10)] == [(1, 0)]
    later = change(1, bytes(32), b"k" * 16, roster=first.roster)
    await store.create_conversation("direct", "", alice.id, [bob.id], NOW, later)  # ignored
    assert [r.body for r in await store.member_log(conv, 0, 10)] == [first.body]


async def test_a_signed_bot_access_change_extends_the_log(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, _), (bot, _) = [await make_account(h) for h in ("alice",)] + [
        await make_account("shop_bot", type="bot")
    ]
    first = change(1, bytes(32), roster=((alice.id, "owner", ""), (bot.id, "member", "addressed")))
    conv = (await store.create_conversation("group", "", alice.id, [bot.id], NOW, first)).conv.id
    with pytest.raises(Invalid):
        await store.set_bot_access(conv, alice.id, bot.id, "all", NOW)
    done = await store.set_bot_access(conv, alice.id, bot.id, "all", NOW, change(2, first.hash))
    assert done is not None and event(done.message).entry
    assert await store.set_bot_access(conv, alice.id, bot.id, "all", NOW) is None  # no change
