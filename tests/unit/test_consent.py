"""The consent table (chatd.core.consent; SPEC.md 18.2), row by row."""

from __future__ import annotations

import pytest

from chatd.core import consent as C

BLOCKED = C.Relation(blocked=True, contact=True, shares=True)
CONTACT = C.Relation(contact=True)
SHARES = C.Relation(shares=True)


@pytest.mark.parametrize("kind", ["direct", "group", "channel"])
@pytest.mark.parametrize("setting", C.SETTINGS)
def test_a_blocked_actor_places_nobody_whatever_the_setting(kind: str, setting: C.Setting) -> None:
    assert C.placement(kind, setting, BLOCKED) == "refused"


@pytest.mark.parametrize(
    ("setting", "rel", "direct", "group"),
    [
        ("contacts", C.STRANGER, "request", "request"),
        ("contacts", SHARES, "request", "request"),
        ("contacts", CONTACT, "member", "member"),
        ("everyone", C.STRANGER, "member", "member"),
        ("nobody", C.STRANGER, "request", "request"),
        ("nobody", CONTACT, "member", "request"),
    ],
)
def test_placement_follows_add_me_and_a_contact_may_always_message(
    setting: C.Setting, rel: C.Relation, direct: str, group: str
) -> None:
    assert C.placement("direct", setting, rel) == direct
    assert C.placement("group", setting, rel) == group
    assert C.placement("channel", setting, rel) == group


@pytest.mark.parametrize("setting", C.SETTINGS)
def test_a_bot_is_placed_as_a_member_unless_it_blocked_the_actor(setting: C.Setting) -> None:
    assert C.placement("group", setting, C.STRANGER, bot=True) == "member"
    assert C.placement("group", setting, BLOCKED, bot=True) == "refused"


def test_the_default_setting_is_contacts() -> None:
    assert C.Privacy() == C.Privacy("contacts", "contacts", "contacts")


@pytest.mark.parametrize(
    ("presence", "last_seen", "rel", "sees", "sees_last"),
    [
        ("contacts", "contacts", C.STRANGER, False, False),
        ("contacts", "contacts", SHARES, False, False),
        ("contacts", "contacts", CONTACT, True, True),
        ("contacts", "nobody", CONTACT, True, False),
        ("everyone", "contacts", SHARES, True, False),
        ("everyone", "everyone", SHARES, True, True),
        ("nobody", "everyone", CONTACT, False, False),
        ("everyone", "everyone", BLOCKED, False, False),
    ],
)
def test_presence_and_last_seen_follow_their_settings(
    presence: C.Setting, last_seen: C.Setting, rel: C.Relation, sees: bool, sees_last: bool
) -> None:
    p = C.Privacy(presence=presence, last_seen=last_seen)
    assert C.sees_presence(p, rel) is sees
    assert C.sees_last_seen(p, rel) is sees_last


@pytest.mark.parametrize(
    ("find_me", "rel", "finds"),
    [
        ("everyone", C.STRANGER, True),
        ("everyone", SHARES, True),
        ("everyone", BLOCKED, False),
        ("contacts", C.STRANGER, False),
        ("contacts", SHARES, False),
        ("contacts", CONTACT, True),
        ("contacts", C.Relation(blocked=True, contact=True), False),
        ("nobody", CONTACT, False),
    ],
)
def test_may_find_follows_find_me_and_never_lets_a_blocked_account_in(
    find_me: C.Setting, rel: C.Relation, finds: bool
) -> None:
    assert C.may_find(C.Privacy(find_me=find_me), rel) is finds


def test_find_me_defaults_to_everyone_so_a_stranger_can_start_a_conversation() -> None:
    assert C.Privacy().find_me == "everyone"
    assert C.may_find(C.Privacy(), C.STRANGER)


def test_check_setting_refuses_anything_else() -> None:
    assert C.check_setting("nobody") == "nobody"
    with pytest.raises(ValueError, match="everyone, contacts or nobody"):
        C.check_setting("friends")


def test_to_device_quota_is_small_for_strangers_and_none_when_blocked() -> None:
    big, small = C.Quota(1000, 1 << 23), C.Quota(32, 1 << 18)
    assert C.to_device_quota(BLOCKED, big, small) is None
    assert C.to_device_quota(C.STRANGER, big, small) == small
    assert C.to_device_quota(SHARES, big, small) == big
    assert C.to_device_quota(CONTACT, big, small) == big
    assert C.within(small, 31, 0, 100)
    assert not C.within(small, 32, 0, 100)
    assert not C.within(small, 0, (1 << 18) - 99, 100)


def test_a_window_spends_its_budget_then_refuses_until_the_period_ends() -> None:
    w = C.Window(budget=3, period=60.0)
    assert [w.take(7, 0.0) for _ in range(4)] == [True, True, True, False]
    assert w.take(8, 1.0)  # another key has its own budget
    assert not w.take(7, 59.9)
    assert w.take(7, 60.0)


def test_a_window_tracks_a_bounded_number_of_keys() -> None:
    w = C.Window(budget=1, period=60.0, max_keys=2)
    assert w.take(1, 0.0) and w.take(2, 0.0) and w.take(3, 0.0)
    assert w.take(1, 0.0)  # key 1 was the least recently used: forgotten, so a fresh budget
    assert not w.take(3, 0.0)


def test_a_window_spends_units_only_when_they_fit() -> None:
    w = C.Window(budget=100, period=60.0)
    assert w.take(1, 0.0, 60)
    assert not w.take(1, 1.0, 41)  # 60 + 41 > 100: nothing spent
    assert w.take(1, 1.0, 40)
    assert not w.take(1, 2.0)
