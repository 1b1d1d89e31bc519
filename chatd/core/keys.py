"""The limits of the key directory and the to-device queue, as plain code: the store reads the
counts inside the write's own transaction (under the device's lock) and asks these. Each raises
the server's domain error with its wire code, or returns None.
"""

from __future__ import annotations

from chatd.core.consent import Quota, within
from chatd.errors import Conflict, Invalid, RateLimited


def check_pool(held: int, added: int, max_one_time: int) -> None:
    """A device holds at most ``max_one_time`` unclaimed one-time prekeys: the ``held`` ones
    and the ``added`` ones of an upload (kids it does not hold yet) together."""
    if held + added > max_one_time:
        raise Invalid(
            f"a device holds at most {max_one_time} one-time prekeys"
            f" ({held} unclaimed, {added} new)"
        )


def check_version(stored: int | None, version: int) -> None:
    """A signed device list replaces the stored one (its version ``stored``; None: there is
    none) only with a higher ``version``: an older or replayed list is ``Conflict``."""
    if stored is not None and stored >= version:
        raise Conflict(f"version {version} is not above the stored {stored}")


def check_queue(device: int, queued: int, max_queued: int) -> None:
    """A device's to-device queue holds at most ``max_queued`` items (``queued`` now) until
    the device fetches and acks them."""
    if queued >= max_queued:
        raise RateLimited(f"device {device} has {queued} items queued; retry later")


def check_quota(quota: Quota, items: int, size: int, body: int) -> None:
    """One sender's items for one device (``items`` of ``size`` bytes queued now) and one more
    of ``body`` bytes stay within the sender's ``quota`` (``core.consent.to_device_quota``)."""
    if not within(quota, items, size, body):
        raise RateLimited(
            f"you have {items} items ({size} bytes) queued for this device: wait for it"
            " to fetch them"
        )
