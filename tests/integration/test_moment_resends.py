"""Resending a Moment, a comment or a like (SPEC.md 22.1, "Resends") against a real server: the
same frame twice (a client that lost the answer) is one Moment with one id, pushed once; another
body under the same cmid is CONFLICT; and the SDK, when its connection drops before the answer,
sends the same frame again (same cmid, same sealed bytes) and posts once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from chatclient import Client, ConnectionLost, KeyStore
from chatproto import frames as F
from chatproto.errors import ErrorCode
from conftest import RunningServer, make_settings, run_server
from testkit import Raw

FAST = {"frames_per_second": 100_000.0, "frame_burst": 100_000.0}


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with run_server(make_settings(tmp_path, limits=FAST)) as s:
        yield s


async def _raw(url: str, handle: str) -> Raw:
    r = await Raw.open(url, max_queue=None)
    await r.register(handle)
    return r


async def _friends(a: Raw, b: Raw) -> None:
    await a.request(F.CreateConv(id=a.next_id(), kind="direct", members=[b.account]), F.Conv)
    await b.request(F.CreateConv(id=b.next_id(), kind="direct", members=[a.account]), F.Conv)


async def _answers(r: Raw, frame: F.Frame, times: int) -> list[Any]:
    """Send ``frame`` (its request id too) ``times`` times, then read its ``times`` answers."""
    for _ in range(times):
        await r.send_frame(frame)
    return [await r._reply(frame.id) for _ in range(times)]


async def test_the_same_post_moment_twice_is_one_moment_pushed_once(server: RunningServer) -> None:
    alice, bob = await _raw(server.url, "alice"), await _raw(server.url, "bob")
    await _friends(alice, bob)
    post = F.PostMoment(id=alice.next_id(), audience=[bob.account], body=b"\x01ct", cmid="m-1")
    first, again = await _answers(alice, post, 2)
    assert isinstance(first, F.MomentAnswer) and first == again  # same id, same ts, same audience
    feed: F.Moments = await bob.request(F.GetMoments(id=bob.next_id()), F.Moments)
    assert [m.moment for m in feed.items] == [first.info.moment]
    assert [f.info.moment for f in bob.backlog if isinstance(f, F.MomentEvent)] == [
        first.info.moment
    ]  # pushed once: the resend pushes nothing
    other = F.PostMoment(id=alice.next_id(), all=True, body=b"\x01other", cmid="m-1")
    refused = await alice.request(other, F.Error)
    assert refused.code == ErrorCode.CONFLICT
    mine: F.Moments = await alice.request(F.GetMoments(id=alice.next_id()), F.Moments)
    assert len(mine.items) == 1


async def test_the_same_comment_or_like_twice_is_one_row(server: RunningServer) -> None:
    alice, bob = await _raw(server.url, "alice"), await _raw(server.url, "bob")
    await _friends(alice, bob)
    moment = (
        await alice.request(
            F.PostMoment(id=alice.next_id(), all=True, body=b"\x01ct"), F.MomentAnswer
        )
    ).info.moment
    comment = F.CommentMoment(id=bob.next_id(), moment=moment, body=b"\x01c", cmid="c-1")
    like = F.LikeMoment(id=bob.next_id(), moment=moment, body=b"\x01l", cmid="l-1")
    for frame in (comment, like):
        first, again = await _answers(bob, frame, 2)
        assert isinstance(first, F.MomentCommented) and first == again
    got: F.MomentComments = await alice.request(
        F.GetMomentComments(id=alice.next_id(), moment=moment), F.MomentComments
    )
    assert [c.kind for c in got.items] == ["comment", "like"]
    reuse = F.CommentMoment(id=bob.next_id(), moment=moment, body=b"\x01other", cmid="c-1")
    assert (await bob.request(reuse, F.Error)).code == ErrorCode.CONFLICT


async def test_the_sdk_sends_the_same_frame_again_when_the_answer_is_lost(
    server: RunningServer, tmp_path: Path
) -> None:
    alice = Client(server.url, KeyStore.open(tmp_path / "alice.key"))
    async with alice:
        await alice.register("alice", "Alice")
        conn = alice.moments._c
        call, sent = conn.call, []

        async def lose_the_first_answer(frame: Any, expect: Any) -> Any:
            sent.append(frame)
            got = await call(frame, expect)
            if len(sent) == 1:
                raise ConnectionLost("connection lost")  # stored, but the answer never came
            return got

        conn.call = lose_the_first_answer  # type: ignore[method-assign]
        posted = await alice.moments.post("only once", [])
        conn.call = call  # type: ignore[method-assign]
        assert len(sent) == 2 and sent[0].id != sent[1].id
        assert (sent[0].cmid, sent[0].body) == (sent[1].cmid, sent[1].body) and sent[0].cmid
        page = await alice.moments.feed()
        assert [(m.moment, m.text) for m in page.items] == [(posted.moment, "only once")]
