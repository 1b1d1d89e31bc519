"""Aggregation of worker reports, the live view, the summary table, JSON/CSV/PNG output and
``--fail-if`` thresholds."""

from __future__ import annotations

import csv
import json
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .hist import Latency, pkey
from .proto import CUM_KEYS, error_name

SATURATED_PCT = 90.0


@dataclass
class Aggregator:
    """Merges per-worker interval reports into one row per second, and keeps totals."""

    workers: int
    intervals: list[dict[str, Any]] = field(default_factory=list)
    _pending: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    acked_by_conv: dict[int, dict[int, int]] = field(default_factory=dict)  # worker -> conv -> n
    unacked: dict[int, int] = field(default_factory=dict)
    cum: dict[str, int] = field(default_factory=dict)
    server_samples: dict[int, dict[str, float]] = field(default_factory=dict)

    def add(self, rep: dict[str, Any]) -> dict[str, Any] | None:
        """Add one worker's interval; returns the merged row when every worker has reported it."""
        w = int(rep["worker"])
        self.acked_by_conv[w] = {int(k): int(v) for k, v in rep["acked_by_conv"].items()}
        self.unacked[w] = int(rep.get("unacked", 0))
        for key in CUM_KEYS:
            self.cum[key] = self.cum.get(key, 0) + int(rep.get(key, 0))
        k = int(rep["k"])
        got = self._pending.setdefault(k, [])
        got.append(rep)
        if len(got) < self.workers:
            return None
        del self._pending[k]
        return self._merge(k, got)

    def flush(self) -> list[dict[str, Any]]:
        """Merge the intervals some workers never reported (the last, partial one of a worker
        that stopped before its next report): the per-second rows then sum to the totals."""
        rows = [self._merge(k, self._pending.pop(k)) for k in sorted(self._pending)]
        self.intervals.sort(key=lambda r: r["t"])
        return rows

    def _merge(self, k: int, reps: list[dict[str, Any]]) -> dict[str, Any]:
        ack, dl = Latency(), Latency()
        row: dict[str, Any] = {"t": k}
        # an interval is 1 s long, but the last one of a run ends when the run does
        row["seconds"] = round(max(float(r.get("seconds", 1.0)) for r in reps), 3)
        for key in (*CUM_KEYS, "conns", "conns_low"):
            if key != "dup_acks":
                row[key] = sum(int(r.get(key, 0)) for r in reps)
        errors: dict[str, int] = {}
        for r in reps:
            ack.add_encoded(r["ack_hist"])
            dl.add_encoded(r["del_hist"])
            for code, n in r["errors"].items():
                name = error_name(code)
                errors[name] = errors.get(name, 0) + int(n)
        row["errors"] = errors
        row["error_count"] = sum(errors.values())
        row["ack_p50_ms"] = ack.percentile_ms(50)
        row["ack_p99_ms"] = ack.percentile_ms(99)
        row["deliver_p50_ms"] = dl.percentile_ms(50)
        row["deliver_p99_ms"] = dl.percentile_ms(99)
        cpus = [100.0 * float(r["cpu_s"]) for r in reps]
        row["gen_cpu_pct_max"] = round(max(cpus), 1)
        row["gen_cpu_pct_total"] = round(sum(cpus), 1)
        row["generator_saturated"] = max(cpus) >= SATURATED_PCT
        srv = self.server_samples.get(k)
        if srv:
            row.update(srv)
        self.intervals.append(row)
        return row

    def expected_deliveries(self, conv_members: dict[int, int]) -> int:
        acked: dict[int, int] = {}
        for per in self.acked_by_conv.values():
            for conv, n in per.items():
                acked[conv] = acked.get(conv, 0) + n
        return sum(n * (conv_members.get(conv, 1) - 1) for conv, n in acked.items())


# --------------------------------------------------------------------------- live view


def live_table(row: dict[str, Any], title: str) -> Table:
    t = Table(title=title, expand=False)
    for col in (
        "t s", "conns", "sent/s", "acks/s", "deliv/s", "ack p50/p99 ms", "deliv p50/p99 ms",
        "errors", "reconn", "gen CPU", "server CPU",
    ):  # fmt: skip
        t.add_column(col, justify="right")
    t.add_row(*live_cells(row))
    return t


def live_cells(row: dict[str, Any]) -> list[str]:
    errs = ", ".join(f"{k}:{v}" for k, v in row.get("errors", {}).items()) or "0"
    gen = f"{row.get('gen_cpu_pct_max', 0):.0f}%"
    if row.get("generator_saturated"):
        gen += " SATURATED"
    srv = row.get("server_cpu_pct")
    return [
        str(row["t"]),
        str(row.get("conns", "")),
        str(row.get("sent", "")),
        str(row.get("acks", "")),
        str(row.get("delivers", "")),
        f"{fmt_ms(row.get('ack_p50_ms'))}/{fmt_ms(row.get('ack_p99_ms'))}",
        f"{fmt_ms(row.get('deliver_p50_ms'))}/{fmt_ms(row.get('deliver_p99_ms'))}",
        errs,
        str(row.get("reconnects", "")),
        gen,
        "-" if srv is None else f"{srv:.0f}%",
    ]


def fmt_ms(v: float | None) -> str:
    return "-" if v is None else (f"{v:.1f}" if v < 100 else f"{v:.0f}")


class Live:
    """Rich live view refreshed each second; on a non-terminal, one plain line per second."""

    def __init__(self, console: Console, title: str, quiet: bool = False) -> None:
        self.console, self.title, self.quiet = console, title, quiet
        self.live: Any = None
        self.rows: list[dict[str, Any]] = []

    def __enter__(self) -> Live:
        if not self.quiet and self.console.is_terminal:
            from rich.live import Live as RichLive

            self.live = RichLive(console=self.console, refresh_per_second=2, transient=False)
            self.live.__enter__()
        return self

    def update(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self.quiet:
            return
        if self.live is not None:
            t = Table(title=self.title)
            for col in (
                "t s", "conns", "sent/s", "acks/s", "deliv/s", "ack p50/p99 ms",
                "deliv p50/p99 ms", "errors", "reconn", "gen CPU", "server CPU",
            ):  # fmt: skip
                t.add_column(col, justify="right")
            for r in self.rows[-10:]:
                t.add_row(*live_cells(r))
            self.live.update(t)
        else:
            c = live_cells(row)
            self.console.print(
                f"t={c[0]:>3}s conns={c[1]} sent={c[2]}/s acks={c[3]}/s deliv={c[4]}/s"
                f" ack p50/p99={c[5]} ms deliv p50/p99={c[6]} ms errors={c[7]} reconn={c[8]}"
                f" gen={c[9]} server={c[10]}",
                highlight=False,
            )

    def note(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, highlight=False)

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)


# --------------------------------------------------------------------------- summary


def summary_table(result: dict[str, Any]) -> Table:
    s = result["summary"]
    t = Table(title=f"chatload {result['scenario']['name']}: latency from intended send time")
    t.add_column("latency", justify="left")
    for col in ("count", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"):
        t.add_column(col, justify="right")
    for name, key in (("send -> ack", "ack"), ("send -> deliver", "deliver")):
        h = s[key]
        t.add_row(
            name,
            f"{h['count']:,}",
            *(fmt_ms(h[pkey(p)]) for p in (50, 90, 99, 99.9)),
            fmt_ms(h["max_ms"]),
        )
    return t


def totals_table(result: dict[str, Any]) -> Table:
    s = result["summary"]
    t = Table(title="totals")
    t.add_column("figure")
    t.add_column("value", justify="right")
    rows = [
        ("sent", f"{s['sent']:,}"),
        ("acked", f"{s['acked']:,}"),
        ("delivered", delivered_cell(s)),
        ("lost (deliveries) / unacked / failed", f"{s['lost']} / {s['unacked']} / {s['failed']}"),
        ("duplicates (deliveries / acks)", f"{s['duplicates']} / {s['dup_acks']}"),
        (
            "seqs a sync sent again / own messages in a sync (allowed, SPEC 7.4)",
            f"{s.get('sync_overlaps', 0)} / {s.get('own_in_sync', 0)}",
        ),
        ("errors", ", ".join(f"{k}: {v}" for k, v in s["errors"].items()) or "0"),
        ("reconnects", str(s["reconnects"])),
        (
            "connections held (max / steady min)",
            f"{s.get('connections_held', 0):,} / {s.get('connections_held_steady_min', 0):,}",
        ),
        ("steady window", f"{s['window_s']:.1f} s"),
        ("acked msgs/s (steady)", f"{s['acked_per_s']:,.1f}"),
        ("deliveries/s (steady)", f"{s['deliveries_per_s']:,.1f}"),
        ("generator CPU (busiest worker, steady)", f"{s['gen_cpu_pct_max']:.0f}%"),
    ]
    srv = result.get("server")
    if srv:
        rows += [
            ("server CPU (steady)", f"{srv['cpu_pct']:.0f}%"),
            ("server CPU µs / accepted msg", fmt_num(srv["us_per_msg"])),
            ("server CPU µs / delivery", fmt_num(srv["us_per_delivery"])),
            ("server RSS", f"{srv['rss_mb']:.1f} MiB"),
        ]
    rows.append(("saturated", s["saturated"]))
    for k, v in rows:
        t.add_row(k, v)
    return t


def delivered_cell(s: dict[str, Any]) -> str:
    n = int(s.get("delivered_of_unacked", 0))
    cell = f"{s['delivered'] - n:,} of {s['expected_deliveries']:,} expected"
    return cell + (f" (+{n:,} of messages whose ack never came)" if n else "")


def fmt_num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.1f}"


def saturation(gen_pct: float, server_pct: float | None) -> str:
    if gen_pct >= SATURATED_PCT and (server_pct is None or gen_pct >= server_pct):
        return f"generator (busiest worker {gen_pct:.0f}% of its core): add workers or cores"
    if server_pct is not None and server_pct >= SATURATED_PCT:
        return f"server ({server_pct:.0f}% of its core)"
    srv = "" if server_pct is None else f", server {server_pct:.0f}%"
    return f"neither (generator {gen_pct:.0f}%{srv})"


# --------------------------------------------------------------------------- files


CSV_COLUMNS = [
    "t", "seconds", "conns", "sent", "acks", "delivers", "dup_delivers", "failed", "reconnects",
    "error_count", "ack_p50_ms", "ack_p99_ms", "deliver_p50_ms", "deliver_p99_ms",
    "gen_cpu_pct_max", "gen_cpu_pct_total", "server_cpu_pct", "server_rss_mb", "own",
    "sync_overlaps", "errors",
]  # fmt: skip


def write_json(result: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(result, indent=2, default=str) + "\n")


def write_csv(result: dict[str, Any], path: str | Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for row in result["intervals"]:
            w.writerow(
                [
                    ";".join(f"{k}={v}" for k, v in row.get(c, {}).items())
                    if c == "errors"
                    else ("" if row.get(c) is None else row.get(c))
                    for c in CSV_COLUMNS
                ]
            )


def write_plot(result: dict[str, Any], path: str | Path) -> None:
    """Two panels sharing the time axis: throughput (acked msgs/s, deliveries/s, sent/s) and
    latency (p50/p99 of ack and delivery, log scale), with the steady window shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["intervals"]
    t = [r["t"] for r in rows]
    s = result["summary"]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True, constrained_layout=True)
    name = result["scenario"]["name"]
    srv = result.get("server") or {}
    sub = (
        f"acked {s['acked_per_s']:,.0f} msgs/s, {s['deliveries_per_s']:,.0f} deliveries/s (steady)"
    )
    if srv.get("us_per_msg") is not None:
        sub += f" · server {srv['us_per_msg']:.0f} µs/msg, {srv['us_per_delivery']:.1f} µs/delivery"
    sub += f" · lost {s['lost']} · errors {s['error_count']}"
    fig.suptitle(f"chatload {name}\n{sub}", fontsize=12)
    ax1.plot(t, [r["sent"] for r in rows], label="sent msgs/s", color="tab:gray", ls="--")
    ax1.plot(t, [r["acks"] for r in rows], label="acked msgs/s", color="tab:blue", lw=2)
    ax1.set_ylabel("messages / s")
    ax1.grid(alpha=0.3)
    ax1b = ax1.twinx()
    ax1b.plot(t, [r["delivers"] for r in rows], label="deliveries/s", color="tab:green", lw=2)
    ax1b.set_ylabel("deliveries / s", color="tab:green")
    lines = ax1.get_lines() + ax1b.get_lines()
    ax1.legend(lines, [ln.get_label() for ln in lines], loc="lower right")
    ax1.set_ylim(bottom=0)
    ax1b.set_ylim(bottom=0)

    def series(key: str) -> list[float]:
        return [math.nan if r.get(key) is None else r[key] for r in rows]

    ax2.plot(t, series("deliver_p50_ms"), label="deliver p50", color="tab:green")
    ax2.plot(t, series("deliver_p99_ms"), label="deliver p99", color="tab:green", ls="--")
    ax2.plot(t, series("ack_p50_ms"), label="ack p50", color="tab:blue")
    ax2.plot(t, series("ack_p99_ms"), label="ack p99", color="tab:blue", ls="--")
    ax2.set_yscale("log")
    ax2.set_ylabel("latency from intended send, ms (log)")
    ax2.set_xlabel("seconds since start")
    ax2.grid(alpha=0.3, which="both")
    ax2.legend(loc="upper right", ncols=2)
    ramp = result["scenario"].get("ramp_up", 0)
    dur = result["scenario"].get("duration", 0)
    for ax in (ax1, ax2):
        ax.axvspan(ramp, dur, color="tab:orange", alpha=0.06, label="_steady")
    ax1.text(ramp, 0, " steady window", color="tab:orange", va="bottom", fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- thresholds

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_THRESH = re.compile(r"^\s*([a-z0-9_.]+)\s*(>=|<=|==|!=|>|<)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Threshold:
    metric: str
    op: str
    value: float
    text: str

    @classmethod
    def parse(cls, text: str) -> Threshold:
        m = _THRESH.match(text)
        if not m:
            raise ValueError(f"bad threshold {text!r}: use METRIC OP NUMBER, e.g. 'p99_ms>50'")
        metric, op, value = m.groups()
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; known: {', '.join(sorted(METRICS))}")
        return cls(metric, op, float(value), text.strip())

    def failed(self, result: dict[str, Any]) -> tuple[bool, float | None]:
        """(violated, the measured value). A missing latency (no samples) counts as violated."""
        v = metric_value(result, self.metric)
        if v is None:
            return True, None
        return _OPS[self.op](v, self.value), v


def _lat(kind: str, p: str) -> Callable[[dict[str, Any]], float | None]:
    def get(r: dict[str, Any]) -> float | None:
        v = r["summary"][kind][p]
        return None if v is None else float(v)

    return get


def _default_lat(p: str) -> Callable[[dict[str, Any]], float | None]:
    def get(r: dict[str, Any]) -> float | None:
        s = r["summary"]
        h = s["deliver"] if s["deliver"]["count"] else s["ack"]
        return None if h[p] is None else float(h[p])

    return get


METRICS: dict[str, Callable[[dict[str, Any]], float | None]] = {}
for _p in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms"):
    METRICS[_p] = _default_lat(_p)
    METRICS[f"ack_{_p}"] = _lat("ack", _p)
    METRICS[f"deliver_{_p}"] = _lat("deliver", _p)


def _summary(key: str) -> Callable[[dict[str, Any]], float | None]:
    def get(r: dict[str, Any]) -> float | None:
        v = r["summary"].get(key)
        return None if v is None else float(v)

    return get


def _server(key: str) -> Callable[[dict[str, Any]], float | None]:
    def get(r: dict[str, Any]) -> float | None:
        v = (r.get("server") or {}).get(key)
        return None if v is None else float(v)

    return get


METRICS["errors"] = _summary("error_count")
for _k in ("lost", "unacked", "failed", "duplicates", "reconnects", "acked_per_s"):
    METRICS[_k] = _summary(_k)
for _k in ("deliveries_per_s", "sent", "acked", "delivered"):
    METRICS[_k] = _summary(_k)
METRICS["server_us_per_msg"] = _server("us_per_msg")
METRICS["server_us_per_delivery"] = _server("us_per_delivery")


def metric_value(result: dict[str, Any], metric: str) -> float | None:
    return METRICS[metric](result)


def check_thresholds(
    thresholds: list[Threshold], result: dict[str, Any], console: Console | None = None
) -> int:
    """0 if every threshold holds, 1 otherwise (printing each violation)."""
    code = 0
    for th in thresholds:
        bad, v = th.failed(result)
        if bad:
            code = 1
            if console is not None:
                console.print(f"[red]FAIL[/] {th.text} (measured {v})")
        elif console is not None:
            console.print(f"[green]ok[/]   {th.text} (measured {v})")
    return code
