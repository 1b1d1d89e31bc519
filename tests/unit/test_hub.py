"""The hub's local fan-out over the in-memory broker, seen through fake outlets."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

import pytest

from chatd import envelope
from chatd.broker.memory import MemoryBroker
from chatd.hub import HOLD, WATCHED_CHANNELS, WATCHED_POSTS, Hub
from chatd.metrics import HotCounters

_conn_ids = itertools.count(1)

NODE = 1
"""The hub under test's node id."""
OTHER_NODE = 2
"""Envelopes published through the broker by these helpers come from another node."""


class FakeOutlet:
    """A connection as the hub sees it; remembers every frame pushed to it."""

    def __init__(self, account: int, device: int | None = None) -> None:
        self.conn_id = next(_conn_ids)
        self.account = account
        self.device = device if device is not None else 1000 + self.conn_id  # its own by default
        self.floors: dict[int, int] = {}
        self.watching: dict[int, None] = {}
        self.pushed: list[bytes] = []

    def push(self, data: bytes) -> None:
        self.pushed.append(data)


@pytest.fixture
def broker() -> MemoryBroker:
    return MemoryBroker()


@pytest.fixture
def hot() -> HotCounters:
    return HotCounters()


@pytest.fixture
def hub(broker: MemoryBroker, hot: HotCounters) -> Hub:
    return Hub(broker, hot, node=NODE)


def publish_message(broker: MemoryBroker, conv: int, seq: int, origin: int = 0) -> bytes:
    frame = f"deliver conv={conv} seq={seq}".encode()
    broker.publish(
        envelope.conv_topic(conv), envelope.pack(envelope.MESSAGE, seq, origin, OTHER_NODE, frame)
    )
    return frame


def publish_event(broker: MemoryBroker, conv: int, origin: int = 0, text: str = "typing") -> bytes:
    frame = f"event conv={conv} {text}".encode()
    broker.publish(
        envelope.conv_topic(conv), envelope.pack(envelope.EVENT, 0, origin, OTHER_NODE, frame)
    )
    return frame


def publish_to_account(broker: MemoryBroker, account: int, origin: int = 0) -> bytes:
    frame = f"account {account} event".encode()
    broker.publish(
        envelope.account_topic(account), envelope.pack(envelope.EVENT, 0, origin, OTHER_NODE, frame)
    )
    return frame


# ------------------------------------------------------------------ delivery


def test_message_reaches_every_watcher_except_the_origin_connection(
    hub: Hub, broker: MemoryBroker, hot: HotCounters
) -> None:
    sender = FakeOutlet(account=1)
    sender_other_device = FakeOutlet(account=1)
    bob = FakeOutlet(account=2)
    carol = FakeOutlet(account=3)
    for o in (sender, sender_other_device, bob, carol):
        hub.attach(o, [10])

    frame = publish_message(broker, 10, seq=1, origin=sender.conn_id)

    assert sender.pushed == []
    assert sender_other_device.pushed == [frame]
    assert bob.pushed == [frame]
    assert carol.pushed == [frame]
    assert hot.deliveries == 3


def test_watchers_get_the_same_frame_bytes_untouched(hub: Hub, broker: MemoryBroker) -> None:
    a, b = FakeOutlet(1), FakeOutlet(2)
    hub.attach(a, [10])
    hub.attach(b, [10])
    frame = publish_message(broker, 10, seq=1)
    assert a.pushed == b.pushed == [frame]
    assert a.pushed[0] is b.pushed[0]  # encoded once, shared by every watcher


def test_messages_arrive_in_publish_order(hub: Hub, broker: MemoryBroker) -> None:
    o = FakeOutlet(1)
    hub.attach(o, [10])
    frames = [publish_message(broker, 10, seq) for seq in range(1, 6)]
    assert o.pushed == frames


def test_message_goes_only_to_watchers_of_its_conversation(hub: Hub, broker: MemoryBroker) -> None:
    in_10, in_20 = FakeOutlet(1), FakeOutlet(2)
    hub.attach(in_10, [10])
    hub.attach(in_20, [20])
    frame = publish_message(broker, 20, seq=1)
    assert in_10.pushed == []
    assert in_20.pushed == [frame]


def test_nobody_watching_means_no_subscription_and_no_delivery(
    hub: Hub, broker: MemoryBroker, hot: HotCounters
) -> None:
    bystander = FakeOutlet(1)
    hub.attach(bystander, [])
    # the hub never subscribed to c.10, so the broker has nowhere to send it
    assert envelope.conv_topic(10) not in broker._handlers
    publish_message(broker, 10, seq=1)
    assert bystander.pushed == []
    assert hot.deliveries == 0


def test_last_watcher_leaving_drops_the_conversation_subscription(
    hub: Hub, broker: MemoryBroker
) -> None:
    a, b = FakeOutlet(1), FakeOutlet(2)
    hub.attach(a, [10])
    hub.attach(b, [10])
    assert envelope.conv_topic(10) in broker._handlers
    hub.detach(a)
    assert envelope.conv_topic(10) in broker._handlers
    hub.detach(b)
    assert envelope.conv_topic(10) not in broker._handlers
    publish_message(broker, 10, seq=1)
    assert a.pushed == b.pushed == []


def test_detached_outlet_receives_nothing_more(hub: Hub, broker: MemoryBroker) -> None:
    gone, stays = FakeOutlet(1), FakeOutlet(2)
    hub.attach(gone, [10])
    hub.attach(stays, [10])
    hub.detach(gone)
    frame = publish_message(broker, 10, seq=1)
    assert gone.pushed == []
    assert stays.pushed == [frame]
    assert gone.watching == {}


# ------------------------------------------------------------------ floors (sync boundary)


def test_floor_holds_back_messages_at_or_below_it(hub: Hub, broker: MemoryBroker) -> None:
    syncing, live = FakeOutlet(1), FakeOutlet(2)
    hub.attach(syncing, [10])
    hub.attach(live, [10])
    syncing.floors[10] = 3
    frames = {seq: publish_message(broker, 10, seq) for seq in range(1, 6)}
    assert syncing.pushed == [frames[4], frames[5]]
    assert live.pushed == [frames[s] for s in range(1, 6)]


def test_floor_applies_only_to_its_own_conversation(hub: Hub, broker: MemoryBroker) -> None:
    o = FakeOutlet(1)
    hub.attach(o, [10, 20])
    o.floors[10] = 100
    frame = publish_message(broker, 20, seq=1)
    assert o.pushed == [frame]


def test_hold_holds_back_every_message_until_the_floor_is_lowered(
    hub: Hub, broker: MemoryBroker
) -> None:
    o = FakeOutlet(1)
    hub.attach(o, [10])
    o.floors[10] = HOLD
    publish_message(broker, 10, seq=1)
    publish_message(broker, 10, seq=2**40)
    assert o.pushed == []
    o.floors[10] = 2  # Synced at 2: the boundary has no gap and no duplicate
    publish_message(broker, 10, seq=2)
    frame = publish_message(broker, 10, seq=3)
    assert o.pushed == [frame]


def test_events_are_not_held_back_by_floors(hub: Hub, broker: MemoryBroker) -> None:
    held, floored = FakeOutlet(1), FakeOutlet(2)
    hub.attach(held, [10])
    hub.attach(floored, [10])
    held.floors[10] = HOLD
    floored.floors[10] = 50
    frame = publish_event(broker, 10)
    assert held.pushed == [frame]
    assert floored.pushed == [frame]


def test_events_skip_the_origin_connection(hub: Hub, broker: MemoryBroker) -> None:
    typer, reader = FakeOutlet(1), FakeOutlet(2)
    hub.attach(typer, [10])
    hub.attach(reader, [10])
    frame = publish_event(broker, 10, origin=typer.conn_id)
    assert typer.pushed == []
    assert reader.pushed == [frame]


def test_events_do_not_move_latest_seq(hub: Hub, broker: MemoryBroker) -> None:
    hub.attach(FakeOutlet(1), [10])
    publish_message(broker, 10, seq=4)
    publish_event(broker, 10)
    assert hub.latest_seq(10) == 4


# ------------------------------------------------------------------ re-routing on membership


def test_watch_account_routes_a_joined_conversation_to_every_connection(
    hub: Hub, broker: MemoryBroker
) -> None:
    phone, laptop, other = FakeOutlet(7), FakeOutlet(7), FakeOutlet(8)
    hub.attach(phone, [])
    hub.attach(laptop, [])
    hub.attach(other, [])
    hub.watch_account(7, 30)
    frame = publish_message(broker, 30, seq=1)
    assert phone.pushed == [frame]
    assert laptop.pushed == [frame]
    assert other.pushed == []
    assert 30 in phone.watching


def test_watch_account_for_an_offline_account_subscribes_nothing(
    hub: Hub, broker: MemoryBroker
) -> None:
    hub.watch_account(99, 30)
    assert envelope.conv_topic(30) not in broker._handlers


def test_unwatch_account_stops_routing_and_forgets_the_floor(
    hub: Hub, broker: MemoryBroker
) -> None:
    leaver, stayer = FakeOutlet(7), FakeOutlet(8)
    hub.attach(leaver, [30])
    hub.attach(stayer, [30])
    leaver.floors[30] = HOLD
    hub.unwatch_account(7, 30)
    frame = publish_message(broker, 30, seq=1)
    assert leaver.pushed == []
    assert stayer.pushed == [frame]
    assert 30 not in leaver.floors
    assert 30 not in leaver.watching


def test_unwatch_account_by_the_only_watcher_drops_the_subscription(
    hub: Hub, broker: MemoryBroker
) -> None:
    o = FakeOutlet(7)
    hub.attach(o, [30])
    hub.unwatch_account(7, 30)
    assert envelope.conv_topic(30) not in broker._handlers


# ------------------------------------------------------------------ presence (attach/detach)


def test_attach_is_true_only_for_the_accounts_first_connection(hub: Hub) -> None:
    first, second, other = FakeOutlet(1), FakeOutlet(1), FakeOutlet(2)
    assert hub.attach(first, [10]) is True
    assert hub.attach(second, [10]) is False
    assert hub.attach(other, []) is True
    assert hub.online(1)
    assert hub.outlets_of(1) == frozenset({first, second})


def test_detach_is_true_only_for_the_accounts_last_connection(hub: Hub) -> None:
    first, second = FakeOutlet(1), FakeOutlet(1)
    hub.attach(first, [10])
    hub.attach(second, [10])
    assert hub.detach(first) is False
    assert hub.online(1)
    assert hub.detach(second) is True
    assert not hub.online(1)
    assert hub.outlets_of(1) == frozenset()


def test_detach_of_an_unknown_outlet_is_false(hub: Hub) -> None:
    assert hub.detach(FakeOutlet(5)) is False


def test_reconnect_after_last_detach_is_first_again(hub: Hub) -> None:
    o = FakeOutlet(1)
    assert hub.attach(o, []) is True
    assert hub.detach(o) is True
    assert hub.attach(FakeOutlet(1), []) is True


def test_account_events_reach_the_accounts_connections_except_origin(
    hub: Hub, broker: MemoryBroker
) -> None:
    phone, laptop, stranger = FakeOutlet(1), FakeOutlet(1), FakeOutlet(2)
    for o in (phone, laptop, stranger):
        hub.attach(o, [])
    frame = publish_to_account(broker, 1, origin=phone.conn_id)
    assert phone.pushed == []
    assert laptop.pushed == [frame]
    assert stranger.pushed == []


def test_account_topic_is_dropped_when_the_last_connection_leaves(
    hub: Hub, broker: MemoryBroker
) -> None:
    o = FakeOutlet(1)
    hub.attach(o, [])
    assert envelope.account_topic(1) in broker._handlers
    hub.detach(o)
    assert envelope.account_topic(1) not in broker._handlers


# ------------------------------------------------------------------ latest seq


def test_latest_seq_is_zero_before_anything_is_published(hub: Hub) -> None:
    assert hub.latest_seq(10) == 0


def test_latest_seq_tracks_the_highest_published_seq(hub: Hub, broker: MemoryBroker) -> None:
    o = FakeOutlet(1)
    hub.attach(o, [10, 20])
    for seq in (1, 2, 5, 3):  # an out-of-order publish never lowers it
        publish_message(broker, 10, seq)
    publish_message(broker, 20, seq=9)
    assert hub.latest_seq(10) == 5
    assert hub.latest_seq(20) == 9


def test_latest_seq_counts_messages_held_back_or_from_the_origin(
    hub: Hub, broker: MemoryBroker
) -> None:
    o = FakeOutlet(1)
    hub.attach(o, [10])
    o.floors[10] = HOLD
    publish_message(broker, 10, seq=3, origin=o.conn_id)
    assert o.pushed == []
    assert hub.latest_seq(10) == 3


# ------------------------------------------------------------------ device topics (to-device)


def publish_to_device(broker: MemoryBroker, device: int, origin: int = 0) -> bytes:
    frame = f"to-device {device}".encode()
    broker.publish(
        envelope.device_topic(device), envelope.pack(envelope.EVENT, 0, origin, OTHER_NODE, frame)
    )
    return frame


def test_device_events_reach_only_that_devices_connections(hub: Hub, broker: MemoryBroker) -> None:
    phone, phone_again, laptop = FakeOutlet(1, 11), FakeOutlet(1, 11), FakeOutlet(1, 12)
    for o in (phone, phone_again, laptop):
        hub.attach(o, [])
    frame = publish_to_device(broker, 11)
    assert phone.pushed == [frame]
    assert phone_again.pushed == [frame]
    assert laptop.pushed == []


def test_device_topic_is_held_while_the_device_has_a_connection(
    hub: Hub, broker: MemoryBroker
) -> None:
    first, second = FakeOutlet(1, 11), FakeOutlet(1, 11)
    assert envelope.device_topic(11) not in broker._handlers
    hub.attach(first, [])
    hub.attach(second, [])
    assert envelope.device_topic(11) in broker._handlers
    hub.detach(first)
    assert envelope.device_topic(11) in broker._handlers
    frame = publish_to_device(broker, 11)
    assert first.pushed == []
    assert second.pushed == [frame]
    hub.detach(second)
    assert envelope.device_topic(11) not in broker._handlers


def test_detaching_twice_leaves_the_device_topic_of_another_connection(
    hub: Hub, broker: MemoryBroker
) -> None:
    gone, stays = FakeOutlet(1, 11), FakeOutlet(1, 11)
    hub.attach(gone, [])
    hub.attach(stays, [])
    hub.detach(gone)
    hub.detach(gone)
    assert envelope.device_topic(11) in broker._handlers


# ------------------------------------------------------------------ several nodes


def test_envelope_header_round_trips_with_the_node_id() -> None:
    data = envelope.pack(envelope.MESSAGE, 5, 7, 2**64 - 1, b"frame")
    assert len(data) == envelope.HEADER_SIZE + 5
    assert envelope.unpack(data) == (envelope.MESSAGE, 5, 7, 2**64 - 1, b"frame")


def test_hubs_get_distinct_random_node_ids(broker: MemoryBroker, hot: HotCounters) -> None:
    ids = {Hub(broker, hot).node for _ in range(10)}
    assert len(ids) == 10
    assert 0 not in ids


def test_publish_delivers_locally_once_over_the_memory_broker(
    hub: Hub, broker: MemoryBroker, hot: HotCounters
) -> None:
    sender, reader = FakeOutlet(1), FakeOutlet(2)
    hub.attach(sender, [10])
    hub.attach(reader, [10])
    hub.publish(envelope.conv_topic(10), envelope.MESSAGE, 3, sender.conn_id, b"m3")
    assert reader.pushed == [b"m3"]
    assert sender.pushed == []
    assert hot.deliveries == 1
    assert hub.latest_seq(10) == 3


class RecordingBroker(MemoryBroker):
    """A broker that records what was published and delivers nothing (like Redis while down)."""

    remote = True

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, topic: str, data: bytes) -> None:
        self.sent.append((topic, data))


def test_publish_reaches_local_connections_while_the_broker_delivers_nothing(
    hot: HotCounters,
) -> None:
    broker = RecordingBroker()
    hub = Hub(broker, hot, node=NODE)
    reader = FakeOutlet(2)
    hub.attach(reader, [10])
    hub.publish(envelope.conv_topic(10), envelope.MESSAGE, 1, 0, b"m1")
    assert reader.pushed == [b"m1"]
    assert broker.sent == [
        (envelope.conv_topic(10), envelope.pack(envelope.MESSAGE, 1, 0, NODE, b"m1"))
    ]


def test_own_envelopes_coming_back_from_the_broker_are_ignored(
    hub: Hub, broker: MemoryBroker
) -> None:
    reader = FakeOutlet(2)
    hub.attach(reader, [10])
    broker.publish(envelope.conv_topic(10), envelope.pack(envelope.MESSAGE, 1, 0, NODE, b"own"))
    frame = publish_message(broker, 10, seq=2)
    assert reader.pushed == [frame]


def test_watch_from_another_node_routes_and_delivers_the_joined_message_once(
    hub: Hub, broker: MemoryBroker, hot: HotCounters
) -> None:
    phone, other = FakeOutlet(7), FakeOutlet(8)
    hub.attach(phone, [])
    hub.attach(other, [30])
    payload = envelope.watch_payload(4, b"joined")
    broker.publish(
        envelope.account_topic(7), envelope.pack(envelope.WATCH, 30, 0, OTHER_NODE, payload)
    )
    assert phone.pushed == [b"joined"]
    assert 30 in phone.watching
    assert hub.latest_seq(30) == 4
    publish_message(broker, 30, seq=4)  # the conversation's copy of the same message
    later = publish_message(broker, 30, seq=5)
    assert phone.pushed == [b"joined", later]
    assert hot.deliveries == 1 + 1 + 2  # joined; seq 4 to other; seq 5 to both


def test_unwatch_from_another_node_delivers_the_removal_once_and_counts_it(
    hub: Hub, broker: MemoryBroker, hot: HotCounters
) -> None:
    """The message that removed the account reaches each of its connections watching the
    conversation once, and is counted as a delivery like every other copy."""
    phone, laptop = FakeOutlet(7), FakeOutlet(7)
    hub.attach(phone, [30])
    hub.attach(laptop, [30])
    payload = envelope.watch_payload(9, b"removed")
    broker.publish(
        envelope.account_topic(7), envelope.pack(envelope.UNWATCH, 30, 0, OTHER_NODE, payload)
    )
    assert phone.pushed == laptop.pushed == [b"removed"]
    assert 30 not in phone.watching and 30 not in laptop.watching
    assert hot.deliveries == 2


def test_watch_without_a_message_only_routes(hub: Hub, broker: MemoryBroker) -> None:
    phone = FakeOutlet(7)
    hub.attach(phone, [])
    broker.publish(envelope.account_topic(7), envelope.pack(envelope.WATCH, 30, 0, OTHER_NODE, b""))
    assert phone.pushed == []
    assert envelope.conv_topic(30) in broker._handlers


def test_unwatch_from_another_node_stops_routing(hub: Hub, broker: MemoryBroker) -> None:
    leaver = FakeOutlet(7)
    hub.attach(leaver, [30])
    removed = publish_message(broker, 30, seq=6)
    broker.publish(
        envelope.account_topic(7), envelope.pack(envelope.UNWATCH, 30, 0, OTHER_NODE, b"")
    )
    publish_message(broker, 30, seq=7)
    assert leaver.pushed == [removed]
    assert 30 not in leaver.watching
    assert envelope.conv_topic(30) not in broker._handlers


def test_local_watch_and_unwatch_keep_single_node_order(hub: Hub, broker: MemoryBroker) -> None:
    """Joined: routed before its message; removed: unrouted after its message; once each."""
    member, stayer = FakeOutlet(7), FakeOutlet(8)
    hub.attach(member, [])
    hub.attach(stayer, [30])
    hub.watch(7, 30, (1, b"joined"))
    hub.publish(envelope.conv_topic(30), envelope.MESSAGE, 1, 0, b"joined")
    hub.publish(envelope.conv_topic(30), envelope.MESSAGE, 2, 0, b"removed")
    hub.unwatch(7, 30)
    hub.publish(envelope.conv_topic(30), envelope.MESSAGE, 3, 0, b"after")
    assert member.pushed == [b"joined", b"removed"]
    assert stayer.pushed == [b"joined", b"removed", b"after"]


def test_an_in_process_broker_is_not_published_to_the_hub_delivers_directly(
    hot: HotCounters,
) -> None:
    broker = RecordingBroker()
    broker.remote = False
    hub = Hub(broker, hot, node=NODE)
    reader = FakeOutlet(2)
    hub.attach(reader, [10])
    hub.publish(envelope.conv_topic(10), envelope.MESSAGE, 1, 0, b"m1")
    assert reader.pushed == [b"m1"]
    assert broker.sent == []


def test_push_all_reaches_every_local_connection_once(hub: Hub) -> None:
    a1, a2, b = FakeOutlet(1), FakeOutlet(1), FakeOutlet(3)  # two devices of account 1
    for outlet in (a1, a2, b):
        hub.attach(outlet, [])
    hub.push_all(b"resync")
    assert [o.pushed for o in (a1, a2, b)] == [[b"resync"]] * 3


# ------------------------------------------------------------------ a login's read (issue 14.7)


def test_an_unwatch_during_a_logins_read_wins_over_the_read(hub: Hub, broker: MemoryBroker) -> None:
    o = FakeOutlet(account=7)
    hub.attach(o)  # attached before the memberships are read
    hub.unwatch(7, 10)  # removed from 10 while the read is in flight
    hub.watch_read(o, [10, 20])  # the read predates the removal
    assert list(o.watching) == [20]
    publish_message(broker, 10, 5)
    assert o.pushed == []


def test_a_watch_during_a_logins_read_routes_at_once(hub: Hub, broker: MemoryBroker) -> None:
    o = FakeOutlet(account=7)
    hub.attach(o)
    hub.unwatch(7, 10)
    hub.watch(7, 10)  # removed, then invited again, during the read
    hub.watch_read(o, [])  # the read saw neither
    assert list(o.watching) == [10]


def test_a_connection_closed_during_its_read_is_not_routed_afterwards(hub: Hub) -> None:
    o = FakeOutlet(account=7)
    hub.attach(o)
    hub.detach(o)
    hub.watch_read(o, [10])
    assert o.watching == {}


# ------------------------------------------------------------------ removals across nodes


def publish_after_removals(broker: MemoryBroker, conv: int, seq: int, removals: int) -> bytes:
    """A message of ``conv`` appended after ``removals`` members left (``StoredMessage``)."""
    frame = f"deliver conv={conv} seq={seq}".encode()
    payload = envelope.withheld_payload((), frame, removals)
    broker.publish(
        envelope.conv_topic(conv), envelope.pack(envelope.WITHHELD, seq, 0, OTHER_NODE, payload)
    )
    return frame


class Members:
    """The store's ``members_since``, answered when the test says so."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, list[int]]] = []
        self.answer: asyncio.Future[dict[int, int]] = asyncio.get_running_loop().create_future()

    async def __call__(self, conv: int, accounts: Sequence[int]) -> dict[int, int]:
        self.asked.append((conv, list(accounts)))
        return await asyncio.shield(self.answer)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_message_after_a_removal_this_node_has_not_applied_waits_for_a_reread(
    broker: MemoryBroker, hot: HotCounters
) -> None:
    """Node C's message after bob's removal arrives before node A's UNWATCH: it is held (with
    what follows it) until the membership is read again; bob gets none of it and stops
    watching; carol gets all of it, in order; the next message costs no read."""
    members = Members()
    hub = Hub(broker, hot, node=NODE, members=members)
    bob, carol = FakeOutlet(7), FakeOutlet(8)
    hub.attach(bob, [30])
    hub.attach(carol, [30])
    first = publish_after_removals(broker, 30, seq=10, removals=1)
    second = publish_message(broker, 30, seq=11)  # from an older node: held behind it too
    await settle()
    assert bob.pushed == carol.pushed == []
    assert members.asked == [(30, [7, 8])]
    members.answer.set_result({8: 1})
    await settle()
    assert carol.pushed == [first, second]
    assert bob.pushed == [] and 30 not in bob.watching
    third = publish_after_removals(broker, 30, seq=12, removals=1)
    assert carol.pushed == [first, second, third]
    assert hub.rechecks == 1


async def test_a_reread_delivers_to_members_only_from_their_join(
    broker: MemoryBroker, hot: HotCounters
) -> None:
    """bob was removed, then added back (seq 12) before the read: he keeps watching but does
    not get seq 10, which was written while he was out."""
    members = Members()
    hub = Hub(broker, hot, node=NODE, members=members)
    bob, carol = FakeOutlet(7), FakeOutlet(8)
    hub.attach(bob, [30])
    hub.attach(carol, [30])
    publish_after_removals(broker, 30, seq=10, removals=1)
    members.answer.set_result({7: 12, 8: 1})
    await settle()
    assert bob.pushed == [] and 30 in bob.watching
    assert len(carol.pushed) == 1
    later = publish_after_removals(broker, 30, seq=13, removals=1)
    assert bob.pushed == [later]


async def test_an_unwatch_held_behind_a_reread_comes_after_what_was_held(
    broker: MemoryBroker, hot: HotCounters
) -> None:
    """The UNWATCH that removes bob carries his removal message; arriving while earlier
    messages are held, it waits for them, so bob still gets what preceded his removal."""
    members = Members()
    hub = Hub(broker, hot, node=NODE, members=members)
    bob = FakeOutlet(7)
    hub.attach(bob, [30])
    before = publish_after_removals(broker, 30, seq=10, removals=1)  # carol left before it
    payload = envelope.watch_payload(11, b"bob removed")
    broker.publish(
        envelope.account_topic(7), envelope.pack(envelope.UNWATCH, 30, 0, OTHER_NODE, payload)
    )
    members.answer.set_result({7: 1})  # read before bob's removal committed
    await settle()
    assert bob.pushed == [before, b"bob removed"]
    assert 30 not in bob.watching


async def test_a_reread_removal_during_a_logins_read_wins_over_the_read(
    broker: MemoryBroker, hot: HotCounters
) -> None:
    """bob's new connection is attached and its memberships are being read when a message
    after his removal (whose UNWATCH this node never got) makes the hub read conversation 30's
    members again: the re-read stops routing 30 to him, and the login's older read, which
    still lists 30, must not route it back."""
    members = Members()
    hub = Hub(broker, hot, node=NODE, members=members)
    bob, carol = FakeOutlet(7), FakeOutlet(8)
    hub.attach(carol, [30])
    hub.attach(bob)  # login: attached, memberships being read
    hub.watch(7, 30)  # an old WATCH for 30 arrives during the read: routed at once
    publish_after_removals(broker, 30, seq=10, removals=1)
    members.answer.set_result({8: 1})  # bob is no member any more
    await settle()
    assert 30 not in bob.watching
    hub.watch_read(bob, [30])  # the login's read predates the removal
    assert 30 not in bob.watching
    publish_after_removals(broker, 30, seq=11, removals=1)
    assert bob.pushed == [] and len(carol.pushed) == 2


# ------------------------------------------------------------------ public channels (SPEC.md 20.3)


def test_a_channels_posts_reach_its_followers_connections_only(hub: Hub) -> None:
    follower, other = FakeOutlet(account=7), FakeOutlet(account=8)
    for o in (follower, other):
        hub.attach(o, [])
        hub.watch_feed(o, True)
    hub.follow(7, 40)
    hub.publish(envelope.channel_topic(40), envelope.EVENT, 0, 0, b"post")
    assert (follower.pushed, other.pushed) == ([b"post"], [])
    hub.unfollow(7, 40)
    hub.publish(envelope.channel_topic(40), envelope.EVENT, 0, 0, b"later")
    assert follower.pushed == [b"post"]


def test_an_unfollow_during_a_logins_read_wins_over_the_read(hub: Hub) -> None:
    o = FakeOutlet(account=7)
    hub.attach(o)  # attached before the follows are read
    hub.watch_feed(o, True)
    hub.unfollow(7, 40)  # unfollowed (on another connection) while the read is in flight
    hub.watch_read(o, [])
    hub.follow_read(o, [40, 41])  # the read predates the unfollow
    hub.publish(envelope.channel_topic(40), envelope.EVENT, 0, 0, b"p40")
    hub.publish(envelope.channel_topic(41), envelope.EVENT, 0, 0, b"p41")
    assert o.pushed == [b"p41"]


def test_a_follow_again_during_the_read_routes_and_a_detached_outlet_gets_nothing(
    hub: Hub,
) -> None:
    o, closed = FakeOutlet(account=7), FakeOutlet(account=9)
    hub.attach(o)
    hub.watch_feed(o, True)
    hub.unfollow(7, 40)
    hub.follow(7, 40)  # unfollowed then followed again during the read
    hub.follow_read(o, [])
    hub.attach(closed)
    hub.detach(closed)
    hub.follow_read(closed, [40])
    hub.publish(envelope.channel_topic(40), envelope.EVENT, 0, 0, b"p")
    assert (o.pushed, closed.pushed) == ([b"p"], [])


# ------------------------------------------------------------------ watching (SPEC.md 20.7)


def test_a_node_subscribes_to_a_channel_only_while_a_connection_watches_it(
    hub: Hub, broker: MemoryBroker
) -> None:
    """Following routes nothing by itself: the feed of a follower, or the channel's page, does;
    the broker topic is held exactly while one of them is on."""
    follower, reader = FakeOutlet(account=7), FakeOutlet(account=8)
    hub.attach(follower, [])
    hub.attach(reader, [])
    hub.follow_read(follower, [40])
    hub.follow_read(reader, [])
    topic = envelope.channel_topic(40)
    assert topic not in broker._handlers  # a connected follower that watches nothing
    hub.watch_feed(follower, True)
    hub.watch_channel(reader, 40, True)
    hub.publish(topic, envelope.EVENT, 0, 0, b"post")
    assert follower.pushed == reader.pushed == [b"post"]
    hub.watch_feed(follower, False)
    assert topic in broker._handlers
    hub.detach(reader)
    assert topic not in broker._handlers


def test_a_posts_thread_goes_to_its_watchers_and_the_oldest_watch_gives_way(
    hub: Hub, broker: MemoryBroker
) -> None:
    o, other = FakeOutlet(account=7), FakeOutlet(account=8)
    hub.attach(o, [])
    hub.attach(other, [])
    for seq in range(1, WATCHED_POSTS + 2):  # one more than the bound: post 1 is dropped
        hub.watch_post(o, 40, seq, True)
    hub.watch_post(other, 40, 1, True)
    assert len(hub.watched(o)[1]) == WATCHED_POSTS
    assert hub.watched(o)[1][0] == (40, 2)
    hub.publish(envelope.post_topic(40, 1), envelope.EVENT, 0, 0, b"c1")
    hub.publish(envelope.post_topic(40, 2), envelope.EVENT, 0, 0, b"c2")
    assert (o.pushed, other.pushed) == ([b"c2"], [b"c1"])
    hub.detach(o)
    assert envelope.post_topic(40, 2) not in broker._handlers
    assert envelope.post_topic(40, 1) in broker._handlers


def test_watching_more_channels_than_the_bound_stops_the_oldest(hub: Hub) -> None:
    o = FakeOutlet(account=7)
    hub.attach(o, [])
    for ch in range(1, WATCHED_CHANNELS + 2):
        hub.watch_channel(o, ch, True)
    hub.watch_channel(o, 2, True)  # watched again: the newest now
    hub.watch_channel(o, 100, True)
    assert hub.watched(o)[0] == [*range(4, WATCHED_CHANNELS + 2), 2, 100]
    hub.publish(envelope.channel_topic(1), envelope.EVENT, 0, 0, b"p1")
    hub.publish(envelope.channel_topic(3), envelope.EVENT, 0, 0, b"p3")
    hub.publish(envelope.channel_topic(2), envelope.EVENT, 0, 0, b"p2")
    assert o.pushed == [b"p2"]
