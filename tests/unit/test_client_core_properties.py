"""chatproto.client under generated histories: no loss, no duplicate, order, resend by cmid.

A hypothesis state machine sends messages into two conversations while another device sends
too, and the network loses live deliveries, drops the connection with frames in flight either
way, and the server refuses sends for rate; time moves by hand. After every step:

* the application was handed each conversation's messages once each, in seq order, with none
  missing below the cursor (``Delivery`` events are exactly 1..cursor);
* every message sent is in the outbox or was acknowledged exactly once, never both;
* the server stored each cmid once, and this device's messages of a conversation in the order
  they were sent, but for the ones refused for rate: such a message is stored after the ones
  already in flight behind it when it was refused (the send window; SPEC.md 7.3 promises
  idempotency, not order, across a retry).

At the end the network heals: the client reconnects, catches up and resends, and then every
message sent is stored and acknowledged, and the application has every stored message.
"""

from __future__ import annotations

import random

from chatproto import client as C
from chatproto import frames as F
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from unit.client_server import KEY, MY_DEVICE, SERVER, Server

CHALLENGE = F.Challenge(server=SERVER, nonce=bytes(32), expires_in_ms=10_000)

CONVS = (5, 6)


class ClientUnderFaults(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.server = Server()
        self.core = C.ClientProtocol(policy=C.Policy(send_window=4), rng=random.Random(0))
        self.now = 0.0
        self.sent: dict[int, list[str]] = {c: [] for c in CONVS}
        self.acked: dict[str, int] = {}
        self.handed: dict[int, list[int]] = {c: [] for c in CONVS}
        self.n = 0
        self.connected = False
        self.reconnect()

    # ------------------------------------------------------------------ the driver

    def handle(self) -> None:
        """What an application's driver does with the core's events."""
        for ev in self.core.events_received():
            match ev:
                case C.Delivery(conv=conv, seq=seq):
                    self.handed[conv].append(seq)
                case C.Acked(entry=entry):
                    self.acked[entry.cmid] = self.acked.get(entry.cmid, 0) + 1
                case C.Gap(conv=conv):
                    self.core.fill_gap(conv)
                case C.LoggedIn():
                    for conv in CONVS:
                        self.core.sync(conv)
                    self.core.start_sending()
                case C.SendFailed():
                    raise AssertionError(f"a send failed for good: {ev}")
        self.server.to_server.extend(self.core.data_to_send())

    def reconnect(self) -> None:
        if self.connected:
            self.server.drop()
            self.core.connection_lost(self.now)
        self.core.connection_made(self.now)
        self.core.receive_frame(CHALLENGE, self.now)
        self.core.login(MY_DEVICE, KEY)  # answered when the server gets to it
        self.connected = True
        self.handle()

    def receive(self, n: int) -> None:
        for _ in range(min(n, len(self.server.to_client))):
            self.core.receive_data(self.server.to_client.popleft(), self.now)
            self.handle()

    # ------------------------------------------------------------------ rules

    @rule(conv=st.sampled_from(CONVS), ready=st.booleans())
    def send(self, conv: int, ready: bool) -> None:
        """``ready=False``: its wire bytes come later (an SDK encrypting it first)."""
        self.n += 1
        cmid = f"c{self.n}"
        self.sent[conv].append(cmid)
        if ready:
            self.core.send(conv, cmid, "text", cmid.encode())
        else:
            self.core.send(conv, cmid, ready=False)
        self.handle()

    @rule(conv=st.sampled_from(CONVS))
    def prepare_oldest(self, conv: int) -> None:
        self.prepare(conv, 1)

    def prepare(self, conv: int, n: int) -> None:
        for entry in self.core.outbox.unprepared(conv)[:n]:
            self.core.prepare(entry.cmid, "text", entry.cmid.encode())
        self.handle()

    @rule(conv=st.sampled_from(CONVS), live=st.booleans())
    def other_device_sends(self, conv: int, live: bool) -> None:
        self.server.other_sends(conv, live=live)

    @rule(n=st.integers(1, 5))
    def server_processes(self, n: int) -> None:
        for _ in range(n):
            self.server.step()

    @rule(n=st.integers(1, 8))
    def client_receives(self, n: int) -> None:
        self.receive(n)

    @rule(n=st.integers(1, 3))
    def server_refuses_sends_for_rate(self, n: int) -> None:
        self.server.refuse_next_sends = n

    @rule(dt=st.floats(0.01, 3.0))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        self.core.handle_timer(self.now)
        self.handle()

    @precondition(lambda self: self.connected)
    @rule()
    def connection_drops(self) -> None:
        self.reconnect()

    # ------------------------------------------------------------------ invariants

    @invariant()
    def handed_over_once_each_in_order(self) -> None:
        for conv in CONVS:
            assert self.handed[conv] == list(range(1, self.core.cursors.cursor(conv) + 1))

    @invariant()
    def every_send_is_waiting_or_acked_once(self) -> None:
        waiting = {e.cmid for e in self.core.outbox}
        for conv in CONVS:
            for cmid in self.sent[conv]:
                assert (cmid in waiting) != (self.acked.get(cmid) == 1), cmid
        assert all(n == 1 for n in self.acked.values())

    def mine(self, conv: int) -> list[str]:
        return [m.cmid for m in self.server.convs.get(conv, []) if m.device == MY_DEVICE]

    @invariant()
    def stored_once_each_in_the_order_sent(self) -> None:
        for conv in CONVS:
            mine = self.mine(conv)
            assert len(mine) == len(set(mine))
            refused = self.server.refused
            in_order = [c for c in mine if c not in refused]
            assert in_order == [c for c in self.sent[conv] if c not in refused][: len(in_order)]

    def teardown(self) -> None:
        """The network heals: nothing is lost, everything is handed over."""
        self.server.refuse_next_sends = 0
        for conv in CONVS:
            self.prepare(conv, len(self.core.outbox))
        for _ in range(3):
            self.reconnect()
            for _ in range(10_000):
                self.now += 2.5  # past any deferred resend
                self.core.handle_timer(self.now)
                self.handle()
                moved = self.server.step()
                if self.server.to_client:
                    self.receive(len(self.server.to_client))
                elif not moved and not self.server.to_server and self.core.next_timer() is None:
                    break
        assert len(self.core.outbox) == 0
        for conv in CONVS:
            assert sorted(self.mine(conv)) == sorted(self.sent[conv])
            assert self.handed[conv] == list(range(1, len(self.server.convs.get(conv, [])) + 1))
        assert set(self.acked) == {c for conv in CONVS for c in self.sent[conv]}


ClientUnderFaults.TestCase.settings = settings(
    max_examples=300, stateful_step_count=50, deadline=None
)
TestClientUnderFaults = ClientUnderFaults.TestCase


def test_cursors_hand_over_any_arrival_order_once_each_in_order() -> None:
    """The receive rule alone: any permutation with repeats of 1..n comes out as 1..n."""
    from hypothesis import given

    @given(st.permutations(list(range(1, 30))), st.lists(st.integers(1, 29), max_size=20))
    def check(order: list[int], repeats: list[int]) -> None:
        cursors: C.Cursors[int] = C.Cursors()
        out: list[int] = []
        for seq in order + repeats:
            out += [s for s, _ in cursors.receive(1, seq, seq).ready]
        assert out == list(range(1, 30))

    check()
