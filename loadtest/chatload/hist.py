"""Latency histograms: HdrHistogram in microseconds, encoded by workers and merged by the
coordinator (``encode`` / ``decode_and_add``), so percentiles are over every sample of every
worker, not an average of per-worker percentiles."""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour
SIG_FIGS = 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


class Latency:
    """One latency distribution in microseconds (values are clamped into the trackable range)."""

    __slots__ = ("h",)

    def __init__(self) -> None:
        self.h: Any = HdrHistogram(LOWEST_US, HIGHEST_US, SIG_FIGS)

    def record_us(self, us: int) -> None:
        self.h.record_value(min(max(us, LOWEST_US), HIGHEST_US))

    def record_ns(self, ns: int) -> None:
        self.record_us(ns // 1000)

    @property
    def count(self) -> int:
        return int(self.h.get_total_count())

    def encode(self) -> bytes:
        """Compressed HdrHistogram V2 encoding (base64 bytes); empty histogram -> b""."""
        return b"" if self.count == 0 else bytes(self.h.encode())

    def add_encoded(self, data: bytes) -> None:
        if data:
            self.h.decode_and_add(data)

    def add(self, other: Latency) -> None:
        if other.count:
            self.h.add(other.h)

    def reset(self) -> None:
        self.h.reset()

    def percentile_ms(self, p: float) -> float | None:
        if self.count == 0:
            return None
        return float(self.h.get_value_at_percentile(p)) / 1000.0

    def max_ms(self) -> float | None:
        return None if self.count == 0 else float(self.h.get_max_value()) / 1000.0

    def summary(self) -> dict[str, float | int | None]:
        """count, p50/p90/p99/p99.9/max in milliseconds (None when empty)."""
        out: dict[str, float | int | None] = {"count": self.count}
        for p in PERCENTILES:
            out[pkey(p)] = _r(self.percentile_ms(p))
        out["max_ms"] = _r(self.max_ms())
        out["mean_ms"] = (
            None if self.count == 0 else round(float(self.h.get_mean_value()) / 1000, 3)
        )
        return out


def pkey(p: float) -> str:
    """50 -> 'p50_ms', 99.9 -> 'p999_ms'."""
    return "p" + f"{p:g}".replace(".", "") + "_ms"


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def merge(encoded: list[bytes]) -> Latency:
    out = Latency()
    for e in encoded:
        out.add_encoded(e)
    return out
