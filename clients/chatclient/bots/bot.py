"""``Bot``: a chatd account with one device, driven by a router.

    Bot(url, "echo.key", router).run()                    # a script (SIGINT/SIGTERM stop it)

    async with Bot(url, keystore, router) as bot:         # embedded in an application
        ...                                               # the bot serves in the background
        await bot.wait()                                  # until stopped or fatally failed

The bot is an ordinary SDK ``Client``: messages reach it end-to-end encrypted and are decrypted
by the SDK; replies are encrypted the same way. The first run registers the account (type
``bot``) with the handle given (or the key store file's name); later runs log in with the key
store.

Dispatch: messages of one conversation are handled one after another, in seq order;
different conversations are handled concurrently, at most ``max_concurrency`` handlers at a
time, with at most ``max_pending`` messages admitted and not yet handled (beyond that the bot
stops reading, and the SDK's bounded queue and the server's flow control push back). Every
task belongs to the bot's TaskGroup.

Delivery: after each handled message the bot commits, in one write to its key store, the
message's seq and the conversation's ``ctx.state``; a restart skips what was handled. Replies
carry client message ids derived from the message they answer, so a handler re-run after a
crash cannot post the same reply twice. On a clean stop the bot finishes what it admitted
(up to ``drain_timeout``) and leaves anything unhandled for the next run.

Errors: every exception a handler, filter or reply raises goes to the one error hook
(``@bot.on_error``; the default logs it with its traceback), and the bot carries on with the
next message. Nothing is dropped without a log line or a hook call.

Profile and access (SPEC.md 16): after every login the bot publishes its profile (commands and
mini-app manifest, ``profile()``), so clients show what the running code answers. In a group or
channel a bot starts with access ``addressed``: it receives the commands, mentions, replies and
invocations addressed to it (users' clients address them), plus membership messages and payment
receipts; ``F.addressed`` tells the two apart where an owner granted ``all``. Being added to or
removed from a conversation runs the ``@router.bot_added()`` / ``@router.bot_removed()``
handlers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import inspect
import logging
import random
import re
import secrets
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Sequence
from pathlib import Path
from typing import Any, Literal, Self

import msgspec
from chatproto import bots, codec, kinds
from chatproto import frames as F
from chatproto import limits as L
from chatproto.errors import ChatProtoError

from chatclient import payments
from chatclient.bots.args import ParamInfo, tokenize
from chatclient.bots.context import Context, Conversation, Me, Sender
from chatclient.bots.errors import ArgumentError, BotError, SetupError
from chatclient.bots.router import COMMAND_NAME, Bound, Route, Router, Table
from chatclient.bots.store import BotStore
from chatclient.client import Client
from chatclient.errors import (
    AuthError,
    ChatClientError,
    ClientClosed,
    Conflict,
    ConnectionLost,
    NotFound,
    RateLimited,
)
from chatclient.events import (
    Connected,
    Disconnected,
    Message,
    SecurityWarning,
    Undecryptable,
)
from chatclient.keystore import KeyStore

log = logging.getLogger("chatclient.bots")

ErrorHook = Callable[[Exception, Context | None], Awaitable[None]]
_ACTION_TYPES: dict[str, F.ActionParamType] = {"int": "int", "bool": "bool"}
"""Declared action parameter types; everything else travels as text the bot parses."""
_CLOSED = (ClientClosed, AuthError)
"""The client is gone: a message being handled is left unhandled for the next run, not marked."""


class _Unfinished(Exception):
    """The client closed under a handler: leave the message for the next run."""


class CommandInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A command as the bot declares it (what clients will show once a frame publishes it)."""

    name: str
    description: str = ""
    usage: str = ""
    aliases: tuple[str, ...] = ()
    params: tuple[ParamInfo, ...] = ()


class ActionInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A mini-app action as the bot declares it: ``app.action`` and its parameter schema."""

    name: str
    description: str = ""
    params: tuple[ParamInfo, ...] = ()


async def log_error(exc: Exception, ctx: Context | None) -> None:
    """The default error hook: user input errors at INFO, everything else with a traceback."""
    where = (
        f"conversation {ctx.conversation.id}, seq {ctx.message.seq}" if ctx is not None else "bot"
    )
    if isinstance(exc, ArgumentError):
        log.info("bad input (%s): %s", where, exc.message)
    else:
        log.error("error in %s: %r", where, exc, exc_info=exc)


class Bot:
    """A bot account serving ``router``. See the module docstring."""

    def __init__(
        self,
        url: str,
        keystore: str | Path | KeyStore,
        router: Router | None = None,
        *,
        handle: str | None = None,
        name: str | None = None,
        max_concurrency: int = 16,
        max_pending: int = 1024,
        drain_timeout: float = 10.0,
        help_command: bool = True,
        app_title: str = "",
        app_icon: str = "",
        ignore_bots: bool = True,
        invocation_memory: int = 10_000,
        request_timeout: float = 10.0,
        reconnect: bool = True,
    ) -> None:
        if max_concurrency < 1 or max_pending < 1:
            raise SetupError("max_concurrency and max_pending must be at least 1")
        self.url = url
        self._keystore_source = keystore
        self.router = Router("bot")
        if router is not None:
            self.router.include(router)
        self._handle = handle
        self._name = name
        self.max_concurrency = max_concurrency
        self.max_pending = max_pending
        self.drain_timeout = drain_timeout
        self.help_command = help_command
        self.app_title = app_title
        """The mini-app's display title and icon (a few characters, e.g. an emoji)."""
        self.app_icon = app_icon
        self.ignore_bots = ignore_bots
        """Messages from other bots never reach handlers (no bot-to-bot loops) unless False."""
        self.invocation_memory = invocation_memory
        self.request_timeout = request_timeout
        self.reconnect = reconnect
        self._error_hook: ErrorHook = log_error
        self._table: Table | None = None
        self._client: Client | None = None
        self._store: BotStore | None = None
        self.me = Me(0, "")
        self._tg: asyncio.TaskGroup | None = None
        self._reader: asyncio.Task[None] | None = None
        self._queues: dict[int, deque[Message]] = {}
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._admit = asyncio.Semaphore(max_pending)
        self._running = asyncio.Semaphore(max_concurrency)
        self._convs: dict[int, Conversation] = {}
        self._holding: Message | None = None
        self._done = asyncio.Event()
        self._stop_requested = False
        self._fatal: BaseException | None = None
        self._entered = False

    # ------------------------------------------------------------------ configuration

    def include(self, *routers: Router) -> None:
        """Add routers (before the bot starts)."""
        if self._table is not None:
            raise SetupError("routers cannot be added after the bot was built")
        self.router.include(*routers)

    def on_error(self, hook: ErrorHook) -> ErrorHook:
        """Decorate the one ``async def hook(exc, ctx)`` that receives every exception raised by
        handlers, filters and replies, and every ``ArgumentError`` (``ctx`` is None for errors
        outside a message). If the hook itself raises, both are logged."""
        if not inspect.iscoroutinefunction(hook):
            raise SetupError("the error hook must be an async def")
        self._error_hook = hook
        return hook

    def commands(self) -> list[CommandInfo]:
        """The commands this bot declares, in registration order (with ``/help`` unless it was
        turned off): kept here so a server frame can publish them to clients."""
        return [
            CommandInfo(
                name=r.name,
                description=r.description,
                usage=r.usage,
                aliases=r.aliases,
                params=r.signature.schema(),
            )
            for r in self.table.command_routes()
        ]

    def actions(self) -> list[ActionInfo]:
        """The mini-app actions this bot serves, with their parameter schemas."""
        return [
            ActionInfo(name=r.name, description=r.description, params=r.signature.schema())
            for r in self.table.action_routes()
        ]

    def profile(self) -> tuple[list[F.BotCommand], F.Manifest | None]:
        """The bot's profile as ``set_bot_profile`` carries it: its commands (aliases listed as
        commands too) and its mini-app manifest (one app: the ``app`` of every action route).
        Checked with the protocol's own rules (``chatproto.bots.check_profile``); a profile the
        server would refuse raises ``SetupError`` here, when the bot starts."""
        commands: list[F.BotCommand] = []
        for c in self.commands():
            params = [
                F.CommandParam(name=p.name, type=p.type, required=p.required) for p in c.params
            ]
            description = c.description[: L.MAX_DESCRIPTION_CHARS]
            commands += [
                F.BotCommand(name=name, description=description, params=params)
                for name in (c.name, *c.aliases)
            ]
        routes = self.table.action_routes()
        apps = sorted({r.app for r in routes})
        if len(apps) > 1:
            raise SetupError(f"a bot has one mini-app; its actions name {', '.join(apps)}")
        manifest = None
        if routes:
            actions = [
                F.MiniAppAction(
                    name=r.action,
                    title=(r.description or r.action)[: L.MAX_NAME_CHARS],
                    params=[
                        F.ActionParam(
                            name=p.name,
                            type=_ACTION_TYPES.get(p.type, "str"),
                            required=p.required,
                            choices=list(p.choices),
                        )
                        for p in r.signature.schema()
                    ],
                    price=r.price,
                )
                for r in routes
            ]
            manifest = F.Manifest(
                name=apps[0], title=self.app_title, icon=self.app_icon, actions=actions
            )
        try:
            # The server decodes the frame with these limits, then runs check_profile.
            frame = F.SetBotProfile(id=1, commands=commands, manifest=manifest)
            codec.decode_client(codec.encode(frame))
            bots.check_profile(commands, manifest)
        except ChatProtoError as exc:
            raise SetupError(f"the server would refuse this bot's profile: {exc.message}") from exc
        return commands, manifest

    @property
    def table(self) -> Table:
        """The routers flattened and checked (built once, on first use)."""
        if self._table is None:
            table = Table(self.router)
            if self.help_command and "help" not in table.commands:
                self.router.include(self._help_router())
                table = Table(self.router)
            self._table = table
        return self._table

    def _help_router(self) -> Router:
        router = Router("help")

        @router.command("help", description="List the commands of this bot")
        async def help_(msg: Message, ctx: Context) -> None:
            lines = []
            for c in self.commands():
                lines.append(f"{c.usage} — {c.description}" if c.description else c.usage)
            await ctx.reply("\n".join(lines))

        return router

    # ------------------------------------------------------------------ lifecycle

    @property
    def client(self) -> Client:
        """The SDK client (for anything the framework does not wrap: lookups, creating
        conversations, inviting)."""
        if self._client is None:
            raise BotError("the bot is not running")
        return self._client

    @property
    def keystore(self) -> KeyStore:
        return self.client.keystore

    async def __aenter__(self) -> Self:
        if self._entered:
            raise BotError("a Bot runs once; make a new one to run again")
        self._entered = True
        self.profile()  # wiring mistakes surface before connecting
        ks = self._keystore_source
        if not isinstance(ks, KeyStore):
            ks = KeyStore.open(ks)
        client = Client(
            self.url,
            ks,
            reconnect=self.reconnect,
            request_timeout=self.request_timeout,
            save_read_positions=False,  # what was not handled comes again after a kill
        )
        await client.__aenter__()
        try:
            if not ks.registered:
                handle = self._registration_handle()
                await client.register(handle, self._name or handle, bot=True)
                log.info("registered bot account @%s (%d)", handle, ks.account)
            elif self._handle and self._handle.lstrip("@") != ks.handle:
                log.warning(
                    "key store is @%s, not @%s: running as @%s", ks.handle, self._handle, ks.handle
                )
            await self._publish_profile(client)
            self._client = client
            self.me = Me(ks.account, ks.handle)
            self._store = BotStore(ks, self.invocation_memory)
            self._tg = asyncio.TaskGroup()
            await self._tg.__aenter__()
            self._reader = self._tg.create_task(self._read(), name="bot-reader")
        except BaseException:
            self._client = None
            await client.__aexit__(None, None, None)
            raise
        return self

    async def _publish_profile(self, client: Client) -> None:
        """``set_bot_profile`` with this code's commands and manifest (after every login)."""
        commands, manifest = self.profile()
        await client.set_bot_profile(commands, manifest)
        log.info(
            "published %d command(s)%s",
            len(commands),
            f" and mini-app {manifest.name!r}" if manifest is not None else "",
        )

    async def _republish(self) -> None:
        try:
            await self._publish_profile(self.client)
        except (ChatClientError, TimeoutError) as exc:
            log.warning("could not publish the profile after reconnecting: %s", exc)

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
        if self._fatal is not None and exc[0] is None:
            raise self._fatal

    def stop(self) -> None:
        """Ask the bot to stop (safe from a signal handler or a handler): it stops reading,
        finishes what it admitted, and ``wait()`` returns."""
        self._stop_requested = True
        if self._reader is not None:
            self._reader.cancel()
        self._done.set()

    async def wait(self) -> None:
        """Until the bot is stopped; raises what stopped it if it failed (e.g. ``AuthError``)."""
        await self._done.wait()
        if self._fatal is not None:
            raise self._fatal

    async def aclose(self) -> None:
        """Stop reading, drain (up to ``drain_timeout``), close the connection, and leave
        anything unhandled to be delivered again on the next run."""
        self.stop()
        if self._tg is None or self._client is None:
            return
        tg, client, self._tg = self._tg, self._client, None
        if self._reader is not None:
            await asyncio.wait([self._reader])
        workers = set(self._workers.values())
        if workers:
            _, late = await asyncio.wait(workers, timeout=self.drain_timeout)
            if late:
                log.warning(
                    "stopping %d conversation(s) still busy after %ss",
                    len(late),
                    self.drain_timeout,
                )
            for t in late:
                t.cancel()
        await tg.__aexit__(None, None, None)
        await client.__aexit__(None, None, None)
        self._rewind(client)

    def run(self, argv: Sequence[str] | None = None, *, log_level: int = logging.INFO) -> None:
        """Serve until SIGINT/SIGTERM (a clean stop) or a fatal error (raised).

        For scripts, the command line overrides the constructor: ``--url``, ``--keystore``,
        ``--handle`` and ``--log-level`` (``argv`` defaults to ``sys.argv[1:]``; other options
        are left to the application; pass ``[]`` to ignore the command line). Sets up basic
        logging when the application configured none."""
        parser = argparse.ArgumentParser(description=f"Run this chatd bot (default {self.url}).")
        parser.add_argument("--url", default=self.url, help="the server's WebSocket URL")
        parser.add_argument("--keystore", type=Path, help="the bot's key store file")
        parser.add_argument("--handle", help="the handle to register on the first run")
        parser.add_argument("--log-level", default=logging.getLevelName(log_level))
        opts, _ = parser.parse_known_args(argv)
        self.url = opts.url
        if opts.keystore is not None:
            self._keystore_source = opts.keystore
        if opts.handle:
            self._handle = opts.handle
        if not logging.getLogger().handlers:
            logging.basicConfig(
                level=opts.log_level.upper(),
                format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            )
        factory: Callable[[], asyncio.AbstractEventLoop] | None = None
        with contextlib.suppress(ImportError):
            import uvloop

            factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(self._serve())

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        for sig in signals:
            loop.add_signal_handler(sig, self.stop)
        try:
            async with self:
                log.info("bot @%s (%d) serving %s", self.me.handle, self.me.account, self.url)
                await self.wait()
            log.info("bot @%s stopped", self.me.handle)
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)

    def _registration_handle(self) -> str:
        handle = (self._handle or "").lstrip("@")
        if not handle:
            source = self._keystore_source
            if not isinstance(source, str | Path):
                raise SetupError("an in-memory key store needs Bot(..., handle=...)")
            handle = re.sub(r"[^a-z0-9_.]", "_", Path(source).stem.lower()).lstrip("_.")
        if not L.is_handle(handle):
            raise SetupError(
                f"bad bot handle {handle!r}: {L.MIN_HANDLE_CHARS}-{L.MAX_HANDLE_CHARS} of a-z, 0-9,"
                " _ and . (pass Bot(..., handle=...))"
            )
        return handle

    def _rewind(self, client: Client) -> None:
        """Move the key store's cursors back before any message the bot admitted or the SDK
        queued but the bot did not handle, so the next run gets them again (the SDK advances
        its cursor when it queues an event, not when the application is done with it)."""
        first: dict[int, int] = {}
        leftovers = [m for q in self._queues.values() for m in q]
        if self._holding is not None:
            leftovers.append(self._holding)
        leftovers += [e for e in client.events_nowait() if isinstance(e, Message)]
        store = self._store
        assert store is not None
        for m in leftovers:
            if not m.own and m.seq > store.handled(m.conv):
                first[m.conv] = min(first.get(m.conv, m.seq), m.seq)
        ks = client.keystore
        moved = {c: s for c, s in first.items() if ks.cursors.get(c, 0) >= s}
        if not moved:
            return
        for conv, seq in moved.items():
            ks.cursors[conv] = seq - 1
        if ks.path is not None:
            ks.save()  # the client closed the store: this reopens, writes and closes it again
            ks.close()
        log.info("left %d unhandled conversation(s) for the next run", len(moved))

    # ------------------------------------------------------------------ reading

    async def _read(self) -> None:
        client = self.client
        try:
            async for event in client.events():
                match event:
                    case Message():
                        await self._admit_message(event)
                    case Undecryptable() if event.sender == self.me.account:
                        log.info(
                            "own message %d of conversation %d: %s",
                            event.seq,
                            event.conv,
                            event.reason,
                        )
                    case Undecryptable():
                        log.warning(
                            "cannot read seq %d in conversation %d from account %d: %s",
                            event.seq,
                            event.conv,
                            event.sender,
                            event.reason,
                        )
                    case SecurityWarning():
                        log.warning(
                            "security warning about account %d: %s", event.account, event.reason
                        )
                    case Connected():
                        if event.reconnect:
                            self._convs.clear()  # membership may have changed meanwhile
                            if self._tg is not None:
                                self._tg.create_task(self._republish())
                        log.info("connected as account %d device %d", event.account, event.device)
                    case Disconnected():
                        log.info(
                            "disconnected (%s %s), retrying: %s",
                            event.code,
                            event.reason,
                            event.will_retry,
                        )
                    case _:
                        pass
            if not self._stop_requested:
                self._fatal = ConnectionLost("the connection ended and the client stopped")
        except ChatClientError as exc:  # AuthError: the account or device was refused
            self._fatal = exc
            log.error("bot stopped: %s", exc)
        except Exception as exc:
            self._fatal = exc
            log.exception("bot reader failed")
        finally:
            self._done.set()

    async def _admit_message(self, m: Message) -> None:
        store = self._store
        assert store is not None
        assert self._tg is not None
        if m.own or m.sender == self.me.account:
            return  # its own messages (from any of its devices) never trigger it
        if m.kind == kinds.WITHHELD:
            return  # a placeholder for a message this bot may not read: nothing to handle
        if m.seq <= store.handled(m.conv):
            return  # handled before a restart; delivered again from an older cursor
        self._holding = m  # taken from the SDK, not queued yet: _rewind must know it
        await self._admit.acquire()
        self._holding = None
        queue = self._queues.get(m.conv)
        if queue is None:
            queue = self._queues[m.conv] = deque()
        queue.append(m)
        if m.conv not in self._workers:
            self._workers[m.conv] = self._tg.create_task(
                self._work(m.conv, queue), name=f"bot-conv-{m.conv}"
            )

    async def _work(self, conv: int, queue: deque[Message]) -> None:
        """Handle ``conv``'s admitted messages in order; the task ends when none are left."""
        try:
            while queue:
                m = queue[0]  # stays queued until handled: a cancelled run leaves it for _rewind
                try:
                    async with self._running:
                        done = await self._process(m)
                finally:
                    self._admit.release()
                if not done:
                    break  # the client closed: this and the rest wait for the next run
                queue.popleft()
        finally:
            if not queue:
                self._queues.pop(conv, None)
            self._workers.pop(conv, None)

    # ------------------------------------------------------------------ dispatch

    async def _process(self, m: Message) -> bool:
        """Route one message and run its handler. False when the client closed before it was
        handled; never raises (except cancellation)."""
        ctx: Context | None = None
        try:
            conv = await self._conversation(m)
            sender = conv.members.get(m.sender) or Sender(m.sender)
            if sender.bot and self.ignore_bots:
                return True
            content = m.content
            if isinstance(content, kinds.MiniappInvoke):
                ctx = Context(m, conv, sender, self.me, self, invocation=content)
                await self._invoke(ctx, content)
                return True
            ctx = Context(m, conv, sender, self.me, self)
            bound, args, kwargs = await self._route(m, ctx)
            if bound is not None:
                await self._run(bound.route, ctx, args, kwargs)
            return True
        except asyncio.CancelledError:
            raise
        except (_Unfinished, *_CLOSED) as exc:
            log.info("seq %d of conversation %d left for the next run: %s", m.seq, m.conv, exc)
            return False
        except Exception as exc:
            await self.report(exc, ctx)
        try:
            self._commit(m, None)
        except Exception:  # the key store failed: nothing the hook could do about it
            log.exception("could not mark seq %d of conversation %d handled", m.seq, m.conv)
        return True

    async def _route(
        self, m: Message, ctx: Context
    ) -> tuple[Bound | None, list[Any], dict[str, Any]]:
        table = self.table
        content = m.content
        if isinstance(content, kinds.SystemEvent):
            event = content.event
            candidates = [b for b in table.system if event in b.route.events]
            own = self._own_event(content)
            if own is not None:  # the more specific handlers first
                candidates = [b for b in table.system if own in b.route.events] + candidates
            return self._first(candidates, m, ctx), [], {}
        if isinstance(content, kinds.Text) and content.text.startswith("/"):
            parsed = _parse_command(content.text, self.me.handle)
            if parsed is False:
                return None, [], {}  # /command@another_bot
            if parsed is not None:
                name, rest, addressed = parsed
                bound = self._first(table.commands.get(name, []), m, ctx)
                if bound is not None:
                    route = bound.route
                    ctx.command = route.name
                    ctx.args = tuple(word for word, _ in tokenize(rest))
                    try:
                        args, kwargs = route.signature.bind_text(rest, route.usage)
                    except ArgumentError as exc:
                        await self._tell(ctx, exc)
                        await self.report(exc, ctx)
                        self._commit(m, None)
                        return None, [], {}
                    return bound, args, kwargs
                fallback = self._first(table.messages, m, ctx)
                if fallback is None and (addressed or ctx.conversation.kind == "direct"):
                    hint = " Try /help." if "help" in table.commands else ""
                    await ctx.reply(f"Unknown command /{name}.{hint}")
                    self._commit(m, None)
                return fallback, [], {}
        return self._first(table.messages, m, ctx), [], {}

    def _own_event(self, ev: kinds.SystemEvent) -> str | None:
        """``bot_added`` / ``bot_removed`` when a system message is about this bot joining or
        leaving (a ``created`` it did not create: it is among the first members)."""
        me = self.me.account
        if (ev.event == "joined" and ev.account == me) or (
            ev.event == "created" and ev.actor != me
        ):
            return "bot_added"
        if (ev.event == "left" and ev.actor == me) or (ev.event == "removed" and ev.account == me):
            return "bot_removed"
        return None

    @staticmethod
    def _first(bounds: Sequence[Bound], m: Message, ctx: Context) -> Bound | None:
        for b in bounds:
            if all(f(m, ctx) for f in b.filters):
                return b
        return None

    async def _invoke(self, ctx: Context, inv: kinds.MiniappInvoke) -> None:
        m = ctx.message
        store = self._store
        assert store is not None
        if store.seen(m.conv, m.sender, inv.invocation_id):
            log.info("ignoring a retry of invocation %r (seq %d)", inv.invocation_id, m.seq)
            self._commit(m, None)
            return
        key = f"{inv.app}.{inv.action}"
        bound = self._first(self.table.actions.get(key, []), m, ctx)
        if bound is None:
            await ctx.answer(error=f"this bot has no action {key!r}")
            self._finish_invocation(ctx, None)
            return
        route = bound.route
        try:
            kwargs = route.signature.bind_params(inv.params, route.usage)
        except ArgumentError as exc:
            await self._tell(ctx, exc)
            await self.report(exc, ctx)
            self._finish_invocation(ctx, None)
            return
        await self._run(route, ctx, [], kwargs)

    async def _run(
        self, route: Route, ctx: Context, args: list[Any], kwargs: dict[str, Any]
    ) -> None:
        state: bytes | None = None
        ok = False
        try:
            result = await route.fn(ctx.message, ctx, *args, **kwargs)
            if isinstance(result, str | kinds.Content):
                await ctx.reply(result)
            elif result is not None:
                raise BotError(
                    f"{route.fn.__qualname__} returned {type(result).__name__}: return a str,"
                    " typed content or None"
                )
            state = ctx.state_dump()
            ok = True
        except asyncio.CancelledError:
            raise
        except _CLOSED as exc:
            raise _Unfinished(str(exc)) from exc
        except ArgumentError as exc:  # raised by the handler itself: the user's input is wrong
            await self._tell(ctx, exc)
            await self.report(exc, ctx)
        except Exception as exc:
            await self.report(exc, ctx)
        if ctx.invocation is not None:
            if not ctx.answered:
                try:
                    if ok:
                        await ctx.answer()
                    else:
                        await ctx.answer(error="the bot could not complete this action")
                except (asyncio.CancelledError, *_CLOSED):
                    raise
                except Exception as exc:
                    await self.report(exc, ctx)
            self._finish_invocation(ctx, state)
        else:
            self._commit(ctx.message, state)

    async def _tell(self, ctx: Context, exc: ArgumentError) -> None:
        """Show the user what is wrong with their input (a failure to send goes to the hook)."""
        try:
            if ctx.invocation is not None:
                await ctx.answer(error=exc.user_text())
            else:
                await ctx.reply(exc.user_text())
        except (asyncio.CancelledError, *_CLOSED):
            raise
        except Exception as send_exc:
            await self.report(send_exc, ctx)

    def _finish_invocation(self, ctx: Context, state: bytes | None) -> None:
        store = self._store
        assert store is not None
        assert ctx.invocation is not None
        m = ctx.message
        store.remember(m.conv, m.sender, ctx.invocation.invocation_id, int(time.time() * 1000))
        self._commit(m, state)

    def _commit(self, m: Message, state: bytes | None) -> None:
        store = self._store
        assert store is not None
        store.commit(m.conv, m.seq, state)

    async def report(self, exc: Exception, ctx: Context | None) -> None:
        """Hand ``exc`` to the error hook (and log it if the hook fails too)."""
        try:
            await self._error_hook(exc, ctx)
        except asyncio.CancelledError:
            raise
        except Exception as hook_exc:
            log.error("error hook failed on %r", exc, exc_info=exc)
            log.error("the error hook raised", exc_info=hook_exc)

    async def _conversation(self, m: Message) -> Conversation:
        """The cached conversation of ``m`` (fetched when unknown, after a membership or title
        change, or when the sender is not a known member); retried while disconnected."""
        conv = self._convs.get(m.conv)
        if (
            conv is not None
            and not isinstance(m.content, kinds.SystemEvent)
            and (m.sender in conv.members or m.sender == 0)  # 0: server-authored
        ):
            return conv
        delay = 0.1
        while True:
            try:
                info = await self.client.conversation(m.conv)
                conv = Conversation.from_info(info)
                break
            except NotFound:
                conv = Conversation(m.conv, "")  # the bot was removed since
                break
            except (ConnectionLost, TimeoutError, RateLimited):
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)
        self._convs[m.conv] = conv
        return conv

    # ------------------------------------------------------------------ Runtime for Context

    async def send_for(
        self,
        ctx: Context,
        conv: int,
        content: kinds.Content,
        to: Collection[int],
        reply_to: int | None,
    ) -> F.Ack | None:
        cmid = f"bot:{ctx.message.conv}:{ctx.message.seq}:{ctx.sent}"
        delay = 0.05
        while True:
            try:
                return await self.client.send(conv, content, to=to, reply_to=reply_to, cmid=cmid)
            except Conflict:
                log.info("reply %s was already stored before a restart; not sent again", cmid)
                return None
            except RateLimited:
                # The SDK repeats a refused send itself, but not the requests a send makes
                # first (the member list, keys): a busy bot waits and tries again (same cmid).
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 2.0)

    async def order_for(
        self, ctx: Context, amount: str | int, currency: str, memo: str, ttl: float
    ) -> kinds.PaymentRequest:
        m = ctx.message
        rid = self._order_id(m.conv, m.seq, ctx.orders)
        ctx.orders += 1
        payer = ctx.sender.account
        try:
            r = await self.client.request(
                m.conv, amount, currency, payer=payer, request_id=rid, ttl=ttl
            )
            minor, currency = r.receipt.amount, r.receipt.currency
        except Conflict:
            # Opened by an earlier run of this handler (killed before it was marked handled):
            # the same request, with another deadline. Its terms are the ones asked again.
            log.info("request %s was opened before a restart; using it", rid)
            minor = payments.minor_units(amount, currency)
        return kinds.PaymentRequest(request_id=rid, amount=minor, currency=currency, memo=memo)

    def _order_id(self, conv: int, seq: int, n: int) -> str:
        """The same id for the same order on every run of its handler, and one nobody else can
        guess: request ids are the payer-visible idempotency keys of the ledger, and a member
        who opened a request under a predictable id first would block the order."""
        ks = self.client.keystore
        secret = ks.get("bots", "order-secret")
        if secret is None:
            secret = secrets.token_bytes(32)
            ks.put("bots", "order-secret", secret)
        tag = hmac.new(secret, f"{self.me.account}:{conv}:{seq}:{n}".encode(), hashlib.sha256)
        return f"rq-{tag.hexdigest()[:32]}"

    def load_state(self, conv: int) -> bytes:
        store = self._store
        assert store is not None
        return store.state(conv)


_COMMAND = re.compile(r"/([^\s@]+)(?:@(\S*))?(?:\s+(.*))?\Z", re.DOTALL)


def _parse_command(text: str, handle: str) -> tuple[str, str, bool] | Literal[False] | None:
    """``(name, argument text, addressed with @handle)`` for ``/name[@handle] args``; False for
    a command addressed to another bot; None when the text is not a command at all."""
    m = _COMMAND.match(text)
    if m is None:
        return None
    name, target, rest = m.group(1).lower(), m.group(2), m.group(3) or ""
    if not COMMAND_NAME.match(name):
        return None
    if target is not None and target.lower() != handle.lower():
        return False
    return name, rest, target is not None
