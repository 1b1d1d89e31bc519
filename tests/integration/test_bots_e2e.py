"""Bots in groups through the SDK (issue 7, SPEC.md 16, E2E.md 7.1): the example bots joined to a
group answer commands and mini-app actions end-to-end encrypted (no frame and no byte of the
server's database holds what was said); a bot with access ``addressed`` gets only what users'
clients address to it and never holds the sender key of anything else, across access changes;
profiles published on connect; ``BotAdded`` / ``BotRemoved`` and the bot's own handlers for
them; and the SDK gaps closed with the bots work (requests repeated after ``RATE_LIMITED``, a
message to an account that has not published its device list yet)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import chatclient.client as client_module
import pytest
from botkit import (
    Inbox,
    assert_never_seen,
    example,
    recorded_frames,
    result_for,
    sent_by,
    text_is,
    user,
)
from chatclient import Client, KeyStore, Message
from chatclient.bots import Bot, Context, F, Router
from chatclient.errors import ConnectionLost
from chatclient.events import BotAdded, BotRemoved, Event
from chatproto import kinds
from conftest import RunningServer, make_settings, run_server

MARKER = "MARKER-5ec2e7"


def system(event: str, conv: int) -> object:
    return lambda ev: (
        isinstance(ev, Message)
        and isinstance(ev.content, kinds.SystemEvent)
        and ev.content.event == event
        and ev.conv == conv
    )


# ---------------------------------------------------------------------- the examples in a group


async def test_example_bots_in_a_group_answer_commands_and_actions_end_to_end_encrypted(
    server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    echo, poll, shop = example("echo_bot"), example("poll_bot"), example("shop_bot")
    with recorded_frames(monkeypatch) as frames:
        async with contextlib.AsyncExitStack() as stack:
            bots = {
                name: await stack.enter_async_context(
                    Bot(server.url, tmp_path / f"{name}.key", module.router, app_title=name)
                )
                for name, module in (("echo_bot", echo), ("poll_bot", poll), ("shop_bot", shop))
            }
            ids = {name: b.me.account for name, b in bots.items()}
            alice = await user(stack, server, "alice")
            bob = await user(stack, server, "bob")
            group = (await alice.create("group", "Lunch", [bob.account])).conv
            for name in bots:
                assert await alice.add_bot(group, f"@{name}") == ids[name]
            assert await alice.bots(group) == dict.fromkeys(ids.values(), "addressed")
            ia, ib = Inbox(alice), Inbox(bob)

            # A command for one bot reaches that bot only; a bare command every bot.
            await bob.send_text(group, f"@echo_bot say {MARKER}")
            for inbox in (ia, ib):
                [said] = await inbox.take(sent_by(ids["echo_bot"], group))
                assert said.text == f"@echo_bot say {MARKER}"
            ack = await alice.send_text(group, f"/poll Where {MARKER}? | Pizza | Sushi")
            [tally] = await ib.take(sent_by(ids["poll_bot"], group))
            assert tally.text.startswith(f"📊 Where {MARKER}?")
            await alice.send_text(group, "/start@echo_bot")
            [hi] = await ib.take(sent_by(ids["echo_bot"], group))
            assert hi.text == "Hi! Send me some text and I send it back." and hi.reply_to
            await ib.quiet(sent_by(ids["shop_bot"], group))  # /poll is none of its business

            # Mini-app actions: an invocation goes to the bot whose mini-app it is.
            vote = kinds.MiniappInvoke(
                invocation_id=f"vote-{MARKER}",
                app="poll",
                action="vote",
                params={"poll": str(ack.seq), "option": 2},
            )
            sent = await bob.send(group, vote)  # addressed by the SDK (two bots have apps)
            [result] = await ib.take(result_for(ids["poll_bot"], vote.invocation_id))
            assert result.content.title == "Vote counted" and result.reply_to == sent.seq
            card = await alice.invoke(group, ids["shop_bot"], "shop", "item", {"item": "cake"})
            assert card.content.text == "6.00 USD each"
            await ia.quiet(result_for(ids["echo_bot"]))

            # Profiles were published when each bot connected: what clients show.
            profile = await bob.bot_profile(ids["poll_bot"])
            assert [c.name for c in profile.commands] == [
                "start",
                "poll",
                "vote",
                "results",
                "help",
            ]
            assert profile.manifest is not None and profile.manifest.name == "poll"
            assert [a.name for a in profile.manifest.actions] == [
                "create",
                "vote",
                "results",
                "close",
            ]
            assert profile.updated_at > 0
            assert (await bob.bot_profile(ids["shop_bot"])).manifest.title == "shop_bot"  # type: ignore[union-attr]
    assert_never_seen(MARKER, frames, server)


# ---------------------------------------------------------------------- privacy


async def test_an_addressed_bot_gets_and_can_decrypt_only_what_is_addressed_to_it(
    server: RunningServer,
) -> None:
    seen: list[str] = []
    router = Router()

    @router.message(F.text)
    async def record(msg: Message, ctx: Context) -> None:
        assert msg.text is not None
        seen.append(msg.text + ("" if F.addressed(msg, ctx) else " [not addressed]"))

    async with contextlib.AsyncExitStack() as stack:
        bot = await stack.enter_async_context(
            Bot(server.url, KeyStore.memory(), router, handle="nosy_bot")
        )
        alice = await user(stack, server, "alice")
        bob = await user(stack, server, "bob")
        group = (await alice.create("group", "G", [bob.account])).conv
        await alice.add_bot(group, bot.me.account)
        bot_e2e = bot.client.e2e

        async def said(*texts: str) -> None:
            async with asyncio.timeout(8):
                while len(seen) < len(texts):
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # and nothing else
            assert seen == list(texts)
            seen.clear()

        await alice.send_text(group, "just between us")
        await alice.send_text(group, "hey @nosy_bot")
        await bob.send_text(group, "bob to everyone")
        await said("hey @nosy_bot")
        main = alice.e2e.outbound_key_id(group)
        addressed = alice.e2e.outbound_key_id(group, addressed=True)
        assert main is not None and addressed is not None and main != addressed
        held = bot_e2e.inbound_key_ids(group, alice.device)
        assert addressed in held and main not in held  # E2E.md 7.1: never the main key
        assert bob.e2e.inbound_key_ids(group, alice.device) >= {main, addressed}
        assert bot_e2e.inbound_key_ids(group, bob.device) == set()  # bob never addressed it

        # The owner lets the bot read everything: from the bot_access message on, senders
        # give it their (new) main key.
        await alice.set_bot_access(group, bot.me.account, "all")
        ia = Inbox(alice)
        await ia.take(system("bot_access", group))
        await alice.send_text(group, "now you may read this")
        await said("now you may read this [not addressed]")
        main_all = alice.e2e.outbound_key_id(group)
        assert main_all != main and main_all in bot_e2e.inbound_key_ids(group, alice.device)

        # Back to addressed: the main key it held is replaced before the next message.
        await alice.set_bot_access(group, bot.me.account, "addressed")
        await ia.take(system("bot_access", group))
        await alice.send_text(group, "not for bots again")
        await alice.send_text(group, "@nosy_bot still there?")
        await said("@nosy_bot still there?")
        main_again = alice.e2e.outbound_key_id(group)
        assert main_again not in (main, main_all)
        assert main_again not in bot_e2e.inbound_key_ids(group, alice.device)
        history = await bot.client.fetch(group, limit=100)
        withheld = [m.seq for m in history.messages if m.kind == "withheld"]
        assert len(withheld) == 3  # what it may not see is a placeholder, even in history

        # The bot goes: members are told, and the addressed key is replaced.
        before = alice.e2e.outbound_key_id(group, addressed=True)
        await alice.remove(group, bot.me.account)
        [gone] = await ia.take(lambda ev: isinstance(ev, BotRemoved))
        assert (gone.conv, gone.bot, gone.by) == (group, bot.me.account, alice.account)
        await alice.send_text(group, "hey @nosy_bot, are you there?")  # not a member: no key
        assert alice.e2e.outbound_key_id(group, addressed=True) is None
        assert alice.e2e.outbound_key_id(group) not in bot_e2e.inbound_key_ids(group, alice.device)
        assert before is not None


async def test_users_see_bots_added_and_removed_and_the_bot_runs_its_own_handlers(
    server: RunningServer,
) -> None:
    router = Router()
    removed: list[int] = []

    @router.bot_added()
    async def hello(msg: Message, ctx: Context) -> str:
        return (
            f"Hello {ctx.conversation.title or 'there'}! My access here: {ctx.conversation.access}"
        )

    @router.bot_removed()
    async def bye(msg: Message, ctx: Context) -> None:
        removed.append(ctx.conversation.id)

    async with contextlib.AsyncExitStack() as stack:
        bot = await stack.enter_async_context(
            Bot(server.url, KeyStore.memory(), router, handle="greeter_bot")
        )
        alice = await user(stack, server, "alice")
        ia = Inbox(alice)
        invited = (await alice.create("group", "Invited", [])).conv
        await alice.add_bot(invited, "@greeter_bot")
        [added] = await ia.take(lambda ev: isinstance(ev, BotAdded) and ev.conv == invited)
        assert (added.bot, added.by, added.access) == (bot.me.account, alice.account, "addressed")
        [hello_msg] = await ia.take(sent_by(bot.me.account, invited))
        assert hello_msg.text == "Hello Invited! My access here: addressed"

        founded = (await alice.create("group", "Founded", [bot.me.account])).conv
        [added] = await ia.take(lambda ev: isinstance(ev, BotAdded) and ev.conv == founded)
        assert (added.bot, added.by, added.access, added.seq) == (
            bot.me.account,
            alice.account,
            "addressed",
            1,
        )
        assert (await ia.one(sent_by(bot.me.account, founded))).text == (
            "Hello Founded! My access here: addressed"
        )
        direct = await alice.direct(bot.me.account)
        [added] = await ia.take(lambda ev: isinstance(ev, BotAdded) and ev.conv == direct)
        assert (added.bot, added.access) == (bot.me.account, "all")
        assert (await ia.one(sent_by(bot.me.account, direct))).text == (
            "Hello there! My access here: all"
        )

        await alice.remove(invited, bot.me.account)
        [gone] = await ia.take(lambda ev: isinstance(ev, BotRemoved))
        assert (gone.conv, gone.bot, gone.by) == (invited, bot.me.account, alice.account)
        async with asyncio.timeout(8):
            while not removed:
                await asyncio.sleep(0.01)
        assert removed == [invited]
        events: list[Event] = [ev for ev in ia.pending if isinstance(ev, BotAdded | BotRemoved)]
        assert events == []


# ---------------------------------------------------------------------- SDK gaps


async def test_requests_refused_with_rate_limited_are_repeated_by_the_sdk(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, limits={"frames_per_second": 20.0, "frame_burst": 10.0})
    async with run_server(settings) as server, Client(server.url) as alice:
        await alice.register("alice", "Alice")
        await asyncio.sleep(0.6)  # the registration's own requests used the burst
        convs = await asyncio.gather(*(alice.create("group", f"G{i}") for i in range(25)))
        assert len({c.conv for c in convs}) == 25  # none refused: all created once


async def test_a_message_to_an_account_that_is_still_publishing_its_keys_reaches_it(
    server: RunningServer,
) -> None:
    async with Client(server.url) as alice, Client(server.url) as bob:
        await alice.register("alice", "Alice")
        registering = asyncio.create_task(bob.register("bob", "Bob"))
        while True:  # bob exists as soon as the server registered him; his keys come next
            with contextlib.suppress(Exception):
                account = await alice.lookup("bob")
                break
            await asyncio.sleep(0.001)
        conv = await alice.direct(account)
        await alice.send_text(conv, "welcome, bob")
        await registering
        got = await Inbox(bob).one(text_is(alice.account, conv, "welcome, bob"))
        assert got.text == "welcome, bob"


async def test_a_to_device_item_that_could_not_be_processed_is_fetched_again_without_a_reconnect(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "PARK_SECONDS", 120.0)  # no rescue by the park deadline
    async with Client(server.url) as alice, Client(server.url) as bob:
        await alice.register("alice", "Alice")
        await bob.register("bob", "Bob")
        receive = bob.e2e.receive_to_device
        failures = [ConnectionLost("the key server did not answer")]

        async def flaky(item: object) -> object:
            if failures:
                raise failures.pop()  # the first sender key cannot be checked for now
            return await receive(item)  # type: ignore[arg-type]

        monkeypatch.setattr(bob.e2e, "receive_to_device", flaky)
        conv = await alice.direct(bob.account)
        await alice.send_text(conv, "can you read me?")
        got = await Inbox(bob).one(text_is(alice.account, conv, "can you read me?"))
        assert got.text == "can you read me?" and not failures
