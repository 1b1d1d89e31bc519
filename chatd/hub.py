"""Which local connections watch which conversation, and delivery to them.

The hub subscribes the node to a conversation's broker topic while at least one local connection
watches it, to an account's topic while that account has a local connection, and to a device's
topic (to-device items) while that device has one. For every
envelope it returns at once when nobody local watches; otherwise it hands the SAME frame bytes to
each watcher's ``push`` (a synchronous write to the socket buffer; the outlet disconnects itself
as a slow consumer when its buffer passes the bound).

Several nodes: every envelope carries the id of the node that published it (random, 64 bits,
one per hub). ``publish`` hands it to the broker AND delivers it to this node's own connections
at once, so a node keeps serving its own clients while the broker is down; the copy coming back
from the broker with this node's id is ignored. Membership changes travel as WATCH/UNWATCH
control envelopes on the account's topic, so every node holding a connection of that account
re-routes it (``watch``/``unwatch``).

Public channels (SPEC.md 20.7): following routes nothing by itself. An outlet gets a channel's
posts while it watches its feed and its account follows (or administers) the channel, or while
it watches the channel; a post's comments and counts while it watches that post (its own topic).
The node subscribes to a channel's or a post's topic only while one of its outlets gets it, so
a post of a channel with 100,000 followers crosses to the nodes where someone watches it and
is written to those connections only. FOLLOW/UNFOLLOW envelopes keep each outlet's followed set
right on every node; what an outlet watches is bounded (``WATCHED_CHANNELS``,
``WATCHED_POSTS``: one more stops the oldest) and forgotten when it detaches.

Sync interplay: an outlet's ``floors[conv]`` holds back live messages with seq <= floor. While a
sync of ``conv`` runs the floor is ``HOLD`` (everything held back; the sync reads it from the
store), and after ``Synced`` it is the synced seq, so the boundary has no gap and no duplicate.

Bots (SPEC.md 16.3): a message withheld from bots whose access is ``addressed`` travels as a
WITHHELD envelope naming them; the hub skips those accounts' outlets. The set is decided by the
node that committed the message, inside the commit, so every node skips the same connections
and an access change can never race a message through another node. Conversations without such
bots get plain MESSAGE envelopes and pay nothing for it.

Removals across nodes (issue 14.7): Redis orders envelopes per publisher only, so a message that
node C commits just after node A removed bob can reach bob's node B before A's UNWATCH. Every
message appended after members left carries the conversation's count of removals
(``StoredMessage.removals``, read under the conversation's lock in the append, so a removal
committed before the message is counted). A hub knows up to which count its routing of each
conversation is right (``_removals``); a message with a higher count is held, with whatever
follows it on that conversation, while the hub re-reads from the store which of its watching
accounts are members (``members``) and since which seq: it stops routing to the others, delivers
what it held to members only, and then knows the higher count. One read per removal per node
that watches the conversation; conversations nobody left pay nothing.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol, TypeVar

from chatd import envelope
from chatd.broker.base import Broker
from chatd.metrics import HotCounters

log = logging.getLogger(__name__)

HOLD = 2**63
"""Floor of a conversation whose sync is in progress on an outlet."""

MembersOf = Callable[[int, Sequence[int]], Awaitable[dict[int, int]]]
"""``(conv, accounts) -> {account: joined seq}`` of those of ``accounts`` that are members of
``conv`` now (the store's ``members_since``)."""

REREADS = 5
"""Reads of one re-check at most: another is made while accounts started watching during one."""

WATCHED_CHANNELS = 10
"""Channels one connection watches at once (SPEC.md 20.7): one more stops the oldest."""
WATCHED_POSTS = 100
"""Posts one connection watches at once (SPEC.md 20.7): one more stops the oldest."""

_K = TypeVar("_K")

_Held = tuple[int, int, int, bytes]
"""An envelope waiting for a re-check: ``(kind, seq, origin, payload)``; for an UNWATCH,
``(UNWATCH, conv, account, payload)``."""


class Outlet(Protocol):
    """A local authenticated connection, as the hub sees it."""

    conn_id: int
    account: int
    device: int
    floors: dict[int, int]
    watching: dict[int, None]
    """The conversations routed to this outlet (a dict used as an ordered set)."""

    def push(self, data: bytes) -> None:
        """Write ``data`` now, without waiting; a slow consumer is disconnected."""
        ...


class Hub:
    def __init__(
        self,
        broker: Broker,
        hot: HotCounters,
        node: int | None = None,
        members: MembersOf | None = None,
    ) -> None:
        self._broker = broker
        self._hot = hot
        self._members = members
        """Re-reads membership (None: never, e.g. a hub without a store in unit tests)."""
        self._removals: dict[int, int] = {}
        """Per watched conversation: the count of removals its routing here is known to reflect."""
        self._held: dict[int, list[_Held]] = {}
        """Conversations being re-checked: their envelopes since, in arrival order."""
        self._rewatched: dict[int, set[int]] = {}
        """Per conversation being re-read: accounts that started watching it during the read."""
        self._tasks: set[asyncio.Task[None]] = set()
        self.rechecks = 0
        """Membership re-reads made (each after a removal this node had not applied)."""
        self.node = node if node is not None else secrets.randbits(64) or 1
        """This node's id in the envelopes it publishes."""
        broker.ignore_own(*envelope.own_marker(self.node))
        self._watchers: dict[int, set[Outlet]] = {}
        self._accounts: dict[int, list[Outlet]] = {}  # lists: a few devices each
        self._devices: dict[int, list[Outlet]] = {}  # usually one connection each
        self._latest: dict[int, int] = {}
        self._channels: dict[int, set[Outlet]] = {}
        """Public channel -> the local outlets its posts go to: those watching the feed whose
        account follows or administers it, and those watching the channel (SPEC.md 20.7)."""
        self._follows: dict[Outlet, set[int]] = {}
        """Outlet -> the public channels its account follows or administers (its feed)."""
        self._feed: set[Outlet] = set()
        """Outlets watching the feed."""
        self._open: dict[Outlet, dict[int, None]] = {}
        """Outlet -> the channels it watches, oldest first (at most ``WATCHED_CHANNELS``)."""
        self._threads: dict[Outlet, dict[tuple[int, int], None]] = {}
        """Outlet -> the posts it watches, oldest first (at most ``WATCHED_POSTS``)."""
        self._posts: dict[tuple[int, int], set[Outlet]] = {}
        """Public post ``(channel, seq)`` -> the local outlets watching its thread."""
        self._unfollowed: dict[Outlet, set[int]] = {}
        """Outlets attached before their follows were read: the channels UNFOLLOWed for their
        account meanwhile (``follow_read`` skips them, as ``watch_read`` does removals)."""
        self._reading: dict[Outlet, set[int]] = {}
        """Outlets attached before their memberships were read: the conversations UNWATCHed
        for their account meanwhile (``attach`` without ``convs``, then ``watch_read``)."""

    # ------------------------------------------------------------------ membership of outlets

    def attach(self, outlet: Outlet, convs: list[int] | None = None) -> bool:
        """Start routing ``convs``, the account's events and the device's events to ``outlet``.
        True when this is the account's first local connection (it just came online here).

        A login attaches BEFORE it reads the account's memberships (``convs`` None), then hands
        what it read to ``watch_read``: an UNWATCH that arrives while the read is in flight is
        remembered and wins over the read, which may predate the removal (on PostgreSQL the read
        is a round trip during which the removal can commit and its UNWATCH arrive; issue 14.7).
        A WATCH meanwhile routes the conversation at once, as for any attached outlet."""
        if convs is None:
            self._reading[outlet] = set()
            self._unfollowed[outlet] = set()
        first = outlet.account not in self._accounts
        if first:
            self._accounts[outlet.account] = []
            self._broker.subscribe(envelope.account_topic(outlet.account), self._from_broker)
        self._accounts[outlet.account].append(outlet)
        same_device = self._devices.get(outlet.device)
        if same_device is None:
            self._devices[outlet.device] = [outlet]
            self._broker.subscribe(envelope.device_topic(outlet.device), self._from_broker)
        else:
            same_device.append(outlet)
        for conv in convs or ():
            self._watch(outlet, conv)
        return first

    def watch_read(self, outlet: Outlet, convs: list[int]) -> None:
        """Route ``convs``, the memberships read after ``attach(outlet)``, to ``outlet``, but
        not those UNWATCHed since the attach (the read may have been older than the removal)."""
        gone = self._reading.pop(outlet, None)
        if gone is None:  # detached meanwhile (the connection closed during the read)
            return
        for conv in convs:
            if conv not in gone:
                self._watch(outlet, conv)

    def detach(self, outlet: Outlet) -> bool:
        """Stop routing to ``outlet``. True when it was the account's last local connection."""
        self._reading.pop(outlet, None)
        self._unfollowed.pop(outlet, None)
        self._feed.discard(outlet)
        for channel in tuple(self._follows.get(outlet, ())):
            self._unfollow(outlet, channel)
        for channel in tuple(self._open.get(outlet, ())):
            self.watch_channel(outlet, channel, False)
        for post in tuple(self._threads.get(outlet, ())):
            self.watch_post(outlet, *post, False)
        for conv in tuple(outlet.watching):
            self._unwatch(outlet, conv)
        same_device = self._devices.get(outlet.device)
        if same_device is not None and outlet in same_device:
            same_device.remove(outlet)
            if not same_device:
                del self._devices[outlet.device]
                self._broker.unsubscribe(envelope.device_topic(outlet.device))
        outlets = self._accounts.get(outlet.account)
        if outlets is None:
            return False
        if outlet in outlets:
            outlets.remove(outlet)
        if outlets:
            return False
        del self._accounts[outlet.account]
        self._broker.unsubscribe(envelope.account_topic(outlet.account))
        return True

    # ------------------------------------------------------------------ publishing

    def publish(self, topic: str, kind: int, seq: int, origin: int, frame: bytes) -> None:
        """Publish to every node: through the broker, and to this node's connections directly
        (its broker copy is ignored when it comes back)."""
        if self._broker.remote:  # in-process: this node's hub is the only subscriber
            self._broker.publish(topic, envelope.pack(kind, seq, origin, self.node, frame))
        self._deliver(topic, kind, seq, origin, frame)

    def publish_conv(self, conv: int, kind: int, seq: int, origin: int, frame: bytes) -> None:
        """``publish`` to conversation ``conv``'s topic: in-process, its topic string is neither
        made nor parsed back (once per message)."""
        if self._broker.remote:
            topic = envelope.conv_topic(conv)
            self._broker.publish(topic, envelope.pack(kind, seq, origin, self.node, frame))
        if kind != envelope.MESSAGE or self._held:
            self._on_conv(conv, kind, seq, origin, frame)
            return
        # ``_on_conv``'s common case, without its call (once per message).
        watchers = self._watchers.get(conv)
        if watchers:
            self._fan(conv, watchers, seq, origin, frame)

    def watch(self, account: int, conv: int, joined: tuple[int, bytes] | None = None) -> None:
        """On every node: route ``conv`` to ``account``'s connections, then hand them
        ``joined`` (``(seq, Deliver frame)`` of the message that added the account), if any."""
        payload = b"" if joined is None else envelope.watch_payload(*joined)
        self.publish(envelope.account_topic(account), envelope.WATCH, conv, 0, payload)

    def unwatch(self, account: int, conv: int, removed: tuple[int, bytes] | None = None) -> None:
        """On every node: hand ``account``'s connections watching ``conv`` the message that
        removed it (``(seq, Deliver frame)``), if any, then stop routing ``conv`` to them."""
        payload = b"" if removed is None else envelope.watch_payload(*removed)
        self.publish(envelope.account_topic(account), envelope.UNWATCH, conv, 0, payload)

    def watch_account(self, account: int, conv: int) -> None:
        """``account`` joined ``conv``: route it to the account's local connections."""
        for outlet in self._accounts.get(account, ()):
            self._watch(outlet, conv)

    def unwatch_account(self, account: int, conv: int) -> None:
        for outlet in self._accounts.get(account, ()):
            self._removed(outlet, conv)

    def _removed(self, outlet: Outlet, conv: int) -> None:
        """``outlet``'s account is no member of ``conv``: stop routing it, and remember it for
        a login read in flight (``watch_read``), which may predate the removal."""
        self._unwatch(outlet, conv)
        outlet.floors.pop(conv, None)
        gone = self._reading.get(outlet) if self._reading else None
        if gone is not None:
            gone.add(conv)

    # ------------------------------------------------------------------ public channels

    def follow_read(self, outlet: Outlet, channels: list[int]) -> None:
        """Route the posts of ``channels`` (followed or administered, read at login) to
        ``outlet``, but not those UNFOLLOWed since the attach (the read may predate it)."""
        gone = self._unfollowed.pop(outlet, set())
        if outlet.account not in self._accounts or outlet not in self._accounts[outlet.account]:
            return  # detached meanwhile
        for channel in channels:
            if channel not in gone:
                self._follow(outlet, channel)

    def follow(self, account: int, channel: int) -> None:
        """On every node: route ``channel``'s posts to ``account``'s connections."""
        self.publish(envelope.account_topic(account), envelope.FOLLOW, channel, 0, b"")

    def unfollow(self, account: int, channel: int) -> None:
        self.publish(envelope.account_topic(account), envelope.UNFOLLOW, channel, 0, b"")

    def _follow(self, outlet: Outlet, channel: int) -> None:
        self._follows.setdefault(outlet, set()).add(channel)
        if outlet in self._feed:
            self._route(outlet, channel)

    def _unfollow(self, outlet: Outlet, channel: int) -> None:
        mine = self._follows.get(outlet)
        if mine is not None:
            mine.discard(channel)
            if not mine:
                del self._follows[outlet]
        self._route(outlet, channel)

    def _route(self, outlet: Outlet, channel: int) -> None:
        """Send ``channel``'s posts to ``outlet`` when it watches the feed and its account
        follows the channel, or it watches the channel; else not. The node subscribes to the
        channel's topic while one of its outlets gets them, and only then."""
        wanted = (outlet in self._feed and channel in self._follows.get(outlet, ())) or (
            channel in self._open.get(outlet, ())
        )
        if wanted:
            self._add(self._channels, channel, envelope.channel_topic(channel), outlet)
        else:
            self._remove(self._channels, channel, envelope.channel_topic(channel), outlet)

    def _add(self, routes: dict[_K, set[Outlet]], key: _K, topic: str, outlet: Outlet) -> None:
        """Route ``key`` (a channel, a post) to ``outlet``: the node subscribes to ``topic``
        with the first outlet it routes ``key`` to."""
        outlets = routes.get(key)
        if outlets is None:
            outlets = routes[key] = set()
            self._broker.subscribe(topic, self._from_broker)
        outlets.add(outlet)

    def _remove(self, routes: dict[_K, set[Outlet]], key: _K, topic: str, outlet: Outlet) -> None:
        """Stop routing ``key`` to ``outlet``: the node unsubscribes from ``topic`` with the
        last outlet it routed ``key`` to."""
        outlets = routes.get(key)
        if outlets is not None:
            outlets.discard(outlet)
            if not outlets:
                del routes[key]
                self._broker.unsubscribe(topic)

    # ------------------------------------------------------------------ watching (SPEC.md 20.7)

    def watch_feed(self, outlet: Outlet, on: bool) -> None:
        """``outlet`` gets (or no longer gets) the posts of every channel its account follows
        or administers."""
        if on:
            self._feed.add(outlet)
        else:
            self._feed.discard(outlet)
        for channel in tuple(self._follows.get(outlet, ())):
            self._route(outlet, channel)

    def watch_channel(self, outlet: Outlet, channel: int, on: bool) -> None:
        """``outlet`` shows ``channel``'s page (or no longer): it gets its posts, following or
        not. Watching one more than ``WATCHED_CHANNELS`` stops watching the oldest."""
        mine = self._open.setdefault(outlet, {})
        mine.pop(channel, None)
        if on:
            mine[channel] = None  # the newest
            if len(mine) > WATCHED_CHANNELS:
                oldest = next(iter(mine))
                del mine[oldest]
                self._route(outlet, oldest)
        if not mine:
            del self._open[outlet]
        self._route(outlet, channel)

    def watch_post(self, outlet: Outlet, channel: int, seq: int, on: bool) -> None:
        """``outlet`` shows post ``seq``'s thread (or no longer): it gets the post's comments
        and reaction counts. Watching one more than ``WATCHED_POSTS`` stops watching the
        oldest."""
        mine = self._threads.setdefault(outlet, {})
        post = (channel, seq)
        was = post in mine
        mine.pop(post, None)
        if on:
            mine[post] = None
            if not was:
                self._add(self._posts, post, envelope.post_topic(channel, seq), outlet)
            if len(mine) > WATCHED_POSTS:
                oldest = next(iter(mine))
                self.watch_post(outlet, *oldest, False)
        elif was:
            self._remove(self._posts, post, envelope.post_topic(channel, seq), outlet)
        if not mine:
            self._threads.pop(outlet, None)

    def watched(self, outlet: Outlet) -> tuple[list[int], list[tuple[int, int]]]:
        """The channels and the posts ``outlet`` watches, oldest first."""
        return list(self._open.get(outlet, ())), list(self._threads.get(outlet, ()))

    def _on_channel(self, channel: int, origin: int, frame: bytes) -> None:
        self._push_to(self._channels.get(channel, ()), origin, frame)

    def _on_post(self, post: tuple[int, int], origin: int, frame: bytes) -> None:
        self._push_to(self._posts.get(post, ()), origin, frame)

    def _push_to(self, outlets: Iterable[Outlet], origin: int, frame: bytes) -> None:
        sent = 0
        for outlet in tuple(outlets):
            if outlet.conn_id != origin:
                outlet.push(frame)
                sent += 1
        self._hot.deliveries += sent

    def push_all(self, data: bytes) -> None:
        """Write ``data`` to every local connection (e.g. ``resync`` after a broker outage)."""
        for outlets in tuple(self._accounts.values()):
            for outlet in tuple(outlets):
                outlet.push(data)

    def online(self, account: int) -> bool:
        return account in self._accounts

    def outlets_of(self, account: int) -> frozenset[Outlet]:
        return frozenset(self._accounts.get(account, ()))

    @property
    def remote(self) -> bool:
        """True when other nodes may exist (the broker is not in-process)."""
        return self._broker.remote

    def after_published(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once everything published so far has left this node (at once
        in-process), e.g. an ack: a node killed after acking has handed the message on."""
        if self._broker.remote:
            self._broker.after_flush(callback)
        else:
            callback()

    async def published(self) -> None:
        """Wait until everything published so far has left this node (see ``after_published``)."""
        if not self._broker.remote:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def release() -> None:
            if not done.done():
                done.set_result(None)

        self._broker.after_flush(release)
        await done

    async def barrier(self) -> bool | None:
        """Wait until this node's subscriptions so far are in effect at a remote broker: None
        (at once) with the in-process broker, where they always are; else whether the broker
        confirmed in time."""
        if not self._broker.remote:
            return None
        return await self._broker.barrier()

    def latest_seq(self, conv: int) -> int:
        """Highest seq of ``conv`` this node has seen published (0 if none)."""
        return self._latest.get(conv, 0)

    def _watch(self, outlet: Outlet, conv: int) -> None:
        if self._rewatched:
            rewatched = self._rewatched.get(conv)
            if rewatched is not None:
                rewatched.add(outlet.account)
        watchers = self._watchers.get(conv)
        if watchers is None:
            watchers = self._watchers[conv] = set()
            self._broker.subscribe(envelope.conv_topic(conv), self._from_broker)
        watchers.add(outlet)
        outlet.watching[conv] = None

    def _unwatch(self, outlet: Outlet, conv: int) -> None:
        outlet.watching.pop(conv, None)
        watchers = self._watchers.get(conv)
        if watchers is None:
            return
        watchers.discard(outlet)
        if not watchers:
            del self._watchers[conv]
            self._latest.pop(conv, None)
            self._removals.pop(conv, None)
            self._broker.unsubscribe(envelope.conv_topic(conv))

    # ------------------------------------------------------------------ delivery

    def _from_broker(self, topic: str, data: bytes) -> None:
        kind, seq, origin, node, frame = envelope.unpack(data)
        if node != self.node:  # this node's own envelopes were delivered when published
            self._deliver(topic, kind, seq, origin, frame)

    def _deliver(self, topic: str, kind: int, seq: int, origin: int, frame: bytes) -> None:
        prefix = topic[0]
        if prefix == "c":
            self._on_conv(int(topic[2:]), kind, seq, origin, frame)
        elif prefix == "a":
            self._on_account(int(topic[2:]), kind, seq, origin, frame)
        elif prefix == "p":
            self._on_channel(int(topic[2:]), origin, frame)
        elif prefix == "t":
            ch, _, post = topic[2:].partition(".")
            self._on_post((int(ch), int(post)), origin, frame)
        else:
            self._on_device(int(topic[2:]), origin, frame)

    def _on_conv(self, conv: int, kind: int, seq: int, origin: int, frame: bytes) -> None:
        watchers = self._watchers.get(conv)
        if not watchers:
            return
        if kind == envelope.MESSAGE:
            if self._held and conv in self._held:
                self._held[conv].append((kind, seq, origin, frame))
                return
            self._fan(conv, watchers, seq, origin, frame)
        elif kind == envelope.WITHHELD:
            self._withheld(conv, watchers, seq, origin, frame)
        else:
            for outlet in tuple(watchers):
                if outlet.conn_id != origin:
                    outlet.push(frame)

    def _fan(self, conv: int, watchers: set[Outlet], seq: int, origin: int, frame: bytes) -> None:
        """Record ``seq`` as ``conv``'s latest and push it to every watcher but ``origin`` and
        those whose floor (a sync still delivering up to it) already covers it: the hot path of
        one message."""
        if seq > self._latest.get(conv, 0):
            self._latest[conv] = seq
        sent = 0
        for outlet in tuple(watchers):
            if outlet.conn_id == origin:
                continue
            floor = outlet.floors.get(conv)
            if floor is not None and seq <= floor:
                continue
            outlet.push(frame)
            sent += 1
        self._hot.deliveries += sent

    def _withheld(
        self, conv: int, watchers: set[Outlet], seq: int, origin: int, payload: bytes
    ) -> None:
        """A message some accounts must not get (bots, the removed), or that follows removals:
        as MESSAGE, skipping those accounts' outlets; held for a re-check of the membership
        when it follows a removal this node has not applied."""
        skip, removals, frame = envelope.withheld_parts(payload)
        if (self._held and conv in self._held) or (
            removals > self._removals.get(conv, 0) and self._members is not None
        ):
            self._hold(conv, (envelope.WITHHELD, seq, origin, payload))
            return
        self._send(conv, watchers, seq, origin, skip, frame, None)

    def _send(
        self,
        conv: int,
        watchers: set[Outlet],
        seq: int,
        origin: int,
        skip: tuple[int, ...],
        frame: bytes,
        members: dict[int, int] | None,
    ) -> None:
        """Push message ``seq`` to ``watchers`` but ``origin`` and the accounts in ``skip``;
        with ``members`` (re-read), only to members that had joined by ``seq``."""
        if not skip and members is None:  # a message that only follows removals: as MESSAGE
            self._fan(conv, watchers, seq, origin, frame)
            return
        if seq > self._latest.get(conv, 0):
            self._latest[conv] = seq
        sent = 0
        for outlet in tuple(watchers):
            if outlet.conn_id == origin or outlet.account in skip:
                continue
            if members is not None:
                joined = members.get(outlet.account)
                if joined is None or joined > seq:
                    continue
            floor = outlet.floors.get(conv)
            if floor is not None and seq <= floor:
                continue
            outlet.push(frame)
            sent += 1
        self._hot.deliveries += sent

    def _on_account(self, account: int, kind: int, seq: int, origin: int, frame: bytes) -> None:
        if kind == envelope.WATCH:
            self._joined(account, seq, frame)
        elif kind == envelope.UNWATCH:
            if self._held and seq in self._held:  # after what is held: it may be bob's too
                self._held[seq].append((envelope.UNWATCH, seq, account, frame))
                return
            self._unwatched(account, seq, frame)
        elif kind == envelope.FOLLOW:
            for outlet in tuple(self._accounts.get(account, ())):
                self._follow(outlet, seq)
                if self._unfollowed:
                    self._unfollowed.get(outlet, set()).discard(seq)
        elif kind == envelope.UNFOLLOW:
            for outlet in tuple(self._accounts.get(account, ())):
                self._unfollow(outlet, seq)
                gone = self._unfollowed.get(outlet) if self._unfollowed else None
                if gone is not None:
                    gone.add(seq)
        else:
            for outlet in tuple(self._accounts.get(account, ())):
                if outlet.conn_id != origin:
                    outlet.push(frame)

    def _unwatched(self, account: int, conv: int, payload: bytes) -> None:
        """UNWATCH: hand the account's outlets watching ``conv`` the message that removed it (as
        WATCH does with the one that added it), then stop routing ``conv`` to them."""
        removed = envelope.split_watch_payload(payload)
        if removed is not None:
            seq, frame = removed
            sent = 0
            for outlet in tuple(self._accounts.get(account, ())):
                floor = outlet.floors.get(conv)
                if conv in outlet.watching and (floor is None or seq > floor):
                    outlet.push(frame)
                    sent += 1
            self._hot.deliveries += sent
        self.unwatch_account(account, conv)

    # ------------------------------------------------------------------ re-checks

    def _hold(self, conv: int, item: _Held) -> None:
        held = self._held.get(conv)
        if held is None:
            held = self._held[conv] = []
            task = asyncio.get_running_loop().create_task(self._recheck(conv, held))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        held.append(item)

    async def _recheck(self, conv: int, held: list[_Held]) -> None:
        """Re-read the membership of ``conv`` for what ``held`` needs, then hand it out in
        order (more may arrive meanwhile, and need another read)."""
        try:
            while held:
                known = self._removals.get(conv, 0)
                target = max(
                    (
                        envelope.withheld_parts(p)[1]
                        for k, _, _, p in held
                        if k == envelope.WITHHELD
                    ),
                    default=0,
                )
                members = None
                if target > known:
                    members = await self._reread(conv)
                    if members is None:  # the store did not answer: drop what needed it
                        del held[:]
                        return
                    known = self._removals[conv] = max(self._removals.get(conv, 0), target)
                while held:  # no await in here: nothing arrives meanwhile
                    kind, seq, origin, payload = held[0]
                    if kind == envelope.UNWATCH:
                        self._unwatched(origin, conv, payload)
                    elif kind == envelope.MESSAGE:
                        watchers = self._watchers.get(conv, set())
                        self._send(conv, watchers, seq, origin, (), payload, members)
                    else:
                        skip, removals, frame = envelope.withheld_parts(payload)
                        if removals > known:
                            break  # committed after another removal: read again
                        watchers = self._watchers.get(conv, set())
                        self._send(conv, watchers, seq, origin, skip, frame, members)
                    del held[0]
        finally:
            self._held.pop(conv, None)

    async def _reread(self, conv: int) -> dict[int, int] | None:
        """Which accounts watching ``conv`` here are members (and since which seq); stop routing
        ``conv`` to the others. None when the store did not answer."""
        assert self._members is not None
        members: dict[int, int] | None = None
        for attempt in range(REREADS):
            self.rechecks += 1
            rewatched = self._rewatched[conv] = set()
            accounts = sorted({o.account for o in self._watchers.get(conv, ())})
            try:
                members = await self._members(conv, accounts)
            except Exception as exc:  # the store is down: what needed it is dropped
                log.warning("membership re-check failed", extra={"conv": conv, "error": repr(exc)})
                await asyncio.sleep(0.05 * 2**attempt)
                continue
            finally:
                self._rewatched.pop(conv, None)
            if not rewatched:  # nobody started watching during the read: it covers them all
                break
        if members is None:
            return None
        for outlet in tuple(self._watchers.get(conv, ())):
            if outlet.account not in members:
                self._removed(outlet, conv)
        return members

    def _joined(self, account: int, conv: int, payload: bytes) -> None:
        """WATCH: route ``conv`` to the account's connections and hand them the message that
        added it; each connection's floor then holds back the copy from the conversation's topic
        (which arrives later, or never if the subscription was not in effect yet)."""
        outlets = tuple(self._accounts.get(account, ()))
        if not outlets:
            return
        for outlet in outlets:
            self._watch(outlet, conv)
        joined = envelope.split_watch_payload(payload)
        if joined is None:
            return
        seq, frame = joined
        if seq > self._latest.get(conv, 0):
            self._latest[conv] = seq
        sent = 0
        for outlet in outlets:
            floor = outlet.floors.get(conv)
            if floor is not None and seq <= floor:
                continue
            outlet.push(frame)
            outlet.floors[conv] = seq
            sent += 1
        self._hot.deliveries += sent

    def _on_device(self, device: int, origin: int, frame: bytes) -> None:
        for outlet in tuple(self._devices.get(device, ())):
            if outlet.conn_id != origin:
                outlet.push(frame)
