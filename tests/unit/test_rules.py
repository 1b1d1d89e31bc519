"""Who may do what in a conversation: the pure rules the store checks inside its transaction."""

from __future__ import annotations

import pytest

from chatd.core import rules
from chatd.errors import Forbidden, Invalid, NotFound

MANAGERS = ["owner", "admin"]
SHARED_KINDS = ["group", "channel"]


# ------------------------------------------------------------------ posting


@pytest.mark.parametrize("role", MANAGERS)
def test_channel_owner_and_admins_may_post(role: str) -> None:
    rules.check_send("channel", role)


def test_channel_plain_member_may_not_post() -> None:
    with pytest.raises(Forbidden):
        rules.check_send("channel", "member")


@pytest.mark.parametrize("kind", ["direct", "group"])
@pytest.mark.parametrize("role", ["owner", "admin", "member"])
def test_everyone_posts_in_direct_and_group_conversations(kind: str, role: str) -> None:
    rules.check_send(kind, role)


# ------------------------------------------------------------------ members


@pytest.mark.parametrize("kind", SHARED_KINDS)
@pytest.mark.parametrize("role", MANAGERS)
def test_owner_and_admins_may_manage_members(kind: str, role: str) -> None:
    rules.check_manage_members(kind, role)


@pytest.mark.parametrize("kind", SHARED_KINDS)
def test_plain_member_may_not_manage_members(kind: str) -> None:
    with pytest.raises(Forbidden):
        rules.check_manage_members(kind, "member")


@pytest.mark.parametrize("kind", SHARED_KINDS)
def test_plain_member_may_not_remove_anyone(kind: str) -> None:
    with pytest.raises(Forbidden):
        rules.check_remove(kind, "member", "member")


@pytest.mark.parametrize("kind", SHARED_KINDS)
@pytest.mark.parametrize("actor", MANAGERS)
def test_owner_and_admins_may_remove_a_plain_member(kind: str, actor: str) -> None:
    rules.check_remove(kind, actor, "member")


@pytest.mark.parametrize("kind", SHARED_KINDS)
@pytest.mark.parametrize("actor", MANAGERS)
def test_nobody_can_remove_the_owner(kind: str, actor: str) -> None:
    with pytest.raises(Forbidden):
        rules.check_remove(kind, actor, "owner")


@pytest.mark.parametrize("kind", SHARED_KINDS)
def test_admin_cannot_remove_another_admin(kind: str) -> None:
    with pytest.raises(Forbidden):
        rules.check_remove(kind, "admin", "admin")


@pytest.mark.parametrize("kind", SHARED_KINDS)
def test_owner_can_remove_an_admin(kind: str) -> None:
    rules.check_remove(kind, "owner", "admin")


# ------------------------------------------------------------------ roles


@pytest.mark.parametrize("kind", SHARED_KINDS)
@pytest.mark.parametrize("target", ["admin", "member"])
def test_owner_changes_roles(kind: str, target: str) -> None:
    rules.check_set_role(kind, "owner", target)


@pytest.mark.parametrize("kind", SHARED_KINDS)
@pytest.mark.parametrize("actor", ["admin", "member"])
@pytest.mark.parametrize("target", ["admin", "member"])
def test_only_the_owner_changes_roles(kind: str, actor: str, target: str) -> None:
    with pytest.raises(Forbidden):
        rules.check_set_role(kind, actor, target)


def test_the_owners_own_role_cannot_be_changed() -> None:
    with pytest.raises(Invalid):
        rules.check_set_role("group", "owner", "owner")


# ------------------------------------------------------------------ rename and leave


@pytest.mark.parametrize("kind", SHARED_KINDS)
@pytest.mark.parametrize("role", MANAGERS)
def test_owner_and_admins_may_rename(kind: str, role: str) -> None:
    rules.check_rename(kind, role)


def test_plain_member_may_not_rename() -> None:
    with pytest.raises(Forbidden):
        rules.check_rename("group", "member")


@pytest.mark.parametrize("kind", SHARED_KINDS)
def test_group_and_channel_may_be_left(kind: str) -> None:
    rules.check_leave(kind)


# ------------------------------------------------------------------ direct conversations


@pytest.mark.parametrize("role", ["owner", "admin", "member"])
def test_direct_conversation_refuses_invite_with_invalid(role: str) -> None:
    with pytest.raises(Invalid):
        rules.check_manage_members("direct", role)


@pytest.mark.parametrize("role", ["owner", "admin", "member"])
def test_direct_conversation_refuses_remove_with_invalid(role: str) -> None:
    with pytest.raises(Invalid):
        rules.check_remove("direct", role, "member")


def test_direct_conversation_refuses_leave_with_invalid() -> None:
    with pytest.raises(Invalid):
        rules.check_leave("direct")


@pytest.mark.parametrize("role", ["owner", "admin", "member"])
def test_direct_conversation_refuses_rename_with_invalid(role: str) -> None:
    with pytest.raises(Invalid):
        rules.check_rename("direct", role)


def test_direct_conversation_refuses_role_changes_with_invalid() -> None:
    with pytest.raises(Invalid):
        rules.check_set_role("direct", "member", "member")


# ------------------------------------------------------------------ succession


def test_next_owner_is_the_earliest_joined_admin() -> None:
    remaining = [(5, "member", 2), (7, "admin", 9), (3, "admin", 4), (9, "member", 1)]
    assert rules.next_owner(remaining) == 3


def test_next_owner_prefers_any_admin_over_an_earlier_member() -> None:
    remaining = [(1, "member", 1), (2, "admin", 50)]
    assert rules.next_owner(remaining) == 2


def test_next_owner_without_admins_is_the_earliest_joined_member() -> None:
    remaining = [(8, "member", 6), (4, "member", 3), (6, "member", 10)]
    assert rules.next_owner(remaining) == 4


def test_next_owner_breaks_a_tie_on_join_seq_by_lowest_account() -> None:
    remaining = [(8, "member", 1), (4, "member", 1)]
    assert rules.next_owner(remaining) == 4


def test_next_owner_of_an_empty_conversation_is_none() -> None:
    assert rules.next_owner([]) is None


# ------------------------------------------------------------------ direct key


@pytest.mark.parametrize(("a", "b"), [(1, 2), (2, 1), (10, 9), (123, 45)])
def test_direct_key_is_symmetric(a: int, b: int) -> None:
    assert rules.direct_key(a, b) == rules.direct_key(b, a)


def test_direct_key_distinguishes_pairs() -> None:
    # numeric, not string, ordering: 10:2 and 2:10 are the same pair; 1:12 and 11:2 are not
    assert rules.direct_key(1, 12) != rules.direct_key(11, 2)
    assert rules.direct_key(2, 10) == "2:10"


def test_only_a_bot_members_access_changes_and_only_to_another_value() -> None:
    assert rules.changes_access(("addressed", "bot"), rules.ALL)
    assert not rules.changes_access(("all", "bot"), rules.ALL)  # nothing to write
    with pytest.raises(Invalid, match="only a bot member"):
        rules.changes_access(("all", "user"), rules.ADDRESSED)
    with pytest.raises(NotFound):
        rules.changes_access(None, rules.ALL)
