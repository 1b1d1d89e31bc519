"""The store contract for consent (``Consent``, SPEC.md 18), on every backend: settings,
relations in both directions, requests and invitations, blocks that suspend and restore a
direct conversation's seat, the last-resort bundles and per-sender queue counts."""

from __future__ import annotations

import pytest

from chatd.core.consent import Privacy, Relation
from chatd.errors import NotFound
from chatd.store import Store
from chatd.store.base import KeyUpload, PrekeyRow

from .conftest import MakeAccount

NOW = 1_700_000_000_000


async def test_privacy_is_none_until_set_then_replaced(
    store: Store, make_account: MakeAccount
) -> None:
    alice, _ = await make_account("alice")
    assert await store.privacy(alice.id) is None
    await store.set_privacy(alice.id, Privacy("nobody", "everyone", "contacts"))
    await store.set_privacy(alice.id, Privacy("everyone", "everyone", "nobody"))
    assert await store.privacy(alice.id) == Privacy("everyone", "everyone", "nobody")


async def test_relations_and_seen_by_read_both_directions(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, _), (bob, _), (carol, _) = [await make_account(h) for h in ("alice", "bob", "carol")]
    await store.add_contact(alice.id, bob.id, NOW)
    await store.add_contact(alice.id, bob.id, NOW)  # again: no change
    grp = (await store.create_conversation("group", "g", alice.id, [carol.id], NOW)).conv.id
    assert await store.relations(alice.id, [bob.id, carol.id, 999]) == {
        bob.id: Relation(contact=True),
        carol.id: Relation(shares=True),
        999: Relation(),
    }
    assert (await store.relations(bob.id, [alice.id]))[alice.id] == Relation()
    seen = await store.seen_by(bob.id, [alice.id, carol.id, 999])
    assert set(seen) == {alice.id, carol.id}  # an unknown target is left out
    assert seen[alice.id].relation == Relation(contact=True) and seen[alice.id].privacy is None
    # A conversation with a pending request of the target does not count as shared.
    assert await store.add_request(grp, carol.id, alice.id, NOW)
    assert (await store.relations(carol.id, [alice.id]))[alice.id] == Relation()


async def test_a_direct_request_is_listed_accepted_or_dropped(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, _), (bob, _) = [await make_account(h) for h in ("alice", "bob")]
    conv = (await store.create_conversation("direct", "", alice.id, [bob.id], NOW)).conv.id
    assert await store.add_request(conv, bob.id, alice.id, NOW)
    assert not await store.add_request(conv, bob.id, alice.id, NOW + 1)
    [row] = await store.requests_of(bob.id, 0, 10)
    assert (row.conv, row.kind, row.sender, row.handle, row.at, row.last_seq) == (
        conv,
        "direct",
        alice.id,
        "alice",
        NOW,
        1,
    )
    assert await store.pending_convs(bob.id, [conv, 12345]) == {conv}
    assert await store.requests_of(bob.id, conv, 10) == []
    await store.accept_request(conv, bob.id, NOW)
    assert await store.pending_convs(bob.id, [conv]) == set()
    assert await store.contact_list(bob.id, False, 0, 10) == [alice.id]
    with pytest.raises(NotFound):
        await store.accept_request(conv, bob.id, NOW)


async def test_a_dropped_direct_request_leaves_and_frees_the_pair(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, _), (bob, _) = [await make_account(h) for h in ("alice", "bob")]
    conv = (await store.create_conversation("direct", "", alice.id, [bob.id], NOW)).conv.id
    await store.add_request(conv, bob.id, alice.id, NOW)
    await store.drop_request(conv, bob.id)
    assert await store.member_kind(conv, bob.id) is None
    again = await store.create_conversation("direct", "", alice.id, [bob.id], NOW)
    assert again.conv.id != conv and not again.existed


async def test_an_accepted_invitation_is_no_longer_listed(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, _), (bob, _) = [await make_account(h) for h in ("alice", "bob")]
    grp = (await store.create_conversation("group", "g", alice.id, [], NOW)).conv.id
    await store.add_request(grp, bob.id, alice.id, NOW)
    assert (await store.mark_accepted(grp, bob.id)).state == "pending"
    assert await store.requests_of(bob.id, 0, 10) == []
    row = await store.request(grp, bob.id)
    assert row is not None and row.state == "accepted"
    with pytest.raises(NotFound):
        await store.mark_accepted(grp, bob.id)


async def test_a_block_suspends_the_blocked_seat_and_the_unblock_restores_it(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, _), (bob, _) = [await make_account(h) for h in ("alice", "bob")]
    conv = (await store.create_conversation("direct", "", bob.id, [alice.id], NOW)).conv.id
    await store.add_contact(bob.id, alice.id, NOW)
    assert await store.block(bob.id, alice.id, NOW) == (conv, alice.id)
    assert await store.block(bob.id, alice.id, NOW) is None  # again: nothing more
    assert await store.member_kind(conv, alice.id) is None
    assert (await store.relations(bob.id, [alice.id]))[alice.id] == Relation(blocked=True)
    assert await store.contact_list(bob.id, True, 0, 10) == [alice.id]
    assert await store.unblock(bob.id, alice.id) == conv
    assert await store.member_kind(conv, alice.id) == ("direct", "member")
    assert await store.unblock(bob.id, alice.id) is None
    with pytest.raises(NotFound):
        await store.block(bob.id, 99999, NOW)


async def test_blocking_from_a_request_leaves_the_request(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, _), (bob, _) = [await make_account(h) for h in ("alice", "bob")]
    conv = (await store.create_conversation("direct", "", alice.id, [bob.id], NOW)).conv.id
    await store.add_request(conv, bob.id, alice.id, NOW)
    assert await store.block(bob.id, alice.id, NOW) == (conv, bob.id)
    assert await store.member_kind(conv, bob.id) is None
    assert await store.member_kind(conv, alice.id) is not None
    assert await store.request(conv, bob.id) is None


async def test_a_last_resort_claim_takes_no_one_time_prekey_and_queues_count_per_sender(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, dev), (bob, bob_dev) = [await make_account(h) for h in ("alice", "bob")]
    spk = PrekeyRow(1, bytes(32), bytes(64))
    upload = KeyUpload(dev.id, bytes(32), bytes(64), spk, None, (PrekeyRow(7, bytes(32)),))
    assert await store.upload_keys(upload, NOW, 100) == 1
    [bundle] = await store.claim_keys(alice.id, one_time=False)
    assert (bundle.device, bundle.signed_prekey, bundle.one_time) == (dev.id, spk, None)
    assert await store.one_time_count(dev.id) == 1
    assert await store.claim_keys(alice.id, exclude_device=dev.id, one_time=False) == []
    for body in (b"x" * 10, b"y" * 5):
        await store.queue_to_device(dev.id, bob.id, bob_dev.id, body, NOW, 100)
    await store.queue_to_device(dev.id, alice.id, dev.id, b"z", NOW, 100)
    assert await store.queued_from(dev.id, bob.id) == (2, 15)
    await store.ack_to_device(dev.id, 1)
    assert await store.queued_from(dev.id, bob.id) == (1, 5)


async def test_answers_are_kept_for_the_inviter_while_it_may_act_on_them(
    store: Store, make_account: MakeAccount
) -> None:
    """``answers_of`` (SPEC.md 18.3): accepted invitations and declines of the caller's own
    invitations, while it is an owner or admin and the invitee is not a member; a decline goes
    when dismissed or replaced by a new invitation; pages by (conv, invitee)."""
    (alice, _), (bob, _), (carol, _), (dave, _) = [
        await make_account(h) for h in ("alice", "bob", "carol", "dave")
    ]
    grp = (await store.create_conversation("group", "g", alice.id, [bob.id], NOW)).conv.id
    for a in (carol.id, dave.id):
        await store.add_request(grp, a, alice.id, NOW)
    await store.mark_accepted(grp, carol.id)
    await store.decline_request(grp, dave.id, NOW + 1)
    assert await store.request(grp, dave.id) is None  # the invitation itself is gone
    got = await store.answers_of(alice.id, (0, 0), 10)
    assert [(a.conv, a.account, a.handle, a.answer) for a in got] == [
        (grp, carol.id, "carol", "accept"),
        (grp, dave.id, "dave", "decline"),
    ]
    assert [a.account for a in await store.answers_of(alice.id, (grp, carol.id), 10)] == [dave.id]
    assert len(await store.answers_of(alice.id, (0, 0), 1)) == 1
    assert await store.answers_of(bob.id, (0, 0), 10) == []  # not bob's invitations
    await store.dismiss_decline(bob.id, grp, dave.id)  # not bob's to dismiss
    assert len(await store.answers_of(alice.id, (0, 0), 10)) == 2
    await store.dismiss_decline(alice.id, grp, dave.id)
    await store.dismiss_decline(alice.id, grp, dave.id)  # again: nothing
    assert [a.answer for a in await store.answers_of(alice.id, (0, 0), 10)] == ["accept"]
    # Declined again, then invited again: the decline is old news.
    await store.add_request(grp, dave.id, alice.id, NOW + 2)
    await store.decline_request(grp, dave.id, NOW + 3)
    assert len(await store.answers_of(alice.id, (0, 0), 10)) == 2
    assert await store.add_request(grp, dave.id, bob.id, NOW + 4)
    assert [a.answer for a in await store.answers_of(alice.id, (0, 0), 10)] == ["accept"]
    # The invitee joins: nothing to do any more.
    await store.invite(grp, alice.id, carol.id, NOW + 5)
    assert await store.answers_of(alice.id, (0, 0), 10) == []
    # An inviter that is no longer an owner or admin reads nothing.
    other = (await store.create_conversation("group", "h", bob.id, [alice.id], NOW)).conv.id
    await store.set_role(other, bob.id, alice.id, "admin", NOW)
    await store.add_request(other, carol.id, alice.id, NOW)
    await store.mark_accepted(other, carol.id)
    assert [a.conv for a in await store.answers_of(alice.id, (0, 0), 10)] == [other]
    await store.set_role(other, bob.id, alice.id, "member", NOW)
    assert await store.answers_of(alice.id, (0, 0), 10) == []
