"""Public channels (issue 19.1, SPEC.md 20) against a real server, with several SDK clients:
created with a handle, found by handle and through the paged directory, read before following,
followed without an invite, posts pushed live to connected followers only, and every post's
signature checked by the reader: a post changed in the database is refused, edits keep their
history and a delete is a signed tombstone."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chatclient import Client, NotFound, RequestError
from chatclient.events import ChannelComment, ChannelPost, PostReactions, SecurityWarning
from chatproto import kinds
from chatproto.errors import ChatProtoError, ErrorCode
from conftest import RunningServer
from serverkit import sdk_user, sdk_users, serving


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with serving(tmp_path) as s:
        yield s


async def _next_post(c: Client, timeout: float = 10.0) -> ChannelPost | SecurityWarning:
    async with asyncio.timeout(timeout):
        async for ev in c.events():
            if isinstance(ev, ChannelPost | SecurityWarning):
                return ev
    raise AssertionError("events ended")


async def _no_post(c: Client, quiet: float = 0.5) -> None:
    try:
        ev = await _next_post(c, quiet)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected {ev!r}")


async def test_a_public_channel_from_creation_to_a_verified_live_post(
    server: RunningServer, tmp_path: Path
) -> None:
    alice = await sdk_user(server, tmp_path, "alice")
    bob = await sdk_user(server, tmp_path, "bob")
    carol = await sdk_user(server, tmp_path, "carol")
    try:
        info = await alice.channels.create("daily_news", "Daily News", "World news every morning")
        ch = info.channel
        assert (await bob.channels.find("daily_news")).channel == ch
        with pytest.raises(NotFound):
            await bob.channels.find("no_such_channel")

        first = await alice.channels.publish_text(ch, "good morning")
        assert first == 1
        # Preview before following: bob reads and verifies without being anything.
        page = await bob.channels.posts(ch)
        assert [p.text for p in page.posts] == ["good morning"] and page.rejected == []

        info = await bob.channels.follow(ch)
        assert info.following and info.followers == 1
        await carol.channels.follow(ch)
        for reader in (bob, carol):  # live posts go to connections watching the feed
            await reader.timeline.watch_feed()
        await alice.channels.publish_text(ch, "breaking")
        for reader in (bob, carol):
            got = await _next_post(reader)
            assert isinstance(got, ChannelPost), got
            assert (got.seq, got.text, got.author) == (2, "breaking", alice.account)

        await carol.channels.unfollow(ch)
        await alice.channels.publish_text(ch, "third")
        got = await _next_post(bob)
        assert isinstance(got, ChannelPost) and got.text == "third"
        await _no_post(carol)
        assert (await carol.channels.find("daily_news")).followers == 1
    finally:
        for c in (alice, bob, carol):
            await c.aclose()


async def test_a_second_client_finds_and_follows_a_channel_from_its_link(
    server: RunningServer, tmp_path: Path
) -> None:
    """SPEC.md 20.1: the link is the handle only; ``find`` takes it, ``@handle`` or the handle,
    and refuses other text before asking the server."""
    alice = await sdk_user(server, tmp_path, "alice")
    bob = await sdk_user(server, tmp_path, "bob")
    try:
        info = await alice.channels.create("link_news", "Link News")
        link = alice.channels.link(info)
        assert link == "chatd://channel/link_news"
        for ref in (link, f" {link}\n", "@link_news", "link_news"):
            assert (await bob.channels.find(ref)).channel == info.channel
        followed = await bob.channels.follow((await bob.channels.find(link)).channel)
        assert followed.following and followed.followers == 1
        await bob.timeline.watch_feed()
        await alice.channels.publish_text(info.channel, "via the link")
        got = await _next_post(bob)
        assert isinstance(got, ChannelPost) and got.text == "via the link"
        with pytest.raises(NotFound):
            await bob.channels.find("chatd://channel/no_such_news")
        for bad in ("chatd://channel/Link_News", "chatd://join/link_news", "chatd://channel/"):
            with pytest.raises(ChatProtoError):
                await bob.channels.find(bad)
    finally:
        for c in (alice, bob):
            await c.aclose()


async def test_the_directory_finds_channels_by_title_and_description_in_pages(
    server: RunningServer, tmp_path: Path
) -> None:
    alice = await sdk_user(server, tmp_path, "alice")
    bob = await sdk_user(server, tmp_path, "bob")
    try:
        made = []
        for i in range(7):
            info = await alice.channels.create(
                f"garden{i}", f"Gardening tips {i}", "Roses, tomatoes and Früh-beete"
            )
            made.append(info.channel)
        await alice.channels.create("cooking", "Cooking", "Tomatoes in the kitchen")
        seen: list[int] = []
        after = ""
        pages = 0
        while True:
            items, after = await bob.channels.search("garden", after=after, limit=3)
            seen += [i.channel for i in items]
            pages += 1
            if not after:
                break
        assert seen == made and pages == 3
        assert len((await bob.channels.search("TOMATO"))[0]) == 8
        both, _ = await bob.channels.search("tomato kitchen")
        assert [i.handle for i in both] == ["cooking"]
        assert [i.handle for i in (await bob.channels.search("früh"))[0]][:1] == ["garden0"]
        assert (await bob.channels.search("nothing_like_it"))[0] == []
    finally:
        await alice.aclose()
        await bob.aclose()


async def test_edits_keep_history_a_delete_is_a_tombstone_and_tampering_is_refused(
    server: RunningServer, tmp_path: Path
) -> None:
    async with sdk_users(server, tmp_path, "alice", "bob") as [alice, bob]:
        ch = (await alice.channels.create("alice_blog", "Alice's blog")).channel
        await bob.channels.follow(ch)
        await bob.timeline.watch_channel(ch)  # the channel's page is open
        seq = await alice.channels.publish_text(ch, "frist post")
        assert isinstance(await _next_post(bob), ChannelPost)
        assert await alice.channels.edit_text(ch, seq, "first post") == 1
        edited = await _next_post(bob)
        assert isinstance(edited, ChannelPost) and (edited.ver, edited.text) == (1, "first post")
        history = await bob.channels.history(ch, seq)
        assert [p.text for p in history.posts] == ["frist post", "first post"]
        assert history.rejected == []

        other = await alice.channels.publish_text(ch, "to be deleted")
        await _next_post(bob)
        assert await alice.channels.delete(ch, other) == 1
        gone = await _next_post(bob)
        assert isinstance(gone, ChannelPost) and gone.deleted and gone.content == b""
        page = await bob.channels.posts(ch)
        assert [(p.seq, p.deleted) for p in page.posts] == [(2, True), (1, False)]

        # The operator (or an intruder) rewrites post 1 in the database: readers refuse it.
        body = kinds.encode_content(kinds.Text(text="send your coins to mallory"))[1]
        db = sqlite3.connect(server.app.settings.store.db)
        with db:
            db.execute("UPDATE pub_posts SET content=? WHERE channel=? AND seq=1", (body, ch))
        db.close()
        page = await bob.channels.posts(ch)
        assert [p.seq for p in page.posts] == [2]
        assert [r.post.seq for r in page.rejected] == [1]
        assert "signature" in page.rejected[0].reason


async def test_comments_page_with_replies_and_reactions_are_counted(
    server: RunningServer, tmp_path: Path
) -> None:
    """Issue 19.2: a post's thread pages oldest first with replies pointing at their comment;
    a comment is deleted by its author or the channel's admin, never by another reader; each
    reader's reaction counts once, per emoji, and the counts say which are the reader's."""
    alice = await sdk_user(server, tmp_path, "alice")
    bob = await sdk_user(server, tmp_path, "bob")
    carol = await sdk_user(server, tmp_path, "carol")
    try:
        ch = (await alice.channels.create("alice_news", "Alice News")).channel
        seq = await alice.channels.publish_text(ch, "what do you think?")
        made = []
        for i in range(7):
            who = bob if i % 2 == 0 else carol
            made.append((await who.channels.comment(ch, seq, f"comment {i}")).comment)
        reply = await carol.channels.comment(ch, seq, "I agree", reply_to=made[0])
        assert (reply.reply_to, reply.handle) == (made[0], "carol")
        seen, after = [], 0
        while True:
            page = await bob.channels.comments(ch, seq, after=after, limit=3)
            seen += page.items
            after = page.next
            if not after:
                break
        assert [c.comment for c in seen] == [*made, reply.comment]
        assert page.total == 8
        with pytest.raises(RequestError) as refused:
            await bob.channels.delete_comment(ch, reply.comment)  # carol's: not bob's to delete
        assert refused.value.code == ErrorCode.FORBIDDEN
        await carol.channels.delete_comment(ch, made[1])  # her own
        await alice.channels.delete_comment(ch, made[0])  # the admin moderates
        thread = await carol.channels.comments(ch, seq)
        assert [(c.comment, c.deleted, c.content == b"") for c in thread.items[:2]] == [
            (made[0], True, True),
            (made[1], True, True),
        ]
        assert thread.total == 6 and thread.items[-1].reply_to == made[0]

        for who in (bob, carol, bob):  # bob twice: counted once
            await who.channels.react(ch, seq, "👍")
        await carol.channels.react(ch, seq, "🎉")
        counts = await bob.channels.reactions(ch, seq)
        assert [(r.emoji, r.count, r.mine) for r in counts] == [("👍", 2, True), ("🎉", 1, False)]
        counts = await carol.channels.react(ch, seq, "👍", remove=True)
        assert [(r.emoji, r.count, r.mine) for r in counts] == [("🎉", 1, True), ("👍", 1, False)]

        await alice.channels.delete(ch, seq)
        with pytest.raises(NotFound):
            await bob.channels.comment(ch, seq, "too late")
        with pytest.raises(NotFound):
            await bob.channels.react(ch, seq, "👍")
    finally:
        for c in (alice, bob, carol):
            await c.aclose()


async def test_followers_see_new_comments_and_counts_pushed_in_aggregate(
    server: RunningServer, tmp_path: Path
) -> None:
    """A connection watching the post gets each new comment and, for a burst of reactions,
    one or two pushes of the post's counts (at most one a second), never one per reaction; a
    reader who does not watch the post gets neither."""
    alice = await sdk_user(server, tmp_path, "alice")
    bob = await sdk_user(server, tmp_path, "bob")
    stranger = await sdk_user(server, tmp_path, "stranger")
    fans = [await sdk_user(server, tmp_path, f"fan{i}") for i in range(12)]
    try:
        ch = (await alice.channels.create("alice_news", "Alice News")).channel
        seq = await alice.channels.publish_text(ch, "react!")
        await bob.channels.follow(ch)
        await bob.timeline.watch_post(ch, seq)
        said = await stranger.channels.comment(ch, seq, "first")
        await asyncio.gather(*(f.channels.react(ch, seq, "👍") for f in fans))
        comments: list[ChannelComment] = []
        pushes: list[PostReactions] = []
        async with asyncio.timeout(15):
            async for ev in bob.events():
                if isinstance(ev, ChannelComment):
                    comments.append(ev)
                elif isinstance(ev, PostReactions):
                    pushes.append(ev)
                    if [(c.emoji, c.count) for c in ev.counts] == [("👍", 12)]:
                        break
        assert [c.comment.comment for c in comments] == [said.comment]
        assert 1 <= len(pushes) <= 3  # 12 reactions, not 12 pushes
        assert not any(c.mine for p in pushes for c in p.counts)
        got: list[object] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.5):
                async for ev in stranger.events():
                    if isinstance(ev, ChannelComment | PostReactions):
                        got.append(ev)
        assert got == []
    finally:
        for c in (alice, bob, stranger, *fans):
            await c.aclose()


async def test_long_posts_and_comments_come_in_pages_that_fit_a_frame(
    server: RunningServer, tmp_path: Path
) -> None:
    """SPEC.md 11.5: six posts and six comments of 60 KB (15,000 characters, each 4 bytes of
    UTF-8; a page of them is 360 KB, over the 256 KiB frame) are read in pages cut to fit, each
    with the cursor of its last item, every one exactly once: the posts, the timeline and the
    thread."""
    alice = await sdk_user(server, tmp_path, "alice")
    bob = await sdk_user(server, tmp_path, "bob")
    try:
        ch = (await alice.channels.create("long_reads", "Long reads")).channel
        await bob.channels.follow(ch)
        for n in range(1, 7):
            await alice.channels.publish_text(ch, str(n) + "\N{GRINNING FACE}" * 14_999)
            await bob.channels.comment(ch, 1, str(n) + "\N{GRINNING FACE}" * 14_999)

        seqs: list[int] = []
        page = await bob.channels.posts(ch)
        while True:
            assert page.rejected == [] and 0 < len(page.posts) < 6
            seqs += [p.seq for p in page.posts]
            if not page.next:
                break
            page = await bob.channels.posts(ch, before=page.next)
        assert seqs == [6, 5, 4, 3, 2, 1]

        timeline = [e.post.seq async for e in bob.timeline.entries() if e.post is not None]
        assert timeline == [6, 5, 4, 3, 2, 1]

        texts: list[str] = []
        after = 0
        while True:
            thread = await bob.channels.comments(ch, 1, after=after)
            assert 0 < len(thread.items) < 6 and thread.total == 6
            for c in thread.items:
                body = kinds.decode_content(c.kind, c.content)
                assert isinstance(body, kinds.Text)
                texts.append(body.text[0])
                assert len(c.content) > 59_000
            if not thread.next:
                break
            after = thread.next
        assert texts == [str(n) for n in range(1, 7)]
    finally:
        await alice.aclose()
        await bob.aclose()


async def test_a_long_post_edited_many_times_can_still_be_edited_deleted_and_read(
    server: RunningServer, tmp_path: Path
) -> None:
    """SPEC.md 20.1, 11.5: six versions of 60 KB are more than a frame; the history answers the
    newest that fit, so the SDK (which reads it for the next version) still edits and deletes."""
    alice = await sdk_user(server, tmp_path, "alice")
    try:
        ch = (await alice.channels.create("long_reads", "Long reads")).channel
        seq = await alice.channels.publish_text(ch, "0" + "\N{GRINNING FACE}" * 14_999)
        for n in range(1, 6):
            assert (
                await alice.channels.edit_text(ch, seq, str(n) + "\N{GRINNING FACE}" * 14_999) == n
            )
        history = await alice.channels.history(ch, seq)
        assert history.rejected == [] and 0 < len(history.posts) < 6
        assert history.posts[-1].ver == 5
        assert await alice.channels.delete(ch, seq) == 6
        assert (await alice.channels.posts(ch)).posts[0].deleted
    finally:
        await alice.aclose()
