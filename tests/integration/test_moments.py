"""Moments (issue 19.3, SPEC.md 22, E2E.md 18) with several SDK clients against a real server.

The issue's scenario exactly: A posts to B and C (A's contacts, not each other's) with a random
marker; each comments; B sees A's and B's comments only, C likewise, A sees all; a non-contact
D gets NOT_FOUND; the marker never appears in the server's database files or its log (DEBUG),
neither in the post nor in any comment. Then: pushes obey the same rule, likes, "all my
contacts", deletes, and a key that comes after its Moment."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chatclient import Client, KeyStore, NotFound
from chatclient.e2e import MissingKey
from chatclient.events import MomentNote, MomentPost
from chatproto import frames as F
from chatproto.e2e import moments as scopes
from conftest import RunningServer, make_settings, run_server
from testkit import ServerProcess

FAST = {"frames_per_second": 100_000.0, "frame_burst": 100_000.0}


async def _user(url: str, tmp_path: Path, handle: str) -> Client:
    c = Client(url, KeyStore.open(tmp_path / f"{handle}.key"))
    await c.__aenter__()
    await c.register(handle, handle.title())
    return c


async def befriend(a: Client, b: Client) -> None:
    """Mutual contacts (SPEC.md 18.1): each opens the direct conversation (the test servers
    let strangers in directly, so neither has a request to accept)."""
    await a.direct(b.account)
    await b.direct(a.account)


async def notes(c: Client, moment: int) -> list[tuple[int, str | None]]:
    return [(n.author, n.text) async for n in c.moments.comments(moment)]


async def next_of(c: Client, kind: type, timeout: float = 10.0) -> object:
    async with asyncio.timeout(timeout):
        async for ev in c.events():
            if isinstance(ev, kind):
                return ev
    raise AssertionError("events ended")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with run_server(make_settings(tmp_path, limits=FAST)) as s:
        yield s


async def test_the_issues_scenario_each_sees_its_contacts_comments_and_the_server_no_marker(
    tmp_path: Path,
) -> None:
    db = tmp_path / "chatd.db"
    srv = ServerProcess(db, env={"CHATD_LOG__LEVEL": "DEBUG"})
    await srv.start()
    a, b, c, d = [await _user(srv.url, tmp_path, h) for h in ("alice", "bob", "carol", "dave")]
    try:
        await befriend(a, b)
        await befriend(a, c)
        await befriend(b, d)  # dave knows bob, not alice
        marker = secrets.token_hex(16)
        posted = await a.moments.post(f"holiday photos {marker}", [b.account, c.account])
        m = posted.moment
        assert posted.text == f"holiday photos {marker}"
        for viewer in (b, c):
            got = await viewer.moments.get(m)
            assert (got.author, got.text) == (a.account, f"holiday photos {marker}")
        await a.moments.comment(m, f"A says {marker}")
        await b.moments.comment(m, f"B says {marker}")
        await c.moments.comment(m, f"C says {marker}")
        mine = [(a.account, f"A says {marker}")]
        assert await notes(b, m) == [*mine, (b.account, f"B says {marker}")]
        assert await notes(c, m) == [*mine, (c.account, f"C says {marker}")]
        assert await notes(a, m) == [
            *mine,
            (b.account, f"B says {marker}"),
            (c.account, f"C says {marker}"),
        ]
        for call in (d.moments.get(m), d.moments.comment(m, "let me in")):
            with pytest.raises(NotFound):
                await call
        with pytest.raises(NotFound):
            await anext(aiter(d.moments.comments(m)))
        assert (await d.moments.feed()).items == []
        assert [p.moment for p in (await b.moments.feed()).items] == [m]
    finally:
        for x in (a, b, c, d):
            await x.aclose()
        srv.terminate()
    assert _where(tmp_path, marker.encode()) == []
    with sqlite3.connect(db) as check:  # the grep looked where they are: all stored, opaque
        assert check.execute("SELECT count(*) FROM moments").fetchone() == (1,)
        assert check.execute("SELECT count(*) FROM moment_comments").fetchone() == (3,)


def _where(directory: Path, needle: bytes) -> list[Path]:
    """The server's files (its database, WAL, log) that contain ``needle``."""
    files = [p for p in directory.iterdir() if p.name.startswith("chatd.")]
    assert {p.suffix for p in files} >= {".db", ".log"}
    return [f for f in files if needle in f.read_bytes()]


async def test_pushes_obey_the_rule_and_keys_reach_only_the_commenters_contacts(
    server: RunningServer, tmp_path: Path
) -> None:
    a, b, c = [await _user(server.url, tmp_path, h) for h in ("alice", "bob", "carol")]
    try:
        await befriend(a, b)
        await befriend(a, c)
        posted = await a.moments.post("hello", [b.account, c.account])
        for viewer in (b, c):
            ev = await next_of(viewer, MomentPost)
            assert isinstance(ev, MomentPost) and (ev.moment, ev.text) == (posted.moment, "hello")
        await b.moments.comment(posted.moment, "from bob")
        ev = await next_of(a, MomentNote)
        assert isinstance(ev, MomentNote) and (ev.author, ev.text) == (b.account, "from bob")
        await c.moments.like(posted.moment)
        ev = await next_of(a, MomentNote)
        assert isinstance(ev, MomentNote) and ev.like and ev.author == c.account
        # bob got neither carol's like nor a key for it: his next Moments event is alice's
        await a.moments.comment(posted.moment, "thanks all")
        ev = await next_of(b, MomentNote)
        assert isinstance(ev, MomentNote) and (ev.author, ev.text) == (a.account, "thanks all")
        assert await b.moments.audience(posted.moment) == sorted([a.account, b.account])
        assert await a.moments.audience(posted.moment) == sorted([b.account, c.account])
        likes = [n async for n in a.moments.comments(posted.moment) if n.like]
        assert [(x.readable, x.text) for x in likes] == [(True, "❤")]
        # A server breaking the delivery rule would hand bob carol's like: he holds no key for
        # it (carol's client gave it to alice's devices and her own only).
        raw = await a._call(
            F.GetMomentComments(id=a._next_id(), moment=posted.moment), F.MomentComments
        )
        stolen = next(x for x in raw.items if x.kind == "like")
        scope = scopes.comments_of(posted.moment)
        assert b.e2e.inbound_key_ids(scope, c.device) == set()
        with pytest.raises(MissingKey):
            b.e2e.decrypt(scope, stolen.comment, c.account, c.device, stolen.body)
    finally:
        for x in (a, b, c):
            await x.aclose()


async def test_all_contacts_likes_deletes_and_a_feed_in_pages(
    server: RunningServer, tmp_path: Path
) -> None:
    a, b, c = [await _user(server.url, tmp_path, h) for h in ("alice", "bob", "carol")]
    try:
        await befriend(a, b)
        await a.direct(c.account)  # one way: carol never wrote back, so not a contact
        made = [await a.moments.post(f"m{i}") for i in range(5)]  # all contacts: bob only
        # with "all", the key follows the post (the audience is the server's answer): the
        # pushed Moment waited for it and opened
        ev = await next_of(b, MomentPost)
        assert isinstance(ev, MomentPost) and (ev.text, ev.readable) == ("m0", True)
        page = await b.moments.feed(limit=2)
        seen = list(page.items)
        while page.next is not None:
            page = await b.moments.feed(before=page.next, limit=2)
            seen += page.items
        assert [p.text for p in seen] == ["m4", "m3", "m2", "m1", "m0"]
        assert all(p.readable for p in seen)
        assert (await c.moments.feed()).items == []
        first = await b.moments.like(made[0].moment)
        again = await b.moments.like(made[0].moment)
        assert again.comment == first.comment
        await b.moments.unlike(made[0].moment)
        assert await notes(a, made[0].moment) == []
        note = await b.moments.comment(made[1].moment, "nice")
        await a.moments.delete_comment(made[1].moment, note.comment)  # the Moment's author may
        assert await notes(b, made[1].moment) == []
        await a.moments.delete(made[4].moment)
        with pytest.raises(NotFound):
            await b.moments.get(made[4].moment)
        assert [p.text for p in (await b.moments.feed(author=a.account)).items][:1] == ["m3"]
    finally:
        for x in (a, b, c):
            await x.aclose()
