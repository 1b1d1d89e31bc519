"""Time as a parameter: services take a ``Clock`` so tests can fix it."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock milliseconds since the Unix epoch (message timestamps)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a monotonic clock (rate limits, deadlines)."""
        ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    monotonic = staticmethod(time.monotonic)
    """``time.monotonic`` itself: no Python call around it (rate limits, once per message)."""
