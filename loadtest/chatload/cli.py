"""``chatload``: provision | run | worker | idle | record | replay. See loadtest/README.md."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from .report import (
    Threshold,
    check_thresholds,
    summary_table,
    totals_table,
    write_csv,
    write_json,
    write_plot,
)
from .scenario import Scenario


def _cpus(text: str | None) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()] if text else []


def _uvloop_run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(coro)
    return uvloop.run(coro)


def load_scenario(args: argparse.Namespace) -> Scenario:
    try:
        s = Scenario.load(args.scenario)
    except OSError as e:
        raise _BadInput(f"{args.scenario}: cannot read the scenario: {e.strerror or e}") from None
    except (ValueError, TypeError, KeyError) as e:  # TOML syntax (a ValueError) or content
        raise _BadInput(f"{args.scenario}: {e}") from None
    if getattr(args, "target", None):
        s = replace(s, targets=tuple(args.target))
    if getattr(args, "duration", None) is not None:
        s = replace(s, duration=args.duration)
    if getattr(args, "ramp_up", None) is not None:
        s = replace(s, ramp_up=args.ramp_up)
    if getattr(args, "churn", None) is not None:
        s = replace(s, churn_per_s=args.churn)
    scale = getattr(args, "rate_scale", None)
    if scale is not None and scale != 1.0:
        s = replace(
            s,
            blocks=tuple(
                replace(
                    b,
                    rate_total=None if b.rate_total is None else b.rate_total * scale,
                    rate_per_sender=None
                    if b.rate_per_sender is None
                    else b.rate_per_sender * scale,
                )
                for b in s.blocks
            ),
        )
    return s


def _outputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", metavar="FILE", help="write the result with per-second intervals")
    p.add_argument("--csv", metavar="FILE", help="write the per-second intervals as CSV")
    p.add_argument("--plot", metavar="PNG", help="throughput and latency over time (matplotlib)")
    p.add_argument(
        "--fail-if",
        action="append",
        default=[],
        metavar="EXPR",
        help="exit 1 if it holds, e.g. 'p99_ms>50', 'deliver_p99_ms>100', 'errors>0', 'lost>0'",
    )
    p.add_argument("--quiet", action="store_true", help="no live view")


def _server(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", action="append", help="ws URL (repeat: clients round-robin)")
    p.add_argument("--server-pid", type=int, help="local server pid: CPU and RSS from /proc")
    p.add_argument(
        "--spawn-server",
        action="store_true",
        help="start `chatd serve` on a free 127.0.0.1 port with a temp db and raised rate limits",
    )
    p.add_argument(
        "--server-cpu",
        type=int,
        default=0,
        help="core for --spawn-server (taskset -c); -1 = unpinned",
    )
    p.add_argument("--server-db", type=Path, help="db file for --spawn-server (kept)")
    p.add_argument("--synchronous", default="FULL", choices=("FULL", "NORMAL"))
    p.add_argument(
        "--cpu", help="pin the generator: worker w to core CPUS[w %% n] (comma list, e.g. 1)"
    )


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="chatload",
        description="Load tester for chatd: scenarios, record/replay, idle connections.",
    )
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("provision", help="register accounts and create conversations")
    p.add_argument("scenario")
    p.add_argument("--out", required=True, type=Path, help="provisioning JSON to write")
    p.add_argument("--target", action="append", help="ws URL (default: the scenario's)")

    p = sub.add_parser("run", help="run a scenario")
    p.add_argument("scenario")
    p.add_argument("--provisioned", type=Path, help="reuse a provisioning file")
    p.add_argument("--save-provisioning", type=Path, help="save the provisioning made here")
    p.add_argument("--workers", type=int, default=1, help="local worker processes")
    p.add_argument("--listen", default="127.0.0.1:0", help="coordinator address for workers")
    p.add_argument("--remote-workers", type=int, default=0, help="wait for N `chatload worker`")
    p.add_argument("--duration", type=float, help="override the scenario's duration (s)")
    p.add_argument("--ramp-up", type=float, help="override the scenario's ramp_up (s)")
    p.add_argument("--rate-scale", type=float, help="multiply every conversation block's rate")
    p.add_argument("--churn", type=float, help="override churn_per_s")
    p.add_argument("--drain", type=float, default=15.0, help="seconds to wait for stragglers")
    _server(p)
    _outputs(p)

    p = sub.add_parser("worker", help="join a coordinator (chatload run) over TCP")
    p.add_argument("--connect", required=True, metavar="HOST:PORT")
    p.add_argument("--cpu", type=int, help="pin this worker to a core")

    p = sub.add_parser("idle", help="hold N authenticated idle connections; server RSS each")
    p.add_argument("scenario", nargs="?", help="an idle scenario (accounts = connections)")
    p.add_argument("--connections", type=int, help="connections to hold")
    _server(p)
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("record", help="recording WebSocket proxy: trace of client frames")
    p.add_argument("--listen", default="127.0.0.1:8766", metavar="HOST:PORT")
    p.add_argument("--upstream", default="ws://127.0.0.1:8765/ws")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seconds", type=float, default=0, help="stop after (0 = until Ctrl-C)")

    p = sub.add_parser("replay", help="replay a trace with fresh accounts and conversations")
    p.add_argument("trace", type=Path)
    p.add_argument("--target", required=True)
    p.add_argument("--speed", type=float, default=1.0, help="inter-arrival times scaled by 1/X")
    p.add_argument(
        "--scale",
        type=int,
        default=1,
        help="replay N copies of the recorded population (disjoint accounts and conversations)",
    )
    p.add_argument(
        "--jitter",
        type=float,
        default=0.0,
        metavar="S",
        help="with --scale: shift each copy's timeline by a random 0..S seconds",
    )
    p.add_argument("--server-pid", type=int, help="local server pid: CPU and RSS from /proc")
    p.add_argument(
        "--close-wait",
        type=float,
        default=5.0,
        metavar="S",
        help="a recorded close waits up to S s for the sends recorded before it to be acked",
    )
    _outputs(p)
    return ap


def replay_lines(r: dict[str, Any]) -> list[str]:
    """What a replay did with the trace: frames per type, what it could not replay and why."""

    def types(d: dict[str, int]) -> str:
        return ", ".join(f"{t} {n:,}" for t, n in sorted(d.items(), key=lambda x: -x[1])) or "-"

    scale = f" x scale {r['scale']}" if r["scale"] > 1 else ""
    out = [
        f"trace: {r['trace_connections']} connections ({r['trace_reconnects']} reconnects),"
        f" {r['trace_span_s']:.1f} s, replayed at x{r['speed']:g}{scale}",
        f"frames in the trace (logins apart): {types(r['trace_frames_by_type_without_auth'])}",
        f"replayed{' (all copies)' if scale else ''}: {types(r['replayed_frames_by_type'])};"
        f" plus {r['logins']:,} logins"
        f" ({r['failed_logins']} failed) and {r['catch_up_syncs']:,} catch-up syncs",
    ]
    lm = r.get("login_ms") or {}
    if lm.get("count"):
        out.append(
            f"login (recorded open -> welcome; a connection's frames wait for it):"
            f" p50 {lm['p50_ms']:.1f} ms, p99 {lm['p99_ms']:.1f} ms, max {lm['max_ms']:.1f} ms"
        )
    if r.get("login_errors"):
        out.append(
            f"login attempts that failed: {types(r['login_errors'])}"
            f" ({r.get('login_retries', 0):,} retried)"
        )
    for t, n in sorted(r["not_replayed_by_type"].items()):
        out.append(f"not replayed: {t} {n:,} ({r['not_replayed_why'].get(t, '')})")
    if r.get("trace_errors"):
        out.append(f"errors the recorded session had: {types(r['trace_errors'])}")
    return out


def emit(result: dict[str, Any], args: argparse.Namespace, console: Console) -> int:
    if result.get("mode") == "idle":
        srv = result.get("server")
        line = f"{result['connections']:,} idle authenticated connections"
        if srv:
            line += (
                f"; server RSS {srv['rss_mb']} MiB (baseline {srv['baseline_rss_mb']} MiB)"
                f" -> {srv['kib_per_connection']} KiB per connection"
            )
        console.print(line, highlight=False)
    else:
        console.print(summary_table(result))
        console.print(totals_table(result))
        if result.get("replay"):
            for line in replay_lines(result["replay"]):
                console.print(line, highlight=False)
        else:
            console.print(f"frames sent per type: {result['frames_sent']}", highlight=False)
    if getattr(args, "json", None):
        write_json(result, args.json)
    if getattr(args, "csv", None) and "intervals" in result:
        write_csv(result, args.csv)
    if getattr(args, "plot", None) and "intervals" in result:
        write_plot(result, args.plot)
    thresholds = [Threshold.parse(t) for t in getattr(args, "fail_if", [])]
    return check_thresholds(thresholds, result, console) if thresholds else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    if args.cmd == "worker":
        from .worker import worker_main

        return worker_main(args.connect, args.cpu)
    for t in getattr(args, "fail_if", []):  # refuse a bad threshold before any load
        try:
            Threshold.parse(t)
        except ValueError as e:
            console.print(f"[red]{e}[/]")
            return 2
    if args.cmd == "provision":
        from .run import provision_only

        try:
            s = load_scenario(args)
            _uvloop_run(_checked(s.targets, provision_only(s, args.out, s.targets, console)))
        except _BadInput as e:
            return _fail(str(e))
        return 0
    if args.cmd in ("run", "idle"):
        from .run import RunOptions, run_idle, run_scenario

        if args.cmd == "idle" and not args.scenario:
            if not args.connections:
                console.print("[red]idle needs --connections N or an idle scenario[/]")
                return 2
            s = Scenario.from_dict({"name": "idle", "kind": "idle", "accounts": args.connections})
            if args.target:
                s = replace(s, targets=tuple(args.target))
        else:
            try:
                s = load_scenario(args)
            except _BadInput as e:
                return _fail(str(e))
        opts = RunOptions(
            scenario=s,
            provisioned=getattr(args, "provisioned", None),
            save_provisioning=getattr(args, "save_provisioning", None),
            workers=getattr(args, "workers", 1),
            cpus=_cpus(args.cpu),
            server_pid=args.server_pid,
            spawn_server=args.spawn_server,
            server_cpu=None if args.server_cpu < 0 else args.server_cpu,
            server_db=args.server_db,
            synchronous=args.synchronous,
            listen=getattr(args, "listen", "127.0.0.1:0"),
            remote_workers=getattr(args, "remote_workers", 0),
            drain_s=getattr(args, "drain", 15.0),
            quiet=args.quiet,
        )
        targets = () if args.spawn_server else s.targets
        try:
            if args.cmd == "idle":
                n = args.connections or s.accounts
                result = _uvloop_run(_checked(targets, run_idle(opts, console, n)))
            else:
                result = _uvloop_run(_checked(targets, run_scenario(opts, console)))
        except _BadInput as e:
            return _fail(str(e))
        return emit(result, args, console)
    if args.cmd == "record":
        from .record import record_forever

        host, _, port = args.listen.rpartition(":")
        if not port.isdigit():
            return _fail(f"record --listen {args.listen!r}: use HOST:PORT")
        try:
            with contextlib.suppress(KeyboardInterrupt):
                _uvloop_run(record_forever(host, int(port), args.upstream, args.out, args.seconds))
        except OSError as e:  # the port is taken, the out file cannot be written
            return _fail(f"record: {e.strerror or e} ({args.listen} -> {args.out})")
        return 0
    if args.cmd == "replay":
        return _replay(args, console)
    return 2


class _BadInput(Exception):
    """A scenario that cannot be read or a target that cannot be reached: one line, exit 2."""


async def _checked(targets: tuple[str, ...], coro: Any) -> Any:
    """Run ``coro`` once every target answers as a chatd.v1 server."""
    from .proto import TargetError, check_target

    try:
        for t in dict.fromkeys(targets):
            await check_target(t)
    except TargetError as e:
        coro.close()
        raise _BadInput(f"target {e}") from None
    return await coro


def _fail(what: str) -> int:
    """Bad input or an unreachable target: one line on stderr, exit code 2."""
    print(f"chatload: {what}", file=sys.stderr, flush=True)
    return 2


def _replay(args: argparse.Namespace, console: Console) -> int:
    from .proto import TargetError, check_target
    from .replay import Trace, TraceError, replay

    if args.speed <= 0 or args.scale < 1 or args.jitter < 0 or args.close_wait < 0:
        return _fail("replay needs --speed > 0, --scale >= 1, --jitter >= 0, --close-wait >= 0")
    try:
        trace = Trace.load(args.trace)
    except TraceError as e:
        return _fail(str(e))
    for w in trace.warnings:
        print(f"chatload: warning: {w}", file=sys.stderr, flush=True)

    async def go() -> dict[str, Any]:
        await check_target(args.target)
        return await replay(
            args.trace,
            args.target,
            args.speed,
            console,
            args.quiet,
            args.scale,
            args.jitter,
            trace,
            args.server_pid,
            args.close_wait,
        )

    try:
        result = _uvloop_run(go())
    except TargetError as e:
        return _fail(f"target {e}")
    return emit(result, args, console)


if __name__ == "__main__":
    sys.exit(main())
