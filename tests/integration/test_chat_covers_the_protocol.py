"""``chat`` does what the protocol can (issue 15): replies, edits, deletions, reactions, read
receipts, requests to pay paid, declined and cancelled, and a confirmation step before any money
leaves that scripts pass explicitly. Real sessions against an in-process chatd, stdin piped."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from chatclient import Client, KeyStore
from chatclient.bots import Bot
from chatclient.tui import (
    BotCommand,
    CancelRequest,
    Decline,
    DeleteMessage,
    EditMessage,
    No,
    ParseError,
    Pay,
    PayOrder,
    PayRequest,
    React,
    Reads,
    RedPacket,
    Reply,
    Yes,
    parse_command,
)
from chatproto import kinds

from tests.botkit import example
from tests.conftest import make_settings, run_server
from tests.integration.test_chat_cli import Terminal, _register
from tests.paykit import mint


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/reply 12 see you there", Reply(12, "see you there")),
        ("/reply #12 see you", Reply(12, "see you")),
        ("/reply sounds good", Reply(None, "sounds good")),
        ("/edit 3 fixed typo", EditMessage(3, "fixed typo")),
        ("/edit fixed typo", EditMessage(None, "fixed typo")),
        ("/reply 12 it's mine", Reply(12, "it's mine")),
        ("/reply don't", Reply(None, "don't")),
        ('/edit 3 she said "hi"', EditMessage(3, 'she said "hi"')),
        ("/delete", DeleteMessage(None)),
        ("/del #4", DeleteMessage(4)),
        ("/react 👍", React(None, "👍")),
        ("/react 5 🎉", React(5, "🎉")),
        ("/unreact 5 🎉", React(5, "🎉", remove=True)),
        ("/read", Reads()),
        ("/pay rq_01HZ", PayRequest("rq_01HZ")),
        ("/pay! rq_01HZ", PayRequest("rq_01HZ", confirmed=True)),
        ("/pay! @bob 1 usd", Pay("bob", "1", "USD", "", confirmed=True)),
        ("/payorder! 2", PayOrder(2, confirmed=True)),
        ("/redpacket! 8 USD 2", RedPacket("8", "USD", 2, confirmed=True)),
        ("/decline rq_1", Decline("rq_1")),
        ("/cancel rq_1", CancelRequest("rq_1")),
        ("/yes", Yes()),
        ("/no", No()),
        ("/start", BotCommand("/start")),
        ("/start@shop_bot", BotCommand("/start@shop_bot")),
        ("/vote 28 2", BotCommand("/vote 28 2")),
        (
            "/poll What's for lunch? | Pizza | Sushi",
            BotCommand("/poll What's for lunch? | Pizza | Sushi"),
        ),
    ],
)
def test_parse_protocol_commands(line: str, expected: object) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/reply", "usage: /reply [SEQ] text"),
        ("/react 5", "usage: /react [SEQ] EMOJI"),
        ("/delete 4 now", "usage: /delete [SEQ]"),
        ("/decline rq_1 rq_2", "usage: /decline @handle | N | REQUEST_ID"),
        ("/cancel @bob", "usage: /cancel REQUEST_ID"),
        ("/yes please", "usage: /yes"),
        ("/pay? @bob", "unknown command /pay?"),
    ],
)
def test_parse_protocol_command_errors(line: str, message: str) -> None:
    with pytest.raises(ParseError, match=re.escape(message)):
        parse_command(line)


async def test_reply_edit_delete_react_and_read_receipts(tmp_path: Path) -> None:
    async with run_server(make_settings(tmp_path)) as server:
        keys = {h: tmp_path / f"{h}.key" for h in ("alice", "bob")}
        for handle, key in keys.items():
            await _register(server.url, key, handle, handle.title())
        alice = Terminal(server.url, keys["alice"]).start()
        bob = Terminal(server.url, keys["bob"]).start()
        try:
            await bob.wait_for("connected as @bob")
            alice.send("/dm @bob", "/seqs", "lunch at noon?")
            await bob.wait_for(r"^\[@alice\] \d\d:\d\d alice: lunch at noon\?$")
            bob.send("/open @alice", "/reply sure, where?")
            await alice.wait_for(r"^\[@bob\] \d\d:\d\d #3 bob \(↩ #2\): sure, where\?$")
            # Bob read alice's message: alice sees it, once, as it covers her latest message.
            await alice.wait_for(r"^\[@bob\] bob has read up to #\d+ \(your latest message too\)$")
            alice.send("/edit lunch at one?", "/react 👍", "/read")
            await bob.wait_for(r"^\[@alice\] \d\d:\d\d alice \(edited #2\): lunch at one\?$")
            await bob.wait_for(r"^\[@alice\] \d\d:\d\d alice reacted 👍 to #3$")
            await alice.wait_for(r"^  bob: #\d+")
            await alice.wait_for(r"^  alice \(you\): #\d+")
            alice.expected_status = 1  # not her message: a script with a failed command exits 1
            alice.send("/edit 3 not mine", "/delete 3", "/delete")
            await alice.wait_for(r"^#3 is not your message: you can edit only your own$")
            await alice.wait_for(r"^#3 is not your message: you can delete only your own$")
            # Deleted for everyone: the server erased it and told bob (SPEC.md 18.9).
            await bob.wait_for(
                r"^\[@alice\] \d\d:\d\d \* alice deleted their own message #2 for everyone$"
            )
            bob.send("/history 5")
            await bob.wait_for(r"^\[@alice\] \d\d:\d\d alice: \(message deleted by alice\)$")
            # Another client may send an edit of someone else's message: chat does not apply it.
            async with Client(server.url, KeyStore.open(tmp_path / "mallory.key")) as mallory:
                await mallory.register("mallory", "Mallory")
                alice.send('/group "Pub" @bob @mallory', "first round is mine")
                said = await alice.wait_for(
                    r"^\[Pub\] \d\d:\d\d #(\d+) alice: first round is mine$"
                )
                await bob.wait_for(r"^\[Pub\] \d\d:\d\d alice: first round is mine$")
                conv = next(c.conv for c in await mallory.conversations() if c.kind == "group")
                await mallory.send(conv, kinds.Edit(target=int(said.group(1)), text="mallory's"))
                await bob.wait_for(
                    rf"^\[Pub\] mallory tried to edit alice's message #{said.group(1)} \(ignored\)$"
                )
                # In a group the owner deletes anyone's message for everyone; a member cannot.
                spam = await mallory.send_text(conv, "buy cheap watches")
                await bob.wait_for(r"^\[Pub\] \d\d:\d\d mallory: buy cheap watches$")
                bob.expected_status = 1  # not his to delete: a script with a failed command exits 1
                bob.send("/open 2", f"/delete {said.group(1)}")
                await bob.wait_for(r"^error: FORBIDDEN")
                alice.send("/open 2", f"/delete {spam.seq}")
                for t in (alice, bob):
                    await t.wait_for(
                        rf"^\[Pub\] \d\d:\d\d (#\d+ )?\* alice deleted mallory's message #{spam.seq}"
                        r" for everyone$"
                    )
            # A plain (unencrypted) text is shown, marked: nothing authenticates its sender.
            async with Client(server.url, encrypt=False) as plain:
                await plain.register("plain", "Plain")
                await plain.send_text(await plain.direct(await plain.lookup("bob")), "trust me")
                await bob.wait_for(
                    r"^\[@plain\] \d\d:\d\d plain \(not end-to-end encrypted\): trust me$"
                )
        finally:
            for t in (alice, bob):
                assert await t.close() == t.expected_status
        for t in (alice, bob):
            assert "Traceback" not in t.text


async def test_requests_are_paid_declined_or_cancelled_and_money_waits_for_yes(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path)
    async with run_server(settings) as server:
        keys = {h: tmp_path / f"{h}.key" for h in ("alice", "bob", "dave")}
        for handle, key in keys.items():
            await _register(server.url, key, handle, handle.title())
        alice = Terminal(server.url, keys["alice"]).start()
        bob = Terminal(server.url, keys["bob"]).start()
        try:
            await alice.wait_for("connected as @alice")
            await bob.wait_for("connected as @bob")
            await mint(Path(settings.store.db), 1, 5_000)  # alice: 50.00 USD
            alice.send('/group "Lunch crew" @bob')
            await bob.wait_for(r"\* alice created the group$")
            bob.send("/open 1", "/request @alice 12.00 USD pizza", "/request @alice 3.00 USD tip")
            await alice.wait_for(r"(?s)asks alice for 12\.00.*asks alice for 3\.00 USD: /pay rq_")
            asks = re.findall(r"asks alice for \d+\.00 USD: /pay (rq_\w+)", alice.text)
            assert len(asks) == 2
            pizza, tip = asks
            # A payment waits for /yes; /no drops it and nothing moves.
            alice.send("/open 1", f"/pay {pizza}")
            await alice.wait_for(
                rf"^pay bob 12\.00 USD for request {pizza} in \[Lunch crew\] \(your balance:"
                r" 50\.00 USD\)\? /yes to confirm, /no to drop it$"
            )
            alice.send("/no", "/balance")
            await alice.wait_for(rf"^dropped: pay bob 12\.00 USD for request {pizza}")
            await alice.wait_for(r"^  50\.00 USD$")
            alice.expected_status = 1  # paid already: a script with a failed command exits 1
            alice.send(f"/pay {pizza}", "/yes", f"/pay {pizza}", f"/decline {tip}")
            await alice.wait_for(rf"^paid the request {pizza}: 12\.00 USD \(receipt #\d+\)$")
            await bob.wait_for(rf"\$ alice paid bob 12\.00 USD \(request {pizza}\)$")
            await alice.wait_for(rf"^the request {pizza} is paid already$")
            await bob.wait_for(rf"\$ alice declined bob's request {tip} for 3\.00 USD$")
            bob.expected_status = 1  # no such request: a script with a failed command exits 1
            bob.send("/request @alice 1.00 USD later", "/cancel rq_nonexistent")
            await bob.wait_for(r"^error: NOT_FOUND")
            # /pay @dave in a group dave is not in: says where it would go before anything.
            alice.send("/pay @dave 1.00 USD")
            await alice.wait_for(
                r"^pay @dave 1\.00 USD in your direct chat with @dave \(@dave is not in"
                r" \[Lunch crew\]\) \(your balance: 38\.00 USD\)\? /yes to confirm"
            )
            alice.send("/no", "/convs")
            await alice.wait_for(r"^\*  +1\. \[Lunch crew\] group, 2 members")
            assert "[@dave]" not in alice.text  # no direct chat was opened
            alice.send("/yes")
            await alice.wait_for(r"^no payment is waiting for confirmation$")
        finally:
            for t in (alice, bob):
                assert await t.close() == t.expected_status
        for t in (alice, bob):
            assert "Traceback" not in t.text
        # A script that leaves a payment unconfirmed is told, at the end, that nothing moved.
        script = Terminal(server.url, keys["alice"]).start()
        script.send("/pay @bob 2.00 USD thanks")
        await script.wait_for(r"/yes to confirm")
        assert await script.close() == 1  # the payment it asked for did not happen
        assert re.search(r"^not confirmed, so not done: pay @bob 2\.00 USD", script.text, re.M)
        # A script passes the confirmation explicitly: chat --yes.
        script = Terminal(server.url, keys["alice"])
        script.argv_extra = ["--yes"]
        script.start()
        try:
            script.send("/pay @bob 2.00 USD thanks")
            await script.wait_for(r"^paid @bob 2\.00 USD \(receipt #\d+ in \[@bob\]\)$")
            assert "/yes to confirm" not in script.text
        finally:
            assert await script.close() == script.expected_status


async def test_bot_commands_need_no_double_slash_and_a_vote_is_not_told_to_the_group(
    tmp_path: Path,
) -> None:
    async with run_server(make_settings(tmp_path)) as server:
        keys = {h: tmp_path / f"{h}.key" for h in ("alice", "bob")}
        for handle, key in keys.items():
            await _register(server.url, key, handle, handle.title())
        async with Bot(server.url, tmp_path / "poll_bot.key", example("poll_bot").router):
            alice = Terminal(server.url, keys["alice"]).start()
            bob = Terminal(server.url, keys["bob"]).start()
            try:
                await bob.wait_for("connected as @bob")
                alice.send('/group "Team" @bob', "/invite @poll_bot", "/start")
                await alice.wait_for(r"^\[Team\] \d\d:\d\d poll_bot \(↩ #\d+\): I run polls\.")
                alice.send("/poll Lunch? | Pizza | Sushi")
                pid = (await bob.wait_for(r"^\d+ votes · poll (\d+)$")).group(1)
                await bob.wait_for(rf"^vote: /vote {pid} N \(N from 1 to 2\)$")
                bob.send("/open 1", f"/vote {pid} 2")  # as the poll says: it works
                await bob.wait_for(rf"poll_bot \(↩ #\d+\): Vote counted \(poll {pid}\)")
                # The live tally: one line per change, not the whole poll again.
                await alice.wait_for(r"poll_bot \(edited #\d+\): 📊 Lunch\? … \(\+4 lines\)$")
                alice.send(f"/invoke @poll_bot poll.vote poll={pid} option=1")
                await alice.wait_for(r"poll_bot: Vote counted - 📊 Lunch\?")
                await bob.wait_for(r"^\[Team\] poll_bot answered alice: Vote counted$")
                assert "You voted for" not in alice.text + bob.text
                alice.expected_status = (
                    1  # /frobnicate fails: a script with a failed command exits 1
                )
                alice.send("/frobnicate", "/seqs", "/history 3")
                await alice.wait_for(
                    r"^unknown command /frobnicate: neither chat nor the bots here have it"
                )
                card = await alice.wait_for(r"^\[Team\] \d\d:\d\d #(\d+) poll_bot: Vote counted")
                # A forwarded card is shown as the card it is.
                alice.send(f"/forward {card.group(1)} @bob")
                await bob.wait_for(
                    r"alice forwarded from poll_bot \(\d\d:\d\d, Team #\d+\): Vote counted - 📊"
                )
            finally:
                for t in (alice, bob):
                    assert await t.close() == t.expected_status
            for t in (alice, bob):
                assert "Traceback" not in t.text
                assert "cannot show" not in t.text
