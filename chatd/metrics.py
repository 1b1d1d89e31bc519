"""Prometheus metrics, ``chatd_`` prefix, base units. One registry per app (tests run several)."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from chatd.broker.base import Broker


class HotCounters:
    """Plain integer counters for the per-delivery path, read by Prometheus at scrape time
    (a prometheus-client Counter takes a lock per increment; these cost one attribute add)."""

    __slots__ = ("created", "deliveries", "frames_in", "frames_in_created", "frames_out", "stored")

    def __init__(self) -> None:
        self.deliveries = 0
        self.frames_out = 0
        self.stored = 0
        """``chatd_messages_stored_total``: messages committed (resends not counted)."""
        self.frames_in: dict[type, int] = {}
        """``chatd_frames_in_total{type}``: frames received, by frame class."""
        self.frames_in_created: dict[type, float] = {}
        self.created = time.time()


class _HotCollector(Collector):
    def __init__(self, hot: HotCounters) -> None:
        self._hot = hot

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "chatd_frames_out",
            "Frames written to clients (deliveries included)",
            value=self._hot.frames_out,
        )
        yield CounterMetricFamily(
            "chatd_deliveries",
            "Stored messages written to recipients' sockets",
            value=self._hot.deliveries,
        )
        # Same samples as the prometheus-client Counters these were (``_total`` and
        # ``_created``, per label for frames_in).
        stored = CounterMetricFamily(
            "chatd_messages_stored", "Messages committed (resends not counted)"
        )
        stored.add_metric([], self._hot.stored, created=self._hot.created)
        yield stored
        frames_in = CounterMetricFamily(
            "chatd_frames_in", "Frames received from clients", labels=["type"]
        )
        created = self._hot.frames_in_created
        for kind, count in list(self._hot.frames_in.items()):
            frames_in.add_metric([kind.__name__], count, created=created.get(kind))
        yield frames_in


def _le(bound: float) -> str:
    """A bucket's ``le`` label as prometheus-client writes it."""
    return str(floatToGoString(bound))  # type: ignore[no-untyped-call]


class HotHistogram(Collector):
    """A histogram without labels observed on the hot path (once per group commit): the same
    samples as prometheus-client's ``Histogram`` (``_bucket``, ``_count``, ``_sum``,
    ``_created``) made at scrape time, while ``observe`` is a bisect and two adds. The
    library's takes two locks and walks every bucket per observation: ~9,500 instructions,
    ~4% of a direct message at the low rates where a commit holds one or two."""

    __slots__ = ("_bounds", "_counts", "_created", "_doc", "_name", "_sum")

    def __init__(self, name: str, doc: str, buckets: Sequence[float]) -> None:
        self._name = name
        self._doc = doc
        self._bounds = [float(b) for b in buckets]
        self._counts = [0] * (len(self._bounds) + 1)  # the last: above every bound (+Inf)
        self._sum = 0.0
        self._created = time.time()

    def observe(self, amount: float) -> None:
        self._counts[bisect_left(self._bounds, amount)] += 1
        self._sum += amount

    def collect(self) -> Iterator[Metric]:
        family = Metric(self._name, self._doc, "histogram")
        total = 0
        for bound, count in zip([*self._bounds, float("inf")], self._counts, strict=True):
            total += count
            family.samples.append(Sample(f"{self._name}_bucket", {"le": _le(bound)}, float(total)))
        family.samples.append(Sample(f"{self._name}_count", {}, float(total)))
        family.samples.append(Sample(f"{self._name}_sum", {}, self._sum))
        family.samples.append(Sample(f"{self._name}_created", {}, self._created))
        yield family


class _BrokerCollector(Collector):
    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    def collect(self) -> Iterator[Metric]:
        b = self._broker
        s = b.stats
        yield CounterMetricFamily(
            "chatd_broker_published",
            "Envelopes handed to the broker's transport (Redis accepted them)",
            value=s.published,
        )
        yield CounterMetricFamily(
            "chatd_broker_received",
            "Envelopes the broker dispatched to this node's hub",
            value=s.received,
        )
        yield CounterMetricFamily(
            "chatd_broker_dropped",
            "Envelopes lost by this node's broker (buffer bound, failed send, shutdown)",
            value=s.dropped,
        )
        yield GaugeMetricFamily(
            "chatd_broker_up", "1 while the broker is connected and subscribed", value=b.healthy()
        )
        if b.remote:
            st = b.statistics()
            yield GaugeMetricFamily(
                "chatd_broker_pending",
                "Envelopes buffered for Redis, not yet handed to it",
                value=st.pending,
            )
            yield CounterMetricFamily(
                "chatd_broker_flushes",
                "Pipelines of envelopes written to Redis (one write each; heartbeats alone apart)",
                value=st.flushes or 0,
            )
            if st.lag is not None:
                yield GaugeMetricFamily(
                    "chatd_broker_lag_last_seconds",
                    "The latest heartbeat's round trip through Redis (or the age of the one"
                    " still outstanding, when larger)",
                    value=st.lag,
                )


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.node_info = Gauge(
            "chatd_node_info",
            "This node's id and version (value 1)",
            ["node", "version"],
            registry=r,
        )
        self.ready = Gauge(
            "chatd_ready",
            "1 while /readyz answers 200 (store reachable, not draining): keep it in rotation",
            registry=r,
        )
        self.degraded = Gauge(
            "chatd_degraded",
            "1 while the node serves with a dependency down (the broker): in rotation, alert",
            registry=r,
        )
        self.draining = Gauge(
            "chatd_draining", "1 from SIGTERM until the process exits", registry=r
        )
        self.connections = Gauge(
            "chatd_connections", "Open WebSocket connections", ["state"], registry=r
        )
        self.hot = HotCounters()
        """Also ``chatd_frames_in_total`` and ``chatd_messages_stored_total`` (per message)."""
        r.register(_HotCollector(self.hot))
        self.pushes = Counter(
            "chatd_pushes_total",
            "Web Push outcomes (SPEC.md 21): sent, failed (given up), gone (the push service said"
            " 404/410: subscription deleted), retried, dropped (queue full), limited (the device's"
            " window or hourly cap), skipped (online again before it left)",
            ["outcome"],
            registry=r,
        )
        self.payments = Counter(
            "chatd_payments_total",
            "Ledger postings answered, by type; replay: an id posted before, answered again"
            " (refusals are in chatd_errors_total by code)",
            ["type", "replay"],
            registry=r,
        )
        self.invite_links = Counter(
            "chatd_invite_links_total",
            "Invite links (SPEC.md 19): created, revoked, joined (admitted through one), requested"
            " (a join request filed), approved, declined; unusable links and guesses over the"
            " budget are in chatd_errors_total (LINK_INVALID, RATE_LIMITED)",
            ["event"],
            registry=r,
        )
        self.errors = Counter(
            "chatd_errors_total", "Error frames sent, by code", ["code"], registry=r
        )
        self.slow_consumers = Counter(
            "chatd_slow_consumer_disconnects_total",
            "Connections dropped as slow consumers",
            registry=r,
        )
        self.commit_seconds = HotHistogram(
            "chatd_store_commit_seconds",
            "Duration of one group-commit transaction",
            (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
        )
        r.register(self.commit_seconds)
        self.batch_size = HotHistogram(
            "chatd_store_batch_size",
            "Writes per group commit",
            (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
        )
        r.register(self.batch_size)
        latency = (0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 1.0)
        self.write_wait_seconds = HotHistogram(
            "chatd_store_wait_seconds",
            "Time a write waited in the queue before its group commit started (the commit"
            " window, and a commit still running)",
            latency,
        )
        r.register(self.write_wait_seconds)
        self.write_done_seconds = HotHistogram(
            "chatd_store_done_seconds",
            "Time from a write queued to its commit done, its callbacks run and the outbox"
            " flushed (a message: its send read -> its ack and deliveries written)",
            latency,
        )
        r.register(self.write_done_seconds)

        # Media (chatd/media): SPEC.md 17.
        self.media_stored_bytes = Gauge(
            "chatd_media_stored_bytes", "Bytes of blobs held (as of the last sweep)", registry=r
        )
        self.media_uploads = Gauge(
            "chatd_media_uploads_in_progress", "Upload requests (PATCH) being received", registry=r
        )
        self.media_bytes = Counter(
            "chatd_media_bytes_total", "Blob bytes received and sent", ["direction"], registry=r
        )
        self.media_sweeps = Counter(
            "chatd_media_sweeper_runs_total", "Media sweeper runs", registry=r
        )
        self.media_deleted = Counter(
            "chatd_media_blobs_deleted_total", "Blobs the sweeper deleted", registry=r
        )

    def watch_broker(self, broker: Broker) -> None:
        """Export the broker's counters and health (read at scrape time); for Redis also its
        buffer and the lag its heartbeats measure (``chatd_broker_lag_seconds``)."""
        self.registry.register(_BrokerCollector(broker))
        if broker.remote:
            lag = Histogram(
                "chatd_broker_lag_seconds",
                "Round trip of a heartbeat this node publishes to itself through Redis: the"
                " time a published envelope takes to reach another node's hub",
                buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
                registry=self.registry,
            )
            broker.on_lag = lag.observe

    def node(self, node_id: str, version: str) -> None:
        """``chatd_node_info{node, version} 1``: which node and build a scrape came from."""
        self.node_info.clear()
        self.node_info.labels(node=node_id, version=version).set(1)

    def frame_in(self, frame_type: type) -> None:
        """Count one received frame (a plain counter: no lock, no labels() lookup)."""
        counts = self.hot.frames_in
        count = counts.get(frame_type)
        if count is None:
            self.hot.frames_in_created[frame_type] = time.time()
            count = 0
        counts[frame_type] = count + 1

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.commit_seconds.observe(seconds)

    def observe_write(self, waited: float, done: float) -> None:
        self.write_wait_seconds.observe(waited)
        self.write_done_seconds.observe(done)

    def render(self) -> bytes:
        return generate_latest(self.registry)
