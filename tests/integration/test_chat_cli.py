"""The ``chat`` terminal client: parser, formatter and line editor, then real sessions against an
in-process chatd with piped stdin (in-process and through the console script)."""

from __future__ import annotations

import asyncio
import io
import os
import re
import stat
import sys
from collections.abc import AsyncIterator
from datetime import UTC
from pathlib import Path

import pytest
from chatclient import Client, KeyStore
from chatclient.bots import Bot
from chatclient.cli import run
from chatclient.events import (
    BotAdded,
    Connected,
    Disconnected,
    InvocationTimeout,
    Message,
    Presence,
    Typing,
)
from chatclient.tui import (
    Access,
    Approve,
    Bots,
    Cards,
    Create,
    Dm,
    Forward,
    Handover,
    Help,
    History,
    Invite,
    Invoke,
    LineEditor,
    Names,
    Open,
    ParseError,
    PayOrder,
    Press,
    Quit,
    Rename,
    Role,
    Safety,
    Say,
    Seqs,
    ShareCard,
    ShareLink,
    Verify,
    format_bots,
    format_convs,
    format_event,
    format_safety_number,
    parse_command,
)
from chatproto import frames as F
from chatproto import kinds

from tests.botkit import Inbox as Events
from tests.botkit import example, sent_by
from tests.conftest import make_settings, run_server
from tests.paykit import mint

# --------------------------------------------------------------------------- parser


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("hello there", Say("hello there")),
        ("//not a command", Say("/not a command")),
        ("   ", None),
        ("/help", Help()),
        ("/q", Quit()),
        ("/open 2", Open(index=2)),
        ("/open @Bob", Open(handle="bob")),
        ("/dm @bob", Dm("bob")),
        ("/dm bob", Dm("bob")),
        ('/group "Book club" @bob @carol @bob', Create("group", "Book club", ("bob", "carol"))),
        ('/channel "News"', Create("channel", "News", ())),
        ("/invite @carol", Invite("carol")),
        ("/role @carol admin", Role("carol", "admin")),
        ("/rename New title here", Rename("New title here")),
        ('/rename "Quoted title"', Rename("Quoted title")),
        ("/history", History(20)),
        ("/history 5", History(5)),
    ],
)
def test_parse_command(line: str, expected: object) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/fr-obnicate", "unknown command /fr-obnicate"),
        ("/dm", "usage: /dm @handle"),
        ("/dm @x", "not a handle: @x"),
        ("/dm @Bad-Handle", "not a handle"),
        ('/group @bob "Title"', "usage: /group"),
        ('/group "unclosed @bob', "No closing quotation"),
        ("/open 0", "usage: /open"),
        ("/history many", "usage: /history"),
        ("/history 501", "usage: /history"),
        ("/role @bob owner", "usage: /role"),
        ("/quit now", "usage: /quit"),
        ("/rename " + "x" * 129, "longer than 128"),
        ("/handover @bob", "usage: /handover DEVICE"),
    ],
)
def test_parse_command_errors(line: str, message: str) -> None:
    with pytest.raises(ParseError, match=re.escape(message)):
        parse_command(line)


# --------------------------------------------------------------------------- formatter


def _names() -> Names:
    names = Names(me=1, my_handle="alice")
    names.learn(
        F.ConvInfo(
            conv=10,
            kind="direct",
            title="",
            last_seq=3,
            role="member",
            members=[
                F.Member(account=1, role="member", handle="alice"),
                F.Member(account=2, role="member", handle="bob"),
            ],
        )
    )
    names.learn(
        F.ConvInfo(
            conv=11,
            kind="group",
            title="Team",
            last_seq=9,
            role="owner",
            read=4,
            member_count=2,
            members=[
                F.Member(account=1, role="owner", handle="alice"),
                F.Member(account=2, role="member", handle="bob"),
            ],
        )
    )
    return names


TS = 1_700_000_000_000  # 22:13 UTC


def _msg(conv: int, sender: int, content: kinds.Content) -> Message:
    kind, body = kinds.encode_content(content)
    return Message(conv, 5, TS, sender, sender, kind, body, content)


def _text(ev: object, names: Names | None = None) -> str | None:
    line = format_event(ev, names or _names(), UTC)  # type: ignore[arg-type]
    return None if line is None else line.text


def test_format_messages() -> None:
    assert _text(_msg(10, 2, kinds.Text(text="hi"))) == "[@bob] 22:13 bob: hi"
    assert _text(_msg(11, 1, kinds.Text(text="yo"))) == "[Team] 22:13 alice: yo"
    assert _text(_msg(12, 7, kinds.Text(text="?"))) == "[#12] 22:13 user#7: ?"
    assert _text(_msg(11, 2, kinds.Edit(target=3, text="fixed"))) == (
        "[Team] 22:13 bob (edited #3): fixed"
    )
    assert _text(_msg(11, 2, kinds.ReadReceipt(up_to=3))) is None
    created = _msg(10, 0, kinds.SystemEvent(event="created", actor=2))
    assert _text(created) == "[@bob] 22:13 * bob created the conversation"
    unknown = Message(11, 6, TS, 2, 2, "x-poll", b"\x80", None)
    assert _text(unknown) == "[Team] 22:13 bob sent a 'x-poll' message this client cannot show"


@pytest.mark.parametrize(
    ("event", "text"),
    [
        (kinds.SystemEvent(event="created", actor=1), "alice created the group"),
        (kinds.SystemEvent(event="joined", actor=1, account=2), "alice added bob"),
        (kinds.SystemEvent(event="joined", actor=2, account=2), "bob joined"),
        (kinds.SystemEvent(event="left", actor=2), "bob left"),
        (kinds.SystemEvent(event="removed", actor=1, account=2), "alice removed bob"),
        (kinds.SystemEvent(event="role", actor=1, account=2, role="admin"), "alice made bob admin"),
        (
            kinds.SystemEvent(event="renamed", actor=1, title="Crew"),
            'alice renamed the group to "Crew"',
        ),
        (
            kinds.SystemEvent(event="deleted", actor=1, account=2, target=7),
            "alice deleted bob's message #7 for everyone",
        ),
        (
            kinds.SystemEvent(event="deleted", actor=2, account=2, target=8),
            "bob deleted their own message #8 for everyone",
        ),
    ],
)
def test_format_system_messages(event: kinds.SystemEvent, text: str) -> None:
    line = format_event(_msg(11, 0, event), _names(), UTC)
    assert line is not None
    assert line.text == f"[Team] 22:13 * {text}"
    assert line.style == "system"


def test_format_connection_typing_presence() -> None:
    assert _text(Disconnected(1006, "", True)) == "connection lost, reconnecting..."
    assert _text(Disconnected(1008, "policy", False)) == "disconnected (policy)"
    assert _text(Connected(1, 1, True)) == "reconnected"
    assert _text(Connected(1, 1, False)) == "connected as @alice"
    assert _text(F.TypingEvent(conv=11, account=2, on=True)) == "[Team] bob is typing..."
    assert _text(F.TypingEvent(conv=11, account=2, on=False)) is None
    assert _text(F.TypingEvent(conv=11, account=1, on=True)) is None  # myself
    assert _text(F.PresenceEvent(account=2, online=False, last_seen=TS)) == "bob went offline"
    line = format_event(Typing(conv=10, account=2, on=True), _names(), UTC)
    assert line is not None
    assert line.style == "dim"
    assert format_event(Presence(account=1, online=True, last_seen=0), _names()) is None


def test_format_convs_unread() -> None:
    names = _names()
    lines = [line.text for line in format_convs(list(names.convs.values()), names, current=11)]
    assert lines == [
        "   1. [@bob] direct, 0 members, 3 unread",
        "*  2. [Team] group, 2 members, 5 unread",
    ]


# --------------------------------------------------------------------------- line editor


def test_line_editor() -> None:
    ed = LineEditor()
    assert ed.feed("helo\x7flo") == []
    assert ed.buffer == "hello"
    assert ed.feed("\x1b[D\x1bOA world\r") == ["hello world"]  # arrow keys swallowed
    assert ed.feed("one two\x17three\n") == ["one three"]
    assert ed.feed("junk\x15/quit\n") == ["/quit"]
    assert ed.feed("x\x04") == []  # Ctrl-D ends input only on an empty line
    assert ed.feed("\x15\x04") == [None]


# --------------------------------------------------------------------------- sessions


class Terminal:
    """One ``chat`` run in-process with piped stdin and captured output."""

    def __init__(self, url: str, key: Path) -> None:
        self.url, self.key = url, key
        self.argv_extra: list[str] = []
        self.out = io.StringIO()
        self._r, self._w = os.pipe()
        self.task: asyncio.Task[int] | None = None
        self.expected_status = 0
        """What ``chat`` must exit with: 1 once the test made a command fail on purpose."""

    def start(self) -> Terminal:
        argv = ["--server", self.url, "--key", str(self.key), *self.argv_extra]
        self.task = asyncio.create_task(run(argv, stdin=self._r, stdout=self.out))
        return self

    def send(self, *lines: str) -> None:
        for line in lines:
            os.write(self._w, (line + "\n").encode())

    @property
    def text(self) -> str:
        return self.out.getvalue()

    async def wait_for(self, pattern: str, start: int = 0, timeout: float = 10) -> re.Match[str]:
        async with asyncio.timeout(timeout):
            while True:
                m = re.search(pattern, self.text[start:], re.MULTILINE)
                if m is not None:
                    return m
                assert self.task is not None
                if self.task.done():
                    raise AssertionError(f"chat exited ({self.task.result()}):\n{self.text}")
                await asyncio.sleep(0.02)

    async def close(self) -> int:
        os.close(self._w)
        assert self.task is not None
        try:
            return await asyncio.wait_for(self.task, 15)
        finally:
            os.close(self._r)


async def _register(url: str, key: Path, handle: str, name: str) -> str:
    out = io.StringIO()
    assert (
        await run(["--server", url, "--key", str(key), "register", handle, name], stdout=out) == 0
    )
    return out.getvalue()


@pytest.fixture
async def url(tmp_path: Path) -> AsyncIterator[str]:
    async with run_server(make_settings(tmp_path)) as server:
        yield server.url


async def test_register_saves_a_private_key_once(url: str, tmp_path: Path) -> None:
    key = tmp_path / "conf" / "alice.key"
    out = await _register(url, key, "@Alice", "Alice")
    assert "registered @alice" in out
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    with KeyStore.open(key) as ks:
        assert ks.handle == "alice"
    again = io.StringIO()
    assert (
        await run(["--server", url, "--key", str(key), "register", "al2", "A"], stdout=again) == 1
    )
    assert "already holds @alice" in again.getvalue()
    taken = io.StringIO()
    argv = ["--server", url, "--key", str(tmp_path / "x.key"), "register", "alice", "Imposter"]
    assert await run(argv, stdout=taken) == 1
    assert taken.getvalue().startswith("chat: error:")
    assert "Traceback" not in taken.getvalue()


async def test_unregistered_key_and_unreachable_server(tmp_path: Path) -> None:
    out = io.StringIO()
    assert await run(["--key", str(tmp_path / "none.key")], stdout=out) == 1
    assert "holds no account yet" in out.getvalue()
    out = io.StringIO()
    argv = ["--server", "ws://127.0.0.1:9/ws", "--key", str(tmp_path / "k.key")]
    argv += ["--connect-timeout", "0.5", "register", "zed", "Zed"]
    assert await run(argv, stdout=out) == 1
    assert out.getvalue() == "chat: cannot reach the server at ws://127.0.0.1:9/ws\n"


async def test_two_people_chat_then_a_third_joins_and_cannot_read_what_came_before(
    url: str, tmp_path: Path
) -> None:
    keys = {h: tmp_path / f"{h}.key" for h in ("alice", "bob", "carol")}
    for handle, key in keys.items():
        await _register(url, key, handle, handle.title())
    alice = Terminal(url, keys["alice"]).start()
    bob = Terminal(url, keys["bob"]).start()
    carol = Terminal(url, keys["carol"]).start()
    try:
        await bob.wait_for("connected as @bob")
        alice.send("/dm @bob", "hello bob")
        await alice.wait_for(r"^now in \[@bob\]")
        await bob.wait_for(r"^\[@alice\] \d\d:\d\d alice: hello bob$")
        await alice.wait_for(r"^\[@bob\] \d\d:\d\d alice: hello bob$")  # own message, once stored

        bob.send("/open @alice", "hi alice")
        await alice.wait_for(r"^\[@bob\] \d\d:\d\d bob: hi alice$")
        await bob.wait_for(r"^\[@alice\] \d\d:\d\d bob: hi alice$")
        bob.expected_status = 1  # /nope fails: a script with a failed command exits 1
        bob.send("/nope", "/history 1")
        await bob.wait_for("unknown command /nope")
        await bob.wait_for(r"history 3\.\.3 --\n\[@alice\] \d\d:\d\d bob: hi alice\n")

        mark = len(alice.text)
        alice.send('/group "Team" @bob', "first message", "second message", "/convs")
        await bob.wait_for(r"^\[Team\] \d\d:\d\d \* alice created the group$")
        await bob.wait_for(r"^\[Team\] \d\d:\d\d alice: second message$")
        await alice.wait_for(r"^\*  +2\. \[Team\] group, 2 members", mark)
        await alice.wait_for(r"^ +1\. \[@bob\] direct, 2 members$", mark)  # read as shown

        # carol joins later: what was sent before she joined never reaches her, not even the
        # server's "created" message (SPEC.md 7.8, issue 14.8: she saw it, and a line for the 2
        # encrypted messages, before); her history starts at her join.
        alice.expected_status = 1  # /invite @nobody fails: a script with a failed command exits 1
        alice.send("/invite @carol", "/invite @nobody")
        await alice.wait_for("error: NOT_FOUND")
        await carol.wait_for(r"^\[Team\] \d\d:\d\d \* alice added carol$")
        assert "cannot decrypt" not in carol.text
        mark = len(carol.text)
        carol.send("/open 1", "/history 2", "/history 2")
        await carol.wait_for(r"\(no earlier messages\)", mark)
        shown = carol.text[mark:]
        assert re.search(
            r"history 4\.\.4 --\n.*\* alice added carol\n"
            r"\(history starts when you joined\)\n\(no earlier messages\)",
            shown,
        ), shown
        assert "first message" not in carol.text
        assert "created the group" not in carol.text
        assert "before you joined" not in carol.text
        carol.send("/who", "hi all")
        await carol.wait_for(r"^  alice  owner  online$", mark)
        await carol.wait_for(r"^  carol \(you\)  member  online$", mark)
        await bob.wait_for(r"^\[Team\] \d\d:\d\d carol: hi all$")
    finally:
        for t in (alice, bob, carol):
            assert await t.close() == t.expected_status
    for t in (alice, bob, carol):
        assert "Traceback" not in t.text
        assert "hello bob" in t.text or t is carol


async def test_missed_messages_arrive_once_in_order(url: str, tmp_path: Path) -> None:
    keys = {h: tmp_path / f"{h}.key" for h in ("alice", "bob")}
    for handle, key in keys.items():
        await _register(url, key, handle, handle.title())
    alice = Terminal(url, keys["alice"]).start()
    bob = Terminal(url, keys["bob"]).start()
    try:
        alice.send("/dm @bob", "m0")
        await bob.wait_for(r"alice: m0$")
        bob.send("/drop")
        await bob.wait_for(r"^connection lost, reconnecting\.\.\.$")
        alice.send(*(f"m{i}" for i in range(1, 6)))
        await alice.wait_for(r"alice: m5$")
        await bob.wait_for(r"^reconnected$")
        await bob.wait_for(r"alice: m5$")
    finally:
        assert await bob.close() == bob.expected_status
    # bob is away (his cursors are saved in his key file); alice goes on; bob comes back.
    alice.send(*(f"m{i}" for i in range(6, 9)))
    await alice.wait_for(r"alice: m8$")
    bob_again = Terminal(url, keys["bob"]).start()
    try:
        await bob_again.wait_for(r"alice: m8$")
    finally:
        assert await bob_again.close() == bob_again.expected_status
        assert await alice.close() == alice.expected_status
    seen = re.findall(r"^\[@alice\] \d\d:\d\d alice: (m\d)$", bob.text + bob_again.text, re.M)
    assert seen == [f"m{i}" for i in range(9)]
    assert bob.text.count("connection lost") == 1


async def test_console_script_over_a_pipe(url: str, tmp_path: Path) -> None:
    """The installed ``chat`` entry point: register, then a scripted session over stdin."""
    chat = [sys.executable, "-m", "chatclient.cli"]
    key = tmp_path / "dave.key"

    async def chat_run(*argv: str, stdin: bytes = b"") -> tuple[int, str]:
        env = {**os.environ, "CHAT_SERVER": url, "CHAT_KEY": str(key)}
        proc = await asyncio.create_subprocess_exec(
            *chat,
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
        out, _ = await asyncio.wait_for(proc.communicate(stdin), 30)
        assert proc.returncode is not None
        return proc.returncode, out.decode()

    async with Client(url) as erin:
        await erin.register("erin", "Erin")
        code, out = await chat_run("register", "dave", "Dave")
        assert code == 0, out
        code, out = await chat_run(stdin=b"/me\n/dm @erin\nhello from a pipe\n/bogus\n")
        assert code == 1, out  # every line ran, and the script learns that /bogus failed
        assert re.search(r"^@dave \(account \d+, device \d+\) on ws://", out, re.MULTILINE), out
        assert re.search(r"^\[@erin\] \d\d:\d\d dave: hello from a pipe$", out, re.MULTILINE), out
        assert "unknown command /bogus" in out
        assert "Traceback" not in out
        conv = await erin.direct(await erin.lookup("dave"))
        texts = [m.text for m in await erin.history(conv)]
        assert texts == [None, "hello from a pipe"]


async def test_both_sides_see_the_same_safety_number_and_can_verify(
    url: str, tmp_path: Path
) -> None:
    keys = {h: tmp_path / f"{h}.key" for h in ("alice", "bob")}
    for handle, key in keys.items():
        await _register(url, key, handle, handle.title())
    alice = Terminal(url, keys["alice"]).start()
    bob = Terminal(url, keys["bob"]).start()
    digits = r"((?:\d{5} ){5}\d{5}\n(?:\d{5} ){5}\d{5})"
    try:
        await alice.wait_for("connected as @alice")
        await bob.wait_for("connected as @bob")
        alice.send("/safety @bob", "/verify @bob")
        bob.send("/safety @alice")
        a = await alice.wait_for(r"safety number with @bob.*\n" + digits)
        b = await bob.wait_for(r"safety number with @alice.*\n" + digits)
        assert a.group(1) == b.group(1)
        await alice.wait_for(r"^@bob verified$")
        bob.expected_status = 1  # /safety @nobody fails: a script with a failed command exits 1
        bob.send("/safety @nobody")
        await bob.wait_for("error: NOT_FOUND")
    finally:
        for t in (alice, bob):
            assert await t.close() == t.expected_status


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/safety @Bob", Safety("bob")),
        ("/verify bob", Verify("bob", True)),
        ("/unverify @bob", Verify("bob", False)),
        ("/approve 7", Approve(7)),
        ("/handover 7", Handover(7)),
    ],
)
def test_parse_trust_commands(line: str, expected: object) -> None:
    assert parse_command(line) == expected


def test_safety_number_is_shown_as_two_rows_of_six_groups() -> None:
    shown = format_safety_number("".join(str(i % 10) for i in range(60)))
    assert shown == "01234 56789 01234 56789 01234 56789\n01234 56789 01234 56789 01234 56789"


# --------------------------------------------------------------------------- bots (issue 7)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/bots", Bots()),
        ("/seqs", Seqs()),
        (
            "/invoke @Shop_Bot shop.item item=tea qty=2",
            Invoke("shop_bot", "shop.item", (("item", "tea"), ("qty", "2"))),
        ),
        ("/invoke @shop_bot browse", Invoke("shop_bot", "browse")),
        ("/press 3", Press(3)),
        ("/payorder 1", PayOrder(1)),
        ("/forward 5 2", Forward(5, index=2)),
        ("/forward 5 @bob", Forward(5, handle="bob")),
        (
            '/share "Nice place" https://example.org/x come see',
            ShareLink("Nice place", "https://example.org/x", "come see"),
        ),
        ('/share "Just a title"', ShareLink("Just a title")),
        (
            "/share @shop_bot shop.item item=cake",
            ShareCard("shop_bot", "shop.item", (("item", "cake"),)),
        ),
        ("/access @shop_bot all", Access("shop_bot", "all")),
    ],
)
def test_parse_bot_commands(line: str, expected: object) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/invoke shop_bot browse", "usage: /invoke @bot"),
        ("/invoke @shop_bot item tea", "parameters are name=value"),
        ("/press one", "usage: /press N"),
        ("/payorder 0", "usage: /payorder N"),
        ("/forward 5", "usage: /forward SEQ"),
        ("/share", "usage: /share"),
        ("/access @shop_bot everything", "usage: /access"),
        ("/bots now", "usage: /bots"),
    ],
)
def test_parse_bot_command_errors(line: str, message: str) -> None:
    with pytest.raises(ParseError, match=re.escape(message)):
        parse_command(line)


def test_format_cards_number_their_buttons_and_orders_once() -> None:
    names, cards = _names(), Cards()
    names.handles[9] = "shop_bot"
    card = kinds.MiniappResult(
        invocation_id="i1",
        title="Green tea",
        text="4.50 USD each",
        buttons=[
            kinds.Button(title="Buy 1", action="order", params={"qty": 1}),
            kinds.Button(title="Back", action="browse"),
        ],
        order=kinds.PaymentRequest(request_id="rq1", amount=450, currency="USD", memo="1 x tea"),
    )
    m = _msg(11, 9, card)
    shown = format_event(m, names, UTC, cards)
    assert shown is not None and shown.text == (
        "[Team] 22:13 shop_bot: Green tea - 4.50 USD each\n"
        "    [1] Buy 1  [2] Back  (/press N)\n"
        "    order 1: 4.50 USD for 1 x tea — /payorder 1"
    )
    assert format_event(m, names, UTC, cards) == shown  # shown again: the same numbers
    assert cards.buttons[2] == (m, 1) and cards.orders[1] == m
    failed = _msg(11, 9, kinds.MiniappResult(invocation_id="i2", error="out of stock"))
    line = format_event(failed, names, UTC, cards)
    assert line is not None and (line.text, line.style) == (
        "[Team] 22:13 shop_bot: ⚠ out of stock",
        "error",
    )
    shared = _msg(11, 2, kinds.Share(title="Tea", bot=9, app="shop", action="item"))
    assert _text(shared, names) == (
        "[Team] 22:13 bob shared a mini-app card: Tea — shop_bot shop.item open"
    )
    line = format_event(shared, names, UTC, cards)
    assert line is not None and line.text.endswith("shop.item [3] open")
    assert cards.buttons[3] == (shared, -1)


def test_format_forwards_bot_events_and_access_changes() -> None:
    names = _names()
    inner = kinds.encode_content(kinds.Text(text="see you at 8"))
    fwd = kinds.Forward(sender=2, ts=TS, kind=inner[0], body=inner[1], conv=10, seq=4)
    assert _text(_msg(11, 1, fwd)) == (
        "[Team] 22:13 alice forwarded from bob (22:13, @bob #4): see you at 8"
    )
    names.seqs = True
    line = format_event(_msg(11, 1, kinds.Text(text="x")), names, UTC)
    assert line is not None and line.text == "[Team] 22:13 #5 alice: x"
    names.seqs = False
    names.handles[9] = "shop_bot"
    access = kinds.SystemEvent(event="bot_access", actor=1, account=9, access="all")
    assert _text(_msg(11, 0, access), names) == "[Team] 22:13 * alice let shop_bot read everything"
    joined = kinds.SystemEvent(event="joined", actor=1, account=9, access="addressed")
    assert _text(_msg(11, 0, joined), names) == "[Team] 22:13 * alice added shop_bot (a bot)"
    assert _text(BotAdded(11, 9, 1, "addressed", 6), names) == (
        "[Team] shop_bot is a bot; it reads what is addressed to it (/bots: its commands)"
    )
    assert _text(InvocationTimeout(11, 9, "i1", "shop", "browse", 30.2), names) == (
        "[Team] shop.browse: no answer from shop_bot after 30 s"
    )
    profile = F.BotProfile(
        re=1,
        account=9,
        commands=[F.BotCommand(name="orders", description="Your orders")],
        manifest=F.Manifest(
            name="shop",
            title="Shop",
            icon="🛒",
            actions=[
                F.MiniAppAction(
                    name="item",
                    title="Show an item",
                    params=[F.ActionParam(name="item", type="str", choices=["tea", "cake"])],
                    price=F.Price(amount=450, currency="USD"),
                )
            ],
        ),
    )
    assert [line.text for line in format_bots([(9, "addressed", profile)], names, 11)] == [
        "[Team] bots:",
        "  shop_bot  reads what is addressed to it",
        "    /orders — Your orders",
        "    mini-app 🛒 Shop:",
        "      /invoke @shop_bot shop.item item=tea|cake — Show an item (4.50 USD)",
    ]
    assert format_bots([], names, 11)[0].text == "no bots in [Team]"


async def test_a_terminal_user_shops_with_a_bot_pays_an_order_shares_and_forwards(
    tmp_path: Path,
) -> None:
    async with run_server(make_settings(tmp_path)) as server:
        url = server.url
        key = tmp_path / "alice.key"
        await _register(url, key, "alice", "Alice")
        async with (
            Bot(
                url, tmp_path / "shop_bot.key", example("shop_bot").router, app_title="Shop"
            ) as bot,
            Client(url) as bob,
        ):
            await bob.register("bob", "Bob")
            alice = Terminal(url, key).start()
            try:
                await alice.wait_for("connected as @alice")
                alice.send('/group "Shop" @bob', "/invite @shop_bot", "/bots")
                await alice.wait_for(r"^\[Shop\] \d\d:\d\d \* alice added shop_bot \(a bot\)$")
                await alice.wait_for(r"^  shop_bot  reads what is addressed to it$")
                await alice.wait_for(r"^      /invoke @shop_bot shop.item item=tea\|cake\|mug — ")

                alice.send("/invoke @shop_bot shop.browse")
                await alice.wait_for(
                    r"shop_bot: 🛒 Shop - Green tea — 4.50 USD\n.*\n.*\n"
                    r"    \[1\] Green tea  \[2\] Cheesecake  \[3\] Shop mug  \(/press N\)$"
                )
                alice.send("/press 1")
                await alice.wait_for(r"\[4\] Buy 1 \(4.50 USD\)  \[5\] Buy 2 \(9.00 USD\)")
                alice.send("/press 4")
                await alice.wait_for(r"^    order 1: 4.50 USD for 1 x Green tea — /payorder 1$")
                await mint(tmp_path / "chatd.db", await bob.lookup("alice"), 1_000)
                alice.send("/payorder 1")
                await alice.wait_for(
                    r"^pay order 1: 4.50 USD for 1 x Green tea to shop_bot in \[Shop\]"
                    r" \(your balance: 10.00 USD\)\? /yes to confirm, /no to drop it$"
                )
                alice.send("/yes")
                paid = await alice.wait_for(r"^paid order 1: 4.50 USD \(receipt #(\d+)\)$")
                await alice.wait_for(r"shop_bot \(↩ #\d+\): ✅ Paid 4.50 USD for 1 x Green tea")
                alice.send("/payorder! 1")
                await alice.wait_for(
                    rf"^paid order 1: 4.50 USD \(receipt #{paid.group(1)}\) \(already paid"
                )

                alice.send("/share @shop_bot shop.item item=cake", "/seqs", "the tea is good")
                await alice.wait_for(
                    r"alice shared a mini-app card: Show an item — shop_bot shop.item \[7\] open$"
                )
                said = await alice.wait_for(r"^\[Shop\] \d\d:\d\d #(\d+) alice: the tea is good$")
                alice.send("/press 7", f"/forward {said.group(1)} @bob")
                await alice.wait_for(r"^\[Shop\] .*shop_bot: Cheesecake - 6.00 USD each$")
                await alice.wait_for(r"^forwarded #\d+ to \[@bob\]$")
                [fwd] = await Events(bob).take(
                    sent_by(bob_alice := await bob.lookup("alice"), None, kinds.Forward)
                )
                assert fwd.forwarded == kinds.Text(text="the tea is good")
                assert fwd.content.sender == bob_alice
                alice.expected_status = 1  # both fail: a script with a failed command exits 1
                alice.send("/press 99", "/payorder 5")
                await alice.wait_for(r"^no button \[99\] shown yet$")
                await alice.wait_for(r"^no order 5 shown yet$")
            finally:
                assert await alice.close() == alice.expected_status
            assert "Traceback" not in alice.text
            assert bot.me.handle == "shop_bot"
