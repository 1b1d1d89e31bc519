"""``chat``: a terminal client for chatd.

    chat [--server URL] [--key FILE] register HANDLE "Display Name"   # once: create the account
    chat [--server URL] [--key FILE]                                  # then: chat interactively

The server defaults to $CHAT_SERVER or ws://127.0.0.1:8765/ws; several nodes of one service can
be given (``--server`` repeated, or commas), and after a drop ``chat`` goes on with the next one,
as the SDK does. The key file defaults to $CHAT_KEY or
~/.config/chatd/default.key (mode 0600: it holds the device's private key). Type /help inside.
With a TTY, incoming events print above the input line; with a pipe, commands are read line by
line and events are printed as they come, so the client can be scripted: a script runs every
line, and its exit status is 1 when any command failed (as ``sqlite3`` without ``-bail``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import sqlite3
import sys
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TextIO

from chatproto import WS_PATH, kinds, money
from chatproto import frames as F
from chatproto.errors import ChatProtoError, ErrorCode

from chatclient.client import Client
from chatclient.errors import (
    AuthError,
    ChatClientError,
    ClientClosed,
    ConnectionLost,
    InvocationTimeoutError,
    NotFound,
    RequestError,
)
from chatclient.events import (
    Connected,
    Disconnected,
    Event,
    Message,
    Receipt,
    Typing,
    Undecryptable,
)
from chatclient.keystore import KeyStore, KeyStoreInUse, KeyStoreLocked
from chatclient.tui import (
    HELP,
    Access,
    Admit,
    Answer,
    Approve,
    AskPayment,
    Balance,
    BanComments,
    Block,
    BotCommand,
    Bots,
    CancelRequest,
    Cards,
    ChannelPriceCmd,
    ClaimPacket,
    Command,
    CommentBanList,
    CommentMoment,
    CommentPost,
    Console,
    ContactList,
    Convs,
    Create,
    Decline,
    DeleteMessage,
    DeleteMoment,
    Dm,
    Drop,
    EditMessage,
    EditPost,
    Follow,
    Forward,
    Handover,
    Help,
    History,
    Invite,
    Invoke,
    JoinByLink,
    JoinRequestList,
    Kick,
    Leave,
    LikeMoment,
    Line,
    LinkList,
    MakeLink,
    Me,
    Names,
    NewBot,
    NewPublic,
    No,
    Open,
    PaidPost,
    ParseError,
    Pay,
    PayOrder,
    PayRequest,
    PipeConsole,
    PostMoment,
    Press,
    Privacy,
    Publish,
    Quit,
    React,
    ReactToPost,
    Reads,
    RedPacket,
    Rename,
    Reply,
    Requests,
    Role,
    Safety,
    SaveAttachment,
    Say,
    Search,
    SendFile,
    Seqs,
    ShareCard,
    ShareLink,
    ShowComments,
    ShowMomentComments,
    ShowMoments,
    ShowPosts,
    ShowSubscriptions,
    ShowTimeline,
    SlowMode,
    SubscribeCmd,
    TipPost,
    Unlink,
    UnsubscribeCmd,
    Verify,
    Wallet,
    Who,
    Yes,
    format_balances,
    format_bots,
    format_comment,
    format_convs,
    format_event,
    format_message,
    format_moment,
    format_moment_note,
    format_period,
    format_post,
    format_request,
    format_requests,
    format_safety_number,
    format_subscription,
    format_wallet,
    format_who,
    open_console,
    parse_command,
    parse_handle,
    unread,
)

DEFAULT_SERVER = "ws://127.0.0.1:8765/ws"
DEFAULT_KEY = "~/.config/chatd/default.key"
MAX_TEXT = 16_000
TYPING_EVERY = 3.0
INVOKE_TIMEOUT = 30.0
"""Seconds a mini-app invocation waits for the bot's card before it is shown as failed."""
_TRUE = frozenset({"true", "yes", "y", "on", "1"})
BEFORE_JOINED = "sent before you joined"
"""How the SDK's ``Undecryptable.reason`` starts for a message from before this account joined."""
REQUESTS_SHOWN = 20
"""Requests and invitations ``/requests`` shows (the first ones; answering some shows more)."""
PRIVACY_WHAT = {
    "add_me": "who may add you to conversations",
    "presence": "who may see you online",
    "last_seen": "who may see when you were last online",
    "find_me": "who may find you by your handle",
}
AUTHORS = 4096
"""(conv, seq) -> sender remembered, to say whose invocation a bot's card answers."""


def _local_file(path: str) -> Path:
    p = Path(os.path.expanduser(path))
    if not p.is_file():
        raise UsageError(f"no file {path!r}")
    return p


def _save_target(path: str | None, sent_name: str, seq: int) -> Path:
    """Where ``/save`` writes: never a path from the sender (only the last part of its name,
    in this directory), never over an existing file."""
    name = Path(sent_name).name.lstrip(".") or f"attachment-{seq}"
    dest = Path(os.path.expanduser(path)) if path else Path(name)
    if dest.is_dir():
        dest = dest / name
    if dest.exists():
        raise UsageError(f"{dest} exists: /save {seq} PATH")
    return dest


def _new_key_file(path: str, command: str) -> Path:
    """Where a new key file goes: never over an existing file."""
    dest = Path(os.path.expanduser(path))
    if dest.exists():
        raise UsageError(f"{dest} exists: {command} OTHER_FILE.key")
    return dest


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)


def _clock(ms: int) -> str:
    """A time to come as this terminal's local ``HH:MM``, with the date when not today."""
    at = time.localtime(ms / 1000)
    if time.strftime("%Y-%m-%d", at) == time.strftime("%Y-%m-%d"):
        return time.strftime("%H:%M", at)
    return time.strftime("%Y-%m-%d %H:%M", at)


class UsageError(Exception):
    pass


class CannotConnect(Exception):
    pass


# --------------------------------------------------------------------------- session


class Session:
    """Runs commands against a connected ``Client`` and shows its events on a console."""

    def __init__(self, client: Client, console: Console, *, assume_yes: bool = False) -> None:
        self.client = client
        self.console = console
        self.assume_yes = assume_yes
        """``chat --yes``: payments go without the confirmation step (scripts)."""
        self._pending: tuple[str, Callable[[], Awaitable[None]]] | None = None
        """The payment waiting for ``/yes``: what it does, and doing it."""
        self.failures = 0
        """Commands that failed (each said in one error line); a script then exits 1."""
        self._last_own: dict[int, int] = {}
        self._last_other: dict[int, int] = {}
        self._last_any: dict[int, int] = {}
        self._authors: OrderedDict[tuple[int, int], int] = OrderedDict()
        self._reads: dict[int, dict[int, int]] = {}
        """conv -> account -> how far it has read (from receipt events seen)."""
        self._requests: dict[str, kinds.PaymentReceipt] = {}
        self._closed_requests: dict[str, str] = {}
        self._before_join: dict[int, int] = {}
        """conv -> messages from before this account joined, not shown yet (said once)."""
        ks = client.keystore
        self.names = Names(me=ks.account, my_handle=ks.handle)
        self.current: int | None = None
        self.offline = False
        self._info_seq: dict[int, int] = {}
        self._history_before: dict[int, int] = {}
        self._read_want: dict[int, int] = {}
        self._read_sent: dict[int, int] = {}
        self._read_tasks: dict[int, asyncio.Task[None]] = {}
        self._sends: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._timeline_next = ""
        """The cursor of ``/timeline more``."""
        self._typing_sent = 0.0
        self._typing_seen: dict[tuple[int, int], float] = {}
        self._packets: dict[int, str] = {}
        """The latest red packet seen in each conversation (what a bare /claim takes)."""
        self._announced: set[int] = set()
        """Conversations whose request or invitation was shown (live or at connect)."""
        self._waiting: dict[int, F.RequestInfo] = {}
        """Direct requests shown and not answered here yet, by conversation."""
        self._request_list: list[F.RequestInfo] = []
        """The requests and invitations ``/requests`` showed last, in its numbering."""
        self.cards = Cards()
        """Numbered buttons and orders of the bot cards shown (``/press N``, ``/payorder N``)."""
        self._search: tuple[str, str] = ("", "")
        """The last ``/search`` and where its next page starts ("": no more)."""
        self._comment_authors: dict[tuple[int, int], tuple[int, str]] = {}
        """(channel, comment) -> (account, handle) of the comments ``/comments`` showed: whom
        ``/bancomments @channel #N`` names."""

    def show(self, text: str, style: str = "") -> None:
        self.console.show(Line(text, style))

    def fail(self, text: str) -> None:
        """Say why a command did not happen, and count it for the exit status."""
        self.failures += 1
        self.show(text, "error")

    # ---------------------------------------------------------------- main loop

    async def run(self) -> int:
        """Until /quit, end of input, or the client stops for good; returns the exit status."""
        self.console.on_edit = self._on_edit
        self.show("type /help for commands, /convs to list conversations", "dim")
        for m in self.client.pending():  # left by an earlier run: sent now
            self.show(f"[{self.names.label(m.conv)}] pending: {m.text}", "dim")
        # The terminal shows the feed: the posts of followed channels arrive live (and again
        # after each reconnect: the SDK says it again).
        self._spawn(self.client.timeline.watch_feed())
        events = asyncio.create_task(self._pump_events())
        commands = asyncio.create_task(self._read_commands())
        status = 0
        try:
            done, _ = await asyncio.wait({events, commands}, return_when=asyncio.FIRST_COMPLETED)
            if events in done:
                status = 1  # the client stopped for good (its last event says why)
                if events.exception() is not None:
                    self.show(f"error: {events.exception()}", "error")
        finally:
            commands.cancel()
            await asyncio.gather(commands, return_exceptions=True)
            if self._pending is not None:  # a script that did not say /yes: say it did not go
                self.fail(f"not confirmed, so not done: {self._pending[0]}")
            await self._drain_sends()
            # Closing ends the event stream after what is queued (e.g. our last messages' echo).
            await self.client.aclose()
            with contextlib.suppress(TimeoutError, ChatClientError):
                await asyncio.wait_for(events, self.client.request_timeout)
            for task in [*self._background, *self._read_tasks.values()]:
                task.cancel()
            await asyncio.gather(
                *self._background, *self._read_tasks.values(), return_exceptions=True
            )
        if status == 0 and self.failures and isinstance(self.console, PipeConsole):
            status = 1  # a script learns that something it asked for did not happen
        return status

    async def _read_commands(self) -> None:
        async for line in self.console.lines():
            try:
                cmd = parse_command(line)
            except ParseError as exc:
                self.fail(str(exc))
                continue
            if cmd is None:
                continue
            if isinstance(cmd, Quit):
                return
            await self.execute(cmd)

    async def _drain_sends(self) -> None:
        if not self._sends:
            return
        _, waiting = await asyncio.wait(self._sends, timeout=self.client.request_timeout)
        if waiting:
            # They stay in the key store's outbox: the next start sends them.
            self.fail(f"{len(waiting)} message(s) pending: sent when chat next connects")
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)

    async def _pump_events(self) -> None:
        async for ev in self.client.events():
            await self._on_event(ev)

    # ---------------------------------------------------------------- events

    async def _on_event(self, ev: Event) -> None:
        match ev:
            case Message():
                await self._on_message(ev)
                return
            case Disconnected():
                if ev.will_retry and self.offline:
                    return  # one line per outage, not one per failed attempt
                self.offline = True
            case Connected():
                self.offline = False
                shown = format_event(ev, self.names)
                if shown is not None:
                    self.console.show(shown)
                self._spawn(self._announce_waiting())  # never holds the events up
                return
            case F.InvitationAnswered():
                self._spawn(self._invitation_answered(ev))
                return
            case F.RequestEvent():
                if ev.request.conv in self._announced:
                    return
                self._announced.add(ev.request.conv)
                if ev.request.kind == "direct":
                    self._waiting[ev.request.conv] = ev.request
            case Undecryptable() if ev.reason.startswith(BEFORE_JOINED):
                self._before_join[ev.conv] = self._before_join.get(ev.conv, 0) + 1
                return  # said once, calmly, when the conversation goes on (_say_before_join)
            case Receipt():
                self._on_receipt(ev)
                return
            case Typing():
                key = (ev.conv, ev.account)
                now = time.monotonic()
                if not ev.on:
                    self._typing_seen.pop(key, None)
                    return
                if now - self._typing_seen.get(key, -1e9) < 10:
                    return
                self._typing_seen[key] = now
                if ev.conv not in self.names.convs:
                    await self._refresh(ev.conv)
        if isinstance(ev, Undecryptable):
            self._say_before_join(ev.conv)
        line = format_event(ev, self.names, cards=self.cards)
        if line is not None:
            self.console.show(line)

    async def _announce_waiting(self) -> None:
        """At connect: the requests and invitations that came while this client was away (one
        line each, or one line for many)."""
        try:
            async with asyncio.timeout(self.client.request_timeout):
                got, more = await self._fetch_requests(REQUESTS_SHOWN)
        except (ChatClientError, TimeoutError):
            return
        new = [r for r in got if r.conv not in self._announced]
        self._announced.update(r.conv for r in got)
        self._waiting.update((r.conv, r) for r in new if r.kind == "direct")
        if len(new) > 3 or more:
            self.show(f"{len(got)}{'+' if more else ''} requests and invitations wait: /requests")
        else:
            for r in new:
                self.console.show(format_request(r))

    def _say_before_join(self, conv: int) -> None:
        """One line for the messages of ``conv`` sent before this account joined (they cannot
        be read here: their keys were never shared with it), instead of one error each."""
        count = self._before_join.pop(conv, 0)
        if count:
            were = "message was" if count == 1 else "messages were"
            self.show(
                f"[{self.names.label(conv)}] {count} earlier {were} sent before you joined"
                " (end-to-end encrypted for the members at the time)",
                "dim",
            )

    def _on_receipt(self, r: Receipt) -> None:
        """Remember how far each member read; say so when it covers your latest message here."""
        if r.type != "read" or r.account == self.names.me:
            return
        reads = self._reads.setdefault(r.conv, {})
        before = reads.get(r.account, 0)
        if r.seq <= before:
            return
        reads[r.account] = r.seq
        mine = self._last_own.get(r.conv, 0)
        if r.conv == self.current and before < mine <= r.seq:
            self.show(
                f"[{self.names.label(r.conv)}] {self.names.handle(r.account)} has read up to"
                f" #{r.seq} (your latest message too)",
                "dim",
            )

    def _remember(self, m: Message) -> None:
        """What /reply, /edit, /delete, /react and /pay REQUEST default to or look up."""
        self._authors[(m.conv, m.seq)] = m.sender
        if len(self._authors) > AUTHORS:
            self._authors.popitem(last=False)
        c = m.content
        if isinstance(c, kinds.PaymentReceipt):
            if c.type == "request":
                self._requests[c.ref] = c
            elif c.type in ("declined", "cancelled", "expired") or (
                c.type == "transfer" and c.request_id
            ):
                self._closed_requests[c.request_id or c.ref] = (
                    "paid" if c.type == "transfer" else c.type
                )
        if isinstance(c, kinds.SystemEvent | kinds.PaymentReceipt | kinds.ReadReceipt) or c is None:
            return
        self._last_any[m.conv] = m.seq
        if m.sender == self.names.me:
            if isinstance(c, kinds.Text):
                self._last_own[m.conv] = m.seq
        elif not isinstance(c, kinds.Reaction | kinds.Edit | kinds.Delete):
            self._last_other[m.conv] = m.seq

    def _not_theirs(self, m: Message) -> Line | None:
        """An edit or deletion of a message its sender did not write is not applied: said so."""
        c = m.content
        if not isinstance(c, kinds.Edit | kinds.Delete):
            return None
        author = self._authors.get((m.conv, c.target))
        if author is None or author == m.sender:
            return None
        verb = "edit" if isinstance(c, kinds.Edit) else "delete"
        return Line(
            f"[{self.names.label(m.conv)}] {self.names.handle(m.sender)} tried to {verb}"
            f" {self.names.handle(author)}'s message #{c.target} (ignored)",
            "error",
        )

    def _card_for_someone_else(self, m: Message) -> Line | None:
        """A bot's card answering another member's invocation, in a group: one line (its buttons
        and order are theirs)."""
        c = m.content
        info = self.names.convs.get(m.conv)
        if not isinstance(c, kinds.MiniappResult) or info is None or info.kind == "direct":
            return None
        invoker = self._authors.get((m.conv, m.reply_to))
        if not m.reply_to or invoker is None or invoker == self.names.me:
            return None
        said = c.error or c.title or (c.text.splitlines() or [""])[0] or "(done)"
        return Line(
            f"[{self.names.label(m.conv)}] {self.names.handle(m.sender)} answered"
            f" {self.names.handle(invoker)}: {said}",
            "dim",
        )

    async def _on_message(self, m: Message) -> None:
        system = m.content if isinstance(m.content, kinds.SystemEvent) else None
        leaving = system is not None and system.event in ("left", "removed")
        stale = self._info_seq.get(m.conv, -1) < m.seq
        needs_members = system is not None or m.sender not in self.names.handles
        if (stale and not leaving and needs_members) or m.conv not in self.names.convs:
            await self._refresh(m.conv)
        self._typing_seen.pop((m.conv, m.sender), None)
        if isinstance(m.content, kinds.PaymentReceipt) and m.content.type == "red_packet":
            self._packets[m.conv] = m.content.ref
        self._say_before_join(m.conv)
        self._remember(m)
        line = (
            self._not_theirs(m)
            or self._card_for_someone_else(m)
            or format_message(m, self.names, cards=self.cards)
        )
        if line is not None:
            self.console.show(line)
        if system is not None and leaving:
            gone = system.actor if system.event == "left" else system.account
            if gone == self.names.me and self.current == m.conv and stale:
                self.current = None
                self.console.set_prompt("> ")
            elif stale:
                await self._refresh(m.conv)
        if m.conv == self.current:
            self._mark_read(m.conv, m.seq)

    async def _refresh(self, conv: int) -> F.ConvInfo | None:
        """Fetch ``conv`` with its members into the name cache (None when no longer a member)."""
        try:
            async with asyncio.timeout(self.client.request_timeout):
                info = await self.client.conversation(conv)
        except (ChatClientError, TimeoutError):
            return None
        self._learn(info)
        return info

    def _learn(self, info: F.ConvInfo) -> None:
        self.names.learn(info)
        if info.members:
            self._info_seq[info.conv] = max(self._info_seq.get(info.conv, 0), info.last_seq)
        self._read_sent[info.conv] = max(self._read_sent.get(info.conv, 0), info.read)
        if info.conv == self.current:
            self.console.set_prompt(f"[{self.names.label(info.conv)}]> ")

    def _mark_read(self, conv: int, seq: int) -> None:
        if seq <= max(self._read_sent.get(conv, 0), self._read_want.get(conv, 0)):
            return
        self._read_want[conv] = seq
        if conv not in self._read_tasks:
            self._read_tasks[conv] = asyncio.create_task(self._read_loop(conv))

    async def _read_loop(self, conv: int) -> None:
        try:
            while (target := self._read_want.get(conv, 0)) > self._read_sent.get(conv, 0):
                await self.client.mark_read(conv, target)
                self._read_sent[conv] = max(self._read_sent.get(conv, 0), target)
        except ChatClientError:
            pass  # best effort: the next message shown retries
        finally:
            self._read_tasks.pop(conv, None)

    def _on_edit(self, buffer: str) -> None:
        """Keystrokes in the current conversation: tell the others we are typing (throttled)."""
        conv = self.current
        now = time.monotonic()
        if conv is None or not buffer or buffer.startswith("/") or not self.client.connected:
            return
        if now - self._typing_sent < TYPING_EVERY:
            return
        self._typing_sent = now
        self._spawn(self.client.typing(conv, True))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        async def quietly() -> None:
            with contextlib.suppress(ChatClientError):
                await coro

        task = asyncio.create_task(quietly())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---------------------------------------------------------------- commands

    async def execute(self, cmd: Command) -> None:
        """Run one command; every failure becomes one line."""
        local = isinstance(cmd, Say | Help | Me | Drop | Seqs | No)
        if not local and not self.client.connected:
            self.fail("not connected (reconnecting); try again in a moment")
            return
        try:
            async with asyncio.timeout(self.client.request_timeout + 2):
                await self._execute(cmd)
        except UsageError as exc:
            self.fail(str(exc))
        except RequestError as exc:
            if exc.code == ErrorCode.CONSENT_REQUIRED:
                self.fail(
                    "not done: someone named is not your contact and must accept an invitation"
                    " first: create the group with the others, then /invite them"
                )
            else:
                self.fail(f"error: {exc}")
        except ConnectionLost:
            self.fail("connection lost before the server answered; try again")
        except TimeoutError:
            self.fail("the server did not answer in time")
        except ChatClientError as exc:
            self.fail(f"error: {exc}")
        except ChatProtoError as exc:  # a refused key operation (/approve, /handover, /safety)
            self.fail(f"error: {exc.message}")

    def _need_current(self) -> int:
        if self.current is None:
            raise UsageError("no open conversation: /convs, /open N or /dm @handle first")
        return self.current

    def _progress(self, label: str) -> Callable[[int, int], None]:
        """A progress line every 10 % of a transfer over 1 MB."""
        shown = [0]

        def progress(done: int, total: int) -> None:
            tenth = done * 10 // max(total, 1)
            if total > 1_000_000 and tenth > shown[0]:
                shown[0] = tenth
                self.show(f"{label}: {'#' * tenth}{'.' * (10 - tenth)} {tenth * 10} %", "dim")

        return progress

    async def _media(self, cmd: SendFile | SaveAttachment) -> None:
        """``/file``, ``/image``, ``/save`` (chatclient/media.py does the work)."""
        c = self.client
        conv = self._need_current()
        if isinstance(cmd, SendFile):
            path = _local_file(cmd.path)
            send = c.send_image if cmd.image else c.send_file
            await send(conv, path, progress=self._progress(f"sending {path.name}"))
            return
        m = await c.message(conv, cmd.seq)
        att = m.content if isinstance(m, Message) else None
        if not isinstance(att, kinds.Attachment):
            raise UsageError(f"#{cmd.seq} has no file: /save N takes the number of a file message")
        dest = _save_target(cmd.path, att.name, cmd.seq)
        await c.download(att, dest, progress=self._progress(f"saving {dest.name}"))
        self.show(f"saved #{cmd.seq} to {dest}", "system")

    async def _channel(self, handle: str) -> int:
        """The id of public channel ``@handle`` (remembered for display)."""
        info = await self.client.channels.find(handle)
        self.names.channels[info.channel] = info.handle
        return info.channel

    async def _channels(
        self,
        cmd: NewPublic
        | Publish
        | EditPost
        | Follow
        | Search
        | ShowPosts
        | ShowTimeline
        | CommentPost
        | ShowComments
        | ReactToPost,
    ) -> None:
        """Public channels (SPEC.md 20): the directory, follows, signed posts."""
        ch = self.client.channels
        match cmd:
            case NewPublic(handle, title, about):
                info = await ch.create(handle, title, about)
                self.names.channels[info.channel] = info.handle
                self.show(
                    f"public channel @{info.handle} created: /publish @{info.handle} text;"
                    f" share it as {ch.link(info)}",
                    "system",
                )
            case Publish(handle, text):
                seq = await ch.publish_text(await self._channel(handle), text)
                self.show(f"[@{handle}] #{seq} published", "system")
            case EditPost(handle, seq, text):
                channel = await self._channel(handle)
                if text is None:
                    await ch.delete(channel, seq)
                    self.show(f"[@{handle}] #{seq} deleted", "system")
                else:
                    ver = await ch.edit_text(channel, seq, text)
                    self.show(f"[@{handle}] #{seq} edited (version {ver})", "system")
            case Follow(handle, follow):
                channel = await self._channel(handle)
                info = await (ch.follow(channel) if follow else ch.unfollow(channel))
                what = "following" if info.following else "no longer following"
                self.show(
                    f"{what} @{handle} ({info.followers} followers; link {ch.link(info)})",
                    "system",
                )
            case Search(query):
                after = ""
                if query == "more":
                    query, after = self._search
                    if not after:
                        self.show("no more channels", "system")
                        return
                items, nxt = await ch.search(query, after=after)
                self._search = (query, nxt)
                for info in items:
                    self.names.channels[info.channel] = info.handle
                    mark = " (following)" if info.following else ""
                    about = f": {info.about}" if info.about else ""
                    self.show(
                        f"  @{info.handle}  {info.title}{about}  {info.followers} followers{mark}"
                    )
                if not items:
                    self.show(f"no public channel matches {query!r}", "system")
                elif nxt:
                    self.show("/search more: the next page", "dim")
            case ShowPosts(handle, count):
                channel = await self._channel(handle)
                page = await ch.posts(channel, limit=count)
                for p in reversed(page.posts):
                    self.console.show(format_post(p, self.names))
                for r in page.rejected:
                    self.show(f"[@{handle}] #{r.post.seq} refused: {r.reason}", "error")
                if not page.posts and not page.rejected:
                    self.show(f"@{handle} has no posts yet", "system")
                with contextlib.suppress(RequestError):  # shown: each counts us once (20.9)
                    if page.posts:
                        await ch.view(channel, [p.seq for p in page.posts])
            case ShowTimeline(more):
                await self._show_timeline(more)
            case CommentPost(handle, seq, text, reply_to):
                channel = await self._channel(handle)
                await self.client.timeline.watch_post(channel, seq)  # the answers show here
                said = await ch.comment(channel, seq, text, reply_to=reply_to)
                self.show(f"[@{handle}] #{seq} comment #{said.comment} posted", "system")
            case ShowComments(handle, seq):
                channel = await self._channel(handle)
                await self.client.timeline.watch_post(channel, seq)
                at = 0
                while True:
                    thread = await ch.comments(channel, seq, after=at)
                    for m in thread.items:
                        self._comment_authors[(thread.channel, m.comment)] = (m.author, m.handle)
                        self.show(f"  {format_comment(m)}")
                    at = thread.next
                    if not at:
                        break
                self.show(f"[@{handle}] #{seq}: {thread.total} comments", "system")
            case ReactToPost(handle, seq, emoji, remove):
                counts = await ch.react(await self._channel(handle), seq, emoji, remove=remove)
                shown = "  ".join(f"{c.emoji} {c.count}" for c in counts) or "no reactions"
                self.show(f"[@{handle}] #{seq}: {shown}", "system")

    async def _confirm(
        self, summary: str, perform: Callable[[], Awaitable[None]], confirmed: bool
    ) -> None:
        """Money leaves only once confirmed (``/yes``, or ``!``/``--yes`` given up front)."""
        if confirmed or self.assume_yes:
            await perform()
            return
        self._pending = (summary, perform)
        self.show(f"{summary}? /yes to confirm, /no to drop it", "system")

    async def _creators(
        self,
        cmd: TipPost
        | ChannelPriceCmd
        | SubscribeCmd
        | UnsubscribeCmd
        | ShowSubscriptions
        | PaidPost,
    ) -> None:
        """Creators paid through the ledger (SPEC.md 15.12-15.14)."""
        cr = self.client.creators
        match cmd:
            case TipPost(handle, seq, tipped, currency, confirmed):
                channel = await self._channel(handle)

                async def tip() -> None:
                    r = await cr.tip(channel, seq, tipped, currency)
                    self.show(
                        f"[@{handle}] #{seq} tipped {money.format_money(r.amount, r.currency)}"
                        f" (receipt {r.ref} verified)",
                        "system",
                    )

                await self._confirm(f"tip {tipped} {currency} for @{handle} #{seq}", tip, confirmed)
            case ChannelPriceCmd(handle, amount, currency, days):
                channel = await self._channel(handle)
                got = await (
                    cr.price(channel)
                    if amount is None
                    else cr.set_price(channel, amount, currency, days=days)
                )
                if not got.amount:
                    self.show(f"@{handle} has no paid subscription", "system")
                else:
                    self.show(
                        f"@{handle}: {money.format_money(got.amount, got.currency)}"
                        f" every {format_period(got.period)}",
                        "system",
                    )
            case SubscribeCmd(handle, None):
                got = await cr.price(await self._channel(handle))
                if not got.amount:
                    self.show(f"@{handle} has no paid subscription", "system")
                else:
                    price = money.format_amount(got.amount, got.currency)
                    self.show(
                        f"@{handle}: {price} {got.currency} per period; to agree:"
                        f" /subscribe @{handle} PERIODS {price} {got.currency}",
                        "system",
                    )
            case SubscribeCmd(handle, periods, amount, currency, confirmed):
                assert periods is not None
                channel = await self._channel(handle)

                async def subscribe() -> None:
                    sub, _ = await cr.subscribe(channel, periods, amount=amount, currency=currency)
                    self.console.show(format_subscription(sub, self.names))

                what = f"subscribe to @{handle}: {amount} {currency} now and each period, {periods} at most"
                await self._confirm(what, subscribe, confirmed)
            case UnsubscribeCmd(handle):
                channel = await self._channel(handle)
                live = [  # every page: the one to cancel may be past the first 50
                    s
                    async for s in cr.every_subscription()
                    if s.channel == channel and s.state in ("active", "past_due")
                ]
                if not live:
                    raise UsageError(f"no running subscription to @{handle}")
                self.console.show(
                    format_subscription(await cr.unsubscribe(live[0].mandate_id), self.names)
                )
            case ShowSubscriptions(handle):
                channel = await self._channel(handle) if handle else 0
                shown = 0
                async for sub in cr.every_subscription():
                    if not channel or sub.channel == channel:
                        self.console.show(format_subscription(sub, self.names))
                        shown += 1
                if not shown:
                    self.show("no subscriptions", "system")
            case PaidPost(handle, text):
                seq = await self.client.channels.publish_text(
                    await self._channel(handle), text, paid=True
                )
                self.show(f"[@{handle}] #{seq} published for subscribers", "system")

    async def _moderate(self, cmd: BanComments | CommentBanList | SlowMode) -> None:
        """``/bancomments``, ``/unbancomments``, ``/commentbans``, ``/slowmode`` (SPEC.md
        20.9): an admin's moderation of a public channel's comments."""
        ch = self.client.channels
        channel = await self._channel(cmd.channel)
        match cmd:
            case SlowMode(handle, seconds):
                info = await ch.set_slow_mode(channel, seconds)
                state = f"one comment every {info.slow_mode} s" if info.slow_mode else "off"
                self.show(f"@{handle}: slow mode {state}", "system")
            case CommentBanList(handle):
                bans = await ch.comment_bans(channel)
                for b in bans:
                    end = "until lifted" if not b.until else f"until {_clock(b.until)}"
                    self.show(f"  @{b.handle} {end}")
                if not bans:
                    self.show(f"nobody is banned from commenting in @{handle}", "system")
            case BanComments(handle, who, seconds, delete, lift):
                if who.startswith("#"):
                    found = self._comment_authors.get((channel, int(who[1:])))
                    if found is None:
                        raise UsageError(f"no comment {who} shown: /comments @{handle} SEQ first")
                    account, name = found
                else:
                    name = who.removeprefix("@")
                    account = await self.client.lookup(name)
                if lift:
                    await ch.unban_commenter(channel, account)
                    self.show(f"@{name} may comment in @{handle} again", "system")
                    return
                until = int(time.time() * 1000) + seconds * 1000 if seconds else 0
                await ch.ban_commenter(channel, account, until=until, delete_comments=delete)
                end = f"until {_clock(until)}" if until else "until you lift it"
                gone = ", their comments deleted" if delete else ""
                self.show(f"@{name} may not comment in @{handle} {end}{gone}", "system")

    async def _handle_id(self, handle: str) -> int:
        account = await self.client.lookup(handle)
        self.names.handles[account] = handle
        return account

    async def _moments(
        self,
        cmd: PostMoment
        | ShowMoments
        | CommentMoment
        | ShowMomentComments
        | LikeMoment
        | DeleteMoment,
    ) -> None:
        """Moments (SPEC.md 22): posts to contacts, end-to-end encrypted to whom may read them."""
        mo = self.client.moments
        match cmd:
            case PostMoment(text, audience):
                chosen = [await self._handle_id(h) for h in audience] if audience else None
                posted = await mo.post(text, chosen)
                whom = " ".join(f"@{h}" for h in audience) or "all your contacts"
                self.show(f"[moment {posted.moment}] posted to {whom}", "system")
            case ShowMoments(author, count):
                who = await self._handle_id(author) if author else 0
                page = await mo.feed(author=who, limit=count)
                for m in reversed(page.items):
                    self.console.show(format_moment(m, self.names))
                if not page.items:
                    self.show("no moments", "system")
            case CommentMoment(moment, text, reply_to):
                note = await mo.comment(moment, text, reply_to)
                self.show(f"[moment {moment}] comment #{note.comment} posted", "system")
            case ShowMomentComments(moment):
                shown = 0
                async for n in mo.comments(moment):
                    self.console.show(format_moment_note(n, self.names))
                    shown += 1
                self.show(f"[moment {moment}]: {shown} comments and likes you see", "system")
            case LikeMoment(moment, like):
                if like:
                    await mo.like(moment)
                else:
                    await mo.unlike(moment)
                self.show(f"[moment {moment}] {'liked' if like else 'like taken back'}", "system")
            case DeleteMoment(moment, comment):
                if comment:
                    await mo.delete_comment(moment, comment)
                    self.show(f"[moment {moment}] comment #{comment} deleted", "system")
                else:
                    await mo.delete(moment)
                    self.show(f"[moment {moment}] deleted", "system")

    async def _show_timeline(self, more: bool) -> None:
        """``/timeline``: a page of the timeline (followed channels' posts, contacts' Moments),
        oldest first on screen like the rest."""
        if more and not self._timeline_next:
            self.show("no older posts in your timeline", "system")
            return
        page = await self.client.timeline.page(before=self._timeline_next if more else "", limit=10)
        self._timeline_next = page.next
        for entry in reversed(page.entries):
            if entry.post is not None:
                self.console.show(format_post(entry.post, self.names))
            elif entry.moment is not None:
                m = entry.moment
                text = m.text if m.readable and m.text is not None else "(not readable)"
                self.show(f"[moment #{m.moment}] {self.names.handle(m.author)}: {text}")
            elif entry.locked is not None:  # a paid post: "for subscribers"
                line = format_event(entry.locked, self.names)
                if line is not None:
                    self.console.show(line)
        for r in page.rejected:
            self.show(
                f"post #{r.post.seq} of channel {r.post.channel} refused: {r.reason}", "error"
            )
        if not page.entries and not page.rejected:
            self.show("your timeline is empty: /follow @channel", "system")
        elif page.next:
            self.show("/timeline more: older posts", "dim")

    async def _execute(self, cmd: Command) -> None:
        c = self.client
        match cmd:
            case Say(text):
                self._say(text)
            case SendFile() | SaveAttachment():
                await self._media(cmd)
            case Help():
                for text in HELP.splitlines():
                    self.show(text)
            case Me():
                ks = c.keystore
                self.show(
                    f"@{ks.handle} (account {ks.account}, device {ks.device}) on {self.client.url}"
                )
                self.show(f"device key {ks.key.public_key.hex()}", "dim")
            case (
                NewPublic()
                | Publish()
                | EditPost()
                | Follow()
                | Search()
                | ShowPosts()
                | ShowTimeline()
                | CommentPost()
                | ShowComments()
                | ReactToPost()
            ):
                await self._channels(cmd)
            case (
                TipPost()
                | ChannelPriceCmd()
                | SubscribeCmd()
                | UnsubscribeCmd()
                | ShowSubscriptions()
                | PaidPost()
            ):
                await self._creators(cmd)
            case BanComments() | CommentBanList() | SlowMode():
                await self._moderate(cmd)
            case (
                PostMoment()
                | ShowMoments()
                | CommentMoment()
                | ShowMomentComments()
                | LikeMoment()
                | DeleteMoment()
            ):
                await self._moments(cmd)
            case Drop():
                self.show("dropping the connection", "dim")
                await c.drop_connection()
            case Convs():
                infos = await self._conversations()
                for line in format_convs(infos, self.names, self.current):
                    self.console.show(line)
            case Open(index=index, handle=handle):
                if handle is not None:
                    await self._open(await c.conversation(await c.direct(await c.lookup(handle))))
                else:
                    infos = await self._conversations()
                    assert index is not None
                    if index > len(infos):
                        raise UsageError(f"no conversation {index}: /convs lists {len(infos)}")
                    await self._open(await c.conversation(infos[index - 1].conv))
            case Dm(handle):
                info = await c.conversation(await c.direct(await c.lookup(handle)))
                await self._open(info)
                asked = self._waiting.get(info.conv)
                if asked is not None:
                    self.show(
                        f"@{asked.handle}'s message request is waiting: /accept @{asked.handle}"
                        f" before you reply (or /decline @{asked.handle}, /block @{asked.handle})",
                        "system",
                    )
                to_bot = any(m.access for m in info.members)  # a bot is placed, never asked
                if (
                    info.last_seq <= 1 and not to_bot and asked is None
                ):  # only 'created' there: nobody wrote yet
                    self.show(
                        f"[@{handle}] unless you are @{handle}'s contact, your messages reach"
                        f" @{handle} as a message request, pending until @{handle} accepts; you"
                        " see nothing of them (read, typing, online) before that",
                        "dim",
                    )
            case Create(kind, title, handles):
                await self._create(kind, title, handles)
            case Invite(handle):
                await self._invite(self._need_current(), handle)
            case Kick(handle):
                await c.remove(self._need_current(), await c.lookup(handle))
            case Role(handle, role):
                await c.set_role(self._need_current(), await c.lookup(handle), role)
            case Leave():
                conv = self._need_current()
                label = self.names.label(conv)
                await c.leave(conv)
                self.current = None
                self.console.set_prompt("> ")
                self.show(f"you left [{label}]", "system")
            case Rename(title):
                await c.rename(self._need_current(), title)
            case History(count):
                await self._history(self._need_current(), count)
            case Safety(handle):
                account = await c.lookup(handle)
                await c.e2e.devices(account)  # pins the key if this is the first contact
                self.show(f"safety number with @{handle} (compare it with theirs):", "system")
                self.show(format_safety_number(c.safety_number(account)))
            case Verify(handle, verified):
                account = await c.lookup(handle)
                await c.e2e.devices(account)
                if verified:
                    c.verify(account)
                    self.show(f"@{handle} verified", "system")
                else:
                    c.unverify(account)
                    self.show(f"@{handle} no longer verified", "system")
            case Approve(device, key):
                shown = await c.e2e.device_login_key(device)
                if key and not shown.hex().startswith(key):
                    raise UsageError(f"device {device} has another key: not approved")
                if not key and not c.e2e.approved(shown):
                    self.show(
                        f"device {device} has key {shown.hex()}: if /me on that device shows"
                        f" the same, /approve {device} {shown.hex()[:16]}",
                        "system",
                    )
                    return
                c.e2e.approve(shown)
                version = await c.publish_devices([device])
                self.show(
                    f"device {device} added to your device list (version {version})", "system"
                )
            case Requests():
                await self._show_requests()
            case MakeLink() | LinkList() | Unlink() | JoinByLink() | JoinRequestList() | Admit():
                await self._links(cmd)
            case Answer(answer, handle, index):
                await self._answer(answer, handle, index)
            case Block(handle, blocked):
                account = await c.lookup(handle)
                self.names.handles.setdefault(account, handle)
                if blocked:
                    await c.contacts.block(account)
                    self.show(
                        f"@{handle} blocked: no messages, invitations or presence from them"
                        f" (/unblock @{handle} undoes it)",
                        "system",
                    )
                else:
                    await c.contacts.unblock(account)
                    self.show(f"@{handle} unblocked", "system")
            case ContactList():
                await self._contacts()
            case Privacy(setting, value):
                if setting:
                    got = await c.contacts.set_privacy(**{setting: value})  # type: ignore[arg-type]
                else:
                    got = await c.contacts.privacy()
                for key, what in PRIVACY_WHAT.items():
                    self.show(f"  {key:<9}  {getattr(got, key):<8}  {what}")
                if not setting:
                    self.show(
                        "/privacy add_me|presence|last_seen|find_me everyone|contacts|nobody"
                        " changes one",
                        "dim",
                    )
            case NewBot(handle, name, path):
                await self._new_bot(handle, name, path)
            case Handover(device):
                await c.transfer_master_key(device)
                self.show(f"your account's master key was sent to device {device}", "system")
            case Pay() | PayRequest() | PayOrder() | RedPacket():
                summary, perform = await self._prepare_payment(cmd)
                await self._confirm(summary, perform, cmd.confirmed)
            case Yes():
                if self._pending is None:
                    raise UsageError("no payment is waiting for confirmation")
                _, perform = self._pending
                self._pending = None
                await perform()
            case No():
                if self._pending is None:
                    raise UsageError("no payment is waiting for confirmation")
                self.show(f"dropped: {self._pending[0]}", "dim")
                self._pending = None
            case Decline(rid) | CancelRequest(rid):
                if isinstance(cmd, Decline):
                    r = await c.payments.decline(rid)
                    self._closed_requests[rid] = "declined"
                    self.show(f"declined the request {rid} for {r.amount}", "system")
                else:
                    r = await c.payments.cancel(rid)
                    self._closed_requests[rid] = "cancelled"
                    self.show(f"cancelled your request {rid} for {r.amount}", "system")
            case Reply(target, text):
                conv = self._need_current()
                seq = target or self._last_other.get(conv)
                if seq is None:
                    raise UsageError("nothing to reply to here yet: /reply SEQ text (/seqs)")
                self._say(text, reply_to=seq)
            case EditMessage(target, text):
                conv = self._need_current()
                seq = await self._own_text(conv, target, "edit")
                await c.send(conv, kinds.Edit(target=seq, text=text))
            case DeleteMessage(target):
                conv = self._need_current()
                # Your own message (default: your latest); in a group or channel, as its owner
                # or an admin, a member's too: the server erases it for everyone and says so
                # (SPEC.md 18.9), or refuses (FORBIDDEN).
                here = self.names.convs.get(conv)
                if target is None or here is None or here.kind == "direct":
                    seq = await self._own_text(conv, target, "delete")
                else:
                    seq = target
                await c.delete_for_everyone(conv, seq)
            case React(target, emoji, remove):
                conv = self._need_current()
                seq = target or self._last_other.get(conv) or self._last_any.get(conv)
                if seq is None:
                    raise UsageError("nothing to react to here yet: /react SEQ EMOJI (/seqs)")
                await c.send(conv, kinds.Reaction(target=seq, emoji=emoji, remove=remove))
            case Reads():
                conv = self._need_current()
                for line in await self._read_positions(conv):
                    self.console.show(line)
            case BotCommand(text):
                await self._bot_command(self._need_current(), text)
            case AskPayment(handle, amount, currency, memo):
                payer = await c.lookup(handle)
                where, _ = await self._pay_conv(payer)
                conv = where if where is not None else await c.direct(payer)
                r = await c.request(conv, amount, currency, memo, payer=payer)
                self.show(f"asked @{handle} for {r.amount} (request {r.receipt.ref})", "system")
            case Balance(currency):
                for line in format_balances(await c.balance(currency)):
                    self.console.show(line)
            case Wallet(count):
                entries, more = await c.payment_history(limit=count)
                for e in entries:  # handles, not account numbers
                    if e.counterparty and e.counterparty not in self.names.handles and e.conv:
                        await self._refresh(e.conv)
                for line in format_wallet(entries, self.names):
                    self.console.show(line)
                if more:
                    self.show("(older payments: /wallet with a larger N)", "dim")
            case ClaimPacket(packet):
                pid = packet or self._packets.get(self._need_current(), "")
                if not pid:
                    raise UsageError("no red packet seen here yet: /claim PACKET_ID")
                r = await c.claim(pid)
                again = " (already claimed)" if r.replay else ""
                self.show(f"you got {r.amount} from red packet {pid}{again}", "system")
            case Bots():
                conv = self._need_current()
                await self._refresh(conv)
                listed: list[tuple[int, str, F.BotProfile | None]] = []
                for bot, access in sorted((await c.bots(conv)).items()):
                    try:
                        profile: F.BotProfile | None = await c.bot_profile(bot)
                    except RequestError:
                        profile = None
                    listed.append((bot, access, profile))
                for line in format_bots(listed, self.names, conv):
                    self.console.show(line)
            case Invoke(handle, action, params):
                bot = await c.lookup(handle)
                app, act, typed = await self._action(bot, action, params)
                conv = await self._bot_conv(bot)
                self._spawn_invocation(c.invoke(conv, bot, app, act, typed, timeout=INVOKE_TIMEOUT))
            case Press(number):
                entry = self.cards.buttons.get(number)
                if entry is None:
                    raise UsageError(f"no button [{number}] shown yet")
                card, index = entry
                if index < 0:
                    assert isinstance(card.content, kinds.Share)
                    share = card.content
                    conv = await self._bot_conv(share.bot)
                    invocation = c.open_share(share, conv, timeout=INVOKE_TIMEOUT)
                else:
                    invocation = c.press(card, index, timeout=INVOKE_TIMEOUT)
                self._spawn_invocation(invocation)
            case Forward(seq, index, handle):
                conv = self._need_current()
                m = await c.message(conv, seq)
                if isinstance(m, Undecryptable):
                    raise UsageError(f"#{seq} cannot be forwarded: {m.reason}")
                if handle is not None:
                    target = await c.direct(await c.lookup(handle))
                else:
                    infos = await self._conversations()
                    assert index is not None
                    if index > len(infos):
                        raise UsageError(f"no conversation {index}: /convs lists {len(infos)}")
                    target = infos[index - 1].conv
                await self._refresh(target)
                await c.forward(m, target)
                self.show(f"forwarded #{seq} to [{self.names.label(target)}]", "system")
            case ShareLink(title, link, text):
                await c.share(self._need_current(), kinds.Share(title=title, text=text, link=link))
            case ShareCard(handle, action, params):
                conv = self._need_current()
                bot = await c.lookup(handle)
                app, act, typed = await self._action(bot, action, params)
                manifest = (await c.bot_profile(bot)).manifest
                titles = {a.name: a.title for a in manifest.actions} if manifest else {}
                shared = kinds.Share(
                    title=titles.get(act) or f"{app}.{act}",
                    bot=bot,
                    app=app,
                    action=act,
                    params=typed,
                )
                await c.share(conv, shared)
            case Seqs():
                self.names.seqs = not self.names.seqs
                self.show(f"message numbers {'shown' if self.names.seqs else 'hidden'}", "dim")
            case Access(handle, access):
                await c.set_bot_access(self._need_current(), await c.lookup(handle), access)
            case Who():
                info = await c.conversation(self._need_current())
                self._learn(info)
                presence = await c.presence([m.account for m in info.members])
                for line in format_who(info, presence, self.names):
                    self.console.show(line)

    async def _action(
        self, bot: int, action: str, params: tuple[tuple[str, str], ...]
    ) -> tuple[str, str, dict[str, str | int | bool]]:
        """``(app, action, typed params)`` from ``app.action`` (or ``action`` of the bot's
        mini-app) and ``name=value`` words typed as the bot's manifest declares them."""
        manifest = (await self.client.bot_profile(bot)).manifest
        app, dot, act = action.partition(".")
        if not dot:
            if manifest is None:
                raise UsageError(f"{self.names.handle(bot)} has no mini-app")
            app, act = manifest.name, action
        declared = {}
        if manifest is not None and manifest.name == app:
            for a in manifest.actions:
                if a.name == act:
                    declared = {p.name: p.type for p in a.params}
        typed: dict[str, str | int | bool] = {}
        for name, value in params:
            match declared.get(name, "str"):
                case "int":
                    try:
                        typed[name] = int(value)
                    except ValueError:
                        raise UsageError(f"{name} is a whole number, not {value!r}") from None
                case "bool":
                    typed[name] = value.lower() in _TRUE
                case _:
                    typed[name] = value
        return app, act, typed

    async def _bot_conv(self, bot: int) -> int:
        """The current conversation if ``bot`` is a member, else the direct one with it."""
        if self.current is not None and bot in await self.client.bots(self.current):
            return self.current
        conv = await self.client.direct(bot)
        await self._refresh(conv)
        return conv

    def _spawn_invocation(self, invocation: Coroutine[Any, Any, Message]) -> None:
        """Run an invocation in the background: its card arrives as a message; a timeout is an
        event (shown); any other failure is shown here."""

        async def run() -> None:
            try:
                await invocation
            except (InvocationTimeoutError, ClientClosed):
                pass
            except ChatClientError as exc:
                self.show(f"error: {exc}", "error")

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _pay_conv(self, account: int) -> tuple[int | None, str]:
        """Where a payment to ``account`` goes: the current conversation if they are in it
        (its id), else their direct conversation (None: opened only once confirmed); and the
        words that say where."""
        handle = self.names.handle(account)
        if self.current is not None:
            info = await self.client.conversation(self.current)
            self._learn(info)
            here = self.names.label(self.current)
            if any(m.account == account for m in info.members):
                return self.current, f"in [{here}]"
            return None, f"in your direct chat with @{handle} (@{handle} is not in [{here}])"
        return None, f"in your direct chat with @{handle}"

    async def _balance_note(self, amount: int, currency: str) -> str:
        """`` (your balance: 1.00 USD, not enough)`` for a confirmation question."""
        have = (await self.client.balance(currency)).get(currency, 0)
        short = ", not enough" if have < amount else ""
        return f" (your balance: {money.format_money(have, currency)}{short})"

    async def _prepare_payment(
        self, cmd: Pay | PayRequest | PayOrder | RedPacket
    ) -> tuple[str, Callable[[], Awaitable[None]]]:
        """What ``cmd`` would do, in words (amount, payee, where), and the coroutine that does
        it. Nothing is sent, opened or signed before the second is awaited."""
        c = self.client
        match cmd:
            case Pay(handle, amount, currency, memo):
                payee = await c.lookup(handle)
                self.names.handles.setdefault(payee, handle)
                conv, where = await self._pay_conv(payee)
                minor = money.parse_amount(amount, currency)
                summary = f"pay @{handle} {money.format_money(minor, currency)} {where}"
                summary += await self._balance_note(minor, currency)

                async def pay() -> None:
                    target = conv if conv is not None else await c.direct(payee)
                    await self._refresh(target)
                    r = await c.pay(target, payee, amount, currency, memo)
                    label = self.names.label(target)
                    self.show(
                        f"paid @{handle} {r.amount} (receipt #{r.seq} in [{label}])", "system"
                    )

                return summary, pay
            case PayRequest(rid):
                request = self._requests.get(rid)
                if request is None:
                    raise UsageError(
                        f"no request {rid} seen yet: open its conversation (its '$ ... asks'"
                        " line has the id; /history shows older ones)"
                    )
                if rid in self._closed_requests:
                    raise UsageError(f"the request {rid} is {self._closed_requests[rid]} already")
                if request.payee == self.names.me:
                    raise UsageError(f"{rid} is your own request: /cancel {rid} withdraws it")
                if request.payer not in (0, self.names.me):
                    raise UsageError(f"the request {rid} asks {self.names.handle(request.payer)}")
                amount = money.format_money(request.amount, request.currency)
                summary = (
                    f"pay {self.names.handle(request.payee)} {amount} for request {rid}"
                    f" in [{self.names.label(request.conv)}]"
                )
                summary += await self._balance_note(request.amount, request.currency)

                async def pay_request() -> None:
                    r = await c.payments.pay_request(request)
                    self._closed_requests[rid] = "paid"
                    self.show(f"paid the request {rid}: {r.amount} (receipt #{r.seq})", "system")

                return summary, pay_request
            case PayOrder(number):
                ordered = self.cards.orders.get(number)
                card = ordered.content if ordered is not None else None
                if ordered is None or not isinstance(card, kinds.MiniappResult) or not card.order:
                    raise UsageError(f"no order {number} shown yet")
                o = card.order
                what = f" for {o.memo}" if o.memo else ""
                summary = (
                    f"pay order {number}: {money.format_money(o.amount, o.currency)}{what} to"
                    f" {self.names.handle(ordered.sender)} in [{self.names.label(ordered.conv)}]"
                )
                summary += await self._balance_note(o.amount, o.currency)

                async def pay_order() -> None:
                    assert ordered is not None
                    r = await c.pay_order(ordered)
                    again = " (already paid: the same payment)" if r.replay else ""
                    self.show(
                        f"paid order {number}: {r.amount} (receipt #{r.seq}){again}", "system"
                    )

                return summary, pay_order
            case RedPacket(amount, currency, shares, split, memo):
                conv = self._need_current()
                minor = money.parse_amount(amount, currency)
                summary = (
                    f"drop a red packet of {money.format_money(minor, currency)} in {shares}"
                    f" shares ({split}) in [{self.names.label(conv)}]"
                )
                summary += await self._balance_note(minor, currency)

                async def drop() -> None:
                    r = await c.red_packet(
                        conv,
                        amount,
                        currency,
                        shares,
                        memo,
                        split="equal" if split == "equal" else "random",
                    )
                    self._packets[conv] = r.receipt.ref
                    self.show(
                        f"red packet {r.receipt.ref}: {r.amount} in {shares} shares", "system"
                    )

                return summary, drop

    async def _own_text(self, conv: int, target: int | None, verb: str) -> int:
        """The seq of the user's own text message to edit or delete (default: the latest)."""
        seq = target or self._last_own.get(conv)
        if seq is None:
            raise UsageError(f"no message of yours here yet: /{verb} SEQ (/seqs shows them)")
        m = await self.client.message(conv, seq)
        if m.sender != self.names.me:
            raise UsageError(f"#{seq} is not your message: you can {verb} only your own")
        if isinstance(m, Message) and not isinstance(m.content, kinds.Text):
            raise UsageError(f"#{seq} is not a text message")
        return seq

    async def _create(self, kind: str, title: str, handles: tuple[str, ...]) -> None:
        """``/group``, ``/channel``: the members who are not your contacts may have to be
        invited instead (CONSENT_REQUIRED): then created with nobody and each one invited."""
        c = self.client
        members = [await c.lookup(h) for h in handles]
        try:
            info = await c.create(kind, title, members)
        except RequestError as exc:
            if exc.code != ErrorCode.CONSENT_REQUIRED:
                raise
            info = await c.create(kind, title, [])
            await self._open(await c.conversation(info.conv))
            for handle in handles:
                await self._invite(info.conv, handle)
            return
        await self._open(await c.conversation(info.conv))
        self._say_invited(info, dict(zip(members, handles, strict=True)))

    async def _invite(self, conv: int, handle: str) -> None:
        c = self.client
        account = await c.lookup(handle)
        await c.invite(conv, account)
        info = await c.conversation(conv)
        self._learn(info)
        self._say_invited(info, {account: handle})

    async def _invitation_answered(self, ev: F.InvitationAnswered) -> None:
        """Someone this account invited answered (SPEC.md 18.3). An accept that waits for a
        signed ``invite`` (a conversation with a membership log) gets it from here at once;
        another device of this account may have sent it already (CONFLICT: said nothing). One
        that came while ``chat`` was closed arrives at connect, maybe before the conversations
        are listed: its title is read first."""
        if ev.conv not in self.names.convs:
            with contextlib.suppress(RequestError):
                self._learn(await self.client.conversation(ev.conv))
        where = f"[{self.names.label(ev.conv)}]"
        if ev.answer == "decline":
            self.show(f"{where} @{ev.handle} declined your invitation", "system")
            return
        if ev.joined:
            self.show(f"{where} @{ev.handle} accepted your invitation", "system")
            return
        self.show(f"{where} @{ev.handle} accepted your invitation: adding them", "system")
        try:
            await self.client.invite(ev.conv, ev.account)
        except RequestError as exc:
            if exc.code != ErrorCode.CONFLICT:
                self.show(
                    f"{where} could not add @{ev.handle} ({exc}): /invite @{ev.handle} here",
                    "error",
                )

    def _say_invited(self, info: F.ConvInfo, wanted: dict[int, str]) -> None:
        """One line per account that got an invitation instead of a seat."""
        present = {m.account for m in info.members}
        for account, handle in wanted.items():
            if account not in present:
                self.show(
                    f"[{self.names.label(info.conv)}] @{handle} is invited: added once @{handle}"
                    f" accepts",
                    "system",
                )

    async def _fetch_requests(self, at_least: int) -> tuple[list[F.RequestInfo], bool]:
        """The first ``at_least`` pending requests (and whether more follow)."""
        got: list[F.RequestInfo] = []
        async for r in self.client.contacts.requests():
            if len(got) == at_least:
                return got, True
            got.append(r)
        return got, False

    async def _links(
        self, cmd: MakeLink | LinkList | Unlink | JoinByLink | JoinRequestList | Admit
    ) -> None:
        """Invite links and join requests (SPEC.md 20; chatclient/links.py does the work)."""
        c = self.client
        if isinstance(cmd, JoinByLink):
            p = await c.links.preview(cmd.link)
            title = f' "{p.title}"' if p.title else ""
            ask = ", joining needs an admin's approval" if p.approval else ""
            self.show(f"the link leads to the {p.kind}{title}, {p.member_count} members{ask}")
            if cmd.preview_only:
                return
            info = await c.links.join(cmd.link)
            if isinstance(info, F.JoinRequested):
                self.show("asked to join: you are in once an admin approves", "system")
            else:
                await self._open(await c.conversation(info.conv))
            return
        conv = self._need_current()
        label = self.names.label(conv)
        match cmd:
            case MakeLink(name, expires_in, max_uses, approval):
                link = await c.links.create(
                    conv, name=name, expires_in=expires_in, max_uses=max_uses, approval=approval
                )
                self.show(f"invite link {link.link} to [{label}]: {link.url}", "system")
            case LinkList():
                now = time.time() * 1000
                shown = 0
                async for link in c.links.links(conv):
                    shown += 1
                    uses = f"{link.uses}/{link.max_uses or 'any'} uses"
                    state = (
                        "revoked"
                        if link.revoked
                        else "expired"
                        if link.expires and link.expires <= now
                        else "used up"
                        if link.max_uses and link.uses >= link.max_uses
                        else "active"
                    )
                    extra = [x for x in (link.name, "approval" if link.approval else "") if x]
                    more = f" ({', '.join(extra)})" if extra else ""
                    self.console.show(Line(f"{link.link:>4}. {link.url}  {uses}, {state}{more}"))
                if not shown:
                    self.show(f"[{label}] has no invite links: /link makes one", "dim")
            case Unlink(link):
                await c.links.revoke(conv, link)
                self.show(f"invite link {link} of [{label}] revoked", "system")
            case JoinRequestList():
                shown = 0
                async for r in c.links.requests(conv):
                    shown += 1
                    self.console.show(Line(f"  @{r.handle} (through link {r.link})"))
                if not shown:
                    self.show(f"nobody is waiting to join [{label}]", "dim")
            case Admit(handle, approve):
                account = await c.lookup(handle)
                if approve:
                    await c.links.approve(conv, account)
                    self.show(f"@{handle} joined [{label}]", "system")
                else:
                    await c.links.decline(conv, account)
                    self.show(f"@{handle}'s request to join [{label}] declined", "system")

    async def _show_requests(self) -> None:
        got, more = await self._fetch_requests(REQUESTS_SHOWN)
        self._request_list = got
        for line in format_requests(got):
            self.console.show(line)
        if more:
            self.show(
                f"(more wait: answer these, then /requests again shows the next {REQUESTS_SHOWN})",
                "dim",
            )

    async def _answer(self, answer: str, handle: str | None, index: int | None) -> None:
        c = self.client
        verb = "/accept" if answer == "accept" else "/decline"
        if index is not None:
            if not self._request_list:
                self._request_list, _ = await self._fetch_requests(REQUESTS_SHOWN)
            if index > len(self._request_list):
                raise UsageError(f"no request {index}: /requests lists {len(self._request_list)}")
            r = self._request_list[index - 1]
        else:
            found = [r async for r in c.contacts.requests() if r.handle == handle]
            if not found:
                raise UsageError(f"no request from @{handle} is waiting (/requests lists them)")
            if len(found) > 1:
                raise UsageError(
                    f"@{handle} sent {len(found)} requests: /requests numbers them, then {verb} N"
                )
            r = found[0]
        what = "message request" if r.kind == "direct" else f"invitation to the {r.kind}"
        with contextlib.suppress(ValueError):
            self._request_list.remove(r)
        self._waiting.pop(r.conv, None)
        if answer == "delete":
            await c.contacts.delete(r.conv)
            self.show(f"declined @{r.handle}'s {what} (they are not told)", "system")
            return
        await c.contacts.accept(r.conv)
        try:
            info = await c.conversation(r.conv)
        except NotFound:  # a group with a signed membership log: its admin adds you now
            title = f' "{r.title}"' if r.title else ""
            self.show(
                f"accepted @{r.handle}'s {what}{title}: you join when @{r.handle} adds you"
                " (their client does it when it learns you accepted)",
                "system",
            )
            return
        self.show(f"accepted @{r.handle}'s {what}", "system")
        await self._open(info)
        await c.resync()  # what came while it was a request and this client was away

    async def _contacts(self) -> None:
        c = self.client
        contacts, blocked = await c.contacts.contacts(), await c.contacts.blocked()
        if any(a not in self.names.handles for a in contacts):
            await self._conversations()  # direct conversations name them
        for label, accounts in (("contacts", contacts), ("blocked", blocked)):
            named = ", ".join(f"@{self.names.handle(a)}" for a in accounts) or "nobody"
            self.show(f"{label}: {named}")

    async def _new_bot(self, handle: str, name: str, path: str) -> None:
        """``/newbot``: a bot account that this device signs for (so it is yours), with its
        own key file."""
        dest = _new_key_file(path or f"{handle}.key", f'/newbot {handle} "{name}"')
        ks = KeyStore.open(dest)
        registered = False
        try:
            bot = Client(self.client.urls, ks)
            await _connect(bot, self.client.request_timeout)
            try:
                owner = self.client.approve_bot(handle, ks.key.public_key)
                account = await bot.register(handle, name, bot=True, device_name="bot", owner=owner)
                registered = True
            finally:
                await bot.__aexit__(None, None, None)
        except CannotConnect as exc:
            raise UsageError(str(exc)) from None
        finally:
            ks.close()
            if not registered:  # the same command can simply be run again
                _discard(dest)
        self.show(f"bot @{handle} created (account {account}), owned by you; key: {dest}", "system")
        self.show(
            f"run it: Bot(URL, {str(dest)!r}, router).run() in your script, e.g."
            f" python clients/examples/echo_bot.py --url {self.client.url} --keystore {dest}",
            "system",
        )

    async def _read_positions(self, conv: int) -> list[Line]:
        info = await self.client.conversation(conv)
        self._learn(info)
        reads = self._reads.get(conv, {})
        out = [
            Line(
                f"[{self.names.label(conv)}] read up to (others: as reported since you connected):"
            )
        ]
        for member in info.members:
            mine = member.account == self.names.me
            seq = info.read if mine else reads.get(member.account, 0)
            where = "nothing yet" if not seq else f"#{seq}"
            if seq and seq >= info.last_seq:
                where += " (everything)"
            if member.account != self.names.me and not seq:
                where = "not known yet"
            you = " (you)" if member.account == self.names.me else ""
            out.append(Line(f"  {member.handle}{you}: {where}"))
        return out

    async def _bot_command(self, conv: int, text: str) -> None:
        """``/word ...`` that is not chat's: sent to the bots here that have that command."""
        found = re.match(r"/([A-Za-z0-9_]+)(?:@([A-Za-z0-9_.]+))?", text)
        assert found is not None
        name, target = found.group(1).lower(), found.group(2)
        bots = await self.client.bots(conv)
        if not bots:
            raise UsageError(f"unknown command /{name}; /help lists the commands")
        handles: dict[int, str] = {}
        for bot in bots:
            if bot not in self.names.handles:
                await self._refresh(conv)
            handles[bot] = self.names.handle(bot)
        if target is not None:
            if target.lower() not in handles.values():
                raise UsageError(f"@{target} is not a bot here (/bots lists them)")
        else:
            having = []
            for bot in bots:
                try:
                    profile = await self.client.bot_profile(bot)
                except RequestError:
                    continue
                if not profile.commands or name in {cmd.name for cmd in profile.commands}:
                    having.append(bot)
            if not having:
                raise UsageError(
                    f"unknown command /{name}: neither chat nor the bots here have it"
                    " (/help, /bots)"
                )
        self._say(text)

    def _say(self, text: str, reply_to: int | None = None) -> None:
        conv = self._need_current()
        if len(text) > MAX_TEXT:
            raise UsageError(f"message too long ({len(text)} > {MAX_TEXT} characters)")
        if not self.client.connected:  # shown again as usual once the server has it
            self.show(f"[{self.names.label(conv)}] pending: {text}", "dim")
        if self._typing_sent:
            self._typing_sent = 0.0
            self._spawn(self.client.typing(conv, False))
        task = asyncio.create_task(self._send(conv, text, reply_to))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send(self, conv: int, text: str, reply_to: int | None = None) -> None:
        try:
            await self.client.send_text(conv, text, reply_to=reply_to)
        except ClientClosed:
            pass
        except ChatClientError as exc:
            self.fail(f"not sent to [{self.names.label(conv)}]: {exc}")

    async def _conversations(self) -> list[F.ConvInfo]:
        infos = sorted(await self.client.conversations(), key=lambda i: i.conv)
        for info in infos:
            known = self.names.convs.get(info.conv)
            if info.kind == "direct" and (known is None or not known.members):
                await self._refresh(info.conv)
            self.names.learn(info)
        return infos

    async def _open(self, info: F.ConvInfo) -> None:
        self.current = info.conv
        self._history_before.pop(info.conv, None)
        self._learn(info)
        label = self.names.label(info.conv)
        count = unread(info)
        self.console.set_prompt(f"[{label}]> ")
        more = f", {count} unread" if count else ""
        self.show(f"now in [{label}] ({info.kind}{more})", "system")
        if count:
            self._mark_read(info.conv, info.last_seq)

    async def _history(self, conv: int, count: int) -> None:
        before = self._history_before.get(conv)
        if before is None:
            info = await self.client.conversation(conv)
            self._learn(info)
            before = info.last_seq + 1
        if before <= 1:
            self.show("(no earlier messages)", "dim")
            return
        page = await self.client.fetch(conv, before=before, limit=count)
        if not page.messages:
            self._history_before[conv] = 1
            self.show("(no earlier messages)", "dim")
            return
        first, last = page.messages[0].seq, page.messages[-1].seq
        self.show(f"-- [{self.names.label(conv)}] history {first}..{last} --", "dim")
        before_join = 0  # a run of messages from before this account joined: one line
        for m in page.messages:
            if m.kind == kinds.WITHHELD:
                continue
            ev = self.client.message_from(conv, m)
            if isinstance(ev, Undecryptable) and ev.reason.startswith(BEFORE_JOINED):
                before_join += 1
                continue
            if before_join:
                self.show(f"({before_join} sent before you joined)", "dim")
                before_join = 0
            if ev.sender and ev.sender not in self.names.handles:
                await self._refresh(conv)
            line = format_event(ev, self.names, cards=self.cards)
            if line is not None:
                self.console.show(line)
        if before_join:
            self.show(f"({before_join} sent before you joined)", "dim")
        self._history_before[conv] = first
        if first <= 1:
            self.show("(beginning of the conversation)", "dim")
        elif not page.more:  # a late joiner reads from its join on (SPEC.md 7.8)
            self._history_before[conv] = 1
            self.show("(history starts when you joined)", "dim")


# --------------------------------------------------------------------------- entry points


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server",
        action="append",
        default=argparse.SUPPRESS,
        help=(
            f"chatd WebSocket URL (default: $CHAT_SERVER or {DEFAULT_SERVER}); repeat it, or"
            " separate with commas, for the nodes of a cluster: after a drop chat uses the next"
        ),
    )
    common.add_argument(
        "--key",
        default=argparse.SUPPRESS,
        help=f"key file of this device (default: $CHAT_KEY or {DEFAULT_KEY})",
    )
    common.add_argument(
        "--yes",
        "-y",
        action="store_true",
        default=argparse.SUPPRESS,
        help="pay without the confirmation step (scripts; /pay! does it for one payment)",
    )
    common.add_argument(
        "--connect-timeout",
        type=float,
        default=argparse.SUPPRESS,
        help="seconds to wait for the server at start (default: 10)",
    )
    parser = argparse.ArgumentParser(
        prog="chat",
        description="Terminal client for chatd. Run 'chat register HANDLE NAME' once, then 'chat'.",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command")
    reg = sub.add_parser("register", parents=[common], help="create an account for this key")
    reg.add_argument("handle", help="your handle: 3-32 of a-z 0-9 _ . (e.g. alice)")
    reg.add_argument("name", help='your display name (e.g. "Alice Liddell")')
    return parser


def server_url(text: str) -> str:
    """The WebSocket URL for what a user typed as the server: ``http(s)://`` is read as
    ``ws(s)://``, a missing path as ``/ws``, a bare ``host:port`` as ``ws://host:port/ws``.
    Raises ``ParseError`` for what cannot be a server address."""
    raw = text.strip()
    if "://" not in raw:
        raw = "ws://" + raw
    parts = urllib.parse.urlsplit(raw)
    scheme = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}.get(parts.scheme.lower())
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        scheme = None
    if scheme is None or not parts.hostname:
        raise ParseError(
            f"not a server address: {text!r} (give ws://HOST:PORT{WS_PATH}, e.g. {DEFAULT_SERVER})"
        )
    path = parts.path if parts.path not in ("", "/") else WS_PATH
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def _settings(args: argparse.Namespace) -> tuple[list[str], Path, float]:
    """The typed server addresses (each ``--server``, comma-separated lists split), the key
    file and the connect timeout."""
    given = getattr(args, "server", None) or [os.environ.get("CHAT_SERVER") or DEFAULT_SERVER]
    servers = [s for text in given for s in text.split(",") if s.strip()] or [DEFAULT_SERVER]
    key = getattr(args, "key", None) or os.environ.get("CHAT_KEY") or DEFAULT_KEY
    return servers, Path(key).expanduser(), float(getattr(args, "connect_timeout", 10.0))


def _refused(exc: AuthError, url: str, key_path: Path) -> str:
    """One line for a connection or login the server refused, saying what to do."""
    http = re.match(r"HTTP (\d+)", exc.server_message)
    status = http.group(1) if http else ""
    if status == "404":
        fixed = urllib.parse.urlsplit(url)._replace(path=WS_PATH).geturl()
        return (
            f"no chatd at {url}: the server answered HTTP 404 (chatd serves clients on"
            f" {WS_PATH}): try --server {fixed}"
        )
    if status.isdigit():
        return (
            f"the server at {url} refused the WebSocket connection (HTTP {status}):"
            " is it a chatd server?"
        )
    return (
        f"the server at {url} refused the login of {key_path} ({exc}): is it the server this"
        " key was registered with? (--server, or $CHAT_SERVER)"
    )


async def _connect(client: Client, wait_s: float) -> None:
    """Enter ``client`` (connected, logged in if registered), or clean up and raise."""
    try:
        async with asyncio.timeout(wait_s):
            await client.__aenter__()
    except BaseException as exc:
        with contextlib.suppress(Exception):
            await client.__aexit__(None, None, None)
        if isinstance(exc, TimeoutError):
            where = " or ".join(client.urls)
            raise CannotConnect(f"cannot reach the server at {where}") from None
        raise


async def run(
    argv: Sequence[str] | None = None,
    *,
    stdin: int | None = None,
    stdout: TextIO | None = None,
) -> int:
    """The whole CLI as a coroutine (``main`` runs it; tests call it in-process)."""
    out = stdout if stdout is not None else sys.stdout
    args = build_parser().parse_args(argv)
    typed_urls, key_path, timeout = _settings(args)

    def fail(msg: str) -> int:
        out.write(f"chat: {msg}\n")
        out.flush()
        return 1

    try:
        urls = [server_url(typed) for typed in typed_urls]
    except ParseError as exc:
        return fail(str(exc))
    try:
        ks = KeyStore.open(key_path)
    except KeyStoreInUse:
        return fail(
            f"{key_path} is in use by another process (one at a time per key file):"
            " close the other chat, or give another --key"
        )
    except KeyStoreLocked as exc:  # protected by a passphrase: $CHAT_KEY_PASSPHRASE
        return fail(str(exc))
    except (sqlite3.DatabaseError, ValueError, UnicodeDecodeError) as exc:
        return fail(
            f"{key_path} is not a chatd key file ({exc}): give another --key, or move this"
            " file away to register a new account"
        )
    except OSError as exc:
        return fail(f"cannot open the key file {key_path}: {exc.strerror or exc}")
    try:
        return await _run_with(args, ks, urls, key_path, timeout, stdin, out, fail)
    finally:
        ks.close()


async def _run_with(
    args: argparse.Namespace,
    ks: KeyStore,
    urls: list[str],
    key_path: Path,
    connect_timeout: float,
    stdin: int | None,
    out: TextIO,
    fail: Callable[[str], int],
) -> int:
    try:
        if args.command == "register":
            return await _register(urls, ks, key_path, args.handle, args.name, connect_timeout, out)
        if not ks.registered:
            return fail(
                f'{key_path} holds no account yet: run  chat --key {key_path} register HANDLE "Name"'
            )
        client = Client(urls, ks)
        await _connect(client, connect_timeout)
        try:
            with open_console(stdin if stdin is not None else 0, out) as console:
                yes = bool(getattr(args, "yes", False))
                return await Session(client, console, assume_yes=yes).run()
        finally:
            await client.__aexit__(None, None, None)
    except CannotConnect as exc:
        return fail(str(exc))
    except ParseError as exc:
        return fail(str(exc))
    except AuthError as exc:
        return fail(_refused(exc, urls[0], key_path))
    except ChatClientError as exc:
        return fail(f"error: {exc}")


async def _register(
    urls: list[str],
    ks: KeyStore,
    key_path: Path,
    handle: str,
    name: str,
    wait_s: float,
    out: TextIO,
) -> int:
    if ks.registered:
        out.write(
            f"chat: {key_path} already holds @{ks.handle} (account {ks.account});"
            " use another --key for another account\n"
        )
        return 1
    handle = parse_handle(handle)
    name = name.strip()
    if not 1 <= len(name) <= 64:
        raise ParseError("the display name must have 1 to 64 characters")
    if not key_path.parent.exists():
        key_path.parent.mkdir(mode=0o700, parents=True)
    client = Client(urls, ks)
    await _connect(client, wait_s)
    try:
        account = await client.register(handle, name, device_name="chat cli")
    finally:
        await client.__aexit__(None, None, None)
    out.write(f"registered @{handle} (account {account}); key saved to {key_path}\n")
    servers = " ".join(f"--server {u}" for u in urls)
    out.write(f"start chatting:  chat {servers} --key {key_path}\n")
    out.flush()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.ERROR, format="chat: %(message)s")
    try:
        return asyncio.run(run(argv))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
