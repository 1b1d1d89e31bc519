"""Views and comment moderation of public channels (issue 19.2, SPEC.md 20.9) against a real
server with several SDK clients: each account's views of a post count once and everyone sees
the count (never who); an admin bans a commenter (for a while, or until lifted, optionally
emptying its comments) while everyone else goes on commenting; slow mode lets a non-admin
comment once per interval and says how long to wait, admins exempt. Time moves with a shifted
server clock, not with sleeps."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chatclient import Client, KeyStore, NotFound
from chatclient.errors import Forbidden, RateLimited
from conftest import make_settings, run_server

from chatd.clock import SystemClock

FAST = {"frames_per_second": 100_000.0, "frame_burst": 100_000.0}


class ShiftedClock(SystemClock):
    """The server's wall clock stands still at its start, moved only by ``shift`` ms (a ban
    ends, slow mode passes), however slowly the machine runs the test; monotonic time (rate
    limits) runs as usual."""

    def __init__(self) -> None:
        self.start = super().now_ms()
        self.shift = 0

    def now_ms(self) -> int:
        return self.start + self.shift


@contextlib.asynccontextmanager
async def users(
    tmp_path: Path, *handles: str, clock: ShiftedClock | None = None
) -> AsyncIterator[list[Client]]:
    async with run_server(make_settings(tmp_path, limits=FAST), clock) as server:
        clients: list[Client] = []
        try:
            for h in handles:
                c = Client(server.url, KeyStore.open(tmp_path / f"{h}.key"))
                await c.__aenter__()
                clients.append(c)
                await c.register(h, h.title())
            yield clients
        finally:
            for c in clients:
                await c.aclose()


async def test_each_account_counts_once_and_everyone_sees_the_count_not_who(
    tmp_path: Path,
) -> None:
    async with users(tmp_path, "alice", "bob", "carol", "dave") as (alice, bob, carol, dave):
        ch = (await alice.channels.create("daily", "Daily")).channel
        for text in ("one", "two", "three"):
            await alice.channels.publish_text(ch, text)
        await bob.channels.follow(ch)
        for _ in range(50):  # bob reloads the page again and again
            await bob.channels.view(ch, [1, 2, 3])
        await carol.channels.view(ch, [1])
        await dave.channels.view(ch, [3, 1, 1])  # a stranger, not following: counts too
        await alice.channels.delete(ch, 2)
        await dave.channels.view(ch, [2, 99])  # deleted, and no such post: ignored
        with pytest.raises(NotFound):
            await dave.channels.view(ch + 100, [1])
        for reader in (alice, bob, carol):
            page = await reader.channels.posts(ch)
            assert {p.seq: p.views for p in page.posts} == {1: 3, 2: 1, 3: 2}
        feed = await bob.timeline.page()  # the timeline shows the counts too (2 is deleted)
        assert {e.post.seq: e.post.views for e in feed.entries if e.post} == {1: 3, 3: 2}
        # The raw answer has counts and nothing that names a viewer.
        raw = await carol.channels.posts(ch)
        assert all(p.author == alice.account for p in raw.posts)


async def test_a_banned_commenter_is_refused_until_the_ban_ends_while_others_comment(
    tmp_path: Path,
) -> None:
    clock = ShiftedClock()
    async with users(tmp_path, "alice", "bob", "carol", clock=clock) as (alice, bob, carol):
        ch = (await alice.channels.create("daily", "Daily")).channel
        seq = await alice.channels.publish_text(ch, "hello")
        await alice.channels.set_admin(ch, carol.account)
        rude = await bob.channels.comment(ch, seq, "rude")
        until = clock.now_ms() + 60_000
        await carol.channels.ban_commenter(ch, bob.account, until=until)  # an admin bans
        with pytest.raises(Forbidden):
            await bob.channels.comment(ch, seq, "more")
        with pytest.raises(Forbidden):
            await bob.channels.react(ch, seq, "👎")
        await carol.channels.comment(ch, seq, "carol is fine")
        bans = await alice.channels.comment_bans(ch)
        assert [(b.account, b.handle, b.until, b.by) for b in bans] == [
            (bob.account, "bob", until, carol.account)
        ]
        clock.shift = 61_000  # the ban ended by itself
        await bob.channels.comment(ch, seq, "sorry")
        assert await alice.channels.comment_bans(ch) == []
        # Until lifted, this time with his comments emptied.
        await alice.channels.ban_commenter(ch, bob.account, delete_comments=True)
        thread = await carol.channels.comments(ch, seq)
        mine = [(c.comment, c.deleted) for c in thread.items if c.author == bob.account]
        assert mine == [(rude.comment, True), (mine[1][0], True)]
        assert thread.total == 1
        with pytest.raises(Forbidden):
            await bob.channels.comment(ch, seq, "again")
        await alice.channels.unban_commenter(ch, bob.account)
        await bob.channels.comment(ch, seq, "back")
        with pytest.raises(Forbidden):  # admins are not banned, and only admins ban
            await alice.channels.ban_commenter(ch, carol.account)
        with pytest.raises(Forbidden):
            await bob.channels.ban_commenter(ch, carol.account)


async def test_slow_mode_admits_one_comment_per_interval_and_says_how_long_to_wait(
    tmp_path: Path,
) -> None:
    clock = ShiftedClock()
    async with users(tmp_path, "alice", "bob", "carol", clock=clock) as (alice, bob, carol):
        ch = (await alice.channels.create("daily", "Daily")).channel
        seq = await alice.channels.publish_text(ch, "hello")
        info = await alice.channels.set_slow_mode(ch, 30)
        assert info.slow_mode == 30
        assert (await bob.channels.find("daily")).slow_mode == 30  # shown to everyone
        await bob.channels.comment(ch, seq, "first")
        with pytest.raises(RateLimited) as refused:
            await bob.channels.comment(ch, seq, "second")
        assert refused.value.retry_after == 30.0
        await carol.channels.comment(ch, seq, "someone else")  # per account
        for i in range(3):  # the owner is never slowed
            await alice.channels.comment(ch, seq, f"admin {i}")
        clock.shift = 30_000
        await bob.channels.comment(ch, seq, "second, later")
        await alice.channels.set_slow_mode(ch, 0)
        await bob.channels.comment(ch, seq, "free again")
        with pytest.raises(Forbidden):
            await bob.channels.set_slow_mode(ch, 3600)
        thread = await alice.channels.comments(ch, seq)
        assert thread.total == 7
