"""chatload: exact accounting against a real server, percentiles from known latencies, record ->
replay frame counts, thresholds and exit codes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
import pytest
from chatload import cli
from chatload.hist import Latency, merge
from chatload.proto import Client, Stats, with_id
from chatload.provision import Provisioning
from chatload.record import recording_proxy
from chatload.replay import Trace, replay
from chatload.report import Threshold, check_thresholds, write_csv, write_json, write_plot
from chatload.run import RunOptions, run_scenario
from chatload.scenario import Scenario, e2e_body_size, plan_conversations
from chatload.worker import intended_offset_s, messages_due
from chatproto import frames as F
from conftest import make_settings, run_server
from rich.console import Console
from testkit import Raw

SCENARIOS = Path(__file__).resolve().parents[2] / "loadtest" / "scenarios"
LIMITS = {"frames_per_second": 100000, "frame_burst": 100000}


def quiet() -> Console:
    return Console(quiet=True)


# --------------------------------------------------------------------------- percentiles


def test_percentiles_of_known_latencies() -> None:
    h = Latency()
    for ms in range(1, 1001):  # 1..1000 ms, one sample each
        h.record_us(ms * 1000)
    s = h.summary()
    assert s["count"] == 1000
    # HDR keeps 3 significant digits: values are exact to within 0.1%
    assert s["p50_ms"] == pytest.approx(500, rel=1e-3)
    assert s["p90_ms"] == pytest.approx(900, rel=1e-3)
    assert s["p99_ms"] == pytest.approx(990, rel=1e-3)
    assert s["p999_ms"] == pytest.approx(999, rel=1e-3)
    assert s["max_ms"] == pytest.approx(1000, rel=1e-3)


def test_merging_encoded_worker_histograms_equals_one_histogram() -> None:
    a, b, both = Latency(), Latency(), Latency()
    for us in range(1, 901):  # worker a: 900 fast samples, 1 ms .. 900 ms
        a.record_us(us * 1000)
        both.record_us(us * 1000)
    for _ in range(100):  # worker b: 100 slow samples at 5 s
        b.record_us(5_000_000)
        both.record_us(5_000_000)
    merged = merge([a.encode(), b.encode(), Latency().encode()])  # an idle worker too
    assert merged.count == 1000
    assert merged.summary() == both.summary()
    assert merged.percentile_ms(50) == pytest.approx(500, rel=1e-3)
    assert merged.percentile_ms(90) == pytest.approx(900, rel=1e-3)
    assert merged.percentile_ms(99) == pytest.approx(5000, rel=1e-3)
    assert merged.max_ms() == pytest.approx(5000, rel=1e-3)
    assert Latency().summary()["p99_ms"] is None


def test_open_model_schedule_is_consistent() -> None:
    for rate, ramp in ((10.0, 0.0), (100.0, 2.0), (7.0, 1.5)):
        for i in range(0, 500, 7):
            t = intended_offset_s(i, rate, ramp)
            assert messages_due(t + 1e-9, rate, ramp) >= i + 1
            assert messages_due(t - 1e-6, rate, ramp) <= i + 1
    # after the ramp the rate is exact: 100/s for 3 s after a 2 s ramp (100 during the ramp)
    assert messages_due(5.0 - 1e-9, 100.0, 2.0) == 400


# --------------------------------------------------------------------------- thresholds


def result_with(**summary: Any) -> dict[str, Any]:
    lat = {"count": 10, "p50_ms": 5.0, "p90_ms": 9.0, "p99_ms": 40.0, "p999_ms": 60.0}
    base: dict[str, Any] = {
        "error_count": 0,
        "lost": 0,
        "unacked": 0,
        "failed": 0,
        "duplicates": 0,
        "reconnects": 0,
        "acked_per_s": 100.0,
        "deliveries_per_s": 200.0,
        "sent": 10,
        "acked": 10,
        "delivered": 20,
        "ack": {**lat, "max_ms": 70.0, "mean_ms": 6.0, "p99_ms": 20.0},
        "deliver": {**lat, "max_ms": 80.0, "mean_ms": 7.0},
    }
    base.update(summary)
    return {"summary": base, "server": {"us_per_msg": 120.0, "us_per_delivery": 15.0}}


def test_thresholds_parse_and_decide() -> None:
    r = result_with()
    assert Threshold.parse("p99_ms>50").failed(r) == (False, 40.0)  # deliver p99 by default
    assert Threshold.parse("p99_ms > 30").failed(r) == (True, 40.0)
    assert Threshold.parse("ack_p99_ms>=20").failed(r) == (True, 20.0)
    assert Threshold.parse("deliver_max_ms<100").failed(r) == (True, 80.0)
    assert Threshold.parse("errors>0").failed(r) == (False, 0.0)
    assert Threshold.parse("errors>0").failed(result_with(error_count=3)) == (True, 3.0)
    assert Threshold.parse("lost>0").failed(result_with(lost=1))[0]
    assert Threshold.parse("server_us_per_msg>100").failed(r) == (True, 120.0)
    assert Threshold.parse("acked_per_s<50").failed(r) == (False, 100.0)
    for bad in ("p99>50", "p99_ms=>50", "p99_ms>", "latency>5"):
        with pytest.raises(ValueError, match=r"threshold|metric"):
            Threshold.parse(bad)
    ok = [Threshold.parse("p99_ms>50"), Threshold.parse("errors>0")]
    assert check_thresholds(ok, r) == 0
    assert check_thresholds([*ok, Threshold.parse("lost>0")], result_with(lost=2)) == 1


def test_cli_exit_codes_from_thresholds(tmp_path: Path) -> None:
    assert cli.main(["replay", str(tmp_path / "t"), "--target", "x", "--fail-if", "p99>5"]) == 2
    r = {
        **result_with(lost=1, errors={}, window_s=1.0),
        "scenario": {"name": "x"},
        "frames_sent": {},
    }
    r["summary"].update(
        expected_deliveries=21, dup_acks=0, gen_cpu_pct_max=1.0, saturated="neither"
    )
    r["server"].update(cpu_pct=1.0, rss_mb=40.0)
    args = cli.build_parser().parse_args(["replay", "t", "--target", "x", "--fail-if", "lost>0"])
    assert cli.emit(r, args, quiet()) == 1
    args = cli.build_parser().parse_args(["replay", "t", "--target", "x", "--fail-if", "lost>1"])
    assert cli.emit(r, args, quiet()) == 0


# --------------------------------------------------------------------------- scenarios


def test_example_scenarios_load_and_plan() -> None:
    for path in SCENARIOS.glob("*.toml"):
        s = Scenario.load(path)
        if s.kind == "messaging":
            plans = plan_conversations(s)
            assert sum(b.count for b in s.blocks) == len(plans)
    ch = Scenario.load(SCENARIOS / "channel5000.toml")
    (plan,) = plan_conversations(ch)
    assert len(plan.members) == 5000 and len(plan.senders) == 1
    with pytest.raises(ValueError, match="rate_total, rate_per_sender"):
        Scenario.from_dict({"name": "x", "conversations": [{"type": "group", "count": 1}]})


async def test_tiny_scenario_counts_are_exact(tmp_path: Path) -> None:
    """Every sent message acked once and delivered once to every other member; provisioning
    saved, reused by a second run; JSON, CSV and plot written."""
    async with run_server(make_settings(tmp_path, limits=LIMITS)) as server:
        s = replace(Scenario.load(SCENARIOS / "tiny.toml"), targets=(server.url,), duration=2.0)
        prov = tmp_path / "prov.json"
        r1 = await run_scenario(RunOptions(s, save_provisioning=prov, quiet=True), quiet())
        r2 = await run_scenario(RunOptions(s, provisioned=prov, quiet=True), quiet())
    p = Provisioning.load(prov)
    assert len(p.accounts) == 6 and sorted(c.type for c in p.convs) == [
        "channel",
        "direct",
        "group",
    ]
    assert len({a.seed for a in p.accounts}) == 6
    for r in (r1, r2):
        m = r["summary"]
        # 25 msgs/s, rate ramping up over the first second: 0.5 s + 1 s worth = 37.5 -> 38
        assert m["sent"] == 38
        assert m["acked"] == m["sent"] and m["unacked"] == 0 and m["failed"] == 0
        # direct: 1 delivery, group of 4: 3, channel of 5: 4 per message
        assert m["expected_deliveries"] > m["sent"]
        assert m["delivered"] == m["expected_deliveries"]
        assert m["lost"] == 0 and m["duplicates"] == 0 and m["dup_acks"] == 0
        assert m["error_count"] == 0
        assert m["deliver"]["count"] > 0 and m["ack"]["count"] > 0
        assert r["frames_sent"]["send"] == m["sent"]
        # the per-second rows, the last (partial) one included, add up to the totals
        for row_key, key in (("sent", "sent"), ("acks", "acked"), ("delivers", "delivered")):
            assert sum(row[row_key] for row in r["intervals"]) == m[key]
        assert r["intervals"][-1]["seconds"] <= 1.0
    write_json(r1, tmp_path / "r.json")
    write_csv(r1, tmp_path / "r.csv")
    write_plot(r1, tmp_path / "r.png")
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["lost"] == 0
    assert (tmp_path / "r.csv").read_text().startswith("t,seconds,conns,sent")
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_e2e_body_sizes_follow_the_buckets() -> None:
    # padded plaintext (plaintext + at least 1 byte, to 64, 128, ... 32768, then 65447) + 89
    for plaintext, body in (
        (0, 153), (28, 153), (63, 153), (64, 217), (100, 217), (127, 217), (128, 345),
        (1000, 1113), (32767, 32857), (32768, 65536), (65446, 65536),
    ):  # fmt: skip
        assert e2e_body_size(plaintext) == body, plaintext
    with pytest.raises(ValueError, match="too large"):
        e2e_body_size(65447)
    big = {"name": "x", "message": {"kind": "e2e", "size": 65447}}
    with pytest.raises(ValueError, match="e2e plaintext"):
        Scenario.from_dict({**big, "conversations": [{"type": "direct", "rate_total": 1}]})
    with pytest.raises(ValueError, match="devices_per_account"):
        Scenario.from_dict({"name": "x", "devices_per_account": 0, "kind": "idle"})


async def test_two_devices_per_account_e2e_counts_are_exact(tmp_path: Path) -> None:
    """devices_per_account = 2 and kind e2e: every device logs in on its own connection and
    sends; each message is delivered once to every device of every member except the sending
    connection (the sender's other device included); the server stores opaque bodies of the
    bucketed ciphertext sizes."""
    async with run_server(make_settings(tmp_path, limits=LIMITS)) as server:
        s = replace(
            Scenario.load(SCENARIOS / "tiny.toml"),
            targets=(server.url,),
            duration=2.0,
            devices_per_account=2,
            message_kind="e2e",
        )
        prov_path = tmp_path / "prov.json"
        r = await run_scenario(RunOptions(s, save_provisioning=prov_path, quiet=True), quiet())
        prov = Provisioning.load(prov_path)
        # read the stored messages back, each conversation as a member's linked device
        pages = []
        for cv in prov.convs:
            dev = prov.accounts[cv.members[0]].linked[0]
            c = Client(0, server.url, Stats(), seed=dev.seed, device=dev.device)
            await c.open()
            pages.append(await c.request(with_id(F.Fetch, conv=cv.conv, limit=200)))
            await c.close()
    assert all(len(a.linked) == 1 for a in prov.accounts)
    devices = {a.device for a in prov.accounts} | {a.linked[0].device for a in prov.accounts}
    assert len(devices) == 12
    m = r["summary"]
    assert m["sent"] == 38  # as in tiny: 15 direct, 15 group, 8 channel messages
    assert m["acked"] == 38 and m["unacked"] == 0 and m["failed"] == 0
    # every device of every member but the sending connection:
    # direct 15 x (2*2-1) + group of 4: 15 x (4*2-1) + channel of 5: 8 x (5*2-1)
    assert m["expected_deliveries"] == 15 * 3 + 15 * 7 + 8 * 9 == 222
    assert m["delivered"] == 222
    assert m["lost"] == 0 and m["duplicates"] == 0 and m["dup_acks"] == 0
    assert m["error_count"] == 0
    assert m["connections_held"] == 12
    sent = [msg for page in pages if isinstance(page, F.Messages) for msg in page.messages]
    e2e = [msg for msg in sent if msg.kind == "e2e"]
    assert len(e2e) == 38
    # plaintext sizes uniform 40..200 -> padded 64, 128 or 256 (+ 89 bytes of sender key)
    assert {len(msg.body) for msg in e2e} <= {153, 217, 345}
    assert len({len(msg.body) for msg in e2e}) > 1
    assert all(msg.body[:4] == b"CLD1" for msg in e2e)
    # both devices of the senders sent (routes are spread over every device)
    assert {msg.device for msg in e2e} & {a.linked[0].device for a in prov.accounts}
    assert {msg.device for msg in e2e} & {a.device for a in prov.accounts}
    with pytest.raises(SystemExit, match="fewer than 3 devices"):
        prov.check(replace(s, devices_per_account=3))


# --------------------------------------------------------------------------- record / replay


async def test_recorded_trace_replays_the_same_frames_per_kind(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    async with (
        run_server(make_settings(tmp_path, limits=LIMITS)) as server,
        recording_proxy("127.0.0.1", 0, server.url, trace) as (_rec, port),
    ):
        url = f"ws://127.0.0.1:{port}/ws"
        a, b, c = Raw.open(url), Raw.open(url), Raw.open(url)
        alice, bob, carol = await asyncio.gather(a, b, c)
        for raw, h in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
            await raw.register(h)
        group = await alice.request(
            F.CreateConv(
                id=alice.next_id(), kind="group", title="g", members=[bob.account, carol.account]
            ),
            F.Conv,
        )
        direct = await alice.request(
            F.CreateConv(id=alice.next_id(), kind="direct", members=[bob.account]), F.Conv
        )
        g, d = group.info.conv, direct.info.conv
        body = msgspec.msgpack.encode({"text": "secret plaintext"})
        for i in range(3):
            await alice.request(
                F.Send(id=alice.next_id(), conv=g, cmid=f"a{i}", kind="text", body=body), F.Ack
            )
        await bob.request(
            F.Send(id=bob.next_id(), conv=d, cmid="b0", kind="text", body=body), F.Ack
        )
        await bob.send_frame(F.Typing(conv=g))
        await carol.send_frame(F.Typing(conv=g, on=False))
        await bob.request(F.Receipt(id=bob.next_id(), conv=g, type="read", seq=2), F.Ok)
        await carol.request(F.Sync(id=carol.next_id(), conv=g), F.Synced)
        await carol.request(F.Fetch(id=carol.next_id(), conv=g, limit=10), F.Messages)
        await alice.request(F.ListConvs(id=alice.next_id()), F.Convs)
        for raw in (alice, bob, carol):
            await raw.close()
        await asyncio.sleep(0.2)
        text = trace.read_text()
        assert "secret" not in text and "alice" not in text  # no plaintext, no handles
        t = Trace.load(trace)
        assert t.by_type == {
            "register": 3,
            "create_conv": 2,
            "send": 4,
            "typing": 2,
            "receipt": 1,
            "sync": 1,
            "fetch": 1,
            "list_convs": 1,
        }
        res = await replay(
            trace, server.url, speed=20.0, console=quiet(), quiet=True, close_wait_s=60
        )
    rp = res["replay"]
    without_create = dict(rp["trace_frames_by_type_without_auth"])
    assert without_create.pop("create_conv") == 2
    assert rp["replayed_frames_by_type"] == without_create
    assert rp["not_replayed_by_type"] == {"create_conv": 2}  # provisioned before the replay
    assert "provisioned" in rp["not_replayed_why"]["create_conv"]
    assert rp["logins"] == 3
    m = res["summary"]
    assert m["sent"] == 4 and m["acked"] == 4
    assert m["delivered"] == m["expected_deliveries"] == 3 * 2 + 1  # group of 3, then direct
    assert m["lost"] == 0 and m["duplicates"] == 0
    assert m["errors"] == {}


async def test_own_messages_and_sync_overlaps_are_not_deliveries_or_duplicates(
    tmp_path: Path,
) -> None:
    """After a reconnect a sender's own messages come back in its sync, and a sync sends again
    seqs the connection already had (SPEC 7.4): neither is a delivery nor a duplicate (the
    churn run's 11,838 of 11,837 and the replays' phantom duplicates)."""
    async with run_server(make_settings(tmp_path, limits=LIMITS)) as server:
        stats = Stats(7)
        a, b = Client(1, server.url, stats), Client(2, server.url, stats)
        await a.open(register_handle="own_a")
        await b.open(register_handle="own_b")
        conv = await a.request(with_id(F.CreateConv, kind="direct", members=[b.account]))
        assert isinstance(conv, F.Conv)
        c = conv.info.conv
        for i in range(3):
            a.send_message(c, 0, i + 1, 40)
        await _until(lambda: stats.acks == 3 and stats.delivers == 3)
        a.cursor[c] = 0  # a reconnects having missed its acks: its sync returns its own
        a.ahead.pop(c, None)
        await a.sync(c)
        snap = stats.snapshot()
        assert (snap["acks"], snap["delivers"], snap["dup_delivers"]) == (3, 3, 0)
        assert snap["own"] == 3 and snap["sync_overlaps"] == 0
        # b's sync leaves with its cursor at 1; seqs 2..4 arrive live before its answer
        have = b.cursor[c]
        b.cursor[c] = 1
        fut = b.sync(c)
        b.cursor[c] = have
        await fut
        snap = stats.snapshot()
        assert snap["delivers"] == 0 and snap["dup_delivers"] == 0
        assert snap["sync_overlaps"] == 3  # seqs 2..4 again (1 is the 'created' message)
        await a.close()
        await b.close()


async def _until(cond: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)
