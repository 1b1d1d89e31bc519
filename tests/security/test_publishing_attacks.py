"""The publishing frames of issue 19 (watching, the timeline, Moments, creators' money) under
the cells of the attack table the other files leave open, against a real server:

* a stranger watching channels and posts from twenty connections a thousand times each holds at
  most ``WATCHED_CHANNELS`` channels per connection, and once its connections close the node
  holds nothing of them (no watch, no channel or post subscription): the cost of watching ends
  with the connection;
* a paid post reaches a non-subscriber -- a follower watching the feed, a stranger watching the
  channel, an admin removed since -- only as its placeholder, whether pushed or read from the
  timeline or the channel (SPEC.md 15.14, 20.7, 20.8);
* nobody but a channel's owner (an admin included) sets its price, 500 times each; a creator
  raising its price while the sweep renews its subscribers and new subscribers sign
  at the old price never charges anyone more than the mandate they signed (SPEC.md 15.13);
* a Moment's reader cannot tell a comment hidden from it (its author is not the reader's
  contact) from a comment that does not exist, whatever frame names it (SPEC.md 22.2);
* a stranger cannot tell someone else's tip id from a fresh one, at any cursor, and a deleted
  post takes no tip (SPEC.md 15.12);
* reactions racing their author's comment ban, from two connections and a login, are never
  accepted after one was refused (SPEC.md 20.9);
* comments racing their Moment's deletion on another node (two nodes, one PostgreSQL) are
  stored and deleted with it or ``NOT_FOUND``, and fail no one's write: this found a foreign key
  violation that failed the whole batch (``UNAVAILABLE`` for every write in it);
* a login racing an unfollow (or a follow) routes the new connection's feed as the change
  ends, and a suspension ends a flooding watcher's connections and every watch of theirs.

Races that touch the store run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import asyncpg
from chatproto import frames as F
from chatproto.errors import ErrorCode
from conftest import RunningServer, make_settings, run_server
from creatorkit import (
    MovableClock,
    channel,
    mandate,
    money_server,
    publish,
    set_price,
    subscribe_frame,
    tip_frame,
    tip_intent,
    top_up,
    usd,
)
from paykit import Clients, codes, new_id, pipelined
from redisd import RedisServer
from serverkit import FAST
from testkit import Raw
from websockets.exceptions import ConnectionClosed

from chatd.admin_cli import set_suspended
from chatd.hub import WATCHED_CHANNELS, Hub

DAY = 86_400


def hub_of(server: RunningServer) -> Hub:
    services = server.app.services
    assert services is not None
    return services.deps.hub


def answer(f: F.ServerFrame) -> tuple[str, int, str]:
    """What a client can tell of an answer: its type, and an error's code and message."""
    if isinstance(f, F.Error):
        return ("error", f.code, f.msg)
    return (type(f).__name__, 0, "")


async def test_a_strangers_watches_are_bounded_and_end_with_its_connections(
    tmp_path: Path,
) -> None:
    async with money_server(tmp_path, str(tmp_path / "chatd.db")) as (server, clients):
        hub = hub_of(server)
        alice = await clients.registered("alice")
        mallory = await clients.registered("mallory")
        chs = [await channel(alice, f"news{i}") for i in range(WATCHED_CHANNELS + 2)]
        for ch in chs:
            await publish(alice, ch, 1)
        conns = [mallory]
        for _ in range(19):
            c = await clients.connect()
            await c.login(mallory.device, mallory.key)
            conns.append(c)
        for c in conns:
            frames: list[F.Frame] = [F.WatchFeed(id=c.next_id())]
            for i in range(1000):
                ch = chs[(i // 2) % len(chs)]
                if i % 2:
                    frames.append(F.WatchChannel(id=c.next_id(), channel=ch))
                else:
                    frames.append(F.WatchPost(id=c.next_id(), channel=ch, seq=1))
            assert {type(a) for a in await pipelined(c, frames)} == {F.Ok}
        outlets = hub.outlets_of(mallory.account)
        assert len(outlets) == len(conns)
        for o in outlets:
            watched_channels, watched_posts = hub.watched(o)
            assert len(watched_channels) == WATCHED_CHANNELS
            assert len(watched_posts) == len(chs)
        for c in conns:
            await c.close()
        async with asyncio.timeout(10):
            while hub.outlets_of(mallory.account):  # the server sees each close in turn
                await asyncio.sleep(0.01)
        # Nothing of mallory's twenty connections stays on the node: no watch, no routing, and
        # no subscription to the channels' or posts' topics (nobody else watches them).
        assert not any(o.account == mallory.account for o in (*hub._open, *hub._threads))
        assert not any(o.account == mallory.account for o in hub._feed)
        assert hub._channels == {} and hub._posts == {}


async def test_a_paid_post_reaches_non_subscribers_only_as_its_placeholder(
    tmp_path: Path, db: str
) -> None:
    async with money_server(tmp_path, db) as (_, clients):
        alice, bob, mallory = [await clients.registered(h) for h in ("alice", "bobby", "mallory")]
        ch = await channel(alice, "alicenews")
        for r in (bob, mallory):
            await r.request(F.Follow(id=r.next_id(), channel=ch), F.ChannelAnswer)
        # bob was an admin (he could read paid posts), and is removed before the post
        for admin in (True, False):
            await alice.request(
                F.SetChannelAdmin(id=alice.next_id(), channel=ch, account=bob.account, admin=admin),
                F.Ok,
            )
        stranger = await clients.registered("stranger")  # follows nothing, watches the page
        for r in (bob, mallory):
            await r.request(F.WatchFeed(id=r.next_id()), F.Ok)
        await stranger.request(F.WatchChannel(id=stranger.next_id(), channel=ch), F.Ok)
        await mallory.request(F.WatchChannel(id=mallory.next_id(), channel=ch), F.Ok)
        secret = await publish(alice, ch, 1, "for subscribers only", paid=True)
        for r in (bob, mallory, stranger):
            pushed = await r.expect(F.PostEvent)
            assert pushed.post.locked and pushed.post.content == b"" and pushed.post.paid
            assert pushed.post.sig == secret.sig
        for r in (bob, mallory):
            page: F.Timeline = await r.request(F.GetTimeline(id=r.next_id()), F.Timeline)
            assert len(page.items) == 1
            post = page.items[0].post
            assert post is not None and post.locked and post.content == b""
        for r in (bob, mallory, stranger):
            posts = await r.request(F.GetPosts(id=r.next_id(), channel=ch), F.Posts)
            assert [(p.locked, p.content) for p in posts.items] == [(True, b"")]
        mine = await alice.request(F.GetTimeline(id=alice.next_id()), F.Timeline)
        assert mine.items == []  # an owner's timeline lists followed channels only (20.8)
        own = await alice.request(F.GetPosts(id=alice.next_id(), channel=ch), F.Posts)
        assert [p.content for p in own.items] == [secret.content]
        # mallory got the post once, though she watches both the feed and the page (20.7)
        await mallory.request(F.GetTimeline(id=mallory.next_id()), F.Timeline)
        assert [f for f in mallory.backlog if isinstance(f, F.PostEvent)] == []


async def test_a_price_raised_while_subscribers_renew_and_sign_charges_no_one_more(
    tmp_path: Path, db: str
) -> None:
    clock = MovableClock()
    async with money_server(tmp_path, db, clock) as (server, clients):
        services = server.app.services
        assert services is not None
        alice, admin, mallory = [await clients.registered(h) for h in ("alice", "admin", "mallory")]
        ch = await channel(alice, "alicenews")
        await set_price(alice, ch, 100, DAY)
        await alice.request(
            F.SetChannelAdmin(id=alice.next_id(), channel=ch, account=admin.account), F.Ok
        )
        # nobody but the owner prices its channel, an admin included, however often
        for r in (admin, mallory):
            tries = [
                F.SetChannelPrice(
                    id=r.next_id(), channel=ch, amount=(0, 1, 9_000)[i % 3], currency="USD",
                    period=DAY,
                )
                for i in range(500)
            ]  # fmt: skip
            assert codes(await pipelined(r, tries)) == {int(ErrorCode.FORBIDDEN)}
        price = await mallory.request(
            F.GetChannelPrice(id=mallory.next_id(), channel=ch), F.ChannelPrice
        )
        assert (price.amount, price.owner) == (100, alice.account)
        fans = []
        for i in range(10):
            fan = await clients.registered(f"fan{i}")
            await top_up(db, fan.account, 5_000)
            await fan.request(subscribe_frame(fan, mandate(fan, alice.account, ch, 100, DAY, 3)))
            fans.append(fan)
        late = []
        for i in range(10):
            fan = await clients.registered(f"late{i}")
            await top_up(db, fan.account, 5_000)
            late.append(fan)
        clock.advance(DAY)
        signed = [
            subscribe_frame(f, mandate(f, alice.account, ch, 100, DAY, 3, clock_ms=clock.now_ms()))
            for f in late
        ]
        raise_price = alice.request(
            F.SetChannelPrice(
                id=alice.next_id(), channel=ch, amount=4_000, currency="USD", period=DAY
            ),
            F.ChannelPrice,
        )
        results = await asyncio.gather(
            services.creators.sweep(),
            *(f.request(s) for f, s in zip(late[:5], signed[:5], strict=True)),
            raise_price,
            *(f.request(s) for f, s in zip(late[5:], signed[5:], strict=True)),
        )
        for got in results[1:6] + results[7:]:
            if isinstance(got, F.Error):
                assert got.code == ErrorCode.PRICE_CHANGED, got
            else:
                assert isinstance(got, F.Subscribed) and got.receipt.amount == 100
        clock.advance(DAY)
        await services.creators.sweep()
        for fan in fans:
            # two periods at the signed price, never the new one
            listed = await fan.request(F.ListSubscriptions(id=fan.next_id()), F.Subscriptions)
            (sub,) = listed.items
            assert (sub.amount, sub.charged, await usd(fan)) == (100, 3, 5_000 - 300)
        for fan in late:
            listed = await fan.request(F.ListSubscriptions(id=fan.next_id()), F.Subscriptions)
            charged = sum(s.charged * s.amount for s in listed.items)
            assert all(s.amount == 100 for s in listed.items)
            assert await usd(fan) == 5_000 - charged
        report = await services.deps.store.ledger_audit()
        assert report.ok, report


async def test_a_comment_hidden_from_a_reader_answers_as_one_that_does_not_exist(
    tmp_path: Path, db: str
) -> None:
    consent = {"add_me": "contacts", "presence": "contacts", "last_seen": "contacts"}
    async with money_server(tmp_path, db, consent=consent) as (_, clients):
        alice, bob, carol = [await clients.registered(h) for h in ("alice", "bobby", "carol")]
        for friend in (bob, carol):  # both alice's contacts, not each other's
            conv = await alice.request(
                F.CreateConv(id=alice.next_id(), kind="direct", members=[friend.account]), F.Conv
            )
            await friend.request(
                F.AnswerRequest(id=friend.next_id(), conv=conv.info.conv, answer="accept"), F.Ok
            )
        posted = await alice.request(
            F.PostMoment(id=alice.next_id(), audience=[bob.account, carol.account], body=b"m"),
            F.MomentAnswer,
        )
        m = posted.info.moment
        said = await bob.request(
            F.CommentMoment(id=bob.next_id(), moment=m, body=b"bob's"), F.MomentCommented
        )
        hidden = said.comment.comment
        liked = await bob.request(F.LikeMoment(id=bob.next_id(), moment=m), F.MomentCommented)
        missing = liked.comment.comment + 1000

        async def probe(comment: int) -> list[tuple[str, int, str]]:
            frames: list[Any] = []
            for _ in range(40):
                frames += [
                    F.DeleteMomentComment(id=carol.next_id(), moment=m, comment=comment),
                    F.CommentMoment(id=carol.next_id(), moment=m, reply_to=comment, body=b"r"),
                ]
            return [answer(a) for a in await pipelined(carol, frames)]

        for comment in (hidden, liked.comment.comment):
            got = await probe(comment)
            assert got == await probe(missing)
            assert {code for _, code, _ in got} == {int(ErrorCode.NOT_FOUND)}
        seen = await carol.request(
            F.GetMomentComments(id=carol.next_id(), moment=m), F.MomentComments
        )
        assert seen.items == []
        view = await carol.request(F.GetMoment(id=carol.next_id(), moment=m), F.MomentAnswer)
        assert sorted(view.audience) == sorted([alice.account, carol.account])
        # bob's comment and like stand: carol's hundreds of attempts removed nothing
        everything = await alice.request(
            F.GetMomentComments(id=alice.next_id(), moment=m), F.MomentComments
        )
        assert {c.comment for c in everything.items} == {hidden, liked.comment.comment}


async def test_a_stranger_cannot_tell_someone_elses_tip_from_none(tmp_path: Path, db: str) -> None:
    async with money_server(tmp_path, db) as (_, clients):
        alice, bob, mallory = [await clients.registered(h) for h in ("alice", "bobby", "mallory")]
        ch = await channel(alice, "alicenews")
        await publish(alice, ch, 1)
        await publish(alice, ch, 2)
        await top_up(db, bob.account, 1_000)
        tipped = await bob.request(
            tip_frame(bob, tip_intent(bob, alice.account, ch, 2, 100)), F.Tipped
        )
        used = tipped.receipt.ref
        await publish(alice, ch, 2, "", ver=1)  # post 2 is deleted (a tombstone version)

        async def probe(ref: str) -> list[tuple[str, int, str]]:
            frames: list[Any] = []
            for _ in range(100):
                frames += [
                    F.GetCreatorReceipts(id=mallory.next_id(), ref=ref, after=after)
                    for after in (0, 1, 5)
                ]
            return [answer(a) for a in await pipelined(mallory, frames)]

        assert await probe(used) == await probe(new_id("tip"))
        mine = await bob.request(
            F.GetCreatorReceipts(id=bob.next_id(), ref=used), F.CreatorReceipts
        )
        assert [r.amount for r in mine.items] == [100]
        # a tip of the deleted post is refused and moves nothing
        refused = await bob.request(tip_frame(bob, tip_intent(bob, alice.account, ch, 2, 100)))
        assert isinstance(refused, F.Error) and refused.code == ErrorCode.NOT_FOUND
        assert await usd(bob) == 900


async def test_reactions_racing_a_ban_stop_at_the_ban_on_every_connection(
    tmp_path: Path, db: str
) -> None:
    """Mallory pipelines 300 reactions (adding, and taking back) from each of two connections
    while the owner bans her, and logs in a third meanwhile: on each connection her additions
    are accepted up to one point and refused (``FORBIDDEN``) from then on, never accepted
    again; taking one back is always allowed; once the ban is answered no connection of hers,
    the new one included, adds a reaction."""
    async with money_server(tmp_path, db) as (_, clients):
        alice, mallory = [await clients.registered(h) for h in ("alice", "mallory")]
        ch = await channel(alice, "alicenews")
        await publish(alice, ch, 1)
        other = await clients.connect()
        await other.login(mallory.device, mallory.key)
        emojis = ["👍", "🔥", "😂", "❤️", "🎉", "😮"]
        floods = {
            c: [
                F.ReactPost(
                    id=c.next_id(), channel=ch, seq=1, emoji=emojis[i % 6], remove=i % 3 == 2
                )
                for i in range(300)
            ]
            for c in (mallory, other)
        }
        late = await clients.connect()

        async def flood(c: Raw) -> None:
            for f in floods[c]:
                await c.send_frame(f)

        async def ban() -> None:
            await asyncio.sleep(0.005)
            await alice.request(
                F.BanCommenter(id=alice.next_id(), channel=ch, account=mallory.account), F.Ok
            )

        await asyncio.gather(
            flood(mallory), flood(other), ban(), late.login(mallory.device, mallory.key)
        )
        refused_somewhere = False
        for c, frames in floods.items():
            answers = [await c._reply(f.id, timeout=30) for f in frames]
            banned = False
            for f, a in zip(frames, answers, strict=True):
                if f.remove:
                    assert isinstance(a, F.Reactions), a
                elif isinstance(a, F.Error):
                    assert a.code == ErrorCode.FORBIDDEN, a
                    banned = refused_somewhere = True
                else:
                    assert isinstance(a, F.Reactions) and not banned, "accepted after a refusal"
        assert refused_somewhere
        for c in (mallory, other, late):
            added = await c.request(F.ReactPost(id=c.next_id(), channel=ch, seq=1, emoji="🤡"))
            assert isinstance(added, F.Error) and added.code == ErrorCode.FORBIDDEN
            back = await c.request(
                F.ReactPost(id=c.next_id(), channel=ch, seq=1, emoji="👍", remove=True)
            )
            assert isinstance(back, F.Reactions)


async def test_comments_racing_the_deletion_of_their_moment_on_another_node(
    pg_dsn: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Two nodes on one PostgreSQL: bob comments on and likes alice's Moment through one node
    while alice deletes it through the other, twenty times. Each comment is either stored
    (and then deleted with the Moment) or refused ``NOT_FOUND``, alice's deletion succeeds,
    nothing of the Moment stays, and nobody -- neither they nor carol, writing on the same
    node meanwhile -- is answered ``INTERNAL``."""
    consent = {"add_me": "contacts", "presence": "contacts", "last_seen": "contacts"}
    settings = make_settings(
        tmp_path,
        store={"db": pg_dsn},
        broker={"url": redis_server.url},
        limits={**FAST, "moments_per_hour": 0.0},
        consent=consent,
    )
    async with AsyncExitStack() as stack:
        one, two = [await stack.enter_async_context(run_server(settings)) for _ in range(2)]
        for node in (one, two):
            async with asyncio.timeout(10):
                while not node.app.broker.healthy():
                    await asyncio.sleep(0.01)
        clients = Clients(one.url)
        stack.push_async_callback(clients.aclose)
        alice = await clients.registered("alice")
        bob, carol = [await clients.registered(h) for h in ("bobby", "carol")]
        for friend in (bob, carol):
            conv = await alice.request(
                F.CreateConv(id=alice.next_id(), kind="direct", members=[friend.account]), F.Conv
            )
            await friend.request(
                F.AnswerRequest(id=friend.next_id(), conv=conv.info.conv, answer="accept"), F.Ok
            )
        there = Clients(two.url)
        stack.push_async_callback(there.aclose)
        bob2, carol2 = await there.connect(), await there.connect()
        await bob2.login(bob.device, bob.key)
        await carol2.login(carol.device, carol.key)
        ids = []
        for _ in range(20):
            posted = await alice.request(
                F.PostMoment(id=alice.next_id(), all=True, body=b"m"), F.MomentAnswer
            )
            m = posted.info.moment
            ids.append(m)
            said: list[Any] = [
                F.CommentMoment(id=bob2.next_id(), moment=m, body=b"c") for _ in range(10)
            ]
            said.insert(5, F.LikeMoment(id=bob2.next_id(), moment=m))
            bystander = [
                F.PostMoment(id=carol2.next_id(), audience=[alice.account], body=b"b")
                for _ in range(10)
            ]
            got = await asyncio.gather(
                pipelined(bob2, said),
                pipelined(carol2, bystander),
                alice.request(F.DeleteMoment(id=alice.next_id(), moment=m)),
            )
            assert isinstance(got[2], F.Ok), got[2]
            for a in got[0]:
                assert isinstance(a, F.MomentCommented) or (
                    isinstance(a, F.Error) and a.code == ErrorCode.NOT_FOUND
                ), a
            assert all(isinstance(a, F.MomentAnswer) for a in got[1]), got[1]
        conn = await asyncpg.connect(pg_dsn)
        try:
            left = await conn.fetchval(
                "SELECT count(*) FROM moment_comments WHERE moment = ANY($1::bigint[])", ids
            )
        finally:
            await conn.close()
        assert left == 0


async def test_a_login_racing_an_unfollow_or_a_follow_routes_the_feed_as_it_ends(
    tmp_path: Path, db: str
) -> None:
    """Twenty times, bob logs in a new connection while his other connection unfollows (then
    follows again) alice's channel; the new connection then watches its feed. After an
    unfollow, alice's next post never reaches it; after a follow, it always does (SPEC.md 20.7:
    the feed is what the account follows, whatever a login read before the change)."""
    async with money_server(tmp_path, db) as (_, clients):
        alice, bob, carol = [await clients.registered(h) for h in ("alice", "bobby", "carol")]
        ch = await channel(alice, "alicenews")
        await carol.request(F.WatchChannel(id=carol.next_id(), channel=ch), F.Ok)
        for trial in range(20):
            seq = trial + 1
            following = trial % 2 == 1
            change: F.Frame = (F.Follow if following else F.Unfollow)(id=bob.next_id(), channel=ch)
            if trial == 0:
                await bob.request(F.Follow(id=bob.next_id(), channel=ch), F.ChannelAnswer)
            fresh = await clients.connect()
            await asyncio.gather(
                fresh.login(bob.device, bob.key), bob.request(change, F.ChannelAnswer)
            )
            await fresh.request(F.WatchFeed(id=fresh.next_id()), F.Ok)
            await publish(alice, ch, seq, f"post {seq}")
            await carol.expect(F.PostEvent)  # pushed: fresh got it now or never
            if following:
                got = await fresh.expect(F.PostEvent)
                assert got.post.seq == seq
            else:
                await fresh.request(F.GetTimeline(id=fresh.next_id(), limit=1), F.Timeline)
                assert [f for f in fresh.backlog if isinstance(f, F.PostEvent)] == [], trial
            await fresh.close()


async def test_a_suspension_ends_a_flooding_watchers_connections_and_its_watches(
    tmp_path: Path, db: str
) -> None:
    """Mallory watches a channel and its posts from three connections and floods reactions and
    view reports while the operator suspends her: every connection is closed (1008), and the
    node then holds no watch, route or subscription of hers."""
    async with money_server(tmp_path, db) as (server, clients):
        hub = hub_of(server)
        alice, mallory = [await clients.registered(h) for h in ("alice", "mallory")]
        ch = await channel(alice, "alicenews")
        for seq in range(1, 6):
            await publish(alice, ch, seq)
        conns = [mallory]
        for _ in range(2):
            c = await clients.connect()
            await c.login(mallory.device, mallory.key)
            conns.append(c)
        for c in conns:
            watches: list[F.Frame] = [F.WatchFeed(id=c.next_id())]
            watches.append(F.WatchChannel(id=c.next_id(), channel=ch))
            watches += [F.WatchPost(id=c.next_id(), channel=ch, seq=s) for s in range(1, 6)]
            assert {type(a) for a in await pipelined(c, watches)} == {F.Ok}

        async def flood(c: Raw) -> None:
            for i in range(300):
                f: F.Frame = (
                    F.ReactPost(id=c.next_id(), channel=ch, seq=i % 5 + 1, emoji="🔥")
                    if i % 2
                    else F.ViewPosts(id=c.next_id(), channel=ch, seqs=[i % 5 + 1])
                )
                try:
                    await c.send_frame(f)
                except ConnectionClosed:
                    return

        async def suspend() -> None:
            db_path = db if db.startswith("postgres") else str(tmp_path / "chatd.db")
            now = int(time.time() * 1000)
            assert await asyncio.to_thread(set_suspended, db_path, "@mallory", now)

        await asyncio.gather(*(flood(c) for c in conns), suspend())
        closes = await asyncio.gather(*(c.until_closed(10) for c in conns))
        assert closes == [1008, 1008, 1008]
        async with asyncio.timeout(10):
            while hub.outlets_of(mallory.account):
                await asyncio.sleep(0.01)
        assert not any(o.account == mallory.account for o in (*hub._open, *hub._threads))
        assert hub._channels == {} and hub._posts == {}
