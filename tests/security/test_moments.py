"""Moments (issue 19.3, SPEC.md 22) attacked against a real server, on SQLite and PostgreSQL,
with chatd's default privacy settings:

* a stranger (or a one-way contact: an account that only messaged its victims) posting Moments
  to 1,000 accounts that never accepted it, 1,000 times: refused, nothing stored, nothing pushed;
* anyone outside a Moment's audience gets the same ``NOT_FOUND`` for every frame as for a Moment
  that does not exist (no oracle), and cannot comment, like or delete;
* a contact ending (a block) while its friend posts: whatever the interleaving, the blocker
  sees none of those Moments afterwards, and later pushes never reach it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from chatproto import frames as F
from chatproto.errors import ErrorCode
from conftest import make_settings, run_server
from testkit import Raw

DEFAULTS = {"add_me": "contacts", "presence": "contacts", "last_seen": "contacts"}
FAST = {"frames_per_second": 100_000.0, "frame_burst": 100_000.0}


def settings(tmp_path: Path, db: str, **limits: Any) -> Any:
    return make_settings(
        tmp_path, store={"db": db}, limits={**FAST, **limits}, consent=dict(DEFAULTS)
    )


async def user(url: str, handle: str) -> Raw:
    r = await Raw.open(url, max_queue=None)  # reads late: must not stop reading (keepalive)
    await r.register(handle)
    return r


async def befriend(a: Raw, b: Raw) -> None:
    """Mutual contacts: a opens a direct conversation (b gets a request), b accepts it."""
    conv: F.Conv = await a.request(
        F.CreateConv(id=a.next_id(), kind="direct", members=[b.account]), F.Conv
    )
    await b.request(F.AnswerRequest(id=b.next_id(), conv=conv.info.conv, answer="accept"), F.Ok)


async def post(a: Raw, audience: list[int], body: bytes = b"ct", everyone: bool = False) -> Any:
    return await a.request(F.PostMoment(id=a.next_id(), audience=audience, all=everyone, body=body))


async def feed(c: Raw) -> list[int]:
    got: F.Moments = await c.request(F.GetMoments(id=c.next_id(), limit=100), F.Moments)
    return [m.moment for m in got.items]


def pushed(c: Raw, kind: type[F.Frame]) -> list[Any]:
    return [f for f in c.backlog if isinstance(f, kind)]


async def test_a_stranger_posting_to_1000_accounts_that_never_accepted_it_is_refused(
    db: str, tmp_path: Path
) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        services = server.app.services
        assert services is not None
        store = services.deps.store
        mallory = await user(server.url, "mallory")
        victim = await user(server.url, "victim")
        made = await asyncio.gather(
            *(
                store.create_account(f"v{i:04}", "V", "user", i.to_bytes(32, "big"), "d", 1)
                for i in range(1, 1000)
            )
        )
        targets = [victim.account, *(a.id for a, _ in made)]
        # one-way contacts cost a stranger nothing (it "messaged first"): still not enough
        await asyncio.gather(*(store.add_contact(mallory.account, t, 1) for t in targets))
        refused = await post(mallory, targets)
        assert isinstance(refused, F.Error) and refused.code == ErrorCode.CONSENT_REQUIRED
        one = await post(mallory, [victim.account])
        assert isinstance(one, F.Error) and one.code == ErrorCode.CONSENT_REQUIRED
        # 1,000 times: refused every time, first for consent, then by the posting budget
        codes = []
        for _ in range(1000):
            got = await post(mallory, [victim.account])
            assert isinstance(got, F.Error)
            codes.append(got.code)
        assert set(codes) <= {ErrorCode.CONSENT_REQUIRED, ErrorCode.RATE_LIMITED}
        assert ErrorCode.RATE_LIMITED in codes
        assert await feed(victim) == []
        assert pushed(victim, F.MomentEvent) == []
        # "all contacts" is mutual contacts only: none for mallory
        assert await store.moments_for(victim.account, None, 10) == []
        for t in targets[:50]:
            assert await store.moments_for(t, None, 10) == []


async def test_outside_the_audience_everything_is_not_found_as_for_no_moment(
    db: str, tmp_path: Path
) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        alice, bob, dave = [await user(server.url, h) for h in ("alice", "bob", "dave")]
        await befriend(alice, bob)
        await befriend(alice, dave)  # dave is alice's contact, but not in this audience
        posted: F.MomentAnswer = await post(alice, [bob.account])
        real, missing = posted.info.moment, posted.info.moment + 100
        await bob.request(F.CommentMoment(id=bob.next_id(), moment=real, body=b"c"))

        async def answers(c: Raw, moment: int) -> list[tuple[int, str]]:
            out = []
            for frame in (
                F.GetMoment(id=c.next_id(), moment=moment),
                F.GetMomentComments(id=c.next_id(), moment=moment),
                F.CommentMoment(id=c.next_id(), moment=moment, body=b"x"),
                F.LikeMoment(id=c.next_id(), moment=moment),
                F.LikeMoment(id=c.next_id(), moment=moment, remove=True),
                F.DeleteMoment(id=c.next_id(), moment=moment),
                F.DeleteMomentComment(id=c.next_id(), moment=moment, comment=1),
            ):
                got = await c.request(frame)
                assert isinstance(got, F.Error), got
                out.append((got.code, got.msg))
            return out

        seen = await answers(dave, real)
        assert {code for code, _ in seen} == {ErrorCode.NOT_FOUND}
        assert seen == await answers(dave, missing) == await answers(bob, missing)
        got: F.Moments = await dave.request(
            F.GetMoments(id=dave.next_id(), author=alice.account), F.Moments
        )
        assert got.items == [] and await feed(dave) == []
        assert pushed(dave, F.MomentEvent) == pushed(dave, F.MomentCommentEvent) == []
        # bob may comment but not delete alice's Moment
        bad = await bob.request(F.DeleteMoment(id=bob.next_id(), moment=real))
        assert isinstance(bad, F.Error) and bad.code == ErrorCode.FORBIDDEN


async def test_a_block_racing_posts_leaves_the_blocker_none_of_them(
    db: str, tmp_path: Path
) -> None:
    async with run_server(settings(tmp_path, db, moments_per_hour=0.0)) as server:
        alice = await user(server.url, "alice")
        bob = await user(server.url, "bob")
        poster = await Raw.open(server.url, max_queue=None)  # alice's second connection
        await poster.login(alice.device, alice.key)
        await befriend(alice, bob)
        sends = [
            poster.send_frame(F.PostMoment(id=1000 + i, audience=[bob.account], body=b"x"))
            for i in range(40)
        ]
        block = bob.request(F.Block(id=bob.next_id(), account=alice.account), F.Ok)
        await asyncio.gather(*sends[:20], block, *sends[20:])
        stored, refused = [], 0
        for i in range(40):
            got = await poster._reply(1000 + i)
            if isinstance(got, F.MomentAnswer):
                stored.append(got.info.moment)
            else:
                assert isinstance(got, F.Error) and got.code == ErrorCode.CONSENT_REQUIRED
                refused += 1
        assert len(stored) + refused == 40
        assert await feed(bob) == []
        for m in stored:
            gone = await bob.request(F.GetMoment(id=bob.next_id(), moment=m))
            assert isinstance(gone, F.Error) and gone.code == ErrorCode.NOT_FOUND
        assert sorted(await feed(alice)) == sorted(stored)
        # from now on nothing of alice's reaches bob
        before = len(pushed(bob, F.MomentEvent))
        later: F.MomentAnswer = await post(alice, [], everyone=True)
        assert later.audience == []
        await feed(bob)  # an answer after the push would have come
        assert len(pushed(bob, F.MomentEvent)) == before


async def test_a_block_racing_comments_hides_every_one_of_them_from_the_blocker(
    db: str, tmp_path: Path
) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        alice, bob, carol = [await user(server.url, h) for h in ("alice", "bob", "carol")]
        await befriend(alice, bob)
        await befriend(alice, carol)
        await befriend(bob, carol)
        posted: F.MomentAnswer = await post(alice, [bob.account, carol.account])
        m = posted.info.moment
        sends = [
            bob.send_frame(F.CommentMoment(id=5000 + i, moment=m, body=b"c")) for i in range(30)
        ]
        block = carol.request(F.Block(id=carol.next_id(), account=bob.account), F.Ok)
        await asyncio.gather(*sends[:15], block, *sends[15:])
        for i in range(30):
            assert isinstance(await bob._reply(5000 + i), F.MomentCommented)
        got: F.MomentComments = await carol.request(
            F.GetMomentComments(id=carol.next_id(), moment=m, limit=100), F.MomentComments
        )
        assert got.items == []  # no longer contacts: none of bob's comments, whenever made
        # from the block's answer on, none of bob's comments is pushed to carol
        before = len(pushed(carol, F.MomentCommentEvent))
        await bob.request(F.CommentMoment(id=bob.next_id(), moment=m, body=b"after"))
        await carol.request(F.GetMoment(id=carol.next_id(), moment=m), F.MomentAnswer)
        assert len(pushed(carol, F.MomentCommentEvent)) == before
        # alice (the author) sees all 31
        everything: F.MomentComments = await alice.request(
            F.GetMomentComments(id=alice.next_id(), moment=m, limit=100), F.MomentComments
        )
        assert len(everything.items) == 31
