"""The store contract: what every backend must do, as the services and clients rely on it."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from pathlib import Path

import pytest
from chatproto import kinds

from chatd.errors import Conflict, Forbidden, HandleTaken, Invalid, NotFound, Unavailable
from chatd.store import Store
from chatd.store.base import DeviceRow, NewMessage, StoredMessage
from chatd.store.sqlite import SQLiteStore

from .conftest import MakeAccount, StoreBackend, Stores, device_key

NOW = 1_700_000_000_000


def new_message(
    conv: int,
    sender: DeviceRow,
    cmid: str,
    body: bytes = b"hello",
    kind: str = "text",
    ts: int = NOW,
) -> NewMessage:
    return NewMessage(
        conv=conv,
        sender=sender.account,
        device=sender.id,
        cmid=cmid,
        kind=kind,
        body=body,
        ts=ts,
    )


def system_event(m: StoredMessage) -> kinds.SystemEvent:
    assert m.kind == "system"
    assert m.sender == 0
    event = kinds.decode_content("system", m.body)
    assert isinstance(event, kinds.SystemEvent)
    return event


async def all_messages(store: Store, conv: int) -> list[StoredMessage]:
    return await store.messages(conv, 0, None, 1_000_000)


async def seqs(store: Store, conv: int) -> list[int]:
    return [m.seq for m in await all_messages(store, conv)]


async def group(store: Store, owner: int, *members: int, kind: str = "group") -> int:
    created = await store.create_conversation(kind, "team", owner, list(members), NOW)
    return created.conv.id


async def role_of(store: Store, conv: int, account: int) -> str | None:
    found = await store.member_kind(conv, account)
    return None if found is None else found[1]


# ------------------------------------------------------------------ accounts


async def test_create_account_returns_the_account_and_its_first_device(store: Store) -> None:
    key = device_key()
    account, device = await store.create_account("alice", "Alice", "user", key, "phone", NOW)
    assert (account.handle, account.name, account.type) == ("alice", "Alice", "user")
    assert device.account == account.id
    assert device.public_key == key
    assert await store.account(account.id) == account
    assert await store.device(device.id) == device


async def test_handle_is_unique(store: Store, make_account: MakeAccount) -> None:
    await make_account("alice")
    with pytest.raises(HandleTaken):
        await make_account("alice")


async def test_device_key_is_unique_across_accounts(store: Store) -> None:
    key = device_key()
    await store.create_account("alice", "Alice", "user", key, "phone", NOW)
    with pytest.raises(Conflict):
        await store.create_account("bob", "Bob", "user", key, "phone", NOW)
    assert await store.account_by_handle("bob") is None  # nothing half-created


async def test_add_device_gives_the_account_another_device(
    store: Store, make_account: MakeAccount
) -> None:
    alice, phone = await make_account("alice")
    key = device_key()
    laptop = await store.add_device(alice.id, key, "laptop", phone.id, NOW)
    assert laptop.account == alice.id
    assert laptop.id != phone.id
    assert await store.device(laptop.id) == laptop


async def test_add_device_refuses_a_key_already_registered(
    store: Store, make_account: MakeAccount
) -> None:
    alice, phone = await make_account("alice")
    with pytest.raises(Conflict):
        await store.add_device(alice.id, phone.public_key, "clone", phone.id, NOW)


async def test_account_by_handle_finds_the_account_or_none(
    store: Store, make_account: MakeAccount
) -> None:
    alice, _ = await make_account("alice")
    assert await store.account_by_handle("alice") == alice
    assert await store.account_by_handle("nobody") is None


async def test_unknown_account_and_device_are_none(store: Store) -> None:
    assert await store.account(12345) is None
    assert await store.device(12345) is None


# ------------------------------------------------------------------ conversations


async def test_direct_conversation_is_one_per_pair_in_both_directions(
    store: Store, make_account: MakeAccount
) -> None:
    alice, _ = await make_account("alice")
    bob, _ = await make_account("bob")
    first = await store.create_conversation("direct", "", alice.id, [bob.id], NOW)
    assert first.existed is False
    assert first.conv.kind == "direct"
    again = await store.create_conversation("direct", "", alice.id, [bob.id], NOW)
    reverse = await store.create_conversation("direct", "", bob.id, [alice.id], NOW)
    assert again.existed is True
    assert reverse.existed is True
    assert again.conv.id == reverse.conv.id == first.conv.id
    assert again.messages == reverse.messages == ()
    assert await seqs(store, first.conv.id) == [1]  # re-opening wrote nothing


async def test_reopening_a_direct_conversation_reports_its_current_last_seq(
    store: Store, make_account: MakeAccount
) -> None:
    alice, dev = await make_account("alice")
    bob, _ = await make_account("bob")
    conv = (await store.create_conversation("direct", "", alice.id, [bob.id], NOW)).conv.id
    await store.append(new_message(conv, dev, "a"))
    # queue the append, then the re-open, so they commit in one batch in that order: the row
    # must count the append even though the batch has not written last_seq back yet
    reopen = asyncio.ensure_future(store.create_conversation("direct", "", bob.id, [alice.id], NOW))
    appended = store.append(new_message(conv, dev, "b"))
    again = await reopen
    assert (await appended).message.seq == 3
    assert again.existed is True
    assert again.conv.last_seq == 3


async def test_direct_conversation_members_are_plain_members(
    store: Store, make_account: MakeAccount
) -> None:
    alice, _ = await make_account("alice")
    bob, _ = await make_account("bob")
    conv = (await store.create_conversation("direct", "", alice.id, [bob.id], NOW)).conv.id
    assert await store.member_kind(conv, alice.id) == ("direct", "member")
    assert await store.member_kind(conv, bob.id) == ("direct", "member")


async def test_direct_conversation_with_yourself_is_invalid(
    store: Store, make_account: MakeAccount
) -> None:
    alice, _ = await make_account("alice")
    with pytest.raises(Invalid):
        await store.create_conversation("direct", "", alice.id, [alice.id], NOW)
    with pytest.raises(Invalid):
        await store.create_conversation("direct", "", alice.id, [], NOW)


async def test_direct_conversation_with_two_others_is_invalid(
    store: Store, make_account: MakeAccount
) -> None:
    alice, _ = await make_account("alice")
    bob, _ = await make_account("bob")
    carol, _ = await make_account("carol")
    with pytest.raises(Invalid):
        await store.create_conversation("direct", "", alice.id, [bob.id, carol.id], NOW)
    assert await store.conversation_ids_of(alice.id) == []


@pytest.mark.parametrize("kind", ["direct", "group", "channel"])
async def test_conversation_with_an_unknown_member_is_not_found(
    store: Store, make_account: MakeAccount, kind: str
) -> None:
    alice, _ = await make_account("alice")
    with pytest.raises(NotFound):
        await store.create_conversation(kind, "t", alice.id, [999_999], NOW)
    assert await store.conversation_ids_of(alice.id) == []


@pytest.mark.parametrize("kind", ["group", "channel"])
async def test_creator_owns_a_new_group_recorded_by_a_created_message_at_seq_1(
    store: Store, make_account: MakeAccount, kind: str
) -> None:
    alice, dev = await make_account("alice")
    bob, _ = await make_account("bob")
    created = await store.create_conversation(kind, "Team", alice.id, [bob.id], NOW)
    conv = created.conv
    assert created.existed is False
    assert (conv.kind, conv.title, conv.role, conv.last_seq, conv.member_count) == (
        kind,
        "Team",
        "owner",
        1,
        2,
    )
    assert await role_of(store, conv.id, bob.id) == "member"
    (msg,) = created.messages
    assert msg.seq == 1
    assert system_event(msg).event == "created"
    assert system_event(msg).actor == alice.id
    assert await all_messages(store, conv.id) == [msg]
    full = await store.conversation(conv.id, alice.id, dev.id)
    assert [(m.account, m.role) for m in full.members] == [(alice.id, "owner"), (bob.id, "member")]


async def test_conversation_is_invisible_to_non_members(
    store: Store, make_account: MakeAccount
) -> None:
    alice, _ = await make_account("alice")
    eve, eve_dev = await make_account("eve")
    conv = await group(store, alice.id)
    with pytest.raises(NotFound):
        await store.conversation(conv, eve.id, eve_dev.id)
    assert await store.member_kind(conv, eve.id) is None
    assert await store.conversations_of(eve.id, eve_dev.id) == []


async def test_conversations_of_lists_each_membership_with_its_role(
    store: Store, make_account: MakeAccount
) -> None:
    alice, _ = await make_account("alice")
    bob, bob_dev = await make_account("bob")
    mine = await group(store, bob.id)
    theirs = await group(store, alice.id, bob.id)
    rows = await store.conversations_of(bob.id, bob_dev.id)
    assert [(r.id, r.role) for r in rows] == [(mine, "owner"), (theirs, "member")]
    assert sorted(await store.conversation_ids_of(bob.id)) == sorted([mine, theirs])


# ------------------------------------------------------------------ append: seqs


async def test_appends_get_consecutive_seqs_after_the_created_message(
    store: Store, make_account: MakeAccount
) -> None:
    alice, dev = await make_account("alice")
    conv = await group(store, alice.id)
    results = [await store.append(new_message(conv, dev, f"m{i}")) for i in range(5)]
    assert [r.message.seq for r in results] == [2, 3, 4, 5, 6]
    assert not any(r.duplicate for r in results)
    assert await seqs(store, conv) == [1, 2, 3, 4, 5, 6]


async def test_concurrent_appends_are_gapless_and_unique_per_conversation(
    store: Store, make_account: MakeAccount
) -> None:
    alice, dev = await make_account("alice")
    convs = [await group(store, alice.id) for _ in range(5)]
    rng = random.Random(1234)
    plan = [rng.choice(convs) for _ in range(500)]
    results = await asyncio.gather(
        *(
            store.append(new_message(conv, dev, f"c{i}", body=b"%d" % i))
            for i, conv in enumerate(plan)
        )
    )
    per_conv: dict[int, list[int]] = defaultdict(list)
    for conv, r in zip(plan, results, strict=True):
        assert r.message.conv == conv
        assert r.duplicate is False
        per_conv[conv].append(r.message.seq)
    for conv in convs:
        k = plan.count(conv)
        assert sorted(per_conv[conv]) == list(range(2, k + 2))
        assert await seqs(store, conv) == list(range(1, k + 2))
    # acks resolve in commit order, which is seq order within a conversation
    for conv in convs:
        assert per_conv[conv] == sorted(per_conv[conv])


async def test_stored_message_keeps_what_was_sent(store: Store, make_account: MakeAccount) -> None:
    alice, dev = await make_account("alice")
    conv = await group(store, alice.id)
    sent = new_message(conv, dev, "abc", body=b"\x00\xffbody", kind="x-custom", ts=NOW + 5)
    stored = (await store.append(sent)).message
    assert (stored.sender, stored.device, stored.cmid, stored.kind, stored.body, stored.ts) == (
        alice.id,
        dev.id,
        "abc",
        "x-custom",
        b"\x00\xffbody",
        NOW + 5,
    )
    assert (await all_messages(store, conv))[-1] == stored


# ------------------------------------------------------------------ append: idempotency


async def test_resend_with_the_same_cmid_returns_the_original_seq_and_ts(
    store: Store, make_account: MakeAccount
) -> None:
    alice, dev = await make_account("alice")
    conv = await group(store, alice.id)
    first = await store.append(new_message(conv, dev, "x1", body=b"hi", ts=NOW))
    await store.append(new_message(conv, dev, "x2"))
    again = await store.append(new_message(conv, dev, "x1", body=b"hi", ts=NOW + 999))
    assert again.duplicate is True
    assert (again.message.seq, again.message.ts) == (first.message.seq, first.message.ts)
    assert await seqs(store, conv) == [1, 2, 3]  # nothing new stored


async def test_resend_in_the_same_batch_is_still_a_duplicate(
    store: Store, make_account: MakeAccount
) -> None:
    alice, dev = await make_account("alice")
    conv = await group(store, alice.id)
    a, b = await asyncio.gather(
        store.append(new_message(conv, dev, "same")), store.append(new_message(conv, dev, "same"))
    )
    assert (a.duplicate, b.duplicate) == (False, True)
    assert a.message.seq == b.message.seq == 2
    assert await seqs(store, conv) == [1, 2]


async def test_same_cmid_with_a_different_body_is_conflict(
    store: Store, make_account: MakeAccount
) -> None:
    alice, dev = await make_account("alice")
    conv = await group(store, alice.id)
    await store.append(new_message(conv, dev, "x1", body=b"one"))
    with pytest.raises(Conflict):
        await store.append(new_message(conv, dev, "x1", body=b"two"))
    with pytest.raises(Conflict):
        await store.append(new_message(conv, dev, "x1", body=b"one", kind="reaction"))
    assert await seqs(store, conv) == [1, 2]


async def test_cmid_is_scoped_to_the_device_and_conversation(
    store: Store, make_account: MakeAccount
) -> None:
    alice, phone = await make_account("alice")
    laptop = await store.add_device(alice.id, device_key(), "laptop", phone.id, NOW)
    c1 = await group(store, alice.id)
    c2 = await group(store, alice.id)
    r1 = await store.append(new_message(c1, phone, "same", body=b"a"))
    r2 = await store.append(new_message(c1, laptop, "same", body=b"b"))
    r3 = await store.append(new_message(c2, phone, "same", body=b"c"))
    assert [r.duplicate for r in (r1, r2, r3)] == [False, False, False]
    assert (r1.message.seq, r2.message.seq, r3.message.seq) == (2, 3, 2)


# ------------------------------------------------------------------ append: authorisation


async def test_non_member_append_is_not_found(store: Store, make_account: MakeAccount) -> None:
    alice, _ = await make_account("alice")
    _, eve_dev = await make_account("eve")
    conv = await group(store, alice.id)
    with pytest.raises(NotFound):
        await store.append(new_message(conv, eve_dev, "e1"))
    with pytest.raises(NotFound):
        await store.append(new_message(987_654, eve_dev, "e2"))
    assert await seqs(store, conv) == [1]


async def test_plain_member_cannot_post_in_a_channel(
    store: Store, make_account: MakeAccount
) -> None:
    alice, alice_dev = await make_account("alice")
    bob, bob_dev = await make_account("bob")
    conv = await group(store, alice.id, bob.id, kind="channel")
    with pytest.raises(Forbidden):
        await store.append(new_message(conv, bob_dev, "b1"))
    assert (await store.append(new_message(conv, alice_dev, "a1"))).message.seq == 2
    await store.set_role(conv, alice.id, bob.id, "admin", NOW)
    assert (await store.append(new_message(conv, bob_dev, "b1"))).message.seq == 4


async def test_removed_member_can_no_longer_append(store: Store, make_account: MakeAccount) -> None:
    alice, _ = await make_account("alice")
    bob, bob_dev = await make_account("bob")
    conv = await group(store, alice.id, bob.id)
    await store.remove(conv, alice.id, bob.id, NOW)
    with pytest.raises(NotFound):
        await store.append(new_message(conv, bob_dev, "late"))


async def test_a_refused_op_in_a_batch_does_not_stop_the_others(
    store: Store, make_account: MakeAccount
) -> None:
    alice, alice_dev = await make_account("alice")
    bob, bob_dev = await make_account("bob")
    conv = await group(store, alice.id, bob.id, kind="channel")
    await store.append(new_message(conv, alice_dev, "dup", body=b"original"))
    results = await asyncio.gather(
        store.append(new_message(conv, alice_dev, "ok1")),
        store.append(new_message(conv, bob_dev, "forbidden")),
        store.append(new_message(conv, alice_dev, "dup", body=b"changed")),
        store.append(new_message(conv, alice_dev, "ok2")),
        return_exceptions=True,
    )
    assert isinstance(results[1], Forbidden)
    assert isinstance(results[2], Conflict)
    ok = [r for r in results if not isinstance(r, BaseException)]
    assert [r.message.seq for r in ok] == [3, 4]
    assert [m.cmid for m in await all_messages(store, conv)] == [None, "dup", "ok1", "ok2"]


# ------------------------------------------------------------------ membership changes


async def test_invite_adds_a_member_with_a_joined_message(
    store: Store, make_account: MakeAccount
) -> None:
    alice, _ = await make_account("alice")
    bob, bob_dev = await make_account("bob")
    conv = await group(store, alice.id)
    change = await store.invite(conv, alice.id, bob.id, NOW)
    assert change.added == (bob.id,)
    assert change.message.seq == 2
    event = system_event(change.message)
    assert (event.event, event.actor, event.account) == ("joined", alice.id, bob.id)
    assert await role_of(store, conv, bob.id) == "member"
    assert (await store.append(new_message(conv, bob_dev, "hi"))).message.seq == 3
    assert await seqs(store, conv) == [1, 2, 3]


async def test_invite_by_a_plain_member_is_forbidden(
    store: Store, make_account: MakeAccount
) -> None:
    alice, _ = await make_account("alice")
    bob, _ = await make_account("bob")
    carol, _ = await make_account("carol")
    conv = await group(store, alice.id, bob.id)
    with pytest.raises(Forbidden):
        await store.invite(conv, bob.id, carol.id, NOW)
    assert await role_of(store, conv, carol.id) is None
    assert await seqs(store, conv) == [1]


async def test_invite_of_an_existing_member_is_conflict_and_unknown_account_not_found(
    store: Store, make_account: MakeAccount
) -> None:
    alice, _ = await make_account("alice")
    bob, _ = await make_account("bob")
    conv = await group(store, alice.id, bob.id)
    with pytest.raises(Conflict):
        await store.invite(conv, alice.id, bob.id, NOW)
    with pytest.raises(NotFound):
        await store.invite(conv, alice.id, 424_242, NOW)
    assert await seqs(store, conv) == [1]


async def test_admin_may_invite_and_remove_plain_members(
    store: Store, make_account: MakeAccount
) -> None:
    alice, _ = await make_account("alice")
    bob, _ = await make_account("bob")
    carol, _ = await make_account("carol")
    conv = await group(store, alice.id, bob.id)
    await store.set_role(conv, alice.id, bob.id, "admin", NOW)
    await store.invite(conv, bob.id, carol.id, NOW)
    change = await store.remove(conv, bob.id, carol.id, NOW)
    assert change.removed == (carol.id,)
    event = system_event(change.message)
    assert (event.event, event.actor, event.account) == ("removed", bob.id, carol.id)
    assert await role_of(store, conv, carol.id) is None
    assert await seqs(store, conv) == [1, 2, 3, 4]


async def test_admin_cannot_remove_the_owner_or_another_admin(
    store: Store, make_account: MakeAccount
) -> None:
    alice, _ = await make_account("alice")
    bob, _ = await make_account("bob")
    carol, _ = await make_account("carol")
    conv = await group(store, alice.id, bob.id, carol.id)
    await store.set_role(conv, alice.id, bob.id, "admin", NOW)
    await store.set_role(conv, alice.id, carol.id, "admin", NOW)
    with pytest.raises(Forbidden):
        await store.remove(conv, bob.id, alice.id, NOW)
    with pytest.raises(Forbidden):
        await store.remove(conv, bob.id, carol.id, NOW)
    assert await role_of(store, conv, alice.id) == "owner"
    assert await role_of(store, conv, carol.id) == "admin"
    await store.remove(conv, alice.id, carol.id, NOW)  # the owner may
    assert await role_of(store, conv, carol.id) is None


async def test_remove_yourself_is_invalid_and_remove_a_stranger_not_found(
    store: Store, make_account: MakeAccount
) -> None:
    alice, _ = await make_account("alice")
    eve, _ = await make_account("eve")
    conv = await group(store, alice.id)
    with pytest.raises(Invalid):
        await store.remove(conv, alice.id, alice.id, NOW)
    with pytest.raises(NotFound):
        await store.remove(conv, alice.id, eve.id, NOW)
    assert await seqs(store, conv) == [1]


async def test_only_the_owner_changes_roles(store: Store, make_account: MakeAccount) -> None:
    alice, _ = await make_account("alice")
    bob, _ = await make_account("bob")
    carol, _ = await make_account("carol")
    conv = await group(store, alice.id, bob.id, carol.id)
    change = await store.set_role(conv, alice.id, bob.id, "admin", NOW)
    event = system_event(change.message)
    assert (event.event, event.actor, event.account, event.role) == (
        "role",
        alice.id,
        bob.id,
        "admin",
    )
    assert await role_of(store, conv, bob.id) == "admin"
    with pytest.raises(Forbidden):
        await store.set_role(conv, bob.id, carol.id, "admin", NOW)
    with pytest.raises(Invalid):
        await store.set_role(conv, alice.id, alice.id, "member", NOW)
    assert await role_of(store, conv, carol.id) == "member"
    assert await seqs(store, conv) == [1, 2]


async def test_rename_changes_the_title_with_a_renamed_message(
    store: Store, make_account: MakeAccount
) -> None:
    alice, dev = await make_account("alice")
    bob, _ = await make_account("bob")
    conv = await group(store, alice.id, bob.id)
    change = await store.rename(conv, alice.id, "New name", NOW)
    event = system_event(change.message)
    assert (event.event, event.actor, event.title) == ("renamed", alice.id, "New name")
    assert (await store.conversation(conv, alice.id, dev.id)).title == "New name"
    with pytest.raises(Forbidden):
        await store.rename(conv, bob.id, "Hijacked", NOW)
    assert (await store.conversation(conv, alice.id, dev.id)).title == "New name"
    assert await seqs(store, conv) == [1, 2]


async def test_leave_removes_the_member_with_a_left_message(
    store: Store, make_account: MakeAccount
) -> None:
    alice, _ = await make_account("alice")
    bob, _ = await make_account("bob")
    conv = await group(store, alice.id, bob.id)
    change = await store.leave(conv, bob.id, NOW)
    assert change.removed == (bob.id,)
    event = system_event(change.message)
    assert (event.event, event.actor) == ("left", bob.id)
    assert await role_of(store, conv, bob.id) is None
    assert await role_of(store, conv, alice.id) == "owner"
    with pytest.raises(NotFound):
        await store.leave(conv, bob.id, NOW)


async def test_owner_leaving_passes_ownership_to_the_earliest_admin(
    store: Store, make_account: MakeAccount
) -> None:
    alice, _ = await make_account("alice")
    bob, _ = await make_account("bob")
    carol, _ = await make_account("carol")
    dave, _ = await make_account("dave")
    conv = await group(store, alice.id, bob.id)
    await store.invite(conv, alice.id, carol.id, NOW)
    await store.invite(conv, alice.id, dave.id, NOW)
    await store.set_role(conv, alice.id, dave.id, "admin", NOW)
    await store.set_role(conv, alice.id, carol.id, "admin", NOW)
    await store.leave(conv, alice.id, NOW)
    # carol joined (seq 2) before dave (seq 3); bob joined first but is no admin
    assert await role_of(store, conv, carol.id) == "owner"
    assert await role_of(store, conv, dave.id) == "admin"
    assert await role_of(store, conv, bob.id) == "member"


async def test_owner_leaving_without_admins_passes_ownership_to_the_earliest_member(
    store: Store, make_account: MakeAccount
) -> None:
    alice, _ = await make_account("alice")
    bob, _ = await make_account("bob")
    carol, _ = await make_account("carol")
    conv = await group(store, alice.id)
    await store.invite(conv, alice.id, carol.id, NOW)
    await store.invite(conv, alice.id, bob.id, NOW)
    await store.leave(conv, alice.id, NOW)
    assert await role_of(store, conv, carol.id) == "owner"
    assert await role_of(store, conv, bob.id) == "member"


async def test_last_member_leaving_keeps_the_history(
    store: Store, make_account: MakeAccount
) -> None:
    alice, dev = await make_account("alice")
    conv = await group(store, alice.id)
    await store.append(new_message(conv, dev, "m"))
    await store.leave(conv, alice.id, NOW)
    assert await seqs(store, conv) == [1, 2, 3]


async def test_direct_conversation_refuses_membership_changes_and_rename(
    store: Store, make_account: MakeAccount
) -> None:
    alice, _ = await make_account("alice")
    bob, _ = await make_account("bob")
    carol, _ = await make_account("carol")
    conv = (await store.create_conversation("direct", "", alice.id, [bob.id], NOW)).conv.id
    with pytest.raises(Invalid):
        await store.invite(conv, alice.id, carol.id, NOW)
    with pytest.raises(Invalid):
        await store.remove(conv, alice.id, bob.id, NOW)
    with pytest.raises(Invalid):
        await store.leave(conv, alice.id, NOW)
    with pytest.raises(Invalid):
        await store.rename(conv, alice.id, "us", NOW)
    with pytest.raises(Invalid):
        await store.set_role(conv, alice.id, bob.id, "admin", NOW)
    assert await seqs(store, conv) == [1]
    assert await role_of(store, conv, bob.id) == "member"


async def test_system_messages_share_the_sequence_with_user_messages(
    store: Store, make_account: MakeAccount
) -> None:
    alice, dev = await make_account("alice")
    bob, _ = await make_account("bob")
    conv = await group(store, alice.id)
    await store.append(new_message(conv, dev, "a"))
    await store.invite(conv, alice.id, bob.id, NOW)
    await store.append(new_message(conv, dev, "b"))
    await store.rename(conv, alice.id, "x", NOW)
    msgs = await all_messages(store, conv)
    assert [m.seq for m in msgs] == [1, 2, 3, 4, 5]
    assert [m.kind for m in msgs] == ["system", "text", "system", "text", "system"]


# ------------------------------------------------------------------ reading history


async def test_messages_pages_ascending_with_after_before_and_limit(
    store: Store, make_account: MakeAccount
) -> None:
    alice, dev = await make_account("alice")
    conv = await group(store, alice.id)
    for i in range(10):
        await store.append(new_message(conv, dev, f"m{i}"))
    # seqs 1..11
    page = await store.messages(conv, 0, None, 4)
    assert [m.seq for m in page] == [1, 2, 3, 4]
    page = await store.messages(conv, 4, None, 4)
    assert [m.seq for m in page] == [5, 6, 7, 8]
    page = await store.messages(conv, 8, None, 100)
    assert [m.seq for m in page] == [9, 10, 11]
    assert await store.messages(conv, 11, None, 100) == []
    # before: the newest `limit` below it, still ascending
    page = await store.messages(conv, 0, 8, 3)
    assert [m.seq for m in page] == [5, 6, 7]
    page = await store.messages(conv, 5, 8, 100)
    assert [m.seq for m in page] == [6, 7]
    assert await store.messages(conv, 0, 1, 10) == []


async def test_messages_of_another_conversation_are_not_mixed_in(
    store: Store, make_account: MakeAccount
) -> None:
    alice, dev = await make_account("alice")
    c1 = await group(store, alice.id)
    c2 = await group(store, alice.id)
    await store.append(new_message(c1, dev, "a"))
    await store.append(new_message(c2, dev, "b"))
    assert {m.conv for m in await all_messages(store, c1)} == {c1}
    assert [m.cmid for m in await all_messages(store, c2)] == [None, "b"]


# ------------------------------------------------------------------ cursors


async def test_move_cursor_only_moves_forward(store: Store, make_account: MakeAccount) -> None:
    alice, dev = await make_account("alice")
    conv = await group(store, alice.id)
    for i in range(5):
        await store.append(new_message(conv, dev, f"m{i}"))
    assert await store.move_cursor(dev.id, conv, "read", 3) is True
    assert await store.move_cursor(dev.id, conv, "read", 2) is False
    assert await store.move_cursor(dev.id, conv, "read", 3) is False
    assert (await store.conversation(conv, alice.id, dev.id)).read == 3
    assert await store.move_cursor(dev.id, conv, "read", 5) is True
    assert (await store.conversation(conv, alice.id, dev.id)).read == 5


async def test_move_cursor_clamps_to_the_last_seq(store: Store, make_account: MakeAccount) -> None:
    alice, dev = await make_account("alice")
    conv = await group(store, alice.id)
    await store.append(new_message(conv, dev, "m"))  # last_seq 2
    assert await store.move_cursor(dev.id, conv, "delivered", 1000) is True
    row = await store.conversation(conv, alice.id, dev.id)
    assert (row.delivered, row.read) == (2, 0)
    assert await store.move_cursor(dev.id, conv, "delivered", 1000) is False


async def test_cursors_are_per_device_and_per_type(store: Store, make_account: MakeAccount) -> None:
    alice, phone = await make_account("alice")
    laptop = await store.add_device(alice.id, device_key(), "laptop", phone.id, NOW)
    conv = await group(store, alice.id)
    for i in range(3):
        await store.append(new_message(conv, phone, f"m{i}"))
    await store.move_cursor(phone.id, conv, "read", 4)
    await store.move_cursor(laptop.id, conv, "delivered", 2)
    on_phone = await store.conversation(conv, alice.id, phone.id)
    on_laptop = await store.conversation(conv, alice.id, laptop.id)
    assert (on_phone.read, on_phone.delivered) == (4, 0)
    assert (on_laptop.read, on_laptop.delivered) == (0, 2)


async def test_move_cursor_in_an_unknown_conversation_is_not_found(
    store: Store, make_account: MakeAccount
) -> None:
    _, dev = await make_account("alice")
    with pytest.raises(NotFound):
        await store.move_cursor(dev.id, 555_555, "read", 1)


# ------------------------------------------------------------------ durability


async def test_data_survives_close_and_reopen_and_seqs_continue_without_gaps(
    stores: Stores,
) -> None:
    store = await stores.open()
    alice, dev = await store.create_account("alice", "Alice", "user", device_key(), "p", NOW)
    bob, _ = await store.create_account("bob", "Bob", "user", device_key(), "p", NOW)
    conv = await group(store, alice.id, bob.id)
    pending = [store.append(new_message(conv, dev, f"m{i}")) for i in range(20)]
    await stores.close(store)  # drains the queued appends before closing
    acked = [f.result() for f in pending]
    assert [a.message.seq for a in acked] == list(range(2, 22))
    before = await _snapshot_after_reopen(stores, conv)
    assert [m.seq for m in before] == list(range(1, 22))
    assert [m.cmid for m in before[1:]] == [f"m{i}" for i in range(20)]

    reopened = await stores.open()
    assert await reopened.account_by_handle("alice") == alice
    assert await reopened.member_kind(conv, bob.id) == ("group", "member")
    nxt = await reopened.append(new_message(conv, dev, "after-restart"))
    assert nxt.message.seq == 22
    again = await reopened.append(new_message(conv, dev, "m3"))  # resend of a pre-restart cmid
    assert (again.duplicate, again.message.seq) == (True, 5)
    assert await seqs(reopened, conv) == list(range(1, 23))


async def _snapshot_after_reopen(stores: Stores, conv: int) -> list[StoredMessage]:
    store = await stores.open()
    try:
        return await all_messages(store, conv)
    finally:
        await stores.close(store)


async def test_a_closed_store_refuses_new_writes(stores: Stores) -> None:
    store = await stores.open()
    await stores.close(store)
    with pytest.raises(Unavailable):
        await store.create_account("late", "Late", "user", device_key(), "p", NOW)


async def test_second_store_on_the_same_data_refuses_to_open_while_one_is_open(
    backend: StoreBackend, stores: Stores
) -> None:
    if not backend.one_writer_per_location:
        pytest.skip(f"{backend.name} allows several writers")
    first = await stores.open()
    second = backend.new_store()
    with pytest.raises(RuntimeError, match="in use"):
        await second.open()
    # the first store is unaffected, and once it is closed the data can be opened again
    alice, _ = await first.create_account("alice", "A", "user", device_key(), "p", NOW)
    await stores.close(first)
    third = await stores.open()
    assert await third.account_by_handle("alice") == alice


async def test_sqlite_stores_on_different_files_do_not_block_each_other(tmp_path: Path) -> None:
    base = tmp_path
    a, b = SQLiteStore(str(base / "a.db")), SQLiteStore(str(base / "b.db"))
    await a.open()
    await b.open()
    tasks = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
    try:
        assert await a.ping()
        assert await b.ping()
    finally:
        await a.aclose()
        await b.aclose()
        await asyncio.gather(*tasks)
