"""Bots against the real server, in raw chatd.v1 frames (SPEC.md section 16): who may add a bot,
profiles, and the access rule: a bot whose access is ``addressed`` never receives a message not
addressed to it, live or from history (where a ``withheld`` placeholder takes its seq), on one
node or two (PostgreSQL + Redis). Every frame a bot's connection receives is recorded and scanned
for the marker the unaddressed messages carry."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from chatproto import codec, kinds
from chatproto import frames as F
from chatproto import limits as L
from chatproto.errors import ErrorCode
from conftest import RunningServer, make_settings, run_server
from pgserver import PostgresServer, pg_bindir
from redisd import RedisServer
from testkit import Raw

MARKER = b"never-for-bots-7c1f"
TIMEOUT = 10.0
_cmids = itertools.count(1)


class Peer:
    """A raw connection that records every frame it receives (for the marker scan)."""

    def __init__(self, raw: Raw) -> None:
        self.raw = raw
        self.received: list[bytes] = []
        self._reader: asyncio.Task[None] | None = None
        self._frames: asyncio.Queue[F.ServerFrame] = asyncio.Queue()
        self._answers: dict[int, asyncio.Future[F.ServerFrame]] = {}

    @classmethod
    async def register(cls, url: str, handle: str, type: str = "user") -> Peer:
        raw = await Raw.open(url)
        w = await raw.request(
            F.Register(
                id=raw.next_id(),
                handle=handle,
                name=handle.title(),
                type=type,  # type: ignore[arg-type]
                device_key=raw.key.public_key,
                device_name="raw",
                sig=raw.login_sig(),
            ),
            F.Welcome,
        )
        raw.account, raw.device = w.account, w.device
        peer = cls(raw)
        peer._reader = asyncio.create_task(peer._read())
        return peer

    @property
    def account(self) -> int:
        return self.raw.account

    async def _read(self) -> None:
        for f in self.raw.backlog:
            await self._route(f, codec.encode(f))
        self.raw.backlog.clear()
        while True:
            data = await self.raw.ws.recv()
            assert isinstance(data, bytes)
            self.received.append(data)
            await self._route(codec.decode_server(data), data)

    async def _route(self, f: F.ServerFrame, data: bytes) -> None:
        rid = getattr(f, "re", 0)
        future = self._answers.pop(rid, None) if rid else None
        if future is not None:
            future.set_result(f)
        else:
            self._frames.put_nowait(f)

    async def request(self, frame: Any) -> F.ServerFrame:
        future: asyncio.Future[F.ServerFrame] = asyncio.get_running_loop().create_future()
        self._answers[frame.id] = future
        await self.raw.send_frame(frame)
        return await asyncio.wait_for(future, TIMEOUT)

    async def ok(self, frame: Any) -> Any:
        answer = await self.request(frame)
        assert not isinstance(answer, F.Error), answer
        return answer

    async def refused(self, frame: Any) -> ErrorCode:
        answer = await self.request(frame)
        assert isinstance(answer, F.Error), answer
        return ErrorCode(answer.code)

    def rid(self) -> int:
        return self.raw.next_id()

    async def send(
        self, conv: int, text: bytes | str, to: tuple[int, ...] = (), kind: str = "text"
    ) -> F.Ack:
        body = text if isinstance(text, bytes) else kinds.encode_content(kinds.Text(text=text))[1]
        ack = await self.ok(
            F.Send(
                id=self.rid(), conv=conv, cmid=f"c{next(_cmids)}", kind=kind, body=body, to=list(to)
            )
        )
        assert isinstance(ack, F.Ack)
        return ack

    async def deliver(self, conv: int) -> F.Deliver:
        """The next pushed ``deliver`` of ``conv`` (other frames are dropped)."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                f = await self._frames.get()
                if isinstance(f, F.Deliver) and f.conv == conv:
                    return f

    async def deliver_seq(self, conv: int, seq: int) -> F.Deliver:
        """The pushed ``deliver`` of ``conv`` with this seq (earlier ones are dropped)."""
        while True:
            d = await self.deliver(conv)
            if d.seq == seq:
                return d

    async def fetch(self, conv: int, after: int = 0) -> list[F.Message]:
        page = await self.ok(F.Fetch(id=self.rid(), conv=conv, after=after, limit=L.MAX_PAGE))
        assert isinstance(page, F.Messages)
        return page.messages

    async def sync(self, conv: int, after: int = 0) -> list[F.Deliver]:
        """``sync`` from ``after``: the replayed delivers, in order (read off the live queue up
        to ``synced``, which must then be the answer)."""
        future: asyncio.Future[F.ServerFrame] = asyncio.get_running_loop().create_future()
        rid = self.rid()
        self._answers[rid] = future
        await self.raw.send_frame(F.Sync(id=rid, conv=conv, after=after))
        synced = await asyncio.wait_for(future, TIMEOUT)
        assert isinstance(synced, F.Synced), synced
        got = []
        while not self._frames.empty():
            f = self._frames.get_nowait()
            if isinstance(f, F.Deliver) and f.conv == conv and after < f.seq <= synced.seq:
                got.append(f)
        return got

    async def request_error_after(self, raw: bytes) -> ErrorCode:
        """Send hand-made bytes (frames the typed encoder refuses to build) and return the
        error code of the answer."""
        rid = codec.request_id_of(raw)
        future: asyncio.Future[F.ServerFrame] = asyncio.get_running_loop().create_future()
        self._answers[rid] = future
        await self.raw.ws.send(raw)
        answer = await asyncio.wait_for(future, TIMEOUT)
        assert isinstance(answer, F.Error), answer
        return ErrorCode(answer.code)

    def leaked(self) -> int:
        """How many received frames carry the marker."""
        return sum(MARKER in data for data in self.received)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        await self.raw.close()


async def create(peer: Peer, kind: str, members: list[int], title: str = "t") -> F.ConvInfo:
    conv = await peer.ok(F.CreateConv(id=peer.rid(), kind=kind, title=title, members=members))  # type: ignore[arg-type]
    assert isinstance(conv, F.Conv)
    return conv.info


def text(d: F.Deliver | F.Message) -> str:
    content = kinds.decode_content(d.kind, d.body)
    assert isinstance(content, kinds.Text)
    return content.text


def system(d: F.Deliver | F.Message) -> kinds.SystemEvent:
    content = kinds.decode_content(d.kind, d.body)
    assert isinstance(content, kinds.SystemEvent)
    return content


def secret(i: int) -> bytes:
    return kinds.encode_content(kinds.Text(text=f"{MARKER.decode()} #{i}"))[1]


@pytest.fixture
async def trio(server: RunningServer) -> AsyncIterator[tuple[Peer, Peer, Peer]]:
    """alice, bob (users) and shop_bot, each on its own connection to one node."""
    peers = [
        await Peer.register(server.url, "alice"),
        await Peer.register(server.url, "bob"),
        await Peer.register(server.url, "shop_bot", "bot"),
    ]
    try:
        yield peers[0], peers[1], peers[2]
    finally:
        for p in peers:
            await p.close()


# ------------------------------------------------------------------ joining


async def test_only_the_owner_or_an_admin_adds_a_bot_and_members_see_its_access(
    trio: tuple[Peer, Peer, Peer],
) -> None:
    alice, bob, bot = trio
    conv = (await create(alice, "group", [bob.account])).conv
    assert await bob.refused(F.Invite(id=bob.rid(), conv=conv, account=bot.account)) == (
        ErrorCode.FORBIDDEN
    )
    await alice.ok(F.Invite(id=alice.rid(), conv=conv, account=bot.account))
    joined = await bot.deliver(conv)  # the bot is told, live, with its access
    assert system(joined) == kinds.SystemEvent(
        event="joined", actor=alice.account, account=bot.account, access="addressed"
    )
    assert system(await bob.deliver(conv)).event == "created"
    assert system(await bob.deliver(conv)).access == "addressed"
    info = await bob.ok(F.GetConv(id=bob.rid(), conv=conv))
    assert {m.handle: m.access for m in info.info.members} == {
        "alice": None,
        "bob": None,
        "shop_bot": "addressed",
    }
    assert info.info.access is None
    own = await bot.ok(F.GetConv(id=bot.rid(), conv=conv))
    assert own.info.access == "addressed"
    listed = await bot.ok(F.ListConvs(id=bot.rid()))
    assert [c.access for c in listed.convs] == ["addressed"]


async def test_a_bot_in_a_direct_conversation_gets_everything(
    trio: tuple[Peer, Peer, Peer],
) -> None:
    alice, _, bot = trio
    conv = (await create(alice, "direct", [bot.account])).conv
    assert system(await bot.deliver(conv)).event == "created"
    await alice.send(conv, "hello bot")
    assert text(await bot.deliver(conv)) == "hello bot"
    own = await bot.ok(F.GetConv(id=bot.rid(), conv=conv))
    assert own.info.access == "all"


# ------------------------------------------------------------------ profiles


PROFILE = F.SetBotProfile(
    id=1,
    commands=[
        F.BotCommand(name="start", description="Say hello"),
        F.BotCommand(name="order", params=[F.CommandParam(name="item", type="str")]),
    ],
    manifest=F.Manifest(
        name="shop",
        title="Corner shop",
        icon="🛒",
        actions=[
            F.MiniAppAction(
                name="buy",
                title="Buy",
                params=[F.ActionParam(name="item", type="str", choices=["tea", "cake"])],
                price=F.Price(amount=450, currency="EUR"),
            )
        ],
    ),
)


async def test_a_bot_sets_its_profile_and_a_member_reads_it(trio: tuple[Peer, Peer, Peer]) -> None:
    alice, _, bot = trio
    never = await alice.ok(F.GetBotProfile(id=alice.rid(), account=bot.account))
    assert never == F.BotProfile(re=never.re, account=bot.account, commands=[])
    await bot.ok(msgspec.structs.replace(PROFILE, id=bot.rid()))
    got = await alice.ok(F.GetBotProfile(id=alice.rid(), account=bot.account))
    assert isinstance(got, F.BotProfile)
    assert (got.account, got.commands, got.manifest) == (
        bot.account,
        PROFILE.commands,
        PROFILE.manifest,
    )
    assert got.updated_at > 0
    # Set again: the whole profile is replaced.
    await bot.ok(F.SetBotProfile(id=bot.rid(), commands=[F.BotCommand(name="help")]))
    again = await alice.ok(F.GetBotProfile(id=alice.rid(), account=bot.account))
    assert (again.commands, again.manifest) == ([F.BotCommand(name="help")], None)


async def test_profile_refusals_have_stable_codes_and_the_connection_survives(
    trio: tuple[Peer, Peer, Peer],
) -> None:
    alice, _, bot = trio
    assert await alice.refused(msgspec.structs.replace(PROFILE, id=alice.rid())) == (
        ErrorCode.FORBIDDEN
    )
    assert await alice.refused(F.GetBotProfile(id=alice.rid(), account=alice.account)) == (
        ErrorCode.NOT_FOUND
    )
    assert await alice.refused(F.GetBotProfile(id=alice.rid(), account=10**9)) == (
        ErrorCode.NOT_FOUND
    )

    def manifest(**action: Any) -> F.SetBotProfile:
        act = F.MiniAppAction(**{"name": "buy", "title": "Buy", **action})
        return F.SetBotProfile(
            id=bot.rid(), commands=[], manifest=F.Manifest(name="shop", actions=[act])
        )

    cases = [
        (F.SetBotProfile(id=bot.rid(), commands=[F.BotCommand(name="Start")]), ErrorCode.INVALID),
        (
            F.SetBotProfile(
                id=bot.rid(), commands=[F.BotCommand(name="a"), F.BotCommand(name="a")]
            ),
            ErrorCode.INVALID,
        ),
        (manifest(price=F.Price(amount=0, currency="EUR")), ErrorCode.INVALID_AMOUNT),
        (manifest(price=F.Price(amount=5, currency="XYZ")), ErrorCode.UNKNOWN_CURRENCY),
        (
            manifest(params=[F.ActionParam(name="n", type="int", choices=["x"])]),
            ErrorCode.INVALID,
        ),
    ]
    for frame, code in cases:
        assert await bot.refused(frame) == code, frame
    raw = msgspec.msgpack.encode(
        {"t": "set_bot_profile", "id": bot.rid(), "commands": [{"name": "x" * 33}]}
    )
    assert await bot.request_error_after(raw) == ErrorCode.BAD_FIELD
    # Nothing of the refused profiles was stored, and the connection still works.
    got = await bot.ok(F.GetBotProfile(id=bot.rid(), account=bot.account))
    assert got.commands == []


# ------------------------------------------------------------------ the access rule


async def test_an_addressed_bot_gets_only_what_is_addressed_to_it_live_and_placeholders_in_history(
    trio: tuple[Peer, Peer, Peer],
) -> None:
    alice, bob, bot = trio
    conv = (await create(alice, "group", [bob.account, bot.account])).conv
    assert system(await bot.deliver(conv)).event == "created"
    sent = [await alice.send(conv, secret(i)) for i in range(3)]
    sent.append(await bob.send(conv, secret(3), to=(alice.account,)))  # a mention of alice
    command = await alice.send(conv, "/order@shop_bot tea", to=(bot.account, bob.account))
    live = await bot.deliver(conv)  # the first deliver the bot gets is the addressed one
    assert (live.seq, text(live), live.to) == (
        command.seq,
        "/order@shop_bot tea",
        sorted([bot.account, bob.account]),
    )
    assert system(await bob.deliver(conv)).event == "created"
    for ack in sent[:3]:  # users get everything
        got = await bob.deliver(conv)
        assert (got.seq, MARKER in got.body) == (ack.seq, True)
    reply = await bot.send(conv, "one tea coming", to=(alice.account,))
    assert text(await alice.deliver_seq(conv, reply.seq)) == "one tea coming"

    history = await bot.fetch(conv)
    assert [m.seq for m in history] == list(range(1, reply.seq + 1))  # gapless
    by_seq = {m.seq: m for m in history}
    for ack in sent:
        assert by_seq[ack.seq] == F.Message(
            seq=ack.seq, ts=ack.ts, sender=0, device=0, kind="withheld", body=b""
        )
    assert text(by_seq[command.seq]) == "/order@shop_bot tea"
    assert by_seq[command.seq].to == sorted([bot.account, bob.account])
    assert by_seq[1].kind == "system"
    synced = await bot.sync(conv)
    assert [(d.seq, d.kind) for d in synced] == [(m.seq, m.kind) for m in history]
    assert await bot.fetch(conv, after=sent[0].seq) == history[sent[0].seq :]
    # Users read the stored message, with its to.
    bobs = {m.seq: m for m in await bob.fetch(conv)}
    assert bobs[sent[3].seq].to == [alice.account]
    assert MARKER in bobs[sent[0].seq].body
    assert bot.leaked() == 0


async def test_after_access_all_the_bot_gets_everything_but_what_was_withheld_stays_withheld(
    trio: tuple[Peer, Peer, Peer],
) -> None:
    alice, bob, bot = trio
    conv = (await create(alice, "group", [bob.account, bot.account])).conv
    await bot.deliver(conv)
    before = await alice.send(conv, secret(0))
    assert await bob.refused(
        F.SetBotAccess(id=bob.rid(), conv=conv, account=bot.account, access="all")
    ) == (ErrorCode.FORBIDDEN)
    await alice.ok(F.SetBotAccess(id=alice.rid(), conv=conv, account=bot.account, access="all"))
    changed = await bot.deliver(conv)
    assert system(changed) == kinds.SystemEvent(
        event="bot_access", actor=alice.account, account=bot.account, access="all"
    )
    assert changed.seq == before.seq + 1
    after = await bob.send(conv, "now the bot reads this")
    assert text(await bot.deliver(conv)) == "now the bot reads this"
    history = {m.seq: m for m in await bot.fetch(conv)}
    assert history[before.seq].kind == "withheld"  # decided when it was committed
    assert text(history[after.seq]) == "now the bot reads this"
    # The same access again: ok, and nothing is written.
    await alice.ok(F.SetBotAccess(id=alice.rid(), conv=conv, account=bot.account, access="all"))
    # And back: from the next message on, unaddressed ones are withheld again.
    await alice.ok(
        F.SetBotAccess(id=alice.rid(), conv=conv, account=bot.account, access="addressed")
    )
    back = await bot.deliver(conv)
    assert (system(back).access, back.seq) == ("addressed", after.seq + 1)
    await alice.send(conv, secret(1))
    sentinel = await alice.send(conv, "sentinel", to=(bot.account,))
    assert (await bot.deliver(conv)).seq == sentinel.seq
    assert bot.leaked() == 0


async def test_system_messages_and_payment_receipts_always_reach_an_addressed_bot(
    server: RunningServer, trio: tuple[Peer, Peer, Peer]
) -> None:
    alice, bob, bot = trio
    conv = (await create(alice, "group", [bot.account])).conv
    assert system(await bot.deliver(conv)).event == "created"
    await alice.ok(F.Invite(id=alice.rid(), conv=conv, account=bob.account))
    assert system(await bot.deliver(conv)).event == "joined"
    await alice.ok(F.Rename(id=alice.rid(), conv=conv, title="renamed"))
    assert system(await bot.deliver(conv)).title == "renamed"
    request = await alice.ok(
        F.RequestPayment(
            id=alice.rid(),
            request_id="rq-bot-1",
            conv=conv,
            amount=100,
            currency="USD",
            expires_at=server.app.clock.now_ms() + 60_000,
        )
    )
    assert isinstance(request, F.Posted)
    receipt = await bot.deliver(conv)
    assert (receipt.kind, receipt.seq) == ("payment.receipt", request.seq)


async def test_a_bot_never_reads_what_was_sent_before_it_joined(
    trio: tuple[Peer, Peer, Peer],
) -> None:
    alice, bob, bot = trio
    conv = (await create(alice, "group", [bob.account])).conv
    old = await alice.send(conv, secret(0))
    mention = await alice.send(conv, "for the bot, later", to=(bot.account,))
    await alice.ok(F.Invite(id=alice.rid(), conv=conv, account=bot.account))
    await alice.ok(F.SetBotAccess(id=alice.rid(), conv=conv, account=bot.account, access="all"))
    history = {m.seq: m for m in await bot.fetch(conv)}
    # Nothing from before its join, not even what was addressed to it or the server's own
    # messages (SPEC.md 7.8, issue 14.8: they were a placeholder, the text and "created").
    assert min(history) > max(old.seq, mention.seq)
    assert history[min(history)].kind == "system"  # its own "joined"
    assert bot.leaked() == 0


async def test_bad_addressing_and_access_requests_have_stable_codes(
    trio: tuple[Peer, Peer, Peer],
) -> None:
    alice, bob, bot = trio
    group = (await create(alice, "group", [bob.account, bot.account])).conv
    direct = (await create(alice, "direct", [bot.account])).conv
    other = (await create(bob, "group", [])).conv

    def send(to: list[int]) -> F.Send:
        return F.Send(id=alice.rid(), conv=group, cmid="dup", kind="text", body=b"", to=to)

    assert await alice.refused(send([bot.account, bot.account])) == ErrorCode.INVALID
    raw = msgspec.msgpack.encode(
        {
            "t": "send",
            "id": alice.rid(),
            "conv": group,
            "cmid": "big",
            "kind": "text",
            "body": b"",
            "to": list(range(1, L.MAX_TO + 2)),
        }
    )
    assert await alice.request_error_after(raw) == ErrorCode.BAD_FIELD

    def access(conv: int, account: int, value: str = "all") -> F.SetBotAccess:
        return F.SetBotAccess(id=alice.rid(), conv=conv, account=account, access=value)  # type: ignore[arg-type]

    assert await alice.refused(access(direct, bot.account)) == ErrorCode.INVALID
    assert await alice.refused(access(group, bob.account)) == ErrorCode.INVALID
    assert await alice.refused(access(group, 10**9)) == ErrorCode.NOT_FOUND
    assert await alice.refused(access(other, bot.account)) == ErrorCode.NOT_FOUND
    raw = msgspec.msgpack.encode(
        {"t": "set_bot_access", "id": alice.rid(), "conv": group, "account": 1, "access": "x"}
    )
    assert await alice.request_error_after(raw) == ErrorCode.BAD_FIELD
    # The same cmid with another to is another message.
    first = await alice.ok(
        F.Send(id=alice.rid(), conv=group, cmid="same", kind="text", body=b"x", to=[bot.account])
    )
    assert isinstance(first, F.Ack)
    assert await alice.refused(
        F.Send(id=alice.rid(), conv=group, cmid="same", kind="text", body=b"x", to=[bob.account])
    ) == (ErrorCode.CONFLICT)
    again = await alice.ok(
        F.Send(id=alice.rid(), conv=group, cmid="same", kind="text", body=b"x", to=[bot.account])
    )
    assert again.seq == first.seq
    await alice.send(group, "still connected")


# ------------------------------------------------------------------ two nodes


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    bindir = pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found")
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
async def two_nodes(
    postgres: PostgresServer, tmp_path: Path
) -> AsyncIterator[tuple[RunningServer, RunningServer]]:
    """Two in-process nodes sharing a throwaway PostgreSQL and a throwaway Redis."""
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        dsn = await postgres.create_database()
        settings = make_settings(tmp_path, store={"db": dsn}, broker={"url": redis.url})
        async with run_server(settings) as node_a, run_server(settings) as node_b:
            for node in (node_a, node_b):
                async with asyncio.timeout(TIMEOUT):
                    while not node.app.broker.healthy():
                        await asyncio.sleep(0.01)
            yield node_a, node_b
    finally:
        redis.kill()


async def test_access_changes_made_on_one_node_hold_on_the_other_at_once(
    two_nodes: tuple[RunningServer, RunningServer],
) -> None:
    node_a, node_b = two_nodes
    alice = await Peer.register(node_a.url, "alice")
    bob = await Peer.register(node_b.url, "bob")
    bot_b = await Peer.register(node_b.url, "shop_bot", "bot")
    raw = await Raw.open(node_a.url)  # the bot's same device, also connected to node A
    await raw.login(bot_b.raw.device, bot_b.raw.key)
    bot_a = Peer(raw)
    bot_a._reader = asyncio.create_task(bot_a._read())
    bots = (bot_a, bot_b)
    try:
        conv = (await create(alice, "group", [bob.account, bot_b.account])).conv
        for bot in bots:
            assert system(await bot.deliver(conv)).event == "created"

        async def bots_get_exactly(*seqs: int) -> list[dict[int, F.Deliver]]:
            """Each bot connection's next delivers are these seqs, in whatever order the
            two nodes' paths interleave them (nothing else comes in between)."""
            out = []
            for bot in bots:
                got = {d.seq: d for d in [await bot.deliver(conv) for _ in seqs]}
                assert sorted(got) == sorted(seqs)
                out.append(got)
            return out

        await bob.send(conv, secret(0))
        await alice.send(conv, secret(1))
        a = await alice.send(conv, "sentinel a", to=(bot_b.account,))
        b = await bob.send(conv, "sentinel b", to=(bot_b.account,))
        await bots_get_exactly(a.seq, b.seq)

        # Node A commits the change; a message committed on node B right after reaches the
        # bot in full on both nodes.
        await alice.ok(
            F.SetBotAccess(id=alice.rid(), conv=conv, account=bot_b.account, access="all")
        )
        visible = await bob.send(conv, "for everyone, the bot too")
        for got in await bots_get_exactly(visible.seq - 1, visible.seq):
            assert system(got[visible.seq - 1]).access == "all"
            assert text(got[visible.seq]) == "for everyone, the bot too"

        # And back to addressed: a message committed on node B right after is withheld on both.
        await alice.ok(
            F.SetBotAccess(id=alice.rid(), conv=conv, account=bot_b.account, access="addressed")
        )
        hidden = await bob.send(conv, secret(2))
        c = await bob.send(conv, "sentinel c", to=(bot_b.account,))
        for got in await bots_get_exactly(hidden.seq - 1, c.seq):
            assert system(got[hidden.seq - 1]).access == "addressed"
        history = {m.seq: m for m in await bot_a.fetch(conv)}
        assert history[hidden.seq].kind == "withheld"
        assert text(history[visible.seq]) == "for everyone, the bot too"
        assert [bot.leaked() for bot in bots] == [0, 0]
    finally:
        for p in (alice, bob, *bots):
            await p.close()
