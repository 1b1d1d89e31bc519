"""The rules of comment moderation and view tags (``chatd.core.channel_moderation``, SPEC.md
20.9), with time passed in: a ban holds until its end, slow mode says exactly how long to wait
(never more than its interval, even when the clock stepped back), admins pass everything, and a
view tag is a pinned HMAC of (account, channel, seq)."""

from __future__ import annotations

import pytest

from chatd.core.channel_moderation import (
    ban_active,
    check_ban,
    check_comment,
    check_slow_mode,
    view_tag,
)
from chatd.errors import Forbidden, Invalid, RateLimited

NOW = 1_700_000_000_000


def comment(**kw: object) -> None:
    args: dict[str, object] = {
        "is_admin": False,
        "banned": False,
        "ban_until": 0,
        "last_comment": 0,
        "slow_mode": 0,
        "now": NOW,
        "commenting": True,
    }
    args.update(kw)
    check_comment(**args)  # type: ignore[arg-type]


def test_a_ban_holds_until_its_end_or_forever() -> None:
    assert ban_active(True, 0, NOW)
    assert ban_active(True, NOW + 1, NOW)
    assert not ban_active(True, NOW, NOW)
    assert not ban_active(False, 0, NOW)
    with pytest.raises(Forbidden):
        comment(banned=True)
    with pytest.raises(Forbidden):  # a reaction too
        comment(banned=True, ban_until=NOW + 1, commenting=False)
    comment(banned=True, ban_until=NOW)  # ended
    comment(is_admin=True, banned=True)  # an admin is never held by one


def test_slow_mode_says_how_long_to_wait() -> None:
    comment(slow_mode=30)  # no earlier comment
    with pytest.raises(RateLimited) as refused:
        comment(slow_mode=30, last_comment=NOW - 10_000)
    assert refused.value.retry_after == 20.0
    with pytest.raises(RateLimited) as back:  # the clock stepped back: at most the interval
        comment(slow_mode=30, last_comment=NOW + 60_000)
    assert back.value.retry_after == 30.0
    comment(slow_mode=30, last_comment=NOW - 30_000)
    comment(slow_mode=30, last_comment=NOW - 1, commenting=False)  # reactions are not slowed
    comment(slow_mode=30, last_comment=NOW - 1, is_admin=True)
    comment(slow_mode=0, last_comment=NOW - 1)


def test_only_admins_ban_or_slow_and_never_an_admin() -> None:
    check_ban(actor_admin=True, target_admin=False, until=0, now=NOW)
    check_ban(actor_admin=True, target_admin=False, until=NOW + 1, now=NOW)
    with pytest.raises(Forbidden):
        check_ban(actor_admin=False, target_admin=False, until=0, now=NOW)
    with pytest.raises(Forbidden):
        check_ban(actor_admin=True, target_admin=True, until=0, now=NOW)
    with pytest.raises(Invalid):
        check_ban(actor_admin=True, target_admin=False, until=NOW, now=NOW)
    check_slow_mode(actor_admin=True, seconds=3600)
    with pytest.raises(Forbidden):
        check_slow_mode(actor_admin=False, seconds=0)
    with pytest.raises(Invalid):
        check_slow_mode(actor_admin=True, seconds=3601)


def test_a_view_tag_is_pinned_and_differs_per_account_and_post() -> None:
    secret = bytes(range(32))
    assert view_tag(secret, 1, 7, 1).hex() == "3dba6567f0d49002f4772aa535278cc6"
    tags = {view_tag(secret, a, c, s) for a in (1, 2) for c in (7, 8) for s in (1, 2)}
    assert len(tags) == 8
    assert view_tag(bytes(32), 1, 7, 1) != view_tag(secret, 1, 7, 1)
