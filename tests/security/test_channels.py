"""Public channels under attack (issue 19.1, SPEC.md 20), on SQLite and PostgreSQL with the
server's default limits: a follower or stranger cannot publish, edit, delete or name admins,
even with a valid signature of its own; a stranger searching the directory a thousand times is
rate-limited without hurting anyone else; and what the server (its operator, or whoever holds
its database) forges or alters in the posts it serves is refused by every reader."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from chatclient import Client, KeyStore, RequestError
from chatproto import frames as F
from chatproto import kinds, posts
from chatproto.e2e.primitives import SigningKey
from chatproto.errors import ErrorCode
from conftest import RunningServer, make_settings, run_server
from testkit import Raw

FAST = {"frames_per_second": 100_000.0, "frame_burst": 100_000.0}
CONSENT = {"add_me": "contacts", "presence": "contacts", "last_seen": "contacts"}


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, db: str) -> AsyncIterator[RunningServer]:
    settings = make_settings(tmp_path, store={"db": db}, limits=FAST, consent=CONSENT)
    async with run_server(settings) as s:
        yield s


async def sql(db: str, statement: str, *args: Any) -> None:
    """Run ``statement`` (``?`` placeholders) on the server's database, as its operator."""
    if db.startswith("postgres"):
        parts = statement.split("?")
        text = parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], 1))
        conn = await asyncpg.connect(db)
        try:
            await conn.execute(text, *args)
        finally:
            await conn.close()
        return
    con = sqlite3.connect(db, timeout=10)
    try:
        with con:
            con.execute(statement, args)
    finally:
        con.close()


async def sdk_user(server: RunningServer, tmp_path: Path, handle: str) -> Client:
    c = Client(server.url, KeyStore.open(tmp_path / f"{handle}.key"))
    await c.__aenter__()
    await c.register(handle, handle.title())
    return c


def body(text: str) -> bytes:
    return kinds.encode_content(kinds.Text(text=text))[1]


def signed(
    raw: Raw, server: str, channel: int, seq: int, ver: int, kind: str, content: bytes
) -> F.Publish:
    """A publish ``raw`` signs correctly with its own device key."""
    ts = int(time.time() * 1000)
    post = F.Post(
        channel=channel,
        seq=seq,
        ver=ver,
        ts=ts,
        author=raw.account,
        device=raw.device,
        kind=kind,
        content=content,
        sig=bytes(64),
    )
    sig = posts.sign_post(raw.key, server, post)
    return F.Publish(
        id=raw.next_id(),
        channel=channel,
        seq=seq,
        ver=ver,
        ts=ts,
        kind=kind,
        content=content,
        sig=sig,
    )


async def test_only_admins_publish_edit_or_delete(tmp_path: Path, db: str) -> None:
    async with serving(tmp_path, db) as server:
        alice = await sdk_user(server, tmp_path, "alice")
        dave = await sdk_user(server, tmp_path, "dave")
        reader = await sdk_user(server, tmp_path, "reader")
        mallory = await Raw.open(server.url)
        await mallory.register("mallory")
        name = mallory.challenge.server
        try:
            ch = (await alice.channels.create("alice_news", "Alice News")).channel
            await alice.channels.publish_text(ch, "the real post")
            await mallory.request(F.Follow(id=mallory.next_id(), channel=ch), F.ChannelAnswer)
            attempts = [
                signed(mallory, name, ch, 2, 0, "text", body("mallory's post")),
                signed(mallory, name, ch, 1, 1, "text", body("mallory's edit")),
                signed(mallory, name, ch, 1, 1, posts.TOMBSTONE, b""),
            ]
            for frame in attempts:
                err = await mallory.request(frame)
                assert isinstance(err, F.Error) and err.code == ErrorCode.FORBIDDEN, err
            grab = F.SetChannelAdmin(id=mallory.next_id(), channel=ch, account=mallory.account)
            err = await mallory.request(grab)
            assert isinstance(err, F.Error) and err.code == ErrorCode.FORBIDDEN, err
            # A signature that is not the connection's device's is refused before anything.
            forged = msgspec.structs.replace(
                attempts[0], id=mallory.next_id(), sig=SigningKey.generate().sign(b"x")
            )
            err = await mallory.request(forged)
            assert isinstance(err, F.Error) and err.code == ErrorCode.BAD_SIGNATURE, err
            page = await reader.channels.posts(ch)
            assert [(p.seq, p.ver, p.text) for p in page.posts] == [(1, 0, "the real post")]

            # Named by the owner, dave may publish; readers verify his post under his key.
            await alice.channels.set_admin(ch, dave.account)
            seq = await dave.channels.publish_text(ch, "from dave")
            assert await dave.channels.edit_text(ch, 1, "the real post, edited by dave") == 1
            page = await reader.channels.posts(ch)
            assert page.rejected == []
            assert [(p.seq, p.author) for p in page.posts] == [
                (seq, dave.account),
                (1, dave.account),
            ]
            await alice.channels.set_admin(ch, dave.account, admin=False)
            with pytest.raises(RequestError) as refused:
                await dave.channels.publish_text(ch, "no longer")
            assert refused.value.code == ErrorCode.FORBIDDEN
        finally:
            await mallory.ws.close()
            for c in (alice, dave, reader):
                await c.aclose()


async def test_a_stranger_searching_a_thousand_times_is_rate_limited(
    tmp_path: Path, db: str
) -> None:
    """The default budget (burst 20, 30 a minute per account) answers a few searches and
    refuses the rest with ``RATE_LIMITED``; the connection stays, the stranger's other frames
    are served, and another account's searches are untouched."""
    async with serving(tmp_path, db) as server:
        owner = await Raw.open(server.url)
        await owner.register("owner")
        await owner.request(
            F.CreateChannel(id=owner.next_id(), handle="gardening", title="Gardening"),
            F.ChannelAnswer,
        )
        stranger = await Raw.open(server.url)
        await stranger.register("stranger")
        answered = limited = 0
        for _ in range(1000):
            reply = await stranger.request(F.SearchChannels(id=stranger.next_id(), query="garden"))
            if isinstance(reply, F.ChannelList):
                answered += 1
            else:
                assert isinstance(reply, F.Error) and reply.code == ErrorCode.RATE_LIMITED, reply
                limited += 1
        assert 20 <= answered <= 30 and limited == 1000 - answered
        found = await stranger.request(
            F.FindChannel(id=stranger.next_id(), handle="gardening"), F.ChannelAnswer
        )
        assert found.info.handle == "gardening"
        other = await owner.request(
            F.SearchChannels(id=owner.next_id(), query="garden"), F.ChannelList
        )
        assert [i.handle for i in other.items] == ["gardening"]
        await stranger.ws.close()
        await owner.ws.close()


async def test_posts_the_server_forges_or_alters_are_refused_by_readers(
    tmp_path: Path, db: str
) -> None:
    """The operator rewrites a post, makes one up in the publisher's name (signed with a key
    of its own), and copies a genuine post of another channel into this one: the reader shows
    only the untouched post and refuses the three, following or not."""
    async with serving(tmp_path, db) as server:
        alice = await sdk_user(server, tmp_path, "alice")
        bob = await sdk_user(server, tmp_path, "bob")
        try:
            ch = (await alice.channels.create("alice_news", "Alice News")).channel
            other = (await alice.channels.create("alice_diary", "Alice's diary")).channel
            await alice.channels.publish_text(ch, "one")
            await alice.channels.publish_text(ch, "two")
            await alice.channels.publish_text(other, "a diary entry")
            await bob.channels.follow(ch)
            await sql(
                db,
                "UPDATE pub_posts SET content=? WHERE channel=? AND seq=1",
                body("one, and send me your coins"),
                ch,
            )
            fake = F.Post(
                channel=ch,
                seq=3,
                ts=int(time.time() * 1000),
                author=alice.account,
                device=alice.device,
                kind="text",
                content=body("made up"),
                sig=bytes(64),
            )
            fake_sig = posts.sign_post(SigningKey.generate(), alice.server_name, fake)
            columns = "channel, seq, ver, ts, author, device, kind, content, sig"
            await sql(
                db,
                f"INSERT INTO pub_posts ({columns}) VALUES (?,?,?,?,?,?,?,?,?)",
                *(ch, 3, 0, fake.ts, alice.account, alice.device, "text", fake.content, fake_sig),
            )
            await sql(
                db,
                f"INSERT INTO pub_posts ({columns}) SELECT ?, 4, ver, ts, author, device, kind,"
                " content, sig FROM pub_posts WHERE channel=? AND seq=1",
                ch,
                other,
            )
            page = await bob.channels.posts(ch)
            assert [p.text for p in page.posts] == ["two"]
            assert sorted(r.post.seq for r in page.rejected) == [1, 3, 4]
            assert all("signature" in r.reason for r in page.rejected)
        finally:
            await alice.aclose()
            await bob.aclose()


async def test_a_stranger_deletes_no_comment_and_a_thousand_reactions_count_once(
    tmp_path: Path, db: str
) -> None:
    """Under a post, a stranger can comment and react, but cannot delete someone else's
    comment (``FORBIDDEN``, the comment stays), and reacting a thousand times with one emoji
    counts one reaction; a reply to a comment of another post is ``NOT_FOUND``."""
    async with serving(tmp_path, db) as server:
        alice = await sdk_user(server, tmp_path, "alice")
        bob = await sdk_user(server, tmp_path, "bob")
        mallory = await Raw.open(server.url)
        await mallory.register("mallory")
        try:
            ch = (await alice.channels.create("alice_news", "Alice News")).channel
            one = await alice.channels.publish_text(ch, "one")
            two = await alice.channels.publish_text(ch, "two")
            said = await bob.channels.comment(ch, one, "bob's comment")
            err = await mallory.request(
                F.DeleteComment(id=mallory.next_id(), channel=ch, comment=said.comment)
            )
            assert isinstance(err, F.Error) and err.code == ErrorCode.FORBIDDEN, err
            elsewhere = F.Comment(
                id=mallory.next_id(),
                channel=ch,
                seq=two,
                reply_to=said.comment,
                kind="text",
                content=body("hijack"),
            )
            err = await mallory.request(elsewhere)
            assert isinstance(err, F.Error) and err.code == ErrorCode.NOT_FOUND, err
            for _ in range(1000):
                await mallory.send_frame(
                    F.ReactPost(id=mallory.next_id(), channel=ch, seq=one, emoji="💩")
                )
            answered = 0
            while answered < 1000:  # each a write: on a loaded PostgreSQL this takes seconds
                if isinstance(await mallory.recv(timeout=60), F.Reactions):
                    answered += 1
            last = await mallory.request(
                F.ReactPost(id=mallory.next_id(), channel=ch, seq=one, emoji="💩"), F.Reactions
            )
            assert [(c.emoji, c.count, c.mine) for c in last.counts] == [("💩", 1, True)]
            thread = await alice.channels.comments(ch, one)
            assert [(c.comment, c.deleted) for c in thread.items] == [(said.comment, False)]
            assert [(c.emoji, c.count) for c in await alice.channels.reactions(ch, one)] == [
                ("💩", 1)
            ]
        finally:
            await mallory.ws.close()
            await alice.aclose()
            await bob.aclose()
