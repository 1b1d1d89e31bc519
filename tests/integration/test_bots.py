"""Bots built with ``chatclient.bots`` against the real server, talking to SDK users.

What a bot author and the bot's users notice: commands answered end-to-end encrypted, order
within a conversation, concurrency across conversations (and its bound), typed arguments
refused with a clear reply, state and exactly-once handling across restarts, the error hook,
the poll example, and ``bot.run()`` stopping cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import msgspec
import pytest
from botkit import EXAMPLES, Inbox, example, user
from chatclient import Client, KeyStore, Message
from chatclient.bots import ArgumentError, Bot, Context, F, Router
from chatclient.events import Event
from chatproto import codec, kinds
from conftest import RunningServer, make_settings, run_server

MARKER = "MARKER-b07b07"


# ---------------------------------------------------------------------- helpers


def from_bot(
    bot: Bot | int, conv: int | None = None, kind: type[kinds.Content] = kinds.Text
) -> Callable[[Event], bool]:
    account = bot if isinstance(bot, int) else bot.me.account

    def pred(ev: Event) -> bool:
        return (
            isinstance(ev, Message)
            and ev.sender == account
            and isinstance(ev.content, kind)
            and (conv is None or ev.conv == conv)
        )

    return pred


async def texts(inbox: Inbox, bot: Bot, conv: int, n: int = 1) -> list[str]:
    return [m.content.text for m in await inbox.take(from_bot(bot, conv), n)]


def invoke(app: str, action: str, inv: str, **params: str | int | bool) -> kinds.MiniappInvoke:
    return kinds.MiniappInvoke(invocation_id=inv, app=app, action=action, params=params)


def result_for(bot: Bot, inv: str) -> Callable[[Event], bool]:
    def pred(ev: Event) -> bool:
        return (
            isinstance(ev, Message)
            and ev.sender == bot.me.account
            and isinstance(ev.content, kinds.MiniappResult)
            and ev.content.invocation_id == inv
        )

    return pred


def server_files(tmp_path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(tmp_path.glob("chatd.db*"))}


# ---------------------------------------------------------------------- the echo example


async def test_echo_bot_in_a_group_answers_a_command_end_to_end_encrypted(
    server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames: list[bytes] = []  # every frame any client in this process receives, bot included
    decode = codec.decode_server

    def recording(data: bytes) -> Any:
        frames.append(bytes(data))
        return decode(data)

    monkeypatch.setattr(codec, "decode_server", recording)
    echo = example("echo_bot")
    async with (
        Bot(server.url, tmp_path / "echo_bot.key", echo.router) as bot,
        contextlib.AsyncExitStack() as stack,
    ):
        alice = await user(stack, server, "alice")
        bob = await user(stack, server, "bob")
        assert (await alice.account_info("echo_bot")).type == "bot"  # registered on first run
        group = (await alice.create("group", "Lunch", [bob.account, bot.me.account])).conv
        ia, ib = Inbox(alice), Inbox(bob)

        await alice.send_text(group, "/start")
        assert await texts(ia, bot, group) == ["Hi! Send me some text and I send it back."]
        assert await texts(ib, bot, group) == ["Hi! Send me some text and I send it back."]

        await bob.send_text(group, f"no mention, no echo {MARKER}")
        await bob.send_text(group, f"@echo_bot say {MARKER}")
        assert await texts(ia, bot, group) == [f"@echo_bot say {MARKER}"]
        assert await texts(ib, bot, group) == [f"@echo_bot say {MARKER}"]
        await alice.send_text(group, "/start@another_bot")  # addressed to someone else
        await ia.quiet(from_bot(bot, group))

        assert [c.name for c in bot.commands()] == ["start", "help"]
        assert bot.commands()[0].description == "Say hello"
        await alice.send_text(group, "/help")
        assert await texts(ia, bot, group) == [
            "/start — Say hello\n/help — List the commands of this bot"
        ]

        # The server relayed and stored only ciphertext: no frame and no database byte holds
        # the marker, though three clients read it.
        assert frames
        assert not [f for f in frames if MARKER.encode() in f]
        files = server_files(tmp_path)
        assert files
        assert not [name for name, data in files.items() if MARKER.encode() in data]


async def test_unknown_commands_get_a_hint_in_direct_chats_and_silence_in_groups(
    server: RunningServer,
) -> None:
    router = Router()

    @router.command("ping")
    async def ping(msg: Message, ctx: Context) -> str:
        return "pong"

    async with (
        Bot(server.url, KeyStore.memory(), router, handle="pinger") as bot,
        contextlib.AsyncExitStack() as stack,
    ):
        alice = await user(stack, server, "alice")
        ia = Inbox(alice)
        direct = await alice.direct(bot.me.account)
        group = (await alice.create("group", "G", [bot.me.account])).conv
        await alice.send_text(group, "/nope")
        await alice.send_text(direct, "/nope")
        assert await texts(ia, bot, direct) == ["Unknown command /nope. Try /help."]
        await alice.send_text(group, "/nope@pinger")  # addressed to it: it answers
        assert await texts(ia, bot, group) == ["Unknown command /nope. Try /help."]
        await alice.send_text(group, "/PING@Pinger")
        assert await texts(ia, bot, group) == ["pong"]
        await ia.quiet(from_bot(bot))


async def test_system_handlers_see_membership_changes_with_a_fresh_member_list(
    server: RunningServer,
) -> None:
    router = Router()

    @router.system("joined")
    async def welcome(msg: Message, ctx: Context) -> str:
        assert isinstance(msg.content, kinds.SystemEvent)
        newcomer = ctx.conversation.members[msg.content.account]
        return f"welcome @{newcomer.handle}"

    async with (
        Bot(server.url, KeyStore.memory(), router, handle="greeter") as bot,
        contextlib.AsyncExitStack() as stack,
    ):
        alice = await user(stack, server, "alice")
        bob = await user(stack, server, "bob")
        ia = Inbox(alice)
        group = (await alice.create("group", "G", [bot.me.account])).conv
        await alice.invite(group, bob.account)
        assert await texts(ia, bot, group) == ["welcome @bob"]
        await ia.quiet(from_bot(bot))  # "created" has no handler: nothing said


async def test_bots_ignore_other_bots_unless_told_otherwise(server: RunningServer) -> None:
    echo = example("echo_bot")
    async with (
        Bot(server.url, KeyStore.memory(), echo.router, handle="echo_a") as a,
        Bot(server.url, KeyStore.memory(), echo.router, handle="echo_b", ignore_bots=False) as b,
        Client(server.url) as caller,  # a bot account, driven by hand
    ):
        await caller.register("caller", "Caller", bot=True)
        box = Inbox(caller)
        to_a = await caller.direct(a.me.account)
        to_b = await caller.direct(b.me.account)
        if all(m.access is None for m in (await caller.conversation(to_a)).members):
            pytest.skip("this server does not list bot members' access (SPEC.md 16.2) yet")
        await caller.send_text(to_a, "ping")
        await caller.send_text(to_b, "ping")
        assert [m.content.text for m in await box.take(from_bot(b, to_b))] == ["ping"]
        await box.quiet(from_bot(a))  # a bot echoing bots would loop with another echo bot


# ---------------------------------------------------------------------- ordering and concurrency


async def test_handlers_run_in_order_within_a_conversation_and_concurrently_across_them(
    server: RunningServer,
) -> None:
    router = Router()
    seen: dict[int, list[str]] = {}
    b_ran = asyncio.Event()
    convs: dict[str, int] = {}

    @router.message(F.text)
    async def record(msg: Message, ctx: Context) -> None:
        assert msg.text is not None
        if msg.text == "a0":
            # Conversation A's first handler waits for a handler of conversation B: if the
            # bot ran conversations one after another, this would never finish.
            await asyncio.wait_for(b_ran.wait(), 10)
        if msg.conv == convs.get("b"):
            b_ran.set()
        await asyncio.sleep(0.001 * (hash(msg.text) % 5))  # uneven handler durations
        seen.setdefault(msg.conv, []).append(msg.text)

    async with (
        Bot(server.url, KeyStore.memory(), router, handle="orderly") as bot,
        contextlib.AsyncExitStack() as stack,
    ):
        alice = await user(stack, server, "alice")
        bob = await user(stack, server, "bob")
        a = await alice.direct(bot.me.account)
        b = await bob.direct(bot.me.account)
        convs.update(a=a, b=b)
        sends = [alice.send_text(a, f"a{i}") for i in range(30)]
        sends += [bob.send_text(b, f"b{i}") for i in range(30)]
        await asyncio.gather(*sends)
        deadline = time.monotonic() + 10
        while sum(map(len, seen.values())) < 60 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert seen[a] == [f"a{i}" for i in range(30)]
        assert seen[b] == [f"b{i}" for i in range(30)]


async def test_at_most_max_concurrency_handlers_run_at_once(server: RunningServer) -> None:
    router = Router()
    running = 0
    peak = 0
    gate = asyncio.Event()
    done: list[int] = []

    @router.message(F.text)
    async def slow(msg: Message, ctx: Context) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.wait_for(gate.wait(), 10)
        finally:
            running -= 1
        done.append(msg.conv)

    async with (
        Bot(server.url, KeyStore.memory(), router, handle="bounded", max_concurrency=2) as bot,
        contextlib.AsyncExitStack() as stack,
    ):
        users = [await user(stack, server, f"user{i}") for i in range(5)]
        convs = [await u.direct(bot.me.account) for u in users]
        for u, conv in zip(users, convs, strict=True):
            await u.send_text(conv, "work")
        deadline = time.monotonic() + 10
        while running < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # five conversations are waiting: still only two run
        assert (running, peak) == (2, 2)
        gate.set()
        while len(done) < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert sorted(done) == sorted(convs)
        assert peak == 2


# ---------------------------------------------------------------------- typed arguments, errors


async def test_typed_command_arguments_are_converted_and_bad_input_gets_a_clear_reply(
    server: RunningServer,
) -> None:
    router = Router()
    errors: list[tuple[Exception, Context | None]] = []

    @router.command("roll")
    async def roll(
        msg: Message, ctx: Context, sides: Annotated[int, msgspec.Meta(ge=2)] = 6, *names: str
    ) -> str:
        """Roll a die"""
        return f"d{sides} for {', '.join(names) or 'you'} (args {list(ctx.args)})"

    @router.command("note")
    async def note(msg: Message, ctx: Context, *, text: str) -> str:
        return f"noted: {text}"

    async with (
        Bot(server.url, KeyStore.memory(), router, handle="dice") as bot,
        contextlib.AsyncExitStack() as stack,
    ):

        @bot.on_error
        async def hook(exc: Exception, ctx: Context | None) -> None:
            errors.append((exc, ctx))

        alice = await user(stack, server, "alice")
        ia = Inbox(alice)
        conv = await alice.direct(bot.me.account)
        await alice.send_text(conv, '/roll 20 ann "bob jr"')
        assert await texts(ia, bot, conv) == ["d20 for ann, bob jr (args ['20', 'ann', 'bob jr'])"]
        await alice.send_text(conv, "/roll")
        assert await texts(ia, bot, conv) == ["d6 for you (args [])"]
        await alice.send_text(conv, "/roll abc")
        assert await texts(ia, bot, conv) == [
            "sides must be a whole number, not 'abc'\nusage: /roll [sides:int=6] [names:text...]"
        ]
        await alice.send_text(conv, "/roll 1")
        assert await texts(ia, bot, conv) == [
            "sides: expected `int` >= 2, not '1'\nusage: /roll [sides:int=6] [names:text...]"
        ]
        await alice.send_text(conv, "/note")
        assert await texts(ia, bot, conv) == ["missing <text:text...>\nusage: /note <text:text...>"]
        await alice.send_text(conv, "/note   keep   the  spacing ")
        assert await texts(ia, bot, conv) == ["noted: keep   the  spacing"]
        # Each bad input also reached the error hook, with its context.
        assert [type(e) for e, _ in errors] == [ArgumentError] * 3
        assert all(ctx is not None and ctx.command in ("roll", "note") for _, ctx in errors)
        assert bot.commands()[0].params[0].type == "int"
        assert bot.commands()[0].usage == "/roll [sides:int=6] [names:text...]"


async def test_the_error_hook_gets_every_handler_exception_and_the_bot_carries_on(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    router = Router()
    failures: list[tuple[Exception, int]] = []

    @router.command("boom")
    async def boom(msg: Message, ctx: Context) -> None:
        ctx.state["touched"] = True  # discarded: the handler failed
        raise RuntimeError("kaboom")

    @router.command("state")
    async def state(msg: Message, ctx: Context) -> str:
        return repr(dict(ctx.state))

    @router.command("hookfail")
    async def hookfail(msg: Message, ctx: Context) -> None:
        raise ValueError("second")

    async with (
        Bot(server.url, KeyStore.memory(), router, handle="fragile") as bot,
        contextlib.AsyncExitStack() as stack,
    ):

        @bot.on_error
        async def hook(exc: Exception, ctx: Context | None) -> None:
            assert ctx is not None
            failures.append((exc, ctx.message.seq))
            if isinstance(exc, ValueError):
                raise LookupError("the hook itself failed")

        alice = await user(stack, server, "alice")
        ia = Inbox(alice)
        conv = await alice.direct(bot.me.account)
        ack = await alice.send_text(conv, "/boom")
        await alice.send_text(conv, "/state")
        assert await texts(ia, bot, conv) == ["{}"]
        assert [(type(e), str(e), seq) for e, seq in failures] == [
            (RuntimeError, "kaboom", ack.seq)
        ]
        with caplog.at_level("ERROR", logger="chatclient.bots"):
            await alice.send_text(conv, "/hookfail")
            await alice.send_text(conv, "/state")
            assert await texts(ia, bot, conv) == ["{}"]
        logged = [r.exc_info[1] for r in caplog.records if r.exc_info]
        assert [type(e) for e in logged] == [ValueError, LookupError]  # both, with tracebacks


async def test_the_default_error_hook_logs_the_traceback(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    router = Router()

    @router.command("boom")
    async def boom(msg: Message, ctx: Context) -> None:
        raise RuntimeError("kaboom")

    async with (
        Bot(server.url, KeyStore.memory(), router, handle="loud") as bot,
        contextlib.AsyncExitStack() as stack,
    ):
        alice = await user(stack, server, "alice")
        conv = await alice.direct(bot.me.account)
        with caplog.at_level("ERROR", logger="chatclient.bots"):
            await alice.send_text(conv, "/boom")
            deadline = time.monotonic() + 8
            while not caplog.records and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
    [record] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)
    assert f"conversation {conv}" in record.getMessage()


async def test_a_rate_limited_bot_slows_down_instead_of_failing_its_handlers(
    tmp_path: Path,
) -> None:
    router = Router()
    errors: list[Exception] = []

    @router.message(F.text & ~F.contains("hi"))
    async def chatty(msg: Message, ctx: Context) -> None:
        for i in range(8):
            await ctx.reply(f"{msg.text}.{i}")

    settings = make_settings(
        tmp_path, limits={"bot_frames_per_second": 10.0, "bot_frame_burst": 40.0}
    )
    async with (
        run_server(settings) as server,
        Bot(server.url, KeyStore.memory(), router, handle="chatty") as bot,
        contextlib.AsyncExitStack() as stack,
    ):

        @bot.on_error
        async def hook(exc: Exception, ctx: Context | None) -> None:
            errors.append(exc)

        users = [await user(stack, server, f"user{i}") for i in range(3)]
        convs = [await u.direct(bot.me.account) for u in users]
        for u, conv in zip(users, convs, strict=True):  # the bot reads everyone's keys first
            await u.send_text(conv, "hi")
        deadline = time.monotonic() + 8
        while len(bot._convs) < 3:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        # One conversation after another: each one's replies drain the bot's frame budget, so
        # the requests of the next conversation's first reply (its member list, its members'
        # keys) are refused for a while: the bot waits and retries instead of failing.
        for u, conv in zip(users, convs, strict=True):
            await u.send_text(conv, "a")
            await u.send_text(conv, "b")
            got = await texts(Inbox(u), bot, conv, 16)
            assert got == [f"{t}.{i}" for t in "ab" for i in range(8)]
        assert errors == []


# ---------------------------------------------------------------------- restarts


def counter_router(gate: asyncio.Event | None = None) -> Router:
    router = Router()

    @router.command("count")
    async def count(msg: Message, ctx: Context) -> None:
        ctx.state["n"] = ctx.state.get("n", 0) + 1
        await ctx.reply(f"n={ctx.state['n']}")
        if gate is not None:
            await gate.wait()  # a handler stuck after replying, when the bot is stopped

    return router


async def test_state_and_handled_messages_survive_a_bot_restart(
    server: RunningServer, tmp_path: Path
) -> None:
    key = tmp_path / "counter.key"
    async with contextlib.AsyncExitStack() as stack:
        alice = await user(stack, server, "alice")
        ia = Inbox(alice)
        async with Bot(server.url, key, counter_router(), handle="counter") as bot:
            conv = await alice.direct(bot.me.account)
            await alice.send_text(conv, "/count")
            await alice.send_text(conv, "/count")
            assert await texts(ia, bot, conv, 2) == ["n=1", "n=2"]
        account = bot.me.account
        # While the bot is down, two more commands arrive.
        await alice.send_text(conv, "/count")
        await alice.send_text(conv, "/count")
        async with Bot(server.url, key, counter_router()) as again:
            assert again.me.account == account  # logged in from its key store, not registered anew
            assert await texts(ia, again, conv, 2) == ["n=3", "n=4"]  # missed ones, once each
            await alice.send_text(conv, "/count")
            assert await texts(ia, again, conv) == ["n=5"]
            await ia.quiet(from_bot(again))


async def test_a_stop_mid_handler_reruns_it_next_time_without_a_second_reply(
    server: RunningServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="chatclient.bots")
    key = tmp_path / "stuck.key"
    async with contextlib.AsyncExitStack() as stack:
        alice = await user(stack, server, "alice")
        ia = Inbox(alice)
        stuck = asyncio.Event()  # never set: the first run's handler hangs after its reply
        async with Bot(
            server.url, key, counter_router(stuck), handle="stuck", drain_timeout=0.2
        ) as bot:
            conv = await alice.direct(bot.me.account)
            await alice.send_text(conv, "/count")
            await alice.send_text(conv, "/count")  # queued behind the stuck one
            assert await texts(ia, bot, conv) == ["n=1"]
        # The stop cancelled the handler after its reply was stored but before the message was
        # marked handled: both messages are delivered again. The re-run's reply reuses the
        # reply's client message id, so the server refuses a second copy...
        ready = asyncio.Event()
        ready.set()
        async with Bot(server.url, key, counter_router(ready)) as again:
            assert await texts(ia, again, conv) == ["n=2"]  # ... and the queued one runs once
            await ia.quiet(from_bot(again))
            await alice.send_text(conv, "/count")
            assert await texts(ia, again, conv) == ["n=3"]  # the state kept the re-run's count
        assert any("already stored before a restart" in r.getMessage() for r in caplog.records)


async def test_messages_waiting_for_admission_at_a_stop_are_handled_next_run_once_in_order(
    server: RunningServer, tmp_path: Path
) -> None:
    key = tmp_path / "slow.key"
    seen: list[str] = []
    gate = asyncio.Event()  # closed in the first run: its first handler never finishes
    router = Router()

    @router.message(F.text)
    async def record(msg: Message, ctx: Context) -> None:
        await gate.wait()
        assert msg.text is not None
        seen.append(msg.text)

    async with contextlib.AsyncExitStack() as stack:
        alice = await user(stack, server, "alice")
        bob = await user(stack, server, "bob")
        bot = Bot(server.url, key, router, handle="slow", max_pending=1, drain_timeout=0.1)
        async with bot:
            a = await alice.direct(bot.me.account)
            b = await bob.direct(bot.me.account)
            await alice.send_text(a, "a0")  # admitted, its handler hangs
            deadline = time.monotonic() + 8
            while not bot._queues:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            for i in range(3):  # b0 waits for admission; b1, b2 stay in the SDK's queue
                await bob.send_text(b, f"b{i}")
            while bot._holding is None:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
        assert seen == []
        gate.set()
        async with Bot(server.url, key, router):
            while len(seen) < 4 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # and nothing more
        assert sorted(seen) == ["a0", "b0", "b1", "b2"]
        assert [t for t in seen if t[0] == "b"] == ["b0", "b1", "b2"]


# ---------------------------------------------------------------------- mini-app actions


async def test_poll_example_creates_counts_votes_through_actions_and_edits_a_live_tally(
    server: RunningServer, tmp_path: Path
) -> None:
    poll = example("poll_bot")
    async with contextlib.AsyncExitStack() as stack:
        alice = await user(stack, server, "alice")
        bob = await user(stack, server, "bob")
        ia, ib = Inbox(alice), Inbox(bob)
        bot = await stack.enter_async_context(
            Bot(server.url, tmp_path / "poll_bot.key", poll.router)
        )
        group = (await alice.create("group", "Lunch", [bob.account, bot.me.account])).conv
        ack = await alice.send_text(group, "/poll Lunch where? | Pizza | Sushi")
        pid = str(ack.seq)
        [card] = await ib.take(from_bot(bot, group))
        assert [m.seq for m in await ia.take(from_bot(bot, group))] == [card.seq]
        assert card.content.text.startswith("📊 Lunch where?\n1. Pizza — 0\n2. Sushi — 0\n0 votes")

        def tally_edit(ev: Event) -> bool:
            return from_bot(bot, group, kinds.Edit)(ev) and ev.content.target == card.seq  # type: ignore[union-attr]

        await alice.send(group, invoke("poll", "vote", "inv-a", poll=pid, option=1))
        [res] = await ia.take(result_for(bot, "inv-a"))
        assert res.content.title == "Vote counted"  # the group reads it: not what the vote was
        assert "Pizza" not in res.content.title
        assert [(b.title, b.action, b.params) for b in res.content.buttons] == [
            ("Pizza", "vote", {"poll": pid, "option": 1}),  # a card: press to vote again
            ("Sushi", "vote", {"poll": pid, "option": 2}),
        ]
        await bob.send(group, invoke("poll", "vote", "inv-b", poll=pid, option="2"))
        await bob.send(group, invoke("poll", "vote", "inv-b", poll=pid, option=2))  # a retry
        [res] = await ib.take(result_for(bot, "inv-b"))
        assert "1. Pizza — 1 █████\n2. Sushi — 1 █████\n2 votes" in res.content.text
        edits = await ib.take(tally_edit, 2)
        assert "2 votes" in edits[-1].content.text  # everybody's view of the poll is live
        await ib.quiet(result_for(bot, "inv-b"))  # the retry was answered once, counted once

        await bob.send(group, invoke("poll", "vote", "inv-c", poll=pid, option=11))
        [res] = await ib.take(result_for(bot, "inv-c"))
        assert res.content.error == (
            "option: expected `int` <= 10, not 11\nusage: poll.vote <poll:text> <option:int>"
        )
        await bob.send(group, invoke("poll", "vote", "inv-c2", poll=pid, option=3))
        [res] = await ib.take(result_for(bot, "inv-c2"))
        assert res.content.error == "option must be 1-2"
        await bob.send(group, invoke("poll", "close", "inv-d", poll=pid))
        [res] = await ib.take(result_for(bot, "inv-d"))
        assert res.content.error == "only the poll's creator can close it"
        await bob.send(group, invoke("poll", "fly", "inv-e"))
        [res] = await ib.take(result_for(bot, "inv-e"))
        assert res.content.error == "this bot has no action 'poll.fly'"
        await alice.send(group, invoke("poll", "close", "inv-f", poll=pid))
        [res] = await ia.take(result_for(bot, "inv-f"))
        assert res.content.text.startswith("📊 Lunch where? (closed)")
        await alice.send_text(group, f"/results {pid}")
        [text] = await texts(ia, bot, group)
        assert "1. Pizza — 1" in text and "(closed)" in text
        assert [a.name for a in bot.actions()] == [
            "poll.create",
            "poll.vote",
            "poll.results",
            "poll.close",
        ]


async def test_a_retried_invocation_is_answered_once_even_across_a_restart(
    server: RunningServer, tmp_path: Path
) -> None:
    router = Router()
    runs: list[str] = []

    @router.action("app.hit")
    async def hit(msg: Message, ctx: Context, n: int = 1) -> None:
        runs.append(ctx.invocation.invocation_id if ctx.invocation else "")
        await ctx.answer(f"hit {n}")

    @router.action("app.silent")
    async def silent(msg: Message, ctx: Context) -> None:
        pass  # no answer: the bot sends an empty result so the user's client stops waiting

    key = tmp_path / "hits.key"
    async with contextlib.AsyncExitStack() as stack:
        alice = await user(stack, server, "alice")
        ia = Inbox(alice)
        async with Bot(server.url, key, router, handle="hits") as bot:
            conv = await alice.direct(bot.me.account)
            await alice.send(conv, invoke("app", "hit", "x1", n=3))
            [res] = await ia.take(result_for(bot, "x1"))
            assert res.content.text == "hit 3"
            await alice.send(conv, invoke("app", "silent", "x2"))
            [res] = await ia.take(result_for(bot, "x2"))
            assert (res.content.title, res.content.text) == ("", "")
        await alice.send(conv, invoke("app", "hit", "x1", n=3))  # retried while the bot was down
        async with Bot(server.url, key, router) as again:
            await alice.send(conv, invoke("app", "hit", "x3"))
            [res] = await ia.take(result_for(again, "x3"))
            await ia.quiet(result_for(again, "x1"))
        assert runs == ["x1", "x3"]


# ---------------------------------------------------------------------- bot.run() as a script


async def test_a_script_bot_registers_answers_and_stops_cleanly_on_sigterm(
    server: RunningServer, tmp_path: Path
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "echo_bot.py"),
        "--url",
        server.url,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    log: list[bytes] = []
    try:
        async with asyncio.timeout(20):  # registered, keys published, serving
            while not log or b"serving" not in log[-1]:
                log.append(await proc.stdout.readline())
                assert log[-1], b"".join(log).decode()
        async with Client(server.url) as alice:
            await alice.register("alice", "Alice")
            account = await alice.lookup("echo_bot")
            conv = await alice.direct(account)
            await alice.send_text(conv, "hello bot")
            ia = Inbox(alice)
            assert [m.content.text for m in await ia.take(from_bot(account, conv), timeout=15)] == [
                "hello bot"
            ]
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
        out = b"".join(log) + out
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, out.decode()
    assert b"stopped" in out
    assert (tmp_path / "echo_bot.key").exists()
