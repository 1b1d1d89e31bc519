"""Invite links (SPEC.md 19) from the attacker's side, against real servers with chatd's real
defaults, on SQLite and on PostgreSQL (and two nodes sharing PostgreSQL):

* a stranger guessing tokens a thousand times gets ``RATE_LIMITED`` after the look-up budget,
  and every answer before it is the same ``LINK_INVALID`` (nothing tells a near miss, a revoked
  link and a link that never was apart); a second account on the same address gets nothing more;
* many accounts joining at once through a link with ``max_uses`` N: exactly N get in, on one
  node or split over two;
* a revoke racing joins: no join commits after the revoke, and a revoke on one node is honoured
  by a join on the other at once (the store decides, not a node's memory);
* a banned account cannot use a link; a removed (not banned) one may come back, reading only
  from its new join; links for a direct conversation are refused; a member without a role, a
  non-member and a stranger cannot make, list, revoke or answer anything.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from chatproto import codec, kinds
from chatproto import frames as F
from chatproto import links as wire
from chatproto.errors import ErrorCode
from conftest import make_settings, run_server
from redisd import RedisServer
from testkit import Raw

FAST = {"frames_per_second": 100_000.0, "frame_burst": 100_000.0}
"""The per-connection frame limit is not what these tests are about (the look-up budget is)."""


def settings(tmp_path: Path, db: str, **limits: Any) -> Any:
    return make_settings(tmp_path, store={"db": db}, limits={**FAST, **limits}, consent={})


_opened: list[Raw] = []


@pytest.fixture(autouse=True)
async def _close_connections() -> AsyncIterator[None]:
    yield
    while _opened:
        await _opened.pop().close()


async def user(url: str, handle: str | None = None) -> Raw:
    r = await Raw.open(url)
    _opened.append(r)
    await r.register(handle or f"x{os.urandom(6).hex()}")
    return r


async def group(owner: Raw, *members: int, kind: str = "group") -> int:
    conv: F.Conv = await owner.request(
        F.CreateConv(id=owner.next_id(), kind=kind, title="club", members=list(members)),
        F.Conv,  # type: ignore[arg-type]
    )
    return conv.info.conv


async def make_link(admin: Raw, conv: int, **kw: Any) -> F.LinkInfo:
    got: F.Link = await admin.request(F.CreateLink(id=admin.next_id(), conv=conv, **kw), F.Link)
    return got.link


async def join(c: Raw, link: str) -> F.ServerFrame:
    reply: F.ServerFrame = await c.request(F.JoinLink(id=c.next_id(), token=link))
    return reply


async def links_of(admin: Raw, conv: int) -> list[F.LinkInfo]:
    got: F.Links = await admin.request(F.ListLinks(id=admin.next_id(), conv=conv), F.Links)
    return got.links


async def members(c: Raw, conv: int) -> set[int]:
    got: F.Conv = await c.request(F.GetConv(id=c.next_id(), conv=conv), F.Conv)
    return {m.account for m in got.info.members}


def code(f: F.ServerFrame) -> int:
    return f.code if isinstance(f, F.Error) else 0


async def joins_racing_a_revoke(
    admin: Raw, conv: int, link: F.LinkInfo, crowd: list[Raw]
) -> dict[int, F.ServerFrame]:
    """The crowd joins in a stream (one every 10 ms) and the admin revokes the link once the
    first five are answered, while the rest are still on their way; every answer."""
    got: dict[int, F.ServerFrame] = {}

    async def one(i: int, c: Raw) -> None:
        await asyncio.sleep(i * 0.01)
        got[c.account] = await join(c, link.url)

    tasks = [asyncio.create_task(one(i, c)) for i, c in enumerate(crowd)]
    async with asyncio.timeout(30):
        while len(got) < 5:
            await asyncio.sleep(0.002)
    await admin.request(F.RevokeLink(id=admin.next_id(), conv=conv, link=link.link), F.Ok)
    await asyncio.gather(*tasks)
    return got


async def guess(c: Raw, n: int, frame: type[F.JoinLink] | type[F.PreviewLink]) -> list[F.Error]:
    """``n`` random tokens sent at once (no waiting between them); every answer."""
    ids = [c.next_id() for _ in range(n)]
    for i in ids:
        token = wire.encode_token(os.urandom(8), os.urandom(16))
        await c.ws.send(codec.encode(frame(id=i, token=wire.url(token))))
    out = []
    for i in ids:
        f = await c._reply(i, timeout=30)
        assert isinstance(f, F.Error), f
        out.append(f)
    return out


async def test_a_stranger_guessing_tokens_is_rate_limited_and_learns_nothing(
    tmp_path: Path,
) -> None:
    s = settings(
        tmp_path,
        str(tmp_path / "chatd.db"),
        exempt_addresses="",
        link_lookup_burst_per_ip=40.0,  # the address's budget: a little over one account's
    )
    async with run_server(s) as server:
        admin = await user(server.url)
        conv = await group(admin)
        real = await make_link(admin, conv)
        revoked = await make_link(admin, conv)
        await admin.request(F.RevokeLink(id=admin.next_id(), conv=conv, link=revoked.link), F.Ok)
        # Every refusal says the same thing: a revoked real link, a tampered one and a made-up
        # one cannot be told apart.
        eve = await user(server.url)
        tampered = real.url[:-1] + ("A" if real.url[-1] != "A" else "B")
        said = {
            (f.code, f.msg)
            for f in [await join(eve, t) for t in (revoked.url, tampered, "chatd://join/x")]
            if isinstance(f, F.Error)
        }
        assert said == {(ErrorCode.LINK_INVALID, "this invite link is invalid or has expired")}
        mallory = await user(server.url)
        answers = await guess(mallory, 1000, F.JoinLink)
        invalid = [a for a in answers if a.code == ErrorCode.LINK_INVALID]
        limited = [a for a in answers if a.code == ErrorCode.RATE_LIMITED]
        assert len(invalid) + len(limited) == 1000
        assert {a.msg for a in invalid} == {"this invite link is invalid or has expired"}
        assert len(invalid) <= 30 and len(limited) >= 970, (len(invalid), len(limited))
        # The address's budget (40) is shared by its accounts: a fresh throwaway account gets
        # what is left of it (40 - 3 - 30), not an account's 30.
        second = await user(server.url)
        more = await guess(second, 30, F.PreviewLink)
        assert sum(a.code == ErrorCode.LINK_INVALID for a in more) <= 8
        assert sum(a.code == ErrorCode.RATE_LIMITED for a in more) >= 22
        # And mallory's own budget is spent from any address (a second connection, too).
        assert code(await join(mallory, real.url)) == ErrorCode.RATE_LIMITED
        # And nobody got in: the conversation still has its owner alone.
        assert await members(admin, conv) == {admin.account}
        [_, listed] = await links_of(admin, conv)
        assert listed.uses == 0


async def test_guessing_over_three_nodes_gets_no_more_than_one_budget(
    tmp_path: Path, pg_dsn: str, redis_server: RedisServer
) -> None:
    s = make_settings(
        tmp_path, store={"db": pg_dsn}, broker={"url": redis_server.url}, limits=FAST, consent={}
    )
    async with run_server(s) as a, run_server(s) as b, run_server(s) as c:
        for node in (a, b, c):
            async with asyncio.timeout(10):
                while not node.app.broker.healthy():
                    await asyncio.sleep(0.01)
        mallory = await user(a.url)
        conns = [mallory]
        for node in (a, b, c, b, c):
            more = await Raw.open(node.url)
            _opened.append(more)
            await more.login(mallory.device, mallory.key)
            conns.append(more)
        answers = [
            f
            for got in await asyncio.gather(*(guess(x, 100, F.JoinLink) for x in conns))
            for f in got
        ]
        invalid = sum(f.code == ErrorCode.LINK_INVALID for f in answers)
        assert invalid + sum(f.code == ErrorCode.RATE_LIMITED for f in answers) == 600
        assert invalid <= 30, invalid  # one budget for the account, whatever node it asks


async def test_exactly_max_uses_accounts_join_however_many_try_at_once(
    tmp_path: Path, db: str
) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        admin = await user(server.url)
        conv = await group(admin)
        link = await make_link(admin, conv, max_uses=5)
        crowd = [await user(server.url) for _ in range(24)]
        replies = await asyncio.gather(*(join(c, link.url) for c in crowd))
        joined = [c.account for c, r in zip(crowd, replies, strict=True) if isinstance(r, F.Conv)]
        refused = [r for r in replies if not isinstance(r, F.Conv)]
        assert len(joined) == 5
        assert {code(r) for r in refused} == {ErrorCode.LINK_INVALID}
        assert await members(admin, conv) == {admin.account, *joined}
        [listed] = await links_of(admin, conv)
        assert listed.uses == 5


async def test_max_uses_and_revoke_hold_across_two_nodes(tmp_path: Path, pg_dsn: str) -> None:
    s = settings(tmp_path, pg_dsn)
    async with run_server(s) as node_a, run_server(s) as node_b:
        admin = await user(node_a.url)
        conv = await group(admin)
        link = await make_link(admin, conv, max_uses=6)
        crowd = [await user(url) for url in [node_a.url, node_b.url] * 10]
        replies = await asyncio.gather(*(join(c, link.url) for c in crowd))
        joined = {c.account for c, r in zip(crowd, replies, strict=True) if isinstance(r, F.Conv)}
        assert len(joined) == 6
        assert {code(r) for r in replies if not isinstance(r, F.Conv)} == {ErrorCode.LINK_INVALID}
        assert await members(admin, conv) == {admin.account, *joined}

        # A link made on node A works on node B (one secret for the service) until it is
        # revoked on A: the very next join on B is refused.
        other = await make_link(admin, conv)
        first = await user(node_b.url)
        assert isinstance(await join(first, other.url), F.Conv)
        await admin.request(F.RevokeLink(id=admin.next_id(), conv=conv, link=other.link), F.Ok)
        late = await user(node_b.url)
        assert code(await join(late, other.url)) == ErrorCode.LINK_INVALID
        assert code(await late.request(F.PreviewLink(id=late.next_id(), token=other.url))) == (
            ErrorCode.LINK_INVALID
        )


async def test_a_revoke_racing_joins_admits_nobody_after_it(tmp_path: Path, db: str) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        admin = await user(server.url)
        conv = await group(admin)
        link = await make_link(admin, conv)
        crowd = [await user(server.url) for _ in range(30)]
        got = await joins_racing_a_revoke(admin, conv, link, crowd)
        joined = {a for a, r in got.items() if isinstance(r, F.Conv)}
        assert len(joined) >= 5
        assert {code(r) for r in got.values() if not isinstance(r, F.Conv)} <= {
            ErrorCode.LINK_INVALID
        }
        # What the link admitted is exactly who is in, and its use count says so.
        assert await members(admin, conv) == {admin.account, *joined}
        [listed] = await links_of(admin, conv)
        assert listed.uses == len(joined) and listed.revoked > 0
        # Once the revoke is answered, no join gets through.
        for c in crowd:
            if c.account not in joined:
                assert code(await join(c, link.url)) == ErrorCode.LINK_INVALID
        assert await members(admin, conv) == {admin.account, *joined}


async def test_a_revoke_on_one_node_racing_joins_on_another(tmp_path: Path, pg_dsn: str) -> None:
    s = settings(tmp_path, pg_dsn)
    async with run_server(s) as node_a, run_server(s) as node_b:
        admin = await user(node_a.url)
        conv = await group(admin)
        link = await make_link(admin, conv)
        crowd = [await user(node_b.url) for _ in range(30)]
        got = await joins_racing_a_revoke(admin, conv, link, crowd)
        joined = {a for a, r in got.items() if isinstance(r, F.Conv)}
        assert len(joined) >= 5
        assert {code(r) for r in got.values() if not isinstance(r, F.Conv)} <= {
            ErrorCode.LINK_INVALID
        }
        assert await members(admin, conv) == {admin.account, *joined}
        [listed] = await links_of(admin, conv)
        assert listed.uses == len(joined) and listed.revoked > 0
        for c in crowd:  # the revoke is answered: node B admits nobody any more
            if c.account not in joined:
                assert code(await join(c, link.url)) == ErrorCode.LINK_INVALID


async def test_banned_and_removed_members_and_links_that_must_be_refused(
    tmp_path: Path, db: str
) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        admin, banned, removed, member, stranger = [await user(server.url) for _ in range(5)]
        conv = await group(admin, banned.account, removed.account, member.account)
        link = await make_link(admin, conv)
        await admin.request(
            F.Remove(id=admin.next_id(), conv=conv, account=banned.account, ban=True), F.Ok
        )
        await admin.request(F.Remove(id=admin.next_id(), conv=conv, account=removed.account), F.Ok)
        # Posted while the removed member was away: it must not read it after coming back.
        body = kinds.encode_content(kinds.Text(text="while you were out"))[1]
        await admin.request(
            F.Send(id=admin.next_id(), conv=conv, cmid="away", kind="text", body=body), F.Ack
        )

        assert code(await join(banned, link.url)) == ErrorCode.FORBIDDEN
        assert banned.account not in await members(admin, conv)
        back = await join(removed, link.url)
        assert isinstance(back, F.Conv) and back.info.joined > 0
        page: F.Messages = await removed.request(
            F.Fetch(id=removed.next_id(), conv=conv, after=0, limit=100), F.Messages
        )
        assert page.messages[0].seq == back.info.joined
        assert all(m.kind == "system" for m in page.messages)
        [listed] = await links_of(admin, conv)
        assert listed.uses == 1  # the banned attempt took nothing
        await admin.request(F.Unban(id=admin.next_id(), conv=conv, account=banned.account), F.Ok)
        assert isinstance(await join(banned, link.url), F.Conv)

        # A direct conversation has no links; a plain member, a non-member and a stranger can
        # make, list, revoke and answer nothing.
        direct: F.Conv = await admin.request(
            F.CreateConv(id=admin.next_id(), kind="direct", members=[member.account]), F.Conv
        )
        assert code(
            await admin.request(F.CreateLink(id=admin.next_id(), conv=direct.info.conv))
        ) == (ErrorCode.INVALID)
        for who, want in ((member, ErrorCode.FORBIDDEN), (stranger, ErrorCode.NOT_FOUND)):
            for frame in (
                F.CreateLink(id=who.next_id(), conv=conv),
                F.ListLinks(id=who.next_id(), conv=conv),
                F.RevokeLink(id=who.next_id(), conv=conv, link=link.link),
                F.ListJoinRequests(id=who.next_id(), conv=conv),
                F.AnswerJoin(id=who.next_id(), conv=conv, account=stranger.account, approve=True),
            ):
                assert code(await who.request(frame)) == want, (frame, want)
        # A link of another conversation cannot be revoked through this one.
        mine = await group(stranger)
        assert (
            code(
                await stranger.request(
                    F.RevokeLink(id=stranger.next_id(), conv=mine, link=link.link)
                )
            )
            == ErrorCode.NOT_FOUND
        )
        assert isinstance(await join(stranger, link.url), F.Conv)  # still working


async def test_a_preview_says_only_kind_title_count_and_approval(tmp_path: Path) -> None:
    async with run_server(settings(tmp_path, str(tmp_path / "chatd.db"))) as server:
        admin, member, stranger = [await user(server.url) for _ in range(3)]
        conv = await group(admin, member.account, kind="channel")
        link = await make_link(admin, conv, approval=True, name="secret campaign name")
        i = stranger.next_id()
        await stranger.ws.send(codec.encode(F.PreviewLink(id=i, token=link.url)))
        raw = await stranger.ws.recv()
        shown = msgspec.msgpack.decode(raw)  # type: ignore[arg-type]
        assert shown == {
            "t": "link_preview",
            "re": i,
            "kind": "channel",
            "title": "club",
            "member_count": 2,
            "approval": True,
        }
        # An approval link files a request: the stranger is not a member until approved.
        assert isinstance(await join(stranger, link.url), F.JoinRequested)
        assert code(await stranger.request(F.GetConv(id=stranger.next_id(), conv=conv))) == (
            ErrorCode.NOT_FOUND
        )
