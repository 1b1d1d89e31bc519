"""Withholding messages from bots (SPEC.md 16.3), without a socket: the pure rules that decide
it, the WITHHELD envelope, and the hub skipping the named accounts' connections."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatd import envelope
from chatd.broker.memory import MemoryBroker
from chatd.core import rules
from chatd.hub import HOLD, Hub
from chatd.metrics import HotCounters

_conn_ids = itertools.count(1)
BOT, OTHER_BOT, ALICE = 9, 12, 1


class FakeOutlet:
    def __init__(self, account: int) -> None:
        self.conn_id = next(_conn_ids)
        self.account = account
        self.device = 1000 + self.conn_id
        self.floors: dict[int, int] = {}
        self.watching: dict[int, None] = {}
        self.pushed: list[bytes] = []

    def push(self, data: bytes) -> None:
        self.pushed.append(data)


# ------------------------------------------------------------------ rules


def test_a_message_is_withheld_from_addressed_bots_not_named_and_not_sending() -> None:
    addressed = (BOT, OTHER_BOT)
    assert rules.withheld_from("e2e", ALICE, (), addressed) == (BOT, OTHER_BOT)
    assert rules.withheld_from("e2e", ALICE, (BOT,), addressed) == (OTHER_BOT,)
    assert rules.withheld_from("e2e", BOT, (), addressed) == (OTHER_BOT,)
    assert rules.withheld_from("e2e", ALICE, (BOT, OTHER_BOT), addressed) == ()
    assert rules.withheld_from("e2e", ALICE, (), ()) == ()


@pytest.mark.parametrize("kind", ["system", "payment.receipt"])
def test_server_messages_are_never_withheld(kind: str) -> None:
    assert rules.withheld_from(kind, 0, (), (BOT,)) == ()
    assert not rules.hidden_from_bot(kind, 1, 0, (), (BOT,), BOT, 5)


def test_what_a_bot_reads_as_withheld() -> None:
    def hidden(seq: int, sender: int = ALICE, to: tuple[int, ...] = (), w: tuple[int, ...] = ()):
        return rules.hidden_from_bot("e2e", seq, sender, to, w, BOT, 10)

    assert hidden(11, w=(BOT,))  # withheld at commit
    assert not hidden(11, w=(OTHER_BOT,))
    assert hidden(9)  # before it joined
    assert not hidden(9, to=(BOT,))  # unless addressed to it
    assert not hidden(9, sender=BOT)  # or its own
    assert not hidden(10)


def test_initial_access_and_who_may_add_or_change_a_bot() -> None:
    assert rules.initial_access("direct") == "all"
    assert rules.initial_access("group") == rules.initial_access("channel") == "addressed"
    for check in (rules.check_add_bot, rules.check_set_bot_access):
        check("group", "admin")
        check("channel", "owner")
        with pytest.raises(rules.Forbidden):
            check("group", "member")
        with pytest.raises(rules.Invalid):
            check("direct", "member")


# ------------------------------------------------------------------ envelope


@given(
    accounts=st.lists(st.integers(1, 2**53 - 1), max_size=40).map(tuple),
    frame=st.binary(max_size=200),
)
def test_a_withheld_payload_round_trips(accounts: tuple[int, ...], frame: bytes) -> None:
    payload = envelope.withheld_payload(accounts, frame)
    assert envelope.split_withheld_payload(payload) == (accounts, frame)
    data = envelope.pack(envelope.WITHHELD, 7, 3, 2, payload)
    assert envelope.unpack(data) == (envelope.WITHHELD, 7, 3, 2, payload)


# ------------------------------------------------------------------ hub


@pytest.fixture
def broker() -> MemoryBroker:
    return MemoryBroker()


@pytest.fixture
def hot() -> HotCounters:
    return HotCounters()


@pytest.fixture
def hub(broker: MemoryBroker, hot: HotCounters) -> Hub:
    return Hub(broker, hot, node=1)


def _publish(broker: MemoryBroker, conv: int, seq: int, skip: tuple[int, ...], origin: int = 0):
    frame = f"deliver {seq}".encode()
    payload = envelope.withheld_payload(skip, frame)
    broker.publish(
        envelope.conv_topic(conv), envelope.pack(envelope.WITHHELD, seq, origin, 2, payload)
    )
    return frame


def test_the_hub_skips_every_connection_of_the_named_bots_and_delivers_to_the_rest(
    hub: Hub, broker: MemoryBroker, hot: HotCounters
) -> None:
    alice, bot_phone, bot_server, other_bot = (
        FakeOutlet(ALICE),
        FakeOutlet(BOT),
        FakeOutlet(BOT),
        FakeOutlet(OTHER_BOT),
    )
    for o in (alice, bot_phone, bot_server, other_bot):
        hub.attach(o, [42])
    frame = _publish(broker, 42, 5, (BOT,))
    assert alice.pushed == [frame]
    assert other_bot.pushed == [frame]
    assert bot_phone.pushed == bot_server.pushed == []
    assert hot.deliveries == 2
    assert hub.latest_seq(42) == 5  # a sync on a bot connection still waits for it


def test_withheld_messages_keep_the_origin_and_sync_floor_rules(
    hub: Hub, broker: MemoryBroker
) -> None:
    sender, syncing, caught_up = FakeOutlet(ALICE), FakeOutlet(2), FakeOutlet(3)
    for o in (sender, syncing, caught_up):
        hub.attach(o, [42])
    syncing.floors[42] = HOLD
    caught_up.floors[42] = 5
    _publish(broker, 42, 5, (BOT,), origin=sender.conn_id)
    frame = _publish(broker, 42, 6, (BOT,), origin=sender.conn_id)
    assert sender.pushed == []
    assert syncing.pushed == []
    assert caught_up.pushed == [frame]
