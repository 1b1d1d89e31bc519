"""chatproto.client: the client core, driven by hand (bytes and time in, events and bytes out).

Every test feeds frames as the server would send them and reads what the core writes, with
``now`` passed in; ``client_server.Server`` plays the server where a conversation needs one.
"""

from __future__ import annotations

import os
import random

import pytest
from chatproto import auth, codec
from chatproto import client as C
from chatproto import frames as F
from chatproto.e2e.primitives import verify
from chatproto.errors import ErrorCode
from unit.client_server import KEY, MY_DEVICE, OTHER_DEVICE, SERVER, Server, connect, pump

CHALLENGE = F.Challenge(server=SERVER, nonce=bytes(range(32)), expires_in_ms=10_000)


def written(core: C.ClientProtocol) -> list[F.ClientFrame]:
    return [codec.decode_client(d) for d in core.data_to_send()]


def challenged(core: C.ClientProtocol | None = None) -> C.ClientProtocol:
    core = core or C.ClientProtocol()
    core.connection_made(0.0)
    core.receive_data(codec.encode(CHALLENGE))
    return core


def logged_in(**kw: object) -> C.ClientProtocol:
    core = challenged(C.ClientProtocol(**kw))  # type: ignore[arg-type]
    rid = core.login(MY_DEVICE, KEY)
    written(core)
    core.receive_frame(F.Welcome(re=rid, account=7, device=MY_DEVICE, handle="meg", server_time=1))
    core.events_received()
    return core


# ------------------------------------------------------------------ login (SPEC.md 6.1)


def test_login_signs_this_connections_challenge_and_welcome_opens_the_connection() -> None:
    core = challenged()
    assert core.state is C.State.CHALLENGED
    assert core.events_received() == [C.Challenged(CHALLENGE)]
    rid = core.login(MY_DEVICE, KEY)
    [login] = written(core)
    assert isinstance(login, F.Login) and login.id == rid and login.device == MY_DEVICE
    payload = auth.login_payload(SERVER, CHALLENGE.nonce, KEY.public_key)
    verify(KEY.public_key, login.sig, payload)  # raises if it does not verify
    assert core.state is C.State.AUTHENTICATING
    welcome = F.Welcome(re=rid, account=7, device=MY_DEVICE, handle="meg", server_time=1)
    core.receive_data(codec.encode(welcome))
    assert core.events_received() == [C.LoggedIn(welcome), C.Answer(rid, welcome)]
    assert core.state is C.State.OPEN and core.device == MY_DEVICE
    assert core.expected_server == SERVER  # pinned for later logins


def test_a_challenge_from_another_service_is_not_signed() -> None:
    core = challenged(C.ClientProtocol(expected_server="chat.example.org"))
    with pytest.raises(C.WrongServer):
        core.login(MY_DEVICE, KEY)
    assert core.data_to_send() == []


def test_a_refused_login_leaves_the_connection_open_for_another_attempt() -> None:
    core = challenged()
    rid = core.login(MY_DEVICE, KEY)
    error = F.Error(re=rid, code=ErrorCode.AUTH_FAILED)
    core.receive_frame(error)
    assert C.LoginFailed(error) in core.events_received()
    assert core.state is C.State.CHALLENGED


# ------------------------------------------------------------------ requests (SPEC.md 3)


def test_answers_are_matched_by_re_not_by_position() -> None:
    core = logged_in()
    a = core.request(F.Lookup(id=core.next_id(), handle="alice"))
    b = core.request(F.Lookup(id=core.next_id(), handle="bob"))
    assert a != b
    bob = F.Account(re=b, account=2, handle="bob", name="Bob", type="user")
    alice = F.Account(re=a, account=1, handle="alice", name="Alice", type="user")
    core.receive_frame(bob)
    core.receive_frame(alice)
    assert core.events_received() == [C.Answer(b, bob), C.Answer(a, alice)]


def test_request_ids_wrap_below_2_to_the_32_and_skip_ids_still_waiting() -> None:
    requests = C.Requests()
    requests.wait(1, C.Purpose("app"))
    requests._last = 2**32 - 2  # white-box: near the end of the u32 range
    assert [requests.next_id(), requests.next_id()] == [2**32 - 1, 2]


def test_a_request_unanswered_by_its_deadline_is_reported_at_that_time() -> None:
    core = logged_in()
    core.handle_timer(100.0)
    rid = core.request(F.ListConvs(id=core.next_id()), timeout=5.0)
    assert core.next_timer() == 105.0
    core.handle_timer(104.9)
    assert core.events_received() == []
    core.handle_timer(105.0)
    assert core.events_received() == [C.Unanswered(rid, "timeout")]


def test_a_lost_connection_ends_every_waiting_request() -> None:
    core = logged_in()
    rid = core.request(F.ListConvs(id=core.next_id()))
    core.connection_lost()
    assert core.events_received() == [C.Unanswered(rid, "connection_lost")]
    with pytest.raises(C.NotConnected):
        core.request(F.ListConvs(id=core.next_id()))


def test_bytes_that_are_not_a_frame_are_reported_not_raised() -> None:
    core = logged_in()
    core.receive_data(b"\xc1garbage")
    [event] = core.events_received()
    assert isinstance(event, C.BadFrame) and event.error.code == ErrorCode.MALFORMED


# ------------------------------------------------------------------ receive rule (SPEC.md 13.4)


def deliver(conv: int, seq: int, device: int = OTHER_DEVICE, cmid: str = "") -> F.Deliver:
    return F.Deliver(
        conv=conv,
        seq=seq,
        ts=seq,
        sender=8,
        device=device,
        cmid=cmid or None,
        kind="text",
        body=b"x",
    )


def test_messages_past_a_gap_wait_for_it_and_come_in_seq_order() -> None:
    core = logged_in()
    core.receive_frame(deliver(5, 1))
    core.receive_frame(deliver(5, 3))
    events = core.events_received()
    assert [type(e) for e in events] == [C.Delivery, C.Gap]
    assert events[1] == C.Gap(5, 1, 3)
    core.receive_frame(deliver(5, 2))
    assert [(e.seq) for e in core.events_received() if isinstance(e, C.Delivery)] == [2, 3]
    assert core.cursors.cursor(5) == 3


def test_a_seq_at_or_below_the_cursor_is_dropped_as_a_duplicate() -> None:
    core = logged_in(cursors={5: 4})
    core.receive_frame(deliver(5, 4))
    [dup] = core.events_received()
    assert isinstance(dup, C.Duplicate) and not dup.overlap


def test_a_sync_starts_at_the_cursor_and_its_overlap_with_live_delivery_is_dropped() -> None:
    core = logged_in(cursors={5: 2})
    rid = core.sync(5)
    [sync] = written(core)
    assert sync == F.Sync(id=rid, conv=5, after=2)
    assert core.sync(5) is None  # never two syncs of one conversation at once (7.4)
    core.receive_frame(deliver(5, 3))  # live, before the sync's replay of it
    core.receive_frame(deliver(5, 4))
    core.receive_frame(deliver(5, 3))  # the sync's replay
    core.receive_frame(F.Synced(re=rid, conv=5, seq=4))
    events = core.events_received()
    assert [type(e).__name__ for e in events] == ["Delivery", "Delivery", "Duplicate", "Synced"]
    assert isinstance(events[2], C.Duplicate) and events[2].overlap


def test_no_gap_is_reported_while_a_sync_will_fill_it() -> None:
    core = logged_in()
    core.sync(5)
    core.receive_frame(deliver(5, 2))
    assert not any(isinstance(e, C.Gap) for e in core.events_received())


def test_a_gap_is_fetched_page_by_page_until_it_is_closed() -> None:
    server = Server()
    core = C.ClientProtocol()
    connect(core, server)
    for _ in range(3):
        server.other_sends(5, live=False)
    server.other_sends(5)  # seq 4 arrives live: 1..3 are missing
    events = pump(core, server)
    seqs = [e.seq for e in events if isinstance(e, C.Delivery)]
    assert seqs == [1, 2, 3, 4]
    fetched = [e.item for e in events if isinstance(e, C.Delivery)][:3]
    assert all(isinstance(m, F.Message) for m in fetched)


def test_unordered_policy_hands_messages_over_as_they_arrive_still_once() -> None:
    core = logged_in(policy=C.Policy(ordered=False))
    for seq in (3, 1, 3, 2):
        core.receive_frame(deliver(5, seq))
    events = core.events_received()
    assert [e.seq for e in events if isinstance(e, C.Delivery)] == [3, 1, 2]
    assert [e.seq for e in events if isinstance(e, C.Duplicate)] == [3]


# ------------------------------------------------------------------ outbox (SPEC.md 7.2, 7.3, 13)


def sends(core: C.ClientProtocol) -> list[F.Send]:
    return [f for f in written(core) if isinstance(f, F.Send)]


def test_a_send_waits_in_the_outbox_until_the_outbox_is_started_after_catching_up() -> None:
    core = logged_in()
    core.send(5, "m1", "text", b"hi")
    assert written(core) == []
    core.start_sending()
    [send] = sends(core)
    assert (send.conv, send.cmid, send.kind, send.body) == (5, "m1", "text", b"hi")


def test_an_ack_settles_the_entry_and_places_the_own_message_by_its_seq() -> None:
    core = logged_in()
    core.start_sending()
    entry = core.send(5, "m1", "text", b"hi")
    [send] = sends(core)
    ack = F.Ack(re=send.id, conv=5, cmid="m1", seq=1, ts=1)
    core.receive_frame(ack)
    assert core.events_received() == [C.Acked(ack, entry), C.Delivery(5, 1, C.Own(ack, entry))]
    assert len(core.outbox) == 0
    core.receive_frame(ack)  # the same ack again (a resend answered twice)
    assert core.events_received() == [C.AckedAgain(ack)]


def test_unacked_sends_are_written_again_after_a_reconnect_with_the_same_cmid_and_bytes() -> None:
    core = logged_in()
    core.start_sending()
    core.send(5, "m1", "e2e", b"ciphertext")
    first = sends(core)
    core.connection_lost()
    core.connection_made()
    core.receive_frame(CHALLENGE)
    rid = core.login(MY_DEVICE, KEY)
    written(core)
    core.receive_frame(F.Welcome(re=rid, account=7, device=MY_DEVICE, handle="meg", server_time=1))
    core.start_sending()
    again = sends(core)
    assert [(s.cmid, s.kind, s.body) for s in again] == [(s.cmid, s.kind, s.body) for s in first]


def test_a_retryable_refusal_is_resent_with_the_same_cmid_when_its_time_comes() -> None:
    core = logged_in(rng=random.Random(1))
    core.handle_timer(10.0)
    core.start_sending()
    entry = core.send(5, "m1", "text", b"hi")
    [send] = sends(core)
    core.receive_frame(F.Error(re=send.id, code=ErrorCode.RATE_LIMITED), now=10.0)
    [deferred] = core.events_received()
    assert isinstance(deferred, C.SendDeferred) and deferred.entry is entry
    retry_at = core.next_timer()
    assert retry_at is not None and 10.0 < retry_at <= 10.0 + 2.0
    core.handle_timer(retry_at - 0.001)
    assert written(core) == []
    core.handle_timer(retry_at)
    [again] = sends(core)
    assert again.cmid == "m1" and again.id != send.id


def test_a_final_refusal_fails_the_send_and_it_leaves_the_outbox() -> None:
    core = logged_in()
    core.start_sending()
    entry = core.send(5, "m1", "text", b"hi")
    [send] = sends(core)
    error = F.Error(re=send.id, code=ErrorCode.FORBIDDEN)
    core.receive_frame(error)
    assert core.events_received() == [C.SendFailed(entry, error)]
    assert core.outbox.get("m1") is None


def test_an_unknown_error_code_is_final() -> None:
    assert not C.retryable(999)
    assert C.retryable(ErrorCode.UNAVAILABLE)


def test_a_backlog_goes_one_at_a_time_then_the_window_opens_again() -> None:
    core = logged_in(policy=C.Policy(send_window=3))
    for i in range(4):
        core.send(5, f"m{i}", "text", b"x")
    core.start_sending()
    for seq in range(1, 5):  # one in flight at a time, in the order sent
        [s] = sends(core)
        assert s.cmid == f"m{seq - 1}"
        core.receive_frame(F.Ack(re=s.id, conv=5, cmid=s.cmid, seq=seq, ts=seq))
    for i in range(4, 9):
        core.send(5, f"m{i}", "text", b"x")
    assert [s.cmid for s in sends(core)] == ["m4", "m5", "m6"]  # the window of 3 again


def test_an_entry_not_prepared_holds_back_the_later_ones_of_its_conversation() -> None:
    core = logged_in()
    core.start_sending()
    core.send(5, "m1", ready=False)
    core.send(5, "m2", "text", b"b")
    core.send(6, "m3", "text", b"c")
    assert [s.cmid for s in sends(core)] == ["m3"]
    core.prepare("m1", "e2e", b"sealed")
    assert [(s.cmid, s.kind) for s in sends(core)] == [("m1", "e2e"), ("m2", "text")]


def test_a_cmid_waiting_in_one_conversation_cannot_be_sent_in_another() -> None:
    core = logged_in()
    core.send(5, "m1", "text", b"a")
    assert core.send(5, "m1", "text", b"a") is core.outbox.get("m1")
    with pytest.raises(ValueError, match="another conversation"):
        core.send(6, "m1", "text", b"a")


def test_an_own_message_back_by_sync_before_its_ack_settles_its_entry() -> None:
    server = Server()
    core = C.ClientProtocol()
    connect(core, server)
    core.start_sending()
    core.send(5, "m1", "text", b"mine")
    server.to_server.extend(core.data_to_send())
    server.step()  # stored; the ack is lost with the connection
    server.drop()
    core.connection_lost()
    connect(core, server)
    core.sync(5)
    events = pump(core, server)
    acked = [e for e in events if isinstance(e, C.Acked)]
    assert [(e.entry.cmid, e.ack.seq) for e in acked] == [("m1", 1)]
    core.start_sending()
    assert core.data_to_send() == []  # nothing left to resend
    assert len(server.convs[5]) == 1


def test_unique_cmids_stay_unique_across_many_sends() -> None:
    core = logged_in()
    cmids = {os.urandom(8).hex() for _ in range(100)}
    for cmid in cmids:
        core.send(5, cmid, "text", b"x")
    assert {e.cmid for e in core.outbox} == cmids


def test_an_own_message_read_in_history_settles_its_entry_at_once() -> None:
    core = logged_in()
    core.start_sending()
    entry = core.send(5, "m1", "e2e", b"sealed")
    written(core)
    page = F.Message(seq=9, ts=9, sender=7, device=MY_DEVICE, cmid="m1", kind="e2e", body=b"sealed")
    other = F.Message(seq=9, ts=9, sender=7, device=MY_DEVICE, cmid="m1", kind="e2e", body=b"else")
    assert core.settle_from_history(5, 9, other) is None  # same cmid, other bytes: not it
    acked = core.settle_from_history(5, 9, page)
    assert acked is not None and acked.entry is entry and acked.ack.seq == 9
    assert core.outbox.get("m1") is None
    assert core.events_received() == []  # returned to the caller, not queued


def test_new_cmids_are_unique_fit_the_wire_and_sort_in_the_order_they_were_made() -> None:
    """The SDK's cmids (SPEC.md 7.3): a later one sorts after an earlier one, so the server's
    cmid index (cmid first) gets one commit's entries side by side; the same millisecond still
    gives distinct ones."""
    times = [0.0, 0.001, 1.0, 1_765_000_000.0, 1_765_000_000.002, 2**48 / 1000 - 0.001]
    made = [C.new_cmid(t) for t in times]
    assert made == sorted(made)
    assert all(len(c) == 32 and int(c, 16) >= 0 for c in made)  # within SPEC's 1..64 chars
    same = {C.new_cmid(1_765_000_000.0) for _ in range(1000)}
    assert len(same) == 1000
    assert made[3][:12] == f"{1_765_000_000_000:012x}"


def test_a_cmid_carries_the_servers_time_never_the_devices_clock() -> None:
    """Before a login the core knows no server time: its cmids are random. After it, they
    begin with the server's time (``welcome.server_time`` plus the time passed since on the
    caller's clock), whatever the device's own clock says."""
    core = C.ClientProtocol()
    device_clock = 1_765_000_000.0  # what this device's wall clock would say
    before = [core.new_cmid(device_clock) for _ in range(200)]
    assert len(set(before)) == 200 and all(len(c) == 32 for c in before)
    assert not any(c.startswith(f"{int(device_clock * 1000):012x}"[:8]) for c in before)
    server = Server()
    connect(core, server, now=50.0)  # the caller's clock: a loop's, not the wall's
    welcome = core.welcome
    assert welcome is not None
    made = core.new_cmid(52.5)  # 2.5 s later on the caller's clock
    assert made[:12] == f"{welcome.server_time + 2500:012x}"
    assert core.new_cmid(53.0) > made
