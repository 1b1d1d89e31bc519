"""Comment moderation and view counts of public channels under attack (issue 19.2, SPEC.md
20.9), on SQLite and PostgreSQL: a stranger banning, lifting, listing or setting slow mode a
thousand times is refused every time and changes nothing; one account reporting a view a
thousand times adds one view, and its view budget then refuses it without touching anyone
else's; a commenter racing its own ban has nothing standing once the ban is answered."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chatproto import frames as F
from chatproto import kinds
from chatproto.errors import ErrorCode
from serverkit import sdk_user, serving
from testkit import Raw

from chatd.core.channel_moderation import VIEWS_PER_MINUTE


def body(text: str) -> bytes:
    return kinds.encode_content(kinds.Text(text=text))[1]


async def answers(raw: Raw, n: int) -> list[F.ServerFrame]:
    """The next ``n`` answers on ``raw`` (pushed events skipped)."""
    got: list[F.ServerFrame] = []
    while len(got) < n:
        f = await raw.recv(timeout=60)
        if getattr(f, "re", 0):
            got.append(f)
    return got


async def test_a_stranger_moderating_a_thousand_times_is_refused_and_changes_nothing(
    tmp_path: Path, db: str
) -> None:
    async with serving(tmp_path, db) as server:
        alice = await sdk_user(server, tmp_path, "alice")
        bob = await sdk_user(server, tmp_path, "bob")
        mallory = await Raw.open(server.url, max_queue=None)
        await mallory.register("mallory")
        try:
            ch = (await alice.channels.create("alice_news", "Alice News")).channel
            seq = await alice.channels.publish_text(ch, "hello")
            await bob.channels.comment(ch, seq, "hi")
            frames: list[F.ClientFrame] = []
            for i in range(250):
                frames += [
                    F.BanCommenter(
                        id=mallory.next_id(),
                        channel=ch,
                        account=bob.account,
                        delete_comments=True,
                    ),
                    F.SetSlowMode(id=mallory.next_id(), channel=ch, seconds=3600),
                    F.UnbanCommenter(id=mallory.next_id(), channel=ch, account=alice.account),
                    F.ListCommentBans(id=mallory.next_id(), channel=ch, after=i),
                ]
            for f in frames:
                await mallory.send_frame(f)
            got = await answers(mallory, len(frames))
            assert all(isinstance(a, F.Error) and a.code == ErrorCode.FORBIDDEN for a in got)
            # Nothing changed: no ban, no slow mode, bob's comment stands and he goes on.
            assert await alice.channels.comment_bans(ch) == []
            assert (await bob.channels.find("alice_news")).slow_mode == 0
            await bob.channels.comment(ch, seq, "still here")
            await bob.channels.comment(ch, seq, "and again")
            thread = await alice.channels.comments(ch, seq)
            assert [c.deleted for c in thread.items] == [False, False, False]
        finally:
            await mallory.ws.close()
            await alice.aclose()
            await bob.aclose()


async def test_one_account_viewing_a_thousand_times_adds_one_view(tmp_path: Path, db: str) -> None:
    """A reader's client reports views; one account reporting the same post a thousand times
    (its whole view budget for the minute) adds one view, and the next report is refused
    (``RATE_LIMITED``) while another reader's still counts. Inflating a count takes an account
    per view."""
    async with serving(tmp_path, db) as server:
        alice = await sdk_user(server, tmp_path, "alice")
        bob = await sdk_user(server, tmp_path, "bob")
        mallory = await Raw.open(server.url, max_queue=None)
        await mallory.register("mallory")
        try:
            ch = (await alice.channels.create("alice_news", "Alice News")).channel
            seq = await alice.channels.publish_text(ch, "hello")
            for _ in range(VIEWS_PER_MINUTE):
                await mallory.send_frame(F.ViewPosts(id=mallory.next_id(), channel=ch, seqs=[seq]))
            got = await answers(mallory, VIEWS_PER_MINUTE)
            assert all(isinstance(a, F.Ok) for a in got), {type(a) for a in got}
            assert (await alice.channels.posts(ch)).posts[0].views == 1
            over = await mallory.request(F.ViewPosts(id=mallory.next_id(), channel=ch, seqs=[seq]))
            assert isinstance(over, F.Error) and over.code == ErrorCode.RATE_LIMITED, over
            await bob.channels.view(ch, [seq])
            assert (await bob.channels.posts(ch)).posts[0].views == 2
        finally:
            await mallory.ws.close()
            await alice.aclose()
            await bob.aclose()


async def test_nothing_a_commenter_sends_stands_once_its_ban_is_answered(
    tmp_path: Path, db: str
) -> None:
    """Mallory pipelines 300 comments while the owner bans her with her comments deleted:
    each is either refused (``FORBIDDEN``) or was stored before the ban and is empty now; once
    the ban is answered, no comment of hers stands, and a new one is refused."""
    async with serving(tmp_path, db) as server:
        alice = await sdk_user(server, tmp_path, "alice")
        mallory = await Raw.open(server.url, max_queue=None)
        await mallory.register("mallory")
        try:
            ch = (await alice.channels.create("alice_news", "Alice News")).channel
            seq = await alice.channels.publish_text(ch, "hello")
            spam = [
                F.Comment(id=mallory.next_id(), channel=ch, seq=seq, kind="text", content=body("x"))
                for _ in range(300)
            ]

            async def flood() -> None:
                for f in spam:
                    await mallory.send_frame(f)

            async def ban() -> None:
                await asyncio.sleep(0.01)
                await alice.channels.ban_commenter(ch, mallory.account, delete_comments=True)

            await asyncio.gather(flood(), ban())
            standing = [
                c
                for c in (await alice.channels.comments(ch, seq, limit=500)).items
                if not c.deleted
            ]
            assert standing == []
            got = await answers(mallory, len(spam))
            stored = {a.comment.comment for a in got if isinstance(a, F.Commented)}
            refused = [a for a in got if isinstance(a, F.Error)]
            assert all(a.code == ErrorCode.FORBIDDEN for a in refused)
            assert len(stored) + len(refused) == len(spam) and refused
            thread = await alice.channels.comments(ch, seq, limit=500)
            assert {c.comment for c in thread.items} == stored
            assert all(c.deleted for c in thread.items)
            late = await mallory.request(
                F.Comment(id=mallory.next_id(), channel=ch, seq=seq, kind="text", content=b"y")
            )
            assert isinstance(late, F.Error) and late.code == ErrorCode.FORBIDDEN
        finally:
            await mallory.ws.close()
            await alice.aclose()
