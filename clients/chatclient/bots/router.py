"""Routers: where handlers are registered, and the order they are tried in.

    router = Router()

    @router.command("roll")                       # /roll 20
    async def roll(msg, ctx, sides: int = 6): ...

    @router.message(F.text & F.mentioned)        # any text mentioning the bot
    async def hello(msg, ctx): ...

    @router.action("poll.vote")                   # miniapp.invoke app="poll" action="vote"
    async def vote(msg, ctx, poll: str, option: int): ...

    root.include(router)                          # routers nest; a router's filter guards all

One handler answers each message, chosen in this order: an action invocation goes to its action
handler; a ``/command`` to its command handler; anything else (including an unknown command) to
the first message handler whose filter passes, routers searched depth-first in registration
order. Registration that would make a handler unreachable (an unfiltered handler registered
before another for the same input) is refused when the bot is built, instead of silently never
running — a classic surprise in other frameworks.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from chatproto import frames as F
from chatproto import limits as L

from chatclient.bots.args import Signature, inspect_handler
from chatclient.bots.errors import SetupError
from chatclient.bots.filters import Filter, Predicate, as_filter

Handler = Callable[..., Awaitable[Any]]
H = TypeVar("H", bound=Handler)
RouteKind = Literal["command", "message", "action", "system"]

COMMAND_NAME = re.compile(L.COMMAND_PATTERN)
_NAME = re.compile(L.NAME_PATTERN)
SYSTEM_EVENTS = frozenset({"created", "joined", "left", "removed", "role", "renamed", "bot_access"})
OWN_EVENTS = frozenset({"bot_added", "bot_removed"})
"""The bot itself joined (invited, or among a new conversation's members) or left/was removed."""


@dataclass(frozen=True, slots=True)
class Route:
    """One registered handler."""

    kind: RouteKind
    fn: Handler
    signature: Signature
    filter: Filter | None = None
    name: str = ""
    """The command name, or the action key ``app.action``."""
    aliases: tuple[str, ...] = ()
    description: str = ""
    events: frozenset[str] = frozenset()
    """System events a ``system`` route takes."""
    price: F.Price | None = None
    """What one invocation of an action costs (declared in the manifest)."""

    @property
    def app(self) -> str:
        """The mini-app of an action route (``poll`` of ``poll.vote``)."""
        return self.name.partition(".")[0]

    @property
    def action(self) -> str:
        """The action within its mini-app (``vote`` of ``poll.vote``)."""
        return self.name.partition(".")[2]

    @property
    def usage(self) -> str:
        if self.kind == "command":
            return self.signature.usage("/" + self.name)
        if self.kind == "action":
            return self.signature.usage(self.name)
        return ""


@dataclass(frozen=True, slots=True)
class Bound:
    """A route with the filters of the routers above it, in the order they are tried."""

    route: Route
    filters: tuple[Filter, ...]

    @property
    def unconditional(self) -> bool:
        return not self.filters


class Router:
    """A group of handlers, optionally guarded by a ``filter`` that applies to all of them."""

    def __init__(self, name: str = "", *, filter: Filter | Predicate | None = None) -> None:
        self.name = name
        self.filter = as_filter(filter) if filter is not None else None
        self._routes: list[Route] = []
        self._children: list[Router] = []

    def __repr__(self) -> str:
        return f"Router({self.name!r})" if self.name else f"Router(<{len(self._routes)} routes>)"

    # ------------------------------------------------------------------ registration

    def command(
        self,
        name: str,
        *aliases: str,
        description: str | None = None,
        filter: Filter | Predicate | None = None,
    ) -> Callable[[H], H]:
        """Handle ``/name args...`` (also ``/name@this_bot``). The handler's parameters after
        ``(msg, ctx)`` are its typed arguments (see ``chatclient.bots.args``)."""
        names = [name.lstrip("/").lower(), *(a.lstrip("/").lower() for a in aliases)]
        for n in names:
            if not COMMAND_NAME.match(n):
                raise SetupError(f"bad command name {n!r}: 1-32 of a-z, 0-9 and _")

        def register(fn: H) -> H:
            self._routes.append(
                Route(
                    "command",
                    fn,
                    inspect_handler(fn, command=True),
                    _filter(filter),
                    names[0],
                    tuple(names[1:]),
                    _description(fn, description),
                )
            )
            return fn

        return register

    def message(self, filter: Filter | Predicate | None = None) -> Callable[[H], H]:
        """Handle messages that are neither commands with a handler nor action invocations
        nor system events, when ``filter`` passes (no filter: every such message)."""

        def register(fn: H) -> H:
            self._routes.append(
                Route("message", fn, _plain(fn), _filter(filter), description=_description(fn))
            )
            return fn

        return register

    def action(
        self,
        name: str,
        *,
        description: str | None = None,
        price: F.Price | None = None,
        filter: Filter | Predicate | None = None,
    ) -> Callable[[H], H]:
        """Handle a mini-app action: a ``miniapp.invoke`` whose ``app.action`` is ``name``
        (``"poll.vote"``: app ``poll`` — the bot's manifest name — action ``vote``). Parameters
        after ``(msg, ctx)`` are filled by name from the invocation's ``params``. Each
        invocation id is handled once, whatever the retries; the user always gets one
        ``miniapp.result``. ``description`` (default: the docstring's first line) is the
        action's title in the manifest; ``price`` is declared there too."""
        app, _, action = name.partition(".")
        if not (
            _NAME.match(app)
            and _NAME.match(action)
            and len(app) <= L.MAX_APP_NAME_CHARS
            and len(action) <= L.MAX_ACTION_NAME_CHARS
        ):
            raise SetupError(
                f"bad action name {name!r}: 'app.action', each a-z, 0-9, _ . - (not first: . -)"
            )

        def register(fn: H) -> H:
            self._routes.append(
                Route(
                    "action",
                    fn,
                    inspect_handler(fn, command=False),
                    _filter(filter),
                    name,
                    description=_description(fn, description),
                    price=price,
                )
            )
            return fn

        return register

    def system(self, *events: str, filter: Filter | Predicate | None = None) -> Callable[[H], H]:
        """Handle server-authored membership/title events (``joined``, ``left``, ``removed``,
        ``created``, ``role``, ``renamed``, ``bot_access``; none named: all). ``msg.content`` is the
        ``kinds.SystemEvent``."""
        unknown = set(events) - SYSTEM_EVENTS - OWN_EVENTS
        if unknown:
            raise SetupError(f"unknown system events {sorted(unknown)}")
        wanted = frozenset(events) or SYSTEM_EVENTS

        def register(fn: H) -> H:
            self._routes.append(Route("system", fn, _plain(fn), _filter(filter), events=wanted))
            return fn

        return register

    def bot_added(self, filter: Filter | Predicate | None = None) -> Callable[[H], H]:
        """Handle this bot being added to a conversation (invited into a group or channel, or
        among the members it was created with, a direct conversation included): a ``joined``
        or ``created`` message, tried before handlers of those events. ``ctx.conversation.access``
        says what it receives there."""
        return self.system("bot_added", filter=filter)

    def bot_removed(self, filter: Filter | Predicate | None = None) -> Callable[[H], H]:
        """Handle this bot leaving or being removed from a conversation (it can no longer send
        there; ``ctx.state`` is still its own to clean up)."""
        return self.system("bot_removed", filter=filter)

    def include(self, *routers: Router) -> None:
        """Nest ``routers`` under this one (tried after this router's own handlers, in order)."""
        for r in routers:
            if r is self or self in r._descendants():
                raise SetupError(f"including {r!r} in {self!r} makes a cycle")
            self._children.append(r)

    include_router = include

    # ------------------------------------------------------------------ lookup

    def _descendants(self) -> Iterator[Router]:
        for child in self._children:
            yield child
            yield from child._descendants()

    def bound_routes(self, above: tuple[Filter, ...] = ()) -> Iterator[Bound]:
        """Every route of this tree, depth-first, with the router filters that guard it."""
        chain = (*above, self.filter) if self.filter is not None else above
        for route in self._routes:
            yield Bound(route, (*chain, route.filter) if route.filter is not None else chain)
        for child in self._children:
            yield from child.bound_routes(chain)


class Table:
    """A router tree flattened for dispatch, checked for unreachable and clashing handlers."""

    def __init__(self, root: Router) -> None:
        self.commands: dict[str, list[Bound]] = {}
        self.actions: dict[str, list[Bound]] = {}
        self.messages: list[Bound] = []
        self.system: list[Bound] = []
        seen: set[int] = set()
        for b in root.bound_routes():
            if id(b.route) in seen:
                raise SetupError(f"{_name(b.route)} is registered twice (a router included twice?)")
            seen.add(id(b.route))
            match b.route.kind:
                case "command":
                    for n in (b.route.name, *b.route.aliases):
                        self._add(self.commands.setdefault(n, []), b, f"/{n}")
                case "action":
                    self._add(self.actions.setdefault(b.route.name, []), b, b.route.name)
                case "message":
                    self._add(self.messages, b, "message")
                case "system":
                    for earlier in self.system:
                        if earlier.unconditional and b.route.events <= earlier.route.events:
                            raise SetupError(_shadow(earlier, b, "system events"))
                    self.system.append(b)

    @staticmethod
    def _add(routes: list[Bound], b: Bound, what: str) -> None:
        for earlier in routes:
            if earlier.unconditional:
                raise SetupError(_shadow(earlier, b, what))
        routes.append(b)

    def command_routes(self) -> list[Route]:
        """One route per command (its first registration), in registration order."""
        out: dict[int, Route] = {}
        for bounds in self.commands.values():
            for b in bounds:
                out.setdefault(id(b.route), b.route)
        return list(out.values())

    def action_routes(self) -> list[Route]:
        return [bounds[0].route for bounds in self.actions.values()]


def _shadow(earlier: Bound, later: Bound, what: str) -> str:
    return (
        f"{_name(later.route)} can never run: {_name(earlier.route)} takes every {what} first"
        " (give the earlier one a filter, or register the specific one first)"
    )


def _name(route: Route) -> str:
    return getattr(route.fn, "__qualname__", repr(route.fn))


def _filter(f: Filter | Predicate | None) -> Filter | None:
    return as_filter(f) if f is not None else None


def _plain(fn: Handler) -> Signature:
    sig = inspect_handler(fn, command=True)
    if any(p.required for p in sig.params):
        raise SetupError(f"{_name_of(fn)}: only command and action handlers take arguments")
    return sig


def _name_of(fn: Handler) -> str:
    return getattr(fn, "__qualname__", repr(fn))


def _description(fn: Handler, given: str | None = None) -> str:
    if given is not None:
        return given
    doc = inspect.getdoc(fn) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""
