"""``chatd.metrics.HotHistogram``: a scrape shows what prometheus-client's ``Histogram`` shows."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from chatd.metrics import HotHistogram, Metrics

BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


def _scrape(registry: CollectorRegistry) -> str:
    # The creation time is the only sample that may differ (each was made at its own time).
    return re.sub(r"_created \S+", "_created T", generate_latest(registry).decode())


@given(
    st.lists(
        st.one_of(
            st.sampled_from(BUCKETS),  # on a bound: counted in that bucket (le)
            st.floats(min_value=0, max_value=10, allow_nan=False),
            st.integers(min_value=0, max_value=2000),
        ),
        max_size=50,
    )
)
def test_hot_histogram_scrapes_as_the_library_histogram(values: list[float]) -> None:
    library, hot = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("chatd_x_seconds", "doc", buckets=BUCKETS, registry=library)
    mine = HotHistogram("chatd_x_seconds", "doc", BUCKETS)
    hot.register(mine)
    for v in values:
        reference.observe(v)
        mine.observe(v)
    assert _scrape(hot) == _scrape(library)


def test_commit_histograms_are_scraped() -> None:
    m = Metrics()
    m.observe_batch(3, 0.0015)
    text = m.render().decode()
    assert 'chatd_store_batch_size_bucket{le="4.0"} 1.0' in text
    assert 'chatd_store_batch_size_bucket{le="2.0"} 0.0' in text
    assert "chatd_store_batch_size_sum 3.0" in text
    assert 'chatd_store_commit_seconds_bucket{le="0.002"} 1.0' in text
    assert "chatd_store_commit_seconds_count 1.0" in text
