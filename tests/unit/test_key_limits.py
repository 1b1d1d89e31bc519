"""The key directory's and the to-device queue's limits (chatd.core.keys), without a database."""

from __future__ import annotations

import pytest

from chatd.core import keys
from chatd.core.consent import Quota
from chatd.errors import Conflict, Invalid, RateLimited


def test_the_pool_takes_uploads_up_to_its_size_counting_what_it_holds() -> None:
    keys.check_pool(0, 100, 100)
    keys.check_pool(60, 40, 100)
    with pytest.raises(Invalid, match=r"at most 100 one-time prekeys \(60 unclaimed, 41 new\)"):
        keys.check_pool(60, 41, 100)
    with pytest.raises(Invalid):
        keys.check_pool(101, 0, 100)  # a smaller limit after a restart refuses even nothing new


def test_a_device_list_replaces_only_a_lower_version() -> None:
    keys.check_version(None, 1)
    keys.check_version(3, 4)
    with pytest.raises(Conflict, match="version 3 is not above the stored 3"):
        keys.check_version(3, 3)  # a replay
    with pytest.raises(Conflict):
        keys.check_version(3, 2)


def test_a_queue_refuses_the_item_that_would_pass_its_depth() -> None:
    keys.check_queue(7, 9, 10)
    with pytest.raises(RateLimited, match="device 7 has 10 items queued"):
        keys.check_queue(7, 10, 10)


@pytest.mark.parametrize(
    ("items", "size", "body", "fits"),
    [
        (0, 0, 100, True),
        (2, 0, 1, True),
        (3, 0, 1, False),
        (0, 900, 100, True),
        (0, 900, 101, False),
    ],
)
def test_a_senders_quota_counts_its_items_and_bytes_with_the_new_one(
    items: int, size: int, body: int, fits: bool
) -> None:
    quota = Quota(items=3, bytes=1000)
    if fits:
        keys.check_quota(quota, items, size, body)
    else:
        with pytest.raises(RateLimited, match=f"you have {items} items"):
            keys.check_quota(quota, items, size, body)
