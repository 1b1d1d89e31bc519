"""The loop every periodic sweeper of a node runs (refunds, renewals, suspensions): sweep now,
then every ``interval`` seconds until stopped, logging a failed sweep and trying again next time
(the store may be unavailable for a while; a sweep is idempotent, so running late or twice is
harmless). The task running it belongs to the app's TaskGroup."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from chatd.errors import ChatdError

log = logging.getLogger(__name__)


async def sweep_until(
    stop: asyncio.Event, sweep: Callable[[], Awaitable[object]], interval: float, what: str
) -> None:
    """Run ``sweep`` at once and then every ``interval`` seconds until ``stop`` is set."""
    while not stop.is_set():
        try:
            await sweep()
        except ChatdError as exc:  # the store is unavailable: try again next time
            log.warning(f"{what} sweep failed", extra={"error": exc.message})
        except Exception:
            log.exception(f"{what} sweep failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
