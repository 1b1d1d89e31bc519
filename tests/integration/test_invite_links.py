"""Invite links (SPEC.md 19) as users meet them, on a real server with several SDK clients:
an admin makes a link, a stranger previews it (title and member count, nothing else) and joins
without an invite; links expire (the server's clock moved forward, no sleeping), are revoked,
run out of uses, and can ask for an admin's approval, which in an end-to-end encrypted group is
the admin's signed ``add`` (E2E.md 15), so the joiner's messages decrypt for everyone."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from chatclient import Client, JoinRequestReceived, KeyStore, Message
from chatclient.errors import Forbidden, NotFound, RequestError
from chatclient.events import Event
from chatproto import frames as F
from chatproto import links as wire
from chatproto.errors import ErrorCode
from conftest import make_settings, run_server
from testkit import http_get

from chatd.clock import SystemClock


class ShiftedClock(SystemClock):
    """The system clock moved forward by ``shift`` ms: a link expires without waiting."""

    def __init__(self) -> None:
        self.shift = 0

    def now_ms(self) -> int:
        return super().now_ms() + self.shift


SERVER_PORT: list[int] = []
"""The port of the server ``clients`` started last (its /metrics)."""


@contextlib.asynccontextmanager
async def clients(
    tmp_path: Path, n: int, *, encrypt: bool = False, clock: ShiftedClock | None = None
) -> AsyncIterator[list[Client]]:
    async with (
        run_server(make_settings(tmp_path), clock) as server,
        contextlib.AsyncExitStack() as stack,
    ):
        assert server.app.port is not None
        SERVER_PORT[:] = [server.app.port]
        out = []
        for i in range(n):
            c = await stack.enter_async_context(Client(server.url, encrypt=encrypt))
            await c.register(f"user{i}", f"User {i}")
            out.append(c)
        yield out


async def take(client: Client, pred: Callable[[Event], bool], timeout: float = 15.0) -> Event:
    deadline = time.monotonic() + timeout
    while True:
        for ev in client.events_nowait():
            if pred(ev):
                return ev
        if time.monotonic() > deadline:
            raise AssertionError("no matching event")
        await asyncio.sleep(0.01)


def invalid(exc: pytest.ExceptionInfo[RequestError]) -> bool:
    return exc.value.code == ErrorCode.LINK_INVALID


async def test_a_stranger_previews_and_joins_through_a_link(tmp_path: Path) -> None:
    async with clients(tmp_path, 4) as (admin, friend, stranger, other):
        group = (await admin.create("group", "Hikers", [friend.account])).conv
        link = await admin.links.create(group, name="flyer")
        assert link.url.startswith(wire.PREFIX) and len(wire.token_of(link.url) or "") == 32
        preview = await stranger.links.preview(link.url)
        assert (preview.kind, preview.title, preview.member_count) == ("group", "Hikers", 2)
        assert not preview.approval
        info = await stranger.links.join(link.url)
        assert isinstance(info, F.ConvInfo) and info.conv == group
        assert stranger.account in {m.account for m in info.members}
        # Already a member: the same conversation again, no use taken.
        again = await stranger.links.join(wire.token_of(link.url) or "")
        assert isinstance(again, F.ConvInfo) and again.conv == group
        await stranger.send_text(group, "hello hikers")
        got = await take(admin, lambda e: isinstance(e, Message) and e.text == "hello hikers")
        assert isinstance(got, Message) and got.sender == stranger.account
        [listed] = [x async for x in admin.links.links(group)]
        assert (listed.uses, listed.name, listed.url) == (1, "flyer", link.url)
        # Only owners and admins see links; the new member is neither.
        with pytest.raises(Forbidden):
            [x async for x in stranger.links.links(group)]
        with pytest.raises(NotFound):  # a non-member: as for a conversation that does not exist
            await other.links.create(group)


async def test_max_uses_revoke_and_expiry(tmp_path: Path) -> None:
    clock = ShiftedClock()
    async with clients(tmp_path, 4, clock=clock) as (admin, a, b, c):
        group = (await admin.create("group", "Once")).conv
        once = await admin.links.create(group, max_uses=1)
        assert isinstance(await a.links.join(once.url), F.ConvInfo)
        with pytest.raises(RequestError) as exc:
            await b.links.join(once.url)
        assert invalid(exc)
        with pytest.raises(RequestError) as exc:  # a used-up link previews as nothing either
            await b.links.preview(once.url)
        assert invalid(exc)

        revoked = await admin.links.create(group)
        await admin.links.revoke(group, revoked.link)
        with pytest.raises(RequestError) as exc:
            await b.links.join(revoked.url)
        assert invalid(exc)

        hourly = await admin.links.create(group, expires_in=3600)
        assert await b.links.preview(hourly.url)
        clock.shift = 3601 * 1000
        with pytest.raises(RequestError) as exc:
            await c.links.join(hourly.url)
        assert invalid(exc)
        forever = await admin.links.create(group)
        assert isinstance(await c.links.join(forever.url), F.ConvInfo)

        listed = {x.link: x async for x in admin.links.links(group)}
        assert listed[once.link].uses == 1 and listed[once.link].max_uses == 1
        assert listed[revoked.link].revoked > 0 and listed[revoked.link].uses == 0
        assert listed[hourly.link].expires == hourly.expires > 0
        members = {m.account for m in (await admin.conversation(group)).members}
        assert members == {admin.account, a.account, c.account}


async def test_a_demoted_admins_links_stop_working(tmp_path: Path) -> None:
    async with clients(tmp_path, 3) as (owner, admin, joiner):
        group = (await owner.create("group", "Roles", [admin.account])).conv
        await owner.set_role(group, admin.account, "admin")
        link = await admin.links.create(group)
        assert (await joiner.links.preview(link.url)).member_count == 2
        await owner.set_role(group, admin.account, "member")
        with pytest.raises(RequestError) as exc:
            await joiner.links.join(link.url)
        assert invalid(exc)


async def test_join_requests_are_approved_or_declined(tmp_path: Path) -> None:
    async with clients(tmp_path, 4) as (admin, asker, rejected, late):
        channel = (await admin.create("channel", "News")).conv
        link = await admin.links.create(channel, approval=True, name="vetted")
        assert (await asker.links.preview(link.url)).approval
        await admin.send_text(channel, "before anyone asked")
        asked = await asker.links.join(link.url)
        assert asked == F.JoinRequested(re=asked.re, conv=channel)
        ev = await take(admin, lambda e: isinstance(e, JoinRequestReceived))
        assert isinstance(ev, JoinRequestReceived) and ev.conv == channel
        assert (ev.request.account, ev.request.handle) == (asker.account, "user1")
        assert isinstance(await rejected.links.join(link.url), F.JoinRequested)
        again = await asker.links.join(link.url)  # asking again: still pending, no use
        assert isinstance(again, F.JoinRequested)
        # One who asked and changed its mind: withdrawn, it is no longer listed (its use stays).
        assert isinstance(await late.links.join(link.url), F.JoinRequested)
        await late.links.cancel(channel)
        with pytest.raises(NotFound):
            await late.links.cancel(channel)
        pending = [r.account async for r in admin.links.requests(channel)]
        assert pending == [asker.account, rejected.account]
        with pytest.raises(NotFound):  # not a member yet
            await asker.conversation(channel)
        await admin.links.approve(channel, asker.account)
        await admin.links.decline(channel, rejected.account)
        assert [r async for r in admin.links.requests(channel)] == []
        info = await asker.conversation(channel)
        assert info.role == "member"
        # History starts at the join (SPEC.md 7.8): the earlier post is not readable.
        assert [m.text for m in await asker.history(channel) if m.text] == []
        with pytest.raises(NotFound):
            await rejected.conversation(channel)
        [listed] = [x async for x in admin.links.links(channel)]
        assert listed.uses == 3
        # Operators see it in /metrics.
        _, metrics = await http_get(SERVER_PORT[0], "/metrics")
        counted = {
            line.split('"')[1]: float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("chatd_invite_links_total{")
        }
        assert counted == {"created": 1, "requested": 3, "approved": 1, "declined": 1}
        with pytest.raises(NotFound):
            await admin.links.approve(channel, late.account)  # withdrawn


async def test_end_to_end_group_joins_through_an_admins_signed_approval(tmp_path: Path) -> None:
    """In a group with a signed membership log the server cannot add anyone by itself: a link
    join is a request even without ``approval``, and the admin's device signs the ``add``."""
    async with clients(tmp_path, 3, encrypt=True) as (admin, member, joiner):
        group = (await admin.create("group", "Secret", [member.account])).conv
        link = await admin.links.create(group)
        assert (await joiner.links.preview(link.url)).approval
        assert isinstance(await joiner.links.join(link.url), F.JoinRequested)
        await take(admin, lambda e: isinstance(e, JoinRequestReceived))
        await admin.links.approve(group, joiner.account)
        await take(joiner, lambda e: isinstance(e, Message) and e.conv == group)  # its joined
        await joiner.send_text(group, "sealed hello")
        for c in (admin, member):
            got = await take(
                c, lambda e: isinstance(e, Message) and e.text == "sealed hello", timeout=20
            )
            assert isinstance(got, Message) and got.sender == joiner.account
        await admin.send_text(group, "welcome aboard")
        got = await take(
            joiner, lambda e: isinstance(e, Message) and e.text == "welcome aboard", timeout=20
        )
        assert isinstance(got, Message) and got.sender == admin.account
        state = await admin.members.verified(group)
        assert joiner.account in {m.account for m in state[0].members}


async def test_links_are_refused_for_direct_conversations_and_bad_options(tmp_path: Path) -> None:
    async with clients(tmp_path, 2) as (a, b):
        conv = await a.direct(b.account)
        with pytest.raises(RequestError) as exc:
            await a.links.create(conv)
        assert exc.value.code == ErrorCode.INVALID
        group = (await a.create("group", "G")).conv
        with pytest.raises(RequestError) as exc:
            await a.links.create(group, expires_in=400 * 24 * 3600)
        assert exc.value.code == ErrorCode.INVALID
        for bad in ("", "chatd://join/", "chatd://join/" + "A" * 32, "x" * 200):
            with pytest.raises(RequestError) as exc:
                await b.links.preview(bad or " ")
            assert invalid(exc)


async def test_a_bot_joins_an_encrypted_group_through_a_link_with_addressed_access(
    tmp_path: Path,
) -> None:
    async with clients(tmp_path, 1, encrypt=True) as (admin,):
        keys = KeyStore.memory()
        async with Client(admin.urls, keys) as bot:
            owner = admin.approve_bot("link_bot", keys.key.public_key)
            await bot.register("link_bot", "Link bot", bot=True, owner=owner)
            group = (await admin.create("group", "With a bot")).conv
            link = await admin.links.create(group)
            assert isinstance(await bot.links.join(link.url), F.JoinRequested)
            await admin.links.approve(group, bot.account)  # signed as a bot's add
            info = await admin.conversation(group)
            [seat] = [m for m in info.members if m.account == bot.account]
            assert seat.access == "addressed"
