"""The store contract for bounded reads (issue 14.6, SPEC.md 11.5), on every backend: a page of
messages stops before its bodies pass a byte budget (never less than one message) and says
whether the range holds more; conversations and members are read in pages by id."""

from __future__ import annotations

from chatd.store import Store
from chatd.store.base import NewMessage

from .conftest import MakeAccount

NOW = 1_700_000_000_000


async def test_a_message_page_stops_at_its_byte_budget_both_ways(
    store: Store, make_account: MakeAccount
) -> None:
    alice, dev = await make_account("alice")
    conv = (await store.create_conversation("group", "g", alice.id, [], NOW)).conv.id
    for i in range(10):  # seqs 2..11, bodies of 1,000 bytes
        await store.append(
            NewMessage(conv, alice.id, dev.id, f"c{i}", "text", bytes([i]) * 1000, NOW)
        )
    page, more = await store.message_page(conv, 0, None, 500, 3500)
    assert [m.seq for m in page] == [1, 2, 3, 4]  # "created" is small: 3 bodies of 1,000 fit
    assert more
    page, more = await store.message_page(conv, 4, None, 500, 3500)
    assert [m.seq for m in page] == [5, 6, 7]
    assert page[0].body == bytes([3]) * 1000
    # backwards: the newest that fit
    page, more = await store.message_page(conv, 0, 12, 500, 2500)
    assert [m.seq for m in page] == [10, 11]
    assert more
    # one message is always read, whatever its size; the row limit still holds
    page, more = await store.message_page(conv, 0, None, 500, 10)
    assert [m.seq for m in page] == [1]
    page, more = await store.message_page(conv, 1, None, 1, 10**9)
    assert ([m.seq for m in page], more) == ([2], True)
    page, more = await store.message_page(conv, 9, None, 500, 10**9)
    assert ([m.seq for m in page], more) == ([10, 11], False)
    assert await store.message_page(conv, 11, None, 500, 10**9) == ([], False)


async def test_conversations_and_members_are_read_in_pages_by_id(
    store: Store, make_account: MakeAccount
) -> None:
    alice, dev = await make_account("alice")
    others = [(await make_account(f"user{i}"))[0].id for i in range(5)]
    convs = [
        (await store.create_conversation("group", f"g{i}", alice.id, others, NOW)).conv.id
        for i in range(5)
    ]
    first = await store.conversations_of(alice.id, dev.id, 0, 2)
    assert [r.id for r in first] == convs[:2]
    rest = await store.conversations_of(alice.id, dev.id, convs[1], 10)
    assert [r.id for r in rest] == convs[2:]
    assert [r.id for r in await store.conversations_of(alice.id, dev.id)] == convs
    everyone = sorted([alice.id, *others])
    page = await store.members_page(convs[0], 0, 4)
    assert [m.account for m in page] == everyone[:4]
    page = await store.members_page(convs[0], everyone[3], 4)
    assert [m.account for m in page] == everyone[4:]
    assert {m.role for m in page} <= {"member", "owner"}
    limited = await store.conversation(convs[0], alice.id, dev.id, 2)
    assert limited.member_count == 6
    assert [m.account for m in limited.members] == [alice.id, min(others)]
